"""The security policy (pipeline/policy), no Docker needed.

Every control of controls.toml passes a service that keeps its promise, fails the broken
variant it exists to catch, and, where its rule has one, says why it does not apply: the
cases are in test_policy_baseline.py and test_policy_restricted.py, one profile each. A
service there is a prod service of `docker compose config --format json` or a prod container
of `docker container inspect` plus the inspector's facts (tests/unit/policy_samples.py),
changed in the one place the case is about; contexts come from the environments model, as
in tests/infra. This file: what holds across the cases, and the policy model (load_policy,
profiles_for, context_for, evaluate, describe).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.environments import ENVIRONMENTS
from pipeline.policy import Context, context_for, describe, evaluate, load_policy, profiles_for
from pipeline.policy.rules import RULES
from tests.unit.policy_cases import (
    FAIL,
    NA,
    PASS,
    SECRET,
    compose,
    context,
    files,
    finding,
    running,
)
from tests.unit.test_policy_baseline import BASELINE
from tests.unit.test_policy_restricted import RESTRICTED

POLICY = load_policy()


def test_every_control_has_a_passing_and_a_failing_case():
    outcomes: dict[str, set[str]] = {control.id: set() for control in POLICY.controls}
    for param in BASELINE + RESTRICTED:
        control_id, *_, outcome, _detail = param.values
        outcomes[control_id].add(outcome)
    missing = {key: {PASS, FAIL} - found for key, found in outcomes.items() if {PASS, FAIL} - found}
    assert not missing, f"expected a pass and a fail case for every control, missing {missing}"


def test_a_static_failure_names_a_field_its_compose_service_has_a_route_for():
    # A lint finding points at its compose line through the view's routes.
    unrouted = []
    for param in BASELINE + RESTRICTED:
        control_id, view, environment, outcome, _detail = param.values
        verdict = evaluate(POLICY.control(control_id), view, context(environment, view.service))
        if outcome == FAIL and not view.running and verdict.field not in view.routes:
            unrouted.append(f"{param.id}: {verdict.field!r}")
    assert not unrouted, f"expected every static failure's field in its routes, found {unrouted}"


def test_more_than_ten_file_findings_are_cut_to_ten_and_a_count():
    found = [finding(f"/usr/bin/tool{number}", "4755") for number in range(12)]
    view = running(files=files(special_bits=found))
    verdict = evaluate(POLICY.control("no-setuid-files"), view, context("prod", "app"))
    assert len(verdict.found) == 11, f"expected 10 findings and a count, found {verdict.found}"
    assert verdict.found[-1] == "… 2 more", f"expected '… 2 more' last, found {verdict.found[-1]}"


# ---------------------------------------------------------------- the policy model


def test_every_rule_a_control_names_exists_and_every_rule_is_named():
    named = {control.rule for control in POLICY.controls}
    assert named <= set(RULES), f"expected a rule for each control, missing {named - set(RULES)}"
    assert set(RULES) <= named, f"expected every rule used, found unused {set(RULES) - named}"


def test_control_ids_are_unique():
    ids = [control.id for control in POLICY.controls]
    twice = sorted({name for name in ids if ids.count(name) > 1})
    assert not twice, f"expected each control id once, found twice: {twice}"


def write_policy(folder: Path, profile: str, severity: str | None = "low") -> Path:
    path = folder / "controls.toml"
    path.write_text(
        "[[control]]\n"
        'id = "restart-policy"\n'
        'title = "A restart policy"\n'
        'reference = "CIS 5.15"\n'
        f'profile = "{profile}"\n'
        'rule = "restart-policy"\n'
        + (f'severity = "{severity}"\n' if severity else "")
        + "max_retries = 5\n"
        "[writable_paths]\n"
        'app = ["/tmp"]\n'
    )
    return path


def test_load_policy_refuses_an_unknown_profile(tmp_path):
    path = write_policy(tmp_path, "lenient")
    with pytest.raises(ValueError, match="unknown profile") as raised:
        load_policy(path)
    message = str(raised.value)
    assert str(path) in message and "lenient" in message, (
        f"expected the file and the unknown profile named, found {message!r}"
    )


@pytest.mark.parametrize(
    ("severity", "said"),
    [("urgent", "unknown severity"), (None, "control restart-policy lacks severity")],
    ids=["an unknown severity", "no severity"],
)
def test_load_policy_refuses_a_control_without_a_known_severity(tmp_path, severity, said):
    path = write_policy(tmp_path, "baseline", severity)
    with pytest.raises(ValueError, match=said) as raised:
        load_policy(path)
    assert str(path) in str(raised.value)


def test_load_policy_keeps_a_control_s_own_settings_as_its_parameters(tmp_path):
    policy = load_policy(write_policy(tmp_path, "restricted"))
    control = policy.control("restart-policy")
    assert control.parameters == {"max_retries": 5}, (
        f"expected only the control's own settings as parameters, found {control.parameters}"
    )
    assert policy.writable_paths == {"app": ["/tmp"]}, (
        f"expected the allow-list read, found {policy.writable_paths}"
    )
    assert policy.secrets == {}, (
        f"expected no secrets when the file lists none, found {policy.secrets}"
    )


@pytest.mark.parametrize(
    ("environment", "service", "profiles"),
    [
        pytest.param(
            name, service, profiles, id=f"{name} holds {service} to {' and '.join(profiles)}"
        )
        for name, services, profiles in (
            ("prod", ("app", "callback", "postgres", "redis"), ("baseline", "restricted")),
            ("ci", ("app", "callback"), ("baseline", "restricted")),
            ("ci", ("postgres", "redis"), ("baseline",)),
            ("dev", ("app", "callback", "postgres", "redis"), ("baseline",)),
            ("test", ("app", "callback", "postgres", "redis"), ("baseline",)),
        )
        for service in services
    ],
)
def test_profiles_for_each_environment(environment, service, profiles):
    found = profiles_for(ENVIRONMENTS[environment], service)
    assert found == profiles, f"{environment} {service}: expected {profiles}, found {found}"


@pytest.mark.parametrize(
    ("service", "ours"),
    [("app", True), ("callback", True), ("postgres", False), ("redis", False)],
    ids=["app is ours", "callback is ours", "postgres is not", "redis is not"],
)
def test_context_for_knows_which_services_run_our_images(service, ours):
    found = context_for(ENVIRONMENTS["ci"], service, (SECRET,))
    assert found.ours is ours, f"{service}: expected ours={ours}, found {found.ours}"
    assert found.secret_values == (SECRET,), (
        f"expected the secrets kept, found {found.secret_values}"
    )
    assert found.profiles == profiles_for(ENVIRONMENTS["ci"], service), (
        f"{service}: expected the model's profiles, found {found.profiles}"
    )


def test_evaluate_outside_the_control_s_profile_is_not_applicable_and_says_why(monkeypatch):
    control = POLICY.control("read-only-root")
    monkeypatch.setitem(RULES, control.rule, lambda *_: pytest.fail("the rule was evaluated"))
    verdict = evaluate(control, compose(read_only=False), context("dev", "app"))
    assert verdict.outcome == NA, f"expected not applicable, found {verdict.outcome}"
    assert verdict.reason == "restricted profile does not apply to app in dev", (
        f"expected the profile, service and environment named, found {verdict.reason!r}"
    )


def test_outside_any_environment_the_reason_names_no_environment():
    no_environment = Context(POLICY, ("baseline",), None)
    verdict = evaluate(POLICY.control("read-only-root"), compose(), no_environment)
    assert verdict.reason == "restricted profile does not apply to app", (
        f"expected no environment in the reason, found {verdict.reason!r}"
    )


def test_describe_names_control_environment_service_expected_and_found():
    control = POLICY.control("restart-policy")
    verdict = evaluate(control, compose(restart="no"), context("prod", "app"))
    line = describe(control, verdict, "prod", "app")
    expected = "expected 'on-failure:N"
    for part in ("[restart-policy]", "[prod]", "app:", control.title, expected, "found 'no'"):
        assert part in line, f"expected {part!r} in the failure line, found {line!r}"
