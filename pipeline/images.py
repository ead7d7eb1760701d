"""Building the Dockerfile's stages with python-on-whales buildx."""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from python_on_whales import docker
from python_on_whales.exceptions import DockerException

from pipeline import base_images, image_sources, preflight
from pipeline.ca_bundle import ca_bundle_secrets
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
    seconds: float  # the whole bake's time when several stages were built together
    built_with: int = 1  # how many stages that bake built


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


def bake_definition(
    stage_tags: dict[str, list[str]],
    *,
    source: str,
    context: Path,
    dockerfile: Path,
) -> dict:
    """A `docker buildx bake` definition that builds these stages in one BuildKit session.

    One session solves the steps the stages share (base, builder) once, and pays the
    client/session start-up once instead of once per stage.
    """
    common: dict[str, object] = {
        "context": str(context),
        "dockerfile": str(dockerfile.relative_to(context)),
        "args": build_arguments(source),
        "secret": ca_bundle_secrets(),
        "output": ["type=docker"],
    }
    if _flag(PULL_VARIABLE):
        common["pull"] = True
    if _flag(NO_CACHE_VARIABLE):
        common["no-cache"] = True
    targets = {}
    for stage_name, tags in stage_tags.items():
        target = {**common, "target": stage_name, "tags": list(tags)}
        if os.environ.get(CACHE_VARIABLE) == "gha":
            target["cache-from"] = [f"type=gha,scope={stage_name}"]
            target["cache-to"] = [f"type=gha,mode=max,scope={stage_name}"]
        targets[stage_name] = target
    return {"group": {"default": {"targets": list(stage_tags)}}, "target": targets}


_FROM = re.compile(r"^FROM\s+(?:--\S+\s+)*(?P<parent>\S+)(?:\s+AS\s+(?P<name>\S+))?", re.I)
# COPY --from=<stage>, and RUN --mount=...,from=<stage>,...
_FROM_STAGE = re.compile(r"(?:--|,)from=(?P<parent>[^\s,]+)")


def stage_ancestors(dockerfile: Path) -> dict[str, set[str]]:
    """Stage -> every stage it builds on (FROM, COPY --from, RUN --mount from=), transitively."""
    parents: dict[str, set[str]] = {}
    current = None
    for line in dockerfile.read_text().splitlines():
        line = line.strip()
        match = _FROM.match(line)
        if match:
            current = match["name"] or f"#{len(parents)}"
            parents[current] = {match["parent"]}
        elif current:
            parents[current] |= set(_FROM_STAGE.findall(line))
    ancestors: dict[str, set[str]] = {}

    def walk(name: str) -> set[str]:
        if name not in ancestors:
            ancestors[name] = set()
            for parent in parents.get(name, ()):
                if parent in parents:
                    ancestors[name] |= {parent} | walk(parent)
        return ancestors[name]

    for name in parents:
        walk(name)
    return ancestors


def bake_rounds(stage_names: list[str] | tuple[str, ...], dockerfile: Path) -> list[list[str]]:
    """The stages in the order to bake them: first those no other requested stage builds on,
    then the ones they build on (already solved by then, so only tagged).

    Why two rounds: in one bake, a target whose last step is a middle step of another
    target's (base, builder) is merged into that target's solve, and a no-op rebuild then
    stalls on it for about half a second; baked afterwards, it costs one cached solve.
    """
    ancestors = stage_ancestors(dockerfile)
    built_on = {
        name
        for name in stage_names
        if any(name in ancestors.get(other, set()) for other in stage_names if other != name)
    }
    rounds = [
        [n for n in stage_names if n not in built_on],
        [n for n in stage_names if n in built_on],
    ]
    return [round_ for round_ in rounds if round_]


def images_that_run(stage_names=STAGES, dockerfile: Path | None = None) -> list[str]:
    """The stages no other stage builds on (development, production, callback): building
    them builds every stage, base and builder included, as their parts."""
    return bake_rounds(stage_names, dockerfile or DOCKERFILE)[0]


@contextlib.contextmanager
def bake_file(definition: dict) -> Iterator[Path]:
    """The definition as a temporary JSON bake file (bake reads definitions from files)."""
    with tempfile.TemporaryDirectory(prefix="dashtam-bake-") as directory:
        path = Path(directory) / "docker-bake.json"
        path.write_text(json.dumps(definition, indent=2))
        yield path


def build_stages(
    stage_names: tuple[str, ...] | list[str] = STAGES, progress: str | bool = "auto"
) -> list[BuildResult]:
    """Build the stages with buildx bake, tag each dashtam/<stage>, say how long and how big.

    progress=False keeps BuildKit quiet unless a step fails.
    """
    preflight.require_engine()
    preflight.require_buildx()
    preflight.require_lock_file()
    for name in stage_names:
        stage(name)
    source = image_sources.selected_source()
    if source == image_sources.AIRGAP:
        base_images.require_stand_ins()
    tags = {name: stage_tags(name) for name in stage_names}
    started = time.monotonic()
    definition = bake_definition(tags, source=source, context=ROOT, dockerfile=DOCKERFILE)
    with bake_file(definition) as path:
        for round_ in bake_rounds(stage_names, DOCKERFILE):
            _bake(round_, path, progress)
    seconds = time.monotonic() - started
    results = []
    for name in stage_names:
        image = docker.image.inspect(tags[name][0])
        if (image.config.user or "root") in ("root", "0", "0:0"):
            raise PipelineError(
                f"docker/Dockerfile: stage {name!r} is configured to run as root; "
                "end the stage with `USER appuser`."
            )
        results.append(BuildResult(name, tuple(tags[name]), image.size, seconds, len(stage_names)))
    if progress is False:
        built = ", ".join(result.tags[0] for result in results)
        print(f"dashtam: built {built} in {seconds:.1f} s", file=sys.stderr)
    return results


def _bake(targets: list[str], bake_path: Path, progress: str | bool) -> None:
    """One `docker buildx bake`, its output streamed (shown live, or kept for a failure).

    Streamed, because python-on-whales' plain form runs a second `bake --print` after
    every build to return the definition, which nothing here reads.
    """
    output: list[str] = []
    try:
        for line in docker.buildx.bake(
            targets, files=[bake_path], progress=progress, stream_logs=True
        ):
            if progress is False:
                output.append(line)
            else:
                sys.stderr.write(line)
    except DockerException as error:
        if progress is False:
            print("".join(output)[-4000:], file=sys.stderr)
        raise PipelineError(
            f"docker/Dockerfile: {_stage_list(targets)} failed to build "
            f"(exit {error.return_code}); the BuildKit output above names the failing step."
        ) from None


def _stage_list(stage_names: tuple[str, ...] | list[str]) -> str:
    if len(stage_names) == 1:
        return f"stage {stage_names[0]!r}"
    return "stages " + ", ".join(repr(name) for name in stage_names)


def format_build_table(results: list[BuildResult]) -> str:
    lines = [
        "| stage | image | size (MB) | build time (s) |",
        "|---|---|---:|---:|",
    ]
    for result in results:
        together = f" ({result.built_with} stages baked together)" if result.built_with > 1 else ""
        lines.append(
            f"| {result.stage} | {result.tags[0]} | {result.size_bytes / 1e6:.1f} "
            f"| {result.seconds:.1f}{together} |"
        )
    return "\n".join(lines)


BUILD_RECORD = REPORTS / "build.json"


def record_and_format(built: list[BuildResult], *, fresh: bool = False) -> str:
    """Add these builds to reports/build.json and render every stage built so far as a table.

    Each `build(<stage>)` session is its own nox session; the record lets the last one
    print the whole table. fresh=True starts the record over (a build of every stage).
    """
    REPORTS.mkdir(parents=True, exist_ok=True)
    record = {}
    if BUILD_RECORD.is_file() and not fresh:
        record = json.loads(BUILD_RECORD.read_text())
    for result in built:
        record[result.stage] = {
            "tags": list(result.tags),
            "size_bytes": result.size_bytes,
            "seconds": round(result.seconds, 2),
            "built_with": result.built_with,
        }
    BUILD_RECORD.write_text(json.dumps(record, indent=2) + "\n")
    results = [
        BuildResult(
            name,
            tuple(entry["tags"]),
            entry["size_bytes"],
            entry["seconds"],
            entry.get("built_with", 1),
        )
        for name, entry in record.items()
        if name in STAGES
    ]
    results.sort(key=lambda built: STAGES.index(built.stage))
    table = format_build_table(results)
    (REPORTS / "build.md").write_text(table + "\n")
    return table
