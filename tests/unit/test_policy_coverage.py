"""The CIS coverage table: every recommendation implemented or not applicable, and the
committed docs/cis-coverage.md what controls.toml makes of it."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from pipeline.policy import load_policy
from pipeline.policy.coverage import markdown, problems, rows

ROOT = Path(__file__).resolve().parents[2]
POLICY = load_policy()


def test_every_recommendation_is_implemented_or_not_applicable():
    assert problems(POLICY) == []
    numbers = [row.number for row in rows(POLICY)]
    assert numbers[:12] == [f"4.{n}" for n in range(1, 13)]
    assert numbers[12:] == [f"5.{n}" for n in range(1, 33)], numbers


def test_the_committed_table_is_the_generated_one():
    committed = (ROOT / "docs" / "cis-coverage.md").read_text()
    assert committed == markdown(POLICY), (
        "docs/cis-coverage.md is stale: run `nox -s policy -- --coverage > docs/cis-coverage.md`"
    )


def test_a_recommendation_no_control_cites_and_none_excuses_is_reported():
    privileged = POLICY.control("privileged")
    uncited = dataclasses.replace(privileged, reference="PSS baseline: Privileged Containers")
    broken = dataclasses.replace(
        POLICY,
        controls=tuple(uncited if c is privileged else c for c in POLICY.controls),
    )
    assert problems(broken) == ["CIS 5.5: neither implemented by a control nor said not applicable"]


def test_a_cited_number_missing_from_the_table_is_reported():
    cis = {number: entry for number, entry in POLICY.cis.items() if number != "5.8"}
    assert problems(dataclasses.replace(POLICY, cis=cis)) == [
        "CIS 5.8 is cited by privileged-ports but not listed in [cis]"
    ]
