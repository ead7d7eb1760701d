"""The OAuth callback receiver: takes the provider's redirect and parks the code in Redis.

`GET /oauth/callback?code=…&state=…` consumes a state the API issued and stores the code for
the API in the same atomic step (src/oauth_states.py). A state nobody issued, one that
expired, or one already used gets 400 and writes nothing: whoever learns a state cannot
store a code of their own under it, and a replayed redirect is refused. Each client address
has a request budget (429 with Retry-After past it).
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Annotated

from fastapi import Depends, FastAPI, Request, status
from fastapi.responses import HTMLResponse, JSONResponse

from src import __version__
from src.oauth_states import OAuthStates, oauth_states
from src.rate_limit import ClientRateLimit, enforce
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

RECEIVED_PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Dashtam: authorization received</title></head>
<body><p>Authorization received, you can close this window.</p></body>
</html>
"""
UNKNOWN_STATE_PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Dashtam: sign-in not recognised</title></head>
<body><p>This sign-in is unknown, expired or already completed. Start the sign-in again.</p></body>
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
redirects = ClientRateLimit()
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
    states: Annotated[OAuthStates, Depends(oauth_states)],
    code: str | None = None,
    state: str | None = None,
    error: str | None = None,
) -> HTMLResponse | JSONResponse:
    """Validate the provider's redirect and store the code for the API; 503 if Redis is down."""
    enforce(redirects, request, settings.RATE_LIMIT_PER_MINUTE)
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
            states.consume(state, code, settings.OAUTH_CODE_TTL_SECONDS),
            timeout=settings.DEPENDENCY_TIMEOUT_SECONDS,
        )
    except Exception:  # Redis down, slow or refusing: the code cannot be handed over
        return JSONResponse(
            {"detail": "redis unavailable: the authorization code could not be stored, retry"},
            status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
        )
    if not stored:
        # Never issued, expired or replayed; the state is validated, so it is safe to log.
        logger.warning("oauth callback: state %s is not one the API issued and left open", state)
        return HTMLResponse(
            UNKNOWN_STATE_PAGE, status_code=status.HTTP_400_BAD_REQUEST, headers=RECEIVED_HEADERS
        )
    return HTMLResponse(RECEIVED_PAGE, headers=RECEIVED_HEADERS)
