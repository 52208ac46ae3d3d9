"""pytest support: the ``guestsim_server`` fixture and a small client for the test endpoints."""

from __future__ import annotations

import contextlib
import json
import os
import ssl
import urllib.parse
import urllib.request

import pytest

from .server import Simulator


def resolve_transfer_url(url: str, addresses: dict, called_host: str) -> str:
    """A /guestFile URL with its host made reachable, as a client does: ``*`` is the host that was
    called, a host name (``DC0_H0``) is that host's management address (``addresses``: name ->
    address, e.g. from ``GET /guestsim/state`` ``hosts``). Only the host part changes."""
    parts = urllib.parse.urlsplit(url)
    name = parts.hostname  # lower-cased by urlsplit; host names are case-insensitive
    lowered = {key.lower(): value for key, value in addresses.items()}
    address = called_host if name == '*' else lowered.get(name, name)
    netloc = address + ('' if parts.port is None else ':%d' % parts.port)
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


class SimulatorHandle:
    """What the fixture yields: where the server is and how to talk to its test endpoints."""

    def __init__(self, simulator: Simulator):
        self.simulator = simulator
        self.host = simulator.client_host
        self.port = simulator.port
        self.url = simulator.url
        self.base_url = simulator.base_url
        # /guestsim/* on the control listener: reachable during a simulated vCenter restart too.
        self.control_url = simulator.control_base_url
        self.ca_file = simulator.ca_file
        self.state_dir = simulator.state_dir
        self.users = dict(simulator.users)

    def _context(self):
        return ssl.create_default_context(cafile=self.ca_file)

    def request(self, method: str, path: str, data=None):
        body = None if data is None else json.dumps(data).encode()
        req = urllib.request.Request(self.control_url + path, data=body, method=method,
                                     headers={'Content-Type': 'application/json'})
        with urllib.request.urlopen(req, context=self._context(), timeout=60) as resp:
            return json.loads(resp.read() or b'null')

    def state(self) -> dict:
        return self.request('GET', '/guestsim/state')

    def host_addresses(self) -> dict:
        """ESXi host name -> management address (127.0.1.N)."""
        return {h.name: h.address for h in self.simulator.service.inventory.hosts()}

    def transfer_url(self, url: str) -> str:
        """``url`` as returned by InitiateFileTransfer*, with the host made reachable."""
        return resolve_transfer_url(url, self.host_addresses(), self.host)

    def present_certificate(self, host: str, other: bool = True) -> dict:
        """Make ESXi host ``host`` present another certificate than vCenter reports (or the reported one)."""
        return self.request('POST', '/guestsim/hosts/%s/certificate' % host,
                            {'presented': 'other' if other else 'reported'})

    def reset(self):
        return self.request('POST', '/guestsim/reset', {})

    def add_fault(self, method='*', fault=None, vm=None, nth=1, count=1, probability=None, delay=0,
                  break_transfer_after=None):
        return self.request('POST', '/guestsim/faults', {
            'method': method, 'vm': vm, 'fault': fault, 'nth': nth, 'count': count, 'probability': probability,
            'delay': delay, 'break_transfer_after': break_transfer_after})

    def clear_faults(self):
        return self.request('DELETE', '/guestsim/faults')

    def power_on(self, name: str):
        return self.request('POST', '/guestsim/vms/%s/power-on' % name, {})

    def power_off(self, name: str):
        return self.request('POST', '/guestsim/vms/%s/power-off' % name, {})

    def set_options(self, **options) -> dict:
        """Change run-time options, e.g. ``set_options(exclusive_guest_ops=True)``; reset() restores them."""
        return self.request('POST', '/guestsim/options', options)['options']

    def options(self) -> dict:
        return self.request('GET', '/guestsim/options')['options']

    @contextlib.contextmanager
    def exclusive_guest_ops(self, enabled: bool = True):
        """Within the block, a second guest operation on a busy VM answers InvalidState."""
        previous = self.options()['exclusive_guest_ops']
        self.set_options(exclusive_guest_ops=enabled)
        try:
            yield self
        finally:
            self.set_options(exclusive_guest_ops=previous)

    def restart_vcenter(self, seconds: float = 5) -> dict:
        """Drop every session and refuse connections to the SOAP port for ``seconds``."""
        return self.request('POST', '/guestsim/vcenter/restart', {'seconds': seconds})

    def restart_tools(self, name: str, seconds: float = 2, end_programs: bool = False) -> dict:
        """Restart a VM's VMware Tools: guest operations unavailable for ``seconds``, records gone."""
        return self.request('POST', '/guestsim/vms/%s/tools-restart' % name,
                            {'seconds': seconds, 'end_programs': end_programs})

    def connect(self, user: str = 'user', pwd: str = 'simpass', **kwargs):
        """A pyVmomi ServiceInstance logged in to this simulator (verifying its CA)."""
        from pyVim.connect import SmartConnect  # pylint: disable=import-outside-toplevel
        return SmartConnect(host=self.host, port=self.port, user=user, pwd=pwd,
                            sslContext=self._context(), **kwargs)


@pytest.fixture
def guestsim_exclusive(guestsim_server):  # pylint: disable=redefined-outer-name
    """The session simulator with exclusive_guest_ops on for one test."""
    with guestsim_server.exclusive_guest_ops():
        yield guestsim_server


@pytest.fixture(scope='session')
def guestsim_server(tmp_path_factory):
    """A simulator on a free loopback port for the whole test session."""
    state_dir = tmp_path_factory.mktemp('guestsim-state')
    poll = os.environ.get('GUESTSIM_EXIT_POLL_INTERVAL')
    # The Windows VM's Wine prefix is prepared in the background while the first tests run (once per
    # test session: wineboot takes a few seconds).
    simulator = Simulator(port=0, state_dir=str(state_dir), windows_init='background',
                          **({'exit_poll_interval': float(poll)} if poll else {})).start()
    try:
        yield SimulatorHandle(simulator)
    finally:
        simulator.stop()
