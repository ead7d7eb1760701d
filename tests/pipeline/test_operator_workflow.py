"""The operator's day through the Makefile: data survives down and up, dev and test run side
by side, and only a confirmed `make dev-destroy` deletes data.

The steps run in order, each once, as chained module fixtures: dev-up, dev-status, a row in
PostgreSQL and a key in Redis, dev-down, dev-up again, test-up beside it, dev-destroy refused,
dev-destroy confirmed. The small tests assert on what each step recorded. The operator env
files are the templates with free host ports; a user's own env/.env.dev and env/.env.test are
put back afterwards, and a dashtam-dev or dashtam-test that already exists is never touched.
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from pipeline.environments import ENVIRONMENTS, SERVICES
from tests.pipeline.conftest import (
    Run,
    health_of,
    operator_env_file,
    project_objects,
    remove_project,
    require_no_operator_stack,
    run_make,
    service_containers,
)

pytestmark = pytest.mark.docker

DEV = ENVIRONMENTS["dev"].project
TEST = ENVIRONMENTS["test"].project
# What the workflow writes, so it can be told from anything else in the stores.
PROBE_TABLE = "reliability_probe"
PROBE_KEY = "reliability:probe"


def healths(project: str) -> dict[str, str]:
    return {service: health_of(details) for service, details in service_containers(project).items()}


def container_of(project: str, service: str) -> str:
    return service_containers(project)[service]["Name"].lstrip("/")


def exec_in(project: str, service: str, script: str) -> str:
    """Run `sh -c script` in a service's container, with its variables (e.g. REDISCLI_AUTH)."""
    result = subprocess.run(
        ["docker", "exec", container_of(project, service), "sh", "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, (
        f"{project} {service}: `{script}` failed: {result.stderr.strip()}"
    )
    return result.stdout.strip()


PSQL = 'psql -v ON_ERROR_STOP=1 -tA -U "$POSTGRES_USER" -d "$POSTGRES_DB" -c'


def assert_make_succeeded(run: Run, what: str) -> None:
    assert run.returncode == 0, (
        f"`make {what}`: expected exit 0, found {run.returncode}:\n{run.tail()}"
    )


# ---------------------------------------------------------------- the steps


@pytest.fixture(scope="module")
def workspace(docker_engine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Operator env files for dev and test; everything the workflow made is gone afterwards."""
    require_no_operator_stack("dev")
    require_no_operator_stack("test")
    backups = tmp_path_factory.mktemp("env-backup")
    with operator_env_file("dev", backups), operator_env_file("test", backups):
        try:
            yield
        finally:
            run_make("test-down")
            run_make("dev-down")
            if project_objects(DEV)["volumes"]:
                run_make("dev-destroy", f"CONFIRM={DEV}")
            remove_project(TEST)
            remove_project(DEV)


@pytest.fixture(scope="module")
def first_up(workspace) -> Run:
    return run_make("dev-up")


@pytest.fixture(scope="module")
def status(first_up: Run) -> Run:
    return run_make("dev-status")


@dataclass(frozen=True)
class Written:
    row: str
    key_value: str


@pytest.fixture(scope="module")
def written(first_up: Run) -> Written:
    assert_make_succeeded(first_up, "dev-up")
    row, key_value = f"row-{uuid.uuid4().hex[:8]}", f"value-{uuid.uuid4().hex[:8]}"
    # A fixed table name and a generated value: nothing to inject.
    statements = (
        f"CREATE TABLE {PROBE_TABLE} (note text); INSERT INTO {PROBE_TABLE} VALUES ('{row}')"  # noqa: S608
    )
    exec_in(DEV, "postgres", f'{PSQL} "{statements}"')
    exec_in(DEV, "redis", f"redis-cli SET {PROBE_KEY} {key_value}")
    return Written(row, key_value)


@dataclass
class Restart:
    down: Run
    volumes_before: list[str]
    objects_after_down: dict[str, list[str]]
    up_again: Run
    rows: str
    key_value: str


@pytest.fixture(scope="module")
def restart(written: Written) -> Restart:
    volumes_before = project_objects(DEV)["volumes"]
    down = run_make("dev-down")
    objects_after_down = project_objects(DEV)
    up_again = run_make("dev-up")
    assert_make_succeeded(up_again, "dev-up (again)")
    rows = exec_in(DEV, "postgres", f'{PSQL} "SELECT note FROM {PROBE_TABLE}"')  # noqa: S608
    key_value = exec_in(DEV, "redis", f"redis-cli GET {PROBE_KEY}")
    return Restart(down, volumes_before, objects_after_down, up_again, rows, key_value)


@dataclass
class SideBySide:
    test_up: Run
    healths: dict[str, dict[str, str]]  # project -> service -> health
    test_down: Run
    test_left: dict[str, list[str]]


@pytest.fixture(scope="module")
def side_by_side(restart: Restart) -> SideBySide:
    test_up = run_make("test-up")
    found = {DEV: healths(DEV), TEST: healths(TEST)}
    test_down = run_make("test-down")
    return SideBySide(test_up, found, test_down, project_objects(TEST))


@dataclass
class Destroy:
    run: Run
    before: dict[str, list[str]]
    after: dict[str, list[str]]


@pytest.fixture(scope="module")
def destroy_refused(restart: Restart) -> Destroy:
    """`make dev-destroy` with no CONFIRM and no terminal to answer the question."""
    before = project_objects(DEV)
    return Destroy(run_make("dev-destroy"), before, project_objects(DEV))


@pytest.fixture(scope="module")
def destroy_confirmed(destroy_refused: Destroy, side_by_side: SideBySide) -> Destroy:
    before = project_objects(DEV)
    return Destroy(run_make("dev-destroy", f"CONFIRM={DEV}"), before, project_objects(DEV))


# ---------------------------------------------------------------- up, status


def test_make_dev_up_starts_every_service_healthy(first_up: Run):
    assert_make_succeeded(first_up, "dev-up")
    found = healths(DEV)
    assert sorted(found) == sorted(SERVICES) and set(found.values()) == {"healthy"}, (
        f"[dev] health after `make dev-up`: expected every service healthy, found {found}"
    )


def test_make_dev_status_lists_every_service_running_and_healthy(status: Run):
    assert_make_succeeded(status, "dev-status")
    for service in SERVICES:
        line = next((line for line in status.lines if line.split()[:1] == [service]), None)
        assert line and "running" in line and "healthy" in line, (
            f"[dev] {service}: `make dev-status` line: expected running and healthy, "
            f"found {line!r}:\n{status.tail()}"
        )


# ---------------------------------------------------------------- down, up again


def test_make_dev_down_succeeds(restart: Restart):
    assert_make_succeeded(restart.down, "dev-down")


def test_make_dev_down_removes_the_containers(restart: Restart):
    assert not restart.objects_after_down["containers"], (
        "[dev] containers after `make dev-down`: expected none, "
        f"found {restart.objects_after_down['containers']}"
    )


def test_make_dev_down_keeps_the_data_volumes(restart: Restart):
    assert (
        restart.volumes_before and restart.objects_after_down["volumes"] == restart.volumes_before
    ), (
        f"[dev] volumes after `make dev-down`: expected {restart.volumes_before}, "
        f"found {restart.objects_after_down['volumes']}"
    )


def test_make_dev_down_says_the_volumes_are_kept(restart: Restart):
    said = [line for line in restart.down.lines if "kept" in line]
    assert said and all(volume in said[0] for volume in restart.volumes_before), (
        f"[dev] `make dev-down` output: expected a line saying {restart.volumes_before} "
        f"are kept, found {said}"
    )


def test_row_written_before_down_is_in_postgres_after_up(written: Written, restart: Restart):
    assert restart.rows.splitlines() == [written.row], (
        f"[dev] postgres: {PROBE_TABLE} after down and up: expected [{written.row!r}], "
        f"found {restart.rows.splitlines()}"
    )


def test_key_written_before_down_is_in_redis_after_up(written: Written, restart: Restart):
    assert restart.key_value == written.key_value, (
        f"[dev] redis: {PROBE_KEY} after down and up: expected {written.key_value!r}, "
        f"found {restart.key_value!r}"
    )


# ---------------------------------------------------------------- dev and test side by side


def test_make_test_up_succeeds_while_dev_is_up(side_by_side: SideBySide):
    assert_make_succeeded(side_by_side.test_up, "test-up")


@pytest.mark.parametrize("project", [DEV, TEST])
def test_dev_and_test_stacks_are_healthy_side_by_side(side_by_side: SideBySide, project: str):
    found = side_by_side.healths[project]
    assert sorted(found) == sorted(SERVICES) and set(found.values()) == {"healthy"}, (
        f"[{project}] health with both stacks up: expected every service healthy, found {found}"
    )


def test_make_test_down_removes_the_test_stack(side_by_side: SideBySide):
    assert_make_succeeded(side_by_side.test_down, "test-down")
    left = {kind: names for kind, names in side_by_side.test_left.items() if names}
    assert not left, (
        f"[test] after `make test-down`: expected nothing (data is on tmpfs), found {left}"
    )


# ---------------------------------------------------------------- destroy


def test_dev_destroy_without_confirmation_fails(destroy_refused: Destroy):
    assert destroy_refused.run.returncode != 0, (
        "`make dev-destroy` with no CONFIRM and no terminal: expected non-zero exit, "
        f"found 0:\n{destroy_refused.run.tail()}"
    )


def test_dev_destroy_without_confirmation_says_nothing_was_deleted(destroy_refused: Destroy):
    assert any("nothing deleted" in line for line in destroy_refused.run.lines), (
        "`make dev-destroy` with no CONFIRM: expected a line saying nothing was deleted, "
        f"found:\n{destroy_refused.run.tail()}"
    )


def test_dev_destroy_without_confirmation_deletes_nothing(destroy_refused: Destroy):
    assert destroy_refused.after == destroy_refused.before, (
        "[dev] objects across an unconfirmed `make dev-destroy`: "
        f"expected {destroy_refused.before}, found {destroy_refused.after}"
    )


def test_dev_destroy_confirmed_succeeds(destroy_confirmed: Destroy):
    assert_make_succeeded(destroy_confirmed.run, f"dev-destroy CONFIRM={DEV}")


def test_dev_destroy_confirmed_warns_before_deleting(destroy_confirmed: Destroy):
    lines = destroy_confirmed.run.lines
    warning = next(
        (number for number, line in enumerate(lines) if "WARNING" in line and DEV in line), None
    )
    down = next((number for number, line in enumerate(lines) if f"{DEV} is down" in line), None)
    assert warning is not None and (down is None or warning < down), (
        f"`make dev-destroy CONFIRM={DEV}`: expected a WARNING line naming {DEV} "
        "before it is down, found:\n" + "\n".join(lines[-20:])
    )


def test_dev_destroy_confirmed_deletes_the_data_volumes(destroy_confirmed: Destroy):
    assert destroy_confirmed.before["volumes"] and not destroy_confirmed.after["volumes"], (
        f"[dev] volumes across `make dev-destroy CONFIRM={DEV}`: "
        f"expected {destroy_confirmed.before['volumes']} deleted, "
        f"found {destroy_confirmed.after['volumes']} left"
    )
