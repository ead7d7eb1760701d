"""The verify report (pipeline/reports.py) from a JUnit file written here: no stack, no Docker.

`read_junit` reads what pytest wrote; `render_summary` and `render_policy` turn it into the
Markdown of reports/verify-<env>.md: the containers, every control for every service (pass,
**FAIL** or n/a, each n/a with its reason), and the other checks.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.policy import load_policy
from pipeline.reports import (
    PYTEST_INTERRUPTED,
    CheckResult,
    ChecksRun,
    ContainerFacts,
    Judgement,
    judge,
    read_junit,
    render_policy,
    render_summary,
)

NOT_OURS = "postgres:17.6 is not built from docker/Dockerfile: it is taken as it is"
FAILURE = "AssertionError: [read-only-root] [prod] app: expected True, found False"
JUNIT = f"""<?xml version="1.0" encoding="utf-8"?>
<testsuites name="pytest tests">
<testsuite name="pytest" errors="1" failures="1" skipped="2" tests="6" time="3.2">
<testcase classname="tests.infra.test_policy" name="test_policy[prod-app-privileged]"
 time="0.010" />
<testcase classname="tests.infra.test_policy" name="test_policy[prod-app-read-only-root]"
 time="0.012"><failure message="{FAILURE}&#10;assert False">tests/infra/test_policy.py:22:
 AssertionError</failure></testcase>
<testcase classname="tests.infra.test_policy"
 name="test_policy[prod-postgres-image-user-non-root]" time="0.001">
<skipped type="pytest.skip" message="not applicable: {NOT_OURS}">tests/infra/test_policy.py:21:
 not applicable: {NOT_OURS}</skipped></testcase>
<testcase classname="tests.infra.test_policy" name="test_policy[prod-postgres-privileged]"
 time="0.002" />
<testcase classname="tests.infra.test_health" name="test_health[prod-app]" time="1.234" />
<testcase classname="tests.infra.test_drift" name="test_drift" time="0.5">
<error message="failed on setup with &quot;KeyError: 'app'&quot;">KeyError</error></testcase>
</testsuite>
</testsuites>
"""


@pytest.fixture
def checks(tmp_path: Path) -> list[CheckResult]:
    path = tmp_path / "verify-prod.xml"
    path.write_text(JUNIT)
    return read_junit(path)


def test_read_junit_gives_each_case_its_outcome_time_and_first_message_line(checks):
    found = [(check.name, check.outcome, check.seconds) for check in checks]
    expected = [
        ("test_policy[prod-app-privileged]", "passed", 0.010),
        ("test_policy[prod-app-read-only-root]", "failed", 0.012),
        ("test_policy[prod-postgres-image-user-non-root]", "skipped", 0.001),
        ("test_policy[prod-postgres-privileged]", "passed", 0.002),
        ("test_health[prod-app]", "passed", 1.234),
        ("test_drift", "failed", 0.5),
    ]
    assert found == expected, f"expected {expected}, found {found}"
    messages = [check.message for check in checks]
    expected_messages = [
        "",
        FAILURE,
        f"not applicable: {NOT_OURS}",
        "",
        "",
        "failed on setup with \"KeyError: 'app'\"",
    ]
    assert messages == expected_messages, f"expected {expected_messages}, found {messages}"


def test_read_junit_cuts_a_long_message_and_reads_no_file_as_no_checks(tmp_path):
    path = tmp_path / "long.xml"
    path.write_text(
        f'<testsuite><testcase name="t" time=""><failure message="{"x" * 400}"/></testcase>'
        "</testsuite>"
    )
    (check,) = read_junit(path)
    assert (len(check.message), check.seconds) == (300, 0.0), (
        f"expected a 300-character message and 0 seconds, found {len(check.message)}, "
        f"{check.seconds}"
    )
    found = read_junit(tmp_path / "missing.xml")
    assert found == [], f"expected no checks without a JUnit file, found {found}"


def row(lines: list[str], control_id: str) -> list[str]:
    """The cells of one control's row of the policy table."""
    line = next(line for line in lines if line.startswith(f"| `{control_id}` "))
    return [cell.strip() for cell in line.strip("|").split("|")]


def test_the_policy_table_has_every_control_and_a_cell_per_service(checks):
    lines = render_policy("prod", ["app", "postgres"], checks)
    assert lines[:2] == ["| control | app | postgres |", "|---|---|---|"], (
        f"expected a header naming the services, found {lines[:2]}"
    )
    controls = load_policy().controls
    rows = [line for line in lines if line.startswith("| `")]
    assert len(rows) == len(controls), f"expected {len(controls)} rows, found {len(rows)}"
    expected = {
        "privileged": ["`privileged` (baseline)", "pass", "pass"],
        "read-only-root": ["`read-only-root` (restricted)", "**FAIL**", "—"],
        "image-user-non-root": ["`image-user-non-root` (baseline)", "—", "n/a"],
    }
    found = {control_id: row(lines, control_id) for control_id in expected}
    assert found == expected, f"expected {expected}, found {found}"


def test_each_not_applicable_is_listed_with_its_reason_and_each_failure_with_its_message(
    checks,
):
    lines = render_policy("prod", ["app", "postgres"], checks)
    notes = lines[lines.index("") + 1 :]
    expected = [
        f"- **`read-only-root` on app failed**: {FAILURE}",
        f"- `image-user-non-root` on postgres: {NOT_OURS}",
    ]
    assert sorted(notes) == sorted(expected), f"expected {expected}, found {notes}"


@pytest.mark.parametrize(
    "message",
    [f"not applicable: {NOT_OURS}", f"Skipped: not applicable: {NOT_OURS}", NOT_OURS],
    ids=["without Skipped", "with Skipped", "without either prefix"],
)
def test_a_reason_is_listed_without_its_prefixes(message):
    skipped = CheckResult("test_policy[prod-postgres-healthcheck]", "skipped", 0.0, message)
    notes = render_policy("prod", ["postgres"], [skipped])[-1:]
    assert notes == [f"- `healthcheck` on postgres: {NOT_OURS}"], (
        f"expected the bare reason, found {notes}"
    )


def test_another_environment_s_cases_are_not_this_one_s():
    other = CheckResult("test_policy[ci-app-privileged]", "failed", 0.0, "boom")
    cells = row(render_policy("prod", ["app"], [other]), "privileged")
    assert cells[1] == "—", f"expected no result for prod from a ci case, found {cells}"


FACTS = [
    ContainerFacts("app", "5d1f9c0e2b4a", "1000:1000 (python)", "healthy", "8000/tcp", "98 MiB"),
    ContainerFacts("postgres", "0a1b2c3d4e5f", "999:999 (postgres)", "healthy", "5432/tcp", "n/a"),
]


def test_the_summary_gives_the_verdict_line_and_one_row_per_container(checks):
    text = render_summary("prod", FACTS, checks, Judgement("FAIL"))
    lines = text.splitlines()
    assert lines[0] == "## verify(prod): FAIL", f"expected FAIL with failures, found {lines[0]!r}"
    assert lines[2] == "3 passed, 2 failed, 1 not applicable.", (
        f"expected 3 passed, 2 failed, 1 not applicable, found {lines[2]!r}"
    )
    expected = "| app | 5d1f9c0e2b4a | 1000:1000 (python) | healthy | 8000/tcp | 98 MiB |"
    assert expected in lines, f"expected the app's row {expected!r}, found {lines[:10]}"
    assert "| control | app | postgres |" in lines, "expected the policy table's header"
    assert text.endswith("\n"), "expected the summary to end with a newline"


def test_other_checks_are_listed_once_and_policy_cases_only_in_their_table(checks):
    lines = render_summary("prod", FACTS, checks, Judgement("FAIL")).splitlines()
    other = lines[lines.index("### Other checks") :]
    expected = [
        "| `test_health[prod-app]` | pass | 1.23 |",
        "| `test_drift` | **FAIL** — failed on setup with \"KeyError: 'app'\" | 0.50 |",
    ]
    assert other[-2:] == expected, f"expected {expected}, found {other[-2:]}"
    policy_rows = [line for line in other if "test_policy[" in line]
    assert not policy_rows, f"expected no policy case among other checks, found {policy_rows}"


WHOLE = ("test_a", "test_b", "test_policy[prod-app-privileged]")


def whole_run(**changes) -> ChecksRun:
    """A run that collected WHOLE and owes the one policy case, exited 0, unnarrowed."""
    run = {
        "exit_code": 0,
        "arguments": (),
        "collected": WHOLE,
        "policy_cases": frozenset({"test_policy[prod-app-privileged]"}),
    }
    return ChecksRun(**(run | changes))


def results(*outcomes: tuple[str, str]) -> list[CheckResult]:
    return [CheckResult(name, outcome, 0.1) for name, outcome in outcomes]


EVERY_ONE_PASSED = results(
    ("test_a", "passed"), ("test_b", "skipped"), ("test_policy[prod-app-privileged]", "passed")
)


@pytest.mark.parametrize(
    ("checks", "run", "verdict", "why"),
    [
        (EVERY_ONE_PASSED, whole_run(), "PASS", ""),
        (EVERY_ONE_PASSED[:1], whole_run(exit_code=PYTEST_INTERRUPTED), "INTERRUPTED", "stopped"),
        (EVERY_ONE_PASSED[:1], whole_run(exit_code=None), "INTERRUPTED", "stopped"),
        (EVERY_ONE_PASSED[:1], whole_run(arguments=("-k", "health")), "PARTIAL", "-k health"),
        (EVERY_ONE_PASSED[:2], whole_run(), "PARTIAL", "missing: test_policy[prod-app-privileged]"),
        (
            EVERY_ONE_PASSED,
            whole_run(policy_cases=frozenset({"test_policy[prod-redis-privileged]"})),
            "PARTIAL",
            "test_policy[prod-redis-privileged]",
        ),
        (EVERY_ONE_PASSED, whole_run(exit_code=1), "FAIL", "pytest exited 1; no check failed"),
        (
            [*EVERY_ONE_PASSED[:2], CheckResult("test_policy[prod-app-privileged]", "failed", 0)],
            whole_run(exit_code=1),
            "FAIL",
            "1 check(s) failed",
        ),
        (EVERY_ONE_PASSED, whole_run(collected=None), "FAIL", "never said what it collected"),
        (
            results(*((name, "skipped") for name in WHOLE)),
            whole_run(),
            "FAIL",
            "no check passed",
        ),
        ([], whole_run(exit_code=5, collected=()), "FAIL", "pytest exited 5"),
    ],
    ids=[
        "every case ran, exit 0: PASS",
        "Ctrl-C (pytest exit 2): INTERRUPTED",
        "stopped before pytest answered: INTERRUPTED",
        "narrowed with -k: PARTIAL, and says how",
        "a collected case that never ran: PARTIAL",
        "a policy case the suite never collected: PARTIAL",
        "a non-zero exit with no failed case (a skip guard): FAIL",
        "a failed case: FAIL",
        "no list of what was collected: FAIL",
        "every case skipped: FAIL",
        "nothing collected: FAIL",
    ],
)
def test_the_verdict_says_what_ran(checks, run, verdict, why):
    judgement = judge(checks, run)
    assert judgement.verdict == verdict, f"expected {verdict}, found {judgement}"
    assert why in " ".join(judgement.reasons), f"expected {why!r} in {judgement.reasons}"


def test_the_summary_names_the_verdict_and_why():
    judgement = Judgement("PARTIAL", ("narrowed by `-k health`",))
    lines = render_summary("prod", FACTS, EVERY_ONE_PASSED, judgement).splitlines()
    assert lines[0] == "## verify(prod): PARTIAL", f"found {lines[0]!r}"
    assert "PARTIAL: narrowed by `-k health`." in lines, f"found {lines[:5]}"
