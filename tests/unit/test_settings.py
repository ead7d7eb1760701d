"""Settings: exact variable names, defaults, empty-means-unset, and TLS in pairs."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from src.settings import Settings, SharedSettings

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
    "name", ["REDIS_PASSWORD", "APP_TLS_CERT_FILE", "APP_TLS_KEY_FILE"], ids=str
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
