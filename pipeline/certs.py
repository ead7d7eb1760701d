"""Development TLS material: one self-signed certificate for every name the stack answers to.

`ensure_dev_certs()` writes certs/dev/tls.crt (0644) and certs/dev/tls.key (0640). The
containers run as UID 1000, so when this runs as root both files are chowned to 1000:1000.
When it does not run as root the files keep the caller's ownership; the key is then
readable in a container only if the caller's UID (or group) is the one the container runs
as, which is the case for the usual first desktop user (UID 1000).

An existing pair is never overwritten while it is still good; a pair that is being replaced
is first moved aside to `<name>.bak.<timestamp>`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import ipaddress
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from pipeline.errors import PipelineError

CERT_NAME = "tls.crt"
KEY_NAME = "tls.key"
CERT_MODE = 0o644
# Group-readable so a container user sharing the group can read it; never world-readable.
KEY_MODE = 0o640
VALID_DAYS = 825  # the longest validity Apple and browsers accept for a TLS server cert
RENEW_WITHIN_DAYS = 30

DNS_NAMES = ("localhost", "app", "callback", "postgres", "redis")
IP_ADDRESSES = ("127.0.0.1", "::1")


def subject_alternative_names() -> x509.SubjectAlternativeName:
    """Every host name and address the services are reached by, on the host and in compose."""
    names: list[x509.GeneralName] = [x509.DNSName(name) for name in DNS_NAMES]
    names += [x509.IPAddress(ipaddress.ip_address(address)) for address in IP_ADDRESSES]
    return x509.SubjectAlternativeName(names)


def generate_pair(
    now: dt.datetime | None = None, valid_days: int = VALID_DAYS
) -> tuple[bytes, bytes]:
    """A new self-signed certificate and its EC P-256 key, both PEM (cert, key)."""
    now = now or dt.datetime.now(dt.UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Dashtam development"),
            x509.NameAttribute(NameOID.COMMON_NAME, "localhost"),
        ]
    )
    public_key = key.public_key()
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        # A minute of slack for clocks that run slightly behind.
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=valid_days))
        .add_extension(subject_alternative_names(), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=True,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        # Both identifiers: Python 3.13's strict X.509 checks want them present.
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(public_key), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return certificate.public_bytes(serialization.Encoding.PEM), key_pem


def pair_is_good(cert_path: Path, key_path: Path, now: dt.datetime | None = None) -> bool:
    """True when both files parse, belong together, cover every name, and do not expire soon."""
    now = now or dt.datetime.now(dt.UTC)
    try:
        certificate = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except (OSError, ValueError, TypeError, x509.ExtensionNotFound):
        return False
    if key.public_key() != certificate.public_key():
        return False
    if set(subject_alternative_names()) - set(names.value):
        return False
    return certificate.not_valid_after_utc - now > dt.timedelta(days=RENEW_WITHIN_DAYS)


def move_aside(path: Path, timestamp: str) -> Path | None:
    """Rename `path` to `<name>.bak.<timestamp>` (never over an older backup); None if absent."""
    if not path.exists() and not path.is_symlink():
        return None
    backup = path.with_name(f"{path.name}.bak.{timestamp}")
    counter = 1
    while backup.exists():
        backup = path.with_name(f"{path.name}.bak.{timestamp}-{counter}")
        counter += 1
    path.rename(backup)
    return backup


def write_file(path: Path, content: bytes, mode: int, uid: int, gid: int) -> None:
    """Write through a temporary file of a unique name and rename it into place, so a reader
    never sees half a key and two writers never share a temporary file."""
    # Created 0600 (mkstemp's mode), so the key is never briefly readable by others.
    descriptor, temporary_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    temporary = Path(temporary_name)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(content)
        os.chmod(temporary, mode)
        if os.geteuid() == 0:
            os.chown(temporary, uid, gid)
        temporary.replace(path)
    finally:
        temporary.unlink(missing_ok=True)


@contextlib.contextmanager
def exclusive(directory: Path) -> Iterator[None]:
    """Lock the folder itself: one writer at a time checks and writes the pair, so two TLS
    stacks booting at once cannot pair one's key with the other's certificate."""
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)  # closing releases the lock


def ensure_dev_certs(
    directory: Path = Path("certs/dev"), uid: int = 1000, gid: int = 1000
) -> tuple[Path, Path]:
    """Return (cert, key) in `directory`, creating them only when no good pair is there."""
    cert_path = directory / CERT_NAME
    key_path = directory / KEY_NAME
    if pair_is_good(cert_path, key_path):
        return cert_path, key_path
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with exclusive(directory):
            if pair_is_good(cert_path, key_path):
                return cert_path, key_path  # another run wrote it while this one waited
            timestamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
            backups = [move_aside(path, timestamp) for path in (cert_path, key_path)]
            cert_pem, key_pem = generate_pair()
            write_file(key_path, key_pem, KEY_MODE, uid, gid)
            write_file(cert_path, cert_pem, CERT_MODE, uid, gid)
    except OSError as error:
        raise PipelineError(
            f"cannot write the dev TLS pair in {directory}: {error.strerror or error}; "
            "make the folder writable or remove it"
        ) from error
    moved = [str(backup) for backup in backups if backup is not None]
    note = f" (previous files kept as {', '.join(moved)})" if moved else ""
    print(f"certs: created {cert_path} and {key_path}, valid {VALID_DAYS} days{note}")
    return cert_path, key_path
