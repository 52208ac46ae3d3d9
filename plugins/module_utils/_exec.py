# -*- coding: utf-8 -*-
# Copyright (c) guestops.vsphere contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Running programs: the job (its private directory, program, exit code, output) and its steps.

``run_program`` (guest_exec) is ``prepare_job`` -> ``start_job`` -> ``wait`` -> ``collect`` ->
``remove_job``; guest_job and guest_exec_status expose the same steps one task at a time, so the
run_program role and guest_exec share every rule. Private to the collection.

A job's directory is named ``ansible-exec-x<expiry>-<proof>-...``: ``expiry`` (Unix time) says
when any later run may delete it, ``proof`` is a digest of the random token that only the job
handle carries, so a handle can prove it made the directory and nothing else can be passed off
as one of ours.
"""

from __future__ import annotations

import datetime
import hashlib
import io
import re
import secrets
import time

from ansible_collections.guestops.vsphere.plugins.module_utils import _paths
from ansible_collections.guestops.vsphere.plugins.module_utils._command_line import (
    WINDOWS_SHELL,
    CommandLineError,
    CommandTooLong,
    JobFiles,
    ProgramSpec,
    build_program,
    parse_rc,
    posix_join,
    posix_quote,
    shorten,
    start_request_size,
    powershell_file_bytes,
)
from ansible_collections.guestops.vsphere.plugins.module_utils import _vcenter_channel as channel
from ansible_collections.guestops.vsphere.plugins.module_utils._faults import VSphereError, fault_is
from ansible_collections.guestops.vsphere.plugins.module_utils._guest import WaitTimeout, poll_delay

DEFAULT_OUTPUT_LIMIT = 10 * 1024 * 1024
DEFAULT_TIMEOUT = 3600
EXEC_TEMP_PREFIX = 'ansible-exec-'
# The guest ends a program this long after its timeout when no controller did (Linux wrapper).
DEADLINE_GRACE = 10
# How long after its deadline a job's directory is kept for a controller to collect the output.
DEFAULT_RETENTION = 86400
WAIT_RETENTION = 300
TERMINATE_GRACE = 15
# Windows: TerminateProcessInGuest ends one process; these end or list the rest of the tree.
TASKKILL = 'C:\\Windows\\System32\\taskkill.exe'
WMIC = 'C:\\Windows\\System32\\wbem\\wmic.exe'
HELPER_TIMEOUT = 30
JOB_HINT = 'pass the job returned by guest_exec wait=false (or guest_job) unchanged'

_JOB_DIR = re.compile(r'^%sx(\d{9,12})-([0-9a-f]{16})-' % re.escape(EXEC_TEMP_PREFIX))
_SWEEP_PATTERN = '^%sx[0-9]+-[0-9a-f]+-' % EXEC_TEMP_PREFIX  # the prefix has no regex metacharacters


def _now():
    return datetime.datetime.now()


def _stamp(moment):
    return moment.strftime('%Y-%m-%d %H:%M:%S.%f')


def _parse_stamp(text):
    try:
        return datetime.datetime.strptime(text, '%Y-%m-%d %H:%M:%S.%f')
    except (TypeError, ValueError):
        return None


def proof_of(token):
    return hashlib.sha256(str(token).encode('utf-8')).hexdigest()[:16]


def parse_job_dir(name):
    """(expiry, proof) of one of our job directory names, or None."""
    match = _JOB_DIR.match(name or '')
    if not match:
        return None
    return int(match.group(1)), match.group(2)


def exit_hint(rc, guest_os):
    """Advice for exit codes with a well-known meaning."""
    if guest_os == 'linux' and rc == 126:
        return ("Exit code 126: the program was found but could not be executed (permission denied). If it "
                "lives in a temporary directory, the file system is probably mounted noexec: create the "
                "directory elsewhere with directory_path, or run the file through an interpreter "
                "(for example argv: [/bin/sh, SCRIPT]).")
    if guest_os == 'linux' and rc == 127:
        return "Exit code 127: the program was not found. Use an absolute path, or set PATH with env."
    if guest_os == 'windows' and rc == 9009:
        return "Exit code 9009: cmd.exe did not find the program. Use an absolute path."
    return None


def skip_reason(client, creates=None, removes=None):
    """Why a program need not run (like ansible.builtin.command), or None."""
    if creates and client.stat(creates) is not None:
        return "Did not run the program since '%s' exists" % creates
    if removes and client.stat(removes) is None:
        return "Did not run the program since '%s' does not exist" % removes
    return None


# --------------------------------------------------------------------------- requests

class ProgramRequest(object):
    """What to run (the options of guest_exec and guest_job)."""

    FIELDS = ('cmd', 'argv', 'program', 'arguments', 'chdir', 'env', 'stdout_path', 'stderr_path',
              'wait', 'timeout', 'output_limit', 'creates', 'removes', 'directory_path', 'guest_os',
              'retention', 'shell', 'stdin_path')

    def __init__(self, **values):
        for field in self.FIELDS:
            setattr(self, field, values.get(field))
        if self.wait is None:
            self.wait = True
        if self.timeout is None:
            self.timeout = DEFAULT_TIMEOUT
        if self.output_limit is None:
            self.output_limit = DEFAULT_OUTPUT_LIMIT
        if self.retention is None:
            self.retention = WAIT_RETENTION if self.wait else DEFAULT_RETENTION

    @classmethod
    def from_params(cls, params):
        return cls(**dict((key, params.get(key)) for key in cls.FIELDS))

    def display(self):
        if self.argv is not None:
            return list(self.argv)
        if self.cmd is not None:
            return self.cmd
        return ('%s %s' % (self.program, self.arguments or '')).strip()

    def check_paths(self, guest_os, result=None):
        for option in ('program', 'chdir', 'stdout_path', 'stderr_path', 'directory_path', 'creates', 'removes'):
            value = getattr(self, option)
            if value and not _paths.is_absolute(value, guest_os):
                raise VSphereError("Option %s must be an absolute %s path in the guest, got '%s'."
                                   % (option, guest_os.capitalize(), value), result=result)


# --------------------------------------------------------------------------- the job

class Job(object):
    """A program's private directory in the guest, and (once started) the program."""

    def __init__(self, vm, guest_os, temp_dir, token, expires, pid=None, start=None, wrapped=True,
                 stdout_path=None, stderr_path=None, timeout=None):
        self.vm = vm  # {'moid', 'name'}
        self.guest_os = guest_os
        self.temp_dir = temp_dir
        self.token = token
        self.expires = expires
        self.pid = pid
        self.start = start
        self.wrapped = wrapped
        self.files = JobFiles(temp_dir, guest_os)
        self.stdout_path = stdout_path or self.files.stdout
        self.stderr_path = stderr_path or self.files.stderr
        self.timeout = timeout
        self.ended = False  # the program is known to have ended (nothing to terminate)
        self.script_delivery = None  # how a PowerShell script reached the guest

    def handle(self):
        return dict(vm=dict(self.vm), guest_os=self.guest_os, temp_dir=self.temp_dir, token=self.token,
                    expires=self.expires, pid=self.pid, start=self.start, timeout=self.timeout,
                    stdout_path=self.stdout_path, stderr_path=self.stderr_path,
                    rc_path=self.files.rc if self.wrapped else None)

    def own_output(self, key):
        """The guest path of stdout/stderr when it is in the job's directory (else None: the user's file)."""
        path = self.stdout_path if key == 'stdout' else self.stderr_path
        return path if _paths.is_inside(path, self.temp_dir, self.guest_os) else None

    @classmethod
    def from_handle(cls, handle, started=False):
        """Check a job handle before anything is done with it; raises VSphereError naming what is wrong."""
        if not isinstance(handle, dict):
            raise VSphereError('The job handle must be a dictionary; %s.' % JOB_HINT)
        for key in ('temp_dir', 'token') + (('pid',) if started else ()):
            if handle.get(key) in (None, ''):
                raise VSphereError("The job handle has no '%s'; %s." % (key, JOB_HINT))
        vm = handle.get('vm')
        if vm is not None and not isinstance(vm, dict):
            raise VSphereError("The job handle's vm must be a dictionary with moid and name; %s." % JOB_HINT)
        guest_os = handle.get('guest_os') or 'linux'
        if guest_os not in ('linux', 'windows'):
            raise VSphereError("The job handle's guest_os must be linux or windows, got '%s'; %s."
                               % (guest_os, JOB_HINT))
        pid = None
        if handle.get('pid') not in (None, ''):
            try:
                pid = int(handle['pid'])
            except (TypeError, ValueError):
                pid = 0
            if pid <= 0:
                raise VSphereError("The job handle's pid must be a positive number, got '%s'; %s."
                                   % (handle['pid'], JOB_HINT))
        temp_dir = handle['temp_dir']
        parsed = parse_job_dir(_paths.basename(temp_dir, guest_os)) if isinstance(temp_dir, str) else None
        if not _paths.is_absolute(temp_dir, guest_os) or _paths.refuse_delete(temp_dir) or parsed is None:
            raise VSphereError("The job handle's temp_dir '%s' is not a directory made by guest_exec (an absolute "
                               "guest path whose name starts with '%sx'); %s." % (temp_dir, EXEC_TEMP_PREFIX, JOB_HINT))
        if parsed[1] != proof_of(handle['token']):
            raise VSphereError("The job handle's token does not belong to its temp_dir '%s': the handle was changed "
                               "or made by hand. Nothing was done; %s." % (temp_dir, JOB_HINT))
        job = cls(vm or {}, guest_os, temp_dir, str(handle['token']), parsed[0], pid=pid, start=handle.get('start'),
                  wrapped=handle.get('rc_path') is not None or pid is None,
                  stdout_path=handle.get('stdout_path'), stderr_path=handle.get('stderr_path'),
                  timeout=handle.get('timeout'))
        for key in ('stdout_path', 'stderr_path'):
            value = getattr(job, key)
            if not _paths.is_absolute(value, guest_os):
                raise VSphereError("The job handle's %s '%s' is not an absolute guest path; %s." % (key, value, JOB_HINT))
        return job

    def check_vm(self, vm):
        if self.vm.get('moid') and self.vm['moid'] != vm.moid:
            raise VSphereError("The job was started in VM '%s' (%s), but the task selected VM '%s' (%s). Leave out "
                               "name, uuid and moid (also in module_defaults) to use the job's VM."
                               % (self.vm.get('name') or '?', self.vm['moid'], vm.name, vm.moid))


def prepare_job(client, guest_os, timeout, retention, directory_path=None, warn=None, now=time.time, sweep=True):
    """Create the job's private directory (steps 2 and 3: the output files are made inside it).

    Expired directories of earlier jobs next to it are deleted first (see sweep_expired), unless
    ``sweep`` is false (a caller that swept that directory already, earlier in the same run).
    """
    token = secrets.token_hex(16)
    expires = int(now()) + int(timeout) + DEADLINE_GRACE + int(retention)
    prefix = '%sx%d-%s-' % (EXEC_TEMP_PREFIX, expires, proof_of(token))
    temp_dir = client.make_temp_dir(prefix=prefix, directory_path=directory_path)
    if sweep:
        sweep_expired(client, _paths.split(temp_dir, guest_os)[0], now(), warn)
    return Job(dict(moid=client.vm.moid, name=client.vm.name), guest_os, temp_dir, token, expires, timeout=timeout)


def sweep_expired(client, parent, now, warn=None):
    """Delete our job directories in ``parent`` whose expiry has passed (left by killed controllers).

    Only directories whose names carry our prefix, an expiry and a proof are touched. Failures
    become warnings: sweeping must never fail a run.
    """
    try:
        entries = client.list_dir(parent, match_pattern=_SWEEP_PATTERN)
    except VSphereError as err:
        if warn:
            warn("Could not look for expired job directories in '%s': %s" % (parent, err.msg))
        return []
    swept = []
    for entry in entries:
        parsed = parse_job_dir(entry.path)
        if entry.type != 'directory' or parsed is None or parsed[0] >= now:
            continue
        path = _paths.join(parent, entry.path)
        try:
            client.delete(path)
            swept.append(path)
        except VSphereError as err:
            if warn:
                warn("Could not delete the expired job directory '%s': %s" % (path, err.msg))
    return swept


# The uploaded copy of a PowerShell script too long to pass inline (in the job's directory).
POWERSHELL_SCRIPT_NAME = 'script.ps1'


def _job_spec(client, job, request, cmd, argv, script_path=None):
    try:
        return build_program(job.guest_os, cmd=cmd, argv=argv, program=request.program,
                             arguments=request.arguments, stdout_path=job.stdout_path, stderr_path=job.stderr_path,
                             rc_path=job.files.rc, working_directory=request.chdir or job.temp_dir, env=request.env,
                             deadline=int(request.timeout) + DEADLINE_GRACE, deadline_path=job.files.deadline,
                             shell=request.shell, script_path=script_path, stdin_path=request.stdin_path)
    except CommandLineError as exc:
        if isinstance(exc, CommandTooLong) and request.shell == 'powershell' and script_path is None:
            raise
        raise VSphereError("Building the command line failed for VM '%s': %s." % (client.vm.name, str(exc).rstrip('.')),
                           step='Building the command line')


def command_script(client, job, request):
    """Move a Linux command too long for one StartProgramInGuest request into a script in the job's
    directory (uploaded through the ESXi host or vCenter); returns the command that runs it."""
    command = request.cmd if request.cmd is not None else posix_join(request.argv)
    script = _paths.join(job.temp_dir, 'command', guest_os=job.guest_os)
    data = command.encode('utf-8')
    client.upload(io.BytesIO(data), len(data), script, overwrite=False, attributes=client.file_attributes(0o600))
    return '/bin/sh %s' % posix_quote(script)


def program_spec(client, job, request):
    """The ProgramSpec for a request, and how a PowerShell script travels (None, 'encoded_command' or
    'uploaded_file').

    A PowerShell script goes inline while cmd.exe's command line holds it, else it is uploaded into
    the job's directory. A cmd or argv command too long for one request (channel.MAX_START_REQUEST)
    runs from a script on Linux guests; anything else that is too long is refused with advice before
    it is sent.
    """
    try:
        spec = _job_spec(client, job, request, request.cmd, request.argv)
    except CommandTooLong:
        path = _paths.join(job.temp_dir, POWERSHELL_SCRIPT_NAME, guest_os='windows')
        data = powershell_file_bytes(request.cmd)
        client.upload(io.BytesIO(data), len(data), path)
        return _job_spec(client, job, request, request.cmd, None, script_path=path), 'uploaded_file'
    if start_request_size(spec) > channel.MAX_START_REQUEST and job.guest_os == 'linux' and request.program is None:
        spec = _job_spec(client, job, request, command_script(client, job, request), None)
    return spec, ('encoded_command' if request.shell == 'powershell' else None)


def start_job(client, job, request):
    """Start the program in the job's directory (step 5); sets job.pid, job.start and job.script_delivery."""
    spec, job.script_delivery = program_spec(client, job, request)
    job.wrapped = request.program is None
    job.timeout = request.timeout
    started = _now()
    try:
        job.pid = client.start_program(spec, marker=job.temp_dir if job.wrapped else None)
    except VSphereError as err:
        raise _start_error(err, request, client.vm)
    job.start = _stamp(started)
    return job


def _start_error(err, request, vm):
    """A clearer message for the usual reasons StartProgramInGuest fails."""
    fault = err.fault
    if fault is None:
        return err
    missing = fault_is(fault, 'FileNotFound', 'NotADirectory')
    if request.chdir and missing and getattr(fault, 'file', None) == request.chdir:
        return VSphereError("Starting the program failed for VM '%s': chdir '%s' does not exist or is not a directory "
                            "in the guest." % (vm.name, request.chdir), fault=fault, step=err.step)
    if request.program and fault_is(fault, 'GuestPermissionDenied'):
        return VSphereError("%s If '%s' is a script in a temporary directory, its file system may be mounted noexec: "
                            "create the directory elsewhere with directory_path, or run it through an interpreter "
                            "(argv: [/bin/sh, SCRIPT])." % (err.msg, request.program), fault=fault, step=err.step)
    return err


def output_file_problem(client, path, guest_os):
    """Why a stdout_path/stderr_path cannot receive output (its directory must exist), or None."""
    if not path:
        return None
    found = client.stat(path)
    if found is not None:
        return "'%s' is a directory; give a file path" % path if found['type'] == 'directory' else None
    directory = _paths.split(path, guest_os)[0]
    parent = client.stat(directory)
    if parent is None or parent['type'] != 'directory':
        return ("'%s': the directory '%s' does not exist in the guest. Create it first, for example with "
                "guestops.vsphere.guest_tempdir" % (path, directory))
    return None


# --------------------------------------------------------------------------- the end of a program

# The rc file is polled from this delay on (see wait_for_rc_file), faster than the process record.
RC_POLL_FIRST = 0.05
# From this poll of the rc file on (about a second), every RC_RECORD_EVERY-th poll also reads the
# process record (has the wrapper been killed?); short commands need no such read.
RC_RECORD_FROM = 6
RC_RECORD_EVERY = 3


def wait_for_rc_file(client, job, timeout):
    """Poll the job's directory until the wrapper has written its rc file; returns {name: size}.

    The wrapper writes the rc file the moment the command ends, while the guest agent records the
    end of a program only on its next 1-second check (vixTools.c VixToolsMonitorStartProgram), so
    for short commands this notices the end up to a second earlier. One ListFilesInGuest also tells
    which output files are empty (they need no download). After about a second the process record
    is read as well, every few polls: a wrapper that was killed writes no rc file, and the wait then
    ends with the files found so far. Raises WaitTimeout.
    """
    for attempt, deadline in enumerate(client.polls(job.pid, timeout, first=RC_POLL_FIRST), 1):
        sizes = dict((entry.path, entry.size) for entry in client.list_dir(job.temp_dir))
        if sizes.get(_paths.basename(job.files.rc, job.guest_os)):
            return sizes
        if attempt >= RC_RECORD_FROM and attempt % RC_RECORD_EVERY == 0:
            info = client.process(job.pid, deadline=deadline)
            if info is None or info.endTime is not None:
                return dict((entry.path, entry.size) for entry in client.list_dir(job.temp_dir))


class Outcome(object):
    """How a job's program ended: rc (None when unknown), and whether the guest's deadline ended it."""

    def __init__(self, rc, timed_out=False, note=None):
        self.rc = rc
        self.timed_out = timed_out
        self.note = note


def read_small(client, path, limit=64):
    """The text of a small guest file, or None when it does not exist."""
    try:
        return client.download_bytes(path, limit=limit).data
    except VSphereError as err:
        if err.fault is not None and fault_is(err.fault, 'FileNotFound'):
            return None
        raise


def outcome(client, job, record_code, terminated=False):
    """The exit code of an ended program: the wrapper's rc file first, vSphere's record second.

    The rc file survives the five-minute expiry of vSphere's records and Tools restarts, and on
    Windows it holds the inner command's code (the record holds cmd.exe's). A wrapped job whose
    rc file is missing was cleaned up already or killed; that is said, never read as success.
    """
    if not job.wrapped:
        return Outcome(record_code)
    try:
        code = parse_rc(read_small(client, job.files.rc))
    except VSphereError as err:
        if record_code is None:
            raise
        return Outcome(record_code, note='the exit code recorded in the job directory could not be read (%s); '
                       'vSphere reported %s' % (err.msg, record_code))
    timed_out = False
    if code is not None and job.guest_os == 'linux' and code in (137, 143):
        timed_out = read_small(client, job.files.deadline) is not None
    if code is not None:
        return Outcome(code, timed_out)
    if terminated:
        return Outcome(None, note='the program was terminated before it recorded an exit code')
    if client.stat(job.temp_dir) is None:
        raise VSphereError("Checking the job failed for VM '%s': its directory '%s' no longer exists (the job was "
                           "cleaned up already, or another run removed it after it expired)."
                           % (client.vm.name, job.temp_dir), step='Reading the exit code')
    if record_code is not None and job.guest_os == 'linux':
        return Outcome(record_code, note='no exit code was recorded in the job directory; vSphere reported %s'
                       % record_code)
    return Outcome(None, note='the program ended without recording an exit code (it was killed)')


def prefetch_outputs(client, job, limit):
    """Tell the client which files of an ended job are read next (through vCenter: all in one go)."""
    paths = [job.files.rc, job.files.deadline] if job.wrapped else []
    paths += [job.own_output('stdout'), job.own_output('stderr')]
    client.prefetch(paths, max(int(limit), 64), directory=job.temp_dir)


def read_outputs(client, job, limit, result):
    """Download the job's own stdout/stderr into result; a failed download is noted, not raised.

    The exit code is known by now and must not be lost because an output could not be read.
    """
    missing = []
    for key in ('stdout', 'stderr'):
        result[key] = ''
        result[key + '_lines'] = []
        path = job.own_output(key)
        if not path:
            continue
        try:
            download = client.download_bytes(path, limit=limit)
        except VSphereError as err:
            if err.fault is not None and fault_is(err.fault, 'FileNotFound'):
                continue
            missing.append('%s could not be read: %s' % (key, err.msg))
            continue
        text = download.data.decode('utf-8', 'replace').rstrip('\r\n')
        result[key] = text
        result[key + '_lines'] = text.splitlines()
        if download.truncated:
            result[key + '_truncated'] = True
            result.setdefault('warnings', []).append(
                '%s was cut to the first %d bytes of %d (output_limit).' % (key, limit, download.size))
    if missing:
        result['output_errors'] = missing
    return missing


def finish_times(job, end, result):
    start = _parse_stamp(job.start)
    if start is not None:
        # The guest records the end in whole seconds; a program that ended within the second it
        # started in must not appear to end before it began.
        end = max(end, start)
        result['start'] = job.start
        result['delta'] = str(end - start)
    result['end'] = _stamp(end)


def record_end(info):
    if info is None or info.endTime is None:
        return _now()
    end = info.endTime
    return end.astimezone().replace(tzinfo=None) if end.tzinfo else end


def verify_running_program(client, job, info):
    """Refuse to terminate a pid that is not this job's program (its command line names the job directory)."""
    command_line = getattr(info, 'cmdLine', None) or ''
    if job.temp_dir not in command_line:
        raise VSphereError("Terminating pid %s refused for VM '%s': it is not the program of the job in '%s' (its "
                           "command line does not name the job's directory); %s."
                           % (job.pid, client.vm.name, job.temp_dir, JOB_HINT), step='Terminating the program')


def parse_process_tree(text):
    """{parent pid: [child pids]} from ``wmic process get ParentProcessId,ProcessId`` output.

    wmic prints its columns in alphabetical order (ParentProcessId, then ProcessId), as UTF-16
    with a byte order mark when redirected; the header line (Wine glues its names together) and
    any line that is not two numbers are skipped.
    """
    if isinstance(text, bytes):
        if text[:2] in (b'\xff\xfe', b'\xfe\xff'):
            text = text.decode('utf-16', 'replace')
        else:
            text = text.decode('utf-8', 'replace')
    tree = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) == 2 and fields[0].isdigit() and fields[1].isdigit():
            parent, child = int(fields[0]), int(fields[1])
            if parent != child:
                tree.setdefault(parent, []).append(child)
    return tree


def descendants(tree, pid):
    """Every pid below ``pid`` in a tree from parse_process_tree, parents before their children."""
    found = []
    queue = list(tree.get(int(pid), []))
    while queue:
        child = queue.pop(0)
        if child in found or child == int(pid):
            continue
        found.append(child)
        queue.extend(tree.get(child, []))
    return found


def _run_helper(client, spec, label, warnings):
    """Start a helper program (``label`` names it in warnings) and wait for it; its exit code, or None."""
    try:
        pid = client.start_program(spec)
        return client.wait_for_exit(pid, HELPER_TIMEOUT).exit_code
    except VSphereError as err:
        warnings.append('Running %s in the guest failed: %s' % (label, err.msg))
        return None


def _windows_tree(client, job, warnings):
    """{parent pid: [child pids]} of the guest's processes (wmic), or None when unknown."""
    listing = _paths.join(job.temp_dir, 'processes', guest_os='windows')
    line = '%s process get ParentProcessId,ProcessId 1>"%s" 2>NUL <NUL' % (WMIC, listing)
    if _run_helper(client, ProgramSpec(WINDOWS_SHELL, '/d /s /c "%s"' % line, job.temp_dir),
                   'wmic process get ParentProcessId,ProcessId', warnings) != 0:
        return None
    try:
        data = client.download_bytes(listing).data
    except VSphereError as err:
        warnings.append('Reading the guest process list failed: %s' % err.msg)
        return None
    return parse_process_tree(data)


def _below(tree, pids):
    """The pids below any of ``pids`` in ``tree`` that are not in ``pids``, parents first."""
    found = []
    for pid in pids:
        for child in descendants(tree, pid):
            if child not in pids and child not in found:
                found.append(child)
    return found


# Listings after the first terminations: a process of the tree may have started one more program
# between the listing and its own end (Windows keeps a dead parent's pid as ParentProcessId).
TREE_RECHECKS = 2


def end_program(client, job, warnings):
    """Terminate the job's running program, its whole process tree, and wait for it to end.

    Linux: the wrapper's TERM trap ends its process group. Windows: TerminateProcessInGuest ends
    exactly one process, so ``taskkill /T /F /PID`` ends the tree first (it needs the parent alive
    to find the children). Where taskkill cannot (Wine's taskkill has no /T), the tree is listed
    with wmic while the parent runs, then the parent and every listed descendant are terminated.
    """
    rest = []
    listed = False
    if job.guest_os == 'windows':
        spec = ProgramSpec(TASKKILL, '/T /F /PID %d' % job.pid, job.temp_dir)
        if _run_helper(client, spec, 'taskkill /T /F /PID %d' % job.pid, warnings) != 0:
            tree = _windows_tree(client, job, warnings)
            listed = tree is not None
            if listed:
                rest = descendants(tree, job.pid)
            else:
                warnings.append('The programs started by pid %s could not be listed; only pid %s was terminated.'
                                % (job.pid, job.pid))
    ended = [job.pid] + rest
    for pid in ended:
        client.terminate(pid)
    for _recheck in range(TREE_RECHECKS if listed else 0):
        tree = _windows_tree(client, job, warnings)
        late = _below(tree, ended) if tree is not None else []
        if not late:
            break
        for pid in late:
            client.terminate(pid)
        ended.extend(late)
    try:
        client.wait_for_exit(job.pid, TERMINATE_GRACE)
    except WaitTimeout:
        warnings.append('pid %s did not end within %s seconds of being terminated.' % (job.pid, TERMINATE_GRACE))
        return False
    return True


def terminate(client, job, warnings):
    """Terminate the job's program (its whole process tree) and wait for it; True when it ran."""
    info = client.process(job.pid)
    if info is None or info.endTime is not None:
        return False
    verify_running_program(client, job, info)
    end_program(client, job, warnings)
    return True


def remove_job(client, job, warnings=None):
    """Terminate the job's program if it still runs, then delete its directory (step 8).

    Returns True when something was changed. With ``warnings`` failures become warnings
    (cleanup after another error must not hide that error).
    """
    changed = False
    try:
        if job.pid is not None and not job.ended:
            changed = terminate(client, job, warnings if warnings is not None else []) or changed
        changed = client.delete(job.temp_dir) or changed
    except VSphereError as err:
        if warnings is None:
            raise
        warnings.append("Could not clean up the job directory '%s' in the guest: %s" % (job.temp_dir, err.msg))
    return changed


# --------------------------------------------------------------------------- guest_exec

def run_program(client, request, check_mode=False):
    """Run a program in the guest and wait for it (guest_exec); with wait=false start it and return its job."""
    guest_os, source = _paths.guest_os_source(request.guest_os, client.vm)
    warnings = []
    result = dict(changed=False, cmd=shorten(request.display()), guest_os=guest_os, guest_os_source=source,
                  warnings=warnings)
    request.check_paths(guest_os, result)
    if client.channel == 'vcenter':
        channel.require_linux(guest_os, client.vm.name)
    reason = skip_reason(client, request.creates, request.removes)
    if reason:
        result.update(msg=reason, rc=0, stdout=reason, stderr='', stdout_lines=[reason], stderr_lines=[])
        return result
    if check_mode:
        result.update(changed=True, msg='The program would run (check mode).')
        return result
    for option in ('stdout_path', 'stderr_path'):
        problem = output_file_problem(client, getattr(request, option), guest_os)
        if problem:
            raise VSphereError('Option %s %s.' % (option, problem), result=result)

    job = prepare_job(client, guest_os, request.timeout, request.retention, request.directory_path,
                      warn=warnings.append)
    job.stdout_path = request.stdout_path or job.files.stdout
    job.stderr_path = request.stderr_path or job.files.stderr
    handed_over = False
    try:
        start_job(client, job, request)
        result.update(changed=True, pid=job.pid, start=job.start)
        if job.script_delivery:
            result['script_delivery'] = job.script_delivery
        if not request.wait:
            handed_over = True
            result['job'] = job.handle()
            return result
        try:
            ended = client.wait_for_exit(job.pid, request.timeout)
        except WaitTimeout as exc:
            terminate(client, job, warnings)
            job.ended = True
            result.update(rc=None, timed_out=True)
            finish_times(job, _now(), result)
            prefetch_outputs(client, job, request.output_limit)
            read_outputs(client, job, request.output_limit, result)
            raise VSphereError("%s The program was terminated; stdout and stderr hold its output so far. Raise "
                               "timeout, or use wait=false with guest_exec_status for long programs."
                               % exc.msg, result=result, step='Waiting for the program')
        job.ended = True
        end = _now()
        prefetch_outputs(client, job, request.output_limit)
        found = outcome(client, job, ended.exit_code)
        result.update(rc=found.rc, timed_out=found.timed_out)
        finish_times(job, end, result)
        if found.note:
            warnings.append(found.note[:1].upper() + found.note[1:] + '.')
        missing = read_outputs(client, job, request.output_limit, result)
        if found.rc is None:
            reason = found.note or 'vSphere reported none'
            raise VSphereError("The program in VM '%s' ended without an exit code: %s." % (client.vm.name, reason),
                               result=result, step='Reading the exit code')
        if found.rc != 0:
            message = "non-zero return code %s from the program in VM '%s'" % (found.rc, client.vm.name)
            hint = exit_hint(found.rc, guest_os)
            if hint:
                message += '. ' + hint
            raise VSphereError(message, result=result, step='Running the program')
        if missing:
            raise VSphereError("The program in VM '%s' ended with rc 0, but its output could not be read: %s"
                               % (client.vm.name, '; '.join(missing)), result=result, step='Reading the output',
                               retryable=True)
        return result
    except VSphereError as err:
        if err.result is not result:
            merged = dict(result)
            merged.update(err.result)
            err.result = merged
        raise
    finally:
        if not handed_over:
            remove_job(client, job, warnings)


# --------------------------------------------------------------------------- guest_exec_status

def job_status(client, job, cleanup=False, terminate_running=False, output_limit=DEFAULT_OUTPUT_LIMIT, wait=0):
    """Report on a started job (guest_exec_status): running, or finished with rc and output.

    With ``wait`` (seconds) a running program is polled (fast at first, backing off) until it
    ends or the time is up, so a loop of short waits notices the end at once.
    """
    job.check_vm(client.vm)
    result = dict(changed=False, pid=job.pid, finished=False)
    warnings = []
    info = client.process(job.pid)
    terminated = False
    if info is not None and info.endTime is None and wait > 0 and not terminate_running:
        try:
            info = client.wait_for_exit(job.pid, wait).info
        except WaitTimeout:
            return result
    if info is not None and info.endTime is None:
        if not terminate_running:
            return result
        verify_running_program(client, job, info)
        terminated = True
        result.update(changed=True, terminated=True)
        if not end_program(client, job, warnings):
            result['warnings'] = warnings
            return result
        info = client.process(job.pid)
    record_code = info.exitCode if info is not None else None
    if info is None and not job.wrapped:
        raise VSphereError("Checking the job failed for VM '%s': the guest no longer lists pid %s (vSphere keeps "
                           "exit codes for five minutes; the program form records none of its own)."
                           % (client.vm.name, job.pid), result=result, step='Reading the exit code')
    prefetch_outputs(client, job, output_limit)
    found = outcome(client, job, record_code, terminated=terminated)
    # A non-zero rc is reported, not failed: the caller decides (like async_status).
    result.update(finished=True, rc=found.rc, timed_out=found.timed_out, failed=False)
    if found.note:
        warnings.append(found.note[:1].upper() + found.note[1:] + '.')
    finish_times(job, record_end(info), result)
    read_outputs(client, job, output_limit, result)
    warnings.extend(result.pop('warnings', []))
    if cleanup:
        try:
            result['changed'] = client.delete(job.temp_dir) or result['changed']
        except VSphereError as err:
            err.result = dict(result, warnings=warnings)
            raise
        result['cleaned_up'] = True
    if warnings:
        result['warnings'] = warnings
    return result


# --------------------------------------------------------------------------- step 1

def wait_until_ready(session, vm, timeout, sleep=time.sleep, clock=time.monotonic):
    """Re-read the VM until guest operations are ready (guest_info wait_for_ready).

    Fails at once for a powered-off VM or missing Tools; otherwise backs off up to the timeout.
    """
    deadline = clock() + timeout
    attempt = 0
    while True:
        problem = vm.lasting_problem()
        if problem:
            raise VSphereError(problem, step='Waiting for guest operations')
        if vm.get('guest.guestOperationsReady') and vm.get('guest.toolsRunningStatus') != 'guestToolsNotRunning':
            return vm
        remaining = deadline - clock()
        if remaining <= 0:
            problem = vm.readiness_problem(advice=False) or 'guest operations are not ready.'
            raise VSphereError("Waiting for guest operations failed for VM '%s' after %d seconds: %s Check "
                               "VMware Tools in the guest, or raise timeout." % (vm.name, timeout, problem),
                               step='Waiting for guest operations', retryable=True)
        sleep(min(poll_delay(attempt, first=0.5, factor=1.5, cap=5.0), remaining))
        attempt += 1
        session.refresh(vm)
