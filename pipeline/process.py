"""One way to run a command: output captured as text, never raising on a non-zero exit.

Everything in the pipeline that starts a program (docker, git, linters, uv) goes through
`run`, and turns a failure into a one-line PipelineError with `last_line` of what it said.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path


def run(
    command: Sequence[str],
    *,
    cwd: Path | str | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float | None = None,
    capture: bool = True,
    new_session: bool = False,
) -> subprocess.CompletedProcess[str]:
    """Run `command` to the end and return its exit code, with stdout and stderr as text.

    capture=False lets the output through to the terminal instead (long work people watch).
    new_session=True runs it in a session of its own: a signal to this process's group (an
    interrupt, a supervisor stopping it) does not reach it, so it finishes what it does.
    """
    return subprocess.run(
        list(command),
        cwd=cwd,
        env=dict(env) if env is not None else None,
        capture_output=capture,
        text=True,
        timeout=timeout,
        check=False,
        start_new_session=new_session,
    )


def last_line(text: str | None) -> str:
    """The last non-blank line of a program's output: usually the one that says why."""
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


def say(message: str, *, speaker: str = "dashtam") -> None:
    """A progress line for people, on stderr, flushed at once."""
    print(f"{speaker}: {message}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def environment_set(variables: Mapping[str, str | None]) -> Iterator[None]:
    """This process's environment with `variables` set (None: unset) for the duration, and
    as it was afterwards."""
    before = {name: os.environ.get(name) for name in variables}
    _set_environment(variables)
    try:
        yield
    finally:
        _set_environment(before)


def _set_environment(variables: Mapping[str, str | None]) -> None:
    for name, value in variables.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
