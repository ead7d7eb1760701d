"""Which nox command lines verify every environment side by side, and with how many jobs;
what one run reads once and sets for its suite only."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from pipeline import stack as stacks
from pipeline import verification
from pipeline.environments import ENVIRONMENTS, ROOT, SERVICES
from pipeline.policy import load_policy
from pipeline.process import environment_set


@pytest.mark.parametrize(
    ("arguments", "side_by_side"),
    [
        pytest.param([], True, id="nox-alone-runs-the-default-sessions-with-verify"),
        pytest.param(["-s", "verify"], True, id="the-verify-family"),
        pytest.param(["-s", "build-all", "lint", "verify"], True, id="make-verify"),
        pytest.param(["--sessions=verify"], True, id="sessions-equals-verify"),
        pytest.param(["-t", "verify"], True, id="the-verify-tag"),
        pytest.param(["-s", "verify(ci)"], False, id="one-environment-runs-as-asked"),
        pytest.param(["-s", "lint"], False, id="no-verify-session"),
        pytest.param(["-s", "verify(ci)", "--", "verify"], False, id="posargs-are-not-sessions"),
        pytest.param(["-k", "verify"], False, id="a-keyword-expression-is-left-alone"),
        pytest.param(["-s", "up(dev)"], False, id="an-operator-session"),
    ],
)
def test_which_command_lines_verify_every_environment(arguments, side_by_side):
    found = verification.verifies_every_environment(arguments)
    assert found is side_by_side, (
        f"nox {' '.join(arguments)}: expected {side_by_side}, found {found}"
    )


def test_the_default_job_count_is_bounded_by_environments_cpus_and_memory(monkeypatch, tmp_path):
    meminfo = tmp_path / "meminfo"
    monkeypatch.setattr(verification, "Path", lambda _: meminfo)
    monkeypatch.setattr(verification.os, "cpu_count", lambda: 2)
    meminfo.write_text(f"MemAvailable:   {24 * 1024 * 1024} kB\n")
    assert verification.default_jobs() == len(ENVIRONMENTS), "24 GiB, 2 CPUs: every environment"
    meminfo.write_text(f"MemAvailable:   {2 * 1024 * 1024} kB\n")
    assert verification.default_jobs() == 2, "2 GiB: two environments at once"
    meminfo.write_text("MemAvailable:   100 kB\n")
    assert verification.default_jobs() == 1, "almost no memory: one at a time, never zero"
    monkeypatch.setattr(verification.os, "cpu_count", lambda: 1)
    meminfo.write_text(f"MemAvailable:   {24 * 1024 * 1024} kB\n")
    assert verification.default_jobs() == 2, "one CPU: two at once at most"


class CountingCompose:
    """python-on-whales' compose client, as far as `config` goes: counts its readings."""

    def __init__(self, model: dict) -> None:
        self.model = model
        self.readings = 0
        self.compose = self

    def config(self, return_json: bool) -> dict:
        self.readings += 1
        return self.model


def test_a_run_reads_its_stack_s_compose_config_once(monkeypatch, tmp_path):
    environment = ENVIRONMENTS["ci"]
    stack = stacks.Stack(environment, "dashtam-ci-verify-0", tmp_path / ".env")
    client = CountingCompose({"services": {name: {} for name in SERVICES}})
    monkeypatch.setattr(stacks.Stack, "compose_client", lambda self: client)
    cases = verification.policy_cases(stack)
    again = verification.policy_cases(stack)
    assert cases == again and len(cases) == len(SERVICES) * len(load_policy().controls), (
        f"expected every control on every service, found {len(cases)} cases"
    )
    assert client.readings == 1, f"expected one `compose config`, found {client.readings}"


def test_the_suite_s_variables_are_set_for_the_run_only(monkeypatch):
    monkeypatch.setenv("DASHTAM_VERIFY_PROJECT", "the-caller-s")
    monkeypatch.setenv("DASHTAM_PRODUCTION_IMAGE", "the-caller-s")
    monkeypatch.delenv("DASHTAM_VERIFY_FACTS_FILE", raising=False)
    variables = {
        "DASHTAM_VERIFY_PROJECT": "the-run-s",
        "DASHTAM_VERIFY_FACTS_FILE": "facts",
        "DASHTAM_PRODUCTION_IMAGE": None,  # unset for the run
    }
    with environment_set(variables):
        seen = {name: os.environ.get(name) for name in variables}
    after = {name: os.environ.get(name) for name in variables}
    assert seen == variables, f"expected the run's variables during it, found {seen}"
    expected = {
        "DASHTAM_VERIFY_PROJECT": "the-caller-s",
        "DASHTAM_VERIFY_FACTS_FILE": None,
        "DASHTAM_PRODUCTION_IMAGE": "the-caller-s",
    }
    assert after == expected, f"expected the caller's environment back, found {after}"


@pytest.mark.parametrize(("graceful", "timeout"), [(True, "10"), (False, "0")])
def test_a_throwaway_stack_is_stopped_at_once_an_operators_gracefully(
    tmp_path, monkeypatch, graceful, timeout
):
    scripts: list[str] = []
    monkeypatch.setattr(stacks, "run", lambda command, **options: scripts.append(command[-1]))
    stack = stacks.Stack(ENVIRONMENTS["ci"], "dashtam-ci-verify-0", tmp_path / ".env")
    stack.down(remove_volumes=True, graceful=graceful)
    assert f"down --remove-orphans --timeout {timeout} --volumes" in scripts[0]


def test_a_verify_run_tears_its_stack_down_at_once(tmp_path, monkeypatch):
    calls: list[dict] = []
    stack = stacks.Stack(ENVIRONMENTS["ci"], "dashtam-ci-verify-0", tmp_path / ".env")
    monkeypatch.setattr(stack, "down", lambda **options: calls.append(options))
    monkeypatch.setattr(stack, "leftovers", lambda: {})
    verification._keep_or_tear_down(stack, keep=False)
    assert calls == [{"remove_volumes": True, "graceful": False}]


def test_make_and_the_noxfile_keep_bytecode_even_when_the_caller_turns_it_off():
    """nox and every process it starts read and write bytecode under BYTECODE_CACHE, so a
    caller's PYTHONDONTWRITEBYTECODE=1 does not make each run compile nox and its workers
    again; both places must name the same folder."""
    caller = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    caller.pop("PYTHONPYCACHEPREFIX", None)
    dry_run = subprocess.run(
        ["make", "--dry-run", "--always-make", "lint"],
        cwd=ROOT,
        env=caller,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    nox_line = next(line for line in dry_run.splitlines() if " nox " in f"{line} ")
    expected = f"PYTHONDONTWRITEBYTECODE= PYTHONPYCACHEPREFIX={verification.BYTECODE_CACHE} "
    assert nox_line.startswith(expected), f"make lint runs: {nox_line}"
    noxfile = subprocess.run(
        [
            sys.executable,
            "-c",
            "import os, runpy; runpy.run_path('noxfile.py', run_name='noxfile'); "
            "print(repr(os.environ['PYTHONDONTWRITEBYTECODE']), os.environ['PYTHONPYCACHEPREFIX'])",
        ],
        cwd=ROOT,
        env=caller,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert noxfile == ["''", str(verification.BYTECODE_CACHE)], noxfile
