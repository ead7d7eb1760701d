"""Unit-test fixtures: a clean environment, and test clients whose dependencies are fakes.

Nothing here needs Docker, a database or the network.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

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


class FakeCodeStore:
    """An in-memory stand-in for the Redis client: remembers every SET and its expiry."""

    def __init__(self) -> None:
        self.entries: dict[str, tuple[str, int | None]] = {}
        self.failure: Exception | None = None

    async def set(
        self, name: str, value: str, ex: int | None = None, nx: bool = False
    ) -> bool | None:
        """Like redis-py: True when stored, None when NX finds the key already there."""
        if self.failure is not None:
            raise self.failure
        if nx and name in self.entries:
            return None
        self.entries[name] = (value, ex)
        return True


@pytest.fixture
def app_client(settings_environment: pytest.MonkeyPatch) -> Iterator[TestClient]:
    """The API; tests choose its dependency checks through `app.dependency_overrides`."""
    with TestClient(main.app) as client:
        yield client
    main.app.dependency_overrides.clear()


@pytest.fixture
def code_store() -> FakeCodeStore:
    return FakeCodeStore()


@pytest.fixture
def callback_client(
    settings_environment: pytest.MonkeyPatch, code_store: FakeCodeStore
) -> Iterator[TestClient]:
    """The callback receiver, storing codes in `code_store` instead of Redis."""
    callback.app.dependency_overrides[callback.code_store] = lambda: code_store
    with TestClient(callback.app) as client:
        yield client
    callback.app.dependency_overrides.clear()
