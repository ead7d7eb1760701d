"""The CI skip guard (tests/conftest.py): a skip fails a CI run unless its reason is allowed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests import conftest as skip_guard

GUARD = Path(skip_guard.__file__)

A_SKIPPING_TEST = """\
import pytest

def test_that_runs():
    pass

def test_that_skips():
    pytest.skip("no widget here; install one to run this")
"""


def run_session(
    tmp_path: Path, *, ci: bool, guard: str | None = None
) -> subprocess.CompletedProcess[str]:
    """A pytest session over a skipping test, with the guard as its conftest."""
    (tmp_path / "conftest.py").write_text(guard or GUARD.read_text())
    (tmp_path / "test_sample.py").write_text(A_SKIPPING_TEST)
    variables = {name: value for name, value in os.environ.items() if name != "CI"}
    if ci:
        variables["CI"] = "true"
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", str(tmp_path)],
        cwd=tmp_path,
        env=variables,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_skip_fails_a_ci_run_naming_the_test_and_its_reason(tmp_path):
    result = run_session(tmp_path, ci=True)
    assert result.returncode == pytest.ExitCode.TESTS_FAILED, (
        f"skip in CI: exit code: expected 1, found {result.returncode}:\n{result.stdout}"
    )
    assert (
        "CI: skipped and not allowed: test_sample.py::test_that_skips: no widget here; "
        "install one to run this"
    ) in result.stdout, f"skip in CI: expected the test and its reason, found:\n{result.stdout}"


def test_a_skip_outside_ci_is_reported_and_passes(tmp_path):
    result = run_session(tmp_path, ci=False)
    assert result.returncode == 0, (
        f"skip outside CI: exit code: expected 0, found {result.returncode}:\n{result.stdout}"
    )
    assert "1 skipped" in result.stdout, f"skip outside CI: summary:\n{result.stdout}"


def test_an_allowed_reason_does_not_fail_a_ci_run(tmp_path):
    guard = GUARD.read_text().replace(
        "ALLOWED_IN_CI: tuple[tuple[str, str], ...] = (",
        'ALLOWED_IN_CI: tuple[tuple[str, str], ...] = ((r"^no widget here", "reviewed"),',
    )
    assert guard != GUARD.read_text(), "tests/conftest.py: ALLOWED_IN_CI line not found"
    result = run_session(tmp_path, ci=True, guard=guard)
    assert result.returncode == 0, (
        f"allowed skip in CI: exit code: expected 0, found {result.returncode}:\n{result.stdout}"
    )
