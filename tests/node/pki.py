"""Certificates for the real node, made with `cryptography`: one CA signs every serving and client certificate
(the API server, the kubelet's server, and the clients: admin, the kubelet, the controller-manager, the
scheduler, kube-proxy, and the API server when it calls the kubelet); an RSA pair signs ServiceAccount tokens."""

from __future__ import annotations

import datetime as dt
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_VALIDITY = dt.timedelta(days=2)
# client name -> (common name, organization): what RBAC and the Node authorizer see.
CLIENTS = {
    "admin": ("admin", "system:masters"),
    "kubelet": (None, "system:nodes"),  # CN is system:node:<node name>
    "controller-manager": ("system:kube-controller-manager", None),
    "scheduler": ("system:kube-scheduler", None),
    "kube-proxy": ("system:kube-proxy", None),
    "apiserver-kubelet-client": ("kube-apiserver-kubelet-client", "system:masters"),
}


def _pem_key(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _name(cn: str, org: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    if org:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    return x509.Name(attrs)


def _builder(subject: x509.Name, issuer: x509.Name, public_key) -> x509.CertificateBuilder:
    now = dt.datetime.now(dt.timezone.utc)
    return (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(public_key)
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + _VALIDITY))


def _sans(names: list[str]) -> x509.SubjectAlternativeName:
    entries: list[x509.GeneralName] = []
    for name in names:
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            entries.append(x509.DNSName(name))
    return x509.SubjectAlternativeName(entries)


class NodePki:
    """Writes <dir>/<name>.crt and <name>.key for every certificate; `path(name)` gives the pair."""

    def __init__(self, directory: Path, node_name: str, node_ip: str, service_ip: str):
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self._ca_key = ec.generate_private_key(ec.SECP256R1())
        self._ca_name = _name("userpipeline-node-ca")
        ca = (_builder(self._ca_name, self._ca_name, self._ca_key.public_key())
              .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
              .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
              .sign(self._ca_key, hashes.SHA256()))
        self._write("ca.crt", ca.public_bytes(serialization.Encoding.PEM))
        self.ca = self.dir / "ca.crt"
        apiserver_names = ["localhost", "127.0.0.1", node_ip, service_ip, "kubernetes", "kubernetes.default",
                           "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"]
        self._leaf("apiserver", _name("kube-apiserver"), ExtendedKeyUsageOID.SERVER_AUTH, apiserver_names)
        self._leaf("kubelet-server", _name(node_name), ExtendedKeyUsageOID.SERVER_AUTH, [node_name, node_ip])
        for client, (cn, org) in CLIENTS.items():
            self._leaf(client, _name(cn or f"system:node:{node_name}", org), ExtendedKeyUsageOID.CLIENT_AUTH)
        sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self._write("sa.key", _pem_key(sa_key))
        self._write("sa.pub", sa_key.public_key().public_bytes(serialization.Encoding.PEM,
                                                               serialization.PublicFormat.SubjectPublicKeyInfo))

    def cert(self, name: str) -> Path:
        return self.dir / f"{name}.crt"

    def key(self, name: str) -> Path:
        return self.dir / f"{name}.key"

    def _leaf(self, name: str, subject: x509.Name, usage, sans: list[str] | None = None) -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        signing_only = x509.KeyUsage(True, False, False, False, False, False, False, False, False)
        builder = (_builder(subject, self._ca_name, key.public_key())
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                   .add_extension(signing_only, critical=True)
                   .add_extension(x509.ExtendedKeyUsage([usage]), critical=False))
        if sans:
            builder = builder.add_extension(_sans(sans), critical=False)
        self._write(f"{name}.crt", builder.sign(self._ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM))
        self._write(f"{name}.key", _pem_key(key))

    def _write(self, name: str, data: bytes) -> None:
        path = self.dir / name
        path.write_bytes(data)
        path.chmod(0o600)
