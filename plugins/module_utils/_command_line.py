# -*- coding: utf-8 -*-
# Copyright (c) guestops.vsphere contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Build the program path and arguments handed to StartProgramInGuest.

Pure functions only: no vSphere, no I/O. Private to the collection.

Linux guests: VMware Tools starts ``programPath`` through a guest shell
(``bash -c '"<programPath>" <arguments>'``), so ``arguments`` is shell syntax.
We start ``/bin/sh`` with a small constant wrapper script and hand it the user's
command and the output paths as positional parameters. The wrapper runs the
command in its own session (so a terminate reaches every child), redirects
stdout/stderr into files, records the exit status in a file (vSphere forgets
exit codes five minutes after a program ends) and exits with that status.

Windows guests: no shell is involved, so we start ``cmd.exe /d /s /c "..."``
whose line starts an inner ``cmd.exe`` with the redirections, then records
``%ERRORLEVEL%`` into the rc file.
"""

from __future__ import annotations

import base64
import ntpath
import posixpath
import re

LINUX_SHELL = '/bin/sh'
WINDOWS_SHELL = 'C:\\Windows\\System32\\cmd.exe'

DEFAULT_POSIX_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
DEFAULT_WINDOWS_ENV = {
    'SystemRoot': 'C:\\Windows',
    'PATH': 'C:\\Windows\\System32;C:\\Windows;C:\\Windows\\System32\\Wbem;'
            'C:\\Windows\\System32\\WindowsPowerShell\\v1.0',
}

# Windows PowerShell 5.1, present on every supported Windows version; the switches keep the
# user's profile and any prompt out of the run and let an unsigned script run.
POWERSHELL = 'C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe'
POWERSHELL_SWITCHES = '-NoProfile -NonInteractive -ExecutionPolicy Bypass'
# cmd.exe takes at most 8191 characters on a command line (Microsoft, "Command prompt (Cmd.exe)
# command-line string limitation"); the wrapper's line is parsed by cmd.exe, so it must fit.
CMD_LINE_LIMIT = 8191

# Name shown as $0 of the wrapper in the guest's process table.
WRAPPER_NAME = 'guestops-run'

# $1 = command, $2 = stdout file, $3 = stderr file, $4 = rc file ('' = none),
# $5 = seconds after which the guest ends the command by itself ('' = never), $6 = file that
# records that it did.
# setsid puts the command into its own process group, so the TERM trap can end the whole tree
# (TerminateProcessInGuest only signals the wrapper). The watchdog is what keeps the deadline
# when no controller is left to terminate the program: it checks once a second, ends the
# process group with TERM and, 5 seconds later, KILL, and stops by itself once the command ends.
LINUX_WRAPPER = (
    'trap \'kill -TERM -"$p" 2>/dev/null || kill -TERM "$p" 2>/dev/null; exit 143\' HUP INT TERM; '
    'if command -v setsid >/dev/null 2>&1; '
    'then setsid /bin/sh -c "$1" >"$2" 2>"$3" </dev/null & '
    'else /bin/sh -c "$1" >"$2" 2>"$3" </dev/null & fi; '
    'p=$!; '
    'if [ -n "$5" ]; then ( e=$(( $(date +%s) + $5 )); '
    'while kill -0 "$p" 2>/dev/null; do '
    'if [ "$(date +%s)" -ge "$e" ]; then echo "$5" >"$6"; '
    'kill -TERM -"$p" 2>/dev/null || kill -TERM "$p" 2>/dev/null; sleep 5; '
    'kill -KILL -"$p" 2>/dev/null || kill -KILL "$p" 2>/dev/null; break; fi; '
    'sleep 1; done ) </dev/null >/dev/null 2>&1 & fi; '
    'wait "$p"; r=$?; '
    'if [ -n "$4" ]; then echo "$r" >"$4"; fi; '
    'exit "$r"'
)

_POSIX_SAFE = re.compile(r'^[A-Za-z0-9_@%+=:,./-]+$')
_ENV_NAME = re.compile(r'^[A-Za-z_][A-Za-z0-9_]*$')
# Characters cmd.exe treats specially outside double quotes.
_CMD_META = frozenset('()%!^"<>&|')


class CommandLineError(ValueError):
    """The requested command cannot be expressed for the guest."""


class CommandTooLong(CommandLineError):
    """The command line is longer than the guest's command interpreter accepts."""


class ProgramSpec(object):
    """What StartProgramInGuest needs: program path, arguments, cwd, environment."""

    __slots__ = ('program_path', 'arguments', 'working_directory', 'env')

    def __init__(self, program_path, arguments, working_directory=None, env=None):
        self.program_path = program_path
        self.arguments = arguments
        self.working_directory = working_directory
        self.env = env

    def __repr__(self):
        return 'ProgramSpec(%r, %r, %r, %r)' % (self.program_path, self.arguments,
                                                self.working_directory, self.env)


def start_request_size(spec):
    """Bytes of the VIX request StartProgramInGuest becomes in the guest (open-vm-tools vixCommands.h).

    The packed VixMsgStartProgramRequest header (72 bytes), then programPath, arguments,
    workingDirectory and every environment entry, each UTF-8 and NUL-terminated. vSphere refuses
    more than VIX_COMMAND_MAX_USER_INPUT_SIZE (60,536 bytes).
    """
    def length(text):
        return len((text or '').encode('utf-8')) + 1
    size = 72 + length(spec.program_path) + length(spec.arguments) + length(spec.working_directory)
    return size + sum(length(item) for item in spec.env or [])


def shorten(command, limit=1024):
    """A command for results and messages: at most ``limit`` characters of it, and how much was left out."""
    if isinstance(command, (list, tuple)):
        total = sum(len(str(item)) for item in command)
        if total <= limit:
            return list(command)
        kept = []
        room = limit
        for item in command:
            item = str(item)
            if room <= 0:
                break
            kept.append(item[:room])
            room -= len(item)
        kept.append('... (%d more characters)' % (total - limit))
        return kept
    if command is None or len(command) <= limit:
        return command
    return '%s... (%d more characters)' % (command[:limit], len(command) - limit)


# --------------------------------------------------------------------------- POSIX

def posix_quote(value):
    """Quote one word for a POSIX shell (the same rules as shlex.quote)."""
    value = str(value)
    if not value:
        return "''"
    if _POSIX_SAFE.match(value):
        return value
    return "'" + value.replace("'", "'\"'\"'") + "'"


def posix_join(argv):
    """Join an argument vector into one POSIX shell command line."""
    if not argv:
        raise CommandLineError('argv must contain at least the program')
    return ' '.join(posix_quote(arg) for arg in argv)


def _env_list(env, name_is_valid, defaults, fold=str):
    """``NAME=value`` strings for env plus the defaults it does not set (names compared after fold).

    Returns None when env is None (the guest's default environment is used).
    """
    if env is None:
        return None
    result = []
    names = set()
    for name, value in env.items():
        name = str(name)
        if not name_is_valid(name):
            raise CommandLineError('invalid environment variable name %r' % name)
        names.add(fold(name))
        result.append('%s=%s' % (name, '' if value is None else value))
    for name, value in defaults.items():
        if fold(name) not in names:
            result.append('%s=%s' % (name, value))
    return result


def posix_env(env):
    """Environment list for a Linux guest: the given variables plus a default PATH."""
    return _env_list(env, _ENV_NAME.match, {'PATH': DEFAULT_POSIX_PATH})


def linux_wrapped(command, stdout_path, stderr_path, rc_path=None, working_directory=None, env=None,
                  deadline=None, deadline_path=None):
    """ProgramSpec running ``command`` through the wrapper (see module docstring).

    With ``deadline`` (seconds) the guest ends the command itself after that long and writes
    the deadline into ``deadline_path``.
    """
    if deadline is not None and not deadline_path:
        raise CommandLineError('a deadline needs a file to record it in')
    arguments = ' '.join([
        '-c', posix_quote(LINUX_WRAPPER), WRAPPER_NAME, posix_quote(command),
        posix_quote(stdout_path), posix_quote(stderr_path), posix_quote(rc_path or ''),
        posix_quote('' if deadline is None else '%d' % int(deadline)), posix_quote(deadline_path or ''),
    ])
    return ProgramSpec(LINUX_SHELL, arguments, working_directory, posix_env(env))


def linux_raw(program, arguments, stdout_path=None, stderr_path=None, working_directory=None, env=None):
    """ProgramSpec for the raw program + arguments form.

    The arguments are passed as given (they are interpreted by the guest shell
    that VMware Tools uses); output redirections are appended when paths are given.
    """
    if not posixpath.isabs(program):
        raise CommandLineError('program must be an absolute path in the guest, got %r' % program)
    parts = [arguments] if arguments else []
    if stdout_path:
        parts.append('>' + posix_quote(stdout_path))
    if stderr_path:
        parts.append('2>' + posix_quote(stderr_path))
    if stdout_path or stderr_path:
        parts.append('</dev/null')
    return ProgramSpec(program, ' '.join(parts), working_directory, posix_env(env))


# --------------------------------------------------------------------------- Windows

def windows_quote_arg(value, always=False):
    """Quote one argument so CommandLineToArgvW / the MS C runtime read it back unchanged."""
    value = str(value)
    if value and not always and not any(c in value for c in ' \t\n\v"'):
        return value
    out = ['"']
    backslashes = 0
    for char in value:
        if char == '\\':
            backslashes += 1
        elif char == '"':
            out.append('\\' * (backslashes * 2 + 1) + '"')
            backslashes = 0
        else:
            out.append('\\' * backslashes + char)
            backslashes = 0
    out.append('\\' * (backslashes * 2) + '"')
    return ''.join(out)


def windows_cmd_join(argv):
    """Join an argument vector for a command line that cmd.exe runs.

    cmd.exe leaves ``& | < > ^ ( )`` alone only inside double quotes, so every argument that
    holds one of them (or white space) is quoted. ``%`` is expanded by cmd.exe even inside
    quotes and an embedded ``"`` toggles its quoting, so both are refused: such arguments
    need the cmd form, written for cmd.exe by hand.
    """
    if not argv:
        raise CommandLineError('argv must contain at least the program')
    parts = []
    for arg in argv:
        arg = str(arg)
        for char, name in (('%', 'a percent sign'), ('"', 'a double quote'), ('\n', 'a line break'), ('\r', 'a line break')):
            if char in arg:
                raise CommandLineError('argv item %r holds %s, which cannot reach a Windows program through cmd.exe '
                                       'unchanged; use cmd with a command line written for cmd.exe instead' % (arg, name))
        parts.append(windows_quote_arg(arg, always=not arg or any(c in arg for c in ' \t&|<>^()')))
    return ' '.join(parts)


def cmd_escape(text):
    """Escape text so cmd.exe passes it on literally: a caret before every metacharacter.

    Line breaks cannot be passed through cmd.exe and are refused.
    """
    if '\n' in text or '\r' in text:
        raise CommandLineError('a Windows command line cannot contain line breaks')
    return ''.join('^' + c if c in _CMD_META else c for c in text)


def windows_env(env):
    """Environment list for a Windows guest; SystemRoot and PATH get defaults (names ignore case)."""
    return _env_list(env, lambda name: bool(name) and '=' not in name, DEFAULT_WINDOWS_ENV, str.upper)


def _cmd_path(path):
    if '"' in path:
        raise CommandLineError('a Windows path cannot contain a double quote: %r' % path)
    return '"%s"' % path


def windows_wrapped(command, stdout_path, stderr_path, rc_path=None, working_directory=None, env=None):
    """ProgramSpec running ``command`` with cmd.exe and redirected output.

    The outer ``cmd.exe /d /s /c "LINE"`` strips the outer quotes and parses LINE:
    it starts an inner ``cmd.exe /d /s /c "<command>"`` (the command escaped with
    carets so that the outer shell passes it on untouched) with all of its output
    redirected, then writes the inner exit code into the rc file. ``%^ERRORLEVEL%``
    survives the outer parse and is expanded by ``call`` after the inner cmd ends.

    The redirections stand between the inner ``cmd.exe`` and its switches, and ``&``
    follows the closing quote at once: cmd.exe removes redirections from the line it
    hands to a program but keeps the blanks around them, and ``/s`` keeps whatever
    follows the last quote, so redirections (or a blank) after the command would end
    the user's command with blanks (Wine's cmd.exe: ``echo hi`` printed ``hi    ``).
    """
    line = '%s 1>%s 2>%s <NUL /d /s /c %s' % (
        WINDOWS_SHELL, _cmd_path(stdout_path), _cmd_path(stderr_path), cmd_escape('"' + command + '"'))
    if rc_path:
        line += '& call echo %%^ERRORLEVEL%%>%s' % _cmd_path(rc_path)
    arguments = '/d /s /c "%s"' % line
    return ProgramSpec(WINDOWS_SHELL, arguments, working_directory, windows_env(env))


def windows_raw(program, arguments, working_directory=None, env=None):
    """ProgramSpec for the raw program + arguments form on Windows (no shell, no capture)."""
    if not ntpath.isabs(program):
        raise CommandLineError('program must be an absolute path in the guest, got %r' % program)
    return ProgramSpec(program, arguments or '', working_directory, windows_env(env))


def powershell_script(script):
    """The script as it runs: progress records off and the last native exit code passed on.

    With its output redirected, PowerShell writes progress records to stderr as CLIXML, so
    ``$ProgressPreference`` silences them. A script that ends without ``exit`` would end with
    rc 0 (or 1 after a terminating error); ``exit $LASTEXITCODE`` passes on the exit code of the
    last native program it ran (``$null``, that is 0, when it ran none).
    """
    return "$ProgressPreference = 'SilentlyContinue'\n%s\nexit $LASTEXITCODE\n" % script.rstrip('\r\n')


def encode_powershell(script):
    """The value of ``-EncodedCommand``: the script as UTF-16LE, base64-encoded."""
    return base64.b64encode(powershell_script(script).encode('utf-16-le')).decode('ascii')


def powershell_file_bytes(script):
    """The script as a .ps1 file: UTF-8 with a byte order mark, which Windows PowerShell 5.1 needs
    to read anything but ASCII correctly (it reads files without one in the ANSI code page)."""
    return b'\xef\xbb\xbf' + powershell_script(script).encode('utf-8')


def powershell_command(script, script_path=None):
    """The cmd.exe command that runs a PowerShell script: inline with -EncodedCommand, or the uploaded
    ``script_path`` (written with powershell_file_bytes) with -File."""
    if script_path:
        return '%s %s -File %s' % (_cmd_path(POWERSHELL), POWERSHELL_SWITCHES, _cmd_path(script_path))
    return '%s %s -EncodedCommand %s' % (_cmd_path(POWERSHELL), POWERSHELL_SWITCHES, encode_powershell(script))


def _check_cmd_line(spec, what):
    length = len(spec.program_path) + 3 + len(spec.arguments)
    if length > CMD_LINE_LIMIT:
        raise CommandTooLong('%s makes a command line of %d characters; cmd.exe takes at most %d. Put the command '
                             'into a script and run that instead.' % (what, length, CMD_LINE_LIMIT))
    return spec


# --------------------------------------------------------------------------- both

class JobFiles(object):
    """The files of a job in its private temp dir: output, exit code, and the deadline marker."""

    __slots__ = ('stdout', 'stderr', 'rc', 'deadline')

    def __init__(self, temp_dir, guest_os):
        join = ntpath.join if guest_os == 'windows' else posixpath.join
        self.stdout = join(temp_dir, 'stdout')
        self.stderr = join(temp_dir, 'stderr')
        self.rc = join(temp_dir, 'rc')
        self.deadline = join(temp_dir, 'deadline')


def output_paths(temp_dir, guest_os):
    """Paths of the stdout, stderr and rc files inside the private temp dir."""
    files = JobFiles(temp_dir, guest_os)
    return files.stdout, files.stderr, files.rc


def _command(cmd, argv, join):
    """The command line for the cmd form (as given) or the argv form (quoted by ``join``)."""
    if (cmd is None) == (argv is None):
        raise CommandLineError('exactly one of cmd or argv is needed')
    if argv is not None:
        return join(argv)
    if not cmd.strip():
        raise CommandLineError('cmd must not be empty')
    return cmd


def build_program(guest_os, cmd=None, argv=None, program=None, arguments=None,
                  stdout_path=None, stderr_path=None, rc_path=None,
                  working_directory=None, env=None, deadline=None, deadline_path=None,
                  shell=None, script_path=None):
    """One entry point for the forms: cmd, argv, program + arguments, and cmd with shell=powershell.

    ``deadline`` is kept by the Linux wrapper only (cmd and argv forms). With shell=powershell,
    ``cmd`` is a PowerShell script, passed inline unless ``script_path`` names its uploaded copy;
    CommandTooLong says that the inline form does not fit.
    """
    if guest_os not in ('linux', 'windows'):
        raise CommandLineError('unknown guest OS %r' % guest_os)
    if shell == 'powershell':
        if guest_os != 'windows':
            raise CommandLineError('shell=powershell needs a Windows guest')
        if cmd is None or argv is not None or program is not None:
            raise CommandLineError('shell=powershell runs cmd as a PowerShell script; argv and program cannot '
                                   'be used with it')
        if not cmd.strip():
            raise CommandLineError('cmd must not be empty')
        spec = windows_wrapped(powershell_command(cmd, script_path), stdout_path, stderr_path, rc_path,
                               working_directory, env)
        return _check_cmd_line(spec, 'The PowerShell script')
    if shell not in (None, 'default'):
        raise CommandLineError('unknown shell %r' % shell)
    if program is not None:
        if cmd is not None or argv is not None:
            raise CommandLineError('program cannot be combined with cmd or argv')
        if guest_os == 'windows':
            return windows_raw(program, arguments, working_directory, env)
        return linux_raw(program, arguments, stdout_path, stderr_path, working_directory, env)
    if guest_os == 'windows':
        command = _command(cmd, argv, windows_cmd_join)
        return _check_cmd_line(windows_wrapped(command, stdout_path, stderr_path, rc_path, working_directory, env),
                               'The command' if argv is None else 'The argv')
    command = _command(cmd, argv, posix_join)
    return linux_wrapped(command, stdout_path, stderr_path, rc_path, working_directory, env,
                         deadline=deadline, deadline_path=deadline_path)


def parse_rc(text):
    """Exit code recorded by a wrapper, or None if the text holds none."""
    if text is None:
        return None
    if isinstance(text, bytes):
        text = text.decode('ascii', 'replace')
    text = text.strip()
    if re.match(r'^-?\d+$', text):
        return int(text)
    return None
