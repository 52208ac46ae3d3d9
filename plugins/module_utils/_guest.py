# -*- coding: utf-8 -*-
# Copyright (c) guestops.vsphere contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Guest operations client: temp files, transfers, programs. Private to the collection.

Every guest operations API call of the collection is made here, through
``GuestClient``, which is bound to one session, one VM and one guest login.
"""

from __future__ import annotations

import errno
import hashlib
import socket
import ssl
import time
import traceback
import warnings

from ansible_collections.guestops.vsphere.plugins.module_utils._faults import (
    VSphereError,
    fault_is,
    network_problem,
)
from ansible_collections.guestops.vsphere.plugins.module_utils._esxi_host import (
    CHUNK_SIZE,
    FINGERPRINT_MISMATCH,
    TRANSFER_VALIDATE,
    ContextAdapter,
    EsxiHost,
    PinnedAdapter,
    SizedReader,
    colon_hex,
    format_host,
    is_ip_address,
    management_ips,
    pem_sha256,
    scrub,
    transfer_url,
    url_host,
    url_hostname,
    url_port,
)
from ansible_collections.guestops.vsphere.plugins.module_utils import _paths
from ansible_collections.guestops.vsphere.plugins.module_utils import _vcenter_channel as channel
from ansible_collections.guestops.vsphere.plugins.module_utils._paths import basename
from ansible_collections.guestops.vsphere.plugins.module_utils._retry import dropped, root_cause
from ansible_collections.guestops.vsphere.plugins.module_utils._vsphere import unverified_ssl_context, vim, vmodl

REQUESTS_IMPORT_ERROR = None
try:
    import requests
except ImportError:  # pragma: no cover - exercised by the sanity import test
    REQUESTS_IMPORT_ERROR = traceback.format_exc()
    requests = None

HAS_REQUESTS = REQUESTS_IMPORT_ERROR is None

TRANSFER_ATTEMPTS = 3

# Polling: first poll after POLL_FIRST seconds, each wait POLL_FACTOR times the last,
# never more than POLL_CAP apart (vSphere keeps exit codes only 5 minutes).
POLL_FIRST = 0.1
POLL_FACTOR = 1.5
POLL_CAP = 5.0


# --------------------------------------------------------------------------- polling

def poll_delay(attempt, first=POLL_FIRST, factor=POLL_FACTOR, cap=POLL_CAP):
    """Seconds to wait before poll number ``attempt`` (0-based): first * factor**attempt, capped."""
    if attempt < 0:
        raise ValueError('attempt must be >= 0')
    delay = first
    for dummy in range(attempt):
        delay *= factor
        if delay >= cap:
            return cap
    return min(delay, cap)


# --------------------------------------------------------------------------- results

class ProcessExit(object):
    """How a guest program ended."""

    __slots__ = ('pid', 'exit_code', 'expired', 'info')

    def __init__(self, pid, exit_code, expired=False, info=None):
        self.pid = pid
        self.exit_code = exit_code
        self.expired = expired
        self.info = info  # the guest's process record (None when it forgot the process)


class WaitTimeout(VSphereError):
    """The program did not end within the timeout."""

    def __init__(self, msg, pid):
        super(WaitTimeout, self).__init__(msg)
        self.pid = pid


class Download(object):
    """Bytes read from a guest file (possibly cut at a limit)."""

    __slots__ = ('data', 'size', 'truncated')

    def __init__(self, data, size, truncated):
        self.data = data
        self.size = size
        self.truncated = truncated


# --------------------------------------------------------------------------- client

def _unreachable(error):
    """Mark a transfer error as "the ESXi host cannot be reached", which makes transfer_mode=auto use
    the vCenter channel; a TLS or HTTP problem is a setting to fix and must not be worked around."""
    error.unreachable = True
    return error


class GuestClient(object):
    """Guest operations on one VM with one guest login.

    ``session`` is a connected VSphereSession, ``vm`` a VirtualMachine from its lookup.
    """

    def __init__(self, session, vm, username, password, transfer_host=None, transfer_validate='ca',
                 transfer_mode='auto',
                 sleep=time.sleep, clock=time.monotonic):
        self.session = session
        self.vm = vm
        self.username = username
        self.auth = vim.vm.guest.NamePasswordAuthentication(
            username=username, password=password, interactiveSession=False)
        self.transfer_host = transfer_host
        if transfer_validate not in TRANSFER_VALIDATE:
            raise VSphereError("transfer_validate must be one of %s, got '%s'."
                               % (', '.join(TRANSFER_VALIDATE), transfer_validate))
        self.transfer_validate = transfer_validate or 'ca'
        self.transfer_mode = transfer_mode or 'auto'
        # The channel files travel through now: 'esxi' (/guestFile on the ESXi host) or 'vcenter'
        # (SOAP calls only, see _vcenter_channel); transfer_used is what this client did use.
        self._channel = 'vcenter' if self.transfer_mode == 'vcenter' else 'esxi'
        self.transfer_used = None
        self.transfer_note = None
        self._prefetched = {}
        self._batch = None
        self._sleep = sleep
        self._clock = clock
        self._http = None
        self._http_unverified = None
        self._http_pinned = None
        self._pins = {}
        self._esxi = None
        self._esxi_certificate = False

    # ----------------------------------------------------------------- plumbing
    def _guest_call(self, manager, step, method, path=None, idempotent=True, deadline=None, **kwargs):
        target = self.session.guest_manager(manager)
        return self.session.call(step, getattr(target, method), vm_name=self.vm.name, path=path,
                                 guest_username=self.username, idempotent=idempotent, deadline=deadline,
                                 vm=self.vm.ref, auth=self.auth, **kwargs)

    def _file_call(self, step, method, path=None, **kwargs):
        return self._guest_call('fileManager', step, method, path=path, **kwargs)

    def _process_call(self, step, method, path=None, **kwargs):
        return self._guest_call('processManager', step, method, path=path, **kwargs)

    def validate_credentials(self):
        """Check the guest login (ValidateCredentialsInGuest); raises VSphereError when rejected."""
        self._guest_call('authManager', 'Checking the guest login', 'ValidateCredentialsInGuest')

    def _error(self, step, message, fault=None, retryable=None):
        """An error of this client's own (HTTP transfers, checks), not of a SOAP call."""
        error = VSphereError("%s failed for VM '%s': %s" % (step, self.vm.name, message), fault=fault,
                             step=step, retryable=retryable)
        error.transfer = True
        return error

    # ----------------------------------------------------------------- files
    def make_temp_dir(self, prefix='ansible-', suffix='', directory_path=None):
        """Create a private temp directory; returns its absolute path."""
        return self._file_call('Creating a temporary directory', 'CreateTemporaryDirectoryInGuest',
                               path=directory_path, idempotent=False, prefix=prefix, suffix=suffix,
                               directoryPath=directory_path or None)

    def make_temp_file(self, prefix='ansible-', suffix='', directory_path=None):
        """Create an empty temp file; returns its absolute path."""
        return self._file_call('Creating a temporary file', 'CreateTemporaryFileInGuest',
                               path=directory_path, idempotent=False, prefix=prefix, suffix=suffix,
                               directoryPath=directory_path or None)

    def stat(self, path):
        """{'type', 'size', 'permissions', 'owner_id', 'group_id'} of a guest path, or None if missing."""
        try:
            listing = self._file_call('Checking a guest path', 'ListFilesInGuest', path=path,
                                      filePath=path, maxResults=2)
        except VSphereError as err:
            if err.fault is not None and fault_is(err.fault, 'FileNotFound'):
                return None
            raise
        files = list(getattr(listing, 'files', None) or [])
        entry = files[0] if files else None
        # A directory lists its entries ("." first); a file lists itself. A directory may also hold an
        # entry with its own name, which then is a directory listed by basename.
        if (entry is None or entry.path == '.'
                or entry.path != path and (entry.path != basename(path) or entry.type == 'directory')):
            return {'type': 'directory', 'size': None, 'permissions': None, 'owner_id': None, 'group_id': None}
        attrs = entry.attributes
        return {
            'type': entry.type,
            'size': entry.size,
            'permissions': getattr(attrs, 'permissions', None),
            'owner_id': getattr(attrs, 'ownerId', None),
            'group_id': getattr(attrs, 'groupId', None),
        }

    def list_dir(self, path, match_pattern=None, max_results=500):
        """Entries of a guest directory (ListFilesInGuest), without '.' and '..'."""
        listing = self._file_call('Listing a guest directory', 'ListFilesInGuest', path=path, filePath=path,
                                  maxResults=max_results, matchPattern=match_pattern)
        return [entry for entry in getattr(listing, 'files', None) or [] if entry.path not in ('.', '..')]

    def delete(self, path):
        """Delete a file or a directory tree. Returns False when it did not exist."""
        try:
            self._file_call('Deleting a guest directory', 'DeleteDirectoryInGuest', path=path,
                            directoryPath=path, recursive=True)
            return True
        except VSphereError as err:
            if err.fault is not None and fault_is(err.fault, 'FileNotFound'):
                return False
            if err.fault is None or not fault_is(err.fault, 'FileFault'):
                raise
            directory_error = err
        try:
            self._file_call('Deleting a guest file', 'DeleteFileInGuest', path=path, filePath=path)
            return True
        except VSphereError as err:
            if err.fault is not None and fault_is(err.fault, 'FileNotFound'):
                return False
            if err.fault is not None and fault_is(err.fault, 'NotAFile'):
                raise directory_error
            raise

    def move_file(self, src, dest, overwrite=True):
        self._file_call('Moving a guest file', 'MoveFileInGuest', path=dest, srcFilePath=src, dstFilePath=dest,
                        overwrite=overwrite)

    def change_attributes(self, path, attributes):
        self._file_call('Changing guest file attributes', 'ChangeFileAttributesInGuest', path=path,
                        guestFilePath=path, fileAttributes=attributes)

    # ----------------------------------------------------------------- transfers
    def _new_http(self, adapter, verify):
        if not HAS_REQUESTS:
            raise VSphereError('The Python library requests is required for guest file transfers.')
        http = requests.Session()
        http.mount('https://', adapter)
        http.verify = verify
        http.trust_env = False
        if self.session.proxy_host:
            proxy = 'http://%s:%s' % (format_host(self.session.proxy_host), self.session.proxy_port or 80)
            http.proxies = {'https': proxy, 'http': proxy}
        return http

    def _http_session(self, url=None):
        """The HTTP session for a transfer to ``url`` (None: to the server the session talks to, a
        ``*`` URL): the SOAP connection's trust (``ca``), a pinned thumbprint, or no verification."""
        mode = self.transfer_validate
        if mode == 'thumbprint' and url is not None and url_host(url).lower() in self._pins:
            if self._http_pinned is None:
                self._http_pinned = self._new_http(PinnedAdapter(self._pins), False)
            return self._http_pinned
        if mode == 'none' and url is not None:
            if self._http_unverified is None:
                self._http_unverified = self._new_http(ContextAdapter(unverified_ssl_context()), False)
            return self._http_unverified
        if self._http is None:
            self._http = self._new_http(ContextAdapter(self.session.ssl_context()),
                                        bool(self.session.validate_certs))
        return self._http

    def close(self):
        for name in ('_http', '_http_unverified', '_http_pinned'):
            http = getattr(self, name)
            if http is not None:
                http.close()
                setattr(self, name, None)

    def esxi_host(self, certificate=False, name=None):
        """What vCenter reports about the VM's ESXi host, read once per client: its name, management
        IPs, connection state and thumbprints (``config.certificate`` only when ``certificate``:
        it is a few kilobytes). The properties are govc's (govmomi ``guest/file_manager.go``
        TransferURL). The VM's ``runtime.host`` comes with its facts; a VM taken without facts (a
        job in a kept session) costs one call more. A user who may not read the host gets an
        EsxiHost with ``problem`` set, and the URL is tried as vCenter gave it.

        In a kept session the facts of a host are kept with it, under the host's name, for the next
        tasks of the run: ``name`` (the host a transfer URL names) finds them without a call. A VM
        that moved to another host gets URLs naming that host, which is then looked up."""
        if self._esxi is not None and (self._esxi_certificate or self._esxi.problem or not certificate):
            return self._esxi
        kept = self._kept('esxi_hosts').get(name) if name else None
        if kept is not None and (kept.get('with_certificate') or not certificate):
            self._esxi, self._esxi_certificate = EsxiHost.from_kept(kept), bool(kept.get('with_certificate'))
            return self._esxi
        self._esxi_certificate = certificate
        step = 'Reading the ESXi host of the VM'
        pc = vmodl.query.PropertyCollector
        try:
            host_ref = self.vm.get('runtime.host')
            if host_ref is None:
                found = self.session.retrieve(step, [pc.ObjectSpec(obj=self.vm.ref, skip=False)], [
                    pc.PropertySpec(type=vim.VirtualMachine, pathSet=['runtime.host'])], vm_name=self.vm.name)
                host_ref = found[0][1].get('runtime.host') if found else None
                self.vm.props['runtime.host'] = host_ref
            if host_ref is None:
                self._esxi = EsxiHost(problem='vCenter names no host for the VM')
                return self._esxi
            paths = ['name', 'runtime.connectionState', 'summary.config.sslThumbprint',
                     'config.virtualNicManagerInfo.netConfig']
            if certificate:
                paths.append('config.certificate')
            found = self.session.retrieve(step, [pc.ObjectSpec(obj=host_ref, skip=False)], [
                pc.PropertySpec(type=vim.HostSystem, pathSet=paths)], vm_name=self.vm.name)
        except VSphereError as err:
            self._esxi = EsxiHost(problem='vCenter did not tell (%s)' % err.msg)
            return self._esxi
        props = found[0][1] if found else {}
        if not props:
            self._esxi = EsxiHost(problem="user '%s' may not read the VM's host" % self.session.username)
            return self._esxi
        self._esxi = EsxiHost(name=props.get('name'), ips=management_ips(props.get('config.virtualNicManagerInfo.netConfig')),
                              sha1=props.get('summary.config.sslThumbprint'),
                              sha256=pem_sha256(props.get('config.certificate')),
                              connection_state=props.get('runtime.connectionState'))
        if self._esxi.name:
            self._kept('esxi_hosts')[self._esxi.name] = self._esxi.as_kept(certificate)
        return self._esxi

    def _kept(self, key):
        """A dict kept with the session for the next tasks of the run (see VSphereSession.kept_extra):
        'esxi_hosts' (host name -> facts), 'unreachable_esxi' (VM and transfer_host -> why)."""
        return self.session.kept_extra.setdefault(key, {})

    def _url(self, step, url):
        """The URL to send the transfer to, like govc's TransferURL: ``transfer_host`` wins; ``*`` is
        the server this session talks to; a host name is replaced by the host's management IP when
        vCenter reports exactly one, and kept (tried as given) otherwise. With
        ``transfer_validate=thumbprint`` the thumbprint vCenter reports is pinned for that address."""
        name = url_hostname(url)
        pinning = self.transfer_validate == 'thumbprint' and name != '*'
        address = None
        if name != '*' and not self.transfer_host and not is_ip_address(name) or pinning:
            esxi = self.esxi_host(certificate=pinning, name=name if name != '*' else None)
            if name != '*' and not is_ip_address(name):
                address = esxi.address
        final = transfer_url(url, self.session.hostname, self.session.port, self.transfer_host, address)
        if pinning:
            pin = self._esxi.pin
            if pin is None:
                raise self._error(step, "transfer_validate=thumbprint, but vCenter reports no "
                                  "certificate or thumbprint for the ESXi host '%s'%s. Trust the host's CA "
                                  "(transfer_validate=ca) or, in a lab, set transfer_validate=none."
                                  % (self._esxi.name or name, ' (%s)' % self._esxi.problem if self._esxi.problem
                                     else ''), retryable=False)
            self._pins[url_host(final).lower()] = pin[1]
        return final

    def _describe_host(self, url, final):
        """The host for messages, the name vCenter gave and the address tried: "the ESXi host 'DC0_H0' (tried ...)"."""
        name = url_hostname(url)
        tried = url_host(final)
        if name == '*':
            return "the transfer host '%s'" % tried
        if self.transfer_host:
            return "the ESXi host '%s' (tried %s, from transfer_host)" % (name, tried)
        if url_hostname(final) != name:
            return "the ESXi host '%s' (tried %s, its management address as vCenter reports it)" % (name, tried)
        esxi = self._esxi
        if esxi is not None and esxi.problem:
            why = '; %s' % esxi.problem
        elif esxi is not None and len(esxi.ips) > 1:
            why = '; vCenter reports %d management addresses (%s)' % (len(esxi.ips), ', '.join(esxi.ips))
        elif esxi is not None and esxi.name:
            why = '; vCenter reports no management address'
        else:
            why = ''
        return "the ESXi host '%s' (tried %s, the name as vCenter gave it%s)" % (name, tried, why)

    def _timeout(self):
        return (self.session.request_timeout, self.session.request_timeout)

    def _request(self, step, method, url, **kwargs):
        """Send one transfer request to the URL vSphere returned (made reachable by _url)."""
        final = self._url(step, url)
        http = self._http_session(None if url_hostname(url) == '*' else final)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter('ignore')
                response = http.request(method, final, timeout=self._timeout(), **kwargs)
        except requests.exceptions.RequestException as exc:
            raise self._transfer_error(step, url, final, exc)
        if response.status_code != 200:
            try:
                body = scrub(response.text[:200]).strip()
            finally:
                response.close()
            # Repeated with a new URL: the host refused this one (used, expired, or a failure of its own).
            raise self._error(step, "%s answered HTTP %s%s." % (
                self._describe_host(url, final), response.status_code, ' (%s)' % body if body else ''),
                retryable=True)
        response.host_label = self._describe_host(url, final)
        return response

    def _firewall_advice(self, final):
        port = url_port(final)
        return ("File transfers go from the host running the module straight to the ESXi host that runs the VM "
                "(not through vCenter): open TCP port %d of %s to it%s, set transfer_host to an address that "
                "reaches the ESXi host, or set transfer_mode=vcenter to send files through vCenter alone."
                % (port, url_hostname(final), " (port 443 of the ESXi host, unless something forwards it)"
                   if port != 443 and not self.transfer_host else ''))

    def _transfer_error(self, step, url, final, exc):
        """A transfer request that failed before an answer, told apart by cause: a pinned thumbprint
        that does not match, a certificate that cannot be verified, a host that cannot be reached or
        does not answer (settings to fix: not repeated, and each attempt would leave one more unused
        URL behind), or a connection that broke off (repeated with a new URL)."""
        host = self._describe_host(url, final)
        cause = root_cause(exc)
        mismatch = FINGERPRINT_MISMATCH.search(str(exc))
        if mismatch is not None:
            algorithm, pinned = self._esxi.pin if self._esxi is not None and self._esxi.pin else ('', mismatch.group(1))
            return self._error(step, "%s presented a TLS certificate with %s fingerprint %s, but vCenter reports %s "
                               "for that host (transfer_validate=thumbprint). The host's certificate was replaced "
                               "after vCenter last read it, or something on the way intercepts the connection: "
                               "check the host's certificate in vCenter (reconnecting the host refreshes it)."
                               % (host, algorithm or 'the', colon_hex(mismatch.group(2)), colon_hex(pinned)),
                               fault=exc, retryable=False)
        if isinstance(cause, ssl.SSLCertVerificationError):
            return self._error(step, "the TLS certificate of %s could not be verified (%s). ESXi hosts have "
                               "certificates of their own: trust the CA that signed it on the host running the "
                               "module (as for vCenter), pin the thumbprint vCenter reports for the host "
                               "(transfer_validate=thumbprint), or in a lab set transfer_validate=none."
                               % (host, scrub(getattr(cause, 'verify_message', None) or _reason(exc))),
                               fault=exc, retryable=False)
        if _not_connected(exc, cause):
            return _unreachable(self._error(step, "%s cannot be reached (%s). %s" % (
                host, scrub(_reason(exc)), self._firewall_advice(final)), fault=exc, retryable=False))
        if isinstance(cause, ssl.SSLError) and not dropped(exc):
            return self._error(step, "the TLS handshake with %s failed (%s). Check that transfer_host, if set, "
                               "points to the ESXi host's HTTPS port." % (host, scrub(_reason(exc))),
                               fault=exc, retryable=False)
        if isinstance(exc, requests.exceptions.Timeout):
            return _unreachable(self._error(step, "%s accepted the connection but did not answer within %s seconds "
                                            "(request_timeout). A firewall may let the connection through and drop "
                                            "the traffic, or the host is overloaded. %s" % (
                                                host, _seconds(self.session.request_timeout),
                                                self._firewall_advice(final)), fault=exc, retryable=False))
        return self._error(step, "the connection to %s broke off during the transfer (%s)." % (
            host, scrub(_reason(exc))), fault=exc, retryable=True)

    def _with_retries(self, step, attempt):
        """Run a whole transfer (new URL, HTTP request, body) again while it fails transiently.

        A dropped or refused connection and a body that broke off are repeated with a new URL
        (a URL is good for one transfer only), up to TRANSFER_ATTEMPTS times within the retry budget.
        """
        budget = None
        tries = 0
        while True:
            tries += 1
            try:
                return attempt()
            except _BrokenTransfer as broken:
                error = broken.error
            except VSphereError as err:
                if not getattr(err, 'transfer', False) or not err.retryable:
                    raise  # a SOAP call's own error has had its retries already
                error = err
            if budget is None:
                budget = self.session.retry_budget()
            if tries >= TRANSFER_ATTEMPTS or not budget.wait():
                error.msg += ' Tried %d times.' % tries
                raise error

    def upload(self, fileobj, size, guest_path, overwrite=True, attributes=None, label=None):
        """Stream ``size`` bytes from ``fileobj`` into ``guest_path``. Returns the sha1 hex digest.

        Through the ESXi host, or through vCenter (transfer_mode, see _use_vcenter_after). ``label``:
        the path to name in messages (the destination, when ``guest_path`` is a temporary name).
        """
        if attributes is None:
            attributes = self.file_attributes()
        start = fileobj.tell() if hasattr(fileobj, 'tell') else None
        if self.channel == 'esxi':
            try:
                digest = self._upload_esxi(fileobj, size, guest_path, overwrite, attributes, start, label)
                self._used('esxi')
                return digest
            except VSphereError as err:
                if not self._use_vcenter_after(err):
                    raise
            if start is not None:
                fileobj.seek(start)
        return self._upload_vcenter(fileobj, size, guest_path, overwrite, attributes)

    def _upload_esxi(self, fileobj, size, guest_path, overwrite, attributes, start, label=None):
        step = "Uploading to '%s'" % (label or guest_path)

        def attempt():
            if start is not None:
                fileobj.seek(start)
            url = self._file_call(step, 'InitiateFileTransferToGuest', path=guest_path, guestFilePath=guest_path,
                                  fileAttributes=attributes, fileSize=size, overwrite=overwrite)
            body = SizedReader(fileobj, size)
            response = self._request(step, 'PUT', url, data=body,
                                     headers={'Content-Type': 'application/octet-stream'})
            response.close()
            if body.sent != size:
                raise self._error(step, 'the local source ended after %d of %d bytes.' % (body.sent, size))
            return body.sha1.hexdigest()
        if start is None:
            return attempt()
        return self._with_retries(step, attempt)

    def file_attributes(self, mode=None, owner=None, group=None, windows=False):
        if windows:
            return vim.vm.guest.FileManager.WindowsFileAttributes()
        return vim.vm.guest.FileManager.PosixFileAttributes(permissions=mode, ownerId=owner, groupId=group)

    def _open_download(self, step, guest_path):
        info = self._file_call(step, 'InitiateFileTransferFromGuest', path=guest_path, guestFilePath=guest_path)
        response = self._request(step, 'GET', info.url, stream=True)
        return info, response

    def _chunks(self, step, response):
        """The body of a download in large chunks; a broken transfer raises _BrokenTransfer."""
        size = 0
        try:
            for chunk in response.iter_content(chunk_size=CHUNK_SIZE):
                if chunk:
                    yield chunk
                    size += len(chunk)
        except requests.exceptions.RequestException as exc:
            raise _BrokenTransfer(self._error(step, 'the connection to %s broke off after %d bytes (%s).'
                                              % (getattr(response, 'host_label', 'the transfer host'), size,
                                                 scrub(_reason(exc))), fault=exc, retryable=True))
        finally:
            response.close()

    def stream(self, guest_path, sink, limit=None):
        """Stream a guest file into ``sink(chunk)``, at most ``limit`` bytes, retrying broken transfers.

        ``sink`` is called with ``None`` before every attempt after the first, to start over.
        Returns (bytes passed to sink, size of the guest file, sha1 of the bytes passed).
        """
        if self.channel == 'esxi' and guest_path not in self._prefetched:
            try:
                found = self._stream_esxi(guest_path, sink, limit)
                self._used('esxi')
                return found
            except VSphereError as err:
                if not self._use_vcenter_after(err):
                    raise
            sink(None)
        found = self._read_vcenter(guest_path, limit)
        self._used('vcenter')
        data = found.data if limit is None else found.data[:limit]
        if data:
            sink(data)
        return len(data), found.size, hashlib.sha1(data).hexdigest()

    def _stream_esxi(self, guest_path, sink, limit):
        step = "Downloading '%s'" % guest_path
        attempts = [0]

        def attempt():
            if attempts[0]:
                sink(None)
            attempts[0] += 1
            info, response = self._open_download(step, guest_path)
            sha1 = hashlib.sha1()
            size = 0
            chunks = self._chunks(step, response)
            try:
                for chunk in chunks:
                    if limit is not None and size + len(chunk) > limit:
                        chunk = chunk[:limit - size]
                    if chunk:
                        sink(chunk)
                        sha1.update(chunk)
                        size += len(chunk)
                    if limit is not None and size >= limit:
                        break
            finally:
                chunks.close()
            expected = getattr(info, 'size', None)
            if expected and size < expected and (limit is None or size < limit):
                raise _BrokenTransfer(self._error(step, 'the transfer ended after %d of %d bytes.'
                                                  % (size, expected), retryable=True))
            return size, max(size, expected or 0), sha1.hexdigest()
        return self._with_retries(step, attempt)

    def download_to(self, guest_path, fileobj):
        """Stream a guest file into ``fileobj`` until EOF. Returns (size, sha1 hex digest)."""
        def sink(chunk):
            if chunk is None:
                fileobj.seek(0)
                fileobj.truncate()
            else:
                fileobj.write(chunk)
        size, dummy, sha1 = self.stream(guest_path, sink)
        return size, sha1

    def download_bytes(self, guest_path, limit=None):
        """Read a guest file into memory, at most ``limit`` bytes. Returns a Download."""
        parts = []

        def sink(chunk):
            if chunk is None:
                del parts[:]
            else:
                parts.append(chunk)
        size, total, dummy = self.stream(guest_path, sink, limit=limit)
        return Download(b''.join(parts), total, limit is not None and total > size)

    # ----------------------------------------------------------------- the vCenter-only channel
    def _guest_os(self):
        return _paths.guest_os_of(None, self.vm)

    def _used(self, name):
        if self.transfer_used != 'vcenter':
            self.transfer_used = name

    @property
    def channel(self):
        """The channel files travel through now. With transfer_mode=auto, a VM whose ESXi host could not
        be reached earlier in the run (a kept session remembers it) starts on the vCenter channel: a
        host behind a firewall that drops packets would cost every task request_timeout seconds."""
        if self._channel == 'esxi' and self.transfer_mode == 'auto':
            earlier = self._kept('unreachable_esxi').get(self._switch_key())
            if earlier:
                self._channel = 'vcenter'
                self.transfer_note = ('The ESXi host could not be reached earlier in this run (%s); files went '
                                      'through vCenter instead (transfer_mode=auto).' % earlier)
        return self._channel

    def _switch_key(self):
        return '%s %s' % (self.vm.moid, self.transfer_host or '')

    def _use_vcenter_after(self, err):
        """With transfer_mode=auto, switch to the vCenter channel for good when the ESXi host cannot be
        reached (refused, timed out, not resolved; not a certificate or HTTP error). True when switched."""
        if self.transfer_mode != 'auto' or not getattr(err, 'unreachable', False):
            return False
        if self._guest_os() == 'windows':
            err.msg += ' (The vCenter-only channel that transfer_mode=auto falls back to works with Linux guests only.)'
            return False
        self._channel = 'vcenter'
        self._kept('unreachable_esxi')[self._switch_key()] = err.msg
        self.transfer_note = ('The ESXi host could not be reached (%s); files went through vCenter instead '
                              '(transfer_mode=auto).' % err.msg)
        return True

    def prefetch(self, paths, limit, directory=None):
        """Files about to be read (a job's rc file and output): through vCenter they are read in one go.

        Through the ESXi host nothing is done now; should the host turn out unreachable at the first
        read, the whole batch is read through vCenter then.
        """
        paths = [path for path in paths if path]
        self._batch = (paths, limit, directory)
        if self.channel == 'vcenter':
            self._read_batch()

    def _read_batch(self):
        paths, limit, directory = self._batch
        self._batch = None
        for found in self.read_through_vcenter(paths, limit, directory):
            self._prefetched[found.path] = found

    def _read_vcenter(self, path, limit):
        if self._batch is not None and path in self._batch[0] and (limit or 0) <= self._batch[1]:
            self._read_batch()
        found = self._prefetched.pop(path, None)
        if found is None or found.data is not None and limit is not None and len(found.data) < min(limit, found.size):
            cap = channel.FETCH_CAP if limit is None else limit
            found = self.read_through_vcenter([path], cap)[0]
            if limit is None and found.size is not None and found.size > cap:
                raise self._error("Downloading '%s'" % path, "the file is %d bytes; through vCenter (transfer_mode) at "
                                  "most %d bytes can be fetched. Open the route to the ESXi host for larger files."
                                  % (found.size, cap), retryable=False)
        if found.state != 'ok':
            fault = {'missing': vim.fault.FileNotFound, 'notfile': vim.fault.NotAFile}.get(
                found.state, vim.fault.CannotAccessFile)(file=path, msg='File %s: %s' % (path, found.state))
            raise VSphereError("Downloading '%s' failed for VM '%s': %s" % (
                path, self.vm.name, {'missing': 'the file does not exist', 'notfile': 'it is not a regular file'}.get(
                    found.state, 'the guest user cannot read it')), fault=fault, step="Downloading '%s'" % path)
        return found

    def _channel_program(self, spec, what):
        """Run a helper of the channel and wait for it; its exit code."""
        pid = self.start_program(spec)
        ended = self.wait_for_exit(pid, channel.ENCODER_TIMEOUT)
        if ended.exit_code is None:
            raise self._error(what, 'the helper program (pid %s) ended without an exit code.' % pid, retryable=True)
        return ended.exit_code

    def read_through_vcenter(self, paths, limit, directory=None):
        """Read guest files (at most ``limit`` bytes each) through SOAP calls only; [ChannelFile].

        The encoder writes them as symlink targets into a private directory (inside ``directory``,
        or a new temporary directory), which is listed, checked and deleted.
        """
        step = 'Reading files through vCenter'
        channel.require_linux(self._guest_os(), self.vm.name)
        if directory:
            made, out = None, _paths.join(directory, channel.channel_name())
        else:
            made = self.make_temp_dir(prefix='ansible-channel-')
            out = _paths.join(made, 'out')
        done = False
        try:
            code = self._channel_program(channel.encoder_spec(out, paths, limit), step)
            if code != 0:
                raise self._error(step, 'the encoder in the guest failed with exit code %s (%s).' % (
                    code, channel.ENCODER_ERRORS.get(code, "are 'sh', 'head', 'fold' and 'ln' there?")),
                    retryable=False)
            entries = []
            index = 0
            while True:
                listing = self._file_call(step, 'ListFilesInGuest', path=out, filePath=out, index=index,
                                          maxResults=channel.LIST_PAGE, matchPattern=channel.LIST_PATTERN)
                files = list(getattr(listing, 'files', None) or [])
                entries.extend((entry.path, getattr(entry.attributes, 'symlinkTarget', None)) for entry in files)
                index += len(files)
                if not files or not getattr(listing, 'remaining', 0):
                    break
            try:
                found = channel.assemble(entries, paths)
            except channel.ChannelError as exc:
                raise self._error(step, '%s.' % exc, retryable=True)
            done = True
        finally:
            try:
                self.delete(made or out)
            except VSphereError:
                if done:
                    raise
        self._used('vcenter')
        return found

    def _upload_vcenter(self, fileobj, size, guest_path, overwrite, attributes):
        """Write a small file through StartProgramInGuest arguments (see _vcenter_channel)."""
        step = "Uploading to '%s' through vCenter" % guest_path
        channel.require_linux(self._guest_os(), self.vm.name)
        if size > channel.UPLOAD_CAP:
            raise self._error(step, 'the file is %d bytes; through vCenter (transfer_mode) at most %d bytes can be '
                              'copied. Open the route to the ESXi host for larger files.' % (size, channel.UPLOAD_CAP),
                              retryable=False)
        data = fileobj.read(size)
        if len(data) != size:
            raise self._error(step, 'the local source ended after %d of %d bytes.' % (len(data), size))
        text, compression, sha256 = channel.encode_upload(data)
        chunks = channel.split_chunks(text)
        mode = getattr(attributes, 'permissions', None)
        parts_dir = self.make_temp_dir(prefix='ansible-channel-')
        finished = False
        try:
            for number, chunk in enumerate(chunks):
                self.start_program(channel.part_spec(parts_dir, number, chunk))
            code = self._channel_program(channel.assembler_spec(
                parts_dir, len(chunks), guest_path, sha256, 0o644 if mode is None else mode,
                getattr(attributes, 'ownerId', None), getattr(attributes, 'groupId', None), overwrite, compression),
                step)
            finished = code == 0
            if code == 7:
                raise VSphereError("%s failed for VM '%s': the file exists." % (step, self.vm.name), step=step,
                                   fault=vim.fault.FileAlreadyExists(file=guest_path))
            if code != 0:
                raise self._error(step, 'the decoder in the guest failed with exit code %s (%s).' % (
                    code, channel.ASSEMBLER_ERRORS.get(code, 'unexpected')), retryable=code in (6, 8))
        finally:
            if not finished:
                try:
                    self.delete(parts_dir)
                except VSphereError:
                    pass
        self._used('vcenter')
        return hashlib.sha1(data).hexdigest()

    # ----------------------------------------------------------------- processes
    def start_program(self, spec, marker=None):
        """Start a ProgramSpec (see _command_line); returns the pid.

        A connection that drops while the call is under way leaves open whether the program
        started. With ``marker`` (a text only this program's command line contains, such as its
        private directory) the guest's process list answers that: a program found there is the
        one started, otherwise it is started again. Without a marker the call is not repeated.
        """
        channel.check_request_size(spec, self.vm.name)
        program_spec = vim.vm.guest.ProcessManager.ProgramSpec(
            programPath=spec.program_path, arguments=spec.arguments or '',
            workingDirectory=spec.working_directory or None, envVariables=spec.env or None)
        path = spec.working_directory if spec.working_directory else spec.program_path
        budget = None
        while True:
            try:
                return self._process_call('Starting the program', 'StartProgramInGuest', path=path,
                                          idempotent=False, spec=program_spec)
            except VSphereError as err:
                if marker is None or err.fault is None or not dropped(err.fault):
                    raise
                if budget is None:
                    budget = self.session.retry_budget()
                if not budget.wait():
                    raise
            for info in self.list_processes():
                if marker in (getattr(info, 'cmdLine', None) or ''):
                    return int(info.pid)

    def list_processes(self, pids=None, deadline=None):
        return self._process_call('Listing guest processes', 'ListProcessesInGuest', deadline=deadline,
                                  pids=list(pids) if pids else None) or []

    def process(self, pid, deadline=None):
        """The process record of pid, or None when the guest no longer lists it."""
        for info in self.list_processes([pid], deadline=deadline):
            if int(info.pid) == int(pid):
                return info
        return None

    def terminate(self, pid):
        """Terminate a guest process. Returns False when it was already gone."""
        try:
            self._process_call('Terminating the program', 'TerminateProcessInGuest', pid=pid)
            return True
        except VSphereError as err:
            if err.fault is not None and fault_is(err.fault, 'GuestProcessNotFound'):
                return False
            raise

    def polls(self, pid, timeout, first=POLL_FIRST):
        """Sleep before each poll of a running program (see poll_delay) and yield the wait's
        deadline; raises WaitTimeout once ``timeout`` seconds have passed."""
        deadline = self._clock() + timeout
        attempt = 0
        while True:
            remaining = deadline - self._clock()
            if remaining <= 0:
                raise WaitTimeout("Waiting for the program failed for VM '%s': pid %s did not finish within %s "
                                  "seconds." % (self.vm.name, pid, _seconds(timeout)), pid)
            self._sleep(min(poll_delay(attempt, first=first), remaining))
            attempt += 1
            yield deadline

    def wait_for_exit(self, pid, timeout):
        """Poll until the program ends; returns a ProcessExit.

        Polls fast at first and backs off (see poll_delay), never more than POLL_CAP apart. A
        poll that fails transiently is retried by the call layer until the timeout. A process the
        guest no longer lists ends the wait with ``expired=True`` and no exit code (vSphere keeps
        records five minutes; a Tools restart forgets them). Raises WaitTimeout.
        """
        for deadline in self.polls(pid, timeout):
            try:
                info = self.process(pid, deadline=deadline)
            except VSphereError as err:
                if err.retryable and self._clock() >= deadline:
                    raise WaitTimeout("Waiting for the program failed for VM '%s': pid %s did not finish within "
                                      "%s seconds (the last poll failed: %s)." % (
                                          self.vm.name, pid, _seconds(timeout), err.msg), pid)
                raise
            if info is None:
                return ProcessExit(pid, None, expired=True)
            if info.endTime is not None:
                return ProcessExit(pid, info.exitCode, info=info)


class _BrokenTransfer(Exception):
    """A transfer that broke off midway (worth a new URL)."""

    def __init__(self, error):
        super(_BrokenTransfer, self).__init__(error.msg)
        self.error = error


def _not_connected(exc, cause):
    """Whether a transfer request failed before a connection was made: refused, not resolved, no
    route, a connect timeout, or another connection error that is neither TLS nor a broken one."""
    if isinstance(exc, requests.exceptions.ConnectTimeout) or isinstance(cause, (ConnectionRefusedError,
                                                                                 socket.gaierror)):
        return True
    if isinstance(cause, OSError) and getattr(cause, 'errno', None) in (errno.EHOSTUNREACH, errno.ENETUNREACH):
        return True
    return (isinstance(exc, requests.exceptions.ConnectionError) and not dropped(exc)
            and not isinstance(exc, (requests.exceptions.ChunkedEncodingError, requests.exceptions.SSLError,
                                     requests.exceptions.Timeout)))


def _reason(exc):
    """The innermost useful text of a requests exception."""
    inner = root_cause(exc)
    text = str(inner)
    if isinstance(inner, ConnectionRefusedError) or 'Connection refused' in text:
        return 'connection refused'
    if isinstance(inner, OSError) and getattr(inner, 'strerror', None) and network_problem(inner, '', ''):
        return inner.strerror
    return text or type(inner).__name__


def _seconds(value):
    return ('%d' % value) if float(value).is_integer() else ('%.1f' % value)
