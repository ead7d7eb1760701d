"""Bad input stops the pipeline with one line that names the problem and the fix.

Each case plants one fault in a temporary copy of the repository (never in this checkout) or
in the environment of the run, then runs the nox session an operator would run there. The
run must exit non-zero with exactly one `nox > Session ... aborted: <message>` line (or nox's
own `Sessions not found` line) that names what is wrong and how to fix it, print no Python
traceback, and delete nothing: every file of the copy is still there, unchanged, and the
Docker objects of the environment it was pointed at are the same as before.

The lint faults are reported by `nox -s lint` as `file:line: message`; the installer's bad
input is checked on scripts/install-docker.sh itself, as an unprivileged user.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from pipeline.environments import ENVIRONMENTS, ROOT, environment, stage
from pipeline.errors import PipelineError
from pipeline.image_sources import BASE_IMAGES, SOURCE_VARIABLE
from pipeline.registry import PORT_VARIABLE as REGISTRY_PORT_VARIABLE
from pipeline.stack import PROJECT_OVERRIDE_VARIABLE, operator_env_file
from tests.pipeline.conftest import (
    TRACEBACK,
    Run,
    copy_repository,
    env_file_with_free_ports,
    file_digests,
    pipeline_environment,
    project_objects,
    run_nox,
)

INSTALL_HINT = r"install-docker\.sh"
REAL_DOCKER = shutil.which("docker") or "/usr/bin/docker"
# The verdict: nox's line when a session stops, or when it finds no session by that name.
VERDICT = re.compile(r"^nox > (?:Session \S+ (?:aborted|failed)|Sessions not found)")


@dataclass
class Planted:
    """What a case changed: variables for the run, and resources to hold until it ends."""

    variables: dict[str, str] = field(default_factory=dict)
    hold: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)


Plant = Callable[[Path, Path, Planted], None]  # (repository copy, scratch folder, planted)


@dataclass(frozen=True)
class BadInput:
    session: str
    plant: Plant
    expected: tuple[str, ...]  # regular expressions the one line must all match


# ---------------------------------------------------------------- the faults


def no_docker_daemon(copy: Path, scratch: Path, planted: Planted) -> None:
    planted.variables["DOCKER_HOST"] = f"unix://{scratch / 'nonexistent.sock'}"


def fake_docker(case_statement: str) -> Plant:
    """A `docker` first on PATH that answers `case_statement` itself and passes on the rest."""

    def plant(copy: Path, scratch: Path, planted: Planted) -> None:
        bin_directory = scratch / "bin"
        bin_directory.mkdir()
        wrapper = bin_directory / "docker"
        wrapper.write_text(
            f'#!/bin/sh\ncase "$1 $2" in\n{case_statement}\nesac\nexec {REAL_DOCKER} "$@"\n'
        )
        wrapper.chmod(0o755)
        planted.variables["PATH"] = f"{bin_directory}{os.pathsep}{os.environ['PATH']}"

    return plant


COMPOSE_MISSING = fake_docker(
    "compose*) echo \"docker: 'compose' is not a docker command.\" >&2; exit 1 ;;"
)
COMPOSE_TOO_OLD = fake_docker('"compose version") echo 2.12.2; exit 0 ;;')
BUILDX_MISSING = fake_docker(
    "buildx*) echo \"docker: 'buildx' is not a docker command.\" >&2; exit 1 ;;"
)
BUILDX_TOO_OLD = fake_docker(
    '"buildx version") echo "github.com/docker/buildx v0.9.1 ed00243"; exit 0 ;;'
)
ENGINE_TOO_OLD = fake_docker('"version --format") echo 20.10.24; exit 0 ;;')


def remove(relative: str) -> Plant:
    def plant(copy: Path, scratch: Path, planted: Planted) -> None:
        (copy / relative).unlink(missing_ok=True)

    return plant


def drop_variable(relative: str, name: str) -> Plant:
    def plant(copy: Path, scratch: Path, planted: Planted) -> None:
        path = copy / relative
        lines = path.read_text().splitlines()
        kept = [line for line in lines if not line.startswith(f"{name}=")]
        assert len(kept) == len(lines) - 1, f"{relative} sets {name} once"
        path.write_text("\n".join(kept) + "\n")

    return plant


def add_dependency(copy: Path, scratch: Path, planted: Planted) -> None:
    """A dependency in pyproject.toml that uv.lock has never heard of."""
    pyproject = copy / "pyproject.toml"
    text = pyproject.read_text()
    edited = text.replace("dependencies = [\n", 'dependencies = [\n    "six>=1.16",\n', 1)
    assert edited != text, "pyproject.toml has a `dependencies = [` list"
    pyproject.write_text(edited)


def host_port_taken(copy: Path, scratch: Path, planted: Planted) -> None:
    """A dev project of its own (not the user's dashtam-dev, which may be up), its env file
    with free ports except APP_PORT: a socket this test listens on."""
    holder = planted.hold.enter_context(socket.socket())
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    project = f"{ENVIRONMENTS['dev'].project}-bad-input-{uuid.uuid4().hex[:6]}"
    planted.variables[PROJECT_OVERRIDE_VARIABLE] = project
    env_file = copy / operator_env_file(ENVIRONMENTS["dev"], project).relative_to(ROOT)
    env_file_with_free_ports("dev", env_file)
    text = env_file.read_text()
    env_file.write_text(re.sub(r"(?m)^APP_PORT=.*$", f"APP_PORT={holder.getsockname()[1]}", text))


def registry_port_taken(copy: Path, scratch: Path, planted: Planted) -> None:
    """DASHTAM_REGISTRY_PORT names a port a socket of this test listens on."""
    holder = planted.hold.enter_context(socket.socket())
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    planted.variables[REGISTRY_PORT_VARIABLE] = str(holder.getsockname()[1])


def registry_port(value: str) -> Plant:
    def plant(copy: Path, scratch: Path, planted: Planted) -> None:
        planted.variables[REGISTRY_PORT_VARIABLE] = value

    return plant


def production_image_in_the_shell(copy: Path, scratch: Path, planted: Planted) -> None:
    """The shell names an image for the production stage; a verify run builds its own."""
    planted.variables["DASHTAM_PRODUCTION_IMAGE"] = "dashtam/production:latest"


MISSING_STAND_IN = "dashtam-airgap/postgres:reliability-missing"


def stand_in_missing(copy: Path, scratch: Path, planted: Planted) -> None:
    """The copy's pipeline names a PostgreSQL stand-in that was never built."""
    planted.variables[SOURCE_VARIABLE] = "airgap"
    sources = copy / "pipeline" / "image_sources.py"
    postgres = next(image for image in BASE_IMAGES if image.key == "postgres")
    text = sources.read_text()
    assert f'"{postgres.airgap}"' in text
    sources.write_text(text.replace(f'"{postgres.airgap}"', f'"{MISSING_STAND_IN}"'))


def nothing(copy: Path, scratch: Path, planted: Planted) -> None:
    """The fault is in the command line itself."""


def image_source(value: str) -> Plant:
    def plant(copy: Path, scratch: Path, planted: Planted) -> None:
        planted.variables[SOURCE_VARIABLE] = value

    return plant


CASES = {
    "no-docker-daemon-for-status": BadInput(
        "status(ci)", no_docker_daemon, (r"(?i)docker (daemon|engine)", INSTALL_HINT)
    ),
    "no-docker-daemon-for-build": BadInput(
        "build(production)", no_docker_daemon, (r"(?i)docker (daemon|engine)", INSTALL_HINT)
    ),
    "no-docker-daemon-for-verify": BadInput(
        "verify(ci)", no_docker_daemon, (r"(?i)docker (daemon|engine)", INSTALL_HINT)
    ),
    "no-docker-daemon-for-base-images": BadInput(
        "base-images", no_docker_daemon, (r"(?i)docker (daemon|engine)", INSTALL_HINT)
    ),
    "no-docker-daemon-for-registry": BadInput(
        "registry", no_docker_daemon, (r"(?i)docker (daemon|engine)", INSTALL_HINT)
    ),
    "compose-missing": BadInput(
        "status(ci)", COMPOSE_MISSING, (r"Compose", r"missing", INSTALL_HINT)
    ),
    "compose-too-old": BadInput(
        "status(ci)", COMPOSE_TOO_OLD, (r"Compose", r"2\.12\.2", r"too old", INSTALL_HINT)
    ),
    "buildx-missing": BadInput(
        "build(production)", BUILDX_MISSING, (r"Buildx", r"missing", INSTALL_HINT)
    ),
    "buildx-too-old": BadInput(
        "build(production)", BUILDX_TOO_OLD, (r"Buildx", r"0\.9\.1", r"too old", INSTALL_HINT)
    ),
    "engine-too-old": BadInput(
        "status(ci)", ENGINE_TOO_OLD, (r"Engine", r"20\.10\.24", r"too old", INSTALL_HINT)
    ),
    "ci-env-file-missing": BadInput(
        "status(ci)",
        remove("env/.env.ci"),
        (r"env/\.env\.ci", r"missing", r"git checkout -- env/\.env\.ci"),
    ),
    "prod-env-file-missing": BadInput(
        "up(prod)",
        remove("env/.env.prod"),
        (r"env/\.env\.prod\b", r"missing", r"env/\.env\.prod\.example"),
    ),
    "env-file-lacks-a-required-variable": BadInput(
        "up(ci)",
        drop_variable("env/.env.ci", "POSTGRES_PASSWORD"),
        (r"POSTGRES_PASSWORD", r"env/\.env\.ci"),
    ),
    "uv-lock-missing": BadInput(
        "build(production)", remove("uv.lock"), (r"uv\.lock", r"missing", r"uv lock")
    ),
    "uv-lock-out-of-date": BadInput(
        "build(production)",
        add_dependency,
        (r"uv\.lock", r"out of date", r"pyproject\.toml", r"uv lock"),
    ),
    "unknown-environment": BadInput("verify(nope)", nothing, (r"verify\(nope\)",)),
    "unknown-stage": BadInput("build(nope)", nothing, (r"build\(nope\)",)),
    "host-port-in-use": BadInput(
        "up(dev)", host_port_taken, (r"APP_PORT", r"env/\.env\.dashtam-dev-bad-input-", r"in use")
    ),
    "registry-port-in-use": BadInput(
        "registry",
        registry_port_taken,
        (r"port \d+ on 127\.0\.0\.1", r"in use", REGISTRY_PORT_VARIABLE, r"nox -s registry"),
    ),
    "registry-port-in-use-for-build": BadInput(
        "build(production)",
        registry_port_taken,
        (r"port \d+ on 127\.0\.0\.1", r"in use", REGISTRY_PORT_VARIABLE),
    ),
    "image-variable-in-the-shell-for-verify": BadInput(
        "verify(ci)",
        production_image_in_the_shell,
        (r"DASHTAM_PRODUCTION_IMAGE is set", r"unset DASHTAM_PRODUCTION_IMAGE"),
    ),
    "registry-port-not-a-port": BadInput(
        "registry", registry_port("fivethousand"), (REGISTRY_PORT_VARIABLE, r"'fivethousand'")
    ),
    "airgap-stand-in-missing-for-status": BadInput(
        "status(ci)", stand_in_missing, (re.escape(MISSING_STAND_IN), r"nox -s base-images")
    ),
    "airgap-stand-in-missing-for-build": BadInput(
        "build(production)", stand_in_missing, (re.escape(MISSING_STAND_IN), r"nox -s base-images")
    ),
    "unknown-image-source-for-status": BadInput(
        "status(ci)", image_source("foo"), (SOURCE_VARIABLE, r"'foo'", r"upstream", r"airgap")
    ),
    "unknown-image-source-for-build": BadInput(
        "build(production)",
        image_source("foo"),
        (SOURCE_VARIABLE, r"'foo'", r"upstream", r"airgap"),
    ),
}


# ---------------------------------------------------------------- running a case


@dataclass
class Outcome:
    case: BadInput
    run: Run
    files_before: dict[str, str]
    files_after: dict[str, str]
    docker_before: dict[str, list[str]]
    docker_after: dict[str, list[str]]

    @property
    def verdicts(self) -> list[str]:
        return [line for line in self.run.lines if VERDICT.match(line)]


def targeted_project(session: str, variables: dict[str, str]) -> str | None:
    """The operator project a session is pointed at, if any (DASHTAM_PROJECT, else the
    environment's own)."""
    match = re.search(r"\((\w+)\)$", session)
    if not match or match[1] not in ENVIRONMENTS:
        return None
    return variables.get(PROJECT_OVERRIDE_VARIABLE) or ENVIRONMENTS[match[1]].project


@pytest.fixture(scope="module", params=list(CASES))
def outcome(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Outcome]:
    request.getfixturevalue("docker_engine")  # to list the environment's objects, at least
    case = CASES[request.param]
    scratch = tmp_path_factory.mktemp(request.param)
    copy = copy_repository(scratch / "repo")
    planted = Planted()
    with planted.hold:
        case.plant(copy, scratch, planted)
        project = targeted_project(case.session, planted.variables)
        files_before = file_digests(copy)
        docker_before = project_objects(project) if project else {}
        result = run_nox(
            "-s", case.session, cwd=copy, env=pipeline_environment(**planted.variables)
        )
    yield Outcome(
        case,
        result,
        files_before,
        file_digests(copy),
        docker_before,
        project_objects(project) if project else {},
    )


@pytest.mark.docker
def test_bad_input_exits_non_zero(outcome: Outcome):
    assert outcome.run.returncode != 0, (
        f"`nox -s {outcome.case.session}`: exit code: expected non-zero, found 0:\n"
        + outcome.run.tail()
    )


@pytest.mark.docker
def test_bad_input_is_named_with_its_fix_in_one_line(outcome: Outcome):
    verdicts = outcome.verdicts
    assert len(verdicts) == 1, (
        f"`nox -s {outcome.case.session}`: expected one verdict line, found {verdicts}:\n"
        + outcome.run.tail()
    )
    missing = [pattern for pattern in outcome.case.expected if not re.search(pattern, verdicts[0])]
    assert not missing, f"`nox -s {outcome.case.session}`: verdict {verdicts[0]!r} lacks {missing}"


@pytest.mark.docker
def test_bad_input_prints_no_traceback(outcome: Outcome):
    assert TRACEBACK not in outcome.run.output, (
        f"`nox -s {outcome.case.session}` printed a traceback:\n{outcome.run.output[-6000:]}"
    )


@pytest.mark.docker
def test_bad_input_deletes_no_file(outcome: Outcome):
    changed = sorted(
        path
        for path, digest in outcome.files_before.items()
        if outcome.files_after.get(path) != digest
    )
    assert not changed, (
        f"`nox -s {outcome.case.session}`: files deleted or changed: expected none, found {changed}"
    )


@pytest.mark.docker
def test_bad_input_leaves_the_environments_docker_objects_alone(outcome: Outcome):
    assert outcome.docker_after == outcome.docker_before, (
        f"`nox -s {outcome.case.session}`: Docker objects of its environment: expected "
        f"{outcome.docker_before}, found {outcome.docker_after}"
    )


# ---------------------------------------------------------------- names the model refuses


@pytest.mark.parametrize(
    ("lookup", "known"),
    [
        (environment, ENVIRONMENTS),
        (stage, ("base", "development", "builder", "production", "callback")),
    ],
    ids=["environment", "stage"],
)
def test_unknown_name_is_refused_in_one_line_listing_the_known_ones(lookup, known):
    with pytest.raises(PipelineError) as raised:
        lookup("nope")
    message = str(raised.value)
    names_all = all(name in message for name in known)
    assert "\n" not in message and "'nope'" in message and names_all, (
        f"{lookup.__name__}('nope'): expected one line naming 'nope' and {list(known)}, "
        f"found {message!r}"
    )


# ---------------------------------------------------------------- lint: file and line


def line_number(path: Path, prefix: str) -> int:
    return next(
        number
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if line.startswith(prefix)
    )


def replace_line(path: Path, prefix: str, replacement: str) -> int:
    """Replace the first line starting with `prefix`; its number."""
    number = line_number(path, prefix)
    lines = path.read_text().splitlines()
    lines[number - 1] = replacement
    path.write_text("\n".join(lines) + "\n")
    return number


def unused_variable(copy: Path) -> tuple[str, int]:
    env_file = copy / "env" / ".env.ci"
    with env_file.open("a") as handle:
        handle.write("APP_RELIABILITY_UNUSED=1\n")
    return "env/.env.ci", len(env_file.read_text().splitlines())


COMPOSE_CI = "compose/docker-compose.ci.yml"
APP_IMAGE = "    image: ${DASHTAM_PRODUCTION_IMAGE"


def compose_tab(copy: Path) -> tuple[str, int]:
    path = copy / COMPOSE_CI
    original = path.read_text().splitlines()[line_number(path, APP_IMAGE) - 1]
    return COMPOSE_CI, replace_line(path, APP_IMAGE, "\t" + original.lstrip())


def compose_misindented(copy: Path) -> tuple[str, int]:
    path = copy / COMPOSE_CI
    original = path.read_text().splitlines()[line_number(path, APP_IMAGE) - 1]
    return COMPOSE_CI, replace_line(path, APP_IMAGE, "  " + original)


def dockerfile_missing_argument(copy: Path) -> tuple[str, int]:
    return "docker/Dockerfile", replace_line(copy / "docker" / "Dockerfile", "WORKDIR ", "WORKDIR")


def dockerfile_unknown_instruction(copy: Path) -> tuple[str, int]:
    path = copy / "docker" / "Dockerfile"
    original = path.read_text().splitlines()[line_number(path, "COPY ") - 1]
    return "docker/Dockerfile", replace_line(path, "COPY ", "COPPY" + original.removeprefix("COPY"))


LINT_FAULTS: dict[str, tuple[Callable[[Path], tuple[str, int]], bool]] = {
    # fault -> (plant it and say where it is, whether lint must fail)
    "unused-env-variable-is-a-warning": (unused_variable, False),
    "compose-yaml-with-a-tab": (compose_tab, True),
    "compose-yaml-misindented": (compose_misindented, True),
    "dockerfile-instruction-without-argument": (dockerfile_missing_argument, True),
    "dockerfile-unknown-instruction": (dockerfile_unknown_instruction, True),
}


@dataclass
class LintOutcome:
    fault: str
    location: str  # path:line
    must_fail: bool
    run: Run


@pytest.fixture(scope="module")
def lint_venvs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One nox envdir for every copy's lint session: the lock is the same, so is the venv."""
    return tmp_path_factory.mktemp("lint-venvs")


@pytest.fixture(scope="module", params=list(LINT_FAULTS))
def lint_outcome(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, lint_venvs: Path
) -> LintOutcome:
    request.getfixturevalue("docker_engine")  # the lint session runs `docker compose config`
    plant, must_fail = LINT_FAULTS[request.param]
    copy = copy_repository(tmp_path_factory.mktemp(request.param) / "repo")
    path, line = plant(copy)
    result = run_nox("--envdir", str(lint_venvs), "-s", "lint", cwd=copy)
    return LintOutcome(request.param, f"{path}:{line}", must_fail, result)


@pytest.mark.docker
def test_lint_exit_code_matches_the_fault(lint_outcome: LintOutcome):
    failed = lint_outcome.run.returncode != 0
    assert failed == lint_outcome.must_fail, (
        f"`nox -s lint` with {lint_outcome.fault}: "
        f"expected {'failure' if lint_outcome.must_fail else 'exit 0'}, "
        f"found exit {lint_outcome.run.returncode}:\n{lint_outcome.run.tail()}"
    )


@pytest.mark.docker
def test_lint_names_the_file_and_line_of_the_fault(lint_outcome: LintOutcome):
    prefix = f"{lint_outcome.location}: " + ("" if lint_outcome.must_fail else "warning: ")
    found = [line for line in lint_outcome.run.lines if line.startswith(prefix)]
    assert found, (
        f"`nox -s lint` with {lint_outcome.fault}: expected a line starting {prefix!r}, found:\n"
        + "\n".join(line for line in lint_outcome.run.lines if re.match(r"^[\w./-]+:\d+: ", line))
    )


@pytest.mark.docker
def test_lint_prints_no_traceback(lint_outcome: LintOutcome):
    assert TRACEBACK not in lint_outcome.run.output, (
        f"`nox -s lint` with {lint_outcome.fault} printed a traceback"
    )


# ---------------------------------------------------------------- scripts/install-docker.sh


INSTALLER = ROOT / "scripts" / "install-docker.sh"
NOBODY = 65534


def test_installer_rejects_an_unknown_option_with_its_usage():
    result = subprocess.run(
        ["bash", str(INSTALLER), "--bogus"], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 2, (
        f"install-docker.sh --bogus: exit code: expected 2, found {result.returncode}"
    )
    assert result.stderr.strip().startswith("usage: scripts/install-docker.sh"), (
        f"install-docker.sh --bogus: stderr: expected the usage line, found {result.stderr!r}"
    )


@dataclass
class InstallerRun:
    returncode: int
    stdout: str
    stderr: str
    attempts: list[str]  # what the fake dockerd and apt-get were asked to do


# What is installed on the (simulated) host: the fake dockerd's version, or None for no dockerd.
INSTALLED_ENGINES = {
    "no-engine-installed": None,
    "an-old-engine-installed": "Docker version 20.10.24, build 297e128",
    "a-current-engine-installed-but-stopped": "Docker version 26.1.5, build 411e817",
}


@pytest.fixture(scope="module", params=list(INSTALLED_ENGINES))
def installer_as_non_root(request: pytest.FixtureRequest) -> Iterator[InstallerRun]:
    """install-docker.sh as `nobody` with no engine answering; dockerd and apt-get are fakes
    that only write down that they were called, so nothing is ever installed or started."""
    if shutil.which("setpriv") is None or os.geteuid() != 0:
        pytest.skip("needs root and setpriv to run the installer as an unprivileged user")
    version = INSTALLED_ENGINES[request.param]
    # Not under pytest's tmp_path: that is private to root, and the installer runs as nobody.
    scratch = Path(tempfile.mkdtemp(prefix="dashtam-reliability-installer-"))
    try:
        scratch.chmod(0o777)
        attempts = scratch / "attempts"
        bin_directory = scratch / "bin"
        bin_directory.mkdir()
        (bin_directory / "docker").symlink_to(REAL_DOCKER)
        fakes = {"apt-get": 'echo "apt-get $*" >> ' + str(attempts) + "; exit 1"}
        if version:
            fakes["dockerd"] = (
                f'if [ "$1" = --version ]; then echo "{version}"; exit 0; fi\n'
                f'echo "dockerd $*" >> {attempts}; exit 1'
            )
        for name, body in fakes.items():
            fake = bin_directory / name
            fake.write_text(f"#!/bin/sh\n{body}\n")
            fake.chmod(0o755)
        # The host's own dockerd must not be found: only folders without one stay on PATH.
        path = [str(bin_directory)] + [
            folder
            for folder in os.environ["PATH"].split(os.pathsep)
            if folder and not (Path(folder) / "dockerd").exists()
        ]
        environment = {
            "PATH": os.pathsep.join(path),
            "HOME": str(scratch),
            "DOCKER_HOST": f"unix://{scratch / 'nonexistent.sock'}",
            "DOCKERD_LOG": str(scratch / "dockerd.log"),
            # Bounds the wait should the script try to start an engine anyway.
            "DOCKERD_TIMEOUT": "3",
        }
        command = [
            "setpriv",
            f"--reuid={NOBODY}",
            f"--regid={NOBODY}",
            "--clear-groups",
            "bash",
            str(INSTALLER),
        ]
        result = subprocess.run(
            command, env=environment, capture_output=True, text=True, timeout=120, check=False
        )
        recorded = attempts.read_text().splitlines() if attempts.exists() else []
        yield InstallerRun(result.returncode, result.stdout, result.stderr, recorded)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def test_installer_as_non_root_exits_non_zero(installer_as_non_root: InstallerRun):
    assert installer_as_non_root.returncode != 0, (
        "install-docker.sh as nobody, no engine: expected non-zero exit, found 0"
    )


def test_installer_as_non_root_explains_in_two_lines(installer_as_non_root: InstallerRun):
    lines = [line for line in installer_as_non_root.stderr.splitlines() if line.strip()]
    assert len(lines) == 2 and "not root" in lines[0] and "sudo" in lines[1], (
        "install-docker.sh as nobody, no engine: stderr: expected two lines (no engine and "
        f"not root; run with sudo or install Docker yourself), found {lines}; "
        f"stdout {installer_as_non_root.stdout!r}"
    )


def test_installer_as_non_root_attempts_no_install_or_start(installer_as_non_root: InstallerRun):
    assert (
        not installer_as_non_root.attempts
        and "starting dockerd" not in installer_as_non_root.stdout
    ), (
        "install-docker.sh as nobody: expected no apt-get or dockerd run, found "
        f"{installer_as_non_root.attempts} and stdout {installer_as_non_root.stdout!r}"
    )
