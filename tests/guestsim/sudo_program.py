"""The ``sudo`` of the simulated Linux guests (installed as ``<vm dir>/usr/bin/sudo``, standard library only).

Guest programs run as the simulator's own user (guest users are logins, not uids; see README),
so this sudo cannot change the user. It does what a client can observe of sudo(8) and the
sudoers(5) policy, so that privilege escalation through it is tested end to end:

- the invoking user is the guest login that started the program (``USER``, which the agent sets
  when it impersonates the user: vgauth/lib/impersonateLinux.c);
- "If the invoking user is root or if the target user is the same as the invoking user, no
  password is required" (sudo(8), AUTHENTICATION); other users need an entry in the VM's sudoers
  and authenticate with their own password (sudoers(5): "it validates the invoking user's
  credentials"), else "<user> is not in the sudoers file.";
- ``-n`` fails when a password is needed ("sudo: a password is required"); ``-S`` writes the
  prompt (``-p``, default ``[sudo] password for <user>: ``) to standard error and reads the
  password from standard input up to a newline, one byte at a time so that the rest of the input
  is left to the command; a wrong one gives "Sorry, try again." and another prompt, three times,
  then "sudo: 3 incorrect password attempts"; end of input gives "sudo: no password was provided";
  without ``-S`` there is no terminal: "sudo: a terminal is required to read the password";
- the command runs with the target user's environment as env_reset leaves it (HOME, USER,
  LOGNAME, SHELL, PATH from secure_path, SUDO_USER, SUDO_UID, SUDO_GID, SUDO_COMMAND; TERM and
  LANG kept); ``-E`` keeps the caller's environment, ``-H`` is the default already;
- every command that is allowed is logged as sudo logs it to syslog
  (``<user> : TTY=unknown ; PWD=<cwd> ; USER=<target> ; COMMAND=<command>``), here one JSON line
  per command in ``<vm dir>/var/log/sudo.log``, which ``GET /guestsim/state`` shows.

Options other than ``-E -H -k -n -S -p PROMPT -u USER --`` are refused.
"""

import hashlib
import hmac
import json
import os
import sys
import time

# Replaced by the absolute path of the VM's sudoers file when the program is installed.
SUDOERS = None
SECURE_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
KEPT = ('TERM', 'LANG', 'LC_ALL', 'LANGUAGE', 'TZ')


def password_digest(salt, password):
    return hashlib.sha256(('%s:%s' % (salt, password)).encode('utf-8')).hexdigest()


def fail(message, code=1):
    sys.stderr.write('sudo: %s\n' % message)
    sys.stderr.flush()
    return code


def parse(argv):
    """(options, command argv) from sudo's command line; raises ValueError for what is not supported."""
    options = {'user': 'root', 'prompt': None, 'stdin': False, 'non_interactive': False, 'keep_env': False}
    index = 0
    while index < len(argv):
        arg = argv[index]
        if arg == '--':
            index += 1
            break
        if not arg.startswith('-') or arg == '-':
            break
        flags = arg[1:]
        while flags:
            flag, flags = flags[0], flags[1:]
            if flag in 'pu':
                if not flags:
                    index += 1
                    if index >= len(argv):
                        raise ValueError('option requires an argument -- %s' % flag)
                    flags = argv[index]
                options['prompt' if flag == 'p' else 'user'] = flags
                flags = ''
            elif flag == 'S':
                options['stdin'] = True
            elif flag == 'n':
                options['non_interactive'] = True
            elif flag == 'E':
                options['keep_env'] = True
            elif flag in 'Hk':
                pass
            else:
                raise ValueError('invalid option -- %s (the simulator\'s sudo supports -E -H -k -n -S -p -u)' % flag)
        index += 1
    return options, argv[index:]


def read_line():
    """A line of standard input without its newline (None at end of input), read byte by byte."""
    data = b''
    while True:
        byte = os.read(0, 1)
        if not byte:
            return data.decode('utf-8', 'replace') if data else None
        if byte == b'\n':
            return data.decode('utf-8', 'replace')
        data += byte


def authenticate(policy, user, options):
    """0 when the user proved who they are, else the exit code after the message."""
    entry = policy['sudoers'].get(user)
    if entry is None:
        return fail('%s is not in the sudoers file.' % user)
    if options['non_interactive']:
        return fail('a password is required')
    if not options['stdin']:
        return fail('a terminal is required to read the password; either use the -S option to read from standard '
                    'input or configure an askpass helper')
    prompt = options['prompt'] if options['prompt'] is not None else '[sudo] password for %s: ' % user
    attempts = 0
    while attempts < 3:
        sys.stderr.write(prompt)
        sys.stderr.flush()
        line = read_line()
        if line is None:
            sys.stderr.write('\n')
            if attempts:
                return fail('%d incorrect password attempt%s' % (attempts, '' if attempts == 1 else 's'))
            return fail('no password was provided')
        if hmac.compare_digest(password_digest(policy['salt'], line), entry):
            return 0
        attempts += 1
        if attempts < 3:
            sys.stderr.write('Sorry, try again.\n')
    return fail('3 incorrect password attempts')


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    try:
        options, command = parse(argv)
    except ValueError as exc:
        return fail(str(exc))
    if not command:
        return fail('a command is needed (the simulator\'s sudo has no shell mode)')
    with open(SUDOERS, encoding='utf-8') as handle:
        policy = json.load(handle)
    user = os.environ.get('USER', '')
    target = options['user']
    if target not in policy['homes']:
        return fail('unknown user %s' % target)
    if user != 'root' and target != user:
        code = authenticate(policy, user, options)
        if code:
            return code
    line = ' '.join(command)
    with open(policy['log'], 'a', encoding='utf-8') as log:
        log.write(json.dumps({'time': int(time.time()), 'user': user, 'target': target, 'pwd': os.getcwd(),
                              'command': line}) + '\n')
    if options['keep_env']:
        env = dict(os.environ)
    else:
        env = dict((name, os.environ[name]) for name in KEPT if name in os.environ)
        env['PATH'] = SECURE_PATH
    env.update(HOME=policy['homes'][target], USER=target, LOGNAME=target, SHELL='/bin/bash', SUDO_USER=user,
               SUDO_UID=str(os.getuid()), SUDO_GID=str(os.getgid()), SUDO_COMMAND=line[:4096])
    try:
        os.execvpe(command[0], command, env)
    except OSError:
        return fail('%s: command not found' % command[0])
    return 1


if __name__ == '__main__':
    sys.exit(main())
