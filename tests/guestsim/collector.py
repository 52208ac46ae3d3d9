"""PropertyCollector (with ObjectSpec/TraversalSpec/PropertySpec), property paths and ContainerViews."""

from __future__ import annotations

import uuid

from pyVmomi import VmomiSupport, vim, vmodl

from . import faults
from .inventory import ComputeResource, Datacenter, Folder, HostSystem, ResourcePool

_UNSET = object()


def _typed(value, prop_type):
    """Plain Python lists become typed pyVmomi arrays (needed for xsd:anyType values)."""
    if isinstance(value, list) and not isinstance(value, VmomiSupport.Array) and issubclass(prop_type, list):
        return prop_type(value)
    return value


def top_property(provider, ref, name: str, props=None):
    """(value, declared type) of a top-level property; unmodelled properties get empty defaults.
    ``props``: the provider's properties() when several paths of one object are read."""
    try:
        info = type(ref)._GetPropertyInfo(name)  # pylint: disable=protected-access
    except (AttributeError, KeyError):
        raise faults.invalid_property(name) from None
    if props is None:
        props = provider.properties()
    if name in props:
        value = props[name]
    elif issubclass(info.type, list):
        value = []
    else:
        value = None
    return _typed(value, info.type), info.type


def path_value(provider, ref, path: str, props=None):
    """Value of a property path such as ``guest.toolsRunningStatus``; _UNSET when a level is unset."""
    parts = path.split('.')
    value, prop_type = top_property(provider, ref, parts[0], props)
    for part in parts[1:]:
        if value is None:
            return _UNSET, None
        if not isinstance(value, VmomiSupport.DataObject):
            raise faults.invalid_property(path)
        try:
            info = type(value)._GetPropertyInfo(part)  # pylint: disable=protected-access
        except (AttributeError, KeyError):
            raise faults.invalid_property(path) from None
        value, prop_type = _typed(getattr(value, info.name), info.type), info.type
    if value is None:
        return _UNSET, None
    return value, prop_type


def _as_refs(value) -> list:
    if value is None:
        return []
    if isinstance(value, list):
        return [v for v in value if isinstance(v, VmomiSupport.ManagedObject)]
    if isinstance(value, VmomiSupport.ManagedObject):
        return [value]
    return []


class PropertyCollector:
    """RetrieveProperties / RetrievePropertiesEx / ContinueRetrievePropertiesEx."""

    DEFAULT_PAGE = 100

    def __init__(self, registry):
        self.registry = registry

    def _provider(self, ref):
        provider = self.registry.resolve(ref)
        if provider is None:
            raise faults.managed_object_not_found(ref)
        return provider

    @staticmethod
    def _named_specs(filter_spec) -> dict:
        named = {}

        def walk(selects):
            for sel in selects or []:
                if isinstance(sel, vmodl.query.PropertyCollector.TraversalSpec):
                    if sel.name and sel.name not in named:
                        named[sel.name] = sel
                        walk(sel.selectSet)
                    elif not sel.name:
                        walk(sel.selectSet)
        for obj_spec in filter_spec.objectSet or []:
            walk(obj_spec.selectSet)
        return named

    def _select(self, filter_spec) -> list:
        """Objects selected by the filter's object specs and traversals, in discovery order."""
        named = self._named_specs(filter_spec)
        selected = {}
        seen = set()

        def add(ref):
            key = (type(ref).__name__, ref._moId)  # pylint: disable=protected-access
            selected.setdefault(key, ref)

        def visit(ref, selects):
            for sel in selects or []:
                spec = sel if isinstance(sel, vmodl.query.PropertyCollector.TraversalSpec) else named.get(sel.name)
                if spec is None:
                    raise faults.invalid_argument('selectSet')
                if not isinstance(ref, spec.type):
                    continue
                key = (ref._moId, spec.name or id(spec))  # pylint: disable=protected-access
                if key in seen:
                    continue
                seen.add(key)
                value, _prop_type = path_value(self._provider(ref), ref, spec.path)
                for target in _as_refs(None if value is _UNSET else value):
                    if self.registry.resolve(target) is None:
                        continue
                    if not spec.skip:
                        add(target)
                    visit(target, spec.selectSet)

        for obj_spec in filter_spec.objectSet or []:
            self._provider(obj_spec.obj)
            if not obj_spec.skip:
                add(obj_spec.obj)
            visit(obj_spec.obj, obj_spec.selectSet)
        return list(selected.values())

    def _contents(self, filter_spec) -> list:
        result = []
        for ref in self._select(filter_spec):
            prop_specs = [p for p in filter_spec.propSet or [] if isinstance(ref, p.type)]
            if not prop_specs:
                continue
            provider = self._provider(ref)
            paths = []
            for prop_spec in prop_specs:
                if prop_spec.all:
                    names = [p.name for p in type(ref)._GetPropertyList()]  # pylint: disable=protected-access
                else:
                    names = list(prop_spec.pathSet or [])
                for name in names:
                    if name not in paths:
                        paths.append(name)
            prop_set = []
            props = provider.properties()  # once per object: its Lazy values are then built once
            for path in paths:
                value, _prop_type = path_value(provider, ref, path, props)
                if value is _UNSET or (isinstance(value, list) and not value and not isinstance(value, VmomiSupport.Array)):
                    continue
                prop_set.append(vmodl.DynamicProperty(name=path, val=value))
            result.append(vmodl.query.PropertyCollector.ObjectContent(obj=ref, propSet=prop_set))
        return result

    def retrieve(self, spec_set) -> list:
        objects = []
        for filter_spec in spec_set or []:
            objects.extend(self._contents(filter_spec))
        return objects

    def retrieve_ex(self, session, spec_set, options):
        objects = self.retrieve(spec_set)
        if not objects:
            return None
        page = self.DEFAULT_PAGE
        if options is not None and options.maxObjects:
            page = max(1, options.maxObjects)
        return self._page(session, objects, page)

    @staticmethod
    def _page(session, objects, page):
        head, rest = objects[:page], objects[page:]
        token = None
        if rest:
            token = str(uuid.uuid4())
            session.retrieve_tokens[token] = (rest, page)
        return vmodl.query.PropertyCollector.RetrieveResult(token=token, objects=head)

    def continue_ex(self, session, token):
        entry = session.retrieve_tokens.pop(token, None)
        if entry is None:
            raise faults.invalid_property('token')
        rest, page = entry
        return self._page(session, rest, page)

    @staticmethod
    def cancel_ex(session, token):
        session.retrieve_tokens.pop(token, None)


def container_children(entity) -> list:
    """Direct members of a container as a ContainerView sees them."""
    if isinstance(entity, Folder):
        return list(entity.child_entities)
    if isinstance(entity, Datacenter):
        return entity.children()
    if isinstance(entity, ComputeResource):
        return entity.children()
    if isinstance(entity, ResourcePool):
        return entity.children()
    if isinstance(entity, HostSystem):
        return list(entity.vms)
    return []


class ContainerView:
    """A session-scoped view of the entities below a container."""

    vim_type = vim.view.ContainerView

    def __init__(self, session_cookie: str, container, types, recursive: bool):
        self.moid = 'session[%s]%s' % (uuid.uuid4(), uuid.uuid4())
        self.session_cookie = session_cookie
        self.container = container
        self.types = list(types or [])
        self.recursive = recursive

    def ref(self):
        return vim.view.ContainerView(self.moid)

    def members(self) -> list:
        found = []
        seen = set()
        stack = list(reversed(container_children(self.container)))
        while stack:
            entity = stack.pop()
            if entity.moid in seen:
                continue
            seen.add(entity.moid)
            ref = entity.ref()
            if not self.types or any(isinstance(ref, t) for t in self.types):
                found.append(ref)
            if self.recursive:
                stack.extend(reversed(container_children(entity)))
        return found

    def properties(self) -> dict:
        return {
            'view': VmomiSupport.GetVmodlType('vmodl.ManagedObject[]')(self.members()),
            'container': self.container.ref(),
            'type': list(self.types),
            'recursive': self.recursive,
        }
