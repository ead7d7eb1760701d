"""Promote what was built: the images a build made reach verify and publish as they are.

The workflow's jobs share no engine and no registry, and a registry they could share (GHCR)
takes a write token that pull requests from forks never get. So a build job hands its images
on as archives bound by digest: `nox -s save-images -- FOLDER` writes each image this
checkout built that an environment runs (reports/images.json names them) as
FOLDER/<stage>.tar (`docker save`: its layers and its config, whose digest is the image ID)
beside FOLDER/<stage>.json naming that image ID. `load_images` loads them and refuses an
archive whose image, once loaded, is not the one its record names. `verify(<env>) --
--images FOLDER` then boots exactly those images (pushed to its own registry, run by digest)
without building anything, and `nox -s load-images -- FOLDER` gives the publish job the very
image IDs the verify records name, for `publish --to`.
"""

from __future__ import annotations

import json
from pathlib import Path

from pipeline.docker_client import docker, translated
from pipeline.engine import image_id, tag_image
from pipeline.environments import REPORTS, image_name
from pipeline.errors import PipelineError
from pipeline.images import IMAGES_RECORD, images_that_run

ARCHIVE_SUFFIX = ".tar"
RECORD_SUFFIX = ".json"


def save_images(folder: Path, record: Path = IMAGES_RECORD) -> list[Path]:
    """Each image this checkout built that an environment runs, as FOLDER/<stage>.tar and
    FOLDER/<stage>.json; none when it built only stages nothing runs (base, builder)."""
    try:
        built = json.loads(record.read_text())
    except (OSError, ValueError):
        raise PipelineError(
            f"{record.relative_to(REPORTS.parent)} names no build; run `nox -s build` first"
        ) from None
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for stage in images_that_run():
        built_id = (built.get(stage) or {}).get("image_id")
        if not built_id:
            continue
        if image_id(built_id) is None:
            raise PipelineError(
                f"{image_name(stage)} {built_id[:19]}… is no longer in the engine; build it again"
            )
        archive = folder / f"{stage}{ARCHIVE_SUFFIX}"
        with translated(f"saving {image_name(stage)}", "check the engine and the disk"):
            tag_image(built_id, f"{image_name(stage)}:latest")
            docker().image.save(f"{image_name(stage)}:latest", output=archive)
        identity = folder / f"{stage}{RECORD_SUFFIX}"
        identity.write_text(json.dumps({"stage": stage, "image_id": built_id}, indent=2) + "\n")
        written += [archive, identity]
    return written


def load_images(folder: Path, stages: tuple[str, ...] | list[str]) -> dict[str, str]:
    """Load the archives of `stages` from FOLDER: stage -> the image ID loaded, each the one
    its record names, tagged dashtam/<stage>:latest."""
    loaded = {}
    for stage in stages:
        identity, archive = folder / f"{stage}{RECORD_SUFFIX}", folder / f"{stage}{ARCHIVE_SUFFIX}"
        fix = f"give it the folder `nox -s save-images` wrote for {image_name(stage)}"
        try:
            expected = json.loads(identity.read_text())["image_id"]
        except (OSError, ValueError, KeyError, TypeError):
            raise PipelineError(f"{identity} names no image of {stage}; {fix}") from None
        if not archive.is_file():
            raise PipelineError(f"{archive} is missing; {fix}")
        with translated(f"loading {archive}", fix):
            names = docker().image.load(archive)
        found = {image_id(name) for name in names}
        if found != {expected}:
            raise PipelineError(
                f"{archive} holds {', '.join(sorted(str(i) for i in found)) or 'no image'}, "
                f"not {expected} as {identity.name} says; {fix}"
            )
        tag_image(expected, f"{image_name(stage)}:latest")
        loaded[stage] = expected
    return loaded


def promoted_references(folder: Path, stages: tuple[str, ...], run_tag: str) -> dict[str, str]:
    """The archived images of `stages`, loaded, tagged with a verify run's own tag (so no
    prune takes them mid-run) and pushed to the pipeline's registry: stage -> the
    <registry>/dashtam/<stage>@sha256:… reference the stack runs, as a build's would be."""
    from pipeline import preflight, pushing, registry

    *_, address = preflight.require_all(preflight.require_engine, registry.start_or_reuse)
    loaded = load_images(folder, stages)
    for stage, loaded_id in loaded.items():
        tag_image(loaded_id, f"{image_name(stage)}:{run_tag}")
    pushed = pushing.push_images(loaded, address)
    return {stage: image.reference for stage, image in pushed.items()}
