"""Publish what passed: push the images every verify of them passed on, record their digests.

`nox -s publish [-- --tag NAME]` takes each image that runs (development, production,
callback) as `dashtam/<stage>:latest` names it here and publishes it only when every
environment that runs it has a passing verify record (reports/verify-<env>.json) naming
exactly that image ID; anything else is refused with one line before anything is pushed.
It then pushes it to the registry (pipeline.registry, started if it is not up) under the
release tag — the commit's short SHA on a clean tree, or --tag — checks that the manifest the
registry serves for the pushed digest has that very image as its config, and writes
reports/images.json (stage -> image ID, digest, reference) and reports/sbom/<stage>.json.
Nothing is rebuilt; a layer the registry already holds is not uploaded again.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

from pipeline import images, registry
from pipeline.engine import image_id, tag_image
from pipeline.environments import ENVIRONMENTS, REPORTS, image_name
from pipeline.errors import PipelineError
from pipeline.process import last_line, run
from pipeline.reports import record_path
from pipeline.sbom import write_sboms

IMAGES_RECORD = REPORTS / "images.json"
SBOM_FOLDER = REPORTS / "sbom"
# The manifest types a `docker push` of the classic image store writes, and OCI's.
MANIFEST_TYPES = (
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
)
_PUSHED_DIGEST = re.compile(r"digest: (sha256:[0-9a-f]{64})")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")


@dataclass(frozen=True)
class Published:
    stage: str
    image_id: str
    digest: str
    reference: str  # <registry>/dashtam/<stage>@<digest>
    tag: str
    verified_by: tuple[str, ...]


def environments_running(stage: str) -> list[str]:
    return [name for name, environment in ENVIRONMENTS.items() if stage in environment.stages]


def refusal(stage: str, local_id: str, reports: Path = REPORTS) -> str | None:
    """Why `local_id` may not be published as `stage`, or None when every environment that
    runs the stage has a passing verify record that names this image ID."""
    for environment_name in environments_running(stage):
        path = record_path(environment_name, reports)
        fix = f'run `nox -s "verify({environment_name})"` on this image, then publish again'
        try:
            record = json.loads(path.read_text())
        except FileNotFoundError:
            return f"no verify({environment_name}) report ({path.name}); {fix}"
        except (OSError, ValueError) as error:
            return f"{path} cannot be read ({error}); {fix}"
        if record.get("verdict") != "PASS":
            return f"the last verify({environment_name}) failed ({path.name}); fix it, {fix}"
        if local_id not in (record.get("images") or {}).values():
            return (
                f"verify({environment_name}) passed on other images than {local_id[:19]}… "
                f"({path.name}); {fix}"
            )
    return None


def release_tag(requested: str | None) -> str:
    """--tag when given, else the commit's short SHA, which a dirty tree does not get."""
    if requested is not None:
        if not _TAG.fullmatch(requested):
            raise PipelineError(
                f"--tag {requested!r} is not a valid image tag (letters, digits, _ . -, at most "
                "128, not starting with . or -); pick another."
            )
        return requested
    commit = images.clean_commit_sha()
    if commit is None:
        raise PipelineError(
            "the work tree has uncommitted changes, so the images are not a commit's; commit "
            "them, or publish under an explicit name with `nox -s publish -- --tag NAME`."
        )
    return commit


def publish(requested_tag: str | None = None, reports: Path = REPORTS) -> list[Published]:
    """Check every image first, then push each and record it; see the module docstring."""
    tag = release_tag(requested_tag)
    verified: dict[str, str] = {}
    for stage in images.images_that_run():
        reference = f"{image_name(stage)}:latest"
        local_id = image_id(reference)
        if local_id is None:
            raise PipelineError(f"{reference} is not built; run `nox -s build verify` first.")
        reason = refusal(stage, local_id, reports)
        if reason:
            raise PipelineError(f"{reference} is not published: {reason}.")
        verified[stage] = local_id
    address = registry.ensure_registry()
    published = [push(stage, local_id, address, tag) for stage, local_id in verified.items()]
    write_record(published, reports / IMAGES_RECORD.name)
    write_sboms({item.stage: item.image_id for item in published}, reports / SBOM_FOLDER.name)
    return published


def push(stage: str, local_id: str, address: str, tag: str) -> Published:
    """Push the verified image ID (never a tag that may have moved) and check what landed."""
    repository = f"{address}/{image_name(stage)}"
    tag_image(local_id, f"{repository}:{tag}")
    result = run(["docker", "push", f"{repository}:{tag}"], timeout=1800)
    match = _PUSHED_DIGEST.search(result.stdout or "")
    if result.returncode != 0 or match is None:
        raise PipelineError(
            f"pushing {repository}:{tag} failed ({last_line(result.stderr or result.stdout)}); "
            "check `nox -s registry`, then publish again."
        )
    digest = match.group(1)
    served = manifest_config(address, image_name(stage), digest)
    if served != local_id:
        raise PipelineError(
            f"{repository}@{digest} serves image {served}, not the verified {local_id}; the "
            "registry holds something else under that name: inspect it before publishing."
        )
    return Published(
        stage,
        local_id,
        digest,
        f"{repository}@{digest}",
        tag,
        tuple(environments_running(stage)),
    )


def manifest_config(address: str, name: str, digest: str) -> str:
    """The config digest (the image ID) of the manifest the registry serves for `digest`."""
    request = urllib.request.Request(
        f"http://{address}/v2/{name}/manifests/{digest}",
        headers={"Accept": ", ".join(MANIFEST_TYPES)},
    )
    try:
        # A registry on localhost, which Docker itself speaks plain HTTP to.
        with urllib.request.urlopen(request, timeout=20) as response:  # noqa: S310
            manifest = json.load(response)
    except (urllib.error.URLError, OSError, ValueError) as error:
        raise PipelineError(
            f"the registry at {address} did not serve {name}@{digest} ({error}); "
            "check `nox -s registry`, then publish again."
        ) from error
    return str((manifest.get("config") or {}).get("digest", ""))


def write_record(published: list[Published], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {item.stage: asdict(item) for item in published}
    path.write_text(json.dumps(record, indent=2) + "\n")
