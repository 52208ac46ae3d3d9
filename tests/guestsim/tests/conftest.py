"""Shared fixtures: one simulator per test session, a logged-in pyVmomi client per test."""

from __future__ import annotations

import os
import time

import pytest
import requests
from pyVim.connect import Disconnect
from pyVmomi import vim

# The agent polls started programs once a second, so every exit code appears up to 1 s late. The
# shared simulator of this suite polls every 0.1 s to keep the suite fast; the 1-second behaviour is
# tested on a simulator of its own (test_guest_agent.py).
os.environ.setdefault('GUESTSIM_EXIT_POLL_INTERVAL', '0.1')

from guestsim.testing import SimulatorHandle, guestsim_exclusive, guestsim_server  # noqa: F401  pylint: disable=unused-import


@pytest.fixture
def sim(guestsim_server):  # noqa: F811  pylint: disable=redefined-outer-name
    """The session simulator with counters and fault rules reset for this test."""
    guestsim_server.reset()
    yield guestsim_server
    guestsim_server.reset()


@pytest.fixture
def si(sim):  # pylint: disable=redefined-outer-name
    service_instance = sim.connect()
    yield service_instance
    try:
        Disconnect(service_instance)
    except vim.fault.NotAuthenticated:
        pass


@pytest.fixture
def auth():
    return vim.vm.guest.NamePasswordAuthentication(username='root', password='guestpass', interactiveSession=False)


class GuestClient:
    """Test helper bundling a VM, credentials and the guest managers."""

    def __init__(self, handle: SimulatorHandle, service_instance, vm_name: str, credentials):
        self.handle = handle
        self.si = service_instance
        content = service_instance.RetrieveContent()
        self.vm = content.searchIndex.FindByInventoryPath('DC0/vm/' + vm_name)
        assert self.vm is not None, vm_name
        gom = content.guestOperationsManager
        self.files = gom.fileManager
        self.processes = gom.processManager
        self.auth_manager = gom.authManager
        self.auth = credentials

    def url(self, url: str) -> str:
        return self.handle.transfer_url(url)

    def upload(self, path: str, data: bytes, overwrite: bool = True, attributes=None) -> requests.Response:
        attributes = attributes if attributes is not None else vim.vm.guest.FileManager.PosixFileAttributes()
        url = self.files.InitiateFileTransferToGuest(self.vm, self.auth, path, attributes, len(data), overwrite)
        return requests.put(self.url(url), data=data, verify=self.handle.ca_file, timeout=60)

    def download(self, path: str) -> bytes:
        info = self.files.InitiateFileTransferFromGuest(self.vm, self.auth, path)
        response = requests.get(self.url(info.url), verify=self.handle.ca_file, timeout=60)
        assert response.status_code == 200
        assert len(response.content) == info.size
        return response.content

    def temp_dir(self, prefix='test-') -> str:
        return self.files.CreateTemporaryDirectoryInGuest(self.vm, self.auth, prefix, '')

    def start(self, program: str, arguments: str = '', cwd=None, env=None) -> int:
        spec = vim.vm.guest.ProcessManager.ProgramSpec(programPath=program, arguments=arguments,
                                                       workingDirectory=cwd, envVariables=env)
        return self.processes.StartProgramInGuest(self.vm, self.auth, spec)

    def info(self, pid: int):
        found = self.processes.ListProcessesInGuest(self.vm, self.auth, [pid])
        return found[0] if found else None

    def wait(self, pid: int, timeout: float = 60.0):
        deadline = time.monotonic() + timeout
        delay = 0.02
        while time.monotonic() < deadline:
            info = self.info(pid)
            if info is not None and info.endTime is not None:
                return info
            time.sleep(delay)
            delay = min(delay * 2, 0.1)
        raise AssertionError('process %d did not finish within %ss' % (pid, timeout))

    def run(self, program: str, arguments: str = '', **kwargs):
        return self.wait(self.start(program, arguments, **kwargs))


@pytest.fixture
def guest(sim, si, auth):  # pylint: disable=redefined-outer-name
    client = GuestClient(sim, si, 'DC0_H0_VM0', auth)
    yield client


def guest_for(sim_handle, service_instance, vm_name, credentials=None):
    credentials = credentials or vim.vm.guest.NamePasswordAuthentication(username='root', password='guestpass')
    return GuestClient(sim_handle, service_instance, vm_name, credentials)
