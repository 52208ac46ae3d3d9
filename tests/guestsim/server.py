"""HTTPS front end: ``/sdk`` (SOAP), ``/guestFile`` (transfers) and the ``/guestsim/*`` test endpoints."""

from __future__ import annotations

import atexit
import ipaddress
import json
import logging
import os
import shutil
import socket
import ssl
import tempfile
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from . import soap
from .faultrules import FaultRule, RuleError
from .inventory import default_inventory, load_inventory
from .service import DEFAULT_RETENTION, DEFAULT_USERS, EXIT_POLL_INTERVAL, Service
from .sessions import set_cookie_header
from .tls import Certificates
from .transfers import TicketError

LOG = logging.getLogger(__name__)

CHUNK = 1024 * 1024
# ESXi sends downloads of this many bytes or more without a Content-Length header (see README).
DEFAULT_CONTENT_LENGTH_LIMIT = 2400


class _AbortTransfer(Exception):
    """Raised to drop a connection in the middle of a transfer (fault injection)."""


class SimulatorHTTPServer(ThreadingHTTPServer):
    """Threaded HTTPS server; the TLS handshake runs in the connection's own thread."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, address, handler, ssl_context, simulator, control_only: bool = False, esxi_host=None):
        if ':' in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, handler)
        self._ssl_context = ssl_context
        self.simulator = simulator
        # The control listener serves only /guestsim/*, so that tests reach it while "vCenter" is down.
        self.control_only = control_only
        # An ESXi host's listener (its management address): /sdk as the host itself and /guestFile.
        self.esxi_host = esxi_host
        self._connections_lock = threading.Lock()
        self.connections: set = set()

    @property
    def ssl_context(self) -> ssl.SSLContext:
        """The context for a new connection: a host presents its current certificate (see
        ``POST /guestsim/hosts/<name>/certificate``)."""
        if self.esxi_host is not None:
            return self.esxi_host.presented.context()
        return self._ssl_context

    def get_request(self):
        sock, addr = super().get_request()
        # Headers and body go out in separate writes; without this, Nagle plus delayed ACKs cost ~40 ms a call.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        wrapped = self.ssl_context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        with self._connections_lock:
            self.connections.add(wrapped)
        return wrapped, addr

    def shutdown_request(self, request):
        with self._connections_lock:
            self.connections.discard(request)
        super().shutdown_request(request)

    def drop_connections(self, keep=None):
        """Cut every open connection (keep-alive ones included) except ``keep``, as a dying vpxd does."""
        with self._connections_lock:
            victims = [c for c in self.connections if c is not keep]
        for conn in victims:
            try:
                # The plain socket's shutdown: the handler thread blocked in a TLS read then sees EOF.
                socket.socket.shutdown(conn, socket.SHUT_RDWR)
            except OSError:
                pass
        return len(victims)

    def handle_error(self, request, client_address):
        LOG.debug('connection from %s ended with an error', client_address, exc_info=True)


class Handler(BaseHTTPRequestHandler):
    """Routes requests to the service, the transfer code or the test endpoints."""

    protocol_version = 'HTTP/1.1'
    server_version = 'guestsim'
    sys_version = ''
    timeout = 600

    @property
    def simulator(self) -> Simulator:
        return self.server.simulator

    def log_message(self, format, *args):  # pylint: disable=redefined-builtin
        LOG.info('%s %s', self.address_string(), format % args)

    def handle_one_request(self):
        try:
            super().handle_one_request()
        except (ssl.SSLError, ConnectionError, socket.timeout, _AbortTransfer):
            self.close_connection = True

    # --- helpers --------------------------------------------------------------------------------
    def _send(self, status: int, body: bytes = b'', content_type: str = 'text/plain; charset=utf-8', headers=None):
        self.send_response(status)
        self.send_header('Content-Type', content_type)
        self.send_header('Content-Length', str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header('Connection', 'close')
        self.end_headers()
        if self.command != 'HEAD' and body:
            self.wfile.write(body)

    def _json(self, status: int, data):
        self._send(status, json.dumps(data, indent=1, sort_keys=True).encode(), 'application/json')

    def _read_body(self, limit: int = 64 * 1024 * 1024) -> bytes | None:
        if 'chunked' in self.headers.get('Transfer-Encoding', '').lower():
            chunks = []
            total = 0
            while True:
                size = int(self.rfile.readline().split(b';')[0].strip() or b'0', 16)
                if size == 0:
                    while self.rfile.readline() not in (b'\r\n', b'\n', b''):
                        pass
                    break
                total += size
                if total > limit:
                    return None
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b''.join(chunks)
        length = int(self.headers.get('Content-Length') or 0)
        if length > limit:
            return None
        return self.rfile.read(length) if length else b''

    def _route(self):
        parsed = urllib.parse.urlsplit(self.path)
        return parsed.path, urllib.parse.parse_qs(parsed.query)

    def _loopback(self) -> bool:
        try:
            return ipaddress.ip_address(self.client_address[0].split('%')[0]).is_loopback
        except ValueError:
            return False

    # --- verbs ------------------------------------------------------------------------------------
    def _control_only(self, path: str) -> bool:
        """On the control listener everything but /guestsim/* is 404; on a host's, /guestsim/* is."""
        if (self.server.control_only and not path.startswith('/guestsim/')
                or self.server.esxi_host is not None and path.startswith('/guestsim/')):
            self._discard_body()
            self._send(404, b'Not Found')
            return True
        return False

    def do_GET(self):  # noqa: N802 (http.server naming)
        path, query = self._route()
        if self._control_only(path):
            return
        if path == '/sdk/vimServiceVersions.xml':
            self._send(200, soap.service_versions_xml(), 'text/xml; charset=utf-8')
        elif path == '/guestFile':
            self._download(query)
        elif path.startswith('/guestsim/'):
            self._control('GET', path)
        else:
            self._send(404, b'Not Found')

    def do_POST(self):  # noqa: N802 (http.server naming)
        path, _query = self._route()
        if self._control_only(path):
            return
        if path == '/sdk':
            self._soap()
        elif path.startswith('/guestsim/'):
            self._control('POST', path)
        else:
            self._read_body()
            self._send(404, b'Not Found')

    def do_PUT(self):  # noqa: N802 (http.server naming)
        path, query = self._route()
        if self._control_only(path):
            return
        if path == '/guestFile':
            self._upload(query)
        else:
            self._discard_body()
            self._send(404, b'Not Found')

    def do_DELETE(self):  # noqa: N802 (http.server naming)
        path, _query = self._route()
        if path.startswith('/guestsim/'):
            self._control('DELETE', path)
        else:
            self._send(404, b'Not Found')

    # --- SOAP -------------------------------------------------------------------------------------
    def _soap(self):
        body = self._read_body()
        if body is None:
            self.close_connection = True
            self._send(413, b'Request Entity Too Large')
            return
        status, payload, new_cookie = self.simulator.service.handle_soap(
            body, self.headers.get('SOAPAction'), self.headers.get('Cookie'), self.client_address[0],
            self.headers.get('User-Agent', ''), esxi_host=self.server.esxi_host)
        headers = {'Cache-Control': 'no-cache'}
        if new_cookie:
            headers['Set-Cookie'] = set_cookie_header(new_cookie)
        self._send(status, payload, 'text/xml; charset=utf-8', headers)

    # --- transfers --------------------------------------------------------------------------------
    def _claim(self, query, direction):
        ticket_id = (query.get('id') or [''])[0]
        token = (query.get('token') or [''])[0]
        return self.simulator.service.transfers.claim(ticket_id, token, direction, self.server.esxi_host)

    def _abort(self):
        """Drop the connection without finishing the response (a broken transfer)."""
        self.close_connection = True
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        raise _AbortTransfer()

    def _discard_body(self, limit: int = CHUNK):
        """Read a small unwanted request body so the client sees the answer; drop big ones."""
        try:
            length = int(self.headers.get('Content-Length') or -1)
        except ValueError:
            length = -1
        if 0 <= length <= limit:
            self.rfile.read(length)
        else:
            self.close_connection = True

    def _upload(self, query):
        service = self.simulator.service
        try:
            ticket = self._claim(query, 'to')
        except TicketError as exc:
            self._discard_body()
            self._send(exc.status, exc.reason.encode())
            return
        success = False
        try:
            success = self._receive(ticket)
        finally:
            service.transfers.release(ticket, success)

    def _receive(self, ticket) -> bool:
        length_header = self.headers.get('Content-Length')
        if length_header is None:
            self.close_connection = True
            self._send(411, b'Length Required')
            return False
        length = int(length_header)
        if length == 0 and not self.simulator.accept_empty_upload:
            # Observed on ESXi: an empty PUT fails with HTTP 500.
            self._send(500, b'Internal Server Error')
            return False
        if length != ticket.size:
            self._discard_body()
            self._send(500, b'Internal Server Error')
            return False
        try:
            fd = os.open(ticket.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        except OSError:
            self.close_connection = True
            self._send(500, b'Internal Server Error')
            return False
        remaining = length
        written = 0
        limit = ticket.break_after
        with os.fdopen(fd, 'wb', buffering=0) as out:
            while remaining > 0:
                chunk = self.rfile.read(min(CHUNK, remaining))
                if not chunk:
                    self.close_connection = True
                    return False
                if limit is not None and written + len(chunk) >= limit:
                    out.write(chunk[:max(limit - written, 0)])
                    ticket.break_after = None  # break once; a retry of the same URL works
                    self._abort()
                out.write(chunk)
                written += len(chunk)
                remaining -= len(chunk)
        guest = ticket.guest
        try:
            # GuestPosixFileAttributes doc: without permissions "the file will be created with 0644
            # permissions", owner and group default to the guest user; "when transferring a file into the
            # guest and overwriting an existing file, the old file attributes are not preserved" (vSphere
            # Automation API, guest filesystem transfers). So an overwrite gets the same defaults.
            guest.apply_attributes(ticket.path, ticket.attributes, 0o644, default_owner=True)
            guest.strip_exec_if_emulated(ticket.path)
        except OSError:
            self._send(500, b'Internal Server Error')
            return False
        self._send(200, b'')
        return True

    def _download(self, query):
        service = self.simulator.service
        try:
            ticket = self._claim(query, 'from')
        except TicketError as exc:
            self._send(exc.status, exc.reason.encode())
            return
        success = False
        try:
            success = self._send_file(ticket)
        finally:
            service.transfers.release(ticket, success)

    def _send_file(self, ticket) -> bool:
        try:
            handle = open(ticket.path, 'rb')  # pylint: disable=consider-using-with
        except OSError:
            self._send(500, b'Internal Server Error')
            return False
        with handle:
            size = os.fstat(handle.fileno()).st_size
            limit = self.simulator.content_length_limit
            chunked = limit is not None and limit >= 0 and size >= limit
            self.send_response(200)
            self.send_header('Content-Type', 'application/octet-stream')
            if chunked:
                self.send_header('Transfer-Encoding', 'chunked')
            else:
                self.send_header('Content-Length', str(size))
            self.end_headers()
            sent = 0
            stop = ticket.break_after
            while True:
                data = handle.read(CHUNK)
                if not data:
                    break
                if stop is not None and sent + len(data) >= stop:
                    data = data[:max(stop - sent, 0)]
                    self._write(data, chunked)
                    ticket.break_after = None  # break once; a retry of the same URL works
                    self._abort()
                self._write(data, chunked)
                sent += len(data)
            if chunked:
                self.wfile.write(b'0\r\n\r\n')
        return True

    def _write(self, data: bytes, chunked: bool):
        if not data:
            return
        if chunked:
            self.wfile.write(b'%x\r\n' % len(data) + data + b'\r\n')
        else:
            self.wfile.write(data)

    # --- test endpoints -----------------------------------------------------------------------------
    def _control(self, verb: str, path: str):
        body = self._read_body() if verb in ('POST', 'DELETE') else b''
        if not self._loopback():
            self._send(403, b'Forbidden')
            return
        service = self.simulator.service
        parts = [p for p in path.split('/') if p][1:]
        if verb == 'GET' and parts == ['state']:
            self._json(200, service.state())
        elif verb == 'POST' and parts == ['reset']:
            service.reset()
            self._json(200, {'reset': True})
        elif parts == ['faults']:
            self._faults(verb, body)
        elif parts == ['options'] and verb in ('GET', 'POST'):
            self._options(verb, body)
        elif verb == 'POST' and parts == ['vcenter', 'restart']:
            self._vcenter_restart(body)
        elif verb == 'POST' and len(parts) == 3 and parts[0] == 'hosts' and parts[2] == 'certificate':
            self._host_certificate(urllib.parse.unquote(parts[1]), body)
        elif verb == 'POST' and len(parts) == 3 and parts[0] == 'vms' and parts[2] == 'tools-restart':
            self._tools_restart(urllib.parse.unquote(parts[1]), body)
        elif verb == 'POST' and len(parts) == 3 and parts[0] == 'vms' and parts[2] in ('power-on', 'power-off'):
            name = urllib.parse.unquote(parts[1])
            machines = service.power(name, parts[2] == 'power-on')
            if not machines:
                self._json(404, {'error': 'no VM named %s' % name})
            else:
                self._json(200, {'vms': [{'name': vm.name, 'moid': vm.moid, 'power_state': vm.power_state}
                                         for vm in machines]})
        else:
            self._json(404, {'error': 'unknown endpoint %s %s' % (verb, path)})

    @staticmethod
    def _json_object(body: bytes) -> dict:
        data = json.loads(body or b'{}')
        if not isinstance(data, dict):
            raise ValueError('the body is a JSON object')
        return data

    @staticmethod
    def _seconds(data: dict, default: float) -> float:
        value = data.get('seconds', default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 3600:
            raise ValueError('seconds is a number from 0 to 3600')
        return float(value)

    def _options(self, verb: str, body: bytes):
        service = self.simulator.service
        if verb == 'POST':
            try:
                service.set_options(self._json_object(body))
            except (ValueError, TypeError) as exc:
                self._json(400, {'error': str(exc)})
                return
        self._json(200, {'options': service.options_snapshot()})

    def _host_certificate(self, name: str, body: bytes):
        try:
            data = self._json_object(body)
            presented = data.get('presented')
            if presented not in ('reported', 'other') or set(data) - {'presented'}:
                raise ValueError('the body is {"presented": "reported"} or {"presented": "other"}')
        except (ValueError, TypeError) as exc:
            self._json(400, {'error': str(exc)})
            return
        host = self.simulator.host_named(name)
        if host is None:
            self._json(404, {'error': 'no host named %s' % name})
            return
        self.simulator.present_certificate(host, presented == 'other')
        self._json(200, {'hosts': [self.simulator.host_state(host)]})

    def _vcenter_restart(self, body: bytes):
        try:
            seconds = self._seconds(self._json_object(body), 10.0)
        except (ValueError, TypeError) as exc:
            self._json(400, {'error': str(exc)})
            return
        on_main_port = not self.server.control_only
        result = self.simulator.restart_vcenter(seconds, keep=self.connection if on_main_port else None)
        if on_main_port:
            # This connection belongs to the vCenter that is going down: answer, then close it.
            self.close_connection = True
        self._json(200, result)

    def _tools_restart(self, name: str, body: bytes):
        service = self.simulator.service
        try:
            data = self._json_object(body)
            seconds = self._seconds(data, 5.0)
            end_programs = data.get('end_programs', False)
            if not isinstance(end_programs, bool) or set(data) - {'seconds', 'end_programs'}:
                raise ValueError('the body is {"seconds": N, "end_programs": false}')
        except (ValueError, TypeError) as exc:
            self._json(400, {'error': str(exc)})
            return
        if not service.vms_named(name):
            self._json(404, {'error': 'no VM named %s' % name})
            return
        try:
            restarted = service.restart_tools(name, seconds, end_programs)
        except ValueError as exc:
            self._json(409, {'error': str(exc)})
            return
        self._json(200, {'vms': [{'name': vm.name, 'moid': vm.moid, 'seconds': seconds, 'records_dropped': dropped,
                                  'end_programs': end_programs} for vm, dropped in restarted]})

    def _faults(self, verb: str, body: bytes):
        rules = self.simulator.service.rules
        if verb == 'GET':
            self._json(200, {'rules': rules.snapshot()})
        elif verb == 'DELETE':
            rules.clear()
            self._json(200, {'rules': []})
        else:
            try:
                data = json.loads(body or b'{}')
                items = data if isinstance(data, list) else [data]
                parsed = [FaultRule.from_json(item) for item in items]
            except (ValueError, TypeError, RuleError) as exc:
                self._json(400, {'error': str(exc)})
                return
            for rule in parsed:
                rules.add(rule)
            self._json(201, {'rules': rules.snapshot()})


class Simulator:
    """The whole simulator: state directory, TLS, service and HTTPS server.

    Two listeners: the main one (``port``) serves ``/sdk``, ``/guestFile`` and ``/guestsim/*``; the
    control listener (``control_port``, a free port unless given; ``None`` turns it off) serves only
    ``/guestsim/*`` and stays up while a simulated vCenter restart has closed the main one.
    """

    def __init__(self, host: str = '127.0.0.1', port: int = 8989, state_dir: str | None = None,
                 inventory_file: str | None = None, inventory=None, retention: float = DEFAULT_RETENTION,
                 transfer_ttl: float | None = None, session_timeout: float | None = None, users=None,
                 content_length_limit: int | None = DEFAULT_CONTENT_LENGTH_LIMIT, accept_empty_upload: bool = False,
                 allow_noexec_mount: bool = True, control_port: int | None = 0, exclusive_guest_ops: bool = False,
                 exit_poll_interval: float = EXIT_POLL_INTERVAL, windows_init: str = 'lazy'):
        self.host = host
        self.requested_port = port
        self.requested_control_port = control_port
        self._own_state_dir = state_dir is None
        self.state_dir = os.path.abspath(state_dir or tempfile.mkdtemp(prefix='guestsim-'))
        os.makedirs(self.state_dir, exist_ok=True)
        if inventory is None:
            inventory = load_inventory(inventory_file) if inventory_file else default_inventory()
        self.users = dict(users or DEFAULT_USERS)
        self.service = Service(self.state_dir, inventory, users=self.users, retention=retention,
                               transfer_ttl=transfer_ttl, session_timeout=session_timeout,
                               allow_noexec_mount=allow_noexec_mount, exclusive_guest_ops=exclusive_guest_ops,
                               exit_poll_interval=exit_poll_interval, windows_init=windows_init)
        self.content_length_limit = content_length_limit
        self.accept_empty_upload = accept_empty_upload
        self.certificates = Certificates(self.state_dir, hosts=(host,))
        # Every ESXi host: its own certificate for its management address (127.0.1.N), signed by the CA.
        for esxi in inventory.hosts():
            esxi.certificate = esxi.presented = self.certificates.host_certificate(esxi.address, esxi.name)
        self.host_servers: list = []      # (HostSystem, SimulatorHTTPServer, thread)
        self.silent_sockets: list = []    # listening sockets that are never accepted from
        self.service.host_state = self.host_state
        self.httpd: SimulatorHTTPServer | None = None
        self.control_httpd: SimulatorHTTPServer | None = None
        self._port: int | None = None
        self._thread: threading.Thread | None = None
        self._control_thread: threading.Thread | None = None
        self._serving = False
        self._stopped = False
        self._stopped_event = threading.Event()
        self._lock = threading.Lock()
        # vCenter restart (outage) state, guarded by _listener_lock.
        self._listener_lock = threading.RLock()
        self._outage_until: float | None = None
        self._reopen_timer: threading.Timer | None = None
        self.service.vcenter_status = self.vcenter_status

    @property
    def ca_file(self) -> str:
        return self.certificates.ca_file

    @property
    def port(self) -> int:
        if self._port is not None:
            return self._port
        return self.httpd.server_address[1] if self.httpd else self.requested_port

    @property
    def control_port(self) -> int | None:
        return self.control_httpd.server_address[1] if self.control_httpd else None

    @property
    def client_host(self) -> str:
        """The address clients should use (a wildcard bind is reached through loopback)."""
        if self.host in ('0.0.0.0', ''):
            return '127.0.0.1'
        if self.host == '::':
            return '::1'
        return self.host

    def _url_for(self, port: int) -> str:
        host = '[%s]' % self.client_host if ':' in self.client_host else self.client_host
        return 'https://%s:%d' % (host, port)

    @property
    def url(self) -> str:
        return self._url_for(self.port) + '/sdk'

    @property
    def base_url(self) -> str:
        return self.url[:-len('/sdk')]

    @property
    def control_base_url(self) -> str:
        """Where /guestsim/* is always reachable: the control listener, else the main port."""
        port = self.control_port
        return self._url_for(port) if port else self.base_url

    def _new_httpd(self, port: int, control_only: bool = False) -> SimulatorHTTPServer:
        return SimulatorHTTPServer((self.host, port), Handler, self.certificates.server_context(), self,
                                   control_only=control_only)

    def bind(self):
        # The hosts listen on the main port's number at their own addresses; with a free port (0)
        # that number may be taken at a host address by another program, so a new one is tried.
        attempts = 20 if self.requested_port == 0 else 1
        for attempt in range(attempts):
            self.httpd = self._new_httpd(self.requested_port)
            self._port = self.httpd.server_address[1]
            try:
                self._bind_hosts(self._port)
                break
            except OSError:
                self._close_hosts()
                self.httpd.server_close()
                self.httpd = None
                if attempt + 1 >= attempts:
                    raise
        self.service.port = self._port
        if self.requested_control_port is not None:
            try:
                self.control_httpd = self._new_httpd(self.requested_control_port, control_only=True)
            except OSError:
                self.httpd.server_close()
                self.httpd = None
                self._close_hosts()
                raise
        # Guest processes and noexec mounts must not outlive the simulator, even without stop().
        atexit.register(self.stop)
        return self

    # --- ESXi hosts ------------------------------------------------------------------------------
    def _bind_hosts(self, port: int):
        """Open each host's management address on ``port``: HTTPS for ``serve``, a socket that is
        never accepted from for ``silent`` (the kernel completes the TCP handshake, nothing answers),
        nothing for ``refuse`` (connections are refused). Loopback addresses only."""
        for esxi in self.service.inventory.hosts():
            esxi.port = port
            if esxi.management == 'serve':
                server = SimulatorHTTPServer((esxi.address, port), Handler, None, self, esxi_host=esxi)
                self.host_servers.append([esxi, server, None])
            elif esxi.management == 'silent':
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                try:
                    sock.bind((esxi.address, port))
                    sock.listen(64)
                except OSError:
                    sock.close()
                    raise
                self.silent_sockets.append(sock)

    def _close_hosts(self):
        for entry in self.host_servers:
            server, thread = entry[1], entry[2]
            if thread is not None:
                server.shutdown()
                thread.join(timeout=10)
            server.server_close()
        self.host_servers = []
        for sock in self.silent_sockets:
            sock.close()
        self.silent_sockets = []

    def host_named(self, name: str):
        return next((h for h in self.service.inventory.hosts() if h.name == name or h.moid == name), None)

    def present_certificate(self, esxi, other: bool):
        """Make a host present another certificate (same CA, same address) than the one vCenter
        reports, or the reported one again; existing connections keep theirs."""
        if other:
            if esxi.presented is esxi.certificate:
                esxi.presented = self.certificates.host_certificate(esxi.address, esxi.name)
        else:
            esxi.presented = esxi.certificate

    @staticmethod
    def host_state(esxi) -> dict:
        return {'name': esxi.name, 'moid': esxi.moid, 'address': esxi.address, 'port': esxi.port,
                'management': esxi.management, 'ssl_thumbprint': esxi.certificate.sha1,
                'ssl_thumbprint_sha256': esxi.certificate.sha256,
                'presented': 'reported' if esxi.presented is esxi.certificate else 'other',
                'presented_sha256': esxi.presented.sha256}

    def _serve(self, httpd: SimulatorHTTPServer, name: str) -> threading.Thread:
        thread = threading.Thread(target=httpd.serve_forever, kwargs={'poll_interval': 0.2}, name=name, daemon=True)
        thread.start()
        return thread

    def start(self):
        """Serve in background threads (in-process use)."""
        if self.httpd is None:
            self.bind()
        with self._listener_lock:
            self._serving = True
            self._thread = self._serve(self.httpd, 'guestsim-http')
            if self.control_httpd is not None:
                self._control_thread = self._serve(self.control_httpd, 'guestsim-control')
            for entry in self.host_servers:
                entry[2] = self._serve(entry[1], 'guestsim-host-%s' % entry[0].name)
        self.service.start_background_work()
        return self

    def serve_forever(self):
        """Serve until stop() is called from another thread (kept for callers of the old API)."""
        self.start()
        self._stopped_event.wait()

    # --- vCenter restart ------------------------------------------------------------------------
    def vcenter_status(self) -> dict:
        with self._listener_lock:
            until = self._outage_until
        left = max(0.0, until - time.monotonic()) if until is not None else 0.0
        return {'available': until is None, 'restart_seconds_left': round(left, 1)}

    def restart_vcenter(self, seconds: float, keep=None) -> dict:
        """Simulate a vpxd restart: every session ends, the main port refuses connections for
        ``seconds`` (ECONNREFUSED: the listening socket is closed) and open connections are cut.
        Guests, their processes and records, transfer URLs (issued by the ESXi host) and fault
        rules are untouched. A restart during an outage starts its count again. Returns the JSON answer."""
        with self._listener_lock:
            if self._stopped:
                raise RuntimeError('the simulator is stopped')
            dropped_sessions = self.service.drop_all_sessions()
            httpd = self.httpd
            cut = 0
            if httpd is not None:
                httpd.shutdown()        # ends serve_forever; waits at most one poll interval
                httpd.server_close()    # closes the listening socket: new connections are refused
                cut = httpd.drop_connections(keep=keep)
                self.httpd = None
                if self._thread is not None:
                    self._thread.join(timeout=10)
                    self._thread = None
            # A restart during an outage starts the count again (``seconds`` 0 ends the outage now).
            self._outage_until = time.monotonic() + seconds
            if self._reopen_timer is not None:
                self._reopen_timer.cancel()
            self._reopen_timer = threading.Timer(max(0.0, self._outage_until - time.monotonic()), self._reopen)
            self._reopen_timer.daemon = True
            self._reopen_timer.start()
        LOG.warning('vCenter restart: %d session(s) dropped, %d connection(s) cut, port %d closed for %.1f s',
                    dropped_sessions, cut, self.port, seconds)
        return {'restarting': True, 'seconds': seconds, 'port': self.port, 'sessions_dropped': dropped_sessions,
                'connections_dropped': cut}

    def _reopen(self):
        """Bind the main port again (retrying for a while if the address is busy)."""
        deadline = time.monotonic() + 30
        while True:
            with self._listener_lock:
                if self._stopped or self.httpd is not None:
                    return
                if self._outage_until is not None and time.monotonic() < self._outage_until - 0.01:
                    return  # extended by a later restart; its timer reopens
                try:
                    self.httpd = self._new_httpd(self.port)
                except OSError as exc:
                    if time.monotonic() > deadline:
                        LOG.error('vCenter restart: cannot listen on port %d again: %s', self.port, exc)
                        return
                else:
                    self._outage_until = None
                    self._reopen_timer = None
                    if self._serving:
                        self._thread = self._serve(self.httpd, 'guestsim-http')
                    LOG.warning('vCenter restart: port %d open again', self.port)
                    return
            time.sleep(0.2)

    def stop(self):
        """Stop serving, end guest processes, release mounts; idempotent."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        with self._listener_lock:
            if self._reopen_timer is not None:
                self._reopen_timer.cancel()
                self._reopen_timer = None
            servers = [(self.httpd, self._thread), (self.control_httpd, self._control_thread)]
        for httpd, thread in servers:
            if httpd is None:
                continue
            if thread is not None:
                httpd.shutdown()
                thread.join(timeout=10)
            httpd.server_close()
        self._close_hosts()
        self.service.shutdown()
        if self._own_state_dir:
            for _attempt in range(3):
                shutil.rmtree(self.state_dir, ignore_errors=True)
                if not os.path.exists(self.state_dir):
                    break
                time.sleep(0.2)
        self._stopped_event.set()

    def cloud_config(self, guest_vm: str = 'DC0_H0_VM0') -> str:
        user, password = next(iter(self.users.items()))
        base = self.control_base_url
        return (
            '[DEFAULT]\n'
            'vcenter_hostname = %s\n'
            'vcenter_username = %s\n'
            'vcenter_password = %s\n'
            'vcenter_port = %d\n'
            'vmware_validate_certs = false\n'
            '; CA that signed the certificates of vCenter and the ESXi hosts (empty: the verified-TLS checks are skipped).\n'
            'vmware_ca_file = %s\n'
            'guest_vm_name = %s\n'
            'guest_datacenter = DC0\n'
            'guest_username = root\n'
            'guest_password = guestpass\n'
            '; A guest login that may use sudo with its own password, and the guest\'s sudo (empty: sudo in PATH).\n'
            'guest_sudo_username = deploy\n'
            'guest_sudo_password = deploypass\n'
            'guest_sudo_exe = %s\n'
            '; The following are simulator-only; leave empty on a real vCenter and those checks are skipped.\n'
            '; The control endpoints have a port of their own, reachable during a simulated vCenter restart.\n'
            'guestsim_state_url = %s/guestsim/state\n'
            'guestsim_control_url = %s/guestsim\n'
            'vm_powered_off = DC0_H0_VM_OFF\n'
            'vm_tools_not_running = DC0_H0_VM_NOTOOLS\n'
            'vm_slow_boot = DC0_H0_VM_SLOWBOOT\n'
            'vm_noexec = DC0_H0_VM_NOEXEC\n'
            'vm_duplicate_name = DUP_VM\n'
            '; A VM whose ESXi host refuses connections (no route for /guestFile transfers).\n'
            'vm_noroute = DC0_H_NOROUTE_VM0\n'
            '; A Windows VM (Wine) and its guest login; empty: the Windows targets are skipped.\n'
            'vm_windows = DC0_H0_WIN0\n'
            'vm_windows_username = Administrator\n'
            'vm_windows_password = guestpass\n'
            % (self.client_host, user, password, self.port, self.ca_file, guest_vm, self.service.sudo_path(guest_vm),
               base, base)
        )

    def write_cloud_config(self, path: str):
        directory = os.path.dirname(os.path.abspath(path))
        os.makedirs(directory, exist_ok=True)
        tmp = path + '.tmp'
        with open(tmp, 'w', encoding='utf-8') as handle:
            handle.write(self.cloud_config())
        os.replace(tmp, path)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.stop()
