"""The OAuth callback receiver: validation, issued states only, single use, the per-client
budget, Redis outages."""

from __future__ import annotations

import logging

import pytest
from fastapi.testclient import TestClient

from src import __version__
from src.callback import (
    CODE_MAX_LENGTH,
    ERROR_MAX_LENGTH,
    QUERY_MAX_BYTES,
    STATE_MAX_LENGTH,
    RedactCodeInAccessLog,
    redact_code,
)
from src.callback import app as callback_app
from src.settings import get_shared_settings
from tests.unit.conftest import FakeOAuthStates

pytestmark = pytest.mark.usefixtures("settings_environment")


def test_liveness_names_the_callback_service(callback_client: TestClient) -> None:
    response = callback_client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "service": "callback", "version": __version__}


def test_in_production_liveness_names_nothing_but_up(
    settings_environment, callback_client: TestClient
) -> None:
    settings_environment.setenv("APP_ENV", "production")
    get_shared_settings.cache_clear()
    response = callback_client.get("/health")
    assert (response.status_code, response.json()) == (200, {"status": "ok"}), response.text


def issued(oauth_states: FakeOAuthStates, *states: str, provider: str = "schwab") -> None:
    """States as the API would have issued them."""
    oauth_states.states.update(dict.fromkeys(states, provider))


def test_a_callback_for_an_issued_state_stores_the_code_with_the_configured_ttl(
    callback_client: TestClient, oauth_states: FakeOAuthStates
) -> None:
    issued(oauth_states, "s-1")
    response = callback_client.get("/oauth/callback", params={"code": "abc/123", "state": "s-1"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/html")
    assert "Authorization received, you can close this window" in response.text
    assert response.headers["cache-control"] == "no-store"
    ttl = get_shared_settings().OAUTH_CODE_TTL_SECONDS
    assert oauth_states.codes == {"s-1": ("schwab", "abc/123", ttl)}
    assert oauth_states.states == {}, "the state is used up"


def test_the_ttl_comes_from_oauth_code_ttl_seconds(
    settings_environment, callback_client: TestClient, oauth_states: FakeOAuthStates
) -> None:
    settings_environment.setenv("OAUTH_CODE_TTL_SECONDS", "42")
    issued(oauth_states, "s")
    callback_client.get("/oauth/callback", params={"code": "c", "state": "s"})
    assert oauth_states.codes["s"] == ("schwab", "c", 42)


def test_a_state_no_one_issued_gets_400_and_nothing_is_stored(
    callback_client: TestClient, oauth_states: FakeOAuthStates, caplog: pytest.LogCaptureFixture
) -> None:
    issued(oauth_states, "issued-one")
    with caplog.at_level(logging.WARNING, logger="src.callback"):
        response = callback_client.get(
            "/oauth/callback", params={"code": "attacker-code", "state": "never-issued"}
        )
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("text/html")
    assert "Start the sign-in again" in response.text
    assert oauth_states.codes == {}
    assert oauth_states.states == {"issued-one": "schwab"}
    assert not [record for record in caplog.records if "attacker-code" in record.getMessage()]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"state": "s"}, "missing query parameter 'code'"),
        ({"code": "", "state": "s"}, "missing query parameter 'code'"),
        ({"code": "c"}, "missing query parameter 'state'"),
        ({"code": "c", "state": ""}, "missing query parameter 'state'"),
        (
            {"code": "c" * (CODE_MAX_LENGTH + 1), "state": "s"},
            f"'code' is longer than {CODE_MAX_LENGTH} characters",
        ),
        (
            {"code": "c", "state": "s" * (STATE_MAX_LENGTH + 1)},
            f"'state' is longer than {STATE_MAX_LENGTH} characters",
        ),
        ({"code": "c", "state": "a b"}, "'state' may only contain letters, digits and - _ . ~"),
        ({"code": "c", "state": "a/b"}, "'state' may only contain letters, digits and - _ . ~"),
        ({"code": "c", "state": "<script>"}, "'state' may only contain"),
        ({"error": "access_denied", "state": "s"}, "did not authorize the request"),
        (
            {"error": "e" * (ERROR_MAX_LENGTH + 1), "state": "s"},
            f"'error' is longer than {ERROR_MAX_LENGTH} characters",
        ),
        (
            {"code": "c", "state": "s", "error": "e" * (ERROR_MAX_LENGTH + 1)},
            f"'error' is longer than {ERROR_MAX_LENGTH} characters",
        ),
    ],
    ids=[
        "code is missing",
        "code is empty",
        "state is missing",
        "state is empty",
        "code is oversized",
        "state is oversized",
        "state has a space",
        "state has a slash",
        "state has markup",
        "the provider reports an error",
        "error is oversized",
        "error is oversized beside a code",
    ],
)
def test_a_bad_callback_is_rejected_with_a_clear_message(
    callback_client: TestClient, oauth_states: FakeOAuthStates, params: dict, message: str
) -> None:
    issued(oauth_states, "s")
    response = callback_client.get("/oauth/callback", params=params)
    assert response.status_code == 400, response.text
    assert message in response.json()["detail"]
    assert oauth_states.codes == {}
    assert oauth_states.states == {"s": "schwab"}, "a rejected redirect does not use the state"


def test_the_longest_allowed_code_and_state_are_accepted(
    callback_client: TestClient, oauth_states: FakeOAuthStates
) -> None:
    params = {"code": "c" * CODE_MAX_LENGTH, "state": "Az09_-.~" * (STATE_MAX_LENGTH // 8)}
    issued(oauth_states, params["state"])
    assert callback_client.get("/oauth/callback", params=params).status_code == 200


def test_the_error_bound_echoes_the_longest_allowed_error_and_refuses_one_more(
    callback_client: TestClient,
) -> None:
    longest = "e" * ERROR_MAX_LENGTH
    response = callback_client.get("/oauth/callback", params={"error": longest, "state": "s"})
    assert response.status_code == 400, response.text
    assert response.json()["detail"] == (
        f"the provider did not authorize the request: error={longest}"
    )
    response = callback_client.get("/oauth/callback", params={"error": longest + "e", "state": "s"})
    assert response.status_code == 400, response.text
    assert response.json()["detail"] == (
        f"query parameter 'error' is longer than {ERROR_MAX_LENGTH} characters"
    )


def query_of_length(length: int) -> str:
    """A valid callback query padded to `length` bytes with a parameter nobody reads."""
    query = "code=c&state=s&error_description="
    return query + "x" * (length - len(query))


def test_a_query_string_over_the_bound_is_refused_at_the_first_byte_too_many(
    callback_client: TestClient, oauth_states: FakeOAuthStates
) -> None:
    issued(oauth_states, "s")
    longest = callback_client.get(f"/oauth/callback?{query_of_length(QUERY_MAX_BYTES)}")
    assert longest.status_code == 200, longest.text
    oauth_states.codes.clear()
    issued(oauth_states, "s")
    response = callback_client.get(f"/oauth/callback?{query_of_length(QUERY_MAX_BYTES + 1)}")
    assert response.status_code == 414, response.text
    assert response.json() == {"detail": f"the query string is longer than {QUERY_MAX_BYTES} bytes"}
    assert oauth_states.codes == {}


def test_a_state_serves_one_redirect_and_a_replay_gets_400(
    callback_client: TestClient, oauth_states: FakeOAuthStates, caplog: pytest.LogCaptureFixture
) -> None:
    issued(oauth_states, "s-1")
    first = callback_client.get("/oauth/callback", params={"code": "first-code", "state": "s-1"})
    assert first.status_code == 200, first.text
    with caplog.at_level(logging.WARNING, logger="src.callback"):
        second = callback_client.get(
            "/oauth/callback", params={"code": "second-code", "state": "s-1"}
        )
    assert second.status_code == 400, second.text
    assert "unknown, expired or already completed" in second.text
    assert second.headers["cache-control"] == "no-store"
    assert second.headers["referrer-policy"] == "no-referrer"
    ttl = get_shared_settings().OAUTH_CODE_TTL_SECONDS
    assert oauth_states.codes == {"s-1": ("schwab", "first-code", ttl)}
    warnings = [record.getMessage() for record in caplog.records if record.name == "src.callback"]
    assert len(warnings) == 1, warnings
    assert "state s-1 is not one the API issued and left open" in warnings[0]
    logged = [record.getMessage() for record in caplog.records]
    assert not [line for line in logged if "first-code" in line or "second-code" in line]


def test_one_address_past_its_budget_gets_429_with_retry_after_and_others_do_not(
    settings_environment, callback_client: TestClient, oauth_states: FakeOAuthStates
) -> None:
    settings_environment.setenv("RATE_LIMIT_PER_MINUTE", "3")
    issued(oauth_states, *(f"s-{n}" for n in range(5)))
    answers = [
        callback_client.get("/oauth/callback", params={"code": "c", "state": f"s-{n}"})
        for n in range(4)
    ]
    assert [answer.status_code for answer in answers] == [200, 200, 200, 429]
    assert 1 <= int(answers[-1].headers["retry-after"]) <= 60
    assert "s-3" in oauth_states.states, "a refused request touches no state"
    with TestClient(callback_app, client=("203.0.113.9", 50000)) as elsewhere:
        other = elsewhere.get("/oauth/callback", params={"code": "c", "state": "s-4"})
    assert other.status_code == 200, other.text


def test_the_callback_needs_no_database_credentials(
    settings_environment, callback_client: TestClient, oauth_states: FakeOAuthStates
) -> None:
    for name in ("POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB"):
        settings_environment.delenv(name)
    issued(oauth_states, "s")
    response = callback_client.get("/oauth/callback", params={"code": "c", "state": "s"})
    assert response.status_code == 200, response.text


def test_a_callback_answers_503_when_redis_is_down(
    callback_client: TestClient, oauth_states: FakeOAuthStates
) -> None:
    oauth_states.failure = ConnectionError("Error 111 connecting to redis:6379")
    response = callback_client.get("/oauth/callback", params={"code": "c", "state": "s"})
    assert response.status_code == 503
    assert "redis unavailable" in response.json()["detail"]


@pytest.mark.parametrize(
    ("path", "logged"),
    [
        ("/oauth/callback?code=secret&state=s", "/oauth/callback?code=[redacted]&state=s"),
        ("/oauth/callback?state=s&code=secret", "/oauth/callback?state=s&code=[redacted]"),
        ("/oauth/callback?state=s&error=x", "/oauth/callback?state=s&error=x"),
        ("/oauth/callback?mycode=x", "/oauth/callback?mycode=x"),
    ],
    ids=["code first", "code last", "no code", "a parameter that only ends in code"],
)
def test_the_access_log_never_shows_an_authorization_code(path: str, logged: str) -> None:
    assert redact_code(path) == logged
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", path, "1.1", 200),
        None,
    )
    assert RedactCodeInAccessLog().filter(record)
    assert logged in record.getMessage()
