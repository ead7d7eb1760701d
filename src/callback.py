"""The OAuth callback receiver: takes the provider's redirect and parks the code in Redis.

`GET /oauth/callback?code=…&state=…` stores the code under `oauth:callback:<state>` for
OAUTH_CODE_TTL_SECONDS, where the API picks it up by the state it issued. A state is
single-use (OWASP OAuth 2.0 cheat sheet): its first code wins, a second one gets 409.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator
from typing import Annotated, Protocol

from fastapi import Depends, FastAPI, Request, status
from fastapi.responses import HTMLResponse, JSONResponse

from src import __version__
from src.connections import redis_client
from src.settings import SharedSettings, get_shared_settings

CODE_MAX_LENGTH = 512
STATE_MAX_LENGTH = 256
# RFC 6749's error codes are short ASCII tokens; the longest it defines has 25 characters.
ERROR_MAX_LENGTH = 64
# The whole percent-encoded query: room for the longest code, state and error, and for what
# providers add (scope, iss), but nothing a caller can pad into the megabytes.
QUERY_MAX_BYTES = 2048
# RFC 3986 unreserved characters: a state we issued never needs anything else.
STATE_PATTERN = re.compile(r"[A-Za-z0-9_.~-]+")
KEY_PREFIX = "oauth:callback:"

RECEIVED_PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Dashtam: authorization received</title></head>
<body><p>Authorization received, you can close this window.</p></body>
</html>
"""
ALREADY_RECEIVED_PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Dashtam: authorization already received</title></head>
<body><p>This authorization was already received. Start the sign-in again.</p></body>
</html>
"""
# The URL carries the code: keep it out of caches and out of any Referer header.
RECEIVED_HEADERS = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}

logger = logging.getLogger(__name__)

# Matches the value of a `code` query parameter in a logged request path.
LOGGED_CODE_PATTERN = re.compile(r"(?<=[?&]code=)[^&]*")


def redact_code(path: str) -> str:
    """The request path with the authorization code replaced, fit for an access log."""
    return LOGGED_CODE_PATTERN.sub("[redacted]", path)


class RedactCodeInAccessLog(logging.Filter):
    """Keep authorization codes out of uvicorn's access log (args: client, method, path, ...)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and len(record.args) >= 3:
            path = record.args[2]
            if isinstance(path, str):
                record.args = (*record.args[:2], redact_code(path), *record.args[3:])
        return True


class CodeStore(Protocol):
    """The part of a Redis client the callback uses (a fake in the unit tests)."""

    async def set(
        self, name: str, value: str, ex: int | None = None, nx: bool = False
    ) -> object: ...


async def code_store(
    settings: Annotated[SharedSettings, Depends(get_shared_settings)],
) -> AsyncIterator[CodeStore]:
    """A fresh Redis client per request, closed afterwards (no stale pool after an outage)."""
    client = redis_client(settings)
    try:
        yield client
    finally:
        await client.aclose()


def callback_key(state: str) -> str:
    """The Redis key the code for `state` is stored under."""
    return f"{KEY_PREFIX}{state}"


async def store_authorization_code(
    store: CodeStore, state: str, code: str, ttl_seconds: int
) -> bool:
    """SET oauth:callback:<state> <code> NX EX <ttl_seconds>; False if the state has a code.

    NX makes the check and the write one atomic step: two racing redirects cannot both win.
    """
    return bool(await store.set(callback_key(state), code, ex=ttl_seconds, nx=True))


def validation_error(code: str | None, state: str | None) -> str | None:
    """Why the query is unusable, in one sentence; None when it is fine."""
    if not code:
        return "missing query parameter 'code': the provider must redirect with ?code=…&state=…"
    if len(code) > CODE_MAX_LENGTH:
        return f"query parameter 'code' is longer than {CODE_MAX_LENGTH} characters"
    if not state:
        return "missing query parameter 'state': the provider must redirect with ?code=…&state=…"
    if len(state) > STATE_MAX_LENGTH:
        return f"query parameter 'state' is longer than {STATE_MAX_LENGTH} characters"
    if not STATE_PATTERN.fullmatch(state):
        return "query parameter 'state' may only contain letters, digits and - _ . ~"
    return None


def bad_request(detail: str) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status.HTTP_400_BAD_REQUEST)


def query_too_long() -> JSONResponse:
    return JSONResponse(
        {"detail": f"the query string is longer than {QUERY_MAX_BYTES} bytes"},
        status_code=status.HTTP_414_URI_TOO_LONG,
    )


app = FastAPI(title="Dashtam OAuth callback", version=__version__)
# uvicorn has configured its loggers by the time it imports this module.
logging.getLogger("uvicorn.access").addFilter(RedactCodeInAccessLog())


@app.get("/health")
def health(settings: Annotated[SharedSettings, Depends(get_shared_settings)]) -> dict[str, str]:
    """Liveness: the process serves HTTP. Touches no dependency. In production it says only
    that (the public port answers anyone; the version would tell them what to aim at)."""
    if settings.APP_ENV == "production":
        return {"status": "ok"}
    return {"status": "ok", "service": "callback", "version": __version__}


@app.get("/oauth/callback", response_model=None)
async def oauth_callback(
    request: Request,
    settings: Annotated[SharedSettings, Depends(get_shared_settings)],
    store: Annotated[CodeStore, Depends(code_store)],
    code: str | None = None,
    state: str | None = None,
    error: str | None = None,
) -> HTMLResponse | JSONResponse:
    """Validate the provider's redirect and store the code for the API; 503 if Redis is down."""
    # Parameters nobody reads (error_description, error_uri, …) are bounded by this alone.
    if len(request.scope["query_string"]) > QUERY_MAX_BYTES:
        return query_too_long()
    if error is not None and len(error) > ERROR_MAX_LENGTH:
        return bad_request(f"query parameter 'error' is longer than {ERROR_MAX_LENGTH} characters")
    if error is not None and not code:
        # The user declined or the provider failed; echo the error only if it is a plain token.
        shown = error if STATE_PATTERN.fullmatch(error) else "unreadable"
        return bad_request(f"the provider did not authorize the request: error={shown}")
    problem = validation_error(code, state)
    if problem is not None:
        return bad_request(problem)
    assert code is not None and state is not None  # validated above; narrows the types
    try:
        stored = await asyncio.wait_for(
            store_authorization_code(store, state, code, settings.OAUTH_CODE_TTL_SECONDS),
            timeout=settings.DEPENDENCY_TIMEOUT_SECONDS,
        )
    except Exception:  # Redis down, slow or refusing: the code cannot be handed over
        return JSONResponse(
            {"detail": "redis unavailable: the authorization code could not be stored, retry"},
            status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
        )
    if not stored:
        # A replayed or second redirect; the state is validated, so it is safe to log.
        logger.warning(
            "oauth callback: state %s already holds an authorization code; refused another",
            state,
        )
        return HTMLResponse(
            ALREADY_RECEIVED_PAGE, status_code=status.HTTP_409_CONFLICT, headers=RECEIVED_HEADERS
        )
    return HTMLResponse(RECEIVED_PAGE, headers=RECEIVED_HEADERS)
