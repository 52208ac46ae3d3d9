# -*- coding: utf-8 -*-
# Copyright (c) guestops.vsphere contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The one retry policy of the collection: what is transient, and how long to keep trying.

Every vSphere call (SOAP through ``VSphereSession.call``, ``/guestFile`` transfers through
``GuestClient``) asks ``retry_kind`` about a failure and waits with ``RetryBudget``. Private to the
collection.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import time

from ansible_collections.guestops.vsphere.plugins.module_utils._faults import fault_is, fault_name

DEFAULT_RETRY_TIMEOUT = 90
DEFAULT_REQUEST_TIMEOUT = 60

# The agent is briefly unavailable (Tools restarting, guest busy) or the VM is busy with a task.
BUSY_FAULTS = ('GuestOperationsUnavailable', 'TaskInProgress')

BUSY = 'busy'            # the server refused for now: safe to repeat any call
SESSION = 'session'      # the session is gone: log in again once, then repeat
NETWORK = 'network'      # the server could not be reached (vCenter restarting)

# A refused connection never reached the server, so any call may be repeated. A reset or a
# dropped connection may have happened after the server acted, so only calls that can be
# repeated without harm are.
_REFUSED = (ConnectionRefusedError,)
_DROPPED = (ConnectionResetError, ConnectionAbortedError, BrokenPipeError, http.client.RemoteDisconnected,
            http.client.BadStatusLine, http.client.IncompleteRead, ssl.SSLEOFError, ssl.SSLZeroReturnError)


def retry_kind(exc, idempotent=True):
    """BUSY, SESSION or NETWORK when ``exc`` is worth repeating the call for, else None.

    ``InvalidState`` itself (not its subclasses such as InvalidPowerState) is what vSphere answers
    when a second guest operation reaches a VM while one is in flight ("Only one guest operation
    is allowed at a time per virtual machine", GuestOperationsManager).
    """
    if fault_is(exc, *BUSY_FAULTS) or fault_name(exc) == 'InvalidState':
        return BUSY
    if fault_is(exc, 'NotAuthenticated'):
        return SESSION
    cause = root_cause(exc)
    if isinstance(cause, _REFUSED):
        return NETWORK
    if idempotent and isinstance(cause, _DROPPED):
        return NETWORK
    return None


def dropped(exc):
    """Whether the connection broke after the request may have reached the server."""
    return isinstance(root_cause(exc), _DROPPED)


def root_cause(exc):
    """The innermost exception of a chain of wrappers (requests and urllib3 wrap socket errors)."""
    seen = set()
    inner = exc
    while inner is not None and id(inner) not in seen:
        seen.add(id(inner))
        if isinstance(inner, (socket.timeout, TimeoutError)):
            return inner
        nested = getattr(inner, 'reason', None)
        if isinstance(nested, BaseException):
            inner = nested
            continue
        args = getattr(inner, 'args', None) or ()
        if args and isinstance(args[0], BaseException):
            inner = args[0]
            continue
        context = inner.__cause__ or inner.__context__
        # A vSphere fault is the server's answer, never a wrapper: the context it carries is only the
        # error being handled when it was raised (a cleanup after a failed transfer, say).
        if isinstance(inner, OSError) or context is None or getattr(type(inner), '_wsdlName', None):
            return inner
        inner = context
    return inner


class RetryBudget(object):
    """Back-off waits for one call, bounded by ``timeout`` seconds (and an optional hard deadline).

    ``wait()`` sleeps before the next attempt and returns True, or returns False when the
    budget is spent. Waits start at ``first`` and double up to ``cap``.
    """

    def __init__(self, timeout=DEFAULT_RETRY_TIMEOUT, deadline=None, first=0.25, cap=5.0,
                 sleep=time.sleep, clock=time.monotonic):
        self._clock = clock
        self._sleep = sleep
        self._first = first
        self._cap = cap
        self.started = clock()
        self.deadline = self.started + max(0.0, float(timeout or 0))
        if deadline is not None:
            self.deadline = min(self.deadline, deadline)
        self.attempts = 0

    def remaining(self):
        return self.deadline - self._clock()

    def wait(self):
        remaining = self.remaining()
        if remaining <= 0:
            return False
        delay = min(self._first * (2 ** self.attempts), self._cap, remaining)
        self.attempts += 1
        self._sleep(delay)
        return True

    def spent(self):
        return self._clock() - self.started
