"""The command line server: startup output, cloud config, a large streamed transfer, clean SIGTERM."""

from __future__ import annotations

import configparser
import hashlib
import json
import os
import signal
import ssl
import subprocess
import sys
import time
import urllib.request

import pytest
import requests
from pyVim.connect import Disconnect, SmartConnect
from pyVmomi import vim

from guestsim.testing import resolve_transfer_url

LARGE = 256 * 1024 * 1024
BLOCK = 1024 * 1024
# The server may grow by at most this much while moving LARGE bytes each way.
MEMORY_BUDGET = 64 * 1024 * 1024


class PatternBody:
    """A request body of ``size`` bytes produced on the fly (requests streams it with Content-Length)."""

    def __init__(self, size: int):
        self.size = size
        self.sent = 0
        self.digest = hashlib.sha1()
        self.block = bytes(range(256)) * (BLOCK // 256)

    def __len__(self):
        return self.size - self.sent

    def read(self, amount: int = -1) -> bytes:
        left = self.size - self.sent
        if left <= 0:
            return b''
        amount = left if amount is None or amount < 0 else min(amount, left)
        amount = min(amount, BLOCK)
        data = self.block[:amount]
        self.sent += amount
        self.digest.update(data)
        return data


def _state(values) -> dict:
    context = ssl.create_default_context(cafile=values['vmware_ca_file'])
    with urllib.request.urlopen(values['guestsim_state_url'], context=context, timeout=30) as response:
        return json.loads(response.read())


def _peak_rss(pid: int) -> int:
    with open('/proc/%d/status' % pid, encoding='utf-8') as handle:
        for line in handle:
            if line.startswith('VmHWM:'):
                return int(line.split()[1]) * 1024
    raise AssertionError('no VmHWM')


@pytest.fixture
def cli_server(tmp_path):
    state_dir = tmp_path / 'state'
    cloud_config = tmp_path / 'cloud-config-vcenter.ini'
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join([os.path.dirname(os.path.dirname(os.path.dirname(__file__)))] +
                                        [p for p in env.get('PYTHONPATH', '').split(os.pathsep) if p])
    process = subprocess.Popen(  # pylint: disable=consider-using-with
        [sys.executable, '-m', 'guestsim', '--port', '0', '--state-dir', str(state_dir),
         '--write-cloud-config', str(cloud_config)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    lines = []
    try:
        while not lines or not lines[-1].startswith('  cloud config:'):
            line = process.stdout.readline()
            if not line:
                raise AssertionError('simulator exited: %s' % process.stderr.read())
            lines.append(line)
        yield process, ''.join(lines), cloud_config, state_dir
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def test_cli_large_transfer_and_clean_shutdown(cli_server):
    process, banner, cloud_config, state_dir = cli_server
    assert 'guestsim listening on https://127.0.0.1:' in banner
    assert 'user / simpass' in banner and 'root / guestpass' in banner
    assert str(state_dir / 'ca.pem') in banner
    config = configparser.ConfigParser()
    config.read(cloud_config)
    values = config['DEFAULT']
    port = int(values['vcenter_port'])
    assert banner.split('https://127.0.0.1:')[1].startswith('%d/sdk' % port)
    assert values['vcenter_hostname'] == '127.0.0.1' and values['vcenter_username'] == 'user'
    assert values['guest_vm_name'] == 'DC0_H0_VM0' and values['vm_noexec'] == 'DC0_H0_VM_NOEXEC'
    # The control endpoints have a listener of their own (up during a simulated vCenter restart).
    control = values['guestsim_control_url']
    assert control.startswith('https://127.0.0.1:') and control.endswith('/guestsim')
    assert values['guestsim_state_url'] == control + '/state'
    assert ':%d/' % port not in control
    assert 'control:       %s' % control in banner
    assert values['vmware_ca_file'] == str(state_dir / 'ca.pem')

    ca_file = str(state_dir / 'ca.pem')
    addresses = {h['name']: h['address'] for h in _state(values)['hosts']}
    service_instance = SmartConnect(host='127.0.0.1', port=port, user=values['vcenter_username'],
                                    pwd=values['vcenter_password'], sslContext=ssl.create_default_context(cafile=ca_file))
    content = service_instance.RetrieveContent()
    vm = content.searchIndex.FindByInventoryPath('DC0/vm/DC0_H0_VM0')
    auth = vim.vm.guest.NamePasswordAuthentication(username='root', password='guestpass')
    files = content.guestOperationsManager.fileManager
    directory = files.CreateTemporaryDirectoryInGuest(vm, auth, 'large-', '')
    path = directory + '/big.bin'
    before = _peak_rss(process.pid)

    body = PatternBody(LARGE)
    url = files.InitiateFileTransferToGuest(vm, auth, path, vim.vm.guest.FileManager.PosixFileAttributes(), LARGE, True)
    response = requests.put(resolve_transfer_url(url, addresses, '127.0.0.1'), data=body, verify=ca_file, timeout=600)
    assert response.status_code == 200
    assert os.path.getsize(path) == LARGE

    info = files.InitiateFileTransferFromGuest(vm, auth, path)
    assert info.size == LARGE
    digest = hashlib.sha1()
    received = 0
    with requests.get(resolve_transfer_url(info.url, addresses, '127.0.0.1'), verify=ca_file, stream=True, timeout=600) as download:
        assert download.status_code == 200
        assert 'Content-Length' not in download.headers  # large downloads come without it, as from ESXi
        for chunk in download.iter_content(BLOCK):
            digest.update(chunk)
            received += len(chunk)
    assert received == LARGE and digest.hexdigest() == body.digest.hexdigest()
    growth = _peak_rss(process.pid) - before
    assert growth < MEMORY_BUDGET, 'server peak RSS grew by %d MiB' % (growth // (1024 * 1024))

    # A running guest program ends when the simulator is stopped with SIGTERM.
    spec = vim.vm.guest.ProcessManager.ProgramSpec(programPath='/bin/sleep', arguments='300')
    pid = content.guestOperationsManager.processManager.StartProgramInGuest(vm, auth, spec)
    files.DeleteDirectoryInGuest(vm, auth, directory, True)
    Disconnect(service_instance)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 0
    assert 'guestsim stopped' in process.stdout.read()
    deadline = time.monotonic() + 10
    while os.path.exists('/proc/%d' % pid):
        stat_line = open('/proc/%d/stat' % pid, encoding='utf-8').read()  # pylint: disable=consider-using-with
        if stat_line.rsplit(')', 1)[1].split()[0] == 'Z':
            break  # gone apart from its process-table entry
        assert time.monotonic() < deadline, 'guest process %d survived the shutdown' % pid
        time.sleep(0.1)
    with open('/proc/mounts', encoding='utf-8') as handle:
        assert str(state_dir) not in handle.read()


def test_cli_rejects_a_bad_inventory(tmp_path):
    bad = tmp_path / 'bad.yml'
    bad.write_text('vms:\n  - host: nowhere\n')
    env = dict(os.environ)
    env['PYTHONPATH'] = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))
    result = subprocess.run([sys.executable, '-m', 'guestsim', '--port', '0', '--state-dir', str(tmp_path / 's'),
                             '--inventory', str(bad)], capture_output=True, text=True, env=env, timeout=60,
                            check=False)
    assert result.returncode == 2 and 'every VM needs a name' in result.stderr


def test_cli_stops_cleanly_on_signals_in_a_row(cli_server):
    """make forwards SIGTERM to the process group, so the simulator often gets two at once: the
    handler only sets a flag and writes to a pipe, so a second signal inside it cannot deadlock."""
    process, _banner, _cloud_config, state_dir = cli_server
    for signum in (signal.SIGTERM, signal.SIGTERM, signal.SIGINT, signal.SIGTERM, signal.SIGTERM):
        process.send_signal(signum)
    assert process.wait(timeout=60) == 0
    assert 'guestsim stopped' in process.stdout.read()
    with open('/proc/mounts', encoding='utf-8') as handle:
        assert str(state_dir) not in handle.read()
