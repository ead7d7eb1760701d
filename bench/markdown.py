"""reports/bench.md from the report dict (the one written to reports/bench.json).

Pure: no Docker. The figures table comes from bench.figures; the detail sections below it
read the records the runners kept.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence

from bench.boot import POLL_SECONDS
from bench.figures import (
    EN_DASH,
    SCENARIO_LABELS,
    SCENARIOS,
    TARGETS,
    Verdict,
    evaluate,
    figures,
    format_summary,
    format_value,
    miss_text,
    summarize,
    target_text,
)
from bench.parsers import BuildStep, split_cached
from bench.peer import GOSS_CANNOT_EXPRESS, GOSS_EQUIVALENTS, equivalent_selection
from pipeline.environments import ENVIRONMENTS, SERVICE_PORTS, STAGES


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
            wanted = target_text(target, figure.unit)
            result = miss_text(verdict, figure.unit)
            result = f"**{result}**" if result.startswith("MISS") else result
        else:
            wanted, result = "", ""
        lines.append(
            f"| {_cell(figure.label)} | {format_summary(summary, figure.unit)} "
            f"| {wanted} | {result} |"
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
        wanted = target_text(target, unit)
        if not verdict.measured:
            lines.append(f"not measured: {label} (target {wanted})")
        else:
            found = format_value(verdict.summary.median, unit)
            lines.append(f"missed: {label} is {found}, target {wanted}: {miss_text(verdict, unit)}")
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
    lines += _render_runtime(report)
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
    goss_seconds = summarize(samples.get("goss.seconds", []))
    ours = summarize(samples.get("goss.suite_equivalent_seconds", []))
    ratio = summarize(samples.get("goss.suite_to_goss", []))
    last = goss[-1]
    lines = [
        "## Peer: goss",
        "",
        f"goss {report.get('goss_version', '?')} (Debian 13 package), bind-mounted read-only "
        "into each container of the same ci stack at boot (the bench's compose override) and "
        "run there with bench/goss/<service>.yaml "
        f"({last.get('tests', '?')} checks, {last.get('failed', '?')} failed in the last "
        "repetition). Wall time of the `docker exec … goss validate` calls, one container "
        "after another. Ours: `pytest tests/infra -k …` with the equivalent checks, wall time "
        "of the whole pytest process.",
        "",
        f"| | median (min{EN_DASH}max) |",
        "|---|---|",
        f"| goss | {format_summary(goss_seconds, 's')} |",
        f"| tests/infra, the same checks | {format_summary(ours, 's')} |",
        f"| tests/infra ÷ goss | {format_summary(ratio, 'ratio')} |",
        "",
        f'Selection: `-k "{_cell(equivalent_selection())}"`.',
        "",
        "| our check (-k term) | goss expresses it as |",
        "|---|---|",
    ]
    lines += [f"| `{name}` | {how} |" for name, how in GOSS_EQUIVALENTS.items()]
    lines += ["", "What goss could not express (our suite checks it):", ""]
    lines += [f"- {item}" for item in GOSS_CANNOT_EXPRESS]
    failures = sorted({failure for run in goss for failure in run.get("failures", [])})
    if failures:
        lines += ["", "goss failures: " + "; ".join(failures)]
    return [*lines, ""]


def _names(names: Sequence[str]) -> str:
    return ", ".join(f"`{_cell(name)}`" for name in names) or "none"


def _render_runtime(report: dict) -> list[str]:
    runtime = report.get("runtime") or {}
    if not runtime:
        return []
    lines = ["## Runtime detail", ""]
    cold = runtime.get("cold_import")
    if cold:
        images = ", ".join(f"{variant} `{image}`" for variant, image in cold["images"].items())
        lines.append(
            "Cold import: `docker run --rm --read-only --entrypoint python <image> -c "
            f'"{cold["statement"]}"`, the whole run timed, after one untimed run per image; '
            f"images: {images} (precompiled: compileall over `{cold['stdlib']}` and `/app`)."
        )
        lines.append("")
    restart = runtime.get("start_to_healthy")
    if restart:
        lines += [
            f"Start to healthy: {restart['environment']} stack, `docker stop` then "
            f"`docker start` of {restart['service']}, to the end of its first passing "
            f"healthcheck probe: {', '.join(f'{value:.2f}' for value in restart['seconds'])} s.",
            "",
        ]
    contents = runtime.get("contents")
    if contents:
        lines += [
            f"Contents of `{contents['image']}` ({contents['files']} files and links, "
            "`docker export`):",
            "",
            f"- programs outside the allow-list ({_names(contents['allowed_programs'])}): "
            f"{_names(contents['programs_outside_allow_list'])}",
            f"- listed in /var/lib/dpkg/status.d but owning no file (`dpkg -S` in "
            f"`{contents['python_base']}`): {_names(contents['listed_not_owning'])}",
            f"- owning files but not listed: {_names(contents['owning_not_listed'])}",
            "",
        ]
    return lines
