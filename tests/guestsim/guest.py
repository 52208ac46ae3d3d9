"""What happens inside a simulated guest: real files under the VM's directory and real processes.

Behaviour follows the Linux guest agent (open-vm-tools' vixTools/procMgr) as described in the
reference: programs run as ``bash -c '"<programPath>" <arguments>'``, temporary names are
``<prefix>vmware<N><suffix>``, exit codes stay listable for a retention period, and so on.
"""

from __future__ import annotations

import errno
import logging
import math
import os
import random
import re
import shutil
import signal
import stat
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from pyVmomi import vim

from . import faults

LOG = logging.getLogger(__name__)

# systemd's default PATH for services (systemd.exec(5), "Environment variables in spawned processes").
DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
GUEST_SHELL = '/bin/bash'
# open-vm-tools services/plugins/vix/vixTools.c: the 1-second poll of started programs and the
# 60-second timer that also reaps expired records.
POLL_SECONDS = 1.0           # SECONDS_BETWEEN_POLL_TEST_FINISHED
INVALIDATE_SECONDS = 60.0    # SECONDS_BETWEEN_INVALIDATING_PROC_HANDLES
# ListFilesInGuest returns at most this many entries when maxResults is unset.
DEFAULT_MAX_RESULTS = 50
# One reply of the agent is at most GUESTMSG_MAX_IN_SIZE - vixPrefixDataSize = 64 KiB - 53 bytes; hostd
# asks again with an offset until a ListFiles answer is complete (vixTools.c VixToolsListFiles).
TOOLS_REPLY_MAX = 64 * 1024 - 53
# vixTools.c: "truncation bool + space + '\0'" and room for "<rem>%d</rem>" plus 10 digits.
_LIST_REPLY_BASE = 3 + len('<rem>%d</rem>') + 10
# strlen() of the per-entry format strings (fileExtendedInfoLinuxFormatString / ...WindowsFormatString,
# FMT64 being "l" on 64-bit Linux and "I64" on Windows), plus VixToolsGetFileExtendedInfoLength's
# "2 DIRSEPC chars" and "10 + 20 + (20 * 2)" for properties, size and times.
_LINUX_ENTRY_BASE = len('<fxi><Name>%s</Name><ft>%d</ft><fs>%lu</fs><mt>%lu</mt><at>%lu</at><uid>%d</uid>'
                        '<gid>%d</gid><perm>%d</perm><slt>%s</slt></fxi>') + 2 + 70 + 10 * 3
_WINDOWS_ENTRY_BASE = len('<fxi><Name>%s</Name><ft>%d</ft><fs>%I64u</fs><mt>%I64u</mt><ct>%I64u</ct>'
                          '<at>%I64u</at></fxi>') + 2 + 70 + 20
# TerminateProcessInGuest: SIGTERM, wait this long, then SIGKILL (procMgrPosix.c).
TERMINATE_GRACE = 5.0
KILL_WAIT = 15.0


def _utc_seconds(timestamp: float | None = None) -> datetime:
    """Guest times have one-second resolution (the agent records time(NULL))."""
    value = int(timestamp if timestamp is not None else time.time())
    return datetime.fromtimestamp(value, timezone.utc)


def _bash() -> list:
    for candidate in ('/bin/bash', '/usr/bin/bash'):
        if os.path.exists(candidate):
            return [candidate, '-c']
    return ['/bin/sh', '-c']


# lib/include/vixCommands.h: VIX_COMMAND_MAX_USER_INPUT_SIZE = VIX_COMMAND_MAX_REQUEST_SIZE (65536) - 5000,
# checked against the request's header and body (foundryMsg.c VixMsg_AllocUserRequestMsg).
VIX_MAX_USER_INPUT = 65536 - 5000
# sizeof(VixMsgStartProgramRequest), packed: VixCommandRequestHeader (VixMsgHeader 23 bytes, opCode,
# requestFlags, timeOut, cookie (8), clientHandleId, userCredentialType) = 51, then startMinimized (1)
# and five uint32 lengths (vixCommands.h).
START_PROGRAM_HEADER = 51 + 1 + 5 * 4


def start_request_size(spec) -> int:
    """Header and body of the VIX StartProgram request for a ProgramSpec: the header, then programPath,
    arguments and workingDirectory, each NUL-terminated, then every environment entry NUL-terminated."""
    def length(text):
        return len((text or '').encode('utf-8')) + 1
    size = START_PROGRAM_HEADER + length(spec.programPath) + length(spec.arguments) + length(spec.workingDirectory)
    return size + sum(length(item) for item in spec.envVariables or [])


def _xml_escape(text: str) -> str:
    """The agent's XML escaping of names and link targets (VixToolsXMLStringEscapedLen)."""
    return text.replace('&', '&amp;').replace('<', '&lt;').replace('>', '&gt;').replace('"', '&quot;') \
        .replace("'", '&apos;')


def errno_fault(exc: OSError, path: str):
    """Map an errno the way the agent (Vix_TranslateErrno) and hostd do."""
    code = exc.errno
    if code in (errno.ENOENT, errno.ENODEV):
        return faults.file_not_found(path)
    if code == errno.EEXIST:
        return faults.file_already_exists(path)
    if code == errno.ENOTEMPTY:
        return faults.directory_not_empty(path)
    if code == errno.ENOTDIR:
        return faults.not_a_directory(path)
    if code == errno.EISDIR:
        return faults.not_a_file(path)
    if code in (errno.EACCES, errno.EPERM, errno.EROFS):
        return faults.cannot_access_file(path)
    if code == errno.ENOSPC:
        return faults.no_disk_space(path)
    if code == errno.ENAMETOOLONG:
        return faults.file_name_too_long(path)
    if code == errno.EINVAL:
        return faults.invalid_argument()
    if code in (errno.EAGAIN, errno.EBUSY):
        return faults.system_error('vix error codes = (5, 0).')
    return faults.system_error('vix error codes = (1, 0).')


@dataclass
class GuestProcess:
    """One program started through StartProgramInGuest, and the agent's record of it."""

    pid: int
    name: str
    cmd_line: str
    owner: str
    start_time: datetime
    popen: subprocess.Popen
    started: float = field(default_factory=time.monotonic)
    done: threading.Event = field(default_factory=threading.Event)    # the OS process has ended
    exited: threading.Event = field(default_factory=threading.Event)  # the agent has recorded it
    exit_code: int | None = None
    end_time: datetime | None = None
    end_wall: int | None = None  # time(NULL) when the agent recorded the exit

    def info(self):
        process = vim.vm.guest.ProcessManager.ProcessInfo(
            name=self.name, pid=self.pid, owner=self.owner, cmdLine=self.cmd_line, startTime=self.start_time)
        if self.exited.is_set():
            process.endTime = self.end_time
            process.exitCode = self.exit_code
        return process


def _proc_stat(pid: int):
    """(session id, start time in clock ticks since boot) of a live process, or None."""
    try:
        with open('/proc/%d/stat' % pid, encoding='utf-8', errors='replace') as handle:
            data = handle.read()
    except OSError:
        return None
    fields = data[data.rfind(')') + 2:].split()
    if not fields or fields[0] == 'Z':
        return None
    return int(fields[3]), int(fields[19])


def _boot_time() -> float:
    try:
        with open('/proc/stat', encoding='utf-8') as handle:
            for line in handle:
                if line.startswith('btime '):
                    return float(line.split()[1])
    except OSError:
        pass
    return time.time()


class GuestSystem:
    """Files and processes of one VM's guest operating system."""

    def __init__(self, vm, root: str, retention: float, allow_noexec_mount: bool = True,
                 exit_poll_interval: float = POLL_SECONDS):
        self.vm = vm
        self.root = root
        self.tmp_root = os.path.join(root, 'tmp')
        self.home_root = os.path.join(root, 'home')
        self.retention = retention
        self.exit_poll_interval = exit_poll_interval
        self.lock = threading.RLock()
        # The agent's records (vixTools.c startedProcessList): pid -> program, running or exited.
        self.processes: dict[int, GuestProcess] = {}
        # Sessions of every started program still alive (its pid is the session id), kept across
        # Tools restarts so that the programs and what they leave behind can still be listed and ended.
        self.sessions: dict[int, GuestProcess] = {}
        self.agent_pid = 0
        self._new_agent()
        self._system = self._system_table()
        self.user_tmp_dirs: dict[str, str] = {}
        self._temp_number = random.randint(10, 5000)
        self.noexec_mounted = False
        self.noexec_emulated = False
        os.makedirs(self.tmp_root, mode=0o755, exist_ok=True)
        os.chmod(self.tmp_root, 0o1777)
        for user in vm.users:
            os.makedirs(self.home(user), mode=0o700, exist_ok=True)
        if vm.noexec_tmp:
            if self._already_noexec():
                # Left over from a simulator that was killed: reuse it, release it on exit.
                self.noexec_mounted = True
            elif allow_noexec_mount and self._mount_noexec():
                self.noexec_mounted = True
            else:
                self.noexec_emulated = True

    # --- noexec temp root ----------------------------------------------------------------------
    def _already_noexec(self) -> bool:
        try:
            with open('/proc/mounts', encoding='utf-8') as handle:
                mounts = [line.split() for line in handle]
        except OSError:
            return False
        return any(len(m) > 3 and m[1] == self.tmp_root and 'noexec' in m[3].split(',') for m in mounts)

    def _mount_noexec(self) -> bool:
        if os.geteuid() != 0 or not shutil.which('mount'):
            return False
        result = subprocess.run(['mount', '-t', 'tmpfs', '-o', 'noexec,nosuid,nodev,mode=1777', 'guestsim-noexec',
                                 self.tmp_root], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        return result.returncode == 0

    def unmount(self):
        if self.noexec_mounted:
            result = subprocess.run(['umount', self.tmp_root], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                    check=False)
            if result.returncode != 0:
                subprocess.run(['umount', '-l', self.tmp_root], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, check=False)
            self.noexec_mounted = False

    def in_noexec_root(self, path: str) -> bool:
        real = os.path.realpath(path)
        return self.vm.noexec_tmp and (real == self.tmp_root or real.startswith(self.tmp_root + os.sep))

    # --- users and environment -------------------------------------------------------------------
    def home(self, user: str) -> str:
        return os.path.join(self.home_root, user)

    def environment(self, user: str) -> dict:
        """The environment a program gets when envVariables is not set, and what
        ReadEnvironmentVariableInGuest reads on Linux: vmtoolsd's own service environment after
        impersonation, which changes only USER, HOME and SHELL ("no $SHELL startup files are run":
        vgauth/lib/impersonateLinux.c, lib/procMgr/procMgrPosix.c ProcMgrImpersonateUserStart). No
        LOGNAME, no login PATH."""
        with self.lock:
            env = dict(self.agent_env)
        env.update({'USER': user, 'HOME': self.home(user), 'SHELL': GUEST_SHELL})
        return env

    # --- paths -----------------------------------------------------------------------------------
    def resolve(self, path: str) -> str:
        """Guest paths are this machine's paths; relative ones resolve against the agent's cwd, /.

        An empty path is not the agent's cwd: the system calls fail with ENOENT, so it is FileNotFound
        (the transfer methods check for it earlier and answer InvalidArgument, reference 2.4).
        """
        if not path:
            raise faults.file_not_found('')
        return os.path.normpath(os.path.join('/', path))

    def writable(self, path: str) -> bool:
        """Changes through the file API stay inside this VM's directory (a safety net, see README)."""
        real = os.path.realpath(self.resolve(path))
        return real == self.root or real.startswith(self.root + os.sep)

    def require_writable(self, path: str):
        if not self.writable(path):
            raise faults.guest_permission_denied()

    # --- temporary files ----------------------------------------------------------------------
    def user_tmp_dir(self, user: str) -> str:
        """The per-user default location, like File_GetSafeRandomTmpDir: <tmp>/vmware-<user>_<pid>-<n>,
        with vmtoolsd's pid. The agent caches it in memory (lib/file/fileTempPosix.c FileGetSafeTmpDir),
        so a new vmtoolsd (Tools restart) makes a new one."""
        with self.lock:
            path = self.user_tmp_dirs.get(user)
            if path and os.path.isdir(path):
                return path
            while True:
                name = 'vmware-%s_%d-%d' % (user, self.agent_pid, random.randint(1, 4294967295))
                path = os.path.join(self.tmp_root, name)
                try:
                    os.mkdir(path, 0o700)
                    break
                except FileExistsError:
                    continue
            self.user_tmp_dirs[user] = path
            return path

    def _next_temp_number(self, directory: bool) -> int:
        with self.lock:
            self._temp_number += random.randint(1, 64)
            if (self._temp_number % 2 == 0) != directory:
                self._temp_number += 1
            return self._temp_number

    def create_temporary(self, user: str, prefix: str, suffix: str, directory_path: str | None, directory: bool) -> str:
        if directory_path:
            base = self.resolve(directory_path)
            if not os.path.exists(base):
                raise faults.file_not_found(directory_path)
            if not os.path.isdir(base):
                raise faults.not_a_directory(directory_path)
            self.require_writable(base)
        else:
            base = self.user_tmp_dir(user)
        for _attempt in range(1000):
            name = '%svmware%d%s' % (prefix or '', self._next_temp_number(directory), suffix or '')
            path = os.path.join(base, name)
            try:
                if directory:
                    os.mkdir(path, 0o700)
                else:
                    os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
                return path
            except FileExistsError:
                continue
            except OSError as exc:
                raise errno_fault(exc, path) from None
        raise faults.system_error('vix error codes = (1, 0).')

    # --- file operations ----------------------------------------------------------------------
    def make_directory(self, directory_path: str, parents: bool):
        path = self.resolve(directory_path)
        if os.path.lexists(path):
            raise faults.file_already_exists(directory_path)
        self.require_writable(path)
        try:
            if parents:
                os.makedirs(path, 0o755)
            else:
                os.mkdir(path, 0o755)
        except OSError as exc:
            raise errno_fault(exc, directory_path) from None

    def delete_file(self, file_path: str):
        path = self.resolve(file_path)
        if not os.path.lexists(path):
            raise faults.file_not_found(file_path)
        if os.path.isdir(path) and not os.path.islink(path):
            raise faults.not_a_file(file_path)
        self.require_writable(os.path.dirname(path))
        try:
            os.unlink(path)
        except OSError as exc:
            raise errno_fault(exc, file_path) from None

    def delete_directory(self, directory_path: str, recursive: bool):
        path = self.resolve(directory_path)
        if not os.path.lexists(path):
            raise faults.file_not_found(directory_path)
        if os.path.islink(path) or not os.path.isdir(path):
            raise faults.not_a_directory(directory_path)
        self.require_writable(path)
        if path in (self.root, self.tmp_root, self.home_root):
            raise faults.guest_permission_denied()
        try:
            if recursive:
                shutil.rmtree(path)
            else:
                os.rmdir(path)
        except OSError as exc:
            raise errno_fault(exc, directory_path) from None

    def move_file(self, src: str, dst: str, overwrite: bool):
        src_path, dst_path = self.resolve(src), self.resolve(dst)
        if not os.path.lexists(src_path):
            raise faults.file_not_found(src)
        if os.path.isdir(src_path) and not os.path.islink(src_path):
            raise faults.not_a_file(src)
        if os.path.lexists(dst_path):
            if os.path.isdir(dst_path) and not os.path.islink(dst_path):
                raise faults.not_a_file(dst)
            if not overwrite:
                raise faults.file_already_exists(dst)
        self.require_writable(src_path)
        self.require_writable(dst_path)
        try:
            os.replace(src_path, dst_path)
        except OSError as exc:
            raise errno_fault(exc, dst) from None

    def move_directory(self, src: str, dst: str):
        src_path, dst_path = self.resolve(src), self.resolve(dst)
        if not os.path.lexists(src_path):
            raise faults.file_not_found(src)
        if os.path.islink(src_path) or not os.path.isdir(src_path):
            raise faults.not_a_directory(src)
        if os.path.lexists(dst_path):
            raise faults.file_already_exists(dst)
        self.require_writable(src_path)
        self.require_writable(dst_path)
        try:
            os.rename(src_path, dst_path)
        except OSError as exc:
            raise errno_fault(exc, dst) from None

    @staticmethod
    def attributes_of(path: str, st: os.stat_result | None = None):
        st = st or os.lstat(path)
        attrs = vim.vm.guest.FileManager.PosixFileAttributes(
            modificationTime=_utc_seconds(st.st_mtime),
            accessTime=_utc_seconds(st.st_atime),
            ownerId=st.st_uid,
            groupId=st.st_gid,
            permissions=st.st_mode,  # stat(2) format when reporting on existing files
        )
        if stat.S_ISLNK(st.st_mode):
            try:
                attrs.symlinkTarget = os.readlink(path)
            except OSError:
                pass
        return attrs

    @staticmethod
    def check_posix_attributes(attrs):
        """A Linux guest rejects Windows-only attributes (VIX_E_INVALID_ARG)."""
        if isinstance(attrs, vim.vm.guest.FileManager.WindowsFileAttributes):
            if attrs.hidden or attrs.readOnly:
                raise faults.invalid_argument()

    @staticmethod
    def apply_attributes(path: str, attrs, default_mode: int | None, default_owner: bool = False):
        """Apply GuestFileAttributes (permissions in chmod(2) format, owner, group, times).

        ``default_owner``: unset owner and group become the guest user's, which is the simulator's own
        uid and gid (guest users are only logins, see README)."""
        mode = default_mode
        owner = group = None
        mtime = atime = None
        if attrs is not None:
            mtime = attrs.modificationTime
            atime = attrs.accessTime
            if isinstance(attrs, vim.vm.guest.FileManager.PosixFileAttributes):
                if attrs.permissions is not None:
                    mode = attrs.permissions
                owner, group = attrs.ownerId, attrs.groupId
        if default_owner:
            st = os.lstat(path)
            owner = os.geteuid() if owner is None and st.st_uid != os.geteuid() else owner
            group = os.getegid() if group is None and st.st_gid != os.getegid() else group
        if mode is not None:
            os.chmod(path, stat.S_IMODE(mode))
        if owner is not None or group is not None:
            os.chown(path, -1 if owner is None else owner, -1 if group is None else group)
        if mtime is not None or atime is not None:
            st = os.stat(path)
            os.utime(path, (atime.timestamp() if atime else st.st_atime, mtime.timestamp() if mtime else st.st_mtime))

    def change_attributes(self, file_path: str, attrs):
        path = self.resolve(file_path)
        if not os.path.lexists(path):
            raise faults.file_not_found(file_path)
        self.check_posix_attributes(attrs)
        self.require_writable(path)
        try:
            self.apply_attributes(path, attrs, None)
            self.strip_exec_if_emulated(path)
        except OSError as exc:
            raise errno_fault(exc, file_path) from None

    def list_files(self, file_path: str, index: int | None, max_results: int | None, pattern: str | None):
        """ListFilesInGuest as the agent answers it (vixTools.c VixToolsListFiles).

        Returns (ListFileInfo, number of agent replies hostd needed to assemble it)."""
        index = 0 if index is None else index
        max_results = DEFAULT_MAX_RESULTS if max_results is None else max_results
        if index < 0 or max_results < 0:
            # "bora/vmx/automation/guestOps.c::GuestOpsListFiles() throws VIX_E_INVALID_ARG if
            # (index < 0) || (maxResults < 0)" (vixTools.c).
            raise faults.invalid_argument()
        path = self.resolve(file_path)
        if pattern:
            try:
                # GLib's g_regex_new is PCRE; Python's re is close enough for the patterns clients send
                # (anchors, classes, alternation), but lacks possessive quantifiers and \K (README).
                matcher = re.compile(pattern)
            except re.error:
                raise faults.invalid_argument() from None
        else:
            matcher = None
        if not os.path.lexists(path):
            raise faults.file_not_found(file_path)
        entries = []
        try:
            # "First check for symlink -- File_IsDirectory() will lie if its a symlink to a directory"
            # (vixTools.c): a symlink is listed as itself, even when it points to a directory.
            if not os.path.islink(path) and os.path.isdir(path):
                # File_ListDirectory gives readdir() order (not sorted); '.' and '..' are put first.
                names = ['.', '..'] + os.listdir(path)
                for name in names:
                    full = os.path.join(path, name)
                    try:
                        entries.append((name, os.lstat(full), full))
                    except OSError:
                        continue
            else:
                entries.append((file_path, os.lstat(path), path))
        except OSError as exc:
            raise errno_fault(exc, file_path) from None
        if matcher is not None:
            # "If a regex pattern is specified, apply it first. The request index and offset
            # parameters are referring to the filtered entries."
            entries = [e for e in entries if matcher.search(e[0])]
        if max_results == 0:
            # "Do not fail the API if maxResults is 0, instead, return an empty file list plus the
            # remaining number of files."
            remaining = len(entries) - index if index < len(entries) else 0
            return vim.vm.guest.FileManager.ListFileInfo(files=[], remaining=remaining), 1
        page = entries[index:index + max_results]
        files = []
        for name, st, full in page:
            if stat.S_ISLNK(st.st_mode):
                kind = 'symlink'
            elif stat.S_ISDIR(st.st_mode):
                kind = 'directory'
            else:
                kind = 'file'
            files.append(vim.vm.guest.FileManager.FileInfo(
                path=name, type=kind, size=st.st_size, attributes=self.attributes_of(full, st)))
        remaining = max(len(entries) - index - len(page), 0)
        return (vim.vm.guest.FileManager.ListFileInfo(files=files, remaining=remaining),
                self.list_reply_count(files))

    def list_entry_length(self, info) -> int:
        """VixToolsGetFileExtendedInfoLength: the bytes one entry takes in an agent reply."""
        target = getattr(info.attributes, 'symlinkTarget', None) or ''
        return _LINUX_ENTRY_BASE + len(_xml_escape(target)) + len(_xml_escape(info.path))

    def list_reply_count(self, files) -> int:
        """How many agent replies hostd needs for ``files``: each reply holds the entries whose
        lengths keep it below TOOLS_REPLY_MAX; a truncated reply makes hostd ask again with the
        offset set to the entries received (vixTools.c VixToolsListFiles)."""
        replies = 1
        size = _LIST_REPLY_BASE
        for info in files:
            length = self.list_entry_length(info)
            if size + length >= TOOLS_REPLY_MAX and size > _LIST_REPLY_BASE:
                replies += 1
                size = _LIST_REPLY_BASE
            size += length
        return replies

    def check_upload_target(self, guest_path: str, attrs, overwrite: bool) -> str:
        """The agent's checks in InitiateFileTransferToGuest; returns the real path."""
        if not guest_path:
            raise faults.invalid_argument()
        self.check_posix_attributes(attrs)
        path = self.resolve(guest_path)
        if os.path.islink(path):
            raise faults.invalid_argument()
        if os.path.exists(path):
            if os.path.isdir(path):
                raise faults.not_a_file(guest_path)
            if not overwrite:
                raise faults.file_already_exists(guest_path)
            if not os.access(path, os.W_OK):
                raise faults.cannot_access_file(guest_path)
        parent = os.path.dirname(path)
        if not os.path.isdir(parent):
            # The agent answers VIX_E_FILE_NAME_INVALID here (reference 2.4); hostd's translation of it is
            # not documented. FileNotFound (a FileFault, declared for this method) is the closest match.
            raise faults.file_not_found(guest_path)
        self.require_writable(path)
        if not os.access(parent, os.W_OK):
            raise faults.cannot_access_file(guest_path)
        return path

    def check_download_source(self, guest_path: str):
        """The agent's checks in InitiateFileTransferFromGuest; returns (path, attributes, size)."""
        if not guest_path:
            raise faults.invalid_argument()
        path = self.resolve(guest_path)
        if os.path.islink(path):
            raise faults.invalid_argument()
        try:
            st = os.stat(path)
        except OSError as exc:
            raise errno_fault(exc, guest_path) from None
        if stat.S_ISDIR(st.st_mode):
            raise faults.not_a_file(guest_path)
        if not os.access(path, os.R_OK):
            raise faults.cannot_access_file(guest_path)
        return path, self.attributes_of(path, st), st.st_size

    # --- processes ---------------------------------------------------------------------------
    def program_file(self, spec) -> tuple[str, str]:
        """(programPath as given, its file here): the agent's File_Exists check, FileNotFound otherwise."""
        program = (spec.programPath or '').lstrip(' ')
        if len(program) >= 2 and program[0] == '"' and program[-1] == '"':
            program = program[1:-1]
        if not program:
            raise faults.file_not_found('')
        path = self.resolve(program)
        if not os.path.exists(path):
            raise faults.file_not_found(program)
        return program, path

    def start_program(self, user: str, spec) -> int:
        program, path = self.program_file(spec)
        # Like the agent: exists, then access(X_OK). A directory passes and then fails in bash (exit 126).
        executable = os.access(path, os.X_OK)
        if executable and self.noexec_emulated and self.in_noexec_root(path):
            executable = False
        if not executable:
            raise faults.guest_permission_denied()
        work_dir = spec.workingDirectory or None
        if work_dir is not None:
            # vixTools: `if (workingDir && !File_IsDirectory(workingDir)) err = VIX_E_NOT_A_DIRECTORY`, for a
            # missing directory as well as for a file (reference 2.1). hostd's translation of that VIX code
            # is not documented; NotADirectory is the FileFault subclass it names (reference 2.6, [inferred])
            # and StartProgramInGuest declares FileFault.
            if not os.path.isdir(self.resolve(work_dir)):
                raise faults.not_a_directory(work_dir)
            cwd = self.resolve(work_dir)
        else:
            cwd = self.home(user)
            os.makedirs(cwd, mode=0o700, exist_ok=True)
        if spec.envVariables:
            env = {}
            for item in spec.envVariables:
                name, sep, value = item.partition('=')
                if sep:
                    env[name] = value
        else:
            env = self.environment(user)
        arguments = spec.arguments or ''
        command = '"%s" %s' % (program, arguments)
        try:
            popen = subprocess.Popen(  # pylint: disable=consider-using-with
                _bash() + [command], cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL, close_fds=True, start_new_session=True)
        except OSError as exc:
            LOG.warning('cannot start %s: %s', program, exc)
            raise faults.system_error('vix error codes = (3020, 0).') from None
        process = GuestProcess(pid=popen.pid, name=os.path.basename(program), cmd_line=command, owner=user,
                               start_time=_utc_seconds(), popen=popen)
        with self.lock:
            # vixTools records the new program with VixToolsUpdateStartedProgramList, which also
            # reaps expired records.
            self._reap_locked()
            self.processes[popen.pid] = process
            self.sessions[popen.pid] = process
            if self._invalidator_at is None:
                self._invalidator_at = time.monotonic() + INVALIDATE_SECONDS
        threading.Thread(target=self._wait, args=(process,), name='guest-wait-%d' % popen.pid, daemon=True).start()
        return popen.pid

    @staticmethod
    def _exit_code(process: GuestProcess, returncode: int) -> int:
        """The exit code the agent records. The Linux agent stores WEXITSTATUS(status) unconditionally,
        so a program killed by a signal (for example by TerminateProcessInGuest) reports 0."""
        del process
        return returncode if returncode >= 0 else 0

    def _wait(self, process: GuestProcess):
        code = self._exit_code(process, process.popen.wait())
        process.done.set()
        # vixTools.c VixToolsMonitorStartProgram: a GLib timer of SECONDS_BETWEEN_POLL_TEST_FINISHED
        # (1 s), armed at the start and re-armed after each check, asks whether the program still
        # runs; only then are exitCode and endTime = time(NULL) recorded. So they appear at the first
        # tick after the exit, up to a second late, in whole seconds.
        poll = self.exit_poll_interval
        ticks = max(1, math.ceil((time.monotonic() - process.started) / poll)) if poll > 0 else 0
        delay = process.started + ticks * poll - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        with self.lock:
            if self.processes.get(process.pid) is process:
                process.exit_code = code
                now = time.time()
                process.end_time = _utc_seconds(now)
                process.end_wall = int(now)
                process.exited.set()
                self._reap_locked()
            else:
                # The record is gone (Tools restart, power-off): the new agent never learns the exit.
                process.exited.set()

    def _reap_locked(self):
        """vixTools.c VixToolsUpdateStartedProgramList: drop exited records whose endTime is older
        than VIX_TOOLS_EXITED_PROGRAM_REAP_TIME (5 minutes; ``retention`` here). It runs when a
        program starts or exits, at every ListProcessesEx, and every
        SECONDS_BETWEEN_INVALIDATING_PROC_HANDLES (60 s) from a timer."""
        now = int(time.time())
        for pid in [p.pid for p in self.processes.values()
                    if p.end_wall is not None and p.end_wall < now - self.retention]:
            del self.processes[pid]

    def expire(self):
        """The invalidator timer, run lazily: registered at the first StartProgram, it fires every
        60 s while records exist (vixTools.c VixToolsRegisterProcHandleInvalidator,
        VixToolsInvalidateStaleProcHandles). So a record nobody lists is dropped between
        ``retention`` and ``retention`` + 60 s after the exit (GET /guestsim/state shows it until then)."""
        with self.lock:
            now = time.monotonic()
            while self._invalidator_at is not None and now >= self._invalidator_at:
                self._reap_locked()
                self._invalidator_at = self._invalidator_at + INVALIDATE_SECONDS if self.processes else None

    def _scan_sessions(self) -> dict:
        """Live processes in the sessions of programs this guest started (pid -> (sid, start ticks)),
        leaders included; sessions with nothing left are forgotten."""
        with self.lock:
            sessions = dict(self.sessions)
        if not sessions:
            return {}
        found = {}
        try:
            pids = [int(name) for name in os.listdir('/proc') if name.isdigit()]
        except OSError:
            return {}
        for pid in pids:
            info = _proc_stat(pid)
            if info and info[0] in sessions:
                found[pid] = info
        alive = {sid for sid, _ticks in found.values()}
        with self.lock:
            for sid in [sid for sid, proc in self.sessions.items() if sid not in alive and proc.done.is_set()]:
                del self.sessions[sid]
        return found

    def _descendants(self) -> dict:
        """Live processes of those sessions other than the recorded programs (pid -> start ticks)."""
        with self.lock:
            recorded = {pid for pid, proc in self.processes.items() if not proc.done.is_set()}
        return {pid: info[1] for pid, info in self._scan_sessions().items() if pid not in recorded}

    def _session_owner(self, sid: int) -> str:
        with self.lock:
            process = self.sessions.get(sid)
        return process.owner if process is not None else 'root'

    def _os_info(self, pid: int, start_ticks: int, owner: str):
        """A process as ProcMgr_ListProcesses (lib/procMgr/procMgrPosix.c) reports it: cmdLine is
        /proc/<pid>/cmdline with NULs as spaces; name is the basename of argv[0] when argv[0] is an
        absolute path, else argv[0] as it is ("sshd: root@pts/1"), else the Name: of /proc/<pid>/status."""
        try:
            with open('/proc/%d/cmdline' % pid, 'rb') as handle:
                raw = handle.read()
        except OSError:
            return None
        args = raw.rstrip(b'\0').split(b'\0') if raw else []
        cmd_line = b' '.join(args).decode('utf-8', 'replace')
        if args:
            first = args[0].decode('utf-8', 'replace')
            name = first.rsplit('/', 1)[-1] if first.startswith('/') else first
        else:
            try:
                with open('/proc/%d/status' % pid, encoding='utf-8', errors='replace') as handle:
                    name = handle.readline().partition(':')[2].strip()
            except OSError:
                name = ''
        started = _boot_time() + start_ticks / os.sysconf('SC_CLK_TCK')
        return vim.vm.guest.ProcessManager.ProcessInfo(
            name=name, pid=pid, owner=owner, cmdLine=cmd_line, startTime=_utc_seconds(started))

    def _os_processes(self) -> dict:
        """Every process of the guest that is not a StartProgram record: the system processes,
        then live processes of the sessions of started programs (including programs whose record
        was lost in a Tools restart)."""
        with self.lock:
            recorded = set(self.processes)
        result = {}
        for entry in self.system_processes():
            result[entry.pid] = entry
        for pid, (sid, ticks) in sorted(self._scan_sessions().items()):
            if pid in recorded:
                continue
            info = self._os_info(pid, ticks, self._session_owner(sid))
            if info is not None:
                result[pid] = info  # a real process wins over a system entry with the same pid
        return result

    def list_processes(self, user: str, pids) -> list:
        """vixTools.c VixToolsListProcessesExGenerateData: reap, then the started-program records
        (global, every user's), then the OS's process list without the pids already reported. On
        Linux that list covers every user's processes."""
        del user
        with self.lock:
            self._reap_locked()
            table = dict(self.processes)
        wanted = list(pids) if pids else None
        result = []
        if wanted is not None:
            for pid in wanted:
                if pid in table:
                    result.append(table[pid].info())
            missing = [pid for pid in wanted if pid not in table]
            if missing:
                others = self._os_processes()
                result.extend(others[pid] for pid in missing if pid in others)
            return result
        result.extend(process.info() for process in table.values())
        result.extend(info for pid, info in self._os_processes().items() if pid not in table)
        return result

    def terminate(self, pid: int):
        with self.lock:
            process = self.processes.get(pid) or self.sessions.get(pid)
        if any(entry.pid == pid for entry in self.system_processes()) and (
                process is None or process.done.is_set()):
            # The simulated system processes are not real and cannot be signalled; the agent refuses its
            # own pid with VIX_E_GUEST_USER_PERMISSIONS (vixTools.c VixToolsKillProcess).
            raise faults.guest_permission_denied()
        if process is not None and process.pid == pid:
            if process.done.is_set():
                raise faults.guest_process_not_found(pid)
            try:
                process.popen.send_signal(signal.SIGTERM)
            except OSError:
                pass
            if not process.done.wait(TERMINATE_GRACE):
                try:
                    process.popen.send_signal(signal.SIGKILL)
                except OSError:
                    pass
                process.done.wait(KILL_WAIT)
            return
        if pid not in self._descendants():
            raise faults.guest_process_not_found(pid)
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            raise faults.guest_process_not_found(pid) from None
        deadline = time.monotonic() + TERMINATE_GRACE
        while time.monotonic() < deadline:
            if _proc_stat(pid) is None:
                return
            time.sleep(0.05)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def running_processes(self) -> list:
        """The agent's records (running and exited programs)."""
        with self.lock:
            return list(self.processes.values())

    def unrecorded_programs(self) -> list:
        """Started programs still running whose record a Tools restart wiped out."""
        with self.lock:
            return [p for sid, p in self.sessions.items()
                    if not p.done.is_set() and self.processes.get(sid) is not p]

    def end_processes(self, grace: float = 2.0):
        """End every process this guest started, and everything they left behind (SIGTERM, then SIGKILL).

        A program that exits after starting a background job (``sleep 600 &``) leaves that job in
        its session; it is ended too, so nothing outlives a power-off or the simulator.
        """
        with self.lock:
            running = [p for p in self.sessions.values() if not p.done.is_set()]
        leftovers = [pid for pid in self._scan_sessions() if pid not in {p.pid for p in running}]
        self._signal_all(running, leftovers, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for process in running:
            process.done.wait(max(0.0, deadline - time.monotonic()))
        while time.monotonic() < deadline and any(_proc_stat(pid) is not None for pid in leftovers):
            time.sleep(0.05)
        running = [p for p in running if not p.done.is_set()]
        leftovers = [pid for pid in leftovers if _proc_stat(pid) is not None]
        if running or leftovers:
            self._signal_all(running, leftovers, signal.SIGKILL)
            for process in running:
                process.done.wait(1.0)

    @staticmethod
    def _signal_all(running, leftovers, signum):
        for process in running:
            try:
                os.killpg(process.pid, signum)
            except OSError:
                pass
        for pid in leftovers:
            try:
                os.kill(pid, signum)
            except OSError:
                pass

    def shutdown(self, grace: float = 2.0):
        """Simulator shutdown: end the processes, then release the noexec mount."""
        self.end_processes(grace)
        self.unmount()

    def power_off(self):
        """Powering the VM off ends its processes and forgets their exit codes; files stay."""
        self.end_processes(grace=1.0)
        with self.lock:
            self.processes.clear()
            self.sessions.clear()
        self._new_agent()

    def restart_tools(self, end_programs: bool = False):
        """vmtoolsd stops and starts again: the started-program records live only in its memory
        (vixTools.c startedProcessList), so they are all gone; running programs keep running and
        are listed as ordinary processes from then on. ``end_programs`` also ends them, as systemd
        does when the unit's KillMode is control-group (the default) and the service is restarted."""
        if end_programs:
            self.end_processes(grace=1.0)
        with self.lock:
            self.processes.clear()
        self._new_agent()

    # --- the agent and the system processes ----------------------------------------------------
    def _new_agent(self):
        """A new vmtoolsd: new pid, new service environment, new invalidator timer."""
        with self.lock:
            self.agent_started = _utc_seconds()
            self._invalidator_at = None
            self.user_tmp_dirs = {}
            self.agent_pid = self._free_pid(self.agent_pid + 1 if getattr(self, 'agent_pid', 0) else 700)
            self.agent_env = {
                # systemd.exec(5): a system service runs "in a clean environment in which only the
                # $PATH and $LANG variables are set by default"; newer systemd adds INVOCATION_ID and
                # JOURNAL_STREAM.
                'PATH': DEFAULT_PATH,
                'LANG': 'C.UTF-8',
                'INVOCATION_ID': uuid.uuid4().hex,
                'JOURNAL_STREAM': '8:%d' % random.randint(10000, 99999),
            }

    @staticmethod
    def _free_pid(start: int) -> int:
        pid = start
        while os.path.exists('/proc/%d' % pid):
            pid += 1
        return pid

    def system_processes(self) -> list:
        """Synthetic processes of other owners that a Linux guest runs (ListProcessesInGuest lists
        every user's processes on Linux: vixTools.c VixToolsListProcessesEx). Names follow
        ProcMgr_ListProcesses: basename of an absolute argv[0], else argv[0] itself."""
        if self.vm.power_state != 'poweredOn':
            return []
        boot = self.vm.boot_time or _utc_seconds()
        entries = [(pid, owner, cmd, boot + timedelta(seconds=offset)) for pid, owner, cmd, offset in self._system]
        if self.vm.tools_running():
            entries.append((self.agent_pid, 'root', '/usr/bin/vmtoolsd', self.agent_started))
        result = []
        for pid, owner, cmd, started in entries:
            first = cmd.split(' ', 1)[0] if cmd.startswith('/') else cmd
            name = first.rsplit('/', 1)[-1] if cmd.startswith('/') else cmd
            result.append(vim.vm.guest.ProcessManager.ProcessInfo(
                name=name, pid=pid, owner=owner, cmdLine=cmd, startTime=started))
        return result

    def _system_table(self) -> list:
        """(pid, owner, cmdLine, seconds after boot) of the synthetic system processes."""
        table = [(1, 'root', '/sbin/init', 0)]
        commands = [
            ('root', '/usr/lib/systemd/systemd-journald', 1),
            ('messagebus', '/usr/bin/dbus-daemon --system --address=systemd: --nofork --nopidfile '
                           '--systemd-activation --syslog-only', 2),
            ('systemd-timesync', '/usr/lib/systemd/systemd-timesyncd', 2),
            ('root', '/usr/bin/VGAuthService -s', 3),
            ('root', 'sshd: /usr/sbin/sshd -D [listener] 0 of 10-100 startups', 3),
            ('alice', 'sshd: alice@pts/0', 40),
            ('alice', '-bash', 41),
        ]
        pid = 300
        for owner, cmd, offset in commands:
            pid = self._free_pid(pid + random.randint(1, 40))
            table.append((pid, owner, cmd, offset))
        return table

    def strip_exec_if_emulated(self, path: str):
        """Emulated noexec: files in the temp root never keep execute bits (see README)."""
        if self.noexec_emulated and self.in_noexec_root(path):
            mode = stat.S_IMODE(os.stat(path).st_mode)
            os.chmod(path, mode & ~0o111)
