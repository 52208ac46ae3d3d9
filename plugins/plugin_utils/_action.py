# -*- coding: utf-8 -*-
# Copyright (c) guestops.vsphere contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The action plugin behind every module of the collection. Private to the collection.

A task that runs on the controller (``delegate_to: localhost``, ``connection: local``) runs the
module's code right in Ansible's worker process: no new Python process, no module transfer, no
second import of pyVmomi. Everything else runs the module the usual way: another host
(``delegate_to`` a host that reaches vCenter), Ansible's ``async``, ``become``, a task
``environment``, or a controller Python without pyVmomi.
"""

from __future__ import annotations

import importlib

from ansible.plugins.action import ActionBase
from ansible.utils.display import Display
from ansible.utils.vars import merge_hash

# Imported with the action plugin, which Ansible loads in its main process before it forks a
# worker per task: every worker then has pyVmomi and the module utilities loaded already.
try:
    from ansible_collections.guestops.vsphere.plugins.module_utils._module import run_in_process
    from ansible_collections.guestops.vsphere.plugins.module_utils._vsphere import HAS_PYVMOMI
except ImportError:
    run_in_process = None
    HAS_PYVMOMI = False

display = Display()


class GuestOpsAction(ActionBase):

    _supports_check_mode = True
    _supports_async = True

    def run(self, tmp=None, task_vars=None):
        result = super(GuestOpsAction, self).run(tmp, task_vars)
        del tmp
        reason = self._why_not_in_process()
        if reason:
            display.vvv('%s runs as a module process: %s' % (self._task.resolved_action, reason))
            wrap_async = self._task.async_val and not self._connection.has_native_async
            result = merge_hash(result, self._execute_module(module_name=self._task.resolved_action,
                                                             task_vars=task_vars, wrap_async=wrap_async))
            if not wrap_async:
                self._remove_tmp_path(self._connection._shell.tmpdir)
            return result
        display.vvv('%s runs in the worker process' % self._task.resolved_action)
        module = importlib.import_module('ansible_collections.guestops.vsphere.plugins.modules.%s'
                                         % self._task.resolved_action.split('.')[-1])
        return merge_hash(result, run_in_process(self._task.resolved_action, module.main, self._task.args,
                                                 check_mode=self._task.check_mode))

    def _why_not_in_process(self):
        if self._connection.transport not in ('local', 'ansible.builtin.local'):
            return 'the task runs on another host'
        if self._task.async_val:
            return 'async'
        if self._task.become:
            return 'become'
        if any(self._templar.template(env) for env in self._task.environment or [] if env):
            return 'a task environment'
        if run_in_process is None:
            return 'the controller Python cannot import the module utilities'
        if not HAS_PYVMOMI:
            return 'the controller Python has no pyVmomi'
        return None
