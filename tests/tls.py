#!/usr/bin/python3
"""tls.py - throwaway TLS material for the tests: a private CA, server
certificates for the loopback addresses, and client certificates for
service principals.

Owns nothing but files in a temporary directory.  The tests need HTTPS in
two places - Azurite with `--oauth basic` (it refuses a bearer token over
plain HTTP) and the Entra token endpoint of tests/token_server.py - and a
CA bundle the client under test trusts through its `ca_file` setting, so
that TLS verification stays on in every test.  Everything is made with
Debian's python3-cryptography (no openssl CLI), short-lived (2 days by
default) and never reused between test modules.

    from tls import TLSMaterial
    tls = TLSMaterial()                   # CA + server cert, in a temp dir
    tls.ca_file                           # PEM bundle: the CA certificate
    tls.cert_file, tls.key_file           # server certificate and key (PEM)
    sp = tls.client_certificate("app")    # a self-signed certificate + key
    sp.pem_file                           # cert and key in one PEM file
    sp.x5t                                # base64url SHA-1 of the DER cert
    tls.cleanup()

The server certificate names 127.0.0.1, ::1 (IP SANs) and localhost (DNS
SAN); its subject CN is 127.0.0.1.  The CA carries basicConstraints
CA:TRUE, keyUsage keyCertSign and a subject key identifier, which OpenSSL
3 and Node.js both require of an issuer.

A service principal's certificate is, as Entra ID accepts it, self-signed
(it is uploaded to the app registration, not chained to a CA); the client
signs its JWT assertion with the key and names the certificate by its
SHA-1 thumbprint (`x5t`, base64url) or SHA-256 thumbprint (`x5t#S256`).
"""

import base64
import datetime
import hashlib
import ipaddress
import os
import shutil
import tempfile

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")


def b64url(data):
    """base64url without padding (RFC 7515), as str."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _now():
    return datetime.datetime.now(datetime.timezone.utc)


def _name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME,
                                         "mongo-azure-backup tests")])


def _new_key(kind):
    if kind == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if kind == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    raise ValueError("key kind is 'rsa' or 'ec', not %r" % (kind,))


def _key_pem(key, traditional=False):
    fmt = (serialization.PrivateFormat.TraditionalOpenSSL if traditional
           else serialization.PrivateFormat.PKCS8)
    return key.private_bytes(serialization.Encoding.PEM, fmt,
                             serialization.NoEncryption())


def _cert_pem(cert):
    return cert.public_bytes(serialization.Encoding.PEM)


def _write(path, data, mode=0o600):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(path, mode)
    return path


def _key_usage(**on):
    names = ("digital_signature", "content_commitment", "key_encipherment",
             "data_encipherment", "key_agreement", "key_cert_sign", "crl_sign",
             "encipher_only", "decipher_only")
    return x509.KeyUsage(**{n: bool(on.get(n)) for n in names})


def thumbprints(cert):
    """{"sha1_hex", "sha256_hex", "x5t", "x5t#S256"} of a certificate (an
    x509.Certificate or PEM/DER bytes)."""
    cert = load_certificate(cert)
    der = cert.public_bytes(serialization.Encoding.DER)
    s1, s256 = hashlib.sha1(der).digest(), hashlib.sha256(der).digest()
    return {"sha1_hex": s1.hex().upper(), "sha256_hex": s256.hex().upper(),
            "x5t": b64url(s1), "x5t#S256": b64url(s256)}


def load_certificate(data):
    """An x509.Certificate from an object, PEM or DER bytes, or a path to a
    PEM file (the first certificate in it)."""
    if isinstance(data, x509.Certificate):
        return data
    if isinstance(data, str):
        with open(data, "rb") as f:
            data = f.read()
    if b"-----BEGIN CERTIFICATE-----" in data:
        return x509.load_pem_x509_certificate(
            data[data.index(b"-----BEGIN CERTIFICATE-----"):])
    return x509.load_der_x509_certificate(data)


def load_private_key(data):
    """A private key from PEM bytes or a path to a PEM file that holds one
    (possibly next to certificates)."""
    if isinstance(data, str):
        with open(data, "rb") as f:
            data = f.read()
    return serialization.load_pem_private_key(data, password=None)


class ClientCertificate:
    """A self-signed certificate and its key, as an app registration's
    certificate credential.  Files (all mode 0600):

        cert_file   the certificate alone (what is uploaded to Entra ID)
        key_file    the private key alone
        pem_file    both in one file, certificate first (key first when
                    made with key_first=True, as `az ad sp create-for-rbac
                    --create-cert` writes it)
    """

    def __init__(self, directory, name, days=2, key_kind="rsa",
                 key_first=False, traditional_key=False):
        self.name = name
        self.key = _new_key(key_kind)
        now = _now()
        self.cert = (x509.CertificateBuilder()
                     .subject_name(_name(name)).issuer_name(_name(name))
                     .public_key(self.key.public_key())
                     .serial_number(x509.random_serial_number())
                     .not_valid_before(now - datetime.timedelta(hours=1))
                     .not_valid_after(now + datetime.timedelta(days=days))
                     .add_extension(x509.BasicConstraints(ca=False, path_length=None),
                                    critical=True)
                     .add_extension(_key_usage(digital_signature=True), critical=True)
                     .sign(self.key, hashes.SHA256()))
        cert_pem, key_pem = _cert_pem(self.cert), _key_pem(self.key, traditional_key)
        self.cert_pem, self.key_pem = cert_pem, key_pem
        self.cert_file = _write(os.path.join(directory, name + ".crt"), cert_pem)
        self.key_file = _write(os.path.join(directory, name + ".key"), key_pem)
        both = key_pem + cert_pem if key_first else cert_pem + key_pem
        self.pem_file = _write(os.path.join(directory, name + ".pem"), both)
        t = thumbprints(self.cert)
        self.der = self.cert.public_bytes(serialization.Encoding.DER)
        self.x5t = t["x5t"]
        self.x5t_s256 = t["x5t#S256"]
        self.thumbprint = t["sha1_hex"]


class TLSMaterial:
    """A private CA and a server certificate for the loopback names, in a
    directory of their own (made when not given; removed by cleanup() only
    when it was made here).

    Attributes: dir, ca_file (the CA certificate: the bundle a client
    trusts), ca_key_file, cert_file and key_file (the server's), chain_file
    (server certificate followed by the CA's), hosts.
    """

    def __init__(self, directory=None, hosts=LOOPBACK_HOSTS, days=2,
                 key_kind="rsa"):
        self._own_dir = directory is None
        self.dir = directory or tempfile.mkdtemp(prefix="mab-tls-")
        os.makedirs(self.dir, exist_ok=True)
        self.hosts = tuple(hosts)
        self.days = days
        now = _now()
        self.ca_key = _new_key(key_kind)
        ca_name = _name("mongo-azure-backup test CA")
        self.ca_cert = (x509.CertificateBuilder()
                        .subject_name(ca_name).issuer_name(ca_name)
                        .public_key(self.ca_key.public_key())
                        .serial_number(x509.random_serial_number())
                        .not_valid_before(now - datetime.timedelta(hours=1))
                        .not_valid_after(now + datetime.timedelta(days=days))
                        .add_extension(x509.BasicConstraints(ca=True, path_length=0),
                                       critical=True)
                        .add_extension(_key_usage(digital_signature=True, key_cert_sign=True,
                                                  crl_sign=True), critical=True)
                        .add_extension(x509.SubjectKeyIdentifier.from_public_key(
                            self.ca_key.public_key()), critical=False)
                        .sign(self.ca_key, hashes.SHA256()))
        self.ca_file = _write(os.path.join(self.dir, "ca.pem"), _cert_pem(self.ca_cert), 0o644)
        self.ca_key_file = _write(os.path.join(self.dir, "ca.key"), _key_pem(self.ca_key))
        self.key, self.cert = self._issue("server", self.hosts, key_kind)
        self.cert_file = _write(os.path.join(self.dir, "server.crt"), _cert_pem(self.cert), 0o644)
        self.key_file = _write(os.path.join(self.dir, "server.key"), _key_pem(self.key))
        self.chain_file = _write(os.path.join(self.dir, "server-chain.pem"),
                                 _cert_pem(self.cert) + _cert_pem(self.ca_cert), 0o644)

    def _issue(self, cn_hint, hosts, key_kind):
        key = _new_key(key_kind)
        sans = []
        for h in hosts:
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(h)))
            except ValueError:
                sans.append(x509.DNSName(h))
        now = _now()
        cn = hosts[0] if hosts else cn_hint
        cert = (x509.CertificateBuilder()
                .subject_name(_name(cn)).issuer_name(self.ca_cert.subject)
                .public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(hours=1))
                .not_valid_after(now + datetime.timedelta(days=self.days))
                .add_extension(x509.SubjectAlternativeName(sans), critical=False)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(_key_usage(digital_signature=True, key_encipherment=True),
                               critical=True)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                               critical=False)
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                    self.ca_key.public_key()), critical=False)
                .sign(self.ca_key, hashes.SHA256()))
        return key, cert

    def server_certificate(self, name, hosts):
        """Another server certificate from the same CA, for other names:
        (cert_file, key_file)."""
        key, cert = self._issue(name, tuple(hosts), "rsa")
        return (_write(os.path.join(self.dir, name + ".crt"), _cert_pem(cert), 0o644),
                _write(os.path.join(self.dir, name + ".key"), _key_pem(key)))

    def client_certificate(self, name="service-principal", **kw):
        """A self-signed certificate credential (see ClientCertificate;
        keywords: days, key_kind, key_first, traditional_key)."""
        return ClientCertificate(self.dir, name, **kw)

    def server_context(self):
        """An ssl.SSLContext serving the server certificate."""
        import ssl
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(self.cert_file, self.key_file)
        return ctx

    def client_context(self):
        """An ssl.SSLContext that trusts only this CA (hostname checked)."""
        import ssl
        return ssl.create_default_context(cafile=self.ca_file)

    def cleanup(self):
        if self._own_dir and self.dir and not os.environ.get("MAB_KEEP_TMP"):
            shutil.rmtree(self.dir, ignore_errors=True)
        self.dir = None
