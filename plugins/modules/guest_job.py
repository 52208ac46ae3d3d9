#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) guestops.vsphere contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: guest_job
short_description: The steps of guest_exec one task at a time (prepare, start, remove)
version_added: 0.2.0
description:
  - Runs the steps of M(guestops.vsphere.guest_exec) one at a time, for playbooks and roles that show every step
    of VMware's best-practice workflow as its own task, as the role P(guestops.vsphere.run_program#role) does.
    Every rule is the one of M(guestops.vsphere.guest_exec), with the same directory, command lines, deadline
    and retries.
  - V(prepared) creates the job's private temporary directory (steps 2 and 3 of the workflow; the output files
    are made inside it when the program starts) and returns a RV(job) handle. Expired job directories of
    earlier runs next to it are deleted.
  - Upload a script into RV(job.temp_dir) with M(guestops.vsphere.guest_copy) (step 4).
  - V(started) starts the program in the job's directory (step 5) and returns the handle with its pid; poll it
    with M(guestops.vsphere.guest_exec_status) (steps 6 and 7).
  - V(absent) terminates the program if it still runs and deletes the job's directory (step 8). It is safe to
    run in an C(always) section, also for a job that was never started or was removed already.
options:
  state:
    description:
      - The step to carry out.
    type: str
    choices: [prepared, started, absent]
    required: true
  job:
    description:
      - The RV(job) returned by an earlier step (or by M(guestops.vsphere.guest_exec) with
        O(guestops.vsphere.guest_exec#module:wait=false)). Required for V(started) and V(absent).
      - The handle is checked before anything is done with it; a changed or hand-made handle is refused.
      - The job's VM is used unless O(name), O(uuid) or O(moid) is given; a VM selected that way must be the
        job's VM.
    type: dict
  cmd:
    description:
      - With V(started), a command line run by the guest shell, as O(guestops.vsphere.guest_exec#module:cmd).
      - Exactly one of O(cmd), O(argv) and O(program) is required with V(started).
    type: str
  shell:
    description:
      - With V(started), how O(cmd) is run, as O(guestops.vsphere.guest_exec#module:shell); V(powershell) runs
        it as a Windows PowerShell script.
    type: str
    choices: [default, powershell]
    default: default
  argv:
    description:
      - With V(started), the program and its arguments as a list, as O(guestops.vsphere.guest_exec#module:argv).
    type: list
    elements: str
  program:
    description:
      - With V(started), an absolute program path started directly, as
        O(guestops.vsphere.guest_exec#module:program).
    type: str
  arguments:
    description:
      - The raw argument string for O(program).
    type: str
  chdir:
    description:
      - Working directory of the program (absolute guest path); by default the job's directory.
    type: str
  env:
    description:
      - Environment variables of the program; they replace the guest environment, as
        O(guestops.vsphere.guest_exec#module:env).
    type: dict
  timeout:
    description:
      - Seconds the program may run. With V(prepared) it sets when the directory expires; with V(started) the
        guest ends the program by itself 10 seconds after it (Linux guests).
    type: int
    default: 3600
  retention:
    description:
      - Seconds the job's directory is kept after the program's deadline before a later run may delete it
        (see O(guestops.vsphere.guest_exec#module:retention)). Used with V(prepared).
    type: int
    default: 86400
  directory_path:
    description:
      - Where to create the job's directory (V(prepared)). Set it when the guest's default temporary location is
        mounted C(noexec) and the program runs files from there.
    type: str
  guest_os:
    description:
      - How to build paths and command lines; V(auto) uses the VM's guest family (V(prepared)).
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
    support: none
    details: Nothing is created, started or removed; the role skips these steps in check mode.
seealso:
  - module: guestops.vsphere.guest_exec
  - module: guestops.vsphere.guest_exec_status
  - ref: ansible_collections.guestops.vsphere.docsite.guide_workflow
    description: The workflow, and how the run_program role runs these steps.
author:
  - guestops.vsphere maintainers (@guestops)
"""

EXAMPLES = r"""
# The vCenter connection (hostname, username, password) comes from the VMWARE_HOST, VMWARE_USER and
# VMWARE_PASSWORD environment variables (as AWX's VMware vCenter credential sets them) or from
# module_defaults for group/guestops.vsphere.vsphere; guest_username and guest_password can come from
# VMWARE_GUEST_USERNAME and VMWARE_GUEST_PASSWORD the same way.
- name: Run a script step by step
  delegate_to: localhost
  block:
    - name: Create the job's private directory (steps 2 and 3)
      guestops.vsphere.guest_job:
        name: web01
        state: prepared
        timeout: 600
      register: prepared

    - name: Upload the script (step 4)
      guestops.vsphere.guest_copy:
        name: web01
        src: files/report.sh
        dest: "{{ prepared.job.temp_dir }}/report.sh"
        mode: '0700'

    - name: Start it (step 5)
      guestops.vsphere.guest_job:
        state: started
        job: "{{ prepared.job }}"
        argv: [/bin/sh, "{{ prepared.job.temp_dir }}/report.sh"]
        timeout: 600
      register: started

    - name: Wait for it and read its output (steps 6 and 7)
      guestops.vsphere.guest_exec_status:
        job: "{{ started.job }}"
      register: report
      until: report.finished
      retries: 120
      delay: 5
  always:
    - name: Remove the job (step 8)
      guestops.vsphere.guest_job:
        state: absent
        job: "{{ started.job | default(prepared.job) }}"
      when: prepared.job is defined
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
job:
  description: The job handle for the next step, M(guestops.vsphere.guest_exec_status) or V(absent).
  returned: with V(prepared) and V(started)
  type: dict
  contains:
    vm:
      description: Name and moid of the VM.
      type: dict
      sample: {name: web01, moid: vm-42}
    temp_dir:
      description: The job's private directory in the guest.
      type: str
      sample: /tmp/vmware-root_766-2990744190/ansible-exec-x1796000000-0123456789abcdef-vmware4312
    token:
      description: Proves that the handle belongs to RV(job.temp_dir).
      type: str
      sample: 3f2a9c0d4b1e8f7a6c5d4e3f2a1b0c9d
    expires:
      description: Unix time after which a later run may delete the directory.
      type: int
      sample: 1796000000
    pid:
      description: The guest process id (after V(started)).
      type: int
      sample: 4242
    start:
      description: When the program was started.
      type: str
      sample: '2025-01-31 12:00:00.000000'
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
    timeout:
      description: The timeout the job runs under.
      type: int
      sample: 600
guest_os_source:
  description:
    - What decided RV(job.guest_os) - V(guest_os option), V(guest.guestFamily), V(guest.guestId) or
      V(config.guestId) (see M(guestops.vsphere.guest_info)).
  returned: with V(prepared)
  type: str
  sample: guest.guestFamily
script_delivery:
  description:
    - How the PowerShell script reached the guest - V(encoded_command) (inline) or V(uploaded_file).
  returned: with V(started) and O(shell=powershell)
  type: str
  sample: encoded_command
pid:
  description: The guest process id.
  returned: with V(started)
  type: int
  sample: 4242
"""

from ansible_collections.guestops.vsphere.plugins.module_utils._module import GuestOpsModule
from ansible_collections.guestops.vsphere.plugins.module_utils._exec import (
    DEFAULT_RETENTION,
    DEFAULT_TIMEOUT,
    Job,
    ProgramRequest,
    prepare_job,
    remove_job,
    start_job,
)
from ansible_collections.guestops.vsphere.plugins.module_utils._faults import VSphereError
from ansible_collections.guestops.vsphere.plugins.module_utils._paths import guest_os_source, is_absolute


def main():
    module = GuestOpsModule(
        argument_spec=dict(
            state=dict(type='str', required=True, choices=['prepared', 'started', 'absent']),
            job=dict(type='dict'),
            cmd=dict(type='str'),
            shell=dict(type='str', default='default', choices=['default', 'powershell']),
            argv=dict(type='list', elements='str'),
            program=dict(type='str'),
            arguments=dict(type='str'),
            chdir=dict(type='str'),
            env=dict(type='dict'),
            timeout=dict(type='int', default=DEFAULT_TIMEOUT),
            retention=dict(type='int', default=DEFAULT_RETENTION),
            directory_path=dict(type='str'),
            guest_os=dict(type='str', default='auto', choices=['auto', 'linux', 'windows']),
        ),
        vm_required=False,
        supports_check_mode=False,
        mutually_exclusive=[['cmd', 'argv', 'program']],
        required_by={'arguments': 'program'},
        required_if=[['state', 'started', ['job']], ['state', 'absent', ['job']],
                     ['state', 'started', ['cmd', 'argv', 'program'], True]],
    )
    params = module.params
    state = params['state']
    if params['timeout'] <= 0:
        module.fail(msg='timeout must be a positive number of seconds')
    if params['retention'] < 0:
        module.fail(msg='retention must not be negative')
    job = None
    selector = None
    if state != 'prepared':
        try:
            job = Job.from_handle(params['job'])
        except VSphereError as err:
            module.fail(msg=err.msg)
        if state == 'started' and job.pid is not None:
            module.fail(msg="The job in '%s' was started already (pid %s); prepare a new job to run another program."
                            % (job.temp_dir, job.pid))
        if not any(params.get(key) for key in ('name', 'uuid', 'moid')):
            if not job.vm.get('moid'):
                module.fail(msg="The job has no VM (job.vm.moid); select the VM with name, uuid or moid.")
            selector = dict(moid=job.vm['moid'], known_name=job.vm.get('name'))
    elif not any(params.get(key) for key in ('name', 'uuid', 'moid')):
        module.fail(msg='one of the following is required: name, uuid, moid')
    if params['directory_path'] and not is_absolute(params['directory_path']):
        module.fail(msg="directory_path must be an absolute path in the guest, got '%s'." % params['directory_path'])

    def step(target):
        warnings = []
        if state == 'prepared':
            guest_os, source = guest_os_source(params['guest_os'], target.vm)
            prepared = prepare_job(target.client, guest_os, params['timeout'], params['retention'],
                                   params['directory_path'], warn=warnings.append)
            return dict(changed=True, job=prepared.handle(), guest_os_source=source, warnings=warnings)
        job.check_vm(target.vm)
        if state == 'started':
            request = ProgramRequest.from_params(params)
            request.check_paths(job.guest_os)
            start_job(target.client, job, request)
            result = dict(changed=True, job=job.handle(), pid=job.pid)
            if job.script_delivery:
                result['script_delivery'] = job.script_delivery
            return result
        return dict(changed=remove_job(target.client, job))

    module.run(step, vm_selector=selector)


if __name__ == '__main__':
    main()
