#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) guestops.vsphere contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: guest_exec_status
short_description: Check on a program started by guest_exec with wait=false
version_added: 0.1.0
description:
  - Reports whether a job from M(guestops.vsphere.guest_exec) with O(guestops.vsphere.guest_exec#module:wait=false)
    has finished and, when it has, its return code and output, like M(ansible.builtin.async_status).
  - "Made for C(until: result.finished) loops. It does not fail on a non-zero return code; the caller decides."
  - The exit code is read from the job's temporary directory, where the program records it, so it is right
    even when vSphere has forgotten the process (after five minutes, or a VMware Tools restart).
  - A finished job whose output cannot be read still reports RV(rc), with the reason in RV(output_errors).
options:
  job:
    description:
      - The RV(guestops.vsphere.guest_exec#module:job) returned by M(guestops.vsphere.guest_exec).
      - The job's VM (C(job.vm.moid)) is used unless O(name), O(uuid) or O(moid) is given; a VM selected that
        way must be the job's VM, otherwise the task fails.
      - The job is checked before anything is done with it. Its C(token) must belong to its C(temp_dir), and
        O(terminate) ends a pid only when its command line names the job's directory. A changed or hand-made
        handle is refused and nothing is touched.
    type: dict
    required: true
  cleanup:
    description:
      - Delete the job's temporary directory after reporting a finished job.
    type: bool
    default: false
  terminate:
    description:
      - Terminate the program if it still runs, with every process it started (as O(guestops.vsphere.guest_exec#module:timeout)
        does), then report it as finished.
    type: bool
    default: false
  wait:
    description:
      - Seconds to wait for a running program to end before reporting it as running. The program is polled
        fast at first and less often later, so its end is noticed within a fraction of a second.
      - "With C(until: result.finished), C(delay: 0) and O(wait=10), the play shows progress every 10 seconds and
        moves on as soon as the program ends."
    type: int
    default: 0
  output_limit:
    description:
      - At most this many bytes of stdout and of stderr are returned.
    type: int
    default: 10485760
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
    details: Reports the status; O(cleanup) and O(terminate) are not carried out.
seealso:
  - module: guestops.vsphere.guest_exec
author:
  - guestops.vsphere maintainers (@guestops)
"""

EXAMPLES = r"""
# The vCenter connection (hostname, username, password) comes from the VMWARE_HOST, VMWARE_USER and
# VMWARE_PASSWORD environment variables (as AWX's VMware vCenter credential sets them) or from
# module_defaults for group/guestops.vsphere.vsphere; guest_username and guest_password can come from
# VMWARE_GUEST_USERNAME and VMWARE_GUEST_PASSWORD the same way.
- name: Start a backup without waiting
  guestops.vsphere.guest_exec:
    name: db01
    guest_username: root
    guest_password: "{{ guest_password }}"
    cmd: /usr/local/bin/backup.sh
    wait: false
    timeout: 7200
  delegate_to: localhost
  register: backup

- name: Wait for it (up to 2 hours) and remove its temporary directory
  guestops.vsphere.guest_exec_status:
    guest_username: root
    guest_password: "{{ guest_password }}"
    job: "{{ backup.job }}"
    cleanup: true
  delegate_to: localhost
  register: backup_status
  until: backup_status.finished
  retries: 240
  delay: 30

- name: Fail on a bad exit code
  ansible.builtin.assert:
    that: backup_status.rc == 0
    fail_msg: "{{ backup_status.stderr }}"
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
finished:
  description: Whether the program has ended.
  returned: when the job was checked
  type: bool
  sample: true
pid:
  description: The guest process id.
  returned: when the job was checked
  type: int
  sample: 4242
rc:
  description:
    - The exit code, from the job's directory (or from vSphere's record for the O(guestops.vsphere.guest_exec#module:program)
      form).
    - V(null) when the program was terminated, or ended, before it recorded one.
  returned: when finished
  type: int
  sample: 0
stdout:
  description: Standard output (empty when the job wrote to a caller-given file).
  returned: when finished
  type: str
  sample: backup complete
stderr:
  description: Standard error (empty when the job wrote to a caller-given file).
  returned: when finished
  type: str
  sample: ''
stdout_lines:
  description: RV(stdout) split into lines.
  returned: when finished
  type: list
  elements: str
  sample: [backup complete]
stderr_lines:
  description: RV(stderr) split into lines.
  returned: when finished
  type: list
  elements: str
  sample: []
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
start:
  description: When the program was started.
  returned: when finished
  type: str
  sample: '2025-01-31 12:00:00.000000'
end:
  description: When the program ended (from the guest's process record when available).
  returned: when finished
  type: str
  sample: '2025-01-31 12:41:07.000000'
delta:
  description: The time between RV(start) and RV(end).
  returned: when finished
  type: str
  sample: '0:41:07'
timed_out:
  description: Whether the guest ended the program at its deadline (the job's timeout).
  returned: when finished
  type: bool
  sample: false
output_errors:
  description: Why stdout or stderr could not be read; RV(rc) is still reported.
  returned: when an output could not be read
  type: list
  elements: str
  sample:
    - "stdout could not be read: Downloading '/tmp/ansible-exec-x1796000000-0123456789abcdef-vmware4/stdout' failed"
terminated:
  description: Set when this call terminated the program.
  returned: with O(terminate=true) on a running program
  type: bool
  sample: true
cleaned_up:
  description: Set when the job's temporary directory was deleted.
  returned: with O(cleanup=true) on a finished job
  type: bool
  sample: true
fault:
  description: The vSphere fault (or network error) type behind a failure, or V(null) when the failure had none.
  returned: when a step of the task failed (not for invalid options or a refused job handle)
  type: str
  sample: GuestOperationsUnavailable
step:
  description: The step that failed.
  returned: when a step of the task failed (not for invalid options or a refused job handle)
  type: str
  sample: Reading the exit code
retryable:
  description: Whether running the task again may succeed.
  returned: when a step of the task failed (not for invalid options or a refused job handle)
  type: bool
  sample: false
"""

from ansible_collections.guestops.vsphere.plugins.module_utils._module import GuestOpsModule
from ansible_collections.guestops.vsphere.plugins.module_utils._exec import (
    DEFAULT_OUTPUT_LIMIT,
    Job,
    job_status,
)
from ansible_collections.guestops.vsphere.plugins.module_utils._faults import VSphereError


def main():
    module = GuestOpsModule(
        argument_spec=dict(
            job=dict(type='dict', required=True),
            cleanup=dict(type='bool', default=False),
            terminate=dict(type='bool', default=False),
            output_limit=dict(type='int', default=DEFAULT_OUTPUT_LIMIT),
            wait=dict(type='int', default=0),
        ),
        vm_required=False,
    )
    params = module.params
    if params['output_limit'] < 0:
        module.fail(msg='output_limit must not be negative')
    if not 0 <= params['wait'] < 300:
        module.fail(msg='wait must be between 0 and 299 seconds (vSphere keeps exit codes for 5 minutes only)')
    try:
        job = Job.from_handle(params['job'], started=True)
    except VSphereError as err:
        module.fail(msg=err.msg)
    selector = None
    if not any(params.get(key) for key in ('name', 'uuid', 'moid')):
        vm = job.vm
        if not vm.get('moid'):
            module.fail(msg="The job has no VM (job.vm.moid); pass the job returned by guest_exec wait=false, "
                            "or select the VM with name, uuid or moid.")
        selector = dict(moid=vm['moid'], known_name=vm.get('name'))

    def status(target):
        return job_status(target.client, job,
                          cleanup=params['cleanup'] and not module.check_mode,
                          terminate_running=params['terminate'] and not module.check_mode,
                          output_limit=params['output_limit'], wait=params['wait'])

    module.run(status, vm_selector=selector)


if __name__ == '__main__':
    main()
