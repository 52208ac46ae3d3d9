# -*- coding: utf-8 -*-
# Copyright (c) guestops.vsphere contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The workflows behind the modules (run, job status, copy, fetch, cleanup, readiness).

Each takes a GuestClient (or a session and a VM) and returns a result dict;
failures raise VSphereError with the partial result attached. Private to the collection.
"""

from __future__ import annotations

import datetime
import hashlib
import io
import ntpath
import os
import posixpath
import tempfile
import time

from ansible_collections.guestops.vsphere.plugins.module_utils._vsphere import VSphereError, _fault_is
from ansible_collections.guestops.vsphere.plugins.module_utils._guest import (
    WaitTimeout,
    poll_delay,
)
from ansible_collections.guestops.vsphere.plugins.module_utils._command_line import (
    CommandLineError,
    build_program,
    output_paths,
)

DEFAULT_OUTPUT_LIMIT = 10 * 1024 * 1024
# Name prefix of guest_exec's private temp dirs; guest_exec_status deletes only directories named so.
EXEC_TEMP_PREFIX = 'ansible-exec-'
TERMINATE_GRACE = 15


def _now():
    return datetime.datetime.now()


def _stamp(moment):
    return moment.strftime('%Y-%m-%d %H:%M:%S.%f')


def _text(data):
    return data.decode('utf-8', 'replace')


def _lines(text):
    return text.splitlines()


def guest_os_of(requested, vm):
    """'linux' or 'windows': the requested OS, or the VM's guest family for 'auto'."""
    if requested in ('linux', 'windows'):
        return requested
    return 'windows' if vm.guest_family == 'windowsGuest' else 'linux'


def is_absolute(path, guest_os=None):
    """Whether path is absolute in a guest of that OS (with None: in a Linux or a Windows guest)."""
    if not path:
        return False
    if guest_os == 'linux':
        return posixpath.isabs(path)
    windows = len(ntpath.splitdrive(path)[0]) >= 2 and ntpath.isabs(path)
    return windows or (guest_os is None and posixpath.isabs(path))


def guest_basename(path, guest_os):
    """The last component of a guest path (trailing separators ignored)."""
    if guest_os == 'windows':
        return ntpath.basename(path.rstrip('\\/'))
    return posixpath.basename(path.rstrip('/'))


def exit_hint(rc, display, guest_os):
    """Advice for exit codes with a well-known meaning."""
    if guest_os == 'linux' and rc == 126:
        return ("Exit code 126: the program was found but could not be executed (permission denied). If it "
                "lives in a temporary directory, the file system is probably mounted noexec: create the "
                "directory elsewhere with directory_path, or run the file through an interpreter "
                "(for example argv: [/bin/sh, SCRIPT]).")
    if guest_os == 'linux' and rc == 127:
        return ("Exit code 127: the program was not found. Use an absolute path, or set PATH with env.")
    if guest_os == 'windows' and rc == 9009:
        return "Exit code 9009: cmd.exe did not find the program. Use an absolute path."
    return None


# --------------------------------------------------------------------------- creates / removes

def skip_reason(client, creates=None, removes=None):
    """Why a program need not run (like ansible.builtin.command), or None."""
    if creates and client.stat(creates) is not None:
        return "Did not run the program since '%s' exists" % creates
    if removes and client.stat(removes) is None:
        return "Did not run the program since '%s' does not exist" % removes
    return None


# --------------------------------------------------------------------------- output

def read_outputs(client, stdout_path, stderr_path, limit, result, warnings):
    """Download stdout/stderr into result (text, lines); notes truncation."""
    for key, path in (('stdout', stdout_path), ('stderr', stderr_path)):
        if not path:
            result[key] = ''
            result[key + '_lines'] = []
            continue
        try:
            download = client.download_bytes(path, limit=limit)
        except VSphereError as err:
            if err.fault is not None and _fault_is(err.fault, 'FileNotFound'):
                result[key] = ''
                result[key + '_lines'] = []
                continue
            raise
        text = _text(download.data).rstrip('\r\n')
        result[key] = text
        result[key + '_lines'] = _lines(text)
        if download.truncated:
            result[key + '_truncated'] = True
            warnings.append('%s was cut to the first %d bytes of %d (output_limit).' % (key, limit, download.size))


def _safe_delete(client, path, warnings):
    """Delete a guest path; a failure becomes a warning (it must not hide the real error)."""
    try:
        client.delete(path)
        return True
    except VSphereError as err:
        warnings.append("Could not delete the temporary directory '%s' in the guest: %s" % (path, err.msg))
        return False


def _safe_terminate(client, pid, warnings):
    try:
        client.terminate(pid)
        try:
            client.wait_for_exit(pid, TERMINATE_GRACE)
        except WaitTimeout:
            warnings.append('pid %s did not end within %s seconds of being terminated.' % (pid, TERMINATE_GRACE))
        return True
    except VSphereError as err:
        warnings.append('Could not terminate pid %s in the guest: %s' % (pid, err.msg))
        return False


# --------------------------------------------------------------------------- run a program

class ProgramRequest(object):
    """What guest_exec was asked to run (module options)."""

    FIELDS = ('cmd', 'argv', 'program', 'arguments', 'chdir', 'env', 'stdout_path', 'stderr_path',
              'wait', 'timeout', 'output_limit', 'creates', 'removes', 'directory_path', 'guest_os')

    def __init__(self, **values):
        for field in self.FIELDS:
            setattr(self, field, values.get(field))
        if self.wait is None:
            self.wait = True
        if self.timeout is None:
            self.timeout = 3600
        if self.output_limit is None:
            self.output_limit = DEFAULT_OUTPUT_LIMIT

    def display(self):
        if self.argv is not None:
            return list(self.argv)
        if self.cmd is not None:
            return self.cmd
        return ('%s %s' % (self.program, self.arguments or '')).strip()


def run_program(client, request, check_mode=False):
    """Run a program in the guest (guest_exec). Returns the result dict or raises VSphereError."""
    vm = client.vm
    guest_os = guest_os_of(request.guest_os, vm)
    warnings = []
    result = dict(changed=False, cmd=request.display(), warnings=warnings)
    for option in ('program', 'chdir', 'stdout_path', 'stderr_path', 'directory_path', 'creates', 'removes'):
        value = getattr(request, option)
        if value and not is_absolute(value, guest_os):
            raise VSphereError("Option %s must be an absolute %s path in the guest, got '%s'."
                               % (option, guest_os.capitalize(), value), result=result)

    reason = skip_reason(client, request.creates, request.removes)
    if reason:
        result.update(msg=reason, rc=0, stdout=reason, stderr='', stdout_lines=[reason], stderr_lines=[])
        return result
    if check_mode:
        result.update(changed=True, msg='The program would run (check mode).')
        return result
    for option in ('stdout_path', 'stderr_path'):
        problem = _output_file_problem(client, getattr(request, option), guest_os)
        if problem:
            raise VSphereError('Option %s %s.' % (option, problem), result=result)

    temp_dir = client.make_temp_dir(prefix=EXEC_TEMP_PREFIX, directory_path=request.directory_path)
    own_stdout, own_stderr, rc_path = output_paths(temp_dir, guest_os)
    stdout_path = request.stdout_path or own_stdout
    stderr_path = request.stderr_path or own_stderr
    keep_temp = False
    pid = None
    finished = False
    try:
        try:
            spec = build_program(guest_os, cmd=request.cmd, argv=request.argv, program=request.program,
                                 arguments=request.arguments, stdout_path=stdout_path, stderr_path=stderr_path,
                                 rc_path=rc_path, working_directory=request.chdir, env=request.env)
        except CommandLineError as exc:
            raise VSphereError("Building the command line failed for VM '%s': %s." % (vm.name, exc))
        uses_rc_file = request.program is None
        start = _now()
        try:
            pid = client.start_program(spec)
        except VSphereError as err:
            raise _start_error(err, request, vm)
        result.update(changed=True, pid=pid)
        if not request.wait:
            keep_temp = True
            finished = True  # nothing to terminate: the caller owns the job now
            result['job'] = dict(
                vm=dict(moid=vm.moid, name=vm.name), pid=pid, temp_dir=temp_dir,
                stdout_path=stdout_path, stderr_path=stderr_path,
                rc_path=rc_path if uses_rc_file else None, guest_os=guest_os, start=_stamp(start))
            result['start'] = _stamp(start)
            return result
        try:
            ended = client.wait_for_exit(pid, request.timeout, rc_path=rc_path if uses_rc_file else None,
                                         prefer_rc_file=(guest_os == 'windows' and uses_rc_file))
        except WaitTimeout as exc:
            _safe_terminate(client, pid, warnings)
            finished = True
            end = _now()
            result.update(rc=None, start=_stamp(start), end=_stamp(end), delta=str(end - start))
            read_outputs(client, stdout_path if not request.stdout_path else None,
                         stderr_path if not request.stderr_path else None, request.output_limit, result, warnings)
            raise VSphereError("%s The program was terminated; stdout and stderr hold its output so far. Raise "
                               "timeout, or use wait=false with guest_exec_status for long programs."
                               % exc.msg, result=result)
        finished = True
        end = _now()
        result.update(rc=ended.exit_code, start=_stamp(start), end=_stamp(end), delta=str(end - start))
        read_outputs(client, stdout_path if not request.stdout_path else None,
                     stderr_path if not request.stderr_path else None, request.output_limit, result, warnings)
        if ended.exit_code != 0:
            message = "non-zero return code %s from the program in VM '%s'" % (ended.exit_code, vm.name)
            hint = exit_hint(ended.exit_code, result['cmd'], guest_os)
            if hint:
                message += '. ' + hint
            raise VSphereError(message, result=result)
        return result
    except VSphereError as err:
        if err.result is not result:
            merged = dict(result)
            merged.update(err.result)
            err.result = merged
        raise
    finally:
        if pid is not None and not finished:
            _safe_terminate(client, pid, warnings)
        if not keep_temp:
            _safe_delete(client, temp_dir, warnings)


def _output_file_problem(client, path, guest_os):
    """Why a stdout_path/stderr_path cannot receive output (its directory must exist), or None."""
    if not path:
        return None
    found = client.stat(path)
    if found is not None:
        return "'%s' is a directory; give a file path" % path if found['type'] == 'directory' else None
    directory = _guest_split(path, guest_os)[0]
    parent = client.stat(directory)
    if parent is None or parent['type'] != 'directory':
        return ("'%s': the directory '%s' does not exist in the guest. Create it first, for example with "
                "guestops.vsphere.guest_tempdir" % (path, directory))
    return None


def _start_error(err, request, vm):
    """A clearer message for the usual reasons StartProgramInGuest fails."""
    fault = err.fault
    if fault is None:
        return err
    missing = _fault_is(fault, 'FileNotFound', 'NotADirectory')
    if request.chdir and missing and getattr(fault, 'file', None) == request.chdir:
        return VSphereError("Starting the program failed for VM '%s': chdir '%s' does not exist or is not a directory "
                            "in the guest." % (vm.name, request.chdir), fault=fault)
    if request.program and _fault_is(fault, 'GuestPermissionDenied'):
        return VSphereError("%s If '%s' is a script in a temporary directory, its file system may be mounted noexec: "
                            "create the directory elsewhere with directory_path, or run it through an interpreter "
                            "(argv: [/bin/sh, SCRIPT])." % (err.msg, request.program), fault=fault)
    return err


# --------------------------------------------------------------------------- job status

JOB_HINT = 'pass the job returned by guest_exec wait=false unchanged'


def parse_job(job):
    """Check a job handle from guest_exec wait=false before anything is done with it.

    Returns a copy with ``pid`` as an int and ``guest_os`` set. The temporary directory must be
    one that guest_exec made (an absolute path named ``ansible-exec-*``), since cleanup deletes it
    recursively. Raises VSphereError.
    """
    if not isinstance(job, dict):
        raise VSphereError('The job handle must be a dictionary; %s.' % JOB_HINT)
    for key in ('pid', 'temp_dir'):
        if job.get(key) in (None, ''):
            raise VSphereError("The job handle has no '%s'; %s." % (key, JOB_HINT))
    vm = job.get('vm')
    if vm is not None and not isinstance(vm, dict):
        raise VSphereError("The job handle's vm must be a dictionary with moid and name; %s." % JOB_HINT)
    guest_os = job.get('guest_os') or 'linux'
    if guest_os not in ('linux', 'windows'):
        raise VSphereError("The job handle's guest_os must be linux or windows, got '%s'; %s." % (guest_os, JOB_HINT))
    try:
        pid = int(job['pid'])
    except (TypeError, ValueError):
        pid = 0
    if pid <= 0:
        raise VSphereError("The job handle's pid must be a positive number, got '%s'; %s." % (job['pid'], JOB_HINT))
    temp_dir = job['temp_dir']
    if not isinstance(temp_dir, str) or not is_absolute(temp_dir, guest_os) or refuse_path(temp_dir) or \
            not guest_basename(temp_dir, guest_os).startswith(EXEC_TEMP_PREFIX):
        raise VSphereError("The job handle's temp_dir '%s' is not a directory made by guest_exec (an absolute guest "
                           "path whose name starts with '%s'); %s." % (temp_dir, EXEC_TEMP_PREFIX, JOB_HINT))
    parsed = dict(job)
    parsed.update(pid=pid, guest_os=guest_os)
    return parsed


def job_status(client, job, cleanup=False, terminate=False, output_limit=DEFAULT_OUTPUT_LIMIT):
    """Report on a job started by guest_exec wait=false (guest_exec_status)."""
    job = parse_job(job)
    pid = job['pid']
    temp_dir = job['temp_dir']
    guest_os = job['guest_os']
    job_vm = job.get('vm') or {}
    if job_vm.get('moid') and job_vm['moid'] != client.vm.moid:
        raise VSphereError("Checking the job failed: the job was started in VM '%s' (%s), but the task selected VM "
                           "'%s' (%s). Leave out name, uuid and moid (also in module_defaults) to use the job's VM."
                           % (job_vm.get('name') or '?', job_vm['moid'], client.vm.name, client.vm.moid))
    inside = _inside(temp_dir, guest_os)
    rc_path = job.get('rc_path') if inside(job.get('rc_path')) else None
    result = dict(changed=False, pid=pid, finished=False)
    warnings = []
    info = client.process(pid)
    if info is not None and info.endTime is None and info.exitCode is None:
        if not terminate:
            return result
        client.terminate(pid)
        result['changed'] = True
        result['terminated'] = True
        try:
            client.wait_for_exit(pid, TERMINATE_GRACE)
        except WaitTimeout:
            warnings.append('pid %s did not end within %s seconds of being terminated.' % (pid, TERMINATE_GRACE))
            result['warnings'] = warnings
            return result
        info = client.process(pid)
    code = None
    if info is not None:
        code = info.exitCode
    prefer_file = guest_os == 'windows' or info is None or code is None
    if rc_path and prefer_file:
        recorded = client.read_exit_code(rc_path)
        if recorded is not None:
            code = recorded
    if info is None and code is None:
        raise VSphereError("Checking the job failed for VM '%s': the guest no longer lists pid %s and no exit code "
                           "was recorded in '%s' (the job may have been cleaned up already, or the guest "
                           "rebooted)." % (client.vm.name, pid, rc_path or temp_dir), result=result)
    # A non-zero rc is reported, not failed: Ansible would otherwise mark the task failed.
    result.update(finished=True, rc=code, failed=False)
    end = _now()
    if info is not None and info.endTime is not None:
        end = info.endTime.astimezone().replace(tzinfo=None) if info.endTime.tzinfo else info.endTime
    if job.get('start'):
        result['start'] = job['start']
        try:
            start = datetime.datetime.strptime(job['start'], '%Y-%m-%d %H:%M:%S.%f')
        except (TypeError, ValueError):
            start = None
        if start is not None:
            # The guest records the end in whole seconds; a program that ended within the second
            # it started in must not appear to end before it began.
            end = max(end, start)
            result['delta'] = str(end - start)
    result['end'] = _stamp(end)
    read_outputs(client, job.get('stdout_path') if inside(job.get('stdout_path')) else None,
                 job.get('stderr_path') if inside(job.get('stderr_path')) else None,
                 output_limit, result, warnings)
    if cleanup:
        try:
            result['changed'] = client.delete(temp_dir) or result['changed']
        except VSphereError as err:
            err.result = dict(result, warnings=warnings)
            raise
        result['cleaned_up'] = True
    if warnings:
        result['warnings'] = warnings
    return result


def _inside(directory, guest_os):
    sep = '\\' if guest_os == 'windows' else '/'

    def check(path):
        return isinstance(path, str) and path.startswith(directory.rstrip(sep) + sep)
    return check


# --------------------------------------------------------------------------- copy

def parse_mode(mode):
    """A mode option (octal string or int) -> int, or None."""
    if mode is None or mode == '':
        return None
    if isinstance(mode, int):
        value = mode
    else:
        text = str(mode).strip()
        try:
            value = int(text, 8)
        except ValueError:
            raise VSphereError("mode must be an octal number such as '0644', got '%s'." % mode)
    if value < 0 or value > 0o7777:
        raise VSphereError("mode must be between 0000 and 07777, got '%s'." % mode)
    return value


def _local_digest(fileobj):
    sha1 = hashlib.sha1()
    size = 0
    while True:
        chunk = fileobj.read(1024 * 1024)
        if not chunk:
            break
        sha1.update(chunk)
        size += len(chunk)
    fileobj.seek(0)
    return size, sha1.hexdigest()


class _HashSink(object):
    def write(self, data):
        return len(data)


def copy_to_guest(client, dest, src=None, content=None, mode=None, owner=None, group=None, force=True,
                  check_mode=False, guest_os='linux'):
    """Upload a local file or content to dest (guest_copy)."""
    if not is_absolute(dest, guest_os):
        raise VSphereError("dest must be an absolute path in the guest, got '%s'." % dest)
    windows = guest_os == 'windows'
    if dest.endswith('/') or windows and dest.endswith('\\'):
        raise VSphereError("dest '%s' ends with a path separator; give the full path of the file, including its "
                           "name." % dest)
    mode = parse_mode(mode)
    if windows and (mode is not None or owner is not None or group is not None):
        raise VSphereError('mode, owner and group apply to Linux guests only.')
    if src is not None:
        if not os.path.isfile(src):
            raise VSphereError("src '%s' is not a readable file on the host running the module." % src)
        try:
            fileobj = open(src, 'rb')
        except (IOError, OSError) as exc:
            raise VSphereError("src '%s' cannot be read on the host running the module: %s." % (src, exc.strerror))
    else:
        data = content.encode('utf-8') if not isinstance(content, bytes) else content
        fileobj = io.BytesIO(data)
    try:
        size, checksum = _local_digest(fileobj)
        result = dict(changed=False, dest=dest, size=size, checksum=checksum)
        existing = client.stat(dest)
        if existing is not None and existing['type'] == 'directory':
            raise VSphereError("dest '%s' is a directory in the guest; give the full file path." % dest, result=result)
        needs_upload = existing is None
        if existing is not None and force:
            needs_upload = existing['size'] != size or _guest_sha1(client, dest) != checksum
        needs_attrs = False
        if existing is not None and not needs_upload and not windows:
            needs_attrs = _attrs_differ(existing, mode, owner, group)
        if not needs_upload and not needs_attrs:
            return result
        result['changed'] = True
        if check_mode:
            return result
        try:
            if needs_upload and size == 0:
                _write_empty_file(client, dest, existing, mode, owner, group, guest_os)
            elif needs_upload:
                attributes = client.file_attributes(mode, owner, group, windows=windows)
                uploaded = client.upload(fileobj, size, dest, overwrite=existing is not None, attributes=attributes)
                if uploaded != checksum:
                    raise VSphereError("Uploading to '%s' failed: the local source changed during the upload." % dest)
            else:
                client.change_attributes(dest, client.file_attributes(mode, owner, group))
        except VSphereError as err:
            if existing is None and err.fault is not None and _fault_is(err.fault, 'FileNotFound'):
                err = VSphereError("Uploading to '%s' failed for VM '%s': its directory '%s' does not exist in the "
                                   "guest. Create the directory first; guest_copy does not create it."
                                   % (dest, client.vm.name, _guest_split(dest, guest_os)[0]), fault=err.fault)
            err.result = dict(result, changed=False)
            raise err
        return result
    finally:
        fileobj.close()


def _guest_split(path, guest_os):
    return ntpath.split(path) if guest_os == 'windows' else posixpath.split(path)


def _write_empty_file(client, dest, existing, mode, owner, group, guest_os):
    """Make dest an empty file: ESXi refuses empty uploads, so an empty temp file is moved into place."""
    temp = client.make_temp_file(prefix='.ansible-copy-', directory_path=_guest_split(dest, guest_os)[0])
    try:
        client.move_file(temp, dest, overwrite=existing is not None)
    except VSphereError:
        _safe_delete(client, temp, [])
        raise
    if guest_os != 'windows':
        if mode is None:
            # the temp file was made 0600; keep the old file's mode, or give a new one the usual 0644
            old = (existing or {}).get('permissions')
            mode = old & 0o7777 if old is not None else 0o644
        client.change_attributes(dest, client.file_attributes(mode, owner, group))


def _guest_sha1(client, path):
    sink = _HashSink()
    return client.download_to(path, sink)[1]


def _attrs_differ(existing, mode, owner, group):
    if mode is not None and existing.get('permissions') is not None and (existing['permissions'] & 0o7777) != mode:
        return True
    if owner is not None and existing.get('owner_id') is not None and existing['owner_id'] != owner:
        return True
    if group is not None and existing.get('group_id') is not None and existing['group_id'] != group:
        return True
    return False


# --------------------------------------------------------------------------- fetch

def _file_sha1(path):
    sha1 = hashlib.sha1()
    with open(path, 'rb') as handle:
        while True:
            chunk = handle.read(1024 * 1024)
            if not chunk:
                break
            sha1.update(chunk)
    return sha1.hexdigest()


def local_dest(src, dest):
    """The local file name: an existing directory or a path ending in '/' gets the basename of src."""
    base = ntpath.basename(src) if ('\\' in src and '/' not in src) else posixpath.basename(src)
    if dest.endswith(os.sep) or dest.endswith('/') or os.path.isdir(dest):
        return os.path.join(dest, base)
    return dest


def fetch_from_guest(client, src, dest, fail_on_missing=True, check_mode=False):
    """Download a guest file to a local path (guest_fetch), atomically."""
    if not is_absolute(src):
        raise VSphereError("src must be an absolute path in the guest, got '%s'." % src)
    target = local_dest(src, dest)
    result = dict(changed=False, src=src, dest=target)
    existing = client.stat(src)
    if existing is None:
        if fail_on_missing:
            raise VSphereError("Fetching '%s' failed for VM '%s': the file does not exist in the guest."
                               % (src, client.vm.name), result=result)
        result['msg'] = "the file '%s' does not exist in the guest; nothing fetched" % src
        return result
    if existing['type'] == 'directory':
        raise VSphereError("Fetching '%s' failed for VM '%s': it is a directory; only files can be fetched."
                           % (src, client.vm.name), result=result)
    if os.path.isdir(target):
        raise VSphereError("Fetching '%s' failed: dest '%s' is a directory on the host running the module."
                           % (src, target), result=result)
    old_sha1 = _file_sha1(target) if os.path.isfile(target) else None
    if check_mode:
        if old_sha1 is not None and existing.get('size') == os.path.getsize(target):
            size, sha1 = client.download_to(src, _HashSink())
        else:
            size, sha1 = existing.get('size'), None
        result.update(size=size, checksum=sha1, changed=sha1 is None or sha1 != old_sha1)
        return result
    directory = os.path.dirname(os.path.abspath(target))
    try:
        if not os.path.isdir(directory):
            os.makedirs(directory)
        handle, temp_path = tempfile.mkstemp(prefix='.guest_fetch-', dir=directory)
    except OSError as exc:
        raise VSphereError("Fetching '%s' failed: the directory '%s' cannot be created or written on the host "
                           "running the module (%s). Choose another dest." % (src, directory, exc.strerror or exc),
                           result=result)
    try:
        try:
            with os.fdopen(handle, 'wb') as out:
                size, sha1 = client.download_to(src, out)
        except (IOError, OSError) as exc:
            raise VSphereError("Fetching '%s' failed: writing '%s' on the host running the module failed (%s)."
                               % (src, temp_path, exc.strerror or exc), result=result)
        result.update(size=size, checksum=sha1)
        if sha1 == old_sha1:
            return result
        if os.path.exists(target):
            try:
                os.chmod(temp_path, os.stat(target).st_mode & 0o7777)
            except OSError:
                pass
        else:
            os.chmod(temp_path, 0o644 & ~_umask())
        try:
            os.replace(temp_path, target)
        except OSError as exc:
            raise VSphereError("Fetching '%s' failed: '%s' cannot be written on the host running the module (%s)."
                               % (src, target, exc.strerror or exc), result=result)
        temp_path = None
        result['changed'] = True
        return result
    finally:
        if temp_path is not None and os.path.exists(temp_path):
            os.unlink(temp_path)


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


# --------------------------------------------------------------------------- cleanup

def refuse_path(path):
    """Why a path must not be deleted, or None."""
    if path is None or not str(path).strip():
        return 'path is empty'
    path = str(path)
    if posixpath.isabs(path):
        if posixpath.normpath(path) in ('/', '//'):
            return "refusing to delete '/'"
        return None
    if ntpath.isabs(path) and len(ntpath.splitdrive(path)[0]) == 2:
        drive, rest = ntpath.splitdrive(path)
        if ntpath.normpath(rest).strip('\\/') in ('', '.'):
            return "refusing to delete the root of drive %s" % drive
        return None
    return "path must be absolute, got '%s'" % path


def cleanup_path(client, path, check_mode=False):
    """Delete a guest file or directory tree (guest_cleanup); gone already is not an error."""
    result = dict(changed=False, path=path)
    if check_mode:
        result['changed'] = client.stat(path) is not None
        return result
    result['changed'] = client.delete(path)
    return result


# --------------------------------------------------------------------------- readiness

def wait_until_ready(session, vm, timeout, sleep=time.sleep, clock=time.monotonic):
    """Re-read the VM until guest operations are ready (guest_info wait_for_ready).

    Fails at once for a powered-off VM or missing Tools; otherwise backs off up to the timeout.
    """
    deadline = clock() + timeout
    attempt = 0
    while True:
        problem = vm.lasting_problem()
        if problem:
            raise VSphereError(problem)
        if vm.get('guest.guestOperationsReady') and vm.get('guest.toolsRunningStatus') != 'guestToolsNotRunning':
            return vm
        remaining = deadline - clock()
        if remaining <= 0:
            problem = vm.readiness_problem(advice=False) or 'guest operations are not ready.'
            raise VSphereError("Waiting for guest operations failed for VM '%s' after %d seconds: %s Check "
                               "VMware Tools in the guest, or raise timeout." % (vm.name, timeout, problem))
        sleep(min(poll_delay(attempt, first=0.5, factor=1.5, cap=5.0), remaining))
        attempt += 1
        session.refresh(vm)
