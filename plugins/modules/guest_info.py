#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) guestops.vsphere contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: guest_info
short_description: Report whether a vSphere VM is ready for guest operations
version_added: 0.1.0
description:
  - Reads the power state, the VMware Tools status and the guest identity of a VM in one vSphere call.
  - With O(wait_for_ready=true) waits, backing off, until the VM is ready for guest operations.
  - Does not fail for a VM that is not ready unless O(wait_for_ready=true); check RV(guest.guest_operations_ready).
options:
  wait_for_ready:
    description:
      - Wait until the VM is powered on, VMware Tools are running and C(guestOperationsReady) is true.
      - A powered-off VM or a VM without VMware Tools fails at once, since waiting would not help.
    type: bool
    default: false
  timeout:
    description:
      - Seconds to wait with O(wait_for_ready=true).
    type: int
    default: 300
  guest_username:
    description:
      - Optional guest login. When given (with O(guest_password)) and the VM is ready, the login is checked
        with ValidateCredentialsInGuest and a rejected login fails the task.
      - If not set, the value of the E(VMWARE_GUEST_USERNAME) environment variable is used.
    type: str
  guest_password:
    description:
      - The password of O(guest_username).
      - If not set, the value of the E(VMWARE_GUEST_PASSWORD) environment variable is used.
    type: str
  transfer_host:
    description:
      - Not used by this module; accepted so that C(module_defaults) for the whole group can set it.
    type: str
  transfer_mode:
    description:
      - Not used by this module; accepted so that C(module_defaults) for the whole group can set it.
    type: str
    choices: [auto, esxi, vcenter]
    default: auto
  transfer_validate:
    description:
      - Not used by this module; accepted so that C(module_defaults) for the whole group can set it.
    type: str
    choices: [ca, thumbprint, none]
    default: ca
requirements:
  - pyvmomi >= 8.0.3.0.1
extends_documentation_fragment:
  - guestops.vsphere.vsphere
  - guestops.vsphere.attributes
  - guestops.vsphere.attributes.actiongroup_vsphere
attributes:
  check_mode:
    support: full
  platform:
    details: Reads the VM from vCenter or ESXi through the vSphere API; a given guest login is checked by VMware Tools
      in the guest.
author:
  - guestops.vsphere maintainers (@guestops)
"""

EXAMPLES = r"""
# The connection is given in the task here; without hostname, username and password the module reads
# VMWARE_HOST, VMWARE_USER and VMWARE_PASSWORD (as AWX's VMware vCenter credential sets them), and
# module_defaults for group/guestops.vsphere.vsphere can set them for every module of the collection.
- name: Wait until guest operations are possible in a freshly powered-on VM
  guestops.vsphere.guest_info:
    hostname: vcenter.example.com
    username: automation@vsphere.local
    password: "{{ vcenter_password }}"
    name: web01
    wait_for_ready: true
    timeout: 600
  delegate_to: localhost
  register: web01_info

- name: Show the guest OS
  ansible.builtin.debug:
    msg: "{{ web01_info.guest.guest_full_name }} at {{ web01_info.guest.ip_address }}"
"""

RETURN = r"""
guest_os:
  description:
    - How the other modules of the collection treat the guest with O(guestops.vsphere.guest_exec#module:guest_os=auto).
    - V(windows) when the guest family is C(windowsGuest), or when it is unset and the guest id names Windows;
      V(linux) otherwise.
  returned: success
  type: str
  sample: linux
guest_os_source:
  description:
    - What decided RV(guest_os) - V(guest.guestFamily), or, when the family is unset,
      V(guest.guestId) (reported by VMware Tools) or V(config.guestId) (the VM's configured guest OS).
    - V(nothing reported (assumed linux)) when vSphere reports none of them.
  returned: success
  type: str
  sample: guest.guestFamily
vm:
  description: Identity of the VM.
  returned: success
  type: dict
  contains:
    name:
      description: The VM name.
      type: str
      sample: web01
    moid:
      description: The managed object id.
      type: str
      sample: vm-42
    uuid:
      description: The BIOS UUID.
      type: str
      sample: 4206c4d6-0a4e-8f3a-5fbe-0e1d2c3b4a59
    instance_uuid:
      description: The vCenter instance UUID.
      type: str
      sample: 5006c4d6-0a4e-8f3a-5fbe-0e1d2c3b4a59
    power_state:
      description: V(poweredOn), V(poweredOff) or V(suspended).
      type: str
      sample: poweredOn
guest:
  description: VMware Tools and guest OS facts as reported by vSphere.
  returned: success
  type: dict
  contains:
    tools_running_status:
      description: For example V(guestToolsRunning) or V(guestToolsNotRunning).
      type: str
      sample: guestToolsRunning
    tools_version_status:
      description: For example V(guestToolsCurrent), V(guestToolsNotInstalled).
      type: str
      sample: guestToolsCurrent
    tools_status:
      description: The older combined status, for example V(toolsOk).
      type: str
      sample: toolsOk
    guest_operations_ready:
      description: Whether the VM can process guest operations now.
      type: bool
      sample: true
    interactive_guest_operations_ready:
      description: Whether interactive guest operations are possible.
      type: bool
      sample: false
    guest_family:
      description: For example V(linuxGuest) or V(windowsGuest).
      type: str
      sample: linuxGuest
    guest_id:
      description: The guest OS identifier.
      type: str
      sample: ubuntu64Guest
    guest_full_name:
      description: The guest OS name.
      type: str
      sample: Ubuntu Linux (64-bit)
    guest_state:
      description: For example V(running).
      type: str
      sample: running
    hostname:
      description: The host name reported by the guest.
      type: str
      sample: web01.example.com
    ip_address:
      description: The primary IP address reported by the guest.
      type: str
      sample: 10.0.0.21
"""

from ansible_collections.guestops.vsphere.plugins.module_utils._module import GuestOpsModule
from ansible_collections.guestops.vsphere.plugins.module_utils._exec import wait_until_ready
from ansible_collections.guestops.vsphere.plugins.module_utils._paths import guest_os_source


def main():
    module = GuestOpsModule(
        argument_spec=dict(
            wait_for_ready=dict(type='bool', default=False),
            timeout=dict(type='int', default=300),
        ),
        guest_login='optional',
        needs_requests=False,
        required_together=[['guest_username', 'guest_password']],
    )
    params = module.params
    if params['wait_for_ready'] and params['timeout'] <= 0:
        module.fail(msg='timeout must be a positive number of seconds')

    def report(target):
        if params['wait_for_ready']:
            wait_until_ready(target.session, target.vm, params['timeout'])
        if target.client is not None and target.vm.readiness_problem() is None:
            target.client.validate_credentials()
        guest_os, source = guest_os_source('auto', target.vm)
        return dict(changed=False, vm=target.vm.identity(), guest=target.vm.guest_facts(),
                    guest_os=guest_os, guest_os_source=source)

    module.run(report, check_ready=False)


if __name__ == '__main__':
    main()
