"""The session section: whole commands as a user types them, images cached.

The one place the bench starts the pipeline's front door: the whole command, nox's and
make's start-up included, is the figure. Each runs `repeat` times after one warm-up run:
- `nox -s "verify(ci)"`;
- `make verify` (lint, build, every environment verified side by side);
- `nox -s publish -- --tag bench`: the digests `make verify` passed on, tagged in the
  registry, with their SBOMs;
- `make build` and `nox -s build-all` with nothing to do;
- `make lint` with nothing changed since a passing run (pipeline.lint.reuse);
- `nox -s base-images` with nothing to do (air-gapped mode only: upstream has no stand-ins).
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass

from bench.record import BenchRun
from pipeline import image_sources, images
from pipeline import stack as stacks
from pipeline.environments import ROOT
from pipeline.process import last_line, run, say

# A DASHTAM_<STAGE>_IMAGE or VIRTUAL_ENV of the bench's own would change what the commands run.
WITHHELD_VARIABLES = (
    *(stacks.image_variable(stage) for stage in images.images_that_run()),
    "VIRTUAL_ENV",
)
NOX = [sys.executable, "-m", "nox"]


@dataclass(frozen=True)
class Command:
    figure: str  # the figure's key in the report
    label: str  # how the report and the progress lines name it
    argv: tuple[str, ...]
    airgap_only: bool = False


COMMANDS = (
    Command("session.verify_ci.seconds", 'nox -s "verify(ci)"', (*NOX, "-s", "verify(ci)")),
    Command("session.make_verify.seconds", "make verify", ("make", "verify")),
    Command(
        "session.publish.seconds",
        "nox -s publish",
        (*NOX, "-s", "publish", "--", "--tag", "bench"),
    ),
    Command("session.make_build_noop.seconds", "make build", ("make", "build")),
    Command("session.build_all_noop.seconds", "nox -s build-all", (*NOX, "-s", "build-all")),
    Command("session.make_lint_noop.seconds", "make lint", ("make", "lint")),
    Command(
        "session.base_images_noop.seconds",
        "nox -s base-images",
        (*NOX, "-s", "base-images"),
        airgap_only=True,
    ),
)


def run_verify_sessions(bench_run: BenchRun) -> None:
    say("warming the cache (builds dashtam/development, production, callback)", speaker="bench")
    bench_run.notes.append(
        "The whole commands build and tag dashtam/development, production and callback "
        "(:latest, and the commit SHA on a clean tree) from this work tree, as they always "
        "do; the bench's own builds only use the dashtam-bench* namespaces."
    )
    images.build_stages(images.images_that_run(), show=False)
    process_environment = {
        key: value for key, value in os.environ.items() if key not in WITHHELD_VARIABLES
    }
    for command in COMMANDS:
        if command.airgap_only and bench_run.source != image_sources.AIRGAP:
            bench_run.notes.append(f"`{command.label}` is measured in air-gapped mode only.")
            continue
        # One warm-up run, not counted: the first after a build pays for what it left.
        time_command(bench_run, command, process_environment, repetition=None)
        for repetition in range(bench_run.repeat):
            time_command(bench_run, command, process_environment, repetition)


def time_command(
    bench_run: BenchRun, command: Command, environment: dict[str, str], repetition: int | None
) -> None:
    started = time.monotonic()
    result = run(command.argv, cwd=ROOT, env=environment, timeout=1800)
    seconds = time.monotonic() - started
    passed = result.returncode == 0
    counted = repetition is not None
    if counted:
        bench_run.sessions.append(
            {
                "command": command.label,
                "repetition": repetition,
                "seconds": round(seconds, 2),
                "passed": passed,
                "last_line": last_line(result.stderr),
            }
        )
        bench_run.add(command.figure, seconds)
    state = "passed" if passed else "FAILED"
    say(
        f"{command.label}: {seconds:.1f} s, {state}{'' if counted else ' (warm-up)'}",
        speaker="bench",
    )
    if not passed:
        bench_run.notes.append(
            f"`{command.label}` failed ({'warm-up' if not counted else repetition + 1}): "
            f"{last_line(result.stderr)}"
        )
