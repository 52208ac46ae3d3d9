"""Command line: ``python -m guestsim`` runs the simulator in the foreground."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys

from .inventory import InventoryError
from .server import DEFAULT_CONTENT_LENGTH_LIMIT, Simulator
from .service import DEFAULT_RETENTION


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog='python -m guestsim',
                                     description='vSphere guest-operations simulator (SOAP /sdk over HTTPS).')
    parser.add_argument('--host', default='127.0.0.1', help='address to bind (default: 127.0.0.1, loopback only)')
    parser.add_argument('--port', type=int, default=8989, help='port to bind; 0 picks a free port (default: 8989)')
    parser.add_argument('--state-dir', help='where guest files, processes and ca.pem live (default: a new temp dir, '
                                            'removed on exit)')
    parser.add_argument('--inventory', metavar='FILE.yml', help='YAML inventory that extends or replaces the default')
    parser.add_argument('--write-cloud-config', metavar='PATH',
                        help='write an ansible-test cloud-config-vcenter.ini for this server')
    parser.add_argument('--process-retention', type=float, default=DEFAULT_RETENTION, metavar='SECONDS',
                        help='how long exit codes of finished programs stay listable (default: 300)')
    parser.add_argument('--transfer-ttl', type=float, default=None, metavar='SECONDS',
                        help='lifetime of /guestFile URLs (default: 600)')
    parser.add_argument('--content-length-limit', type=int, default=DEFAULT_CONTENT_LENGTH_LIMIT, metavar='BYTES',
                        help='downloads of this size or larger are sent chunked, without Content-Length, as ESXi '
                             'does; -1 always sends Content-Length (default: 2400)')
    parser.add_argument('--accept-empty-upload', action='store_true',
                        help='accept 0-byte PUTs (ESXi answers them with HTTP 500; default: like ESXi)')
    parser.add_argument('--no-noexec-mount', action='store_true',
                        help='emulate the noexec temp root instead of mounting a noexec tmpfs')
    parser.add_argument('--control-port', type=int, default=0, metavar='N',
                        help='port of the listener that serves only /guestsim/* and stays up during a simulated '
                             'vCenter restart; 0 picks a free port (default), -1 turns it off')
    parser.add_argument('--exclusive-guest-ops', action='store_true',
                        help='a second guest operation on a VM while one is in flight answers InvalidState, as '
                             'on vSphere (default: off; POST /guestsim/options turns it on at run time)')
    parser.add_argument('-v', '--verbose', action='store_true',
                        help='log every SOAP call (method, VM, result or fault) and HTTP request')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format='%(asctime)s %(name)s %(levelname)s %(message)s')
    try:
        simulator = Simulator(
            host=args.host, port=args.port, state_dir=args.state_dir, inventory_file=args.inventory,
            retention=args.process_retention, transfer_ttl=args.transfer_ttl,
            content_length_limit=None if args.content_length_limit < 0 else args.content_length_limit,
            accept_empty_upload=args.accept_empty_upload, allow_noexec_mount=not args.no_noexec_mount,
            control_port=None if args.control_port < 0 else args.control_port,
            exclusive_guest_ops=args.exclusive_guest_ops, windows_init='background')
    except (InventoryError, OSError) as exc:
        sys.stderr.write('guestsim: %s\n' % exc)
        return 2
    try:
        simulator.bind()
    except OSError as exc:
        sys.stderr.write('guestsim: cannot listen on %s:%d: %s\n' % (args.host, args.port, exc))
        simulator.stop()
        return 2
    # The handler only sets a flag and writes a byte to a pipe: nothing that takes a lock, so a
    # second signal arriving while the first one is being handled cannot deadlock (a handler that
    # calls threading.Event.set() can: the signal re-enters set() inside the condition's lock).
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_write, False)
    stop_requested = []

    def on_signal(signum, frame):
        del frame
        stop_requested.append(signum)
        try:
            os.write(wake_write, b'.')
        except OSError:  # the pipe is full (many signals): one byte is enough to wake the main thread
            pass

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    if args.write_cloud_config:
        simulator.write_cloud_config(args.write_cloud_config)
    user, password = next(iter(simulator.users.items()))
    lines = [
        'guestsim listening on %s' % simulator.url,
        '  vCenter login: %s / %s' % (user, password),
        '  guest login:   root / guestpass (every default Linux VM), Administrator / guestpass (DC0_H0_WIN0)',
        '  CA certificate: %s' % simulator.ca_file,
        '  ESXi hosts:    %s (port %d; transfer URLs name the host)' % (', '.join(
            '%s %s%s' % (h.name, h.address, '' if h.management == 'serve' else ' (%s)' % h.management)
            for h in simulator.service.inventory.hosts()), simulator.port),
        '  state dir:     %s' % simulator.state_dir,
        '  state:         %s/guestsim/state' % simulator.control_base_url,
        '  control:       %s/guestsim (also during a simulated vCenter restart)' % simulator.control_base_url,
    ]
    if args.write_cloud_config:
        lines.append('  cloud config:  %s' % args.write_cloud_config)
    noexec = [s for s in simulator.service.state()['vms'] if s['noexec_emulated']]
    if noexec:
        lines.append('  note: noexec temp root emulated (mount not permitted) for %s'
                     % ', '.join(v['name'] for v in noexec))
    sys.stdout.write('\n'.join(lines) + '\n')
    sys.stdout.flush()
    try:
        simulator.start()
        while not stop_requested:
            os.read(wake_read, 64)  # blocks until a signal handler writes (EINTR is retried, PEP 475)
    finally:
        simulator.stop()
    sys.stdout.write('guestsim stopped\n')
    sys.stdout.flush()
    return 0


if __name__ == '__main__':
    sys.exit(main())
