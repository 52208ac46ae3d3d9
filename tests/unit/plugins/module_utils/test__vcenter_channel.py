# -*- coding: utf-8 -*-
# Copyright (c) guestops.vsphere contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The vCenter-only channel: the guest-side encoder and decoder run by a real POSIX sh, reassembly,
verification, caps, and the switch of transfer_mode=auto."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import shutil
import subprocess
from unittest import mock

import pytest

import requests  # noqa: E402
from pyVmomi import vim  # noqa: E402

from ansible_collections.guestops.vsphere.plugins.module_utils import _vcenter_channel as channel  # noqa: E402
from ansible_collections.guestops.vsphere.plugins.module_utils._command_line import (  # noqa: E402
    ProgramSpec,
    shorten,
    start_request_size,
)
from ansible_collections.guestops.vsphere.plugins.module_utils._guest import GuestClient  # noqa: E402
from ansible_collections.guestops.vsphere.plugins.module_utils._vsphere import (  # noqa: E402
    VirtualMachine,
    VSphereError,
    VSphereSession,
)


def run_spec(spec, path=None):
    """Run a ProgramSpec as VMware Tools does on Linux: bash -c '"<programPath>" <arguments>'."""
    env = dict(item.split('=', 1) for item in spec.env or [])
    if path is not None:
        env['PATH'] = path
    return subprocess.run([shutil.which('bash'), '-c', '"%s" %s' % (spec.program_path, spec.arguments)],
                          env=env, cwd=spec.working_directory, check=False).returncode


def listing(directory):
    return [(name, os.readlink(os.path.join(directory, name))) for name in os.listdir(directory)
            if os.path.islink(os.path.join(directory, name))]


def test_the_encoder_output_decodes_back_to_every_file(tmp_path):
    big = os.urandom(300000) + b'line\n' * 20000
    (tmp_path / 'big').write_bytes(big)
    (tmp_path / 'small').write_bytes(b'hello\n')
    (tmp_path / 'empty').write_bytes(b'')
    paths = [str(tmp_path / name) for name in ('big', 'small', 'empty', 'none')] + [str(tmp_path)]
    out = str(tmp_path / 'out')
    spec = channel.encoder_spec(out, paths, 10 * 1024 * 1024)
    assert start_request_size(spec) < channel.MAX_START_REQUEST
    assert run_spec(spec) == 0
    entries = listing(out)
    assert sorted(os.listdir(out)) == sorted(name for name, dummy in entries), 'only symlinks are left'
    assert all(len(target) <= channel.LINK_CHARS for dummy, target in entries)
    files = channel.assemble(entries, paths)
    assert [f.state for f in files] == ['ok', 'ok', 'ok', 'missing', 'notfile']
    assert files[0].data == big and files[1].data == b'hello\n' and files[2].data == b''
    assert not any(f.truncated for f in files)


def test_the_encoder_cuts_at_the_limit_and_reports_the_full_size(tmp_path):
    (tmp_path / 'f').write_bytes(b'0123456789' * 100)
    out = str(tmp_path / 'out')
    assert run_spec(channel.encoder_spec(out, [str(tmp_path / 'f')], 64)) == 0
    found = channel.assemble(listing(out), [str(tmp_path / 'f')])[0]
    assert found.data == (b'0123456789' * 7)[:64] and found.size == 1000 and found.truncated


def test_without_gzip_base64_and_sha256sum_the_encoder_sends_hex(tmp_path):
    tools = tmp_path / 'bin'
    tools.mkdir()
    for name in ('mkdir', 'ln', 'head', 'wc', 'tr', 'cut', 'fold', 'cat', 'rm', 'od'):
        os.symlink(shutil.which(name), str(tools / name))
    (tmp_path / 'f').write_bytes(b'\x00\xffdata' * 100)
    out = str(tmp_path / 'out')
    assert run_spec(channel.encoder_spec(out, [str(tmp_path / 'f')], 4096), path=str(tools)) == 0
    entries = listing(out)
    manifest = channel.parse_manifest(dict(entries)['m.0'])
    assert (manifest['compression'], manifest['encoding'], manifest['sha256']) == ('raw', 'hex', None)
    assert channel.assemble(entries, [str(tmp_path / 'f')])[0].data == b'\x00\xffdata' * 100


def _manifest(data, chunks, compression='gz', sha=None):
    digest = sha or hashlib.sha256(data).hexdigest()
    return 'v1:ok:%d:%d:%s:b64:%s:%d' % (len(data), len(data), compression, digest, chunks)


def _encoded(data):
    import base64
    return base64.urlsafe_b64encode(gzip.compress(data)).decode().rstrip('=')


def test_assemble_orders_chunks_by_number_not_by_name():
    data = os.urandom(5000)
    text = _encoded(data)
    parts = [text[i:i + 400] for i in range(0, len(text), 400)]
    entries = [('0.%d' % k, part) for k, part in enumerate(parts)][::-1] + [('m.0', _manifest(data, len(parts)))]
    assert channel.assemble(entries, ['/x'])[0].data == data


@pytest.mark.parametrize('damage, message', [
    ('drop', 'incomplete: 1 of 2 chunks are missing'),
    ('digest', 'damaged: its SHA-256 differs'),
    ('garble', 'cannot be decoded'),
    ('nomanifest', 'wrote no manifest'),
])
def test_assemble_refuses_incomplete_or_damaged_data(damage, message):
    data = b'payload ' * 200
    text = _encoded(data)
    parts = [text[:len(text) // 2], text[len(text) // 2:]]
    manifest = _manifest(data, 2, sha='0' * 64 if damage == 'digest' else None)
    entries = [('0.0', parts[0]), ('0.1', parts[1]), ('m.0', manifest)]
    if damage == 'drop':
        entries.pop(1)
    if damage == 'garble':
        entries[0] = ('0.0', 'A' * len(parts[0]))
    if damage == 'nomanifest':
        entries.pop()
    with pytest.raises(channel.ChannelError, match=message):
        channel.assemble(entries, ['/x'])


@pytest.mark.parametrize('data', [b'#!/bin/sh\necho hi\n' * 3000, os.urandom(90000), b''])
def test_a_file_sent_in_program_arguments_is_rebuilt_and_checked(tmp_path, data):
    text, compression, sha256 = channel.encode_upload(data)
    parts = tmp_path / 'parts'
    parts.mkdir()
    chunks = channel.split_chunks(text)
    for number, chunk in enumerate(chunks):
        spec = channel.part_spec(str(parts), number, chunk)
        assert start_request_size(spec) < channel.MAX_START_REQUEST
        assert run_spec(spec) == 0
    dest = tmp_path / 'dest'
    assert run_spec(channel.assembler_spec(str(parts), len(chunks), str(dest), sha256, 0o750, compression=compression)) == 0
    assert dest.read_bytes() == data and (os.stat(str(dest)).st_mode & 0o777) == 0o750
    assert not parts.exists(), 'the parts are removed'
    # A wrong digest leaves neither the file nor a temporary file, and says so with its exit code.
    parts.mkdir()
    for number, chunk in enumerate(chunks):
        run_spec(channel.part_spec(str(parts), number, chunk))
    code = run_spec(channel.assembler_spec(str(parts), len(chunks), str(tmp_path / 'other'), '0' * 64, 0o644,
                                           compression=compression))
    assert code == 8 and 'damaged' in channel.ASSEMBLER_ERRORS[code]
    assert sorted(os.listdir(str(tmp_path))) == ['dest']


def test_the_decoder_keeps_an_existing_file_without_overwrite(tmp_path):
    (tmp_path / 'dest').write_bytes(b'old')
    text, compression, sha256 = channel.encode_upload(b'new')
    (tmp_path / 'parts').mkdir()
    run_spec(channel.part_spec(str(tmp_path / 'parts'), 0, text))
    assert run_spec(channel.assembler_spec(str(tmp_path / 'parts'), 1, str(tmp_path / 'dest'), sha256, 0o644,
                                           overwrite=False, compression=compression)) == 7
    assert (tmp_path / 'dest').read_bytes() == b'old'


def test_request_size_counts_like_the_vix_message_and_is_capped():
    spec = ProgramSpec('/bin/sh', 'x' * 10, '/tmp', ['A=b'])
    assert start_request_size(spec) == 72 + 8 + 11 + 5 + 4
    assert channel.check_request_size(spec, 'web01') == start_request_size(spec)
    big = ProgramSpec('/bin/sh', 'x' * channel.MAX_START_REQUEST)
    with pytest.raises(VSphereError, match=r'the request is 480\d\d bytes .* more than the 48000') as info:
        channel.check_request_size(big, 'web01')
    assert info.value.retryable is False and '60,536' in info.value.msg
    assert channel.MAX_START_REQUEST <= 0.8 * 60536


def test_shorten_keeps_a_short_prefix():
    assert shorten('echo hi') == 'echo hi'
    long_text = 'x' * 5000
    assert shorten(long_text) == 'x' * 1024 + '... (3976 more characters)'
    assert shorten(['a', 'b' * 2000]) == ['a', 'b' * 1023, '... (977 more characters)']
    assert shorten(['a', 'b']) == ['a', 'b']


def test_windows_guests_are_refused_with_advice():
    with pytest.raises(VSphereError, match='Linux guests only, and VM .win1. runs Windows'):
        channel.require_linux('windows', 'win1')
    channel.require_linux('linux', 'web01')


# --------------------------------------------------------------------------- the client

def make_client(mode, family='linuxGuest'):
    session = VSphereSession('vc.example.com', 'user', 'pw', 443, False)
    session.si = mock.Mock()
    fm, pm = mock.Mock(), mock.Mock()
    session._guest_managers = dict(fileManager=fm, processManager=pm, authManager=mock.Mock())
    vm = VirtualMachine(vim.VirtualMachine('vm-7'), {'name': 'web01', 'guest.guestFamily': family})
    session._sleep = lambda seconds: None
    return GuestClient(session, vm, 'root', 'pw', transfer_mode=mode, sleep=lambda seconds: None), fm


def _refused(*args, **kwargs):
    raise requests.exceptions.ConnectionError(ConnectionRefusedError(111, 'Connection refused'))


def _unreachable_host_and_vcenter_reader(fm):
    """Transfer URLs naming a host that refuses (with _refused), and a vCenter channel that reads 'abc'."""
    fm.InitiateFileTransferFromGuest.return_value = mock.Mock(url='https://10.0.0.9:443/guestFile?id=1&token=t', size=3)
    return mock.Mock(side_effect=lambda paths, limit, directory=None: [
        channel.ChannelFile(path, 'ok', b'abc', 3) for path in paths])


def test_auto_switches_to_vcenter_when_the_esxi_host_refuses_and_stays_there():
    client, fm = make_client('auto')
    read = _unreachable_host_and_vcenter_reader(fm)
    with mock.patch.object(requests.Session, 'request', side_effect=_refused), \
            mock.patch.object(client, 'read_through_vcenter', read):
        assert client.download_bytes('/x').data == b'abc'
        assert client.download_bytes('/y').data == b'abc'
    assert fm.InitiateFileTransferFromGuest.call_count == 1, 'the ESXi host is not tried again'
    assert read.call_count == 2 and client.channel == 'vcenter' and client.transfer_used == 'vcenter'
    assert "could not be reached" in client.transfer_note and '10.0.0.9:443' in client.transfer_note


def test_the_next_task_of_a_kept_session_starts_on_vcenter_after_a_switch():
    first, fm = make_client('auto')
    read = _unreachable_host_and_vcenter_reader(fm)
    with mock.patch.object(requests.Session, 'request', side_effect=_refused), \
            mock.patch.object(first, 'read_through_vcenter', read):
        first.download_bytes('/x')
    kept = first.session.kept_extra
    # The next task of the run: the session reattached with what the first one kept.
    second, fm = make_client('auto')
    second.session.kept_extra = kept
    with mock.patch.object(requests.Session, 'request', side_effect=AssertionError('no ESXi request')), \
            mock.patch.object(second, 'read_through_vcenter', read):
        assert second.download_bytes('/y').data == b'abc'
    assert fm.InitiateFileTransferFromGuest.call_count == 0
    assert 'earlier in this run' in second.transfer_note and '10.0.0.9:443' in second.transfer_note
    # Forced esxi tries the host again; another VM is not affected.
    assert make_client('esxi')[0].channel == 'esxi'
    other, fm = make_client('auto')
    other.session.kept_extra = kept
    other.vm = VirtualMachine(vim.VirtualMachine('vm-8'), {'name': 'web02', 'guest.guestFamily': 'linuxGuest'})
    assert other.channel == 'esxi'


def test_a_batch_announced_before_the_switch_is_read_in_one_go():
    client, fm = make_client('auto')
    fm.InitiateFileTransferFromGuest.return_value = mock.Mock(url='https://10.0.0.9:443/guestFile?id=1&token=t', size=3)
    read = mock.Mock(return_value=[channel.ChannelFile('/j/rc', 'ok', b'0\n', 2),
                                   channel.ChannelFile('/j/stdout', 'ok', b'out', 3),
                                   channel.ChannelFile('/j/stderr', 'missing')])
    client.prefetch(['/j/rc', '/j/stdout', '/j/stderr'], 1000, directory='/j')
    with mock.patch.object(requests.Session, 'request', side_effect=_refused), \
            mock.patch.object(client, 'read_through_vcenter', read):
        assert client.download_bytes('/j/rc', limit=64).data == b'0\n'
        assert client.download_bytes('/j/stdout', limit=1000).data == b'out'
        with pytest.raises(VSphereError) as info:
            client.download_bytes('/j/stderr', limit=1000)
    assert isinstance(info.value.fault, vim.fault.FileNotFound)
    read.assert_called_once_with(['/j/rc', '/j/stdout', '/j/stderr'], 1000, '/j')


@pytest.mark.parametrize('mode, error', [
    ('esxi', _refused),
    ('auto', requests.exceptions.SSLError('certificate verify failed')),
])
def test_no_switch_when_forced_to_esxi_or_for_a_certificate_problem(mode, error):
    client, fm = make_client(mode)
    fm.InitiateFileTransferFromGuest.return_value = mock.Mock(url='https://10.0.0.9:443/guestFile?id=1&token=t', size=3)
    with mock.patch.object(requests.Session, 'request', side_effect=error):
        with pytest.raises(VSphereError):
            client.download_bytes('/x')
    assert client.channel == 'esxi' and client.transfer_note is None


def test_auto_does_not_switch_for_windows_and_says_why():
    client, fm = make_client('auto', family='windowsGuest')
    fm.InitiateFileTransferFromGuest.return_value = mock.Mock(url='https://10.0.0.9:443/guestFile?id=1&token=t', size=3)
    with mock.patch.object(requests.Session, 'request', side_effect=_refused):
        with pytest.raises(VSphereError) as info:
            client.download_bytes('C:\\x')
    assert 'cannot be reached' in info.value.msg and 'works with Linux guests only' in info.value.msg
    assert client.channel == 'esxi'


def test_uploads_through_vcenter_are_capped_and_fetches_too():
    client, fm = make_client('vcenter')
    big = b'x' * (channel.UPLOAD_CAP + 1)
    with pytest.raises(VSphereError, match='at most 1048576 bytes can be copied'):
        client.upload(io.BytesIO(big), len(big), '/tmp/f')
    assert not fm.method_calls, 'nothing was sent'
    read = mock.Mock(return_value=[channel.ChannelFile('/big', 'ok', b'y' * 10, channel.FETCH_CAP + 5)])
    with mock.patch.object(client, 'read_through_vcenter', read):
        with pytest.raises(VSphereError, match='at most 4194304 bytes can be fetched'):
            client.download_to('/big', io.BytesIO())
