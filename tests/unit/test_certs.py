"""Dev TLS material: a parseable pair for every service name, never overwritten while good."""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import ipaddress
import os
import stat
from pathlib import Path

import pytest

pytest.importorskip(
    "cryptography", reason="pipeline.certs needs the pipeline group: uv run --group pipeline"
)

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from pipeline import certs

OWNER_UID = 4321
OWNER_GID = 4322


@pytest.fixture
def pair(tmp_path: Path) -> tuple[Path, Path]:
    return certs.ensure_dev_certs(tmp_path / "dev", uid=OWNER_UID, gid=OWNER_GID)


def read_certificate(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_the_pair_is_named_tls_crt_and_tls_key(tmp_path: Path, pair) -> None:
    assert pair == (tmp_path / "dev" / "tls.crt", tmp_path / "dev" / "tls.key")


def test_the_certificate_names_every_host_and_address(pair) -> None:
    cert, _key = pair
    names = (
        read_certificate(cert).extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    )
    assert set(names.get_values_for_type(x509.DNSName)) == set(certs.DNS_NAMES)
    assert set(names.get_values_for_type(x509.IPAddress)) == {
        ipaddress.ip_address(address) for address in certs.IP_ADDRESSES
    }


def test_the_key_belongs_to_the_certificate(pair) -> None:
    cert, key = pair
    private_key = serialization.load_pem_private_key(key.read_bytes(), password=None)
    assert private_key.public_key() == read_certificate(cert).public_key()


def test_the_certificate_is_valid_for_825_days(pair) -> None:
    certificate = read_certificate(pair[0])
    lifetime = certificate.not_valid_after_utc - certificate.not_valid_before_utc
    assert abs(lifetime - dt.timedelta(days=certs.VALID_DAYS)) < dt.timedelta(minutes=2)


@pytest.mark.parametrize(
    ("index", "mode"), [(0, 0o644), (1, 0o640)], ids=["tls.crt is 0644", "tls.key is 0640"]
)
def test_the_files_have_their_modes(pair, index: int, mode: int) -> None:
    found = stat.S_IMODE(pair[index].stat().st_mode)
    assert found == mode, f"{pair[index].name}: expected {mode:o}, found {found:o}"


def test_the_files_belong_to_the_container_user_when_made_as_root(pair) -> None:
    expected = (OWNER_UID, OWNER_GID) if os.geteuid() == 0 else (os.geteuid(), os.getegid())
    for path in pair:
        assert (path.stat().st_uid, path.stat().st_gid) == expected, path.name


def test_a_good_pair_is_returned_untouched(
    tmp_path: Path, pair, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    before = [path.read_bytes() for path in pair]
    assert certs.ensure_dev_certs(tmp_path / "dev", uid=OWNER_UID, gid=OWNER_GID) == pair
    assert [path.read_bytes() for path in pair] == before
    assert capsys.readouterr().out == ""
    assert sorted(path.name for path in (tmp_path / "dev").iterdir()) == ["tls.crt", "tls.key"]


def test_creating_a_pair_prints_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    certs.ensure_dev_certs(tmp_path / "dev")
    output = capsys.readouterr().out
    assert output.count("\n") == 1
    assert output.startswith("certs: created ")


def test_a_pair_expiring_within_30_days_is_replaced_and_kept_as_a_backup(tmp_path: Path) -> None:
    directory = tmp_path / "dev"
    directory.mkdir()
    old_cert, old_key = certs.generate_pair(valid_days=certs.RENEW_WITHIN_DAYS - 1)
    (directory / "tls.crt").write_bytes(old_cert)
    (directory / "tls.key").write_bytes(old_key)

    cert, key = certs.ensure_dev_certs(directory)

    assert cert.read_bytes() != old_cert
    assert [backup.read_bytes() for backup in sorted(directory.glob("tls.crt.bak.*"))] == [old_cert]
    assert [backup.read_bytes() for backup in sorted(directory.glob("tls.key.bak.*"))] == [old_key]
    assert certs.pair_is_good(cert, key)


def test_a_certificate_without_its_key_is_replaced(tmp_path: Path) -> None:
    directory = tmp_path / "dev"
    directory.mkdir()
    lone_cert, _ = certs.generate_pair()
    (directory / "tls.crt").write_bytes(lone_cert)

    cert, key = certs.ensure_dev_certs(directory)

    assert certs.pair_is_good(cert, key)
    assert len(list(directory.glob("tls.crt.bak.*"))) == 1


def test_a_key_from_another_pair_is_not_good(tmp_path: Path) -> None:
    cert_pem, _ = certs.generate_pair()
    _, other_key_pem = certs.generate_pair()
    (tmp_path / "tls.crt").write_bytes(cert_pem)
    (tmp_path / "tls.key").write_bytes(other_key_pem)
    assert not certs.pair_is_good(tmp_path / "tls.crt", tmp_path / "tls.key")


def test_pairs_written_at_once_always_belong_together(tmp_path: Path) -> None:
    """Several runs creating the pair at the same moment end with one matching pair."""
    directory = tmp_path / "dev"
    with concurrent.futures.ThreadPoolExecutor(max_workers=6) as pool:
        futures = [
            pool.submit(certs.ensure_dev_certs, directory, uid=OWNER_UID, gid=OWNER_GID)
            for _ in range(6)
        ]
        results = {future.result() for future in futures}
    assert len(results) == 1, (
        f"ensure_dev_certs from six threads: expected one pair, found {results}"
    )
    cert_path, key_path = results.pop()
    assert certs.pair_is_good(cert_path, key_path), (
        "the pair left behind: key and certificate differ"
    )
    leftovers = sorted(p.name for p in directory.iterdir() if p.name not in ("tls.crt", "tls.key"))
    assert not leftovers, f"{directory}: expected only the pair, found also {leftovers}"


def test_a_temporary_file_is_never_shared(tmp_path: Path, monkeypatch) -> None:
    """Each write goes through a temporary file of its own name, removed when it fails."""
    names: list[str] = []
    real_replace = Path.replace

    def spy(self: Path, target):
        names.append(self.name)
        return real_replace(self, target)

    monkeypatch.setattr(Path, "replace", spy)
    for _ in range(2):
        certs.write_file(tmp_path / "tls.key", b"key", 0o640, OWNER_UID, OWNER_GID)
    assert len(set(names)) == 2 and all(name.startswith(".tls.key.") for name in names), (
        f"temporary names of two writes: expected two distinct .tls.key.* names, found {names}"
    )
