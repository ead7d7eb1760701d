"""The real `nox -s lint`, run twice on an unchanged copy of the checkout, runs its checks once:
nothing lint or its tools write is among its own inputs (else the reuse never happens). An
edit to a file it reads makes it run every check again.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.pipeline.conftest import copy_repository, run_nox

REUSED = "lint: not run again: these very inputs passed every check at "


@pytest.mark.docker
def test_an_unchanged_checkout_is_linted_once_and_an_edit_lints_it_again(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    copy = copy_repository(tmp_path_factory.mktemp("lint-reuse") / "repo")
    venvs = tmp_path_factory.mktemp("lint-reuse-venvs")

    first = run_nox("--envdir", str(venvs), "-s", "lint", cwd=copy)
    kept_first = _kept_inputs(copy)
    second = run_nox("--envdir", str(venvs), "-s", "lint", cwd=copy)
    compose = copy / "compose" / "common.yml"
    compose.write_text(compose.read_text() + "# an edit\n")
    third = run_nox("--envdir", str(venvs), "-s", "lint", cwd=copy)

    assert first.returncode == 0, first.tail()
    assert not any(line.startswith(REUSED) for line in first.lines), first.tail()
    assert second.returncode == 0, second.tail()
    assert any(line.startswith(REUSED) for line in second.lines), second.tail()
    assert third.returncode == 0, third.tail()
    assert not any(line.startswith(REUSED) for line in third.lines), third.tail()
    assert _kept_inputs(copy) not in ("", kept_first), "the edited run is kept under its inputs"


def _kept_inputs(copy: Path) -> str:
    record = copy / "reports" / "lint.json"
    return json.loads(record.read_text())["inputs"] if record.is_file() else ""
