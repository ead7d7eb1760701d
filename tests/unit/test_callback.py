"""The OAuth callback receiver: validation, storage with the TTL, single use, Redis outages."""

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
    callback_key,
    redact_code,
)
from src.settings import get_shared_settings
from tests.unit.conftest import FakeCodeStore

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


def test_a_valid_callback_stores_the_code_with_the_configured_ttl(
    callback_client: TestClient, code_store: FakeCodeStore
) -> None:
    response = callback_client.get("/oauth/callback", params={"code": "abc/123", "state": "s-1"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/html")
    assert "Authorization received, you can close this window" in response.text
    assert response.headers["cache-control"] == "no-store"
    ttl = get_shared_settings().OAUTH_CODE_TTL_SECONDS
    assert code_store.entries == {"oauth:callback:s-1": ("abc/123", ttl)}


def test_the_ttl_comes_from_oauth_code_ttl_seconds(
    settings_environment, callback_client: TestClient, code_store: FakeCodeStore
) -> None:
    settings_environment.setenv("OAUTH_CODE_TTL_SECONDS", "42")
    callback_client.get("/oauth/callback", params={"code": "c", "state": "s"})
    assert code_store.entries[callback_key("s")] == ("c", 42)


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
    callback_client: TestClient, code_store: FakeCodeStore, params: dict, message: str
) -> None:
    response = callback_client.get("/oauth/callback", params=params)
    assert response.status_code == 400, response.text
    assert message in response.json()["detail"]
    assert code_store.entries == {}


def test_the_longest_allowed_code_and_state_are_accepted(callback_client: TestClient) -> None:
    params = {"code": "c" * CODE_MAX_LENGTH, "state": "Az09_-.~" * (STATE_MAX_LENGTH // 8)}
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
    callback_client: TestClient, code_store: FakeCodeStore
) -> None:
    longest = callback_client.get(f"/oauth/callback?{query_of_length(QUERY_MAX_BYTES)}")
    assert longest.status_code == 200, longest.text
    code_store.entries.clear()
    response = callback_client.get(f"/oauth/callback?{query_of_length(QUERY_MAX_BYTES + 1)}")
    assert response.status_code == 414, response.text
    assert response.json() == {"detail": f"the query string is longer than {QUERY_MAX_BYTES} bytes"}
    assert code_store.entries == {}


def test_a_state_keeps_its_first_code_and_a_second_delivery_gets_409(
    callback_client: TestClient, code_store: FakeCodeStore, caplog: pytest.LogCaptureFixture
) -> None:
    first = callback_client.get("/oauth/callback", params={"code": "first-code", "state": "s-1"})
    assert first.status_code == 200, first.text
    with caplog.at_level(logging.WARNING, logger="src.callback"):
        second = callback_client.get(
            "/oauth/callback", params={"code": "second-code", "state": "s-1"}
        )
    assert second.status_code == 409, second.text
    assert second.headers["content-type"].startswith("text/html")
    assert "This authorization was already received" in second.text
    assert "Start the sign-in again" in second.text
    assert second.headers["cache-control"] == "no-store"
    assert second.headers["referrer-policy"] == "no-referrer"
    ttl = get_shared_settings().OAUTH_CODE_TTL_SECONDS
    assert code_store.entries == {"oauth:callback:s-1": ("first-code", ttl)}
    warnings = [record.getMessage() for record in caplog.records if record.name == "src.callback"]
    assert len(warnings) == 1, warnings
    assert "state s-1 already holds an authorization code" in warnings[0]
    logged = [record.getMessage() for record in caplog.records]
    assert not [line for line in logged if "first-code" in line or "second-code" in line]


def test_the_callback_needs_no_database_credentials(
    settings_environment, callback_client: TestClient
) -> None:
    for name in ("POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB"):
        settings_environment.delenv(name)
    response = callback_client.get("/oauth/callback", params={"code": "c", "state": "s"})
    assert response.status_code == 200, response.text


def test_a_callback_answers_503_when_redis_is_down(
    callback_client: TestClient, code_store: FakeCodeStore
) -> None:
    code_store.failure = ConnectionError("Error 111 connecting to redis:6379")
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
