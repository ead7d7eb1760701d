"""Every build lands in the pipeline's registry, and what runs is named by digest.

`push_images({stage: image ID}, address)` pushes each image under a tag named after its
content (`<address>/dashtam/<stage>:build-<image ID, 12 digits>`, which no other build can
move while it is pushed), and returns its digest reference
(`<address>/dashtam/<stage>@sha256:…`), which compose boots and reports name: a tag can
move under a running verify, a digest cannot. An image the registry already holds — the
engine knows its digest there and the registry serves it — is not pushed again.

`<address>/dashtam/<stage>:cache` is the layer cache the next build imports, in this clone or
another with an empty BuildKit cache (pipeline.images exports it, `push_cache` pushes it).
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from pipeline import registry_api
from pipeline.docker_client import best_effort, docker, engine_json, translated
from pipeline.engine import built_images, tag_image
from pipeline.environments import image_name
from pipeline.errors import PipelineError
from pipeline.process import last_line, say

CACHE_TAG = "cache"
_PUSHED_DIGEST = re.compile(r"digest: (sha256:[0-9a-f]{64})")


@dataclass(frozen=True)
class PushedImage:
    stage: str
    image_id: str
    repository: str  # <registry>/dashtam/<stage>
    digest: str
    uploaded: bool  # False: the registry held it already

    @property
    def reference(self) -> str:
        return f"{self.repository}@{self.digest}"


def repository(address: str, stage: str) -> str:
    return f"{address}/{image_name(stage)}"


def cache_reference(address: str, stage: str) -> str:
    return f"{repository(address, stage)}:{CACHE_TAG}"


def layer_caches(address: str, stage_names: list[str] | tuple[str, ...]) -> list[str]:
    """The layer caches the registry holds for these stages. One it does not hold yet (a
    first build) is left out with one quiet line: asked for, BuildKit would print an ERROR
    that reads as a failure and build all the same."""
    held = []
    for stage in stage_names:
        if registry_api.has_manifest(address, image_name(stage), CACHE_TAG):
            held.append(cache_reference(address, stage))
        else:
            say(f"no layer cache of {image_name(stage)} in the registry yet; building it whole")
    return held


def push_images(
    image_ids: dict[str, str], address: str, known: dict[str, list[str]] | None = None
) -> dict[str, PushedImage]:
    """Push each stage's image (side by side) and return where the registry holds it.

    `known`: image ID -> the `name@digest` references the engine knows it by, when the caller
    has just read them; else they are read here."""
    if not image_ids:
        return {}
    if known is None:
        known = repo_digests(list(image_ids.values()))
    with ThreadPoolExecutor(max_workers=len(image_ids)) as pool:
        futures = {
            stage: pool.submit(push_one, stage, image_id, address, known.get(image_id, []))
            for stage, image_id in image_ids.items()
        }
        return {stage: future.result() for stage, future in futures.items()}


def repo_digests(image_ids: list[str]) -> dict[str, list[str]]:
    """Image ID -> the `name@digest` references the engine knows it by (one inspect)."""
    found = built_images(image_ids)
    return {image["Id"]: image.get("RepoDigests") or [] for image in found}


def push_one(stage: str, image_id: str, address: str, known: list[str]) -> PushedImage:
    """The image in the registry: found there already, or pushed and checked."""
    name = image_name(stage)
    target = repository(address, stage)
    for reference in known:
        # The engine recorded this digest when it pushed this very image, and a digest names
        # one content: the registry still holding it is all there is to ask.
        held_in, _, digest = reference.partition("@")
        if held_in == target and registry_api.has_manifest(address, name, digest):
            return PushedImage(stage, image_id, target, digest, uploaded=False)
    pushed_as = f"{target}:build-{image_id.removeprefix('sha256:')[:12]}"
    digest = push_as(
        image_id, pushed_as, "check the registry with `nox -s registry`, then build again"
    )
    manifest = registry_api.fetch_manifest(address, name, digest)
    if manifest.config_digest != image_id:
        raise PipelineError(
            f"{target}@{digest} serves image {manifest.config_digest}, not the {image_id} just "
            "built; the registry holds something else under that name: inspect it first."
        )
    remove_superseded(target, keep=image_id)
    return PushedImage(stage, image_id, target, digest, uploaded=True)


def push_as(image_id: str, reference: str, fix: str) -> str:
    """Tag the image ID (never a tag that may have moved) as `reference`, push it, and return
    the digest the registry gave it; `fix` is what the user should do when that fails."""
    tag_image(image_id, reference)
    with translated(f"pushing {reference}", fix):
        pushed = docker().image.push(reference, stream_logs=True)
        said = "\n".join(line.decode(errors="replace") for _, line in pushed)
    match = _PUSHED_DIGEST.search(said)
    if match is None:
        raise PipelineError(f"pushing {reference} failed ({last_line(said)}); {fix}.")
    return match.group(1)


def remove_superseded(target: str, keep: str) -> None:
    """Remove the earlier builds of `target` that nothing else names any more, and the layer
    cache images `<target>:cache` has moved off.

    The build tag holds the engine's record of an image's digest in the registry (untagging
    it forgets the digest too), so it stays while the image is current; once `latest` and
    every verify run's tag have moved on, it alone would keep a superseded image on disk. An
    image a container still uses stays (Docker refuses, and that is fine); the registry keeps
    every build.
    """
    earlier: list[dict] = []
    with best_effort():  # the engine cannot say: nothing is removed
        listed = [image.id for image in docker().image.list(target) if image.id != keep]
        # One inspect of them all: they add up (every build, every layer cache it replaced).
        earlier = engine_json("image", listed) if listed else []
    for image in earlier:
        tags = image.get("RepoTags") or []
        # No tag at all: a layer cache image `:cache` has moved off, or a build nothing names.
        if all(tag.startswith(f"{target}:build-") for tag in tags):
            with best_effort():  # gone already, or still used by a container: it stays
                docker().image.remove(tags or image["Id"])


def push_cache(references: list[str]) -> None:
    """Push the layer-cache images (their layers are the images' own, already there)."""

    def push(reference: str) -> None:
        with translated(
            f"pushing the layer cache {reference}",
            "check the registry with `nox -s registry`, then build again",
        ):
            docker().image.push(reference, quiet=True)

    with ThreadPoolExecutor(max_workers=max(1, len(references))) as pool:
        for pushed in [pool.submit(push, reference) for reference in references]:
            pushed.result()
