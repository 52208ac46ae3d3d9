# -*- coding: utf-8 -*-
# Copyright (c) guestops.vsphere contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import http.client
import socket
import ssl
from unittest import mock

import pytest

from pyVmomi import vim, vmodl  # noqa: E402

from ansible_collections.guestops.vsphere.plugins.module_utils import _vsphere  # noqa: E402
from ansible_collections.guestops.vsphere.plugins.module_utils._vsphere import (  # noqa: E402
    Inventory,
    InventoryEntry,
    VirtualMachine,
    VSphereError,
    VSphereSession,
    _folder_matches,
    choose_vm,
    describe_fault,
    step_error,
    vsphere_argument_spec,
)
from ansible_collections.guestops.vsphere.tests.unit.plugins.fake_clock import FakeClock  # noqa: E402

CTX = dict(host='vc.example.com', port=443, username='admin@vsphere.local', guest_username='root', path='/tmp/x')


# --------------------------------------------------------------------------- fault messages

@pytest.mark.parametrize('fault, expected', [
    (vim.fault.InvalidLogin(), "rejected the login of user 'admin@vsphere.local'"),
    (vim.fault.NotAuthenticated(), 'not authenticated'),
    (vim.fault.NoPermission(privilegeId='VirtualMachine.GuestOperations.Execute'),
     'lacks the privilege VirtualMachine.GuestOperations.Execute'),
    (vim.fault.InvalidPowerState(existingState='poweredOff'), 'the VM is poweredOff'),
    (vim.fault.GuestOperationsUnavailable(), 'could not be contacted'),
    (vim.fault.InvalidGuestLogin(), "rejected the login of guest user 'root'"),
    (vim.fault.GuestPermissionDenied(), "guest user 'root' is not permitted"),
    (vim.fault.GuestComponentsOutOfDate(), 'too old'),
    (vim.fault.OperationDisabledByGuest(), 'tools.conf'),
    (vim.fault.OperationNotSupportedByGuest(), 'does not support'),
    (vim.fault.TooManyGuestLogons(), 'too many concurrent'),
    (vim.fault.GuestProcessNotFound(pid=42), 'process 42 does not exist'),
    (vim.fault.TaskInProgress(), 'busy'),
    (vim.fault.FileNotFound(file='/bin/nope'), "'/bin/nope' was not found"),
    (vim.fault.FileNotFound(), "'/tmp/x' was not found"),
    (vim.fault.CannotAccessFile(file='/root/x'), "'/root/x' cannot be accessed"),
    (vim.fault.FileAlreadyExists(file='/a'), 'already exists'),
    (vim.fault.NotAFile(file='/a'), 'not a regular file'),
    (vim.fault.NotADirectory(file='/a'), 'not a directory'),
    (vim.fault.DirectoryNotEmpty(file='/a'), 'not empty'),
    (vim.fault.NoDiskSpace(file='/a'), 'full'),
    (vim.fault.FileTooLarge(file='/a'), 'too large'),
    (vim.fault.FileNameTooLong(file='/a'), 'too long'),
    (vim.fault.FileLocked(file='/a'), 'FileLocked'),
    (vmodl.fault.ManagedObjectNotFound(), 'no longer exists'),
    (vmodl.fault.InvalidArgument(invalidProperty='matchPattern'), "parameter 'matchPattern'"),
    (vim.fault.InvalidState(), 'does not allow'),
    (vmodl.fault.SystemError(reason='vix error codes = (1, 0).'), 'vix error codes'),
    (vmodl.fault.MethodNotFound(), 'does not implement'),
    (ssl.SSLCertVerificationError(1, 'certificate verify failed'), 'validate_certs=false'),
    (ssl.SSLError(1, 'wrong version number'), 'TLS handshake'),
    (ConnectionRefusedError(111, 'Connection refused'), "'vc.example.com:443' was refused"),
    (socket.gaierror(-2, 'Name or service not known'), "'vc.example.com' cannot be resolved"),
    (socket.timeout('timed out'), 'did not answer in time'),
    (OSError(113, 'No route to host'), 'unreachable'),
    (http.client.BadStatusLine('x'), 'unexpected HTTP response'),
    (ValueError('odd'), 'ValueError: odd'),
])
def test_describe_fault(fault, expected):
    assert expected in describe_fault(fault, **CTX)


def test_step_error_names_step_and_vm():
    err = step_error('Starting the program', vim.fault.InvalidGuestLogin(), vm_name='web01', **CTX)
    assert err.msg.startswith("Starting the program failed for VM 'web01': the guest OS rejected")
    assert err.fault_name == 'InvalidGuestLogin'


def test_messages_never_contain_the_password():
    msg = describe_fault(vim.fault.InvalidLogin(msg='bad'), host='h', port=1, username='u')
    assert 'secret' not in msg


# --------------------------------------------------------------------------- arguments

def test_argument_spec_env_fallbacks_and_no_log():
    spec = vsphere_argument_spec()
    assert spec['hostname']['fallback'][1] == ['VMWARE_HOST']
    assert spec['password']['no_log'] is True
    assert spec['guest_password']['no_log'] is True
    assert spec['guest_username']['fallback'][1] == ['VMWARE_GUEST_USERNAME']
    assert spec['validate_certs']['default'] is True
    assert 'guest_username' not in vsphere_argument_spec(guest_login=False)


# --------------------------------------------------------------------------- lookup

def _entry(moid, name, parent, kind):
    klass = {'Folder': vim.Folder, 'Datacenter': vim.Datacenter, 'VirtualMachine': vim.VirtualMachine}[kind]
    return InventoryEntry(klass(moid), name, parent, kind)


@pytest.fixture
def inventory():
    return Inventory([
        _entry('group-d1', 'Datacenters', None, 'Folder'),
        _entry('dc-1', 'DC0', 'group-d1', 'Datacenter'),
        _entry('group-v1', 'vm', 'dc-1', 'Folder'),
        _entry('group-f0', 'F0', 'group-v1', 'Folder'),
        _entry('group-f1', 'F1', 'group-v1', 'Folder'),
        _entry('vm-1', 'DC0_H0_VM0', 'group-v1', 'VirtualMachine'),
        _entry('vm-2', 'DUP_VM', 'group-f0', 'VirtualMachine'),
        _entry('vm-3', 'DUP_VM', 'group-f1', 'VirtualMachine'),
        _entry('group-x', 'Lab', 'group-d1', 'Folder'),
        _entry('dc-2', 'DC1', 'group-x', 'Datacenter'),
        _entry('group-v2', 'vm', 'dc-2', 'Folder'),
        _entry('vm-4', 'DC0_H0_VM0', 'group-v2', 'VirtualMachine'),
    ], root_moid='group-d1')


def test_inventory_paths(inventory):
    assert inventory.path('vm-2') == '/DC0/vm/F0/DUP_VM'
    assert inventory.path('vm-4') == '/Lab/DC1/vm/DC0_H0_VM0'
    assert inventory.datacenter('vm-4') == ('DC1', '/Lab/DC1')


@pytest.mark.parametrize('folder, expected', [
    ('/DC0/vm/F0', 'vm-2'),
    ('/DC0/vm/F0/', 'vm-2'),
    ('/vm/F1', 'vm-3'),
    ('F1', 'vm-3'),
    ('vm/F0', 'vm-2'),
    ('DC0/vm/F0', 'vm-2'),
])
def test_folder_disambiguates(inventory, folder, expected):
    assert choose_vm(inventory, 'DUP_VM', folder=folder).ref._moId == expected


def test_ambiguous_name_lists_candidates(inventory):
    with pytest.raises(VSphereError) as info:
        choose_vm(inventory, 'DUP_VM')
    msg = info.value.msg
    assert "ambiguous, 2 VMs match" in msg
    assert '/DC0/vm/F0/DUP_VM (vm-2)' in msg and '/DC0/vm/F1/DUP_VM (vm-3)' in msg
    assert 'uuid or moid' in msg


def test_datacenter_disambiguates(inventory):
    assert choose_vm(inventory, 'DC0_H0_VM0', datacenter='DC1').ref._moId == 'vm-4'
    assert choose_vm(inventory, 'DC0_H0_VM0', datacenter='DC0').ref._moId == 'vm-1'


def test_narrowed_to_nothing_lists_all_of_that_name(inventory):
    with pytest.raises(VSphereError) as info:
        choose_vm(inventory, 'DUP_VM', folder='F9')
    assert "no VM named 'DUP_VM' in folder 'F9'" in info.value.msg
    assert '/DC0/vm/F0/DUP_VM' in info.value.msg


def test_missing_vm(inventory):
    with pytest.raises(VSphereError) as info:
        choose_vm(inventory, 'nope', username='u')
    assert "no VM named 'nope' is visible to user 'u' (4 VMs searched)" in info.value.msg


@pytest.mark.parametrize('folder, path, dc_path, expected', [
    ('F0', '/DC0/vm/F0', '/DC0', True),
    ('F', '/DC0/vm/F0', '/DC0', False),
    ('/F0', '/DC0/vm/F0', '/DC0', False),
    ('/', '/DC0/vm', '/DC0', False),
    ('vm', '/DC0/vm', '/DC0', True),
    ('/vm', '/DC0/vm', '/DC0', True),
    ('F0', None, None, False),
])
def test_folder_matches(folder, path, dc_path, expected):
    assert _folder_matches(folder, path, dc_path) is expected


# --------------------------------------------------------------------------- VM facts

@pytest.mark.parametrize('props, expected', [
    ({'runtime.powerState': 'poweredOn', 'guest.toolsRunningStatus': 'guestToolsRunning',
      'guest.guestOperationsReady': True}, None),
    ({'runtime.powerState': 'poweredOff'}, 'is poweredOff'),
    ({'runtime.powerState': 'poweredOn', 'guest.toolsVersionStatus2': 'guestToolsNotInstalled'}, 'not installed'),
    ({'runtime.powerState': 'poweredOn', 'guest.toolsRunningStatus': 'guestToolsNotRunning'}, 'not running'),
    ({'runtime.powerState': 'poweredOn', 'guest.toolsRunningStatus': 'guestToolsRunning',
      'guest.guestOperationsReady': False}, 'not ready'),
])
def test_readiness_problem(props, expected):
    props = dict(props, name='web01')
    problem = VirtualMachine(vim.VirtualMachine('vm-1'), props).readiness_problem()
    if expected is None:
        assert problem is None
    else:
        assert expected in problem and "'web01'" in problem


# --------------------------------------------------------------------------- session

def test_connect_maps_bad_login_and_drops_password():
    session = VSphereSession('vc', 'u', 'secret', 443, True)
    with mock.patch.object(_vsphere, 'login', side_effect=vim.fault.InvalidLogin()) as connect:
        with pytest.raises(VSphereError) as info:
            session.connect()
    assert connect.call_args.kwargs['pwd'] == 'secret'
    assert info.value.msg.startswith("Connecting to vCenter/ESXi 'vc:443' failed: vCenter/ESXi rejected")
    assert session._password is None
    assert 'secret' not in info.value.msg


def test_connect_uses_verifying_context_unless_disabled():
    assert VSphereSession('vc', 'u', 'p', validate_certs=True).ssl_context().verify_mode == ssl.CERT_REQUIRED
    context = VSphereSession('vc', 'u', 'p', validate_certs=False).ssl_context()
    assert context.verify_mode == ssl.CERT_NONE and not context.check_hostname


def test_connect_passes_proxy():
    session = VSphereSession('vc', 'u', 'p', proxy_host='proxy', proxy_port=3128)
    si, content = mock.Mock(), mock.Mock()
    with mock.patch.object(_vsphere, 'login', return_value=(si, content)) as connect:
        with session:
            pass
    assert connect.call_args.kwargs['httpProxyHost'] == 'proxy'
    assert connect.call_args.kwargs['httpProxyPort'] == 3128
    assert connect.call_args.kwargs['httpConnectionTimeout'] == 60
    content.sessionManager.Logout.assert_called_once_with()


def test_not_a_vim_server_uses_network_cause():
    session = VSphereSession('vc', 'u', 'p', port=8443)

    def boom(**kwargs):
        try:
            raise ConnectionRefusedError(111, 'Connection refused')
        except ConnectionRefusedError:
            raise Exception('vc:8443 is down or is not a VIM server')
    with mock.patch.object(_vsphere, 'login', side_effect=boom):
        with pytest.raises(VSphereError) as info:
            session.connect()
    assert "'vc:8443' was refused" in info.value.msg


def test_logout_on_exception_and_logout_errors_ignored():
    si, content = mock.Mock(), mock.Mock()
    content.sessionManager.Logout.side_effect = socket.error('gone')
    with mock.patch.object(_vsphere, 'login', return_value=(si, content)):
        with pytest.raises(RuntimeError):
            with VSphereSession('vc', 'u', 'p'):
                raise RuntimeError('inside')
    content.sessionManager.Logout.assert_called_once_with()


def _connected_session():
    session = VSphereSession('vc', 'u', 'p')
    session.si = mock.Mock()
    session.content = mock.Mock()
    session.content.guestOperationsManager = vim.vm.guest.GuestOperationsManager('guestOperationsManager')
    return session


def test_find_vm_needs_exactly_one_selector():
    with pytest.raises(VSphereError, match='exactly one'):
        _connected_session().find_vm(name='a', moid='vm-1')


def test_find_by_uuid_duplicates_are_an_error():
    session = _connected_session()
    session.content.searchIndex.FindAllByUuid.return_value = [vim.VirtualMachine('vm-1'), vim.VirtualMachine('vm-2')]
    with pytest.raises(VSphereError) as info:
        session.find_vm(uuid='4206')
    assert '2 VMs share the BIOS uuid' in info.value.msg and 'vm-1, vm-2' in info.value.msg


def test_find_by_uuid_missing():
    session = _connected_session()
    session.content.searchIndex.FindAllByUuid.return_value = []
    with pytest.raises(VSphereError, match="no VM with instance uuid 'x'"):
        session.find_vm(uuid='x', use_instance_uuid=True)
    kwargs = session.content.searchIndex.FindAllByUuid.call_args.kwargs
    assert kwargs['instanceUuid'] is True and kwargs['vmSearch'] is True


def test_retrieve_follows_continuation_tokens():
    session = _connected_session()
    pc = session.content.propertyCollector

    def page(objs, token):
        return mock.Mock(objects=[mock.Mock(obj=o, propSet=[mock.Mock(val=o._moId)]) for o in objs], token=token)
    pc.RetrievePropertiesEx.return_value = page([vim.VirtualMachine('vm-1')], 't1')
    pc.ContinueRetrievePropertiesEx.side_effect = [page([vim.VirtualMachine('vm-2')], None)]
    spec = vmodl.query.PropertyCollector.ObjectSpec(obj=vim.Folder('group-d1'))
    prop = vmodl.query.PropertyCollector.PropertySpec(type=vim.VirtualMachine, pathSet=['name'])
    found = session.retrieve('step', [spec], [prop])
    assert [obj._moId for obj, _props in found] == ['vm-1', 'vm-2']


def test_vm_facts_unknown_moid():
    session = _connected_session()
    session.content.propertyCollector.RetrievePropertiesEx.side_effect = vmodl.fault.ManagedObjectNotFound()
    with pytest.raises(VSphereError, match="no VM with moid 'vm-9'"):
        session.vm_facts(vim.VirtualMachine('vm-9'))


# --------------------------------------------------------------------------- the call layer

def call_session(retry_timeout=30):
    clock = FakeClock()
    session = VSphereSession('vc', 'u', 'secret', 443, True, retry_timeout=retry_timeout,
                             sleep=clock.sleep, clock=clock)
    session.si = mock.Mock()
    session.content = mock.Mock()
    return session, clock


@pytest.mark.parametrize('fault', [
    vim.fault.GuestOperationsUnavailable(), vim.fault.TaskInProgress(), vim.fault.InvalidState(),
    ConnectionRefusedError(111, 'Connection refused'),
])
def test_call_retries_transient_failures(fault):
    session, clock = call_session()
    func = mock.Mock(side_effect=[fault, fault, 'answer'])
    assert session.call('Doing it', func, vm_name='web01', x=1) == 'answer'
    assert func.call_count == 3
    assert clock.sleeps == [0.25, 0.5]


@pytest.mark.parametrize('fault', [
    vim.fault.InvalidPowerState(), vim.fault.InvalidGuestLogin(), vim.fault.FileNotFound(),
    vmodl.fault.InvalidArgument(), vim.fault.GuestPermissionDenied(),
])
def test_call_does_not_retry_lasting_faults(fault):
    session, clock = call_session()
    func = mock.Mock(side_effect=fault)
    with pytest.raises(VSphereError) as info:
        session.call('Doing it', func, vm_name='web01')
    assert func.call_count == 1 and clock.sleeps == []
    assert info.value.step == 'Doing it' and info.value.retryable is False
    assert info.value.details()['fault'] == type(fault)._wsdlName


def test_call_retry_budget_is_bounded_and_said():
    session, clock = call_session(retry_timeout=10)
    func = mock.Mock(side_effect=vim.fault.GuestOperationsUnavailable())
    with pytest.raises(VSphereError) as info:
        session.call('Listing guest processes', func, vm_name='web01')
    assert clock.now == pytest.approx(10)
    assert max(clock.sleeps) <= 5.0
    assert info.value.retryable is True and info.value.fault_name == 'GuestOperationsUnavailable'
    assert 'for 10 seconds (retry_timeout)' in info.value.msg


def test_call_deadline_cuts_the_budget():
    session, clock = call_session(retry_timeout=100)
    func = mock.Mock(side_effect=vim.fault.TaskInProgress())
    with pytest.raises(VSphereError):
        session.call('Polling', func, deadline=3)
    assert clock.now == pytest.approx(3)


def test_call_names_a_restarting_vcenter():
    session, clock = call_session(retry_timeout=20)
    func = mock.Mock(side_effect=ConnectionRefusedError(111, 'Connection refused'))
    with pytest.raises(VSphereError) as info:
        session.call('Starting the program', func, vm_name='web01')
    assert "vCenter/ESXi 'vc:443' is restarting or unreachable" in info.value.msg
    assert 'certificate' not in info.value.msg


def test_call_does_not_repeat_a_non_idempotent_call_after_a_dropped_connection():
    session, clock = call_session()
    func = mock.Mock(side_effect=ConnectionResetError(104, 'Connection reset by peer'))
    with pytest.raises(VSphereError):
        session.call('Starting the program', func, idempotent=False)
    assert func.call_count == 1
    func = mock.Mock(side_effect=[ConnectionResetError(104, 'reset'), 'ok'])
    assert session.call('Listing', func) == 'ok'


def test_call_logs_in_again_once_when_the_session_is_lost():
    session, clock = call_session()
    func = mock.Mock(side_effect=[vim.fault.NotAuthenticated(), 'answer'])
    assert session.call('Doing it', func) == 'answer'
    session.content.sessionManager.Login.assert_called_once_with(userName='u', password='secret')
    assert session.logins == 1
    func = mock.Mock(side_effect=vim.fault.NotAuthenticated())
    with pytest.raises(VSphereError, match='not authenticated'):
        session.call('Doing it', func)
    assert func.call_count == 2


def test_close_drops_the_password():
    session, clock = call_session()
    session.close()
    assert session._password is None
    func = mock.Mock(side_effect=vim.fault.NotAuthenticated())
    with pytest.raises(VSphereError):
        session.call('Doing it', func)
    assert func.call_count == 1


def test_a_fault_raised_while_handling_a_network_error_is_not_taken_for_one():
    from pyVmomi import vim  # pylint: disable=import-outside-toplevel
    from ansible_collections.guestops.vsphere.plugins.module_utils._retry import (  # pylint: disable=import-outside-toplevel
        retry_kind,
        root_cause,
    )
    try:
        try:
            raise ConnectionRefusedError(111, 'Connection refused')
        except ConnectionRefusedError:
            raise vim.fault.FileNotFound(file='/tmp/x')
    except vim.fault.FileNotFound as fault:
        assert isinstance(root_cause(fault), vim.fault.FileNotFound)
        assert retry_kind(fault) is None
