"""Python code style: `ruff check` and `ruff format --check` over the repository, with the
settings of its pyproject.toml's [tool.ruff] table."""

from __future__ import annotations

import json
import subprocess
import tomllib
from pathlib import Path
from typing import Any

from pipeline.environments import ROOT
from pipeline.lint.common import (
    TOOL_TIMEOUT_SECONDS,
    Finding,
    find_tool,
    missing_tool,
    one_line,
    read_text,
)
from pipeline.process import run


def check_python_style(root: Path = ROOT) -> list[Finding]:
    """ruff's lint rules, then its formatter, on every Python file ruff does not exclude."""
    ruff = find_tool("ruff")
    if ruff is None:
        return [missing_tool("ruff", "pyproject.toml")]
    findings = _configuration_findings(root)
    lint = run(
        [ruff, "check", "--no-fix", "--output-format", "json", "."],
        cwd=root,
        timeout=TOOL_TIMEOUT_SECONDS,
    )
    diagnostics, failure = _diagnostics(lint, "check")
    if failure is not None:
        # The formatter reads the same settings, so it would fail the same way.
        return [*findings, failure]
    findings += [
        Finding(
            _relative(root, item["filename"]),
            int(item["location"]["row"]),
            f"{one_line(item['message'])} (ruff {item.get('code') or 'invalid-syntax'})",
        )
        for item in diagnostics
    ]
    formatting = run(
        [ruff, "format", "--check", "--output-format", "json", "."],
        cwd=root,
        timeout=TOOL_TIMEOUT_SECONDS,
    )
    diagnostics, failure = _diagnostics(formatting, "format")
    if failure is not None:
        return [*findings, failure]
    # One diagnostic per changed region; the file is the finding. Syntax errors are the
    # check's findings already.
    unformatted = dict.fromkeys(
        _relative(root, item["filename"])
        for item in diagnostics
        if item.get("code") == "unformatted"
    )
    findings += [
        Finding(path, 1, f"not formatted as `ruff format` writes it; run `ruff format {path}`")
        for path in unformatted
    ]
    return findings


def _configuration_findings(root: Path) -> list[Finding]:
    """A warning when the repository has no ruff settings, so ruff lints with its defaults."""
    if (root / "ruff.toml").is_file() or (root / ".ruff.toml").is_file():
        return []
    pyproject = root / "pyproject.toml"
    if not pyproject.is_file():
        problem = "missing"
    else:
        try:
            settings = tomllib.loads(read_text(pyproject))
        except tomllib.TOMLDecodeError:
            return []  # ruff fails on it and says where
        if "ruff" in settings.get("tool", {}):
            return []
        problem = "has no [tool.ruff] table"
    return [Finding("pyproject.toml", 1, f"{problem}; linted with ruff's defaults", "warning")]


def _diagnostics(
    result: subprocess.CompletedProcess[str], command: str
) -> tuple[list[dict[str, Any]], Finding | None]:
    """ruff's JSON diagnostics, or the finding that ruff did not run (a broken config...)."""
    if not result.stdout.strip() and result.returncode == 0:
        return [], None  # no Python file to check
    try:
        diagnostics = json.loads(result.stdout)
    except json.JSONDecodeError:
        output = one_line(result.stderr or result.stdout)
        return [], Finding("pyproject.toml", 1, f"ruff {command} failed: {output}")
    return diagnostics, None


def _relative(root: Path, filename: str) -> str:
    """ruff's absolute file name relative to the repository root."""
    try:
        return Path(filename).resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return filename
