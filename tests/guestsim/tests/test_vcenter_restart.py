"""vCenter restarts, session loss through fault rules, and exclusive guest operations (InvalidState)."""

from __future__ import annotations

import socket
import ssl
import threading
import time
import urllib.error

import pytest
import requests
from pyVim.connect import Disconnect
from pyVmomi import vim

from .conftest import guest_for


def _refused(sim) -> bool:
    try:
        with socket.create_connection((sim.host, sim.port), timeout=5):
            return False
    except ConnectionRefusedError:
        return True


def _wait_until_open(sim, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while _refused(sim):
        assert time.monotonic() < deadline, 'the SOAP port did not open again'
        time.sleep(0.1)


def _call_after_outage(func):
    """The first call on a connection that the restart cut may fail at the socket level, as with a
    real vpxd restart; pyVmomi then opens a new connection on the next call."""
    try:
        return func()
    except (ConnectionError, OSError):
        return func()


def test_vcenter_restart_drops_sessions_refuses_connections_and_keeps_guests(sim, guest):
    pid = guest.start('/bin/sleep', '30')
    other = sim.connect()
    assert other.content.sessionManager.currentSession is not None
    answer = sim.restart_vcenter(60)
    assert answer['restarting'] is True and answer['seconds'] == 60 and answer['port'] == sim.port
    assert answer['sessions_dropped'] >= 2
    # The listening socket is closed: new connections are refused, as while vpxd restarts.
    assert _refused(sim)
    # The control listener stays up: the state shows the outage and the guest program still running.
    state = sim.state()
    assert state['vcenter']['available'] is False
    assert state['sessions'] == []
    assert any(p['pid'] == pid and p['running'] for p in state['processes'])
    assert _refused(sim)
    # A restart during the outage starts its count again: 0 seconds ends it now.
    sim.restart_vcenter(0)
    _wait_until_open(sim)
    assert sim.state()['vcenter'] == {'available': True, 'restart_seconds_left': 0.0}
    # The old sessions are gone: every call with the old cookie answers NotAuthenticated...
    with pytest.raises(vim.fault.NotAuthenticated):
        _call_after_outage(other.CurrentTime)
    with pytest.raises(vim.fault.NotAuthenticated):
        _call_after_outage(lambda: guest.processes.ListProcessesInGuest(guest.vm, guest.auth, [pid]))
    # ... until the client logs in again; the guest kept the program and its record.
    guest.si.content.sessionManager.Login('user', 'simpass')
    info = guest.info(pid)
    assert info is not None and info.endTime is None
    guest.processes.TerminateProcessInGuest(guest.vm, guest.auth, pid)


def test_vcenter_restart_through_the_main_port_answers_first(sim):
    response = requests.post(sim.base_url + '/guestsim/vcenter/restart', json={'seconds': 60}, verify=sim.ca_file,
                             timeout=30)
    assert response.status_code == 200 and response.json()['restarting'] is True
    assert response.headers.get('Connection') == 'close'
    assert _refused(sim)
    sim.restart_vcenter(0)  # through the control listener
    _wait_until_open(sim)
    service_instance = sim.connect()
    assert service_instance.CurrentTime() is not None
    Disconnect(service_instance)


def test_vcenter_restart_cuts_keep_alive_connections(sim):
    context = ssl.create_default_context(cafile=sim.ca_file)
    with context.wrap_socket(socket.create_connection((sim.host, sim.port), timeout=10),
                             server_hostname=sim.host) as sock:
        sock.sendall(b'GET /sdk/vimServiceVersions.xml HTTP/1.1\r\nHost: %s\r\n\r\n' % sim.host.encode())
        reply = sock.makefile('rb')
        assert reply.readline().startswith(b'HTTP/1.1 200')
        length = 0
        while True:
            line = reply.readline()
            if line.lower().startswith(b'content-length:'):
                length = int(line.split(b':')[1])
            if line in (b'\r\n', b''):
                break
        reply.read(length)
        # The connection is idle and kept alive; the restart cuts it: the client reads EOF (or a reset).
        sim.restart_vcenter(60)
        try:
            data = reply.read(1)
        except socket.timeout:
            pytest.fail('the keep-alive connection was not cut')
        except (ConnectionError, ssl.SSLError, OSError):
            data = b''
        assert data == b''
    sim.restart_vcenter(0)
    _wait_until_open(sim)


def test_vcenter_restart_rejects_bad_requests(sim):
    for body in ({'seconds': -1}, {'seconds': 'x'}, {'seconds': 99999}, [1]):
        with pytest.raises(urllib.error.HTTPError) as info:
            sim.request('POST', '/guestsim/vcenter/restart', body)
        assert info.value.code == 400


def test_not_authenticated_rule_ends_the_session(sim, guest):
    sim.add_fault(method='ListProcessesInGuest', fault='NotAuthenticated', count=1)
    with pytest.raises(vim.fault.NotAuthenticated):
        guest.processes.ListProcessesInGuest(guest.vm, guest.auth, None)
    # The rule fired once, but the session is gone, as after a real session loss.
    with pytest.raises(vim.fault.NotAuthenticated):
        guest.processes.ListProcessesInGuest(guest.vm, guest.auth, None)
    with pytest.raises(vim.fault.NotAuthenticated):
        guest.si.CurrentTime()
    assert guest.si.content.sessionManager.currentSession is None
    guest.si.content.sessionManager.Login('user', 'simpass')
    assert guest.processes.ListProcessesInGuest(guest.vm, guest.auth, None) is not None


def test_invalid_state_is_injectable_for_guest_methods_only(sim, guest):
    sim.add_fault(method='StartProgramInGuest', fault='InvalidState')
    spec = vim.vm.guest.ProcessManager.ProgramSpec(programPath='/bin/true', arguments='')
    with pytest.raises(vim.fault.InvalidState) as info:
        guest.processes.StartProgramInGuest(guest.vm, guest.auth, spec)
    assert info.value.msg == 'The operation is not allowed in the current state.'
    with pytest.raises(urllib.error.HTTPError) as refused:
        sim.add_fault(method='Login', fault='InvalidState')
    assert refused.value.code == 400


def _slow_call_in_thread(sim, vm_name: str, seconds: float):
    """Start a guest operation that stays in flight for ``seconds`` (an injected delay)."""
    sim.add_fault(method='ListFilesInGuest', vm=vm_name, delay=seconds)
    service_instance = sim.connect()
    other = guest_for(sim, service_instance, vm_name)
    outcome = {}

    def run():
        try:
            outcome['result'] = other.files.ListFilesInGuest(other.vm, other.auth, '/')
        except Exception as exc:  # pylint: disable=broad-exception-caught
            outcome['error'] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not any(v['name'] == vm_name and v['guest_ops_in_flight'] for v in sim.state()['vms']):
        assert time.monotonic() < deadline, 'the slow call never started'
        time.sleep(0.05)
    return thread, outcome, service_instance


def test_exclusive_guest_ops_answer_invalid_state(sim, si, guest):
    other_vm = guest_for(sim, si, 'DC0_H0_VM1')
    with sim.exclusive_guest_ops():
        assert sim.options()['exclusive_guest_ops'] is True
        # The slow call is in flight for ``delay`` seconds; on a very slow machine our call may come
        # after it, then the attempt is repeated with a longer delay.
        info = None
        for delay in (1.0, 3.0, 8.0):
            thread, outcome, service_instance = _slow_call_in_thread(sim, 'DC0_H0_VM0', delay)
            try:
                guest.auth_manager.ValidateCredentialsInGuest(guest.vm, guest.auth)
            except vim.fault.InvalidState as exc:
                info = exc
                break
            thread.join(30)
            Disconnect(service_instance)
            sim.clear_faults()
        else:
            pytest.fail('no InvalidState')
        assert info.msg == 'The operation is not allowed in the current state.'
        # Another VM is not affected, nor are calls that are not guest operations.
        other_vm.auth_manager.ValidateCredentialsInGuest(other_vm.vm, other_vm.auth)
        assert guest.vm.name == 'DC0_H0_VM0'
        thread.join(30)
        assert 'result' in outcome, outcome
        guest.auth_manager.ValidateCredentialsInGuest(guest.vm, guest.auth)
        Disconnect(service_instance)
    assert sim.options()['exclusive_guest_ops'] is False


def test_parallel_guest_ops_allowed_by_default(sim, guest):
    thread, outcome, service_instance = _slow_call_in_thread(sim, 'DC0_H0_VM0', 0.5)
    guest.auth_manager.ValidateCredentialsInGuest(guest.vm, guest.auth)
    thread.join(30)
    assert 'result' in outcome, outcome
    Disconnect(service_instance)


def test_options_endpoint_validates_and_reset_restores(sim):
    for body in ({'no_such_option': True}, {'exclusive_guest_ops': 'yes'}):
        with pytest.raises(urllib.error.HTTPError) as info:
            sim.request('POST', '/guestsim/options', body)
        assert info.value.code == 400
    assert sim.set_options(exclusive_guest_ops=True) == {'exclusive_guest_ops': True}
    assert sim.state()['options'] == {'exclusive_guest_ops': True}
    sim.reset()
    assert sim.options() == {'exclusive_guest_ops': False}


def test_exclusive_fixture(guestsim_exclusive):
    assert guestsim_exclusive.options()['exclusive_guest_ops'] is True


def test_exclusive_guest_ops_command_line_flag(tmp_path):
    from guestsim import Simulator  # pylint: disable=import-outside-toplevel
    from guestsim.__main__ import parse_args  # pylint: disable=import-outside-toplevel
    args = parse_args(['--exclusive-guest-ops', '--control-port', '-1'])
    assert args.exclusive_guest_ops is True and args.control_port == -1
    assert parse_args([]).exclusive_guest_ops is False and parse_args([]).control_port == 0
    simulator = Simulator(port=0, state_dir=str(tmp_path), exclusive_guest_ops=True, control_port=None)
    try:
        assert simulator.service.options_snapshot() == {'exclusive_guest_ops': True}
        simulator.service.reset()  # reset restores the start-up value, not false
        assert simulator.service.options_snapshot() == {'exclusive_guest_ops': True}
    finally:
        simulator.stop()
