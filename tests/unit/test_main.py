"""The API's liveness, readiness and OAuth endpoints, with their dependencies replaced."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest
from fastapi.testclient import TestClient

from src import __version__
from src.main import app
from src.readiness import PROBE_INTERVAL_SECONDS, dependency_checks, probe
from src.settings import Settings, get_settings
from tests.unit.conftest import FakeOAuthStates, clear_cached_settings

pytestmark = pytest.mark.usefixtures("settings_environment")


async def answers(_settings: Settings) -> None:
    return None


async def refuses(_settings: Settings) -> None:
    raise ConnectionRefusedError("[Errno 111] Connection refused")


async def hangs(_settings: Settings) -> None:
    await asyncio.sleep(10)


# What a driver says when the credentials are wrong: it names the database user.
DRIVER_TEXT = 'password authentication failed for user "dashtam"'


async def refuses_the_password(_settings: Settings) -> None:
    raise RuntimeError(DRIVER_TEXT)


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


def readiness_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == "src.readiness" and record.levelno == logging.WARNING
    ]


def test_in_production_readiness_logs_the_driver_text_and_answers_only_down(
    settings_environment, app_client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    settings_environment.setenv("APP_ENV", "production")
    clear_cached_settings()
    use_checks(postgres=refuses_the_password, redis=answers)
    with caplog.at_level(logging.WARNING, logger="src.readiness"):
        response = app_client.get("/health/ready")
    assert response.status_code == 503, response.text
    assert response.json() == {
        "status": "unavailable",
        "checks": {"postgres": "down", "redis": "up"},
        "detail": "postgres unavailable",
    }
    assert "password authentication" not in response.text
    assert readiness_warnings(caplog) == [
        f"readiness: postgres is down: RuntimeError: {DRIVER_TEXT}"
    ]


@pytest.mark.parametrize("environment", ["development", "test", "ci"], ids=str)
def test_outside_production_readiness_shows_the_driver_text_and_logs_it(
    settings_environment,
    app_client: TestClient,
    caplog: pytest.LogCaptureFixture,
    environment: str,
) -> None:
    settings_environment.setenv("APP_ENV", environment)
    clear_cached_settings()
    use_checks(postgres=answers, redis=refuses_the_password)
    with caplog.at_level(logging.WARNING, logger="src.readiness"):
        response = app_client.get("/health/ready")
    assert response.status_code == 503, response.text
    assert response.json()["checks"] == {
        "postgres": "up",
        "redis": f"down: RuntimeError: {DRIVER_TEXT}",
    }
    assert readiness_warnings(caplog) == [f"readiness: redis is down: RuntimeError: {DRIVER_TEXT}"]


def test_in_production_liveness_names_no_version_or_environment(
    settings_environment, app_client: TestClient
) -> None:
    settings_environment.setenv("APP_ENV", "production")
    clear_cached_settings()
    response = app_client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}, response.text


def test_a_flood_of_readiness_requests_probes_each_dependency_at_most_once_a_second(
    app_client: TestClient,
) -> None:
    probes = {"postgres": 0, "redis": 0}

    def counting(name: str):
        async def check(_settings: Settings) -> None:
            probes[name] += 1

        return check

    use_checks(postgres=counting("postgres"), redis=counting("redis"))
    started = time.monotonic()
    answered = [app_client.get("/health/ready").status_code for _ in range(300)]
    seconds = time.monotonic() - started
    assert set(answered) == {200}, answered
    # One probe for the first request, then at most one more for each second that passed.
    allowed = 1 + int(seconds / PROBE_INTERVAL_SECONDS)
    assert all(count <= allowed for count in probes.values()), (
        f"{len(answered)} requests in {seconds:.2f} s probed {probes}; expected at most "
        f"{allowed} each"
    )


def test_readiness_probes_again_once_its_answer_is_a_second_old(app_client: TestClient) -> None:
    probes = []

    async def check(_settings: Settings) -> None:
        probes.append(time.monotonic())

    use_checks(postgres=check, redis=answers)
    app_client.get("/health/ready")
    app_client.get("/health/ready")
    assert len(probes) == 1, "a second request within the interval probed again"
    time.sleep(PROBE_INTERVAL_SECONDS + 0.05)
    app_client.get("/health/ready")
    assert len(probes) == 2, "a request after the interval answered from an old probe"


def test_starting_a_flow_issues_a_state_bound_to_the_provider(
    app_client: TestClient, oauth_states: FakeOAuthStates
) -> None:
    response = app_client.post("/oauth/schwab/start")
    assert response.status_code == 201, response.text
    state = response.json()["state"]
    assert response.json()["expires_in"] == get_settings().OAUTH_STATE_TTL_SECONDS
    assert oauth_states.states == {state: "schwab"}


def test_a_flow_for_an_unknown_provider_is_refused(
    app_client: TestClient, oauth_states: FakeOAuthStates
) -> None:
    response = app_client.post("/oauth/nobody/start")
    assert response.status_code == 404, response.text
    assert response.json()["detail"] == "no OAuth provider 'nobody'"
    assert oauth_states.states == {}


def test_the_state_budget_spent_answers_503_with_retry_after(
    settings_environment, app_client: TestClient, oauth_states: FakeOAuthStates
) -> None:
    settings_environment.setenv("OAUTH_STATE_BUDGET", "2")
    clear_cached_settings()
    statuses = [app_client.post("/oauth/schwab/start").status_code for _ in range(3)]
    assert statuses == [201, 201, 503]
    refused = app_client.post("/oauth/schwab/start")
    assert refused.headers["retry-after"] == str(get_settings().OAUTH_STATE_TTL_SECONDS)
    assert len(oauth_states.states) == 2


def test_starts_from_one_address_past_its_budget_get_429(
    settings_environment, app_client: TestClient
) -> None:
    settings_environment.setenv("RATE_LIMIT_PER_MINUTE", "2")
    clear_cached_settings()
    statuses = [app_client.post("/oauth/schwab/start").status_code for _ in range(3)]
    assert statuses == [201, 201, 429]


def test_the_code_is_handed_over_once_for_its_provider(
    app_client: TestClient, oauth_states: FakeOAuthStates
) -> None:
    state = app_client.post("/oauth/schwab/start").json()["state"]
    asyncio.run(oauth_states.consume(state, "the-code", 600))
    first = app_client.post("/oauth/schwab/code", json={"state": state})
    assert (first.status_code, first.json()) == (200, {"code": "the-code"}), first.text
    again = app_client.post("/oauth/schwab/code", json={"state": state})
    assert again.status_code == 404, again.text
    assert "already read" in again.json()["detail"]


def test_a_code_is_not_handed_over_for_a_state_of_another_provider(
    settings_environment, app_client: TestClient, oauth_states: FakeOAuthStates
) -> None:
    settings_environment.setenv("OAUTH_PROVIDERS", '["schwab", "other"]')
    clear_cached_settings()
    oauth_states.codes["s"] = ("schwab", "the-code", 600)
    response = app_client.post("/oauth/other/code", json={"state": "s"})
    assert response.status_code == 404, response.text
    assert oauth_states.codes == {}, "read once, whoever asked"


def test_the_oauth_endpoints_answer_503_when_redis_is_down(
    app_client: TestClient, oauth_states: FakeOAuthStates
) -> None:
    oauth_states.failure = ConnectionError("Error 111 connecting to redis:6379")
    assert app_client.post("/oauth/schwab/start").status_code == 503
    assert app_client.post("/oauth/schwab/code", json={"state": "s"}).status_code == 503
