"""Faults on a running ci stack: what the app does when its dependencies or itself go away.

One throwaway ci stack (the production and callback images) is booted for the module, the
way `verify(ci)` boots it. Each fault is caused once by a module fixture that records what it
observed; the small tests below assert on that record. The ci stack publishes no host port,
so endpoints are fetched from inside the app's own container with the standard library.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from pipeline import images
from pipeline import stack as stacks
from pipeline.environments import ENVIRONMENTS, SERVICE_PORTS, SERVICES
from tests.pipeline.conftest import TRACEBACK, docker_output, health_of, inspect, wait_until

pytestmark = pytest.mark.docker

ENVIRONMENT = ENVIRONMENTS["ci"]
# What the fault tolerance promises.
READINESS_FAILS_WITHIN_SECONDS = 5
READINESS_RECOVERS_WITHIN_SECONDS = 10
CRASH_RECOVERS_WITHIN_SECONDS = 60
# Docker's default `docker stop` grace period before it sends SIGKILL.
STOP_GRACE_SECONDS = 10
GRACEFUL_EXIT_CODES = (0, 128 + signal.SIGTERM)
# How long the outage is watched after readiness first fails, to see that liveness holds.
OUTAGE_OBSERVATION_SECONDS = 3

# Runs inside the app container, stdlib only: prints the status (also for 4xx/5xx) and body.
FETCH_STATUS = """
import sys, urllib.error, urllib.request
try:
    response = urllib.request.urlopen(sys.argv[1], timeout=5)
except urllib.error.HTTPError as error:
    response = error
print(response.getcode())
print(response.read().decode())
"""


@dataclass(frozen=True)
class Answer:
    status: int  # 0 when nothing answered
    body: str

    def json(self) -> dict:
        try:
            return json.loads(self.body)
        except ValueError:
            return {}


def fetch(container: str, service: str, path: str, host: str = "127.0.0.1") -> Answer:
    """GET http://<host>:<service port><path> from inside `container`."""
    url = f"http://{host}:{SERVICE_PORTS[service]}{path}"
    result = subprocess.run(
        ["docker", "exec", container, "python", "-c", FETCH_STATUS, url],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    if result.returncode != 0:
        reason = result.stderr.strip().splitlines()
        return Answer(0, reason[-1] if reason else f"docker exec exited {result.returncode}")
    status, _, body = result.stdout.partition("\n")
    return Answer(int(status), body.strip())


def start_marks(details: dict) -> tuple[str, int]:
    """What changes when Docker (re)starts a container: StartedAt and RestartCount."""
    return details["State"]["StartedAt"], details["RestartCount"]


def wait_healthy(container: str, timeout: float) -> float | None:
    """Seconds until the container reports healthy, or None when it does not in time."""
    started = time.monotonic()
    healthy = wait_until(lambda: health_of(inspect(container)) == "healthy", timeout, 0.5)
    return time.monotonic() - started if healthy else None


@pytest.fixture(scope="module")
def ci_stack(docker_engine) -> Iterator[stacks.Stack]:
    """A fresh ci stack of the current images, as verify(ci) boots it; removed afterwards."""
    images.build_stages(ENVIRONMENT.stages, show=False)
    stack = stacks.verify_stack(ENVIRONMENT, run_id=f"reliability-{uuid.uuid4().hex[:6]}")
    try:
        stack.up()
        yield stack
    finally:
        stack.down(remove_volumes=True)


@pytest.fixture(scope="module")
def containers(ci_stack: stacks.Stack) -> dict[str, str]:
    """Service -> container name."""
    inspected = ci_stack.inspect_containers()
    return {service: inspected[service]["Name"].lstrip("/") for service in SERVICES}


# ---------------------------------------------------------------- a data store goes away


@dataclass
class Outage:
    store: str
    app_before: tuple[str, int]
    app_after: tuple[str, int] = ("", 0)
    # (seconds since the store stopped, liveness answer, readiness answer), in order.
    samples: list[tuple[float, Answer, Answer]] = field(default_factory=list)
    seconds_to_unready: float | None = None
    seconds_to_ready_again: float | None = None
    last_readiness: Answer | None = None


@pytest.fixture(scope="module", params=["postgres", "redis"])
def outage(request: pytest.FixtureRequest, containers: dict[str, str]) -> Iterator[Outage]:
    """Stop one data store, watch the app's endpoints, start the store again, watch again."""
    store, app = request.param, containers["app"]
    assert wait_healthy(app, CRASH_RECOVERS_WITHIN_SECONDS) is not None, (
        "app is not healthy before the outage"
    )
    record = Outage(store, start_marks(inspect(app)))
    docker_output("stop", containers[store])
    try:
        stopped = time.monotonic()
        while (
            time.monotonic() - stopped < READINESS_FAILS_WITHIN_SECONDS + OUTAGE_OBSERVATION_SECONDS
        ):
            sample = (
                time.monotonic() - stopped,
                fetch(app, "app", "/health"),
                fetch(app, "app", "/health/ready"),
            )
            record.samples.append(sample)
            if record.seconds_to_unready is None and sample[2].status == 503:
                record.seconds_to_unready = sample[0]
            if (
                record.seconds_to_unready is not None
                and sample[0] > record.seconds_to_unready + OUTAGE_OBSERVATION_SECONDS
            ):
                break
    finally:
        docker_output("start", containers[store])
    restarted = time.monotonic()

    def ready() -> bool:
        record.last_readiness = fetch(app, "app", "/health/ready")
        return record.last_readiness.status == 200

    # Watched well past the promise, so a slow recovery is measured rather than just failed.
    if wait_until(ready, 3 * READINESS_RECOVERS_WITHIN_SECONDS, 0.25):
        record.seconds_to_ready_again = time.monotonic() - restarted
    record.app_after = start_marks(inspect(app))
    yield record
    # Leave the stack as the next fault expects it: every service healthy.
    wait_healthy(containers[store], 60)


def outage_log(record: Outage) -> str:
    return "; ".join(
        f"{t:.1f}s live={live.status} ready={ready.status} {ready.body[:120]}"
        for t, live, ready in record.samples
    )


def test_readiness_answers_503_naming_the_stopped_store_within_5_s(outage: Outage):
    assert outage.seconds_to_unready is not None, (
        f"[ci] app: /health/ready after stopping {outage.store}: expected 503 within "
        f"{READINESS_FAILS_WITHIN_SECONDS} s, found {outage_log(outage)}"
    )
    assert outage.seconds_to_unready <= READINESS_FAILS_WITHIN_SECONDS
    first_failure = next(ready for _, _, ready in outage.samples if ready.status == 503)
    body = first_failure.json()
    assert outage.store in body.get("detail", ""), (
        f"[ci] app: /health/ready detail while {outage.store} is stopped: expected it named, "
        f"found {first_failure.body!r}"
    )
    assert body.get("checks", {}).get(outage.store, "").startswith("down"), (
        f"[ci] app: readiness check {outage.store!r}: expected 'down: <reason>', "
        f"found {first_failure.body!r}"
    )


def test_readiness_still_reports_the_other_store_up(outage: Outage):
    other = "redis" if outage.store == "postgres" else "postgres"
    failures = [ready.json() for _, _, ready in outage.samples if ready.status == 503]
    found = [body.get("checks", {}).get(other) for body in failures]
    assert failures and set(found) == {"up"}, (
        f"[ci] app: readiness check {other!r} while only {outage.store} is stopped: "
        f"expected 'up', found {found}"
    )


def test_liveness_stays_200_while_the_store_is_stopped(outage: Outage):
    found = sorted({live.status for _, live, _ in outage.samples})
    assert found == [200], (
        f"[ci] app: /health while {outage.store} is stopped: expected only 200, found {found} "
        f"({outage_log(outage)})"
    )


def test_readiness_answers_200_within_10_s_of_the_store_starting_again(outage: Outage):
    seconds = outage.seconds_to_ready_again
    found = "no 200 within 30 s" if seconds is None else f"200 after {seconds:.1f} s"
    assert seconds is not None and seconds <= READINESS_RECOVERS_WITHIN_SECONDS, (
        f"[ci] app: /health/ready after starting {outage.store} again: expected 200 within "
        f"{READINESS_RECOVERS_WITHIN_SECONDS} s, found {found} "
        f"(last answer {outage.last_readiness})"
    )


def test_the_app_is_not_restarted_by_the_outage(outage: Outage):
    assert outage.app_after == outage.app_before, (
        f"[ci] app: (StartedAt, RestartCount) across the {outage.store} outage: expected "
        f"{outage.app_before}, found {outage.app_after}"
    )


# ---------------------------------------------------------------- the app crashes


@dataclass
class Crash:
    restarts_before: int
    restarts_after: int
    seconds_to_healthy: float | None
    readiness: Answer


@pytest.fixture(scope="module")
def crash(containers: dict[str, str]) -> Crash:
    """SIGKILL the app's PID 1 from the host, as the kernel's OOM killer would."""
    app = containers["app"]
    assert wait_healthy(app, CRASH_RECOVERS_WITHIN_SECONDS) is not None, (
        "app is not healthy before the crash"
    )
    before = inspect(app)
    host_pid = before["State"]["Pid"]
    if not Path(f"/proc/{host_pid}").exists():
        pytest.skip(
            f"the app's PID 1 (host PID {host_pid}) is not visible here: "
            "the engine runs in another PID namespace"
        )
    os.kill(host_pid, signal.SIGKILL)
    # Wait until Docker has noticed and restarted it, then until it is healthy again.
    started = time.monotonic()
    wait_until(
        lambda: inspect(app)["RestartCount"] > before["RestartCount"],
        CRASH_RECOVERS_WITHIN_SECONDS,
        0.5,
    )
    healthy = wait_until(
        lambda: health_of(inspect(app)) == "healthy", CRASH_RECOVERS_WITHIN_SECONDS, 0.5
    )
    seconds = time.monotonic() - started if healthy else None
    return Crash(
        before["RestartCount"],
        inspect(app)["RestartCount"],
        seconds,
        fetch(app, "app", "/health/ready"),
    )


def test_sigkilled_app_is_restarted_by_its_restart_policy(crash: Crash):
    assert crash.restarts_after == crash.restarts_before + 1, (
        f"[ci] app: RestartCount after SIGKILL of PID 1: expected {crash.restarts_before + 1}, "
        f"found {crash.restarts_after}"
    )


def test_sigkilled_app_is_healthy_again_within_60_s(crash: Crash):
    assert crash.seconds_to_healthy is not None, (
        f"[ci] app: health after SIGKILL of PID 1: expected healthy within "
        f"{CRASH_RECOVERS_WITHIN_SECONDS} s, found not healthy"
    )


def test_sigkilled_app_is_ready_again(crash: Crash):
    assert crash.readiness.status == 200, (
        f"[ci] app: /health/ready after the restart: expected 200, found {crash.readiness}"
    )


# ---------------------------------------------------------------- a migration that fails


@dataclass
class FailedStart:
    exit_code: int
    log: str
    health: dict
    answers: list[Answer]


@pytest.fixture(scope="module")
def failed_migration(
    ci_stack: stacks.Stack, containers: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FailedStart]:
    """The production image with a wrong database password, on the stack's own network."""
    app = inspect(containers["app"])
    network = next(iter(app["NetworkSettings"]["Networks"]))
    variables = [
        "POSTGRES_PASSWORD=reliability-wrong-password"
        if entry.startswith("POSTGRES_PASSWORD=")
        else entry
        for entry in app["Config"]["Env"]
    ]
    env_file = tmp_path_factory.mktemp("migration") / "wrong-password.env"
    env_file.write_text("\n".join(variables) + "\n")
    name = f"dashtam-reliability-migration-{uuid.uuid4().hex[:6]}"
    docker_output(
        "run", "--detach", "--name", name, "--network", network, "--env-file", str(env_file),
        "--cap-drop", "ALL", "--security-opt", "no-new-privileges:true", app["Config"]["Image"],
    )  # fmt: skip
    try:
        answers = []
        deadline = time.monotonic() + 60
        # Ask it for /health from the stack's app container for as long as it runs.
        while inspect(name)["State"]["Running"] and time.monotonic() < deadline:
            answers.append(fetch(containers["app"], "app", "/health", host=name))
        state = inspect(name)["State"]
        logs = subprocess.run(["docker", "logs", name], capture_output=True, text=True, check=True)
        yield FailedStart(
            state["ExitCode"], logs.stdout + logs.stderr, state.get("Health") or {}, answers
        )
    finally:
        subprocess.run(
            ["docker", "rm", "--force", "--volumes", name], capture_output=True, check=False
        )


def test_failed_migration_exits_non_zero(failed_migration: FailedStart):
    assert failed_migration.exit_code != 0, (
        "[ci] app with a wrong POSTGRES_PASSWORD: exit code: expected non-zero, found 0; "
        f"log:\n{failed_migration.log}"
    )


def test_failed_migration_never_serves(failed_migration: FailedStart):
    served = [answer for answer in failed_migration.answers if answer.status]
    passing_probes = [
        probe for probe in failed_migration.health.get("Log") or [] if probe["ExitCode"] == 0
    ]
    assert (
        not served and not passing_probes and failed_migration.health.get("Status") != "healthy"
    ), (
        f"[ci] app with a wrong POSTGRES_PASSWORD: /health and healthcheck: expected no answer, "
        f"found answers {served}, passing probes {passing_probes}"
    )


def test_failed_migration_logs_one_line_saying_so(failed_migration: FailedStart):
    lines = [
        line for line in failed_migration.log.splitlines() if re.search(r"migration failed:", line)
    ]
    assert len(lines) == 1, (
        f"[ci] app with a wrong POSTGRES_PASSWORD: lines matching 'migration failed:': expected 1, "
        f"found {len(lines)}; log:\n{failed_migration.log}"
    )


def test_failed_migration_logs_no_traceback(failed_migration: FailedStart):
    assert TRACEBACK not in failed_migration.log, (
        "[ci] app with a wrong POSTGRES_PASSWORD: log: expected no traceback, "
        f"found:\n{failed_migration.log}"
    )


# ---------------------------------------------------------------- docker stop


@dataclass
class Stop:
    service: str
    seconds: float
    exit_code: int
    seconds_to_healthy_again: float | None


@pytest.fixture(scope="module", params=["app", "callback"])
def graceful_stop(request: pytest.FixtureRequest, containers: dict[str, str]) -> Stop:
    """`docker stop` (SIGTERM, then SIGKILL after the grace period), then start it again."""
    service, container = request.param, containers[request.param]
    assert wait_healthy(container, CRASH_RECOVERS_WITHIN_SECONDS) is not None, (
        f"{service} is not healthy before the stop"
    )
    started = time.monotonic()
    docker_output("stop", "--time", str(STOP_GRACE_SECONDS), container)
    seconds = time.monotonic() - started
    exit_code = inspect(container)["State"]["ExitCode"]
    docker_output("start", container)
    return Stop(service, seconds, exit_code, wait_healthy(container, CRASH_RECOVERS_WITHIN_SECONDS))


def test_docker_stop_ends_the_service_before_the_grace_period(graceful_stop: Stop):
    assert graceful_stop.seconds < STOP_GRACE_SECONDS, (
        f"[ci] {graceful_stop.service}: `docker stop` took: expected < {STOP_GRACE_SECONDS} s "
        f"(SIGTERM handled), found {graceful_stop.seconds:.1f} s"
    )


def test_docker_stop_exit_code_says_it_shut_down_cleanly(graceful_stop: Stop):
    assert graceful_stop.exit_code in GRACEFUL_EXIT_CODES, (
        f"[ci] {graceful_stop.service}: exit code after `docker stop`: expected one of "
        f"{GRACEFUL_EXIT_CODES}, found {graceful_stop.exit_code}"
    )


def test_stopped_service_is_healthy_again_after_docker_start(graceful_stop: Stop):
    assert graceful_stop.seconds_to_healthy_again is not None, (
        f"[ci] {graceful_stop.service}: health after `docker start`: expected healthy within "
        f"{CRASH_RECOVERS_WITHIN_SECONDS} s, found not healthy"
    )
