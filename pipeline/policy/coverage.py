"""Which CIS Docker Benchmark recommendations the policy implements, and why the others do
not apply: a table made from controls.toml alone (its `[cis]` titles and reasons, and the
numbers each control's reference cites), written to docs/cis-coverage.md.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pipeline.policy import Policy

# `CIS 5.10, 5.16` in a reference; `CIS PostgreSQL …` or `CIS-DI-0001` are other benchmarks.
_CITED = re.compile(r"\bCIS ((?:\d+\.\d+)(?:, \d+\.\d+)*)")


@dataclass(frozen=True)
class Row:
    number: str
    title: str
    controls: tuple[str, ...]  # the controls that cite it
    not_applicable: str  # why none does; "" when one does


def cited(policy: Policy) -> dict[str, list[str]]:
    """Recommendation number -> the ids of the controls whose reference cites it."""
    found: dict[str, list[str]] = {}
    for control in policy.controls:
        for match in _CITED.finditer(control.reference):
            for number in match.group(1).split(", "):
                found.setdefault(number, []).append(control.id)
    return found


def _order(number: str) -> tuple[int, ...]:
    return tuple(int(part) for part in number.split("."))


def rows(policy: Policy) -> list[Row]:
    by_number = cited(policy)
    return [
        Row(
            number,
            entry["title"],
            tuple(by_number.get(number, [])),
            entry.get("not_applicable", ""),
        )
        for number, entry in sorted(policy.cis.items(), key=lambda item: _order(item[0]))
    ]


def problems(policy: Policy) -> list[str]:
    """What keeps the table honest: each recommendation implemented or not applicable (never
    both, never neither), and each number a control cites listed."""
    found = [
        f"CIS {row.number}: implemented by {', '.join(row.controls)} and also not applicable"
        if row.controls and row.not_applicable
        else f"CIS {row.number}: neither implemented by a control nor said not applicable"
        for row in rows(policy)
        if bool(row.controls) == bool(row.not_applicable)
    ]
    found += [
        f"CIS {number} is cited by {', '.join(ids)} but not listed in [cis]"
        for number, ids in sorted(cited(policy).items())
        if number not in policy.cis
    ]
    return found


def markdown(policy: Policy) -> str:
    lines = [
        "# CIS Docker Benchmark coverage",
        "",
        "Generated from `pipeline/policy/controls.toml` by `nox -s policy -- --coverage`; do not",
        "edit by hand. CIS Docker Benchmark v1.6.0, section 4 (images) and section 5 (container",
        "runtime): each recommendation is implemented by the controls named (judged on the",
        "compose model by `nox -s lint` and `nox -s policy`, on running containers by `verify`)",
        "or is not applicable to a model, an image or a container, for the reason given.",
        "",
        "| CIS | Recommendation | Implemented by | Not applicable because |",
        "| --- | --- | --- | --- |",
    ]
    for row in rows(policy):
        controls = ", ".join(f"`{control}`" for control in row.controls)
        lines.append(f"| {row.number} | {row.title} | {controls} | {row.not_applicable} |")
    return "\n".join(lines) + "\n"
