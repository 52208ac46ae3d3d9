# -*- coding: utf-8 -*-
# Copyright (c) guestops.vsphere contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import os

import pytest

from pyVmomi import vim  # noqa: E402

from ansible_collections.guestops.vsphere.plugins.module_utils._exec import (  # noqa: E402
    exit_hint,
    wait_until_ready,
)
from ansible_collections.guestops.vsphere.plugins.module_utils._files import local_dest, parse_mode  # noqa: E402
from ansible_collections.guestops.vsphere.plugins.module_utils._paths import (  # noqa: E402
    guest_os_of,
    guest_os_source,
    is_absolute,
    is_inside,
    refuse_delete as refuse_path,
)
from ansible_collections.guestops.vsphere.plugins.module_utils._faults import VSphereError  # noqa: E402
from ansible_collections.guestops.vsphere.plugins.module_utils._vsphere import VirtualMachine  # noqa: E402


@pytest.mark.parametrize('path, refused', [
    ('/', "refusing to delete '/'"),
    ('//', "refusing to delete '/'"),
    ('/./', "refusing to delete '/'"),
    ('', 'path is empty'),
    ('   ', 'path is empty'),
    (None, 'path is empty'),
    ('tmp/x', 'must be absolute'),
    ('./x', 'must be absolute'),
    ('C:\\', 'root of drive C:'),
    ('C:/', 'root of drive C:'),
    ('C:\\..', 'root of drive C:'),
    ('C:\\Windows\\..', 'root of drive C:'),
    ('C:\\.', 'root of drive C:'),
    ('/tmp/..', "refusing to delete '/'"),
    ('C:', 'must be absolute'),
    ('/tmp/x', None),
    ('C:\\Temp\\x', None),
])
def test_refuse_path(path, refused):
    reason = refuse_path(path)
    if refused is None:
        assert reason is None
    else:
        assert refused in reason


@pytest.mark.parametrize('mode, expected', [
    (None, None), ('', None), ('0644', 0o644), ('644', 0o644), ('0755', 0o755), (0o600, 0o600), ('04755', 0o4755),
])
def test_parse_mode(mode, expected):
    assert parse_mode(mode) == expected


@pytest.mark.parametrize('mode', ['u=rw', '0999', '-1', 0o10000, 'rwx'])
def test_parse_mode_rejects(mode):
    with pytest.raises(VSphereError):
        parse_mode(mode)


@pytest.mark.parametrize('path, directory, guest_os, expected', [
    ('/tmp/job/stdout', '/tmp/job', 'linux', True),
    ('/tmp/job/sub/out', '/tmp/job/', 'linux', True),
    ('/tmp/job', '/tmp/job', 'linux', False),
    ('/tmp/job/', '/tmp/job', 'linux', False),
    ('/tmp/jobber/out', '/tmp/job', 'linux', False),
    ('/etc/shadow', '/tmp/job', 'linux', False),
    ('/tmp/job/../../etc/shadow', '/tmp/job', 'linux', False),
    ('C:\\T\\job\\stdout', 'C:\\T\\job', 'windows', True),
    ('C:\\T\\job\\..\\x', 'C:\\T\\job', 'windows', False),
    ('C:\\T\\jobs\\x', 'C:\\T\\job', 'windows', False),
    (None, '/tmp/job', 'linux', False),
    (['/tmp/job/x'], '/tmp/job', 'linux', False),
])
def test_is_inside(path, directory, guest_os, expected):
    assert is_inside(path, directory, guest_os) is expected


def test_local_dest(tmp_path):
    assert local_dest('/var/log/x.log', str(tmp_path)) == os.path.join(str(tmp_path), 'x.log')
    assert local_dest('/var/log/x.log', '/no/such/dir/') == '/no/such/dir/x.log'
    assert local_dest('/var/log/x.log', '/no/such/file') == '/no/such/file'
    assert local_dest('C:\\logs\\app.log', '/out/') == '/out/app.log'


@pytest.mark.parametrize('requested, family, expected', [
    ('auto', 'windowsGuest', 'windows'), ('auto', 'linuxGuest', 'linux'), ('auto', None, 'linux'),
    ('auto', 'otherGuestFamily', 'linux'), ('windows', 'linuxGuest', 'windows'), ('linux', 'windowsGuest', 'linux'),
])
def test_guest_os_of(requested, family, expected):
    vm = VirtualMachine(vim.VirtualMachine('vm-1'), {'guest.guestFamily': family})
    assert guest_os_of(requested, vm) == expected


@pytest.mark.parametrize('family, guest_id, expected', [
    (None, 'windows2019srv_64Guest', 'windows'), ('', 'windows9_64Guest', 'windows'),
    ('linuxGuest', 'windows2019srv_64Guest', 'linux'), (None, 'otherLinux64Guest', 'linux'),
])
def test_guest_os_of_an_unset_family_falls_back_to_the_guest_id(family, guest_id, expected):
    vm = VirtualMachine(vim.VirtualMachine('vm-1'), {'guest.guestFamily': family, 'guest.guestId': guest_id})
    assert guest_os_of('auto', vm) == expected


@pytest.mark.parametrize('props, expected', [
    ({'guest.guestFamily': 'windowsGuest', 'guest.guestId': 'otherLinux64Guest'}, ('windows', 'guest.guestFamily')),
    ({'guest.guestId': 'windows2019srv_64Guest', 'config.guestId': 'otherLinux64Guest'}, ('windows', 'guest.guestId')),
    # Tools not (yet) reporting: the VM's configured guest OS decides (community.vmware#2099).
    ({'guest.guestFamily': None, 'guest.guestId': None, 'config.guestId': 'windows9Server64Guest'},
     ('windows', 'config.guestId')),
    ({'config.guestId': 'rhel9_64Guest'}, ('linux', 'config.guestId')),
    ({}, ('linux', 'nothing reported (assumed linux)')),
])
def test_guest_os_source_names_the_field_that_decided(props, expected):
    vm = VirtualMachine(vim.VirtualMachine('vm-1'), props)
    assert guest_os_source('auto', vm) == expected
    assert guest_os_source('linux', vm) == ('linux', 'guest_os option')


@pytest.mark.parametrize('path, guest_os, expected', [
    ('/a', 'linux', True), ('a', 'linux', False), ('C:\\a', 'windows', True), ('a\\b', 'windows', False),
    ('', 'linux', False), (None, 'linux', False),
])
def test_is_absolute(path, guest_os, expected):
    assert is_absolute(path, guest_os) is expected


@pytest.mark.parametrize('rc, guest_os, needle', [
    (126, 'linux', 'noexec'), (127, 'linux', 'not found'), (9009, 'windows', 'cmd.exe'), (1, 'linux', None),
    (126, 'windows', None),
])
def test_exit_hint(rc, guest_os, needle):
    hint = exit_hint(rc, guest_os)
    assert (hint is None) if needle is None else (needle in hint)


class FakeSession(object):
    def __init__(self, states):
        self.states = list(states)

    def refresh(self, vm):
        vm.props = dict(self.states.pop(0))
        return vm


def _vm(**props):
    base = {'name': 'web01', 'runtime.powerState': 'poweredOn'}
    base.update(props)
    return VirtualMachine(vim.VirtualMachine('vm-1'), base)


def test_wait_until_ready_backs_off_until_ready():
    sleeps = []
    now = [0.0]

    def sleep(seconds):
        sleeps.append(seconds)
        now[0] += seconds
    booting = {'runtime.powerState': 'poweredOn', 'guest.toolsRunningStatus': 'guestToolsNotRunning'}
    ready = {'runtime.powerState': 'poweredOn', 'guest.toolsRunningStatus': 'guestToolsRunning',
             'guest.guestOperationsReady': True}
    session = FakeSession([booting, booting, ready])
    vm = wait_until_ready(session, _vm(**booting), 60, sleep=sleep, clock=lambda: now[0])
    assert vm.props['guest.guestOperationsReady'] is True
    assert len(sleeps) == 3 and sleeps[0] < sleeps[1] < sleeps[2]


def test_wait_until_ready_fails_at_once_when_off_or_without_tools():
    with pytest.raises(VSphereError, match='poweredOff'):
        wait_until_ready(FakeSession([]), _vm(**{'runtime.powerState': 'poweredOff'}), 60, sleep=None)
    with pytest.raises(VSphereError, match='not installed'):
        wait_until_ready(FakeSession([]), _vm(**{'guest.toolsVersionStatus2': 'guestToolsNotInstalled'}), 60,
                         sleep=None)


def test_wait_until_ready_times_out():
    now = [0.0]

    def sleep(seconds):
        now[0] += seconds
    state = {'name': 'web01', 'runtime.powerState': 'poweredOn', 'guest.guestOperationsReady': False}
    session = FakeSession([state] * 100)
    with pytest.raises(VSphereError, match="after 10 seconds: VM 'web01' is not ready.*raise timeout"):
        wait_until_ready(session, _vm(**state), 10, sleep=sleep, clock=lambda: now[0])
