"""What the bench reports: its figures, their targets, and how a figure's samples read.

Pure: no Docker. The figures and the ratios are tables of rows; a row that names a
scenario, stage or environment is repeated for each, its "{…}" fields filled in.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from pipeline.environments import ENVIRONMENTS, STAGES

SCENARIOS = ("cold", "noop", "source", "dependency")
# The rebuilds: every scenario a cold build is the yardstick for.
REBUILDS = SCENARIOS[1:]
SCENARIO_LABELS = {
    "warm": "warm-up build (--quick; not a figure)",
    "cold": "cold build, empty BuildKit cache",
    "noop": "no-op rebuild",
    "source": "rebuild after a one-line change in src/",
    "dependency": "rebuild after adding a dependency and re-locking",
    "registry": "second clone: empty BuildKit cache, the registry's layer cache imported",
}
EN_DASH = "\u2013"

BUILD = "Build (all five stages)"
SIZE = "Size"
BOOT = "Boot"
VERIFY = "Verify"
NO_OP = "Commands with nothing to do (whole command, start-up included)"
PEER = "Peer (goss)"
RUNTIME = "Runtime (production image)"


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
    unit: str  # "s", "bytes", "count" or "ratio"
    section: str


@dataclass(frozen=True)
class FigureGroup:
    """Rows of (key, label, unit) repeated together, once per value of `over`.

    `over` is "scenario", "rebuild", "stage", "environment", or None for rows shown once;
    the key and label name the value as {scenario} (and its {label}), {stage}, {environment}.
    """

    section: str
    over: str | None
    rows: tuple[tuple[str, str, str], ...]


def _group(section: str, over: str | None, *rows: tuple[str, str, str]) -> FigureGroup:
    return FigureGroup(section, over, rows)


# Every figure the report shows, in order. Each environment's two boot figures are one group
# so they stay side by side.
FIGURE_TABLE: tuple[FigureGroup, ...] = (
    _group(BUILD, "scenario", ("build.project.{scenario}.seconds", "project: {label}", "s")),
    _group(BUILD, "scenario", ("build.baseline.{scenario}.seconds", "seed baseline: {label}", "s")),
    _group(
        BUILD,
        "rebuild",
        ("build.project.{scenario}_to_cold", "project: {scenario} ÷ cold", "ratio"),
    ),
    _group(
        BUILD,
        "scenario",
        ("build.project_to_baseline.{scenario}", "project ÷ baseline: {label}", "ratio"),
    ),
    _group(
        BUILD,
        None,
        ("build.project.registry.seconds", f"project: {SCENARIO_LABELS['registry']}", "s"),
        ("build.project.registry_to_cold", "project: second clone ÷ cold", "ratio"),
    ),
    _group(SIZE, "stage", ("size.project.{stage}.bytes", "project image: {stage}", "bytes")),
    _group(
        SIZE,
        None,
        ("size.baseline.production.bytes", "seed baseline image: production", "bytes"),
        ("size.python_base.bytes", "Python base image", "bytes"),
        ("size.production_to_python", "production ÷ its Python base image", "ratio"),
        ("size.production_to_baseline", "project ÷ baseline: production image", "ratio"),
    ),
    _group(
        BOOT,
        "environment",
        (
            "boot.{environment}.up_seconds",
            "{environment}: `compose up` to all services healthy",
            "s",
        ),
        (
            "boot.{environment}.answer_to_healthy_seconds",
            "{environment}: app answers to Docker reports healthy",
            "s",
        ),
    ),
    _group(
        BOOT,
        None,
        ("boot.baseline.ci.up_seconds", "seed baseline ci: `compose up` to all healthy", "s"),
        (
            "boot.baseline.ci.answer_to_healthy_seconds",
            "seed baseline ci: app answers to Docker reports healthy",
            "s",
        ),
        ("boot.project_to_baseline.ci_up", "project ÷ baseline: ci time to healthy", "ratio"),
    ),
    _group(
        VERIFY,
        "environment",
        ("verify.{environment}.suite_seconds", "{environment}: tests/infra suite", "s"),
        (
            "verify.{environment}.helpers_seconds",
            "{environment}: its inspector helpers, started to answering (during boot in verify)",
            "s",
        ),
    ),
    _group(
        VERIFY,
        None,
        ("session.verify_ci.seconds", '`nox -s "verify(ci)"`, images cached', "s"),
        ("session.make_verify.seconds", "`make verify`, all environments, images cached", "s"),
        (
            "session.publish.seconds",
            "`nox -s publish`, the three verified images (and their SBOMs)",
            "s",
        ),
    ),
    _group(
        NO_OP,
        None,
        ("session.make_build_noop.seconds", "`make build`, nothing to do", "s"),
        ("session.base_images_noop.seconds", "`nox -s base-images`, nothing to do", "s"),
        ("session.build_all_noop.seconds", "`nox -s build-all`, nothing to do", "s"),
        (
            "session.build_all_noop_to_cold",
            "`nox -s build-all`, nothing to do ÷ the cold build",
            "ratio",
        ),
        ("session.make_lint_noop.seconds", "`make lint`, nothing changed since it passed", "s"),
    ),
    _group(
        PEER,
        None,
        ("goss.seconds", "goss on ci, the checks both express", "s"),
        ("goss.suite_equivalent_seconds", "tests/infra on ci, the same checks (-k)", "s"),
        ("goss.suite_to_goss", "tests/infra ÷ goss, the same checks", "ratio"),
    ),
    _group(
        RUNTIME,
        None,
        (
            "runtime.cold_import.project.seconds",
            "cold import of the app in a fresh read-only container: project production image",
            "s",
        ),
        (
            "runtime.cold_import.precompiled.seconds",
            "cold import of the app in a fresh read-only container: the same image, "
            "everything precompiled",
            "s",
        ),
        (
            "runtime.cold_import.baseline.seconds",
            "cold import of the app in a fresh read-only container: seed baseline production image",
            "s",
        ),
        (
            "runtime.cold_import.project_to_precompiled",
            "cold import: project ÷ everything precompiled",
            "ratio",
        ),
        (
            "runtime.start_to_healthy_seconds",
            "production container start → healthy, dependencies already healthy (ci)",
            "s",
        ),
        (
            "runtime.programs_outside_allow_list.count",
            "binaries in the production image outside the allow-list",
            "count",
        ),
        (
            "runtime.packages.inventory.count",
            "packages a scanner sees (/var/lib/dpkg/status.d entries)",
            "count",
        ),
        (
            "runtime.packages.owning.count",
            "Debian packages whose files are in the image (dpkg -S)",
            "count",
        ),
        (
            "runtime.packages.inventory_to_owning",
            "packages a scanner sees ÷ Debian packages whose files are in the image",
            "ratio",
        ),
    ),
)


def _values(over: str | None, environments: Sequence[str]) -> Iterable[dict[str, str]]:
    """The fields a row repeated `over` this dimension is filled in with, one dict per copy."""
    if over is None:
        return [{}]
    if over in ("scenario", "rebuild"):
        scenarios = SCENARIOS if over == "scenario" else REBUILDS
        return [{"scenario": name, "label": SCENARIO_LABELS[name]} for name in scenarios]
    if over == "stage":
        return [{"stage": name} for name in STAGES]
    return [{"environment": name} for name in environments]


def figures(environments: Sequence[str] = tuple(ENVIRONMENTS)) -> list[Figure]:
    """Every figure the report shows, in order."""
    return [
        Figure(key.format(**values), label.format(**values), unit, group.section)
        for group in FIGURE_TABLE
        for values in _values(group.over, environments)
        for key, label, unit in group.rows
    ]


@dataclass(frozen=True)
class Ratio:
    """A derived figure: `key` is `numerator` over `denominator`, repetition by repetition."""

    key: str
    numerator: str
    denominator: str
    over: str | None = None


RATIO_TABLE = (
    Ratio(
        "build.project.{scenario}_to_cold",
        "build.project.{scenario}.seconds",
        "build.project.cold.seconds",
        "rebuild",
    ),
    Ratio(
        "build.project_to_baseline.{scenario}",
        "build.project.{scenario}.seconds",
        "build.baseline.{scenario}.seconds",
        "scenario",
    ),
    Ratio(
        "build.project.registry_to_cold",
        "build.project.registry.seconds",
        "build.project.cold.seconds",
    ),
    Ratio("size.production_to_python", "size.project.production.bytes", "size.python_base.bytes"),
    Ratio(
        "size.production_to_baseline",
        "size.project.production.bytes",
        "size.baseline.production.bytes",
    ),
    Ratio("boot.project_to_baseline.ci_up", "boot.ci.up_seconds", "boot.baseline.ci.up_seconds"),
    Ratio(
        "session.build_all_noop_to_cold",
        "session.build_all_noop.seconds",
        "build.project.cold.seconds",
    ),
    Ratio("goss.suite_to_goss", "goss.suite_equivalent_seconds", "goss.seconds"),
    Ratio(
        "runtime.cold_import.project_to_precompiled",
        "runtime.cold_import.project.seconds",
        "runtime.cold_import.precompiled.seconds",
    ),
    Ratio(
        "runtime.packages.inventory_to_owning",
        "runtime.packages.inventory.count",
        "runtime.packages.owning.count",
    ),
)


def derive_ratios(samples: dict[str, list[float]]) -> dict[str, list[float]]:
    """The ratio figures, repetition by repetition, from the measured ones."""
    derived: dict[str, list[float]] = {}
    for ratio in RATIO_TABLE:
        for values in _values(ratio.over, ()):
            ratios = pairwise_ratios(
                samples.get(ratio.numerator.format(**values), []),
                samples.get(ratio.denominator.format(**values), []),
            )
            if ratios:
                derived[ratio.key.format(**values)] = ratios
    return derived


@dataclass(frozen=True)
class Target:
    """A figure's median must be at most `limit`, and at least `minimum` when one is set
    (minimum == limit: exactly that)."""

    key: str
    limit: float
    minimum: float | None = None


TARGETS = (
    Target("build.project.noop_to_cold", 0.05),
    Target("build.project.source_to_cold", 0.15),
    Target("build.project.dependency_to_cold", 0.40),
    Target("build.project.registry_to_cold", 0.15),
    Target("size.production_to_python", 0.75),
    Target("size.production_to_baseline", 0.60),
    Target("boot.ci.up_seconds", 15.0),
    Target("boot.ci.answer_to_healthy_seconds", 3.0),
    Target("verify.ci.suite_seconds", 30.0),
    Target("goss.suite_to_goss", 2.0),
    Target("session.verify_ci.seconds", 120.0),
    Target("session.make_verify.seconds", 30.0),
    Target("session.publish.seconds", 10.0),
    Target("session.make_build_noop.seconds", 1.5),
    Target("session.base_images_noop.seconds", 1.0),
    Target("session.build_all_noop_to_cold", 0.05),
    Target("session.make_lint_noop.seconds", 1.5),
    Target("runtime.cold_import.project_to_precompiled", 1.3),
    Target("runtime.start_to_healthy_seconds", 1.5),
    Target("runtime.programs_outside_allow_list.count", 0),
    Target("runtime.packages.inventory_to_owning", 1.0, minimum=1.0),
)


@dataclass(frozen=True)
class Verdict:
    target: Target
    summary: Summary | None

    @property
    def measured(self) -> bool:
        return self.summary is not None

    @property
    def passed(self) -> bool:
        return self.summary is not None and self.missed_bound is None

    @property
    def missed_bound(self) -> float | None:
        """The limit the median is over, or the minimum it is under; None when neither."""
        if self.summary is None:
            return None
        if self.summary.median > self.target.limit:
            return self.target.limit
        minimum = self.target.minimum
        return minimum if minimum is not None and self.summary.median < minimum else None

    @property
    def excess(self) -> float:
        """How far the median is past the bound it missed (0 when it met the target)."""
        bound = self.missed_bound
        return abs(self.summary.median - bound) if self.summary and bound is not None else 0.0


def evaluate(target: Target, samples: dict[str, list[float]]) -> Verdict:
    return Verdict(target, summarize(samples.get(target.key, [])))


def format_value(value: float, unit: str) -> str:
    if unit == "count":
        return f"{value:.0f}" if float(value).is_integer() else f"{value:.1f}"
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
    low = format_value(summary.minimum, unit)
    high = format_value(summary.maximum, unit)
    if unit != "ratio":
        # The unit is said once, after the median.
        low, high = low.rsplit(" ", 1)[0], high.rsplit(" ", 1)[0]
    return f"{format_value(summary.median, unit)} ({low}{EN_DASH}{high})"


def target_text(target: Target, unit: str) -> str:
    """`≤ 1.300`, `= 1.000` (minimum and limit equal), or `≥ 0.900, ≤ 1.100`."""
    limit = format_value(target.limit, unit)
    if target.minimum is None:
        return f"≤ {limit}"
    if target.minimum == target.limit:
        return f"= {limit}"
    return f"≥ {format_value(target.minimum, unit)}, ≤ {limit}"


def miss_text(verdict: Verdict, unit: str) -> str:
    """`MISS by 0.020 (+40%)` (over the limit), `MISS by 0.100 (-10%)` (under the minimum),
    `MISS by 3` (against a bound of 0), `pass`, or `not measured`."""
    if not verdict.measured:
        return "not measured"
    bound = verdict.missed_bound
    if bound is None:
        return "pass"
    missed_by = f"MISS by {format_value(verdict.excess, unit)}"
    if not bound:
        return missed_by
    return f"{missed_by} ({(verdict.summary.median / bound - 1) * 100:+.0f}%)"
