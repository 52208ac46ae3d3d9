# -*- coding: utf-8 -*-
# Copyright (c) guestops.vsphere contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import base64
import os
import shlex
import shutil
import subprocess
import time

import pytest

from ansible_collections.guestops.vsphere.plugins.module_utils._command_line import (
    CMD_LINE_LIMIT,
    DEFAULT_POSIX_PATH,
    LINUX_SHELL,
    POWERSHELL,
    WINDOWS_SHELL,
    CommandLineError,
    CommandTooLong,
    JobFiles,
    build_program,
    powershell_file_bytes,
    powershell_script,
    cmd_escape,
    linux_raw,
    output_paths,
    parse_rc,
    posix_env,
    posix_join,
    posix_quote,
    windows_env,
    windows_cmd_join,
    windows_quote_arg,
    windows_wrapped,
)

TRICKY = [
    '', 'plain', 'with space', "it's", 'double"quote', 'back\\slash', '$HOME', '`id`', '$(id)', 'a;b', 'a&b',
    'a|b', 'a>b', '<in', '*', '?', '[x]', '~', '#comment', 'new\nline', 'tab\there', '--', '-c', 'ünïcødé',
    "'", '"', '\\', 'trailing\\', '%PATH%', '!bang!', '^caret', '(paren)', 'a  two  spaces',
]


# --------------------------------------------------------------------------- POSIX quoting

@pytest.mark.parametrize('value, expected', [
    ('', "''"),
    ('abc', 'abc'),
    ('/usr/bin/env', '/usr/bin/env'),
    ('a b', "'a b'"),
    ("it's", "'it'\"'\"'s'"),
    ('$HOME', "'$HOME'"),
    ('a=b,c:d@e%f+g', 'a=b,c:d@e%f+g'),
    ('*', "'*'"),
])
def test_posix_quote(value, expected):
    assert posix_quote(value) == expected


@pytest.mark.parametrize('value', TRICKY)
def test_posix_quote_round_trips_through_shlex(value):
    assert shlex.split(posix_quote(value)) == [value]


def test_posix_join_round_trip():
    assert shlex.split(posix_join(TRICKY)) == TRICKY


def test_posix_join_empty():
    with pytest.raises(CommandLineError):
        posix_join([])


@pytest.mark.parametrize('env, expected', [
    (None, None),
    ({}, ['PATH=' + DEFAULT_POSIX_PATH]),
    ({'A': '1'}, ['A=1', 'PATH=' + DEFAULT_POSIX_PATH]),
    ({'PATH': '/opt/bin'}, ['PATH=/opt/bin']),
    ({'EMPTY': None}, ['EMPTY=', 'PATH=' + DEFAULT_POSIX_PATH]),
])
def test_posix_env(env, expected):
    assert posix_env(env) == expected


@pytest.mark.parametrize('name', ['1A', 'A-B', 'A B', '', 'A=B'])
def test_posix_env_rejects_bad_names(name):
    with pytest.raises(CommandLineError):
        posix_env({name: 'x'})


def test_linux_cmd_form_uses_sh_wrapper():
    spec = build_program('linux', cmd='echo hi | tr a-z A-Z', stdout_path='/t/out', stderr_path='/t/err',
                         rc_path='/t/rc', working_directory='/srv', env={'A': 'b'})
    assert spec.program_path == LINUX_SHELL
    words = shlex.split(spec.arguments)
    assert words[0] == '-c'
    assert words[2:] == ['guestops-run', 'echo hi | tr a-z A-Z', '/t/out', '/t/err', '/t/rc', '', '']
    assert spec.working_directory == '/srv'
    assert spec.env == ['A=b', 'PATH=' + DEFAULT_POSIX_PATH]


def test_linux_argv_form_quotes_every_word():
    spec = build_program('linux', argv=['/bin/echo', 'a b', "c'd"], stdout_path='/t/o', stderr_path='/t/e')
    words = shlex.split(spec.arguments)
    assert shlex.split(words[3]) == ['/bin/echo', 'a b', "c'd"]
    assert words[-3:] == ['', '', '']  # no rc file, no deadline


def test_linux_deadline_needs_a_marker_file():
    with pytest.raises(CommandLineError, match='deadline'):
        build_program('linux', cmd='true', stdout_path='/t/o', stderr_path='/t/e', deadline=5)
    spec = build_program('linux', cmd='true', stdout_path='/t/o', stderr_path='/t/e', rc_path='/t/rc',
                         deadline=5, deadline_path='/t/deadline')
    assert shlex.split(spec.arguments)[-2:] == ['5', '/t/deadline']


def test_linux_raw_form():
    spec = linux_raw('/usr/bin/env', 'FOO=1 printenv', '/t/o', '/t/e')
    assert spec.program_path == '/usr/bin/env'
    assert spec.arguments == "FOO=1 printenv >/t/o 2>/t/e </dev/null"
    assert linux_raw('/bin/true', '', None, None).arguments == ''


def test_linux_raw_needs_absolute_program():
    with pytest.raises(CommandLineError, match='absolute'):
        linux_raw('true', '', None, None)


@pytest.mark.parametrize('kwargs', [
    dict(),
    dict(cmd='a', argv=['b']),
    dict(cmd='   '),
    dict(argv=[]),
    dict(program='/bin/true', cmd='x'),
])
def test_build_program_rejects_bad_forms(kwargs):
    with pytest.raises(CommandLineError):
        build_program('linux', stdout_path='/o', stderr_path='/e', **kwargs)


def test_build_program_unknown_os():
    with pytest.raises(CommandLineError):
        build_program('solaris', cmd='x')


def _run_like_tools(spec, tmp_path, env=None):
    """Run a ProgramSpec the way open-vm-tools does on Linux: bash -c '"<program>" <arguments>'."""
    shell = shutil.which('bash') or '/bin/sh'
    line = '"%s" %s' % (spec.program_path, spec.arguments)
    return subprocess.run([shell, '-c', line], cwd=str(tmp_path), env=env, timeout=30,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False).returncode


def test_linux_wrapper_really_runs(tmp_path):
    out, err, rc = output_paths(str(tmp_path / 'x y'), 'linux')
    (tmp_path / 'x y').mkdir()
    spec = build_program('linux', argv=['printf', '%s\\n'] + TRICKY, stdout_path=out, stderr_path=err, rc_path=rc)
    assert _run_like_tools(spec, tmp_path) == 0
    with open(out) as handle:
        assert handle.read() == ''.join(v + '\n' for v in TRICKY)
    assert parse_rc(open(rc).read()) == 0


def test_linux_wrapper_records_exit_code_and_stderr(tmp_path):
    out, err, rc = output_paths(str(tmp_path), 'linux')
    spec = build_program('linux', cmd='echo to-out; echo to-err >&2; exit 7', stdout_path=out,
                         stderr_path=err, rc_path=rc)
    assert _run_like_tools(spec, tmp_path) == 7
    assert open(out).read() == 'to-out\n'
    assert open(err).read() == 'to-err\n'
    assert parse_rc(open(rc).read()) == 7


def test_linux_wrapper_keeps_the_deadline_without_a_controller(tmp_path):
    files = JobFiles(str(tmp_path), 'linux')
    marker = tmp_path / 'child-survived'
    # a child in the background must be ended too (the whole process group)
    spec = build_program('linux', cmd='(sleep 4; touch %s) & sleep 30; echo never' % marker, stdout_path=files.stdout,
                         stderr_path=files.stderr, rc_path=files.rc, deadline=1, deadline_path=files.deadline)
    started = time.monotonic()
    assert _run_like_tools(spec, tmp_path) == 143
    assert time.monotonic() - started < 20
    assert parse_rc(open(files.rc).read()) == 143
    assert open(files.deadline).read().strip() == '1'
    time.sleep(4.5)
    assert not marker.exists()
    assert open(files.stdout).read() == ''


def test_linux_wrapper_deadline_does_not_touch_a_program_that_ends_in_time(tmp_path):
    files = JobFiles(str(tmp_path), 'linux')
    spec = build_program('linux', cmd='echo done', stdout_path=files.stdout, stderr_path=files.stderr,
                         rc_path=files.rc, deadline=30, deadline_path=files.deadline)
    started = time.monotonic()
    assert _run_like_tools(spec, tmp_path) == 0
    assert time.monotonic() - started < 10
    assert not os.path.exists(files.deadline)
    assert open(files.stdout).read() == 'done\n'


def test_linux_wrapper_with_replaced_environment(tmp_path):
    out, err, rc = output_paths(str(tmp_path), 'linux')
    spec = build_program('linux', cmd='echo "$GREETING"; command -v sh', stdout_path=out, stderr_path=err,
                         rc_path=rc, env={'GREETING': 'hello world'})
    env = dict(item.split('=', 1) for item in spec.env)
    assert _run_like_tools(spec, tmp_path, env=env) == 0
    lines = open(out).read().splitlines()
    assert lines[0] == 'hello world'
    assert lines[1].endswith('/sh')


# --------------------------------------------------------------------------- Windows quoting

def command_line_to_argv(line):
    """A model of CommandLineToArgvW / the MS C runtime argument parser."""
    args = []
    i = 0
    n = len(line)
    while i < n:
        while i < n and line[i] in ' \t':
            i += 1
        if i >= n:
            break
        current = []
        in_quotes = False
        while i < n and (in_quotes or line[i] not in ' \t'):
            if line[i] == '\\':
                j = i
                while j < n and line[j] == '\\':
                    j += 1
                count = j - i
                if j < n and line[j] == '"':
                    current.append('\\' * (count // 2))
                    if count % 2:
                        current.append('"')
                        i = j + 1
                    else:
                        i = j
                    continue
                current.append('\\' * count)
                i = j
                continue
            if line[i] == '"':
                if in_quotes and i + 1 < n and line[i + 1] == '"':
                    current.append('"')
                    i += 2
                    continue
                in_quotes = not in_quotes
                i += 1
                continue
            current.append(line[i])
            i += 1
        args.append(''.join(current))
    return args


def cmd_unescape(line):
    """A model of cmd.exe's caret phase: outside quotes a caret escapes the next character."""
    out = []
    quoted = False
    i = 0
    while i < len(line):
        char = line[i]
        if char == '^' and not quoted and i + 1 < len(line):
            out.append(line[i + 1])
            i += 2
            continue
        if char == '"':
            quoted = not quoted
        out.append(char)
        i += 1
    return ''.join(out)


@pytest.mark.parametrize('value, expected', [
    ('abc', 'abc'),
    ('', '""'),
    ('a b', '"a b"'),
    ('a"b', '"a\\"b"'),
    ('C:\\Program Files\\', '"C:\\Program Files\\\\"'),
    ('C:\\dir\\file', 'C:\\dir\\file'),
    ('a\\"b', '"a\\\\\\"b"'),
])
def test_windows_quote_arg(value, expected):
    assert windows_quote_arg(value) == expected


@pytest.mark.parametrize('value', [v for v in TRICKY if '\n' not in v])
def test_windows_quote_arg_round_trips(value):
    assert command_line_to_argv(windows_quote_arg(value)) == [value]


@pytest.mark.parametrize('argv', [
    ['C:\\p\\x.exe', 'a&b', 'c|d', '<in>', 'x^y', '(grp)', 'two words', '', 'tail\\'],
    ['C:\\Program Files\\app.exe', '/q', 'C:\\dir with space\\'],
])
def test_windows_cmd_join_keeps_cmd_metacharacters_inside_quotes(argv):
    joined = windows_cmd_join(argv)
    assert command_line_to_argv(joined) == argv
    inside = False
    for char in joined:
        if char == '"':
            inside = not inside
        elif char in '&|<>^()':
            assert inside, 'cmd.exe would interpret %r in %s' % (char, joined)


@pytest.mark.parametrize('item', ['%PATH%', 'say "hi"', 'two\nlines'])
def test_windows_cmd_join_refuses_what_cmd_would_change(item):
    with pytest.raises(CommandLineError, match='use cmd'):
        windows_cmd_join(['C:\\x.exe', item])


@pytest.mark.parametrize('text', [
    'dir', 'echo a & echo b', 'type "C:\\a b\\c.txt" | findstr x', 'echo 100%', 'echo (x) ^ !y! <a >b',
    '"C:\\Program Files\\app.exe" /q', 'echo "unbalanced',
])
def test_cmd_escape_survives_cmd_parsing(text):
    escaped = cmd_escape(text)
    assert cmd_unescape(escaped) == text
    # nothing special is left unescaped
    for index, char in enumerate(escaped):
        if char in '&|<>()"':
            assert escaped[index - 1] == '^'


def test_cmd_escape_refuses_line_breaks():
    with pytest.raises(CommandLineError):
        cmd_escape('a\nb')


def test_windows_wrapped_shape():
    spec = windows_wrapped('echo a & echo "b c"', 'C:\\T\\stdout', 'C:\\T\\stderr', 'C:\\T\\rc')
    assert spec.program_path == WINDOWS_SHELL
    assert spec.arguments.startswith('/d /s /c "') and spec.arguments.endswith('"')
    line = spec.arguments[len('/d /s /c "'):-1]
    parsed = cmd_unescape(line)
    # Redirections before the switches, '&' straight after the closing quote: nothing may follow
    # the user's command in the inner cmd.exe's line (Wine's cmd.exe kept those blanks in echo).
    assert parsed == (WINDOWS_SHELL + ' 1>"C:\\T\\stdout" 2>"C:\\T\\stderr" <NUL /d /s /c "echo a & echo "b c""'
                      '& call echo %ERRORLEVEL%>"C:\\T\\rc"')
    assert '%^ERRORLEVEL%' in line


def test_windows_wrapped_without_rc():
    spec = windows_wrapped('dir', 'C:\\o', 'C:\\e')
    assert 'ERRORLEVEL' not in spec.arguments


def test_windows_argv_form():
    spec = build_program('windows', argv=['C:\\Program Files\\x.exe', 'a b'], stdout_path='C:\\o',
                         stderr_path='C:\\e', rc_path='C:\\r')
    assert spec.program_path == WINDOWS_SHELL
    # the inner cmd.exe gets the quoted argv, escaped with carets for the outer cmd.exe
    assert '/d /s /c ^"^"C:\\Program Files\\x.exe^" ^"a b^"^"& call echo' in spec.arguments


def test_windows_raw_form():
    spec = build_program('windows', program='C:\\Windows\\System32\\ipconfig.exe', arguments='/all')
    assert (spec.program_path, spec.arguments) == ('C:\\Windows\\System32\\ipconfig.exe', '/all')
    with pytest.raises(CommandLineError):
        build_program('windows', program='ipconfig.exe')


def test_windows_paths_with_quotes_are_refused():
    with pytest.raises(CommandLineError):
        windows_wrapped('dir', 'C:\\a"b', 'C:\\e')


# --------------------------------------------------------------------------- PowerShell

POWERSHELL_SCRIPT = 'Get-ChildItem "C:\\Program Files" | Select -First 3\n& cmd /c "exit 7"\r\n$x = 100% -f (1) <# ü #>\n'


def inner_command_line(spec):
    """What the inner cmd.exe of the Windows wrapper runs: the outer /s /c line without its quotes,
    after cmd.exe's caret phase, between the inner ``/d /s /c "`` and the ``"&`` that follows."""
    line = cmd_unescape(spec.arguments[len('/d /s /c "'):-1])
    start = line.index(' /d /s /c "') + len(' /d /s /c "')
    return line[start:line.rindex('"& call echo')]


def run_powershell_spec(script, script_path=None):
    return build_program('windows', cmd=script, shell='powershell', stdout_path='C:\\T\\stdout',
                         stderr_path='C:\\T\\stderr', rc_path='C:\\T\\rc', script_path=script_path)


def test_powershell_script_is_passed_with_encoded_command_and_decodes_back():
    spec = run_powershell_spec(POWERSHELL_SCRIPT)
    argv = command_line_to_argv(inner_command_line(spec))
    assert argv[:6] == [POWERSHELL, '-NoProfile', '-NonInteractive', '-ExecutionPolicy', 'Bypass', '-EncodedCommand']
    assert len(argv) == 7
    decoded = base64.b64decode(argv[6], validate=True).decode('utf-16-le')
    assert decoded == powershell_script(POWERSHELL_SCRIPT)
    lines = decoded.splitlines()
    assert lines[0] == "$ProgressPreference = 'SilentlyContinue'"
    assert lines[-1] == 'exit $LASTEXITCODE'
    assert '\n'.join(lines[1:-1]) == POWERSHELL_SCRIPT.rstrip('\r\n').replace('\r\n', '\n')
    assert '%^ERRORLEVEL%' in spec.arguments  # the exit code is recorded as for cmd


def test_a_powershell_script_too_long_for_cmd_exe_asks_for_an_upload():
    fits = 'Write-Output x\n' * 150
    assert len(run_powershell_spec(fits).arguments) <= CMD_LINE_LIMIT
    with pytest.raises(CommandTooLong):
        run_powershell_spec('Write-Output x\n' * 300)


def test_an_uploaded_powershell_script_runs_with_file():
    spec = run_powershell_spec('Write-Output x\n' * 3000, script_path='C:\\T\\script.ps1')
    argv = command_line_to_argv(inner_command_line(spec))
    assert argv == [POWERSHELL, '-NoProfile', '-NonInteractive', '-ExecutionPolicy', 'Bypass', '-File', 'C:\\T\\script.ps1']


def test_the_uploaded_powershell_file_is_utf8_with_a_byte_order_mark():
    data = powershell_file_bytes('Write-Output "grüße"')
    assert data.startswith(b'\xef\xbb\xbf')
    assert data[3:].decode('utf-8') == powershell_script('Write-Output "grüße"')


@pytest.mark.parametrize('kwargs, reason', [
    (dict(guest_os='linux', cmd='Get-Date'), 'Windows guest'),
    (dict(guest_os='windows', argv=['a']), 'argv and program'),
    (dict(guest_os='windows', program='C:\\x.exe'), 'argv and program'),
    (dict(guest_os='windows', cmd='  '), 'empty'),
])
def test_powershell_needs_a_windows_guest_and_a_script(kwargs, reason):
    with pytest.raises(CommandLineError, match=reason):
        build_program(shell='powershell', **kwargs)


def test_a_windows_command_line_longer_than_cmd_exe_takes_is_refused():
    with pytest.raises(CommandTooLong, match='at most 8191'):
        build_program('windows', cmd='echo ' + 'x' * 8200, stdout_path='C:\\o', stderr_path='C:\\e')


def test_windows_env_defaults():
    env = windows_env({'path': 'C:\\bin'})
    assert env[0] == 'path=C:\\bin'
    assert any(item.startswith('SystemRoot=') for item in env)
    assert not any(item.startswith('PATH=') for item in env)
    assert windows_env(None) is None
    with pytest.raises(CommandLineError):
        windows_env({'A=B': '1'})


# --------------------------------------------------------------------------- helpers

@pytest.mark.parametrize('guest_os, expected', [
    ('linux', ('/tmp/d/stdout', '/tmp/d/stderr', '/tmp/d/rc')),
    ('windows', ('C:\\T\\d\\stdout', 'C:\\T\\d\\stderr', 'C:\\T\\d\\rc')),
])
def test_output_paths(guest_os, expected):
    base = '/tmp/d' if guest_os == 'linux' else 'C:\\T\\d'
    assert output_paths(base, guest_os) == expected


@pytest.mark.parametrize('text, expected', [
    ('0\n', 0), (b'7\n', 7), ('3 \r\n', 3), ('-1', -1), ('', None), ('x', None), (None, None), ('1 2', None),
])
def test_parse_rc(text, expected):
    assert parse_rc(text) == expected
