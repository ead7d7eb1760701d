"""Building the Dockerfile's stages with buildx bake, and landing them in the registry.

Every build pushes what it built to the registry (pipeline.pushing) and imports the layer
cache kept there as `<registry>/dashtam/<stage>:cache`: another clone, or this one after
BuildKit's cache was pruned, rebuilds unchanged stages from it. That cache is
BuildKit's inline cache — the one the engine's own `docker` driver can export (a registry
cache of every step, `mode=max`, needs a `docker-container` builder or the containerd image
store) — carried by images of its own, re-exported only when a build changed an image.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from pipeline import (
    build_inputs,
    engine,
    image_sources,
    preflight,
    provenance,
    pushing,
    registry,
)
from pipeline.build_inputs import FROM_LINE, FROM_OPTION
from pipeline.ca_bundle import ca_bundle_secrets
from pipeline.environments import DOCKERFILE, REPORTS, ROOT, STAGES, image_name, stage
from pipeline.errors import PipelineError
from pipeline.process import run

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
    image_id: str = ""
    reference: str = ""  # <registry>/dashtam/<stage>@sha256:…, what runs


# The commit tag of an image: git's own short form.
SHORT_SHA = 7


def clean_commit_sha() -> str | None:
    """The short SHA of HEAD when the work tree is exactly that commit, else None.

    An image built from uncommitted changes is not that commit's: it gets no SHA tag.
    """
    state = provenance.commit_state()
    return state.sha[:SHORT_SHA] if state.sha and state.clean else None


def stage_tags(stage_name: str, commit: str | None) -> list[str]:
    """dashtam/<stage>:latest, plus the commit's short SHA when the tree is clean."""
    tags = [f"{image_name(stage_name)}:latest"]
    if commit:
        tags.append(f"{image_name(stage_name)}:{commit}")
    return tags


def _flag(variable: str) -> bool:
    return os.environ.get(variable, "").strip().lower() in ("1", "true", "yes")


def bake_definition(
    stage_tags: dict[str, list[str]],
    *,
    source: str,
    context: Path,
    dockerfile: Path,
    cache_from: tuple[str, ...] | list[str] = (),
    inline_cache: bool = False,
) -> dict:
    """A `docker buildx bake` definition that builds these stages in one BuildKit session.

    One session solves the steps the stages share (base, builder) once, and pays the
    client/session start-up once instead of once per stage. Each stage imports the layer
    cache of every image in `cache_from` (registry references); `inline_cache` writes the
    cache into the images built, to be pushed and imported later.
    """
    common: dict[str, object] = {
        "context": str(context),
        "dockerfile": str(dockerfile.relative_to(context)),
        "args": image_sources.image_references(source),
        "secret": ca_bundle_secrets(),
        "output": ["type=docker"],
        # What the image is built from, on the image itself (OCI annotations as labels).
        "labels": provenance.image_labels(),
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
        else:
            if cache_from:
                target["cache-from"] = [f"type=registry,ref={ref}" for ref in cache_from]
            if inline_cache:
                target["cache-to"] = ["type=inline"]
        targets[stage_name] = target
    return {"group": {"default": {"targets": list(stage_tags)}}, "target": targets}


def stage_ancestors(dockerfile: Path) -> dict[str, set[str]]:
    """Stage -> every stage it builds on (FROM, COPY --from, RUN --mount from=), transitively."""
    parents: dict[str, set[str]] = {}
    current = None
    for line in dockerfile.read_text().splitlines():
        line = line.strip()
        match = FROM_LINE.match(line)
        if match:
            current = match["name"] or f"#{len(parents)}"
            parents[current] = {match["parent"]}
        elif current:
            parents[current] |= set(FROM_OPTION.findall(line))
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


def bake(
    definition: dict, rounds: list[list[str]], *, progress: str = "auto", show: bool = True
) -> tuple[float, str]:
    """`docker buildx bake` of the definition, one round after another: (seconds, output).

    show=True lets BuildKit's output through, live; show=False keeps it (progress "plain",
    for the bench to read which steps ran), prints its end only when a step fails, and
    returns it.
    """
    preflight.require_buildx()  # asked here: a build with nothing to do never runs Buildx
    output: list[str] = []
    started = time.monotonic()
    # bake reads definitions from files only.
    with tempfile.TemporaryDirectory(prefix="dashtam-bake-") as directory:
        bake_file = Path(directory) / "docker-bake.json"
        bake_file.write_text(json.dumps(definition, indent=2))
        for targets in rounds:
            # Plain `docker`: python-on-whales' bake runs a second `bake --print` after each
            # one, and its import would add half a second to a 1 s no-op build.
            command = ["docker", "buildx", "bake", "--file", str(bake_file)]
            result = run([*command, f"--progress={progress}", *targets], capture=not show)
            output.append((result.stdout or "") + (result.stderr or ""))
            if result.returncode != 0:
                if not show:
                    print("".join(output)[-4000:], file=sys.stderr)
                dockerfile = next(iter(definition["target"].values()))["dockerfile"]
                raise PipelineError(
                    f"{dockerfile}: {_stage_list(targets)} failed to build "
                    f"(exit {result.returncode}); the BuildKit output above names the failing "
                    "step."
                )
    return time.monotonic() - started, "".join(output)


def build_stages(
    stage_names: tuple[str, ...] | list[str] = STAGES,
    *,
    show: bool = True,
    extra_tags: tuple[str, ...] = (),
) -> list[BuildResult]:
    """Build the stages with buildx bake, tag each dashtam/<stage>, push each to the registry
    (started when it is not up), say how long, how big and which digest.

    When the image each stage's tag names carries the digest of today's inputs
    (pipeline.build_inputs), that image is the build: it is tagged, gated and pushed like a
    fresh one, and BuildKit is not asked; a bake labels what it builds with that digest.
    show=False keeps BuildKit's output to itself unless a step fails; extra_tags are tagged
    too (a verify run's own tag), so they name exactly what was built.
    """
    for name in stage_names:
        stage(name)
    # The registry is started (or found up) alongside the checks: it is last, so a missing
    # engine or stand-in is reported by its own check.
    engine_version, *_, source, address = preflight.require_all(
        preflight.require_engine,
        preflight.require_lock_file,
        image_sources.require_image_source,
        registry.start_or_reuse,
    )
    commit = clean_commit_sha()
    tags = {
        name: stage_tags(name, commit) + [f"{image_name(name)}:{tag}" for tag in extra_tags]
        for name in stage_names
    }
    cache = pushing.layer_caches(address, stage_names)
    definition = bake_definition(
        tags, source=source, context=ROOT, dockerfile=DOCKERFILE, cache_from=cache
    )
    inputs = inputs_digests(definition, str(engine_version))
    answers = images_built_from(inputs, tags) if inputs else None
    seconds = 0.0
    if answers is None:
        if inputs:
            definition = labelled(definition, inputs)
        rounds = bake_rounds(stage_names, DOCKERFILE)
        seconds, _ = bake(definition, rounds, progress="auto" if show else "plain", show=show)
        if inputs and inputs != inputs_digests(definition, str(engine_version)):
            raise PipelineError(
                f"the build context ({ROOT}) changed while BuildKit read it: the images may not "
                "be what their inputs label says; build again."
            )
        inspected = inspect_built([tags[name][0] for name in stage_names])
        answers = dict(zip(stage_names, inspected, strict=True))
    for name, answer in answers.items():
        if (answer.user or "root") in ("root", "0", "0:0"):
            raise PipelineError(
                f"docker/Dockerfile: stage {name!r} is configured to run as root; "
                "end the stage with `USER appuser`."
            )
    pushed = pushing.push_images(
        {name: answer.image_id for name, answer in answers.items()},
        address,
        known={answer.image_id: answer.repo_digests for answer in answers.values()},
    )
    changed = [name for name in stage_names if pushed[name].uploaded]
    if changed and os.environ.get(CACHE_VARIABLE) != "gha":
        export_layer_cache(
            {name: pushing.cache_reference(address, name) for name in changed}, source
        )
    results = [
        BuildResult(
            name,
            tuple(tags[name]),
            answer.size_bytes,
            seconds,
            len(stage_names),
            answer.image_id,
            pushed[name].reference,
        )
        for name, answer in answers.items()
    ]
    built = ", ".join(result.tags[0] for result in results)
    if not seconds:
        print(f"dashtam: {built}: built before from these very inputs", file=sys.stderr)
    elif not show:
        print(f"dashtam: built {built} in {seconds:.1f} s", file=sys.stderr)
    return results


def inputs_digests(definition: dict, engine_version: str) -> dict[str, str] | None:
    """Stage -> the digest of what the definition builds it from (pipeline.build_inputs);
    None when that cannot be read for sure, or the build is asked to pull or skip the cache
    (then BuildKit decides)."""
    if _flag(PULL_VARIABLE) or _flag(NO_CACHE_VARIABLE):
        return None
    first = next(iter(definition["target"].values()))
    context = Path(first["context"])
    dockerfile = context / first["dockerfile"]
    references = build_inputs.base_references(dockerfile.read_text(), first["args"])
    if references is None:
        return None
    base_ids = {
        reference: image["Id"] for reference, image in engine.inspect_images(references).items()
    }
    if set(base_ids) != set(references):
        return None  # a base image the engine does not have: BuildKit pulls or fails
    return build_inputs.stage_digests(
        definition, context=context, dockerfile=dockerfile, base_ids=base_ids, engine=engine_version
    )


def labelled(definition: dict, inputs: dict[str, str]) -> dict:
    """The definition with each stage's inputs digest as a label on its image."""
    targets = {
        name: {**target, "labels": {**target["labels"], build_inputs.INPUTS_LABEL: inputs[name]}}
        for name, target in definition["target"].items()
    }
    return {**definition, "target": targets}


def images_built_from(
    inputs: dict[str, str], tags: dict[str, list[str]]
) -> dict[str, InspectedImage] | None:
    """Stage -> the image its first tag names, when every stage's carries the digest of
    these inputs (given the tags it lacks: a verify run's own, the commit's); else None."""
    found = engine.inspect_images([tags[name][0] for name in inputs])
    images = {name: found.get(tags[name][0]) for name in inputs}
    for name, image in images.items():
        labels = ((image or {}).get("Config") or {}).get("Labels") or {}
        if labels.get(build_inputs.INPUTS_LABEL) != inputs[name]:
            return None
    for name, image in images.items():
        for tag in tags[name][1:]:
            if tag not in (image.get("RepoTags") or []):
                engine.tag_image(image["Id"], tag)
    return {name: _inspected(image) for name, image in images.items()}


def export_layer_cache(
    cache: dict[str, str], source: str, context: Path = ROOT, dockerfile: Path = DOCKERFILE
) -> None:
    """Bake the stages again — every step cached: a solve and an export — into images that
    carry BuildKit's inline cache, and push each to its reference in `cache` (stage ->
    <registry>/dashtam/<stage>:cache).

    Images of their own, because the inline cache metadata differs from one build to the
    next: carried by the images that run, it would give unchanged sources a new image ID
    (and a new push) every time.
    """
    definition = bake_definition(
        {name: [reference] for name, reference in cache.items()},
        source=source,
        context=context,
        dockerfile=dockerfile,
        cache_from=list(cache.values()),
        inline_cache=True,
    )
    bake(definition, bake_rounds(list(cache), dockerfile), progress="plain", show=False)
    pushing.push_cache(list(cache.values()))


class InspectedImage(NamedTuple):
    image_id: str
    user: str  # as configured (USER)
    size_bytes: int
    repo_digests: list[str]  # the `name@digest` references the engine knows it by


def inspect_built(references: list[str]) -> list[InspectedImage]:
    """What the build gate and the push need of each image, in one `docker image inspect`."""
    return [_inspected(image) for image in engine.built_images(references)]


def _inspected(image: dict) -> InspectedImage:
    """What the build gate and the push need, from the engine's inspect JSON of an image."""
    return InspectedImage(
        image["Id"],
        (image.get("Config") or {}).get("User") or "",
        image["Size"],
        image.get("RepoDigests") or [],
    )


def _stage_list(stage_names: tuple[str, ...] | list[str]) -> str:
    if len(stage_names) == 1:
        return f"stage {stage_names[0]!r}"
    return "stages " + ", ".join(repr(name) for name in stage_names)


def format_build_table(results: list[BuildResult]) -> str:
    lines = [
        "| stage | image | size (MB) | build time (s) | in the registry |",
        "|---|---|---:|---:|---|",
    ]
    for result in results:
        together = f" ({result.built_with} stages baked together)" if result.built_with > 1 else ""
        if not result.seconds:
            together = " (nothing to build: its inputs are unchanged)"
        lines.append(
            f"| {result.stage} | {result.tags[0]} | {result.size_bytes / 1e6:.1f} "
            f"| {result.seconds:.1f}{together} | {result.reference or 'not pushed'} |"
        )
    return "\n".join(lines)


BUILD_RECORD = REPORTS / "build.json"
# Stage -> image ID and digest reference: what `verify` boots and reports name.
IMAGES_RECORD = REPORTS / "images.json"


def record_and_format(built: list[BuildResult], *, fresh: bool = False) -> str:
    """Add these builds to reports/build.json and reports/images.json, and render every stage
    built so far as a table.

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
            "image_id": result.image_id,
            "reference": result.reference,
        }
    BUILD_RECORD.write_text(json.dumps(record, indent=2) + "\n")
    identities = {
        name: {"image_id": entry.get("image_id", ""), "reference": entry.get("reference", "")}
        for name, entry in record.items()
    }
    IMAGES_RECORD.write_text(json.dumps(identities, indent=2) + "\n")
    results = [
        BuildResult(
            name,
            tuple(entry["tags"]),
            entry["size_bytes"],
            entry["seconds"],
            entry.get("built_with", 1),
            entry.get("image_id", ""),
            entry.get("reference", ""),
        )
        for name, entry in record.items()
        if name in STAGES
    ]
    results.sort(key=lambda built: STAGES.index(built.stage))
    table = format_build_table(results)
    (REPORTS / "build.md").write_text(table + "\n")
    return table
