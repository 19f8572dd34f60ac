"""HTTPS/WSS: a self-signed certificate for LAN use, or the operator's certificate files.

Browsers allow camera and microphone only in a secure context: ``https://`` or ``localhost``.
On a LAN without a certificate authority, ``[tls] mode = "self-signed"`` (``parley serve --tls
self-signed``) makes one certificate for this machine's names and addresses, once, and keeps it
under ``data_dir/tls/``; each browser asks once to accept it (compare the SHA-256 fingerprint
printed at start with what the browser shows). Nothing is looked up on the network to do so.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import secrets
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .settings import Settings

#: a certificate this close to expiry is made again at start
RENEW_BEFORE_DAYS = 7


@dataclass(frozen=True, slots=True)
class TlsFiles:
    cert_path: Path
    key_path: Path
    #: SHA-256 of the certificate (DER), as browsers show it: "AB:CD:..."
    fingerprint: str
    generated: bool = False


def local_names(extra: list[str], host: str) -> list[str]:
    """localhost, this host's name, every local address (from the interfaces, no DNS), the
    listen address when it is a specific one, and ``extra``."""
    names = ["localhost", "127.0.0.1", "::1", socket.gethostname()]
    try:
        import ifaddr  # comes with aioice

        for adapter in ifaddr.get_adapters():
            for ip in adapter.ips:
                address = ip.ip if isinstance(ip.ip, str) else ip.ip[0]
                if not ipaddress.ip_address(address).is_link_local:
                    names.append(address)
    except (ImportError, OSError):
        pass
    if host not in ("", "0.0.0.0", "::"):
        names.append(host)
    names += extra
    return list(dict.fromkeys(n for n in names if n))


def _san(names: list[str]) -> x509.SubjectAlternativeName:
    entries: list[x509.GeneralName] = []
    for name in names:
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            entries.append(x509.DNSName(name))
    return x509.SubjectAlternativeName(entries)


def fingerprint(cert: x509.Certificate) -> str:
    return ":".join(f"{b:02X}" for b in cert.fingerprint(hashes.SHA256()))


def _covers(cert: x509.Certificate, names: list[str], now: datetime.datetime) -> bool:
    if cert.not_valid_after_utc - now < datetime.timedelta(days=RENEW_BEFORE_DAYS):
        return False
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    have = {str(v) for v in san.get_values_for_type(x509.DNSName)}
    have |= {str(v) for v in san.get_values_for_type(x509.IPAddress)}
    return all(str(ipaddress.ip_address(n)) in have if _is_ip(n) else n in have for n in names)


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def self_signed(directory: Path, names: list[str], *, valid_days: int) -> TlsFiles:
    """The certificate in ``directory`` if it still covers ``names``, else a new one."""
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    now = datetime.datetime.now(datetime.UTC)
    if cert_path.is_file() and key_path.is_file():
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        if _covers(cert, names, now):
            return TlsFiles(cert_path, key_path, fingerprint(cert))
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"Parley on {names[3]}")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=valid_days))
        .add_extension(_san(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    key_bytes = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    _write_private(key_path, key_bytes)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return TlsFiles(cert_path, key_path, fingerprint(cert), generated=True)


def _write_private(path: Path, data: bytes) -> None:
    """Write ``path`` as mode 0600 whatever was there: a fresh file (O_EXCL, so its creation
    mode applies; the umask can only narrow it) renamed over the old one. Opening the old file
    with O_TRUNC would keep its mode, e.g. a restored 0644 key."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def tls_files(settings: Settings) -> TlsFiles | None:
    """What ``[tls]`` asks for (None = plain HTTP), making the self-signed one if needed."""
    tls = settings.tls
    if tls.mode == "off":
        return None
    if tls.mode == "self-signed":
        names = local_names(tls.self_signed_names, settings.server.host)
        directory = settings.server.data_path() / "tls"
        return self_signed(directory, names, valid_days=tls.self_signed_valid_days)
    cert_path = Path(tls.cert_file).expanduser()
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    return TlsFiles(cert_path, Path(tls.key_file).expanduser(), fingerprint(cert))


def server_context(files: TlsFiles) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(files.cert_path, files.key_path)
    return context
