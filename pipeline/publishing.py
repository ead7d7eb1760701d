"""Publish what passed: give the digests every verify of them passed on their release tag.

`nox -s publish [-- --tag NAME] [--to REGISTRY]`. Each image that runs (development,
production, callback) is published only when every environment that runs it has a passing
verify record (reports/verify-<env>.json) naming one and the same digest for it — the
`<registry>/dashtam/<stage>@sha256:…` its containers were created from — and the image ID
they ran; anything else is refused with one line before anything is tagged.

Into the pipeline's registry (the default) publishing is a tag and nothing more: the manifest
the verify runs booted is put under the release tag through the registry's API, checked to
be that image; no layer is rebuilt, read or uploaded. `--to REGISTRY` (ghcr.io/<owner> in the
workflow's publishing job) pushes that very image ID, which the engine must hold, to
`<REGISTRY>/dashtam/<stage>:<tag>` and records the digest that registry gives it, for the
provenance attestation. Either way reports/published.json and reports/sbom/<stage>.json are
written. The release tag is --tag, or the commit's short SHA on a clean tree.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from pipeline import images, provenance, pushing, registry, registry_api
from pipeline.engine import image_exists
from pipeline.environments import ENVIRONMENTS, REPORTS, image_name
from pipeline.errors import PipelineError
from pipeline.reports import record_path
from pipeline.sbom import write_sboms

PUBLISHED_RECORD = REPORTS / "published.json"
SBOM_FOLDER = REPORTS / "sbom"
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
# <host>[:port]/<namespace>…: where --to may send the images (no tag, no digest).
_DESTINATION = re.compile(r"[a-z0-9.-]+(:[0-9]+)?(/[a-z0-9._-]+)+")


@dataclass(frozen=True)
class Verified:
    stage: str
    image_id: str  # the config digest: the same image, whichever registry holds it
    # <registry>/dashtam/<stage>@sha256:… as the verify runs booted it: one when they shared a
    # registry; the workflow's jobs each have their own.
    references: tuple[str, ...]
    environments: tuple[str, ...]


@dataclass(frozen=True)
class Published:
    stage: str
    image_id: str
    repository: str
    digest: str
    tag: str
    verified: tuple[str, ...]  # the digest references the verify runs booted
    verified_by: tuple[str, ...]

    @property
    def reference(self) -> str:
        return f"{self.repository}@{self.digest}"


def environments_running(stage: str) -> list[str]:
    return [name for name, environment in ENVIRONMENTS.items() if stage in environment.stages]


def booted(record: dict, stage: str) -> set[tuple[str, str]]:
    """(digest reference, image ID) of every service a verify record ran from this stage."""
    suffix = f"/{image_name(stage)}"
    ids = record.get("images") or {}
    return {
        (reference, ids.get(service, ""))
        for service, reference in (record.get("references") or {}).items()
        if "@sha256:" in reference and reference.partition("@")[0].endswith(suffix)
    }


def verified_image(stage: str, reports: Path = REPORTS) -> Verified:
    """The one image every environment that runs `stage` passed a verify on, or a
    PipelineError that says why there is none."""
    found: dict[str, dict[str, list[str]]] = {}  # image ID -> reference -> environments
    for environment_name in environments_running(stage):
        path = record_path(environment_name, reports)
        fix = f'run `nox -s "verify({environment_name})"`, then publish again'
        try:
            record = json.loads(path.read_text())
        except FileNotFoundError:
            raise PipelineError(
                f"no verify({environment_name}) report ({path.name}); {fix}"
            ) from None
        except (OSError, ValueError) as error:
            raise PipelineError(f"{path} cannot be read ({error}); {fix}") from None
        if record.get("verdict") != "PASS":
            raise PipelineError(
                f"the last verify({environment_name}) is {record.get('verdict') or 'no verdict'}, "
                f"not PASS ({path.name}); fix it, {fix}"
            )
        changed = provenance.differences(
            record.get("bound") or {}, provenance.binding_of(ENVIRONMENTS[environment_name])
        )
        if changed:
            raise PipelineError(
                f"verify({environment_name}) was reached on other code: {', '.join(changed)} "
                f"changed since ({path.name}); {fix}"
            )
        ran = booted(record, stage)
        if not ran:
            raise PipelineError(
                f"verify({environment_name}) names no digest of {image_name(stage)} "
                f"({path.name}); {fix}"
            )
        for reference, image_id in ran:
            found.setdefault(image_id, {}).setdefault(reference, []).append(environment_name)
    if len(found) != 1:
        seen = "; ".join(
            f"{', '.join(sorted({n for names in by_reference.values() for n in names}))}: "
            f"{image_id[:19]}…"
            for image_id, by_reference in found.items()
        )
        raise PipelineError(
            f"the verifies that run {image_name(stage)} passed on different images ({seen}); "
            "verify them all on one build (`nox -s verify`), then publish again"
        )
    image_id, by_reference = next(iter(found.items()))
    environments = sorted({name for names in by_reference.values() for name in names})
    return Verified(stage, image_id, tuple(sorted(by_reference)), tuple(environments))


def release_tag(requested: str | None) -> str:
    """--tag when given, else the commit's full SHA, which a dirty tree does not get."""
    if requested is not None:
        if not _TAG.fullmatch(requested):
            raise PipelineError(
                f"--tag {requested!r} is not a valid image tag (letters, digits, _ . -, at most "
                "128, not starting with . or -); pick another."
            )
        return requested
    state = provenance.commit_state()
    commit = state.sha if state.clean else None
    if commit is None:
        raise PipelineError(
            "the work tree has uncommitted changes, so the images are not a commit's; commit "
            "them, or publish under an explicit name with `nox -s publish -- --tag NAME`."
        )
    return commit


def publish(
    requested_tag: str | None = None, destination: str | None = None, reports: Path = REPORTS
) -> list[Published]:
    """Check every image first, then tag (or push) each and record it; see the docstring."""
    tag = release_tag(requested_tag)
    if destination is not None and not _DESTINATION.fullmatch(destination):
        raise PipelineError(
            f"--to {destination!r} is not a registry and namespace (e.g. ghcr.io/acme, "
            "lower case, no tag); pick another."
        )
    verified = []
    for stage in images.images_that_run():
        try:
            verified.append(verified_image(stage, reports))
        except PipelineError as error:
            raise PipelineError(f"{image_name(stage)} is not published: {error}.") from None
    missing = [item.image_id for item in verified if not image_exists(item.image_id)]
    if missing:
        raise PipelineError(
            f"this engine does not hold the verified image {missing[0][:19]}…; build it again "
            "(`nox -s build-all`: the same sources rebuild the same image), then publish."
        )
    if destination is None:
        address = registry.ensure_registry()
        manifests = [verified_manifest(item, address) for item in verified]
        published = [
            tag_verified(item, manifest, address, tag)
            for item, manifest in zip(verified, manifests, strict=True)
        ]
    else:
        published = [push_verified(item, destination, tag) for item in verified]
    write_record(published, reports / PUBLISHED_RECORD.name)
    write_sboms({item.stage: item.image_id for item in published}, reports / SBOM_FOLDER.name)
    return published


def verified_manifest(item: Verified, address: str) -> registry_api.Manifest:
    """The manifest this registry serves for the digest the verify runs booted, checked to be
    the verified image."""
    held_here = [ref for ref in item.references if ref.split("/", 1)[0] == address]
    if len(held_here) != 1:
        raise PipelineError(
            f"{image_name(item.stage)} was verified from {', '.join(item.references)}, not one "
            f"digest in the registry now at {address}; verify again (`nox -s verify`), then "
            "publish."
        )
    digest = held_here[0].rpartition("@")[2]
    manifest = registry_api.fetch_manifest(address, image_name(item.stage), digest)
    if manifest.config_digest != item.image_id:
        raise PipelineError(
            f"{held_here[0]} is image {manifest.config_digest[:19]}…, not the "
            f"{item.image_id[:19]}… verified; inspect the registry before publishing."
        )
    return manifest


def tag_verified(
    item: Verified, manifest: registry_api.Manifest, address: str, tag: str
) -> Published:
    registry_api.tag_manifest(address, image_name(item.stage), manifest, tag)
    return Published(
        item.stage,
        item.image_id,
        pushing.repository(address, item.stage),
        manifest.digest,
        tag,
        item.references,
        item.environments,
    )


def push_verified(item: Verified, destination: str, tag: str) -> Published:
    """Push the verified image ID to another registry."""
    repository = f"{destination}/{image_name(item.stage)}"
    login = f"log in to {destination.split('/')[0]} (`docker login`), then publish again"
    digest = pushing.push_as(item.image_id, f"{repository}:{tag}", login)
    return Published(
        item.stage, item.image_id, repository, digest, tag, item.references, item.environments
    )


def write_record(published: list[Published], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {item.stage: {**asdict(item), "reference": item.reference} for item in published}
    path.write_text(json.dumps(record, indent=2) + "\n")
