"""A certificate authority and a server certificate generated at start (trustme)."""

from __future__ import annotations

import os
import ssl

import trustme


class Certificates:
    """CA written to ``<state-dir>/ca.pem``; the server certificate stays in memory."""

    def __init__(self, state_dir: str, hosts=('127.0.0.1', 'localhost', '::1')):
        self.ca = trustme.CA(organization_name='guestsim test CA')
        names = []
        for host in hosts:
            if host and host not in names and host not in ('0.0.0.0', '::'):
                names.append(host)
        for extra in ('127.0.0.1', 'localhost'):
            if extra not in names:
                names.append(extra)
        self.server_cert = self.ca.issue_cert(*names)
        self.ca_file = os.path.join(state_dir, 'ca.pem')
        self.ca.cert_pem.write_to_path(self.ca_file)

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        self.server_cert.configure_cert(context)
        return context
