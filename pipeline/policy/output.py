"""The policy's findings for people and for tools: text, JSON, SARIF 2.1.0 and JUnit XML.

Every format renders the same judgements (a control on a service: pass, fail or not
applicable, a failure with its file and line when the compose model was judged) and the
same severities (controls.toml). SARIF is what GitHub code scanning reads: one rule per
control with its title, reference and help, `security-severity` for GitHub's severity, a
level per severity, and each failure at `file:line`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol
from xml.etree import ElementTree

from pipeline.policy import SEVERITIES, Control, Verdict, load_policy

FORMATS = ("text", "json", "sarif", "junit")
TOOL = "dashtam-policy"
# GitHub code scanning maps security-severity to critical (≥ 9), high (≥ 7), medium (≥ 4), low.
SECURITY_SEVERITY = {"critical": "9.5", "high": "8.0", "medium": "5.5", "low": "3.0"}
SARIF_LEVEL = {"critical": "error", "high": "error", "medium": "warning", "low": "note"}
SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"


class Judged(Protocol):
    service: str
    control: Control
    verdict: Verdict


def at_or_above(severity: str, threshold: str) -> bool:
    return SEVERITIES.index(severity) >= SEVERITIES.index(threshold)


def failures(judged: Sequence[Judged]) -> list[Judged]:
    return [item for item in judged if item.verdict.outcome == "fail"]


def location(item: Judged) -> tuple[str, int] | None:
    path = getattr(item, "path", None)
    return (os.path.relpath(path), getattr(item, "line", 0) or 1) if path else None


def message(item: Judged, label: str) -> str:
    verdict = item.verdict
    return (
        f"[{item.control.id}] {label} {item.service}: {item.control.title}: "
        f"expected {verdict.expected!r}, found {verdict.found!r}"
    )


def render(judged: Sequence[Judged], output_format: str, label: str) -> str:
    """The judgements in one of FORMATS; `label` names what was judged (a profile, an
    environment or a project)."""
    return {"text": _text, "json": _json, "sarif": _sarif, "junit": _junit}[output_format](
        judged, label
    )


def _text(judged: Sequence[Judged], label: str) -> str:
    lines = []
    for item in failures(judged):
        where = location(item)
        prefix = f"{where[0]}:{where[1]}: " if where else ""
        lines.append(f"{prefix}{item.control.severity}: {message(item, label)}")
    services = len({item.service for item in judged})
    lines.append(f"policy ({label}): {len(failures(judged))} failure(s) in {services} service(s)")
    return "\n".join(lines)


def _json(judged: Sequence[Judged], label: str) -> str:
    entries = []
    for item in judged:
        where = location(item) if item.verdict.outcome == "fail" else None
        entries.append(
            {
                "control": item.control.id,
                "title": item.control.title,
                "severity": item.control.severity,
                "reference": item.control.reference,
                "service": item.service,
                "outcome": item.verdict.outcome,
                "expected": item.verdict.expected,
                "found": item.verdict.found,
                "reason": item.verdict.reason,
                "file": where[0] if where else None,
                "line": where[1] if where else None,
            }
        )
    by_severity = {
        severity: sum(1 for item in failures(judged) if item.control.severity == severity)
        for severity in SEVERITIES
    }
    document = {
        "tool": TOOL,
        "judged": label,
        "results": entries,
        "summary": {"failures": len(failures(judged)), "by_severity": by_severity},
    }
    return json.dumps(document, indent=2, default=str)


def _sarif_rule(control: Control) -> dict:
    return {
        "id": control.id,
        "name": "".join(word.capitalize() for word in control.id.split("-")),
        "shortDescription": {"text": control.title},
        "fullDescription": {"text": f"{control.title} ({control.reference})"},
        "help": {
            "text": f"{control.title}. Reference: {control.reference}. Profile: {control.profile}.",
            "markdown": f"**{control.title}**\n\nReference: {control.reference}\n\n"
            f"Profile: `{control.profile}`; rule `{control.rule}` in pipeline/policy/rules.py.",
        },
        "defaultConfiguration": {"level": SARIF_LEVEL[control.severity]},
        "properties": {
            "security-severity": SECURITY_SEVERITY[control.severity],
            "tags": ["security", control.profile],
        },
    }


def _sarif(judged: Sequence[Judged], label: str) -> str:
    controls = list(load_policy().controls)
    index = {control.id: number for number, control in enumerate(controls)}
    results = []
    for item in failures(judged):
        where = location(item)
        result = {
            "ruleId": item.control.id,
            "ruleIndex": index[item.control.id],
            "level": SARIF_LEVEL[item.control.severity],
            "message": {"text": message(item, label)},
            "locations": [
                {
                    "physicalLocation": {
                        "artifactLocation": {"uri": Path(where[0]).as_posix()},
                        "region": {"startLine": where[1]},
                    }
                }
                if where
                else {"logicalLocations": [{"name": item.service, "kind": "module"}]}
            ],
            "partialFingerprints": {"service/control": f"{item.service}/{item.control.id}"},
        }
        results.append(result)
    document = {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": TOOL,
                        "rules": [_sarif_rule(control) for control in controls],
                    }
                },
                "automationDetails": {"id": f"{TOOL}/{label}/"},
                "results": results,
            }
        ],
    }
    return json.dumps(document, indent=2)


def _junit(judged: Sequence[Judged], label: str) -> str:
    suite = ElementTree.Element(
        "testsuite",
        name=f"policy ({label})",
        tests=str(len(judged)),
        failures=str(len(failures(judged))),
        skipped=str(sum(1 for item in judged if item.verdict.outcome == "not applicable")),
    )
    for item in judged:
        case = ElementTree.SubElement(
            suite, "testcase", classname=f"policy.{item.service}", name=item.control.id
        )
        if item.verdict.outcome == "fail":
            where = location(item)
            failure = ElementTree.SubElement(
                case,
                "failure",
                type=item.control.severity,
                message=message(item, label),
            )
            failure.text = f"{where[0]}:{where[1]}" if where else item.service
        elif item.verdict.outcome == "not applicable":
            ElementTree.SubElement(case, "skipped", message=item.verdict.reason)
    suites = ElementTree.Element("testsuites")
    suites.append(suite)
    ElementTree.indent(suites)
    return ElementTree.tostring(suites, encoding="unicode", xml_declaration=True)
