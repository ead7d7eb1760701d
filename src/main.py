"""The Dashtam API: liveness at `/health`, readiness at `/health/ready`, and the two ends
of an OAuth flow: `POST /oauth/{provider}/start` issues a state, `POST /oauth/{provider}/code`
hands over the code the callback received for it, once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from typing import Annotated, TypeVar

from fastapi import Depends, FastAPI, HTTPException, Request, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from src import __version__
from src.oauth_states import OAuthStates, oauth_states
from src.rate_limit import ClientRateLimit, enforce
from src.readiness import UP, DependencyCheck, SharedProbe, dependency_checks
from src.settings import Settings, get_settings

SettingsDependency = Annotated[Settings, Depends(get_settings)]
ChecksDependency = Annotated[dict[str, DependencyCheck], Depends(dependency_checks)]
T = TypeVar("T")
StatesDependency = Annotated[OAuthStates, Depends(oauth_states)]
# The states the callback accepts are the ones issued here: as long as a path segment, no more.
STATE_PATTERN = r"^[A-Za-z0-9_-]{1,256}$"


@asynccontextmanager
async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
    # Read the settings at startup so a bad environment stops the server, not the first request.
    get_settings()
    yield


app = FastAPI(title="Dashtam", version=__version__, lifespan=lifespan)
readiness = SharedProbe()
starts = ClientRateLimit()


@app.get("/health")
def health(settings: SettingsDependency) -> dict[str, str]:
    """Liveness: the process serves HTTP. Touches no dependency. In production it says only
    that: the version and environment would tell anyone who reaches the port what to aim at."""
    if settings.APP_ENV == "production":
        return {"status": "ok"}
    return {"status": "ok", "version": __version__, "environment": settings.APP_ENV}


@app.get("/health/ready")
async def ready(settings: SettingsDependency, checks: ChecksDependency) -> JSONResponse:
    """Readiness: PostgreSQL and Redis both answer; 503 naming the ones that do not. One probe
    a second at most, whatever the request rate (see SharedProbe)."""
    results = await readiness.results(checks, settings)
    failed = [name for name, result in results.items() if result != UP]
    if not failed:
        return JSONResponse({"status": "ready", "checks": results})
    return JSONResponse(
        {
            "status": "unavailable",
            "checks": results,
            "detail": f"{' and '.join(failed)} unavailable",
        },
        status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
    )


class Started(BaseModel):
    state: str
    expires_in: int


class CodeRequest(BaseModel):
    state: str = Field(pattern=STATE_PATTERN)


class Code(BaseModel):
    code: str


def known_provider(provider: str, settings: Settings) -> None:
    if provider not in settings.OAUTH_PROVIDERS:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no OAuth provider {provider!r}")


async def unless_redis_fails(settings: Settings, step: Awaitable[T]) -> T:
    try:
        return await asyncio.wait_for(step, timeout=settings.DEPENDENCY_TIMEOUT_SECONDS)
    except Exception:  # Redis down, slow or refusing: the flow cannot go on now
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, detail="redis unavailable: retry"
        ) from None


@app.post("/oauth/{provider}/start", status_code=status.HTTP_201_CREATED)
async def start_oauth_flow(
    provider: str, request: Request, settings: SettingsDependency, states: StatesDependency
) -> Started:
    """Issue a state for a flow with `provider`: the one the callback will accept, once."""
    enforce(starts, request, settings.RATE_LIMIT_PER_MINUTE)
    known_provider(provider, settings)
    ttl = settings.OAUTH_STATE_TTL_SECONDS
    state = await unless_redis_fails(
        settings, states.issue(provider, ttl, settings.OAUTH_STATE_BUDGET)
    )
    if state is None:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            detail="too many sign-ins in progress: retry later",
            headers={"Retry-After": str(ttl)},
        )
    return Started(state=state, expires_in=ttl)


@app.post("/oauth/{provider}/code")
async def take_authorization_code(
    provider: str, body: CodeRequest, settings: SettingsDependency, states: StatesDependency
) -> Code:
    """The code the callback stored for a state issued for `provider`; deleted as it is read."""
    known_provider(provider, settings)
    code = await unless_redis_fails(settings, states.take_code(provider, body.state))
    if code is None:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            detail="no authorization code for this state: not received yet, already read, "
            "or expired",
        )
    return Code(code=code)
