"""Runtime settings, read from environment variables with exactly these uppercase names.

There is no env file here on purpose: compose (or the operator) supplies the environment,
so what the container sees is what `docker compose config` shows.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, Self

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

Environment = Literal["development", "test", "ci", "production"]


class SharedSettings(BaseSettings):
    """What both services read; all the callback receiver reads.

    Keeping PostgreSQL out of it lets the internet-facing callback container run without
    any database credentials.
    """

    # Case-sensitive so only the documented uppercase names count; other variables are ignored.
    model_config = SettingsConfigDict(case_sensitive=True, extra="ignore")

    REDIS_HOST: str = "redis"
    REDIS_PORT: int = Field(default=6379, ge=1, le=65535)
    REDIS_PASSWORD: SecretStr | None = None

    APP_ENV: Environment
    APP_DEBUG: bool = False
    # Deliberately not SSL_CERT_FILE: OpenSSL, uv and httpx read that name as a CA bundle.
    APP_TLS_CERT_FILE: Path | None = None
    APP_TLS_KEY_FILE: Path | None = None

    OAUTH_CODE_TTL_SECONDS: int = Field(default=600, gt=0)
    DEPENDENCY_TIMEOUT_SECONDS: float = Field(default=2.0, gt=0)

    @field_validator("REDIS_PASSWORD", "APP_TLS_CERT_FILE", "APP_TLS_KEY_FILE", mode="before")
    @classmethod
    def _empty_means_unset(cls, value: Any) -> Any:
        # Compose passes `${VAR:-}` through as an empty string; treat it as "not set".
        if isinstance(value, str) and not value.strip():
            return None
        return value

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
    POSTGRES_DB: str = Field(min_length=1)

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
