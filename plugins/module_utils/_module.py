# -*- coding: utf-8 -*-
# Copyright (c) guestops.vsphere contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""AnsibleModule with the shared options, one session per task. Private to the collection."""

from __future__ import annotations

import traceback

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.module_utils.common.parameters import remove_values

from ansible_collections.guestops.vsphere.plugins.module_utils._faults import Interrupted, VSphereError, interruptible
from ansible_collections.guestops.vsphere.plugins.module_utils._vsphere import (
    HAS_PYVMOMI,
    PYVMOMI_IMPORT_ERROR,
    VM_SELECTORS,
    VSphereSession,
    check_uuid,
    missing_login_options,
    vsphere_argument_spec,
)
from ansible_collections.guestops.vsphere.plugins.module_utils._guest import (
    HAS_REQUESTS,
    REQUESTS_IMPORT_ERROR,
    GuestClient,
)


class Target(object):
    """What a module's action works on: the session, the VM and (if asked for) a guest client."""

    def __init__(self, session, vm, client=None):
        self.session = session
        self.vm = vm
        self.client = client


def open_session(params):
    """The one seam between modules and vSphere (unit tests replace it)."""
    session = VSphereSession.from_params(params)
    session.session_owner = _InProcessCall.current is not None
    return session


def guest_client(session, vm, params):
    return GuestClient(session, vm, params['guest_username'], params['guest_password'],
                       transfer_host=params.get('transfer_host'),
                       transfer_validate=params.get('transfer_validate') or 'ca',
                       transfer_mode=params.get('transfer_mode') or 'auto')


def note_transfer(client, result):
    """Say in a result which channel carried the task's files (transfer), and why it changed."""
    if client is None or client.transfer_used is None:
        return result
    result['transfer'] = client.transfer_used
    if client.transfer_note:
        result['transfer_note'] = client.transfer_note
    return result


def check_timeouts(module):
    """The shared timeout options must be positive (retry_timeout may be 0: no retries)."""
    params = module.params
    if params.get('request_timeout') is not None and params['request_timeout'] <= 0:
        module.fail_json(msg='request_timeout must be a positive number of seconds, got %s.' % params['request_timeout'])
    if params.get('retry_timeout') is not None and params['retry_timeout'] < 0:
        module.fail_json(msg='retry_timeout must not be negative, got %s.' % params['retry_timeout'])


def _no_path_info(kwargs):
    return kwargs


class ModuleExit(Exception):
    """How an in-process module run ends (see InProcessModule): its result."""

    def __init__(self, result):
        super(ModuleExit, self).__init__('module exited')
        self.result = result


class InProcessModule(object):
    """The part of AnsibleModule the collection's modules use, for a run inside the worker process.

    The action plugins of the collection run a module's ``main()`` in Ansible's worker process
    when the task runs on the controller (saving a Python process, the module's transfer and its
    imports). Arguments are validated exactly as AnsibleModule does, with the same argument spec;
    exit_json/fail_json raise ModuleExit with the result, with no_log values masked.
    """

    def __init__(self, name, args, check_mode, argument_spec, supports_check_mode=True, **options):
        self._name = name
        self.check_mode = check_mode
        self._warnings = []
        validator = ArgumentSpecValidator(argument_spec, **options)
        validation = validator.validate(dict(args))
        self.params = validation.validated_parameters
        self.no_log_values = set(validation._no_log_values)
        if validation.error_messages:
            msg = validation.errors.msg
            if type(validation.errors[0]).__name__ == 'UnsupportedError':
                msg = 'Unsupported parameters for (%s) module: %s' % (name, msg)
            self.fail_json(msg=msg)
        if check_mode and not supports_check_mode:
            self.exit_json(skipped=True, msg='remote module (%s) does not support check mode' % name)

    def warn(self, warning):
        self._warnings.append(warning)

    def _finish(self, result):
        if self._warnings:
            result['warnings'] = list(result.get('warnings') or []) + self._warnings
        result['invocation'] = dict(module_args=self.params)
        return remove_values(result, self.no_log_values)

    def exit_json(self, **result):
        result.setdefault('changed', False)
        raise ModuleExit(self._finish(result))

    def fail_json(self, msg, **result):
        result.update(failed=True, msg=msg)
        result.setdefault('changed', False)
        raise ModuleExit(self._finish(result))


class _InProcessCall(object):
    """The task an action plugin runs in-process (set only while it does)."""
    current = None

    def __init__(self, name, args, check_mode):
        self.name = name
        self.args = args
        self.check_mode = check_mode


def run_in_process(name, main, args, check_mode=False):
    """Run a module's ``main()`` in this process with ``args``; returns its result dict."""
    _InProcessCall.current = _InProcessCall(name, args, check_mode)
    try:
        main()
    except ModuleExit as done:
        return done.result
    finally:
        _InProcessCall.current = None
    return dict(failed=True, msg='The module %s ended without a result.' % name)


class GuestOpsModule(object):
    """Wraps AnsibleModule: merges the shared options and runs one action against one VM."""

    def __init__(self, argument_spec=None, guest_login=True, vm_required=True, supports_check_mode=True,
                 mutually_exclusive=None, required_one_of=None, required_if=None, required_together=None,
                 required_by=None, needs_requests=True, local_paths=False):
        spec = vsphere_argument_spec(guest_login=guest_login)
        spec.update(argument_spec or {})
        selectors = [list(VM_SELECTORS)]
        options = dict(
            mutually_exclusive=selectors + list(mutually_exclusive or []),
            required_one_of=(selectors if vm_required else []) + list(required_one_of or []),
        )
        for key, value in (('required_if', required_if), ('required_together', required_together),
                           ('required_by', required_by)):
            if value:
                options[key] = value
        call = _InProcessCall.current
        if call is not None:
            self.module = InProcessModule(call.name, call.args, call.check_mode, spec,
                                          supports_check_mode=supports_check_mode, **options)
        else:
            self.module = AnsibleModule(argument_spec=spec, supports_check_mode=supports_check_mode, **options)
        if not local_paths:
            # path/dest name guest paths: do not add stat() details of a local file with the same name.
            self.module.add_path_info = _no_path_info
        self.params = self.module.params
        self.check_mode = self.module.check_mode
        self.guest_login = guest_login
        if not HAS_PYVMOMI:
            self.module.fail_json(msg=missing_required_lib('pyvmomi'), exception=PYVMOMI_IMPORT_ERROR)
        if needs_requests and not HAS_REQUESTS:
            self.module.fail_json(msg=missing_required_lib('requests'), exception=REQUESTS_IMPORT_ERROR)
        missing = missing_login_options(self.params, guest_login)
        if missing:
            self.module.fail_json(msg=missing)
        check_timeouts(self.module)

    def fail(self, msg, **result):
        self.module.fail_json(msg=msg, **result)

    def run(self, action, vm_selector=None, check_ready=True):
        """Connect, find the VM, run ``action(target)`` and exit with its result.

        ``vm_selector`` overrides the name/uuid/moid options (guest_exec_status uses the job's VM).
        With ``check_ready`` a VM that cannot run guest operations fails before any guest call.
        Every VSphereError becomes a failed task with ``fault``, ``step`` and ``retryable``; the
        session is logged out on every path, also after SIGINT or SIGTERM.
        """
        params = self.params
        selector = vm_selector or dict(
            name=params.get('name'), datacenter=params.get('datacenter'), folder=params.get('folder'),
            uuid=params.get('uuid'), use_instance_uuid=params.get('use_instance_uuid'), moid=params.get('moid'))
        result = None
        try:
            if selector.get('uuid'):
                check_uuid(selector['uuid'], selector.get('use_instance_uuid'))
            with interruptible():
                with open_session(params) as session:
                    vm = session.find_vm(**selector)
                    if check_ready:
                        problem = vm.readiness_problem()
                        if problem:
                            raise VSphereError(problem, step='Checking the VM')
                    client = None
                    if self.guest_login and params.get('guest_username') is not None:
                        client = guest_client(session, vm, params)
                    try:
                        result = note_transfer(client, dict(action(Target(session, vm, client))))
                    except VSphereError as err:
                        err.result = note_transfer(client, dict(err.result))
                        raise
                    finally:
                        if client is not None:
                            client.close()
        except VSphereError as err:
            self.fail_error(err)
        except Interrupted as stop:
            self.module.fail_json(
                msg='Interrupted by %s. What the module had started in the guest was terminated and its temporary '
                    'directory removed, and the vSphere session was logged out.' % stop.name,
                changed=False, interrupted=True, fault=None, step=None, retryable=True)
        result = dict(result)
        self._warn_all(result)
        self.module.exit_json(**result)

    def fail_error(self, err):
        extra = dict(err.result)
        extra.setdefault('changed', False)
        extra.update(err.details())
        if err.fault is not None and getattr(err.fault, '__traceback__', None) is not None:
            extra['exception'] = ''.join(traceback.format_exception(type(err.fault), err.fault,
                                                                    err.fault.__traceback__))
        self._warn_all(extra)
        self.module.fail_json(msg=err.msg, **extra)

    def _warn_all(self, result):
        for message in result.pop('warnings', None) or []:
            self.module.warn(message)
