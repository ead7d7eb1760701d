"""The security policy: named controls as data (controls.toml), evaluated on a service.

    policy = load_policy()
    for control in policy.controls:
        verdict = evaluate(control, view, context)   # pass, fail or not applicable

A view is one service read from the compose model or from its running container
(pipeline.policy.views); the context says which environment it belongs to, which profiles
apply to it (the environments model decides, never the compose file) and what the stack's
secrets are. The rules behind the controls are in pipeline.policy.rules.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Literal

from pipeline.environments import APP_SERVICES, Environment

POLICY_FILE = Path(__file__).with_name("controls.toml")
PROFILES = ("baseline", "restricted")
# From least to most severe; `--fail-on` and the SARIF levels read this order.
SEVERITIES = ("low", "medium", "high", "critical")

Outcome = Literal["pass", "fail", "not applicable"]


@dataclass(frozen=True)
class Control:
    id: str
    title: str
    reference: str
    profile: str
    rule: str
    severity: str = "medium"
    parameters: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Policy:
    controls: tuple[Control, ...]
    writable_paths: dict[str, list[str]]
    bind_targets: dict[str, list[str]]
    secrets: dict[str, list[str]]
    secret_variables: dict[str, str]
    # CIS Docker Benchmark recommendations by number: title, and why one is not applicable.
    cis: dict[str, dict[str, str]] = field(default_factory=dict)

    def control(self, control_id: str) -> Control:
        return next(control for control in self.controls if control.id == control_id)


@dataclass(frozen=True)
class Context:
    """What a control needs to know about a service beyond the service itself."""

    policy: Policy
    profiles: tuple[str, ...]
    environment: Environment | None = None  # None: a compose project that is not ours
    ours: bool = False  # runs an image built from docker/Dockerfile
    secret_values: tuple[str, ...] = ()  # the stack's secrets, to look for where they must not be


@dataclass(frozen=True)
class Verdict:
    outcome: Outcome
    expected: object = None
    found: object = None
    reason: str = ""  # why it does not apply
    field: str = ""  # the view field at fault: its route names the compose line

    @property
    def passed(self) -> bool:
        return self.outcome == "pass"


def passes() -> Verdict:
    return Verdict("pass")


def fails(expected: object, found: object, field: str = "") -> Verdict:
    return Verdict("fail", expected, found, field=field)


def not_applicable(reason: str) -> Verdict:
    return Verdict("not applicable", reason=reason)


@cache
def load_policy(path: Path = POLICY_FILE) -> Policy:
    data = tomllib.loads(path.read_text())
    base = {"id", "title", "reference", "profile", "rule", "severity"}
    for entry in data["control"]:
        missing = sorted(base - set(entry))
        if missing:
            raise ValueError(f"{path}: control {entry.get('id', '?')} lacks {', '.join(missing)}")
    controls = tuple(
        Control(
            **{key: entry[key] for key in base},
            parameters={key: value for key, value in entry.items() if key not in base},
        )
        for entry in data["control"]
    )
    unknown = sorted({control.profile for control in controls} - set(PROFILES))
    if unknown:
        raise ValueError(f"{path}: unknown profile(s) {unknown}; use {PROFILES}")
    unknown = sorted({control.severity for control in controls} - set(SEVERITIES))
    if unknown:
        raise ValueError(f"{path}: unknown severity(ies) {unknown}; use {SEVERITIES}")
    return Policy(
        controls,
        data.get("writable_paths", {}),
        data.get("bind_targets", {}),
        data.get("secrets", {}),
        data.get("secret_variables", {}),
        data.get("cis", {}),
    )


def profiles_for(environment: Environment, service: str) -> tuple[str, ...]:
    """baseline everywhere; restricted where the environments model says so."""
    return (
        ("baseline", "restricted") if service in environment.restricted_services else ("baseline",)
    )


def context_for(
    environment: Environment, service: str, secret_values: tuple[str, ...] = ()
) -> Context:
    """The context of one of our services in one of our environments."""
    return Context(
        load_policy(),
        profiles_for(environment, service),
        environment,
        ours=service in APP_SERVICES,
        secret_values=secret_values,
    )


def evaluate(control: Control, view, context: Context) -> Verdict:
    """The control's verdict on one service (not applicable outside its profiles)."""
    from pipeline.policy.rules import RULES

    if control.profile not in context.profiles:
        return not_applicable(
            f"{control.profile} profile does not apply to {view.service}"
            + (f" in {context.environment.name}" if context.environment else "")
        )
    return RULES[control.rule](view, control, context)


def describe(control: Control, verdict: Verdict, environment_name: str, service: str) -> str:
    """One line for a failure: control id, environment, service, expected, found."""
    return (
        f"[{control.id}] [{environment_name}] {service}: {control.title}: "
        f"expected {verdict.expected!r}, found {verdict.found!r}"
    )
