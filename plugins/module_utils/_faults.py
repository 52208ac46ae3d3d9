# -*- coding: utf-8 -*-
# Copyright (c) guestops.vsphere contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Failures: the error type of the collection and the advice for every vSphere fault. Private to the collection."""

from __future__ import annotations

import errno
import http.client
import signal
import socket
import ssl

try:
    from pyVmomi import vmodl
except ImportError:  # pragma: no cover - exercised by the sanity import test
    vmodl = None


class VSphereError(Exception):
    """A failure with a message a user can act on.

    ``result`` holds extra return values; ``fault`` is the vSphere fault (or network error) behind it,
    ``step`` the workflow step that failed, ``retryable`` whether running the task again may succeed.
    """

    def __init__(self, msg, fault=None, result=None, step=None, retryable=None):
        super(VSphereError, self).__init__(msg)
        self.msg = msg
        self.fault = fault
        self.result = result or {}
        self.step = step
        self.retryable = retryable

    @property
    def fault_name(self):
        return fault_name(self.fault)

    def details(self):
        """The machine-readable part of a failed task's result."""
        return dict(fault=self.fault_name, step=self.step, retryable=bool(self.retryable))


def fault_name(exc):
    """Short vSphere type name of a fault (``InvalidGuestLogin``) or the Python class name."""
    if exc is None:
        return None
    wsdl = getattr(type(exc), '_wsdlName', None)
    return wsdl or type(exc).__name__


def fault_is(exc, *names):
    """True when exc is (a subclass of) one of the named vSphere faults, by WSDL name."""
    for klass in type(exc).__mro__:
        if getattr(klass, '_wsdlName', None) in names:
            return True
    return False


def fault_text(exc):
    text = getattr(exc, 'msg', None) or ''
    if not text:
        messages = getattr(exc, 'faultMessage', None) or []
        text = '; '.join(m.message for m in messages if getattr(m, 'message', None))
    return text.strip()


def network_problem(exc, host, port):
    """Message for socket/TLS/HTTP level errors, or None."""
    where = "'%s:%s'" % (host, port)
    if isinstance(exc, ssl.SSLCertVerificationError):
        return ("the TLS certificate of %s could not be verified (%s). Install the CA that signed it on the "
                "host running the module (or point SSL_CERT_FILE at it), or set validate_certs=false "
                "(VMWARE_VALIDATE_CERTS=false) for a lab with self-signed certificates."
                % (where, getattr(exc, 'verify_message', None) or getattr(exc, 'reason', None) or exc))
    if isinstance(exc, ssl.SSLError):
        return ("the TLS handshake with %s failed (%s). Check that the port speaks HTTPS."
                % (where, getattr(exc, 'reason', None) or exc))
    if isinstance(exc, ConnectionRefusedError):
        return ("the connection to %s was refused: nothing listens there. Check hostname and port "
                "(VMWARE_HOST/VMWARE_PORT), or whether vCenter is restarting." % where)
    if isinstance(exc, socket.gaierror):
        return ("the host name '%s' cannot be resolved (%s). Check hostname." % (host, exc.strerror or exc))
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return "%s did not answer in time. Check the network path and any firewall." % where
    if isinstance(exc, ConnectionResetError):
        return "%s closed the connection. Check that hostname and port point to vCenter or ESXi." % where
    if isinstance(exc, OSError) and exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
        return "%s is unreachable (%s). Check the network path." % (where, exc.strerror)
    if isinstance(exc, http.client.HTTPException):
        return ("%s answered with an unexpected HTTP response (%s). Check that it is a vCenter or ESXi "
                "SDK endpoint." % (where, exc))
    if isinstance(exc, OSError):
        return "the connection to %s failed (%s)." % (where, exc.strerror or exc)
    return None


# FileFault subclasses and what they mean for the user; the first match wins.
FILE_FAULT_MESSAGES = (
    ('FileNotFound', "guest file or directory %(target)s was not found."),
    ('CannotAccessFile', "guest file %(target)s cannot be accessed by guest user '%(guest_username)s' (permissions)."),
    ('FileAlreadyExists', "guest file %(target)s already exists."),
    ('NotAFile', "guest path %(target)s is not a regular file."),
    ('NotADirectory', "guest path %(target)s is not a directory."),
    ('DirectoryNotEmpty', "guest directory %(target)s is not empty."),
    ('NoDiskSpace', "the guest file system holding %(target)s is full."),
    ('FileTooLarge', "guest file %(target)s is too large for the guest file system."),
    ('FileNameTooLong', "guest path %(target)s is too long."),
)


def describe_fault(exc, host=None, port=None, username=None, guest_username=None, path=None):
    """Turn a pyVmomi fault or a network error into a sentence that says what to do."""
    text = fault_text(exc)
    # vCenter login and session
    if fault_is(exc, 'InvalidLogin'):
        return ("vCenter/ESXi rejected the login of user '%s' (wrong user name or password). Check the "
                "username and password options (VMWARE_USER/VMWARE_PASSWORD)." % username)
    if fault_is(exc, 'NotAuthenticated'):
        return "the vSphere session is not authenticated (it expired or was closed). Run the task again."
    if fault_is(exc, 'NoPermission'):
        priv = getattr(exc, 'privilegeId', None) or 'a required privilege'
        return ("user '%s' lacks the privilege %s. Guest operations need VirtualMachine.GuestOperations."
                "Query, .Modify and .Execute on the VM." % (username, priv))
    # power and agent
    if fault_is(exc, 'InvalidPowerState'):
        state = getattr(exc, 'existingState', None) or 'not powered on'
        return ("the VM is %s; guest operations need a powered-on VM with VMware Tools running. Power it on "
                "and retry." % state)
    if fault_is(exc, 'GuestOperationsUnavailable'):
        return ("the guest operations agent (VMware Tools) could not be contacted: Tools are not running or "
                "the guest is still booting. Check VMware Tools in the guest, or wait for it with "
                "guestops.vsphere.guest_info wait_for_ready=true.")
    if fault_is(exc, 'InvalidGuestLogin'):
        return ("the guest OS rejected the login of guest user '%s' (wrong guest_username or guest_password; "
                "VMWARE_GUEST_USERNAME/VMWARE_GUEST_PASSWORD)." % guest_username)
    if fault_is(exc, 'GuestPermissionDenied'):
        return ("guest user '%s' is not permitted to do this in the guest OS%s (file permissions, or a "
                "program that is not executable)." % (guest_username, " on '%s'" % path if path else ''))
    if fault_is(exc, 'GuestComponentsOutOfDate'):
        return "VMware Tools in the guest are too old for this operation. Upgrade VMware Tools."
    if fault_is(exc, 'OperationDisabledByGuest'):
        return ("guest operations are disabled by the guest's VMware Tools configuration "
                "(tools.conf, section [guestoperations]).")
    if fault_is(exc, 'OperationNotSupportedByGuest'):
        return "the guest OS does not support this operation%s." % (': ' + text if text else '')
    if fault_is(exc, 'TooManyGuestLogons'):
        return "too many concurrent guest logins are active in the VM. Retry later."
    if fault_is(exc, 'GuestProcessNotFound'):
        return "process %s does not exist in the guest." % getattr(exc, 'pid', '?')
    if fault_is(exc, 'TaskInProgress'):
        return "the VM is busy with another task. Retry later."
    # files
    fault_file = getattr(exc, 'file', None) or path
    target = "'%s'" % fault_file if fault_file else 'the file'
    for name, message in FILE_FAULT_MESSAGES:
        if fault_is(exc, name):
            return message % dict(target=target, guest_username=guest_username)
    if fault_is(exc, 'FileFault'):
        return "guest file operation on %s failed (%s)%s." % (target, fault_name(exc), ': ' + text if text else '')
    if fault_is(exc, 'InvalidState'):
        return "the VM is in a state that does not allow this (%s)%s." % (fault_name(exc), ': ' + text if text else '')
    # runtime faults
    if fault_is(exc, 'ManagedObjectNotFound'):
        return "the object no longer exists in the vSphere inventory (removed, or a wrong moid)."
    if fault_is(exc, 'InvalidArgument'):
        prop = getattr(exc, 'invalidProperty', None)
        return "vSphere rejected a parameter%s%s." % (" '%s'" % prop if prop else '', ': ' + text if text else '')
    if fault_is(exc, 'SystemError'):
        return "vSphere reported a system error: %s." % (getattr(exc, 'reason', None) or text or 'unknown')
    if fault_is(exc, 'MethodNotFound'):
        return ("the server does not implement this call (%s); guest operations need vCenter/ESXi 5.0 or "
                "later." % (text or getattr(exc, 'selector', '')))
    if vmodl is not None and isinstance(exc, vmodl.MethodFault):
        return "vSphere returned %s%s." % (fault_name(exc), ': ' + text if text else '')
    problem = network_problem(exc, host, port)
    if problem:
        return problem
    return '%s: %s' % (type(exc).__name__, exc)


def step_error(step, exc, vm_name=None, retryable=False, **context):
    """A VSphereError whose message names the step and the VM."""
    where = " for VM '%s'" % vm_name if vm_name else ''
    return VSphereError('%s failed%s: %s' % (step, where, describe_fault(exc, **context)), fault=exc,
                        step=step, retryable=retryable)


class Interrupted(BaseException):
    """SIGINT or SIGTERM reached a module or a connection command (Ctrl-C, a cancelled AWX job).

    A BaseException, like KeyboardInterrupt, so that no ``except Exception`` takes it for a
    vSphere failure: it unwinds through every ``finally``, which terminate what was started,
    delete temporary directories and log out.
    """

    def __init__(self, signum):
        super(Interrupted, self).__init__(signum)
        self.name = signal.Signals(signum).name


class interruptible(object):
    """Turn the first SIGINT/SIGTERM/SIGHUP into Interrupted; ignore repeats while cleaning up."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

    def __enter__(self):
        self._previous = {}
        for signum in self.SIGNALS:
            try:
                self._previous[signum] = signal.signal(signum, self._handle)
            except (ValueError, OSError):  # not the main thread
                pass
        return self

    def _handle(self, signum, frame):
        for other in self._previous:
            signal.signal(other, signal.SIG_IGN)
        raise Interrupted(signum)

    def __exit__(self, exc_type, exc_value, tb):
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        return False
