"""Wire format: version negotiation, cookie, envelopes and fault bodies as vSphere sends them."""

from __future__ import annotations

import ssl
import xml.etree.ElementTree as ET

import pytest
import requests
from pyVim.connect import SmartConnect
from pyVmomi import SoapStubAdapter, VmomiSupport, vim, vmodl

from guestsim import soap

SOAPENV = '{http://schemas.xmlsoap.org/soap/envelope/}'


def _post(sim, body: bytes, cookie=None):
    headers = {'Content-Type': 'text/xml; charset=UTF-8', 'SOAPAction': '"urn:vim25/8.0.3.0"'}
    if cookie:
        headers['Cookie'] = cookie
    return requests.post(sim.base_url + '/sdk', data=body, headers=headers, verify=sim.ca_file, timeout=30)


def _request(method_name, this, args=()):
    """Build a request envelope with pyVmomi's own client serializer."""
    stub = SoapStubAdapter(host='127.0.0.1', port=1, version='vim.version.v8_0_3_0')
    info = VmomiSupport.GetWsdlMethod('urn:vim25', method_name).info
    return stub.SerializeRequest(this, info, args)


def test_service_versions_document(sim):
    response = requests.get(sim.base_url + '/sdk/vimServiceVersions.xml', verify=sim.ca_file, timeout=30)
    assert response.status_code == 200
    root = ET.fromstring(response.content)
    assert root.tag == 'namespaces' and root.get('version') == '1.0'
    namespace = root.find('namespace')
    assert namespace.findtext('name') == 'urn:vim25'
    assert namespace.findtext('version') == '8.0.3.0'
    assert '8.0.2.0' in [v.text for v in namespace.findall('priorVersions/version')]


def test_smartconnect_negotiates_8_0_3(si):
    assert si._stub.version == 'vim.version.v8_0_3_0'  # pylint: disable=protected-access
    about = si.content.about
    assert about.apiType == 'VirtualCenter'
    assert about.apiVersion == '8.0.3.0'


def test_negotiation_fails_for_unsupported_versions_only(sim):
    context = ssl.create_default_context(cafile=sim.ca_file)
    with pytest.raises(Exception, match='is down or is not a VIM server'):
        SmartConnect(host=sim.host, port=sim.port, user='user', pwd='simpass', sslContext=context,
                     preferredApiVersions=['vim.version.v9_1_1_0'])


def test_older_client_version_is_accepted(sim):
    context = ssl.create_default_context(cafile=sim.ca_file)
    service_instance = SmartConnect(host=sim.host, port=sim.port, user='user', pwd='simpass', sslContext=context,
                                    preferredApiVersions=['vim.version.v7_0_3_0'])
    assert service_instance._stub.version == 'vim.version.v7_0_3_0'  # pylint: disable=protected-access
    assert service_instance.content.sessionManager.currentSession.userName == 'user'


def test_cookie_as_vcenter_sets_it(sim):
    response = _post(sim, _request('RetrieveServiceContent', vim.ServiceInstance('ServiceInstance')))
    assert response.status_code == 200
    cookie = response.headers['Set-Cookie']
    assert cookie.startswith('vmware_soap_session="')
    assert '; Path=/; HttpOnly; Secure;' in cookie
    # The same session is kept when the client sends the cookie back verbatim (as pyVmomi does).
    again = _post(sim, _request('RetrieveServiceContent', vim.ServiceInstance('ServiceInstance')), cookie=cookie)
    assert 'Set-Cookie' not in again.headers


def test_response_envelope_shape(sim):
    response = _post(sim, _request('RetrieveServiceContent', vim.ServiceInstance('ServiceInstance')))
    text = response.text
    assert text.startswith('<?xml version="1.0" encoding="UTF-8"?>')
    assert '<RetrieveServiceContentResponse xmlns="urn:vim25"><returnval>' in text
    assert 'versionId=' not in text
    root = ET.fromstring(response.content)
    returnval = root.find(SOAPENV + 'Body/{urn:vim25}RetrieveServiceContentResponse/{urn:vim25}returnval')
    assert returnval.find('{urn:vim25}rootFolder').get('type') == 'Folder'
    assert returnval.find('{urn:vim25}rootFolder').text == 'group-d1'


def test_fault_body_shape_for_invalid_login(sim):
    first = _post(sim, _request('RetrieveServiceContent', vim.ServiceInstance('ServiceInstance')))
    body = _request('Login', vim.SessionManager('SessionManager'), ('user', 'wrong', None))
    response = _post(sim, body, cookie=first.headers['Set-Cookie'])
    assert response.status_code == 500
    text = response.text
    assert ('<soapenv:Fault><faultcode>ServerFaultCode</faultcode><faultstring>Cannot complete login due to an '
            'incorrect user name or password.</faultstring><detail><InvalidLoginFault xmlns="urn:vim25" '
            'xsi:type="InvalidLogin"></InvalidLoginFault></detail></soapenv:Fault>') in text


def test_fault_detail_carries_fields(sim):
    fault = vim.fault.FileNotFound(msg='File h8ctl was not found', file='h8ctl')
    text = soap.serialize_fault(fault, 'vim.version.v8_0_3_0').decode()
    assert ('<faultstring>File h8ctl was not found</faultstring><detail><FileNotFoundFault xmlns="urn:vim25" '
            'xsi:type="FileNotFound"><file>h8ctl</file></FileNotFoundFault></detail>') in text
    del sim


def test_request_round_trip_with_typed_arguments():
    spec = vim.vm.guest.ProcessManager.ProgramSpec(programPath='/bin/sh', arguments="-c 'echo <&> \"x\"'",
                                                   envVariables=['A=1', 'B=2'], workingDirectory='/tmp')
    auth = vim.vm.guest.NamePasswordAuthentication(username='root', password='p<w>', interactiveSession=False)
    body = _request('StartProgramInGuest', vim.vm.guest.ProcessManager('guestOperationsProcessManager'),
                    (vim.VirtualMachine('vm-42'), auth, spec))
    request = soap.parse_request(body)
    assert request.method.wsdl_name == 'StartProgramInGuest'
    assert isinstance(request.this, vim.vm.guest.ProcessManager)
    assert request.args['vm']._moId == 'vm-42'  # pylint: disable=protected-access
    assert isinstance(request.args['auth'], vim.vm.guest.NamePasswordAuthentication)
    assert request.args['auth'].password == 'p<w>'
    assert request.args['spec'].arguments == "-c 'echo <&> \"x\"'"
    assert list(request.args['spec'].envVariables) == ['A=1', 'B=2']
    pids = soap.parse_request(_request('ListProcessesInGuest', vim.vm.guest.ProcessManager('p'),
                                       (vim.VirtualMachine('vm-1'), auth, [1, 2, 3])))
    assert list(pids.args['pids']) == [1, 2, 3]


def test_fetch_reads_properties_with_pyvmomi_accessor(si):
    content = si.RetrieveContent()
    gom = content.guestOperationsManager
    assert gom.processManager._moId == 'guestOperationsProcessManager'  # pylint: disable=protected-access
    assert gom.fileManager._moId == 'guestOperationsFileManager'  # pylint: disable=protected-access
    assert gom.authManager._moId == 'guestOperationsAuthManager'  # pylint: disable=protected-access
    datacenter = content.rootFolder.childEntity[0]
    assert datacenter.name == 'DC0'
    assert [f.name for f in (datacenter.vmFolder, datacenter.hostFolder)] == ['vm', 'host']
    assert content.customFieldsManager.field == []


def test_unknown_method_and_malformed_request(sim, si):
    cookie = si._stub.cookie  # pylint: disable=protected-access
    vm = si.RetrieveContent().searchIndex.FindByInventoryPath('DC0/vm/DC0_H0_VM0')
    body = _request('PowerOnVM_Task', vim.VirtualMachine(vm._moId), (None,))  # pylint: disable=protected-access
    response = _post(sim, body, cookie=cookie)
    assert response.status_code == 500 and 'MethodNotFoundFault' in response.text
    response = _post(sim, b'<not-soap', cookie=cookie)
    assert response.status_code == 500 and 'InvalidRequestFault' in response.text
    assert requests.get(sim.base_url + '/nothing', verify=sim.ca_file, timeout=30).status_code == 404


def test_method_not_found_through_pyvmomi(si):
    vm = si.content.searchIndex.FindByInventoryPath('DC0/vm/DC0_H0_VM0')
    with pytest.raises(vmodl.fault.MethodNotFound):
        vm.PowerOffVM_Task()


def test_unknown_object_is_managed_object_not_found(si):
    with pytest.raises(vmodl.fault.ManagedObjectNotFound) as info:
        vim.VirtualMachine('vm-999999', si._stub).name  # pylint: disable=expression-not-assigned,protected-access
    assert "vim.VirtualMachine:vm-999999" in info.value.msg
