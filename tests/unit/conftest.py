"""Unit-test fixtures: a clean environment, and test clients whose dependencies are fakes.

Nothing here needs Docker, a database or the network.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

import src.oauth_states
from src import callback, main
from src.settings import Settings, get_settings, get_shared_settings

# The smallest environment the settings accept; each test changes what it is about.
BASE_ENVIRONMENT = {
    "POSTGRES_USER": "dashtam",
    "POSTGRES_PASSWORD": "unit-test-password",
    "POSTGRES_DB": "dashtam",
    "APP_ENV": "test",
}
SETTING_NAMES = tuple(Settings.model_fields)


@pytest.fixture(autouse=True)
def own_config_and_cache_folders(tmp_path_factory, monkeypatch) -> None:
    """The user's config and cache folders (registry credentials, the registry lock) are a
    test's own: no unit test reads or writes the real ones."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "config"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / "cache"))


def clear_cached_settings() -> None:
    get_settings.cache_clear()
    get_shared_settings.cache_clear()


@pytest.fixture
def settings_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """Only BASE_ENVIRONMENT is set; the cached settings are re-read around the test.

    Not autouse: other tests in this folder (lint, workflows) run tools that read the real
    environment, and must not see these values.
    """
    for name in SETTING_NAMES:
        monkeypatch.delenv(name, raising=False)
    for name, value in BASE_ENVIRONMENT.items():
        monkeypatch.setenv(name, value)
    clear_cached_settings()
    yield monkeypatch
    clear_cached_settings()


class FakeOAuthStates:
    """An in-memory stand-in for src.oauth_states.OAuthStates, with the same rules: a code is
    stored only for a state that was issued and not yet used; a code is read once."""

    def __init__(self) -> None:
        self.states: dict[str, str] = {}  # state -> provider
        self.codes: dict[str, tuple[str, str, int]] = {}  # state -> (provider, code, ttl)
        self.issued = 0
        self.failure: Exception | None = None

    def _fail_if_down(self) -> None:
        if self.failure is not None:
            raise self.failure

    async def issue(self, provider: str, ttl_seconds: int, budget: int) -> str | None:
        self._fail_if_down()
        self.issued += 1
        if self.issued > budget:
            return None
        state = f"issued-{self.issued}"
        self.states[state] = provider
        return state

    async def consume(self, state: str, code: str, ttl_seconds: int) -> bool:
        self._fail_if_down()
        provider = self.states.pop(state, None)
        if provider is None:
            return False
        self.codes[state] = (provider, code, ttl_seconds)
        return True

    async def take_code(self, provider: str, state: str) -> str | None:
        self._fail_if_down()
        stored = self.codes.pop(state, None)
        return stored[1] if stored is not None and stored[0] == provider else None


@pytest.fixture
def oauth_states() -> FakeOAuthStates:
    return FakeOAuthStates()


@pytest.fixture
def app_client(
    settings_environment: pytest.MonkeyPatch, oauth_states: FakeOAuthStates
) -> Iterator[TestClient]:
    """The API, keeping its states in `oauth_states`; tests choose its dependency checks
    through `app.dependency_overrides`."""
    main.app.dependency_overrides[src.oauth_states.oauth_states] = lambda: oauth_states
    main.starts.clear()
    with TestClient(main.app) as client:
        yield client
    main.app.dependency_overrides.clear()


@pytest.fixture
def callback_client(
    settings_environment: pytest.MonkeyPatch, oauth_states: FakeOAuthStates
) -> Iterator[TestClient]:
    """The callback receiver, consuming the states in `oauth_states` instead of Redis."""
    callback.app.dependency_overrides[src.oauth_states.oauth_states] = lambda: oauth_states
    callback.redirects.clear()
    with TestClient(callback.app) as client:
        yield client
    callback.app.dependency_overrides.clear()
