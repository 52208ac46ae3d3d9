# -*- coding: utf-8 -*-
# Copyright (c) guestops.vsphere contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import datetime

import hashlib
import os

import pytest

from .conftest import CONNECTION, GUEST, as_json, requests as _requests, vim

from ansible_collections.guestops.vsphere.plugins.module_utils import _guest
from ansible_collections.guestops.vsphere.plugins.modules import (
    guest_cleanup,
    guest_copy,
    guest_exec,
    guest_exec_status,
    guest_fetch,
    guest_info,
    guest_tempdir,
)

BASE = dict(CONNECTION, name='web01', **GUEST)


def test_every_session_is_closed(harness):
    harness.run(guest_exec, dict(BASE, cmd='echo hi'))
    harness.run(guest_exec, dict(BASE, cmd='x', guest_password='wrong'))
    harness.run(guest_info, dict(CONNECTION, name='missing'))
    assert harness.sessions and all(s.logged_out for s in harness.sessions)


# --------------------------------------------------------------------------- guest_exec

def test_exec_success_and_cleanup(harness):
    harness.guest.behaviour = lambda command: (0, b'hello\nworld\n', b'warn\n')
    result = harness.run(guest_exec, dict(BASE, cmd='echo hello; echo world'))
    assert result['changed'] is True
    assert (result['rc'], result['stdout'], result['stderr']) == (0, 'hello\nworld', 'warn')
    assert result['stdout_lines'] == ['hello', 'world']
    assert result['cmd'] == 'echo hello; echo world'
    assert {'start', 'end', 'delta', 'pid'} <= set(result)
    assert harness.guest.dirs == {'/tmp'}  # private temp dir removed
    assert 'guestpass' not in as_json(result)
    assert 'guestpass' not in harness.guest.started[0].arguments


def test_exec_nonzero_fails_and_cleans_up(harness):
    harness.guest.behaviour = lambda command: (2, b'', b'boom\n')
    result = harness.run(guest_exec, dict(BASE, argv=['/bin/false', 'a b']))
    assert result['failed'] and result['rc'] == 2 and result['stderr'] == 'boom'
    assert "non-zero return code 2 from the program in VM 'web01'" in result['msg']
    assert result['cmd'] == ['/bin/false', 'a b']
    assert harness.guest.dirs == {'/tmp'}


@pytest.mark.parametrize('rc, hint', [(126, 'directory_path'), (127, 'not found')])
def test_exec_exit_code_hints(harness, rc, hint):
    harness.guest.behaviour = lambda command: (rc, b'', b'')
    result = harness.run(guest_exec, dict(BASE, cmd='x'))
    assert hint in result['msg']


def test_exec_timeout_terminates_and_cleans_up(harness):
    harness.guest.behaviour = lambda command: (None, b'partial\n', b'')
    result = harness.run(guest_exec, dict(BASE, cmd='sleep 100', timeout=1))
    assert result['failed']
    assert 'did not finish within 1 seconds' in result['msg'] and 'terminated' in result['msg']
    assert result['stdout'] == 'partial'
    assert harness.guest.terminated == [result['pid']]
    assert harness.guest.dirs == {'/tmp'}


def test_exec_start_failure_cleans_up(harness):
    result = harness.run(guest_exec, dict(BASE, program='/no/such'))
    assert result['failed'] and "'/no/such' was not found" in result['msg']
    assert harness.guest.dirs == {'/tmp'}


def test_exec_check_mode_does_not_run(harness):
    result = harness.run(guest_exec, dict(BASE, cmd='rm -rf /srv'), check_mode=True)
    assert result['changed'] is True and 'rc' not in result
    assert harness.guest.started == [] and harness.guest.dirs == {'/tmp'}


def test_exec_creates_and_removes(harness):
    harness.guest.files['/tmp/done'] = b''
    result = harness.run(guest_exec, dict(BASE, cmd='make', creates='/tmp/done'))
    assert result['changed'] is False and 'exists' in result['msg']
    result = harness.run(guest_exec, dict(BASE, cmd='make', removes='/tmp/missing'))
    assert result['changed'] is False and 'does not exist' in result['msg']
    assert harness.guest.started == []


def test_exec_env_chdir_and_forms(harness):
    assert harness.run(guest_exec, dict(BASE, cmd='env', chdir='/srv', env={'A': '1'}))['rc'] == 0
    spec = harness.guest.started[-1]
    assert spec.workingDirectory == '/srv'
    assert list(spec.envVariables)[0] == 'A=1' and any(v.startswith('PATH=') for v in spec.envVariables)
    result = harness.run(guest_exec, dict(BASE, cmd='a', argv=['b']))
    assert result['failed'] and result['msg'] == 'parameters are mutually exclusive: cmd|argv|program'
    result = harness.run(guest_exec, dict(BASE, arguments='x'))
    assert result['failed'] and result['msg'] == 'one of the following is required: cmd, argv, program'
    result = harness.run(guest_exec, dict(BASE, argv=['b'], arguments='x'))
    assert result.get('failed') and result['msg'] == "missing parameter(s) required by 'arguments': program"
    assert len(harness.guest.started) == 1 and harness.guest.dirs == {'/tmp'}


def test_exec_output_files_need_an_existing_directory(harness):
    for option in ('stdout_path', 'stderr_path'):
        result = harness.run(guest_exec, dict(BASE, cmd='x', **{option: '/nope/out.log'}))
        assert result['failed'] and "Option %s '/nope/out.log': the directory '/nope' does not exist in the " \
            "guest" % option in result['msg']
        result = harness.run(guest_exec, dict(BASE, cmd='x', **{option: '/tmp'}))
        assert result['failed'] and "Option %s '/tmp' is a directory" % option in result['msg']
    assert harness.guest.started == [] and harness.guest.dirs == {'/tmp'}
    assert harness.run(guest_exec, dict(BASE, cmd='x', stdout_path='/tmp/new.log'))['rc'] == 0
    harness.guest.files['/tmp/out.log'] = b''
    assert harness.run(guest_exec, dict(BASE, cmd='x', stderr_path='/tmp/out.log'))['rc'] == 0


def test_exec_missing_chdir_is_named(harness, monkeypatch):
    def start(vm, auth, spec):
        raise vim.fault.NotADirectory(file=spec.workingDirectory)
    monkeypatch.setattr(harness.guest, 'StartProgramInGuest', start)
    result = harness.run(guest_exec, dict(BASE, cmd='pwd', chdir='/nonexistent'))
    assert result['failed'] and "chdir '/nonexistent' does not exist or is not a directory" in result['msg']
    assert harness.guest.dirs == {'/tmp'}


def test_exec_program_permission_denied_suggests_noexec_way_out(harness, monkeypatch):
    def start(vm, auth, spec):
        raise vim.fault.GuestPermissionDenied()
    monkeypatch.setattr(harness.guest, 'StartProgramInGuest', start)
    result = harness.run(guest_exec, dict(BASE, program='/tmp/run.sh'))
    assert result['failed'] and 'noexec' in result['msg'] and 'directory_path' in result['msg']


def test_exec_relative_paths_refused(harness):
    result = harness.run(guest_exec, dict(BASE, cmd='x', chdir='srv'))
    assert result['failed'] and 'chdir must be an absolute Linux path' in result['msg']


def test_exec_output_limit(harness):
    harness.guest.behaviour = lambda command: (0, b'a' * 50, b'')
    result = harness.run(guest_exec, dict(BASE, cmd='x', output_limit=10))
    assert result['stdout'] == 'a' * 10 and result['stdout_truncated'] is True


def test_exec_not_ready_vm_fails_before_any_guest_call(harness):
    harness.props['runtime.powerState'] = 'poweredOff'
    result = harness.run(guest_exec, dict(BASE, cmd='x'))
    assert result['failed'] and "VM 'web01' is poweredOff" in result['msg']
    assert harness.guest.dirs == {'/tmp'} and harness.guest.started == []


def test_exec_wrong_guest_password(harness):
    result = harness.run(guest_exec, dict(BASE, cmd='x', guest_password='nope'))
    assert result['failed'] and 'rejected the login of guest user' in result['msg']
    assert 'nope' not in result['msg']


def test_exec_windows_guest_uses_cmd(harness):
    harness.props['guest.guestFamily'] = 'windowsGuest'
    harness.run(guest_exec, dict(BASE, cmd='dir', wait=False))
    assert harness.guest.started[-1].programPath.lower().endswith('cmd.exe')


def test_exec_windows_by_configured_guest_id_when_tools_report_no_family(harness):
    harness.props.update({'guest.guestFamily': None, 'guest.guestId': None, 'config.guestId': 'windows2019srv_64Guest'})
    result = harness.run(guest_exec, dict(BASE, cmd='dir', wait=False))
    assert harness.guest.started[-1].programPath.lower().endswith('cmd.exe')
    assert (result['guest_os'], result['guest_os_source']) == ('windows', 'config.guestId')
    info = harness.run(guest_info, dict(CONNECTION, name='web01'))
    assert (info['guest_os'], info['guest_os_source']) == ('windows', 'config.guestId')


# --------------------------------------------------------------------------- wait=false + status

def test_exec_no_wait_then_status(harness):
    harness.guest.behaviour = lambda command: (None, b'', b'')
    started = harness.run(guest_exec, dict(BASE, cmd='long', wait=False))
    job = started['job']
    assert started['changed'] and job['pid'] == started['pid'] and job['vm'] == {'moid': 'vm-1', 'name': 'web01'}
    assert job['temp_dir'] in harness.guest.dirs

    status_args = dict(CONNECTION, job=job, **GUEST)
    running = harness.run(guest_exec_status, status_args)
    assert running['finished'] is False and running['changed'] is False
    assert harness.sessions[-1].lookups[-1] == {'moid': 'vm-1', 'known_name': 'web01'}

    info = harness.guest.processes[job['pid']]
    info.endTime, info.exitCode = info.startTime, 5
    harness.guest.files[job['stdout_path']] = b'out\n'
    done = harness.run(guest_exec_status, dict(status_args, cleanup=True))
    assert done['finished'] and done['rc'] == 5 and done['stdout'] == 'out' and done['failed'] is False
    assert done['cleaned_up'] and job['temp_dir'] not in harness.guest.dirs


def test_status_end_is_never_before_start(harness):
    # The guest records times in whole seconds: a quick program "ends" before the controller's start.
    harness.guest.behaviour = lambda command: (None, b'', b'')
    job = harness.run(guest_exec, dict(BASE, cmd='quick', wait=False))['job']
    info = harness.guest.processes[job['pid']]
    info.endTime, info.exitCode = info.startTime.replace(microsecond=0) - datetime.timedelta(seconds=1), 0
    done = harness.run(guest_exec_status, dict(CONNECTION, job=job, **GUEST))
    assert done['finished'] and done['rc'] == 0
    assert done['end'] >= done['start'] and done['delta'] == '0:00:00'


def test_status_expired_record_uses_rc_file(harness):
    started = harness.run(guest_exec, dict(BASE, cmd='x', wait=False))
    job = started['job']
    del harness.guest.processes[job['pid']]
    harness.guest.files[job['rc_path']] = b'7\n'
    done = harness.run(guest_exec_status, dict(CONNECTION, job=job, **GUEST))
    assert done['finished'] and done['rc'] == 7


def test_status_terminate(harness):
    harness.guest.behaviour = lambda command: (None, b'', b'')
    job = harness.run(guest_exec, dict(BASE, cmd='x', wait=False))['job']
    done = harness.run(guest_exec_status, dict(CONNECTION, job=job, terminate=True, cleanup=True, **GUEST))
    assert done['terminated'] and done['finished'] and done['changed']
    assert harness.guest.terminated == [job['pid']]


def test_status_check_mode_keeps_temp_dir(harness):
    job = harness.run(guest_exec, dict(BASE, cmd='x', wait=False))['job']
    done = harness.run(guest_exec_status, dict(CONNECTION, job=job, cleanup=True, **GUEST), check_mode=True)
    assert done['finished'] and 'cleaned_up' not in done and job['temp_dir'] in harness.guest.dirs


def test_status_needs_vm(harness):
    harness.guest.behaviour = lambda command: (None, b'', b'')
    job = harness.run(guest_exec, dict(BASE, cmd='x', wait=False))['job']
    del job['vm']
    result = harness.run(guest_exec_status, dict(CONNECTION, job=job, **GUEST))
    assert result['failed'] and 'job.vm.moid' in result['msg']


def test_status_refuses_a_forged_token_and_touches_nothing(harness):
    harness.guest.behaviour = lambda command: (None, b'', b'')
    job = harness.run(guest_exec, dict(BASE, cmd='x', wait=False))['job']
    victim = harness.run(guest_exec, dict(BASE, cmd='y', wait=False))['job']
    forged = dict(job, temp_dir=victim['temp_dir'])
    result = harness.run(guest_exec_status, dict(CONNECTION, job=forged, cleanup=True, terminate=True, **GUEST))
    assert result['failed'] and 'token does not belong' in result['msg']
    assert victim['temp_dir'] in harness.guest.dirs and harness.guest.terminated == []


def test_status_refuses_to_terminate_another_jobs_pid(harness):
    harness.guest.behaviour = lambda command: (None, b'', b'')
    job = harness.run(guest_exec, dict(BASE, cmd='x', wait=False))['job']
    victim = harness.run(guest_exec, dict(BASE, cmd='y', wait=False))['job']
    result = harness.run(guest_exec_status, dict(CONNECTION, job=dict(job, pid=victim['pid']), terminate=True, **GUEST))
    assert result['failed'] and 'is not the program of the job' in result['msg']
    assert harness.guest.terminated == []


def test_status_after_cleanup_fails_instead_of_reporting_success(harness):
    job = harness.run(guest_exec, dict(BASE, cmd='x', wait=False))['job']
    first = harness.run(guest_exec_status, dict(CONNECTION, job=job, cleanup=True, **GUEST))
    assert first['finished'] and first['rc'] == 0 and first['cleaned_up']
    again = harness.run(guest_exec_status, dict(CONNECTION, job=job, **GUEST))
    assert again['failed'] and 'no longer exists' in again['msg'] and again.get('rc') is None


def test_status_reports_rc_when_the_output_cannot_be_read(harness, monkeypatch):
    harness.guest.behaviour = lambda command: (7, b'out\n', b'')
    job = harness.run(guest_exec, dict(BASE, cmd='x', wait=False))['job']
    real = harness.guest.InitiateFileTransferFromGuest

    def broken(vm, auth, guestFilePath):
        if guestFilePath == job['stdout_path']:
            raise vim.fault.CannotAccessFile(file=guestFilePath)
        return real(vm, auth, guestFilePath)
    monkeypatch.setattr(harness.guest, 'InitiateFileTransferFromGuest', broken)
    done = harness.run(guest_exec_status, dict(CONNECTION, job=job, **GUEST))
    assert done['finished'] and done['rc'] == 7 and not done['failed']
    assert 'stdout could not be read' in done['output_errors'][0]


@pytest.mark.parametrize('change, message', [
    ({'temp_dir': '/'}, "temp_dir '/' is not a directory made by guest_exec"),
    ({'temp_dir': '/etc'}, "temp_dir '/etc' is not a directory made by guest_exec"),
    ({'temp_dir': 'ansible-exec-x'}, 'is not a directory made by guest_exec'),
    ({'temp_dir': '/tmp/ansible-exec-1/..'}, 'is not a directory made by guest_exec'),
    ({'temp_dir': ['/tmp']}, 'is not a directory made by guest_exec'),
    ({'pid': 'abc'}, "pid must be a positive number, got 'abc'"),
    ({'pid': -4}, 'pid must be a positive number'),
    ({'pid': None}, "has no 'pid'"),
    ({'vm': 'web01'}, 'vm must be a dictionary'),
    ({'guest_os': 'beos'}, 'guest_os must be linux or windows'),
])
def test_status_refuses_a_tampered_job_before_connecting(harness, change, message):
    harness.guest.behaviour = lambda command: (None, b'', b'')
    job = harness.run(guest_exec, dict(BASE, cmd='x', wait=False))['job']
    sessions = len(harness.sessions)
    job.update(change)
    result = harness.run(guest_exec_status, dict(CONNECTION, job=job, cleanup=True, terminate=True, **GUEST))
    assert result['failed'] and message in result['msg'] and 'unchanged' in result['msg']
    assert len(harness.sessions) == sessions  # nothing was done in any VM
    assert harness.guest.terminated == [] and '/tmp' in harness.guest.dirs


def test_status_refuses_another_vm(harness):
    harness.guest.behaviour = lambda command: (None, b'', b'')
    job = harness.run(guest_exec, dict(BASE, cmd='x', wait=False))['job']
    result = harness.run(guest_exec_status, dict(CONNECTION, job=job, moid='vm-2', terminate=True, **GUEST))
    assert result['failed'] and "started in VM 'web01' (vm-1)" in result['msg'] and '(vm-2)' in result['msg']
    assert harness.guest.terminated == []
    assert harness.run(guest_exec_status, dict(CONNECTION, job=job, moid='vm-1', **GUEST))['finished'] is False


def test_status_negative_output_limit(harness):
    job = {'pid': 1, 'temp_dir': '/tmp/ansible-exec-x1-0-vmware1', 'vm': {'moid': 'vm-1'}}
    result = harness.run(guest_exec_status, dict(CONNECTION, job=job, output_limit=-1, **GUEST))
    assert result['failed'] and 'output_limit' in result['msg']


# --------------------------------------------------------------------------- guest_info

def test_info(harness):
    result = harness.run(guest_info, dict(CONNECTION, name='web01'))
    assert result['changed'] is False
    assert result['vm'] == {'name': 'web01', 'moid': 'vm-1', 'uuid': 'u-1', 'instance_uuid': 'i-1',
                            'power_state': 'poweredOn'}
    assert result['guest']['guest_operations_ready'] is True
    assert result['guest']['tools_running_status'] == 'guestToolsRunning'
    assert (result['guest_os'], result['guest_os_source']) == ('linux', 'guest.guestFamily')


def test_info_wait_fails_at_once_when_powered_off(harness):
    harness.props['runtime.powerState'] = 'poweredOff'
    assert harness.run(guest_info, dict(CONNECTION, name='web01'))['vm']['power_state'] == 'poweredOff'
    result = harness.run(guest_info, dict(CONNECTION, name='web01', wait_for_ready=True))
    assert result['failed'] and 'poweredOff' in result['msg']


def test_info_checks_guest_login(harness):
    result = harness.run(guest_info, dict(CONNECTION, name='web01', guest_username='root', guest_password='bad'))
    assert result['failed'] and 'Checking the guest login failed' in result['msg']


def test_info_lookup_error(harness):
    result = harness.run(guest_info, dict(CONNECTION, name='missing'))
    assert result['failed'] and "no VM named 'missing'" in result['msg']


def test_selectors_are_exclusive_and_required(harness):
    assert 'mutually exclusive' in harness.run(guest_info, dict(CONNECTION, name='a', moid='vm-1'))['msg']
    assert 'one of the following' in harness.run(guest_info, dict(CONNECTION))['msg']


@pytest.mark.parametrize('unset, named', [
    ('password', 'password (VMWARE_PASSWORD)'),
    ('hostname', 'hostname (VMWARE_HOST)'),
    ('guest_password', 'guest_password (VMWARE_GUEST_PASSWORD)'),
])
def test_a_missing_login_option_names_its_environment_variable(harness, monkeypatch, unset, named):
    for variable in ('VMWARE_HOST', 'VMWARE_USER', 'VMWARE_PASSWORD', 'VMWARE_GUEST_USERNAME', 'VMWARE_GUEST_PASSWORD'):
        monkeypatch.delenv(variable, raising=False)
    args = dict(BASE, cmd='true')
    del args[unset]
    result = harness.run(guest_exec, args)
    assert result['failed'] and result['msg'].startswith('missing required arguments: %s. ' % unset)
    assert 'module_defaults for group/guestops.vsphere.vsphere' in result['msg'] and named in result['msg']
    assert harness.sessions == []


def test_guest_info_needs_no_guest_login(harness, monkeypatch):
    monkeypatch.delenv('VMWARE_GUEST_USERNAME', raising=False)
    monkeypatch.delenv('VMWARE_GUEST_PASSWORD', raising=False)
    assert harness.run(guest_info, dict(CONNECTION, name='web01'))['vm']['name'] == 'web01'
    result = harness.run(guest_info, dict(CONNECTION, name='web01', password=None))
    assert result['failed'] and 'missing required arguments: password.' in result['msg']


@pytest.mark.parametrize('value', ['4206', 'not-a-uuid', '42 06 c4 d6 0a 4e 8f 3a-5f be 0e 1d 2c 3b 4a 59'])
def test_a_malformed_uuid_is_called_malformed(harness, value):
    result = harness.run(guest_info, dict(CONNECTION, uuid=value))
    assert result['failed'] and "The uuid '%s' is malformed: a BIOS uuid (config.uuid) is 32 hexadecimal" % value \
        in result['msg']
    assert harness.sessions == []  # refused before logging in
    result = harness.run(guest_info, dict(CONNECTION, uuid=value, use_instance_uuid=True))
    assert 'instance uuid (config.instanceUuid)' in result['msg']


def test_a_well_formed_uuid_is_looked_up(harness):
    result = harness.run(guest_info, dict(CONNECTION, uuid='4206C4D6-0A4E-8F3A-5FBE-0E1D2C3B4A59'))
    assert not result.get('failed') and harness.sessions[-1].lookups[-1]['uuid'] == \
        '4206C4D6-0A4E-8F3A-5FBE-0E1D2C3B4A59'


def test_env_fallbacks(harness, monkeypatch):
    monkeypatch.setenv('VMWARE_HOST', 'vc.env')
    monkeypatch.setenv('VMWARE_USER', 'envuser')
    monkeypatch.setenv('VMWARE_PASSWORD', 'envpass')
    monkeypatch.setenv('VMWARE_GUEST_USERNAME', 'root')
    monkeypatch.setenv('VMWARE_GUEST_PASSWORD', 'guestpass')
    result = harness.run(guest_exec, dict(name='web01', cmd='true'))
    assert result.get('failed') is not True, result


# --------------------------------------------------------------------------- tempdir, cleanup

def test_tempdir_and_cleanup(harness):
    made = harness.run(guest_tempdir, dict(BASE, prefix='p-'))
    assert made['changed'] and made['path'] in harness.guest.dirs
    f = harness.run(guest_tempdir, dict(BASE, state='file', suffix='.sh', directory_path=made['path']))
    assert f['path'].startswith(made['path'] + '/') and f['path'].endswith('.sh')
    check = harness.run(guest_tempdir, dict(BASE), check_mode=True)
    assert check['changed'] and 'path' not in check

    assert harness.run(guest_cleanup, dict(BASE, path=made['path']), check_mode=True)['changed'] is True
    assert made['path'] in harness.guest.dirs
    assert harness.run(guest_cleanup, dict(BASE, path=made['path']))['changed'] is True
    assert harness.run(guest_cleanup, dict(BASE, path=made['path']))['changed'] is False
    assert f['path'] not in harness.guest.files


@pytest.mark.parametrize('args, message', [
    (dict(directory_path='tmp'), "directory_path must be an absolute path in the guest, got 'tmp'"),
    (dict(prefix='a/b'), "prefix must not contain a path separator, got 'a/b'"),
    (dict(suffix='\\x'), 'suffix must not contain a path separator'),
])
def test_tempdir_refuses(harness, args, message):
    result = harness.run(guest_tempdir, dict(BASE, **args))
    assert result['failed'] and message in result['msg']
    assert harness.sessions == []


@pytest.mark.parametrize('path, message', [
    ('/', "refusing to delete '/'"), ('', 'path is empty'), ('rel/x', 'must be absolute'),
    ('C:\\', 'root of drive'),
])
def test_cleanup_refuses(harness, path, message):
    result = harness.run(guest_cleanup, dict(BASE, path=path))
    assert result['failed'] and message in result['msg']
    assert harness.sessions == []


def test_cleanup_result_has_no_local_stat(harness, tmp_path):
    harness.guest.files[str(tmp_path)] = b''
    result = harness.run(guest_cleanup, dict(BASE, path=str(tmp_path)))
    assert 'mode' not in result and 'owner' not in result


# --------------------------------------------------------------------------- copy, fetch

def test_copy_content_idempotent_and_check_mode(harness):
    args = dict(BASE, content='hello\n', dest='/tmp/h.txt')
    first = harness.run(guest_copy, args)
    assert first['changed'] and first['size'] == 6
    assert first['checksum'] == hashlib.sha1(b'hello\n').hexdigest()
    assert harness.guest.files['/tmp/h.txt'] == b'hello\n'
    assert harness.run(guest_copy, args)['changed'] is False
    check = harness.run(guest_copy, dict(args, content='other'), check_mode=True)
    assert check['changed'] and harness.guest.files['/tmp/h.txt'] == b'hello\n'
    assert harness.run(guest_copy, dict(args, content='other', force=False))['changed'] is False
    assert harness.run(guest_copy, dict(args, content='other'))['changed'] is True
    assert harness.guest.files['/tmp/h.txt'] == b'other'


def test_copy_mode_only(harness):
    args = dict(BASE, content='x', dest='/tmp/m', mode='0755')
    assert harness.run(guest_copy, args)['changed']
    assert harness.guest.modes['/tmp/m'] == 0o755
    assert harness.run(guest_copy, args)['changed'] is False
    assert harness.run(guest_copy, dict(args, mode='0700'))['changed'] is True
    assert harness.guest.modes['/tmp/m'] == 0o700


def test_copy_new_content_keeps_the_mode_of_the_file_it_replaces(harness):
    # vSphere resets an overwritten file to 0644; like ansible.builtin.copy the module keeps the mode.
    assert harness.run(guest_copy, dict(BASE, content='#!/bin/sh\n', dest='/tmp/tool', mode='0755'))['changed']
    assert harness.run(guest_copy, dict(BASE, content='#!/bin/sh\necho v2\n', dest='/tmp/tool'))['changed']
    assert harness.guest.modes['/tmp/tool'] == 0o755
    assert harness.guest.files['/tmp/tool'] == b'#!/bin/sh\necho v2\n'


def test_a_broken_upload_leaves_the_old_file_and_no_partial_one(harness):
    assert harness.run(guest_copy, dict(BASE, content='old\n', dest='/tmp/keep', mode='0640'))['changed']
    harness.guest.break_puts = 3
    result = harness.run(guest_copy, dict(BASE, content='new content\n', dest='/tmp/keep'))
    assert result['failed'] and "Uploading to '/tmp/keep' failed" in result['msg']
    assert 'broke off during the transfer' in result['msg'] and 'Tried 3 times' in result['msg']
    assert 'certificate' not in result['msg']
    assert harness.guest.files['/tmp/keep'] == b'old\n' and harness.guest.modes['/tmp/keep'] == 0o640
    assert sorted(harness.guest.files) == ['/tmp/keep']


def test_a_broken_upload_is_retried_and_moved_into_place(harness):
    assert harness.run(guest_copy, dict(BASE, content='old\n', dest='/tmp/keep', mode='0750'))['changed']
    harness.guest.break_puts = 1
    result = harness.run(guest_copy, dict(BASE, content='new content\n', dest='/tmp/keep'))
    assert result['changed'] and not result.get('failed')
    assert harness.guest.files['/tmp/keep'] == b'new content\n' and harness.guest.modes['/tmp/keep'] == 0o750
    assert sorted(harness.guest.files) == ['/tmp/keep']


def test_copy_src_file(harness, tmp_path):
    src = tmp_path / 'big.bin'
    src.write_bytes(os.urandom(300000))
    result = harness.run(guest_copy, dict(BASE, src=str(src), dest='/tmp/big.bin'))
    assert result['changed'] and harness.guest.files['/tmp/big.bin'] == src.read_bytes()


def test_copy_empty_content_without_an_empty_upload(harness):
    args = dict(BASE, content='', dest='/tmp/empty')
    first = harness.run(guest_copy, args)
    assert first['changed'] and first['size'] == 0 and not first.get('failed'), first
    assert harness.guest.files['/tmp/empty'] == b'' and harness.guest.modes['/tmp/empty'] == 0o644
    assert sorted(harness.guest.files) == ['/tmp/empty']  # the temp file was moved into place
    assert harness.run(guest_copy, args)['changed'] is False
    harness.guest.files['/tmp/full'] = b'data'
    harness.guest.modes['/tmp/full'] = 0o640
    replaced = harness.run(guest_copy, dict(args, dest='/tmp/full'))
    assert replaced['changed'] and harness.guest.files['/tmp/full'] == b''
    assert harness.guest.modes['/tmp/full'] == 0o640
    assert harness.run(guest_copy, dict(args, dest='/tmp/m', mode='0700'))['changed']
    assert harness.guest.modes['/tmp/m'] == 0o700


@pytest.mark.parametrize('content', ['x', ''])
def test_copy_check_mode_into_a_missing_directory_predicts_the_failure(harness, content):
    args = dict(BASE, content=content, dest='/nope/f')
    result = harness.run(guest_copy, args, check_mode=True)
    assert result['failed'] and result['changed'] is False
    assert result['msg'] == harness.run(guest_copy, args)['msg']
    assert "its directory '/nope' does not exist in the guest" in result['msg']
    assert harness.run(guest_copy, dict(args, dest='/tmp/f'), check_mode=True)['changed'] is True
    assert harness.guest.files == {}


def test_copy_empty_content_into_a_missing_directory(harness):
    result = harness.run(guest_copy, dict(BASE, content='', dest='/nope/f'))
    assert result['failed'] and "its directory '/nope' does not exist in the guest" in result['msg']
    assert sorted(harness.guest.files) == []


@pytest.mark.parametrize('args, message', [
    (dict(content='x', dest='rel'), 'absolute'),
    (dict(content='x', dest='/tmp'), 'is a directory'),
    (dict(content='x', dest='/tmp/'), 'ends with a path separator'),
    (dict(content='x', dest='/nope/f'), "Uploading to '/nope/f' failed for VM 'web01': its directory '/nope' does "
                                        "not exist in the guest"),
    (dict(content='x', dest='/tmp/f', mode='rw'), 'octal'),
    (dict(src='/does/not/exist', dest='/tmp/f'), 'not a readable file'),
])
def test_copy_failures(harness, args, message):
    result = harness.run(guest_copy, dict(BASE, **args))
    assert result['failed'] and message in result['msg']


def test_fetch(harness, tmp_path):
    harness.guest.files['/var/log/app.log'] = b'line1\nline2\n'
    dest = str(tmp_path / 'out') + '/'
    first = harness.run(guest_fetch, dict(BASE, src='/var/log/app.log', dest=dest))
    assert first['changed'] and first['dest'] == dest + 'app.log' and first['size'] == 12
    assert open(first['dest'], 'rb').read() == b'line1\nline2\n'
    assert first['checksum'] == hashlib.sha1(b'line1\nline2\n').hexdigest()
    assert harness.run(guest_fetch, dict(BASE, src='/var/log/app.log', dest=dest))['changed'] is False
    with open(first['dest'], 'wb') as handle:
        handle.write(b'local edit')
    check = harness.run(guest_fetch, dict(BASE, src='/var/log/app.log', dest=first['dest']), check_mode=True)
    assert check['changed'] and open(first['dest'], 'rb').read() == b'local edit'
    assert sorted(os.listdir(str(tmp_path / 'out'))) == ['app.log']


def test_fetch_returns_an_absolute_dest(harness, tmp_path, monkeypatch):
    harness.guest.files['/var/log/app.log'] = b'x'
    monkeypatch.chdir(str(tmp_path))
    for dest, expected in (('logs/', tmp_path / 'logs' / 'app.log'), ('copy.log', tmp_path / 'copy.log')):
        result = harness.run(guest_fetch, dict(BASE, src='/var/log/app.log', dest=dest))
        assert result['changed'] and result['dest'] == str(expected) and os.path.isabs(result['dest'])
        assert expected.read_bytes() == b'x'
    assert harness.run(guest_fetch, dict(BASE, src='/var/log/app.log', dest='logs/'),
                       check_mode=True)['dest'] == str(tmp_path / 'logs' / 'app.log')


def test_fetch_local_problems(harness, tmp_path):
    harness.guest.files['/var/log/app.log'] = b'x'
    blocker = tmp_path / 'file'
    blocker.write_bytes(b'')
    result = harness.run(guest_fetch, dict(BASE, src='/var/log/app.log', dest=str(blocker / 'sub' / 'app.log')))
    assert result['failed'] and 'cannot be created or written on the host running the module' in result['msg']
    result = harness.run(guest_fetch, dict(BASE, src='relative.log', dest=str(tmp_path) + '/'))
    assert result['failed'] and "src must be an absolute path in the guest, got 'relative.log'" in result['msg']
    assert os.listdir(str(tmp_path)) == ['file']


def test_fetch_missing(harness, tmp_path):
    result = harness.run(guest_fetch, dict(BASE, src='/nope', dest=str(tmp_path) + '/'))
    assert result['failed'] and 'does not exist in the guest' in result['msg']
    result = harness.run(guest_fetch, dict(BASE, src='/nope', dest=str(tmp_path) + '/', fail_on_missing=False))
    assert result['changed'] is False and not result.get('failed')
    result = harness.run(guest_fetch, dict(BASE, src='/tmp', dest=str(tmp_path) + '/'))
    assert result['failed'] and 'is a directory' in result['msg']


# --------------------------------------------------------------------------- guards that once let regressions through

def test_status_reads_only_the_jobs_own_output_files(harness):
    # A handle may name the caller's own stdout_path (guest_exec stdout_path=...); the module must
    # not download a file outside the job's directory, whatever the handle says.
    harness.guest.files['/etc/shadow'] = b'root:secret'
    job = harness.run(guest_exec, dict(BASE, cmd='x', wait=False))['job']
    harness.guest.files[job['stderr_path']] = b'own\n'
    done = harness.run(guest_exec_status, dict(CONNECTION, job=dict(job, stdout_path='/etc/shadow'), **GUEST))
    assert done['finished'] and done['stdout'] == '' and done['stderr'] == 'own'
    assert 'secret' not in as_json(done)
    sneaky = dict(job, stdout_path=job['temp_dir'] + '/../../etc/shadow')
    assert harness.run(guest_exec_status, dict(CONNECTION, job=sneaky, **GUEST))['stdout'] == ''


def test_copy_notices_a_source_that_changed_during_the_upload(harness, tmp_path):
    src = tmp_path / 'growing.log'
    src.write_bytes(b'a' * 1000)
    real = harness.guest.http

    def rewrite_then_send(method, url, data=None, **kwargs):
        if method == 'PUT':
            with open(str(src), 'r+b') as handle:  # same size, other bytes, while the upload runs
                handle.write(b'b' * 1000)
        return real(method, url, data=data, **kwargs)
    harness.monkeypatch.setattr(harness.guest, 'http', rewrite_then_send)
    result = harness.run(guest_copy, dict(BASE, src=str(src), dest='/tmp/copy.log'))
    assert result.get('failed') and result['changed'] is False
    assert "Uploading to '/tmp/copy.log' failed: the local source changed during the upload." == result['msg']


@pytest.mark.parametrize('option, value, field', [('owner', 1000, 'ownerId'), ('group', 50, 'groupId')])
def test_copy_corrects_owner_and_group_drift(harness, monkeypatch, option, value, field):
    harness.guest.files['/tmp/app.conf'] = b'same'
    changes = []
    monkeypatch.setattr(harness.guest, 'ChangeFileAttributesInGuest',
                        lambda vm, auth, guestFilePath, fileAttributes: changes.append((guestFilePath, fileAttributes)))
    result = harness.run(guest_copy, dict(BASE, content='same', dest='/tmp/app.conf', **{option: value}))
    assert result['changed'] is True and not result.get('failed')
    assert [(path, getattr(attrs, field)) for path, attrs in changes] == [('/tmp/app.conf', value)]
    # the fake guest reports owner 0 and group 0: asking for those changes nothing
    changes[:] = []
    assert harness.run(guest_copy, dict(BASE, content='same', dest='/tmp/app.conf', **{option: 0}))['changed'] is False
    assert changes == []


def test_exec_terminates_the_program_after_an_unexpected_error(harness, monkeypatch):
    harness.guest.behaviour = lambda command: (None, b'', b'')
    real = _guest.GuestClient.wait_for_exit
    waits = []

    def bug(self, pid, timeout):
        waits.append(pid)
        if len(waits) == 1:
            raise KeyError('a bug while waiting')
        return real(self, pid, timeout)  # the wait for the terminated program
    monkeypatch.setattr(_guest.GuestClient, 'wait_for_exit', bug)
    with pytest.raises(KeyError, match='a bug while waiting'):
        harness.run(guest_exec, dict(BASE, cmd='sleep 100'))
    assert len(harness.guest.started) == 1
    assert harness.guest.terminated == list(harness.guest.processes)
    assert harness.guest.dirs == {'/tmp'} and all(s.logged_out for s in harness.sessions)


def test_exec_terminates_the_program_after_a_failed_poll(harness, monkeypatch):
    harness.guest.behaviour = lambda command: (None, b'', b'')
    real = harness.guest.ListProcessesInGuest
    polls = []

    def denied_once(vm, auth, pids=None):
        polls.append(pids)
        if len(polls) == 1:
            raise vim.fault.GuestPermissionDenied()
        return real(vm, auth, pids=pids)
    monkeypatch.setattr(harness.guest, 'ListProcessesInGuest', denied_once)
    result = harness.run(guest_exec, dict(BASE, cmd='sleep 100'))
    assert result['failed'] and result['fault'] == 'GuestPermissionDenied'
    assert harness.guest.terminated == [result['pid']] and harness.guest.dirs == {'/tmp'}


def _short_transfers(harness, monkeypatch, short):
    """GET answers that stop early: the first ``short`` downloads send only 2 bytes."""
    real = harness.guest.http
    gets = []

    def http(method, url, data=None, **kwargs):
        response = real(method, url, data=data, **kwargs)
        if method == 'GET':
            gets.append(url)
            if len(gets) <= short:
                whole = b''.join(response.iter_content(4))
                response.iter_content = lambda chunk_size: iter([whole[:2]])
        return response
    monkeypatch.setattr(harness.guest, 'http', http)
    return gets


def test_fetch_refuses_a_short_download(harness, monkeypatch, tmp_path):
    harness.guest.files['/var/log/app.log'] = b'line1\nline2\n'
    gets = _short_transfers(harness, monkeypatch, short=99)
    result = harness.run(guest_fetch, dict(BASE, src='/var/log/app.log', dest=str(tmp_path) + '/'))
    assert result.get('failed') and 'the transfer ended after 2 of 12 bytes' in result['msg'] and result['retryable']
    assert len(gets) == 3 and os.listdir(str(tmp_path)) == []


def test_fetch_repeats_a_short_download(harness, monkeypatch, tmp_path):
    harness.guest.files['/var/log/app.log'] = b'line1\nline2\n'
    gets = _short_transfers(harness, monkeypatch, short=1)
    result = harness.run(guest_fetch, dict(BASE, src='/var/log/app.log', dest=str(tmp_path) + '/'))
    assert result['changed'] and result['size'] == 12 and len(gets) == 2
    assert (tmp_path / 'app.log').read_bytes() == b'line1\nline2\n'


@pytest.mark.parametrize('umask', [0o022, 0o077])
def test_a_fetched_new_file_gets_0644_less_the_umask(harness, tmp_path, umask):
    harness.guest.files['/var/log/app.log'] = b'x'
    old = os.umask(umask)
    try:
        result = harness.run(guest_fetch, dict(BASE, src='/var/log/app.log', dest=str(tmp_path / 'app.log')))
    finally:
        os.umask(old)
    assert result['changed']
    assert os.stat(result['dest']).st_mode & 0o7777 == 0o644 & ~umask


def test_a_fetched_file_keeps_the_mode_of_the_file_it_replaces(harness, tmp_path):
    harness.guest.files['/var/log/app.log'] = b'new'
    dest = tmp_path / 'app.log'
    dest.write_bytes(b'old')
    os.chmod(str(dest), 0o600)
    assert harness.run(guest_fetch, dict(BASE, src='/var/log/app.log', dest=str(dest)))['changed']
    assert dest.read_bytes() == b'new' and os.stat(str(dest)).st_mode & 0o7777 == 0o600


@pytest.mark.parametrize('module, args', [
    (guest_fetch, dict(src='/var/log/app.log', dest='OUT')),
    (guest_copy, dict(content='x', dest='/tmp/x')),
    (guest_exec, dict(cmd='x')),
    (guest_exec, dict(cmd='x', guest_password='wrong')),
])
def test_every_http_session_is_closed(harness, monkeypatch, tmp_path, module, args):
    harness.guest.files['/var/log/app.log'] = b'x'
    opened, closed = [], []
    real_init, real_close = _requests.Session.__init__, _requests.Session.close

    def init(self, *a, **kw):
        opened.append(self)
        real_init(self, *a, **kw)

    def close(self):
        closed.append(self)
        real_close(self)
    monkeypatch.setattr(_requests.Session, '__init__', init)
    monkeypatch.setattr(_requests.Session, 'close', close)
    args = dict(args, dest=str(tmp_path / 'out')) if args.get('dest') == 'OUT' else args
    harness.run(module, dict(BASE, **args))
    assert set(opened) == set(closed)
    assert opened or args.get('guest_password') == 'wrong'
