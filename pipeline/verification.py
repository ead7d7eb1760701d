"""One verify run: build what the environment uses, boot it, check it, report, tear down."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from pipeline import provenance
from pipeline import stack as stacks
from pipeline.environments import ENVIRONMENTS, REPORTS, ROOT, SERVICES
from pipeline.environments import environment as environment_named
from pipeline.errors import PipelineError
from pipeline.process import environment_set, say

# What the verification suite (tests/infra) reads to find the stack it checks.
ENVIRONMENT_NAME_VARIABLE = "DASHTAM_VERIFY_ENVIRONMENT_NAME"
PROJECT_VARIABLE = "DASHTAM_VERIFY_PROJECT"
ENV_FILE_VARIABLE = "DASHTAM_VERIFY_ENV_FILE"
COMPOSE_FILE_VARIABLE = "DASHTAM_VERIFY_COMPOSE_FILE"
# Where the suite leaves what the inspector read, for the report.
FACTS_FILE_VARIABLE = "DASHTAM_VERIFY_FACTS_FILE"
# The containers the session read (service -> ID): the suite inspects them without listing
# the project again (and without python-on-whales' half-second import).
CONTAINERS_VARIABLE = "DASHTAM_VERIFY_CONTAINERS"
# Where the suite lists every case it collected before any narrowing, for the verdict.
COLLECTED_FILE_VARIABLE = "DASHTAM_VERIFY_COLLECTED_FILE"
# The stack's `docker compose config`, as the session read it: one reading per run.
CONFIG_FILE_VARIABLE = "DASHTAM_VERIFY_CONFIG_FILE"


# What one environment's stack and checks take at most, to size the default job count.
MEMORY_PER_ENVIRONMENT = 1 << 30
# nox's options that select sessions: their values name sessions, tags or keywords.
_SELECTING = ("-s", "-e", "--session", "--sessions", "-t", "--tags", "-k", "--keywords")


def default_jobs() -> int:
    """How many environments to verify at once: every one, as long as the machine has the
    memory for their stacks and CPUs enough not to make it slower than one after another."""
    cpus = os.cpu_count() or 1
    by_memory = len(ENVIRONMENTS)
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                by_memory = int(line.split()[1]) * 1024 // MEMORY_PER_ENVIRONMENT
    return max(1, min(len(ENVIRONMENTS), 2 * cpus, by_memory))


def verifies_every_environment(arguments: list[str]) -> bool:
    """Whether a nox command line runs the whole verify family (`nox`, `-s verify`,
    `-t verify`): then its sessions run side by side. One environment (`verify(ci)`) or a
    keyword selection runs as it is asked, one session after another."""
    selected: list[str] = []
    option = None
    for argument in arguments:
        if argument == "--":
            break
        if argument.startswith("-"):
            name, _, value = argument.partition("=")
            option = name if name in _SELECTING else None
            if option and value:
                selected.append(f"{option}={value}")
        elif option:
            selected.append(f"{option}={argument}")
    if not selected:
        return True  # nox's default sessions, which verify every environment
    return any(
        entry.split("=", 1)[1] == "verify" and not entry.startswith(("-k", "--keywords"))
        for entry in selected
    )


# Where the suite's bytecode is cached: a run compiles pytest and the checks
# once, not on every run, even when the caller's environment sets PYTHONDONTWRITEBYTECODE.
BYTECODE_CACHE = ROOT / ".dashtam" / "pycache"


def suite_variables(
    stack: stacks.Stack,
    facts_file: Path | None = None,
    collected_file: Path | None = None,
    config_file: Path | None = None,
) -> dict[str, str]:
    """The variables that point tests/infra at a booted stack, and keep the run quick; with
    `config_file`, the stack's compose config is written there for the suite to read."""
    if config_file is not None:
        config_file.touch(mode=0o600)  # dev's and test's hold their passwords, resolved
        config_file.write_text(json.dumps(stack.config()))
    return {
        ENVIRONMENT_NAME_VARIABLE: stack.environment.name,
        PROJECT_VARIABLE: stack.project,
        ENV_FILE_VARIABLE: str(stack.env_file),
        COMPOSE_FILE_VARIABLE: str(stack.compose_file),
        FACTS_FILE_VARIABLE: str(facts_file or ""),
        COLLECTED_FILE_VARIABLE: str(collected_file or ""),
        CONFIG_FILE_VARIABLE: str(config_file or ""),
        CONTAINERS_VARIABLE: json.dumps(stack.container_ids()),
        # An empty value is "unset" to Python: bytecode is written, under BYTECODE_CACHE.
        "PYTHONDONTWRITEBYTECODE": "",
        "PYTHONPYCACHEPREFIX": str(BYTECODE_CACHE),
        # The suite's one third-party plugin, testinfra, is named in its arguments; no other
        # that a package in the venv registers is loaded.
        "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
    }


def run_suite_here(variables: dict[str, str], junit: Path, arguments: Sequence[str] = ()) -> int:
    """tests/infra in this process (`pytest.main`): its hosts use the helpers this process
    started while the stack booted, and what it has imported is not imported again.
    pytest's exit status."""
    import pytest

    command = [*infra_pytest_arguments(junit), *arguments]
    say(f"pytest {' '.join(command)} (in this process)")
    # testinfra logs every command at INFO, and nox's handler would print each one.
    logging.getLogger("testinfra").setLevel(logging.WARNING)
    with environment_set(variables), contextlib.chdir(ROOT):
        return int(pytest.main(command))


def infra_pytest_arguments(junit: Path) -> list[str]:
    """pytest's arguments for the verification suite (after `pytest` itself)."""
    return [
        "tests/infra",
        # testinfra's plugin: the `host` fixture, parametrized by --hosts.
        *("-p", "pytest11.testinfra"),
        f"--junitxml={junit}",
        "-o",
        "junit_family=xunit1",
        # Built-in plugins the suite has no use for (no cache between runs, doctests,
        # unittest classes, pastebin, py.path fixtures): each costs start-up time.
        *("-p", "no:cacheprovider", "-p", "no:doctest", "-p", "no:unittest"),
        *("-p", "no:pastebin", "-p", "no:legacypath"),
    ]


@dataclass
class VerifyOutcome:
    passed: bool  # every check that ran passed, and the run was whole or narrowed on purpose
    junit: Path
    summary: Path
    seconds: float  # the whole run: build, boot, checks, teardown
    verdict: str = "FAIL"  # the record's: PASS, PARTIAL, INTERRUPTED or FAIL


def _raise_interrupt(signum, frame):  # pragma: no cover - signal plumbing
    raise KeyboardInterrupt


def verify(
    environment_name: str,
    run_checks: Callable[[dict[str, str], Path], int] | None = None,
    *,
    keep: bool = False,
    build: bool = True,
    images_from: Path | None = None,
    compose_file: Path | None = None,
    arguments: tuple[str, ...] = (),
) -> VerifyOutcome:
    """Run tests/infra against a freshly booted, throwaway stack, in this process, with
    `arguments` added to the suite's (recorded: a narrowed run is never a PASS). The suite's
    inspector helpers start while the stack becomes healthy. `run_checks(suite_variables,
    junit_path)` runs the suite some other way instead (the self-test runs it in a process of
    its own) and returns pytest's exit status.

    The images it builds are pushed to the registry and the stack runs them by digest
    (<registry>/dashtam/<stage>@sha256:…), which the report names: another checkout building
    at the same time cannot swap them. They also carry a local tag of this run's own
    (verify-<id>), removed with the stack, so no image prune takes them mid-run. The stack is
    torn down after success, failure, Ctrl-C or SIGTERM, unless `keep`. `images_from`: a
    folder `nox -s save-images` wrote; its images are booted instead of a build
    (pipeline.promotion), the same way.
    """
    # The suite imports this module's names only: these stay out of its imports.
    from pipeline import images, inspector_host, promotion, reports

    environment = environment_named(environment_name)
    if build:
        refuse_images_from_the_shell(environment.stages)
    run_id = uuid.uuid4().hex[:8]
    run_tag = f"verify-{run_id}" if build else None
    built = {}
    if build and images_from is not None:
        built = promotion.promoted_references(images_from, environment.stages, run_tag)
    elif build:
        results = images.build_stages(environment.stages, show=False, extra_tags=(run_tag,))
        built = {result.stage: result.reference for result in results}
    exit_code: int | None = None
    judgement = reports.Judgement("INTERRUPTED")
    summary = reports.markdown_path(environment.name)
    started = time.monotonic()
    # Made after the build and right before the try: its throwaway secrets never outlive it.
    stack = stacks.verify_stack(
        environment, run_id=run_id, compose_file=compose_file, image_tag=run_tag, images=built
    )
    run_junit, run_facts = stack.run_file("junit.xml"), stack.run_file("facts.json")
    run_collected, run_config = stack.run_file("collected.json"), stack.run_file("config.json")
    stack.owned_paths += (run_junit, run_facts, run_collected, run_config)
    in_process = run_checks is None
    previous_term = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        stack.check_host_ports_free()
        say(f"booting {stack.project} ({environment.description})")

        def start_helpers() -> None:
            inspector_host.start_helpers(stack.container_ids().values())

        stack.up(started=start_helpers if in_process else None)
        say(f"{stack.project} healthy after {time.monotonic() - started:.1f} s; checking it")
        variables = suite_variables(stack, run_facts, run_collected, run_config)
        try:
            if in_process:
                exit_code = run_suite_here(variables, run_junit, arguments)
            else:
                exit_code = run_checks(variables, run_junit)
        finally:
            if exit_code != 0:
                stack.print_unhealthy()
            checks_run = reports.ChecksRun(
                exit_code, arguments, read_collected(run_collected), policy_cases(stack)
            )
            bound = provenance.binding(environment, stack.env_file, stack.compose_file)
            summary, judgement = reports.publish(
                environment.name, stack, run_junit, run_facts, checks_run, bound
            )
            reasons = "".join(f"; {reason}" for reason in judgement.reasons)
            say(f"report: {summary.relative_to(REPORTS.parent)} ({judgement.verdict}{reasons})")
    finally:
        # A second Ctrl-C must not leave half a stack behind.
        previous_int = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            if in_process:
                inspector_host.close_helpers()
            _keep_or_tear_down(stack, keep)
        finally:
            signal.signal(signal.SIGINT, previous_int)
            signal.signal(signal.SIGTERM, previous_term)
    junit = reports.junit_path(environment.name)
    passed = judgement.verdict == "PASS" or (judgement.verdict == "PARTIAL" and bool(arguments))
    seconds = time.monotonic() - started
    return VerifyOutcome(passed, junit, summary, seconds, judgement.verdict)


def read_collected(path: Path) -> tuple[str, ...] | None:
    """The cases the suite collected before narrowing (its conftest writes them), or None."""
    try:
        return tuple(json.loads(path.read_text()))
    except (OSError, ValueError):
        return None


def policy_cases(stack: stacks.Stack) -> frozenset[str]:
    """Every control on every service the stack runs: what a whole run must show, computed
    from the policy and Compose's model, not from the suite that reports them."""
    from pipeline.policy import load_policy

    try:
        declared = stack.config().get("services", {})
    except PipelineError:
        return frozenset({"(compose config could not be read)"})
    environment_name = stack.environment.name
    return frozenset(
        f"test_policy[{environment_name}-{service}-{control.id}]"
        for control in load_policy().controls
        for service in SERVICES
        if service in declared
    )


def refuse_images_from_the_shell(stage_names: tuple[str, ...]) -> None:
    """A verify run boots the digests it built; compose would let the shell's
    DASHTAM_<STAGE>_IMAGE win over them, so the run stops before it builds anything."""
    for stage_name in stage_names:
        variable = stacks.image_variable(stage_name)
        if os.environ.get(variable):
            raise PipelineError(
                f"{variable} is set in this shell ({os.environ[variable]}); a verify run boots "
                f"the image it builds, by digest: unset it (`unset {variable}`) and verify again."
            )


def _keep_or_tear_down(stack: stacks.Stack, keep: bool) -> None:
    """Leave the stack up and say how to reach and remove it, or remove all of it."""
    if keep:
        say(f"kept {stack.project} up (--keep). Reach it: `{stack.compose_command()} ps`")
        made = " ".join(
            str(path.relative_to(ROOT)) for path in (stack.variables_file, *stack.owned_paths)
        )
        say(f"remove it: `{stack.compose_command()} down --volumes && rm -rf {made}`")
        return
    # Nobody keeps a verify run's stack or its data: a graceful shutdown of its services
    # (uvicorn draining, postgres' checkpoint) would be CPU the other environments need.
    stack.down(remove_volumes=True, graceful=False)
    leftovers = {kind: names for kind, names in stack.leftovers().items() if names}
    if leftovers:
        raise PipelineError(f"{stack.project}: teardown left {leftovers}; remove them by hand.")
