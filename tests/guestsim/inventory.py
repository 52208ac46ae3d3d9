"""The vCenter inventory: folders, datacenters, compute resources, hosts, resource pools and VMs.

Each entity knows its moid, name, parent and children and builds its vSphere properties as real
pyVmomi objects on demand, so values such as the guest state follow the simulated clock.
"""

from __future__ import annotations

import ipaddress
import time
import uuid
from datetime import datetime, timezone

import yaml
from pyVmomi import VmomiSupport, vim

UUID_NAMESPACE = uuid.UUID('6c1b8e64-0f0e-4c4f-9a43-7a7d0f3e2b10')
DEFAULT_GUEST_USERS = {'root': 'guestpass'}
# How long a "slow boot" VM needs after power-on until guest operations work.
DEFAULT_READY_DELAY = 8.0

LINUX_GUEST = {
    'guest_id': 'otherLinux64Guest',
    'guest_full_name': 'Other Linux (64-bit)',
    'guest_family': 'linuxGuest',
}

# `os: windows` in the inventory: a Windows VM whose programs run under Wine (guestsim/windows.py).
WINDOWS_GUEST = {
    'guest_id': 'windows2019srv_64Guest',
    'guest_full_name': 'Microsoft Windows Server 2019 (64-bit)',
    'guest_family': 'windowsGuest',
}
DEFAULT_WINDOWS_USERS = {'Administrator': 'guestpass'}

# What an ESXi 8.0 U3 host reports as its product (AboutInfo), for HostSystem.config.product and
# summary.config.product, and as ServiceContent.about to a client that connects to the host directly.
ESXI_ABOUT = dict(
    name='VMware ESXi', fullName='VMware ESXi 8.0.3 build-24022510', vendor='VMware, Inc.', version='8.0.3',
    build='24022510', localeVersion='INTL', localeBuild='000', osType='vmnix-x86', productLineId='embeddedEsx',
    apiType='HostAgent', apiVersion='8.0.3.0', licenseProductName='VMware ESX Server', licenseProductVersion='8.0')
# Management addresses of the hosts: 127.0.1.1, 127.0.1.2, ... (Linux routes all of 127/8 to lo).
HOST_ADDRESS_PREFIX = '127.0.1.'
pyvmomi_byte = VmomiSupport.byte


def _uuid_for(kind: str, key: str, first: str) -> str:
    value = str(uuid.uuid5(UUID_NAMESPACE, '%s:%s' % (kind, key)))
    return first + value[2:]


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0)


class Lazy:
    """A property value computed when it is read (see LazyProperties)."""

    __slots__ = ('compute',)

    def __init__(self, compute):
        self.compute = compute


class LazyProperties(dict):
    """Property name -> value, where Lazy values are computed (once) on first access."""

    def __getitem__(self, key):
        value = super().__getitem__(key)
        if isinstance(value, Lazy):
            value = value.compute()
            super().__setitem__(key, value)
        return value


class Entity:
    """A managed entity of the inventory tree."""

    vim_type = vim.ManagedEntity

    def __init__(self, moid: str, name: str, parent: Entity | None = None):
        self.moid = moid
        self.name = name
        self.parent = parent

    def ref(self):
        return self.vim_type(self.moid)

    def children(self) -> list:
        """Direct children for FindChild, inventory paths and container views."""
        return []

    def properties(self) -> dict:
        """Property name -> value (pyVmomi objects); missing names fall back to defaults."""
        return {
            'name': self.name,
            'parent': self.parent.ref() if self.parent else None,
            'overallStatus': 'green',
            'configStatus': 'green',
            'alarmActionsEnabled': True,
            'effectiveRole': [-1],
        }

    def __repr__(self):
        return '<%s %s %s>' % (type(self).__name__, self.moid, self.name)


class Folder(Entity):
    vim_type = vim.Folder

    def __init__(self, moid, name, parent=None, child_type=()):
        super().__init__(moid, name, parent)
        self.child_type = list(child_type)
        self.child_entities: list[Entity] = []

    def add(self, entity: Entity) -> Entity:
        entity.parent = self
        self.child_entities.append(entity)
        return entity

    def children(self):
        return list(self.child_entities)

    def properties(self):
        props = super().properties()
        props['childEntity'] = [e.ref() for e in self.child_entities]
        props['childType'] = list(self.child_type)
        return props


class Datacenter(Entity):
    vim_type = vim.Datacenter

    def __init__(self, moid, name, folders):
        super().__init__(moid, name)
        self.vm_folder, self.host_folder, self.datastore_folder, self.network_folder = folders
        for folder in folders:
            folder.parent = self

    def children(self):
        return [self.vm_folder, self.host_folder, self.datastore_folder, self.network_folder]

    def properties(self):
        props = super().properties()
        props.update({
            'vmFolder': self.vm_folder.ref(),
            'hostFolder': self.host_folder.ref(),
            'datastoreFolder': self.datastore_folder.ref(),
            'networkFolder': self.network_folder.ref(),
            'datastore': [d.ref() for d in self.datastore_folder.child_entities if isinstance(d, Datastore)],
            'network': [n.ref() for n in self.network_folder.child_entities if isinstance(n, Network)],
        })
        return props

    @property
    def local_datastore(self) -> Datastore:
        return next(d for d in self.datastore_folder.child_entities if isinstance(d, Datastore))

    @property
    def vm_network(self) -> Network:
        return next(n for n in self.network_folder.child_entities if isinstance(n, Network))


class Datastore(Entity):
    """A local datastore mounted on every host of its datacenter, like vcsim's ``LocalDS_0``
    (govmomi simulator/host_datastore_system.go CreateLocalDatastore and add: type OTHER,
    LocalDatastoreInfo, read-write mounts, 1 TB per host, defaultDatastoreCapability)."""

    vim_type = vim.Datastore

    def __init__(self, moid, name, parent=None):
        super().__init__(moid, name, parent)
        self.hosts: list[HostSystem] = []
        self.vms: list[VirtualMachine] = []
        self.uuid = _uuid_for('datastore', moid, '5f')
        self.url = 'ds:///vmfs/volumes/%s/' % self.uuid

    def capacity(self) -> int:
        return 1024 ** 4 * max(1, len(self.hosts))

    def free_space(self) -> int:
        used = sum(vm.committed_bytes() for vm in self.vms)
        return max(0, self.capacity() - used)

    def properties(self):
        props = super().properties()
        free = self.free_space()
        props.update({
            'summary': vim.Datastore.Summary(
                datastore=self.ref(), name=self.name, url=self.url, capacity=self.capacity(), freeSpace=free,
                uncommitted=0, accessible=True, multipleHostAccess=len(self.hosts) > 1, type='OTHER',
                maintenanceMode='normal'),
            'info': vim.host.LocalDatastoreInfo(
                name=self.name, url=self.url, freeSpace=free, maxFileSize=self.capacity(),
                maxVirtualDiskCapacity=self.capacity(), maxMemoryFileSize=self.capacity(), timestamp=_now(),
                path='/vmfs/volumes/%s' % self.uuid),
            'host': [vim.Datastore.HostMount(key=h.ref(), mountInfo=vim.host.MountInfo(
                path='/vmfs/volumes/%s' % self.uuid, accessMode='readWrite', mounted=True, accessible=True))
                for h in self.hosts],
            'vm': [v.ref() for v in self.vms],
            'capability': vim.Datastore.Capability(
                directoryHierarchySupported=True, rawDiskMappingsSupported=False,
                perFileThinProvisioningSupported=True, storageIORMSupported=False, nativeSnapshotSupported=False,
                seSparseSupported=False, topLevelDirectoryCreateSupported=True),
        })
        return props


class Network(Entity):
    """The standard port group "VM Network" that vcsim's ESX model and its default NIC use
    (govmomi simulator/esx/host_config_info.go, esx/virtual_device.go EthernetCard)."""

    vim_type = vim.Network

    def __init__(self, moid, name, parent=None):
        super().__init__(moid, name, parent)
        self.hosts: list[HostSystem] = []
        self.vms: list[VirtualMachine] = []

    def properties(self):
        props = super().properties()
        props.update({
            'summary': vim.Network.Summary(network=self.ref(), name=self.name, accessible=True, ipPoolName=''),
            'host': [h.ref() for h in self.hosts],
            'vm': [v.ref() for v in self.vms],
        })
        return props


class ResourcePool(Entity):
    vim_type = vim.ResourcePool

    def __init__(self, moid, name, parent=None, owner=None):
        super().__init__(moid, name, parent)
        self.owner = owner
        self.pools: list[ResourcePool] = []
        self.vms: list[VirtualMachine] = []

    def children(self):
        return list(self.pools) + list(self.vms)

    def properties(self):
        props = super().properties()
        props.update({
            'owner': self.owner.ref() if self.owner else None,
            'resourcePool': [p.ref() for p in self.pools],
            'vm': [v.ref() for v in self.vms],
        })
        return props


# How a host's management address answers (inventory option ``management``): ``serve`` (HTTPS with
# /guestFile and /sdk), ``refuse`` (nothing listens: connections are refused, as when no route or a
# firewall rejects them) or ``silent`` (TCP connections are accepted and never answered, as behind a
# firewall that drops packets or a host that hangs).
MANAGEMENT_MODES = ('serve', 'refuse', 'silent')


class HostSystem(Entity):
    vim_type = vim.HostSystem

    def __init__(self, moid, name, parent=None, management: str = 'serve'):
        super().__init__(moid, name, parent)
        if management not in MANAGEMENT_MODES:
            raise ValueError('management must be one of %s' % ', '.join(MANAGEMENT_MODES))
        self.management = management
        # Set by the inventory (address: 127.0.1.N) and by the simulator (port, certificates).
        self.address = ''
        self.port = 443
        self.certificate = None      # tls.HostCertificate that vCenter reports for the host
        self.presented = None        # the one its listener presents (another one: a wrong pin)
        self.vms: list[VirtualMachine] = []
        self.hardware_uuid = _uuid_for('host', name, '4c')
        self.boot_time = _now()
        self.datastores: list[Datastore] = []
        self.networks: list[Network] = []

    def children(self):
        return []

    def management_netconfig(self) -> list:
        """``config.virtualNicManagerInfo.netConfig``: vmk0 on the Management Network, the one
        selected vNIC of nic type ``management``, holding the host's address. govc reads exactly this
        (govmomi ``internal/helpers.go`` HostSystemManagementIPs: netConfig entries of nicType
        ``management``, candidateVnic whose key is in selectedVnic, ``spec.ip.ipAddress``); keys and
        names follow vcsim's ESX model (``simulator/esx/host_config_info.go``)."""
        vnic = vim.host.VirtualNic(
            device='vmk0', key='management.key-vim.host.VirtualNic-vmk0', portgroup='Management Network',
            spec=vim.host.VirtualNic.Specification(
                ip=vim.host.IpConfig(dhcp=False, ipAddress=self.address, subnetMask='255.255.255.0'),
                mac=self.vmk_mac(), portgroup='Management Network', mtu=1500, tsoEnabled=True,
                netStackInstanceKey='defaultTcpipStack'))
        return [
            vim.host.VirtualNicManager.NetConfig(nicType='management', multiSelectAllowed=True,
                                                 candidateVnic=[vnic], selectedVnic=[vnic.key]),
            vim.host.VirtualNicManager.NetConfig(nicType='vmotion', multiSelectAllowed=True,
                                                 candidateVnic=[vnic], selectedVnic=[]),
        ]

    def vmk_mac(self) -> str:
        tail = self.hardware_uuid.replace('-', '')[-6:]
        return '00:50:56:%s:%s:%s' % (tail[0:2], tail[2:4], tail[4:6])

    def product(self):
        return vim.AboutInfo(**ESXI_ABOUT)

    def config_info(self):
        """``config``: what clients read through vCenter to reach and trust the host. ``certificate``
        is "Full Host Certificate in PEM format, if known" (HostConfigInfo; govmomi
        ``vim25/types/types.go``), an ``xsd:byte`` array on the wire."""
        pem = self.certificate.pem if self.certificate is not None else b''
        return vim.host.ConfigInfo(
            host=self.ref(), product=self.product(),
            virtualNicManagerInfo=vim.host.VirtualNicManagerInfo(netConfig=self.management_netconfig()),
            certificate=[pyvmomi_byte(b) for b in pem] or None)

    def properties(self):
        props = LazyProperties(super().properties())
        runtime = vim.host.RuntimeInfo(connectionState='connected', powerState='poweredOn',
                                       inMaintenanceMode=False, bootTime=self.boot_time)
        props.update({
            'config': Lazy(self.config_info),
            'vm': [v.ref() for v in self.vms],
            'datastore': [d.ref() for d in self.datastores],
            'network': [n.ref() for n in self.networks],
            'runtime': runtime,
            'summary': vim.host.Summary(
                host=self.ref(),
                runtime=runtime,
                hardware=vim.host.Summary.HardwareSummary(
                    vendor='VMware, Inc. (simulated)', model='guestsim', uuid=self.hardware_uuid,
                    memorySize=4 * 1024 ** 3, cpuModel='simulated', cpuMhz=2000, numCpuPkgs=1,
                    numCpuCores=2, numCpuThreads=2, numNics=1, numHBAs=0),
                # sslThumbprint: "The SSL thumbprint of the host, if known" (HostConfigSummary), SHA-1 in
                # colon hex; port: where the host's HTTPS service (and /guestFile) listens.
                config=vim.host.Summary.ConfigSummary(
                    name=self.name, port=self.port, vmotionEnabled=False, faultToleranceEnabled=False,
                    product=self.product(),
                    sslThumbprint=self.certificate.sha1 if self.certificate is not None else None),
                quickStats=vim.host.Summary.QuickStats(),
                overallStatus='green',
                rebootRequired=False),
        })
        return props


class ComputeResource(Entity):
    vim_type = vim.ComputeResource

    def __init__(self, moid, name, parent=None):
        super().__init__(moid, name, parent)
        self.hosts: list[HostSystem] = []
        self.resource_pool: ResourcePool | None = None

    def children(self):
        return list(self.hosts) + ([self.resource_pool] if self.resource_pool else [])

    def properties(self):
        props = super().properties()
        datastores = {d.moid: d for h in self.hosts for d in h.datastores}
        networks = {n.moid: n for h in self.hosts for n in h.networks}
        props.update({
            'host': [h.ref() for h in self.hosts],
            'resourcePool': self.resource_pool.ref() if self.resource_pool else None,
            'datastore': [d.ref() for d in datastores.values()],
            'network': [n.ref() for n in networks.values()],
        })
        return props


class ClusterComputeResource(ComputeResource):
    vim_type = vim.ClusterComputeResource


class VirtualMachine(Entity):
    """A VM with the runtime and guest state that guest operations depend on."""

    vim_type = vim.VirtualMachine

    def __init__(self, moid, name, host: HostSystem, pool: ResourcePool, **options):
        super().__init__(moid, name)
        self.host = host
        self.pool = pool
        self.datacenter: Datacenter | None = None
        self.uuid = options.get('uuid') or _uuid_for('bios', moid, '42')
        self.instance_uuid = options.get('instance_uuid') or _uuid_for('instance', moid, '50')
        # linux (programs run by bash) | windows (programs run by Wine, see guestsim/windows.py)
        self.guest_os = options.get('os', 'linux')
        defaults = WINDOWS_GUEST if self.guest_os == 'windows' else LINUX_GUEST
        self.guest_id = options.get('guest_id', defaults['guest_id'])
        self.guest_full_name = options.get('guest_full_name', defaults['guest_full_name'])
        self.guest_family = options.get('guest_family', defaults['guest_family'])
        self.power_state = options.get('power_state', 'poweredOn')
        # running | not_running | not_installed
        self.tools = options.get('tools', 'running')
        self.ready_delay = float(options.get('ready_delay', 0) or 0)
        self.noexec_tmp = bool(options.get('noexec_tmp', False))
        self.users = dict(options.get('users') or (
            DEFAULT_WINDOWS_USERS if self.guest_os == 'windows' else DEFAULT_GUEST_USERS))
        # Guest logins that the guest's sudo lets run commands as any user, with their own password
        # (a Debian guest's "%sudo ALL=(ALL:ALL) ALL"; root needs no entry). Linux guests only.
        self.sudo_users = list(options.get('sudo_users') or [])
        self.ip_address = options.get('ip_address', '')
        self.host_name = options.get('host_name') or name.lower().replace('_', '-')
        self.powered_on_at = time.monotonic() if self.power_state == 'poweredOn' else None
        # A Tools restart in progress (POST /guestsim/vms/<name>/tools-restart) ends at this monotonic time.
        self.tools_down_until: float | None = None
        self.boot_time = _now() if self.power_state == 'poweredOn' else None
        self.created = _now()
        self.datastore: Datastore | None = None  # set by Inventory.add_vm
        self.network: Network | None = None

    # --- power and agent state -------------------------------------------------------------
    def power_on(self):
        self.power_state = 'poweredOn'
        self.powered_on_at = time.monotonic()
        self.boot_time = _now()

    def power_off(self):
        self.power_state = 'poweredOff'
        self.powered_on_at = None
        self.boot_time = None

    def restart_tools(self, seconds: float):
        """vmtoolsd restarts: Tools are not running, guest operations unavailable, for ``seconds``."""
        self.tools_down_until = time.monotonic() + seconds

    def tools_restarting(self) -> bool:
        return self.tools_down_until is not None and time.monotonic() < self.tools_down_until

    def _uptime(self) -> float:
        if self.powered_on_at is None:
            return -1.0
        return time.monotonic() - self.powered_on_at

    def tools_running(self) -> bool:
        """VMware Tools' service is up (a slow-boot VM starts it halfway through its boot)."""
        if self.power_state != 'poweredOn' or self.tools != 'running' or self.tools_restarting():
            return False
        return self._uptime() >= self.ready_delay / 2.0

    def agent_ready(self) -> bool:
        """guest.guestOperationsReady: the guest operations agent answers requests."""
        return self.tools_running() and self._uptime() >= self.ready_delay

    def seconds_until_ready(self) -> float:
        if self.power_state != 'poweredOn' or self.tools != 'running':
            return -1.0
        return max(0.0, self.ready_delay - self._uptime())

    # --- properties --------------------------------------------------------------------------
    def guest_info(self):
        running = self.tools_running()
        ready = self.agent_ready()
        if self.tools == 'not_installed':
            tools_status, version_status = 'toolsNotInstalled', 'guestToolsNotInstalled'
        else:
            tools_status = 'toolsOk' if running else 'toolsNotRunning'
            version_status = 'guestToolsCurrent'
        info = vim.vm.GuestInfo(
            toolsStatus=tools_status,
            toolsVersionStatus='guestToolsCurrent' if self.tools != 'not_installed' else 'guestToolsNotInstalled',
            toolsVersionStatus2=version_status,
            toolsRunningStatus='guestToolsRunning' if running else 'guestToolsNotRunning',
            toolsVersion='12389' if self.tools != 'not_installed' else '0',
            toolsInstallType='guestToolsTypeOpenVMTools' if self.tools != 'not_installed' else None,
            guestState='running' if running else 'notRunning',
            guestOperationsReady=ready,
            interactiveGuestOperationsReady=False,
            guestStateChangeSupported=running,
        )
        if running:
            info.guestId = self.guest_id
            info.guestFamily = self.guest_family
            info.guestFullName = self.guest_full_name
            info.hostName = self.host_name
            if self.ip_address:
                info.ipAddress = self.ip_address
            # The NIC as Tools report it (GuestNicInfo), tied to the device by deviceConfigId.
            info.net = [vim.vm.GuestInfo.NicInfo(
                network=self.network.name, macAddress=self.mac_address, connected=True, deviceConfigId=4000,
                ipAddress=[self.ip_address] if self.ip_address else [])]
        return info

    # --- configuration that clients read (vcsim's defaults, see README) --------------------------
    DISK_BYTES = 10 * 1024 ** 3  # vcsim's model: a 10 GB thin disk1.vmdk on a pvscsi controller

    @property
    def vm_path_name(self) -> str:
        return '[%s] %s/%s.vmx' % (self.datastore.name, self.name, self.name)

    @property
    def directory(self) -> str:
        return '[%s] %s/' % (self.datastore.name, self.name)

    @property
    def mac_address(self) -> str:
        # ESXi-generated MACs: the VMware OUI 00:0c:29 and the last three octets of the VM's UUID
        # (Broadcom doc quoted in govmomi simulator/virtual_machine.go generateMAC).
        tail = self.uuid.replace('-', '')[-6:]
        return '00:0c:29:%s:%s:%s' % (tail[0:2], tail[2:4], tail[4:6])

    def files(self) -> list:
        """(name, type, size) of the VM's files, as vcsim's layoutEx lists them (vmx, nvram, log, disk
        descriptor and extent: simulator/virtual_machine.go create, updateDiskLayouts, vdmNames)."""
        base = self.directory
        return [
            (self.vm_path_name, 'config', 2048),
            ('%s%s.nvram' % (base, self.name), 'nvram', 8684),
            ('%svmware.log' % base, 'log', 65536 if self.power_state == 'poweredOn' else 32768),
            ('%sdisk1.vmdk' % base, 'diskDescriptor', 512),
            ('%sdisk1-flat.vmdk' % base, 'diskExtent', 1024 ** 3),
        ]

    def committed_bytes(self) -> int:
        return sum(size for _name, _kind, size in self.files())

    def tools_config(self):
        """config.tools. The tools.* defaults of a VM exported from vSphere (govmomi
        ovf/fixtures/.../Ubuntu-12.04.2-64-Server-Tools.ovf: afterPowerOn, afterResume,
        beforeGuestShutdown, beforeGuestStandby true, syncTimeWithHost false, toolsUpgradePolicy
        manual); toolsVersion as guest.toolsVersion (12389 = 12.3.5); open-vm-tools installs report
        guestToolsTypeOpenVMTools."""
        installed = self.tools != 'not_installed'
        return vim.vm.ToolsConfigInfo(
            toolsVersion=12389 if installed else 0,
            toolsInstallType='guestToolsTypeOpenVMTools' if installed else None,
            afterPowerOn=True, afterResume=True, beforeGuestStandby=True, beforeGuestShutdown=True,
            beforeGuestReboot=None, toolsUpgradePolicy='manual', syncTimeWithHostAllowed=True,
            syncTimeWithHost=False,
            lastInstallInfo=vim.vm.ToolsConfigInfo.ToolsLastInstallInfo(counter=0))

    def devices(self) -> list:
        """config.hardware.device: vcsim's default devices (govmomi simulator/esx/virtual_device.go)
        plus what its model adds to every VM (simulator/model.go addMachine): a pvscsi controller, a
        CD-ROM on IDE 0, a 10 GB thin disk on the datastore and an e1000 NIC on "VM Network".
        Keys follow ESXi's numbering (controllers 1000, disks 2000, CD-ROM 3000, NICs 4000)."""
        dev = vim.vm.device
        desc = vim.Description
        on = self.power_state == 'poweredOn'

        def connect():
            return dev.VirtualDevice.ConnectInfo(startConnected=True, allowGuestControl=True, connected=on,
                                                 status='ok' if on else 'untried')
        return [
            dev.VirtualPCIController(key=100, busNumber=0, device=[500, 12000, 1000, 4000],
                                     deviceInfo=desc(label='PCI controller 0', summary='PCI controller 0')),
            dev.VirtualIDEController(key=200, busNumber=0, device=[3000],
                                     deviceInfo=desc(label='IDE 0', summary='IDE 0')),
            dev.VirtualIDEController(key=201, busNumber=1, deviceInfo=desc(label='IDE 1', summary='IDE 1')),
            dev.VirtualPS2Controller(key=300, busNumber=0, device=[600, 700],
                                     deviceInfo=desc(label='PS2 controller 0', summary='PS2 controller 0')),
            dev.VirtualSIOController(key=400, busNumber=0,
                                     deviceInfo=desc(label='SIO controller 0', summary='SIO controller 0')),
            dev.VirtualKeyboard(key=600, controllerKey=300, unitNumber=0,
                                deviceInfo=desc(label='Keyboard ', summary='Keyboard')),
            dev.VirtualPointingDevice(
                key=700, controllerKey=300, unitNumber=1,
                backing=dev.VirtualPointingDevice.DeviceBackingInfo(deviceName='', useAutoDetect=False,
                                                                    hostPointingDevice='autodetect'),
                deviceInfo=desc(label='Pointing device', summary='Pointing device; Device')),
            dev.VirtualVideoCard(key=500, controllerKey=100, unitNumber=0, videoRamSizeInKB=4096,
                                 numDisplays=1, useAutoDetect=False, enable3DSupport=False,
                                 use3dRenderer='automatic', graphicsMemorySizeInKB=262144,
                                 deviceInfo=desc(label='Video card ', summary='Video card')),
            dev.VirtualVMCIDevice(key=12000, controllerKey=100, unitNumber=17, id=-1,
                                  allowUnrestrictedCommunication=False, filterEnable=True,
                                  deviceInfo=desc(label='VMCI device', summary='Device on the virtual '
                                                  'machine PCI bus that provides support for the '
                                                  'virtual machine communication interface')),
            dev.ParaVirtualSCSIController(key=1000, busNumber=0, controllerKey=100, unitNumber=3, device=[2000],
                                          sharedBus='noSharing', hotAddRemove=True, scsiCtlrUnitNumber=7,
                                          deviceInfo=desc(label='SCSI controller 0',
                                                          summary='VMware paravirtual SCSI')),
            dev.VirtualCdrom(key=3000, controllerKey=200, unitNumber=0,
                             backing=dev.VirtualCdrom.RemotePassthroughBackingInfo(
                                 deviceName='', exclusive=False, useAutoDetect=False),
                             connectable=dev.VirtualDevice.ConnectInfo(startConnected=False, allowGuestControl=True,
                                                                       connected=False, status='untried'),
                             deviceInfo=desc(label='CD/DVD drive 1', summary='Remote device')),
            dev.VirtualDisk(key=2000, controllerKey=1000, unitNumber=0, capacityInKB=self.DISK_BYTES // 1024,
                            capacityInBytes=self.DISK_BYTES,
                            backing=dev.VirtualDisk.FlatVer2BackingInfo(
                                fileName='%sdisk1.vmdk' % self.directory, datastore=self.datastore.ref(),
                                diskMode='persistent', thinProvisioned=True,
                                uuid=_uuid_for('disk', self.moid, '60')),
                            storageIOAllocation=vim.StorageResourceManager.IOAllocationInfo(limit=-1),
                            deviceInfo=desc(label='Hard disk 1', summary='10,485,760 KB')),
            dev.VirtualE1000(key=4000, controllerKey=100, unitNumber=7, addressType='generated',
                             macAddress=self.mac_address, wakeOnLanEnabled=True,
                             backing=dev.VirtualEthernetCard.NetworkBackingInfo(
                                 deviceName=self.network.name, network=self.network.ref(), useAutoDetect=False,
                                 inPassthroughMode=False),
                             connectable=connect(),
                             slotInfo=dev.VirtualDevice.PciBusSlotInfo(pciSlotNumber=32),
                             deviceInfo=desc(label='Network adapter 1', summary=self.network.name)),
        ]

    def layout_ex(self):
        files = [vim.vm.FileLayoutEx.FileInfo(key=key, name=name, type=kind, size=size, uniqueSize=size,
                                              accessible=True, backingObjectId='')
                 for key, (name, kind, size) in enumerate(self.files())]
        disk_keys = [key for key, (_n, kind, _s) in enumerate(self.files()) if kind.startswith('disk')]
        return vim.vm.FileLayoutEx(
            file=files,
            disk=[vim.vm.FileLayoutEx.DiskLayout(key=2000, chain=[vim.vm.FileLayoutEx.DiskUnit(fileKey=disk_keys)])],
            timestamp=self.created)

    def layout(self):
        names = self.files()
        return vim.vm.FileLayout(
            configFile=[n.split('] ', 1)[1] for n, kind, _s in names if kind == 'nvram'],
            logFile=[n.split('] ', 1)[1] for n, kind, _s in names if kind == 'log'],
            disk=[vim.vm.FileLayout.DiskLayout(key=2000, diskFile=['%sdisk1.vmdk' % self.directory])])

    def storage_usage(self):
        """(committed, uncommitted, unshared) as vcsim's updateStorage computes them."""
        committed = self.committed_bytes()
        unshared = sum(size for name, _kind, size in self.files() if name.endswith('.vmdk'))
        uncommitted = max(0, self.DISK_BYTES - committed)
        return committed, uncommitted, unshared

    def storage_info(self):
        committed, uncommitted, unshared = self.storage_usage()
        return vim.vm.StorageInfo(
            perDatastoreUsage=[vim.vm.StorageInfo.UsageOnDatastore(
                datastore=self.datastore.ref(), committed=committed, uncommitted=uncommitted, unshared=unshared)],
            timestamp=self.created)

    @staticmethod
    def capability():
        """vcsim leaves VirtualMachineCapability at its zero values except changeTrackingSupported,
        true for a VM with a FlatVer2 disk (simulator/virtual_machine.go changeTrackingSupported)."""
        values = {p.name: False for p in vim.vm.Capability._GetPropertyList()  # pylint: disable=protected-access
                  if p.type is bool}
        values['changeTrackingSupported'] = True
        return vim.vm.Capability(**values)

    def config_info(self):
        return vim.vm.ConfigInfo(
            changeVersion=self.created.isoformat(),
            modified=self.created,
            name=self.name,
            guestFullName=self.guest_full_name,
            version='vmx-21',
            uuid=self.uuid,
            instanceUuid=self.instance_uuid,
            template=False,
            guestId=self.guest_id,
            alternateGuestName='',
            files=vim.vm.FileInfo(vmPathName=self.vm_path_name, snapshotDirectory=self.directory,
                                  suspendDirectory=self.directory, logDirectory=self.directory),
            flags=vim.vm.FlagInfo(),
            defaultPowerOps=vim.vm.DefaultPowerOpInfo(),
            hardware=vim.vm.VirtualHardware(numCPU=1, numCoresPerSocket=1, memoryMB=1024, device=self.devices()),
            tools=self.tools_config(),
            firmware='bios',
            createDate=self.created,
        )

    def runtime_info(self):
        return vim.vm.RuntimeInfo(
            connectionState='connected',
            powerState=self.power_state,
            host=self.host.ref(),
            bootTime=self.boot_time,
            faultToleranceState='notConfigured',
            toolsInstallerMounted=False,
            numMksConnections=0,
            recordReplayState='inactive',
            onlineStandby=False,
            consolidationNeeded=False,
        )

    def summary(self):
        guest = self.guest_info()
        heartbeat = 'green' if self.tools_running() else 'gray'
        committed, uncommitted, unshared = self.storage_usage()
        return vim.vm.Summary(
            vm=self.ref(),
            runtime=self.runtime_info(),
            guest=vim.vm.Summary.GuestSummary(
                guestId=guest.guestId, guestFullName=guest.guestFullName,
                toolsStatus=guest.toolsStatus, toolsVersionStatus=guest.toolsVersionStatus,
                toolsVersionStatus2=guest.toolsVersionStatus2, toolsRunningStatus=guest.toolsRunningStatus,
                hostName=guest.hostName, ipAddress=guest.ipAddress),
            config=vim.vm.Summary.ConfigSummary(
                name=self.name, template=False, vmPathName=self.vm_path_name,
                memorySizeMB=1024, numCpu=1, numEthernetCards=1, numVirtualDisks=1, uuid=self.uuid,
                instanceUuid=self.instance_uuid, guestId=self.guest_id, guestFullName=self.guest_full_name),
            storage=vim.vm.Summary.StorageSummary(committed=committed, uncommitted=uncommitted,
                                                  unshared=unshared, timestamp=self.created),
            quickStats=vim.vm.Summary.QuickStats(guestHeartbeatStatus=heartbeat),
            overallStatus='green')

    def properties(self):
        # Built on access: a property read (Fetch, or one path of a PropertyCollector call) asks for
        # one property, and the device list or layoutEx are too costly to build for every read.
        props = LazyProperties(super().properties())
        props.update({
            'config': Lazy(self.config_info),
            'runtime': Lazy(self.runtime_info),
            'guest': Lazy(self.guest_info),
            'datastore': Lazy(lambda: [self.datastore.ref()]),
            'network': Lazy(lambda: [self.network.ref()]),
            'capability': Lazy(self.capability),
            'storage': Lazy(self.storage_info),
            'layoutEx': Lazy(self.layout_ex),
            'layout': Lazy(self.layout),
            'guestHeartbeatStatus': Lazy(lambda: 'green' if self.tools_running() else 'gray'),
            'resourcePool': Lazy(self.pool.ref),
            'summary': Lazy(self.summary),
        })
        return props


class Inventory:
    """The entity tree plus indexes by moid and type."""

    def __init__(self):
        self._counter = 0
        self.root = Folder('group-d1', 'Datacenters', None, ('Folder', 'Datacenter'))
        self.by_moid: dict[str, Entity] = {self.root.moid: self.root}
        self._counter = 1

    # --- building --------------------------------------------------------------------------
    def _next(self, prefix: str) -> str:
        self._counter += 1
        return '%s%d' % (prefix, self._counter)

    def _register(self, entity):
        if isinstance(entity, HostSystem):
            entity.address = self._host_address(entity.name)
        self.by_moid[entity.moid] = entity
        return entity

    def _host_address(self, name: str) -> str:
        """A host added to vCenter by its IP address is named by it and listens there (loopback
        only); the others get the next free 127.0.1.N."""
        taken = {h.address for h in self.hosts()}
        try:
            named = ipaddress.ip_address(name)
        except ValueError:
            named = None
        if named is not None:
            if named.version != 4 or not named.is_loopback:
                raise ValueError('host %s: a host named by an IP address listens there, so it must be in '
                                 '127.0.0.0/8' % name)
            if name in taken:
                raise ValueError('host %s: that address belongs to another host already' % name)
            return name
        for number in range(1, 255):
            address = '%s%d' % (HOST_ADDRESS_PREFIX, number)
            if address not in taken:
                return address
        raise ValueError('at most 254 hosts (management addresses %s1 to %s254)'
                         % (HOST_ADDRESS_PREFIX, HOST_ADDRESS_PREFIX))

    def hosts(self) -> list:
        return [e for e in self.by_moid.values() if isinstance(e, HostSystem)]

    def add_datacenter(self, name: str) -> Datacenter:
        moid = self._next('datacenter-')
        folders = (
            Folder(self._next('group-v'), 'vm', None, ('Folder', 'VirtualMachine', 'VirtualApp')),
            Folder(self._next('group-h'), 'host', None, ('Folder', 'ComputeResource')),
            Folder(self._next('group-s'), 'datastore', None, ('Folder', 'Datastore', 'StoragePod')),
            Folder(self._next('group-n'), 'network', None, ('Folder', 'Network', 'DistributedVirtualSwitch')),
        )
        datacenter = Datacenter(moid, name, folders)
        for folder in folders:
            self._register(folder)
        self.root.add(self._register(datacenter))
        # vcsim's model: one local datastore per datacenter (LocalDS_0), and the "VM Network" port group.
        datacenter.datastore_folder.add(self._register(Datastore(self._next('datastore-'), 'LocalDS_0')))
        datacenter.network_folder.add(self._register(Network(self._next('network-'), 'VM Network')))
        return datacenter

    def _attach_host(self, datacenter: Datacenter, host: HostSystem):
        datastore, network = datacenter.local_datastore, datacenter.vm_network
        host.datastores.append(datastore)
        host.networks.append(network)
        datastore.hosts.append(host)
        network.hosts.append(host)

    def datacenter(self, name: str) -> Datacenter:
        for entity in self.root.child_entities:
            if isinstance(entity, Datacenter) and entity.name == name:
                return entity
        raise KeyError('no datacenter %r' % name)

    def add_vm_folder(self, datacenter: Datacenter, path: str) -> Folder:
        """Return the vm subfolder at ``path`` ("F0" or "a/b"), creating missing levels."""
        folder = datacenter.vm_folder
        for part in [p for p in path.split('/') if p]:
            found = next((c for c in folder.child_entities if isinstance(c, Folder) and c.name == part), None)
            if found is None:
                found = folder.add(self._register(
                    Folder(self._next('group-v'), part, None, ('Folder', 'VirtualMachine', 'VirtualApp'))))
            folder = found
        return folder

    def _add_pool(self, owner: ComputeResource) -> ResourcePool:
        pool = self._register(ResourcePool(self._next('resgroup-'), 'Resources', owner, owner))
        owner.resource_pool = pool
        return pool

    def add_standalone_host(self, datacenter: Datacenter, name: str, management: str = 'serve') -> HostSystem:
        compute = datacenter.host_folder.add(self._register(ComputeResource(self._next('domain-s'), name)))
        host = self._register(HostSystem(self._next('host-'), name, compute, management=management))
        compute.hosts.append(host)
        self._attach_host(datacenter, host)
        self._add_pool(compute)
        return host

    def add_cluster(self, datacenter: Datacenter, name: str, host_names) -> ClusterComputeResource:
        """``host_names``: names, or (name, management) pairs."""
        cluster = datacenter.host_folder.add(self._register(ClusterComputeResource(self._next('domain-c'), name)))
        for entry in host_names:
            host_name, management = (entry, 'serve') if isinstance(entry, str) else entry
            host = self._register(HostSystem(self._next('host-'), host_name, cluster, management=management))
            cluster.hosts.append(host)
            self._attach_host(datacenter, host)
        self._add_pool(cluster)
        return cluster

    def find(self, kind, name: str):
        for entity in self.by_moid.values():
            if isinstance(entity, kind) and entity.name == name:
                return entity
        return None

    def add_vm(self, datacenter: Datacenter, name: str, folder: str = '', host: str = '', cluster: str = '',
               **options) -> VirtualMachine:
        if cluster:
            compute = self.find(ClusterComputeResource, cluster)
            if compute is None:
                raise KeyError('no cluster %r' % cluster)
            # Spread cluster VMs over the cluster's hosts like DRS would.
            placed = host and next((h for h in compute.hosts if h.name == host), None)
            target_host = placed or min(compute.hosts, key=lambda h: len(h.vms))
        else:
            target_host = self.find(HostSystem, host) if host else None
            if target_host is None:
                target_host = next((e for e in self.by_moid.values() if isinstance(e, HostSystem)
                                    and self.datacenter_of(e) is datacenter), None)
            if target_host is None:
                raise KeyError('no host for VM %r' % name)
            compute = target_host.parent
        pool = compute.resource_pool
        vm = self._register(VirtualMachine(self._next('vm-'), name, target_host, pool, **options))
        self.add_vm_folder(datacenter, folder).add(vm)
        vm.datacenter = datacenter
        vm.datastore = datacenter.local_datastore
        vm.network = datacenter.vm_network
        vm.datastore.vms.append(vm)
        vm.network.vms.append(vm)
        target_host.vms.append(vm)
        pool.vms.append(vm)
        return vm

    # --- queries -----------------------------------------------------------------------------
    def get(self, ref) -> Entity | None:
        entity = self.by_moid.get(ref._moId)  # pylint: disable=protected-access
        if entity is None or not isinstance(entity.ref(), type(ref)):
            return None
        return entity

    def vms(self) -> list:
        return [e for e in self.by_moid.values() if isinstance(e, VirtualMachine)]

    def vm_named(self, name: str) -> VirtualMachine | None:
        return next((vm for vm in self.vms() if vm.name == name), None)

    @staticmethod
    def datacenter_of(entity: Entity) -> Datacenter | None:
        node = entity
        while node is not None and not isinstance(node, Datacenter):
            node = node.parent
        return node

    @staticmethod
    def inventory_path(entity: Entity) -> str:
        parts = []
        node = entity
        while node is not None and node.parent is not None:
            parts.append(node.name)
            node = node.parent
        return '/'.join(reversed(parts))


def default_inventory() -> Inventory:
    """vcsim's default VPX model plus the VMs for the hard cases."""
    inv = Inventory()
    dc0 = inv.add_datacenter('DC0')
    inv.add_standalone_host(dc0, 'DC0_H0')
    inv.add_cluster(dc0, 'DC0_C0', ['DC0_C0_H0', 'DC0_C0_H1', 'DC0_C0_H2'])
    # A second guest login, allowed to use sudo with its password: privilege escalation tests.
    inv.add_vm(dc0, 'DC0_H0_VM0', host='DC0_H0', ip_address='10.0.0.10',
               users={'root': 'guestpass', 'deploy': 'deploypass'}, sudo_users=['deploy'])
    inv.add_vm(dc0, 'DC0_H0_VM1', host='DC0_H0', ip_address='10.0.0.11')
    inv.add_vm(dc0, 'DC0_C0_RP0_VM0', cluster='DC0_C0', ip_address='10.0.0.20')
    inv.add_vm(dc0, 'DC0_C0_RP0_VM1', cluster='DC0_C0', ip_address='10.0.0.21')
    inv.add_vm(dc0, 'DC0_H0_VM_OFF', host='DC0_H0', power_state='poweredOff', ip_address='10.0.0.30')
    inv.add_vm(dc0, 'DC0_H0_VM_NOTOOLS', host='DC0_H0', tools='not_running')
    inv.add_vm(dc0, 'DC0_H0_VM_SLOWBOOT', host='DC0_H0', ready_delay=DEFAULT_READY_DELAY, ip_address='10.0.0.32')
    inv.add_vm(dc0, 'DC0_H0_VM_NOEXEC', host='DC0_H0', noexec_tmp=True, ip_address='10.0.0.33')
    inv.add_vm(dc0, 'DUP_VM', folder='F0', host='DC0_H0', ip_address='10.0.0.40')
    inv.add_vm(dc0, 'DUP_VM', folder='F1', host='DC0_H0', ip_address='10.0.0.41')
    inv.add_vm(dc0, 'DC0_H0_WIN0', host='DC0_H0', os='windows', ip_address='10.0.0.50')
    # A host vCenter manages but the controller cannot reach: its management address refuses
    # connections, so /guestFile transfers to its VM fail while SOAP calls through vCenter work.
    inv.add_standalone_host(dc0, 'DC0_H_NOROUTE', management='refuse')
    inv.add_vm(dc0, 'DC0_H_NOROUTE_VM0', host='DC0_H_NOROUTE', ip_address='10.0.0.60')
    return inv


VM_OPTION_KEYS = ('uuid', 'instance_uuid', 'os', 'guest_id', 'guest_full_name', 'guest_family', 'power_state',
                  'tools', 'ready_delay', 'noexec_tmp', 'users', 'sudo_users', 'ip_address', 'host_name')


class InventoryError(ValueError):
    """The inventory file is not valid."""


def _host_spec(path: str, spec) -> tuple:
    """A host of the inventory file: a name, or ``{name: H, management: serve | refuse | silent}``."""
    if isinstance(spec, str):
        return spec, 'serve'
    if not isinstance(spec, dict) or 'name' not in spec or set(spec) - {'name', 'management'}:
        raise InventoryError('%s: a host is a name or {name: ..., management: serve | refuse | silent}' % path)
    management = spec.get('management', 'serve')
    if management not in MANAGEMENT_MODES:
        raise InventoryError('%s: host %s: management must be one of %s'
                             % (path, spec['name'], ', '.join(MANAGEMENT_MODES)))
    return spec['name'], management


def load_inventory(path: str) -> Inventory:
    """Build the inventory from a YAML file (see README: ``replace`` or extend the default)."""
    with open(path, encoding='utf-8') as handle:
        data = yaml.safe_load(handle) or {}
    if not isinstance(data, dict):
        raise InventoryError('%s: the top level must be a mapping' % path)
    inv = Inventory() if data.get('replace') else default_inventory()
    for dc_spec in data.get('datacenters') or []:
        try:
            datacenter = inv.datacenter(dc_spec['name'])
        except KeyError:
            datacenter = inv.add_datacenter(dc_spec['name'])
        for folder in dc_spec.get('folders') or []:
            inv.add_vm_folder(datacenter, folder)
        try:
            for host in dc_spec.get('hosts') or []:
                inv.add_standalone_host(datacenter, *_host_spec(path, host))
            for cluster in dc_spec.get('clusters') or []:
                inv.add_cluster(datacenter, cluster['name'], [_host_spec(path, h) for h in cluster.get('hosts')
                                                              or ['%s_H0' % cluster['name']]])
        except InventoryError:
            raise
        except ValueError as exc:
            raise InventoryError('%s: %s' % (path, exc)) from None
    for vm_spec in data.get('vms') or []:
        if 'name' not in vm_spec:
            raise InventoryError('%s: every VM needs a name' % path)
        unknown = set(vm_spec) - set(VM_OPTION_KEYS) - {'name', 'datacenter', 'folder', 'host', 'cluster'}
        if unknown:
            raise InventoryError('%s: unknown keys for VM %s: %s' % (path, vm_spec['name'], ', '.join(sorted(unknown))))
        try:
            datacenter = inv.datacenter(vm_spec.get('datacenter', 'DC0'))
            options = {k: vm_spec[k] for k in VM_OPTION_KEYS if k in vm_spec}
            if options.get('os') not in (None, 'linux', 'windows'):
                raise InventoryError('%s: os must be linux or windows' % path)
            if options.get('os') == 'windows' and options.get('noexec_tmp'):
                raise InventoryError('%s: noexec_tmp is for Linux VMs' % path)
            if options.get('tools') not in (None, 'running', 'not_running', 'not_installed'):
                raise InventoryError('%s: tools must be running, not_running or not_installed' % path)
            inv.add_vm(datacenter, vm_spec['name'], folder=vm_spec.get('folder', ''), host=vm_spec.get('host', ''),
                       cluster=vm_spec.get('cluster', ''), **options)
        except KeyError as exc:
            raise InventoryError('%s: VM %s: %s' % (path, vm_spec['name'], exc)) from None
    return inv
