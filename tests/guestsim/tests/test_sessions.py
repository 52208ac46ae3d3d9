"""Sessions: Login, InvalidLogin, Logout -> NotAuthenticated, currentSession, SessionIsActive."""

from __future__ import annotations

import json
import ssl

import pytest
from pyVim.connect import Disconnect, SmartConnect
from pyVmomi import vim


def test_invalid_login(sim):
    context = ssl.create_default_context(cafile=sim.ca_file)
    with pytest.raises(vim.fault.InvalidLogin) as info:
        SmartConnect(host=sim.host, port=sim.port, user='user', pwd='wrong', sslContext=context)
    assert info.value.msg == 'Cannot complete login due to an incorrect user name or password.'
    with pytest.raises(vim.fault.InvalidLogin):
        SmartConnect(host=sim.host, port=sim.port, user='nobody', pwd='simpass', sslContext=context)


def test_current_session_and_state(sim, si):
    session = si.content.sessionManager.currentSession
    assert session.userName == 'user'
    assert session.key
    assert si.content.sessionManager.SessionIsActive(session.key, 'user') is True
    assert si.content.sessionManager.SessionIsActive('no-such-key', 'user') is False
    assert session.key in [s.key for s in si.content.sessionManager.sessionList]
    state = sim.state()
    assert any(s['user'] == 'user' for s in state['sessions'])
    text = repr(state)
    assert session.key not in text
    assert 'simpass' not in text and 'guestpass' not in text


def test_current_time(si):
    assert si.CurrentTime().tzinfo is not None


def test_not_authenticated_after_logout(sim):
    service_instance = sim.connect()
    content = service_instance.RetrieveContent()
    vm = content.searchIndex.FindByInventoryPath('DC0/vm/DC0_H0_VM0')
    Disconnect(service_instance)
    with pytest.raises(vim.fault.NotAuthenticated) as info:
        vm.name  # pylint: disable=pointless-statement
    assert info.value.msg == 'The session is not authenticated.'
    assert info.value.privilegeId == 'System.View'
    with pytest.raises(vim.fault.NotAuthenticated):
        service_instance.CurrentTime()
    with pytest.raises(vim.fault.NotAuthenticated):
        content.guestOperationsManager.processManager.ListProcessesInGuest(
            vm, vim.vm.guest.NamePasswordAuthentication(username='root', password='guestpass'), None)
    # Anonymous reads that real vCenter allows still work: the content and an unset currentSession.
    assert service_instance.RetrieveContent().about.name == 'VMware vCenter Server'
    assert content.sessionManager.currentSession is None


def test_unauthenticated_session_cannot_call_methods(sim):
    context = ssl.create_default_context(cafile=sim.ca_file)
    from pyVmomi import SoapStubAdapter  # pylint: disable=import-outside-toplevel
    stub = SoapStubAdapter(host=sim.host, port=sim.port, version='vim.version.v8_0_3_0', sslContext=context)
    service_instance = vim.ServiceInstance('ServiceInstance', stub)
    content = service_instance.RetrieveContent()
    with pytest.raises(vim.fault.NotAuthenticated):
        content.rootFolder.childEntity  # pylint: disable=pointless-statement
    with pytest.raises(vim.fault.NotAuthenticated):
        content.searchIndex.FindByInventoryPath('DC0')


def test_relogin_after_logout(sim):
    service_instance = sim.connect()
    manager = service_instance.content.sessionManager
    manager.Logout()
    manager.Login('user', 'simpass')
    assert manager.currentSession.userName == 'user'
    Disconnect(service_instance)


def test_only_anonymous_properties_without_a_session(sim):
    service_instance = sim.connect()
    content = service_instance.RetrieveContent()
    Disconnect(service_instance)
    assert service_instance.content.rootFolder._moId == 'group-d1'  # pylint: disable=protected-access
    assert content.sessionManager.currentSession is None
    with pytest.raises(vim.fault.NotAuthenticated):
        service_instance.serverClock  # pylint: disable=pointless-statement
    with pytest.raises(vim.fault.NotAuthenticated):
        content.sessionManager.sessionList  # pylint: disable=pointless-statement


def test_state_never_shows_cookies_or_transfer_tokens(sim, guest):
    base = guest.temp_dir()
    url = guest.files.InitiateFileTransferToGuest(guest.vm, guest.auth, base + '/f',
                                                  vim.vm.guest.FileManager.PosixFileAttributes(), 1, True)
    token = url.split('token=', 1)[1]
    text = json.dumps(sim.state())
    assert token not in text
    assert guest.si._stub.cookie.split('"')[1] not in text  # pylint: disable=protected-access
    assert 'guestpass' not in text and 'simpass' not in text
    guest.files.DeleteDirectoryInGuest(guest.vm, guest.auth, base, True)


def test_verbose_log_names_calls_and_never_secrets(sim, caplog):
    import logging  # pylint: disable=import-outside-toplevel
    caplog.set_level(logging.INFO, logger='guestsim')
    service_instance = sim.connect()
    content = service_instance.RetrieveContent()
    vm = content.searchIndex.FindByInventoryPath('DC0/vm/DC0_H0_VM0')
    auth = vim.vm.guest.NamePasswordAuthentication(username='root', password='guestpass')
    files = content.guestOperationsManager.fileManager
    base = files.CreateTemporaryDirectoryInGuest(vm, auth, 'log-', '')
    url = files.InitiateFileTransferToGuest(vm, auth, base + '/f', vim.vm.guest.FileManager.PosixFileAttributes(),
                                            1, True)
    with pytest.raises(vim.fault.InvalidGuestLogin):
        files.ListFilesInGuest(vm, vim.vm.guest.NamePasswordAuthentication(username='root', password='wrong'), base)
    key = content.sessionManager.currentSession.key
    files.DeleteDirectoryInGuest(vm, auth, base, True)
    Disconnect(service_instance)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith('soap ')]
    text = '\n'.join(lines)
    assert any(line.startswith('soap Login ') and 'login_user=user' in line and '-> ok UserSession' in line
               for line in lines)
    assert any(line.startswith('soap InitiateFileTransferToGuest ') and 'vm=DC0_H0_VM0' in line
               and 'guest_user=root' in line and '-> ok str' in line for line in lines)
    assert any(line.startswith('soap ListFilesInGuest ') and '-> fault InvalidGuestLogin' in line for line in lines)
    assert 'soap Fetch on ' in text and 'prop=' in text
    for secret in ('simpass', 'guestpass', 'wrong', key, url.split('token=', 1)[1],
                   service_instance._stub.cookie.split('"')[1]):  # pylint: disable=protected-access
        assert secret not in text
