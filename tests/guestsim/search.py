"""SearchIndex: FindByUuid, FindAllByUuid, FindByInventoryPath, FindChild, FindByIp, FindByDnsName."""

from __future__ import annotations

from .inventory import HostSystem, Inventory


class SearchIndex:
    """How real clients find VMs without walking the inventory themselves."""

    def __init__(self, inventory: Inventory):
        self.inventory = inventory

    def _scoped(self, datacenter_ref, vm_search: bool) -> list:
        entities = self.inventory.vms() if vm_search else [
            e for e in self.inventory.by_moid.values() if isinstance(e, HostSystem)]
        if datacenter_ref is not None:
            moid = datacenter_ref._moId  # pylint: disable=protected-access
            entities = [e for e in entities if (self.inventory.datacenter_of(e) or e).moid == moid]
        return entities

    def find_all_by_uuid(self, datacenter, uuid: str, vm_search: bool, instance_uuid: bool | None) -> list:
        wanted = (uuid or '').lower()
        found = []
        for entity in self._scoped(datacenter, vm_search):
            if vm_search:
                value = entity.instance_uuid if instance_uuid else entity.uuid
            else:
                value = entity.hardware_uuid
            if value.lower() == wanted:
                found.append(entity.ref())
        return found

    def find_by_uuid(self, datacenter, uuid, vm_search, instance_uuid):
        found = self.find_all_by_uuid(datacenter, uuid, vm_search, instance_uuid)
        return found[0] if found else None

    def find_by_ip(self, datacenter, ip: str, vm_search: bool):
        if not vm_search:
            return None
        for vm in self._scoped(datacenter, True):
            if vm.tools_running() and vm.ip_address and vm.ip_address == ip:
                return vm.ref()
        return None

    def find_by_dns_name(self, datacenter, dns_name: str, vm_search: bool):
        if not vm_search:
            return None
        for vm in self._scoped(datacenter, True):
            if vm.tools_running() and vm.host_name.lower() == (dns_name or '').lower():
                return vm.ref()
        return None

    @staticmethod
    def child_named(entity, name: str):
        for child in entity.children():
            if child.name == name:
                return child
        return None

    def find_child(self, entity, name: str):
        child = self.child_named(entity, name)
        return child.ref() if child else None

    def find_by_inventory_path(self, path: str):
        node = self.inventory.root
        parts = [p.replace('%2f', '/').replace('%2F', '/') for p in (path or '').strip('/').split('/') if p]
        if not parts:
            return node.ref()
        for part in parts:
            node = self.child_named(node, part)
            if node is None:
                return None
        return node.ref()
