"""Fault injection rules: by method, VM, nth call, count, probability; delays; broken transfers."""

from __future__ import annotations

import time
import urllib.error

import pytest
import requests
from pyVmomi import vim


def test_transient_fault_on_nth_call(sim, guest):
    sim.add_fault(method='ListProcessesInGuest', vm='DC0_H0_VM0', fault='GuestOperationsUnavailable', nth=2, count=1)
    guest.processes.ListProcessesInGuest(guest.vm, guest.auth, None)
    with pytest.raises(vim.fault.GuestOperationsUnavailable) as info:
        guest.processes.ListProcessesInGuest(guest.vm, guest.auth, None)
    assert info.value.msg == 'The guest operations agent could not be contacted.'
    guest.processes.ListProcessesInGuest(guest.vm, guest.auth, None)
    assert sim.state()['calls']['ListProcessesInGuest'] == 3


def test_rules_filter_by_vm_and_count(sim, si, auth, guest):
    from .conftest import guest_for  # pylint: disable=import-outside-toplevel
    other = guest_for(sim, si, 'DC0_H0_VM1', auth)
    sim.add_fault(method='ValidateCredentialsInGuest', vm='DC0_H0_VM1', fault='InvalidGuestLogin', count=2)
    guest.auth_manager.ValidateCredentialsInGuest(guest.vm, guest.auth)
    for _attempt in range(2):
        with pytest.raises(vim.fault.InvalidGuestLogin):
            other.auth_manager.ValidateCredentialsInGuest(other.vm, other.auth)
    other.auth_manager.ValidateCredentialsInGuest(other.vm, other.auth)


def test_probability_and_unlimited_count(sim, guest):
    sim.add_fault(method='*', vm='DC0_H0_VM0', fault='SystemError', probability=0.0, count=None)
    for _attempt in range(3):
        guest.auth_manager.ValidateCredentialsInGuest(guest.vm, guest.auth)
    sim.clear_faults()
    sim.add_fault(method='ValidateCredentialsInGuest', fault='GuestComponentsOutOfDate', probability=1.0, count=None)
    for _attempt in range(3):
        with pytest.raises(vim.fault.GuestComponentsOutOfDate):
            guest.auth_manager.ValidateCredentialsInGuest(guest.vm, guest.auth)
    sim.reset()
    assert sim.state()['fault_rules'] == [] and sim.state()['calls'] == {}
    guest.auth_manager.ValidateCredentialsInGuest(guest.vm, guest.auth)


def test_delay(sim, guest):
    sim.add_fault(method='ListFilesInGuest', delay=0.5)
    started = time.monotonic()
    guest.files.ListFilesInGuest(guest.vm, guest.auth, '/')
    assert time.monotonic() - started >= 0.5


def test_injected_fault_comes_after_the_session_check(sim):
    service_instance = sim.connect()
    content = service_instance.RetrieveContent()
    content.sessionManager.Logout()
    sim.add_fault(method='FindByInventoryPath', fault='SystemError', count=None)
    with pytest.raises(vim.fault.NotAuthenticated):
        content.searchIndex.FindByInventoryPath('DC0')


def test_break_download_mid_stream(sim, guest):
    base = guest.temp_dir()
    assert guest.upload(base + '/big', b'x' * 300000).status_code == 200
    sim.add_fault(method='InitiateFileTransferFromGuest', break_transfer_after=1000)
    info = guest.files.InitiateFileTransferFromGuest(guest.vm, guest.auth, base + '/big')
    with pytest.raises(requests.exceptions.RequestException):
        response = requests.get(guest.url(info.url), verify=sim.ca_file, timeout=30)
        assert len(response.content) == info.size
    # The URL was not used up by the broken transfer.
    assert len(requests.get(guest.url(info.url), verify=sim.ca_file, timeout=30).content) == 300000
    guest.files.DeleteDirectoryInGuest(guest.vm, guest.auth, base, True)


def test_break_upload_mid_stream(sim, guest):
    base = guest.temp_dir()
    sim.add_fault(method='InitiateFileTransferToGuest', break_transfer_after=1000)
    with pytest.raises(requests.exceptions.RequestException):
        response = guest.upload(base + '/f', b'y' * 3000000)
        assert response.status_code == 200
    with open(base + '/f', 'rb') as handle:
        assert len(handle.read()) == 1000
    guest.files.DeleteDirectoryInGuest(guest.vm, guest.auth, base, True)


def test_bad_rules_are_rejected(sim):
    for rule in ({'fault': 'NoSuchFault'}, {'method': 'X'}, {'fault': 'SystemError', 'nth': 0},
                 {'fault': 'SystemError', 'colour': 'red'}):
        with pytest.raises(urllib.error.HTTPError) as info:
            sim.request('POST', '/guestsim/faults', rule)
        assert info.value.code == 400


def test_rules_only_inject_faults_the_method_can_raise(sim, guest):
    # An explicit method with a fault vSphere never raises from it is refused ...
    for rule in ({'method': 'ListProcessesInGuest', 'fault': 'FileNotFound'},
                 {'method': 'ReadEnvironmentVariableInGuest', 'fault': 'CannotAccessFile'},
                 {'method': 'Login', 'fault': 'GuestOperationsUnavailable'},
                 {'method': 'NoSuchMethod', 'fault': 'SystemError'}):
        with pytest.raises(urllib.error.HTTPError) as info:
            sim.request('POST', '/guestsim/faults', rule)
        assert info.value.code == 400
    # ... and a wildcard rule leaves such methods alone: no guest fault from property reads or the clock,
    sim.add_fault(method='*', fault='GuestOperationsUnavailable', count=None)
    assert guest.vm.name == 'DC0_H0_VM0'
    assert guest.si.CurrentTime() is not None
    with pytest.raises(vim.fault.GuestOperationsUnavailable):
        guest.processes.ListProcessesInGuest(guest.vm, guest.auth, None)
    sim.clear_faults()
    # and no FileFault from the process methods that do not declare it.
    sim.add_fault(method='*', vm='DC0_H0_VM0', fault='FileNotFound', count=None)
    guest.processes.ListProcessesInGuest(guest.vm, guest.auth, None)
    guest.processes.ReadEnvironmentVariableInGuest(guest.vm, guest.auth, ['PATH'])
    with pytest.raises(vim.fault.GuestProcessNotFound):
        guest.processes.TerminateProcessInGuest(guest.vm, guest.auth, 999999999)
    with pytest.raises(vim.fault.FileNotFound):
        guest.files.ListFilesInGuest(guest.vm, guest.auth, '/')


def test_real_checks_come_before_an_injected_fault(sim, si, auth):
    from .conftest import guest_for  # pylint: disable=import-outside-toplevel
    off = guest_for(sim, si, 'DC0_H0_VM_OFF', auth)
    sim.add_fault(method='ValidateCredentialsInGuest', fault='GuestComponentsOutOfDate', count=None)
    with pytest.raises(vim.fault.InvalidPowerState):
        off.auth_manager.ValidateCredentialsInGuest(off.vm, off.auth)
    ready = guest_for(sim, si, 'DC0_H0_VM0', vim.vm.guest.NamePasswordAuthentication(username='root', password='x'))
    with pytest.raises(vim.fault.InvalidGuestLogin):
        ready.auth_manager.ValidateCredentialsInGuest(ready.vm, ready.auth)
    ready.auth = auth
    with pytest.raises(vim.fault.GuestComponentsOutOfDate):
        ready.auth_manager.ValidateCredentialsInGuest(ready.vm, ready.auth)
