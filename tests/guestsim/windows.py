"""Windows guests: Windows programs run by Debian's Wine, the file API on ``C:\\`` paths.

Each Windows VM has its own Wine prefix (``<vm dir>/wineprefix``); its ``drive_c`` is the guest's
``C:`` drive. The prefix is initialised (``wineboot --init``) once per simulator start, lazily at the
VM's first guest operation or in the background (``Simulator(windows_init='background')``).

Programs are started by ``C:\\guestsim\\launcher.exe`` (``winsrc/launcher.c``, built with mingw-w64),
which receives the exact command line in a request file and calls ``CreateProcessW`` with
``lpApplicationName = NULL``, the working directory and an environment block, as the agent does
(open-vm-tools ``vixTools.c`` VixToolsStartProgramImpl). pids are Windows pids (Wine's), see README.
"""

from __future__ import annotations

import hashlib
import logging
import ntpath
import os
import random
import shutil
import stat
import subprocess
import threading
import time
from datetime import datetime

from pyVmomi import vim

from . import faults
from .guest import _WINDOWS_ENTRY_BASE, POLL_SECONDS, GuestProcess, GuestSystem, _utc_seconds, _xml_escape, errno_fault

LOG = logging.getLogger(__name__)

WINSRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'winsrc')
PROGRAMS = ('launcher', 'argv', 'sleep', 'powershell')
# Wine's powershell.exe is a stub that ignores the script and exits 0; winsrc/powershell.c replaces it
# with a stand-in that shows what it was given and fails (see README, "What Wine cannot show").
POWERSHELL_PATH = ('windows', 'system32', 'WindowsPowerShell', 'v1.0', 'powershell.exe')
# Debian's wine64 package does not put its loader on PATH (only the `wine` package's wrapper does).
WINE_CANDIDATES = ('/usr/lib/wine/wine64', '/usr/lib64/wine/wine64', '/usr/bin/wine64', '/usr/bin/wine')
MINGW_GCC = 'x86_64-w64-mingw32-gcc'
WINEBOOT_TIMEOUT = 180.0
HELPER_TIMEOUT = 30.0
START_TIMEOUT = 30.0
# ERROR_* codes of CreateProcessW -> faults (winerror.h).
ERROR_FILE_NOT_FOUND, ERROR_PATH_NOT_FOUND, ERROR_ACCESS_DENIED = 2, 3, 5
ERROR_BAD_EXE_FORMAT, ERROR_DIRECTORY = 193, 267
# What TerminateProcessInGuest makes the process exit with ([inferred]: the Windows ProcMgr is closed
# source; TerminateProcess(h, 1) is what taskkill /F uses).
TERMINATED_EXIT_CODE = 1
# Processes of Wine's own services, listed as SYSTEM's.
WINE_SYSTEM_IMAGES = {'services.exe', 'winedevice.exe', 'plugplay.exe', 'svchost.exe', 'rpcss.exe',
                      'explorer.exe', 'wineboot.exe', 'conhost.exe', 'tabtip.exe'}
INVALID_NAME_CHARS = set('<>:"|?*') | {chr(c) for c in range(32)}


class WineMissing(RuntimeError):
    """wine64 or mingw-w64 is not installed (see `make windows-tools`)."""


def find_wine() -> str | None:
    override = os.environ.get('GUESTSIM_WINE')
    if override:
        return override if os.access(override, os.X_OK) else None
    for candidate in WINE_CANDIDATES:
        if os.access(candidate, os.X_OK):
            return candidate
    return shutil.which('wine64')


def find_mingw() -> str | None:
    return shutil.which(os.environ.get('GUESTSIM_MINGW_GCC', MINGW_GCC))


def wineserver_for(wine: str) -> str | None:
    directory = os.path.dirname(wine)
    for name in ('wineserver64', 'wineserver'):
        candidate = os.path.join(directory, name)
        if os.access(candidate, os.X_OK):
            return candidate
    return shutil.which('wineserver')


class WindowsTools:
    """The Wine loader and the Windows programs built with mingw-w64, shared by all Windows VMs."""

    def __init__(self, build_dir: str):
        self.build_dir = build_dir
        self.lock = threading.Lock()
        self.wine = find_wine()
        self.gcc = find_mingw()
        self.wineserver = wineserver_for(self.wine) if self.wine else None
        self._built: dict[str, str] | None = None

    def check(self):
        missing = []
        if not self.wine:
            missing.append('wine64 (Debian package wine64; loader /usr/lib/wine/wine64)')
        if not self.gcc:
            missing.append('%s (Debian package gcc-mingw-w64-x86-64)' % MINGW_GCC)
        if missing:
            raise WineMissing('Windows guests need %s; run `make windows-tools` as root' % ' and '.join(missing))

    def programs(self) -> dict:
        """name -> path of the built .exe (compiled once per simulator, keyed by the source hash)."""
        with self.lock:
            if self._built is not None:
                return self._built
            self.check()
            os.makedirs(self.build_dir, exist_ok=True)
            built = {}
            for name in PROGRAMS:
                source = os.path.join(WINSRC, name + '.c')
                with open(source, 'rb') as handle:
                    digest = hashlib.sha256(handle.read()).hexdigest()[:16]
                target = os.path.join(self.build_dir, '%s-%s.exe' % (name, digest))
                if not os.path.exists(target):
                    flags = [] if name == 'launcher' else ['-municode']
                    result = subprocess.run([self.gcc, '-O2', '-Wall', *flags, '-o', target + '.tmp', source,
                                             '-lshell32'], capture_output=True, text=True, timeout=120, check=False)
                    if result.returncode != 0:
                        raise RuntimeError('building %s.exe failed: %s' % (name, result.stderr[-2000:]))
                    os.replace(target + '.tmp', target)
                built[name] = target
            self._built = built
            return built


def windows_env(user: str, host_name: str) -> dict:
    """The user's environment block as CreateEnvironmentBlock builds it on Windows Server 2019 for a
    service-started program ([inferred]; vixTools.c passes "the user's environment block" when
    envVariables is empty). Names keep Windows' case; lookups are case-insensitive."""
    profile = 'C:\\Users\\%s' % user
    computer = host_name.upper().replace('_', '-')[:15] or 'WIN'
    temp = profile + '\\AppData\\Local\\Temp'
    return {
        'ALLUSERSPROFILE': 'C:\\ProgramData',
        'APPDATA': profile + '\\AppData\\Roaming',
        'CommonProgramFiles': 'C:\\Program Files\\Common Files',
        'CommonProgramFiles(x86)': 'C:\\Program Files (x86)\\Common Files',
        'CommonProgramW6432': 'C:\\Program Files\\Common Files',
        'COMPUTERNAME': computer,
        'ComSpec': 'C:\\Windows\\system32\\cmd.exe',
        'LOCALAPPDATA': profile + '\\AppData\\Local',
        'NUMBER_OF_PROCESSORS': str(os.cpu_count() or 1),
        'OS': 'Windows_NT',
        'Path': 'C:\\Windows\\system32;C:\\Windows;C:\\Windows\\System32\\Wbem;'
                'C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\',
        'PATHEXT': '.COM;.EXE;.BAT;.CMD;.VBS;.VBE;.JS;.JSE;.WSF;.WSH;.MSC',
        'PROCESSOR_ARCHITECTURE': 'AMD64',
        'ProgramData': 'C:\\ProgramData',
        'ProgramFiles': 'C:\\Program Files',
        'ProgramFiles(x86)': 'C:\\Program Files (x86)',
        'ProgramW6432': 'C:\\Program Files',
        'PUBLIC': 'C:\\Users\\Public',
        'SystemDrive': 'C:',
        'SystemRoot': 'C:\\Windows',
        'TEMP': temp,
        'TMP': temp,
        'USERDOMAIN': computer,
        'USERNAME': user,
        'USERPROFILE': profile,
        'windir': 'C:\\Windows',
    }


class WindowsGuestSystem(GuestSystem):
    """A Windows guest: a Wine prefix, Windows paths and attributes, programs under Wine."""

    guest_os = 'windows'

    def __init__(self, vm, root: str, retention: float, tools: WindowsTools,
                 exit_poll_interval: float = POLL_SECONDS):
        # Not GuestSystem.__init__: no POSIX temp root, homes or noexec mount.
        self.vm = vm
        self.vm_dir = root
        self.prefix = os.path.join(root, 'wineprefix')
        self.root = os.path.join(self.prefix, 'drive_c')       # the C: drive
        self.tmp_root = os.path.join(self.root, 'windows', 'temp')
        self.home_root = os.path.join(self.root, 'Users')
        self.requests_dir = os.path.join(root, 'launcher')
        self.tools = tools
        self.retention = retention
        self.exit_poll_interval = exit_poll_interval
        self.lock = threading.RLock()
        self.processes: dict[int, GuestProcess] = {}
        self.sessions: dict[int, GuestProcess] = {}
        self.noexec_mounted = False
        self.noexec_emulated = False
        self.user_tmp_dirs = {}
        self._temp_number = random.randint(10, 5000)
        self.prefix_user = next(iter(vm.users), 'Administrator')
        self.agent_pid = 0
        self._new_agent()
        self._system = [(4, 'SYSTEM', 'System', 0)]
        self._ready = threading.Event()
        self._init_lock = threading.Lock()
        self._init_error: Exception | None = None
        self._request_number = 0
        self._first_seen: dict[int, datetime] = {}
        self.init_seconds: float | None = None

    # --- the Wine prefix ---------------------------------------------------------------------
    def wine_env(self, **extra) -> dict:
        """The Unix environment of every Wine process of this VM: its own prefix, no display."""
        env = {'PATH': '/usr/bin:/bin', 'HOME': self.vm_dir, 'USER': self.prefix_user, 'LOGNAME': self.prefix_user,
               'WINEPREFIX': self.prefix, 'WINEDEBUG': '-all', 'WINEDLLOVERRIDES': 'mscoree,mshtml=;powershell.exe=n',
               'LANG': 'C.UTF-8'}
        env.update(extra)
        return env

    def prepare_in_background(self):
        threading.Thread(target=self._prepare_quietly, name='wineboot-%s' % self.vm.moid, daemon=True).start()

    def _prepare_quietly(self):
        try:
            self.ensure_ready()
        except Exception as exc:  # pylint: disable=broad-exception-caught
            LOG.warning('Windows guest %s not ready: %s', self.vm.name, exc)

    def ready(self) -> bool:
        return self._ready.is_set()

    def ensure_ready(self):
        """Initialise the prefix once (wineboot), install C:\\guestsim\\*.exe and the profiles."""
        if self._ready.is_set():
            return
        with self._init_lock:
            if self._ready.is_set():
                return
            if self._init_error is not None:
                raise faults.system_error('vix error codes = (1, 0).')
            try:
                self._prepare()
            except Exception as exc:
                self._init_error = exc
                LOG.error('cannot prepare the Windows guest %s: %s', self.vm.name, exc)
                raise faults.system_error('vix error codes = (1, 0).') from None
            self._ready.set()

    def _prepare(self):
        started = time.monotonic()
        programs = self.tools.programs()
        os.makedirs(self.prefix, exist_ok=True)
        os.makedirs(self.requests_dir, exist_ok=True)
        result = subprocess.run([self.tools.wine, 'wineboot', '--init'], env=self.wine_env(),
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                timeout=WINEBOOT_TIMEOUT, check=False)
        if result.returncode != 0 or not os.path.isdir(os.path.join(self.root, 'windows', 'system32')):
            detail = result.stderr.decode('utf-8', 'replace')[-1000:]
            raise RuntimeError('wineboot failed (%d): %s' % (result.returncode, detail))
        # Windows spells the profiles folder C:\Users (Wine: users); Wine finds names case-insensitively.
        wine_users, users = os.path.join(self.root, 'users'), os.path.join(self.root, 'Users')
        if os.path.isdir(wine_users) and not os.path.lexists(users):
            os.rename(wine_users, users)
        self.home_root = users
        target = os.path.join(self.root, 'guestsim')
        os.makedirs(target, exist_ok=True)
        for name, path in programs.items():
            if name == 'launcher':
                continue
            if name == 'powershell':
                powershell = os.path.join(self.root, *POWERSHELL_PATH)
                os.makedirs(os.path.dirname(powershell), exist_ok=True)
                shutil.copyfile(path, powershell)
                continue
            shutil.copyfile(path, os.path.join(target, name + '.exe'))
        self.launcher = os.path.join(self.requests_dir, 'launcher.exe')
        shutil.copyfile(programs['launcher'], self.launcher)
        os.makedirs(self.tmp_root, exist_ok=True)
        for user in self.vm.users:
            os.makedirs(self._user_temp_unix(user), exist_ok=True)
        self.init_seconds = time.monotonic() - started
        LOG.info('Windows guest %s ready in %.1f s (prefix %s)', self.vm.name, self.init_seconds, self.prefix)

    def _user_temp_unix(self, user: str) -> str:
        profile = self._lookup(self.home_root, user) or os.path.join(self.home_root, user)
        return os.path.join(profile, 'AppData', 'Local', 'Temp')

    def wineserver_kill(self):
        if self.tools.wineserver and os.path.isdir(self.prefix):
            try:
                subprocess.run([self.tools.wineserver, '-k'], env=self.wine_env(), stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=15, check=False)
            except subprocess.TimeoutExpired:
                LOG.warning('wineserver -k timed out for %s', self.vm.name)

    # --- paths ---------------------------------------------------------------------------------
    @staticmethod
    def _lookup(directory: str, name: str) -> str | None:
        """The entry of ``directory`` named ``name`` case-insensitively (exact match first)."""
        exact = os.path.join(directory, name)
        if os.path.lexists(exact):
            return exact
        folded = name.casefold()
        try:
            for entry in os.listdir(directory):
                if entry.casefold() == folded:
                    return os.path.join(directory, entry)
        except OSError:
            pass
        return None

    def split_windows(self, path: str) -> list:
        """Win32 path rules: drive letter (any case), either slash, '.' and '..' folded, trailing dots and
        spaces of a name dropped. Relative paths resolve against the agent's working directory
        (C:\\Windows\\system32, a service's [inferred]). Only drive C: exists."""
        if not path:
            raise faults.file_not_found('')
        text = path.replace('/', '\\')
        if text.startswith('\\\\'):
            raise faults.file_not_found(path)  # UNC and device paths: no network in the simulator
        drive, rest = ntpath.splitdrive(text)
        if drive and drive.upper() != 'C:':
            raise faults.file_not_found(path)
        if not rest.startswith('\\'):
            rest = '\\Windows\\system32\\' + rest
        parts = []
        for part in rest.split('\\'):
            if part in ('', '.'):
                continue
            if part == '..':
                if parts:
                    parts.pop()
                continue
            part = part.rstrip(' .')
            if not part:
                continue
            if INVALID_NAME_CHARS & set(part):
                raise faults.invalid_argument()  # ERROR_INVALID_NAME [inferred mapping]
            parts.append(part)
        return parts

    def resolve(self, path: str) -> str:
        """The Unix path in the prefix's drive_c of a Windows path, matching names case-insensitively."""
        self.ensure_ready()
        current = self.root
        for part in self.split_windows(path):
            found = self._lookup(current, part) if os.path.isdir(current) else None
            current = found or os.path.join(current, part)
        return current

    def windows_path(self, unix_path: str) -> str:
        rel = os.path.relpath(unix_path, self.root)
        return 'C:\\' if rel == '.' else 'C:\\' + rel.replace('/', '\\')

    def writable(self, path: str) -> bool:
        real = os.path.realpath(self.resolve(path))
        return real == self.root or real.startswith(self.root + os.sep)

    def require_writable(self, path: str):
        # Paths here are already Unix paths inside drive_c (resolve() maps everything there).
        real = os.path.realpath(path)
        if not (real == self.root or real.startswith(self.root + os.sep)):
            raise faults.guest_permission_denied()

    # --- environment ---------------------------------------------------------------------------
    def home(self, user: str) -> str:
        return self._lookup(self.home_root, user) or os.path.join(self.home_root, user)

    def environment(self, user: str) -> dict:
        return windows_env(user, self.vm.host_name)

    # --- temporary files -----------------------------------------------------------------------
    def user_tmp_dir(self, user: str) -> str:
        """%TEMP% of the user: C:\\Users\\<user>\\AppData\\Local\\Temp (vixTools.c VixToolsGetUserTmpDir)."""
        self.ensure_ready()
        path = self._user_temp_unix(user)
        os.makedirs(path, exist_ok=True)
        return path

    def create_temporary(self, user, prefix, suffix, directory_path, directory):
        path = super().create_temporary(user, prefix, suffix, directory_path, directory)
        return self.windows_path(path)

    # --- Windows file attributes ---------------------------------------------------------------
    @staticmethod
    def _hidden(path: str) -> bool:
        """Wine keeps FILE_ATTRIBUTE_HIDDEN in the user.DOSATTRIB extended attribute (as Samba does)."""
        try:
            value = os.getxattr(path, 'user.DOSATTRIB', follow_symlinks=False)
        except OSError:
            return False
        try:
            return bool(int(value.split(b'\0')[0].decode('ascii'), 16) & 0x2)
        except ValueError:
            return False

    @staticmethod
    def _set_hidden(path: str, hidden: bool):
        try:
            current = os.getxattr(path, 'user.DOSATTRIB')
            bits = int(current.split(b'\0')[0].decode('ascii'), 16)
        except (OSError, ValueError):
            bits = 0
        bits = (bits | 0x2) if hidden else (bits & ~0x2)
        if bits:
            os.setxattr(path, 'user.DOSATTRIB', b'0x%x' % bits)
        else:
            try:
                os.removexattr(path, 'user.DOSATTRIB')
            except OSError:
                pass

    @staticmethod
    def _read_only(st: os.stat_result) -> bool:
        """Wine reports FILE_ATTRIBUTE_READONLY for a file without its owner's write bit."""
        return not stat.S_ISDIR(st.st_mode) and not st.st_mode & stat.S_IWUSR

    def attributes_of(self, path: str, st: os.stat_result | None = None):  # pylint: disable=arguments-differ,arguments-renamed
        st = st or os.lstat(path)
        created = getattr(st, 'st_birthtime', None)
        return vim.vm.guest.FileManager.WindowsFileAttributes(
            modificationTime=_utc_seconds(st.st_mtime),
            accessTime=_utc_seconds(st.st_atime),
            # No birth time from Python's stat on Linux: the inode change time stands in (README).
            createTime=_utc_seconds(created if created is not None else min(st.st_ctime, st.st_mtime)),
            hidden=self._hidden(path),
            readOnly=self._read_only(st),
        )

    def list_entry_length(self, info) -> int:
        """Windows entries carry no symlink target (vixTools.c fileExtendedInfoWindowsFormatString)."""
        return _WINDOWS_ENTRY_BASE + len(_xml_escape(info.path))

    @staticmethod
    def check_posix_attributes(attrs):
        """A Windows guest rejects POSIX-only attributes (VIX_E_INVALID_ARG, vixTools.c)."""
        if isinstance(attrs, vim.vm.guest.FileManager.PosixFileAttributes):
            if attrs.ownerId is not None or attrs.groupId is not None or attrs.permissions is not None:
                raise faults.invalid_argument()

    def apply_windows_attributes(self, path: str, attrs, reset: bool):
        """hidden/readOnly/times; ``reset``: an upload does not keep the old attributes. createTime is
        ignored (GuestWindowsFileAttributes: "ignored on upload"; Linux cannot set a birth time)."""
        hidden = read_only = None
        mtime = atime = None
        if attrs is not None:
            mtime, atime = attrs.modificationTime, attrs.accessTime
            if isinstance(attrs, vim.vm.guest.FileManager.WindowsFileAttributes):
                hidden, read_only = attrs.hidden, attrs.readOnly
        if reset:
            hidden = bool(hidden)
            read_only = bool(read_only)
        st = os.stat(path)
        if read_only is not None and not stat.S_ISDIR(st.st_mode):
            mode = stat.S_IMODE(st.st_mode)
            os.chmod(path, (mode & ~0o222) if read_only else (mode | 0o200))
        if hidden is not None:
            self._set_hidden(path, hidden)
        if mtime is not None or atime is not None:
            os.utime(path, (atime.timestamp() if atime else st.st_atime, mtime.timestamp() if mtime else st.st_mtime))

    def apply_attributes(self, path, attrs, default_mode, default_owner=False):  # pylint: disable=arguments-differ,arguments-renamed
        """After an upload (transfers.py): a new or overwritten file is a normal file plus ``attrs``."""
        del default_mode, default_owner
        self.apply_windows_attributes(path, attrs, reset=True)

    def change_attributes(self, file_path: str, attrs):
        path = self.resolve(file_path)
        if not os.path.lexists(path):
            raise faults.file_not_found(file_path)
        self.check_posix_attributes(attrs)
        self.require_writable(path)
        try:
            self.apply_windows_attributes(path, attrs, reset=False)
        except OSError as exc:
            raise errno_fault(exc, file_path) from None

    def _refuse_read_only(self, path: str, guest_path: str):
        """DeleteFile and MoveFileEx(REPLACE_EXISTING) fail with ERROR_ACCESS_DENIED on a read-only file."""
        try:
            st = os.lstat(path)
        except OSError:
            return
        if self._read_only(st):
            raise faults.cannot_access_file(guest_path)

    def delete_file(self, file_path: str):
        path = self.resolve(file_path)
        if os.path.lexists(path) and not os.path.isdir(path):
            self._refuse_read_only(path, file_path)
        super().delete_file(file_path)

    def move_file(self, src: str, dst: str, overwrite: bool):
        dst_path = self.resolve(dst)
        if overwrite and os.path.lexists(dst_path) and not os.path.isdir(dst_path):
            self._refuse_read_only(dst_path, dst)
        super().move_file(src, dst, overwrite)

    def delete_directory(self, directory_path: str, recursive: bool):
        path = self.resolve(directory_path)
        protected = {self.root, os.path.join(self.root, 'windows'), self.home_root}
        if os.path.realpath(path) in {os.path.realpath(p) for p in protected}:
            raise faults.guest_permission_denied()
        super().delete_directory(directory_path, recursive)

    def check_upload_target(self, guest_path: str, attrs, overwrite: bool) -> str:
        if not guest_path:
            raise faults.invalid_argument()
        path = super().check_upload_target(guest_path, attrs, overwrite)
        if overwrite and os.path.isfile(path):
            # The agent's "exists but not writable" check (VIX_E_FILE_ACCESS_ERROR); on Windows a
            # read-only file is not writable, whoever asks (the simulator may run as root).
            self._refuse_read_only(path, guest_path)
        return path

    def check_download_source(self, guest_path: str):
        if not guest_path:
            raise faults.invalid_argument()
        return super().check_download_source(guest_path)

    def strip_exec_if_emulated(self, path: str):
        return None

    # --- helpers run under Wine ---------------------------------------------------------------
    def _helper(self, mode: str, **extra) -> subprocess.CompletedProcess:
        self.ensure_ready()
        env = self.wine_env(GUESTSIM_MODE=mode, **extra)
        return subprocess.run([self.tools.wine, self.launcher], env=env, stdin=subprocess.DEVNULL,
                              capture_output=True, timeout=HELPER_TIMEOUT, check=False)

    def _windows_processes(self) -> list:
        """(pid, parent pid, image name, command line) of every Windows process of the prefix."""
        result = self._helper('ps')
        rows = []
        for line in result.stdout.decode('utf-8', 'replace').splitlines():
            fields = line.split('\t')
            if len(fields) >= 3 and fields[0].isdigit():
                rows.append((int(fields[0]), int(fields[1]), fields[2], fields[3] if len(fields) > 3 else ''))
        return rows

    # --- processes -----------------------------------------------------------------------------
    def start_program(self, user: str, spec) -> int:
        """Like the agent on Windows: the program must exist (File_Exists, FileNotFound), the working
        directory must be a directory (VIX_E_NOT_A_DIRECTORY), then CreateProcess of the one string
        ``"<programPath>" <arguments>`` (vixTools.c VixToolsStartProgramImpl)."""
        self.ensure_ready()
        program, path = self.program_file(spec)
        work_dir = spec.workingDirectory or ''
        if work_dir and not os.path.isdir(self.resolve(work_dir)):
            raise faults.not_a_directory(work_dir)
        if spec.envVariables:
            env_entries = [item for item in spec.envVariables if '=' in item[1:]]
        else:
            env_entries = ['%s=%s' % item for item in self.environment(user).items()]
        command = '"%s" %s' % (program, spec.arguments or '')
        with self.lock:
            self._request_number += 1
            request = os.path.join(self.requests_dir, 'req-%d-%d' % (os.getpid(), self._request_number))
        # An empty working directory is NULL: the child starts in the launcher's directory, like the
        # agent's unspecified behaviour ("if this value is unset, the behavior is unspecified").
        fields = [command, work_dir, '1'] + env_entries
        with open(request, 'wb') as handle:
            handle.write(('\0'.join(fields) + '\0\0').encode('utf-16-le'))
        try:
            popen = subprocess.Popen(  # pylint: disable=consider-using-with
                [self.tools.wine, self.launcher], cwd=self.requests_dir,
                env=self.wine_env(GUESTSIM_MODE='run', GUESTSIM_REQUEST=self._z_path(request)),
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                close_fds=True, start_new_session=True)
        except OSError as exc:
            LOG.warning('cannot start the launcher: %s', exc)
            raise faults.system_error('vix error codes = (3020, 0).') from None
        answer = self._wait_for_file(request + '.pid', popen, START_TIMEOUT)
        if answer is None:
            popen.kill()
            popen.wait(5)
            raise faults.system_error('vix error codes = (3020, 0).')
        if answer.startswith('error'):
            popen.wait(10)
            self._remove_request(request)
            code = int(answer.split()[1])
            if code in (ERROR_FILE_NOT_FOUND, ERROR_PATH_NOT_FOUND):
                raise faults.file_not_found(program)
            if code == ERROR_DIRECTORY:
                raise faults.not_a_directory(work_dir)
            if code == ERROR_ACCESS_DENIED:
                raise faults.guest_permission_denied()
            raise faults.system_error('vix error codes = (3020, 0).')  # VIX_E_PROGRAM_NOT_STARTED
        pid = int(answer)
        process = GuestProcess(pid=pid, name=ntpath.basename(program), cmd_line=command, owner=user,
                               start_time=_utc_seconds(), popen=popen)
        process.request = request
        with self.lock:
            self._reap_locked()
            # Windows reuses pids: a new program with the pid of an exited record replaces it.
            self.processes[pid] = process
            if self._invalidator_at is None:
                self._invalidator_at = time.monotonic() + 60.0
        threading.Thread(target=self._wait, args=(process,), name='win-wait-%d' % pid, daemon=True).start()
        return pid

    @staticmethod
    def _z_path(unix_path: str) -> str:
        """Wine's Z: drive is the Unix root."""
        return 'Z:' + unix_path.replace('/', '\\')

    @staticmethod
    def _wait_for_file(path: str, popen, timeout: float) -> str | None:
        deadline = time.monotonic() + timeout
        delay = 0.005
        while time.monotonic() < deadline:
            try:
                with open(path, encoding='ascii') as handle:
                    return handle.read().strip()
            except FileNotFoundError:
                pass
            if popen.poll() is not None and not os.path.exists(path):
                return None
            time.sleep(delay)
            delay = min(delay * 2, 0.05)
        return None

    @staticmethod
    def _remove_request(request: str):
        for suffix in ('', '.pid', '.exit'):
            try:
                os.unlink(request + suffix)
            except OSError:
                pass

    def _exit_code(self, process: GuestProcess, returncode: int) -> int:
        """The child's exit code as the launcher wrote it: GetExitCodeProcess as a signed int32
        (GuestProcessInfo.exitCode is an int; Windows crash codes such as 0xC0000005 are negative)."""
        del returncode
        request = getattr(process, 'request', None)
        try:
            with open(request + '.exit', encoding='ascii') as handle:
                code = int(handle.read().strip())
        except (OSError, TypeError, ValueError):
            code = -1  # the launcher was killed (power-off): the agent could not read it
        self._remove_request(request)
        return code

    def terminate(self, pid: int):
        """TerminateProcess of exactly that process (its children keep running), as on Windows."""
        self.ensure_ready()
        with self.lock:
            process = self.processes.get(pid)
        if process is not None and not process.done.is_set():
            result = self._helper('kill', GUESTSIM_PID=str(pid))
            if result.returncode == 5:
                raise faults.guest_permission_denied()
            if not process.done.wait(15.0):
                LOG.warning('process %d of %s did not end', pid, self.vm.name)
            return
        if any(entry.pid == pid for entry in self.system_processes()):
            raise faults.guest_permission_denied()
        if pid not in self._other_pids():
            raise faults.guest_process_not_found(pid)
        result = self._helper('kill', GUESTSIM_PID=str(pid))
        if result.returncode == 5:
            raise faults.guest_permission_denied()
        if result.returncode != 0:
            raise faults.guest_process_not_found(pid)

    def _launcher_pids(self, rows) -> set:
        return {pid for pid, _ppid, image, _cmd in rows if image.lower() == 'launcher.exe'}

    def _other_pids(self) -> set:
        rows = self._windows_processes()
        launchers = self._launcher_pids(rows)
        return {pid for pid, _ppid, _image, _cmd in rows if pid not in launchers}

    def _os_processes(self) -> dict:
        """System entries, then every Windows process of the prefix (the launchers are hidden: on
        Windows the parent of a started program is vmtoolsd.exe)."""
        with self.lock:
            recorded = set(self.processes)
        result = {entry.pid: entry for entry in self.system_processes()}
        rows = self._windows_processes()
        launchers = self._launcher_pids(rows)
        now = _utc_seconds()
        seen = {}
        for pid, _ppid, image, cmd in rows:
            if pid in recorded or pid in launchers:
                continue
            started = self._first_seen.get(pid, now)
            seen[pid] = started
            owner = 'SYSTEM' if image.lower() in WINE_SYSTEM_IMAGES else self.prefix_user
            result[pid] = vim.vm.guest.ProcessManager.ProcessInfo(
                name=image, pid=pid, owner=owner, cmdLine=cmd or image, startTime=started)
        self._first_seen = seen
        return result

    def _descendants(self) -> dict:
        return {}

    def end_processes(self, grace: float = 2.0):
        """Power-off and simulator stop: every Windows process of the prefix ends (wineserver -k)."""
        del grace
        with self.lock:
            running = [p for p in self.processes.values() if not p.done.is_set()]
        if self._ready.is_set():
            self.wineserver_kill()
        for process in running:
            if not process.done.wait(5.0):
                try:
                    process.popen.kill()
                except OSError:
                    pass
                process.done.wait(2.0)

    def restart_tools(self, end_programs: bool = False):
        if end_programs:
            with self.lock:
                running = [p for p in self.processes.values() if not p.done.is_set()]
            for process in running:
                try:
                    self.terminate(process.pid)
                except Exception:  # pylint: disable=broad-exception-caught
                    pass
        with self.lock:
            self.processes.clear()
        self._new_agent()

    def unrecorded_programs(self) -> list:
        return []

    def shutdown(self, grace: float = 2.0):
        """Simulator stop: let a wineboot in progress finish (bounded), then end every Windows process."""
        if self._init_lock.acquire(timeout=WINEBOOT_TIMEOUT):  # pylint: disable=consider-using-with
            self._init_lock.release()
        self.end_processes(grace)
        if not self._ready.is_set() and os.path.isdir(self.prefix):
            self.wineserver_kill()

    def _new_agent(self):
        with self.lock:
            self.agent_started = _utc_seconds()
            self._invalidator_at = None
            self.user_tmp_dirs = {}
            # Windows pids are multiples of 4; vmtoolsd.exe gets a new one at every restart.
            self.agent_pid = self.agent_pid + 4 if self.agent_pid else 3012
            self.agent_env = {}

    def system_processes(self) -> list:
        """The System process (pid 4) and vmtoolsd.exe; Wine's own services are real processes."""
        if self.vm.power_state != 'poweredOn':
            return []
        boot = self.vm.boot_time or _utc_seconds()
        result = [vim.vm.guest.ProcessManager.ProcessInfo(name='System', pid=4, owner='SYSTEM', cmdLine='',
                                                          startTime=boot)]
        if self.vm.tools_running():
            result.append(vim.vm.guest.ProcessManager.ProcessInfo(
                name='vmtoolsd.exe', pid=self.agent_pid, owner='SYSTEM',
                cmdLine='"C:\\Program Files\\VMware\\VMware Tools\\vmtoolsd.exe"', startTime=self.agent_started))
        return result
