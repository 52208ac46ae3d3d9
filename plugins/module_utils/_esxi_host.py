# -*- coding: utf-8 -*-
# Copyright (c) guestops.vsphere contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Reaching and trusting the ESXi host of a transfer. Private to the collection.

Transfer URLs as vCenter and ESXi hand them out, the host's management addresses and certificate
fingerprints as vCenter reports them, and the HTTPS adapters that trust the session's CA or exactly
a pinned fingerprint. No vSphere call is made here; ``GuestClient`` makes them.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
import ssl
import traceback

from ansible_collections.guestops.vsphere.plugins.module_utils._vsphere import unverified_ssl_context

REQUESTS_IMPORT_ERROR = None
try:
    from requests.adapters import HTTPAdapter
except ImportError:  # pragma: no cover - exercised by the sanity import test
    REQUESTS_IMPORT_ERROR = traceback.format_exc()
    HTTPAdapter = object

CHUNK_SIZE = 1024 * 1024


_TOKEN = re.compile(r'(token=)[^&\s\'"]+', re.IGNORECASE)


def scrub(text):
    """Remove transfer tokens from a text (error messages of HTTP libraries contain URLs)."""
    return _TOKEN.sub(r'\1***', str(text))


def split_host_port(netloc):
    """'host', 'host:443', '[v6]:443', '[v6]', 'v6' -> (host, port or None). Brackets are removed."""
    if netloc.startswith('['):
        end = netloc.find(']')
        if end < 0:
            raise ValueError('unbalanced [ in %r' % netloc)
        host = netloc[1:end]
        rest = netloc[end + 1:]
        if not rest:
            return host, None
        if not rest.startswith(':') or not rest[1:].isdigit():
            raise ValueError('invalid port in %r' % netloc)
        return host, int(rest[1:])
    if netloc.count(':') == 1:
        host, port = netloc.split(':')
        if not port.isdigit():
            raise ValueError('invalid port in %r' % netloc)
        return host, int(port)
    return netloc, None


def format_host(host):
    """Put brackets around an IPv6 address."""
    if ':' in host and not host.startswith('['):
        return '[%s]' % host
    return host


def transfer_url(url, client_host, client_port=None, override=None, host_address=None):
    """The URL to use for a guest file transfer.

    vSphere returns ``https://*:443/guestFile?...`` (``*`` meaning "the server you
    called", when the client talks to ESXi directly) or, through vCenter, a URL naming the
    VM's ESXi host by its inventory name (govmomi ``guest/file_manager.go`` TransferURL).
    Only the host part is touched:

    * with ``override`` (``host`` or ``host:port``), the host (and port, if given) is replaced;
    * a ``*`` host becomes ``client_host``; a port in the URL is kept, and a URL
      without a port gets ``client_port`` (the server that was called);
    * a named host becomes ``host_address`` when given (the host's one management IP that
      vCenter reports), keeping the URL's port;
    * any other URL is returned unchanged.

    Path, query and token are never modified.
    """
    marker = url.find('://')
    if marker < 0:
        raise ValueError('not an absolute URL')
    start = marker + 3
    end = len(url)
    for char in '/?#':
        index = url.find(char, start)
        if index >= 0:
            end = min(end, index)
    netloc = url[start:end]
    userinfo = ''
    if '@' in netloc:
        userinfo, netloc = netloc.rsplit('@', 1)
        userinfo += '@'
    host, port = split_host_port(netloc)
    if override:
        new_host, new_port = split_host_port(override.strip())
        if new_port is None:
            new_port = port
    elif host == '*':
        new_host = client_host
        new_port = port if port is not None else client_port
        if new_port is not None and url[:marker].lower() == 'https' and int(new_port) == 443 and port is None:
            new_port = None
    elif host_address:
        new_host, new_port = host_address, port
    else:
        return url
    new_netloc = userinfo + format_host(new_host) + ('' if new_port is None else ':%s' % new_port)
    return url[:start] + new_netloc + url[end:]


def url_hostname(url):
    """The host of a URL without port or brackets ('*' for a wildcard)."""
    return split_host_port(url_host(url))[0]


def url_port(url):
    """The port of a URL (443 when it names none)."""
    port = split_host_port(url_host(url))[1]
    return port if port is not None else 443


def is_ip_address(host):
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def colon_hex(hex_digest):
    """'ab01..' -> 'AB:01:..', the way vSphere and govc print certificate thumbprints."""
    text = hex_digest.replace(':', '').upper()
    return ':'.join(text[i:i + 2] for i in range(0, len(text), 2))


def pem_sha256(pem):
    """Colon-hex SHA-256 of the first certificate of a PEM text (bytes, str, or the signed byte
    list ``config.certificate`` comes as), or None when there is none."""
    if pem is None:
        return None
    if not isinstance(pem, (bytes, str)):
        pem = bytes(b & 0xff for b in pem)
    if isinstance(pem, bytes):
        pem = pem.decode('ascii', 'replace')
    start = pem.find('-----BEGIN CERTIFICATE-----')
    end = pem.find('-----END CERTIFICATE-----', start)
    if start < 0 or end < 0:
        return None
    try:
        der = ssl.PEM_cert_to_DER_cert(pem[start:end + len('-----END CERTIFICATE-----')])
    except ValueError:
        return None
    return colon_hex(hashlib.sha256(der).hexdigest())


def management_ips(net_config):
    """The IPs of the selected vNICs of nic type 'management' in a host's
    ``config.virtualNicManagerInfo.netConfig``, read as govc does (govmomi
    ``internal/helpers.go`` HostSystemManagementIPs)."""
    ips = []
    for config in net_config or []:
        if getattr(config, 'nicType', None) != 'management':
            continue
        selected = set(getattr(config, 'selectedVnic', None) or [])
        for vnic in getattr(config, 'candidateVnic', None) or []:
            if getattr(vnic, 'key', None) not in selected:
                continue
            ip = getattr(getattr(getattr(vnic, 'spec', None), 'ip', None), 'ipAddress', None)
            if ip and is_ip_address(ip) and ip not in ips:
                ips.append(ip)
    return ips


TRANSFER_VALIDATE = ('ca', 'thumbprint', 'none')

FINGERPRINT_MISMATCH = re.compile(r'Fingerprints did not match\. Expected "([0-9a-fA-F:]+)", got "([0-9a-fA-F:]+)"')


class EsxiHost(object):
    """What vCenter reports about the ESXi host that runs the VM (for reaching and trusting it)."""

    __slots__ = ('name', 'ips', 'sha1', 'sha256', 'connection_state', 'problem')

    def __init__(self, name=None, ips=(), sha1=None, sha256=None, connection_state=None, problem=None):
        self.name = name
        self.ips = list(ips)
        self.sha1 = sha1
        self.sha256 = sha256
        self.connection_state = connection_state
        self.problem = problem  # why vCenter could not tell (a sentence), or None

    def as_kept(self, with_certificate):
        return dict(name=self.name, ips=self.ips, sha1=self.sha1, sha256=self.sha256,
                    connection_state=self.connection_state, with_certificate=bool(with_certificate))

    @classmethod
    def from_kept(cls, kept):
        return cls(name=kept.get('name'), ips=kept.get('ips') or (), sha1=kept.get('sha1'), sha256=kept.get('sha256'),
                   connection_state=kept.get('connection_state'))

    @property
    def address(self):
        """The one management IP, or None when vCenter reports none or several."""
        return self.ips[0] if len(self.ips) == 1 else None

    @property
    def pin(self):
        """(algorithm, colon-hex fingerprint) to pin: SHA-256 of config.certificate, else the SHA-1
        summary.config.sslThumbprint; None when vCenter reports neither."""
        if self.sha256:
            return 'SHA-256', self.sha256
        if self.sha1:
            return 'SHA-1', colon_hex(self.sha1)
        return None


def url_host(url):
    """'host:port' of a URL for messages (never the path or the token)."""
    marker = url.find('://')
    rest = url[marker + 3:] if marker >= 0 else url
    for char in '/?#':
        rest = rest.split(char, 1)[0]
    return rest.rsplit('@', 1)[-1]


class ContextAdapter(HTTPAdapter):
    """An HTTPS adapter that uses the session's SSL context (same trust as the SOAP connection)."""

    def __init__(self, ssl_context, **kwargs):
        self._ssl_context = ssl_context
        super(ContextAdapter, self).__init__(**kwargs)

    def init_poolmanager(self, *args, **kwargs):
        kwargs['ssl_context'] = self._ssl_context
        return super(ContextAdapter, self).init_poolmanager(*args, **kwargs)

    def proxy_manager_for(self, *args, **kwargs):
        kwargs['ssl_context'] = self._ssl_context
        return super(ContextAdapter, self).proxy_manager_for(*args, **kwargs)

    def cert_verify(self, conn, url, verify, cert):
        """Trust comes from the SSL context alone.

        requests would otherwise hand its own CA bundle to urllib3, which loads it into the
        context that the SOAP connection shares, widening what both trust.
        """
        conn.cert_reqs = 'CERT_REQUIRED' if verify else 'CERT_NONE'
        conn.ca_certs = None
        conn.ca_cert_dir = None


class PinnedAdapter(ContextAdapter):
    """An HTTPS adapter that trusts exactly the certificates whose fingerprint is pinned for the
    host:port called (urllib3 ``assert_fingerprint``; hex of SHA-1 or SHA-256 over the DER). With a
    fingerprint, urllib3 turns hostname checks off and a self-signed certificate needs CERT_NONE, so
    the adapter has a context of its own and never touches the session's."""

    def __init__(self, pins, **kwargs):
        self._pins = pins
        super(PinnedAdapter, self).__init__(unverified_ssl_context(), **kwargs)

    def cert_verify(self, conn, url, verify, cert):
        conn.cert_reqs = 'CERT_NONE'
        conn.ca_certs = None
        conn.ca_cert_dir = None
        pin = self._pins.get(url_host(url).lower())
        if pin is None:
            raise ValueError('no pinned thumbprint for %s' % url_host(url))
        conn.assert_fingerprint = pin.replace(':', '').lower()


class SizedReader(object):
    """A file-like body with a known length, read in large chunks (requests sends Content-Length)."""

    def __init__(self, fileobj, size, chunk_size=CHUNK_SIZE):
        self._fileobj = fileobj
        self._size = size
        self._chunk_size = chunk_size
        self.sent = 0
        self.sha1 = hashlib.sha1()

    def __len__(self):
        return self._size

    def read(self, amount=-1):
        want = self._chunk_size if amount is None or amount < 0 else max(amount, self._chunk_size)
        want = min(want, self._size - self.sent)
        if want <= 0:
            return b''
        data = self._fileobj.read(want)
        self.sent += len(data)
        self.sha1.update(data)
        return data
