# -*- coding: utf-8 -*-
# Copyright (c) guestops.vsphere contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import datetime
import io
from unittest import mock

import pytest

import requests  # noqa: E402
from pyVmomi import vim  # noqa: E402

from ansible_collections.guestops.vsphere.plugins.module_utils._esxi_host import (  # noqa: E402
    ContextAdapter,
    PinnedAdapter,
    SizedReader,
    management_ips,
    pem_sha256,
    scrub,
    split_host_port,
    transfer_url,
    url_host,
)
from ansible_collections.guestops.vsphere.plugins.module_utils._guest import (  # noqa: E402
    POLL_CAP,
    GuestClient,
    WaitTimeout,
    poll_delay,
)
from ansible_collections.guestops.vsphere.plugins.module_utils._vsphere import (  # noqa: E402
    VirtualMachine,
    VSphereError,
    VSphereSession,
)
from ansible_collections.guestops.vsphere.tests.unit.plugins.fake_clock import FakeClock  # noqa: E402

URL = 'https://*:443/guestFile?id=12891&token=522196ad-2a0e-c349-7eab-6215447ab8d912891'


# --------------------------------------------------------------------------- transfer URLs

@pytest.mark.parametrize('url, host, port, override, expected', [
    # '*' becomes the host the client used; the port in the URL is kept
    (URL, 'vc.example.com', 443, None,
     'https://vc.example.com:443/guestFile?id=12891&token=522196ad-2a0e-c349-7eab-6215447ab8d912891'),
    ('https://*:8989/guestFile?id=1&token=443x443', '127.0.0.1', 8989, None,
     'https://127.0.0.1:8989/guestFile?id=1&token=443x443'),
    # a port that differs from the client's is not touched
    ('https://*:443/guestFile?id=1&token=t', 'localhost', 10443, None, 'https://localhost:443/guestFile?id=1&token=t'),
    # no port in the URL: the server that was called, i.e. the client's port
    ('https://*/guestFile?id=1&token=t', 'vc', 8443, None, 'https://vc:8443/guestFile?id=1&token=t'),
    ('https://*/guestFile?id=1&token=t', 'vc', 443, None, 'https://vc/guestFile?id=1&token=t'),
    # IPv6 client host gets brackets
    ('https://*:443/guestFile?id=1&token=t', '::1', 443, None, 'https://[::1]:443/guestFile?id=1&token=t'),
    ('https://*:443/guestFile?id=1&token=t', 'fe80::1', 443, None, 'https://[fe80::1]:443/guestFile?id=1&token=t'),
    # a URL naming an ESXi host is left alone
    ('https://esx1.example.com:443/guestFile?id=1&token=*', 'vc', 443, None,
     'https://esx1.example.com:443/guestFile?id=1&token=*'),
    ('https://[fd00::5]:443/guestFile?id=1&token=t', 'vc', 443, None, 'https://[fd00::5]:443/guestFile?id=1&token=t'),
    # override: host only keeps the URL's port; host:port replaces both
    ('https://esx1:443/guestFile?id=1&token=t', 'vc', 443, '10.0.0.5', 'https://10.0.0.5:443/guestFile?id=1&token=t'),
    ('https://*:443/guestFile?id=1&token=t', 'vc', 443, 'esx.lab:8443', 'https://esx.lab:8443/guestFile?id=1&token=t'),
    ('https://*:443/guestFile?id=1&token=t', 'vc', 443, '[fd00::9]:9443', 'https://[fd00::9]:9443/guestFile?id=1&token=t'),
    ('https://*:443/guestFile?id=1&token=t', 'vc', 443, 'fd00::9', 'https://[fd00::9]:443/guestFile?id=1&token=t'),
    # vcsim-style path is kept byte for byte
    ('https://*/guestFile/tmp/foo%20bar?id=abc&token=k', 'h', 443, None, 'https://h/guestFile/tmp/foo%20bar?id=abc&token=k'),
])
def test_transfer_url(url, host, port, override, expected):
    assert transfer_url(url, host, port, override) == expected


def test_transfer_url_never_touches_query():
    url = 'https://*:443/guestFile?id=443&token=*443*'
    assert transfer_url(url, 'vc', 8443).endswith('/guestFile?id=443&token=*443*')


@pytest.mark.parametrize('netloc, expected', [
    ('h', ('h', None)), ('h:1', ('h', 1)), ('[::1]', ('::1', None)), ('[::1]:8', ('::1', 8)), ('::1', ('::1', None)),
    ('*:443', ('*', 443)),
])
def test_split_host_port(netloc, expected):
    assert split_host_port(netloc) == expected


@pytest.mark.parametrize('netloc', ['[::1', 'h:x', '[::1]x'])
def test_split_host_port_rejects(netloc):
    with pytest.raises(ValueError):
        split_host_port(netloc)


def test_transfer_url_rejects_relative():
    with pytest.raises(ValueError):
        transfer_url('/guestFile?id=1', 'h', 443)


def test_url_host_and_scrub():
    assert url_host('https://u@esx1:443/guestFile?id=1&token=secret') == 'esx1:443'
    assert scrub("Max retries exceeded with url: /guestFile?id=1&token=abc-123 (x)") == \
        "Max retries exceeded with url: /guestFile?id=1&token=*** (x)"


# --------------------------------------------------------------------------- polling

def test_poll_delay_grows_and_caps():
    delays = [poll_delay(n) for n in range(30)]
    assert delays[0] <= 0.2
    assert all(a <= b for a, b in zip(delays, delays[1:]))
    assert max(delays) == POLL_CAP
    assert POLL_CAP < 300 / 10  # far below the 5-minute expiry of exit codes


@pytest.mark.parametrize('attempt, expected', [(0, 1.0), (1, 2.0), (2, 4.0), (3, 5.0), (50, 5.0)])
def test_poll_delay_parameters(attempt, expected):
    assert poll_delay(attempt, first=1.0, factor=2.0, cap=5.0) == expected


def test_poll_delay_negative():
    with pytest.raises(ValueError):
        poll_delay(-1)


# --------------------------------------------------------------------------- client with fake managers

def host_props(name='esx1', ips=(), sha1=None, pem=None):
    """HostSystem properties as vCenter returns them to GuestClient.esxi_host."""
    vnics = [vim.host.VirtualNic(device='vmk%d' % i, key='management.key-vim.host.VirtualNic-vmk%d' % i,
                                 spec=vim.host.VirtualNic.Specification(ip=vim.host.IpConfig(dhcp=False, ipAddress=ip)))
             for i, ip in enumerate(ips)]
    config = [vim.host.VirtualNicManager.NetConfig(nicType='management', multiSelectAllowed=True, candidateVnic=vnics,
                                                   selectedVnic=[v.key for v in vnics])]
    props = {'name': name, 'runtime.connectionState': 'connected', 'summary.config.sslThumbprint': sha1,
             'config.virtualNicManagerInfo.netConfig': config}
    if pem is not None:
        props['config.certificate'] = [b if b < 128 else b - 256 for b in pem]
    return props


def make_client(validate_certs=False, transfer_host=None, host=None, transfer_validate='ca', transfer_mode='esxi'):
    session = VSphereSession('vc.example.com', 'user', 'pw', 443, validate_certs)
    session.si = mock.Mock()
    host = host if host is not None else host_props()
    session.retrieve = mock.Mock(side_effect=lambda step, objects, props, vm_name=None: [
        (objects[0].obj, host if props[0].type is vim.HostSystem else {'runtime.host': vim.HostSystem('host-9')})])
    file_manager, process_manager, auth_manager = mock.Mock(), mock.Mock(), mock.Mock()
    session._guest_managers = dict(fileManager=file_manager, processManager=process_manager, authManager=auth_manager)
    vm = VirtualMachine(vim.VirtualMachine('vm-7'), {'name': 'web01'})
    clock = FakeClock()
    session._sleep, session._clock = clock.sleep, clock
    client = GuestClient(session, vm, 'root', 'guestpw', transfer_host=transfer_host, transfer_validate=transfer_validate,
                         transfer_mode=transfer_mode,
                         sleep=clock.sleep, clock=clock)
    return client, file_manager, process_manager, clock


def proc(pid, exit_code=None, ended=False):
    now = datetime.datetime(2025, 1, 1, tzinfo=datetime.timezone.utc)
    return vim.vm.guest.ProcessManager.ProcessInfo(
        name='sh', pid=pid, owner='root', cmdLine='x', startTime=now,
        endTime=now if ended else None, exitCode=exit_code)


def test_auth_never_interactive_and_password_only_in_auth():
    client = make_client()[0]
    assert client.auth.username == 'root' and client.auth.password == 'guestpw'
    assert client.auth.interactiveSession is False


def test_wait_for_exit_polls_fast_then_returns_exit_code():
    client, fm, pm, clock = make_client()
    pm.ListProcessesInGuest.side_effect = [[proc(5)], [proc(5)], [proc(5, 3, ended=True)]]
    ended = client.wait_for_exit(5, 60)
    assert ended.exit_code == 3 and not ended.expired
    assert clock.sleeps[0] <= 0.2
    assert pm.ListProcessesInGuest.call_args.kwargs['pids'] == [5]


def test_wait_for_exit_retries_transient_faults():
    client, fm, pm, clock = make_client()
    pm.ListProcessesInGuest.side_effect = [
        vim.fault.GuestOperationsUnavailable(), vim.fault.TaskInProgress(), [proc(5, 0, ended=True)]]
    assert client.wait_for_exit(5, 60).exit_code == 0


def test_wait_for_exit_does_not_retry_real_faults():
    client, fm, pm, clock = make_client()
    pm.ListProcessesInGuest.side_effect = vim.fault.InvalidGuestLogin()
    with pytest.raises(VSphereError, match="Listing guest processes failed for VM 'web01'"):
        client.wait_for_exit(5, 60)


def test_wait_for_exit_times_out_and_mentions_last_transient():
    client, fm, pm, clock = make_client()
    pm.ListProcessesInGuest.side_effect = vim.fault.GuestOperationsUnavailable()
    with pytest.raises(WaitTimeout) as info:
        client.wait_for_exit(5, 10)
    assert info.value.pid == 5
    assert 'did not finish within 10 seconds' in info.value.msg
    assert 'could not be contacted' in info.value.msg
    assert clock.now == pytest.approx(10)


def test_wait_for_exit_reports_a_forgotten_process_without_guessing_its_exit_code():
    client, fm, pm, clock = make_client()
    pm.ListProcessesInGuest.return_value = []
    ended = client.wait_for_exit(5, 60)
    assert ended.expired and ended.exit_code is None


def test_wait_for_exit_needs_an_end_time_not_just_an_exit_code():
    """Processes the API did not start are listed with exitCode 0 but no endTime while they run."""
    client, fm, pm, clock = make_client()
    pm.ListProcessesInGuest.side_effect = [[proc(5, 0)], [proc(5, 0)], [proc(5, 4, ended=True)]]
    assert client.wait_for_exit(5, 60).exit_code == 4
    assert pm.ListProcessesInGuest.call_count == 3


def test_terminate_already_gone():
    client, fm, pm, clock = make_client()
    pm.TerminateProcessInGuest.side_effect = vim.fault.GuestProcessNotFound(pid=5)
    assert client.terminate(5) is False


def test_delete_directory_file_and_missing():
    client, fm, pm, clock = make_client()
    assert client.delete('/d') is True
    fm.DeleteDirectoryInGuest.assert_called_once()
    assert fm.DeleteDirectoryInGuest.call_args.kwargs['recursive'] is True

    fm.DeleteDirectoryInGuest.side_effect = vim.fault.NotADirectory(file='/f')
    assert client.delete('/f') is True
    fm.DeleteFileInGuest.assert_called_once()

    fm.DeleteDirectoryInGuest.side_effect = vim.fault.FileNotFound(file='/gone')
    assert client.delete('/gone') is False


def test_delete_other_errors_propagate():
    client, fm, pm, clock = make_client()
    fm.DeleteDirectoryInGuest.side_effect = vim.fault.GuestPermissionDenied()
    with pytest.raises(VSphereError, match="Deleting a guest directory failed for VM 'web01'"):
        client.delete('/root/x')


def _listing(*entries):
    attrs = vim.vm.guest.FileManager.PosixFileAttributes(permissions=0o100644, ownerId=0, groupId=0)
    files = [vim.vm.guest.FileManager.FileInfo(path=p, type=t, size=s, attributes=attrs) for p, t, s in entries]
    return vim.vm.guest.FileManager.ListFileInfo(files=files, remaining=0)


@pytest.mark.parametrize('listing, expected_type, size', [
    (_listing(('.', 'directory', 4096), ('..', 'directory', 4096)), 'directory', None),
    (_listing(('/tmp/f', 'file', 12)), 'file', 12),
    (_listing(), 'directory', None),
])
def test_stat(listing, expected_type, size):
    client, fm, pm, clock = make_client()
    fm.ListFilesInGuest.return_value = listing
    info = client.stat('/tmp/f')
    assert info['type'] == expected_type and info['size'] == size


def test_stat_missing():
    client, fm, pm, clock = make_client()
    fm.ListFilesInGuest.side_effect = vim.fault.FileNotFound(file='/x')
    assert client.stat('/x') is None


def test_start_program_passes_the_spec():
    from ansible_collections.guestops.vsphere.plugins.module_utils._command_line import ProgramSpec
    client, fm, pm, clock = make_client()
    pm.StartProgramInGuest.return_value = 4242
    assert client.start_program(ProgramSpec('/bin/sh', '-c x', '/srv', ['A=1'])) == 4242
    spec = pm.StartProgramInGuest.call_args.kwargs['spec']
    assert (spec.programPath, spec.arguments, spec.workingDirectory, list(spec.envVariables)) == \
        ('/bin/sh', '-c x', '/srv', ['A=1'])
    assert 'guestpw' not in spec.arguments


def test_start_program_missing_program_message():
    from ansible_collections.guestops.vsphere.plugins.module_utils._command_line import ProgramSpec
    client, fm, pm, clock = make_client()
    pm.StartProgramInGuest.side_effect = vim.fault.FileNotFound(file='/bin/nope')
    with pytest.raises(VSphereError) as info:
        client.start_program(ProgramSpec('/bin/nope', ''))
    assert info.value.msg == "Starting the program failed for VM 'web01': guest file or directory '/bin/nope' was not found."


# --------------------------------------------------------------------------- transfers

class FakeResponse(object):
    def __init__(self, status=200, chunks=(), text=''):
        self.status_code = status
        self._chunks = chunks
        self.text = text
        self.closed = False

    def iter_content(self, chunk_size):
        yield from self._chunks

    def close(self):
        self.closed = True


def test_upload_streams_with_length_and_rewritten_url():
    client, fm, pm, clock = make_client()
    fm.InitiateFileTransferToGuest.return_value = 'https://*:443/guestFile?id=1&token=tok'
    sent = {}

    def request(method, url, **kwargs):
        body = kwargs['data']
        sent.update(method=method, url=url, length=len(body), data=b''.join(iter(lambda: body.read(10), b'')))
        return FakeResponse()
    with mock.patch.object(requests.Session, 'request', side_effect=request):
        digest = client.upload(io.BytesIO(b'abc' * 1000), 3000, '/tmp/x', overwrite=False)
    assert sent['method'] == 'PUT'
    assert sent['url'] == 'https://vc.example.com:443/guestFile?id=1&token=tok'
    assert sent['length'] == 3000 and sent['data'] == b'abc' * 1000
    assert digest == __import__('hashlib').sha1(b'abc' * 1000).hexdigest()
    kwargs = fm.InitiateFileTransferToGuest.call_args.kwargs
    assert kwargs['fileSize'] == 3000 and kwargs['overwrite'] is False


def test_sized_reader_reads_big_chunks():
    reader = SizedReader(io.BytesIO(b'x' * (3 * 1024 * 1024)), 3 * 1024 * 1024)
    assert len(reader.read(8192)) == 1024 * 1024


def test_download_reads_to_eof_without_content_length():
    client, fm, pm, clock = make_client(transfer_host='10.1.1.1')
    fm.InitiateFileTransferFromGuest.return_value = vim.vm.guest.FileManager.FileTransferInformation(
        url='https://esx1:443/guestFile?id=1&token=t', size=6,
        attributes=vim.vm.guest.FileManager.PosixFileAttributes())
    out = io.BytesIO()
    with mock.patch.object(requests.Session, 'request', return_value=FakeResponse(chunks=[b'abc', b'def'])) as req:
        size, digest = client.download_to('/var/log/x', out)
    assert req.call_args.args[1] == 'https://10.1.1.1:443/guestFile?id=1&token=t'
    assert req.call_args.kwargs['stream'] is True
    assert (size, out.getvalue()) == (6, b'abcdef')


def test_download_bytes_limit():
    client, fm, pm, clock = make_client()
    fm.InitiateFileTransferFromGuest.return_value = mock.Mock(url='https://*/guestFile?id=1&token=t', size=10)
    with mock.patch.object(requests.Session, 'request', return_value=FakeResponse(chunks=[b'12345', b'67890'])):
        got = client.download_bytes('/x', limit=7)
    assert (got.data, got.size, got.truncated) == (b'1234567', 10, True)


def test_unreachable_transfer_host_is_named_and_token_hidden():
    client, fm, pm, clock = make_client()
    fm.InitiateFileTransferFromGuest.return_value = mock.Mock(url='https://esx9.lab:443/guestFile?id=1&token=SECRET', size=1)
    error = requests.exceptions.ConnectionError(
        "HTTPSConnectionPool(host='esx9.lab', port=443): Max retries exceeded with url: /guestFile?id=1&token=SECRET")
    with mock.patch.object(requests.Session, 'request', side_effect=error):
        with pytest.raises(VSphereError) as info:
            client.download_bytes('/x')
    assert ("the ESXi host 'esx9.lab' (tried esx9.lab:443, the name as vCenter gave it; vCenter reports no "
            "management address) cannot be reached") in info.value.msg
    assert 'open TCP port 443 of esx9.lab' in info.value.msg and 'transfer_host' in info.value.msg
    assert 'SECRET' not in info.value.msg


def test_http_error_status():
    client, fm, pm, clock = make_client()
    fm.InitiateFileTransferFromGuest.return_value = mock.Mock(url='https://*/guestFile?id=1&token=t', size=1)
    with mock.patch.object(requests.Session, 'request', return_value=FakeResponse(status=500, text='boom token=t')):
        with pytest.raises(VSphereError, match=r"answered HTTP 500 \(boom token=\*\*\*\)"):
            client.download_bytes('/x')


def test_transfers_use_the_sessions_tls_settings():
    client = make_client(validate_certs=True)[0]
    http = client._http_session()
    assert http.verify is True
    adapter = http.get_adapter('https://esx1/')
    assert adapter._ssl_context is client.session.ssl_context()
    assert make_client(validate_certs=False)[0]._http_session().verify is False


class BrokenResponse(FakeResponse):
    def iter_content(self, chunk_size):
        yield b'abcd'
        raise requests.exceptions.ChunkedEncodingError('Connection broken: /guestFile?id=1&token=SECRET')


@pytest.mark.parametrize('read', [
    lambda client: client.download_to('/x', io.BytesIO()),
    lambda client: client.download_bytes('/x', limit=100),
])
def test_broken_download_is_named_token_hidden_and_closed(read):
    client, fm, pm, clock = make_client()
    fm.InitiateFileTransferFromGuest.return_value = mock.Mock(url='https://*/guestFile?id=1&token=SECRET', size=9)
    response = BrokenResponse()
    with mock.patch.object(requests.Session, 'request', return_value=response):
        with pytest.raises(VSphereError) as info:
            read(client)
    assert ("Downloading '/x' failed for VM 'web01': the connection to the transfer host 'vc.example.com' broke off "
            "after 4 bytes") in info.value.msg
    assert 'SECRET' not in info.value.msg and response.closed


def test_download_bytes_closes_the_response_at_the_limit():
    client, fm, pm, clock = make_client()
    fm.InitiateFileTransferFromGuest.return_value = mock.Mock(url='https://*/guestFile?id=1&token=t', size=10)
    response = FakeResponse(chunks=[b'12345', b'67890'])
    with mock.patch.object(requests.Session, 'request', return_value=response):
        assert client.download_bytes('/x', limit=3).data == b'123'
    assert response.closed


@pytest.mark.parametrize('verify, reqs', [(True, 'CERT_REQUIRED'), (False, 'CERT_NONE')])
def test_transfer_adapter_keeps_requests_bundle_out_of_the_shared_context(verify, reqs):
    import ssl  # pylint: disable=import-outside-toplevel

    context = ssl.create_default_context()
    loaded_before = context.cert_store_stats()
    adapter = ContextAdapter(context)
    conn = mock.Mock(ca_certs='/bundle/from/requests.pem', ca_cert_dir='/some/dir')
    adapter.cert_verify(conn, 'https://esx01:443/guestFile?id=1', verify, None)
    assert conn.cert_reqs == reqs
    assert conn.ca_certs is None and conn.ca_cert_dir is None
    assert context.cert_store_stats() == loaded_before


def test_a_broken_download_is_repeated_with_a_new_url_and_starts_over():
    client, fm, pm, clock = make_client()
    fm.InitiateFileTransferFromGuest.return_value = mock.Mock(url='https://*/guestFile?id=1&token=t', size=6)
    out = io.BytesIO()
    with mock.patch.object(requests.Session, 'request', side_effect=[BrokenResponse(), FakeResponse(chunks=[b'abc', b'def'])]):
        size, digest = client.download_to('/x', out)
    assert (size, out.getvalue()) == (6, b'abcdef')
    assert fm.InitiateFileTransferFromGuest.call_count == 2


def test_a_download_that_keeps_breaking_says_how_often_it_was_tried():
    client, fm, pm, clock = make_client()
    fm.InitiateFileTransferFromGuest.return_value = mock.Mock(url='https://*/guestFile?id=1&token=t', size=6)
    with mock.patch.object(requests.Session, 'request', side_effect=lambda *a, **k: BrokenResponse()):
        with pytest.raises(VSphereError) as info:
            client.download_bytes('/x')
    assert 'Tried 3 times' in info.value.msg and info.value.retryable
    assert fm.InitiateFileTransferFromGuest.call_count == 3


def test_an_unreachable_transfer_host_is_not_tried_again():
    client, fm, pm, clock = make_client()
    fm.InitiateFileTransferFromGuest.return_value = mock.Mock(url='https://esx9:443/guestFile?id=1&token=t', size=1)
    refused = requests.exceptions.ConnectionError(ConnectionRefusedError(111, 'Connection refused'))
    with mock.patch.object(requests.Session, 'request', side_effect=refused):
        with pytest.raises(VSphereError, match='cannot be reached') as info:
            client.download_bytes('/x')
    assert fm.InitiateFileTransferFromGuest.call_count == 1 and info.value.retryable is False


def test_a_transfer_that_ends_early_is_not_taken_for_the_whole_file():
    client, fm, pm, clock = make_client()
    fm.InitiateFileTransferFromGuest.return_value = mock.Mock(url='https://*/guestFile?id=1&token=t', size=10)
    with mock.patch.object(requests.Session, 'request', side_effect=lambda *a, **k: FakeResponse(chunks=[b'1234'])):
        with pytest.raises(VSphereError, match='ended after 4 of 10 bytes'):
            client.download_to('/x', io.BytesIO())


def test_start_program_after_a_dropped_connection_adopts_the_program_that_started():
    client, fm, pm, clock = make_client()
    pm.StartProgramInGuest.side_effect = ConnectionResetError(104, 'Connection reset by peer')
    started = proc(77)
    started.cmdLine = '"/bin/sh" -c wrapper /tmp/ansible-exec-x1-abc-vmware2/stdout'
    pm.ListProcessesInGuest.return_value = [proc(5), started]
    spec = mock.Mock(program_path='/bin/sh', arguments='x', working_directory=None, env=None)
    assert client.start_program(spec, marker='/tmp/ansible-exec-x1-abc-vmware2') == 77
    assert pm.StartProgramInGuest.call_count == 1


def test_start_program_after_a_dropped_connection_starts_again_when_nothing_started():
    client, fm, pm, clock = make_client()
    pm.StartProgramInGuest.side_effect = [ConnectionResetError(104, 'reset'), 88]
    pm.ListProcessesInGuest.return_value = [proc(5)]
    spec = mock.Mock(program_path='/bin/sh', arguments='x', working_directory=None, env=None)
    assert client.start_program(spec, marker='/tmp/ansible-exec-x1-abc-vmware2') == 88
    with pytest.raises(VSphereError):
        pm.StartProgramInGuest.side_effect = ConnectionResetError(104, 'reset')
        client.start_program(spec)  # no marker: never repeated


# --------------------------------------------------------------------------- reaching and trusting the ESXi host

NAMED = 'https://esx1.lab:443/guestFile?id=5&token=SECRET'


@pytest.mark.parametrize('url, address, expected', [
    (NAMED, '10.0.0.5', 'https://10.0.0.5:443/guestFile?id=5&token=SECRET'),
    ('https://DC0_H0:8989/guestFile?id=5&token=t', '127.0.1.1', 'https://127.0.1.1:8989/guestFile?id=5&token=t'),
    ('https://esx1/guestFile?id=5&token=t', 'fd00::5', 'https://[fd00::5]/guestFile?id=5&token=t'),
    (NAMED, None, NAMED),
    ('https://*:443/guestFile?id=5&token=t', '10.0.0.5', 'https://vc:443/guestFile?id=5&token=t'),
])
def test_transfer_url_puts_the_management_address_in_for_a_named_host(url, address, expected):
    assert transfer_url(url, 'vc', 443, host_address=address) == expected


def test_transfer_host_wins_over_the_management_address():
    assert transfer_url(NAMED, 'vc', 443, override='fw.example:9443', host_address='10.0.0.5') == \
        'https://fw.example:9443/guestFile?id=5&token=SECRET'


def test_management_ips_reads_selected_management_vnics_only():
    config = host_props(ips=['10.0.0.5'])['config.virtualNicManagerInfo.netConfig']
    unselected = vim.host.VirtualNic(key='management.key-vim.host.VirtualNic-vmk9', spec=vim.host.VirtualNic.Specification(
        ip=vim.host.IpConfig(dhcp=False, ipAddress='10.9.9.9')))
    config[0].candidateVnic = list(config[0].candidateVnic) + [unselected]
    vmotion = vim.host.VirtualNicManager.NetConfig(nicType='vmotion', multiSelectAllowed=True,
                                                   candidateVnic=[unselected], selectedVnic=[unselected.key])
    assert management_ips(list(config) + [vmotion]) == ['10.0.0.5']
    assert management_ips(None) == []


def _sent_urls(client, fm, calls=1):
    fm.InitiateFileTransferFromGuest.return_value = mock.Mock(url=NAMED, size=2)
    urls = []

    def request(self, method, url, **kwargs):
        urls.append(url)
        return FakeResponse(chunks=[b'ok'])
    with mock.patch.object(requests.Session, 'request', request):
        for dummy in range(calls):
            assert client.download_bytes('/x').data == b'ok'
    return urls


def test_a_named_host_is_reached_at_its_one_management_ip_read_once():
    client, fm, pm, clock = make_client(host=host_props(ips=['10.0.0.5']))
    assert _sent_urls(client, fm, calls=2) == ['https://10.0.0.5:443/guestFile?id=5&token=SECRET'] * 2
    # The VM had no runtime.host in its facts: one call for it, one for the host, then cached.
    assert client.session.retrieve.call_count == 2


def test_the_next_task_of_a_kept_session_finds_the_host_facts_without_a_call():
    first, fm, pm, clock = make_client(host=host_props(name='esx1.lab', ips=['10.0.0.5']))
    _sent_urls(first, fm)
    kept = first.session.kept_extra
    assert kept['esxi_hosts']['esx1.lab']['ips'] == ['10.0.0.5']
    # The next task: a new session object reattached with what the first one kept.
    second, fm, pm, clock = make_client(host=host_props(name='esx1.lab', ips=['10.9.9.9']))
    second.session.kept_extra = kept
    assert _sent_urls(second, fm) == ['https://10.0.0.5:443/guestFile?id=5&token=SECRET']
    assert second.session.retrieve.call_count == 0
    # Pinning needs the certificate, which the kept facts lack: the host is read again.
    third, fm, pm, clock = make_client(host=host_props(name='esx1.lab', ips=['10.0.0.5'], sha1='AB' * 20),
                                       transfer_validate='thumbprint')
    third.session.kept_extra = kept
    with mock.patch.object(requests.Session, 'request', return_value=FakeResponse(chunks=[b'ok'])):
        fm.InitiateFileTransferFromGuest.return_value = mock.Mock(url=NAMED, size=2)
        third.download_bytes('/x')
    assert third.session.retrieve.call_count == 2 and kept['esxi_hosts']['esx1.lab']['with_certificate'] is True


def test_kept_host_facts_are_found_by_the_name_the_url_gives():
    client, fm, pm, clock = make_client(host=host_props(name='esx1.lab', ips=['10.0.0.5']))
    client.session.kept_extra = {'esxi_hosts': {'esx-old': dict(name='esx-old', ips=['10.0.0.1'])}}
    # The VM moved: its URLs name esx1, whose facts are read.
    assert _sent_urls(client, fm) == ['https://10.0.0.5:443/guestFile?id=5&token=SECRET']
    assert client.session.retrieve.call_count == 2


def test_a_vm_with_runtime_host_in_its_facts_costs_one_call():
    client, fm, pm, clock = make_client(host=host_props(ips=['10.0.0.5']))
    client.vm.props['runtime.host'] = vim.HostSystem('host-9')
    _sent_urls(client, fm)
    assert client.session.retrieve.call_count == 1
    assert client.session.retrieve.call_args[0][2][0].pathSet == [
        'name', 'runtime.connectionState', 'summary.config.sslThumbprint', 'config.virtualNicManagerInfo.netConfig']


def test_a_host_with_several_management_ips_is_tried_by_name():
    client, fm, pm, clock = make_client(host=host_props(ips=['10.0.0.5', '10.0.1.5']))
    assert _sent_urls(client, fm) == [NAMED]


def test_transfer_host_and_star_urls_need_no_host_facts():
    client, fm, pm, clock = make_client(transfer_host='10.1.1.1')
    assert _sent_urls(client, fm) == ['https://10.1.1.1:443/guestFile?id=5&token=SECRET']
    client, fm, pm, clock = make_client()
    fm.InitiateFileTransferFromGuest.return_value = mock.Mock(url=URL, size=2)
    with mock.patch.object(requests.Session, 'request', return_value=FakeResponse(chunks=[b'ok'])):
        client.download_bytes('/x')
    assert client.session.retrieve.call_count == 0


def test_a_host_vcenter_will_not_describe_is_tried_as_given():
    client, fm, pm, clock = make_client()
    client.session.retrieve.side_effect = VSphereError('Reading the ESXi host of the VM failed: NoPermission')
    refused = requests.exceptions.ConnectionError(ConnectionRefusedError(111, 'Connection refused'))
    fm.InitiateFileTransferFromGuest.return_value = mock.Mock(url=NAMED, size=1)
    with mock.patch.object(requests.Session, 'request', side_effect=refused):
        with pytest.raises(VSphereError) as info:
            client.download_bytes('/x')
    assert "the ESXi host 'esx1.lab' (tried esx1.lab:443, the name as vCenter gave it; vCenter did not tell" in \
        info.value.msg
    assert 'cannot be reached (connection refused)' in info.value.msg and 'SECRET' not in info.value.msg


CERT_PEM = b"""-----BEGIN CERTIFICATE-----
MIIBhTCCASugAwIBAgIUQk0kL2Yt3XbK7e0L0b0bYbGJ3bkwCgYIKoZIzj0EAwIw
GDEWMBQGA1UEAwwNZ3Vlc3RzaW0gdGVzdDAeFw0yNTAxMDEwMDAwMDBaFw0zNTAx
MDEwMDAwMDBaMBgxFjAUBgNVBAMMDWd1ZXN0c2ltIHRlc3QwWTATBgcqhkjOPQIB
BggqhkjOPQMBBwNCAARKz3b2bX0sY0oM2n6Yc8bqC6Q3u8qk0nqkJ6n2xq8oYl3V
a2xIuE1i9cX0r8S6f8o1bYVZq4lYy0b2M8mC0o6Zo1MwUTAdBgNVHQ4EFgQUn1sP
-----END CERTIFICATE-----
"""


def test_pem_sha256_of_the_signed_byte_list_vcenter_sends():
    import base64  # pylint: disable=import-outside-toplevel
    import hashlib  # pylint: disable=import-outside-toplevel
    body = b''.join(CERT_PEM.split(b'\n')[1:-2])
    expected = hashlib.sha256(base64.b64decode(body)).hexdigest().upper()
    as_bytes = [b if b < 128 else b - 256 for b in CERT_PEM]
    assert pem_sha256(as_bytes) == ':'.join(expected[i:i + 2] for i in range(0, 64, 2))
    assert pem_sha256(CERT_PEM) == pem_sha256(as_bytes)
    assert pem_sha256(None) is None and pem_sha256(b'no certificate') is None


def test_thumbprint_pins_sha256_of_the_certificate_else_sha1():
    sha1 = 'AB:' * 19 + 'CD'
    client, fm, pm, clock = make_client(host=host_props(ips=['10.0.0.5'], sha1=sha1, pem=CERT_PEM),
                                        transfer_validate='thumbprint')
    _sent_urls(client, fm)
    assert client._pins == {'10.0.0.5:443': pem_sha256(CERT_PEM)}
    assert 'config.certificate' in client.session.retrieve.call_args[0][2][0].pathSet
    client, fm, pm, clock = make_client(host=host_props(ips=['10.0.0.5'], sha1=sha1), transfer_validate='thumbprint')
    _sent_urls(client, fm)
    assert client._pins == {'10.0.0.5:443': sha1}
    assert isinstance(client._http_session('https://10.0.0.5:443/guestFile').get_adapter('https://10.0.0.5/'),
                      PinnedAdapter)


def test_thumbprint_without_one_from_vcenter_is_a_clear_error():
    client, fm, pm, clock = make_client(host=host_props(ips=['10.0.0.5']), transfer_validate='thumbprint')
    fm.InitiateFileTransferFromGuest.return_value = mock.Mock(url=NAMED, size=1)
    with pytest.raises(VSphereError, match="vCenter reports no certificate or thumbprint for the ESXi host 'esx1'"):
        client.download_bytes('/x')


def test_pinned_adapter_checks_the_fingerprint_and_not_the_ca():
    adapter = PinnedAdapter({'10.0.0.5:443': 'AB:CD'})
    conn = mock.Mock(ca_certs='/bundle.pem', ca_cert_dir='/dir')
    adapter.cert_verify(conn, 'https://10.0.0.5:443/guestFile', True, None)
    assert conn.cert_reqs == 'CERT_NONE' and conn.assert_fingerprint == 'abcd' and conn.ca_certs is None
    assert adapter._ssl_context.verify_mode == 0 and adapter._ssl_context.check_hostname is False
    with pytest.raises(ValueError):
        adapter.cert_verify(conn, 'https://10.9.9.9:443/guestFile', True, None)


def test_a_wrong_certificate_names_both_fingerprints_and_is_not_retried():
    sha1 = 'AB:' * 19 + 'CD'
    client, fm, pm, clock = make_client(host=host_props(ips=['10.0.0.5'], sha1=sha1), transfer_validate='thumbprint')
    fm.InitiateFileTransferFromGuest.return_value = mock.Mock(url=NAMED, size=1)
    error = requests.exceptions.SSLError('HTTPSConnectionPool(host=10.0.0.5): Max retries exceeded (Caused by '
                                         'SSLError(\'Fingerprints did not match. Expected "%s", got "%s"\'))'
                                         % ('ab' * 19 + 'cd', '01' * 20))
    with mock.patch.object(requests.Session, 'request', side_effect=error):
        with pytest.raises(VSphereError) as info:
            client.download_bytes('/x')
    assert ("the ESXi host 'esx1.lab' (tried 10.0.0.5:443, its management address as vCenter reports it) presented "
            "a TLS certificate with SHA-1 fingerprint %s, but vCenter reports %s" % ('01:' * 19 + '01', sha1)) in \
        info.value.msg
    assert fm.InitiateFileTransferFromGuest.call_count == 1 and info.value.retryable is False


def test_an_unverified_host_certificate_is_named_with_what_to_do():
    import ssl  # pylint: disable=import-outside-toplevel
    client, fm, pm, clock = make_client(host=host_props(ips=['10.0.0.5']))
    fm.InitiateFileTransferFromGuest.return_value = mock.Mock(url=NAMED, size=1)
    cause = ssl.SSLCertVerificationError(1, 'certificate verify failed')
    cause.verify_message = 'self-signed certificate'
    with mock.patch.object(requests.Session, 'request', side_effect=requests.exceptions.SSLError(cause)):
        with pytest.raises(VSphereError) as info:
            client.download_bytes('/x')
    assert "the TLS certificate of the ESXi host 'esx1.lab' (tried 10.0.0.5:443" in info.value.msg
    assert 'self-signed certificate' in info.value.msg and 'transfer_validate=thumbprint' in info.value.msg
    assert fm.InitiateFileTransferFromGuest.call_count == 1


def test_an_eof_mid_upload_is_a_broken_connection_retried_with_a_new_url():
    import ssl  # pylint: disable=import-outside-toplevel
    client, fm, pm, clock = make_client(host=host_props(ips=['10.0.0.5']))
    fm.InitiateFileTransferToGuest.return_value = NAMED
    eof = requests.exceptions.SSLError(ssl.SSLEOFError(8, 'EOF occurred in violation of protocol'))
    with mock.patch.object(requests.Session, 'request', side_effect=eof):
        with pytest.raises(VSphereError) as info:
            client.upload(io.BytesIO(b'abc'), 3, '/tmp/x.tmp', label='/tmp/x')
    assert info.value.msg.startswith("Uploading to '/tmp/x' failed for VM 'web01': the connection to the ESXi host "
                                     "'esx1.lab' (tried 10.0.0.5:443")
    assert 'broke off during the transfer (EOF occurred in violation of protocol)' in info.value.msg
    assert 'certificate' not in info.value.msg and 'Tried 3 times' in info.value.msg
    assert fm.InitiateFileTransferToGuest.call_count == 3


def test_a_refused_url_is_retried_with_a_new_one():
    client, fm, pm, clock = make_client()
    fm.InitiateFileTransferFromGuest.return_value = mock.Mock(url=URL, size=2)
    answers = [FakeResponse(status=404, text='Not Found'), FakeResponse(chunks=[b'ok'])]
    with mock.patch.object(requests.Session, 'request', side_effect=lambda *a, **k: answers.pop(0)):
        assert client.download_bytes('/x').data == b'ok'
    assert fm.InitiateFileTransferFromGuest.call_count == 2


def test_a_host_that_accepts_and_never_answers_is_named_not_retried():
    client, fm, pm, clock = make_client(host=host_props(ips=['10.0.0.5']))
    fm.InitiateFileTransferFromGuest.return_value = mock.Mock(url=NAMED, size=1)
    with mock.patch.object(requests.Session, 'request', side_effect=requests.exceptions.ReadTimeout('timed out')):
        with pytest.raises(VSphereError) as info:
            client.download_bytes('/x')
    assert 'accepted the connection but did not answer within 60 seconds (request_timeout)' in info.value.msg
    assert 'open TCP port 443 of 10.0.0.5' in info.value.msg and fm.InitiateFileTransferFromGuest.call_count == 1


def test_transfer_validate_none_has_a_context_of_its_own():
    client = make_client(validate_certs=True, transfer_validate='none')[0]
    http = client._http_session('https://esx1/guestFile')
    context = http.get_adapter('https://esx1/')._ssl_context
    assert context is not client.session.ssl_context() and context.verify_mode == 0
    assert client.session.ssl_context().verify_mode != 0


def test_unknown_transfer_validate_is_refused():
    with pytest.raises(VSphereError, match='transfer_validate must be one of ca, thumbprint, none'):
        make_client(transfer_validate='maybe')


def test_a_star_url_keeps_the_sessions_trust_whatever_transfer_validate():
    client, fm, pm, clock = make_client(validate_certs=True, transfer_validate='none')
    fm.InitiateFileTransferFromGuest.return_value = mock.Mock(url=URL, size=2)
    contexts = []

    def request(self, method, url, **kwargs):
        contexts.append(self.get_adapter(url)._ssl_context)
        return FakeResponse(chunks=[b'ok'])
    with mock.patch.object(requests.Session, 'request', request):
        client.download_bytes('/x')
    assert contexts == [client.session.ssl_context()]
