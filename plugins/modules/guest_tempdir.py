#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) guestops.vsphere contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: guest_tempdir
short_description: Create a private temporary directory or file in a vSphere VM
version_added: 0.1.0
description:
  - Creates a uniquely named directory (mode 0700) or file (mode 0600) in the guest through VMware Tools
    and returns its absolute path.
  - The caller owns it; remove it with M(guestops.vsphere.guest_cleanup).
options:
  state:
    description:
      - Create a V(directory) or a V(file).
    type: str
    choices: [directory, file]
    default: directory
  prefix:
    description:
      - Prefix of the new name.
    type: str
    default: ansible-
  suffix:
    description:
      - Suffix of the new name, for example V(.sh).
    type: str
    default: ''
  directory_path:
    description:
      - Directory to create it in, for example a directory from an earlier call, or a file system that
        allows executing programs when the default temporary location is mounted C(noexec).
      - If not set, the guest's default temporary location for the guest user is used.
    type: str
requirements:
  - pyvmomi >= 8.0.3.0.1
extends_documentation_fragment:
  - guestops.vsphere.vsphere
  - guestops.vsphere.vsphere.guest
  - guestops.vsphere.attributes
  - guestops.vsphere.attributes.actiongroup_vsphere
attributes:
  check_mode:
    support: partial
    details: In check mode nothing is created, RV(path) is not returned and C(changed) is V(true).
author:
  - guestops.vsphere maintainers (@guestops)
"""

EXAMPLES = r"""
# The vCenter connection (hostname, username, password) comes from the VMWARE_HOST, VMWARE_USER and
# VMWARE_PASSWORD environment variables (as AWX's VMware vCenter credential sets them) or from
# module_defaults for group/guestops.vsphere.vsphere; guest_username and guest_password can come from
# VMWARE_GUEST_USERNAME and VMWARE_GUEST_PASSWORD the same way.
- name: Make a private work directory in the guest
  guestops.vsphere.guest_tempdir:
    name: web01
    guest_username: deploy
    guest_password: "{{ guest_password }}"
  delegate_to: localhost
  register: workdir

- name: Make an empty script file inside it
  guestops.vsphere.guest_tempdir:
    name: web01
    guest_username: deploy
    guest_password: "{{ guest_password }}"
    state: file
    suffix: .sh
    directory_path: "{{ workdir.path }}"
  delegate_to: localhost
  register: script
"""

RETURN = r"""
path:
  description: Absolute path of the new directory or file in the guest.
  returned: success, except in check mode
  type: str
  sample: /tmp/vmware-deploy_766-2990744190/ansible-vmware4312
"""

import time

from ansible_collections.guestops.vsphere.plugins.module_utils._module import GuestOpsModule
from ansible_collections.guestops.vsphere.plugins.module_utils._exec import sweep_expired
from ansible_collections.guestops.vsphere.plugins.module_utils._paths import is_absolute, split


def main():
    module = GuestOpsModule(
        argument_spec=dict(
            state=dict(type='str', default='directory', choices=['directory', 'file']),
            prefix=dict(type='str', default='ansible-'),
            suffix=dict(type='str', default=''),
            directory_path=dict(type='str'),
        ),
        needs_requests=False,
    )
    params = module.params
    for option in ('prefix', 'suffix'):
        if any(sep in (params[option] or '') for sep in '/\\'):
            module.fail(msg="%s must not contain a path separator, got '%s'; use directory_path to choose where the "
                            "%s is created." % (option, params[option], params['state']))
    if params['directory_path'] and not is_absolute(params['directory_path']):
        module.fail(msg="directory_path must be an absolute path in the guest, got '%s'." % params['directory_path'])

    def create(target):
        if module.check_mode:
            return dict(changed=True)
        make = target.client.make_temp_file if params['state'] == 'file' else target.client.make_temp_dir
        path = make(prefix=params['prefix'], suffix=params['suffix'], directory_path=params['directory_path'])
        warnings = []
        sweep_expired(target.client, split(path)[0], time.time(), warn=warnings.append)
        return dict(changed=True, path=path, warnings=warnings)

    module.run(create)


if __name__ == '__main__':
    main()
