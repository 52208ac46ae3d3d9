# -*- coding: utf-8 -*-
# Copyright (c) guestops.vsphere contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The vCenter-only channel: guest files in and out without a route to the ESXi host.

Only the ``/guestFile`` transfers need the ESXi host; every SOAP call goes through vCenter
(govmomi#3739). So when no ESXi host can be reached, data travels in SOAP calls:

* **out** (output, small files): a guest-side encoder (``ENCODER``, POSIX sh) compresses each
  file (gzip), encodes it (base64url, or hex with ``od`` when ``base64`` is missing) and writes the
  text as the targets of numbered symlinks ``<file>.<chunk>`` in a private directory, plus a
  manifest symlink ``m.<file>`` with the file's state, size, encoding and SHA-256. ListFilesInGuest
  returns each symlink's target on Linux guests (open-vm-tools ``vixTools.c``,
  fileExtendedInfoLinuxFormatString ``<slt>``), and hostd assembles one SOAP answer from as many
  agent replies (at most 64 KiB - 53 bytes each) as the ``maxResults`` asked for need, so a few
  calls carry megabytes. The client reassembles, verifies length and digest, and deletes.
* **in** (scripts, small files): the compressed, base64url-encoded file travels in the
  ``arguments`` of StartProgramInGuest calls, CHUNK_CHARS characters each, each written to a
  numbered part file; a final program (``ASSEMBLER``) joins and decodes them, checks the SHA-256
  and moves the file into place.

Linux guests only: Windows listings carry no symlink target and cmd.exe has no decoder.
Pure command lines and decoding here; the calls are made through GuestClient. Private to the
collection.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import hashlib
import posixpath
import re
import secrets
import zlib

from ansible_collections.guestops.vsphere.plugins.module_utils._command_line import (
    LINUX_SHELL,
    ProgramSpec,
    posix_env,
    posix_quote,
    start_request_size,
)
from ansible_collections.guestops.vsphere.plugins.module_utils._faults import VSphereError

TRANSFER_MODES = ('auto', 'esxi', 'vcenter')

# Characters of encoded data per symlink target: below Linux's PATH_MAX (4096, the most a symlink
# target holds), and a multiple of 4 so that every chunk but the last is whole base64 quanta.
LINK_CHARS = 4000
# Entries asked for per ListFilesInGuest call: about 1 MB of targets, assembled by hostd from about
# 17 agent replies. No source gives a limit for one SOAP answer; this keeps each one moderate.
LIST_PAGE = 250
# Encoded characters per StartProgramInGuest call (script in). Far below the limit below.
CHUNK_CHARS = 40000
# vSphere refuses StartProgramInGuest requests whose VIX message (header, programPath, arguments,
# workingDirectory, environment) exceeds VIX_COMMAND_MAX_USER_INPUT_SIZE = 65536 - 5000 = 60,536
# bytes (open-vm-tools lib/include/vixCommands.h); unpatched ESXi hosts crashed the VM on larger
# ones (open-vm-tools ChangeLog, 2025-02-18). We send at most 48,000 bytes: 12,536 bytes (20 %)
# below the limit, room for what our count cannot know (how hostd lays out the request, the
# credentials the VMX adds to the same 64 KiB message).
MAX_START_REQUEST = 48000
# Caps of the channel: files read through it (guest_fetch, the rc file) and files written (guest_copy,
# the role's script). Output of a program follows output_limit instead.
FETCH_CAP = 4 * 1024 * 1024
UPLOAD_CAP = 1024 * 1024
ENCODER_TIMEOUT = 300

_MANIFEST = re.compile(r'^m\.([0-9]+)$')
_CHUNK = re.compile(r'^([0-9]+)\.([0-9]+)$')
LIST_PATTERN = r'^(m\.)?[0-9]+(\.[0-9]+)?$'

# $1 = directory to create (the channel), $2 = bytes to read at most per file, $3... = files.
# For each file i: chunks "i.k" (symlinks whose targets are the encoded text, LINK_CHARS each) and
# the manifest "m.i" -> "v1:ok:<size>:<bytes read>:<gz|raw>:<b64|hex>:<sha256 or ->:<chunks>", or
# "v1:missing" / "v1:notfile" / "v1:unreadable". Tools that may be missing are looked for first:
# without gzip the data is sent as it is, without base64 as hex (od), without sha256sum the digest
# comes from openssl, else only the length and gzip's CRC are checked.
ENCODER = (
    'umask 077; d=$1; l=$2; shift 2; mkdir "$d" || exit 3; '
    'if command -v gzip >/dev/null 2>&1; then z=gz; else z=raw; fi; '
    'if command -v base64 >/dev/null 2>&1; then e=b64; else e=hex; fi; '
    'if command -v sha256sum >/dev/null 2>&1; then h=sha256sum; '
    'elif command -v openssl >/dev/null 2>&1; then h="openssl dgst -sha256 -r"; else h=; fi; '
    'i=0; for f do '
    'if [ ! -e "$f" ]; then ln -s v1:missing "$d/m.$i"; '
    'elif [ ! -f "$f" ]; then ln -s v1:notfile "$d/m.$i"; '
    'elif [ ! -r "$f" ]; then ln -s v1:unreadable "$d/m.$i"; '
    'else s=$(wc -c <"$f" | tr -d " "); head -c "$l" "$f" >"$d/raw" || exit 4; '
    'n=$(wc -c <"$d/raw" | tr -d " "); '
    'if [ -n "$h" ]; then x=$($h <"$d/raw" | cut -c1-64); else x=-; fi; '
    'if [ $z = gz ]; then gzip -c -n <"$d/raw"; else cat "$d/raw"; fi | '
    'if [ $e = b64 ]; then base64 | tr -d "\\n" | tr -- "+/" "-_"; else od -An -v -tx1 | tr -d " \\n"; fi | '
    'fold -w %d | { k=0; while IFS= read -r p || [ -n "$p" ]; do ln -s -- "$p" "$d/$i.$k" || exit 5; '
    'k=$((k+1)); done; echo $k >"$d/count"; }; '
    'k=$(cat "$d/count"); rm -f "$d/raw" "$d/count"; '
    'ln -s "v1:ok:$s:$n:$z:$e:$x:$k" "$d/m.$i" || exit 5; fi; '
    'i=$((i+1)); done'
) % LINK_CHARS
ENCODER_NAME = 'guestops-encode'

# $1 = encoded text, $2 = part file: written under another name and renamed, so that a part that
# exists is complete.
PART_WRITER = 'printf %s "$1" >"$2.t" && mv -f "$2.t" "$2"'
PART_WRITER_NAME = 'guestops-put'

# $1 = parts directory, $2 = number of parts, $3 = destination, $4 = sha256 of the file, $5 = mode
# (octal), $6 = owner id ('' = keep), $7 = group id, $8 = 1 to overwrite, $9 = gz or raw.
# Waits up to 60 s for every part, decodes into a temporary file next to the destination, checks
# the digest and renames it into place; the parts directory is removed on every path.
ASSEMBLER = (
    't=$1; n=$2; f=$3; x=$4; m=$5; o=$6; g=$7; w=$8; z=$9; trap \'rm -rf "$t"\' EXIT; '
    'for c in base64 sha256sum; do command -v $c >/dev/null 2>&1 || exit 10; done; '
    'if [ "$z" = gz ]; then command -v gzip >/dev/null 2>&1 || exit 11; fi; '
    'i=0; while [ $i -lt "$n" ]; do p=$(printf "%s/p.%06d" "$t" $i); s=0; '
    'while [ ! -f "$p" ]; do s=$((s+1)); [ $s -gt 600 ] && exit 6; sleep 0.1 2>/dev/null || sleep 1; done; '
    'i=$((i+1)); done; '
    'if [ "$w" != 1 ] && [ -e "$f" ]; then exit 7; fi; '
    'y="$f.guestops-$$"; '
    'if [ $n -eq 0 ]; then : >"$y"; '
    'elif [ "$z" = gz ]; then cat "$t"/p.* | tr -- "-_" "+/" | base64 -d | gzip -d -c >"$y"; '
    'else cat "$t"/p.* | tr -- "-_" "+/" | base64 -d >"$y"; fi || { rm -f "$y"; exit 9; }; '
    '[ "$(sha256sum <"$y" | cut -c1-64)" = "$x" ] || { rm -f "$y"; exit 8; }; '
    'chmod "$m" "$y" || { rm -f "$y"; exit 9; }; '
    'if [ -n "$o$g" ]; then chown "$o${g:+:$g}" "$y" || { rm -f "$y"; exit 9; }; fi; '
    'mv -f "$y" "$f" || { rm -f "$y"; exit 9; }'
)
ASSEMBLER_NAME = 'guestops-assemble'
ASSEMBLER_ERRORS = {
    6: 'a part of the file did not arrive in the guest within 60 seconds',
    7: 'the file exists and overwriting was not asked for',
    8: 'the decoded file does not have the SHA-256 that was sent (the transfer was damaged)',
    9: 'the file could not be decoded or written (is the directory writable, is there room?)',
    10: "the guest lacks 'base64' or 'sha256sum' (GNU coreutils or BusyBox provide them)",
    11: "the guest lacks 'gzip'",
}
ENCODER_ERRORS = {
    3: 'the channel directory could not be created',
    4: 'a file could not be read',
    5: 'a symlink could not be created (is the file system full?)',
}

_CHANNEL_ENV = {'LC_ALL': 'C'}


class ChannelFile(object):
    """One file read through the channel: its bytes (cut at the limit) and its full size."""

    __slots__ = ('path', 'state', 'data', 'size')

    def __init__(self, path, state, data=None, size=None):
        self.path = path
        self.state = state  # ok, missing, notfile, unreadable
        self.data = data
        self.size = size

    @property
    def truncated(self):
        return self.data is not None and self.size is not None and self.size > len(self.data)


class ChannelError(VSphereError):
    """Data read through the channel is incomplete or damaged."""


def require_linux(guest_os, vm_name):
    if guest_os == 'windows':
        raise VSphereError("The vCenter-only transfer channel works with Linux guests only, and VM '%s' runs Windows "
                           "(its file listings carry no symlink targets). Open the route from the host running the "
                           "module to the ESXi host on port 443, or set transfer_host to an address that reaches it."
                           % vm_name, step='Transferring through vCenter', retryable=False)


def encoder_spec(out_dir, paths, limit, working_directory=None):
    """The ProgramSpec that encodes ``paths`` (at most ``limit`` bytes each) into ``out_dir``."""
    arguments = ' '.join(['-c', posix_quote(ENCODER), ENCODER_NAME, posix_quote(out_dir), '%d' % int(limit)]
                         + [posix_quote(path) for path in paths])
    return ProgramSpec(LINUX_SHELL, arguments, working_directory, posix_env(_CHANNEL_ENV))


def parse_manifest(target):
    """A manifest target -> dict(state, size, read, compression, encoding, sha256, chunks)."""
    fields = (target or '').split(':')
    if len(fields) < 2 or fields[0] != 'v1':
        raise ValueError('not a manifest: %r' % target)
    if fields[1] != 'ok':
        return dict(state=fields[1])
    if len(fields) != 8:
        raise ValueError('manifest with %d fields: %r' % (len(fields), target))
    return dict(state='ok', size=int(fields[2]), read=int(fields[3]), compression=fields[4], encoding=fields[5],
                sha256=None if fields[6] == '-' else fields[6], chunks=int(fields[7]))


def decode_text(text, encoding):
    if encoding == 'hex':
        return binascii.unhexlify(text)
    if encoding == 'b64':
        return base64.urlsafe_b64decode(text + '=' * (-len(text) % 4))
    raise ValueError('unknown encoding %r' % encoding)


def assemble(entries, paths):
    """Rebuild the files from a channel listing: ``entries`` are (name, symlink target) pairs.

    Returns [ChannelFile] in the order of ``paths``; raises ChannelError when a chunk is missing,
    the data cannot be decoded, or its length or SHA-256 differ from the manifest's.
    """
    manifests = {}
    chunks = {}
    for name, target in entries:
        match = _MANIFEST.match(name)
        if match:
            manifests[int(match.group(1))] = target
            continue
        match = _CHUNK.match(name)
        if match:
            chunks.setdefault(int(match.group(1)), {})[int(match.group(2))] = target or ''
    files = []
    for index, path in enumerate(paths):
        if index not in manifests:
            raise ChannelError("the encoder in the guest wrote no manifest for '%s'" % path)
        try:
            manifest = parse_manifest(manifests[index])
        except ValueError as exc:
            raise ChannelError("the manifest for '%s' cannot be read (%s)" % (path, exc))
        if manifest['state'] != 'ok':
            files.append(ChannelFile(path, manifest['state']))
            continue
        parts = chunks.get(index, {})
        missing = [k for k in range(manifest['chunks']) if k not in parts]
        if missing:
            raise ChannelError("'%s' arrived incomplete: %d of %d chunks are missing" % (
                path, len(missing), manifest['chunks']))
        text = ''.join(parts[k] for k in range(manifest['chunks']))
        try:
            data = decode_text(text, manifest['encoding'])
            if manifest['compression'] == 'gz':
                data = gzip.decompress(data)
        except (ValueError, TypeError, OSError, EOFError, zlib.error) as exc:
            raise ChannelError("'%s' cannot be decoded (%s)" % (path, exc))
        if len(data) != manifest['read']:
            raise ChannelError("'%s' arrived with %d bytes instead of %d" % (path, len(data), manifest['read']))
        if manifest['sha256'] and hashlib.sha256(data).hexdigest() != manifest['sha256']:
            raise ChannelError("'%s' arrived damaged: its SHA-256 differs from the guest's" % path)
        files.append(ChannelFile(path, 'ok', data, manifest['size']))
    return files


# --------------------------------------------------------------------------- script in

def encode_upload(data):
    """(encoded text, compression, sha256) for a file sent through StartProgramInGuest arguments."""
    packed = gzip.compress(data, 9, mtime=0)
    compression = 'gz'
    if len(packed) >= len(data):
        packed, compression = data, 'raw'
    text = base64.urlsafe_b64encode(packed).decode('ascii')
    return text, compression, hashlib.sha256(data).hexdigest()


def split_chunks(text, size=CHUNK_CHARS):
    return [text[start:start + size] for start in range(0, len(text), size)]


def part_path(parts_dir, number):
    return posixpath.join(parts_dir, 'p.%06d' % number)


def part_spec(parts_dir, number, chunk):
    arguments = ' '.join(['-c', posix_quote(PART_WRITER), PART_WRITER_NAME, posix_quote(chunk),
                          posix_quote(part_path(parts_dir, number))])
    return ProgramSpec(LINUX_SHELL, arguments, parts_dir, posix_env(_CHANNEL_ENV))


def assembler_spec(parts_dir, count, dest, sha256, mode, owner=None, group=None, overwrite=True, compression='gz'):
    values = [parts_dir, '%d' % count, dest, sha256, '%o' % mode, '' if owner is None else '%d' % owner,
              '' if group is None else '%d' % group, '1' if overwrite else '0', compression]
    arguments = ' '.join(['-c', posix_quote(ASSEMBLER), ASSEMBLER_NAME] + [posix_quote(v) for v in values])
    return ProgramSpec(LINUX_SHELL, arguments, parts_dir, posix_env(_CHANNEL_ENV))


def channel_name():
    return 'channel-%s' % secrets.token_hex(6)


def check_request_size(spec, vm_name):
    """Refuse a StartProgramInGuest request above MAX_START_REQUEST with advice (see the constant)."""
    size = start_request_size(spec)
    if size > MAX_START_REQUEST:
        raise VSphereError(
            "Starting the program failed for VM '%s': the request is %d bytes (program path, arguments, working "
            "directory and environment), more than the %d this collection sends (vSphere refuses more than 60,536 "
            "bytes, and older ESXi hosts crash the VM on such requests). Shorten the command or the environment, or "
            "copy a script into the guest with guestops.vsphere.guest_copy and run that."
            % (vm_name, size, MAX_START_REQUEST), step='Starting the program', retryable=False)
    return size
