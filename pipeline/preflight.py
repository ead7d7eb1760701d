"""Checks that run before any Docker work, so bad input gets one clear line, not a stack trace."""

from __future__ import annotations

import functools
import re
import shutil
import subprocess
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from pipeline.environments import ROOT
from pipeline.errors import PipelineError
from pipeline.process import run

MIN_COMPOSE = (2, 20)  # `up --wait`, `config --format json` and healthcheck start_interval
MIN_BUILDX = (0, 11)
# Healthcheck start_interval needs 25; the installer installs and accepts 26 and newer.
MIN_ENGINE = (26, 0)

INSTALL_HINT = "run `sudo scripts/install-docker.sh`"
# Why a test that needs Docker cannot run, and how to make it run.
NO_ENGINE = "no Docker engine answers (`docker info` failed); start one: " + INSTALL_HINT


def _version_tuple(text: str) -> tuple[int, ...]:
    match = re.search(r"(\d+)\.(\d+)", text)
    return (int(match.group(1)), int(match.group(2))) if match else (0, 0)


def _docker(*args: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    """Plain `docker`: these checks run before every build, a no-op one included, where
    python-on-whales' half-second import would be a third of the time; and they need a
    timeout, which python-on-whales does not take."""
    try:
        return run(["docker", *args], timeout=timeout)
    except FileNotFoundError:
        raise PipelineError(f"the `docker` command is not installed; {INSTALL_HINT}.") from None


def engine_answers() -> bool:
    """True when a Docker engine answers `docker info` within 20 s (no error when not)."""
    try:
        return _docker("info", timeout=20).returncode == 0
    except (PipelineError, subprocess.TimeoutExpired):
        return False


@functools.cache  # a run that builds and then boots asks once
def require_engine() -> str:
    """The engine's version; a one-line error when no engine answers or it is too old."""
    try:
        result = _docker("version", "--format", "{{.Server.Version}}")
    except subprocess.TimeoutExpired:
        raise PipelineError(
            f"the Docker daemon did not answer within 20 s; check `docker info`, or {INSTALL_HINT}."
        ) from None
    if result.returncode != 0 or not result.stdout.strip():
        raise PipelineError(
            "the Docker daemon is not reachable (`docker version` found no server); "
            f"start it, or {INSTALL_HINT}."
        )
    version = result.stdout.strip()
    if _version_tuple(version) < MIN_ENGINE:
        raise PipelineError(
            f"Docker Engine {version} is too old (need >= {MIN_ENGINE[0]}); {INSTALL_HINT}."
        )
    return version


def _require_plugin(name: str, version_args: tuple[str, ...], minimum: tuple[int, int]) -> str:
    """A CLI plugin's version; a one-line error when it is missing or older than `minimum`."""
    result = _docker(*version_args)
    if result.returncode != 0:
        raise PipelineError(
            f"Docker {name} is missing (`docker {version_args[0]}`); {INSTALL_HINT}."
        )
    words = result.stdout.split()
    # `compose version --short` prints the bare version, `buildx version` "github.com/… vX.Y …".
    version = words[0] if len(words) == 1 else (words[1] if len(words) > 1 else "")
    if _version_tuple(version) < minimum:
        raise PipelineError(
            f"Docker {name} {version} is too old (need >= {'.'.join(map(str, minimum))}); "
            f"{INSTALL_HINT}."
        )
    return version


@functools.cache
def require_compose() -> str:
    return _require_plugin("Compose v2", ("compose", "version", "--short"), MIN_COMPOSE)


@functools.cache
def require_buildx() -> str:
    return _require_plugin("Buildx", ("buildx", "version"), MIN_BUILDX)


def require_lock_file() -> None:
    """uv.lock exists and matches pyproject.toml, else the image build would fail deep inside."""
    lock_file = ROOT / "uv.lock"
    if not lock_file.is_file():
        raise PipelineError("uv.lock is missing; run `uv lock` and commit it.")
    if shutil.which("uv") is None:
        return  # nothing to check with; the build's `uv sync --locked` still refuses a stale lock
    result = run(["uv", "lock", "--check"], cwd=ROOT, timeout=120)
    if result.returncode != 0:
        raise PipelineError(
            "uv.lock is out of date with pyproject.toml; run `uv lock` and commit both."
        )


def require_all(*checks: Callable[[], object]) -> list[object]:
    """Run independent checks at once and return their results in order.

    Each check mostly waits on a process (`docker version`, `uv lock --check`, …), so a
    no-op build pays for the slowest instead of their sum. A failure is raised as if they
    had run one after another: the first failing check in the order given.
    """
    with ThreadPoolExecutor(max_workers=len(checks)) as pool:
        futures = [pool.submit(check) for check in checks]
    return [future.result() for future in futures]
