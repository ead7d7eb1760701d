"""Runtime settings, read from environment variables with exactly these uppercase names.

There is no env file here on purpose: compose (or the operator) supplies the environment,
so what the container sees is what `docker compose config` shows.

Every secret setting (a `SecretStr`) can instead come from a file: `<NAME>_FILE` names it,
the convention of the official postgres image, so production mounts Compose `secrets:`
under /run/secrets and no password sits in the container's environment.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, Self, get_args

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_core import PydanticCustomError
from pydantic_settings import BaseSettings, SettingsConfigDict

Environment = Literal["development", "test", "ci", "production"]

FILE_VARIABLE_SUFFIX = "_FILE"


def is_unset(value: Any) -> bool:
    """True for a missing or blank value: Compose passes `${VAR:-}` through as ""."""
    return value is None or (isinstance(value, str) and not value.strip())


def secret_setting_names(settings_class: type[BaseSettings]) -> list[str]:
    """The settings typed `SecretStr` (or `SecretStr | None`): the ones a file may hold."""
    return [
        name
        for name, field in settings_class.model_fields.items()
        if field.annotation is SecretStr or SecretStr in get_args(field.annotation)
    ]


def without_one_trailing_newline(text: str) -> str:
    """The text minus one final "\\n" or "\\r\\n", which editors and `echo` leave behind."""
    if text.endswith("\r\n"):
        return text[:-2]
    return text.removesuffix("\n")


def read_secret_file(variable: str, path: str | os.PathLike[str]) -> str:
    """The secret held in the file `variable` names; errors name both, never the content."""
    context = {"variable": variable, "path": str(path)}
    try:
        # Bytes, not read_text: universal newlines would rewrite a "\r" inside the secret.
        content = Path(path).read_bytes()
    except OSError as error:
        raise PydanticCustomError(
            "secret_file_unreadable",
            "{variable}={path} cannot be read ({reason}); mount the secret file there, "
            "readable by uid {uid}",
            {**context, "reason": error.strerror or type(error).__name__, "uid": os.getuid()},
        ) from None
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError:
        # The decoder's own message quotes the offending byte: part of the secret.
        raise PydanticCustomError(
            "secret_file_not_text", "{variable}={path} is not UTF-8 text", context
        ) from None
    return without_one_trailing_newline(text)


class SharedSettings(BaseSettings):
    """What both services read; all the callback receiver reads.

    Keeping PostgreSQL out of it lets the internet-facing callback container run without
    any database credentials.
    """

    model_config = SettingsConfigDict(
        # Case-sensitive so only the documented uppercase names count; others are ignored.
        case_sensitive=True,
        extra="ignore",
        # A model-level error's input is every raw value, passwords included: never print it.
        hide_input_in_errors=True,
    )

    REDIS_HOST: str = "redis"
    REDIS_PORT: int = Field(default=6379, ge=1, le=65535)
    # Each service logs in as a Redis user of its own (ACL), allowed only what it needs;
    # unset means Redis' `default` user.
    REDIS_USER: str | None = None
    REDIS_PASSWORD: SecretStr | None = None
    REDIS_PASSWORD_FILE: Path | None = None

    APP_ENV: Environment
    APP_DEBUG: bool = False
    # Deliberately not SSL_CERT_FILE: OpenSSL, uv and httpx read that name as a CA bundle.
    APP_TLS_CERT_FILE: Path | None = None
    APP_TLS_KEY_FILE: Path | None = None

    OAUTH_CODE_TTL_SECONDS: int = Field(default=600, gt=0)
    OAUTH_STATE_TTL_SECONDS: int = Field(default=600, gt=0)
    # Requests a minute one client address may send to an endpoint that answers anyone.
    RATE_LIMIT_PER_MINUTE: int = Field(default=30, gt=0)
    DEPENDENCY_TIMEOUT_SECONDS: float = Field(default=2.0, gt=0)

    @model_validator(mode="before")
    @classmethod
    def _read_secret_files(cls, data: Any) -> Any:
        """Fill each secret from the file its `<NAME>_FILE` names, before the fields are checked.

        Both set is refused rather than one silently winning; an empty file means "not set"
        (an error for a required secret, as an empty variable is).
        """
        if not isinstance(data, dict):
            return data
        data = dict(data)
        for name in secret_setting_names(cls):
            variable = name + FILE_VARIABLE_SUFFIX
            path = data.get(variable)
            if is_unset(path):
                data[variable] = None
                continue
            context = {"name": name, "variable": variable, "path": str(path)}
            if not is_unset(data.get(name)):
                raise PydanticCustomError(
                    "secret_set_twice", "set {name} or {variable}, not both", context
                )
            secret = read_secret_file(variable, path)
            if secret:
                data[name] = secret
            elif cls.model_fields[name].is_required():
                raise PydanticCustomError(
                    "secret_file_empty", "{variable}={path} is empty; write {name} into it", context
                )
        return data

    @field_validator(
        "REDIS_USER", "REDIS_PASSWORD", "APP_TLS_CERT_FILE", "APP_TLS_KEY_FILE", mode="before"
    )
    @classmethod
    def _empty_means_unset(cls, value: Any) -> Any:
        return None if is_unset(value) else value

    @model_validator(mode="after")
    def _tls_files_come_in_pairs(self) -> Self:
        if (self.APP_TLS_CERT_FILE is None) != (self.APP_TLS_KEY_FILE is None):
            raise ValueError("set both APP_TLS_CERT_FILE and APP_TLS_KEY_FILE, or neither")
        return self

    @property
    def tls_enabled(self) -> bool:
        """True when the services serve HTTPS with the configured certificate and key."""
        return self.APP_TLS_CERT_FILE is not None and self.APP_TLS_KEY_FILE is not None


class Settings(SharedSettings):
    """The API's settings (and the migrations'): the shared ones plus PostgreSQL."""

    POSTGRES_HOST: str = "postgres"
    POSTGRES_PORT: int = Field(default=5432, ge=1, le=65535)
    POSTGRES_USER: str = Field(min_length=1)
    POSTGRES_PASSWORD: SecretStr
    POSTGRES_PASSWORD_FILE: Path | None = None
    POSTGRES_DB: str = Field(min_length=1)

    # The providers a flow may start for, and how many states a window of
    # OAUTH_STATE_TTL_SECONDS may issue (what bounds Redis' memory; see src/oauth_states.py).
    OAUTH_PROVIDERS: frozenset[str] = frozenset({"schwab"})
    OAUTH_STATE_BUDGET: int = Field(default=10_000, gt=0)

    @field_validator("POSTGRES_PASSWORD")
    @classmethod
    def _password_is_not_empty(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value():
            raise ValueError("must not be empty")
        return value


@lru_cache
def get_settings() -> Settings:
    """The API's settings, read once (clear with `get_settings.cache_clear()`)."""
    return Settings()  # type: ignore[call-arg]  # required fields come from the environment


@lru_cache
def get_shared_settings() -> SharedSettings:
    """The callback receiver's settings, read once (`get_shared_settings.cache_clear()`)."""
    return SharedSettings()  # type: ignore[call-arg]  # required fields come from the environment
