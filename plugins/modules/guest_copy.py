#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) guestops.vsphere contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: guest_copy
short_description: Copy a file into a vSphere VM
version_added: 0.1.0
description:
  - Uploads a file from the host running the module, or literal content, to O(dest) in the guest through
    VMware Tools and an HTTPS transfer, streamed in large chunks (the file is never read into memory as a whole).
  - Reports C(changed) honestly. When O(dest) exists with the same size, its content is read back and compared,
    so copying the same file twice changes nothing. A different mode, owner or group is corrected in place.
options:
  src:
    description:
      - Path of the file on the host running the module (usually the controller).
      - Exactly one of O(src) and O(content) is required.
    type: path
  content:
    description:
      - Text to write into O(dest) instead of a file. An empty string makes an empty file.
      - Like the content of M(ansible.builtin.copy), it is treated as a secret and hidden from the output.
    type: str
  dest:
    description:
      - Absolute path of the file in the guest. Its directory must exist.
    type: str
    required: true
  mode:
    description:
      - Permissions of the file in a Linux guest as an octal number, for example V('0755').
      - If not set, a new file gets 0644.
    type: raw
  owner:
    description:
      - Numeric user id of the owner in a Linux guest. If not set, the guest user owns new files.
    type: int
  group:
    description:
      - Numeric group id in a Linux guest.
    type: int
  force:
    description:
      - Replace O(dest) when it exists with other content. With V(false) an existing O(dest) is left alone.
    type: bool
    default: true
  guest_os:
    description:
      - V(auto) uses the VM's guest family; O(mode), O(owner) and O(group) apply to Linux only.
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
    support: full
notes:
  - The upload goes over HTTPS to the ESXi host that runs the VM (see O(transfer_host)); its certificate is
    checked as O(transfer_validate) says.
  - The file is uploaded to a temporary name next to O(dest) and moved into place when it is complete, so an
    upload that breaks off leaves an existing O(dest) as it was. A broken upload is repeated with a new
    transfer URL, up to three times.
seealso:
  - module: guestops.vsphere.guest_fetch
author:
  - guestops.vsphere maintainers (@guestops)
"""

EXAMPLES = r"""
# The vCenter connection (hostname, username, password) comes from the VMWARE_HOST, VMWARE_USER and
# VMWARE_PASSWORD environment variables (as AWX's VMware vCenter credential sets them) or from
# module_defaults for group/guestops.vsphere.vsphere; guest_username and guest_password can come from
# VMWARE_GUEST_USERNAME and VMWARE_GUEST_PASSWORD the same way.
- name: Upload a script
  guestops.vsphere.guest_copy:
    name: web01
    guest_username: root
    guest_password: "{{ guest_password }}"
    src: files/rotate-logs.sh
    dest: /usr/local/bin/rotate-logs.sh
    mode: '0755'
  delegate_to: localhost

- name: Write a small config file unless it exists
  guestops.vsphere.guest_copy:
    name: web01
    guest_username: root
    guest_password: "{{ guest_password }}"
    content: |
      listen 8080
    dest: /etc/app/listen.conf
    force: false
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
dest:
  description: The guest path.
  returned: when O(dest) is a valid guest file path and the source could be read
  type: str
  sample: /usr/local/bin/rotate-logs.sh
size:
  description: Size of the source in bytes.
  returned: success
  type: int
  sample: 1204
checksum:
  description: SHA-1 of the source.
  returned: success
  type: str
  sample: 2aae6c35c94fcfb415dbe95f408b9ce91ee846ed
"""

from ansible_collections.guestops.vsphere.plugins.module_utils._module import GuestOpsModule
from ansible_collections.guestops.vsphere.plugins.module_utils._files import copy_to_guest
from ansible_collections.guestops.vsphere.plugins.module_utils._paths import guest_os_of


def main():
    module = GuestOpsModule(
        argument_spec=dict(
            src=dict(type='path'),
            content=dict(type='str', no_log=True),
            dest=dict(type='str', required=True),
            mode=dict(type='raw'),
            owner=dict(type='int'),
            group=dict(type='int'),
            force=dict(type='bool', default=True),
            guest_os=dict(type='str', default='auto', choices=['auto', 'linux', 'windows']),
        ),
        mutually_exclusive=[['src', 'content']],
        required_one_of=[['src', 'content']],
    )
    params = module.params

    def copy(target):
        return copy_to_guest(target.client, params['dest'], src=params['src'], content=params['content'],
                             mode=params['mode'], owner=params['owner'], group=params['group'],
                             force=params['force'], check_mode=module.check_mode,
                             guest_os=guest_os_of(params['guest_os'], target.vm))

    module.run(copy)


if __name__ == '__main__':
    main()
