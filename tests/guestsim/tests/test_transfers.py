"""/guestFile transfers: one-shot URLs, expiry, overwrite, attributes, sizes, Content-Length, streaming."""

from __future__ import annotations

import http.client
import os
import ssl
import stat
import time
from datetime import datetime, timezone

import pytest
import requests
from pyVmomi import vim, vmodl

from guestsim import Simulator
from guestsim.testing import SimulatorHandle

from .conftest import GuestClient

FM = vim.vm.guest.FileManager


def test_url_shape_and_one_shot_upload(sim, guest):
    base = guest.temp_dir()
    url = guest.files.InitiateFileTransferToGuest(guest.vm, guest.auth, base + '/f', FM.PosixFileAttributes(), 5, False)
    # Through vCenter the URL names the VM's host by its inventory name (govmomi guest/file_manager.go).
    assert url.startswith('https://DC0_H0:%d/guestFile?id=' % sim.port) and '&token=' in url
    assert sim.state()['transfers']['pending'] >= 1
    assert requests.put(guest.url(url), data=b'hello', verify=sim.ca_file, timeout=30).status_code == 200
    assert requests.put(guest.url(url), data=b'again', verify=sim.ca_file, timeout=30).status_code == 404
    with open(base + '/f', 'rb') as handle:
        assert handle.read() == b'hello'
    assert stat.S_IMODE(os.stat(base + '/f').st_mode) == 0o644
    guest.files.DeleteDirectoryInGuest(guest.vm, guest.auth, base, True)


def test_one_shot_download_and_bad_token(sim, guest):
    base = guest.temp_dir()
    assert guest.upload(base + '/f', b'content').status_code == 200
    info = guest.files.InitiateFileTransferFromGuest(guest.vm, guest.auth, base + '/f')
    assert info.size == 7
    assert stat.S_ISREG(info.attributes.permissions) and info.attributes.ownerId == os.getuid()
    forged = guest.url(info.url).rsplit('token=', 1)[0] + 'token=forged'
    assert requests.get(forged, verify=sim.ca_file, timeout=30).status_code == 404
    assert requests.put(guest.url(info.url), data=b'x', verify=sim.ca_file, timeout=30).status_code == 405
    first = requests.get(guest.url(info.url), verify=sim.ca_file, timeout=30)
    assert first.status_code == 200 and first.content == b'content'
    assert requests.get(guest.url(info.url), verify=sim.ca_file, timeout=30).status_code == 404
    guest.files.DeleteDirectoryInGuest(guest.vm, guest.auth, base, True)


def test_overwrite_and_target_checks(guest):
    base = guest.temp_dir()
    assert guest.upload(base + '/f', b'one').status_code == 200
    with pytest.raises(vim.fault.FileAlreadyExists):
        guest.upload(base + '/f', b'two', overwrite=False)
    assert guest.upload(base + '/f', b'two!', overwrite=True).status_code == 200
    assert guest.download(base + '/f') == b'two!'
    with pytest.raises(vim.fault.NotAFile):
        guest.upload(base, b'x')
    with pytest.raises(vim.fault.FileNotFound):
        guest.upload(base + '/missing/f', b'x')
    os.symlink(base + '/f', base + '/link')
    with pytest.raises(vmodl.fault.InvalidArgument):
        guest.upload(base + '/link', b'x')
    with pytest.raises(vmodl.fault.InvalidArgument):
        guest.upload(base + '/w', b'x', attributes=FM.WindowsFileAttributes(hidden=True))
    with pytest.raises(vim.fault.NotAFile):
        guest.files.InitiateFileTransferFromGuest(guest.vm, guest.auth, base)
    with pytest.raises(vim.fault.FileNotFound):
        guest.files.InitiateFileTransferFromGuest(guest.vm, guest.auth, base + '/nope')
    with pytest.raises(vmodl.fault.InvalidArgument):
        guest.files.InitiateFileTransferFromGuest(guest.vm, guest.auth, base + '/link')
    guest.files.DeleteDirectoryInGuest(guest.vm, guest.auth, base, True)


def test_attributes_are_applied(guest):
    base = guest.temp_dir()
    when = datetime(2020, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    attributes = FM.PosixFileAttributes(permissions=0o750, modificationTime=when, ownerId=os.getuid(),
                                        groupId=os.getgid())
    assert guest.upload(base + '/f', b'data', attributes=attributes).status_code == 200
    st = os.stat(base + '/f')
    assert stat.S_IMODE(st.st_mode) == 0o750
    assert int(st.st_mtime) == int(when.timestamp())
    info = guest.files.InitiateFileTransferFromGuest(guest.vm, guest.auth, base + '/f')
    assert info.attributes.modificationTime == when
    requests.get(guest.url(info.url), verify=guest.handle.ca_file, timeout=30)
    guest.files.DeleteDirectoryInGuest(guest.vm, guest.auth, base, True)


def test_size_must_match_and_empty_put_fails(sim, guest):
    base = guest.temp_dir()
    url = guest.files.InitiateFileTransferToGuest(guest.vm, guest.auth, base + '/f', FM.PosixFileAttributes(), 10, True)
    assert requests.put(guest.url(url), data=b'short', verify=sim.ca_file, timeout=30).status_code == 500
    # A failed PUT leaves the URL usable.
    assert requests.put(guest.url(url), data=b'0123456789', verify=sim.ca_file, timeout=30).status_code == 200
    empty = guest.files.InitiateFileTransferToGuest(guest.vm, guest.auth, base + '/e', FM.PosixFileAttributes(), 0,
                                                    True)
    # As observed on ESXi: a 0-byte PUT is answered with HTTP 500.
    assert requests.put(guest.url(empty), data=b'', verify=sim.ca_file, timeout=30).status_code == 500
    guest.files.DeleteDirectoryInGuest(guest.vm, guest.auth, base, True)


def test_content_length_only_for_small_downloads(sim, guest):
    base = guest.temp_dir()
    assert guest.upload(base + '/small', b's' * 100).status_code == 200
    assert guest.upload(base + '/large', b'L' * 5000).status_code == 200
    small = guest.files.InitiateFileTransferFromGuest(guest.vm, guest.auth, base + '/small')
    response = requests.get(guest.url(small.url), verify=sim.ca_file, timeout=30)
    assert response.headers['Content-Length'] == '100'
    large = guest.files.InitiateFileTransferFromGuest(guest.vm, guest.auth, base + '/large')
    response = requests.get(guest.url(large.url), verify=sim.ca_file, timeout=30)
    assert 'Content-Length' not in response.headers and response.content == b'L' * 5000
    assert large.size == 5000
    guest.files.DeleteDirectoryInGuest(guest.vm, guest.auth, base, True)


def test_urls_expire_and_power_off_invalidates(tmp_path):
    with Simulator(port=0, state_dir=str(tmp_path), transfer_ttl=0.5) as simulator:
        handle = SimulatorHandle(simulator)
        guest = GuestClient(handle, handle.connect(), 'DC0_H0_VM1',
                            vim.vm.guest.NamePasswordAuthentication(username='root', password='guestpass'))
        base = guest.temp_dir()
        url = guest.files.InitiateFileTransferToGuest(guest.vm, guest.auth, base + '/f', FM.PosixFileAttributes(),
                                                      1, True)
        time.sleep(0.6)
        assert requests.put(guest.url(url), data=b'x', verify=handle.ca_file, timeout=30).status_code == 404
        assert handle.state()['transfers']['pending'] == 0
    with Simulator(port=0, state_dir=str(tmp_path / 'again')) as simulator:
        handle = SimulatorHandle(simulator)
        guest = GuestClient(handle, handle.connect(), 'DC0_H0_VM1',
                            vim.vm.guest.NamePasswordAuthentication(username='root', password='guestpass'))
        base = guest.temp_dir()
        url = guest.files.InitiateFileTransferToGuest(guest.vm, guest.auth, base + '/f', FM.PosixFileAttributes(),
                                                      1, True)
        handle.power_off('DC0_H0_VM1')
        assert requests.put(guest.url(url), data=b'x', verify=handle.ca_file, timeout=30).status_code == 404


def test_concurrent_use_of_one_url_is_refused(sim, guest):
    base = guest.temp_dir()
    size = 4 * 1024 * 1024
    url = guest.url(guest.files.InitiateFileTransferToGuest(guest.vm, guest.auth, base + '/f',
                                                            FM.PosixFileAttributes(), size, True))
    parsed = requests.utils.urlparse(url)
    context = ssl.create_default_context(cafile=sim.ca_file)
    first = http.client.HTTPSConnection(parsed.hostname, parsed.port, context=context, timeout=30)
    first.putrequest('PUT', parsed.path + '?' + parsed.query)
    first.putheader('Content-Length', str(size))
    first.endheaders()
    first.send(b'a' * 1024)
    # The first upload is still in progress; wait until the server has claimed the ticket.
    deadline = time.monotonic() + 30
    status = None
    while time.monotonic() < deadline:
        status = requests.put(url, data=b'b', verify=sim.ca_file, timeout=30).status_code
        if status == 409:
            break
        time.sleep(0.05)
    assert status == 409
    first.send(b'a' * (size - 1024))
    assert first.getresponse().status == 200
    first.close()
    guest.files.DeleteDirectoryInGuest(guest.vm, guest.auth, base, True)


def test_transfer_from_missing_file_at_get_time(sim, guest):
    base = guest.temp_dir()
    assert guest.upload(base + '/f', b'data').status_code == 200
    info = guest.files.InitiateFileTransferFromGuest(guest.vm, guest.auth, base + '/f')
    os.unlink(base + '/f')
    assert requests.get(guest.url(info.url), verify=sim.ca_file, timeout=30).status_code == 500
    guest.files.DeleteDirectoryInGuest(guest.vm, guest.auth, base, True)
