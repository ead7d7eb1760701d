"""A verify run leaves nothing behind, however it ends, and disturbs nothing it did not boot.

Each run is `nox -s verify(<env>)` as a subprocess from the repository root; its project name
comes from the `dashtam: booting <project>` line it prints. "Nothing left" means no container,
network or volume labelled com.docker.compose.project=<project>, and no variables file under
.dashtam/runs/. A run kept with `-- --keep` must be gone after the removal command it prints.
A run that ends differently than intended is cleaned up by the test anyway.

The failing check is a real failing test, not an edited repository: a test file in a
temporary folder, handed to the run's pytest as a positional argument (`verify(ci) -- <file>`),
fails on purpose. The run then takes the same path as for any failed check (report, unhealthy
logs, teardown, non-zero exit); `-k <nothing>` would only make pytest collect nothing.
"""

from __future__ import annotations

import re
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from pipeline.environments import SERVICES
from tests.pipeline.conftest import (
    TRACEBACK,
    Run,
    RunningCommand,
    health_of,
    leftovers,
    nox_command,
    project_objects,
    remove_project,
    run,
    run_nox,
    service_containers,
    throwaway_operator_project,
)

pytestmark = pytest.mark.docker

FORCED_FAILURE = '''\
"""Stands in for a check that finds a problem: the verify run must still tear down."""


def test_reliability_forced_failure():
    raise AssertionError("reliability: this check fails on purpose")
'''


def assert_nothing_left(run: Run) -> None:
    project = run.project
    left = leftovers(project)
    remove_project(project)  # so one failure does not leak into the next test
    assert not left, (
        f"{project}: after `{run.shown}` (exit {run.returncode}): "
        f"expected nothing left, found {left}"
    )


def assert_no_traceback(run: Run) -> None:
    assert TRACEBACK not in run.output, f"`{run.shown}` printed a traceback:\n{run.output[-6000:]}"


# ---------------------------------------------------------------- success, side by side


@pytest.fixture(scope="module")
def side_by_side_runs(docker_engine) -> Iterator[dict[str, Run]]:
    """verify(ci) and verify(test) started at the same time."""
    started = {
        name: RunningCommand(nox_command("-s", f"verify({name})")) for name in ("ci", "test")
    }
    runs = {name: command.finish() for name, command in started.items()}
    yield runs
    for finished in runs.values():
        if "dashtam: booting" in finished.output:
            remove_project(finished.project)


@pytest.mark.parametrize("environment_name", ["ci", "test"])
def test_verify_passes_while_another_environment_is_verified_alongside(
    side_by_side_runs, environment_name
):
    run = side_by_side_runs[environment_name]
    assert run.returncode == 0, (
        f"verify({environment_name}) beside another verify run: expected exit 0, "
        f"found {run.returncode}:\n{run.tail()}"
    )


@pytest.mark.parametrize("environment_name", ["ci", "test"])
def test_successful_verify_leaves_nothing(side_by_side_runs, environment_name):
    assert_nothing_left(side_by_side_runs[environment_name])


# ---------------------------------------------------------------- a failed check


@pytest.fixture(scope="module")
def failed_check_run(docker_engine, tmp_path_factory: pytest.TempPathFactory) -> Run:
    failing = tmp_path_factory.mktemp("failing-check") / "test_reliability_forced_failure.py"
    failing.write_text(FORCED_FAILURE)
    return run_nox("-s", "verify(ci)", "--", str(failing))


def test_verify_with_a_failed_check_exits_non_zero(failed_check_run: Run):
    assert failed_check_run.returncode != 0, (
        "verify(ci) with a failing check: expected non-zero exit, found 0:\n"
        + failed_check_run.tail()
    )
    assert "test_reliability_forced_failure" in failed_check_run.output


def test_verify_with_a_failed_check_says_so_in_one_line_naming_the_report(failed_check_run: Run):
    found = failed_check_run.stop_lines()
    assert (
        len(found) == 1 and "verify(ci) failed" in found[0] and "reports/verify-ci.md" in found[0]
    ), (
        "verify(ci) with a failing check: expected one `Session verify(ci) aborted: "
        f"verify(ci) failed; see reports/verify-ci.md` line, found {found}"
    )


def test_verify_with_a_failed_check_leaves_nothing(failed_check_run: Run):
    assert_nothing_left(failed_check_run)


def test_verify_with_a_failed_check_prints_no_traceback(failed_check_run: Run):
    assert_no_traceback(failed_check_run)


# ---------------------------------------------------------------- interrupted


@dataclass(frozen=True)
class Interruption:
    signal_number: int
    to_group: bool  # the whole process group, as a terminal's Ctrl-C; else nox alone
    after_line: str  # sent once a line matching this appears
    delay_seconds: float


INTERRUPTIONS = {
    "ctrl-c-while-booting": Interruption(signal.SIGINT, True, r"^dashtam: booting ", 2.0),
    # The first file's line ends as the next file's checks start: the suite is mid-run for
    # a second more (a fixed delay after collection landed after its end once it got fast).
    "ctrl-c-while-checking": Interruption(
        signal.SIGINT, True, r"^tests/infra/test_drift\.py \S", 0.0
    ),
    "sigterm-to-nox-while-booting": Interruption(signal.SIGTERM, False, r"^dashtam: booting ", 2.0),
}


@pytest.fixture(scope="module", params=list(INTERRUPTIONS))
def interrupted_run(request: pytest.FixtureRequest, docker_engine) -> Iterator[Run]:
    interruption = INTERRUPTIONS[request.param]
    command = RunningCommand(nox_command("-s", "verify(ci)"))
    command.wait_for_line(interruption.after_line)
    # Into the middle of what that line announced (compose up, or the checks running).
    time.sleep(interruption.delay_seconds)
    if interruption.to_group:
        command.signal_group(interruption.signal_number)
    else:
        command.signal_process(interruption.signal_number)
    run = command.finish()
    yield run
    remove_project(run.project)


def test_interrupted_verify_exits_non_zero(interrupted_run: Run):
    assert interrupted_run.returncode != 0, (
        f"interrupted verify(ci): expected non-zero exit, found 0:\n{interrupted_run.tail()}"
    )


def test_interrupted_verify_leaves_nothing(interrupted_run: Run):
    assert_nothing_left(interrupted_run)


def test_interrupted_verify_prints_no_traceback(interrupted_run: Run):
    assert_no_traceback(interrupted_run)


# ---------------------------------------------------------------- kept, then removed by hand


@dataclass
class KeptThenRemoved:
    kept: Run
    running_while_kept: list[str]
    removal: Run


@pytest.fixture(scope="module")
def kept_then_removed(docker_engine) -> Iterator[KeptThenRemoved]:
    """`verify(ci) -- --keep`, then the removal command it prints, run as printed."""
    kept = run_nox("-s", "verify(ci)", "--", "--keep")
    try:
        line = next((line for line in kept.lines if line.startswith("dashtam: remove it:")), "")
        printed = re.search(r"`([^`]+)`", line)
        assert printed, f"verify(ci) -- --keep printed no `remove it:` command:\n{kept.tail()}"
        running = project_objects(kept.project)["containers"]
        # Run as a user would, pasted into a shell.
        yield KeptThenRemoved(kept, running, run(["sh", "-c", printed[1]]))
    finally:
        remove_project(kept.project)


def test_kept_stack_is_still_up_after_verify(kept_then_removed: KeptThenRemoved):
    assert kept_then_removed.kept.returncode == 0, kept_then_removed.kept.tail()
    assert len(kept_then_removed.running_while_kept) == len(SERVICES), (
        f"{kept_then_removed.kept.project} after verify(ci) -- --keep: expected a container per "
        f"service, found {kept_then_removed.running_while_kept}"
    )


def test_removal_command_printed_for_a_kept_stack_leaves_nothing(
    kept_then_removed: KeptThenRemoved,
):
    assert kept_then_removed.removal.returncode == 0, kept_then_removed.removal.tail()
    assert_nothing_left(kept_then_removed.kept)


# ---------------------------------------------------------------- beside a running dev stack


@dataclass
class DevStackSnapshot:
    containers: dict[str, str]  # service -> container ID
    health: dict[str, str]  # service -> health
    volumes: list[str]


def snapshot_dev_stack(project: str) -> DevStackSnapshot:
    containers = service_containers(project)
    return DevStackSnapshot(
        {service: details["Id"] for service, details in containers.items()},
        {service: health_of(details) for service, details in containers.items()},
        project_objects(project)["volumes"],
    )


@dataclass
class BesideDevStack:
    before: DevStackSnapshot
    verify_run: Run
    after: DevStackSnapshot


@pytest.fixture(scope="module")
def verify_beside_dev_stack(docker_engine) -> Iterator[BesideDevStack]:
    """An operator's dev stack (`nox -s up(dev)` under a throwaway project of its own, beside
    whatever the user has), then a verify(dev) run."""
    with throwaway_operator_project("dev") as dev:
        try:
            up = run_nox("-s", "up(dev)", env=dev.variables())
            assert up.returncode == 0, f"`nox -s up(dev)` failed:\n{up.tail()}"
            before = snapshot_dev_stack(dev.name)
            verify_run = run_nox("-s", "verify(dev)")
            yield BesideDevStack(before, verify_run, snapshot_dev_stack(dev.name))
            remove_project(verify_run.project)
        finally:
            run_nox("-s", "down(dev)", "--", "--volumes", env=dev.variables())


def test_verify_dev_passes_beside_a_running_dev_stack(verify_beside_dev_stack: BesideDevStack):
    run = verify_beside_dev_stack.verify_run
    assert run.returncode == 0, (
        f"verify(dev) beside an operator's dev stack: expected exit 0, "
        f"found {run.returncode}:\n{run.tail()}"
    )


def test_verify_dev_leaves_nothing_beside_a_running_dev_stack(
    verify_beside_dev_stack: BesideDevStack,
):
    assert_nothing_left(verify_beside_dev_stack.verify_run)


def test_dev_stack_keeps_its_containers_through_verify_dev(verify_beside_dev_stack: BesideDevStack):
    before, after = verify_beside_dev_stack.before, verify_beside_dev_stack.after
    assert after.containers == before.containers, (
        f"the dev stack's container IDs across verify(dev): expected {before.containers}, "
        f"found {after.containers}"
    )


def test_dev_stack_stays_healthy_through_verify_dev(verify_beside_dev_stack: BesideDevStack):
    after = verify_beside_dev_stack.after.health
    assert set(after) == set(SERVICES) and set(after.values()) == {"healthy"}, (
        f"the dev stack's health after verify(dev): expected every service healthy, found {after}"
    )


def test_dev_stack_keeps_its_volumes_through_verify_dev(verify_beside_dev_stack: BesideDevStack):
    before, after = verify_beside_dev_stack.before, verify_beside_dev_stack.after
    assert before.volumes and after.volumes == before.volumes, (
        f"the dev stack's volumes across verify(dev): expected {before.volumes}, "
        f"found {after.volumes}"
    )
