"""The bench's pure parts: summaries, targets and their miss messages, BuildKit progress
parsing, Docker timestamps and the Markdown report. No Docker: every input is recorded text.
"""

from __future__ import annotations

import json

import pytest

from pipeline import bench
from pipeline.bench import (
    BuildStep,
    Summary,
    Target,
    Verdict,
    derive_ratios,
    evaluate,
    format_summary,
    miss_text,
    missed_targets,
    pairwise_ratios,
    parse_build_steps,
    parse_docker_time,
    render_markdown,
    split_cached,
    summarize,
)

# `docker buildx build --progress=plain` stderr as BuildKit 0.13 (docker driver) prints it:
# internal steps, FROM lines, a cached step, steps that ran (with output lines), an export.
RECORDED_PROGRESS = """\
#0 building with "default" instance using docker driver

#1 [internal] load build definition from Dockerfile
#1 transferring dockerfile: 4.53kB done
#1 DONE 0.0s

#2 [internal] load metadata for docker.io/dashtam-airgap/uv:0.8.22-python3.13-debian13
#2 DONE 0.0s

#4 [base 1/3] FROM docker.io/dashtam-airgap/uv:0.8.22-python3.13-debian13
#4 DONE 0.0s

#7 [internal] load build context
#7 transferring context: 388.83kB 0.0s done
#7 DONE 0.0s

#10 [base 2/3] RUN groupadd --system --gid "1000" appuser  && useradd --system appuser
#10 CACHED

#11 [builder 1/4] RUN --mount=type=cache,target=/tmp/uv-cache,uid=1000,gid=1000 uv sync --locked
#11 0.412 Resolved 40 packages in 3ms
#11 2.947    Building sqlalchemy==2.1.9
#11 DONE 17.9s

#15 [base 3/3] WORKDIR /app
#15 CACHED

#17 [builder 4/4] COPY --chown=appuser:appuser src ./src
#17 DONE 0.1s

#11 [builder 1/4] RUN --mount=type=cache,target=/tmp/uv-cache,uid=1000,gid=1000 uv sync --locked

#20 exporting to image
#20 exporting layers 2.6s done
#20 naming to docker.io/dashtam-bench/builder:noop done
#20 DONE 2.6s
"""


def test_summary_is_median_min_max_and_count():
    assert summarize([3.0, 1.0, 2.0, 10.0]) == Summary(2.5, 1.0, 10.0, 4)
    assert summarize([4.0]) == Summary(4.0, 4.0, 4.0, 1)
    assert summarize([]) is None


def test_ratios_pair_repetitions_and_skip_zero_denominators():
    assert pairwise_ratios([1.0, 2.0, 3.0], [10.0, 0.0, 30.0]) == [0.1, 0.1]
    assert pairwise_ratios([1.0, 2.0], [4.0]) == [0.25]


def test_derived_ratios_divide_per_repetition():
    samples = {
        "build.project.cold.seconds": [100.0, 200.0],
        "build.project.noop.seconds": [2.0, 2.0],
        "build.baseline.cold.seconds": [50.0, 100.0],
        "size.project.production.bytes": [120.0],
        "size.python_base.bytes": [100.0],
    }
    derived = derive_ratios(samples)
    assert derived["build.project.noop_to_cold"] == [0.02, 0.01]
    assert derived["build.project_to_baseline.cold"] == [2.0, 2.0]
    assert derived["size.production_to_python"] == [1.2]
    assert "build.project.source_to_cold" not in derived  # nothing measured, no figure


def test_target_passes_at_or_under_its_limit():
    target = Target("boot.ci.up_seconds", 15.0)
    assert evaluate(target, {"boot.ci.up_seconds": [14.0, 15.0, 16.0]}).passed
    assert not evaluate(target, {"boot.ci.up_seconds": [15.5, 16.0, 30.0]}).passed


def test_miss_message_says_by_how_much():
    verdict = evaluate(
        Target("boot.ci.up_seconds", 15.0), {"boot.ci.up_seconds": [20.0, 21.0, 19.0]}
    )
    assert miss_text(verdict, "s") == "MISS by 5.00 s (+33%)"
    ratio = Verdict(Target("goss.suite_to_goss", 2.0), Summary(3.0, 2.5, 4.0, 3))
    assert miss_text(ratio, "ratio") == "MISS by 1.000 (+50%)"


def test_unmeasured_target_is_neither_pass_nor_miss():
    verdict = evaluate(Target("build.project.noop_to_cold", 0.05), {})
    assert not verdict.measured
    assert miss_text(verdict, "ratio") == "not measured"


def test_summary_text_shows_median_then_range():
    assert format_summary(Summary(12.34, 11.9, 13.0, 3), "s") == "12.3 s (11.9\u201313.0)"
    assert format_summary(Summary(1.2, 1.1, 1.3, 3), "ratio") == "1.200 (1.100\u20131.300)"
    assert format_summary(Summary(141.9e6, 141.9e6, 141.9e6, 1), "bytes") == "141.9 MB (n=1)"
    assert format_summary(None, "s") == "not measured"


def test_progress_parsing_keeps_dockerfile_steps_with_their_status():
    steps = parse_build_steps(RECORDED_PROGRESS)
    assert [(step.label, step.status, step.seconds) for step in steps] == [
        ("base 2/3", "cached", None),
        ("builder 1/4", "ran", 17.9),
        ("base 3/3", "cached", None),
        ("builder 4/4", "ran", 0.1),
    ]
    assert steps[1].instruction.startswith("RUN --mount=type=cache")
    assert steps[3].name == "[builder 4/4] COPY --chown=appuser:appuser src ./src"


def test_progress_parsing_leaves_out_internal_steps_from_lines_and_export():
    names = [step.name for step in parse_build_steps(RECORDED_PROGRESS)]
    assert not [name for name in names if "internal" in name or " FROM " in name]
    assert not [name for name in names if "exporting" in name]


def test_progress_parsing_reports_a_failed_step_as_error():
    progress = "#9 [builder 1/4] RUN uv sync --locked\n#9 ERROR: process did not complete\n"
    assert parse_build_steps(progress) == [
        BuildStep("builder 1/4", "RUN uv sync --locked", "error", None)
    ]


def test_bake_progress_names_each_shared_step_once_under_its_own_stage():
    # `docker buildx bake` prefixes each label with the target; a step two targets share
    # keeps one vertex id and is one step.
    progress = (
        "#9 [production builder 4/4] COPY --chown=appuser:appuser src ./src\n"
        "#9 [callback builder 4/4] COPY --chown=appuser:appuser src ./src\n"
        "#9 DONE 0.1s\n"
        "#12 [callback callback 1/1] COPY --from=builder /app/src ./src\n"
        "#12 CACHED\n"
        "#14 [callback] exporting to image\n"
        "#14 DONE 0.0s\n"
    )
    assert [(step.label, step.status) for step in parse_build_steps(progress)] == [
        ("builder 4/4", "ran"),
        ("callback 1/1", "cached"),
    ]


def test_a_step_cached_in_a_later_stage_build_still_counts_as_ran():
    first = [BuildStep("builder 4/4", "COPY src ./src", "ran", 0.1)]
    second = [
        BuildStep("builder 4/4", "COPY src ./src", "cached"),
        BuildStep("production 3/3", "COPY --from=builder /app/src ./src", "cached"),
    ]
    ran, cached = split_cached([first, second])
    assert ran == ["[builder 4/4] COPY src ./src"]
    assert cached == ["[production 3/3] COPY --from=builder /app/src ./src"]


def test_docker_timestamps_with_nanoseconds_and_offsets():
    assert parse_docker_time("1970-01-01T00:00:01.500000000Z") == pytest.approx(1.5)
    assert parse_docker_time("1970-01-01T01:00:02+01:00") == pytest.approx(2.0)
    with pytest.raises(ValueError, match="not a Docker timestamp"):
        parse_docker_time("yesterday")


def test_first_healthy_probe_is_the_first_passing_one():
    log = [
        {"Start": "1970-01-01T00:00:01Z", "End": "1970-01-01T00:00:02Z", "ExitCode": 1},
        {"Start": "1970-01-01T00:00:03Z", "End": "1970-01-01T00:00:03.25Z", "ExitCode": 0},
        {"Start": "1970-01-01T00:00:08Z", "End": "1970-01-01T00:00:09Z", "ExitCode": 0},
    ]
    assert bench.first_healthy_probe(log) == (3.0, 3.25)
    assert bench.first_healthy_probe(log[:1]) is None


def test_goss_json_output_is_counted():
    output = json.dumps(
        {
            "results": [
                {"successful": True, "resource-type": "User", "resource-id": "appuser"},
                {
                    "successful": False,
                    "resource-type": "Port",
                    "resource-id": "tcp:8000",
                    "property": "listening",
                },
            ],
            "summary": {"test-count": 2, "failed-count": 1},
        }
    )
    assert bench.goss_summary(output) == {
        "tests": 2,
        "failed": 1,
        "failures": ["Port tcp:8000: listening"],
    }


def test_history_lines_become_layers():
    text = '0\tCMD ["app"]\n25000000\tCOPY /app/.venv /app/.venv # buildkit\n'
    assert bench.parse_history(text) == [
        {"bytes": 0, "created_by": 'CMD ["app"]'},
        {"bytes": 25000000, "created_by": "COPY /app/.venv /app/.venv # buildkit"},
    ]


def _report(**overrides) -> dict:
    report = {
        "started_at": "2026-01-01T00:00:00+00:00",
        "source": "airgap",
        "repeat": 3,
        "quick": False,
        "environments": ["ci"],
        "machine": {"cpus": 2, "engine": "26.1.5"},
        "samples": {
            "build.project.cold.seconds": [100.0, 110.0, 90.0],
            "build.project.noop.seconds": [3.0, 3.0, 3.0],
            "boot.ci.up_seconds": [20.0, 21.0, 19.0],
            "boot.ci.answer_to_healthy_seconds": [0.4, 0.5, 0.3],
        },
        "builds": [
            {
                "variant": "project",
                "scenario": "noop",
                "repetition": 0,
                "stage": "base",
                "steps": [
                    {
                        "label": "base 3/3",
                        "instruction": "WORKDIR /app",
                        "status": "cached",
                        "seconds": None,
                    }
                ],
            }
        ],
        "errors": {},
        "notes": [],
    }
    report["samples"] |= derive_ratios(report["samples"])
    report.update(overrides)
    return report


def test_markdown_has_one_figures_table_with_targets_and_verdicts():
    markdown = render_markdown(_report())
    assert "| figure | median (min\u2013max) | target | result |" in markdown
    assert "| project: cold build, empty BuildKit cache | 100.0 s (90.0\u2013110.0) |  |  |" in (
        markdown
    )
    assert "| project: noop ÷ cold | 0.030 (0.027\u20130.033) | ≤ 0.050 | pass |" in markdown
    assert "| ci: `compose up` to all services healthy | 20.0 s (19.0\u201321.0) | ≤ 15.0 s " in (
        markdown
    )
    assert "**MISS by 5.00 s (+33%)**" in markdown


def test_markdown_lists_missed_and_unmeasured_targets():
    report = _report()
    missed = missed_targets(report)
    assert any(line.startswith("missed: ci: `compose up`") for line in missed)
    assert "not measured: project: source ÷ cold (target ≤ 0.150)" in missed
    assert not any("noop ÷ cold" in line for line in missed)
    markdown = render_markdown(report)
    assert "## Targets missed" in markdown
    assert "- not measured: project: source ÷ cold (target ≤ 0.150)" in markdown


def test_markdown_shows_cached_steps_and_sections_not_measured():
    markdown = render_markdown(_report(errors={"session": "nox failed"}))
    assert "| project | no-op rebuild | 0 | 1 | nothing |" in markdown
    assert "- session: nox failed" in markdown


def test_markdown_escapes_pipes_in_cells():
    report = _report(
        builds=[
            {
                "variant": "project",
                "scenario": "source",
                "repetition": 0,
                "stage": "builder",
                "steps": [
                    {
                        "label": "builder 1/4",
                        "instruction": "RUN a | b",
                        "status": "ran",
                        "seconds": 1.0,
                    }
                ],
            }
        ]
    )
    assert "[builder 1/4] RUN a \\| b" in render_markdown(report)


def test_quick_forces_one_repetition_and_unknown_sections_are_refused(capsys):
    arguments = bench.parse_arguments(["--quick", "--repeat", "5", "--only", "build"])
    assert (arguments.repeat, arguments.sections) == (1, ("build",))
    assert arguments.environments == tuple(bench.ENVIRONMENTS)
    with pytest.raises(SystemExit):
        bench.parse_arguments(["--only", "everything"])
    assert "unknown section(s) everything" in capsys.readouterr().err
