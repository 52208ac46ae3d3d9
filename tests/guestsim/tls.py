"""A certificate authority, the vCenter certificate and one certificate per ESXi host (trustme)."""

from __future__ import annotations

import hashlib
import os
import ssl

import trustme


def fingerprint(der: bytes, algorithm: str = 'sha1') -> str:
    """Colon-separated upper-case hex of a digest of the DER certificate, the way vSphere prints
    ``summary.config.sslThumbprint`` (SHA-1) and govmomi ``soap.ThumbprintSHA1/256`` print them."""
    digest = hashlib.new(algorithm, der).hexdigest().upper()
    return ':'.join(digest[i:i + 2] for i in range(0, len(digest), 2))


class HostCertificate:
    """An ESXi host's certificate: its PEM, DER and fingerprints, and a server context."""

    def __init__(self, leaf):
        self.leaf = leaf
        self.pem = leaf.cert_chain_pems[0].bytes()
        self.der = ssl.PEM_cert_to_DER_cert(self.pem.decode('ascii'))
        self.sha1 = fingerprint(self.der, 'sha1')
        self.sha256 = fingerprint(self.der, 'sha256')
        self._context = None

    def context(self) -> ssl.SSLContext:
        if self._context is None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.minimum_version = ssl.TLSVersion.TLSv1_2
            self.leaf.configure_cert(context)
            self._context = context
        return self._context


class Certificates:
    """CA written to ``<state-dir>/ca.pem``; the server certificates stay in memory."""

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

    def host_certificate(self, address: str, name: str) -> HostCertificate:
        """A certificate for an ESXi host's management address (the SAN), signed by the CA. Each
        call makes a new key pair, so a second one for the same address is a different certificate."""
        return HostCertificate(self.ca.issue_cert(address, common_name=name))
