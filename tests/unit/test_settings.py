"""Settings: exact variable names, defaults, empty-means-unset, TLS in pairs, secret files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from src.entrypoint import describe_settings_error
from src.settings import Settings, SharedSettings, secret_setting_names

pytestmark = pytest.mark.usefixtures("settings_environment")


def test_defaults_point_at_the_compose_service_names() -> None:
    settings = Settings()
    assert (settings.POSTGRES_HOST, settings.POSTGRES_PORT) == ("postgres", 5432)
    assert (settings.REDIS_HOST, settings.REDIS_PORT) == ("redis", 6379)
    assert settings.REDIS_PASSWORD is None
    assert settings.APP_DEBUG is False
    assert settings.OAUTH_CODE_TTL_SECONDS == 600
    assert settings.DEPENDENCY_TIMEOUT_SECONDS == 2.0
    assert settings.tls_enabled is False


@pytest.mark.parametrize(
    "name",
    [
        "REDIS_PASSWORD",
        "APP_TLS_CERT_FILE",
        "APP_TLS_KEY_FILE",
        "REDIS_PASSWORD_FILE",
        "POSTGRES_PASSWORD_FILE",
    ],
    ids=str,
)
def test_an_empty_optional_variable_means_unset(settings_environment, name: str) -> None:
    settings_environment.setenv(name, "")
    assert getattr(Settings(), name) is None


def test_tls_is_enabled_when_both_files_are_set(settings_environment) -> None:
    settings_environment.setenv("APP_TLS_CERT_FILE", "/certs/tls.crt")
    settings_environment.setenv("APP_TLS_KEY_FILE", "/certs/tls.key")
    settings = Settings()
    assert settings.tls_enabled
    assert str(settings.APP_TLS_CERT_FILE) == "/certs/tls.crt"


def test_a_tls_certificate_without_its_key_is_refused(settings_environment) -> None:
    settings_environment.setenv("APP_TLS_CERT_FILE", "/certs/tls.crt")
    with pytest.raises(ValidationError, match="set both APP_TLS_CERT_FILE and APP_TLS_KEY_FILE"):
        Settings()


def test_the_ca_bundle_variable_is_never_read_as_the_server_certificate(
    settings_environment,
) -> None:
    settings_environment.setenv("SSL_CERT_FILE", "/etc/ssl/certs/ca-certificates.crt")
    assert Settings().tls_enabled is False


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("APP_ENV", "staging"),
        ("POSTGRES_PASSWORD", ""),
        ("POSTGRES_PORT", "0"),
        ("DEPENDENCY_TIMEOUT_SECONDS", "0"),
        ("OAUTH_CODE_TTL_SECONDS", "-1"),
    ],
    ids=[
        "an unknown environment",
        "an empty database password",
        "port zero",
        "a zero timeout",
        "a negative ttl",
    ],
)
def test_a_bad_value_is_refused(settings_environment, name: str, value: str) -> None:
    settings_environment.setenv(name, value)
    with pytest.raises(ValidationError, match=name):
        Settings()


def test_lowercase_variable_names_are_ignored(settings_environment) -> None:
    settings_environment.setenv("postgres_host", "elsewhere")
    assert Settings().POSTGRES_HOST == "postgres"


def test_the_callback_settings_carry_no_database_fields() -> None:
    assert not [name for name in SharedSettings.model_fields if name.startswith("POSTGRES_")]


def test_the_database_password_is_hidden_from_reprs() -> None:
    assert "unit-test-password" not in repr(Settings())


# Secrets as files: `<NAME>_FILE` names a file holding the value (Compose `secrets:`).

# Distinctive values, so any leak into an error message is unmistakable.
SECRET_IN_FILE = "secret-from-the-file-7f3a"
SECRET_IN_ENVIRONMENT = "secret-from-the-environment-91c2"

# (settings class, secret setting): the callback's settings read only the Redis one.
SECRET_SETTINGS = [
    (Settings, "POSTGRES_PASSWORD"),
    (Settings, "REDIS_PASSWORD"),
    (SharedSettings, "REDIS_PASSWORD"),
]
SECRET_SETTING_IDS = ["app POSTGRES_PASSWORD", "app REDIS_PASSWORD", "callback REDIS_PASSWORD"]


def write_secret(directory: Path, content: str | bytes) -> Path:
    path = directory / "secret"
    if isinstance(content, str):
        content = content.encode()
    path.write_bytes(content)
    return path


def use_secret_file(environment: pytest.MonkeyPatch, name: str, path: Path | str) -> None:
    """Point `<name>_FILE` at path, with `<name>` itself unset (the production shape)."""
    environment.delenv(name, raising=False)
    environment.setenv(f"{name}_FILE", str(path))


def refusal(settings_class: type[SharedSettings]) -> ValidationError:
    with pytest.raises(ValidationError) as caught:
        settings_class()
    return caught.value


def assert_reveals_no_secret(error: ValidationError, *secrets: str) -> None:
    for shown in (describe_settings_error(error), str(error), repr(error)):
        for secret in secrets:
            assert secret not in shown, f"a secret value is shown in: {shown}"


def test_every_secret_setting_can_be_read_from_a_file() -> None:
    names = secret_setting_names(Settings)
    assert {"POSTGRES_PASSWORD", "REDIS_PASSWORD"} <= set(names)
    assert [name for name in names if f"{name}_FILE" not in Settings.model_fields] == []


@pytest.mark.parametrize(("settings_class", "name"), SECRET_SETTINGS, ids=SECRET_SETTING_IDS)
@pytest.mark.parametrize(
    ("content", "value"),
    [
        ("pw", "pw"),
        ("pw\n", "pw"),
        ("pw\r\n", "pw"),
        ("pw\n\n", "pw\n"),
        ("p\rw\n", "p\rw"),
        (" pw \n", " pw "),
    ],
    ids=[
        "no newline",
        "one newline is removed",
        "one windows newline is removed",
        "only one of two newlines is removed",
        "a carriage return inside is kept",
        "spaces are kept",
    ],
)
def test_a_secret_is_read_from_the_file_its_file_variable_names(
    settings_environment, tmp_path: Path, settings_class, name: str, content: str, value: str
) -> None:
    use_secret_file(settings_environment, name, write_secret(tmp_path, content))
    assert getattr(settings_class(), name).get_secret_value() == value


def test_an_empty_database_password_variable_gives_way_to_its_file(
    settings_environment, tmp_path: Path
) -> None:
    # Compose passes `${POSTGRES_PASSWORD:-}` through as "": that is "not set", not a conflict.
    settings_environment.setenv("POSTGRES_PASSWORD", "")
    settings_environment.setenv("POSTGRES_PASSWORD_FILE", str(write_secret(tmp_path, "pw\n")))
    assert Settings().POSTGRES_PASSWORD.get_secret_value() == "pw"


@pytest.mark.parametrize(("settings_class", "name"), SECRET_SETTINGS, ids=SECRET_SETTING_IDS)
def test_a_secret_set_both_ways_is_refused_without_showing_either_value(
    settings_environment, tmp_path: Path, settings_class, name: str
) -> None:
    settings_environment.setenv(name, SECRET_IN_ENVIRONMENT)
    settings_environment.setenv(f"{name}_FILE", str(write_secret(tmp_path, SECRET_IN_FILE)))
    error = refusal(settings_class)
    assert describe_settings_error(error) == f"set {name} or {name}_FILE, not both"
    assert_reveals_no_secret(error, SECRET_IN_ENVIRONMENT, SECRET_IN_FILE)


@pytest.mark.parametrize(("settings_class", "name"), SECRET_SETTINGS, ids=SECRET_SETTING_IDS)
@pytest.mark.parametrize(
    ("make_path", "reason"),
    [
        (lambda directory: directory / "absent", "No such file or directory"),
        (lambda directory: directory, "Is a directory"),
    ],
    ids=["a missing file", "a directory"],
)
def test_an_unreadable_secret_file_is_named_with_its_variable(
    settings_environment, tmp_path: Path, settings_class, name: str, make_path, reason: str
) -> None:
    path = make_path(tmp_path)
    use_secret_file(settings_environment, name, path)
    message = describe_settings_error(refusal(settings_class))
    assert message.startswith(f"{name}_FILE={path} cannot be read ({reason}); "), message
    assert "\n" not in message


def test_a_secret_file_the_user_may_not_read_is_named_with_its_uid(
    settings_environment, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = write_secret(tmp_path, SECRET_IN_FILE)

    def refuse(file: Path) -> bytes:
        # chmod cannot show this when the tests run as root, who reads any file.
        raise PermissionError(13, "Permission denied", str(file))

    monkeypatch.setattr(Path, "read_bytes", refuse)
    use_secret_file(settings_environment, "POSTGRES_PASSWORD", path)
    error = refusal(Settings)
    assert describe_settings_error(error) == (
        f"POSTGRES_PASSWORD_FILE={path} cannot be read (Permission denied); "
        f"mount the secret file there, readable by uid {os.getuid()}"
    )
    assert_reveals_no_secret(error, SECRET_IN_FILE)


@pytest.mark.parametrize(("settings_class", "name"), SECRET_SETTINGS, ids=SECRET_SETTING_IDS)
def test_a_secret_file_that_is_not_text_is_refused_without_quoting_it(
    settings_environment, tmp_path: Path, settings_class, name: str
) -> None:
    path = write_secret(tmp_path, b"\xff" + SECRET_IN_FILE.encode())
    use_secret_file(settings_environment, name, path)
    error = refusal(settings_class)
    assert describe_settings_error(error) == f"{name}_FILE={path} is not UTF-8 text"
    assert_reveals_no_secret(error, SECRET_IN_FILE, "\\xff", "0xff")


@pytest.mark.parametrize("settings_class", [Settings, SharedSettings], ids=["app", "callback"])
@pytest.mark.parametrize("content", ["", "\n"], ids=["an empty file", "a lone newline"])
def test_an_empty_redis_password_file_means_no_password(
    settings_environment, tmp_path: Path, settings_class, content: str
) -> None:
    path = write_secret(tmp_path, content)
    use_secret_file(settings_environment, "REDIS_PASSWORD", path)
    settings = settings_class()
    assert settings.REDIS_PASSWORD is None
    assert path == settings.REDIS_PASSWORD_FILE


@pytest.mark.parametrize("content", ["", "\n"], ids=["an empty file", "a lone newline"])
def test_an_empty_database_password_file_is_refused(
    settings_environment, tmp_path: Path, content: str
) -> None:
    path = write_secret(tmp_path, content)
    use_secret_file(settings_environment, "POSTGRES_PASSWORD", path)
    assert describe_settings_error(refusal(Settings)) == (
        f"POSTGRES_PASSWORD_FILE={path} is empty; write POSTGRES_PASSWORD into it"
    )
