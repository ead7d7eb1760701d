"""Building the Dockerfile's stages with python-on-whales buildx."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass

from python_on_whales import docker
from python_on_whales.exceptions import DockerException

from pipeline import base_images, image_sources, preflight
from pipeline.ca_bundle import ca_bundle_path
from pipeline.environments import DOCKERFILE, REPORTS, ROOT, STAGES, image_name, stage
from pipeline.errors import PipelineError

# DASHTAM_BUILDX_CACHE=gha: the BuildKit layer cache lives in the GitHub Actions cache,
# one scope per stage (the workflow sets it; locally the engine's own cache is used).
CACHE_VARIABLE = "DASHTAM_BUILDX_CACHE"
# The weekly maintenance run rebuilds from freshly pulled base images, cache off.
PULL_VARIABLE = "DASHTAM_BUILD_PULL"
NO_CACHE_VARIABLE = "DASHTAM_BUILD_NO_CACHE"


@dataclass(frozen=True)
class BuildResult:
    stage: str
    tags: tuple[str, ...]
    size_bytes: int
    seconds: float


def git_short_sha() -> str | None:
    try:
        result = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
    except FileNotFoundError:
        return None
    return result.stdout.strip() or None


def stage_tags(stage_name: str) -> list[str]:
    """dashtam/<stage>:latest, plus the git short SHA when there is one."""
    tags = [f"{image_name(stage_name)}:latest"]
    sha = git_short_sha()
    if sha:
        tags.append(f"{image_name(stage_name)}:{sha}")
    return tags


def _flag(variable: str) -> bool:
    return os.environ.get(variable, "").strip().lower() in ("1", "true", "yes")


def build_arguments(source: str) -> dict[str, str]:
    return image_sources.image_references(source)


def build_stage(
    stage_name: str, *, source: str | None = None, progress: str | bool = "auto"
) -> BuildResult:
    """Build one stage, tag it dashtam/<stage>, and say how long it took and how big it is."""
    stage(stage_name)
    source = source or image_sources.selected_source()
    if source == image_sources.AIRGAP:
        base_images.require_stand_ins()
    bundle = ca_bundle_path()
    cache_options: dict[str, object] = {}
    if os.environ.get(CACHE_VARIABLE) == "gha":
        cache_options = {
            "cache_from": {"type": "gha", "scope": stage_name},
            "cache_to": {"type": "gha", "mode": "max", "scope": stage_name},
        }
    tags = stage_tags(stage_name)
    started = time.monotonic()
    try:
        docker.buildx.build(
            ROOT,
            file=DOCKERFILE,
            target=stage_name,
            tags=tags,
            build_args=build_arguments(source),
            secrets=[f"id=ca_bundle,src={bundle}"] if bundle else [],
            load=True,
            pull=_flag(PULL_VARIABLE),
            cache=not _flag(NO_CACHE_VARIABLE),
            progress=progress,
            **cache_options,
        )
    except DockerException as error:
        if progress is False and error.stderr:
            print(error.stderr[-4000:], file=sys.stderr)
        raise PipelineError(
            f"docker/Dockerfile: stage {stage_name!r} failed to build (exit {error.return_code}); "
            "the BuildKit output above names the failing step."
        ) from None
    seconds = time.monotonic() - started
    image = docker.image.inspect(tags[0])
    if (image.config.user or "root") in ("root", "0", "0:0"):
        raise PipelineError(
            f"docker/Dockerfile: stage {stage_name!r} is configured to run as root; "
            "end the stage with `USER appuser`."
        )
    size = image.size
    if progress is False:
        print(f"dashtam: built {tags[0]} in {seconds:.1f} s", file=sys.stderr)
    return BuildResult(stage=stage_name, tags=tuple(tags), size_bytes=size, seconds=seconds)


def build_stages(
    stage_names: tuple[str, ...] | list[str] = STAGES, progress: str | bool = "auto"
) -> list[BuildResult]:
    """Build the stages in order; progress=False keeps BuildKit quiet unless a step fails."""
    preflight.require_engine()
    preflight.require_buildx()
    preflight.require_lock_file()
    source = image_sources.selected_source()
    return [build_stage(name, source=source, progress=progress) for name in stage_names]


def format_build_table(results: list[BuildResult]) -> str:
    lines = [
        "| stage | image | size (MB) | build time (s) |",
        "|---|---|---:|---:|",
    ]
    for result in results:
        lines.append(
            f"| {result.stage} | {result.tags[0]} | {result.size_bytes / 1e6:.1f} "
            f"| {result.seconds:.1f} |"
        )
    return "\n".join(lines)


BUILD_RECORD = REPORTS / "build.json"


def record_and_format(result: BuildResult) -> str:
    """Add this build to reports/build.json and render every stage built so far as a table.

    Each `build(<stage>)` session is its own nox session; the record lets the last one
    print the whole table.
    """
    REPORTS.mkdir(parents=True, exist_ok=True)
    record = json.loads(BUILD_RECORD.read_text()) if BUILD_RECORD.is_file() else {}
    record[result.stage] = {
        "tags": list(result.tags),
        "size_bytes": result.size_bytes,
        "seconds": round(result.seconds, 2),
    }
    BUILD_RECORD.write_text(json.dumps(record, indent=2) + "\n")
    results = [
        BuildResult(name, tuple(entry["tags"]), entry["size_bytes"], entry["seconds"])
        for name, entry in record.items()
        if name in STAGES
    ]
    results.sort(key=lambda built: STAGES.index(built.stage))
    table = format_build_table(results)
    (REPORTS / "build.md").write_text(table + "\n")
    return table
