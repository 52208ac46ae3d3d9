#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) guestops.vsphere contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: guest_exec
short_description: Run a command through the guest's shell, or a program, inside a vSphere VM
version_added: 0.1.0
description:
  - Runs a program in the guest through VMware Tools (no network access to the guest needed), waits for it
    and returns C(rc), C(stdout) and C(stderr) like M(ansible.builtin.command).
  - Unlike the O(ansible.builtin.command#module:cmd) of M(ansible.builtin.command), O(cmd) B(is run by the guest's
    shell) (C(/bin/sh -c) on Linux, C(cmd.exe /c) on Windows), like M(ansible.builtin.shell). Use O(argv) to pass a
    program and its arguments unchanged, for example values that come from variables.
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
      - A command line B(run by the guest's shell), C(/bin/sh -c) on Linux and C(cmd.exe /c) on Windows, so
        pipes, redirections and variables work, as with M(ansible.builtin.shell). This is the opposite of the
        O(ansible.builtin.command#module:cmd) of M(ansible.builtin.command), which runs no shell.
      - The shell interprets every character, so a value from a variable can change what runs. Use O(argv) for
        such values, or quote them (for example with the P(ansible.builtin.quote#filter) filter on Linux).
      - With O(shell=powershell), a PowerShell script instead.
      - Exactly one of O(cmd), O(argv) and O(program) is required.
    type: str
  shell:
    description:
      - How O(cmd) is run. V(default) is the guest shell (see O(cmd)).
      - V(powershell) runs O(cmd) as a Windows PowerShell script (Windows guests only) with
        C(powershell.exe -NoProfile -NonInteractive -ExecutionPolicy Bypass). The script is passed with
        C(-EncodedCommand) (UTF-16LE, base64) while the command line fits into the 8191 characters C(cmd.exe)
        accepts (a script of up to about 2,800 ASCII characters), else it is uploaded into the private temporary
        directory as C(script.ps1) (UTF-8 with a byte order mark) and run with C(-File).
      - The script's exit code is passed on; a script that ends without C(exit) ends with the exit code of
        the last native program it ran (C(exit $LASTEXITCODE) is appended), and progress output is
        switched off so that it does not reach stderr as CLIXML.
      - The PowerShell path is verified by construction only (unit tests decode what is sent); the
        collection's tests run Windows guests under Wine, which has no PowerShell.
    type: str
    choices: [default, powershell]
    default: default
  argv:
    description:
      - The program and its arguments as a list. Every item is quoted for the guest's shell, so spaces and
        special characters arrive unchanged. This is the safe choice for arguments that come from variables or
        user input, like O(ansible.builtin.command#module:argv) of M(ansible.builtin.command).
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
        ends even when the controller dies or loses the connection, and with O(wait=false). On Windows
        guests only the controller keeps it; a program whose controller was killed, or one started with
        O(wait=false) and never collected, runs until it ends by itself.
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
        anything else Linux/Unix); when vSphere leaves the family unset, the guest id that VMware Tools
        report, then the VM's configured guest id, decide (an id starting with C(win) means Windows).
        RV(guest_os_source) says which.
    type: str
    choices: [auto, linux, windows]
    default: auto
requirements:
  - pyvmomi >= 8.0.3.0.1
  - requests >= 2.25 (not 2.32.0 to 2.32.2) for the file transfers
extends_documentation_fragment:
  - guestops.vsphere.vsphere
  - guestops.vsphere.vsphere.guest
  - guestops.vsphere.attributes
  - guestops.vsphere.attributes.actiongroup_vsphere
attributes:
  check_mode:
    support: partial
    details: The program is never run in check mode, so nothing about its effect can be predicted. As with
      M(ansible.builtin.command), only O(creates) and O(removes) are evaluated; otherwise the task reports
      C(changed=true) and RV(msg).
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
# The vCenter connection (hostname, username, password) comes from the VMWARE_HOST, VMWARE_USER and
# VMWARE_PASSWORD environment variables (as AWX's VMware vCenter credential sets them) or from
# module_defaults for group/guestops.vsphere.vsphere; guest_username and guest_password can come from
# VMWARE_GUEST_USERNAME and VMWARE_GUEST_PASSWORD the same way.
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
  description:
    - The exit code of the program.
    - V(null) when it timed out and was terminated before it recorded one, or when it ended without one.
    - V(0) when the program was skipped because of O(creates) or O(removes).
  returned: when the task waited for the program to end (also when it failed or timed out), or skipped it
  type: int
  sample: 0
timed_out:
  description: Whether the program ran out of O(timeout) and was terminated.
  returned: when the task waited for the program to end (also when it failed or timed out)
  type: bool
  sample: false
fault:
  description: The vSphere fault (or network error) type behind a failure, or V(null) when the failure had none.
  returned: when a step of the task failed (not for invalid options)
  type: str
  sample: GuestOperationsUnavailable
step:
  description: The step of the workflow that failed.
  returned: when a step of the task failed (not for invalid options)
  type: str
  sample: Starting the program
retryable:
  description: Whether running the task again may succeed (the failure was transient).
  returned: when a step of the task failed (not for invalid options)
  type: bool
  sample: false
output_errors:
  description: Why stdout or stderr could not be read after the program ended; RV(rc) is still reported.
  returned: when an output could not be read
  type: list
  elements: str
  sample:
    - "stdout could not be read: Downloading '/tmp/ansible-exec-x1796000000-0123456789abcdef-vmware4/stdout' failed"
stdout:
  description:
    - Standard output, trailing newlines removed.
    - Empty with O(stdout_path). When the program was skipped, the reason (as RV(msg)).
  returned: when the task waited for the program to end (also when it failed or timed out), or skipped it
  type: str
  sample: nginx version 1.24.0
stderr:
  description: Standard error, trailing newlines removed. Empty with O(stderr_path).
  returned: when the task waited for the program to end (also when it failed or timed out), or skipped it
  type: str
  sample: ''
stdout_lines:
  description: RV(stdout) split into lines.
  returned: when the task waited for the program to end (also when it failed or timed out), or skipped it
  type: list
  elements: str
  sample: [nginx version 1.24.0]
stderr_lines:
  description: RV(stderr) split into lines.
  returned: when the task waited for the program to end (also when it failed or timed out), or skipped it
  type: list
  elements: str
  sample: []
start:
  description: When the program was started, as seen by the host running the module.
  returned: when the program was started
  type: str
  sample: '2025-01-31 12:00:00.000000'
end:
  description: When the module saw the program's end (or its timeout).
  returned: when the task waited for the program to end (also when it failed or timed out)
  type: str
  sample: '2025-01-31 12:00:01.204316'
delta:
  description: The time between RV(start) and RV(end).
  returned: when the task waited for the program to end (also when it failed or timed out)
  type: str
  sample: '0:00:01.204316'
guest_os:
  description: V(linux) or V(windows), as O(guest_os) set it or as vSphere reports the guest.
  returned: when the VM was found
  type: str
  sample: linux
guest_os_source:
  description:
    - What decided RV(guest_os) - V(guest_os option), V(guest.guestFamily), or, when the family is unset,
      V(guest.guestId) or V(config.guestId) (see M(guestops.vsphere.guest_info)).
  returned: when the VM was found
  type: str
  sample: guest.guestFamily
script_delivery:
  description:
    - How the PowerShell script reached the guest - V(encoded_command) (inline) or V(uploaded_file).
  returned: with O(shell=powershell), when the program was started
  type: str
  sample: encoded_command
pid:
  description: The guest process id.
  returned: when the program was started
  type: int
  sample: 4242
cmd:
  description:
    - The command as given (O(cmd), O(argv) or O(program) with O(arguments)), like M(ansible.builtin.command)
      returns it.
    - A command longer than 1024 characters is cut there and ends with V(... (N more characters)), so that a huge
      command is not repeated in the result (C(invocation) still holds the task's arguments).
  returned: when the options were valid
  type: raw
  sample: systemctl is-active nginx && nginx -v
msg:
  description: Why the program did not run (O(creates)/O(removes)), that it would run (check mode), or why the task
    failed.
  returned: when the program was skipped, in check mode, and on failure
  type: str
  sample: Did not run the program since '/srv/data/done' exists
stdout_truncated:
  description: Set when RV(stdout) was cut at O(output_limit).
  returned: when truncated
  type: bool
  sample: true
stderr_truncated:
  description: Set when RV(stderr) was cut at O(output_limit).
  returned: when truncated
  type: bool
  sample: true
job:
  description: Handle for M(guestops.vsphere.guest_exec_status) and M(guestops.vsphere.guest_job). Pass it on unchanged.
  returned: with O(wait=false), when the program was started
  type: dict
  contains:
    vm:
      description: Name and moid of the VM.
      type: dict
      sample: {name: web01, moid: vm-42}
    pid:
      description: The guest process id.
      type: int
      sample: 4242
    temp_dir:
      description: The job's private temporary directory in the guest.
      type: str
      sample: /tmp/vmware-root_766-2990744190/ansible-exec-x1796000000-0123456789abcdef-vmware4312
    token:
      description: Proves that the job handle belongs to RV(job.temp_dir); a changed handle is refused.
      type: str
      sample: 3f2a9c0d4b1e8f7a6c5d4e3f2a1b0c9d
    expires:
      description: Unix time after which a later run may delete the job's directory.
      type: int
      sample: 1796000000
    timeout:
      description: The O(timeout) the program runs under.
      type: int
      sample: 3600
    stdout_path:
      description: Guest file with standard output.
      type: str
      sample: /tmp/vmware-root_766-2990744190/ansible-exec-x1796000000-0123456789abcdef-vmware4312/stdout
    stderr_path:
      description: Guest file with standard error.
      type: str
      sample: /tmp/vmware-root_766-2990744190/ansible-exec-x1796000000-0123456789abcdef-vmware4312/stderr
    rc_path:
      description: Guest file in which the exit code is recorded (null with O(program)).
      type: str
      sample: /tmp/vmware-root_766-2990744190/ansible-exec-x1796000000-0123456789abcdef-vmware4312/rc
    guest_os:
      description: V(linux) or V(windows).
      type: str
      sample: linux
    start:
      description: When the program was started.
      type: str
      sample: '2025-01-31 12:00:00.000000'
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
            shell=dict(type='str', default='default', choices=['default', 'powershell']),
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
