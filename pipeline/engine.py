"""Small questions to the Docker engine about images: is it there, its ID, size, layers.

Through python-on-whales (pipeline.docker_client), except what is read from the engine's own
inspect JSON (pipeline.docker_client.engine_json): the no-op build and the base images' currency
check ask it on every run, where python-on-whales' half-second import would be a third of
the time, and it inspects one object per process where `docker inspect` takes them all.
"""

from __future__ import annotations

import contextlib
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

from pipeline.docker_client import best_effort, docker, engine_json, translated
from pipeline.errors import PipelineError
from pipeline.process import run

# `docker create` needs a command when an image has none; the container is never started.
NEVER_STARTED = "/never-started"


def found_images(references: list[str]) -> list[dict]:
    """`docker image inspect` of those references the engine has: all of them in one call,
    or, when one is missing (something is about to be built then), one at a time."""
    try:
        return engine_json("image", references)
    except PipelineError:
        pass
    found = []
    for reference in references:
        with contextlib.suppress(PipelineError):
            found += engine_json("image", [reference])
    return found


def built_images(references: list[str]) -> list[dict]:
    """`docker image inspect` of images just built, in one call; one line when one is gone."""
    try:
        return engine_json("image", references)
    except PipelineError as error:
        raise PipelineError(
            f"cannot inspect the images just built: {error} Check the engine with `docker info`."
        ) from None


def inspect_images(references: list[str]) -> dict[str, dict]:
    """reference -> `docker image inspect` of it, for those the engine has (one command)."""
    found = found_images(references)
    answers = {}
    for reference in references:
        for entry in found:
            if reference in (entry.get("RepoTags") or []) or reference == entry["Id"]:
                answers[reference] = entry
    return answers


def image_id(reference: str) -> str | None:
    """The image ID a reference names in the local store, or None when there is none."""
    found = found_images([reference])
    return found[0]["Id"] if found else None


def image_exists(reference: str) -> bool:
    return image_id(reference) is not None


def missing_images(references: list[str]) -> list[str]:
    """The references (repository:tag) that name no image in the local store. All of them
    when the engine cannot say."""
    present = {tag for image in found_images(references) for tag in image.get("RepoTags") or []}
    return [reference for reference in references if reference not in present]


def image_size(reference: str) -> int:
    return image_details(reference)["Size"]


def image_layers(reference: str) -> list[dict]:
    """`docker history` of an image, newest layer first: [{"bytes", "created_by"}]."""
    # Plain `docker`: python-on-whales has no `docker history` (its Image.history raises).
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
    with translated(f"tagging {source} as {target}"):
        docker().image.tag(source, target)


def remove_if_untagged(identifier: str | None) -> None:
    """Delete an image no tag names any more; one a container still uses stays."""
    if not identifier:
        return
    found = found_images([identifier])
    if found and not found[0].get("RepoTags"):
        with best_effort():
            docker().image.remove(identifier)


def image_details(reference: str) -> dict:
    """`docker image inspect` of one image (Id, RepoTags, Created, Os, Architecture, ...),
    as the engine wrote it (an SBOM records `Created` verbatim)."""
    found = found_images([reference])
    if not found:
        raise PipelineError(
            f"image {reference} is not in the local image store; "
            "build it first (`nox -s build-all`)."
        )
    return found[0]


@contextlib.contextmanager
def exported_filesystem(image: str, *, name_prefix: str = "dashtam-export") -> Iterator[Path]:
    """The image's root filesystem as a tar file, read without running the image.

    A container is created (never started) and exported to a temporary file: the image may
    have no shell, and the export is one flat tree with every layer applied. The container
    and the file are removed afterwards, whatever happens.
    """
    name = f"{name_prefix}-{uuid.uuid4().hex[:8]}"
    with translated(f"creating a container of {image} to read its files"):
        docker().container.create(image, name=name, entrypoint=NEVER_STARTED)
    try:
        with tempfile.TemporaryDirectory(prefix=f"{name}-") as scratch:
            archive = Path(scratch) / "filesystem.tar"
            with translated(
                f"exporting a container of {image}", "check the engine's free disk space"
            ):
                docker().container.export(name, archive)
            yield archive
    finally:
        with best_effort():
            docker().container.remove(name, force=True, volumes=True)
