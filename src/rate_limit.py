"""A request budget per client address, for the endpoints that answer anyone.

A fixed window a minute long, counted in this process (each service runs one uvicorn
process): a flood from one address is refused with 429 and `Retry-After` before it costs a
Redis round trip. The table of addresses is bounded too, forgetting the oldest windows
first, so a flood from many addresses costs memory that does not grow.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable

from fastapi import HTTPException, Request, status

WINDOW_SECONDS = 60.0
MAX_CLIENTS = 10_000


class ClientRateLimit:
    """At most `limit` requests per window from one address."""

    def __init__(
        self,
        window_seconds: float = WINDOW_SECONDS,
        max_clients: int = MAX_CLIENTS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.window_seconds = window_seconds
        self.max_clients = max_clients
        self.clock = clock
        # address -> (start of its window, requests in it); oldest window first.
        self._windows: OrderedDict[str, tuple[float, int]] = OrderedDict()

    def retry_after(self, address: str, limit: int) -> int | None:
        """Count one request from `address`: None if it is within the limit, else the whole
        seconds until its window ends."""
        now = self.clock()
        started, count = self._windows.get(address, (now, 0))
        if now - started >= self.window_seconds:
            started, count = now, 0
        if count == 0:
            self._windows.pop(address, None)
        self._windows[address] = (started, count + 1)
        while len(self._windows) > self.max_clients:
            self._windows.popitem(last=False)
        if count < limit:
            return None
        return max(1, math.ceil(started + self.window_seconds - now))

    def clear(self) -> None:
        self._windows.clear()


def enforce(limiter: ClientRateLimit, request: Request, limit: int) -> None:
    """Raise 429 with Retry-After when the client of `request` is over `limit`."""
    address = request.client.host if request.client else "unknown"
    wait = limiter.retry_after(address, limit)
    if wait is not None:
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            detail=f"too many requests from this address: retry in {wait} s",
            headers={"Retry-After": str(wait)},
        )
