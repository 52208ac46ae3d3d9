# -*- coding: utf-8 -*-
# Copyright (c) guestops.vsphere contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""vCenter sessions kept open between tasks (option keep_session). Private to the collection.

A kept session is a file readable by its owner only, in a directory of its own under the
user's ``~/.ansible``, named by a digest of the connection settings (password included) and
the session name, so only a task with the same settings finds it. The file holds the session
id, which vCenter accepts in place of a login (govc keeps its sessions so), the API version and
the service content's references, so reattaching needs no call.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time

CACHE_DIR = os.path.join('~', '.ansible', 'guestops_vsphere_sessions')


def _directory():
    path = os.path.expanduser(CACHE_DIR)
    if not os.path.isdir(path):
        os.makedirs(path, mode=0o700)
    os.chmod(path, 0o700)
    return path


# vCenter ends idle sessions after 30 minutes by default; a file older than a day names a session
# that a killed run left behind and vCenter has long forgotten.
STALE_AFTER = 86400


def cache_path(name, hostname, port, username, password, now=time.time):
    digest = hashlib.sha256('\0'.join(str(v) for v in (name, hostname, port, username, password)).encode('utf-8'))
    directory = _directory()
    _forget_stale(directory, now())
    return os.path.join(directory, digest.hexdigest() + '.json')


def _forget_stale(directory, now):
    for name in os.listdir(directory):
        path = os.path.join(directory, name)
        try:
            if now - os.stat(path).st_mtime > STALE_AFTER:
                os.unlink(path)
        except OSError:
            pass


def load(path):
    """The kept session (its id, API version and service content references), or None."""
    try:
        with open(path) as handle:
            kept = json.load(handle)
    except (IOError, OSError, ValueError):
        return None
    if not isinstance(kept, dict) or not kept.get('session_id') or not kept.get('version'):
        return None
    return kept


def save(path, kept, replaces=None):
    """Keep ``kept`` at ``path``; False when another task kept a different session there meanwhile.

    A file naming the session this task reattached to (``replaces``) or this very session is
    replaced; a file naming any other session is left alone (two tasks that logged in at once
    must not overwrite each other's file, or one session would never be logged out).
    """
    handle, temp = tempfile.mkstemp(dir=os.path.dirname(path), prefix='.session-')
    try:
        with os.fdopen(handle, 'w') as out:
            json.dump(kept, out)
        current = load(path)
        if current is None:
            try:
                os.link(temp, path)
            except OSError:
                return False
        elif current.get('session_id') in (kept.get('session_id'), replaces):
            os.replace(temp, path)
            temp = None
        else:
            return False
        return True
    finally:
        if temp is not None:
            os.unlink(temp)


def forget(path):
    try:
        os.unlink(path)
    except OSError:
        pass


def process_start(pid):
    """When process ``pid`` started (clock ticks since boot, from /proc), or None when it is gone."""
    try:
        with open('/proc/%d/stat' % int(pid)) as handle:
            fields = handle.read().rsplit(')', 1)[1].split()
        return int(fields[19])
    except (IOError, OSError, ValueError, IndexError):
        return None


def owner(pid=None):
    """The process whose lifetime a kept session follows: Ansible's main process, by default the parent
    of the worker process in which the collection's modules run."""
    pid = os.getppid() if pid is None else int(pid)
    return dict(owner_pid=pid, owner_start=process_start(pid))


def claim_watch(hostname, port, owner):
    """The path of this run's watcher marker for a vCenter when this process is the first to claim it, else None.

    The one process that gets it starts the watcher (see _vsphere.end_sessions_after), which
    removes the marker when it is done. The marker is empty, so load() never takes it for a session.
    """
    digest = hashlib.sha256('\0'.join(str(v) for v in (
        'watch', hostname, port, owner.get('owner_pid'), owner.get('owner_start'))).encode('utf-8'))
    path = os.path.join(_directory(), digest.hexdigest() + '.watch')
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except OSError:
        return None
    return path


def owner_alive(owner):
    """Whether the process a kept session follows still runs (the same process: pid and start time)."""
    return owner.get('owner_pid') is not None and process_start(owner['owner_pid']) == owner.get('owner_start')


def abandoned(hostname, port):
    """(path, kept) of kept sessions for this vCenter whose owning Ansible process has ended."""
    directory = os.path.expanduser(CACHE_DIR)
    found = []
    try:
        names = os.listdir(directory)
    except OSError:
        return found
    for name in names:
        path = os.path.join(directory, name)
        kept = load(path)
        if not kept or kept.get('owner_pid') is None or kept.get('hostname') != hostname or kept.get('port') != port:
            continue
        if process_start(kept['owner_pid']) != kept.get('owner_start'):
            found.append((path, kept))
    return found
