"""`python -m bench [--repeat N] [--quick] [--only build,session,boot,runtime]
[--environment ci]`."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from bench.markdown import missed_targets, render_figures_table
from bench.record import BenchRun
from bench.report import (
    REPORT_JSON,
    REPORT_MARKDOWN,
    SECTIONS,
    build_report,
    run_preflight,
    run_sections,
    write_reports,
)
from pipeline import image_sources
from pipeline.environments import ENVIRONMENTS, ROOT
from pipeline.errors import PipelineError
from pipeline.process import say

DEFAULT_REPEAT = 3


def parse_arguments(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="nox -s bench --",
        description="Measure build, size, boot, verify and the production runtime; write "
        "reports/bench.json and .md.",
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


def print_summary(report: dict) -> None:
    """The figures table and what was missed or not measured, on stdout."""
    print(render_figures_table(report))
    print()
    for line in missed_targets(report) or ["every target is met"]:
        print(line)
    for section, message in report["errors"].items():
        print(f"not measured: {section}: {message}")
    print(f"\nwritten: {REPORT_MARKDOWN.relative_to(ROOT)}, {REPORT_JSON.relative_to(ROOT)}")


def main(argv: Sequence[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    try:
        bench_run = BenchRun(
            source=image_sources.selected_source(),
            repeat=arguments.repeat,
            quick=arguments.quick,
            sections=arguments.sections,
            environments=arguments.environments,
        )
        run_preflight(bench_run)
    except PipelineError as error:
        say(str(error), speaker="bench")
        return 1
    if arguments.repeat < DEFAULT_REPEAT:
        bench_run.notes.append(
            f"{arguments.repeat} repetition(s): figures are meant as medians of at least "
            f"{DEFAULT_REPEAT}."
        )
    say(
        f"source {bench_run.source}, {arguments.repeat} repetition(s), "
        f"sections {','.join(arguments.sections)}"
        f", environments {','.join(arguments.environments)}",
        speaker="bench",
    )
    run_sections(bench_run)
    report = build_report(bench_run)
    write_reports(report)
    print_summary(report)
    # A missed target is a finding, not a failure; only a section that could not run is.
    return 1 if report["errors"] else 0
