"""prod's secret files: a fresh set, never overwritten, and Redis' ACL holding a hash only."""

from __future__ import annotations

import hashlib
import stat
from pathlib import Path

import pytest

from pipeline import secret_files
from pipeline.errors import PipelineError


def test_a_fresh_set_holds_every_file_private_to_its_folder(tmp_path: Path) -> None:
    folder = tmp_path / "prod"
    written = secret_files.write_secret_files(folder)
    assert sorted(path.name for path in written) == sorted(secret_files.SECRET_FILES)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700, "the folder: expected mode 0700"
    modes = {path.name: stat.S_IMODE(path.stat().st_mode) for path in written}
    assert set(modes.values()) == {0o444}, f"secret files: expected mode 0444, found {modes}"


def test_two_sets_never_share_a_password(tmp_path: Path) -> None:
    first = secret_files.write_secret_files(tmp_path / "a")
    second = secret_files.write_secret_files(tmp_path / "b")
    assert not set(secret_files.secret_values(first[0].parent)) & set(
        secret_files.secret_values(second[0].parent)
    ), "two fresh sets: expected different passwords"


def test_the_redis_acl_holds_each_user_s_password_hash_not_the_password(tmp_path: Path) -> None:
    secret_files.write_secret_files(tmp_path)
    acl = (tmp_path / secret_files.REDIS_USERS).read_text()
    assert acl.startswith("user default off "), f"redis_users.acl: found {acl!r}"
    for user, name in secret_files.REDIS_PASSWORDS.items():
        password = (tmp_path / name).read_text().strip()
        assert password not in acl, f"redis_users.acl: expected no plain password of {user}"
        assert f"user {user} on #{hashlib.sha256(password.encode()).hexdigest()} " in acl, (
            f"redis_users.acl: expected the SHA-256 of {name} for {user}, found {acl!r}"
        )


def test_an_existing_secret_file_is_never_overwritten(tmp_path: Path) -> None:
    kept = tmp_path / secret_files.POSTGRES_PASSWORD
    kept.write_text("the operator's own\n")
    with pytest.raises(PipelineError, match="already exists; the secrets there are kept"):
        secret_files.write_secret_files(tmp_path)
    assert kept.read_text() == "the operator's own\n"
    assert not (tmp_path / secret_files.REDIS_USERS).exists()


def test_secret_values_are_the_passwords(tmp_path: Path) -> None:
    secret_files.write_secret_files(tmp_path)
    values = secret_files.secret_values(tmp_path)
    assert len(values) == 4 and all(len(value) >= 24 for value in values), values


def test_a_symlink_at_a_secret_s_name_is_refused_and_its_target_untouched(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_text("not a secret\n")
    folder = tmp_path / "prod"
    folder.mkdir()
    (folder / secret_files.REDIS_USERS).symlink_to(elsewhere)
    with pytest.raises(PipelineError, match=r"already exists.*kept"):
        secret_files.write_secret_files(folder)
    assert elsewhere.read_text() == "not a secret\n", "the symlink's target was written"
    # A dangling one passes for absent; the file is still not created through it.
    (folder / secret_files.REDIS_USERS).unlink()
    (folder / secret_files.REDIS_PASSWORDS["callback"]).symlink_to(tmp_path / "dangling")
    with pytest.raises(PipelineError, match=r"appeared while the secrets were written"):
        secret_files.write_secret_files(folder)
    assert not (tmp_path / "dangling").exists(), "a file was created through a dangling symlink"
    assert not (folder / secret_files.POSTGRES_PASSWORD).exists(), "half a set was left behind"


def test_a_folder_that_was_there_keeps_its_mode(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    secret_files.write_secret_files(shared)
    found = stat.S_IMODE(shared.stat().st_mode)
    assert found == 0o1777, f"an existing folder: expected its mode 1777 kept, found {found:o}"


def test_the_files_get_their_mode_whatever_the_umask(tmp_path: Path) -> None:
    import os

    previous = os.umask(0o077)
    try:
        written = secret_files.write_secret_files(tmp_path / "prod")
    finally:
        os.umask(previous)
    modes = {path.name: stat.S_IMODE(path.stat().st_mode) for path in written}
    assert set(modes.values()) == {0o444}, f"under umask 077: expected 0444, found {modes}"
