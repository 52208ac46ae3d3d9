"""What the Linux guest agent (open-vm-tools vmtoolsd) does: when exit codes appear, Tools restarts,
the full process list, the service environment, upload attributes."""

from __future__ import annotations

import os
import stat
import time
import urllib.error

import pytest
from pyVmomi import vim

from guestsim.guest import DEFAULT_PATH

from .conftest import guest_for

FM = vim.vm.guest.FileManager


def _until(predicate, timeout=30.0, what='condition'):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def test_exit_codes_appear_on_the_one_second_poll_and_are_reaped_at_listing(tmp_path):
    """A simulator with the agent's real 1-second poll (the shared one of this suite polls faster)."""
    from datetime import datetime  # pylint: disable=import-outside-toplevel

    from guestsim import Simulator  # pylint: disable=import-outside-toplevel
    from guestsim.testing import SimulatorHandle  # pylint: disable=import-outside-toplevel

    from .conftest import GuestClient  # pylint: disable=import-outside-toplevel
    with Simulator(port=0, state_dir=str(tmp_path), retention=2.0, control_port=None) as simulator:
        assert next(iter(simulator.service.guests.values())).exit_poll_interval == 1.0
        handle = SimulatorHandle(simulator)
        client = GuestClient(handle, handle.connect(), 'DC0_H0_VM0',
                             vim.vm.guest.NamePasswordAuthentication(username='root', password='guestpass'))
        before = time.monotonic()
        pid = client.start('/bin/true')
        first = client.info(pid)
        if time.monotonic() - before < 0.9:
            # /bin/true has long exited, but the agent has not polled yet (SECONDS_BETWEEN_POLL_TEST_FINISHED).
            assert first.endTime is None and first.exitCode is None
        # Wait through the state endpoint, which (unlike a listing) does not reap.
        entry = _until(lambda: next((p for p in handle.state()['processes'] if p['pid'] == pid and 'exitCode' in p),
                                    None), what='no exit code')
        # Never before the first poll, one second after the start.
        assert time.monotonic() - before >= 1.0
        info = client.info(pid)
        assert info.exitCode == 0 and info.endTime.microsecond == 0 and info.endTime >= info.startTime
        assert info.endTime == datetime.fromisoformat(entry['endTime'])
        # Dropped once endTime < now - retention (whole seconds, VixToolsUpdateStartedProgramList)...
        ended = info.endTime.timestamp()
        while time.time() < ended + 3.05:
            time.sleep(0.1)
        # ... but only when the agent looks: until a listing (or its 60 s timer) the record is still there.
        assert pid in [p['pid'] for p in handle.state()['processes']]
        assert client.info(pid) is None
        assert pid not in [p['pid'] for p in handle.state()['processes']]


def test_exit_code_is_late_on_the_shared_simulator_too(guest):
    poll = next(iter(guest.handle.simulator.service.guests.values())).exit_poll_interval
    before = time.monotonic()
    info = guest.run('/bin/true')
    assert time.monotonic() - before >= poll
    assert info.endTime.microsecond == 0


def _ready(client) -> bool:
    try:
        client.auth_manager.ValidateCredentialsInGuest(client.vm, client.auth)
        return True
    except vim.fault.GuestOperationsUnavailable:
        return False


def test_tools_restart_loses_records_and_keeps_programs_running(sim, si, auth):
    client = guest_for(sim, si, 'DC0_H0_VM1', auth)
    finished = client.run('/bin/true').pid
    running = client.start('/bin/sleep', '30')
    env_before = dict(v.split('=', 1) for v in client.processes.ReadEnvironmentVariableInGuest(
        client.vm, client.auth, None))
    agent_before = [p.pid for p in client.processes.ListProcessesInGuest(client.vm, client.auth, None)
                    if p.name == 'vmtoolsd']
    temp_before = client.files.CreateTemporaryFileInGuest(client.vm, client.auth, 'r', '', None)
    assert os.path.basename(os.path.dirname(temp_before)).startswith('vmware-root_%d-' % agent_before[0])
    answer = sim.restart_tools('DC0_H0_VM1', 60)
    assert answer['vms'][0]['name'] == 'DC0_H0_VM1' and answer['vms'][0]['records_dropped'] >= 2
    # Meanwhile Tools are not running and guest operations are unavailable.
    with pytest.raises(vim.fault.GuestOperationsUnavailable):
        client.processes.ListProcessesInGuest(client.vm, client.auth, None)
    assert client.vm.guest.toolsRunningStatus == 'guestToolsNotRunning'
    assert client.vm.guest.guestOperationsReady is False
    entry = next(v for v in sim.state()['vms'] if v['name'] == 'DC0_H0_VM1')
    assert entry['tools_restarting'] is True and entry['tools_running'] is False
    # Another restart during the restart starts its count again: 0 seconds brings Tools back now.
    assert sim.restart_tools('DC0_H0_VM1', 0)['vms'][0]['records_dropped'] == 0
    _until(lambda: _ready(client), what='Tools did not come back')
    assert client.vm.guest.toolsRunningStatus == 'guestToolsRunning'
    # Every record is gone: the finished program is unknown, the running one is an ordinary process now.
    assert client.processes.ListProcessesInGuest(client.vm, client.auth, [finished]) == []
    listed = client.processes.ListProcessesInGuest(client.vm, client.auth, [running])
    assert len(listed) == 1
    assert listed[0].name == 'sleep' and listed[0].cmdLine == '/bin/sleep 30' and listed[0].endTime is None
    assert any(p['pid'] == running and p['record'] is False for p in sim.state()['processes'])
    everything = client.processes.ListProcessesInGuest(client.vm, client.auth, None)
    assert running in [p.pid for p in everything]
    # A new vmtoolsd: a new pid and a new service environment.
    agent_after = [p.pid for p in everything if p.name == 'vmtoolsd']
    assert len(agent_after) == 1 and agent_after != agent_before
    # The new vmtoolsd makes a new safe temp directory (its pid is in the name).
    temp_after = client.files.CreateTemporaryFileInGuest(client.vm, client.auth, 'r', '', None)
    assert os.path.basename(os.path.dirname(temp_after)).startswith('vmware-root_%d-' % agent_after[0])
    for path in (temp_before, temp_after):
        client.files.DeleteFileInGuest(client.vm, client.auth, path)
    env_after = dict(v.split('=', 1) for v in client.processes.ReadEnvironmentVariableInGuest(
        client.vm, client.auth, None))
    assert env_after['INVOCATION_ID'] != env_before['INVOCATION_ID']
    # It can still be terminated; no exit code is ever recorded for it.
    client.processes.TerminateProcessInGuest(client.vm, client.auth, running)
    _until(lambda: client.processes.ListProcessesInGuest(client.vm, client.auth, [running]) == [],
           what='the program is still listed')


def test_tools_restart_can_end_programs_and_refuses_bad_requests(sim, si, auth):
    client = guest_for(sim, si, 'DC0_H0_VM1', auth)
    running = client.start('/bin/sleep', '30')
    sim.restart_tools('DC0_H0_VM1', 60, end_programs=True)
    sim.restart_tools('DC0_H0_VM1', 0)
    _until(lambda: _ready(client), what='Tools did not come back')
    _until(lambda: not os.path.exists('/proc/%d' % running) or
           open('/proc/%d/stat' % running, encoding='utf-8').read().rsplit(')', 1)[1].split()[0] == 'Z',
           what='the program survived end_programs')
    for name, body, code in (('DC0_H0_VM_OFF', {'seconds': 1}, 409), ('DC0_H0_VM_NOTOOLS', {'seconds': 1}, 409),
                             ('NO_SUCH_VM', {'seconds': 1}, 404), ('DC0_H0_VM1', {'seconds': -1}, 400),
                             ('DC0_H0_VM1', {'seconds': 1, 'other': 1}, 400)):
        with pytest.raises(urllib.error.HTTPError) as info:
            sim.request('POST', '/guestsim/vms/%s/tools-restart' % name, body)
        assert info.value.code == code, name


def test_list_processes_without_pids_lists_every_process(guest):
    pid = guest.start('/bin/sleep', '5')
    listed = guest.processes.ListProcessesInGuest(guest.vm, guest.auth, None)
    by_pid = {p.pid: p for p in listed}
    assert len(by_pid) == len(listed)
    # The started program: cmdLine "programPath" arguments, name the basename (vixTools.c).
    assert by_pid[pid].cmdLine == '"/bin/sleep" 5' and by_pid[pid].name == 'sleep' and by_pid[pid].owner == 'root'
    # System processes of every owner; names as ProcMgr_ListProcesses forms them.
    init = by_pid[1]
    assert (init.name, init.owner, init.cmdLine) == ('init', 'root', '/sbin/init')
    assert init.endTime is None and init.exitCode is None and init.startTime is not None
    owners = {p.owner for p in listed}
    assert {'root', 'messagebus', 'alice'} <= owners
    login_shell = next(p for p in listed if p.cmdLine == '-bash')
    assert login_shell.name == '-bash' and login_shell.owner == 'alice'
    sshd = next(p for p in listed if p.cmdLine == 'sshd: alice@pts/0')
    assert sshd.name == 'sshd: alice@pts/0'
    assert any(p.name == 'vmtoolsd' and p.cmdLine == '/usr/bin/vmtoolsd' for p in listed)
    # With pids: only those.
    assert [p.pid for p in guest.processes.ListProcessesInGuest(guest.vm, guest.auth, [1, pid])] == [pid, 1]
    guest.processes.TerminateProcessInGuest(guest.vm, guest.auth, pid)


def test_default_environment_is_the_agents_service_environment(guest):
    base = guest.temp_dir()
    pid = guest.start('/usr/bin/env', '> %s/env' % base)
    assert guest.wait(pid).exitCode == 0
    seen = dict(line.split('=', 1) for line in guest.download(base + '/env').decode().splitlines())
    read = dict(v.split('=', 1) for v in guest.processes.ReadEnvironmentVariableInGuest(guest.vm, guest.auth, None))
    # systemd's clean service environment (PATH, LANG, INVOCATION_ID, JOURNAL_STREAM) with only USER, HOME
    # and SHELL changed by the impersonation; no LOGNAME, no login scripts.
    assert set(read) == {'PATH', 'LANG', 'INVOCATION_ID', 'JOURNAL_STREAM', 'USER', 'HOME', 'SHELL'}
    assert read['USER'] == 'root' and read['SHELL'] == '/bin/bash' and read['PATH'] == DEFAULT_PATH
    assert read['HOME'].endswith('/home/root')
    for key, value in read.items():
        assert seen[key] == value, key
    assert 'LOGNAME' not in seen
    guest.files.DeleteDirectoryInGuest(guest.vm, guest.auth, base, True)


def test_upload_defaults_and_overwrite_drops_old_attributes(guest):
    base = guest.temp_dir()
    path = base + '/f'
    assert guest.upload(path, b'one', attributes=FM.PosixFileAttributes(permissions=0o755)).status_code == 200
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o755
    if os.geteuid() == 0:
        os.chown(path, 12345, 12345)
    # An overwrite with unset attributes: 0644, owned by the guest user (the simulator's uid), new content.
    assert guest.upload(path, b'two').status_code == 200
    st = os.stat(path)
    assert stat.S_IMODE(st.st_mode) == 0o644 and (st.st_uid, st.st_gid) == (os.geteuid(), os.getegid())
    assert guest.download(path) == b'two'
    guest.files.DeleteDirectoryInGuest(guest.vm, guest.auth, base, True)
