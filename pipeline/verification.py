"""One verify run: build what the environment uses, boot it, check it, report, tear down."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pipeline import stack as stacks
from pipeline.environments import REPORTS, ROOT
from pipeline.environments import environment as environment_named
from pipeline.errors import PipelineError

# What the testinfra suite reads to find the stack it checks.
ENV_VARIABLE = "DASHTAM_VERIFY_ENV"
PROJECT_VARIABLE = "DASHTAM_VERIFY_PROJECT"
ENV_FILE_VARIABLE = "DASHTAM_VERIFY_ENV_FILE"
COMPOSE_FILE_VARIABLE = "DASHTAM_VERIFY_COMPOSE_FILE"


# Where the suite's bytecode is cached: a run compiles pytest, testinfra and the checks
# once, not on every run, even when the caller's environment sets PYTHONDONTWRITEBYTECODE.
BYTECODE_CACHE = ROOT / ".dashtam" / "pycache"


def checks_environment(stack: stacks.Stack) -> dict[str, str]:
    """The variables that point tests/infra at a booted stack, and keep the run quick."""
    return {
        ENV_VARIABLE: stack.environment.name,
        PROJECT_VARIABLE: stack.project,
        ENV_FILE_VARIABLE: str(stack.env_file),
        COMPOSE_FILE_VARIABLE: str(stack.compose_file),
        # An empty value is "unset" to Python: bytecode is written, under BYTECODE_CACHE.
        "PYTHONDONTWRITEBYTECODE": "",
        "PYTHONPYCACHEPREFIX": str(BYTECODE_CACHE),
        # Only the plugin the suite uses (testinfra, named in infra_pytest_arguments): not
        # every pytest plugin some package in the venv registers.
        "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
    }


def infra_pytest_arguments(junit: Path) -> list[str]:
    """pytest's arguments for the verification suite (after `pytest` itself)."""
    return [
        "tests/infra",
        f"--junitxml={junit}",
        "-o",
        "junit_family=xunit1",
        "-p",
        "testinfra",
        # Built-in plugins the suite has no use for (no cache between runs, doctests,
        # unittest classes, pastebin, py.path fixtures): each costs start-up time.
        *("-p", "no:cacheprovider", "-p", "no:doctest", "-p", "no:unittest"),
        *("-p", "no:pastebin", "-p", "no:legacypath"),
    ]


@dataclass
class VerifyOutcome:
    passed: bool
    junit: Path
    summary: Path
    boot_seconds: float


def _raise_interrupt(signum, frame):  # pragma: no cover - signal plumbing
    raise KeyboardInterrupt


def verify(
    environment_name: str,
    run_checks: Callable[[dict[str, str], Path], bool],
    *,
    keep: bool = False,
    build: bool = True,
    compose_file: Path | None = None,
) -> VerifyOutcome:
    """Run `run_checks(test_env, junit_path)` against a freshly booted, throwaway stack.

    The stack is torn down after success, failure, Ctrl-C or SIGTERM, unless `keep`.
    """
    from pipeline import images, reports  # the suite imports this module's names only

    environment = environment_named(environment_name)
    stack = stacks.verify_stack(environment, compose_file=compose_file)
    if build:
        images.build_stages(environment.stages, progress=False)
    REPORTS.mkdir(parents=True, exist_ok=True)
    junit = reports.junit_path(environment.name)
    junit.unlink(missing_ok=True)
    previous_term = signal.signal(signal.SIGTERM, _raise_interrupt)
    passed = False
    summary = reports.markdown_path(environment.name)
    started = time.monotonic()
    try:
        stack.check_host_ports_free()
        stacks.say(f"booting {stack.project} ({environment.description})")
        stack.up()
        boot_seconds = time.monotonic() - started
        stacks.say(f"{stack.project} healthy after {boot_seconds:.1f} s; checking it")
        test_env = checks_environment(stack)
        try:
            passed = run_checks(test_env, junit)
        finally:
            if not passed:
                stack.print_unhealthy()
            summary = reports.write_summary(environment.name, stack)
            stacks.say(f"report: {summary.relative_to(REPORTS.parent)}")
    finally:
        # A second Ctrl-C must not leave half a stack behind.
        previous_int = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            if keep:
                stacks.say(
                    f"kept {stack.project} up (--keep). Reach it: `{stack.compose_command()} ps`"
                )
                stacks.say(
                    f"remove it: `{stack.compose_command()} down --volumes "
                    f"&& rm -f {stack.variables_file.relative_to(REPORTS.parent)}`"
                )
            else:
                stack.down(remove_volumes=True)
                leftovers = {kind: names for kind, names in stack.leftovers().items() if names}
                if leftovers:
                    raise PipelineError(
                        f"{stack.project}: teardown left {leftovers}; remove them by hand."
                    )
        finally:
            signal.signal(signal.SIGINT, previous_int)
            signal.signal(signal.SIGTERM, previous_term)
    return VerifyOutcome(passed, junit, summary, time.monotonic() - started)
