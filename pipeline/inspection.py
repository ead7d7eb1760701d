"""Reading running containers from outside: the inspector image, and one helper per container.

The inspector (pipeline/inspector.py, built into an image from docker/inspector/Dockerfile on
the selected source's Python image) joins a container's PID and network namespaces and runs
commands chrooted into its root with tools of its own (see its docstring). A `Helper` is one
such container kept running for as long as the checks read the target, fed one command at a
time through a pipe: a command costs a fork in the helper (milliseconds), not a `docker
exec`. pipeline.inspector_host makes a helper a testinfra host.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import hashlib
import json
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

from pipeline import engine, image_sources
from pipeline.docker_client import docker, translated
from pipeline.environments import ROOT
from pipeline.errors import PipelineError

INSPECTOR_FOLDER = ROOT / "docker" / "inspector"
INSPECTOR_DOCKERFILE = INSPECTOR_FOLDER / "Dockerfile"
INSPECTOR_SOURCES = (
    INSPECTOR_DOCKERFILE,
    INSPECTOR_FOLDER / "Dockerfile.dockerignore",
    INSPECTOR_FOLDER / "patch-tools.sh",
    ROOT / "pipeline" / "inspector.py",
)
INSPECTOR_REPOSITORY = "dashtam/inspector"
# What the helper may do, and no more: read every process's /proc entries and files
# (SYS_PTRACE, DAC_READ_SEARCH), enter the target's root (SYS_CHROOT), and become the app
# user to ask the kernel what that user may read or write (SETUID, SETGID).
HELPER_CAPABILITIES = ("SYS_PTRACE", "DAC_READ_SEARCH", "SYS_CHROOT", "SETUID", "SETGID")
HELPER_MEMORY = "128m"
HELPER_PIDS = 64


def inspector_image() -> str:
    """The inspector's reference: named after a digest of what it is built from, so a change
    of the server, its tools or the Python image makes a new one and nothing else does."""
    python_image = image_sources.image_references()["PYTHON_IMAGE"]
    digest = hashlib.sha256()
    for source in INSPECTOR_SOURCES:
        digest.update(source.read_bytes())
    digest.update((engine.image_id(python_image) or python_image).encode())
    return f"{INSPECTOR_REPOSITORY}:{digest.hexdigest()[:12]}"


@functools.cache
def ensure_inspector_image() -> str:
    """The inspector image, built when missing (cached by BuildKit; its tools come from the
    Debian mirror the first time)."""
    reference = inspector_image()
    if engine.image_exists(reference):
        return reference
    python_image = image_sources.image_references()["PYTHON_IMAGE"]
    with translated(
        "building docker/inspector/Dockerfile", "the checks read containers through it"
    ):
        docker().buildx.build(
            ROOT,
            file=INSPECTOR_DOCKERFILE,
            build_args={"PYTHON_IMAGE": python_image},
            tags=[reference],
            load=True,
            progress=False,
        )
    return reference


def helper_command(container: str, image: str) -> list[str]:
    """`docker run -i` of the inspector in the container's PID and network namespaces.

    A literal argument list, on purpose: the helper is a long-lived pipe (commands in,
    answers out), which python-on-whales' `run` (to the end, or output only) cannot hold.
    """
    capabilities = [f"--cap-add={name}" for name in HELPER_CAPABILITIES]
    return [
        "docker",
        "run",
        "--rm",
        "--interactive",
        f"--pid=container:{container}",
        f"--network=container:{container}",
        "--cap-drop=ALL",
        *capabilities,
        "--security-opt=no-new-privileges",
        f"--memory={HELPER_MEMORY}",
        f"--pids-limit={HELPER_PIDS}",
        "--read-only",
        "--user=0",
        "--log-driver=none",
        image,
    ]


@dataclass(frozen=True)
class Answer:
    rc: int
    stdout: bytes
    stderr: bytes


class Helper:
    """One inspector container beside one target, answering commands until closed."""

    def __init__(self, container: str, image: str) -> None:
        self.container = container
        self._lock = threading.Lock()
        self._process = subprocess.Popen(
            helper_command(container, image),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    @property
    def alive(self) -> bool:
        """Whether the helper still runs (it ends with its target's PID namespace)."""
        return self._process.poll() is None

    def run(self, command: str) -> Answer:
        """Run one shell command inside the target's root (see pipeline/inspector.py)."""
        with self._lock:
            try:
                self._process.stdin.write(json.dumps({"command": command}) + "\n")
                self._process.stdin.flush()
                line = self._process.stdout.readline()
            except (BrokenPipeError, OSError):
                line = ""
            if not line:
                raise PipelineError(
                    f"the inspector beside container {self.container[:12]} stopped "
                    f"({self._why_it_stopped()}); is the container still running?"
                )
        answer = json.loads(line)
        return Answer(
            answer["rc"], base64.b64decode(answer["stdout"]), base64.b64decode(answer["stderr"])
        )

    def _why_it_stopped(self) -> str:
        try:
            self._process.wait(timeout=5)
            said = self._process.stderr.read().strip().splitlines()
        except (subprocess.TimeoutExpired, OSError):
            said = []
        return said[-1] if said else "no output"

    def close(self) -> None:
        """End the server: its input closes, and `--rm` removes the helper container."""
        with self._lock, contextlib.suppress(OSError):
            self._process.stdin.close()

    def wait_closed(self) -> None:
        """Wait until the helper container is gone (after `close`)."""
        try:
            self._process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self._process.kill()


def read_facts(path: Path) -> dict[str, dict]:
    """The facts a verify run's suite recorded (service -> what its host showed), or {}."""
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}
