# -*- coding: utf-8 -*-
# Copyright (c) guestops.vsphere contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Files: copy into the guest (guest_copy), fetch from it (guest_fetch), delete (guest_cleanup).

Each takes a GuestClient and returns a result dict; failures raise VSphereError with the
partial result attached. Private to the collection.
"""

from __future__ import annotations

import binascii
import hashlib
import io
import os
import tempfile

from ansible_collections.guestops.vsphere.plugins.module_utils import _paths
from ansible_collections.guestops.vsphere.plugins.module_utils._faults import VSphereError, fault_is


# --------------------------------------------------------------------------- copy

def parse_mode(mode):
    """A mode option (octal string or int) -> int, or None."""
    if mode is None or mode == '':
        return None
    if isinstance(mode, int):
        value = mode
    else:
        text = str(mode).strip()
        try:
            value = int(text, 8)
        except ValueError:
            raise VSphereError("mode must be an octal number such as '0644', got '%s'." % mode)
    if value < 0 or value > 0o7777:
        raise VSphereError("mode must be between 0000 and 07777, got '%s'." % mode)
    return value


def _local_digest(fileobj):
    sha1 = hashlib.sha1()
    size = 0
    while True:
        chunk = fileobj.read(1024 * 1024)
        if not chunk:
            break
        sha1.update(chunk)
        size += len(chunk)
    fileobj.seek(0)
    return size, sha1.hexdigest()


class _HashSink(object):
    def write(self, data):
        return len(data)


def copy_to_guest(client, dest, src=None, content=None, mode=None, owner=None, group=None, force=True,
                  check_mode=False, guest_os='linux'):
    """Upload a local file or content to dest (guest_copy)."""
    if not _paths.is_absolute(dest, guest_os):
        raise VSphereError("dest must be an absolute path in the guest, got '%s'." % dest)
    windows = guest_os == 'windows'
    if dest.endswith('/') or windows and dest.endswith('\\'):
        raise VSphereError("dest '%s' ends with a path separator; give the full path of the file, including its "
                           "name." % dest)
    mode = parse_mode(mode)
    if windows and (mode is not None or owner is not None or group is not None):
        raise VSphereError('mode, owner and group apply to Linux guests only.')
    if src is not None:
        if not os.path.isfile(src):
            raise VSphereError("src '%s' is not a readable file on the host running the module." % src)
        try:
            fileobj = open(src, 'rb')
        except (IOError, OSError) as exc:
            raise VSphereError("src '%s' cannot be read on the host running the module: %s." % (src, exc.strerror))
    else:
        data = content.encode('utf-8') if not isinstance(content, bytes) else content
        fileobj = io.BytesIO(data)
    try:
        size, checksum = _local_digest(fileobj)
        result = dict(changed=False, dest=dest, size=size, checksum=checksum)
        existing = client.stat(dest)
        if existing is not None and existing['type'] == 'directory':
            raise VSphereError("dest '%s' is a directory in the guest; give the full file path." % dest, result=result)
        needs_upload = existing is None
        if existing is not None and force:
            needs_upload = existing['size'] != size or _guest_sha1(client, dest) != checksum
        needs_attrs = False
        if existing is not None and not needs_upload and not windows:
            needs_attrs = _attrs_differ(existing, mode, owner, group)
        if not needs_upload and not needs_attrs:
            return result
        result['changed'] = True
        if check_mode:
            if existing is None and _missing_parent(client, dest, guest_os):
                raise _no_directory(client, dest, guest_os, result=dict(result, changed=False))
            return result
        try:
            if needs_upload and size == 0:
                _write_empty_file(client, dest, existing, mode, owner, group, guest_os)
            elif needs_upload:
                if mode is None and existing is not None and not windows and existing.get('permissions') is not None:
                    # vSphere does not keep an overwritten file's attributes; like ansible.builtin.copy,
                    # keep its mode unless a new one is asked for.
                    mode = existing['permissions'] & 0o7777
                attributes = client.file_attributes(mode, owner, group, windows=windows)
                _upload_atomically(client, fileobj, size, dest, existing, attributes, checksum, guest_os)
            else:
                client.change_attributes(dest, client.file_attributes(mode, owner, group))
        except VSphereError as err:
            if existing is None and err.fault is not None and fault_is(err.fault, 'FileNotFound'):
                err = _no_directory(client, dest, guest_os, fault=err.fault)
            err.result = dict(result, changed=False)
            raise err
        return result
    finally:
        fileobj.close()


def _upload_atomically(client, fileobj, size, dest, existing, attributes, checksum, guest_os):
    """Upload to a temporary name next to dest, then move it into place (MoveFileInGuest).

    A transfer that breaks off (and is not saved by a retry) leaves the old dest as it was and no
    partial file: the temporary file is deleted. Being in dest's directory, the move is a rename on
    the same file system, and the attributes given to the upload (mode, owner, group) stay.
    """
    directory, name = _paths.split(dest, guest_os)
    temp = _paths.join(directory, '.%s.%s.ansible-upload' % (name[:200], binascii.hexlify(os.urandom(6)).decode()),
                       guest_os=guest_os)
    try:
        uploaded = client.upload(fileobj, size, temp, overwrite=True, attributes=attributes, label=dest)
        if uploaded != checksum:
            raise VSphereError("Uploading to '%s' failed: the local source changed during the upload." % dest)
        client.move_file(temp, dest, overwrite=existing is not None)
        return
    except VSphereError as err:
        failure = err
    # Cleaned up outside the handler, so that the cleanup's own faults do not carry the transfer's error.
    try:
        client.delete(temp)
    except VSphereError:
        pass  # the original error is the one to report
    raise failure


def _missing_parent(client, dest, guest_os):
    parent = client.stat(_paths.split(dest, guest_os)[0])
    return parent is None or parent['type'] != 'directory'


def _no_directory(client, dest, guest_os, fault=None, result=None):
    return VSphereError("Uploading to '%s' failed for VM '%s': its directory '%s' does not exist in the guest. "
                        "Create the directory first; guest_copy does not create it."
                        % (dest, client.vm.name, _paths.split(dest, guest_os)[0]), fault=fault, result=result)


def move_empty_file_into_place(client, dest, overwrite, guest_os, prefix='.ansible-copy-'):
    """Make dest an empty file: ESXi refuses empty uploads, so an empty temp file next to it is moved
    into place, and deleted again when the move fails (the move's error is the one raised)."""
    temp = client.make_temp_file(prefix=prefix, directory_path=_paths.split(dest, guest_os)[0])
    try:
        client.move_file(temp, dest, overwrite=overwrite)
    except BaseException:
        try:
            client.delete(temp)
        except VSphereError:
            pass
        raise


def _write_empty_file(client, dest, existing, mode, owner, group, guest_os):
    """Make dest an empty file with the attributes asked for (see move_empty_file_into_place)."""
    move_empty_file_into_place(client, dest, existing is not None, guest_os)
    if guest_os != 'windows':
        if mode is None:
            # the temp file was made 0600; keep the old file's mode, or give a new one the usual 0644
            old = (existing or {}).get('permissions')
            mode = old & 0o7777 if old is not None else 0o644
        client.change_attributes(dest, client.file_attributes(mode, owner, group))


def _guest_sha1(client, path):
    sink = _HashSink()
    return client.download_to(path, sink)[1]


def _attrs_differ(existing, mode, owner, group):
    if mode is not None and existing.get('permissions') is not None and (existing['permissions'] & 0o7777) != mode:
        return True
    if owner is not None and existing.get('owner_id') is not None and existing['owner_id'] != owner:
        return True
    if group is not None and existing.get('group_id') is not None and existing['group_id'] != group:
        return True
    return False


# --------------------------------------------------------------------------- fetch

def _file_sha1(path):
    sha1 = hashlib.sha1()
    with open(path, 'rb') as handle:
        while True:
            chunk = handle.read(1024 * 1024)
            if not chunk:
                break
            sha1.update(chunk)
    return sha1.hexdigest()


def local_dest(src, dest):
    """The absolute local file name (as ansible.builtin.fetch returns it): an existing directory or a
    path ending in '/' gets the basename of src; a relative path is taken from the working directory."""
    if dest.endswith(os.sep) or dest.endswith('/') or os.path.isdir(dest):
        dest = os.path.join(dest, _paths.basename(src))
    return os.path.abspath(dest)


def fetch_from_guest(client, src, dest, fail_on_missing=True, check_mode=False):
    """Download a guest file to a local path (guest_fetch), atomically."""
    if not _paths.is_absolute(src):
        raise VSphereError("src must be an absolute path in the guest, got '%s'." % src)
    target = local_dest(src, dest)
    result = dict(changed=False, src=src, dest=target)
    existing = client.stat(src)
    if existing is None:
        if fail_on_missing:
            raise VSphereError("Fetching '%s' failed for VM '%s': the file does not exist in the guest."
                               % (src, client.vm.name), result=result)
        result['msg'] = "the file '%s' does not exist in the guest; nothing fetched" % src
        return result
    if existing['type'] == 'directory':
        raise VSphereError("Fetching '%s' failed for VM '%s': it is a directory; only files can be fetched."
                           % (src, client.vm.name), result=result)
    if os.path.isdir(target):
        raise VSphereError("Fetching '%s' failed: dest '%s' is a directory on the host running the module."
                           % (src, target), result=result)
    old_sha1 = _file_sha1(target) if os.path.isfile(target) else None
    if check_mode:
        if old_sha1 is not None and existing.get('size') == os.path.getsize(target):
            size, sha1 = client.download_to(src, _HashSink())
        else:
            size, sha1 = existing.get('size'), None
        result.update(size=size, checksum=sha1, changed=sha1 is None or sha1 != old_sha1)
        return result
    directory = os.path.dirname(os.path.abspath(target))
    try:
        if not os.path.isdir(directory):
            os.makedirs(directory)
        handle, temp_path = tempfile.mkstemp(prefix='.guest_fetch-', dir=directory)
    except OSError as exc:
        raise VSphereError("Fetching '%s' failed: the directory '%s' cannot be created or written on the host "
                           "running the module (%s). Choose another dest." % (src, directory, exc.strerror or exc),
                           result=result)
    try:
        try:
            with os.fdopen(handle, 'wb') as out:
                size, sha1 = client.download_to(src, out)
        except (IOError, OSError) as exc:
            raise VSphereError("Fetching '%s' failed: writing '%s' on the host running the module failed (%s)."
                               % (src, temp_path, exc.strerror or exc), result=result)
        result.update(size=size, checksum=sha1)
        if sha1 == old_sha1:
            return result
        if os.path.exists(target):
            try:
                os.chmod(temp_path, os.stat(target).st_mode & 0o7777)
            except OSError:
                pass
        else:
            os.chmod(temp_path, 0o644 & ~_umask())
        try:
            os.replace(temp_path, target)
        except OSError as exc:
            raise VSphereError("Fetching '%s' failed: '%s' cannot be written on the host running the module (%s)."
                               % (src, target, exc.strerror or exc), result=result)
        temp_path = None
        result['changed'] = True
        return result
    finally:
        if temp_path is not None and os.path.exists(temp_path):
            os.unlink(temp_path)


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


# --------------------------------------------------------------------------- cleanup

def cleanup_path(client, path, check_mode=False):
    """Delete a guest file or directory tree (guest_cleanup); gone already is not an error."""
    problem = _paths.refuse_delete(path)
    if problem:
        raise VSphereError('Deleting failed: %s.' % problem, step='Deleting a guest path')
    result = dict(changed=False, path=path)
    if check_mode:
        result['changed'] = client.stat(path) is not None
        return result
    result['changed'] = client.delete(path)
    return result
