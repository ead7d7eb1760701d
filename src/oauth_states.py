"""OAuth states in Redis: issued by the API, consumed once by the callback, read once.

A code is stored only under a state the API issued (OWASP OAuth 2.0 cheat sheet: the state
binds the redirect to the flow that started it), so whoever learns a state cannot park a
code of their own under a state that was never issued, and a state serves one redirect.

Keys (each service's Redis user is granted exactly its prefixes; see pipeline/redis_users.py):
  oauth:state:<state>  the provider the state was issued for, for OAUTH_STATE_TTL_SECONDS
  oauth:code:<state>   "<provider>\\n<code>", for OAUTH_CODE_TTL_SECONDS, until the API reads it
  oauth:issued         how many states the current budget window issued

Memory is bounded by issuing, not by eviction: at most OAUTH_STATE_BUDGET states a window
of OAUTH_STATE_TTL_SECONDS, each living one window at most, so no more than twice the
budget are outstanding, and a code exists only where a state was consumed. A flood of
redirects with states nobody issued writes nothing at all.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends
from redis.asyncio import Redis

from src.connections import redis_client
from src.settings import SharedSettings, get_shared_settings

STATE_PREFIX = "oauth:state:"
CODE_PREFIX = "oauth:code:"
ISSUED_KEY = "oauth:issued"
# 32 random bytes, URL-safe: 43 characters of RFC 3986's unreserved set.
STATE_BYTES = 32

# The state must exist and goes; the code is stored in the same step. Redis runs a script
# as one command, so two redirects racing for one state cannot both get past the GETDEL.
CONSUME_SCRIPT = """
local provider = redis.call('GETDEL', KEYS[1])
if not provider then
  return 0
end
redis.call('SET', KEYS[2], provider .. '\\n' .. ARGV[1], 'EX', ARGV[2])
return 1
"""


def state_key(state: str) -> str:
    return f"{STATE_PREFIX}{state}"


def code_key(state: str) -> str:
    return f"{CODE_PREFIX}{state}"


class OAuthStates:
    """The three steps of a flow, on one Redis connection (a fake in the unit tests)."""

    def __init__(self, client: Redis) -> None:
        self.client = client

    async def issue(self, provider: str, ttl_seconds: int, budget: int) -> str | None:
        """A fresh state bound to `provider`; None when this window's budget is spent."""
        async with self.client.pipeline(transaction=True) as transaction:
            transaction.incr(ISSUED_KEY)
            # The window starts with its first state; NX keeps later ones from extending it.
            transaction.expire(ISSUED_KEY, ttl_seconds, nx=True)
            issued, _ = await transaction.execute()
        if issued > budget:
            return None
        state = secrets.token_urlsafe(STATE_BYTES)
        await self.client.set(state_key(state), provider, ex=ttl_seconds, nx=True)
        return state

    async def consume(self, state: str, code: str, ttl_seconds: int) -> bool:
        """Store `code` for the API if `state` was issued and not yet used; the state goes."""
        keys_and_arguments = (state_key(state), code_key(state), code, ttl_seconds)
        return bool(await self.client.eval(CONSUME_SCRIPT, 2, *keys_and_arguments))

    async def take_code(self, provider: str, state: str) -> str | None:
        """The code stored for `state`, once: it is deleted as it is read. None when there is
        none, or when the state was issued for another provider."""
        stored = await self.client.getdel(code_key(state))
        if stored is None:
            return None
        bound, _, code = stored.decode().partition("\n")
        return code if bound == provider else None


async def oauth_states(
    settings: Annotated[SharedSettings, Depends(get_shared_settings)],
) -> AsyncIterator[OAuthStates]:
    """A fresh Redis client per request, closed afterwards (no stale pool after an outage)."""
    client = redis_client(settings)
    try:
        yield OAuthStates(client)
    finally:
        await client.aclose()
