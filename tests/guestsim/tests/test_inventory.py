"""Inventory, PropertyCollector traversal, ContainerView and SearchIndex: how clients find VMs."""

from __future__ import annotations


import pytest
from pyVmomi import vim, vmodl

from guestsim import Simulator
from guestsim import inventory as sim_inventory
from guestsim.inventory import HostSystem, InventoryError, load_inventory

PC = vmodl.query.PropertyCollector


def _all_vms_by_view(content, props):
    view = content.viewManager.CreateContainerView(content.rootFolder, [vim.VirtualMachine], True)
    try:
        traversal = PC.TraversalSpec(name='traverseEntities', path='view', skip=False, type=vim.view.ContainerView)
        spec = PC.FilterSpec(
            objectSet=[PC.ObjectSpec(obj=view, skip=True, selectSet=[traversal])],
            propSet=[PC.PropertySpec(type=vim.VirtualMachine, pathSet=props)])
        return content.propertyCollector.RetrieveContents([spec])
    finally:
        view.Destroy()


def test_default_inventory_names(si):
    content = si.RetrieveContent()
    result = _all_vms_by_view(content, ['name'])
    names = sorted(o.propSet[0].val for o in result)
    assert names == sorted(['DC0_H0_VM0', 'DC0_H0_VM1', 'DC0_C0_RP0_VM0', 'DC0_C0_RP0_VM1', 'DC0_H0_VM_OFF',
                            'DC0_H0_VM_NOTOOLS', 'DC0_H0_VM_SLOWBOOT', 'DC0_H0_VM_NOEXEC', 'DUP_VM', 'DUP_VM',
                            'DC0_H0_WIN0', 'DC0_H_NOROUTE_VM0'])
    datacenter = content.rootFolder.childEntity[0]
    compute = {c.name: c for c in datacenter.hostFolder.childEntity}
    assert isinstance(compute['DC0_C0'], vim.ClusterComputeResource)
    assert sorted(h.name for h in compute['DC0_C0'].host) == ['DC0_C0_H0', 'DC0_C0_H1', 'DC0_C0_H2']
    assert [h.name for h in compute['DC0_H0'].host] == ['DC0_H0']
    assert compute['DC0_H0'].resourcePool.name == 'Resources'


def test_nested_paths_and_vm_properties(si):
    content = si.RetrieveContent()
    props = ['name', 'config.uuid', 'config.instanceUuid', 'config.guestId', 'runtime.powerState', 'runtime.host',
             'guest.toolsRunningStatus', 'guest.toolsVersionStatus2', 'guest.guestOperationsReady',
             'guest.guestFamily', 'guest.ipAddress']
    result = {o.obj._moId: {p.name: p.val for p in o.propSet}  # pylint: disable=protected-access
              for o in _all_vms_by_view(content, props)}
    by_name = {v['name']: v for v in result.values()}
    vm0 = by_name['DC0_H0_VM0']
    assert vm0['runtime.powerState'] == 'poweredOn'
    assert vm0['guest.toolsRunningStatus'] == 'guestToolsRunning'
    assert vm0['guest.toolsVersionStatus2'] == 'guestToolsCurrent'
    assert vm0['guest.guestOperationsReady'] is True
    assert vm0['guest.guestFamily'] == 'linuxGuest'
    assert isinstance(vm0['runtime.host'], vim.HostSystem)
    assert vm0['config.uuid'] != vm0['config.instanceUuid']
    off = by_name['DC0_H0_VM_OFF']
    assert off['runtime.powerState'] == 'poweredOff'
    assert off['guest.toolsRunningStatus'] == 'guestToolsNotRunning'
    assert off['guest.guestOperationsReady'] is False
    assert 'guest.guestFamily' not in off  # unset values are left out
    notools = by_name['DC0_H0_VM_NOTOOLS']
    assert notools['runtime.powerState'] == 'poweredOn' and notools['guest.guestOperationsReady'] is False


def test_property_reads_build_only_what_they_read(si, monkeypatch):
    """A VM's configuration (device list included) is built only for a read of config.*, once per
    object and call: a lookup reading every VM's name must not build it (it made 20 parallel tasks
    twice as slow)."""
    built = []
    original = sim_inventory.VirtualMachine.config_info

    def counting(self):
        built.append(self.name)
        return original(self)
    monkeypatch.setattr(sim_inventory.VirtualMachine, 'config_info', counting)
    content = si.RetrieveContent()
    names = [o.propSet[0].val for o in _all_vms_by_view(content, ['name', 'runtime.powerState'])]
    assert 'DC0_H0_VM0' in names and built == []
    vm0 = content.searchIndex.FindByInventoryPath('DC0/vm/DC0_H0_VM0')
    spec = PC.FilterSpec(objectSet=[PC.ObjectSpec(obj=vm0, skip=False)], propSet=[
        PC.PropertySpec(type=vim.VirtualMachine, pathSet=['config.guestId', 'config.uuid', 'name'])])
    found = content.propertyCollector.RetrieveContents([spec])
    assert {p.name for p in found[0].propSet} == {'config.guestId', 'config.uuid', 'name'}
    assert built == ['DC0_H0_VM0']


def test_vm_property_reads_through_fetch(si):
    vm = si.content.searchIndex.FindByInventoryPath('DC0/vm/DC0_H0_VM0')
    assert vm.name == 'DC0_H0_VM0'
    assert vm.config.guestId == 'otherLinux64Guest'
    assert vm.runtime.host.name == 'DC0_H0'
    guest = vm.guest
    assert guest.toolsStatus == 'toolsOk'
    assert guest.interactiveGuestOperationsReady is False
    assert guest.guestState == 'running'
    assert guest.hostName == 'dc0-h0-vm0'
    assert vm.summary.config.name == 'DC0_H0_VM0'
    assert vm.parent.name == 'vm'
    assert vm.resourcePool.name == 'Resources'


def test_traversal_from_root_folder(si):
    content = si.RetrieveContent()
    visit_folders = PC.TraversalSpec(name='visitFolders', type=vim.Folder, path='childEntity', skip=False,
                                     selectSet=[PC.SelectionSpec(name='visitFolders'),
                                                PC.SelectionSpec(name='dcToVm')])
    dc_to_vm = PC.TraversalSpec(name='dcToVm', type=vim.Datacenter, path='vmFolder', skip=False,
                                selectSet=[PC.SelectionSpec(name='visitFolders')])
    spec = PC.FilterSpec(objectSet=[PC.ObjectSpec(obj=content.rootFolder, skip=False,
                                                  selectSet=[visit_folders, dc_to_vm])],
                         propSet=[PC.PropertySpec(type=vim.VirtualMachine, pathSet=['name']),
                                  PC.PropertySpec(type=vim.Folder, pathSet=['name'])])
    result = content.propertyCollector.RetrieveContents([spec])
    folders = sorted(o.propSet[0].val for o in result if isinstance(o.obj, vim.Folder))
    vms = [o.propSet[0].val for o in result if isinstance(o.obj, vim.VirtualMachine)]
    assert folders == ['Datacenters', 'F0', 'F1', 'vm']
    assert vms.count('DUP_VM') == 2 and len(vms) == 12


def test_retrieve_properties_ex_paging(si):
    content = si.RetrieveContent()
    view = content.viewManager.CreateContainerView(content.rootFolder, [vim.VirtualMachine], True)
    traversal = PC.TraversalSpec(name='t', path='view', skip=False, type=vim.view.ContainerView)
    spec = PC.FilterSpec(objectSet=[PC.ObjectSpec(obj=view, skip=True, selectSet=[traversal])],
                         propSet=[PC.PropertySpec(type=vim.VirtualMachine, pathSet=['name'])])
    collector = content.propertyCollector
    page = collector.RetrievePropertiesEx([spec], PC.RetrieveOptions(maxObjects=3))
    names = [o.propSet[0].val for o in page.objects]
    assert len(names) == 3 and page.token
    while page.token:
        page = collector.ContinueRetrievePropertiesEx(page.token)
        names.extend(o.propSet[0].val for o in page.objects)
    assert len(names) == 12
    # Nothing matches: no returnval at all, as on vCenter.
    empty = PC.FilterSpec(objectSet=[PC.ObjectSpec(obj=view, skip=True, selectSet=[traversal])],
                          propSet=[PC.PropertySpec(type=vim.Datastore, pathSet=['name'])])
    assert collector.RetrievePropertiesEx([empty], PC.RetrieveOptions()) is None
    view.Destroy()


def test_invalid_property_path(si):
    content = si.RetrieveContent()
    vm = content.searchIndex.FindByInventoryPath('DC0/vm/DC0_H0_VM0')
    spec = PC.FilterSpec(objectSet=[PC.ObjectSpec(obj=vm)],
                         propSet=[PC.PropertySpec(type=vim.VirtualMachine, pathSet=['guest.noSuchThing'])])
    with pytest.raises(vmodl.query.InvalidProperty) as info:
        content.propertyCollector.RetrieveContents([spec])
    assert info.value.name == 'guest.noSuchThing'


def test_all_properties(si):
    content = si.RetrieveContent()
    vm = content.searchIndex.FindByInventoryPath('DC0/vm/DC0_H0_VM0')
    spec = PC.FilterSpec(objectSet=[PC.ObjectSpec(obj=vm)], propSet=[PC.PropertySpec(type=vim.VirtualMachine, all=True)])
    names = {p.name for p in content.propertyCollector.RetrieveContents([spec])[0].propSet}
    assert {'name', 'config', 'runtime', 'guest', 'summary', 'parent'} <= names


def test_container_view_lifecycle(si):
    content = si.RetrieveContent()
    view = content.viewManager.CreateContainerView(content.rootFolder, [vim.HostSystem], True)
    assert sorted(h.name for h in view.view) == ['DC0_C0_H0', 'DC0_C0_H1', 'DC0_C0_H2', 'DC0_H0', 'DC0_H_NOROUTE']
    assert view in content.viewManager.viewList
    shallow = content.viewManager.CreateContainerView(content.rootFolder.childEntity[0].vmFolder, [vim.Folder], False)
    assert sorted(f.name for f in shallow.view) == ['F0', 'F1']
    view.Destroy()
    shallow.Destroy()
    with pytest.raises(vmodl.fault.ManagedObjectNotFound):
        view.view  # pylint: disable=pointless-statement


def test_search_index(si):
    content = si.RetrieveContent()
    index = content.searchIndex
    vm = index.FindByInventoryPath('DC0/vm/DC0_H0_VM0')
    uuid, instance_uuid = vm.config.uuid, vm.config.instanceUuid
    assert index.FindByUuid(None, uuid, True) == vm
    assert index.FindByUuid(None, uuid.upper(), True) == vm
    assert index.FindByUuid(None, instance_uuid, True, True) == vm
    assert index.FindByUuid(None, instance_uuid, True, False) is None
    datacenter = index.FindByInventoryPath('DC0')
    assert index.FindByUuid(datacenter, uuid, True) == vm
    assert index.FindAllByUuid(None, uuid, True) == [vm]
    # Nothing found: an empty response element, which pyVmomi reads as an empty list.
    assert list(index.FindAllByUuid(None, '00000000-0000-0000-0000-000000000000', True)) == []
    assert index.FindByInventoryPath('DC0/vm/NOPE') is None
    assert index.FindByInventoryPath('/DC0/vm/F0/DUP_VM') != index.FindByInventoryPath('DC0/vm/F1/DUP_VM')
    assert index.FindByInventoryPath('DC0/host/DC0_C0/Resources/DC0_C0_RP0_VM0').name == 'DC0_C0_RP0_VM0'
    assert index.FindChild(datacenter, 'vm') == datacenter.vmFolder
    assert index.FindChild(datacenter.vmFolder, 'DC0_H0_VM1').name == 'DC0_H0_VM1'
    assert index.FindChild(datacenter.vmFolder, 'DUP_VM') is None
    assert index.FindByIp(None, '10.0.0.10', True) == vm
    assert index.FindByDnsName(None, 'dc0-h0-vm0', True) == vm
    assert index.FindByIp(None, '10.0.0.30', True) is None  # powered off: no tools, no IP
    host = index.FindByInventoryPath('DC0/host/DC0_H0/DC0_H0')
    assert isinstance(host, vim.HostSystem)
    assert index.FindByUuid(None, host.summary.hardware.uuid, False) == host


def test_inventory_file_extends_default(tmp_path):
    path = tmp_path / 'inv.yml'
    path.write_text('datacenters:\n  - name: DC1\n    hosts: [DC1_H0]\n    folders: [apps/web]\n'
                    'vms:\n  - name: web01\n    datacenter: DC1\n    folder: apps/web\n    host: DC1_H0\n'
                    '    users: {deploy: s3cret}\n    tools: not_running\n  - name: extra\n    cluster: DC0_C0\n')
    inventory = load_inventory(str(path))
    assert inventory.vm_named('DC0_H0_VM0') is not None
    web = inventory.vm_named('web01')
    assert inventory.inventory_path(web) == 'DC1/vm/apps/web/web01'
    assert web.users == {'deploy': 's3cret'} and not web.agent_ready()
    assert inventory.vm_named('extra').host.name.startswith('DC0_C0_H')


def test_inventory_file_replaces_default(tmp_path):
    path = tmp_path / 'inv.yml'
    path.write_text('replace: true\ndatacenters:\n  - name: Lab\n    clusters:\n      - name: C1\n        hosts: [h1]\n'
                    'vms:\n  - name: only\n    datacenter: Lab\n    cluster: C1\n')
    with Simulator(port=0, state_dir=str(tmp_path / 'state'), inventory_file=str(path)) as simulator:
        assert [vm.name for vm in simulator.service.inventory.vms()] == ['only']
    bad = tmp_path / 'bad.yml'
    bad.write_text('vms:\n  - name: x\n    colour: blue\n')
    with pytest.raises(InventoryError):
        load_inventory(str(bad))


def test_vm_configuration_that_clients_read(si):
    """What community.vmware's vmware_guest_tools_info and inventory tools read (issue 11, point 1)."""
    content = si.RetrieveContent()
    vm = content.searchIndex.FindByInventoryPath('DC0/vm/DC0_H0_VM0')
    config = vm.config
    # vmware_guest_tools_info reads exactly these.
    tools = config.tools
    assert tools.toolsInstallType == 'guestToolsTypeOpenVMTools' and tools.toolsVersion == 12389
    assert tools.toolsUpgradePolicy == 'manual' and tools.lastInstallInfo.counter == 0
    assert tools.afterPowerOn and tools.afterResume and tools.beforeGuestShutdown and tools.beforeGuestStandby
    assert tools.syncTimeWithHost is False
    assert config.version and vm.summary.guest.toolsVersionStatus2 == 'guestToolsCurrent'
    # The datastore named in the VM's path exists, holds the disk and lists the VM.
    datastore = content.searchIndex.FindByInventoryPath('DC0/datastore/LocalDS_0')
    assert isinstance(datastore, vim.Datastore) and datastore.name == 'LocalDS_0'
    assert config.files.vmPathName == '[LocalDS_0] DC0_H0_VM0/DC0_H0_VM0.vmx'
    assert vm.summary.config.vmPathName == config.files.vmPathName
    assert [d._moId for d in vm.datastore] == [datastore._moId]  # pylint: disable=protected-access
    assert vm._moId in [v._moId for v in datastore.vm]  # pylint: disable=protected-access
    summary = datastore.summary
    assert summary.accessible and summary.capacity > summary.freeSpace > 0 and summary.url.startswith('ds:///')
    assert len(datastore.host) == 5 and all(m.mountInfo.accessMode == 'readWrite' for m in datastore.host)
    devices = config.hardware.device
    disks = [d for d in devices if isinstance(d, vim.vm.device.VirtualDisk)]
    assert len(disks) == 1 and disks[0].capacityInBytes == 10 * 1024 ** 3
    assert disks[0].backing.fileName == '[LocalDS_0] DC0_H0_VM0/disk1.vmdk'
    assert disks[0].backing.datastore._moId == datastore._moId  # pylint: disable=protected-access
    controller = next(d for d in devices if d.key == disks[0].controllerKey)
    assert isinstance(controller, vim.vm.device.ParaVirtualSCSIController)
    nics = [d for d in devices if isinstance(d, vim.vm.device.VirtualEthernetCard)]
    assert len(nics) == 1 and nics[0].macAddress.startswith('00:0c:29:')
    network = nics[0].backing.network
    assert network.name == 'VM Network' and nics[0].backing.deviceName == 'VM Network'
    assert [n._moId for n in vm.network] == [network._moId]  # pylint: disable=protected-access
    assert network._moId in [n._moId for n in content.rootFolder.childEntity[0].network]  # pylint: disable=protected-access
    assert vm.guest.net[0].macAddress == nics[0].macAddress and vm.guest.net[0].network == 'VM Network'
    # capability, storage and layoutEx as vcsim fills them.
    assert vm.capability.changeTrackingSupported is True and vm.capability.snapshotOperationsSupported is False
    usage = vm.storage.perDatastoreUsage
    assert len(usage) == 1 and usage[0].datastore._moId == datastore._moId and usage[0].committed > 0  # pylint: disable=protected-access
    assert vm.summary.storage.committed == usage[0].committed
    files = {f.name: f.type for f in vm.layoutEx.file}
    assert files[config.files.vmPathName] == 'config'
    assert files['[LocalDS_0] DC0_H0_VM0/disk1.vmdk'] == 'diskDescriptor'
    assert vm.layoutEx.disk[0].key == disks[0].key
    host = vm.runtime.host
    assert datastore._moId in [d._moId for d in host.datastore]  # pylint: disable=protected-access


def test_everything_serializes_for_all_properties(si):
    """A RetrievePropertiesEx with all=True over the inventory (as inventory plugins do) works."""
    content = si.RetrieveContent()
    view = content.viewManager.CreateContainerView(content.rootFolder, [vim.ManagedEntity], True)
    spec = vmodl.query.PropertyCollector.FilterSpec(
        objectSet=[vmodl.query.PropertyCollector.ObjectSpec(
            obj=view, skip=True, selectSet=[vmodl.query.PropertyCollector.TraversalSpec(
                name='v', type=vim.view.ContainerView, path='view', skip=False)])],
        propSet=[vmodl.query.PropertyCollector.PropertySpec(type=t, all=True)
                 for t in (vim.VirtualMachine, vim.Datastore, vim.Network, vim.HostSystem, vim.Datacenter)])
    result = content.propertyCollector.RetrievePropertiesEx([spec], vmodl.query.PropertyCollector.RetrieveOptions())
    kinds = set()
    while True:
        kinds.update(type(o.obj).__name__ for o in result.objects)
        if not result.token:
            break
        result = content.propertyCollector.ContinueRetrievePropertiesEx(result.token)
    assert {'vim.VirtualMachine', 'vim.Datastore', 'vim.Network', 'vim.HostSystem', 'vim.Datacenter'} <= kinds
    view.DestroyView()


def test_noroute_host_and_its_vm(si):
    content = si.RetrieveContent()
    vm = content.searchIndex.FindByInventoryPath('DC0/vm/DC0_H_NOROUTE_VM0')
    assert vm is not None and vm.runtime.host.name == 'DC0_H_NOROUTE'
    assert vm.runtime.powerState == 'poweredOn' and vm.guest.guestOperationsReady
    assert vm.guest.guestFamily == 'linuxGuest' and vm.guest.ipAddress == '10.0.0.60'


def test_inventory_file_host_management_modes(tmp_path):
    path = tmp_path / 'inv.yml'
    path.write_text('datacenters:\n  - name: DC0\n    hosts: [{name: H_SILENT, management: silent}, H_PLAIN]\n'
                    '    clusters:\n      - name: C9\n        hosts: [{name: C9_H0, management: refuse}]\n')
    inv = load_inventory(str(path))
    modes = {h.name: h.management for h in inv.by_moid.values() if isinstance(h, HostSystem)}
    assert modes['H_SILENT'] == 'silent' and modes['H_PLAIN'] == 'serve' and modes['C9_H0'] == 'refuse'
    assert modes['DC0_H_NOROUTE'] == 'refuse' and modes['DC0_H0'] == 'serve'
    path.write_text('datacenters:\n  - name: DC0\n    hosts: [{name: H_BAD, management: maybe}]\n')
    with pytest.raises(InventoryError, match='management must be one of serve, refuse, silent'):
        load_inventory(str(path))
