"""Windows VMs: programs run by Wine (cmd.exe, CreateProcess, the C runtime), Windows paths and
attributes. Wine and mingw-w64 are required (make windows-tools): their absence fails, never skips."""

from __future__ import annotations

import base64
import json
import os
import time

import pytest
from pyVmomi import vim, vmodl

from guestsim.windows import find_mingw, find_wine

from .conftest import GuestClient

FM = vim.vm.guest.FileManager
CMD = 'C:\\Windows\\System32\\cmd.exe'
ARGV = 'C:\\guestsim\\argv.exe'
SLEEP = 'C:\\guestsim\\sleep.exe'


def test_wine_and_mingw_are_installed():
    assert find_wine(), 'wine64 is missing: run `make windows-tools` as root (apt-get install wine64)'
    assert find_mingw(), 'x86_64-w64-mingw32-gcc is missing: run `make windows-tools` (gcc-mingw-w64-x86-64)'


@pytest.fixture
def win(sim, si):
    auth = vim.vm.guest.NamePasswordAuthentication(username='Administrator', password='guestpass',
                                                   interactiveSession=False)
    return GuestClient(sim, si, 'DC0_H0_WIN0', auth)


def _read(win, path):
    return win.download(path).decode('utf-8', 'replace')


def _cmd(win, line, cwd=None, env=None):
    """cmd.exe /d /s /c "LINE", as the collection's Windows wrapper starts it."""
    return win.run(CMD, '/d /s /c "%s"' % line, cwd=cwd, env=env)


def test_windows_vm_properties(win):
    guest = win.vm.guest
    assert (guest.guestFamily, guest.guestId) == ('windowsGuest', 'windows2019srv_64Guest')
    assert 'Windows Server 2019' in guest.guestFullName
    root = vim.vm.guest.NamePasswordAuthentication(username='root', password='guestpass')
    with pytest.raises(vim.fault.InvalidGuestLogin):
        win.auth_manager.ValidateCredentialsInGuest(win.vm, root)
    win.auth_manager.ValidateCredentialsInGuest(win.vm, win.auth)


def test_temp_names_and_default_location(win):
    path = win.files.CreateTemporaryFileInGuest(win.vm, win.auth, 'pre', '.txt')
    assert path.startswith('C:\\Users\\Administrator\\AppData\\Local\\Temp\\prevmware') and path.endswith('.txt')
    number = int(path.rsplit('vmware', 1)[1][:-4])
    assert number % 2 == 1
    directory = win.temp_dir()
    assert int(directory.rsplit('vmware', 1)[1]) % 2 == 0
    inside = win.files.CreateTemporaryFileInGuest(win.vm, win.auth, 'x', '', directory)
    assert inside.startswith(directory + '\\x')
    win.files.DeleteFileInGuest(win.vm, win.auth, path)
    win.files.DeleteDirectoryInGuest(win.vm, win.auth, directory, True)


def test_paths_are_case_insensitive_with_either_slash(win):
    base = win.temp_dir()
    assert win.upload(base + '\\Data.TXT', b'one', attributes=FM.WindowsFileAttributes()).status_code == 200
    assert win.download(base.lower() + '\\data.txt') == b'one'
    assert win.download(base.replace('\\', '/').upper().replace('C:', 'c:') + '/DATA.txt') == b'one'
    # Win32 path normalisation: '.', '..' and trailing dots and spaces.
    assert win.download(base + '\\sub\\..\\.\\data.txt. ') == b'one'
    # Overwriting through another spelling replaces the same file and keeps its name.
    assert win.upload(base + '\\DATA.txt', b'two', attributes=FM.WindowsFileAttributes()).status_code == 200
    names = [f.path for f in win.files.ListFilesInGuest(win.vm, win.auth, base).files]
    assert names == ['.', '..', 'Data.TXT']
    with pytest.raises(vim.fault.FileAlreadyExists):
        win.files.MakeDirectoryInGuest(win.vm, win.auth, base + '\\DATA.TXT', False)
    with pytest.raises(vim.fault.FileNotFound):
        win.download('D:\\nothing.txt')
    with pytest.raises(vmodl.fault.InvalidArgument):
        win.files.InitiateFileTransferFromGuest(win.vm, win.auth, '')
    # What programs see is the same directory.
    _cmd(win, 'type %s\\data.txt >%s\\copy.txt' % (base, base))
    assert win.download(base + '\\copy.txt') == b'two'
    win.files.DeleteDirectoryInGuest(win.vm, win.auth, base, True)
    with pytest.raises(vim.fault.GuestPermissionDenied):
        win.files.DeleteDirectoryInGuest(win.vm, win.auth, 'C:\\', True)


def test_windows_file_attributes(win):
    base = win.temp_dir()
    path = base + '\\f.txt'
    assert win.upload(path, b'x', attributes=FM.WindowsFileAttributes(hidden=True, readOnly=True)).status_code == 200
    entry = win.files.ListFilesInGuest(win.vm, win.auth, path).files[0]
    attrs = entry.attributes
    assert isinstance(attrs, FM.WindowsFileAttributes)
    assert attrs.hidden and attrs.readOnly and attrs.createTime is not None and attrs.modificationTime is not None
    info = win.files.InitiateFileTransferFromGuest(win.vm, win.auth, path)
    assert isinstance(info.attributes, FM.WindowsFileAttributes) and info.attributes.readOnly
    # Wine's own attrib.exe sees the same attributes.
    _cmd(win, 'attrib %s >%s\\attrib.txt' % (path, base))
    line = _read(win, base + '\\attrib.txt')
    assert 'H' in line.split('C:')[0] and 'R' in line.split('C:')[0], line
    # A read-only file cannot be overwritten, deleted or replaced (ERROR_ACCESS_DENIED).
    with pytest.raises(vim.fault.CannotAccessFile):
        win.upload(path, b'y', attributes=FM.WindowsFileAttributes())
    with pytest.raises(vim.fault.CannotAccessFile):
        win.files.DeleteFileInGuest(win.vm, win.auth, path)
    win.files.ChangeFileAttributesInGuest(win.vm, win.auth, path, FM.WindowsFileAttributes(readOnly=False))
    attrs = win.files.ListFilesInGuest(win.vm, win.auth, path).files[0].attributes
    assert attrs.hidden and not attrs.readOnly
    # An overwrite does not keep the old attributes.
    assert win.upload(path, b'y', attributes=FM.WindowsFileAttributes()).status_code == 200
    attrs = win.files.ListFilesInGuest(win.vm, win.auth, path).files[0].attributes
    assert not attrs.hidden and not attrs.readOnly
    # POSIX attributes on a Windows guest are InvalidArgument, as the agent answers.
    with pytest.raises(vmodl.fault.InvalidArgument):
        win.files.ChangeFileAttributesInGuest(win.vm, win.auth, path, FM.PosixFileAttributes(permissions=0o600))
    with pytest.raises(vmodl.fault.InvalidArgument):
        win.upload(base + '\\p.txt', b'x', attributes=FM.PosixFileAttributes(ownerId=0))
    # The base type (what community.vmware sends) is fine.
    assert win.upload(base + '\\plain.txt', b'x', attributes=FM.FileAttributes()).status_code == 200
    win.files.DeleteFileInGuest(win.vm, win.auth, path)
    win.files.DeleteDirectoryInGuest(win.vm, win.auth, base, True)


def test_cmd_exe_redirections_and_errorlevel(win):
    """Exactly what the collection's Windows wrapper (module_utils/_command_line.py windows_wrapped)
    relies on: cmd.exe /d /s /c "...", >, 2>, <NUL, &, call echo %^ERRORLEVEL%>file."""
    base = win.temp_dir()
    line = ('cmd.exe 1>%s\\stdout 2>%s\\stderr <NUL /d /s /c ^"echo out^& echo err 1^>^&2^& exit 7^"'
            '& call echo %%^ERRORLEVEL%%>%s\\rc' % (base, base, base))
    _cmd(win, line, cwd=base)
    # (The outer cmd.exe's own exit code after `call echo` is 1 under Wine; the wrapper reads the rc
    # file, so it is not asserted here. See README, "What Wine cannot show".)
    assert _read(win, base + '\\stdout') == 'out\r\n'
    assert _read(win, base + '\\stderr') == 'err \r\n'
    assert _read(win, base + '\\rc').strip() == '7'
    # A negative exit code is the signed 32-bit value.
    info = _cmd(win, 'exit -5')
    assert info.exitCode == -5
    info = win.run(SLEEP, '0 -1073741819')
    assert info.exitCode == -1073741819
    info = win.run(SLEEP, '0 4294967295')
    assert info.exitCode == -1
    win.files.DeleteDirectoryInGuest(win.vm, win.auth, base, True)


def _argv(win, arguments, base):
    """Start argv.exe directly (no cmd.exe): its JSON goes to a file named in its environment."""
    out = base + '\\argv.json'
    pid = win.start(ARGV, arguments, env=['GUESTSIM_ARGV_OUT=' + out])
    info = win.wait(pid)
    assert info.exitCode == 0
    return pid, json.loads(_read(win, out))


def test_command_line_reaches_the_program_unchanged(win):
    base = win.temp_dir()
    # No shell between the API and the program: StartProgramInGuest's string is the command line,
    # split by the program's C runtime (MS rules: backslashes count only before a quote).
    arguments = 'plain "with space" "q\\"uote" trail\\ "trail\\\\" "a&b|c<d>e^f(g)" %PATH% \\\\srv\\x'
    pid, data = _argv(win, arguments, base)
    assert data['cmdline'] == '"%s" %s' % (ARGV, arguments)
    assert data['argv'] == [ARGV, 'plain', 'with space', 'q"uote', 'trail\\', 'trail\\', 'a&b|c<d>e^f(g)', '%PATH%',
                            '\\\\srv\\x']
    assert data['shell32'][1:] == data['argv'][1:]
    record = win.info(pid)
    assert record.cmdLine == '"%s" %s' % (ARGV, arguments)
    assert record.name == 'argv.exe'
    win.files.DeleteDirectoryInGuest(win.vm, win.auth, base, True)


def test_argv_printer_through_cmd_exe(win):
    """cmd.exe passes quoted metacharacters on and expands %VAR% outside and inside quotes."""
    base = win.temp_dir()
    info = _cmd(win, '%s "a & b" "c>d" x^&y %%OS%% "%%OS%%" >%s\\argv.json' % (ARGV, base))
    assert info.exitCode == 0
    data = json.loads(_read(win, base + '\\argv.json'))
    assert data['argv'][1:] == ['a & b', 'c>d', 'x&y', 'Windows_NT', 'Windows_NT']
    win.files.DeleteDirectoryInGuest(win.vm, win.auth, base, True)


def test_powershell_is_a_stand_in_that_shows_its_script_and_fails(win):
    """Wine has no PowerShell: powershell.exe decodes -EncodedCommand (or reads -File), prints
    what it got as JSON and exits 1, so nothing can pass for a PowerShell run."""
    base = win.temp_dir()
    script = 'Write-Output "gr\u00fc\u00dfe"; exit 3'
    encoded = base64.b64encode(script.encode('utf-16-le')).decode('ascii')
    powershell = 'C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe'
    info = _cmd(win, '%s -NoProfile -EncodedCommand %s >%s\\out 2>%s\\err' % (powershell, encoded, base, base))
    assert info.exitCode == 1
    data = json.loads(_read(win, base + '\\out'))
    assert data['argv'][1:] == ['-NoProfile', '-EncodedCommand', encoded]
    assert data['script'] == script
    assert 'no PowerShell' in _read(win, base + '\\err')
    win.upload(base + '\\s.ps1', b'\xef\xbb\xbf' + script.encode('utf-8'))
    _cmd(win, '%s -File %s\\s.ps1 >%s\\out' % (powershell, base, base))
    data = json.loads(_read(win, base + '\\out'))
    assert (data['script'], data['bom']) == (script, True)
    win.files.DeleteDirectoryInGuest(win.vm, win.auth, base, True)


def test_c_runtime_and_shell32_parse_differently(win):
    """The two parsers the README names disagree on a doubled quote inside quotes (both are Wine's
    implementations; what they do is recorded here, not chosen by us)."""
    base = win.temp_dir()
    _pid, data = _argv(win, '"a""b" c', base)
    assert data['cmdline'].endswith('"a""b" c')
    # C runtime (Wine's msvcrt, like the UCRT): "" inside quotes is a literal quote, quoting goes on.
    assert data['argv'][1:] == ['a"b', 'c']
    # CommandLineToArgvW: "" inside quotes is a literal quote and ends the quoting, so the next
    # quote opens it again and the space is kept.
    assert data['shell32'][1:] == ['a"b c']
    win.files.DeleteDirectoryInGuest(win.vm, win.auth, base, True)


def test_working_directory_and_environment(win):
    base = win.temp_dir()
    _cmd(win, 'cd >%s\\cwd.txt& set >%s\\env.txt' % (base, base), cwd=base)
    assert _read(win, base + '\\cwd.txt').strip().lower() == base.lower()
    env = dict(line.split('=', 1) for line in _read(win, base + '\\env.txt').splitlines() if '=' in line)
    assert env['USERNAME'] == 'Administrator'
    assert env['TEMP'] == 'C:\\Users\\Administrator\\AppData\\Local\\Temp'
    assert env['USERPROFILE'] == 'C:\\Users\\Administrator'
    read = dict(item.split('=', 1) for item in win.processes.ReadEnvironmentVariableInGuest(win.vm, win.auth, []))
    assert read['TEMP'] == env['TEMP'] and read['USERNAME'] == 'Administrator'
    # envVariables replace the environment.
    _cmd(win, 'set >%s\\env2.txt' % base, env=['FOO=bar baz', 'SystemRoot=C:\\Windows'])
    env2 = dict(line.split('=', 1) for line in _read(win, base + '\\env2.txt').splitlines() if '=' in line)
    assert env2['FOO'] == 'bar baz'
    assert 'USERNAME' not in env2 and 'TEMP' not in env2 and 'Path' not in env2 and 'PATH' not in env2
    with pytest.raises(vim.fault.NotADirectory):
        win.start(CMD, '/c exit', cwd=base + '\\missing')
    with pytest.raises(vim.fault.FileNotFound):
        win.start('C:\\Windows\\System32\\nothing.exe')
    win.files.DeleteDirectoryInGuest(win.vm, win.auth, base, True)


def test_pids_records_and_exit_poll(win):
    pid = win.start(SLEEP, '300 3')
    assert pid % 4 == 0 and pid > 4
    running = win.info(pid)
    assert running.endTime is None and running.exitCode is None and running.name == 'sleep.exe'
    done = win.wait(pid)
    assert done.exitCode == 3 and done.endTime >= done.startTime
    listing = win.processes.ListProcessesInGuest(win.vm, win.auth)
    pids = [p.pid for p in listing]
    assert pid in pids and 4 in pids and len(pids) == len(set(pids))
    assert any(p.name == 'vmtoolsd.exe' for p in listing)
    assert not any(p.name.lower() == 'launcher.exe' for p in listing)
    with pytest.raises(vim.fault.GuestProcessNotFound):
        win.processes.TerminateProcessInGuest(win.vm, win.auth, pid)
    with pytest.raises(vim.fault.GuestPermissionDenied):
        win.processes.TerminateProcessInGuest(win.vm, win.auth, 4)


def test_terminate_ends_exactly_one_process(win):
    pid = win.start(CMD, '/d /c %s 60000' % SLEEP)
    deadline = time.monotonic() + 20
    child = None
    while time.monotonic() < deadline and child is None:
        child = next((p for p in win.processes.ListProcessesInGuest(win.vm, win.auth)
                      if p.name == 'sleep.exe' and p.pid != pid and p.endTime is None), None)
        time.sleep(0.1)
    assert child is not None, 'cmd.exe did not start sleep.exe'
    win.processes.TerminateProcessInGuest(win.vm, win.auth, pid)
    info = win.wait(pid, timeout=10)
    assert info.exitCode == 1
    # Its child keeps running: TerminateProcess ends one process, not a tree.
    still = win.processes.ListProcessesInGuest(win.vm, win.auth, [child.pid])
    assert [p.pid for p in still] == [child.pid]
    win.processes.TerminateProcessInGuest(win.vm, win.auth, child.pid)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and win.processes.ListProcessesInGuest(win.vm, win.auth, [child.pid]):
        time.sleep(0.1)
    assert not win.processes.ListProcessesInGuest(win.vm, win.auth, [child.pid])


def test_windows_vm_from_the_inventory_has_its_own_prefix(tmp_path):
    from guestsim import Simulator
    inventory = tmp_path / 'inv.yml'
    inventory.write_text('vms:\n  - name: WIN_EXTRA\n    os: windows\n    users: {Administrator: pw2}\n')
    simulator = Simulator(port=0, control_port=None, state_dir=str(tmp_path / 'state'), inventory_file=str(inventory),
                          exit_poll_interval=0.1).start()
    try:
        from guestsim.testing import SimulatorHandle
        handle = SimulatorHandle(simulator)
        service_instance = handle.connect()
        auth = vim.vm.guest.NamePasswordAuthentication(username='Administrator', password='pw2')
        extra = GuestClient(handle, service_instance, 'WIN_EXTRA', auth)
        assert extra.vm.guest.guestFamily == 'windowsGuest'
        base = extra.temp_dir()
        assert extra.upload(base + '\\mine.txt', b'extra', attributes=FM.WindowsFileAttributes()).status_code == 200
        state = handle.state()
        prefixes = {v['name']: v.get('wine_prefix') for v in state['vms']}
        assert prefixes['WIN_EXTRA'] != prefixes['DC0_H0_WIN0']
        assert os.path.isfile(os.path.join(prefixes['WIN_EXTRA'], 'drive_c', 'Users', 'Administrator', 'AppData',
                                           'Local', 'Temp', base.rsplit('\\', 1)[1], 'mine.txt'))
        # Lazy: the default Windows VM was never used, so its prefix was never initialised.
        assert not {v['name']: v.get('wine_ready') for v in state['vms']}['DC0_H0_WIN0']
    finally:
        simulator.stop()
