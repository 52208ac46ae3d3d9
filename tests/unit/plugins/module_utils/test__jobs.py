# -*- coding: utf-8 -*-
# Copyright (c) guestops.vsphere contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import os
import stat

import pytest

from pyVmomi import vim  # noqa: E402

from ansible_collections.guestops.vsphere.plugins.module_utils import _exec, _session_cache  # noqa: E402
from ansible_collections.guestops.vsphere.plugins.module_utils._faults import VSphereError  # noqa: E402
from ansible_collections.guestops.vsphere.plugins.module_utils._module import (  # noqa: E402
    InProcessModule,
    ModuleExit,
)
from ansible_collections.guestops.vsphere.plugins.module_utils._vsphere import VirtualMachine  # noqa: E402


NOW = 1796000000


class Entry(object):
    def __init__(self, path, kind='directory'):
        self.path = path
        self.type = kind


class FakeClient(object):
    """Just enough of GuestClient for the job steps."""

    channel = 'esxi'

    def prefetch(self, paths, limit, directory=None):
        self.prefetched = (list(paths), limit, directory)

    def __init__(self, listing=(), files=None):
        self.vm = VirtualMachine(vim.VirtualMachine('vm-1'), {'name': 'web01'})
        self.listing = list(listing)
        self.files = dict(files or {})
        self.deleted = []
        self.made = []

    def make_temp_dir(self, prefix, directory_path=None):
        path = '%s/%svmware8' % (directory_path or '/tmp/vmware-root_1-2', prefix)
        self.made.append(path)
        return path

    def list_dir(self, path, match_pattern=None):
        self.listed = (path, match_pattern)
        return self.listing

    def delete(self, path):
        self.deleted.append(path)
        return True

    def stat(self, path):
        return {'type': 'directory'} if path in self.files else None

    def download_bytes(self, path, limit=None):
        data = self.files.get(path)
        if isinstance(data, Exception):
            raise data
        if data is None:
            raise VSphereError('missing', fault=vim.fault.FileNotFound(file=path))
        return type('D', (), dict(data=data, truncated=False, size=len(data)))()


def test_prepare_names_the_directory_with_expiry_and_proof():
    client = FakeClient()
    job = _exec.prepare_job(client, 'linux', timeout=60, retention=300, now=lambda: NOW)
    name = os.path.basename(job.temp_dir)
    expires, proof = _exec.parse_job_dir(name)
    assert expires == NOW + 60 + _exec.DEADLINE_GRACE + 300 == job.expires
    assert proof == _exec.proof_of(job.token) and job.token not in job.temp_dir
    handle = job.handle()
    assert _exec.Job.from_handle(handle).temp_dir == job.temp_dir


def test_a_handle_with_another_directory_is_refused():
    job = _exec.prepare_job(FakeClient(), 'linux', 60, 0, now=lambda: NOW)
    other = _exec.prepare_job(FakeClient(), 'linux', 60, 0, now=lambda: NOW)
    with pytest.raises(VSphereError, match='token does not belong'):
        _exec.Job.from_handle(dict(job.handle(), temp_dir=other.temp_dir))
    with pytest.raises(VSphereError, match='not a directory made by guest_exec'):
        _exec.Job.from_handle(dict(job.handle(), temp_dir='/tmp/ansible-exec-victim'))


def test_sweep_deletes_only_our_expired_directories():
    now = NOW
    listing = [
        Entry('ansible-exec-x1795999000-0123456789abcdef-vmware2'),          # expired: swept
        Entry('ansible-exec-x1796001000-0123456789abcdef-vmware4'),          # not yet expired
        Entry('ansible-exec-x1795999000-0123456789abcdef-vmware5', 'file'),  # not a directory
        Entry('ansible-exec-victim'),                                  # not one of ours
        Entry('ansible-run-x1795999000-0123456789abcdef-vmware6'),           # another prefix
    ]
    client = FakeClient(listing)
    swept = _exec.sweep_expired(client, '/tmp/vmware-root_1-2', now)
    assert swept == client.deleted == ['/tmp/vmware-root_1-2/ansible-exec-x1795999000-0123456789abcdef-vmware2']
    assert client.listed[1].startswith('^ansible-exec-x')


def test_sweep_failures_are_warnings():
    client = FakeClient()

    def agent_gone(path, match_pattern=None):
        raise VSphereError('agent gone')
    client.list_dir = agent_gone
    warnings = []
    assert _exec.sweep_expired(client, '/tmp', 1, warn=warnings.append) == []
    assert 'agent gone' in warnings[0]


def _started_job(client):
    job = _exec.prepare_job(client, 'linux', 60, 0, now=lambda: NOW)
    job.pid = 42
    return job


def test_outcome_prefers_the_rc_file_and_sees_the_deadline():
    client = FakeClient()
    job = _started_job(client)
    client.files[job.files.rc] = b'3\n'
    assert _exec.outcome(client, job, record_code=0).rc == 3
    client.files[job.files.rc] = b'143\n'
    client.files[job.files.deadline] = b'70\n'
    found = _exec.outcome(client, job, record_code=0)
    assert found.rc == 143 and found.timed_out


def test_outcome_on_windows_prefers_the_rc_file_over_cmd_exes_code():
    # vSphere's record holds cmd.exe's exit code; the wrapper records the inner command's.
    client = FakeClient()
    job = _exec.prepare_job(client, 'windows', 60, 0, directory_path='C:\\Temp', now=lambda: NOW)
    job.pid = 42
    client.files[job.files.rc] = b'3 \r\n'
    found = _exec.outcome(client, job, record_code=0)
    assert (found.rc, found.timed_out, found.note) == (3, False, None)
    client.files[job.files.rc] = b'-1073741510\r\n'
    assert _exec.outcome(client, job, record_code=1).rc == -1073741510


def test_outcome_never_reads_a_missing_rc_as_success():
    client = FakeClient()
    job = _started_job(client)
    with pytest.raises(VSphereError, match='no longer exists'):
        _exec.outcome(client, job, record_code=0)
    client.files[job.temp_dir] = b''
    found = _exec.outcome(client, job, record_code=None)
    assert found.rc is None and 'without recording' in found.note


def test_outcome_falls_back_to_vspheres_record_when_the_rc_file_cannot_be_read():
    client = FakeClient()
    job = _started_job(client)
    client.files[job.files.rc] = VSphereError('transfer broke', retryable=True)
    found = _exec.outcome(client, job, record_code=7)
    assert found.rc == 7 and 'could not be read' in found.note
    with pytest.raises(VSphereError, match='transfer broke'):
        _exec.outcome(client, job, record_code=None)


def test_kept_sessions_are_private_files(tmp_path, monkeypatch):
    monkeypatch.setenv('HOME', str(tmp_path))
    path = _session_cache.cache_path('run1', 'vc', 443, 'user', 'secret')
    assert 'secret' not in path and 'run1' not in path
    assert _session_cache.load(path) is None
    _session_cache.save(path, dict(session_id='abc', version='vim.version.v8_0_3_0', content={}))
    assert _session_cache.load(path)['session_id'] == 'abc'
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode) == 0o700
    assert path != _session_cache.cache_path('run1', 'vc', 443, 'user', 'other password')
    _session_cache.forget(path)
    assert _session_cache.load(path) is None


SPEC = dict(name=dict(type='str', required=True), secret=dict(type='str', no_log=True), count=dict(type='int'))


def test_in_process_module_validates_like_ansible_module():
    with pytest.raises(ModuleExit) as done:
        InProcessModule('ns.c.m', dict(count='x'), False, SPEC)
    assert done.value.result['failed'] and 'name' in done.value.result['msg']
    with pytest.raises(ModuleExit) as done:
        InProcessModule('ns.c.m', dict(name='a', bogus=1), False, SPEC)
    assert 'Unsupported parameters for (ns.c.m) module' in done.value.result['msg']


def test_in_process_module_masks_secrets_and_skips_unsupported_check_mode():
    module = InProcessModule('ns.c.m', dict(name='a', secret='hunter22', count='3'), False, SPEC)
    assert module.params['count'] == 3
    with pytest.raises(ModuleExit) as done:
        module.exit_json(echo='the secret is hunter22')
    assert 'hunter22' not in repr(done.value.result)
    with pytest.raises(ModuleExit) as done:
        InProcessModule('ns.c.m', dict(name='a'), True, SPEC, supports_check_mode=False)
    assert done.value.result['skipped']


def test_stale_kept_sessions_are_forgotten(tmp_path, monkeypatch):
    monkeypatch.setenv('HOME', str(tmp_path))
    old = _session_cache.cache_path('old', 'vc', 443, 'user', 'pw')
    _session_cache.save(old, dict(session_id='abc', version='v', content={}))
    os.utime(old, (1000, 1000))
    _session_cache.cache_path('new', 'vc', 443, 'user', 'pw')
    assert not os.path.exists(old)


def test_a_kept_session_whose_ansible_process_ended_is_abandoned(tmp_path, monkeypatch):
    monkeypatch.setenv('HOME', str(tmp_path))
    alive = _session_cache.cache_path('alive', 'vc', 443, 'user', 'pw')
    dead = _session_cache.cache_path('dead', 'vc', 443, 'user', 'pw')
    other = _session_cache.cache_path('other', 'vc2', 443, 'user', 'pw')
    me = dict(owner_pid=os.getpid(), owner_start=_session_cache.process_start(os.getpid()))
    base = dict(version='v', content={}, hostname='vc', port=443)
    _session_cache.save(alive, dict(base, session_id='a', **me))
    _session_cache.save(dead, dict(base, session_id='d', owner_pid=os.getpid(), owner_start=-1))
    _session_cache.save(other, dict(base, session_id='o', hostname='vc2', owner_pid=os.getpid(), owner_start=-1))
    assert [kept['session_id'] for path, kept in _session_cache.abandoned('vc', 443)] == ['d']


# What Wine's wmic.exe wrote for `wmic process get ParentProcessId,ProcessId` (UTF-16 with a byte
# order mark, header names glued together): launcher 356 -> cmd 364 -> cmd 372 -> sleep 380.
WMIC_OUTPUT = ('ParentProcessIDProcessID\r\n40   56   \r\n56   92   \r\n0    356  \r\n356  364  \r\n'
               '364  372  \r\n372  380  \r\n364  390  \r\n0    388  \r\n388  396  \r\n').encode('utf-16')


def test_process_tree_from_wmic_output():
    tree = _exec.parse_process_tree(WMIC_OUTPUT)
    assert tree[364] == [372, 390] and tree[372] == [380] and 0 in tree
    assert _exec.descendants(tree, 364) == [372, 390, 380]
    assert _exec.descendants(tree, 380) == []
    assert _exec.descendants(_exec.parse_process_tree(b'1 2\n2 1\n'), 1) == [2]
    assert _exec.parse_process_tree('ParentProcessId  ProcessId\nnoise\n\n7 8\n') == {7: [8]}


class WindowsClient(FakeClient):
    """Records the helper programs and terminations of end_program on a Windows guest."""

    def __init__(self, taskkill_code, wmic_code=0, listing=WMIC_OUTPUT):
        FakeClient.__init__(self)
        self.codes = {'taskkill.exe': taskkill_code, 'cmd.exe': wmic_code}
        self.listing_data = listing
        self.started = []
        self.terminated = []

    def start_program(self, spec, marker=None):
        self.started.append(spec)
        return 1000 + len(self.started)

    def wait_for_exit(self, pid, timeout):
        if pid < 1000:
            return None
        name = self.started[pid - 1001].program_path.rsplit('\\', 1)[1].lower()
        return type('E', (), dict(exit_code=self.codes[name]))()

    def download_bytes(self, path, limit=None):
        assert path.endswith('\\processes')
        data = self.listing_data.pop(0) if isinstance(self.listing_data, list) else self.listing_data
        return type('D', (), dict(data=data, truncated=False, size=len(data)))()

    def terminate(self, pid):
        self.terminated.append(pid)
        return True


def _windows_job():
    job = _exec.Job({}, 'windows', 'C:\\Users\\A\\AppData\\Local\\Temp\\ansible-exec-x1-ab-vmware2', 't', 1,
                    pid=364)
    return job


def test_end_program_on_windows_uses_taskkill_for_the_tree():
    client = WindowsClient(taskkill_code=0)
    warnings = []
    assert _exec.end_program(client, _windows_job(), warnings)
    assert [(s.program_path, s.arguments) for s in client.started] == [(_exec.TASKKILL, '/T /F /PID 364')]
    assert client.terminated == [364] and warnings == []


def test_end_program_on_windows_lists_the_tree_when_taskkill_cannot():
    client = WindowsClient(taskkill_code=1)
    warnings = []
    assert _exec.end_program(client, _windows_job(), warnings)
    assert client.started[1].program_path == 'C:\\Windows\\System32\\cmd.exe'
    assert 'wmic.exe process get ParentProcessId,ProcessId 1>"C:\\' in client.started[1].arguments
    # The parent first (so it starts nothing more), then what it started, from the list taken while it ran.
    assert client.terminated == [364, 372, 390, 380] and warnings == []


def test_end_program_on_windows_ends_a_program_the_tree_started_after_it_was_listed():
    late = WMIC_OUTPUT.decode('utf-16') + '390  400  \r\n400  410  \r\n'
    client = WindowsClient(taskkill_code=1, listing=[WMIC_OUTPUT, late.encode('utf-16'), late.encode('utf-16')])
    warnings = []
    assert _exec.end_program(client, _windows_job(), warnings)
    assert client.terminated == [364, 372, 390, 380, 400, 410] and warnings == []
    wmic_runs = [s for s in client.started if 'wmic.exe' in s.arguments]
    assert len(wmic_runs) == 3  # the first listing, the one that found 400 and 410, and one that found nothing new


def test_end_program_on_windows_warns_when_the_tree_is_unknown():
    client = WindowsClient(taskkill_code=1, wmic_code=1)
    warnings = []
    _exec.end_program(client, _windows_job(), warnings)
    assert client.terminated == [364]
    assert 'could not be listed' in warnings[0]


def test_end_program_on_linux_terminates_the_wrapper_only():
    client = WindowsClient(taskkill_code=0)
    job = _started_job(client)
    _exec.end_program(client, job, [])
    assert client.started == [] and client.terminated == [42]


class UploadingClient(WindowsClient):
    """Records uploads as well as started programs."""

    def __init__(self):
        WindowsClient.__init__(self, taskkill_code=0)
        self.uploads = {}

    def upload(self, fileobj, size, guest_path, overwrite=True, attributes=None):
        data = fileobj.read()
        assert len(data) == size
        self.uploads[guest_path] = data


def _powershell_request(script):
    return _exec.ProgramRequest(cmd=script, shell='powershell', timeout=60)


def test_a_short_powershell_script_starts_inline_without_an_upload():
    client = UploadingClient()
    job = _windows_job()
    _exec.start_job(client, job, _powershell_request('Write-Output hi'))
    assert client.uploads == {}
    assert job.script_delivery == 'encoded_command'
    assert '-EncodedCommand' in client.started[0].arguments


def test_a_long_powershell_script_is_uploaded_into_the_job_directory_and_run_with_file():
    client = UploadingClient()
    job = _windows_job()
    script = 'Write-Output "%s"\n' % ('x' * 100) * 40
    _exec.start_job(client, job, _powershell_request(script))
    path = job.temp_dir + '\\' + _exec.POWERSHELL_SCRIPT_NAME
    assert list(client.uploads) == [path]
    assert client.uploads[path].decode('utf-8-sig').splitlines()[1:-1] == script.splitlines()
    assert job.script_delivery == 'uploaded_file'
    assert '-File ^"%s^"' % path in client.started[0].arguments
    assert '-EncodedCommand' not in client.started[0].arguments


def test_powershell_on_a_linux_guest_fails_before_anything_runs():
    client = UploadingClient()
    job = _started_job(client)
    with pytest.raises(VSphereError, match='shell=powershell needs a Windows guest'):
        _exec.start_job(client, job, _powershell_request('Get-Date'))
    assert client.started == [] and client.uploads == {}


def test_a_cmd_line_too_long_for_cmd_exe_is_not_uploaded_but_refused():
    client = UploadingClient()
    with pytest.raises(VSphereError, match='at most 8191'):
        _exec.start_job(client, _windows_job(), _exec.ProgramRequest(cmd='echo ' + 'x' * 9000, timeout=60))
    assert client.started == [] and client.uploads == {}
