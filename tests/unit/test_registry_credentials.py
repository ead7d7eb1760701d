"""The registry's credentials: made once, private, and the htpasswd holding a hash only."""

from __future__ import annotations

import base64
import stat

import bcrypt
import pytest

from pipeline import registry_credentials
from pipeline.errors import PipelineError


def test_credentials_are_made_once_and_kept_private():
    first = registry_credentials.credentials()
    assert registry_credentials.credentials() == first, "a second call made new credentials"
    path = registry_credentials.credentials_file()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600, "the password file: expected 0600"
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700, "its folder: expected 0700"
    assert len(first.password) >= 32, "expected a long random password"


def test_the_htpasswd_file_holds_a_bcrypt_hash_of_the_password_not_the_password():
    found = registry_credentials.credentials()
    line = registry_credentials.htpasswd_file().read_text().strip()
    user, _, digest = line.partition(":")
    assert user == found.username and found.password not in line, line
    assert bcrypt.checkpw(found.password.encode(), digest.encode()), "the hash is not of it"


def test_the_api_header_is_basic_authentication_of_the_credentials():
    found = registry_credentials.credentials()
    scheme, _, token = found.authorization.partition(" ")
    decoded = base64.b64decode(token).decode()
    assert (scheme, decoded) == ("Basic", f"{found.username}:{found.password}")


def test_an_unreadable_credentials_file_is_one_line():
    path = registry_credentials.credentials_file()
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    with pytest.raises(PipelineError, match=r"cannot be read.*move it aside"):
        registry_credentials.credentials()


def test_new_credentials_replace_the_htpasswd_of_old_ones():
    first = registry_credentials.credentials()
    before = registry_credentials.htpasswd_digest()
    registry_credentials.credentials_file().unlink()
    second = registry_credentials.credentials()
    assert second.password != first.password, "the same password was made again"
    line = registry_credentials.htpasswd_file().read_text().strip()
    assert bcrypt.checkpw(second.password.encode(), line.partition(":")[2].encode()), (
        "the htpasswd still holds the old password's hash"
    )
    assert registry_credentials.htpasswd_digest() != before
