"""SOAP wire format: vSphere's envelopes, parsed and produced with pyVmomi's own type registry.

The request side drives pyVmomi's ``SoapDeserializer`` once per parameter element, the response
side uses ``SoapSerializer``; faults are written the way vCenter writes them (message only in
``faultstring``, the detail element named ``<WsdlName>Fault`` with ``xmlns="urn:vim25"``).
"""

from __future__ import annotations

import copy
import io
from dataclasses import dataclass, field
from xml.parsers.expat import ExpatError, ParserCreate

from pyVmomi import VmomiSupport
from pyVmomi.SoapAdapter import (
    NS_SEP,
    SOAP_BODY_END,
    SOAP_BODY_START,
    SOAP_ENVELOPE_END,
    SOAP_ENVELOPE_START,
    SOAP_NSMAP,
    XML_ENCODING,
    XML_HEADER,
    XMLNS_SOAPENV,
    ExpatDeserializerNSHandlers,
    GetHandlers,
    SetHandlers,
    SoapDeserializer,
    SoapSerializer,
    XmlEscape,
)

VIM_NS = 'urn:vim25'
# The API release this simulator answers as (vCenter 8.0 Update 3).
SERVER_VERSION = 'vim.version.v8_0_3_0'

# vimServiceVersions.xml of a vCenter 8.0 U3: current version plus the prior versions it accepts.
PRIOR_VERSION_IDS = (
    '8.0.2.0', '8.0.1.0', '8.0.0.2', '8.0.0.1', '8.0.0.0', '7.0.3.2', '7.0.3.1', '7.0.3.0', '7.0.2.1', '7.0.2.0',
    '7.0.1.2', '7.0.1.1', '7.0.1.0', '7.0.0.2', '7.0.0.1', '7.0', '6.9.1', '6.8.7', '6.7.2', '6.7.1', '6.7', '6.5',
    '6.0', '5.5', '5.1', '5.0', '4.1', '4.0', '2.5u2server', '2.5u2', '2.5',
)


class RequestError(Exception):
    """The request body is not a SOAP call this server understands (answered with a vmodl fault)."""


def service_versions_xml(version: str = SERVER_VERSION) -> bytes:
    """The document pyVim.connect reads to negotiate the API version."""
    current = VmomiSupport.versionIdMap[version]
    prior = ''.join('   <version>%s</version>\n' % v for v in PRIOR_VERSION_IDS if v != current)
    text = (
        '<?xml version="1.0" encoding="UTF-8" ?>\n'
        '<namespaces version="1.0">\n'
        ' <namespace>\n'
        '  <name>urn:vim25</name>\n'
        '  <version>%s</version>\n'
        '  <priorVersions>\n%s  </priorVersions>\n'
        ' </namespace>\n'
        ' <namespace>\n'
        '  <name>urn:vim2</name>\n'
        '  <version>2.0</version>\n'
        ' </namespace>\n'
        '</namespaces>\n' % (current, prior)
    )
    return text.encode('utf-8')


def version_from_soap_action(header: str | None, default: str = SERVER_VERSION) -> str:
    """Map a ``SOAPAction: "urn:vim25/8.0.3.0"`` header to a pyVmomi version name."""
    if not header:
        return default
    value = header.strip().strip('"')
    if value.startswith('urn:'):
        value = value[4:]
    version = VmomiSupport.versionMap.get(value)
    if version is None:
        return default
    # Never answer in a newer dialect than the server speaks.
    if not VmomiSupport.IsChildVersion(default, version):
        return default
    return version


@dataclass
class MethodSpec:
    """What the dispatcher needs about a called method."""

    wsdl_name: str
    params: tuple
    result: type
    result_flags: int
    declaring_type: type | None


@dataclass
class SoapRequest:
    """One parsed SOAP call."""

    method: MethodSpec
    this: object
    args: dict = field(default_factory=dict)


def fetch_method() -> MethodSpec:
    """The undocumented accessor pyVmomi uses for every property read."""
    param = VmomiSupport.Object(name='prop', type=str, version=VmomiSupport.BASE_VERSION, flags=0)
    return MethodSpec('Fetch', (param,), object, 0, None)


def lookup_method(wsdl_name: str) -> MethodSpec:
    if wsdl_name == 'Fetch':
        return fetch_method()
    try:
        info = VmomiSupport.GetWsdlMethod(VIM_NS, wsdl_name).info
    except KeyError:
        raise RequestError('Unknown method %s' % wsdl_name) from None
    return MethodSpec(info.wsdlName, tuple(info.params), info.result, info.resultFlags, info.type)


class _RequestParser(ExpatDeserializerNSHandlers):
    """Walks Envelope/Body/<method>, handing each parameter element to pyVmomi's deserializer."""

    def __init__(self, version: str):
        ExpatDeserializerNSHandlers.__init__(self)
        self.version = version
        self.parser = ParserCreate(namespace_separator=NS_SEP)
        self.parser.buffer_text = True
        SetHandlers(self.parser, GetHandlers(self))
        self.depth = 0
        self.in_body = False
        self.method: MethodSpec | None = None
        self.params: dict = {}
        self.args: dict = {}
        self.pending: tuple | None = None  # (python name, deserializer, is_array)

    def parse(self, body: bytes) -> SoapRequest:
        try:
            self.parser.Parse(body, True)
        except ExpatError as exc:
            raise RequestError('Malformed XML: %s' % exc) from None
        self._collect()
        if self.method is None:
            raise RequestError('No method element in the SOAP body')
        this = self.args.pop('_this', None)
        if this is None:
            raise RequestError('Missing _this')
        return SoapRequest(self.method, this, self.args)

    def _collect(self):
        if self.pending is None:
            return
        name, deserializer, is_array, array_type = self.pending
        value = deserializer.GetResult()
        if is_array:
            self.args.setdefault(name, array_type()).append(value)
        else:
            self.args[name] = value
        self.pending = None

    def StartElementHandler(self, tag, attr):  # noqa: N802 (expat callback name)
        self._collect()
        self.depth += 1
        ns, _sep, name = tag.rpartition(NS_SEP)
        if self.depth == 2 and ns == XMLNS_SOAPENV and name == 'Body':
            self.in_body = True
            return
        if self.depth == 3 and self.in_body:
            if ns and ns != VIM_NS:
                raise RequestError('Unknown namespace %s' % ns)
            self.method = lookup_method(name)
            self.params = {p.name: p for p in self.method.params}
            return
        if self.depth == 4 and self.method is not None:
            if name == '_this':
                wanted, arg_name, is_array, array_type = VmomiSupport.ManagedObject, '_this', False, None
            else:
                param = self.params.get(name)
                if param is None:
                    raise RequestError('Unexpected element %s' % name)
                is_array = issubclass(param.type, list)
                array_type = param.type if is_array else None
                wanted = param.type.Item if is_array else param.type
                arg_name = param.name
            deserializer = SoapDeserializer(stub=None, version=self.version)
            deserializer.Deserialize(self.parser, wanted, False, self.nsMap)
            # The deserializer now owns the parser until this element closes.
            self.depth -= 1
            self.pending = (arg_name, deserializer, is_array, array_type)
            deserializer.StartElementHandler(tag, attr)

    def EndElementHandler(self, tag):  # noqa: N802 (expat callback name)
        self._collect()
        self.depth -= 1
        del tag

    def CharacterDataHandler(self, data):  # noqa: N802 (expat callback name)
        del data


def parse_request(body: bytes, version: str = SERVER_VERSION) -> SoapRequest:
    """Parse a SOAP request into method, ``_this`` and keyword arguments (pyVmomi objects)."""
    parser = _RequestParser(version)
    try:
        return parser.parse(body)
    except (TypeError, KeyError, AttributeError, ValueError) as exc:
        raise RequestError('Cannot deserialize request: %s' % exc) from None


def _ns_map() -> dict:
    ns_map = SOAP_NSMAP.copy()
    ns_map[VIM_NS] = ''
    return ns_map


def _serializer(writer, version):
    serializer = SoapSerializer(writer, version, _ns_map())
    # pyVmomi adds a client-side versionId attribute to the outermost element; vSphere does not send it.
    serializer.outermostAttrs = ''
    return serializer


def serialize_response(wsdl_name: str, result, result_type, result_flags: int, version: str) -> bytes:
    """A ``<{method}Response>`` envelope carrying ``returnval`` (nothing for void methods)."""
    writer = io.StringIO()
    writer.write(XML_HEADER + '\n' + SOAP_ENVELOPE_START + SOAP_BODY_START + '\n')
    writer.write('<%sResponse xmlns="%s">' % (wsdl_name, VIM_NS))
    # An empty array is sent as an empty response element, as vCenter does (pyVmomi's serializer
    # would refuse it for results it marks as required, such as FindAllByUuid's).
    empty_array = isinstance(result, list) and not result
    if result_type is not type(None) and result is not None and not empty_array:
        info = VmomiSupport.Object(name='returnval', type=result_type, version=version,
                                   flags=result_flags)
        _serializer(writer, version).Serialize(result, info)
    writer.write('</%sResponse>' % wsdl_name)
    writer.write('\n' + SOAP_BODY_END + SOAP_ENVELOPE_END)
    return writer.getvalue().encode(XML_ENCODING)


def serialize_fault(fault, version: str) -> bytes:
    """A SOAP fault body as vCenter sends it (HTTP 500)."""
    message = fault.msg or ''
    detail = copy.copy(fault)
    detail.msg = None
    wsdl_name = fault._wsdlName  # pylint: disable=protected-access
    info = VmomiSupport.Object(name=wsdl_name + 'Fault', type=object, version=version, flags=0)
    writer = io.StringIO()
    _serializer(writer, version).SerializeFaultDetail(detail, info)
    detail_xml = writer.getvalue()
    # vCenter declares the vim namespace on the detail element itself.
    head = '<%sFault' % wsdl_name
    if detail_xml.startswith(head) and 'xmlns="' not in detail_xml[:detail_xml.find('>')]:
        detail_xml = head + ' xmlns="%s"' % VIM_NS + detail_xml[len(head):]
    body = (
        XML_HEADER + '\n' + SOAP_ENVELOPE_START + SOAP_BODY_START + '\n'
        '<soapenv:Fault><faultcode>ServerFaultCode</faultcode><faultstring>%s</faultstring>'
        '<detail>%s</detail></soapenv:Fault>' % (XmlEscape(message), detail_xml)
        + '\n' + SOAP_BODY_END + SOAP_ENVELOPE_END
    )
    return body.encode(XML_ENCODING)
