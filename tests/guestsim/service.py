"""The managed objects and the SOAP method dispatcher (everything behind ``POST /sdk``)."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
import uuid
from collections import Counter
from datetime import datetime, timezone

from pyVmomi import vim, vmodl

from . import faults, soap
from .collector import ContainerView, PropertyCollector, top_property
from .faultrules import FaultRules
from .guest import POLL_SECONDS as EXIT_POLL_INTERVAL, VIX_MAX_USER_INPUT, GuestSystem, start_request_size
from .inventory import ESXI_ABOUT, Inventory, VirtualMachine
from .search import SearchIndex
from .windows import WindowsGuestSystem, WindowsTools
from .sessions import SessionStore, cookie_from_header
from .transfers import TransferStore

LOG = logging.getLogger(__name__)

DEFAULT_USERS = {'user': 'simpass'}
DEFAULT_RETENTION = 300.0

ABOUT = dict(
    name='VMware vCenter Server',
    fullName='VMware vCenter Server 8.0.3 build-24022515',
    vendor='VMware, Inc.',
    version='8.0.3',
    build='24022515',
    localeVersion='INTL',
    localeBuild='000',
    osType='linux-x64',
    productLineId='vpx',
    apiType='VirtualCenter',
    apiVersion='8.0.3.0',
    licenseProductName='VMware VirtualCenter Server',
    licenseProductVersion='8.0',
)


def _summary(result) -> str:
    """A result for the log without its content: numbers and booleans, else the type (and length)."""
    if result is None:
        return 'ok'
    if isinstance(result, bool) or isinstance(result, int):
        return 'ok %r' % result
    if isinstance(result, list):
        return 'ok %d item(s)' % len(result)
    return 'ok %s' % type(result).__name__.rsplit('.', 1)[-1]


class Singleton:
    """A service object with a fixed moid and a property callback."""

    def __init__(self, vim_type, moid, props=None):
        self.vim_type = vim_type
        self.moid = moid
        self._props = props or (lambda: {})

    def ref(self):
        return self.vim_type(self.moid)

    def properties(self):
        return self._props()


class Call:
    """The context of one SOAP call."""

    def __init__(self, session, version, method):
        self.session = session
        self.version = version
        self.method = method
        self.decision = None


class Service:
    """The simulated vCenter: inventory, sessions, property collector, guest operations."""

    def __init__(self, state_dir: str, inventory: Inventory, users=None, retention: float = DEFAULT_RETENTION,
                 transfer_ttl: float | None = None, session_timeout: float | None = None,
                 allow_noexec_mount: bool = True, exclusive_guest_ops: bool = False,
                 exit_poll_interval: float = EXIT_POLL_INTERVAL, windows_init: str = 'lazy'):
        self.state_dir = os.path.abspath(state_dir)
        self.inventory = inventory
        self.port = 0
        session_options = {'idle_timeout': session_timeout} if session_timeout else {}
        self.sessions = SessionStore(users or DEFAULT_USERS, **session_options)
        self.transfers = TransferStore(**({'ttl': transfer_ttl} if transfer_ttl else {}))
        self.rules = FaultRules()
        self.calls: Counter = Counter()
        # Agent replies hostd needed per method (ListFilesInGuest: a large listing takes several).
        self.tools_replies: Counter = Counter()
        self.lock = threading.Lock()
        self.instance_uuid = str(uuid.uuid5(uuid.NAMESPACE_URL, 'guestsim:' + self.state_dir))
        self.views: dict[str, ContainerView] = {}
        self.temp_paths: list[dict] = []
        self.collector = PropertyCollector(self)
        self.search = SearchIndex(inventory)
        self.guests: dict[str, GuestSystem] = {}
        # Wine and the Windows programs built with mingw-w64, shared by the Windows VMs.
        self.windows_tools = WindowsTools(os.path.join(self.state_dir, 'windows-bin'))
        for vm in inventory.vms():
            root = os.path.join(self.state_dir, 'vms', vm.moid)
            if vm.guest_os == 'windows':
                self.guests[vm.moid] = WindowsGuestSystem(vm, root, retention, self.windows_tools, exit_poll_interval)
            else:
                self.guests[vm.moid] = GuestSystem(vm, root, retention, allow_noexec_mount, exit_poll_interval)
        if windows_init not in ('lazy', 'background'):
            raise ValueError('windows_init is lazy or background')
        self.windows_init = windows_init
        self.singletons = {}
        for obj in (
            Singleton(vim.ServiceInstance, 'ServiceInstance', lambda: {
                'content': self.content(), 'serverClock': datetime.now(timezone.utc)}),
            Singleton(vim.SessionManager, 'SessionManager', self._session_manager_props),
            Singleton(vmodl.query.PropertyCollector, 'propertyCollector'),
            Singleton(vim.view.ViewManager, 'ViewManager', lambda: {
                'viewList': [v.ref() for v in self.views.values()]}),
            Singleton(vim.SearchIndex, 'SearchIndex'),
            Singleton(vim.CustomFieldsManager, 'CustomFieldsManager', lambda: {'field': []}),
            Singleton(vim.vm.guest.GuestOperationsManager, 'guestOperationsManager', lambda: {
                'authManager': vim.vm.guest.AuthManager('guestOperationsAuthManager'),
                'fileManager': vim.vm.guest.FileManager('guestOperationsFileManager'),
                'processManager': vim.vm.guest.ProcessManager('guestOperationsProcessManager')}),
            Singleton(vim.vm.guest.AuthManager, 'guestOperationsAuthManager'),
            Singleton(vim.vm.guest.FileManager, 'guestOperationsFileManager'),
            Singleton(vim.vm.guest.ProcessManager, 'guestOperationsProcessManager'),
        ):
            self.singletons[obj.moid] = obj
        self._session_local = threading.local()
        self.handlers = self._handlers()
        # Run-time options (POST /guestsim/options); reset() restores the start-up values.
        self.default_options = {'exclusive_guest_ops': bool(exclusive_guest_ops)}
        self.options = dict(self.default_options)
        # Guest operations in flight per VM moid (for exclusive_guest_ops).
        self.in_flight: Counter = Counter()
        # Replaced by the Simulator with the state of its listener (vCenter restarts).
        self.vcenter_status = lambda: {'available': True, 'restart_seconds_left': 0.0}
        # Replaced by the Simulator with its view of a host (address, port, certificates).
        self.host_state = lambda host: {'name': host.name, 'address': host.address}

    # --- object registry ---------------------------------------------------------------------
    def resolve(self, ref):
        """The provider (entity, singleton or view) behind a MoRef, or None."""
        moid = ref._moId  # pylint: disable=protected-access
        provider = self.singletons.get(moid)
        if provider is None:
            provider = self.views.get(moid)
        if provider is None:
            return self.inventory.get(ref)
        if not isinstance(provider.ref(), type(ref)):
            return None
        return provider

    def content(self):
        return vim.ServiceInstanceContent(
            rootFolder=self.inventory.root.ref(),
            propertyCollector=vmodl.query.PropertyCollector('propertyCollector'),
            viewManager=vim.view.ViewManager('ViewManager'),
            about=self._about(),
            sessionManager=vim.SessionManager('SessionManager'),
            searchIndex=vim.SearchIndex('SearchIndex'),
            customFieldsManager=vim.CustomFieldsManager('CustomFieldsManager'),
            guestOperationsManager=vim.vm.guest.GuestOperationsManager('guestOperationsManager'),
        )

    def _about(self):
        """vCenter's AboutInfo, or the host's (apiType HostAgent) for a client connected to it directly."""
        if getattr(self._session_local, 'esxi_host', None) is not None:
            return vim.AboutInfo(**ESXI_ABOUT)
        return vim.AboutInfo(instanceUuid=self.instance_uuid, **ABOUT)

    def _session_manager_props(self):
        session = getattr(self._session_local, 'session', None)
        props = {
            'defaultLocale': 'en',
            'supportedLocaleList': ['en'],
            'messageLocaleList': ['en'],
            'currentSession': session.user_session() if session is not None and session.user else None,
        }
        if session is not None and session.user:
            props['sessionList'] = [s.user_session() for s in self.sessions.authenticated()]
        return props

    # --- dispatch --------------------------------------------------------------------------------
    def handle_soap(self, body: bytes, soap_action: str | None, cookie: str | None, client_ip: str = '',
                    user_agent: str = '', esxi_host=None):
        """Run one SOAP call: returns (HTTP status, response body, cookie to set or None).

        ``esxi_host``: the call came to that host's own address (a client connected to ESXi directly)."""
        version = soap.version_from_soap_action(soap_action)
        session = self.sessions.lookup(cookie_from_header(cookie))
        new_cookie = None
        if session is None:
            session = self.sessions.new(client_ip, user_agent)
            new_cookie = session.cookie
        try:
            request = soap.parse_request(body, version)
        except soap.RequestError as exc:
            return 500, soap.serialize_fault(faults.invalid_request(str(exc)), version), new_cookie
        name = request.method.wsdl_name
        with self.lock:
            self.calls[name] += 1
        if session.user:
            session.call_count += 1
        self._session_local.session = session
        self._session_local.esxi_host = esxi_host
        started = time.monotonic()
        user = session.user
        try:
            result = self._invoke(Call(session, version, request.method), request)
            if name == 'Fetch':
                result, result_type, flags = result
            else:
                result_type, flags = request.method.result, request.method.result_flags
            body = soap.serialize_response(name, result, result_type, flags, version)
            self._log_call(name, request, user, started, _summary(result))
            return 200, body, new_cookie
        except vmodl.MethodFault as fault:
            self._log_call(name, request, user, started, 'fault %s: %s' % (fault._wsdlName, fault.msg or ''))  # pylint: disable=protected-access
            return 500, soap.serialize_fault(fault, version), new_cookie
        except Exception as exc:  # pylint: disable=broad-exception-caught
            # Anything unexpected becomes a SystemError, as vCenter reports internal failures.
            LOG.exception('internal error in %s', name)
            self._log_call(name, request, user, started, 'fault SystemError (internal)')
            return 500, soap.serialize_fault(faults.system_error(str(exc)), version), new_cookie
        finally:
            self._session_local.session = None
            self._session_local.esxi_host = None

    def _log_call(self, name: str, request, user, started: float, outcome: str):
        """One line per SOAP call at INFO (``-v``): method, target, VM, guest user, outcome. Never
        passwords, session keys, cookies or transfer URLs (their tokens): results are summarised by type."""
        if not LOG.isEnabledFor(logging.INFO):
            return
        parts = ['soap %s' % name]
        this = request.this
        parts.append('on %s:%s' % (type(this).__name__.rsplit('.', 1)[-1], this._moId))  # pylint: disable=protected-access
        if name == 'Fetch':
            parts.append('prop=%s' % request.args.get('prop'))
        vm_ref = request.args.get('vm')
        if vm_ref is not None:
            entity = self.inventory.get(vm_ref)
            parts.append('vm=%s' % (entity.name if entity is not None else vm_ref._moId))  # pylint: disable=protected-access
        auth = request.args.get('auth')
        if auth is not None and getattr(auth, 'username', None):
            parts.append('guest_user=%s' % auth.username)
        if name == 'Login':
            parts.append('login_user=%s' % request.args.get('userName'))
        parts.append('session_user=%s' % (user or '-'))
        LOG.info('%s -> %s (%.0f ms)', ' '.join(parts), outcome, (time.monotonic() - started) * 1000)

    ANONYMOUS = {'RetrieveServiceContent', 'Login'}
    # Properties readable without a session (privilege System.Anonymous in the API reference); the
    # others, such as ServiceInstance.serverClock or SessionManager.sessionList, need a login.
    ANONYMOUS_PROPERTIES = {
        'ServiceInstance': {'content', 'capability'},
        'SessionManager': {'currentSession', 'defaultLocale', 'messageLocaleList', 'supportedLocaleList'},
    }

    def _invoke(self, call: Call, request: soap.SoapRequest):
        this = request.this
        name = request.method.wsdl_name
        provider = self.resolve(this)
        anonymous_fetch = name == 'Fetch' and request.args.get('prop') in self.ANONYMOUS_PROPERTIES.get(
            this._moId, ())  # pylint: disable=protected-access
        if provider is None:
            if not call.session.user and name not in self.ANONYMOUS:
                raise faults.not_authenticated(this)
            raise faults.managed_object_not_found(this)
        if name not in self.ANONYMOUS and not anonymous_fetch and not call.session.user:
            raise faults.not_authenticated(this)
        declaring = request.method.declaring_type
        if declaring is not None and not isinstance(this, declaring):
            raise faults.method_not_found(this, name)
        handler = self.handlers.get(name)
        if handler is None:
            raise faults.method_not_found(this, name)
        vm_ref = request.args.get('vm')
        vm_name = None
        if vm_ref is not None:
            entity = self.inventory.get(vm_ref)
            vm_name = entity.name if entity is not None else None
        decision = self.rules.decide(name, vm_name)
        guest_op = 'vm' in request.args and 'auth' in request.args
        with self._guest_slot(request.args.get('vm') if guest_op else None):
            FaultRules.wait(decision)
            if decision.fault is not None:
                if guest_op:
                    # An injected fault stands for what the guest operation answers, so vSphere's own checks
                    # (VM exists, power state, agent, credentials: reference 2.8) still come first.
                    self._guest(request.args['vm'], request.args['auth'])
                if isinstance(decision.fault, vim.fault.NotAuthenticated):
                    # A NotAuthenticated answer means the session is gone on the server, as after a
                    # real session loss: the cookie stays invalid until the client logs in again.
                    self.end_session(call.session)
                raise decision.fault  # pylint: disable=raising-non-exception
            call.decision = decision
            return handler(call, provider, this, **request.args)

    @contextlib.contextmanager
    def _guest_slot(self, vm_ref):
        """With exclusive_guest_ops, a second guest operation on a VM while one is in flight is
        InvalidState: "Only one guest operation is allowed at a time per virtual machine"
        (GuestOperationsManager doc); community.vmware#963/#917 and govmomi#2193 show InvalidState
        under parallel use. The check follows the VM lookup only ([inferred] the VMX serializes
        guest operations before the agent or the credentials are consulted)."""
        vm = self.inventory.get(vm_ref) if vm_ref is not None else None
        if not isinstance(vm, VirtualMachine):
            yield
            return
        with self.lock:
            if self.options['exclusive_guest_ops'] and self.in_flight[vm.moid]:
                raise faults.invalid_state()
            self.in_flight[vm.moid] += 1
        try:
            yield
        finally:
            with self.lock:
                self.in_flight[vm.moid] -= 1
                if self.in_flight[vm.moid] <= 0:
                    del self.in_flight[vm.moid]

    def _handlers(self):
        return {
            'Fetch': self.fetch,
            'RetrieveServiceContent': lambda call, provider, this: self.content(),
            'CurrentTime': lambda call, provider, this: datetime.now(timezone.utc),
            'Login': self.login,
            'Logout': self.logout,
            'SessionIsActive': lambda call, provider, this, sessionID, userName: self.sessions.is_active(
                sessionID, userName),
            'RetrieveProperties': lambda call, provider, this, specSet: self.collector.retrieve(specSet),
            'RetrievePropertiesEx': lambda call, provider, this, specSet, options=None: self.collector.retrieve_ex(
                call.session, specSet, options),
            'ContinueRetrievePropertiesEx': lambda call, provider, this, token: self.collector.continue_ex(
                call.session, token),
            'CancelRetrievePropertiesEx': lambda call, provider, this, token: self.collector.cancel_ex(
                call.session, token),
            'CreateContainerView': self.create_container_view,
            'DestroyView': self.destroy_view,
            'FindByUuid': lambda call, provider, this, uuid, vmSearch, datacenter=None, instanceUuid=None:
                self.search.find_by_uuid(datacenter, uuid, vmSearch, instanceUuid),
            'FindAllByUuid': lambda call, provider, this, uuid, vmSearch, datacenter=None, instanceUuid=None:
                self.search.find_all_by_uuid(datacenter, uuid, vmSearch, instanceUuid),
            'FindByInventoryPath': lambda call, provider, this, inventoryPath:
                self.search.find_by_inventory_path(inventoryPath),
            'FindChild': self.find_child,
            'FindByIp': lambda call, provider, this, ip, vmSearch, datacenter=None:
                self.search.find_by_ip(datacenter, ip, vmSearch),
            'FindByDnsName': lambda call, provider, this, dnsName, vmSearch, datacenter=None:
                self.search.find_by_dns_name(datacenter, dnsName, vmSearch),
            'ValidateCredentialsInGuest': self.validate_credentials,
            'CreateTemporaryFileInGuest': self.create_temporary_file,
            'CreateTemporaryDirectoryInGuest': self.create_temporary_directory,
            'MakeDirectoryInGuest': self.make_directory,
            'DeleteFileInGuest': self.delete_file,
            'DeleteDirectoryInGuest': self.delete_directory,
            'MoveFileInGuest': self.move_file,
            'MoveDirectoryInGuest': self.move_directory,
            'ChangeFileAttributesInGuest': self.change_file_attributes,
            'ListFilesInGuest': self.list_files,
            'InitiateFileTransferToGuest': self.initiate_to_guest,
            'InitiateFileTransferFromGuest': self.initiate_from_guest,
            'StartProgramInGuest': self.start_program,
            'ListProcessesInGuest': self.list_processes,
            'TerminateProcessInGuest': self.terminate_process,
            'ReadEnvironmentVariableInGuest': self.read_environment,
        }

    # --- ServiceInstance, sessions, property access ---------------------------------------------
    @staticmethod
    def fetch(call, provider, this, prop):
        del call
        value, prop_type = top_property(provider, this, prop)
        if isinstance(value, list) and not value:
            value = None
        # Every property is sent as optional: an unset value is simply an empty response.
        return value, prop_type, 4

    def login(self, call, provider, this, userName, password, locale=None):
        del provider, this, locale
        if not self.sessions.check_password(userName, password):
            raise faults.invalid_login()
        self.sessions.login(call.session, userName)
        return call.session.user_session()

    def logout(self, call, provider, this):
        del provider, this
        self._drop_views(call.session)
        self.sessions.logout(call.session)

    def _drop_views(self, session):
        for moid in list(session.views):
            self.views.pop(moid, None)
        session.views.clear()

    def end_session(self, session):
        """The server forgets the session (its cookie is unknown from now on)."""
        self._drop_views(session)
        self.sessions.remove(session)

    def drop_all_sessions(self) -> int:
        """A vCenter restart: every session, its views and its property-collector tokens end.
        Returns the number of logged-in sessions that were dropped."""
        removed = self.sessions.remove_all()
        for session in removed:
            self._drop_views(session)
        return sum(1 for s in removed if s.user)

    # --- views and search ------------------------------------------------------------------------
    def create_container_view(self, call, provider, this, container, recursive, type=None):  # pylint: disable=redefined-builtin
        del provider, this
        entity = self.inventory.get(container)
        if entity is None:
            raise faults.managed_object_not_found(container)
        view = ContainerView(call.session.cookie, entity, type, recursive)
        self.views[view.moid] = view
        call.session.views.add(view.moid)
        return view.ref()

    def destroy_view(self, call, provider, this):
        del provider
        moid = this._moId  # pylint: disable=protected-access
        self.views.pop(moid, None)
        call.session.views.discard(moid)

    def find_child(self, call, provider, this, entity, name):
        del call, provider, this
        found = self.inventory.get(entity)
        if found is None:
            raise faults.managed_object_not_found(entity)
        return self.search.find_child(found, name)

    # --- guest operations: the common checks --------------------------------------------------
    def _guest(self, vm_ref, auth):
        """Checks in vSphere's order: VM exists -> powered on -> agent ready -> guest credentials."""
        vm = self.inventory.get(vm_ref) if vm_ref is not None else None
        if not isinstance(vm, VirtualMachine):
            raise faults.managed_object_not_found(vm_ref)
        if vm.power_state != 'poweredOn':
            raise faults.invalid_power_state(vm.power_state)
        if not vm.agent_ready():
            raise faults.guest_operations_unavailable()
        if not isinstance(auth, vim.vm.guest.NamePasswordAuthentication):
            raise faults.invalid_guest_login()
        expected = vm.users.get(auth.username or '')
        if expected is None or expected != (auth.password or ''):
            raise faults.invalid_guest_login()
        if auth.interactiveSession:
            # No desktop session is ever logged in (interactiveGuestOperationsReady is false).
            raise faults.guest_operations_unavailable()
        return vm, self.guests[vm.moid], auth.username

    def validate_credentials(self, call, provider, this, vm, auth):
        del call, provider, this
        self._guest(vm, auth)

    def _record_temp(self, vm, path, kind):
        with self.lock:
            self.temp_paths.append({'vm': vm.name, 'moid': vm.moid, 'path': path, 'type': kind})

    def create_temporary_file(self, call, provider, this, vm, auth, prefix, suffix, directoryPath=None):
        del call, provider, this
        machine, guest, user = self._guest(vm, auth)
        path = guest.create_temporary(user, prefix, suffix, directoryPath, directory=False)
        self._record_temp(machine, path, 'file')
        return path

    def create_temporary_directory(self, call, provider, this, vm, auth, prefix, suffix, directoryPath=None):
        del call, provider, this
        machine, guest, user = self._guest(vm, auth)
        path = guest.create_temporary(user, prefix, suffix, directoryPath, directory=True)
        self._record_temp(machine, path, 'directory')
        return path

    def make_directory(self, call, provider, this, vm, auth, directoryPath, createParentDirectories):
        del call, provider, this
        _machine, guest, _user = self._guest(vm, auth)
        guest.make_directory(directoryPath, createParentDirectories)

    def delete_file(self, call, provider, this, vm, auth, filePath):
        del call, provider, this
        _machine, guest, _user = self._guest(vm, auth)
        guest.delete_file(filePath)

    def delete_directory(self, call, provider, this, vm, auth, directoryPath, recursive):
        del call, provider, this
        _machine, guest, _user = self._guest(vm, auth)
        guest.delete_directory(directoryPath, recursive)

    def move_file(self, call, provider, this, vm, auth, srcFilePath, dstFilePath, overwrite):
        del call, provider, this
        _machine, guest, _user = self._guest(vm, auth)
        guest.move_file(srcFilePath, dstFilePath, overwrite)

    def move_directory(self, call, provider, this, vm, auth, srcDirectoryPath, dstDirectoryPath):
        del call, provider, this
        _machine, guest, _user = self._guest(vm, auth)
        guest.move_directory(srcDirectoryPath, dstDirectoryPath)

    def change_file_attributes(self, call, provider, this, vm, auth, guestFilePath, fileAttributes):
        del call, provider, this
        _machine, guest, _user = self._guest(vm, auth)
        guest.change_attributes(guestFilePath, fileAttributes)

    def list_files(self, call, provider, this, vm, auth, filePath, index=None, maxResults=None, matchPattern=None):
        del call, provider, this
        _machine, guest, _user = self._guest(vm, auth)
        listing, replies = guest.list_files(filePath, index, maxResults, matchPattern)
        with self.lock:
            self.tools_replies['ListFilesInGuest'] += replies
        return listing

    def _issue(self, machine, **fields):
        """A transfer ticket for the VM's host, and its URL as the endpoint called hands it out.

        Through vCenter the URL names the VM's host by its inventory name (HostSystem.name), which the
        client must resolve or replace; called on the host itself, the host is ``*``, "the server you
        called" (govmomi ``guest/file_manager.go`` TransferURL: "return a URL with the host set to "*"
        when connected directly to ESX, but return the address of VM's runtime host when connected to
        vCenter"; FileTransferInformation.url). The URL works only at that host's address."""
        direct = getattr(self._session_local, 'esxi_host', None)
        host = direct if direct is not None else machine.host
        ticket = self.transfers.issue(vm=machine, listener=host, **fields)
        name = '*' if direct is not None else host.name
        return 'https://%s:%d/guestFile?id=%d&token=%s' % (name, host.port, ticket.id, ticket.token)

    def initiate_to_guest(self, call, provider, this, vm, auth, guestFilePath, fileAttributes, fileSize, overwrite):
        del provider, this
        machine, guest, _user = self._guest(vm, auth)
        path = guest.check_upload_target(guestFilePath, fileAttributes, overwrite)
        if fileSize is None or fileSize < 0:
            raise faults.invalid_argument('fileSize')
        return self._issue(machine, direction='to', guest=guest, path=path, guest_path=guestFilePath, size=fileSize,
                           attributes=fileAttributes, overwrite=overwrite,
                           break_after=call.decision.break_transfer_after)

    def initiate_from_guest(self, call, provider, this, vm, auth, guestFilePath):
        del provider, this
        machine, guest, _user = self._guest(vm, auth)
        path, attributes, size = guest.check_download_source(guestFilePath)
        url = self._issue(machine, direction='from', guest=guest, path=path, guest_path=guestFilePath, size=size,
                          break_after=call.decision.break_transfer_after)
        return vim.vm.guest.FileManager.FileTransferInformation(attributes=attributes, size=size, url=url)

    def start_program(self, call, provider, this, vm, auth, spec):
        del call, provider, this
        _machine, guest, user = self._guest(vm, auth)
        size = start_request_size(spec)
        if size > VIX_MAX_USER_INPUT:
            # foundryMsg.c VixMsg_AllocUserRequestMsg: VIX_E_ARGUMENT_TOO_BIG. Which vim fault hostd
            # makes of it is not documented; InvalidArgument is the documented fault of a bad spec (README).
            raise faults.invalid_argument('spec')
        return guest.start_program(user, spec)

    def list_processes(self, call, provider, this, vm, auth, pids=None):
        del call, provider, this
        _machine, guest, user = self._guest(vm, auth)
        return guest.list_processes(user, pids)

    def terminate_process(self, call, provider, this, vm, auth, pid):
        del call, provider, this
        _machine, guest, _user = self._guest(vm, auth)
        guest.terminate(pid)

    def read_environment(self, call, provider, this, vm, auth, names=None):
        del call, provider, this
        _machine, guest, user = self._guest(vm, auth)
        env = guest.environment(user)
        keys = list(names) if names else sorted(env)
        return ['%s=%s' % (k, env[k]) for k in keys if k in env]

    # --- test control ----------------------------------------------------------------------------
    def vms_named(self, name: str) -> list:
        return [vm for vm in self.inventory.vms() if name in (vm.name, vm.moid)]

    def power(self, name: str, on: bool) -> list:
        machines = self.vms_named(name)
        for vm in machines:
            if on:
                vm.power_on()
            else:
                self.transfers.invalidate_vm(vm)
                self.guests[vm.moid].power_off()
                vm.power_off()
        return machines

    def restart_tools(self, name: str, seconds: float, end_programs: bool = False) -> list:
        """POST /guestsim/vms/<name>/tools-restart: returns [(vm, records dropped)]; ValueError when a
        VM's Tools are not running (powered off, not installed, not started). During a restart, another
        one starts the count again (0 seconds: Tools are back at once)."""
        machines = self.vms_named(name)
        for vm in machines:
            if not vm.tools_running() and not vm.tools_restarting():
                raise ValueError('VMware Tools of %s are not running' % vm.name)
        result = []
        for vm in machines:
            guest = self.guests[vm.moid]
            dropped = len(guest.running_processes())
            guest.restart_tools(end_programs)
            vm.restart_tools(seconds)
            result.append((vm, dropped))
        return result

    def reset(self):
        with self.lock:
            self.calls.clear()
            self.tools_replies.clear()
            self.options = dict(self.default_options)
        self.rules.clear()

    def set_options(self, data: dict):
        """POST /guestsim/options: change run-time options (unknown keys or bad values: ValueError)."""
        unknown = set(data) - set(self.default_options)
        if unknown:
            raise ValueError('unknown options: %s; known: %s' % (', '.join(sorted(unknown)),
                                                                 ', '.join(sorted(self.default_options))))
        for key, value in data.items():
            if not isinstance(value, bool):
                raise ValueError('%s is true or false' % key)
        with self.lock:
            self.options.update(data)

    def options_snapshot(self) -> dict:
        with self.lock:
            return dict(self.options)

    def state(self) -> dict:
        """The read-only test view; never passwords, session keys or transfer tokens."""
        self.sessions.expire()
        with self.lock:
            self.temp_paths = [t for t in self.temp_paths if os.path.lexists(t['path'])]
            temp_paths = [dict(t) for t in self.temp_paths]
            calls = dict(self.calls)
            tools_replies = dict(self.tools_replies)
            in_flight = dict(self.in_flight)
        processes = []
        for moid, guest in self.guests.items():
            guest.expire()
            for process in guest.running_processes():
                entry = {'vm': guest.vm.name, 'moid': moid, 'pid': process.pid,
                         'running': not process.exited.is_set(), 'cmdLine': process.cmd_line}
                if process.exited.is_set():
                    entry['exitCode'] = process.exit_code
                    entry['endTime'] = process.end_time.isoformat()
                processes.append(entry)
            for process in guest.unrecorded_programs():
                # Still running, but the agent lost its record in a Tools restart.
                processes.append({'vm': guest.vm.name, 'moid': moid, 'pid': process.pid, 'running': True,
                                  'cmdLine': process.cmd_line, 'record': False})
        return {
            'sessions': self.sessions.snapshot(),
            'calls': calls,
            'tools_replies': tools_replies,
            'temp_paths': temp_paths,
            'processes': processes,
            'transfers': {'pending': self.transfers.pending()},
            'fault_rules': self.rules.snapshot(),
            'options': self.options_snapshot(),
            'vcenter': self.vcenter_status(),
            'hosts': [self.host_state(h) for h in self.inventory.hosts()],
            'vms': [{'name': vm.name, 'moid': vm.moid, 'host': vm.host.name, 'power_state': vm.power_state,
                     'tools_running': vm.tools_running(), 'guest_operations_ready': vm.agent_ready(),
                     'tools_restarting': vm.tools_restarting(),
                     'noexec_mount': self.guests[vm.moid].noexec_mounted,
                     'noexec_emulated': self.guests[vm.moid].noexec_emulated,
                     'guest_ops_in_flight': in_flight.get(vm.moid, 0),
                     'guest_os': vm.guest_os,
                     **self._windows_state(vm)}
                    for vm in self.inventory.vms()],
        }

    def windows_guests(self) -> list:
        return [g for g in self.guests.values() if isinstance(g, WindowsGuestSystem)]

    def start_background_work(self):
        """With windows_init='background', every Windows VM's Wine prefix is prepared now, in threads."""
        if self.windows_init == 'background':
            for guest in self.windows_guests():
                guest.prepare_in_background()

    def _windows_state(self, vm) -> dict:
        guest = self.guests[vm.moid]
        if not isinstance(guest, WindowsGuestSystem):
            return {}
        return {'wine_prefix': guest.prefix, 'wine_ready': guest.ready(), 'wine_init_seconds': guest.init_seconds}

    def shutdown(self):
        for guest in self.guests.values():
            guest.shutdown()
