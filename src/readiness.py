"""Readiness: can this process reach PostgreSQL and Redis right now?

The checks are plain async functions, handed to the endpoint through `dependency_checks` so
the unit tests can swap them for fakes with `app.dependency_overrides`.

Why a dependency is down always goes to the log. The response carries it only outside
production: a driver's message names users, hosts and databases, and the endpoint answers
whoever can reach it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping

from src.connections import connect_postgres, redis_client
from src.settings import Settings

DependencyCheck = Callable[[Settings], Awaitable[None]]

UP = "up"
DOWN = "down"
REASON_MAX_LENGTH = 120
# Readiness answers whoever reaches the port (the public one in production): one probe of
# the dependencies serves every request for this long, so a flood of requests opens at most
# one connection to each dependency a second.
PROBE_INTERVAL_SECONDS = 1.0

logger = logging.getLogger(__name__)


async def check_postgres(settings: Settings) -> None:
    """Raise unless the database accepts a connection and answers `SELECT 1`."""

    def select_one() -> None:
        connection = connect_postgres(settings)
        try:
            connection.run("SELECT 1")
        finally:
            connection.close()

    # The driver blocks; a worker thread keeps the event loop serving meanwhile.
    await asyncio.to_thread(select_one)


async def check_redis(settings: Settings) -> None:
    """Raise unless Redis answers `PING`."""
    client = redis_client(settings)
    try:
        await client.ping()
    finally:
        await client.aclose()


def dependency_checks() -> dict[str, DependencyCheck]:
    """The checks `/health/ready` runs, by the name it reports them under."""
    return {"postgres": check_postgres, "redis": check_redis}


def describe_failure(error: BaseException, timeout_seconds: float) -> str:
    """A short, single-line reason for a failed check."""
    if isinstance(error, TimeoutError):
        return f"down: no answer within {timeout_seconds:g}s"
    message = str(error).strip().splitlines()
    reason = f"{type(error).__name__}: {message[0]}" if message else type(error).__name__
    if len(reason) > REASON_MAX_LENGTH:
        reason = reason[: REASON_MAX_LENGTH - 1] + "…"
    return f"down: {reason}"


async def probe(check: DependencyCheck, settings: Settings) -> str:
    """Run one check bounded by DEPENDENCY_TIMEOUT_SECONDS; "up" or "down: <reason>"."""
    timeout_seconds = settings.DEPENDENCY_TIMEOUT_SECONDS
    try:
        await asyncio.wait_for(check(settings), timeout=timeout_seconds)
    except Exception as error:  # any failure means "not ready"; the reason says which
        return describe_failure(error, timeout_seconds)
    return UP


async def run_checks(checks: Mapping[str, DependencyCheck], settings: Settings) -> dict[str, str]:
    """Run all checks concurrently; name -> "up", or "down: <reason>" ("down" in production).

    Every failure is logged as one warning line naming the dependency and the reason.
    """
    names = list(checks)
    results = await asyncio.gather(*(probe(checks[name], settings) for name in names))
    reported = {}
    for name, result in zip(names, results, strict=True):
        if result != UP:
            logger.warning("readiness: %s is %s", name, result)
            if settings.APP_ENV == "production":
                result = DOWN
        reported[name] = result
    return reported


class SharedProbe:
    """The last probe's results, reused while they are younger than the interval; requests
    that arrive while a probe runs wait for it instead of starting their own."""

    def __init__(self, interval_seconds: float = PROBE_INTERVAL_SECONDS) -> None:
        self.interval_seconds = interval_seconds
        self._lock: asyncio.Lock | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._probed: tuple[tuple, Settings, float, dict[str, str]] | None = None

    def _lock_of_this_loop(self) -> asyncio.Lock:
        # A lock belongs to one event loop: the server has one, each test client its own.
        loop = asyncio.get_running_loop()
        if self._lock is None or self._loop is not loop:
            self._lock, self._loop = asyncio.Lock(), loop
        return self._lock

    async def results(
        self, checks: Mapping[str, DependencyCheck], settings: Settings
    ) -> dict[str, str]:
        # What was probed: these checks with these very settings (a test swaps either; the
        # object itself is kept, so a new one can never pass for it by reusing its id).
        probed_checks = tuple(checks.items())
        async with self._lock_of_this_loop():
            if self._probed is not None:
                last_checks, last_settings, probed_at, found = self._probed
                if (
                    last_checks == probed_checks
                    and last_settings is settings
                    and time.monotonic() - probed_at < self.interval_seconds
                ):
                    return dict(found)
            found = await run_checks(checks, settings)
            self._probed = (probed_checks, settings, time.monotonic(), found)
            return dict(found)
