# -*- coding: utf-8 -*-
# Copyright (c) guestops.vsphere contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

from ansible_collections.guestops.vsphere.plugins.plugin_utils._action import GuestOpsAction


class ActionModule(GuestOpsAction):
    """Runs the module in the worker process when the task runs on the controller (see GuestOpsAction)."""
