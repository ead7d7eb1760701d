"""The Dashtam API: liveness at `/health`, readiness at `/health/ready`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Depends, FastAPI, status
from fastapi.responses import JSONResponse

from src import __version__
from src.readiness import UP, DependencyCheck, SharedProbe, dependency_checks
from src.settings import Settings, get_settings

SettingsDependency = Annotated[Settings, Depends(get_settings)]
ChecksDependency = Annotated[dict[str, DependencyCheck], Depends(dependency_checks)]


@asynccontextmanager
async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
    # Read the settings at startup so a bad environment stops the server, not the first request.
    get_settings()
    yield


app = FastAPI(title="Dashtam", version=__version__, lifespan=lifespan)
readiness = SharedProbe()


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
