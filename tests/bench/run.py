"""Speed and memory benchmarks of guestops.vsphere against the guest-operations simulator.

Run with ``make bench``: it starts the simulator (``.ci/with-simulator``), which exports the
VMWARE_* variables this script connects with.  Each benchmark has a target; the script prints
a table, writes ``build/bench.json`` and exits 1 when a target is missed.  Timings on a busy
machine vary, so the targets are set where a regression (not noise) misses them.

Benchmarks:
- adhoc_guest_exec: ``ansible localhost -m guestops.vsphere.guest_exec`` of a trivial command,
  wall time and the number of vSphere calls it makes (the user-visible cost of one task).
- exit_detection: how long after a guest program ends the client notices (polling policy),
  for a 1-second and an 8-second program.
- transfer: upload and download of a large file through the guest client, with throughput and
  the growth of the client's peak memory (must stay bounded: the file is streamed).
- concurrency: 20 clients running a program at the same time, each with its own session.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
COLLECTIONS = os.environ.get('ANSIBLE_COLLECTIONS_PATH', os.path.join(ROOT, 'build', 'collections')).split(os.pathsep)[0]
sys.path.insert(0, COLLECTIONS)

# pylint: disable=wrong-import-position
from ansible_collections.guestops.vsphere.plugins.module_utils._vsphere import VSphereSession  # noqa: E402
from ansible_collections.guestops.vsphere.plugins.module_utils._guest import GuestClient  # noqa: E402
from ansible_collections.guestops.vsphere.plugins.module_utils._operations import (  # noqa: E402
    ProgramRequest,
    run_program,
)

VM_NAME = os.environ.get('BENCH_VM', 'DC0_H0_VM0')
GUEST_USER = os.environ.get('VMWARE_GUEST_USERNAME', 'root')
GUEST_PASSWORD = os.environ.get('VMWARE_GUEST_PASSWORD', 'guestpass')


def connection():
    """Connection parameters from the VMWARE_* environment (as AWX injects them)."""
    try:
        return dict(hostname=os.environ['VMWARE_HOST'], username=os.environ['VMWARE_USER'],
                    password=os.environ['VMWARE_PASSWORD'], port=int(os.environ.get('VMWARE_PORT', '443')),
                    validate_certs=os.environ.get('VMWARE_VALIDATE_CERTS', 'true').lower() in ('1', 'true', 'yes'))
    except KeyError as missing:
        sys.exit('%s is not set: run this through `make bench`, which starts the simulator' % missing)


def simulator_calls():
    """Total vSphere calls the simulator has answered so far (None against a real vCenter)."""
    url = os.environ.get('GUESTSIM_STATE_URL')
    if not url:
        return None
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with urllib.request.urlopen(url, context=context, timeout=30) as response:  # nosec - loopback test server
        state = json.load(response)
    return sum(state.get('calls', {}).values())


class Client:
    """A logged-in session and a guest client for the benchmark VM."""

    def __init__(self):
        self.session = VSphereSession.from_params(connection()).connect()
        self.vm = self.session.find_vm(name=VM_NAME)
        self.guest = GuestClient(self.session, self.vm, GUEST_USER, GUEST_PASSWORD)

    def close(self):
        self.guest.close()
        self.session.close()


def result(name, value, unit, target, ok, **extra):
    row = dict(name=name, value=round(value, 3), unit=unit, target=target, ok=bool(ok))
    row.update(extra)
    return row


def bench_adhoc(runs=5):
    """Wall time and vSphere calls of one ad-hoc guest_exec task."""
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=COLLECTIONS, VMWARE_GUEST_USERNAME=GUEST_USER,
               VMWARE_GUEST_PASSWORD=GUEST_PASSWORD, ANSIBLE_LOCALHOST_WARNING='false',
               ANSIBLE_INVENTORY_UNPARSED_WARNING='false')
    command = [os.path.join(os.path.dirname(sys.executable), 'ansible'), 'localhost', '-m',
               'guestops.vsphere.guest_exec', '-a', 'name=%s cmd=true' % VM_NAME]
    times, calls = [], []
    for dummy in range(runs):
        before = simulator_calls()
        started = time.monotonic()
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        times.append(time.monotonic() - started)
        if done.returncode != 0:
            raise RuntimeError('ansible -m guest_exec failed:\n%s%s' % (done.stdout, done.stderr))
        if before is not None:
            calls.append(simulator_calls() - before)
    median = statistics.median(times)
    rows = [result('adhoc_guest_exec_wall', median, 's', '<= 4.0', median <= 4.0,
                   runs=runs, min=round(min(times), 3), max=round(max(times), 3))]
    if calls:
        rows.append(result('adhoc_guest_exec_vsphere_calls', max(calls), 'calls', '<= 25', max(calls) <= 25))
    return rows


def bench_exit_detection(client):
    """Seconds between a program's end and the client noticing it."""
    rows = []
    for seconds, limit in ((1, 1.5), (8, 6.5)):
        request = ProgramRequest(argv=['/bin/sleep', str(seconds)], timeout=120)
        started = time.monotonic()
        outcome = run_program(client.guest, request)
        wall = time.monotonic() - started
        if outcome.get('rc') != 0:
            raise RuntimeError('sleep %s failed: %r' % (seconds, outcome))
        lag = wall - seconds
        rows.append(result('exit_detection_%ss_program' % seconds, lag, 's after exit', '<= %s' % limit,
                           lag <= limit, note='includes temp dir, start, output fetch and clean-up'))
    return rows


def bench_transfer(size_mib):
    """Run the transfer benchmark in a fresh process so that its peak memory is its own."""
    done = subprocess.run([sys.executable, __file__, '--transfer-worker', str(size_mib)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError('transfer worker failed:\n%s%s' % (done.stdout, done.stderr))
    return json.loads(done.stdout.strip().splitlines()[-1])


def transfer_worker(size_mib):
    """Upload and download size_mib MiB; print the rows as JSON (run in its own process)."""
    size = size_mib * 1024 * 1024
    client = Client()
    rows = []
    try:
        with tempfile.TemporaryDirectory() as local:
            source = os.path.join(local, 'source.bin')
            with open(source, 'wb') as handle:
                block = os.urandom(1024 * 1024)
                for dummy in range(size_mib):
                    handle.write(block)
            baseline = peak_rss_mib()
            temp_dir = client.guest.make_temp_dir(prefix='bench-')
            try:
                target = temp_dir.rstrip('/') + '/payload.bin'
                started = time.monotonic()
                with open(source, 'rb') as handle:
                    client.guest.upload(handle, size, target)
                upload_s = time.monotonic() - started
                started = time.monotonic()
                with open(os.path.join(local, 'back.bin'), 'wb') as handle:
                    got, _digest = client.guest.download_to(target, handle)
                download_s = time.monotonic() - started
            finally:
                client.guest.delete(temp_dir)
            if got != size:
                raise RuntimeError('downloaded %d of %d bytes' % (got, size))
            growth = peak_rss_mib() - baseline
    finally:
        client.close()
    rows.append(result('upload_throughput', size_mib / upload_s, 'MiB/s', '>= 20', size_mib / upload_s >= 20,
                       size_mib=size_mib))
    rows.append(result('download_throughput', size_mib / download_s, 'MiB/s', '>= 20', size_mib / download_s >= 20,
                       size_mib=size_mib))
    rows.append(result('transfer_peak_memory_growth', growth, 'MiB', '<= 64', growth <= 64, size_mib=size_mib))
    print(json.dumps(rows))


def peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def bench_concurrency(clients=20):
    """clients sessions each run a program at once; all must succeed."""
    errors, outputs = [], {}

    def one(index):
        try:
            client = Client()
            try:
                outcome = run_program(client.guest, ProgramRequest(argv=['/bin/echo', 'client-%d' % index]))
                outputs[index] = outcome.get('stdout')
            finally:
                client.close()
        except Exception as exc:  # pylint: disable=broad-exception-caught
            errors.append('%d: %s' % (index, exc))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(clients)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.monotonic() - started
    correct = sum(1 for i in range(clients) if outputs.get(i) == 'client-%d' % i)
    return [result('concurrent_clients_wall', wall, 's', '<= 20', wall <= 20 and correct == clients,
                   clients=clients, correct=correct, errors=errors[:3])]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n', maxsplit=1)[0])
    parser.add_argument('--size-mib', type=int, default=int(os.environ.get('BENCH_SIZE_MIB', '2048')),
                        help='size of the transfer benchmark file (default 2048)')
    parser.add_argument('--json', default=os.path.join(ROOT, 'build', 'bench.json'))
    parser.add_argument('--transfer-worker', type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if os.environ.get('GUESTSIM_CA_FILE'):
        # Measure the path users should run: certificates verified, against the simulator's CA.
        os.environ.update(SSL_CERT_FILE=os.environ['GUESTSIM_CA_FILE'], VMWARE_VALIDATE_CERTS='true')
    if args.transfer_worker:
        transfer_worker(args.transfer_worker)
        return 0

    rows = []
    rows += bench_adhoc()
    client = Client()
    try:
        rows += bench_exit_detection(client)
    finally:
        client.close()
    rows += bench_transfer(args.size_mib)
    rows += bench_concurrency()

    width = max(len(row['name']) for row in rows)
    for row in rows:
        print('%-*s %10.3f %-13s target %-8s %s' % (width, row['name'], row['value'], row['unit'], row['target'],
                                                    'ok' if row['ok'] else 'MISSED'))
    os.makedirs(os.path.dirname(args.json), exist_ok=True)
    with open(args.json, 'w', encoding='utf-8') as handle:
        json.dump(rows, handle, indent=2)
    missed = [row['name'] for row in rows if not row['ok']]
    if missed:
        print('targets missed: %s' % ', '.join(missed))
        return 1
    print('all %d benchmark targets met (details in %s)' % (len(rows), args.json))
    return 0


if __name__ == '__main__':
    sys.exit(main())
