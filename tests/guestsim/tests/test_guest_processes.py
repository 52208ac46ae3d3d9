"""GuestProcessManager: start, list, terminate, environment, exit-code retention, noexec temp root."""

from __future__ import annotations

import os
import time

import pytest
from pyVmomi import vim

from guestsim import Simulator
from guestsim.guest import _proc_stat
from guestsim.testing import SimulatorHandle

from .conftest import GuestClient


def test_start_with_redirection_env_and_cwd(guest):
    base = guest.temp_dir()
    pid = guest.start('/bin/echo', 'hello "$GREETING" > %s/out.txt; pwd >> %s/out.txt' % (base, base),
                      cwd=base, env=['GREETING=world', 'PATH=/usr/bin:/bin'])
    info = guest.wait(pid)
    assert info.exitCode == 0
    assert guest.download(base + '/out.txt') == ('hello world\n%s\n' % base).encode()
    assert info.name == 'echo'
    assert info.owner == 'root'
    assert info.cmdLine.startswith('"/bin/echo" hello')
    assert info.startTime <= info.endTime
    guest.files.DeleteDirectoryInGuest(guest.vm, guest.auth, base, True)


def test_pid_is_the_programs_and_default_cwd_is_home(sim, guest):
    base = guest.temp_dir()
    pid = guest.start('/bin/sh', "-c 'echo $$ > %s/pid; pwd > %s/cwd; env > %s/env'" % (base, base, base))
    assert guest.wait(pid).exitCode == 0
    assert int(guest.download(base + '/pid')) == pid
    home = os.path.join(sim.state_dir, 'vms', guest.vm._moId, 'home', 'root')  # pylint: disable=protected-access
    assert guest.download(base + '/cwd').decode().strip() == home
    env = dict(line.split('=', 1) for line in guest.download(base + '/env').decode().splitlines() if '=' in line)
    assert env['HOME'] == home and env['USER'] == 'root'
    guest.files.DeleteDirectoryInGuest(guest.vm, guest.auth, base, True)


def test_env_variables_replace_the_environment(guest):
    base = guest.temp_dir()
    pid = guest.start('/usr/bin/env', '> %s/env' % base, env=['ONLY=1'])
    assert guest.wait(pid).exitCode == 0
    lines = set(guest.download(base + '/env').decode().splitlines())
    assert 'ONLY=1' in lines and not any(line.startswith('HOME=') for line in lines)
    guest.files.DeleteDirectoryInGuest(guest.vm, guest.auth, base, True)


def test_exit_codes(guest):
    assert guest.run('/bin/sh', "-c 'exit 42'").exitCode == 42
    assert guest.run('/bin/false').exitCode == 1


def test_program_path_faults(guest):
    with pytest.raises(vim.fault.FileNotFound) as info:
        guest.start('ls', '-l')
    assert info.value.msg == 'File ls was not found' and info.value.file == 'ls'
    with pytest.raises(vim.fault.FileNotFound):
        guest.start('/no/such/program')
    base = guest.temp_dir()
    assert guest.upload(base + '/script.sh', b'#!/bin/sh\necho hi\n').status_code == 200
    with pytest.raises(vim.fault.GuestPermissionDenied):
        guest.start(base + '/script.sh')
    with pytest.raises(vim.fault.NotADirectory):
        guest.start('/bin/true', '', cwd=base + '/missing')
    guest.files.ChangeFileAttributesInGuest(guest.vm, guest.auth, base + '/script.sh',
                                            vim.vm.guest.FileManager.PosixFileAttributes(permissions=0o755))
    assert guest.run(base + '/script.sh').exitCode == 0
    guest.files.DeleteDirectoryInGuest(guest.vm, guest.auth, base, True)


def test_list_processes(sim, guest):
    pid = guest.start('/bin/sleep', '30')
    try:
        info = guest.info(pid)
        assert info.endTime is None and info.exitCode is None
        assert guest.processes.ListProcessesInGuest(guest.vm, guest.auth, [999999999]) == []
        listed = guest.processes.ListProcessesInGuest(guest.vm, guest.auth, None)
        assert pid in [p.pid for p in listed]
        running = [p for p in sim.state()['processes'] if p['pid'] == pid]
        assert running and running[0]['running'] is True and running[0]['vm'] == 'DC0_H0_VM0'
    finally:
        guest.processes.TerminateProcessInGuest(guest.vm, guest.auth, pid)


def test_children_of_started_programs_are_listed_and_terminable(guest):
    base = guest.temp_dir()
    pid = guest.start('/bin/sh', "-c '/bin/sleep 60 & echo $! > %s/child; wait'" % base)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        listing = guest.files.ListFilesInGuest(guest.vm, guest.auth, base, None, None, '^child$')
        if listing.files and listing.files[0].size > 0:
            break
        time.sleep(0.05)
    child = int(guest.download(base + '/child'))
    found = guest.processes.ListProcessesInGuest(guest.vm, guest.auth, [child])
    assert found and found[0].name == 'sleep' and found[0].endTime is None
    guest.processes.TerminateProcessInGuest(guest.vm, guest.auth, child)
    info = guest.wait(pid)
    assert info.exitCode is not None
    guest.files.DeleteDirectoryInGuest(guest.vm, guest.auth, base, True)


def test_terminate_process(guest):
    pid = guest.start('/bin/sleep', '60')
    guest.processes.TerminateProcessInGuest(guest.vm, guest.auth, pid)
    info = guest.wait(pid)
    # Killed by SIGTERM: the Linux agent reports WEXITSTATUS, i.e. 0.
    assert info.exitCode == 0 and info.endTime is not None
    with pytest.raises(vim.fault.GuestProcessNotFound) as exc:
        guest.processes.TerminateProcessInGuest(guest.vm, guest.auth, pid)
    assert exc.value.pid == pid
    # The guest's system processes (pid 1, ...) are listed but cannot be ended; an unknown pid is not found.
    with pytest.raises(vim.fault.GuestPermissionDenied):
        guest.processes.TerminateProcessInGuest(guest.vm, guest.auth, 1)
    unknown = 4000000
    while os.path.exists('/proc/%d' % unknown):
        unknown += 1
    with pytest.raises(vim.fault.GuestProcessNotFound):
        guest.processes.TerminateProcessInGuest(guest.vm, guest.auth, unknown)


def test_terminate_escalates_to_sigkill(guest):
    base = guest.temp_dir()
    marker = base + '/trapped'
    pid = guest.start('/bin/sh', "-c 'trap \"\" TERM; : > %s; while :; do sleep 1; done'" % marker)
    deadline = time.monotonic() + 30
    while not os.path.exists(marker):  # the shell has installed its trap once the marker exists
        assert time.monotonic() < deadline
        time.sleep(0.05)
    started = time.monotonic()
    guest.processes.TerminateProcessInGuest(guest.vm, guest.auth, pid)
    assert time.monotonic() - started >= 4.0
    # The agent notices the exit on its next 1-second poll.
    assert guest.wait(pid, timeout=10).endTime is not None
    guest.files.DeleteDirectoryInGuest(guest.vm, guest.auth, base, True)


def test_read_environment_variables(guest):
    values = guest.processes.ReadEnvironmentVariableInGuest(guest.vm, guest.auth, ['PATH', 'NOT_SET', 'USER'])
    assert values[0].startswith('PATH=/') and values[1] == 'USER=root' and len(values) == 2
    everything = guest.processes.ReadEnvironmentVariableInGuest(guest.vm, guest.auth, None)
    assert any(v.startswith('HOME=') for v in everything)


def test_noexec_temp_root(sim, si, auth):
    guest = GuestClient(sim, si, 'DC0_H0_VM_NOEXEC', auth)
    base = guest.temp_dir()
    script = base + '/run.sh'
    attributes = vim.vm.guest.FileManager.PosixFileAttributes(permissions=0o755)
    assert guest.upload(script, b'#!/bin/sh\necho ran\n', attributes=attributes).status_code == 200
    # Starting it directly: access(X_OK) fails on a noexec mount.
    with pytest.raises(vim.fault.GuestPermissionDenied):
        guest.start(script)
    # Through an interpreter it works.
    info = guest.run('/bin/sh', '%s > %s/out' % (script, base))
    assert info.exitCode == 0 and guest.download(base + '/out') == b'ran\n'
    # Executed from a shell: exit 126, "Permission denied".
    info = guest.run('/bin/sh', "-c '%s' 2> %s/err" % (script, base))
    assert info.exitCode == 126
    assert b'Permission denied' in guest.download(base + '/err')
    # Other VMs are not affected.
    normal = GuestClient(sim, si, 'DC0_H0_VM0', auth)
    other = normal.temp_dir()
    assert normal.upload(other + '/run.sh', b'#!/bin/sh\necho ran\n', attributes=attributes).status_code == 200
    assert normal.run(other + '/run.sh').exitCode == 0
    guest.files.DeleteDirectoryInGuest(guest.vm, guest.auth, base, True)
    normal.files.DeleteDirectoryInGuest(normal.vm, normal.auth, other, True)


def test_emulated_noexec(tmp_path):
    with Simulator(port=0, state_dir=str(tmp_path), allow_noexec_mount=False, exit_poll_interval=0.1) as simulator:
        handle = SimulatorHandle(simulator)
        guest = GuestClient(handle, handle.connect(), 'DC0_H0_VM_NOEXEC',
                            vim.vm.guest.NamePasswordAuthentication(username='root', password='guestpass'))
        base = guest.temp_dir()
        attributes = vim.vm.guest.FileManager.PosixFileAttributes(permissions=0o755)
        assert guest.upload(base + '/run.sh', b'#!/bin/sh\necho ran\n', attributes=attributes).status_code == 200
        with pytest.raises(vim.fault.GuestPermissionDenied):
            guest.start(base + '/run.sh')
        info = guest.run('/bin/sh', "-c '%s' 2> %s/err" % (base + '/run.sh', base))
        assert info.exitCode == 126
        assert guest.run('/bin/sh', base + '/run.sh').exitCode == 0


def test_working_directory_that_is_a_file(guest):
    some_file = guest.files.CreateTemporaryFileInGuest(guest.vm, guest.auth, 'cwd', '')
    with pytest.raises(vim.fault.NotADirectory) as info:
        guest.start('/bin/true', '', cwd=some_file)
    assert info.value.file == some_file
    # An empty working directory means "unset": the user's home.
    assert guest.run('/bin/true', '', cwd='').exitCode == 0
    guest.files.DeleteFileInGuest(guest.vm, guest.auth, some_file)


def _background_child(guest) -> int:
    """Start a program that leaves a background job behind and exits; returns the job's pid."""
    parent = guest.start('/bin/sh', "-c '/bin/sleep 600 > /dev/null 2>&1 & exit 0'")
    guest.wait(parent)
    children = [p for p in guest.processes.ListProcessesInGuest(guest.vm, guest.auth, None)
                if p.pid != parent and p.endTime is None and p.cmdLine == '/bin/sleep 600']
    assert len(children) == 1
    return children[0].pid


def _wait_gone(pid: int):
    deadline = time.monotonic() + 30
    while _proc_stat(pid) is not None:
        assert time.monotonic() < deadline, 'process %d survived' % pid
        time.sleep(0.05)


def test_power_off_and_shutdown_end_background_jobs(tmp_path):
    simulator = Simulator(port=0, state_dir=str(tmp_path), exit_poll_interval=0.1).start()
    try:
        handle = SimulatorHandle(simulator)
        guest = GuestClient(handle, handle.connect(), 'DC0_H0_VM0',
                            vim.vm.guest.NamePasswordAuthentication(username='root', password='guestpass'))
        orphan = _background_child(guest)
        handle.power_off('DC0_H0_VM0')
        _wait_gone(orphan)
        handle.power_on('DC0_H0_VM0')
        orphan = _background_child(guest)
    finally:
        simulator.stop()
    _wait_gone(orphan)
