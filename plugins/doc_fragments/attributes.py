# -*- coding: utf-8 -*-
# Copyright (c) guestops.vsphere contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


class ModuleDocFragment(object):

    # The attributes every module shares; a module adds the support of check_mode (and may
    # override the rest) in its own attributes section.
    DOCUMENTATION = r"""
options: {}
attributes:
  check_mode:
    description: Can run in C(check_mode) and return changed status prediction without modifying the guest.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in C(check_mode)), when in diff mode.
    support: none
  platform:
    description: Target OS/families that can be operated against.
    details: Works inside Linux and Windows guests through the vSphere Guest Operations API (VMware Tools); the module
      itself runs on the host it is delegated to, usually the controller.
    platforms: vsphere
    support: full
"""

    # Membership of the action group (use together with DOCUMENTATION).
    ACTIONGROUP_VSPHERE = r"""
options: {}
attributes:
  action_group:
    description: Use C(group/guestops.vsphere.vsphere) in C(module_defaults) to set the connection options once.
    support: full
    membership:
      - guestops.vsphere.vsphere
"""
