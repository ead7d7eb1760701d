"""What the lint checks share: the finding they report, where the linters are, what git
tracks, which compose and env files there are and what the compose files interpolate, and
where a finding's line is in a YAML file.

Every check takes the repository root (the checkout, or a temporary copy in the tests) and
reports paths relative to it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pipeline.environments import ENVIRONMENTS, ROOT, Environment
from pipeline.process import run

Severity = Literal["error", "warning"]

# A linter that hangs must not hang the session; every one of them answers in seconds.
TOOL_TIMEOUT_SECONDS = 300


@dataclass(frozen=True)
class Finding:
    """One problem at one place: `path` is relative to the repository root, `line` 1-based."""

    path: str
    line: int
    message: str
    severity: Severity = "error"

    def __str__(self) -> str:
        label = "warning: " if self.severity == "warning" else ""
        return f"{self.path}:{self.line}: {label}{self.message}"


Check = Callable[[Path], list[Finding]]


# ---------------------------------------------------------------- files and tools


def repo_relative(path: Path) -> str:
    """A path of this checkout (from the environments model) as a repo-relative string."""
    return path.relative_to(ROOT).as_posix()


def read_text(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace")


def find_tool(name: str) -> str | None:
    """The linter beside the running interpreter (the pipeline venv), else the one on PATH."""
    beside_python = Path(sys.executable).parent / name
    if beside_python.is_file():
        return str(beside_python)
    return shutil.which(name)


def missing_tool(name: str, path: str) -> Finding:
    return Finding(
        path,
        1,
        f"{name} is not installed; install the pipeline tools with `uv sync --group pipeline`",
    )


def one_line(text: str, limit: int = 300) -> str:
    """Multi-line tool output as one line, shortened when it runs on."""
    joined = "; ".join(part.strip() for part in text.splitlines() if part.strip())
    return joined if len(joined) <= limit else joined[: limit - 1] + "…"


def git_files(root: Path, *pathspecs: str) -> list[str] | None:
    """`git ls-files` under root (repo-relative), or None when root is not a git work tree."""
    git = shutil.which("git")
    if git is None:
        return None
    try:
        result = run(
            [git, "ls-files", "-z", "--", *pathspecs], cwd=root, timeout=TOOL_TIMEOUT_SECONDS
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if result.returncode != 0:
        return None
    return [name for name in result.stdout.split("\0") if name]


# ---------------------------------------------------------------- compose and env files


def compose_files(root: Path) -> list[Path]:
    directory = root / "compose"
    return sorted(directory.glob("*.yml")) + sorted(directory.glob("*.yaml"))


def env_source(environment: Environment, root: Path) -> Path | None:
    """The env file the checks read: the committed one, else the template (git-ignored files
    are the developer's or operator's own, so the checks stay the same on every machine)."""
    if environment.env_file_origin == "committed":
        return root / repo_relative(environment.env_file)
    if environment.template_file is None:
        return None
    return root / repo_relative(environment.template_file)


def tracked_env_files() -> tuple[str, ...]:
    """The env files meant to be in git: the templates and the committed env files."""
    tracked: list[str] = []
    for environment in ENVIRONMENTS.values():
        if environment.template_file is not None:
            tracked.append(repo_relative(environment.template_file))
        if environment.env_file_origin == "committed":
            tracked.append(repo_relative(environment.env_file))
    return tuple(dict.fromkeys(tracked))


@dataclass(frozen=True)
class Interpolation:
    """One `${VAR...}` or `$VAR` in a compose file."""

    name: str
    line: int
    required: bool  # no default: the env file must set it
    fail_fast: bool  # `${VAR:?message}`: unset or empty stops compose


VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
DEFAULT_OPERATORS = (":-", "-", ":+", "+")
OPERATORS = (":-", ":?", ":+", "-", "?", "+")


def interpolations(text: str) -> list[Interpolation]:
    """Every variable compose interpolates in `text`; `$$` escapes and comment lines skipped."""
    found: list[Interpolation] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.lstrip().startswith("#"):
            found += _scan(line, number, inside_default=False)
    return found


def _scan(segment: str, number: int, inside_default: bool) -> list[Interpolation]:
    found: list[Interpolation] = []
    index = 0
    while index < len(segment):
        if segment.startswith("$$", index):
            index += 2
            continue
        if segment.startswith("${", index):
            name = VARIABLE_NAME.match(segment, index + 2)
            if name is None:
                index += 2
                continue
            cursor = name.end()
            operator = next((op for op in OPERATORS if segment.startswith(op, cursor)), None)
            cursor += len(operator or "")
            depth, end = 1, cursor
            while end < len(segment) and depth:
                depth += {"{": 1, "}": -1}.get(segment[end], 0)
                end += 1
            argument = segment[cursor : end - 1] if depth == 0 else segment[cursor:]
            found.append(
                Interpolation(
                    name[0],
                    number,
                    required=not inside_default and operator not in DEFAULT_OPERATORS,
                    fail_fast=operator == ":?",
                )
            )
            nested_default = inside_default or operator in DEFAULT_OPERATORS
            found += _scan(argument, number, nested_default)
            index = end
            continue
        if segment[index] == "$":
            name = VARIABLE_NAME.match(segment, index + 1)
            if name is not None:
                found.append(Interpolation(name[0], number, not inside_default, False))
                index = name.end()
                continue
        index += 1
    return found


def json_path_route(path: str) -> list[str | int]:
    """`$.jobs.build.steps[2].run` (check-jsonschema's error paths) as a route."""
    route: list[str | int] = []
    for match in re.finditer(
        r"\.([^.\[\]]+)|\[(\d+)\]|\[[\"'](.+?)[\"']\]", path.removeprefix("$")
    ):
        name, index, quoted = match.groups()
        route.append(int(index) if index is not None else (name or quoted))
    return route
