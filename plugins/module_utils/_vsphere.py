# -*- coding: utf-8 -*-
# Copyright (c) guestops.vsphere contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""vSphere session (connect, the one call layer, logout) and VM lookup. Private to the collection."""

from __future__ import annotations

import socket
import ssl
import time
import traceback
import uuid as uuid_lib
from http.cookies import SimpleCookie

from ansible.module_utils.basic import env_fallback

from ansible_collections.guestops.vsphere.plugins.module_utils._faults import (
    VSphereError,
    describe_fault,
    fault_is,
    network_problem,
    step_error,
)
from ansible_collections.guestops.vsphere.plugins.module_utils import _session_cache
from ansible_collections.guestops.vsphere.plugins.module_utils._retry import (
    BUSY,
    DEFAULT_REQUEST_TIMEOUT,
    DEFAULT_RETRY_TIMEOUT,
    NETWORK,
    SESSION,
    RetryBudget,
    dropped,
    retry_kind,
)

PYVMOMI_IMPORT_ERROR = None
try:
    from pyVim.connect import SmartStubAdapter
    from pyVmomi import SoapStubAdapter, vim, vmodl
except ImportError:  # pragma: no cover - exercised by the sanity import test
    PYVMOMI_IMPORT_ERROR = traceback.format_exc()
    SmartStubAdapter = SoapStubAdapter = None
    vim = vmodl = None

HAS_PYVMOMI = PYVMOMI_IMPORT_ERROR is None


# --------------------------------------------------------------------------- arguments

def vsphere_argument_spec(guest_login=True):
    """Options shared by every module (documented in the guestops.vsphere.vsphere fragment).

    With ``guest_login`` the guest login and transfer options are added (fragment GUEST);
    ``guest_login='optional'`` adds them as optional options.
    """
    # The login options are required, but checked by missing_login_options (not by AnsibleModule),
    # so that the message says where each can be set.
    spec = dict(
        hostname=dict(type='str', fallback=(env_fallback, ['VMWARE_HOST'])),
        username=dict(type='str', aliases=['user', 'admin'], fallback=(env_fallback, ['VMWARE_USER'])),
        password=dict(type='str', aliases=['pass', 'pwd'], no_log=True, fallback=(env_fallback, ['VMWARE_PASSWORD'])),
        port=dict(type='int', default=443, fallback=(env_fallback, ['VMWARE_PORT'])),
        validate_certs=dict(type='bool', default=True, fallback=(env_fallback, ['VMWARE_VALIDATE_CERTS'])),
        proxy_host=dict(type='str', fallback=(env_fallback, ['VMWARE_PROXY_HOST'])),
        proxy_port=dict(type='int', fallback=(env_fallback, ['VMWARE_PROXY_PORT'])),
        name=dict(type='str'),
        datacenter=dict(type='str'),
        folder=dict(type='str'),
        uuid=dict(type='str'),
        use_instance_uuid=dict(type='bool', default=False),
        moid=dict(type='str'),
        request_timeout=dict(type='int', default=DEFAULT_REQUEST_TIMEOUT),
        retry_timeout=dict(type='int', default=DEFAULT_RETRY_TIMEOUT),
        keep_session=dict(type='str', no_log=False),
        end_session=dict(type='bool', default=False),
    )
    if guest_login:
        spec.update(
            guest_username=dict(type='str', fallback=(env_fallback, ['VMWARE_GUEST_USERNAME'])),
            guest_password=dict(type='str', no_log=True, fallback=(env_fallback, ['VMWARE_GUEST_PASSWORD'])),
            transfer_host=dict(type='str'),
            transfer_validate=dict(type='str', default='ca', choices=['ca', 'thumbprint', 'none']),
            transfer_mode=dict(type='str', default='auto', choices=['auto', 'esxi', 'vcenter'],
                               fallback=(env_fallback, ['VMWARE_GUEST_TRANSFER_MODE'])),
        )
    return spec


LOGIN_OPTIONS = ('hostname', 'username', 'password')
GUEST_LOGIN_OPTIONS = ('guest_username', 'guest_password')


def missing_login_options(params, guest_login=True):
    """A message naming the unset login options with their environment variables, or None."""
    required = LOGIN_OPTIONS + (GUEST_LOGIN_OPTIONS if guest_login and guest_login != 'optional' else ())
    missing = [key for key in required if params.get(key) is None]
    if not missing:
        return None
    spec = vsphere_argument_spec(guest_login=True)
    where = ', '.join('%s (%s)' % (key, spec[key]['fallback'][1][0]) for key in missing)
    return ('missing required arguments: %s. Set %s in the task or in module_defaults for '
            'group/guestops.vsphere.vsphere, or export the environment variable: %s.'
            % (', '.join(missing), 'it' if len(missing) == 1 else 'each', where))


VM_SELECTORS = ('name', 'uuid', 'moid')


def check_uuid(value, instance_uuid=False):
    """Refuse a uuid that is not 32 hexadecimal digits before asking vSphere (which finds no VM for it)."""
    try:
        uuid_lib.UUID(str(value))
    except ValueError:
        kind = 'instance uuid (config.instanceUuid)' if instance_uuid else 'BIOS uuid (config.uuid)'
        raise VSphereError("The uuid '%s' is malformed: a %s is 32 hexadecimal digits, usually written "
                           "as 4206c4d6-0a4e-8f3a-5fbe-0e1d2c3b4a59. guest_info returns both uuids of a VM."
                           % (value, kind), step='Finding the VM')


# --------------------------------------------------------------------------- VM lookup

GUEST_MANAGERS = ('fileManager', 'processManager', 'authManager')

VM_PROPERTIES = (
    'name', 'runtime.powerState', 'runtime.host', 'config.uuid', 'config.instanceUuid', 'config.guestId',
    'guest.toolsRunningStatus', 'guest.toolsVersionStatus2', 'guest.toolsStatus',
    'guest.guestOperationsReady', 'guest.interactiveGuestOperationsReady',
    'guest.guestFamily', 'guest.guestId', 'guest.guestFullName', 'guest.guestState',
    'guest.hostName', 'guest.ipAddress',
)


class VirtualMachine(object):
    """A VM found in the inventory: its managed object, identity and guest facts."""

    def __init__(self, ref, props, path=None):
        self.ref = ref
        self.props = props
        self.path = path

    @property
    def moid(self):
        return self.ref._moId

    @property
    def name(self):
        return self.props.get('name') or self.moid

    def get(self, prop, default=None):
        return self.props.get(prop, default)

    @property
    def power_state(self):
        return self.props.get('runtime.powerState')

    @property
    def guest_family(self):
        return self.props.get('guest.guestFamily')

    def identity(self):
        return {
            'name': self.name,
            'moid': self.moid,
            'uuid': self.props.get('config.uuid'),
            'instance_uuid': self.props.get('config.instanceUuid'),
            'power_state': self.power_state,
        }

    def guest_facts(self):
        p = self.props
        return {
            'tools_running_status': p.get('guest.toolsRunningStatus'),
            'tools_version_status': p.get('guest.toolsVersionStatus2'),
            'tools_status': p.get('guest.toolsStatus'),
            'guest_operations_ready': bool(p.get('guest.guestOperationsReady')),
            'interactive_guest_operations_ready': bool(p.get('guest.interactiveGuestOperationsReady')),
            'guest_family': p.get('guest.guestFamily'),
            'guest_id': p.get('guest.guestId'),
            'guest_full_name': p.get('guest.guestFullName'),
            'guest_state': p.get('guest.guestState'),
            'hostname': p.get('guest.hostName'),
            'ip_address': p.get('guest.ipAddress'),
        }

    def lasting_problem(self, advice=True):
        """A reason guest operations cannot run that waiting does not cure (powered off, no Tools), or None."""
        state = self.power_state
        if state and state != 'poweredOn':
            return ("VM '%s' is %s; guest operations need a powered-on VM with VMware Tools running.%s"
                    % (self.name, state, ' Power it on and retry.' if advice else ''))
        if self.props.get('guest.toolsVersionStatus2') == 'guestToolsNotInstalled' or \
                self.props.get('guest.toolsStatus') == 'toolsNotInstalled':
            return ("VMware Tools are not installed in VM '%s'; guest operations need them. Install "
                    "open-vm-tools or VMware Tools in the guest." % self.name)
        return None

    def readiness_problem(self, advice=True):
        """Why guest operations cannot run now (a sentence), or None when they can.

        Without ``advice`` only the state is described (used after waiting in vain).
        """
        problem = self.lasting_problem(advice)
        if problem:
            return problem
        if self.props.get('guest.toolsRunningStatus') == 'guestToolsNotRunning':
            return ("VMware Tools are not running in VM '%s'.%s" % (self.name, (
                " Start them in the guest (systemctl start vmtoolsd) or wait for the guest to boot "
                "(guest_info wait_for_ready=true).") if advice else ''))
        if self.props.get('guest.guestOperationsReady') is False:
            return ("VM '%s' is not ready for guest operations yet (guestOperationsReady is false; the guest "
                    "is probably still booting).%s" % (self.name, (
                        " Wait for it with guestops.vsphere.guest_info wait_for_ready=true.") if advice else ''))
        return None


def _folder_matches(folder, folder_path, datacenter_path):
    """Does the user's ``folder`` select a VM whose parent folder has ``folder_path``?

    ``/DC0/vm/F0`` (absolute), ``/vm/F0`` (relative to the datacenter) and ``F0`` or
    ``vm/F0`` (a trailing part of the path) all select ``/DC0/vm/F0``.
    """
    if folder_path is None:
        return False
    wanted = folder.rstrip('/')
    if not wanted:
        return False
    if wanted.startswith('/'):
        if folder_path == wanted:
            return True
        if datacenter_path and folder_path.startswith(datacenter_path + '/'):
            return folder_path[len(datacenter_path):] == wanted
        return False
    return folder_path == '/' + wanted or folder_path.endswith('/' + wanted)


class InventoryEntry(object):
    __slots__ = ('ref', 'name', 'parent', 'kind')

    def __init__(self, ref, name, parent, kind):
        self.ref = ref
        self.name = name
        self.parent = parent
        self.kind = kind


class Inventory(object):
    """Names and parents of folders, datacenters and VMs, keyed by moid."""

    def __init__(self, entries, root_moid=None):
        self.entries = dict((e.ref._moId, e) for e in entries)
        self.root_moid = root_moid

    def _chain(self, moid):
        chain = []
        seen = set()
        while moid and moid in self.entries and moid not in seen and moid != self.root_moid:
            seen.add(moid)
            entry = self.entries[moid]
            chain.append(entry)
            moid = entry.parent
        chain.reverse()
        return chain

    def path(self, moid):
        return '/' + '/'.join(e.name for e in self._chain(moid))

    def datacenter(self, moid):
        """(name, path) of the datacenter holding moid, or (None, None)."""
        chain = self._chain(moid)
        for index in range(len(chain) - 1, -1, -1):
            if chain[index].kind == 'Datacenter':
                return chain[index].name, '/' + '/'.join(e.name for e in chain[:index + 1])
        return None, None

    def vms_named(self, name):
        return [e for e in self.entries.values() if e.kind == 'VirtualMachine' and e.name == name]

    def vm_count(self):
        return sum(1 for e in self.entries.values() if e.kind == 'VirtualMachine')

    def select(self, name, datacenter=None, folder=None):
        """VM entries named ``name`` narrowed by datacenter and folder, plus all of that name."""
        named = self.vms_named(name)
        selected = []
        for entry in named:
            dc_name, dc_path = self.datacenter(entry.ref._moId)
            if datacenter and dc_name != datacenter:
                continue
            if folder:
                folder_path = self.path(entry.parent) if entry.parent else None
                if not _folder_matches(folder, folder_path, dc_path):
                    continue
            selected.append(entry)
        return selected, named


def _candidate_list(inventory, entries):
    return ', '.join(sorted('%s (%s)' % (inventory.path(e.ref._moId), e.ref._moId) for e in entries))


def choose_vm(inventory, name, datacenter=None, folder=None, username=None):
    """The one inventory entry named ``name``; errors list the candidates."""
    selected, named = inventory.select(name, datacenter, folder)
    if len(selected) == 1:
        return selected[0]
    if len(selected) > 1:
        raise VSphereError(
            "Finding the VM failed: the name '%s' is ambiguous, %d VMs match: %s. Narrow it down with "
            "datacenter or folder, or select the VM by uuid or moid." % (name, len(selected), _candidate_list(inventory, selected)))
    narrowing = []
    if datacenter:
        narrowing.append("datacenter '%s'" % datacenter)
    if folder:
        narrowing.append("folder '%s'" % folder)
    if named:
        raise VSphereError(
            "Finding the VM failed: no VM named '%s' in %s; VMs with that name: %s."
            % (name, ' and '.join(narrowing), _candidate_list(inventory, named)))
    raise VSphereError(
        "Finding the VM failed: no VM named '%s' is visible to user '%s' (%d VMs searched). Check the name "
        "and the user's permissions." % (name, username, inventory.vm_count()))


# --------------------------------------------------------------------------- session

def unverified_ssl_context():
    """A client context that checks no certificate. Built without ``create_default_context``, which
    loads the system's CA bundle: about a tenth of a second per task with OpenSSL 3, for nothing."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def login(host, port, user, pwd, sslContext, httpConnectionTimeout, httpProxyHost=None, httpProxyPort=80):
    """Negotiate the API version and log in: (ServiceInstance, ServiceContent), in two SOAP calls."""
    stub = SmartStubAdapter(host=host, port=port, sslContext=sslContext, httpConnectionTimeout=httpConnectionTimeout,
                            httpProxyHost=httpProxyHost, httpProxyPort=httpProxyPort)
    try:
        si = vim.ServiceInstance('ServiceInstance', stub)
        content = si.RetrieveContent()
        content.sessionManager.Login(userName=user, password=pwd)
    except BaseException:
        stub.DropConnections()
        raise
    return si, content


class VSphereSession(object):
    """One logged-in vSphere session. Use as a context manager: it always logs out.

    Every call goes through ``call``, which holds the collection's one retry policy (see _retry):
    a busy agent or VM and a vCenter that refuses connections while it restarts are retried with
    back-off for up to ``retry_timeout`` seconds; a lost session is logged in again once. Every
    socket waits at most ``request_timeout`` seconds for a connection or an answer. The password
    is kept in memory for that one re-login only and is never shown.
    """

    def __init__(self, hostname, username, password, port=443, validate_certs=True,
                 proxy_host=None, proxy_port=None, request_timeout=DEFAULT_REQUEST_TIMEOUT,
                 retry_timeout=DEFAULT_RETRY_TIMEOUT, keep_session=None, end_session=False,
                 session_owner=False, sleep=time.sleep, clock=time.monotonic):
        self.hostname = hostname
        self.username = username
        self._password = password
        self.port = int(port or 443)
        self.validate_certs = validate_certs
        self.proxy_host = proxy_host
        self.proxy_port = proxy_port
        self.request_timeout = request_timeout or DEFAULT_REQUEST_TIMEOUT
        self.retry_timeout = DEFAULT_RETRY_TIMEOUT if retry_timeout is None else retry_timeout
        self.keep_session = keep_session
        self.end_session = end_session
        # Kept sessions follow Ansible's main process when the module runs inside its worker.
        self.session_owner = session_owner
        self._kept_at = None
        self._sleep = sleep
        self._clock = clock
        self.si = None
        self.content = None
        self._guest_managers = None
        self._ssl_context = None
        self._reattached = False
        self._reattached_id = None
        # What the owner of a kept session keeps with it for later tasks (the connection plugin: the
        # VM it found); read back on reattaching.
        self.kept_extra = {}
        self.logins = 0

    @classmethod
    def from_params(cls, params):
        return cls(params['hostname'], params['username'], params['password'], params.get('port') or 443,
                   params.get('validate_certs', True), params.get('proxy_host'), params.get('proxy_port'),
                   request_timeout=params.get('request_timeout') or DEFAULT_REQUEST_TIMEOUT,
                   retry_timeout=params.get('retry_timeout'), keep_session=params.get('keep_session'),
                   end_session=params.get('end_session', False))

    # ----------------------------------------------------------------- connection
    def ssl_context(self):
        if self._ssl_context is None:
            self._ssl_context = ssl.create_default_context() if self.validate_certs else unverified_ssl_context()
        return self._ssl_context

    def context(self, **extra):
        values = dict(host=self.hostname, port=self.port, username=self.username)
        values.update(extra)
        return values

    def retry_budget(self, deadline=None):
        return RetryBudget(self.retry_timeout, deadline=deadline, sleep=self._sleep, clock=self._clock)

    def connect(self):
        if not HAS_PYVMOMI:
            raise VSphereError('pyvmomi is required for this module')
        step = "Connecting to vCenter/ESXi '%s:%s'" % (self.hostname, self.port)
        kwargs = dict(host=self.hostname, port=self.port, user=self.username, pwd=self._password,
                      sslContext=self.ssl_context(), httpConnectionTimeout=self.request_timeout)
        if self.proxy_host:
            kwargs.update(httpProxyHost=self.proxy_host, httpProxyPort=int(self.proxy_port or 80))
        # pyVmomi's version negotiation opens its own connection without a timeout; sockets
        # created without one take this default, so no endpoint can hang the module.
        socket.setdefaulttimeout(self.request_timeout)
        self._end_abandoned_sessions(kwargs)
        if self.keep_session:
            self._kept_at = _session_cache.cache_path(self.keep_session, self.hostname, self.port, self.username,
                                                      self._password)
            kept = _session_cache.load(self._kept_at)
            if kept:
                # Reattaching costs no call: the API version and the service content's references
                # were kept with the session. A session that vCenter has forgotten meanwhile answers
                # NotAuthenticated on the first call, which logs in again (see call).
                self._reattach(kept, kwargs)
                return self
        budget = None
        try:
            while True:
                try:
                    self.logins += 1
                    self.si, self.content = login(**kwargs)
                    return self
                except Exception as exc:
                    # login() drops its own connection on failure. A server that drops the connection is restarting; one that refuses it may just
                    # be the wrong port, which must fail at once.
                    if dropped(exc):
                        budget = budget or self.retry_budget()
                        if budget.wait():
                            continue
                    self._password = None
                    raise self._connect_error(step, exc)
        finally:
            kwargs = None

    def _connect_error(self, step, exc):
        if 'is not a VIM server' in str(exc):
            cause = exc.__context__ or exc.__cause__
            if cause is not None and network_problem(cause, self.hostname, self.port):
                exc = cause
            else:
                return VSphereError(
                    "%s failed: '%s:%s' does not look like vCenter or ESXi (no SDK endpoint answered). Check "
                    "hostname and port." % (step, self.hostname, self.port), fault=exc, step=step)
        return step_error(step, exc, **self.context())

    def _end_abandoned_sessions(self, kwargs):
        """Log out the kept sessions of this vCenter whose Ansible run was killed between two tasks."""
        for path, kept in _session_cache.abandoned(self.hostname, self.port):
            _session_cache.forget(path)
            try:
                stub = SoapStubAdapter(host=self.hostname, port=self.port, version=kept['version'],
                                       sslContext=kwargs['sslContext'], httpConnectionTimeout=self.request_timeout,
                                       httpProxyHost=kwargs.get('httpProxyHost'),
                                       httpProxyPort=kwargs.get('httpProxyPort', 80), sessionId=kept['session_id'])
                _KeptContent(stub, kept['content']).sessionManager.Logout()
                stub.DropConnections()
            except Exception:
                pass  # gone already, or vCenter unreachable: its idle timeout ends it

    def _reattach(self, kept, kwargs):
        stub = SoapStubAdapter(host=self.hostname, port=self.port, version=kept['version'],
                               sslContext=kwargs['sslContext'], httpConnectionTimeout=self.request_timeout,
                               httpProxyHost=kwargs.get('httpProxyHost'), httpProxyPort=kwargs.get('httpProxyPort', 80),
                               sessionId=kept['session_id'])
        self.si = vim.ServiceInstance('ServiceInstance', stub)
        self.content = _KeptContent(stub, kept['content'])
        managers = kept.get('guest_managers') or {}
        if all(managers.get(key) for key in GUEST_MANAGERS):
            self._guest_managers = dict((key, _managed_object(*managers[key], stub=stub)) for key in GUEST_MANAGERS)
        self._reattached = True
        self._reattached_id = kept['session_id']
        self.kept_extra = dict(kept.get('extra') or {})

    @property
    def reattached(self):
        """Whether this session is a kept one that a later task reattached to (no login was made)."""
        return self._reattached and self.logins == 0

    def _kept(self, si):
        """What a later task needs to reattach to the session of ``si`` without a call."""
        content = dict((name, (type(ref).__name__, ref._moId)) for name, ref in (
            (name, getattr(self.content, name, None)) for name in _KeptContent.NAMES) if ref is not None)
        managers = dict((key, (type(ref).__name__, ref._moId)) for key, ref in (self._guest_managers or {}).items()
                        if ref is not None)
        kept = dict(session_id=_session_id(si), version=si._stub.version, content=content, guest_managers=managers,
                    hostname=self.hostname, port=self.port, extra=self.kept_extra)
        if self.session_owner:
            # True: the parent process (modules in Ansible's worker); a dict: the owner given by the caller.
            kept.update(self.session_owner if isinstance(self.session_owner, dict) else _session_cache.owner())
        return kept

    def _login_again(self):
        """Replace a lost session (vCenter restarted, session expired) with a new login."""
        self.logins += 1
        self.content.sessionManager.Login(userName=self.username, password=self._password)

    def close(self, interrupted=False):
        """Log out (errors are ignored) and drop the connection.

        A session kept with keep_session stays open for the next task, unless end_session is set
        or the task was interrupted (the run is going away).
        """
        si, self.si = self.si, None
        self._password = None
        if si is None:
            return
        keep = self._kept_at is not None and not self.end_session and not interrupted
        kept_state = None
        if keep:
            try:
                kept_state = self._kept(si)
            except Exception:
                keep = False
        try:
            saved = keep and _session_cache.save(self._kept_at, kept_state, replaces=self._reattached_id)
            if not saved:
                # Not kept: the file goes too, unless another task kept its own session under that
                # name meanwhile (that one is used by the next task; this one is logged out).
                if self._kept_at is not None and not keep:
                    _session_cache.forget(self._kept_at)
                content = self.content or si.RetrieveContent()
                content.sessionManager.Logout()
        except Exception:
            pass
        finally:
            self.content = None
            stub = getattr(si, '_stub', None)
            drop = getattr(stub, 'DropConnections', None)
            if drop is not None:
                try:
                    drop()
                except Exception:
                    pass

    def __enter__(self):
        if self.si is None:
            self.connect()
        return self

    def __exit__(self, exc_type, exc_value, tb):
        self.close(interrupted=exc_type is not None and not issubclass(exc_type, Exception))
        return False

    # ----------------------------------------------------------------- calls
    def call(self, step, func, vm_name=None, path=None, guest_username=None, idempotent=True, deadline=None,
             **kwargs):
        """Run one vSphere call under the retry policy; a lasting failure becomes a VSphereError naming the step.

        ``idempotent=False`` marks calls that must not be repeated after a dropped connection
        (the server may have acted). ``deadline`` (a ``clock`` value) ends retrying earlier.
        """
        budget = None
        logged_in_again = False
        while True:
            try:
                return func(**kwargs)
            except VSphereError:
                raise
            except Exception as exc:
                kind = retry_kind(exc, idempotent)
                if kind == SESSION and not logged_in_again and self._password is not None:
                    logged_in_again = True
                    try:
                        self._login_again()
                    except Exception as login_exc:
                        exc, kind = login_exc, retry_kind(login_exc)
                        if kind not in (BUSY, NETWORK):
                            raise step_error(step, login_exc, vm_name=vm_name, **self.context(
                                path=path, guest_username=guest_username))
                    else:
                        continue
                if kind in (BUSY, NETWORK):
                    if budget is None:
                        budget = self.retry_budget(deadline)
                    if budget.wait():
                        if kind == NETWORK:
                            logged_in_again = False  # a restarted vCenter has forgotten the session again
                        continue
                    raise self._retries_spent(step, exc, kind, budget, vm_name, path, guest_username)
                raise step_error(step, exc, vm_name=vm_name, retryable=kind is not None,
                                 **self.context(path=path, guest_username=guest_username))

    def _retries_spent(self, step, exc, kind, budget, vm_name, path, guest_username):
        where = " for VM '%s'" % vm_name if vm_name else ''
        if kind == NETWORK:
            reason = ("vCenter/ESXi '%s:%s' is restarting or unreachable: connections were refused or dropped for "
                      "%d seconds (retry_timeout). Check that vCenter is up, then run the task again."
                      % (self.hostname, self.port, round(budget.spent())))
        else:
            reason = "%s It stayed so for %d seconds (retry_timeout)." % (
                describe_fault(exc, **self.context(path=path, guest_username=guest_username)), round(budget.spent()))
        return VSphereError('%s failed%s: %s' % (step, where, reason), fault=exc, step=step, retryable=True)

    def retrieve(self, step, object_specs, property_specs, vm_name=None):
        """RetrievePropertiesEx (with continuation) -> list of (obj, {path: value})."""
        pc = self.content.propertyCollector
        spec = vmodl.query.PropertyCollector.FilterSpec(objectSet=object_specs, propSet=property_specs)
        options = vmodl.query.PropertyCollector.RetrieveOptions()
        result = self.call(step, pc.RetrievePropertiesEx, vm_name=vm_name, specSet=[spec], options=options)
        found = []
        while result is not None:
            for obj in result.objects or []:
                found.append((obj.obj, dict((p.name, p.val) for p in (obj.propSet or []))))
            token = getattr(result, 'token', None)
            if not token:
                break
            result = self.call(step, pc.ContinueRetrievePropertiesEx, vm_name=vm_name, token=token)
        return found

    # ----------------------------------------------------------------- lookup
    def find_vm(self, name=None, datacenter=None, folder=None, uuid=None, use_instance_uuid=False, moid=None,
                known_name=None):
        """Find exactly one VM and read its facts. Raises VSphereError naming the candidates.

        A job's VM (``moid`` with ``known_name``) in a kept session is taken as it is, without a
        call: the job's steps need no facts, and a VM that went away meanwhile fails the guest
        operation with its own fault.
        """
        if sum(1 for v in (name, uuid, moid) if v) != 1:
            raise VSphereError('Finding the VM failed: give exactly one of name, uuid or moid.')
        path = None
        if moid and known_name and self._reattached and self._guest_managers is not None:
            return VirtualMachine(vim.VirtualMachine(moid, self.si._stub), {'name': known_name})
        if moid:
            ref = vim.VirtualMachine(moid, self.si._stub)
        elif uuid:
            ref = self._find_by_uuid(uuid, use_instance_uuid)
        else:
            inventory = self.inventory()
            entry = choose_vm(inventory, name, datacenter, folder, self.username)
            ref = entry.ref
            path = inventory.path(ref._moId)
        return self.vm_facts(ref, path=path, label=name or uuid or moid)

    def _find_by_uuid(self, uuid, instance_uuid):
        kind = 'instance uuid' if instance_uuid else 'BIOS uuid'
        refs = self.call('Finding the VM by %s' % kind, self.content.searchIndex.FindAllByUuid,
                         uuid=uuid, vmSearch=True, instanceUuid=bool(instance_uuid)) or []
        refs = [r for r in refs if isinstance(r, vim.VirtualMachine)]
        if not refs:
            raise VSphereError("Finding the VM failed: no VM with %s '%s' is visible to user '%s'."
                               % (kind, uuid, self.username))
        if len(refs) > 1:
            raise VSphereError("Finding the VM failed: %d VMs share the %s '%s' (%s). Select the VM by moid, "
                               "or by the instance uuid (use_instance_uuid=true)."
                               % (len(refs), kind, uuid, ', '.join(sorted(r._moId for r in refs))))
        return refs[0]

    def inventory(self):
        """Names and parents of every folder, datacenter and VM, in one property retrieval.

        The container view belongs to the session: when the session was lost and logged in
        again between creating and reading it, it is gone, and the lookup starts over once.
        """
        logins = self.logins
        try:
            return self._inventory()
        except VSphereError as err:
            if self.logins == logins or err.fault is None or not fault_is(err.fault, 'ManagedObjectNotFound'):
                raise
        return self._inventory()

    def _inventory(self):
        step = 'Finding the VM'
        view = self.call(step, self.content.viewManager.CreateContainerView,
                         container=self.content.rootFolder,
                         type=[vim.Folder, vim.Datacenter, vim.VirtualMachine], recursive=True)
        traversal = vmodl.query.PropertyCollector.TraversalSpec(
            name='view', type=vim.view.ContainerView, path='view', skip=False)
        object_spec = vmodl.query.PropertyCollector.ObjectSpec(obj=view, skip=True, selectSet=[traversal])
        prop_specs = [vmodl.query.PropertyCollector.PropertySpec(type=kind, pathSet=['name', 'parent'])
                      for kind in (vim.Folder, vim.Datacenter, vim.VirtualMachine)]
        # The view belongs to this session and goes away with the logout.
        entries = []
        for obj, props in self.retrieve(step, [object_spec], prop_specs):
            parent = props.get('parent')
            kind = 'VirtualMachine' if isinstance(obj, vim.VirtualMachine) else \
                'Datacenter' if isinstance(obj, vim.Datacenter) else 'Folder'
            entries.append(InventoryEntry(obj, props.get('name'), parent._moId if parent is not None else None, kind))
        return Inventory(entries, root_moid=self.content.rootFolder._moId)

    def vm_facts(self, ref, path=None, label=None):
        """Read the VM's identity and guest facts, plus the guest operation managers, in one call."""
        pc = vmodl.query.PropertyCollector
        object_specs = [pc.ObjectSpec(obj=ref, skip=False)]
        prop_specs = [pc.PropertySpec(type=vim.VirtualMachine, pathSet=list(VM_PROPERTIES))]
        gom = getattr(self.content, 'guestOperationsManager', None)
        if gom is not None and self._guest_managers is None:
            object_specs.append(pc.ObjectSpec(obj=gom, skip=False))
            prop_specs.append(pc.PropertySpec(type=vim.vm.guest.GuestOperationsManager,
                                              pathSet=list(GUEST_MANAGERS)))
        try:
            found = self.retrieve('Reading the VM', object_specs, prop_specs, vm_name=label)
        except VSphereError as err:
            if err.fault is not None and fault_is(err.fault, 'ManagedObjectNotFound'):
                raise VSphereError("Finding the VM failed: no VM with moid '%s' exists (or user '%s' cannot "
                                   "see it)." % (ref._moId, self.username), fault=err.fault)
            raise
        props = {}
        for obj, values in found:
            if isinstance(obj, vim.VirtualMachine):
                props = values
            else:
                self._guest_managers = dict((key, values.get(key)) for key in GUEST_MANAGERS)
        if not props:
            raise VSphereError("Finding the VM failed: no VM with moid '%s' exists (or user '%s' cannot see it)."
                               % (ref._moId, self.username))
        return VirtualMachine(ref, props, path=path)

    def refresh(self, vm):
        """Re-read a VM's facts (used while waiting for readiness)."""
        fresh = self.vm_facts(vm.ref, path=vm.path, label=vm.name)
        vm.props = fresh.props
        return vm

    def guest_managers(self):
        """{'fileManager', 'processManager', 'authManager'} of the guest operations manager."""
        if self._guest_managers is None:
            gom = getattr(self.content, 'guestOperationsManager', None)
            if gom is None:
                raise VSphereError('This vSphere endpoint offers no guest operations manager; guest operations '
                                   'need vCenter or ESXi 5.0 or later.')
            found = self.retrieve('Reading the guest operations manager', [
                vmodl.query.PropertyCollector.ObjectSpec(obj=gom, skip=False)], [
                vmodl.query.PropertyCollector.PropertySpec(type=vim.vm.guest.GuestOperationsManager,
                                                           pathSet=list(GUEST_MANAGERS))])
            values = found[0][1] if found else {}
            self._guest_managers = dict((key, values.get(key)) for key in GUEST_MANAGERS)
        return self._guest_managers

    def guest_manager(self, key):
        manager = self.guest_managers().get(key)
        if manager is None:
            raise VSphereError('This vSphere endpoint offers no guest %s.' % key)
        return manager


def end_sessions_after(hostname, port, validate_certs=True, request_timeout=DEFAULT_REQUEST_TIMEOUT, marker=None):
    """Log out the kept sessions that ended Ansible runs left on this vCenter.

    Run by the watcher process that the connection plugin starts for each run (detached, so it
    outlives a killed run), once that run has ended.
    """
    session = VSphereSession(hostname, None, None, port, validate_certs, request_timeout=request_timeout)
    try:
        socket.setdefaulttimeout(session.request_timeout)
        session._end_abandoned_sessions(dict(sslContext=session.ssl_context()))
    finally:
        if marker:
            _session_cache.forget(marker)


def _session_id(si):
    """The id of the session a ServiceInstance's connection carries (its vmware_soap_session cookie)."""
    cookie = getattr(si._stub, 'cookie', '') or ''
    morsel = SimpleCookie(cookie).get('vmware_soap_session')
    if morsel is None:
        raise ValueError('no session cookie')
    return morsel.value


class _KeptContent(object):
    """The references of ServiceContent that the collection uses, rebuilt from a kept session."""

    NAMES = ('propertyCollector', 'sessionManager', 'viewManager', 'searchIndex', 'rootFolder',
             'guestOperationsManager')

    def __init__(self, stub, refs):
        for name in self.NAMES:
            kind, moid = refs.get(name, (None, None))
            setattr(self, name, _managed_object(kind, moid, stub) if moid else None)


def _managed_object(kind, moid, stub):
    klass = {
        'PropertyCollector': vmodl.query.PropertyCollector, 'SessionManager': vim.SessionManager,
        'ViewManager': vim.view.ViewManager, 'SearchIndex': vim.SearchIndex, 'Folder': vim.Folder,
        'GuestOperationsManager': vim.vm.guest.GuestOperationsManager,
        'FileManager': vim.vm.guest.FileManager, 'ProcessManager': vim.vm.guest.ProcessManager,
        'AuthManager': vim.vm.guest.AuthManager,
    }.get(kind.split('.')[-1])
    return klass(moid, stub) if klass is not None else None
