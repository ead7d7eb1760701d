"""A whole lint run that passed is not run again on the same inputs, and on anything else it is.

The checks are stand-ins that record that they ran; the checkout is a small git repository
of the test's own, the record a file of its own. Each way an input can change is one case
that must make lint run again: a digest that left it out would reuse a verdict reached on
other files, and the case goes red.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from pipeline import lint
from pipeline.lint import common, reuse
from pipeline.lint.common import Finding
from tests.unit.test_lint import git


@pytest.fixture
def checkout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A git checkout with tracked files, an ignored env file and a script; lint's ROOT and
    its record point at it; Compose's version is fixed."""
    root = tmp_path / "checkout"
    (root / "env").mkdir(parents=True)
    (root / "src").mkdir()
    (root / "src" / "main.py").write_text("app = None\n")
    (root / "compose.yml").write_text("services: {}\n")
    (root / "run.sh").write_text("#!/bin/sh\n")
    (root / ".gitignore").write_text("env/.env*\n")
    (root / "env" / ".env.dev").write_text("APP_ENV=development\n")
    git(root, "init", "-q")
    git(root, "add", "compose.yml", "run.sh", ".gitignore", "src")
    monkeypatch.setattr(lint, "ROOT", root)
    monkeypatch.setattr(reuse, "REPORTS", root / "reports")
    monkeypatch.setattr(reuse, "compose_version", lambda root: "Docker Compose version v2.26.1")
    return root


@pytest.fixture
def ran(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Two stand-in checks, each finding one warning; the names of those that ran."""
    names: list[str] = []

    def stand_in(name: str) -> common.Check:
        def check(root: Path) -> list[Finding]:
            names.append(name)
            return [Finding(f"{name}.txt", 1, f"{name} ran", "warning")]

        return check

    monkeypatch.setattr(lint, "CHECKS", {name: stand_in(name) for name in ("yaml", "python")})
    return names


def test_the_same_inputs_print_the_passing_run_again_without_running_a_check(
    checkout: Path, ran: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert lint.main([]) == 0
    first = capsys.readouterr().out.splitlines()

    assert lint.main([]) == 0
    second = capsys.readouterr().out.splitlines()

    assert ran == ["yaml", "python"], "the second run ran no check"
    assert (
        second[:-1]
        == first
        == [
            "yaml.txt:1: warning: yaml ran",
            "python.txt:1: warning: python ran",
            "lint: 0 error(s), 2 warning(s)",
        ]
    )
    assert second[-1].startswith("lint: not run again: these very inputs passed every check at ")
    assert second[-1].endswith("(reports/lint.json); --again runs them anyway")


def _edit_tracked(root: Path) -> None:
    (root / "compose.yml").write_text("services: {app: {}}\n")


def _edit_ignored_env_file(root: Path) -> None:
    (root / "env" / ".env.dev").write_text("APP_ENV=production\n")


def _add_untracked(root: Path) -> None:
    (root / "compose.override.yml").write_text("services: {}\n")


def _remove_file(root: Path) -> None:
    (root / "run.sh").unlink()


def _make_executable(root: Path) -> None:
    (root / "run.sh").chmod(0o755)


def _track_a_file(root: Path) -> None:
    git(root, "add", "--force", "env/.env.dev")


def _link_elsewhere(root: Path) -> None:
    (root / "certs").symlink_to(root / "env")


CHANGES: dict[str, Callable[[Path], None]] = {
    "a tracked file's content": _edit_tracked,
    "a git-ignored env file": _edit_ignored_env_file,
    "a new untracked file": _add_untracked,
    "a removed file": _remove_file,
    "a file's mode": _make_executable,
    "what git tracks": _track_a_file,
    "a symbolic link": _link_elsewhere,
}


@pytest.mark.parametrize("change", CHANGES.values(), ids=CHANGES.keys())
def test_any_change_to_what_lint_reads_runs_every_check_again(
    checkout: Path, ran: list[str], change: Callable[[Path], None]
) -> None:
    lint.main([])
    change(checkout)

    assert lint.main([]) == 0
    assert ran == ["yaml", "python"] * 2


def test_an_environment_variable_or_another_compose_runs_every_check_again(
    checkout: Path, ran: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    lint.main([])
    monkeypatch.setenv("COMPOSE_PROFILES", "debug")
    lint.main([])
    monkeypatch.setattr(reuse, "compose_version", lambda root: "Docker Compose version v2.30.0")
    lint.main([])

    assert ran == ["yaml", "python"] * 3


def test_what_the_pipeline_and_tools_write_is_no_input(checkout: Path, ran: list[str]) -> None:
    lint.main([])
    for written in (
        ".nox/lint/bin/python",
        ".venv/pyvenv.cfg",
        ".dashtam/runs/x.json",
        "reports/verify-ci.json",
        "src/__pycache__/main.cpython-311.pyc",
        ".ruff_cache/0.6/cache",
    ):
        (checkout / written).parent.mkdir(parents=True, exist_ok=True)
        (checkout / written).write_text("output\n")

    lint.main([])

    assert ran == ["yaml", "python"]


def test_a_run_with_an_error_is_not_kept(
    checkout: Path, ran: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(
        lint.CHECKS, "yaml", lambda root: ran.append("failing") or [Finding("a", 1, "broken")]
    )

    assert lint.main([]) == 1
    assert lint.main([]) == 1
    assert ran == ["failing", "python"] * 2
    assert not reuse.record_path().exists()


def test_a_run_during_which_a_file_changed_is_not_kept(
    checkout: Path, ran: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The checks of the first run read an edit made while they ran; with the file back as it
    was, the inputs are the first run's starting ones, but its verdict is not theirs."""
    original = (checkout / "compose.yml").read_text()

    def editing(root: Path) -> list[Finding]:
        ran.append("editing")
        _edit_tracked(root)
        return []

    monkeypatch.setitem(lint.CHECKS, "yaml", editing)
    lint.main([])
    (checkout / "compose.yml").write_text(original)
    lint.main([])

    assert ran == ["editing", "python"] * 2


@pytest.mark.parametrize(
    "arguments", [["--check", "python"], ["--no-compose"]], ids=["check", "no-compose"]
)
def test_a_partial_run_is_neither_kept_nor_reused(
    checkout: Path, ran: list[str], arguments: list[str]
) -> None:
    lint.main(arguments)
    lint.main(arguments)
    assert not reuse.record_path().exists()

    lint.main([])
    lint.main(arguments)
    assert ran.count("python") == 4


def test_again_runs_every_check_and_keeps_the_run(checkout: Path, ran: list[str]) -> None:
    lint.main([])
    assert lint.main(["--again"]) == 0
    lint.main([])

    assert ran == ["yaml", "python"] * 2


@pytest.mark.parametrize("content", ["", "{not json", '{"inputs": 1}', "[]"])
def test_a_record_that_cannot_be_read_means_lint_runs(
    checkout: Path, ran: list[str], content: str
) -> None:
    reuse.record_path().parent.mkdir(parents=True)
    reuse.record_path().write_text(content)

    assert lint.main([]) == 0
    assert ran == ["yaml", "python"]
    assert json.loads(reuse.record_path().read_text())["output"][-1].startswith("lint: 0 error")


def test_a_record_that_cannot_be_written_is_one_line_and_the_verdict_stands(
    checkout: Path, ran: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    reuse.record_path().parent.write_text("a file where the reports folder should be\n")

    assert lint.main([]) == 0
    assert lint.main([]) == 0

    last_lines = [line for line in capsys.readouterr().out.splitlines() if "not kept" in line]
    assert ran == ["yaml", "python"] * 2
    assert len(last_lines) == 2
    assert last_lines[0].startswith("lint: this run is not kept (")
