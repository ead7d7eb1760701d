"""The bench's pure parts: summaries, targets and their miss messages, BuildKit progress
parsing, Docker timestamps, goss's mounts and selection, the runtime section's readings of
an exported image and `dpkg -S`, and the Markdown report. No Docker: every input is recorded
text.
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest
from _pytest.mark.expression import Expression

from bench.cli import parse_arguments
from bench.figures import (
    Summary,
    Target,
    Verdict,
    derive_ratios,
    evaluate,
    figures,
    format_summary,
    miss_text,
    pairwise_ratios,
    summarize,
    target_text,
)
from bench.markdown import missed_targets, render_figures_table, render_markdown
from bench.parsers import (
    BuildStep,
    dpkg_owners,
    first_answer,
    first_healthy_probe,
    goss_summary,
    parse_build_steps,
    parse_docker_time,
    split_cached,
)
from bench.peer import (
    GOSS_BINARY_IN_CONTAINER,
    GOSS_FILE_IN_CONTAINER,
    GOSS_SERVICES,
    equivalent_selection,
    goss_mounts,
)
from bench.report import target_results
from bench.runtime import (
    ImageEntry,
    image_entries,
    inventory_packages,
    merged_usr_aliases,
    owner_questions,
    precompiled_dockerfile,
    programs_outside,
    rotated,
)
from pipeline.engine import parse_history
from pipeline.environments import ENVIRONMENTS

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


def test_runtime_ratios_divide_per_repetition():
    derived = derive_ratios(
        {
            "runtime.cold_import.project.seconds": [1.2, 1.5],
            "runtime.cold_import.precompiled.seconds": [1.0, 1.0],
            "runtime.packages.inventory.count": [12.0],
            "runtime.packages.owning.count": [15.0],
        }
    )
    assert derived["runtime.cold_import.project_to_precompiled"] == [1.2, 1.5]
    assert derived["runtime.packages.inventory_to_owning"] == [0.8]


# The figure keys, in order, as the 100-line figures() function made them before the figure
# list became a table (bench.json's readers and earlier reports use these keys).
FIGURE_KEYS = [
    "build.project.cold.seconds",
    "build.project.noop.seconds",
    "build.project.source.seconds",
    "build.project.dependency.seconds",
    "build.baseline.cold.seconds",
    "build.baseline.noop.seconds",
    "build.baseline.source.seconds",
    "build.baseline.dependency.seconds",
    "build.project.noop_to_cold",
    "build.project.source_to_cold",
    "build.project.dependency_to_cold",
    "build.project_to_baseline.cold",
    "build.project_to_baseline.noop",
    "build.project_to_baseline.source",
    "build.project_to_baseline.dependency",
    "build.project.registry.seconds",
    "build.project.registry_to_cold",
    "size.project.base.bytes",
    "size.project.development.bytes",
    "size.project.builder.bytes",
    "size.project.production.bytes",
    "size.project.callback.bytes",
    "size.baseline.production.bytes",
    "size.python_base.bytes",
    "size.production_to_python",
    "size.production_to_baseline",
    "boot.dev.up_seconds",
    "boot.dev.answer_to_healthy_seconds",
    "boot.test.up_seconds",
    "boot.test.answer_to_healthy_seconds",
    "boot.ci.up_seconds",
    "boot.ci.answer_to_healthy_seconds",
    "boot.prod.up_seconds",
    "boot.prod.answer_to_healthy_seconds",
    "boot.baseline.ci.up_seconds",
    "boot.baseline.ci.answer_to_healthy_seconds",
    "boot.project_to_baseline.ci_up",
    "verify.dev.suite_seconds",
    "verify.dev.helpers_seconds",
    "verify.test.suite_seconds",
    "verify.test.helpers_seconds",
    "verify.ci.suite_seconds",
    "verify.ci.helpers_seconds",
    "verify.prod.suite_seconds",
    "verify.prod.helpers_seconds",
    "session.verify_ci.seconds",
    "session.make_verify.seconds",
    "session.publish.seconds",
    "session.make_build_noop.seconds",
    "session.base_images_noop.seconds",
    "session.build_all_noop.seconds",
    "session.build_all_noop_to_cold",
    "session.make_lint_noop.seconds",
    "goss.seconds",
    "goss.suite_equivalent_seconds",
    "goss.suite_to_goss",
    "runtime.cold_import.project.seconds",
    "runtime.cold_import.precompiled.seconds",
    "runtime.cold_import.baseline.seconds",
    "runtime.cold_import.project_to_precompiled",
    "runtime.start_to_healthy_seconds",
    "runtime.programs_outside_allow_list.count",
    "runtime.packages.inventory.count",
    "runtime.packages.owning.count",
    "runtime.packages.inventory_to_owning",
]


def test_figure_table_yields_the_same_keys_in_the_same_order():
    assert [figure.key for figure in figures()] == FIGURE_KEYS
    others = (".dev.", ".test.", ".prod.")
    assert [figure.key for figure in figures(["ci"])] == [
        key for key in FIGURE_KEYS if not any(name in key for name in others)
    ]
    sections = list(dict.fromkeys(figure.section for figure in figures()))
    assert sections == [
        "Build (all five stages)",
        "Size",
        "Boot",
        "Verify",
        "Commands with nothing to do (whole command, start-up included)",
        "Peer (goss)",
        "Runtime (production image)",
    ]


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


def test_exact_target_misses_on_either_side():
    target = Target("runtime.packages.inventory_to_owning", 1.0, minimum=1.0)
    key = target.key
    assert evaluate(target, {key: [1.0]}).passed
    under = evaluate(target, {key: [0.9]})
    assert not under.passed
    assert miss_text(under, "ratio") == "MISS by 0.100 (-10%)"
    over = evaluate(target, {key: [1.2]})
    assert miss_text(over, "ratio") == "MISS by 0.200 (+20%)"


def test_target_text_says_at_most_exactly_or_between():
    assert target_text(Target("size.production_to_python", 0.75), "ratio") == "≤ 0.750"
    assert target_text(Target("x", 1.0, minimum=1.0), "ratio") == "= 1.000"
    assert target_text(Target("x", 1.1, minimum=0.9), "ratio") == "≥ 0.900, ≤ 1.100"
    assert target_text(Target("x", 0), "count") == "≤ 0"


def test_a_count_over_a_zero_limit_misses_by_the_count_alone():
    verdict = evaluate(Target("runtime.programs_outside_allow_list.count", 0), {"x": []})
    assert not verdict.measured
    samples = {"runtime.programs_outside_allow_list.count": [3.0, 3.0]}
    verdict = evaluate(Target("runtime.programs_outside_allow_list.count", 0), samples)
    assert miss_text(verdict, "count") == "MISS by 3"
    assert format_summary(Summary(3.0, 2.0, 4.0, 3), "count") == "3 (2\u20134)"
    assert format_summary(Summary(2.5, 2.0, 3.0, 2), "count") == "2.5 (2\u20133)"


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
    assert first_healthy_probe(log) == (3.0, 3.25)
    assert first_healthy_probe(log[:1]) is None


@pytest.mark.parametrize(
    ("polled", "probe", "unanswered", "expected"),
    [
        pytest.param(5.0, None, 4.8, 5.0, id="no-passing-probe-yet-our-poll-stands"),
        pytest.param(5.0, (6.0, 6.1), 4.8, 5.0, id="our-poll-saw-it-before-the-probe-began"),
        pytest.param(None, (3.0, 3.1), None, 3.0, id="a-quick-probe-its-start"),
        pytest.param(None, (1.0, 4.0), 3.6, 3.6, id="a-waiting-probe-not-before-our-last-miss"),
        pytest.param(4.2, (1.0, 4.0), 3.6, 3.6, id="the-probe-saw-it-first"),
        pytest.param(None, (1.0, 4.0), 4.5, 4.0, id="never-after-the-probe-ended"),
        pytest.param(None, None, 4.5, None, id="nothing-answered"),
    ],
)
def test_the_first_answer_lies_within_the_probe_that_saw_it(polled, probe, unanswered, expected):
    """A probe that waits for the port starts long before the app answers: its start is
    only a lower bound, as is our last poll that got no answer."""
    assert first_answer(polled, probe, unanswered) == expected


def test_first_healthy_probe_after_a_restart_ignores_the_previous_run():
    log = [
        {"Start": "1970-01-01T00:00:01Z", "End": "1970-01-01T00:00:01.5Z", "ExitCode": 0},
        {"Start": "1970-01-01T00:00:11Z", "End": "1970-01-01T00:00:11.2Z", "ExitCode": 1},
        {"Start": "1970-01-01T00:00:12Z", "End": "1970-01-01T00:00:12.25Z", "ExitCode": 0},
    ]
    assert first_healthy_probe(log, after=10.0) == (12.0, 12.25)
    assert first_healthy_probe(log, after=13.0) is None


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
    assert goss_summary(output) == {
        "tests": 2,
        "failed": 1,
        "failures": ["Port tcp:8000: listening"],
    }


def test_history_lines_become_layers():
    text = '0\tCMD ["app"]\n25000000\tCOPY /app/.venv /app/.venv # buildkit\n'
    assert parse_history(text) == [
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
    arguments = parse_arguments(["--quick", "--repeat", "5", "--only", "build"])
    assert (arguments.repeat, arguments.sections) == (1, ("build",))
    assert arguments.environments == tuple(ENVIRONMENTS)
    with pytest.raises(SystemExit):
        parse_arguments(["--only", "everything"])
    assert "unknown section(s) everything" in capsys.readouterr().err


def test_goss_override_mounts_goss_and_each_services_file_read_only():
    override = goss_mounts(Path("/scratch/goss"), Path("/repo/bench/goss"))
    assert list(override["services"]) == list(GOSS_SERVICES)
    assert override["services"]["redis"]["volumes"] == [
        {
            "type": "bind",
            "source": "/scratch/goss",
            "target": GOSS_BINARY_IN_CONTAINER,
            "read_only": True,
        },
        {
            "type": "bind",
            "source": "/repo/bench/goss/redis.yaml",
            "target": GOSS_FILE_IN_CONTAINER,
            "read_only": True,
        },
    ]


# tests/infra's ids on ci, as `pytest --collect-only -q` lists them (a sample).
INFRA_IDS = [
    "test_identity.py::test_appuser_is_uid_and_gid_1000[ci-app]",
    "test_identity.py::test_appuser_is_uid_and_gid_1000[ci-callback]",
    "test_identity.py::test_every_process_runs_as_the_service_user[ci-app]",
    "test_identity.py::test_pid1_runs_as_the_service_user[ci-postgres]",
    "test_identity.py::test_app_folder_belongs_to_appuser[ci-app]",
    "test_identity.py::test_listening_sockets_are_exactly_the_service_port[ci-redis]",
    "test_health.py::test_health_endpoint_answers_200[ci-app-health-ready]",
    "test_health.py::test_readiness_reports_postgres_and_redis_up",
    "test_policy.py::test_policy[ci-app-app-files-owned-by-appuser]",
    "test_policy.py::test_policy[ci-redis-listening-sockets]",
    "test_policy.py::test_policy[ci-app-published-ports]",
    "test_policy.py::test_policy[ci-app-bind-mounts]",
    "test_drift.py::test_host_bindings_equal_the_declared_ones[ci-app]",
]


def test_goss_selection_picks_exactly_the_equivalent_checks():
    # pytest's own -k parser: each name in the expression matches a substring of an id.
    expression = Expression.compile(equivalent_selection())
    selected = [
        item for item in INFRA_IDS if expression.evaluate(lambda term, item=item: term in item)
    ]
    assert selected == [
        "test_identity.py::test_appuser_is_uid_and_gid_1000[ci-app]",
        "test_identity.py::test_appuser_is_uid_and_gid_1000[ci-callback]",
        "test_identity.py::test_pid1_runs_as_the_service_user[ci-postgres]",
        "test_identity.py::test_app_folder_belongs_to_appuser[ci-app]",
        "test_identity.py::test_listening_sockets_are_exactly_the_service_port[ci-redis]",
        "test_health.py::test_health_endpoint_answers_200[ci-app-health-ready]",
    ]


def _tar_members(*entries: tuple[str, bytes, str]) -> list[tarfile.TarInfo]:
    """Members of a tar as `docker export` writes it: (name, type, link target)."""
    members = []
    for name, kind, link in entries:
        member = tarfile.TarInfo(name)
        member.type = kind
        member.linkname = link
        members.append(member)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for member in members:
            archive.addfile(member)
    buffer.seek(0)
    with tarfile.open(fileobj=buffer) as archive:
        return archive.getmembers()


EXPORTED = _tar_members(
    (".dockerenv", tarfile.REGTYPE, ""),
    ("bin", tarfile.SYMTYPE, "usr/bin"),
    ("lib64", tarfile.SYMTYPE, "usr/lib64"),
    ("usr/", tarfile.DIRTYPE, ""),
    ("usr/bin/", tarfile.DIRTYPE, ""),
    ("usr/lib64/", tarfile.DIRTYPE, ""),
    ("usr/bin/python3.13", tarfile.REGTYPE, ""),
    ("usr/bin/python3", tarfile.SYMTYPE, "python3.13"),
    ("usr/bin/sh", tarfile.SYMTYPE, "dash"),
    ("usr/lib64/ld-linux-x86-64.so.2", tarfile.SYMTYPE, "../lib/x86_64-linux-gnu/ld.so"),
    ("usr/local/bin/uvicorn", tarfile.REGTYPE, ""),
    ("usr/sbin/", tarfile.DIRTYPE, ""),
    ("var/lib/dpkg/status.d/", tarfile.DIRTYPE, ""),
    ("var/lib/dpkg/status.d/libc6", tarfile.REGTYPE, ""),
    ("var/lib/dpkg/status.d/libssl3t64", tarfile.REGTYPE, ""),
    ("app/src/main.py", tarfile.REGTYPE, ""),
)


def test_exported_members_become_absolute_paths_with_their_kind():
    entries = image_entries(EXPORTED)
    assert entries[:3] == [
        ImageEntry("/.dockerenv", "file"),
        ImageEntry("/bin", "symlink", "usr/bin"),
        ImageEntry("/lib64", "symlink", "usr/lib64"),
    ]
    assert ImageEntry("/usr/bin", "dir") in entries


def test_programs_outside_the_allow_list_are_files_and_links_in_program_folders():
    entries = image_entries(EXPORTED)
    assert programs_outside(entries, ["python", "python3", "python3.13"]) == [
        "/usr/bin/sh",
        "/usr/local/bin/uvicorn",
    ]


def test_the_inventory_is_one_status_file_per_package():
    assert inventory_packages(image_entries(EXPORTED)) == {"libc6", "libssl3t64"}


def test_merged_usr_aliases_go_both_ways_below_the_folders_only():
    assert merged_usr_aliases("/lib/x86_64-linux-gnu/libc.so.6") == [
        "/lib/x86_64-linux-gnu/libc.so.6",
        "/usr/lib/x86_64-linux-gnu/libc.so.6",
    ]
    assert merged_usr_aliases("/usr/sbin/nologin") == ["/usr/sbin/nologin", "/sbin/nologin"]
    assert merged_usr_aliases("/usr/lib64/ld.so") == ["/usr/lib64/ld.so", "/lib64/ld.so"]
    assert merged_usr_aliases("/lib") == ["/lib"]
    assert merged_usr_aliases("/usr/local/bin/python") == ["/usr/local/bin/python"]
    assert merged_usr_aliases("/library/x") == ["/library/x"]


def test_dpkg_is_asked_about_files_and_links_but_not_folders_or_the_inventory():
    assert owner_questions(image_entries(EXPORTED)) == [
        "/.dockerenv",
        "/usr/bin/python3.13",
        "/bin/python3.13",
        "/usr/bin/python3",
        "/bin/python3",
        "/usr/bin/sh",
        "/bin/sh",
        "/usr/lib64/ld-linux-x86-64.so.2",
        "/lib64/ld-linux-x86-64.so.2",
        "/usr/local/bin/uvicorn",
        "/app/src/main.py",
    ]


def test_dpkg_search_output_names_the_owning_packages():
    output = (
        "libc6:amd64: /usr/lib/x86_64-linux-gnu/libc.so.6\n"
        "libpython3.13-minimal:amd64, python3.13-minimal: /usr/lib/python3.13/os.py\n"
        "diversion by dash from: /bin/sh\n"
        "base-files: /usr/lib/os-release\n"
        "dpkg-query: no path found matching pattern /app/src/main.py\n"
    )
    assert dpkg_owners(output) == {
        "libc6",
        "libpython3.13-minimal",
        "python3.13-minimal",
        "base-files",
    }
    assert dpkg_owners("") == set()


def test_the_precompiled_variant_compiles_as_root_in_exec_form():
    assert precompiled_dockerfile(
        "dashtam/production:latest", "/usr/lib/python3.13", "appuser"
    ) == (
        "FROM dashtam/production:latest\n"
        "USER root\n"
        'RUN ["python", "-m", "compileall", "-q", "-j", "0", "/usr/lib/python3.13", "/app"]\n'
        "USER appuser\n"
    )


def test_each_repetition_starts_with_another_image():
    images = ["project", "precompiled", "baseline"]
    assert rotated(images, 0) == images
    assert rotated(images, 1) == ["precompiled", "baseline", "project"]
    assert rotated(images, 3) == images
    assert rotated([], 2) == []


def _runtime_report() -> dict:
    samples = {
        "runtime.cold_import.project.seconds": [1.3, 1.4, 1.2],
        "runtime.cold_import.precompiled.seconds": [1.0, 1.0, 1.0],
        "runtime.programs_outside_allow_list.count": [0.0, 0.0, 0.0],
        "runtime.packages.inventory.count": [14.0, 14.0, 14.0],
        "runtime.packages.owning.count": [15.0, 15.0, 15.0],
    }
    return _report(
        samples=samples | derive_ratios(samples),
        builds=[],
        runtime={
            "cold_import": {
                "images": {"project": "dashtam/production:latest", "precompiled": "p:1"},
                "stdlib": "/usr/lib/python3.13",
                "statement": "import src.main",
            },
            "start_to_healthy": {
                "environment": "ci",
                "service": "app",
                "image_tag": "latest",
                "seconds": [1.21, 1.34],
            },
            "contents": {
                "image": "dashtam/production:latest",
                "python_base": "dashtam-airgap/python:3.13-debian13",
                "files": 4321,
                "allowed_programs": ["python", "python3"],
                "programs_outside_allow_list": [],
                "listed_not_owning": [],
                "owning_not_listed": ["base-files"],
            },
        },
    )


def test_runtime_rows_show_their_targets_and_verdicts():
    table = render_figures_table(_runtime_report())
    assert "| **Runtime (production image)** | | | |" in table
    assert (
        "| cold import: project ÷ everything precompiled | 1.300 (1.200\u20131.400) | ≤ 1.300 "
        "| pass |"
    ) in table
    assert "| binaries in the production image outside the allow-list | 0 (0\u20130) | ≤ 0 " in (
        table
    )
    assert (
        "| packages a scanner sees ÷ Debian packages whose files are in the image "
        "| 0.933 (0.933\u20130.933) | = 1.000 | **MISS by 0.067 (-7%)** |"
    ) in table
    assert (
        "| production container start → healthy, dependencies already healthy (ci) "
        "| not measured | ≤ 1.50 s | not measured |"
    ) in table


def test_runtime_detail_and_missed_targets_name_what_differs():
    report = _runtime_report()
    missed = missed_targets(report)
    assert (
        "missed: packages a scanner sees ÷ Debian packages whose files are in the image is "
        "0.933, target = 1.000: MISS by 0.067 (-7%)"
    ) in missed
    markdown = render_markdown(report)
    assert "## Runtime detail" in markdown
    assert "- owning files but not listed: `base-files`" in markdown
    assert "- programs outside the allow-list (`python`, `python3`): none" in markdown
    assert "of app, to the end of its first passing healthcheck probe: 1.21, 1.34 s." in (markdown)


def test_bench_json_targets_carry_their_minimum():
    results = {result["key"]: result for result in target_results(_runtime_report()["samples"])}
    packages = results["runtime.packages.inventory_to_owning"]
    assert (packages["limit"], packages["minimum"], packages["passed"]) == (1.0, 1.0, False)
    assert results["size.production_to_python"]["limit"] == 0.75
    assert results["size.production_to_python"]["minimum"] is None


def test_the_runtime_section_can_run_alone():
    assert parse_arguments(["--only", "runtime"]).sections == ("runtime",)
    assert "runtime" in parse_arguments([]).sections
