"""Shared fixtures for the pipeline's own integration tests.

These tests drive the pipeline the way people do: `nox` and `make` as subprocesses, in this
checkout or in a temporary copy of it, against the real Docker engine. Everything they create
is named after its project (`reliability` where the test picks the name) and removed at the
end; the git-ignored operator env files they need are backed up and put back.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from pipeline.environments import ENVIRONMENTS, ROOT, VARIABLE_PREFIXES
from pipeline.image_sources import image_references
from pipeline.images import images_that_run
from pipeline.preflight import NO_ENGINE, engine_answers
from pipeline.stack import (
    PROJECT_OVERRIDE_VARIABLE,
    RUNS,
    host_port_variables,
    image_variable,
    operator_env_file,
    project_objects,
)

# The self-test's lab (tests/pipeline/lab.py), as fixtures of every test module here.
from tests.pipeline.lab import engine_and_real_images, lab_for  # noqa: F401

COMMAND_TIMEOUT_SECONDS = 600
# What a Python crash prints; a problem the user can fix never shows it.
TRACEBACK = "Traceback (most recent call last)"
# pipeline/verification.py names the project a verify run boots on this line.
BOOTING = re.compile(r"^dashtam: booting (?P<project>[\w.-]+)", re.MULTILINE)
# nox's last word when a session stops on session.error(...) or a failed command.
SESSION_STOPPED = re.compile(
    r"^nox > Session (?P<session>\S+) (?:aborted|failed)(?:: (?P<message>.*))?$"
)
# Variables a compose file interpolates, and the ones a verify session hands to its checks:
# a value exported in this shell would override the env files the tests mean to exercise.
# (DASHTAM_IMAGE_SOURCE and the other DASHTAM_ settings pass: they choose, they do not steer.)
STEERING_PREFIXES = (
    *(prefix for prefix in VARIABLE_PREFIXES if prefix != "DASHTAM_"),
    "DASHTAM_VERIFY_",
    *(image_variable(stage) for stage in images_that_run()),
    "DASHTAM_BUILD_",
)
# Set when these tests run inside `nox -s integration`; the nox under test picks its own.
OUTER_SESSION_VARIABLES = ("VIRTUAL_ENV", "NOX_CURRENT_SESSION")
# Scratch the pipeline itself writes into a checkout: never part of "nothing was deleted".
SCRATCH_DIRECTORIES = (".git", ".nox", ".dashtam", "reports", "certs", "__pycache__", ".venv")


# ---------------------------------------------------------------- Docker or skip


@pytest.fixture(scope="session")
def docker_engine() -> None:
    """Skip when no Docker engine answers; in CI (CI=1) that is a failure instead."""
    if engine_answers():
        return
    if os.environ.get("CI"):
        pytest.fail("no Docker engine answers (`docker info` failed), and CI requires one")
    pytest.skip(NO_ENGINE)


@pytest.fixture(autouse=True)
def docker_required(request: pytest.FixtureRequest) -> None:
    if request.node.get_closest_marker("docker"):
        request.getfixturevalue("docker_engine")


# ---------------------------------------------------------------- running nox and make


def nox_command(*arguments: str) -> list[str]:
    """nox from the interpreter running these tests (the pipeline group is installed there)."""
    return [sys.executable, "-m", "nox", *arguments]


def pipeline_environment(**overrides: str) -> dict[str, str]:
    """This process's environment without what would steer a run from outside, plus overrides."""
    environment = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(STEERING_PREFIXES) and name not in OUTER_SESSION_VARIABLES
    }
    environment.update(overrides)
    return environment


@dataclass
class Run:
    """A finished command: its exit status and everything it printed (stdout and stderr)."""

    command: list[str]
    returncode: int
    output: str
    seconds: float

    @property
    def lines(self) -> list[str]:
        return self.output.splitlines()

    @property
    def shown(self) -> str:
        """The command as a person would type it (`nox ...` rather than `python -m nox ...`)."""
        if self.command[1:3] == ["-m", "nox"]:
            return " ".join(["nox", *self.command[3:]])
        return " ".join(self.command)

    @property
    def project(self) -> str:
        """The compose project a verify run booted, from its `dashtam: booting` line."""
        match = BOOTING.search(self.output)
        assert match, f"`{self.shown}` never printed `dashtam: booting <project>`:\n{self.tail()}"
        return match["project"]

    def stop_lines(self) -> list[str]:
        """nox's `Session ... aborted|failed[: message]` lines."""
        return [line for line in self.lines if SESSION_STOPPED.match(line)]

    def tail(self, count: int = 40) -> str:
        return "\n".join(self.lines[-count:])


class RunningCommand:
    """A command in its own process group, its output collected line by line as it comes."""

    def __init__(
        self,
        command: Sequence[str],
        *,
        cwd: Path = ROOT,
        env: dict[str, str] | None = None,
    ) -> None:
        self.command = list(command)
        self.started = time.monotonic()
        self.process = subprocess.Popen(
            self.command,
            cwd=cwd,
            env=env if env is not None else pipeline_environment(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            # Its own group, as a terminal gives a foreground job: Ctrl-C reaches all of it.
            start_new_session=True,
        )
        self._lines: list[str] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self._changed:
                self._lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    @property
    def output(self) -> str:
        with self._changed:
            return "\n".join(self._lines)

    def wait_for_line(self, pattern: str, timeout: float = COMMAND_TIMEOUT_SECONDS) -> str:
        """The first output line matching `pattern`; fails when the command ends without one."""
        expression = re.compile(pattern)
        deadline = time.monotonic() + timeout
        seen = 0
        with self._changed:
            while True:
                for line in self._lines[seen:]:
                    if expression.search(line):
                        return line
                seen = len(self._lines)
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (
                    self.process.poll() is not None and not self._reader.is_alive()
                ):
                    break
                self._changed.wait(min(remaining, 1.0))
        self.kill()
        pytest.fail(
            f"`{' '.join(self.command)}` printed no line matching {pattern!r}:\n"
            + self.output[-4000:]
        )

    def signal_group(self, signal_number: int) -> None:
        os.killpg(self.process.pid, signal_number)

    def signal_process(self, signal_number: int) -> None:
        self.process.send_signal(signal_number)

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def finish(self, timeout: float = COMMAND_TIMEOUT_SECONDS) -> Run:
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(
                f"`{' '.join(self.command)}` did not finish within {timeout} s:\n"
                + self.output[-4000:]
            )
        self._reader.join(timeout=30)
        return Run(
            self.command, self.process.returncode, self.output, time.monotonic() - self.started
        )


def run(
    command: Sequence[str],
    *,
    cwd: Path = ROOT,
    env: dict[str, str] | None = None,
    timeout: float = COMMAND_TIMEOUT_SECONDS,
) -> Run:
    return RunningCommand(command, cwd=cwd, env=env).finish(timeout)


def run_nox(*arguments: str, cwd: Path = ROOT, env: dict[str, str] | None = None) -> Run:
    return run(nox_command(*arguments), cwd=cwd, env=env)


def run_make(*arguments: str, env: dict[str, str] | None = None) -> Run:
    return run(["make", "--no-print-directory", "-C", str(ROOT), *arguments], env=env)


def docker_output(*arguments: str) -> str:
    return subprocess.run(
        ["docker", *arguments], capture_output=True, text=True, check=True, timeout=120
    ).stdout


def inspect(reference: str) -> dict:
    return json.loads(docker_output("inspect", reference))[0]


# ---------------------------------------------------------------- what a project leaves


def leftovers(project: str) -> dict[str, list[str]]:
    """What of a run is still there: Docker objects, and its variables file under .dashtam/."""
    found = {kind: names for kind, names in project_objects(project).items() if names}
    variables_file = RUNS / f"{project}.env"
    if variables_file.exists():
        found["files"] = [str(variables_file.relative_to(ROOT))]
    return found


def remove_project(project: str) -> None:
    """Remove whatever a test's project left, so a failing test still cleans up after itself."""
    objects = project_objects(project)
    removals = (
        ("containers", ("rm", "--force", "--volumes")),
        ("networks", ("network", "rm")),
        ("volumes", ("volume", "rm", "--force")),
    )
    for kind, command in removals:
        if objects[kind]:
            subprocess.run(["docker", *command, *objects[kind]], capture_output=True, check=False)
    (RUNS / f"{project}.env").unlink(missing_ok=True)


# ---------------------------------------------------------------- files


def file_digests(root: Path) -> dict[str, str]:
    """Relative path -> SHA-256 of every file under root, the pipeline's own scratch aside."""
    digests = {}
    for path in root.rglob("*"):
        relative = path.relative_to(root)
        if relative.parts[0] in SCRATCH_DIRECTORIES or "__pycache__" in relative.parts:
            continue
        if path.is_file() and not path.is_symlink():
            digests[relative.as_posix()] = hashlib.sha256(path.read_bytes()).hexdigest()
    return digests


def copy_repository(destination: Path) -> Path:
    """A copy of this checkout as git sees it (tracked files plus untracked ones that are not
    ignored), staged in a fresh git repository at `destination`. Sessions run there with the
    copy's own noxfile and pipeline package, so a fault is planted without touching the checkout."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for relative in filter(None, listed.split("\0")):
        source = ROOT / relative
        if not source.is_file():
            continue  # deleted in the working tree
        target = destination / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
    subprocess.run(["git", "init", "--quiet"], cwd=destination, check=True)
    subprocess.run(["git", "add", "--all"], cwd=destination, check=True)
    return destination


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def env_file_with_free_ports(environment_name: str, destination: Path) -> dict[str, int]:
    """Write the environment's template to `destination` with every host port variable its
    compose file publishes set to a free port; the ports, by variable."""
    environment = ENVIRONMENTS[environment_name]
    assert environment.template_file is not None
    ports = {name: free_port() for name in host_port_variables(environment.compose_file)}
    lines = []
    for line in environment.template_file.read_text().splitlines():
        name = line.partition("=")[0]
        lines.append(f"{name}={ports[name]}" if name in ports else line)
    destination.write_text("\n".join(lines) + "\n")
    destination.chmod(0o600)
    return ports


@dataclass(frozen=True)
class OperatorProject:
    """A throwaway operator stack of one environment: its project name and its variables."""

    environment_name: str
    name: str
    env_file: Path

    def variables(self) -> dict[str, str]:
        """The environment a `make dev-*` or `nox -s up(<env>)` for this project runs with."""
        return pipeline_environment(**{PROJECT_OVERRIDE_VARIABLE: self.name})


@contextlib.contextmanager
def throwaway_operator_project(environment_name: str) -> Iterator[OperatorProject]:
    """An operator project of its own (DASHTAM_PROJECT=dashtam-<env>-op-<id>), with an env
    file of free host ports; everything it made is removed afterwards, the env file too.

    The operator commands under test run exactly as a user runs them, beside whatever the
    user has on this engine (their own dashtam-<env> included), and never touch it.
    """
    environment = ENVIRONMENTS[environment_name]
    name = f"{environment.project}-op-{uuid.uuid4().hex[:6]}"
    env_file = operator_env_file(environment, name)
    env_file_with_free_ports(environment_name, env_file)
    try:
        yield OperatorProject(environment_name, name, env_file)
    finally:
        remove_project(name)
        env_file.unlink(missing_ok=True)


def project_snapshot(project: str) -> dict[str, dict]:
    """What a project has on this engine, to compare before and after a test: each container
    (ID, start time, health) and each volume; a volume no running container uses is read
    whole, a digest of every file in it (its data, byte for byte)."""
    containers = {
        service: (details["Id"], details["State"]["StartedAt"], health_of(details))
        for service, details in service_containers(project).items()
    }
    running = {
        mount["Name"]
        for details in service_containers(project).values()
        if details["State"]["Running"]
        for mount in details["Mounts"]
        if mount["Type"] == "volume"
    }
    volumes = {
        volume: inspect(volume)["CreatedAt"] if volume in running else volume_digest(volume)
        for volume in project_objects(project)["volumes"]
    }
    return {"containers": containers, "volumes": volumes}


def volume_digest(volume: str) -> str:
    """SHA-256 over every file's path and content in a volume, read by a throwaway container
    of the data store image (in both image sources), as root, with no network."""
    script = "cd /data && find . -type f -print0 | sort -z | xargs -0 -r sha256sum | sha256sum"
    return docker_output(
        "run",
        "--rm",
        "--network",
        "none",
        "--user",
        "0",
        "--entrypoint",
        "sh",
        "--volume",
        f"{volume}:/data:ro",
        image_references()["POSTGRES_IMAGE"],
        "-c",
        script,
    ).split()[0]


def service_containers(project: str) -> dict[str, dict]:
    """Service name -> `docker inspect` of its container, for one compose project."""
    found = {}
    for name in project_objects(project)["containers"]:
        details = inspect(name)
        found[details["Config"]["Labels"]["com.docker.compose.service"]] = details
    return found


def health_of(details: dict) -> str:
    state = details["State"]
    return state["Health"]["Status"] if state.get("Health") else state["Status"]


def wait_until(predicate, timeout: float, interval: float = 0.25):
    """Poll `predicate` until it returns something truthy: that value, or its last one."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)
