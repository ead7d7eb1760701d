"""Fresh, bounded connections to PostgreSQL and Redis.

Each caller opens its own connection and closes it: nothing is pooled across requests, so a
dependency that comes back is seen on the next request without restarting the process.
"""

from __future__ import annotations

import pg8000.native
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.driver_info import DriverInfo

from src.settings import Settings, SharedSettings


def connect_postgres(settings: Settings) -> pg8000.native.Connection:
    """An open (blocking) connection to the configured database; the caller closes it.

    pg8000 is pure Python: no libpq, OpenSSL or Kerberos libraries in the production image.
    """
    return pg8000.native.Connection(
        host=settings.POSTGRES_HOST,
        port=settings.POSTGRES_PORT,
        user=settings.POSTGRES_USER,
        password=settings.POSTGRES_PASSWORD.get_secret_value(),
        database=settings.POSTGRES_DB,
        # Bounds the connect and every read, so a worker thread never hangs on a dead server.
        timeout=settings.DEPENDENCY_TIMEOUT_SECONDS,
        application_name="dashtam",
    )


def redis_client(settings: SharedSettings) -> Redis:
    """A Redis client with socket timeouts and no retries; the caller closes it (`aclose`)."""
    password = settings.REDIS_PASSWORD.get_secret_value() if settings.REDIS_PASSWORD else None
    return Redis(
        host=settings.REDIS_HOST,
        port=settings.REDIS_PORT,
        username=settings.REDIS_USER,
        password=password,
        socket_connect_timeout=settings.DEPENDENCY_TIMEOUT_SECONDS,
        socket_timeout=settings.DEPENDENCY_TIMEOUT_SECONDS,
        # One attempt: a readiness probe or a callback should fail fast, not back off.
        retry=Retry(NoBackoff(), 0),
        # No CLIENT SETINFO on connect: a service's Redis user is not granted it.
        driver_info=DriverInfo(name=None, lib_version=None),
    )
