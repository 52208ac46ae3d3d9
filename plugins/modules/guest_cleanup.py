#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) guestops.vsphere contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: guest_cleanup
short_description: Delete a file or directory tree inside a vSphere VM
version_added: 0.1.0
description:
  - Deletes O(path) in the guest through VMware Tools; a directory is deleted with everything in it.
  - A path that is already gone is not an error (C(changed=false)).
  - Refuses V(/), drive roots such as V(C:\\), empty and relative paths.
options:
  path:
    description:
      - Absolute guest path of the file or directory to delete.
    type: str
    required: true
requirements:
  - pyvmomi >= 8.0.3.0.1
extends_documentation_fragment:
  - guestops.vsphere.vsphere
  - guestops.vsphere.vsphere.guest
  - guestops.vsphere.attributes
  - guestops.vsphere.attributes.actiongroup_vsphere
attributes:
  check_mode:
    support: full
author:
  - guestops.vsphere maintainers (@guestops)
"""

EXAMPLES = r"""
# The vCenter connection (hostname, username, password) comes from the VMWARE_HOST, VMWARE_USER and
# VMWARE_PASSWORD environment variables (as AWX's VMware vCenter credential sets them) or from
# module_defaults for group/guestops.vsphere.vsphere; guest_username and guest_password can come from
# VMWARE_GUEST_USERNAME and VMWARE_GUEST_PASSWORD the same way.
- name: Remove a work directory made by guest_tempdir
  guestops.vsphere.guest_cleanup:
    name: web01
    guest_username: deploy
    guest_password: "{{ guest_password }}"
    path: "{{ workdir.path }}"
  delegate_to: localhost
"""

RETURN = r"""
path:
  description: The path that was given.
  returned: always
  type: str
  sample: /tmp/vmware-deploy_766-2990744190/ansible-vmware4312
"""

from ansible_collections.guestops.vsphere.plugins.module_utils._module import GuestOpsModule
from ansible_collections.guestops.vsphere.plugins.module_utils._files import cleanup_path
from ansible_collections.guestops.vsphere.plugins.module_utils._paths import refuse_delete


def main():
    module = GuestOpsModule(
        argument_spec=dict(path=dict(type='str', required=True)),
        needs_requests=False,
    )
    path = module.params['path']
    refusal = refuse_delete(path)
    if refusal:
        module.fail(msg='guest_cleanup: %s.' % refusal, path=path, changed=False)
    module.run(lambda target: cleanup_path(target.client, path, check_mode=module.check_mode))


if __name__ == '__main__':
    main()
