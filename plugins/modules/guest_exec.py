#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) guestops.vsphere contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: guest_exec
short_description: Run a program inside a vSphere VM and return its output
version_added: 0.1.0
description:
  - Runs a program in the guest through VMware Tools (no network access to the guest needed), waits for it
    and returns C(rc), C(stdout) and C(stderr) like M(ansible.builtin.command).
  - "The output goes to files in a private temporary directory that the module creates, reads after the
    program ends and always deletes, also when the program fails or times out."
  - The exit code is also recorded in that directory, so it is right even when vSphere has already forgotten
    the process (vSphere keeps exit codes for five minutes).
  - Polls fast at first and backs off to a few seconds, never more than 5 seconds apart.
  - Every vSphere call is retried while the fault is transient (agent unavailable, VM busy with another
    operation, vCenter restarting) for up to O(retry_timeout) seconds; a lost vCenter session is logged in again
    once.
  - Fails when the return code is not zero. With O(wait=false) it returns a RV(job) at once for
    M(guestops.vsphere.guest_exec_status).
options:
  cmd:
    description:
      - A command line run by the guest shell, C(/bin/sh -c) on Linux and C(cmd.exe /c) on Windows, so
        pipes, redirections and variables work.
      - Exactly one of O(cmd), O(argv) and O(program) is required.
    type: str
  argv:
    description:
      - The program and its arguments as a list. Every item is quoted for the guest's shell, so spaces and
        special characters arrive unchanged.
      - On Windows the items pass through C(cmd.exe); an item holding C(%), a double quote or a line break
        is refused, because C(cmd.exe) would change it. Use O(cmd) for such command lines.
    type: list
    elements: str
  program:
    description:
      - Absolute path of a program to start directly with StartProgramInGuest, with O(arguments) passed as
        given (on Linux guests VMware Tools still interprets them with a shell).
      - On Linux the output is captured; on Windows guests it is not (no shell is involved).
      - The exit code comes from vSphere's process record only.
    type: str
  arguments:
    description:
      - The raw argument string for O(program).
    type: str
  chdir:
    description:
      - Working directory of the program (absolute guest path).
      - If not set, the program runs in the private temporary directory the module creates for it, as
        VMware's best practice for StartProgramInGuest advises.
    type: str
  env:
    description:
      - Environment variables of the program.
      - They B(replace) the guest environment (this is how the vSphere API works). On Linux a default
        C(PATH) (C(/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin)) is added unless given;
        on Windows C(SystemRoot) and C(PATH) get defaults.
      - If not set, the program gets the environment VMware Tools provides.
    type: dict
  stdout_path:
    description:
      - Write stdout into this guest file instead of capturing it; RV(stdout) is then empty.
      - An absolute path; the file is created or overwritten, and its directory must exist (for example one
        made by M(guestops.vsphere.guest_tempdir)).
    type: str
  stderr_path:
    description:
      - Write stderr into this guest file instead of capturing it; RV(stderr) is then empty.
      - An absolute path; the file is created or overwritten, and its directory must exist (for example one
        made by M(guestops.vsphere.guest_tempdir)).
    type: str
  wait:
    description:
      - Wait for the program to end. With V(false), return at once with the RV(pid) and a RV(job) handle
        for M(guestops.vsphere.guest_exec_status); the job's temporary directory then stays in the guest until
        M(guestops.vsphere.guest_exec_status) removes it with O(guestops.vsphere.guest_exec_status#module:cleanup=true).
    type: bool
    default: true
  timeout:
    description:
      - Seconds the program may run. When they pass, the program and every process it started are
        terminated and the task fails with the output so far. On Windows guests, where
        TerminateProcessInGuest ends a single process, C(taskkill /T /F /PID) ends the tree first; where
        it cannot, the tree is listed with C(wmic) while the program still runs. A process whose parent
        ended before is outside the tree and keeps running.
      - On Linux guests the guest keeps this deadline by itself too (10 seconds later), so the program
        ends even when the controller dies or loses the connection, and with O(wait=false).
    type: int
    default: 3600
  retention:
    description:
      - Seconds the private temporary directory is kept after the program's deadline (O(timeout) plus 10 seconds)
        before a later run on the VM may delete it. It matters only when this run cannot delete the
        directory itself (the controller died) or, with O(wait=false), until
        M(guestops.vsphere.guest_exec_status) collects the job.
      - Every module of the collection that creates a temporary directory deletes the expired job
        directories of earlier runs next to it, and only those.
      - Defaults to 300, or 86400 with O(wait=false).
    type: int
  output_limit:
    description:
      - At most this many bytes of stdout and of stderr are returned; the rest is cut off with a warning.
    type: int
    default: 10485760
  creates:
    description:
      - An absolute guest path; when it exists, the program is not run.
    type: str
  removes:
    description:
      - An absolute guest path; when it does not exist, the program is not run.
    type: str
  directory_path:
    description:
      - Where to create the private temporary directory. Set it when the guest's default temporary location
        is not writable or is mounted C(noexec) and your command runs files from there.
    type: str
  guest_os:
    description:
      - How to build the command line. V(auto) uses the VM's guest family (C(windowsGuest) means Windows,
        anything else Linux/Unix).
    type: str
    choices: [auto, linux, windows]
    default: auto
extends_documentation_fragment:
  - guestops.vsphere.vsphere
  - guestops.vsphere.vsphere.guest
  - guestops.vsphere.vsphere.actiongroup
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: The program is not run; O(creates) and O(removes) are evaluated.
  diff_mode:
    support: none
  platform:
    platforms: vsphere
    support: full
    description: Works inside Linux and Windows guests through the vSphere Guest Operations API.
notes:
  - Passwords are sent to vSphere only; they never appear on the guest's command line or in the results.
  - Exit code 126 on Linux usually means the program's file system is mounted C(noexec); the error message
    suggests O(directory_path) or running the file through an interpreter.
  - vSphere refuses a StartProgramInGuest request above 60,536 bytes (program path, arguments, working directory and
    environment), and older ESXi hosts crash the VM on one; the module sends at most 48,000 bytes. On Linux guests a
    longer O(cmd) or O(argv) is written into a script in the job's directory and run from there (through the ESXi
    host or vCenter, see O(transfer_mode)); a too long O(program) form, environment or Windows command fails with a
    message before anything is sent.
seealso:
  - module: guestops.vsphere.guest_exec_status
  - module: guestops.vsphere.guest_copy
author:
  - guestops.vsphere maintainers (@guestops)
"""

EXAMPLES = r"""
- name: Run a shell command
  guestops.vsphere.guest_exec:
    name: web01
    guest_username: root
    guest_password: "{{ guest_password }}"
    cmd: systemctl is-active nginx && nginx -v
  delegate_to: localhost
  register: nginx

- name: Run a program with arguments that contain spaces
  guestops.vsphere.guest_exec:
    name: web01
    guest_username: root
    guest_password: "{{ guest_password }}"
    argv: [/usr/bin/touch, /srv/data/a file with spaces]
    creates: /srv/data/a file with spaces
  delegate_to: localhost

- name: Start a long job and poll for it
  guestops.vsphere.guest_exec:
    name: web01
    guest_username: root
    guest_password: "{{ guest_password }}"
    cmd: /opt/app/bin/migrate --all
    wait: false
  delegate_to: localhost
  register: migration

- name: Wait for the job
  guestops.vsphere.guest_exec_status:
    name: web01
    guest_username: root
    guest_password: "{{ guest_password }}"
    job: "{{ migration.job }}"
    cleanup: true
  delegate_to: localhost
  register: migration_status
  until: migration_status.finished
  retries: 120
  delay: 10

- name: Windows
  guestops.vsphere.guest_exec:
    name: win01
    guest_username: Administrator
    guest_password: "{{ guest_password }}"
    cmd: dir C:\Windows\Temp
  delegate_to: localhost
"""

RETURN = r"""
transfer:
  description:
    - The channel that carried the task's files and output; see O(transfer_mode).
    - V(esxi) for the HTTPS transfers of the ESXi host, V(vcenter) for the vCenter-only channel.
  returned: when files or output were transferred
  type: str
  choices: [esxi, vcenter]
  sample: vcenter
transfer_note:
  description: Why the task switched to the vCenter-only channel (O(transfer_mode=auto) found the ESXi host unreachable).
  returned: when the channel was switched
  type: str
  sample: >-
    The ESXi host could not be reached (Downloading '/tmp/x/rc' failed for VM 'web01': the transfer host
    'esx1.example.com:443' cannot be reached (connection refused). ...); files went through vCenter instead
    (transfer_mode=auto).
rc:
  description: The exit code of the program; null when it was terminated before it recorded one (timeout).
  returned: when the program ran
  type: int
  sample: 0
timed_out:
  description: Whether the program ran out of O(timeout) and was terminated.
  returned: when the program ran
  type: bool
  sample: false
fault:
  description: The vSphere fault (or network error) type behind a failure, for example V(GuestOperationsUnavailable).
  returned: failure
  type: str
step:
  description: The step of the workflow that failed, for example V(Starting the program).
  returned: failure
  type: str
retryable:
  description: Whether running the task again may succeed (the failure was transient).
  returned: failure
  type: bool
output_errors:
  description: Why stdout or stderr could not be read after the program ended; RV(rc) is still reported.
  returned: when an output could not be read
  type: list
  elements: str
stdout:
  description: Standard output, trailing newlines removed.
  returned: when the program ran and ended
  type: str
stderr:
  description: Standard error, trailing newlines removed.
  returned: when the program ran and ended
  type: str
stdout_lines:
  description: RV(stdout) split into lines.
  returned: when the program ran and ended
  type: list
  elements: str
stderr_lines:
  description: RV(stderr) split into lines.
  returned: when the program ran and ended
  type: list
  elements: str
start:
  description: When the program was started, as seen by the host running the module.
  returned: when the program ran
  type: str
  sample: '2025-01-31 12:00:00.000000'
end:
  description: When the module saw the program's end.
  returned: when the program ran and ended
  type: str
delta:
  description: The time between RV(start) and RV(end).
  returned: when the program ran and ended
  type: str
  sample: '0:00:01.204316'
pid:
  description: The guest process id.
  returned: when the program was started
  type: int
cmd:
  description:
    - The command as given (O(cmd), O(argv) or O(program) with O(arguments)), like M(ansible.builtin.command)
      returns it.
    - A command longer than 1024 characters is cut there and ends with V(... (N more characters)), so that a huge
      command is not repeated in the result (C(invocation) still holds the task's arguments).
  returned: always
  type: raw
  sample: echo hello
msg:
  description: Why the program did not run (O(creates)/O(removes), check mode).
  returned: when the program was skipped
  type: str
stdout_truncated:
  description: Set when RV(stdout) was cut at O(output_limit).
  returned: when truncated
  type: bool
stderr_truncated:
  description: Set when RV(stderr) was cut at O(output_limit).
  returned: when truncated
  type: bool
job:
  description: Handle for M(guestops.vsphere.guest_exec_status).
  returned: with O(wait=false)
  type: dict
  contains:
    vm:
      description: Name and moid of the VM.
      type: dict
    pid:
      description: The guest process id.
      type: int
    temp_dir:
      description: The job's private temporary directory in the guest.
      type: str
    token:
      description: Proves that the job handle belongs to RV(job.temp_dir); a changed handle is refused.
      type: str
    expires:
      description: Unix time after which a later run may delete the job's directory.
      type: int
    timeout:
      description: The O(timeout) the program runs under.
      type: int
    stdout_path:
      description: Guest file with standard output.
      type: str
    stderr_path:
      description: Guest file with standard error.
      type: str
    rc_path:
      description: Guest file in which the exit code is recorded (null with O(program)).
      type: str
    guest_os:
      description: V(linux) or V(windows).
      type: str
    start:
      description: When the program was started.
      type: str
"""

from ansible_collections.guestops.vsphere.plugins.module_utils._module import GuestOpsModule
from ansible_collections.guestops.vsphere.plugins.module_utils._exec import (
    DEFAULT_OUTPUT_LIMIT,
    ProgramRequest,
    run_program,
)


def main():
    module = GuestOpsModule(
        argument_spec=dict(
            cmd=dict(type='str'),
            argv=dict(type='list', elements='str'),
            program=dict(type='str'),
            arguments=dict(type='str'),
            chdir=dict(type='str'),
            env=dict(type='dict'),
            stdout_path=dict(type='str'),
            stderr_path=dict(type='str'),
            wait=dict(type='bool', default=True),
            timeout=dict(type='int', default=3600),
            output_limit=dict(type='int', default=DEFAULT_OUTPUT_LIMIT),
            creates=dict(type='str'),
            removes=dict(type='str'),
            directory_path=dict(type='str'),
            guest_os=dict(type='str', default='auto', choices=['auto', 'linux', 'windows']),
            retention=dict(type='int'),
        ),
        mutually_exclusive=[['cmd', 'argv', 'program']],
        required_one_of=[['cmd', 'argv', 'program']],
        required_by={'arguments': 'program'},
    )
    request = ProgramRequest.from_params(module.params)
    if request.timeout <= 0:
        module.fail(msg='timeout must be a positive number of seconds')
    if request.retention < 0:
        module.fail(msg='retention must not be negative')
    if request.output_limit < 0:
        module.fail(msg='output_limit must not be negative')
    module.run(lambda target: run_program(target.client, request, check_mode=module.check_mode))


if __name__ == '__main__':
    main()
