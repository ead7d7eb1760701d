"""Reading running containers from outside: the inspector image, and one run of it per container.

The inspector (pipeline/inspector.py, built into an image from docker/inspector/Dockerfile on
the selected source's Python image) joins a container's PID and network namespaces and reads
its processes, sockets, mounts and files through /proc. Nothing runs inside the container,
so an image with no shell is read the same as one with every tool.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from pipeline import engine, image_sources
from pipeline.environments import ROOT
from pipeline.errors import PipelineError
from pipeline.process import last_line, run

INSPECTOR_DOCKERFILE = ROOT / "docker" / "inspector" / "Dockerfile"
INSPECTOR_SOURCE = ROOT / "pipeline" / "inspector.py"
INSPECTOR_REPOSITORY = "dashtam/inspector"
INSPECTOR_TIMEOUT_SECONDS = 120


def inspector_image() -> str:
    """The inspector's reference: named after a digest of what it is built from, so a change
    of the program, its Dockerfile or the Python image makes a new one and nothing else does."""
    python_image = image_sources.image_references()["PYTHON_IMAGE"]
    digest = hashlib.sha256()
    for part in (
        INSPECTOR_DOCKERFILE.read_bytes(),
        INSPECTOR_SOURCE.read_bytes(),
        (engine.image_id(python_image) or python_image).encode(),
    ):
        digest.update(part)
    return f"{INSPECTOR_REPOSITORY}:{digest.hexdigest()[:12]}"


def ensure_inspector_image() -> str:
    """The inspector image, built when missing (a second or two; cached by BuildKit)."""
    reference = inspector_image()
    if engine.image_exists(reference):
        return reference
    python_image = image_sources.image_references()["PYTHON_IMAGE"]
    command = [
        "docker",
        "buildx",
        "build",
        "--load",
        "--progress=plain",
        "--file",
        str(INSPECTOR_DOCKERFILE),
        "--build-arg",
        f"PYTHON_IMAGE={python_image}",
        "--tag",
        reference,
    ]
    result = run([*command, str(ROOT)], timeout=600)
    if result.returncode != 0:
        raise PipelineError(
            f"docker/inspector/Dockerfile failed to build ({last_line(result.stderr)}); "
            "the checks read containers through it."
        )
    return reference


def inspector_command(container: str, image: str, options: list[str]) -> list[str]:
    """`docker run` of the inspector in the container's PID and network namespaces."""
    return [
        "docker",
        "run",
        "--rm",
        "--pid",
        f"container:{container}",
        "--network",
        f"container:{container}",
        # Root reads the processes and files of any user of the target: ptrace access to
        # /proc/<pid>/root needs this one capability, and nothing else is added.
        "--cap-add",
        "SYS_PTRACE",
        "--user",
        "0",
        "--read-only",
        "--log-driver",
        "none",
        image,
        *options,
    ]


def inspect_container(container: str, image: str, options: list[str]) -> dict:
    """What the inspector read from one container; {"error": …} when it could not run."""
    result = run(inspector_command(container, image, options), timeout=INSPECTOR_TIMEOUT_SECONDS)
    if result.returncode != 0:
        return {"error": f"the inspector failed ({last_line(result.stderr)})"}
    try:
        return json.loads(result.stdout)
    except json.JSONDecodeError:
        return {"error": f"the inspector printed no JSON ({last_line(result.stdout)})"}


def read_facts(path: Path) -> dict[str, dict]:
    """The facts a verify run's suite recorded (service -> inspector facts), or {}."""
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}
