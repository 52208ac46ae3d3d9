# -*- coding: utf-8 -*-
# Copyright (c) guestops.vsphere contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The pure parts of the vmtools connection plugin, the shell pieces it runs in the guest (run here
with this machine's /bin/sh), the rc-file wait and the kept-session file rules."""

from __future__ import annotations

import datetime
import os
import subprocess
import time
from unittest import mock

import pytest

from ansible.errors import AnsibleError

from ansible_collections.guestops.vsphere.plugins.connection.vmtools import (
    connection_message,
    feed_become,
    guest_command,
    is_windows,
    selector_key,
    strip_prompt,
    vm_selector,
)
from ansible_collections.guestops.vsphere.plugins.module_utils import _session_cache
from ansible_collections.guestops.vsphere.plugins.module_utils._command_line import build_program, output_paths
from ansible_collections.guestops.vsphere.plugins.module_utils._exec import Job, wait_for_rc_file
from ansible_collections.guestops.vsphere.plugins.module_utils._faults import VSphereError
from ansible_collections.guestops.vsphere.plugins.module_utils._guest import GuestClient, WaitTimeout
from ansible_collections.guestops.vsphere.plugins.module_utils._vsphere import VirtualMachine, VSphereSession, vim
from ansible_collections.guestops.vsphere.tests.unit.plugins.fake_clock import FakeClock


# --------------------------------------------------------------------------- VM selection

@pytest.mark.parametrize('options, expected', [
    (dict(remote_addr='web01'), dict(name='web01', datacenter=None, folder=None)),
    (dict(remote_addr='web01', datacenter='DC1', folder='F0'), dict(name='web01', datacenter='DC1', folder='F0')),
    (dict(remote_addr='ignored', vm_uuid='4211-aa'), dict(uuid='4211-aa')),
    (dict(remote_addr='ignored', vm_moid='vm-42'), dict(moid='vm-42')),
    (dict(remote_addr='ignored', vm_path='DC0/vm/F0/DUP_VM'), dict(name='DUP_VM', datacenter='DC0', folder='/DC0/vm/F0')),
    (dict(vm_path='/DC0/vm/web01/'), dict(name='web01', datacenter='DC0', folder='/DC0/vm')),
])
def test_vm_selector(options, expected):
    assert vm_selector(options) == expected


@pytest.mark.parametrize('options, message', [
    (dict(vm_uuid='u', vm_moid='vm-1'), 'selected twice'),
    (dict(vm_path='DC0/F0/web01'), 'not DATACENTER/vm'),
    (dict(vm_path='web01'), 'not DATACENTER/vm'),
    (dict(remote_addr=''), 'No VM to connect to'),
])
def test_vm_selector_refuses(options, message):
    with pytest.raises(AnsibleError, match=message):
        vm_selector(options)


def test_connection_message_names_the_connections_transfer_variables():
    unreachable = VSphereError('cannot be reached. Set transfer_host, or set transfer_mode=vcenter.')
    assert connection_message(unreachable).endswith(
        '(For this connection they are the variables ansible_vmtools_transfer_host and ansible_vmtools_transfer_mode.)')
    assert connection_message(VSphereError('guest login refused')) == 'guest login refused'


def test_selector_key_is_stable():
    assert selector_key(dict(name='a', folder=None)) == selector_key(dict(folder=None, name='a'))
    assert selector_key(dict(name='a')) != selector_key(dict(name='b'))


@pytest.mark.parametrize('props, shell, expected', [
    ({'guest.guestFamily': 'linuxGuest', 'guest.guestId': 'otherLinux64Guest'}, 'sh', False),
    ({'guest.guestFamily': 'windowsGuest'}, 'sh', True),
    ({'guest.guestFamily': None, 'guest.guestId': 'windows2019srv_64Guest'}, 'sh', True),
    ({'guest.guestFamily': 'linuxGuest'}, 'powershell', True),
    ({}, 'sh', False),
])
def test_is_windows(props, shell, expected):
    assert is_windows(props, shell) is expected


@pytest.mark.parametrize('data, prompt, expected', [
    (b'[sudo via ansible, key=abc] password: oops\n', '[sudo via ansible, key=abc] password:', b'oops\n'),
    (b'before\n[p] password:after', '[p] password:', b'before\nafter'),
    (b'nothing to strip\n', '[p] password:', b'nothing to strip\n'),
    (b'kept\n', None, b'kept\n'),
])
def test_strip_prompt(data, prompt, expected):
    assert strip_prompt(data, prompt) == expected


# --------------------------------------------------------------------------- what runs in the guest

def _run(command, cwd, stdin=None, env=None):
    return subprocess.run(['/bin/sh', '-c', command], cwd=str(cwd), input=stdin, env=env, timeout=30,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)


def test_guest_command_starts_in_home_with_tmpdir_in_the_job_directory(tmp_path):
    home, job = tmp_path / 'home', tmp_path / "job dir's"
    home.mkdir()
    job.mkdir()
    done = _run(guest_command('pwd; echo "$TMPDIR"; python3 -c "import tempfile; print(tempfile.gettempdir())"',
                              str(job)), tmp_path, env=dict(os.environ, HOME=str(home)))
    assert done.stdout.decode().splitlines() == [str(home), str(job), str(job)]


def test_wrapper_feeds_the_stdin_file_to_the_command(tmp_path):
    out, err, rc = output_paths(str(tmp_path), 'linux')
    stdin = tmp_path / 'stdin'
    stdin.write_bytes(b'line one\nline two\n')
    spec = build_program('linux', cmd='cat; exit 3', stdout_path=out, stderr_path=err, rc_path=rc,
                         stdin_path=str(stdin))
    done = subprocess.run(['/bin/sh', '-c', '"%s" %s' % (spec.program_path, spec.arguments)], timeout=30, check=False)
    assert done.returncode == 3
    assert open(out, 'rb').read() == b'line one\nline two\n'
    assert open(rc).read().strip() == '3'


FAKE_SUDO = r'''
printf '%s' "$PROMPT" >&2
if [ -n "$ASK" ]; then IFS= read -r pw; [ "$pw" = secret ] || { echo 'Sorry, try again.' >&2; exit 1; }; fi
exec /bin/sh -c "echo $MARK; cat"
'''


@pytest.mark.parametrize('ask, expected_stdout', [
    ('1', b'BECOME-SUCCESS-x\nthe module\n'),   # the prompt comes: the password line goes to sudo
    ('', b'BECOME-SUCCESS-x\nthe module\n'),    # no prompt (no password needed): the line is skipped
])
def test_become_feeder_answers_only_a_prompt(tmp_path, ask, expected_stdout):
    stdin, out, err, ended = (tmp_path / n for n in ('stdin', 'stdout', 'stderr', 'ended'))
    stdin.write_bytes(b'secret\nthe module\n')
    prompt = '[sudo via ansible, key=x] password:'
    command = feed_become("/bin/sh -c %s" % _quote(FAKE_SUDO), prompt, 'BECOME-SUCCESS-x', str(stdin), str(err),
                          str(out), str(ended))
    env = dict(os.environ, PROMPT=prompt if ask else '', ASK=ask, MARK='BECOME-SUCCESS-x')
    started = time.monotonic()
    done = subprocess.run(['/bin/sh', '-c', command], stdout=open(out, 'wb'), stderr=open(err, 'wb'), env=env,
                          timeout=30, check=False)
    assert done.returncode == 0
    assert out.read_bytes() == expected_stdout
    assert ended.exists()
    assert time.monotonic() - started < 10


def test_become_feeder_stops_when_the_command_ends_without_prompt_or_marker(tmp_path):
    stdin, out, err, ended = (tmp_path / n for n in ('stdin', 'stdout', 'stderr', 'ended'))
    stdin.write_bytes(b'secret\n')
    command = feed_become('echo not allowed >&2; exit 1', 'PROMPT:', 'BECOME-SUCCESS-y', str(stdin), str(err),
                          str(out), str(ended))
    started = time.monotonic()
    done = subprocess.run(['/bin/sh', '-c', command], stdout=open(out, 'wb'), stderr=open(err, 'wb'), timeout=30,
                          check=False)
    assert done.returncode == 1
    assert time.monotonic() - started < 5
    assert b'secret' not in out.read_bytes()


def _quote(text):
    return "'" + text.replace("'", "'\"'\"'") + "'"


# --------------------------------------------------------------------------- the rc-file wait

def _client():
    session = VSphereSession('vc.example.com', 'user', 'pw', 443, False)
    session.si = mock.Mock()
    file_manager, process_manager = mock.Mock(), mock.Mock()
    session._guest_managers = dict(fileManager=file_manager, processManager=process_manager, authManager=mock.Mock())
    clock = FakeClock()
    session._sleep, session._clock = clock.sleep, clock
    vm = VirtualMachine(vim.VirtualMachine('vm-7'), {'name': 'web01'})
    client = GuestClient(session, vm, 'root', 'pw', sleep=clock.sleep, clock=clock)
    job = Job({'moid': 'vm-7', 'name': 'web01'}, 'linux', '/tmp/job', 'token', 0, pid=42)
    return client, file_manager, process_manager, clock, job


def _listing(**sizes):
    files = [vim.vm.guest.FileManager.FileInfo(path=name, type='file', size=size) for name, size in sizes.items()]
    return vim.vm.guest.FileManager.ListFileInfo(files=files, remaining=0)


def _proc(ended):
    now = datetime.datetime(2025, 1, 1, tzinfo=datetime.timezone.utc)
    return vim.vm.guest.ProcessManager.ProcessInfo(name='sh', pid=42, owner='root', cmdLine='x', startTime=now,
                                                   endTime=now if ended else None, exitCode=0 if ended else None)


def test_wait_for_rc_file_returns_sizes_once_the_rc_file_has_content():
    client, fm, pm, clock, job = _client()
    fm.ListFilesInGuest.side_effect = [_listing(stdout=0, stderr=0), _listing(stdout=5, stderr=0, rc=0),
                                       _listing(stdout=5, stderr=0, rc=2)]
    assert wait_for_rc_file(client, job, 60) == {'stdout': 5, 'stderr': 0, 'rc': 2}
    assert clock.sleeps[0] == pytest.approx(0.05)
    assert clock.now < 0.5
    pm.ListProcessesInGuest.assert_not_called()


def test_wait_for_rc_file_ends_when_the_wrapper_was_killed():
    client, fm, pm, clock, job = _client()
    fm.ListFilesInGuest.return_value = _listing(stdout=0, stderr=0)
    pm.ListProcessesInGuest.return_value = [_proc(ended=True)]
    assert wait_for_rc_file(client, job, 60) == {'stdout': 0, 'stderr': 0}
    assert pm.ListProcessesInGuest.call_count == 1


def test_wait_for_rc_file_times_out():
    client, fm, pm, clock, job = _client()
    fm.ListFilesInGuest.return_value = _listing(stdout=0)
    pm.ListProcessesInGuest.return_value = [_proc(ended=False)]
    with pytest.raises(WaitTimeout) as caught:
        wait_for_rc_file(client, job, 3)
    assert caught.value.pid == 42
    assert clock.now == pytest.approx(3)


# --------------------------------------------------------------------------- kept session files

@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(_session_cache, 'CACHE_DIR', str(tmp_path / 'sessions'))
    return tmp_path / 'sessions'


def test_save_never_overwrites_another_tasks_session(cache_dir):
    path = _session_cache.cache_path('run', 'vc', 443, 'user', 'pw')
    assert _session_cache.save(path, dict(session_id='first', version='v'))
    assert not _session_cache.save(path, dict(session_id='second', version='v'))
    assert _session_cache.load(path)['session_id'] == 'first'
    # The task that reattached to 'first' and had to log in again replaces its own session.
    assert _session_cache.save(path, dict(session_id='third', version='v'), replaces='first')
    assert _session_cache.load(path)['session_id'] == 'third'
    assert oct(os.stat(path).st_mode & 0o777) == '0o600'
    assert [name for name in os.listdir(str(cache_dir)) if name.startswith('.session-')] == []


def test_claim_watch_once_per_run_and_vcenter(cache_dir):
    owner = dict(owner_pid=os.getpid(), owner_start=_session_cache.process_start(os.getpid()))
    first = _session_cache.claim_watch('vc', 443, owner)
    assert first is not None
    assert _session_cache.claim_watch('vc', 443, owner) is None
    assert _session_cache.claim_watch('other-vc', 443, owner) is not None
    assert _session_cache.load(first) is None  # a marker is never taken for a session
    assert _session_cache.owner_alive(owner)
    assert not _session_cache.owner_alive(dict(owner, owner_start=-1))
