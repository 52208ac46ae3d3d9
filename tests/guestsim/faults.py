"""vSphere faults with the messages vCenter puts in ``faultstring``.

Messages marked "observed" in the reference are copied from real systems; the others follow the
wording of the vSphere fault catalogue as closely as known and are listed in the README.
"""

from __future__ import annotations

import functools

from pyVmomi import VmomiSupport, vim, vmodl

POWER_STATE_LABELS = {
    'poweredOff': 'Powered off',
    'poweredOn': 'Powered on',
    'suspended': 'Suspended',
}


def not_authenticated(obj=None):
    return vim.fault.NotAuthenticated(msg='The session is not authenticated.', object=obj,
                                      privilegeId='System.View')


def invalid_login():
    return vim.fault.InvalidLogin(msg='Cannot complete login due to an incorrect user name or password.')


def managed_object_not_found(obj):
    return vmodl.fault.ManagedObjectNotFound(
        msg="The object '%s:%s' has already been deleted or has not been completely created"
        % (type(obj).__name__, obj._moId),  # pylint: disable=protected-access
        obj=obj)


def method_not_found(obj, method_name):
    return vmodl.fault.MethodNotFound(
        msg='The method is disabled or not implemented: %s' % method_name, receiver=obj, method=method_name)


def invalid_request(reason):
    return vmodl.fault.InvalidRequest(msg='The request refers to an unexpected or unknown type: %s' % reason)


def invalid_argument(prop=None):
    """InvalidArgument. Checks made by the guest agent (VIX_E_INVALID_ARG: bad matchPattern, symlink,
    Windows attributes on Linux) name no property: hostd cannot know which one, and the observed text is
    "A specified parameter was not correct: " with nothing after it (reference 2.6, govmomi#2689)."""
    return vmodl.fault.InvalidArgument(msg='A specified parameter was not correct: %s' % (prop or ''),
                                       invalidProperty=prop)


def invalid_property(name):
    return vmodl.query.InvalidProperty(msg='', name=name)


def system_error(reason):
    return vmodl.fault.SystemError(msg='A general system error occurred: %s' % reason, reason=reason)


def invalid_power_state(existing):
    label = POWER_STATE_LABELS.get(existing, existing)
    return vim.fault.InvalidPowerState(
        msg='The attempted operation cannot be performed in the current state (%s).' % label,
        requestedState='poweredOn', existingState=existing)


def guest_operations_unavailable():
    return vim.fault.GuestOperationsUnavailable(msg='The guest operations agent could not be contacted.')


def invalid_guest_login():
    return vim.fault.InvalidGuestLogin(
        msg='Failed to authenticate with the guest operating system using the supplied credentials.')


def guest_permission_denied():
    return vim.fault.GuestPermissionDenied(
        msg='The guest authentication being used does not have sufficient permissions to perform the operation.')


def file_not_found(path):
    # Observed texts: "File ls was not found", and "File <unspecified filename> was not found" when no
    # name is known (reference 2.1 and 2.8); ``file`` is a required string, so it stays empty then.
    return vim.fault.FileNotFound(msg='File %s was not found' % (path or '<unspecified filename>'), file=path or '')


def file_already_exists(path):
    return vim.fault.FileAlreadyExists(
        msg='Cannot complete the operation because the file or folder %s already exists' % path, file=path)


def not_a_file(path):
    return vim.fault.NotAFile(msg='%s is not a file' % path,
                              file=path)


def not_a_directory(path):
    return vim.fault.NotADirectory(msg='%s is not a directory' % path, file=path)


def directory_not_empty(path):
    return vim.fault.DirectoryNotEmpty(msg='Directory %s is not empty' % path, file=path)


def cannot_access_file(path):
    return vim.fault.CannotAccessFile(msg='Unable to access file %s' % path, file=path)


def file_name_too_long(path):
    return vim.fault.FileNameTooLong(msg='File name %s is too long' % path, file=path)


def no_disk_space(path):
    return vim.fault.NoDiskSpace(msg='There is not enough space on the file system for the selected operation',
                                 datastore=path)


def guest_process_not_found(pid):
    return vim.fault.GuestProcessNotFound(msg='The guest process with pid %d was not found' % pid, pid=pid)


def operation_not_supported_by_guest():
    return vim.fault.OperationNotSupportedByGuest(msg='The operation is not supported by the guest operating system.')


def operation_disabled_by_guest():
    return vim.fault.OperationDisabledByGuest(
        msg='The operation is not enabled due to the guest agent configuration.')


def guest_components_out_of_date():
    return vim.fault.GuestComponentsOutOfDate(msg='The guest agent is too old to perform the operation.')


def task_in_progress():
    return vim.fault.TaskInProgress(msg='The virtual machine is busy.')


def invalid_state():
    # The text seen under parallel guest operations (community.vmware#963, #917).
    return vim.fault.InvalidState(msg='The operation is not allowed in the current state.')


# Faults that the fault-injection endpoint can raise by name.
INJECTABLE = {
    'GuestOperationsUnavailable': guest_operations_unavailable,
    'InvalidGuestLogin': invalid_guest_login,
    'GuestPermissionDenied': guest_permission_denied,
    'GuestComponentsOutOfDate': guest_components_out_of_date,
    'OperationNotSupportedByGuest': operation_not_supported_by_guest,
    'OperationDisabledByGuest': operation_disabled_by_guest,
    'TaskInProgress': task_in_progress,
    # Declared by every guest method (pyVmomi's type info: GuestOperationsFault, InvalidState,
    # TaskInProgress[, FileFault]); may_raise() keeps it away from methods that do not declare it.
    'InvalidState': invalid_state,
    'InvalidPowerState': lambda: invalid_power_state('poweredOff'),
    'NotAuthenticated': not_authenticated,
    'SystemError': lambda: system_error('vix error codes = (1, 0).'),
    'InvalidArgument': invalid_argument,
    'GuestOperationsFault': lambda: vim.fault.GuestOperationsFault(msg='A general guest operations error occurred.'),
    'FileNotFound': lambda: file_not_found(''),
    'CannotAccessFile': lambda: cannot_access_file('<unspecified filename>'),
    'NoDiskSpace': lambda: no_disk_space('<unspecified>'),
}


def injectable(name: str):
    """A fresh fault for a fault-injection rule; raises KeyError for unknown names."""
    return INJECTABLE[name]()


def known_method(method: str) -> bool:
    """Whether ``method`` is a SOAP method name this server can be called with (``Fetch`` included)."""
    if method == 'Fetch':
        return True
    try:
        VmomiSupport.GetWsdlMethod('urn:vim25', method)
    except (KeyError, AttributeError):
        return False
    return True


@functools.lru_cache(maxsize=None)
def may_raise(method: str, name: str) -> bool:
    """Whether vSphere can answer ``method`` with the injectable fault ``name``.

    Any method may raise a ``vmodl.RuntimeFault`` (NotAuthenticated, InvalidArgument, SystemError, ...);
    anything else must be one of the method's declared faults or a subclass (reference 1.1 and 1.4):
    for example no FileFault from ListProcessesInGuest, TerminateProcessInGuest or
    ReadEnvironmentVariableInGuest, and no guest-operation fault from Fetch, Login or FindByInventoryPath.
    """
    fault_type = type(injectable(name))
    if issubclass(fault_type, vmodl.RuntimeFault):
        return True
    if method == 'Fetch':
        return False
    try:
        declared = VmomiSupport.GetWsdlMethod('urn:vim25', method).info.faults
    except (KeyError, AttributeError):
        return False
    return any(issubclass(fault_type, VmomiSupport.GetVmodlType(base)) for base in declared or ())
