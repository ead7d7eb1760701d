"""The operator's day through the Makefile: data survives down and up, dev and test run side
by side, and only a confirmed `make dev-destroy` deletes data.

The steps run in order, each once, as chained module fixtures: dev-up, dev-status, a row in
PostgreSQL and a key in Redis, dev-down, dev-up again, test-up beside it, dev-destroy refused,
dev-destroy confirmed. The small tests assert on what each step recorded. The real Makefile
targets run under throwaway projects of their own (DASHTAM_PROJECT=dashtam-dev-op-<id>, with
env files of free host ports), beside whatever the user has on this engine: their own
dashtam-dev and dashtam-test, up or down, are snapshotted before and after and must be
unchanged, their data byte for byte.
"""

from __future__ import annotations

import shlex
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from pipeline import redis_users
from pipeline.environments import ENVIRONMENTS, SERVICES
from tests.pipeline.conftest import (
    OperatorProject,
    Run,
    health_of,
    project_objects,
    project_snapshot,
    run_make,
    service_containers,
    throwaway_operator_project,
)

pytestmark = pytest.mark.docker

# The user's own stacks: never touched by these tests.
USERS_OWN = (ENVIRONMENTS["dev"].project, ENVIRONMENTS["test"].project)
# What the workflow writes, so it can be told from anything else in the stores.
PROBE_TABLE = "reliability_probe"
PROBE_KEY = "app:reliability:probe"  # the app's user reaches app:* keys


def healths(project: str) -> dict[str, str]:
    return {service: health_of(details) for service, details in service_containers(project).items()}


def container_of(project: str, service: str) -> str:
    return service_containers(project)[service]["Name"].lstrip("/")


def as_app_in_redis(project: OperatorProject, command: str) -> str:
    """A redis-cli line logged in as the app's Redis user, its password from the env file."""
    variables = dict(
        line.split("=", 1) for line in project.env_file.read_text().splitlines() if "=" in line
    )
    password = shlex.quote(variables[redis_users.PASSWORD_VARIABLES["app"]])
    return f"REDISCLI_AUTH={password} redis-cli --user app {command}"


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


@dataclass(frozen=True)
class Workspace:
    dev: OperatorProject
    test: OperatorProject
    users_own_before: dict[str, dict]


@pytest.fixture(scope="module")
def workspace(docker_engine) -> Iterator[Workspace]:
    """Throwaway dev and test projects; everything the workflow made is gone afterwards."""
    before = {project: project_snapshot(project) for project in USERS_OWN}
    with throwaway_operator_project("dev") as dev, throwaway_operator_project("test") as test:
        try:
            yield Workspace(dev, test, before)
        finally:
            run_make("test-down", env=test.variables())
            run_make("dev-down", env=dev.variables())
            if project_objects(dev.name)["volumes"]:
                run_make("dev-destroy", f"CONFIRM={dev.name}", env=dev.variables())


def make(project: OperatorProject, *arguments: str) -> Run:
    """A Makefile target run against a throwaway project, as `DASHTAM_PROJECT=… make …`."""
    return run_make(*arguments, env=project.variables())


@pytest.fixture(scope="module")
def first_up(workspace: Workspace) -> Run:
    return make(workspace.dev, "dev-up")


@pytest.fixture(scope="module")
def status(workspace: Workspace, first_up: Run) -> Run:
    return make(workspace.dev, "dev-status")


@dataclass(frozen=True)
class Written:
    row: str
    key_value: str


@pytest.fixture(scope="module")
def written(workspace: Workspace, first_up: Run) -> Written:
    assert_make_succeeded(first_up, "dev-up")
    dev = workspace.dev.name
    row, key_value = f"row-{uuid.uuid4().hex[:8]}", f"value-{uuid.uuid4().hex[:8]}"
    # A fixed table name and a generated value: nothing to inject.
    statements = (
        f"CREATE TABLE {PROBE_TABLE} (note text); INSERT INTO {PROBE_TABLE} VALUES ('{row}')"  # noqa: S608
    )
    exec_in(dev, "postgres", f'{PSQL} "{statements}"')
    exec_in(dev, "redis", as_app_in_redis(workspace.dev, f"SET {PROBE_KEY} {key_value}"))
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
def restart(workspace: Workspace, written: Written) -> Restart:
    dev = workspace.dev.name
    volumes_before = project_objects(dev)["volumes"]
    down = make(workspace.dev, "dev-down")
    objects_after_down = project_objects(dev)
    up_again = make(workspace.dev, "dev-up")
    assert_make_succeeded(up_again, "dev-up (again)")
    rows = exec_in(dev, "postgres", f'{PSQL} "SELECT note FROM {PROBE_TABLE}"')  # noqa: S608
    key_value = exec_in(dev, "redis", as_app_in_redis(workspace.dev, f"GET {PROBE_KEY}"))
    return Restart(down, volumes_before, objects_after_down, up_again, rows, key_value)


@dataclass
class SideBySide:
    test_up: Run
    healths: dict[str, dict[str, str]]  # project -> service -> health
    test_down: Run
    test_left: dict[str, list[str]]


@pytest.fixture(scope="module")
def side_by_side(workspace: Workspace, restart: Restart) -> SideBySide:
    dev, test = workspace.dev.name, workspace.test.name
    test_up = make(workspace.test, "test-up")
    found = {"dev": healths(dev), "test": healths(test)}
    test_down = make(workspace.test, "test-down")
    return SideBySide(test_up, found, test_down, project_objects(test))


@dataclass
class Destroy:
    run: Run
    before: dict[str, list[str]]
    after: dict[str, list[str]]


@pytest.fixture(scope="module")
def destroy_refused(workspace: Workspace, restart: Restart) -> Destroy:
    """`make dev-destroy` with no CONFIRM and no terminal to answer the question."""
    dev = workspace.dev.name
    before = project_objects(dev)
    return Destroy(make(workspace.dev, "dev-destroy"), before, project_objects(dev))


@pytest.fixture(scope="module")
def destroy_confirmed(
    workspace: Workspace, destroy_refused: Destroy, side_by_side: SideBySide
) -> Destroy:
    dev = workspace.dev.name
    before = project_objects(dev)
    run = make(workspace.dev, "dev-destroy", f"CONFIRM={dev}")
    return Destroy(run, before, project_objects(dev))


# ---------------------------------------------------------------- up, status


def test_make_dev_up_starts_every_service_healthy(workspace: Workspace, first_up: Run):
    assert_make_succeeded(first_up, "dev-up")
    found = healths(workspace.dev.name)
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


@pytest.mark.parametrize("environment_name", ["dev", "test"])
def test_dev_and_test_stacks_are_healthy_side_by_side(
    side_by_side: SideBySide, environment_name: str
):
    found = side_by_side.healths[environment_name]
    assert sorted(found) == sorted(SERVICES) and set(found.values()) == {"healthy"}, (
        f"[{environment_name}] health with both stacks up: expected every service healthy, "
        f"found {found}"
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


def test_dev_destroy_confirmed_succeeds(workspace: Workspace, destroy_confirmed: Destroy):
    assert_make_succeeded(destroy_confirmed.run, f"dev-destroy CONFIRM={workspace.dev.name}")


def test_dev_destroy_confirmed_warns_before_deleting(
    workspace: Workspace, destroy_confirmed: Destroy
):
    dev = workspace.dev.name
    lines = destroy_confirmed.run.lines
    warning = next(
        (number for number, line in enumerate(lines) if "WARNING" in line and dev in line), None
    )
    down = next((number for number, line in enumerate(lines) if f"{dev} is down" in line), None)
    assert warning is not None and (down is None or warning < down), (
        f"`make dev-destroy CONFIRM={dev}`: expected a WARNING line naming {dev} "
        "before it is down, found:\n" + "\n".join(lines[-20:])
    )


def test_dev_destroy_confirmed_deletes_the_data_volumes(
    workspace: Workspace, destroy_confirmed: Destroy
):
    assert destroy_confirmed.before["volumes"] and not destroy_confirmed.after["volumes"], (
        f"[dev] volumes across `make dev-destroy CONFIRM={workspace.dev.name}`: "
        f"expected {destroy_confirmed.before['volumes']} deleted, "
        f"found {destroy_confirmed.after['volumes']} left"
    )


# ---------------------------------------------------------------- the user's own stacks


@pytest.mark.parametrize("project", USERS_OWN)
def test_the_users_own_stack_and_data_are_untouched(
    workspace: Workspace, destroy_confirmed: Destroy, project: str
):
    """After the whole workflow (destroy included): the same containers, started at the
    same moment, and the same volumes, their data byte for byte where no container runs."""
    after = project_snapshot(project)
    assert after == workspace.users_own_before[project], (
        f"[{project}] the user's own stack across the operator tests: expected "
        f"{workspace.users_own_before[project]}, found {after}"
    )
