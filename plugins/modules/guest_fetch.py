#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) guestops.vsphere contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: guest_fetch
short_description: Copy a file out of a vSphere VM
version_added: 0.1.0
description:
  - Downloads O(src) from the guest through VMware Tools and an HTTPS transfer to O(dest) on the host running
    the module, streamed, via a temporary file and an atomic rename. Parent directories are created.
  - C(changed) is V(false) when O(dest) already has the same content.
options:
  src:
    description:
      - Absolute path of the file in the guest.
    type: str
    required: true
  dest:
    description:
      - Local path on the host running the module. An existing directory, or a path ending in V(/), receives
        the file under the base name of O(src).
      - A relative path is taken from the working directory of the module, which is the directory Ansible was
        started in when the task runs on the controller; RV(dest) returns the absolute path.
    type: path
    required: true
  fail_on_missing:
    description:
      - Fail when O(src) does not exist. With V(false) a missing file is reported with C(changed=false).
    type: bool
    default: true
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
    support: full
seealso:
  - module: guestops.vsphere.guest_copy
author:
  - guestops.vsphere maintainers (@guestops)
"""

EXAMPLES = r"""
# The vCenter connection (hostname, username, password) comes from the VMWARE_HOST, VMWARE_USER and
# VMWARE_PASSWORD environment variables (as AWX's VMware vCenter credential sets them) or from
# module_defaults for group/guestops.vsphere.vsphere; guest_username and guest_password can come from
# VMWARE_GUEST_USERNAME and VMWARE_GUEST_PASSWORD the same way.
- name: Fetch a log file
  guestops.vsphere.guest_fetch:
    name: web01
    guest_username: root
    guest_password: "{{ guest_password }}"
    src: /var/log/app/error.log
    dest: "logs/{{ inventory_hostname }}/"
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
src:
  description: The guest path.
  returned: when O(src) is an absolute guest path
  type: str
  sample: /var/log/app/error.log
dest:
  description: The absolute path of the local file (with the base name of O(src) appended for a directory), as
    M(ansible.builtin.fetch) returns it.
  returned: when O(src) is an absolute guest path
  type: str
  sample: /home/deploy/playbooks/logs/web01/error.log
size:
  description: Size in bytes (in check mode the size the guest reports).
  returned: when the file exists
  type: int
  sample: 5123
checksum:
  description: SHA-1 of the file; in check mode V(null) unless the local file had the same size and was compared.
  returned: when the file exists
  type: str
  sample: 2aae6c35c94fcfb415dbe95f408b9ce91ee846ed
msg:
  description: Says that nothing was fetched because O(src) does not exist.
  returned: when O(src) is missing and O(fail_on_missing=false)
  type: str
  sample: the file '/var/log/app/error.log' does not exist in the guest; nothing fetched
"""

from ansible_collections.guestops.vsphere.plugins.module_utils._module import GuestOpsModule
from ansible_collections.guestops.vsphere.plugins.module_utils._files import fetch_from_guest


def main():
    module = GuestOpsModule(
        argument_spec=dict(
            src=dict(type='str', required=True),
            dest=dict(type='path', required=True),
            fail_on_missing=dict(type='bool', default=True),
        ),
        local_paths=True,
    )
    params = module.params

    def fetch(target):
        return fetch_from_guest(target.client, params['src'], params['dest'],
                                fail_on_missing=params['fail_on_missing'], check_mode=module.check_mode)

    module.run(fetch)


if __name__ == '__main__':
    main()
