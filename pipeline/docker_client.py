"""The pipeline's one Docker layer: python-on-whales' client, and its typed errors as our lines.

Every Docker call of the pipeline goes through `docker()` (images, containers, volumes,
networks, compose, buildx, login); a failure reaches people through `translated`, which
turns python-on-whales' `DockerException` (with the CLI's own words) into one PipelineError
line that says what was being done and how to fix it. python-on-whales (and pydantic under
it) costs about half a second to import, so it is imported on first use, not with the
package: sessions that never ask Docker anything do not pay for it. The few calls that stay
plain `docker` argument lists each say why, where they are.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.errors import PipelineError
from pipeline.process import last_line, run

if TYPE_CHECKING:
    from python_on_whales import DockerClient


@functools.cache
def client_class() -> type[DockerClient]:
    """python-on-whales' client, imported on first use. Its debug line per command ("Running
    command: …") is kept out of nox's output, which shows every logger's debug lines."""
    from python_on_whales import DockerClient

    logging.getLogger("python_on_whales").setLevel(logging.INFO)
    return DockerClient


@functools.cache
def docker() -> DockerClient:
    """The engine's client (the `docker` CLI on PATH, as the user configured it)."""
    return client_class()()


def compose(
    files: list[Path],
    env_file: Path | list[Path] | None,
    project: str,
    profiles: list[str] | None = None,
) -> DockerClient:
    """A client for one compose project: its files, env file (or files, later ones winning)
    and name."""
    return client_class()(
        compose_files=list(files),
        compose_env_files=[env_file] if isinstance(env_file, Path) else list(env_file or []),
        compose_project_name=project,
        compose_profiles=profiles or [],
    )


def reason(error: Exception | subprocess.CompletedProcess[str]) -> str:
    """What the docker CLI said last about a failed call, a python-on-whales error or a
    finished process (its stderr, else stdout); when neither was captured (it went to the
    terminal), a pointer to it."""
    stderr, stdout = getattr(error, "stderr", None), getattr(error, "stdout", None)
    if stderr is None and not stdout:
        return "see its output above"
    text = stderr or stdout or ""
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    # `docker run` ends a refusal with a usage hint, and starts it with "docker: ".
    said = [
        line for line in text.splitlines() if line.strip() and not line.startswith("Run 'docker")
    ]
    if not said:
        return f"exit code {getattr(error, 'return_code', getattr(error, 'returncode', '?'))}"
    return said[-1].strip().removeprefix("docker: ")


@contextlib.contextmanager
def failing_as(line: Callable[[str], str]) -> Iterator[None]:
    """Run Docker calls; a python-on-whales error becomes PipelineError(line(<what docker
    said>)), for a caller whose line has a form of its own (Compose's: file, env file, cause)."""
    from python_on_whales.exceptions import DockerException

    try:
        yield
    except DockerException as error:
        raise PipelineError(line(reason(error))) from None


def translated(action: str, fix: str = "") -> contextlib.AbstractContextManager[None]:
    """Run Docker calls; a python-on-whales error becomes one line: `<action> failed (<what
    docker said>); <fix>.`"""

    def line(said: str) -> str:
        message = f"{action} failed ({said})"
        return f"{message}; {fix.rstrip('.')}." if fix else f"{message}."

    return failing_as(line)


def container_output(image: str, command: list[str], **options: object) -> str:
    """What a throwaway container (`docker run --rm`) of `image` printed on stdout, run to its
    end. Its stderr is kept for the error line: python-on-whales' plain `run` lets it through
    to the terminal instead, and the line would not say why."""
    lines = docker().container.run(image, command, remove=True, stream=True, **options)
    return b"".join(line for source, line in lines if source == "stdout").decode()


@contextlib.contextmanager
def best_effort() -> Iterator[None]:
    """Docker calls whose failure changes nothing for anyone (removing what may be gone
    already, what a container still uses): a failure is let go."""
    from python_on_whales.exceptions import DockerException

    with contextlib.suppress(DockerException):
        yield


def engine_json(kind: str, references: list[str]) -> list[dict]:
    """The engine's own `docker <container|image> inspect` JSON of `references`, in one call.

    A literal argument list, on purpose: the policy's views, the reports and the checks read
    the engine's JSON field for field, and python-on-whales' models re-serialise it (times in
    another form, absent fields as null); and the no-op build asks it without paying for
    python-on-whales' import.
    """
    result = run(["docker", kind, "inspect", *references])
    if result.returncode != 0:
        raise PipelineError(f"`docker {kind} inspect` failed ({last_line(result.stderr)}).")
    return json.loads(result.stdout)
