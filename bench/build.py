"""The build section: every stage of both designs, cold, unchanged, after a source change and
after a dependency change, from a private copy of the sources; then, for the project, the
same sources rebuilt as a second clone would, with an empty BuildKit cache importing the
layer cache pushed to the registry; then the images' sizes.

Builds go through pipeline.images (bake_definition, bake_rounds, bake), as `nox -s build-all`
builds them; image questions through pipeline.engine.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

from bench.figures import SCENARIO_LABELS
from bench.parsers import BuildStep, parse_build_steps, split_cached
from bench.record import PROJECT, VARIANTS, BenchRun, Variant
from pipeline import engine, images, pushing, registry
from pipeline.docker_client import best_effort, docker, translated
from pipeline.environments import ROOT, STAGES
from pipeline.errors import PipelineError
from pipeline.image_sources import image_references
from pipeline.process import last_line, run, say

# Without a git work tree the build context is these paths (what either Dockerfile reads).
CONTEXT_PATHS = ("pyproject.toml", "uv.lock", "alembic.ini", "alembic", "src", "docker", "bench")
# The file the source-change scenario appends one line to.
CHANGED_SOURCE = Path("src") / "main.py"
# The dependency-change scenario adds one small pure-Python package, a different release per
# repetition, so no repetition finds the previous one's layers or uv cache entries.
DEPENDENCY = "six"
DEPENDENCY_VERSIONS = ("1.17.0", "1.16.0", "1.15.0", "1.14.0", "1.13.0", "1.12.0", "1.11.0")
# Tags the build section leaves behind: `:noop` (the current sources) is what boot runs.
SUPERSEDED_SCENARIOS = ("warm", "cold", "source", "dependency", "registry")


def copy_sources(destination: Path) -> Path:
    """A private copy of the build context: git's files (tracked or new, never ignored)."""
    listing = run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT)
    if listing.returncode == 0 and listing.stdout:
        relatives = [Path(name) for name in listing.stdout.split("\0") if name]
    else:
        relatives = [
            path.relative_to(ROOT)
            for name in CONTEXT_PATHS
            for path in ([ROOT / name] if (ROOT / name).is_file() else (ROOT / name).rglob("*"))
            if path.is_file() and "__pycache__" not in path.parts
        ]
    for relative in relatives:
        source = ROOT / relative
        if not source.is_file():
            continue  # deleted in the work tree, still in the index
        target = destination / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
    return destination


def change_source(context: Path, marker: str) -> None:
    """The one-line change: a comment appended to one file under src/."""
    path = context / CHANGED_SOURCE
    path.write_text(path.read_text() + f"# bench: one-line source change {marker}\n")


def add_dependency(context: Path, requirement: str) -> float:
    """`uv add --no-sync <requirement>` in the copy: pyproject.toml and uv.lock change there."""
    if shutil.which("uv") is None:
        raise PipelineError("uv is not on PATH; install it (`pip install uv`) to re-lock.")
    # uv would otherwise re-lock against the caller's virtual environment, not the copy's.
    process_environment = {key: value for key, value in os.environ.items() if key != "VIRTUAL_ENV"}
    started = time.monotonic()
    result = run(
        ["uv", "add", "--no-sync", "--quiet", requirement],
        cwd=context,
        env=process_environment,
        timeout=300,
    )
    if result.returncode != 0:
        raise PipelineError(
            f"`uv add {requirement}` in the bench's copy failed ({last_line(result.stderr)}); "
            "check that the Python package index is reachable."
        )
    return time.monotonic() - started


def prune_build_cache() -> None:
    """Empty BuildKit's cache (layers and cache mounts); images, base images included, stay."""
    with translated("`docker builder prune --all`"):
        docker().buildx.prune(all=True)


def bake_stages(
    context: Path, variant: Variant, tags: dict[str, str], source: str
) -> tuple[float, list[BuildStep]]:
    """Every stage in `tags`, baked as the pipeline bakes them: (seconds, steps)."""
    dockerfile = context / variant.dockerfile
    definition = images.bake_definition(
        {stage: [tag] for stage, tag in tags.items()},
        source=source,
        context=context,
        dockerfile=dockerfile,
    )
    rounds = images.bake_rounds(list(tags), dockerfile)
    # The bench's terminal gets one line per build; BuildKit's output only when a step fails.
    seconds, output = images.bake(definition, rounds, progress="plain", show=False)
    return seconds, parse_build_steps(output)


def bake_replacing(
    bench_run: BenchRun, context: Path, variant: Variant, tags: dict[str, str]
) -> tuple[float, list[BuildStep]]:
    """bake_stages, then drop the images the new tags replaced: (seconds, steps)."""
    previous = {tag: engine.image_id(tag) for tag in tags.values()}
    result = bake_stages(context, variant, tags, bench_run.source)
    for tag, identifier in previous.items():
        if identifier and identifier != engine.image_id(tag):
            engine.remove_if_untagged(identifier)
    return result


def run_builds(bench_run: BenchRun) -> None:
    """The build section: every repetition of both designs, then layers and clean-up."""
    if bench_run.quick:
        bench_run.notes.append(
            "--quick: one repetition and no cold build (so no ratio to cold); the first "
            "build of each Dockerfile is a warm-up, and a dependency change an earlier run "
            "already built comes back cached."
        )
    # The seed baseline first: the project's cache then survives the repetition, and the
    # session section's warm-up finds the current sources already built.
    for repetition in range(bench_run.repeat):
        for variant in reversed(VARIANTS):
            build_repetition(bench_run, variant, repetition)
    record_layers(bench_run)
    remove_superseded_images()


def record_layers(bench_run: BenchRun) -> None:
    """The Python base image's size, and the layers of the images the size table shows."""
    python_base = image_references(bench_run.source)["PYTHON_IMAGE"]
    bench_run.sizes["python_base"] = engine.image_size(python_base)
    bench_run.layers["python_base"] = engine.image_layers(python_base)
    for variant in VARIANTS:
        stages = STAGES if variant is PROJECT else ("production",)
        bench_run.layers[variant.name] = {
            stage: engine.image_layers(f"{variant.namespace}/{stage}:noop") for stage in stages
        }


def remove_superseded_images() -> None:
    """Keep `:noop` (the current sources, which the boot section runs); drop the others."""
    for variant in VARIANTS:
        for stage in STAGES:
            for scenario in SUPERSEDED_SCENARIOS:
                reference = f"{variant.namespace}/{stage}:{scenario}"
                superseded = engine.image_id(reference)
                if superseded:
                    with best_effort():
                        docker().image.remove(reference)
                    engine.remove_if_untagged(superseded)


def build_repetition(bench_run: BenchRun, variant: Variant, repetition: int) -> None:
    """One repetition of every scenario for one design, in a fresh copy of the sources."""
    version = DEPENDENCY_VERSIONS[repetition % len(DEPENDENCY_VERSIONS)]
    with tempfile.TemporaryDirectory(prefix="dashtam-bench-") as directory:
        context = copy_sources(Path(directory))
        if bench_run.quick:
            build_all(bench_run, variant, context, "warm", repetition)
        else:
            say(f"{variant.name}: pruning the BuildKit cache for a cold build", speaker="bench")
            prune_build_cache()
            build_all(bench_run, variant, context, "cold", repetition)
        build_all(bench_run, variant, context, "noop", repetition)
        record_sizes(bench_run, variant)
        change_source(context, f"{bench_run.run_id}-{repetition}")
        build_all(bench_run, variant, context, "source", repetition)
        requirement = f"{DEPENDENCY}=={version}"
        lock_seconds = add_dependency(context, requirement)
        bench_run.dependency_changes.append(
            {
                "variant": variant.name,
                "repetition": repetition,
                "requirement": requirement,
                "lock_seconds": round(lock_seconds, 2),
            }
        )
        build_all(bench_run, variant, context, "dependency", repetition)
        if variant is PROJECT and not bench_run.quick:
            rebuild_from_registry(bench_run, context, repetition)


def rebuild_from_registry(bench_run: BenchRun, context: Path, repetition: int) -> None:
    """A second clone's build of these sources: their layer cache pushed to the registry as
    the pipeline pushes it, BuildKit's own cache emptied, every stage rebuilt importing it."""
    dockerfile = context / PROJECT.dockerfile
    stages = images.images_that_run(STAGES, dockerfile)
    address = registry.ensure_registry()
    # The bench's own namespace in the registry, so the pipeline's cache stays untouched.
    cache = [f"{address}/{PROJECT.namespace}/{stage}:{pushing.CACHE_TAG}" for stage in stages]
    images.export_layer_cache(
        dict(zip(stages, cache, strict=True)), bench_run.source, context, dockerfile
    )
    say("project: pruning the BuildKit cache for a second clone's build", speaker="bench")
    prune_build_cache()
    tags = {stage: f"{PROJECT.namespace}/{stage}:registry" for stage in stages}
    definition = images.bake_definition(
        {stage: [tag] for stage, tag in tags.items()},
        source=bench_run.source,
        context=context,
        dockerfile=dockerfile,
        cache_from=cache,
    )
    seconds, output = images.bake(
        definition, images.bake_rounds(stages, dockerfile), progress="plain", show=False
    )
    record_build(
        bench_run, PROJECT, "registry", repetition, tags, seconds, parse_build_steps(output)
    )


def record_sizes(bench_run: BenchRun, variant: Variant) -> None:
    """Each stage's image as the unchanged sources build it (and, once, the Python base)."""
    for stage in STAGES:
        size = engine.image_size(f"{variant.namespace}/{stage}:noop")
        bench_run.sizes.setdefault(variant.name, {})[stage] = size
        bench_run.add(f"size.{variant.name}.{stage}.bytes", size)
    if variant is PROJECT:
        python_base = image_references(bench_run.source)["PYTHON_IMAGE"]
        bench_run.add("size.python_base.bytes", engine.image_size(python_base))


def build_all(
    bench_run: BenchRun, variant: Variant, context: Path, scenario: str, repetition: int
) -> None:
    """Every stage, timed, as `nox -s build-all` builds them: one bake of the images that
    run, which builds base and builder as their parts."""
    dockerfile = context / variant.dockerfile
    tags = {
        stage: f"{variant.namespace}/{stage}:{scenario}"
        for stage in images.images_that_run(STAGES, dockerfile)
    }
    total, steps = bake_replacing(bench_run, context, variant, tags)
    record_build(bench_run, variant, scenario, repetition, tags, total, steps)
    if scenario == "noop":
        # base and builder as images too, for the size table: cached, and not timed.
        parts = {
            stage: f"{variant.namespace}/{stage}:{scenario}"
            for stage in STAGES
            if stage not in tags
        }
        bake_replacing(bench_run, context, variant, parts)


def record_build(
    bench_run: BenchRun,
    variant: Variant,
    scenario: str,
    repetition: int,
    tags: dict[str, str],
    total: float,
    steps: list[BuildStep],
) -> None:
    bench_run.builds.append(
        {
            "variant": variant.name,
            "scenario": scenario,
            "repetition": repetition,
            "stages": list(tags),
            "tags": list(tags.values()),
            "seconds": round(total, 3),
            "steps": [asdict(step) for step in steps],
        }
    )
    if scenario != "warm":
        bench_run.add(f"build.{variant.name}.{scenario}.seconds", total)
    note_if_all_cached(bench_run, variant, scenario, repetition, steps)
    say(
        f"{variant.name}: {SCENARIO_LABELS[scenario]}: {total:.1f} s (repetition {repetition + 1})",
        speaker="bench",
    )


def note_if_all_cached(
    bench_run: BenchRun, variant: Variant, scenario: str, repetition: int, steps: list[BuildStep]
) -> None:
    """A rebuild that ran nothing measured nothing: the report says so."""
    ran, _ = split_cached([steps])
    if scenario == "dependency":
        ran = [name for name in ran if "uv sync" in name]
    if scenario in ("cold", "source", "dependency") and not ran:
        bench_run.notes.append(
            f"{variant.name}, repetition {repetition + 1}: the {SCENARIO_LABELS[scenario]} "
            "came back entirely cached (an earlier run built the same change), so it "
            "measured no rebuild; a run without --quick prunes the cache first."
        )
