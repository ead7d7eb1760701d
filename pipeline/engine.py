"""Small questions to the Docker engine about images: is it there, its ID, size, layers.

Plain `docker` commands through pipeline.process: each answers in a tenth of a second, and
the callers (preflights, the bench, the stand-in builder) need no client library for them.
"""

from __future__ import annotations

import contextlib
import json
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

from pipeline.errors import PipelineError
from pipeline.process import last_line, run

EXPORT_TIMEOUT_SECONDS = 600
# `docker create` needs a command when an image has none; the container is never started.
NEVER_STARTED = "/never-started"


def image_id(reference: str) -> str | None:
    """The image ID a reference names in the local store, or None when there is none."""
    result = run(["docker", "image", "inspect", "--format", "{{.Id}}", reference])
    return result.stdout.strip() if result.returncode == 0 else None


def image_exists(reference: str) -> bool:
    return image_id(reference) is not None


def missing_images(references: list[str]) -> list[str]:
    """The references (repository:tag) that name no image in the local store, in one
    `docker image ls` rather than one inspect each. All of them when the engine cannot say."""
    filters = [f"--filter=reference={reference}" for reference in references]
    result = run(["docker", "image", "ls", "--format", "{{.Repository}}:{{.Tag}}", *filters])
    present = set(result.stdout.split()) if result.returncode == 0 else set()
    return [reference for reference in references if reference not in present]


def image_size(reference: str) -> int:
    result = run(["docker", "image", "inspect", "--format", "{{.Size}}", reference])
    if result.returncode != 0:
        raise PipelineError(f"cannot inspect image {reference} ({last_line(result.stderr)}).")
    return int(result.stdout.strip())


def image_layers(reference: str) -> list[dict]:
    """`docker history` of an image, newest layer first: [{"bytes", "created_by"}]."""
    result = run(
        [
            "docker",
            "history",
            "--no-trunc",
            "--human=false",
            "--format",
            "{{.Size}}\t{{.CreatedBy}}",
            reference,
        ]
    )
    return parse_history(result.stdout) if result.returncode == 0 else []


def parse_history(text: str) -> list[dict]:
    """`docker history --human=false --format '{{.Size}}\\t{{.CreatedBy}}'` as dicts."""
    layers = []
    for line in text.splitlines():
        size, _, created_by = line.partition("\t")
        if size.strip().isdigit():
            layers.append({"bytes": int(size), "created_by": created_by.strip()})
    return layers


def tag_image(source: str, target: str) -> None:
    result = run(["docker", "image", "tag", source, target])
    if result.returncode != 0:
        raise PipelineError(f"cannot tag {source} as {target} ({last_line(result.stderr)}).")


def remove_if_untagged(identifier: str | None) -> None:
    """Delete an image no tag names any more; one a container still uses stays."""
    if not identifier:
        return
    result = run(["docker", "image", "inspect", "--format", "{{len .RepoTags}}", identifier])
    if result.returncode == 0 and result.stdout.strip() == "0":
        run(["docker", "image", "rm", identifier])


def image_details(reference: str) -> dict:
    """`docker image inspect` of one image (Id, RepoTags, Created, Os, Architecture, ...)."""
    result = run(["docker", "image", "inspect", "--format", "{{json .}}", reference])
    if result.returncode != 0:
        raise PipelineError(
            f"image {reference} is not in the local image store ({last_line(result.stderr)}); "
            "build it first (`nox -s build-all`)."
        )
    return json.loads(result.stdout)


@contextlib.contextmanager
def exported_filesystem(image: str, *, name_prefix: str = "dashtam-export") -> Iterator[Path]:
    """The image's root filesystem as a tar file, read without running the image.

    A container is created (never started) and `docker export`ed to a temporary file: the
    image may have no shell, and the export is one flat tree with every layer applied. The
    container and the file are removed afterwards, whatever happens.
    """
    name = f"{name_prefix}-{uuid.uuid4().hex[:8]}"
    created = run(["docker", "create", "--name", name, "--entrypoint", NEVER_STARTED, image])
    if created.returncode != 0:
        raise PipelineError(
            f"cannot create a container of {image} to read its files ({last_line(created.stderr)})."
        )
    try:
        with tempfile.TemporaryDirectory(prefix=f"{name}-") as scratch:
            archive = Path(scratch) / "filesystem.tar"
            exported = run(
                ["docker", "export", "--output", str(archive), name],
                timeout=EXPORT_TIMEOUT_SECONDS,
            )
            if exported.returncode != 0:
                raise PipelineError(
                    f"`docker export` of a container of {image} failed "
                    f"({last_line(exported.stderr)}); check the engine's free disk space."
                )
            yield archive
    finally:
        run(["docker", "rm", "--force", "--volumes", name])
