"""The guest's sudo (guestsim/sudo_program.py): sudo(8) and sudoers(5) as a client sees them."""

from __future__ import annotations

import pytest
from pyVmomi import vim

from .conftest import guest_for


def _sudo_path(sim, name='DC0_H0_VM0'):
    return next(vm for vm in sim.state()['vms'] if vm['name'] == name)['sudo']


@pytest.fixture
def deploy(sim, si):
    credentials = vim.vm.guest.NamePasswordAuthentication(username='deploy', password='deploypass',
                                                          interactiveSession=False)
    return guest_for(sim, si, 'DC0_H0_VM0', credentials)


def _run_sudo(client, sudo, line, stdin=None):
    """Run `sudo <line>` in the guest with ``stdin`` as its standard input; (exit code, stdout, stderr)."""
    base = client.temp_dir()
    try:
        source = '/dev/null'
        if stdin:
            client.upload(base + '/in', stdin.encode())
            source = base + '/in'
        client.upload(base + '/script', ('%s %s <%s >%s/out 2>%s/err\n' % (sudo, line, source, base, base)).encode())
        info = client.run('/bin/sh', base + '/script')
        return info.exitCode, client.download(base + '/out').decode(), client.download(base + '/err').decode()
    finally:
        client.files.DeleteDirectoryInGuest(client.vm, client.auth, base, True)


def test_every_linux_guest_has_a_sudo_and_windows_none(sim):
    paths = dict((vm['name'], vm['sudo']) for vm in sim.state()['vms'])
    assert paths['DC0_H0_VM0'].endswith('/usr/bin/sudo') and paths['DC0_H0_VM1'].endswith('/usr/bin/sudo')
    assert paths['DC0_H0_VM0'] != paths['DC0_H0_VM1']
    assert paths['DC0_H0_WIN0'] is None


def test_root_needs_no_password_and_the_command_gets_the_target_environment(sim, guest):
    code, out, err = _run_sudo(guest, _sudo_path(sim), '-n -u deploy /usr/bin/env')
    env = dict(line.split('=', 1) for line in out.splitlines() if '=' in line)
    assert code == 0, err
    assert env['USER'] == env['LOGNAME'] == 'deploy' and env['SUDO_USER'] == 'root'
    assert env['HOME'].endswith('/home/deploy') and env['PATH'] == '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
    assert 'INVOCATION_ID' not in env  # env_reset


def test_a_sudoer_authenticates_with_its_own_password_on_stdin(sim, deploy):
    code, out, err = _run_sudo(deploy, _sudo_path(sim), '-S -p PROMPT: -u root /bin/sh -c \'echo $USER; cat\'',
                               stdin='deploypass\nrest of the input\n')
    assert code == 0, err
    assert out == 'root\nrest of the input\n'
    assert err == 'PROMPT:'
    entry = next(vm for vm in sim.state()['vms'] if vm['name'] == 'DC0_H0_VM0')['sudo_log'][-1]
    assert entry['user'] == 'deploy' and entry['target'] == 'root' and entry['command'].startswith('/bin/sh -c')


@pytest.mark.parametrize('line, stdin, message', [
    ('-n /usr/bin/id', None, 'sudo: a password is required'),
    ('/usr/bin/id', None, 'a terminal is required to read the password'),
    ('-S /usr/bin/id', '', 'sudo: no password was provided'),
    ('-S /usr/bin/id', 'wrong\n', 'Sorry, try again.'),
    ('-S /usr/bin/id', 'a\nb\nc\n', 'sudo: 3 incorrect password attempts'),
    ('-S -u nobody-here /usr/bin/id', 'deploypass\n', 'unknown user nobody-here'),
    ('-i', None, 'invalid option -- i'),
])
def test_what_sudo_refuses(sim, deploy, line, stdin, message):
    code, out, err = _run_sudo(deploy, _sudo_path(sim), line, stdin=stdin)
    assert code == 1 and out == ''
    assert message in err


def test_root_of_every_linux_guest_needs_no_sudoers_entry(sim, si):
    client = guest_for(sim, si, 'DC0_H0_VM1')
    code, out, err = _run_sudo(client, _sudo_path(sim, 'DC0_H0_VM1'), '-n /bin/echo ok')
    assert (code, out) == (0, 'ok\n'), err
