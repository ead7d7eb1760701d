"""Which nox command lines verify every environment side by side, and with how many jobs."""

from __future__ import annotations

import pytest

from pipeline import verification
from pipeline.environments import ENVIRONMENTS


@pytest.mark.parametrize(
    ("arguments", "side_by_side"),
    [
        pytest.param([], True, id="nox-alone-runs-the-default-sessions-with-verify"),
        pytest.param(["-s", "verify"], True, id="the-verify-family"),
        pytest.param(["-s", "lint", "build-all", "verify"], True, id="make-verify"),
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
