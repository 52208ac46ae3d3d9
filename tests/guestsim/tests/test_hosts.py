"""ESXi hosts as vCenter hands them out: management addresses, certificates, named-host transfer URLs."""

from __future__ import annotations

import hashlib
import socket
import ssl

import pytest
import requests
from pyVim.connect import Disconnect, SmartConnect
from pyVmomi import vim

from guestsim import Simulator
from guestsim.inventory import default_inventory
from guestsim.testing import SimulatorHandle

from .conftest import GuestClient

FM = vim.vm.guest.FileManager
HOSTS = {'DC0_H0': '127.0.1.1', 'DC0_C0_H0': '127.0.1.2', 'DC0_C0_H1': '127.0.1.3', 'DC0_C0_H2': '127.0.1.4',
         'DC0_H_NOROUTE': '127.0.1.5'}


def _management_ips(host):
    """As govc reads them: selected vNICs of nicType management (govmomi internal/helpers.go)."""
    ips = []
    for config in host.config.virtualNicManagerInfo.netConfig:
        if config.nicType == 'management':
            ips += [v.spec.ip.ipAddress for v in config.candidateVnic if v.key in config.selectedVnic]
    return ips


def _colon(digest: str) -> str:
    return ':'.join(digest[i:i + 2] for i in range(0, len(digest), 2)).upper()


def _presented(address: str, port: int) -> bytes:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with socket.create_connection((address, port), timeout=10) as sock:
        with context.wrap_socket(sock, server_hostname=address) as tls:
            return tls.getpeercert(binary_form=True)


def test_every_host_has_its_own_address_certificate_and_thumbprint(sim, si):
    view = si.RetrieveContent().viewManager.CreateContainerView(si.RetrieveContent().rootFolder, [vim.HostSystem],
                                                                True)
    hosts = {h.name: h for h in view.view}
    assert {name: _management_ips(h) for name, h in hosts.items()} == {k: [v] for k, v in HOSTS.items()}
    thumbprints = set()
    for name, host in hosts.items():
        pem = bytes(b & 0xff for b in host.config.certificate).decode()
        der = ssl.PEM_cert_to_DER_cert(pem)
        assert host.summary.config.sslThumbprint == _colon(hashlib.sha1(der).hexdigest())
        assert host.summary.config.port == sim.port
        assert host.config.product.apiType == 'HostAgent'
        thumbprints.add(host.summary.config.sslThumbprint)
        if name != 'DC0_H_NOROUTE':
            # The listener presents exactly that certificate, and it verifies against the CA for the address.
            assert _presented(HOSTS[name], sim.port) == der
            context = ssl.create_default_context(cafile=sim.ca_file)
            with socket.create_connection((HOSTS[name], sim.port), timeout=10) as sock:
                with context.wrap_socket(sock, server_hostname=HOSTS[name]) as tls:
                    assert tls.version()
    assert len(thumbprints) == len(HOSTS)
    state = {h['name']: h for h in sim.state()['hosts']}
    assert state['DC0_H0']['address'] == '127.0.1.1' and state['DC0_H0']['presented'] == 'reported'
    assert state['DC0_H_NOROUTE']['management'] == 'refuse'
    view.Destroy()


def test_urls_through_vcenter_name_the_host_and_work_only_at_its_address(sim, guest):
    base = guest.temp_dir()
    url = guest.files.InitiateFileTransferToGuest(guest.vm, guest.auth, base + '/f', FM.PosixFileAttributes(), 2, True)
    assert url.startswith('https://DC0_H0:%d/guestFile?id=' % sim.port)
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.put(url, data=b'hi', verify=sim.ca_file, timeout=10)  # DC0_H0 does not resolve
    # vCenter's own port and another host's address serve no transfers.
    assert requests.put(url.replace('DC0_H0', '127.0.0.1'), data=b'hi', verify=sim.ca_file,
                        timeout=10).status_code == 404
    other = url.replace('DC0_H0', '127.0.1.2')
    assert requests.put(other, data=b'hi', verify=sim.ca_file, timeout=10).status_code == 404
    assert requests.put(url.replace('DC0_H0', '127.0.1.1'), data=b'hi', verify=sim.ca_file,
                        timeout=10).status_code == 200
    cluster_vm = GuestClient(sim, guest.si, 'DC0_C0_RP0_VM0', guest.auth)
    info = cluster_vm.files.InitiateFileTransferFromGuest(cluster_vm.vm, cluster_vm.auth, base + '/f')
    assert info.url.startswith('https://%s:%d/' % (cluster_vm.vm.runtime.host.name, sim.port))
    assert requests.get(sim.transfer_url(info.url), verify=sim.ca_file, timeout=10).content == b'hi'
    guest.files.DeleteDirectoryInGuest(guest.vm, guest.auth, base, True)


def test_a_client_connected_to_the_host_directly_gets_star_urls(sim, auth):
    context = ssl.create_default_context(cafile=sim.ca_file)
    direct = SmartConnect(host='127.0.1.1', port=sim.port, user='user', pwd='simpass', sslContext=context)
    try:
        content = direct.RetrieveContent()
        assert content.about.apiType == 'HostAgent'
        guest = GuestClient(sim, direct, 'DC0_H0_VM0', auth)
        base = guest.temp_dir()
        url = guest.files.InitiateFileTransferToGuest(guest.vm, auth, base + '/f', FM.PosixFileAttributes(), 3, True)
        assert url.startswith('https://*:%d/guestFile?id=' % sim.port)
        assert requests.put(url.replace('*', '127.0.1.1'), data=b'abc', verify=sim.ca_file,
                            timeout=10).status_code == 200
        guest.files.DeleteDirectoryInGuest(guest.vm, auth, base, True)
    finally:
        Disconnect(direct)
    assert sim.connect().RetrieveContent().about.apiType == 'VirtualCenter'


def test_noroute_host_refuses_connections_but_its_vm_works_through_vcenter(sim, si, auth):
    guest = GuestClient(sim, si, 'DC0_H_NOROUTE_VM0', auth)
    base = guest.temp_dir()
    url = guest.files.InitiateFileTransferToGuest(guest.vm, auth, base + '/f', FM.PosixFileAttributes(), 3, True)
    assert url.startswith('https://DC0_H_NOROUTE:%d/' % sim.port)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(('127.0.1.5', sim.port), timeout=5).close()
    assert guest.files.ListFilesInGuest(guest.vm, auth, base).files[0].path == '.'
    guest.files.DeleteDirectoryInGuest(guest.vm, auth, base, True)


def test_a_silent_host_accepts_tcp_and_never_answers(tmp_path):
    inventory = default_inventory()
    datacenter = inventory.datacenter('DC0')
    inventory.add_standalone_host(datacenter, 'H_SILENT', management='silent')
    with Simulator(port=0, state_dir=str(tmp_path), inventory=inventory, control_port=None) as simulator:
        address = next(h.address for h in inventory.hosts() if h.name == 'H_SILENT')
        with socket.create_connection((address, simulator.port), timeout=5) as sock:
            sock.settimeout(1.0)
            sock.sendall(b'\x16\x03\x01\x00\x05hello')
            with pytest.raises(socket.timeout):
                sock.recv(1)


def test_a_host_added_by_ip_address_is_named_by_it_and_its_urls_work_as_given(tmp_path, auth):
    """vCenter names a host added by its IP address by that address; its transfer URLs then resolve."""
    inventory = default_inventory()
    host = inventory.add_standalone_host(inventory.datacenter('DC0'), '127.0.1.200')
    inventory.add_vm(inventory.datacenter('DC0'), 'IPHOST_VM0', host='127.0.1.200')
    assert host.address == '127.0.1.200'
    assert inventory.add_standalone_host(inventory.datacenter('DC0'), 'H_NEXT').address == '127.0.1.6'
    with Simulator(port=0, state_dir=str(tmp_path), inventory=inventory, control_port=None) as simulator:
        handle = SimulatorHandle(simulator)
        si = handle.connect()
        try:
            guest = GuestClient(handle, si, 'IPHOST_VM0', auth)
            assert guest.vm.runtime.host.name == '127.0.1.200'
            base = guest.temp_dir()
            url = guest.files.InitiateFileTransferToGuest(guest.vm, auth, base + '/f', FM.PosixFileAttributes(), 2,
                                                          True)
            assert url.startswith('https://127.0.1.200:%d/guestFile?id=' % simulator.port)
            assert requests.put(url, data=b'hi', verify=simulator.ca_file, timeout=10).status_code == 200
            guest.files.DeleteDirectoryInGuest(guest.vm, auth, base, True)
        finally:
            Disconnect(si)


def test_hosts_named_by_ip_address_must_be_loopback_and_unique():
    inventory = default_inventory()
    datacenter = inventory.datacenter('DC0')
    with pytest.raises(ValueError, match='must be in 127.0.0.0/8'):
        inventory.add_standalone_host(datacenter, '10.0.0.5')
    with pytest.raises(ValueError, match='belongs to another host'):
        inventory.add_standalone_host(datacenter, '127.0.1.1')


def test_a_host_can_present_another_certificate_than_vcenter_reports(sim, si):
    host = si.RetrieveContent().searchIndex.FindByInventoryPath('DC0/vm/DC0_H0_VM0').runtime.host
    reported = host.summary.config.sslThumbprint
    try:
        answer = sim.present_certificate('DC0_H0')
        entry = answer['hosts'][0]
        assert entry['presented'] == 'other' and entry['ssl_thumbprint'] == reported
        presented = _presented('127.0.1.1', sim.port)
        assert _colon(hashlib.sha1(presented).hexdigest()) != reported
        assert _colon(hashlib.sha256(presented).hexdigest()) == entry['presented_sha256']
        # Still signed by the simulator CA for the address: only a pinned thumbprint tells them apart.
        context = ssl.create_default_context(cafile=sim.ca_file)
        with socket.create_connection(('127.0.1.1', sim.port), timeout=10) as sock:
            with context.wrap_socket(sock, server_hostname='127.0.1.1') as tls:
                assert tls.version()
        assert host.summary.config.sslThumbprint == reported
    finally:
        assert sim.present_certificate('DC0_H0', other=False)['hosts'][0]['presented'] == 'reported'
    assert _colon(hashlib.sha1(_presented('127.0.1.1', sim.port)).hexdigest()) == reported


def test_host_certificate_endpoint_rejects_bad_requests(sim):
    with pytest.raises(Exception, match='404'):
        sim.request('POST', '/guestsim/hosts/NO_SUCH_HOST/certificate', {'presented': 'other'})
    with pytest.raises(Exception, match='400'):
        sim.request('POST', '/guestsim/hosts/DC0_H0/certificate', {'presented': 'maybe'})


def test_control_endpoints_are_not_served_on_host_addresses(sim):
    response = requests.get('https://127.0.1.1:%d/guestsim/state' % sim.port, verify=sim.ca_file, timeout=10)
    assert response.status_code == 404


def test_handle_is_the_fixture_type(sim):
    assert isinstance(sim, SimulatorHandle) and sim.host_addresses()['DC0_H0'] == '127.0.1.1'
