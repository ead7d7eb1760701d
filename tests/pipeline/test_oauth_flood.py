"""A flood of OAuth requests evicts nothing that matters.

Real Redis (the image the stack runs, started with prod's arguments: the users of
pipeline/redis_users.py and prod's eviction policy), the real API and callback in this
process (their ASGI apps, each request from a client address of its own), and a flood:
redirects with states no one issued, one address past its budget, and starts far past the
state budget whose states are then redeemed. Redis' memory is bounded tightly on purpose:
just above what the app's keys take, so a flood that wrote what it liked would have to push
something out.

Afterwards every key the app keeps and every real user's code is still there and Redis
evicted nothing. The same flood against the store as it was (volatile-ttl, no budget) loses
keys, and the same check says so: the check can fail.
"""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis
import yaml
from fastapi import FastAPI
from fastapi.testclient import TestClient
from python_on_whales import Container, docker

from pipeline import redis_users
from pipeline.image_sources import image_references
from src import callback, main
from src.settings import Settings, SharedSettings, get_settings, get_shared_settings

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("docker_engine")]

ROOT = Path(__file__).resolve().parents[2]
# The test's own observer, beside the services' users: it reads Redis' memory and stats
# (no service's user may) and sets the tight memory bound.
OBSERVER = "flood-observer"
# Room above the app's keys (and the connections of a burst of requests): far more than the
# budget's states and codes need, far less than an unbounded flood writes.
HEADROOM_BYTES = 1_000_000
APP_KEYS_WITH_TTL = 200
APP_KEYS_WITHOUT_TTL = 20
REAL_FLOWS = 10
BUDGET = 100
FLOOD_STARTS = 2_000
FLOOD_REDIRECTS = 1_500
LIMIT_PER_ADDRESS = 30  # RATE_LIMIT_PER_MINUTE
READY_TIMEOUT_SECONDS = 30


@dataclass(frozen=True)
class Store:
    """How Redis and the API bound the OAuth keys."""

    key: str
    eviction_policy: str
    budget: int


# prod's own policy, read from its compose file (not restated here).
PROD_COMMAND = yaml.safe_load((ROOT / "compose/docker-compose.prod.yml").read_text())["services"][
    "redis"
]["command"]
PROD = Store("prod", PROD_COMMAND[PROD_COMMAND.index("--maxmemory-policy") + 1], BUDGET)
# The store before states were issued and bounded: whatever the flood writes, Redis keeps by
# evicting the keys nearest to expiring.
UNBOUNDED = Store("volatile-ttl-no-budget", "volatile-ttl", FLOOD_STARTS * 10)


@dataclass
class Outcome:
    missing_app_keys: list[str] = field(default_factory=list)
    codes_not_handed_over: list[str] = field(default_factory=list)
    evicted: int = 0
    oauth_keys: int = 0
    flood_statuses: dict[str, dict[int, int]] = field(default_factory=dict)


@pytest.fixture
def redis_server(request: pytest.FixtureRequest) -> Iterator[tuple[Container, dict[str, str]]]:
    passwords = {user: secrets.token_urlsafe(24) for user in redis_users.RULES}
    passwords[OBSERVER] = secrets.token_urlsafe(24)
    arguments = [word for word in PROD_COMMAND if word != "redis-server"]
    at = arguments.index("--aclfile")
    del arguments[at : at + 2]  # prod's users come from a secret file: here, as arguments
    users = redis_users.server_arguments(passwords)
    observer = ["--user", OBSERVER, "on", f">{passwords[OBSERVER]}", "~*", "+@all"]
    container = docker.run(
        # The Redis the stack runs (the air-gapped stand-in or upstream's, by DASHTAM_IMAGE_SOURCE).
        image_references()["REDIS_IMAGE"],
        ["redis-server", *arguments, *users, *observer],
        name=f"dashtam-test-flood-{uuid.uuid4().hex[:8]}",
        detach=True,
        pull="missing",
    )
    try:
        yield container, passwords
    finally:
        container.remove(force=True, volumes=True)


def address_of(container: Container) -> str:
    return docker.container.inspect(container.id).network_settings.ip_address


def client_of(container: Container, user: str, password: str) -> redis.Redis:
    return redis.Redis(
        host=address_of(container), username=user, password=password, socket_timeout=5
    )


def wait_until_ready(client: redis.Redis) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while True:
        try:
            client.ping()
            return
        except redis.RedisError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def settings_for(container: Container, user: str, password: str, store: Store) -> Settings:
    return Settings(
        APP_ENV="test",
        POSTGRES_USER="unused",
        POSTGRES_PASSWORD="unused",
        POSTGRES_DB="unused",
        REDIS_HOST=address_of(container),
        REDIS_USER=user,
        REDIS_PASSWORD=password,
        OAUTH_STATE_BUDGET=store.budget,
        RATE_LIMIT_PER_MINUTE=LIMIT_PER_ADDRESS,
    )


@pytest.fixture
def services(redis_server) -> Iterator[Callable[[Store], None]]:
    """The API and the callback on that Redis, each as its own Redis user."""
    container, passwords = redis_server

    def use(store: Store) -> None:
        app_settings = settings_for(container, "app", passwords["app"], store)
        callback_settings: SharedSettings = settings_for(
            container, "callback", passwords["callback"], store
        )
        main.app.dependency_overrides[get_settings] = lambda: app_settings
        main.app.dependency_overrides[get_shared_settings] = lambda: app_settings
        callback.app.dependency_overrides[get_shared_settings] = lambda: callback_settings
        main.starts.clear()
        callback.redirects.clear()

    yield use
    main.app.dependency_overrides.clear()
    callback.app.dependency_overrides.clear()


def from_address(app: FastAPI, number: int) -> TestClient:
    """A client of `app` whose requests come from an address of their own."""
    return TestClient(app, client=(f"198.51.{number // 250}.{number % 250 + 1}", 40000))


def count(statuses: list[int]) -> dict[int, int]:
    return {status: statuses.count(status) for status in sorted(set(statuses))}


def flood(container: Container, passwords: dict[str, str], store: Store, use) -> Outcome:
    observer = client_of(container, OBSERVER, passwords[OBSERVER])
    wait_until_ready(observer)
    app_redis = client_of(container, "app", passwords["app"])
    for number in range(APP_KEYS_WITH_TTL):
        app_redis.set(f"app:cache:{number}", "v" * 512, ex=3600)
    for number in range(APP_KEYS_WITHOUT_TTL):
        app_redis.set(f"app:config:{number}", "v" * 512)
    used = int(observer.info("memory")["used_memory"])
    observer.config_set("maxmemory", used + HEADROOM_BYTES)
    observer.config_set("maxmemory-policy", store.eviction_policy)
    use(store)

    # Real users: a state each, then the provider's redirect with their code.
    real = {}
    for number in range(REAL_FLOWS):
        started = from_address(main.app, number).post("/oauth/schwab/start")
        assert started.status_code == 201, started.text
        state = started.json()["state"]
        code = f"real-code-{number}-{secrets.token_hex(8)}"
        answer = from_address(callback.app, number).get(
            "/oauth/callback", params={"code": code, "state": state}
        )
        assert answer.status_code == 200, answer.text
        real[state] = code

    outcome = Outcome()
    addresses = range(1000, 1000 + FLOOD_REDIRECTS // LIMIT_PER_ADDRESS)
    unissued = [
        from_address(callback.app, address)
        .get("/oauth/callback", params={"code": "x" * 500, "state": secrets.token_urlsafe(32)})
        .status_code
        for address in addresses
        for _ in range(LIMIT_PER_ADDRESS)
    ]
    outcome.flood_statuses["redirects with states no one issued"] = count(unissued)
    one_address = from_address(callback.app, 999)
    past_limit = [
        one_address.get("/oauth/callback", params={"code": "c", "state": "s"})
        for _ in range(LIMIT_PER_ADDRESS + 10)
    ]
    outcome.flood_statuses["one address past its limit"] = count(
        [answer.status_code for answer in past_limit]
    )
    assert all(answer.headers.get("retry-after") for answer in past_limit[LIMIT_PER_ADDRESS:])
    issued = []
    starts = []
    for address in range(5000, 5000 + FLOOD_STARTS // 10):
        client = from_address(main.app, address)
        for _ in range(10):
            answer = client.post("/oauth/schwab/start")
            starts.append(answer.status_code)
            if answer.status_code == 201:
                issued.append(answer.json()["state"])
    outcome.flood_statuses["starts"] = count(starts)
    redeemed = [
        from_address(callback.app, 20000 + number)
        .get("/oauth/callback", params={"code": "y" * 500, "state": state})
        .status_code
        for number, state in enumerate(issued)
    ]
    outcome.flood_statuses["redirects with the flood's issued states"] = count(redeemed)

    outcome.missing_app_keys = [
        key
        for key in [f"app:cache:{n}" for n in range(APP_KEYS_WITH_TTL)]
        + [f"app:config:{n}" for n in range(APP_KEYS_WITHOUT_TTL)]
        if not app_redis.exists(key)
    ]
    for state, code in real.items():
        answer = main_client().post("/oauth/schwab/code", json={"state": state})
        if answer.status_code != 200 or answer.json() != {"code": code}:
            outcome.codes_not_handed_over.append(f"{state[:8]}…: {answer.status_code}")
    outcome.evicted = int(observer.info("stats")["evicted_keys"])
    outcome.oauth_keys = sum(1 for _ in app_redis.scan_iter(match="oauth:*", count=1000))
    return outcome


def main_client() -> TestClient:
    return from_address(main.app, 99999)


def test_a_flood_evicts_no_app_key_and_no_real_code(redis_server, services):
    container, passwords = redis_server
    outcome = flood(container, passwords, PROD, services)
    assert outcome.flood_statuses["redirects with states no one issued"] == {
        400: FLOOD_REDIRECTS // LIMIT_PER_ADDRESS * LIMIT_PER_ADDRESS
    }, outcome
    assert outcome.flood_statuses["one address past its limit"] == {
        400: LIMIT_PER_ADDRESS,
        429: 10,
    }, outcome
    assert outcome.flood_statuses["starts"].get(201) == BUDGET - REAL_FLOWS, outcome
    lost = (outcome.missing_app_keys, outcome.codes_not_handed_over, outcome.evicted)
    assert lost == ([], [], 0), f"after the flood: (missing app keys, codes lost, evicted) {lost}"
    # The budget's states and their codes, and its counter: nothing the flood chose.
    assert outcome.oauth_keys <= 2 * BUDGET + 1, outcome


def test_the_same_check_catches_a_store_that_evicts_under_a_flood(redis_server, services):
    """The broken variant: no state budget, Redis evicting what expires soonest."""
    container, passwords = redis_server
    outcome = flood(container, passwords, UNBOUNDED, services)
    lost = (outcome.missing_app_keys, outcome.codes_not_handed_over, outcome.evicted)
    assert outcome.evicted > 0 and (outcome.missing_app_keys or outcome.codes_not_handed_over), (
        f"the unbounded store kept everything: the flood check could not fail {lost}"
    )
