"""One bench run from start to end: preflight, the sections, reports/bench.json and .md.

A section that cannot run is recorded with its reason and the others still run; the images
and tags the run made for itself are removed whatever happens.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import asdict
from datetime import UTC, datetime

from bench import boot, build, runtime, session
from bench.figures import TARGETS, derive_ratios, evaluate, figures, miss_text, summarize
from bench.markdown import render_markdown
from bench.record import BenchRun
from pipeline import base_images, engine, image_sources, preflight
from pipeline.docker_client import docker, translated
from pipeline.environments import REPORTS
from pipeline.errors import PipelineError
from pipeline.process import say

REPORT_JSON = REPORTS / "bench.json"
REPORT_MARKDOWN = REPORTS / "bench.md"
# The sections in the order they run, and what runs each.
SECTION_RUNNERS = {
    "build": build.run_builds,
    "session": session.run_verify_sessions,
    "boot": boot.run_boots,
    "runtime": runtime.run_runtime,
}
SECTIONS = tuple(SECTION_RUNNERS)


def run_preflight(bench_run: BenchRun) -> None:
    """What every section needs, checked before any of them; base images in place."""
    bench_run.engine_version = preflight.require_engine()
    preflight.require_buildx()
    preflight.require_compose()
    preflight.require_lock_file()
    image_sources.require_image_source()
    if bench_run.source == image_sources.AIRGAP:
        base_images.require_local_image_builder()
        return
    references = image_sources.image_references(bench_run.source)
    for variable in ("UV_IMAGE", "PYTHON_IMAGE"):
        reference = references[variable]
        if not engine.image_exists(reference):
            say(
                f"pulling {reference} (cold builds start with the base images present)",
                speaker="bench",
            )
            with translated(
                f"pulling {reference}",
                f"without a registry set {image_sources.SOURCE_VARIABLE}=airgap",
            ):
                docker().image.pull(reference, quiet=True)


def run_sections(bench_run: BenchRun) -> None:
    """Each section asked for, in order; then the run's own tags and scratch space go."""
    try:
        for section, runner in SECTION_RUNNERS.items():
            if section not in bench_run.sections:
                continue
            try:
                runner(bench_run)
            except (PipelineError, subprocess.SubprocessError, OSError) as error:
                bench_run.errors[section] = str(error)
                say(f"{section}: not measured: {error}", speaker="bench")
    finally:
        boot.remove_temporary_tags(bench_run)
        bench_run.scratch.cleanup()


def _rounded(samples: dict[str, list[float]]) -> dict[str, list[float]]:
    return {key: [round(value, 4) for value in values] for key, values in samples.items()}


def target_results(samples: dict[str, list[float]]) -> list[dict]:
    """Each target's verdict, as bench.json records it."""
    units = {figure.key: figure.unit for figure in figures()}
    results = []
    for target in TARGETS:
        verdict = evaluate(target, samples)
        results.append(
            {
                "key": target.key,
                "limit": target.limit,
                "minimum": target.minimum,
                "measured": verdict.measured,
                "passed": verdict.passed,
                "median": verdict.summary.median if verdict.summary else None,
                "result": miss_text(verdict, units.get(target.key, "ratio")),
            }
        )
    return results


def build_report(bench_run: BenchRun) -> dict:
    """The report dict: written as bench.json, rendered as bench.md."""
    samples = _rounded(bench_run.samples) | _rounded(derive_ratios(bench_run.samples))
    summaries = {
        key: asdict(summary)
        for key, values in samples.items()
        if (summary := summarize(values)) is not None
    }
    return {
        "started_at": bench_run.started_at,
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "source": bench_run.source,
        "repeat": bench_run.repeat,
        "quick": bench_run.quick,
        "sections": list(bench_run.sections),
        "environments": list(bench_run.environments),
        "machine": {"cpus": os.cpu_count(), "engine": bench_run.engine_version},
        "samples": samples,
        "summaries": summaries,
        "targets": target_results(samples),
        "builds": bench_run.builds,
        "dependency_changes": bench_run.dependency_changes,
        "sizes": bench_run.sizes,
        "layers": bench_run.layers,
        "boots": bench_run.boots,
        "suites": bench_run.suites,
        "goss": bench_run.goss,
        "goss_version": bench_run.goss_version,
        "runtime": bench_run.runtime,
        "verify_sessions": bench_run.sessions,
        "errors": bench_run.errors,
        "notes": bench_run.notes,
    }


def write_reports(report: dict) -> str:
    """reports/bench.json and reports/bench.md; returns the Markdown."""
    REPORTS.mkdir(parents=True, exist_ok=True)
    REPORT_JSON.write_text(json.dumps(report, indent=2) + "\n")
    markdown = render_markdown(report)
    REPORT_MARKDOWN.write_text(markdown)
    return markdown
