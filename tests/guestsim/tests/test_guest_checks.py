"""The common guest-operation checks, in vSphere's order, for every guest method."""

from __future__ import annotations

import time

import pytest
from pyVmomi import vim, vmodl

from guestsim import Simulator
from guestsim.testing import SimulatorHandle

from .conftest import GuestClient

FM = vim.vm.guest.FileManager
PM = vim.vm.guest.ProcessManager

# Every guest method with harmless arguments; the common checks fail before the operation runs.
CALLS = {
    'ValidateCredentialsInGuest': lambda g: g.auth_manager.ValidateCredentialsInGuest(g.vm, g.auth),
    'CreateTemporaryFileInGuest': lambda g: g.files.CreateTemporaryFileInGuest(g.vm, g.auth, 'a', ''),
    'CreateTemporaryDirectoryInGuest': lambda g: g.files.CreateTemporaryDirectoryInGuest(g.vm, g.auth, 'a', ''),
    'MakeDirectoryInGuest': lambda g: g.files.MakeDirectoryInGuest(g.vm, g.auth, '/nonexistent/x', False),
    'DeleteFileInGuest': lambda g: g.files.DeleteFileInGuest(g.vm, g.auth, '/nonexistent'),
    'DeleteDirectoryInGuest': lambda g: g.files.DeleteDirectoryInGuest(g.vm, g.auth, '/nonexistent', False),
    'MoveFileInGuest': lambda g: g.files.MoveFileInGuest(g.vm, g.auth, '/nonexistent', '/nonexistent2', False),
    'MoveDirectoryInGuest': lambda g: g.files.MoveDirectoryInGuest(g.vm, g.auth, '/nonexistent', '/nonexistent2'),
    'ChangeFileAttributesInGuest': lambda g: g.files.ChangeFileAttributesInGuest(
        g.vm, g.auth, '/nonexistent', FM.PosixFileAttributes()),
    'ListFilesInGuest': lambda g: g.files.ListFilesInGuest(g.vm, g.auth, '/'),
    'InitiateFileTransferToGuest': lambda g: g.files.InitiateFileTransferToGuest(
        g.vm, g.auth, '/nonexistent/x', FM.PosixFileAttributes(), 1, False),
    'InitiateFileTransferFromGuest': lambda g: g.files.InitiateFileTransferFromGuest(g.vm, g.auth, '/bin/sh'),
    'StartProgramInGuest': lambda g: g.processes.StartProgramInGuest(
        g.vm, g.auth, PM.ProgramSpec(programPath='/bin/true', arguments='')),
    'ListProcessesInGuest': lambda g: g.processes.ListProcessesInGuest(g.vm, g.auth, None),
    'TerminateProcessInGuest': lambda g: g.processes.TerminateProcessInGuest(g.vm, g.auth, 999999999),
    'ReadEnvironmentVariableInGuest': lambda g: g.processes.ReadEnvironmentVariableInGuest(g.vm, g.auth, None),
}


def _bad_auth():
    return vim.vm.guest.NamePasswordAuthentication(username='root', password='wrong')


@pytest.mark.parametrize('method', sorted(CALLS))
def test_common_checks_in_order(sim, si, auth, method):
    call = CALLS[method]
    # Powered off wins over bad credentials.
    off = GuestClient(sim, si, 'DC0_H0_VM_OFF', _bad_auth())
    with pytest.raises(vim.fault.InvalidPowerState) as info:
        call(off)
    assert info.value.msg == 'The attempted operation cannot be performed in the current state (Powered off).'
    assert info.value.existingState == 'poweredOff' and info.value.requestedState == 'poweredOn'
    # Tools not running wins over bad credentials.
    notools = GuestClient(sim, si, 'DC0_H0_VM_NOTOOLS', _bad_auth())
    with pytest.raises(vim.fault.GuestOperationsUnavailable) as info:
        call(notools)
    assert info.value.msg == 'The guest operations agent could not be contacted.'
    # Bad credentials on a ready VM.
    ready = GuestClient(sim, si, 'DC0_H0_VM0', _bad_auth())
    with pytest.raises(vim.fault.InvalidGuestLogin) as info:
        call(ready)
    assert info.value.msg == 'Failed to authenticate with the guest operating system using the supplied credentials.'
    # A VM that does not exist.
    ghost = GuestClient(sim, si, 'DC0_H0_VM0', auth)
    ghost.vm = vim.VirtualMachine('vm-424242', si._stub)  # pylint: disable=protected-access
    with pytest.raises(vmodl.fault.ManagedObjectNotFound):
        call(ghost)
    assert sim.state()['calls'][method] == 4


def test_interactive_session_needs_a_desktop(guest):
    guest.auth = vim.vm.guest.NamePasswordAuthentication(username='root', password='guestpass',
                                                         interactiveSession=True)
    with pytest.raises(vim.fault.GuestOperationsUnavailable):
        guest.auth_manager.ValidateCredentialsInGuest(guest.vm, guest.auth)


def test_validate_credentials(guest):
    assert guest.auth_manager.ValidateCredentialsInGuest(guest.vm, guest.auth) is None
    for auth in (vim.vm.guest.NamePasswordAuthentication(username='nobody', password='guestpass'),
                 vim.vm.guest.NamePasswordAuthentication(username='root', password=''),
                 vim.vm.guest.TicketedSessionAuthentication(ticket='x')):
        with pytest.raises(vim.fault.InvalidGuestLogin):
            guest.auth_manager.ValidateCredentialsInGuest(guest.vm, auth)


def test_power_control_and_slow_boot(tmp_path):
    inventory = tmp_path / 'inv.yml'
    inventory.write_text('vms:\n  - name: quick_boot\n    host: DC0_H0\n    ready_delay: 2\n')
    with Simulator(port=0, state_dir=str(tmp_path / 'state'), inventory_file=str(inventory)) as simulator:
        handle = SimulatorHandle(simulator)
        service_instance = handle.connect()
        guest = GuestClient(handle, service_instance, 'quick_boot',
                            vim.vm.guest.NamePasswordAuthentication(username='root', password='guestpass'))
        handle.power_off('quick_boot')
        assert guest.vm.runtime.powerState == 'poweredOff'
        with pytest.raises(vim.fault.InvalidPowerState):
            guest.auth_manager.ValidateCredentialsInGuest(guest.vm, guest.auth)
        handle.power_on('quick_boot')
        assert guest.vm.runtime.powerState == 'poweredOn'
        assert guest.vm.guest.guestOperationsReady is False
        with pytest.raises(vim.fault.GuestOperationsUnavailable):
            guest.auth_manager.ValidateCredentialsInGuest(guest.vm, guest.auth)
        deadline = time.monotonic() + 30
        while not guest.vm.guest.guestOperationsReady:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert guest.vm.guest.toolsRunningStatus == 'guestToolsRunning'
        guest.auth_manager.ValidateCredentialsInGuest(guest.vm, guest.auth)


def test_default_slow_boot_vm_is_not_ready_right_after_power_on(sim, si, auth):
    sim.power_on('DC0_H0_VM_SLOWBOOT')
    guest = GuestClient(sim, si, 'DC0_H0_VM_SLOWBOOT', auth)
    assert guest.vm.guest.guestOperationsReady is False
    with pytest.raises(vim.fault.GuestOperationsUnavailable):
        guest.auth_manager.ValidateCredentialsInGuest(guest.vm, guest.auth)


def test_power_off_ends_processes(sim, si, auth):
    guest = GuestClient(sim, si, 'DC0_H0_VM1', auth)
    pid = guest.start('/bin/sleep', '60')
    sim.power_off('DC0_H0_VM1')
    try:
        assert not [p for p in sim.state()['processes'] if p['pid'] == pid]
    finally:
        sim.power_on('DC0_H0_VM1')
