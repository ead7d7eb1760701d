"""`nox -s bench`: build, size, boot and verify figures against the seed design and goss.

Writes reports/bench.json (every raw sample) and reports/bench.md (medians with min and max,
the targets, project / baseline ratios, cached steps, sizes per stage and layer, and goss).
A missed target never fails the run: it is printed with the amount it is missed by.

    python -m pipeline.bench [--repeat N] [--quick] [--only build,session,boot] [--environment ci]

What it measures, and how:
- build: all five stages of docker/Dockerfile (and of the seed design, bench/Dockerfile.seed)
  with one `docker buildx bake` of the images that run (development, production, callback;
  base and builder are built as their parts), as `nox -s build-all` builds them, from a
  private copy of the sources, tagged dashtam-bench/<stage> and
  dashtam-bench-baseline/<stage> so dashtam/<stage>:latest stays untouched. Per repetition:
  a cold build after `docker builder prune --all` (base images stay), a no-op rebuild, a
  rebuild after a one-line change under src/, and one after adding a small dependency and
  re-locking with uv.
- size: each stage's image, the production image's layers, and its Python base image.
- session: a whole `nox -s "verify(ci)"` with its images cached.
- boot: each environment from `compose up` to healthy (and the seed design's ci stack),
  then tests/infra against it; on ci also goss with the checks both can express.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from pipeline import base_images, image_sources, preflight, reports
from pipeline import stack as stacks
from pipeline.environments import ENVIRONMENTS, REPORTS, ROOT, SERVICE_PORTS, STAGES, image_name
from pipeline.errors import PipelineError
from pipeline.images import (
    bake_definition,
    bake_file,
    bake_rounds,
    build_arguments,
    images_that_run,
)
from pipeline.verification import checks_environment, infra_pytest_arguments

REPORT_JSON = REPORTS / "bench.json"
REPORT_MARKDOWN = REPORTS / "bench.md"
BENCH = ROOT / "bench"
GOSS_FOLDER = BENCH / "goss"
DEFAULT_REPEAT = 3
SECTIONS = ("build", "session", "boot")
SCENARIOS = ("cold", "noop", "source", "dependency")
SCENARIO_LABELS = {
    "warm": "warm-up build (--quick; not a figure)",
    "cold": "cold build, empty BuildKit cache",
    "noop": "no-op rebuild",
    "source": "rebuild after a one-line change in src/",
    "dependency": "rebuild after adding a dependency and re-locking",
}
# Without a git work tree the build context is these paths (what either Dockerfile reads).
CONTEXT_PATHS = ("pyproject.toml", "uv.lock", "alembic.ini", "alembic", "src", "docker", "bench")
# The file the source-change scenario appends one line to.
CHANGED_SOURCE = Path("src") / "main.py"
# The dependency-change scenario adds one small pure-Python package, a different release per
# repetition, so no repetition finds the previous one's layers or uv cache entries.
DEPENDENCY = "six"
DEPENDENCY_VERSIONS = ("1.17.0", "1.16.0", "1.15.0", "1.14.0", "1.13.0", "1.12.0", "1.11.0")
# The stages each environment runs, and the service whose endpoint the boot probe polls.
PROBED_SERVICE = "app"
POLL_SECONDS = 0.2
# How long the health observer keeps watching after `compose up --wait` returned.
OBSERVE_AFTER_UP_SECONDS = 40
EN_DASH = "\u2013"

# Where the bench puts goss and its file inside a running container (not on the host).
GOSS_BINARY_IN_CONTAINER = "/tmp/dashtam-bench-goss"  # noqa: S108 - a path in the container
GOSS_FILE_IN_CONTAINER = "/tmp/dashtam-bench-goss.yaml"  # noqa: S108 - a path in the container
GOSS_IMAGE = "dashtam-bench/goss:latest"
GOSS_SERVICES = ("app", "callback", "postgres", "redis")
# Our checks that goss can also express, and how bench/goss/*.yaml expresses each.
GOSS_EQUIVALENTS = {
    "test_pid1_runs_as_appuser": "user appuser exists with uid/gid 1000 (app, callback)",
    "test_data_store_runs_as_its_own_user": "user postgres / redis exists",
    "test_everything_under_app_is_owned_by_appuser": "file /app owned by appuser (app, callback)",
    "test_listening_ports_are_exactly_the_declared_ones": "port tcp:<port> listening (all four)",
    "test_health_endpoint_answers_200": "http <service>/health[/ready] status 200",
}
GOSS_CANNOT_EXPRESS = (
    "which user a process runs as: goss `user` only reads /etc/passwd and `process` only says "
    "running, so PID 1's uid:gid (ours reads /proc) became 'the account exists'",
    "ownership of every file under /app: `file` checks one path, it does not recurse",
    "exactly the declared ports and no other: `port` asserts listed ports, never the absence "
    "of unlisted ones",
    "expected values from `docker compose config` (one source of truth): the goss files "
    "re-type ports, users and URLs",
    "Docker's view of a container: health status, failing streak, restart count, runtime "
    "hardening (cap_drop, read-only, no-new-privileges), host port bindings (docker inspect)",
    "image facts: configured user, exposed ports, no compilers or dev packages, no secrets in "
    "any layer or in history (docker image inspect / save)",
    "`compose exec whoami` and the readiness body's per-dependency JSON (only as a substring)",
    "a stack that has no shell or a read-only root: goss must first be copied into each "
    "container (`docker cp`), which fails under prod's read_only",
)


# ---------------------------------------------------------------- figures and targets (pure)


@dataclass(frozen=True)
class Summary:
    """Median, min and max of one figure's samples."""

    median: float
    minimum: float
    maximum: float
    count: int


def summarize(samples: Sequence[float]) -> Summary | None:
    """The summary of `samples`, or None when there is none."""
    if not samples:
        return None
    return Summary(statistics.median(samples), min(samples), max(samples), len(samples))


def pairwise_ratios(numerators: Sequence[float], denominators: Sequence[float]) -> list[float]:
    """Repetition i's numerator over repetition i's denominator (zero denominators skipped)."""
    return [top / bottom for top, bottom in zip(numerators, denominators, strict=False) if bottom]


@dataclass(frozen=True)
class Figure:
    key: str
    label: str
    unit: str  # "s", "bytes" or "ratio"
    section: str


@dataclass(frozen=True)
class Target:
    """A figure's median must be at most `limit`."""

    key: str
    limit: float


@dataclass(frozen=True)
class Verdict:
    target: Target
    summary: Summary | None

    @property
    def measured(self) -> bool:
        return self.summary is not None

    @property
    def passed(self) -> bool:
        return self.summary is not None and self.summary.median <= self.target.limit

    @property
    def excess(self) -> float:
        """How far the median is over the limit (0 when it is not)."""
        return max(0.0, self.summary.median - self.target.limit) if self.summary else 0.0


def evaluate(target: Target, samples: dict[str, list[float]]) -> Verdict:
    return Verdict(target, summarize(samples.get(target.key, [])))


def format_value(value: float, unit: str) -> str:
    if unit == "bytes":
        return (
            f"{value / 1e6:.1f} MB" if abs(value) >= 1e5 or not value else f"{value / 1e3:.1f} kB"
        )
    if unit == "s":
        return f"{value:.1f} s" if abs(value) >= 10 else f"{value:.2f} s"
    return f"{value:.3f}"


def format_summary(summary: Summary | None, unit: str) -> str:
    """`12.3 s (11.9-13.0)` with an en dash: the median, then min and max (n=1 for one sample)."""
    if summary is None:
        return "not measured"
    if summary.count == 1:
        return f"{format_value(summary.median, unit)} (n=1)"
    bare_unit = unit == "ratio"
    low = format_value(summary.minimum, unit)
    high = format_value(summary.maximum, unit)
    if not bare_unit:
        low, high = low.rsplit(" ", 1)[0], high.rsplit(" ", 1)[0]
    return f"{format_value(summary.median, unit)} ({low}{EN_DASH}{high})"


def miss_text(verdict: Verdict, unit: str) -> str:
    """`MISS by 0.020 (+40%)`, `pass`, or `not measured`."""
    if not verdict.measured:
        return "not measured"
    if verdict.passed:
        return "pass"
    percent = (
        (verdict.summary.median / verdict.target.limit - 1) * 100 if verdict.target.limit else 0
    )
    return f"MISS by {format_value(verdict.excess, unit)} (+{percent:.0f}%)"


def figures(environments: Sequence[str] = tuple(ENVIRONMENTS)) -> list[Figure]:
    """Every figure the report shows, in order."""
    rows: list[Figure] = []
    for variant, name in (("project", "project"), ("baseline", "seed baseline")):
        for scenario in SCENARIOS:
            rows.append(
                Figure(
                    f"build.{variant}.{scenario}.seconds",
                    f"{name}: {SCENARIO_LABELS[scenario]}",
                    "s",
                    "Build (all five stages)",
                )
            )
    for scenario in SCENARIOS[1:]:
        rows.append(
            Figure(
                f"build.project.{scenario}_to_cold",
                f"project: {scenario} ÷ cold",
                "ratio",
                "Build (all five stages)",
            )
        )
    for scenario in SCENARIOS:
        rows.append(
            Figure(
                f"build.project_to_baseline.{scenario}",
                f"project ÷ baseline: {SCENARIO_LABELS[scenario]}",
                "ratio",
                "Build (all five stages)",
            )
        )
    for stage in STAGES:
        rows.append(
            Figure(f"size.project.{stage}.bytes", f"project image: {stage}", "bytes", "Size")
        )
    rows += [
        Figure(
            "size.baseline.production.bytes", "seed baseline image: production", "bytes", "Size"
        ),
        Figure("size.python_base.bytes", "Python base image", "bytes", "Size"),
        Figure("size.production_to_python", "production ÷ its Python base image", "ratio", "Size"),
        Figure(
            "size.production_to_baseline", "project ÷ baseline: production image", "ratio", "Size"
        ),
    ]
    for environment in environments:
        rows += [
            Figure(
                f"boot.{environment}.up_seconds",
                f"{environment}: `compose up` to all services healthy",
                "s",
                "Boot",
            ),
            Figure(
                f"boot.{environment}.answer_to_healthy_seconds",
                f"{environment}: app answers to Docker reports healthy",
                "s",
                "Boot",
            ),
        ]
    rows += [
        Figure(
            "boot.baseline.ci.up_seconds",
            "seed baseline ci: `compose up` to all healthy",
            "s",
            "Boot",
        ),
        Figure(
            "boot.baseline.ci.answer_to_healthy_seconds",
            "seed baseline ci: app answers to Docker reports healthy",
            "s",
            "Boot",
        ),
        Figure(
            "boot.project_to_baseline.ci_up",
            "project ÷ baseline: ci time to healthy",
            "ratio",
            "Boot",
        ),
    ]
    for environment in environments:
        rows.append(
            Figure(
                f"verify.{environment}.suite_seconds",
                f"{environment}: tests/infra suite",
                "s",
                "Verify",
            )
        )
    rows += [
        Figure("session.verify_ci.seconds", '`nox -s "verify(ci)"`, images cached', "s", "Verify"),
        Figure("goss.seconds", "goss on ci, the checks both express", "s", "Peer (goss)"),
        Figure(
            "goss.suite_equivalent_seconds",
            "tests/infra on ci, the same checks (-k)",
            "s",
            "Peer (goss)",
        ),
        Figure("goss.suite_to_goss", "tests/infra ÷ goss, the same checks", "ratio", "Peer (goss)"),
    ]
    return rows


TARGETS = (
    Target("build.project.noop_to_cold", 0.05),
    Target("build.project.source_to_cold", 0.15),
    Target("build.project.dependency_to_cold", 0.40),
    Target("size.production_to_python", 1.35),
    Target("size.production_to_baseline", 0.60),
    Target("boot.ci.up_seconds", 15.0),
    Target("boot.ci.answer_to_healthy_seconds", 3.0),
    Target("verify.ci.suite_seconds", 30.0),
    Target("goss.suite_to_goss", 2.0),
    Target("session.verify_ci.seconds", 120.0),
)


def derive_ratios(samples: dict[str, list[float]]) -> dict[str, list[float]]:
    """The ratio figures, repetition by repetition, from the measured ones."""
    derived: dict[str, list[float]] = {}

    def put(key: str, top: str, bottom: str) -> None:
        ratios = pairwise_ratios(samples.get(top, []), samples.get(bottom, []))
        if ratios:
            derived[key] = ratios

    cold = "build.project.cold.seconds"
    for scenario in SCENARIOS[1:]:
        put(f"build.project.{scenario}_to_cold", f"build.project.{scenario}.seconds", cold)
    for scenario in SCENARIOS:
        put(
            f"build.project_to_baseline.{scenario}",
            f"build.project.{scenario}.seconds",
            f"build.baseline.{scenario}.seconds",
        )
    put("size.production_to_python", "size.project.production.bytes", "size.python_base.bytes")
    put(
        "size.production_to_baseline",
        "size.project.production.bytes",
        "size.baseline.production.bytes",
    )
    put("boot.project_to_baseline.ci_up", "boot.ci.up_seconds", "boot.baseline.ci.up_seconds")
    put("goss.suite_to_goss", "goss.suite_equivalent_seconds", "goss.seconds")
    return derived


# ---------------------------------------------------------------- BuildKit progress (pure)

_STEP_HEADER = re.compile(r"^#(?P<id>\d+) \[(?P<label>[^\]]+)\] (?P<instruction>.+)$")
_STEP_STATUS = re.compile(r"^#(?P<id>\d+) (?P<status>CACHED|DONE (?P<seconds>[\d.]+)s|ERROR\b.*)$")
# "builder 2/4", or under bake "<target> builder 2/4" (a shared step is reported once).
_STAGE_LABEL = re.compile(r"^(?:[\w.-]+ )?(?P<stage>[\w.-]+) (?P<index>\d+)/(?P<count>\d+)$")


@dataclass(frozen=True)
class BuildStep:
    """One Dockerfile instruction as BuildKit reported it: cached, ran or error."""

    label: str  # "builder 2/4"
    instruction: str
    status: str
    seconds: float | None = None

    @property
    def name(self) -> str:
        return f"[{self.label}] {self.instruction}"


def parse_build_steps(progress: str) -> list[BuildStep]:
    """The Dockerfile steps in `--progress=plain` output, in BuildKit's order.

    `[internal]` steps (context, metadata) and FROM lines are left out: they are not work the
    Dockerfile asks for.
    """
    headers: dict[int, tuple[str, str]] = {}
    statuses: dict[int, tuple[str, float | None]] = {}
    for line in progress.splitlines():
        line = line.rstrip()
        header = _STEP_HEADER.match(line)
        if header:
            step_id = int(header["id"])
            label = _STAGE_LABEL.match(header["label"])
            if label and step_id not in headers:
                headers[step_id] = (
                    f"{label['stage']} {label['index']}/{label['count']}",
                    header["instruction"].strip(),
                )
            continue
        status = _STEP_STATUS.match(line)
        if status:
            text = status["status"]
            kind = "cached" if text == "CACHED" else "ran" if text.startswith("DONE") else "error"
            seconds = float(status["seconds"]) if status["seconds"] else None
            statuses[int(status["id"])] = (kind, seconds)
    steps = []
    for step_id in sorted(headers):
        label, instruction = headers[step_id]
        if instruction.startswith("FROM "):
            continue
        kind, seconds = statuses.get(step_id, ("unknown", None))
        steps.append(BuildStep(label, instruction, kind, seconds))
    return steps


def split_cached(step_lists: Sequence[Sequence[BuildStep]]) -> tuple[list[str], list[str]]:
    """(steps that ran, steps that came back cached) over several stage builds, by name.

    A step the first stage build ran shows up cached in the next ones: it counts as ran.
    """
    ran: dict[str, None] = {}
    seen: dict[str, None] = {}
    for steps in step_lists:
        for step in steps:
            seen[step.name] = None
            if step.status != "cached":
                ran[step.name] = None
    return list(ran), [name for name in seen if name not in ran]


# ---------------------------------------------------------------- small parsers (pure)

_DOCKER_TIME = re.compile(
    r"^(?P<base>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(?P<fraction>\d+))?(?P<zone>Z|[+-]\d\d:\d\d)$"
)


def parse_docker_time(text: str) -> float:
    """A Docker RFC 3339 timestamp (nanoseconds, Z or offset) as Unix seconds."""
    match = _DOCKER_TIME.match(text.strip())
    if not match:
        raise ValueError(f"not a Docker timestamp: {text!r}")
    zone = "+00:00" if match["zone"] == "Z" else match["zone"]
    moment = datetime.fromisoformat(f"{match['base']}{zone}")
    fraction = float(f"0.{match['fraction']}") if match["fraction"] else 0.0
    return moment.timestamp() + fraction


def first_healthy_probe(health_log: Sequence[dict]) -> tuple[float, float] | None:
    """(start, end) of the first passing healthcheck probe: when Docker turned healthy."""
    for probe in health_log:
        if probe.get("ExitCode") == 0 and probe.get("Start") and probe.get("End"):
            return parse_docker_time(probe["Start"]), parse_docker_time(probe["End"])
    return None


def parse_history(text: str) -> list[dict]:
    """`docker history --human=false --format '{{.Size}}\\t{{.CreatedBy}}'` as dicts."""
    layers = []
    for line in text.splitlines():
        size, _, created_by = line.partition("\t")
        if size.strip().isdigit():
            layers.append({"bytes": int(size), "created_by": created_by.strip()})
    return layers


def goss_summary(output: str) -> dict:
    """Counts and failures from `goss validate --format json`."""
    try:
        document = json.loads(output)
    except json.JSONDecodeError:
        return {"tests": 0, "failed": 0, "failures": [f"unreadable goss output: {output[-200:]!r}"]}
    results = document.get("results") or []
    failures = [
        f"{result.get('resource-type')} {result.get('resource-id')}: {result.get('property')}"
        for result in results
        if not result.get("successful")
    ]
    summary = document.get("summary") or {}
    return {
        "tests": int(summary.get("test-count", len(results))),
        "failed": int(summary.get("failed-count", len(failures))),
        "failures": failures,
    }


# ---------------------------------------------------------------- Markdown (pure)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _short(text: str, width: int = 90) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def render_figures_table(report: dict) -> str:
    """One table: every figure's median (min to max), its target and pass / MISS."""
    samples = report.get("samples", {})
    targets = {target.key: target for target in TARGETS}
    lines = [f"| figure | median (min{EN_DASH}max) | target | result |", "|---|---|---|---|"]
    section = None
    for figure in figures(report.get("environments") or tuple(ENVIRONMENTS)):
        if figure.section != section:
            section = figure.section
            lines.append(f"| **{section}** | | | |")
        summary = summarize(samples.get(figure.key, []))
        target = targets.get(figure.key)
        if target:
            verdict = Verdict(target, summary)
            target_text = f"≤ {format_value(target.limit, figure.unit)}"
            result = miss_text(verdict, figure.unit)
            result = f"**{result}**" if result.startswith("MISS") else result
        else:
            target_text, result = "", ""
        lines.append(
            f"| {_cell(figure.label)} | {format_summary(summary, figure.unit)} "
            f"| {target_text} | {result} |"
        )
    return "\n".join(lines)


def missed_targets(report: dict) -> list[str]:
    """One line per missed or unmeasured target, saying by how much."""
    samples = report.get("samples", {})
    units = {figure.key: (figure.label, figure.unit) for figure in figures()}
    lines = []
    for target in TARGETS:
        label, unit = units.get(target.key, (target.key, "ratio"))
        verdict = evaluate(target, samples)
        if verdict.passed:
            continue
        limit = format_value(target.limit, unit)
        if not verdict.measured:
            lines.append(f"not measured: {label} (target ≤ {limit})")
        else:
            found = format_value(verdict.summary.median, unit)
            lines.append(
                f"missed: {label} is {found}, target ≤ {limit}: {miss_text(verdict, unit)}"
            )
    return lines


def render_markdown(report: dict) -> str:
    """reports/bench.md from the report dict (the same one written to bench.json)."""
    lines = [
        "# Dashtam bench",
        "",
        f"{report.get('started_at', '?')}, image source `{report.get('source', '?')}`, "
        f"{report.get('repeat', '?')} repetition(s){' (--quick)' if report.get('quick') else ''}"
        f", {report.get('machine', {}).get('cpus', '?')} CPUs, Docker Engine "
        f"{report.get('machine', {}).get('engine', '?')}. Each figure: median (min{EN_DASH}max) "
        "over the repetitions; ratios are taken repetition by repetition. Raw samples: "
        "reports/bench.json.",
        "",
        render_figures_table(report),
        "",
    ]
    missed = missed_targets(report)
    lines += ["## Targets missed", ""]
    lines += [f"- {line}" for line in missed] if missed else ["Every target is met."]
    lines.append("")
    errors = report.get("errors") or {}
    if errors:
        lines += ["## Not measured", ""]
        lines += [f"- {section}: {message}" for section, message in errors.items()]
        lines.append("")
    lines += _render_cached_steps(report)
    lines += _render_sizes(report)
    lines += _render_boots(report)
    lines += _render_slowest_checks(report)
    lines += _render_goss(report)
    notes = report.get("notes") or []
    if notes:
        lines += ["## Notes", ""] + [f"- {note}" for note in notes] + [""]
    return "\n".join(lines).rstrip() + "\n"


def _render_cached_steps(report: dict) -> list[str]:
    builds = report.get("builds") or []
    if not builds:
        return []
    lines = [
        "## Cached steps",
        "",
        "Last repetition of each build: which Dockerfile steps ran and which came back cached "
        "(one `docker buildx bake` of the images that run, which builds all five stages; a "
        "step the stages share is counted once).",
        "",
        "| Dockerfile | build | ran | cached | steps that ran |",
        "|---|---|---:|---:|---|",
    ]
    last = max(build["repetition"] for build in builds)
    for variant in ("project", "baseline"):
        for scenario in ("warm", *SCENARIOS):
            chosen = [
                build
                for build in builds
                if build["variant"] == variant
                and build["scenario"] == scenario
                and build["repetition"] == last
            ]
            if not chosen:
                continue
            step_lists = [[BuildStep(**step) for step in build["steps"]] for build in chosen]
            ran, cached = split_cached(step_lists)
            shown = "<br>".join(_cell(_short(name, 80)) for name in ran) or "nothing"
            lines.append(
                f"| {variant} | {SCENARIO_LABELS[scenario]} | {len(ran)} | {len(cached)} "
                f"| {shown} |"
            )
    return [*lines, ""]


def _render_sizes(report: dict) -> list[str]:
    sizes = report.get("sizes") or {}
    if not sizes:
        return []
    lines = ["## Image sizes", "", "| stage | project | seed baseline |", "|---|---:|---:|"]
    for stage in STAGES:
        project = sizes.get("project", {}).get(stage)
        baseline = sizes.get("baseline", {}).get(stage)
        lines.append(
            f"| {stage} | {format_value(project, 'bytes') if project else 'n/a'} "
            f"| {format_value(baseline, 'bytes') if baseline else 'n/a'} |"
        )
    python_base = sizes.get("python_base")
    if python_base:
        lines.append(f"| Python base image | {format_value(python_base, 'bytes')} | |")
    lines.append("")
    for variant, title in (("project", "project"), ("baseline", "seed baseline")):
        layers = ((report.get("layers") or {}).get(variant) or {}).get("production") or []
        if not layers:
            continue
        # The oldest layers are the Python base image's own (history lists newest first).
        inherited = len((report.get("layers") or {}).get("python_base") or [])
        layers = [
            dict(layer, created_by=f"(Python base image) {layer['created_by']}".strip())
            if index >= len(layers) - inherited
            else layer
            for index, layer in enumerate(layers)
        ]
        empty = sum(1 for layer in layers if not layer["bytes"])
        lines += [
            f"Layers of the {title} production image (`docker history`, newest first; "
            f"{empty} empty metadata layers left out):",
            "",
            "| size | created by |",
            "|---:|---|",
        ]
        lines += [
            f"| {format_value(layer['bytes'], 'bytes')} | `{_cell(_short(layer['created_by']))}` |"
            for layer in layers
            if layer["bytes"]
        ]
        lines.append("")
    return lines


def _render_boots(report: dict) -> list[str]:
    boots = [boot for boot in report.get("boots") or [] if boot.get("up_seconds") is not None]
    if not boots:
        return []
    lines = [
        "## Boot detail",
        "",
        "Seconds after `compose up` started (medians): when the app first answered its /health "
        f"(polled inside the container every {POLL_SECONDS} s), when Docker's first healthcheck "
        "passed, when `compose up --wait` returned; and per service, when its container started "
        "and when its first healthcheck passed (Docker's health log).",
        "",
        "| stack | app answers | Docker healthy | up returned | services: started / healthy | n |",
        "|---|---:|---:|---:|---|---:|",
    ]
    keys: list[tuple[str, str]] = []
    for boot in boots:
        key = (boot["variant"], boot["environment"])
        if key not in keys:
            keys.append(key)
    for variant, environment in keys:
        chosen = [b for b in boots if (b["variant"], b["environment"]) == (variant, environment)]
        services = []
        for service in SERVICE_PORTS:
            timeline = [b.get("services", {}).get(service, {}) for b in chosen]
            started = _median_text([entry.get("started_after") for entry in timeline])
            healthy = _median_text([entry.get("healthy_after") for entry in timeline])
            if started != "n/a":
                services.append(f"{service} {started} / {healthy}")
        lines.append(
            f"| {variant} {environment} "
            f"| {_median_text([b.get('answered_after') for b in chosen])} "
            f"| {_median_text([b.get('healthy_after') for b in chosen])} "
            f"| {_median_text([b.get('up_seconds') for b in chosen])} "
            f"| {'<br>'.join(services)} | {len(chosen)} |"
        )
    return [*lines, ""]


def _median_text(values: Sequence[float | None]) -> str:
    present = [value for value in values if value is not None]
    return f"{statistics.median(present):.1f}" if present else "n/a"


def _render_slowest_checks(report: dict) -> list[str]:
    suites = [suite for suite in report.get("suites") or [] if suite.get("selection") == "all"]
    if not suites:
        return []
    lines = ["## Slowest checks", ""]
    environments: list[str] = []
    for suite in suites:
        if suite["environment"] not in environments:
            environments.append(suite["environment"])
    for environment in environments:
        runs = [suite for suite in suites if suite["environment"] == environment]
        times: dict[str, list[float]] = {}
        for run in runs:
            for check in run.get("checks", []):
                times.setdefault(check["name"], []).append(check["seconds"])
        slowest = sorted(times.items(), key=lambda item: statistics.median(item[1]), reverse=True)
        outcome = ", ".join(f"{run['passed']} passed / {run['failed']} failed" for run in runs)
        lines += [
            f"**{environment}** ({outcome}); the ten slowest checks, median seconds (junit time, "
            "with fixture setup):",
            "",
            "| check | seconds |",
            "|---|---:|",
        ]
        lines += [
            f"| `{_cell(name)}` | {statistics.median(values):.2f} |"
            for name, values in slowest[:10]
        ]
        failed = sorted({name for run in runs for name in run.get("failures", [])})
        if failed:
            lines += ["", "Failed: " + ", ".join(f"`{name}`" for name in failed)]
        lines.append("")
    return lines


def _render_goss(report: dict) -> list[str]:
    goss = report.get("goss") or []
    if not goss:
        return []
    samples = report.get("samples", {})
    goss_summary_ = summarize(samples.get("goss.seconds", []))
    ours = summarize(samples.get("goss.suite_equivalent_seconds", []))
    ratio = summarize(samples.get("goss.suite_to_goss", []))
    last = goss[-1]
    lines = [
        "## Peer: goss",
        "",
        f"goss {report.get('goss_version', '?')} (Debian 13 package), copied into each running "
        "container of the same ci stack and run there with bench/goss/<service>.yaml "
        f"({last.get('tests', '?')} checks, {last.get('failed', '?')} failed in the last "
        "repetition). Wall time of the `docker exec … goss validate` calls, one container "
        "after another; the copy is setup and not counted. Ours: `pytest tests/infra -k …` "
        "with the equivalent checks, wall time of the whole pytest process.",
        "",
        f"| | median (min{EN_DASH}max) |",
        "|---|---|",
        f"| goss | {format_summary(goss_summary_, 's')} |",
        f"| tests/infra, the same checks | {format_summary(ours, 's')} |",
        f"| tests/infra ÷ goss | {format_summary(ratio, 'ratio')} |",
        "",
        "| our check | goss expresses it as |",
        "|---|---|",
    ]
    lines += [f"| `{name}` | {how} |" for name, how in GOSS_EQUIVALENTS.items()]
    lines += ["", "What goss could not express (our suite checks it):", ""]
    lines += [f"- {item}" for item in GOSS_CANNOT_EXPRESS]
    failures = sorted({failure for run in goss for failure in run.get("failures", [])})
    if failures:
        lines += ["", "goss failures: " + "; ".join(failures)]
    return [*lines, ""]


# ---------------------------------------------------------------- Docker plumbing


def say(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def run_command(
    command: Sequence[str],
    *,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    timeout: float | None = None,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(command),
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
    )


def last_line(text: str) -> str:
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


def image_id(reference: str) -> str | None:
    result = run_command(["docker", "image", "inspect", "--format", "{{.Id}}", reference])
    return result.stdout.strip() if result.returncode == 0 else None


def image_size(reference: str) -> int:
    result = run_command(["docker", "image", "inspect", "--format", "{{.Size}}", reference])
    if result.returncode != 0:
        raise PipelineError(f"cannot inspect image {reference} ({last_line(result.stderr)}).")
    return int(result.stdout.strip())


def image_layers(reference: str) -> list[dict]:
    result = run_command(
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


def tag_image(source: str, target: str) -> None:
    result = run_command(["docker", "image", "tag", source, target])
    if result.returncode != 0:
        raise PipelineError(f"cannot tag {source} as {target} ({last_line(result.stderr)}).")


def remove_if_untagged(identifier: str | None) -> None:
    """Delete an image this run superseded, unless something still names or runs it."""
    if not identifier:
        return
    result = run_command(
        ["docker", "image", "inspect", "--format", "{{len .RepoTags}}", identifier]
    )
    if result.returncode == 0 and result.stdout.strip() == "0":
        run_command(["docker", "image", "rm", identifier])


def copy_sources(destination: Path) -> Path:
    """A private copy of the build context: git's files (tracked or new, never ignored)."""
    listing = run_command(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT
    )
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
    environment = {key: value for key, value in os.environ.items() if key != "VIRTUAL_ENV"}
    started = time.monotonic()
    result = run_command(
        ["uv", "add", "--no-sync", "--quiet", requirement],
        cwd=context,
        env=environment,
        timeout=300,
    )
    if result.returncode != 0:
        raise PipelineError(
            f"`uv add {requirement}` in the bench's copy failed ({last_line(result.stderr)}); "
            "check that the Python package index is reachable."
        )
    return time.monotonic() - started


@dataclass(frozen=True)
class Variant:
    name: str  # project | baseline
    dockerfile: str  # relative to the context
    namespace: str


VARIANTS = (
    Variant("project", "docker/Dockerfile", "dashtam-bench"),
    Variant("baseline", "bench/Dockerfile.seed", "dashtam-bench-baseline"),
)


def bake_stages(
    context: Path, variant: Variant, tags: dict[str, str], source: str
) -> tuple[float, list[BuildStep]]:
    """Every stage with `docker buildx bake --progress=plain`, as the pipeline builds them
    (pipeline.images: bake_definition, in bake_rounds): (seconds, steps)."""
    dockerfile = context / variant.dockerfile
    definition = bake_definition(
        {stage: [tag] for stage, tag in tags.items()},
        source=source,
        context=context,
        dockerfile=dockerfile,
    )
    seconds = 0.0
    steps: list[BuildStep] = []
    with bake_file(definition) as path:
        for round_ in bake_rounds(list(tags), dockerfile):
            command = ["docker", "buildx", "bake", "--progress=plain", "--file", str(path)]
            started = time.monotonic()
            result = run_command([*command, *round_])
            seconds += time.monotonic() - started
            if result.returncode != 0:
                print(result.stderr[-3000:], file=sys.stderr)
                raise PipelineError(
                    f"{variant.dockerfile}: a stage failed to build in the bench "
                    f"({last_line(result.stderr)}); the BuildKit output above names the step."
                )
            steps += parse_build_steps(result.stderr)
    return seconds, steps


def prune_build_cache() -> None:
    """Empty BuildKit's cache (layers and cache mounts); images, base images included, stay."""
    result = run_command(["docker", "builder", "prune", "--all", "--force"], timeout=600)
    if result.returncode != 0:
        raise PipelineError(f"`docker builder prune --all` failed ({last_line(result.stderr)}).")


def engine_version() -> str:
    return run_command(["docker", "version", "--format", "{{.Server.Version}}"]).stdout.strip()


# ---------------------------------------------------------------- boot observation

# Run inside the app container with `python -I -S`: a bare socket request (urllib and its
# imports would cost the booting app more CPU at every poll). Prints the moment /health
# answered 200; exits non-zero while nothing answers.
_ANSWER_PROBE = """\
import socket, sys, time
connection = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=2)
if sys.argv[2] == "https":
    import ssl
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    connection = context.wrap_socket(connection)
connection.sendall(b"GET /health HTTP/1.1\\r\\nHost: 127.0.0.1\\r\\nConnection: close\\r\\n\\r\\n")
if connection.recv(64).split(b" ")[1] != b"200":
    sys.exit(1)
print(time.time())
"""


class HealthObserver(threading.Thread):
    """Watches a booting stack: when each container starts and turns healthy, when the app answers.

    "Answers": /health returned 200 to a request made inside the app container, polled every
    POLL_SECONDS. "Healthy": the end of a container's first passing healthcheck probe, read
    from Docker's health log as soon as it says healthy (the log keeps only five probes, so it
    is read while booting, not afterwards). When Docker's probe saw the app answer before our
    poll did, that probe's start counts as the first answer.
    """

    def __init__(self, project: str, service: str, port: int, scheme: str) -> None:
        super().__init__(daemon=True)
        self.project = project
        self.service = service
        self.port = port
        self.scheme = scheme
        self.answered_at: float | None = None
        self.started: dict[str, float] = {}
        self.healthy: dict[str, float] = {}
        self.probe_started: dict[str, float] = {}
        self.services: set[str] = set()
        self.polls = 0
        self._stop_event = threading.Event()

    def stop(self) -> None:
        self._stop_event.set()

    @property
    def healthy_at(self) -> float | None:
        return self.healthy.get(self.service)

    @property
    def done(self) -> bool:
        return (
            self.answered_at is not None
            and bool(self.services)
            and all(service in self.healthy for service in self.services)
        )

    def run(self) -> None:
        while not self._stop_event.is_set() and not self.done:
            self._poll()
            self._stop_event.wait(POLL_SECONDS)

    def _poll(self) -> None:
        self.polls += 1
        listed = run_command(
            ["docker", "ps", "-q", "--filter", f"label={stacks.PROJECT_LABEL}={self.project}"]
        )
        containers = listed.stdout.split()
        if not containers:
            return
        inspected = run_command(["docker", "inspect", *containers])
        try:
            states = json.loads(inspected.stdout or "[]")
        except json.JSONDecodeError:
            return
        app_container = None
        for state in states:
            service = (state.get("Config", {}).get("Labels") or {}).get(
                "com.docker.compose.service", state.get("Name", "?")
            )
            self.services.add(service)
            with contextlib.suppress(ValueError, KeyError):
                self.started.setdefault(service, parse_docker_time(state["State"]["StartedAt"]))
            health = state.get("State", {}).get("Health") or {}
            if service not in self.healthy and health.get("Status") == "healthy":
                probe = first_healthy_probe(health.get("Log") or [])
                self.healthy[service] = probe[1] if probe else time.time()
                if probe:
                    self.probe_started[service] = probe[0]
            if service == self.service:
                app_container = state.get("Id")
        if app_container and self.answered_at is None:
            result = run_command(
                [
                    "docker",
                    "exec",
                    app_container,
                    "python",
                    "-I",
                    "-S",
                    "-c",
                    _ANSWER_PROBE,
                    str(self.port),
                    self.scheme,
                ],
                timeout=10,
            )
            if result.returncode == 0:
                # The moment printed inside the container is when the answer arrived.
                with contextlib.suppress(ValueError, IndexError):
                    self.answered_at = float(result.stdout.split()[-1])
        first_probe = self.probe_started.get(self.service)
        if first_probe is not None and (self.answered_at is None or first_probe < self.answered_at):
            self.answered_at = first_probe

    def timeline(self, started_wall: float) -> dict[str, dict]:
        """Per service: seconds from `compose up` to its container's start and to healthy."""
        return {
            service: {
                "started_after": _after(self.started.get(service), started_wall),
                "healthy_after": _after(self.healthy.get(service), started_wall),
            }
            for service in sorted(self.services)
        }


@contextlib.contextmanager
def image_tag_variable(tag: str | None) -> Iterator[None]:
    """DASHTAM_IMAGE_TAG for compose (the shell's value wins over the env files)."""
    previous = os.environ.get("DASHTAM_IMAGE_TAG")
    if tag:
        os.environ["DASHTAM_IMAGE_TAG"] = tag
    else:
        os.environ.pop("DASHTAM_IMAGE_TAG", None)
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("DASHTAM_IMAGE_TAG", None)
        else:
            os.environ["DASHTAM_IMAGE_TAG"] = previous


# ---------------------------------------------------------------- the run


@dataclass
class Bench:
    source: str
    repeat: int
    quick: bool
    sections: tuple[str, ...]
    environments: tuple[str, ...]
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:6])
    samples: dict[str, list[float]] = field(default_factory=dict)
    builds: list[dict] = field(default_factory=list)
    boots: list[dict] = field(default_factory=list)
    suites: list[dict] = field(default_factory=list)
    goss: list[dict] = field(default_factory=list)
    sessions: list[dict] = field(default_factory=list)
    dependency_changes: list[dict] = field(default_factory=list)
    sizes: dict = field(default_factory=dict)
    layers: dict = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    goss_version: str = ""
    started_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    _temporary_tags: list[str] = field(default_factory=list)
    _goss_binary: Path | None = None
    _scratch: tempfile.TemporaryDirectory = field(
        default_factory=lambda: tempfile.TemporaryDirectory(prefix="dashtam-bench-")
    )

    def add(self, key: str, value: float) -> None:
        self.samples.setdefault(key, []).append(value)

    # ------------------------------------------------------------ preflight

    def preflight(self) -> None:
        preflight.require_engine()
        preflight.require_buildx()
        preflight.require_compose()
        preflight.require_lock_file()
        if self.source == image_sources.AIRGAP:
            base_images.require_stand_ins()
            base_images.require_local_image_builder()
        else:
            references = build_arguments(self.source)
            for variable in ("UV_IMAGE", "PYTHON_IMAGE"):
                reference = references[variable]
                if image_id(reference) is None:
                    say(f"pulling {reference} (cold builds start with the base images present)")
                    pulled = run_command(["docker", "pull", reference], timeout=900)
                    if pulled.returncode != 0:
                        raise PipelineError(
                            f"cannot pull {reference} ({last_line(pulled.stderr)}); without a "
                            f"registry set {image_sources.SOURCE_VARIABLE}=airgap."
                        )

    # ------------------------------------------------------------ sections

    def run(self) -> None:
        steps = [
            ("build", self.run_builds),
            ("session", self.run_verify_sessions),
            ("boot", self.run_boots),
        ]
        try:
            for section, step in steps:
                if section not in self.sections:
                    continue
                try:
                    step()
                except (PipelineError, subprocess.SubprocessError, OSError) as error:
                    self.errors[section] = str(error)
                    say(f"{section}: not measured: {error}")
        finally:
            self.remove_temporary_tags()
            self._scratch.cleanup()

    # ------------------------------------------------------------ build and size

    def run_builds(self) -> None:
        if self.quick:
            self.notes.append(
                "--quick: one repetition and no cold build (so no ratio to cold); the first "
                "build of each Dockerfile is a warm-up, and a dependency change an earlier run "
                "already built comes back cached."
            )
        # The seed baseline first: the project's cache then survives the repetition, and the
        # session section's warm-up finds the current sources already built.
        for repetition in range(self.repeat):
            for variant in reversed(VARIANTS):
                self.build_repetition(variant, repetition)
        python_base = build_arguments(self.source)["PYTHON_IMAGE"]
        self.sizes["python_base"] = image_size(python_base)
        self.layers["python_base"] = image_layers(python_base)
        for variant in VARIANTS:
            stages = STAGES if variant.name == "project" else ("production",)
            self.layers[variant.name] = {
                stage: image_layers(f"{variant.namespace}/{stage}:noop") for stage in stages
            }
        # Keep `:noop` (the current sources, which the boot section runs); drop the others.
        for variant in VARIANTS:
            for stage in STAGES:
                for scenario in ("warm", "cold", "source", "dependency"):
                    reference = f"{variant.namespace}/{stage}:{scenario}"
                    superseded = image_id(reference)
                    if superseded:
                        run_command(["docker", "image", "rm", reference])
                        remove_if_untagged(superseded)

    def build_repetition(self, variant: Variant, repetition: int) -> None:
        version = DEPENDENCY_VERSIONS[repetition % len(DEPENDENCY_VERSIONS)]
        with tempfile.TemporaryDirectory(prefix="dashtam-bench-") as directory:
            context = copy_sources(Path(directory))
            if self.quick:
                self.build_all(variant, context, "warm", repetition)
            else:
                say(f"{variant.name}: pruning the BuildKit cache for a cold build")
                prune_build_cache()
                self.build_all(variant, context, "cold", repetition)
            self.build_all(variant, context, "noop", repetition)
            for stage in STAGES:
                size = image_size(f"{variant.namespace}/{stage}:noop")
                self.sizes.setdefault(variant.name, {})[stage] = size
                self.add(f"size.{variant.name}.{stage}.bytes", size)
            if variant.name == "project":
                python_base = build_arguments(self.source)["PYTHON_IMAGE"]
                self.add("size.python_base.bytes", image_size(python_base))
            change_source(context, f"{self.run_id}-{repetition}")
            self.build_all(variant, context, "source", repetition)
            requirement = f"{DEPENDENCY}=={version}"
            lock_seconds = add_dependency(context, requirement)
            self.dependency_changes.append(
                {
                    "variant": variant.name,
                    "repetition": repetition,
                    "requirement": requirement,
                    "lock_seconds": round(lock_seconds, 2),
                }
            )
            self.build_all(variant, context, "dependency", repetition)

    def bake(self, context: Path, variant: Variant, tags: dict[str, str]):
        """bake_stages, then drop the images the new tags replaced: (seconds, steps)."""
        previous = {tag: image_id(tag) for tag in tags.values()}
        result = bake_stages(context, variant, tags, self.source)
        for tag, identifier in previous.items():
            if identifier and identifier != image_id(tag):
                remove_if_untagged(identifier)
        return result

    def build_all(self, variant: Variant, context: Path, scenario: str, repetition: int) -> None:
        """Every stage, timed, as `nox -s build-all` builds them: one bake of the images
        that run, which builds base and builder as their parts."""
        dockerfile = context / variant.dockerfile
        tags = {
            stage: f"{variant.namespace}/{stage}:{scenario}"
            for stage in images_that_run(STAGES, dockerfile)
        }
        total, steps = self.bake(context, variant, tags)
        if scenario == "noop":
            # base and builder as images too, for the size table: cached, and not timed.
            self.bake(
                context,
                variant,
                {
                    stage: f"{variant.namespace}/{stage}:{scenario}"
                    for stage in STAGES
                    if stage not in tags
                },
            )
        self.builds.append(
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
            self.add(f"build.{variant.name}.{scenario}.seconds", total)
        ran, _ = split_cached([steps])
        if scenario == "dependency":
            ran = [name for name in ran if "uv sync" in name]
        if scenario in ("cold", "source", "dependency") and not ran:
            self.notes.append(
                f"{variant.name}, repetition {repetition + 1}: the {SCENARIO_LABELS[scenario]} "
                "came back entirely cached (an earlier run built the same change), so it "
                "measured no rebuild; a run without --quick prunes the cache first."
            )
        say(
            f"{variant.name}: {SCENARIO_LABELS[scenario]}: {total:.1f} s "
            f"(repetition {repetition + 1})"
        )

    # ------------------------------------------------------------ whole verify(ci) session

    def run_verify_sessions(self) -> None:
        from pipeline import images

        say('warming the cache for `nox -s "verify(ci)"` (builds dashtam/production, callback)')
        self.notes.append(
            '`nox -s "verify(ci)"` builds and tags dashtam/production and dashtam/callback '
            "(:latest and the git SHA) from this work tree, as it always does; the bench's own "
            "builds only use the dashtam-bench* namespaces."
        )
        images.build_stages(ENVIRONMENTS["ci"].stages, progress=False)
        environment = {
            key: value
            for key, value in os.environ.items()
            if key not in ("DASHTAM_IMAGE_TAG", "VIRTUAL_ENV")
        }
        for repetition in range(self.repeat):
            started = time.monotonic()
            result = run_command(
                [sys.executable, "-m", "nox", "-s", "verify(ci)"],
                cwd=ROOT,
                env=environment,
                timeout=1800,
            )
            seconds = time.monotonic() - started
            passed = result.returncode == 0
            self.sessions.append(
                {
                    "repetition": repetition,
                    "seconds": round(seconds, 2),
                    "passed": passed,
                    "last_line": last_line(result.stderr),
                }
            )
            self.add("session.verify_ci.seconds", seconds)
            say(f'nox -s "verify(ci)": {seconds:.1f} s, {"passed" if passed else "FAILED"}')
            if not passed:
                self.notes.append(
                    f'`nox -s "verify(ci)"` failed in repetition {repetition + 1}: '
                    f"{last_line(result.stderr)}"
                )

    # ------------------------------------------------------------ boot, verify, goss

    def stack_tag(self, variant: Variant, stages: Sequence[str]) -> str | None:
        """Tag this run's images as dashtam/<stage>:bench-…, for the compose files to run."""
        sources = {stage: f"{variant.namespace}/{stage}:noop" for stage in stages}
        missing = [reference for reference in sources.values() if image_id(reference) is None]
        if missing:
            if variant.name == "baseline":
                raise PipelineError(
                    f"{', '.join(missing)} not built; run the bench with its build section."
                )
            self.notes.append(
                f"boot used dashtam/<stage>:latest: {', '.join(missing)} not built in this run."
            )
            return None
        tag = f"bench-{self.run_id}" + ("-seed" if variant.name == "baseline" else "")
        for stage, reference in sources.items():
            target = f"{image_name(stage)}:{tag}"
            tag_image(reference, target)
            self._temporary_tags.append(target)
        return tag

    def remove_temporary_tags(self) -> None:
        for tag in self._temporary_tags:
            run_command(["docker", "image", "rm", tag])
        self._temporary_tags.clear()

    def run_boots(self) -> None:
        project, baseline = VARIANTS
        for name in self.environments:
            tag = self.stack_tag(project, ENVIRONMENTS[name].stages)
            for repetition in range(self.repeat):
                self.boot_and_record(project, name, repetition, tag, checks=True)
        if "ci" in self.environments:
            try:
                tag = self.stack_tag(baseline, ENVIRONMENTS["ci"].stages)
            except PipelineError as error:
                self.errors["boot baseline ci"] = str(error)
                return
            for repetition in range(self.repeat):
                self.boot_and_record(baseline, "ci", repetition, tag, checks=False)

    def boot_and_record(
        self, variant: Variant, name: str, repetition: int, tag: str | None, *, checks: bool
    ) -> None:
        """One boot; a stack that fails to come up is recorded, and the run goes on."""
        with image_tag_variable(tag):
            try:
                self.boot(variant, name, repetition, checks=checks)
            except PipelineError as error:
                self.errors[f"boot {variant.name} {name}"] = str(error)
                say(f"{variant.name} {name}: not measured: {error}")

    def boot(self, variant: Variant, name: str, repetition: int, *, checks: bool) -> None:
        environment = ENVIRONMENTS[name]
        stack = stacks.verify_stack(
            environment, run_id=f"bench{self.run_id}{variant.name[0]}{repetition}"
        )
        observer = HealthObserver(
            stack.project, PROBED_SERVICE, SERVICE_PORTS[PROBED_SERVICE], environment.scheme
        )
        record: dict = {"variant": variant.name, "environment": name, "repetition": repetition}
        self.boots.append(record)
        try:
            stack.check_host_ports_free()
            observer.start()
            started_wall, started = time.time(), time.monotonic()
            stack.up()
            up_seconds = time.monotonic() - started
            observer.join(timeout=OBSERVE_AFTER_UP_SECONDS)
            observer.stop()
            record.update(
                up_seconds=round(up_seconds, 3),
                answered_after=_after(observer.answered_at, started_wall),
                healthy_after=_after(observer.healthy_at, started_wall),
                polls=observer.polls,
                services=observer.timeline(started_wall),
            )
            key = f"boot.{name}" if variant.name == "project" else f"boot.baseline.{name}"
            self.add(f"{key}.up_seconds", up_seconds)
            if observer.answered_at is not None and observer.healthy_at is not None:
                cadence = observer.healthy_at - observer.answered_at
                record["answer_to_healthy_seconds"] = round(cadence, 3)
                self.add(f"{key}.answer_to_healthy_seconds", cadence)
            say(
                f"{variant.name} {name}: healthy after {up_seconds:.1f} s; app answers to "
                f"healthy {record.get('answer_to_healthy_seconds', 'n/a')} s "
                f"(repetition {repetition + 1})"
            )
            if checks:
                self.run_checks(stack, name, repetition)
        finally:
            observer.stop()
            stack.down(remove_volumes=True)

    def run_checks(self, stack: stacks.Stack, name: str, repetition: int) -> None:
        suite = self.run_suite(stack, name, repetition, selection=None)
        self.add(f"verify.{name}.suite_seconds", suite["seconds"])
        if name != "ci":
            return
        try:
            binary = self.goss_binary()
        except PipelineError as error:
            self.errors["goss"] = str(error)
            return
        # Alternate which goes first, so neither always gets the warmer caches.
        order = ("goss", "ours") if repetition % 2 == 0 else ("ours", "goss")
        for which in order:
            if which == "goss":
                run = self.run_goss(stack, binary, repetition)
                self.add("goss.seconds", run["seconds"])
            else:
                selection = " or ".join(GOSS_EQUIVALENTS)
                equivalent = self.run_suite(stack, name, repetition, selection=selection)
                self.add("goss.suite_equivalent_seconds", equivalent["seconds"])

    def run_suite(
        self, stack: stacks.Stack, name: str, repetition: int, selection: str | None
    ) -> dict:
        with tempfile.TemporaryDirectory(prefix="dashtam-bench-junit-") as directory:
            junit = Path(directory) / "junit.xml"
            environment = dict(os.environ) | checks_environment(stack)
            command = [sys.executable, "-m", "pytest", *infra_pytest_arguments(junit), "-q"]
            if selection:
                command += ["-k", selection]
            started = time.monotonic()
            result = run_command(command, cwd=ROOT, env=environment, timeout=900)
            seconds = time.monotonic() - started
            checks = reports.read_junit(junit)
        record = {
            "environment": name,
            "repetition": repetition,
            "selection": selection or "all",
            "seconds": round(seconds, 3),
            "exit_code": result.returncode,
            "passed": sum(check.outcome == "passed" for check in checks),
            "failed": sum(check.outcome == "failed" for check in checks),
            "failures": [check.name for check in checks if check.outcome == "failed"],
            "checks": [
                {"name": check.name, "outcome": check.outcome, "seconds": check.seconds}
                for check in checks
            ],
        }
        if not checks:
            record["output"] = result.stdout[-2000:] + result.stderr[-2000:]
        self.suites.append(record)
        scope = "tests/infra" if not selection else "tests/infra, goss's checks"
        say(
            f"{scope} on {name}: {seconds:.1f} s, {record['passed']} passed, "
            f"{record['failed']} failed (repetition {repetition + 1})"
        )
        return record

    def goss_binary(self) -> Path:
        """goss from Debian 13's package, built into a helper image once, copied out once."""
        if self._goss_binary:
            return self._goss_binary
        build = ["docker", "buildx", "build", "--progress=plain", "--load", "--tag", GOSS_IMAGE]
        if self.source == image_sources.AIRGAP:
            build += ["--build-arg", f"DEBIAN_IMAGE={image_sources.AIRGAP_ROOTFS}"]
        result = run_command([*build, str(GOSS_FOLDER)], timeout=900)
        if result.returncode != 0:
            raise PipelineError(
                f"cannot build {GOSS_IMAGE} from bench/goss/Dockerfile "
                f"({last_line(result.stderr)})."
            )
        directory = Path(self._scratch.name)
        created = run_command(["docker", "create", GOSS_IMAGE])
        container = created.stdout.strip()
        try:
            copied = run_command(
                ["docker", "cp", f"{container}:/usr/bin/goss", str(directory / "goss")]
            )
            if copied.returncode != 0:
                raise PipelineError(
                    f"cannot copy goss out of {GOSS_IMAGE} ({last_line(copied.stderr)})."
                )
            self.goss_version = run_command(
                ["docker", "run", "--rm", GOSS_IMAGE, "dpkg-query", "-W", "-f=${Version}", "goss"]
            ).stdout.strip()
        finally:
            run_command(["docker", "rm", container])
        self._goss_binary = directory / "goss"
        return self._goss_binary

    def run_goss(self, stack: stacks.Stack, binary: Path, repetition: int) -> dict:
        containers = {service: stack.container(service).id for service in GOSS_SERVICES}
        for service, container in containers.items():
            for source, target in (
                (binary, GOSS_BINARY_IN_CONTAINER),
                (GOSS_FOLDER / f"{service}.yaml", GOSS_FILE_IN_CONTAINER),
            ):
                copied = run_command(["docker", "cp", str(source), f"{container}:{target}"])
                if copied.returncode != 0:
                    raise PipelineError(
                        f"cannot copy {source.name} into {service} ({last_line(copied.stderr)})."
                    )
        tests = failed = 0
        failures: list[str] = []
        per_service = {}
        started = time.monotonic()
        for service, container in containers.items():
            service_started = time.monotonic()
            result = run_command(
                [
                    "docker",
                    "exec",
                    container,
                    GOSS_BINARY_IN_CONTAINER,
                    "--gossfile",
                    GOSS_FILE_IN_CONTAINER,
                    "validate",
                    "--format",
                    "json",
                    "--no-color",
                ],
                timeout=120,
            )
            per_service[service] = round(time.monotonic() - service_started, 3)
            summary = goss_summary(result.stdout or result.stderr)
            tests += summary["tests"]
            failed += summary["failed"]
            failures += [f"{service}: {failure}" for failure in summary["failures"]]
        seconds = time.monotonic() - started
        record = {
            "repetition": repetition,
            "seconds": round(seconds, 3),
            "per_service": per_service,
            "tests": tests,
            "failed": failed,
            "failures": failures,
        }
        self.goss.append(record)
        say(
            f"goss on ci: {seconds:.2f} s, {tests} checks, {failed} failed "
            f"(repetition {repetition + 1})"
        )
        return record

    # ------------------------------------------------------------ report

    def report(self) -> dict:
        samples = {
            key: [round(value, 4) for value in values] for key, values in self.samples.items()
        }
        samples |= {
            key: [round(value, 4) for value in values]
            for key, values in derive_ratios(self.samples).items()
        }
        summaries = {
            key: asdict(summary)
            for key, values in samples.items()
            if (summary := summarize(values)) is not None
        }
        units = {figure.key: figure.unit for figure in figures()}
        targets = []
        for target in TARGETS:
            verdict = evaluate(target, samples)
            targets.append(
                {
                    "key": target.key,
                    "limit": target.limit,
                    "measured": verdict.measured,
                    "passed": verdict.passed,
                    "median": verdict.summary.median if verdict.summary else None,
                    "result": miss_text(verdict, units.get(target.key, "ratio")),
                }
            )
        return {
            "started_at": self.started_at,
            "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "source": self.source,
            "repeat": self.repeat,
            "quick": self.quick,
            "sections": list(self.sections),
            "environments": list(self.environments),
            "machine": {"cpus": os.cpu_count(), "engine": engine_version()},
            "samples": samples,
            "summaries": summaries,
            "targets": targets,
            "builds": self.builds,
            "dependency_changes": self.dependency_changes,
            "sizes": self.sizes,
            "layers": self.layers,
            "boots": self.boots,
            "suites": self.suites,
            "goss": self.goss,
            "goss_version": self.goss_version,
            "verify_sessions": self.sessions,
            "errors": self.errors,
            "notes": self.notes,
        }


def _after(moment: float | None, started: float) -> float | None:
    return round(moment - started, 3) if moment is not None else None


# ---------------------------------------------------------------- command line


def parse_arguments(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="nox -s bench --",
        description="Measure build, size, boot and verify; write reports/bench.json and .md.",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=DEFAULT_REPEAT,
        metavar="N",
        help=f"repetitions per figure (default {DEFAULT_REPEAT}; figures are their median)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="one repetition and no cold build (no cache prune): for developing the bench",
    )
    parser.add_argument(
        "--only",
        default=",".join(SECTIONS),
        metavar="SECTIONS",
        help=f"comma-separated sections to run (default all: {','.join(SECTIONS)})",
    )
    parser.add_argument(
        "--environment",
        action="append",
        choices=sorted(ENVIRONMENTS),
        dest="environments",
        help="environment(s) to boot and verify (repeatable; default all four)",
    )
    arguments = parser.parse_args(argv)
    sections = tuple(part.strip() for part in arguments.only.split(",") if part.strip())
    unknown = [section for section in sections if section not in SECTIONS]
    if unknown:
        parser.error(f"unknown section(s) {', '.join(unknown)}; use: {', '.join(SECTIONS)}")
    if arguments.repeat < 1:
        parser.error("--repeat must be at least 1")
    arguments.sections = sections
    arguments.repeat = 1 if arguments.quick else arguments.repeat
    arguments.environments = tuple(arguments.environments or ENVIRONMENTS)
    return arguments


def write_reports(report: dict) -> str:
    REPORTS.mkdir(parents=True, exist_ok=True)
    REPORT_JSON.write_text(json.dumps(report, indent=2) + "\n")
    markdown = render_markdown(report)
    REPORT_MARKDOWN.write_text(markdown)
    return markdown


def main(argv: Sequence[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    try:
        source = image_sources.selected_source()
        bench = Bench(
            source=source,
            repeat=arguments.repeat,
            quick=arguments.quick,
            sections=arguments.sections,
            environments=arguments.environments,
        )
        bench.preflight()
    except PipelineError as error:
        print(f"bench: {error}", file=sys.stderr)
        return 1
    if arguments.repeat < DEFAULT_REPEAT:
        bench.notes.append(
            f"{arguments.repeat} repetition(s): figures are meant as medians of at least "
            f"{DEFAULT_REPEAT}."
        )
    say(
        f"source {source}, {arguments.repeat} repetition(s), "
        f"sections {','.join(arguments.sections)}"
        f", environments {','.join(arguments.environments)}"
    )
    bench.run()
    report = bench.report()
    write_reports(report)
    print(render_figures_table(report))
    print()
    for line in missed_targets(report) or ["every target is met"]:
        print(line)
    for section, message in report["errors"].items():
        print(f"not measured: {section}: {message}")
    print(f"\nwritten: {REPORT_MARKDOWN.relative_to(ROOT)}, {REPORT_JSON.relative_to(ROOT)}")
    # A missed target is a finding, not a failure; only a section that could not run is.
    return 1 if report["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
