# -*- coding: utf-8 -*-
# Copyright (c) guestops.vsphere contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Guest path rules, in one place: absolute, basename, split, join, inside, refuse. Private to the collection.

A guest OS is ``'linux'`` (POSIX paths) or ``'windows'`` (drive-letter paths); ``None`` means "either".
"""

from __future__ import annotations

import ntpath
import posixpath


def guest_os_source(requested, vm):
    """('linux' or 'windows', what decided it): the requested OS, or what vSphere reports for 'auto'.

    vSphere leaves guest.guestFamily unset on some new Windows versions and while VMware Tools
    start (community.vmware#2099, #75), so an unset family falls back to the guest id that Tools
    report (guest.guestId) and then to the one the VM was configured with (config.guestId).
    """
    if requested in ('linux', 'windows'):
        return requested, 'guest_os option'
    family = vm.get('guest.guestFamily')
    if family:
        return ('windows' if family == 'windowsGuest' else 'linux'), 'guest.guestFamily'
    for prop in ('guest.guestId', 'config.guestId'):
        guest_id = str(vm.get(prop) or '')
        if guest_id:
            return ('windows' if guest_id.lower().startswith('win') else 'linux'), prop
    return 'linux', 'nothing reported (assumed linux)'


def guest_os_of(requested, vm):
    """'linux' or 'windows' (see guest_os_source)."""
    return guest_os_source(requested, vm)[0]


def _module(guest_os):
    return ntpath if guest_os == 'windows' else posixpath


def is_absolute(path, guest_os=None):
    """Whether path is absolute in a guest of that OS (with None: in a Linux or a Windows guest)."""
    if not path or not isinstance(path, str):
        return False
    if guest_os == 'linux':
        return posixpath.isabs(path)
    windows = len(ntpath.splitdrive(path)[0]) >= 2 and ntpath.isabs(path)
    return windows or (guest_os is None and posixpath.isabs(path))


def os_of_path(path):
    """The guest OS a path is written for: 'windows' for drive-letter or backslash-only paths."""
    if len(ntpath.splitdrive(path)[0]) >= 2 or ('\\' in path and '/' not in path):
        return 'windows'
    return 'linux'


def basename(path, guest_os=None):
    """The last component of a guest path (trailing separators ignored)."""
    guest_os = guest_os or os_of_path(path)
    if guest_os == 'windows':
        return ntpath.basename(path.rstrip('\\/'))
    return posixpath.basename(path.rstrip('/'))


def split(path, guest_os=None):
    """(directory, name) of a guest path."""
    return _module(guest_os or os_of_path(path)).split(path)


def join(directory, *names, guest_os=None):
    return _module(guest_os or os_of_path(directory)).join(directory, *names)


def separator(guest_os):
    return '\\' if guest_os == 'windows' else '/'


def is_inside(path, directory, guest_os):
    """Whether ``path`` names something below ``directory`` (no '..' components allowed)."""
    if not isinstance(path, str) or not isinstance(directory, str):
        return False
    sep = separator(guest_os)
    prefix = directory.rstrip(sep) + sep
    if not path.startswith(prefix) or len(path) == len(prefix):
        return False
    parts = path[len(prefix):].replace('\\', '/').split('/')
    return '..' not in parts


def refuse_delete(path):
    """Why a guest path must not be deleted recursively (a sentence), or None."""
    if path is None or not str(path).strip():
        return 'path is empty'
    path = str(path)
    if posixpath.isabs(path):
        if posixpath.normpath(path) in ('/', '//'):
            return "refusing to delete '/'"
        return None
    if ntpath.isabs(path) and len(ntpath.splitdrive(path)[0]) == 2:
        drive, rest = ntpath.splitdrive(path)
        if ntpath.normpath(rest).strip('\\/') in ('', '.'):
            return "refusing to delete the root of drive %s" % drive
        return None
    return "path must be absolute, got '%s'" % path
