"""The API's liveness and readiness endpoints, with the dependency checks replaced."""

from __future__ import annotations

import asyncio

import pytest
from fastapi.testclient import TestClient

from src import __version__
from src.main import app
from src.readiness import dependency_checks, probe
from src.settings import Settings, get_settings

pytestmark = pytest.mark.usefixtures("settings_environment")


async def answers(_settings: Settings) -> None:
    return None


async def refuses(_settings: Settings) -> None:
    raise ConnectionRefusedError("[Errno 111] Connection refused")


async def hangs(_settings: Settings) -> None:
    await asyncio.sleep(10)


def use_checks(**checks) -> None:
    app.dependency_overrides[dependency_checks] = lambda: checks


def test_liveness_answers_ok_with_the_version_and_environment(app_client: TestClient) -> None:
    response = app_client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "version": __version__, "environment": "test"}


def test_liveness_touches_no_dependency(app_client: TestClient) -> None:
    use_checks(postgres=refuses, redis=refuses)
    assert app_client.get("/health").status_code == 200


def test_readiness_is_ready_when_postgres_and_redis_answer(app_client: TestClient) -> None:
    use_checks(postgres=answers, redis=answers)
    response = app_client.get("/health/ready")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "checks": {"postgres": "up", "redis": "up"}}


@pytest.mark.parametrize(
    ("postgres", "redis", "detail"),
    [
        (refuses, answers, "postgres unavailable"),
        (answers, refuses, "redis unavailable"),
        (refuses, refuses, "postgres and redis unavailable"),
    ],
    ids=["postgres is down", "redis is down", "both are down"],
)
def test_readiness_answers_503_naming_what_is_down(
    app_client: TestClient, postgres, redis, detail: str
) -> None:
    use_checks(postgres=postgres, redis=redis)
    response = app_client.get("/health/ready")
    body = response.json()
    assert response.status_code == 503, body
    assert body["status"] == "unavailable"
    assert body["detail"] == detail
    for name, check in (("postgres", postgres), ("redis", redis)):
        expected = "up" if check is answers else "down: ConnectionRefusedError: [Errno 111]"
        assert body["checks"][name].startswith(expected), f"{name}: {body['checks'][name]}"


def test_a_check_that_hangs_is_cut_off_at_the_dependency_timeout(settings_environment) -> None:
    settings_environment.setenv("DEPENDENCY_TIMEOUT_SECONDS", "0.05")
    result = asyncio.run(probe(hangs, get_settings()))
    assert result == "down: no answer within 0.05s"


def test_a_long_failure_message_is_shortened_to_one_line() -> None:
    async def rambles(_settings: Settings) -> None:
        raise RuntimeError("x" * 500 + "\nsecond line")

    result = asyncio.run(probe(rambles, get_settings()))
    assert result.startswith("down: RuntimeError: xxx")
    assert "\n" not in result
    assert len(result) <= len("down: ") + 120


def test_readiness_runs_the_postgres_and_redis_checks_by_default() -> None:
    assert set(dependency_checks()) == {"postgres", "redis"}
