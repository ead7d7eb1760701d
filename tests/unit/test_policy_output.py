"""The policy's output formats and exit status: text, JSON, SARIF 2.1.0 and JUnit, severities
and --fail-on, on judgements made by the real rules."""

from __future__ import annotations

import json
from pathlib import Path
from xml.etree import ElementTree

import pytest

from pipeline.policy import SEVERITIES, evaluate, load_policy
from pipeline.policy import __main__ as policy_command
from pipeline.policy.output import SARIF_LEVEL, SECURITY_SEVERITY, at_or_above, render
from pipeline.policy.static import Finding
from tests.unit.policy_cases import compose, context

POLICY = load_policy()
COMPOSE_FILE = Path("compose/docker-compose.selftest.yml").resolve()


def judged_app(**changes) -> list[Finding]:
    """Every control on prod's app with `changes` made; failures at line 7 of a file."""
    view = compose(**changes)
    found = []
    for control in POLICY.controls:
        verdict = evaluate(control, view, context("prod", "app"))
        if verdict.outcome == "fail":
            found.append(Finding("app", control, verdict, COMPOSE_FILE, 7))
        else:
            found.append(Finding("app", control, verdict))
    return found


@pytest.fixture(scope="module")
def privileged() -> list[Finding]:
    return judged_app(privileged=True, restart="always")


def test_every_control_has_a_known_severity():
    assert {control.severity for control in POLICY.controls} <= set(SEVERITIES)
    assert set(SECURITY_SEVERITY) == set(SARIF_LEVEL) == set(SEVERITIES)


def test_text_names_file_line_severity_and_control(privileged):
    lines = render(privileged, "text", "prod").splitlines()
    assert any(
        line.startswith("compose/docker-compose.selftest.yml:7: critical: [privileged] prod app:")
        for line in lines
    ), lines
    assert lines[-1] == "policy (prod): 2 failure(s) in 1 service(s)", lines[-1]


def test_json_holds_every_judgement_with_its_severity(privileged):
    document = json.loads(render(privileged, "json", "prod"))
    assert len(document["results"]) == len(POLICY.controls)
    failed = {r["control"]: r for r in document["results"] if r["outcome"] == "fail"}
    assert set(failed) == {"privileged", "restart-policy"}, sorted(failed)
    assert failed["privileged"]["severity"] == "critical"
    assert (failed["privileged"]["file"], failed["privileged"]["line"]) == (
        "compose/docker-compose.selftest.yml",
        7,
    )
    assert document["summary"] == {
        "failures": 2,
        "by_severity": {"low": 1, "medium": 0, "high": 0, "critical": 1},
    }


def test_sarif_is_2_1_0_with_a_rule_per_control_and_each_failure_at_its_line(privileged):
    document = json.loads(render(privileged, "sarif", "prod"))
    assert document["version"] == "2.1.0"
    assert document["$schema"].endswith("sarif-2.1.0.json")
    (run,) = document["runs"]
    rules = run["tool"]["driver"]["rules"]
    assert [rule["id"] for rule in rules] == [control.id for control in POLICY.controls]
    for rule, control in zip(rules, POLICY.controls, strict=True):
        assert rule["shortDescription"]["text"] == control.title
        assert control.reference in rule["help"]["text"]
        assert rule["properties"]["security-severity"] == SECURITY_SEVERITY[control.severity]
    results = {result["ruleId"]: result for result in run["results"]}
    assert set(results) == {"privileged", "restart-policy"}
    result = results["privileged"]
    assert rules[result["ruleIndex"]]["id"] == "privileged"
    assert result["level"] == "error"
    assert results["restart-policy"]["level"] == "note"
    location = result["locations"][0]["physicalLocation"]
    assert location == {
        "artifactLocation": {"uri": "compose/docker-compose.selftest.yml"},
        "region": {"startLine": 7},
    }


def test_junit_has_a_case_per_control_failures_and_skips(privileged):
    document = render(privileged, "junit", "prod")
    suite = ElementTree.fromstring(document).find("testsuite")  # noqa: S314 - our own output
    cases = suite.findall("testcase")
    assert len(cases) == len(POLICY.controls)
    failed = {case.get("name") for case in cases if case.find("failure") is not None}
    assert failed == {"privileged", "restart-policy"}
    skipped = [case for case in cases if case.find("skipped") is not None]
    assert suite.get("skipped") == str(len(skipped)) and suite.get("failures") == "2"


@pytest.mark.parametrize(
    ("severity", "threshold", "fails"),
    [("low", "low", True), ("medium", "high", False), ("critical", "high", True)],
)
def test_fail_on_counts_what_is_at_or_above_it(severity, threshold, fails):
    assert at_or_above(severity, threshold) is fails


def exit_status(monkeypatch, judged: list[Finding], *arguments: str) -> int:
    monkeypatch.setattr(policy_command, "check_files", lambda _arguments: judged)
    return policy_command.main(["-f", "compose.yml", *arguments])


def test_exit_status_is_1_on_a_failure_at_or_above_fail_on(monkeypatch, capsys, privileged):
    assert exit_status(monkeypatch, privileged) == 1
    assert exit_status(monkeypatch, privileged, "--fail-on", "critical") == 1
    restart_only = judged_app(restart="always")
    assert exit_status(monkeypatch, restart_only, "--fail-on", "medium") == 0, (
        "a low-severity failure must not fail --fail-on medium"
    )
    assert exit_status(monkeypatch, judged_app()) == 0


def test_a_file_that_does_not_load_exits_2_with_one_line(capsys):
    assert policy_command.main(["-f", "/nonexistent/compose.yml"]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert error == ["policy: /nonexistent/compose.yml: no such file; name a compose file with -f."]


def test_bad_usage_exits_2(capsys):
    with pytest.raises(SystemExit) as exited:
        policy_command.main(["-f", "x.yml", "--format", "xml"])
    assert exited.value.code == 2
