"""The verify report: what each container runs, every policy control for every service, and
every other check, as Markdown beside pytest's JUnit XML.

A run writes its own files (under .dashtam/runs, named after its project) and publishes them
to reports/verify-<env>.{xml,md,json} by renaming, so two runs at once never mix their results.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from pipeline.environments import REPORTS
from pipeline.inspection import read_facts
from pipeline.policy import load_policy
from pipeline.running import project_containers
from pipeline.stack import Stack

POLICY_CASE = "test_policy["
NOT_APPLICABLE = "not applicable: "


@dataclass(frozen=True)
class ContainerFacts:
    service: str
    image: str  # the image ID the container runs (sha256:…)
    user: str
    health: str
    listening: str
    memory: str
    # The name the container was created from, read from the container: for our services a
    # digest reference, <registry>/dashtam/<stage>@sha256:…, the one `nox -s publish` tags.
    reference: str = ""


@dataclass(frozen=True)
class CheckResult:
    name: str
    outcome: str  # passed | failed | skipped
    seconds: float
    message: str = ""


def junit_path(environment_name: str) -> Path:
    return REPORTS / f"verify-{environment_name}.xml"


def markdown_path(environment_name: str) -> Path:
    return REPORTS / f"verify-{environment_name}.md"


def record_path(environment_name: str, reports: Path | None = None) -> Path:
    """reports/verify-<env>.json: the verdict and the image IDs it was reached on, the record
    `nox -s publish` reads to publish only what passed. (REPORTS is read at the call, like
    the other reports' paths, so a test that moves it moves this one too.)"""
    return (reports or REPORTS) / f"verify-{environment_name}.json"


def container_facts(stack: Stack, facts: dict[str, dict]) -> list[ContainerFacts]:
    """One row per container, from `docker inspect` and what the suite's inspector read
    (memory: the resident memory of its processes, against the container's limit)."""
    entries = project_containers(stack.project, stopped=True)
    rows = []
    for service, entry in sorted(entries.items()):
        read = facts.get(service, {})
        processes = read.get("processes", [])
        pid1 = next((p for p in processes if p["pid"] == 1), None)
        state = entry.get("State", {})
        health = (state.get("Health") or {}).get("Status") or state.get("Status") or "unknown"
        limit = (entry.get("HostConfig") or {}).get("Memory") or 0
        resident = sum(p.get("resident_kb", 0) for p in processes) / 1024
        rows.append(
            ContainerFacts(
                service=service,
                image=str(entry.get("Image", "")),
                user=f"{pid1['uid']['effective']}:{pid1['gid']['effective']} ({pid1['name']})"
                if pid1
                else "unknown",
                health=health,
                listening=", ".join(
                    sorted(
                        {
                            f"{s['port']}/{s['protocol'].rstrip('6')}"
                            for s in read.get("sockets", [])
                        }
                    )
                ),
                memory=f"{resident:.0f} MiB / "
                + (f"{limit / 2**20:.0f} MiB" if limit else "no limit")
                if processes
                else "n/a",
                reference=str((entry.get("Config") or {}).get("Image", "")),
            )
        )
    return rows


def read_junit(path: Path) -> list[CheckResult]:
    if not path.is_file():
        return []
    results = []
    # Our own pytest wrote this file moments ago: trusted input.
    for case in ElementTree.parse(path).getroot().iter("testcase"):  # noqa: S314
        outcome, message = "passed", ""
        for tag in ("failure", "error", "skipped"):
            element = case.find(tag)
            if element is not None:
                outcome = "skipped" if tag == "skipped" else "failed"
                message = (
                    (element.get("message") or "").splitlines()[0][:300]
                    if element.get("message")
                    else ""
                )
                break
        results.append(
            CheckResult(case.get("name", "?"), outcome, float(case.get("time", 0) or 0), message)
        )
    return results


def _policy_cell(check: CheckResult | None) -> str:
    if check is None:
        return "—"
    return {"passed": "pass", "failed": "**FAIL**", "skipped": "n/a"}[check.outcome]


def render_policy(
    environment_name: str, services: list[str], checks: list[CheckResult]
) -> list[str]:
    """Every control for every service: pass, FAIL or n/a, and below, each n/a's reason."""
    by_case = {check.name: check for check in checks if check.name.startswith(POLICY_CASE)}
    lines = [
        "| control | " + " | ".join(services) + " |",
        "|---|" + "---|" * len(services),
    ]
    reasons: list[str] = []
    for control in load_policy().controls:
        cells = []
        for service in services:
            check = by_case.get(f"{POLICY_CASE}{environment_name}-{service}-{control.id}]")
            cells.append(_policy_cell(check))
            if check and check.outcome == "skipped":
                reason = check.message.removeprefix("Skipped: ").removeprefix(NOT_APPLICABLE)
                reasons.append(f"- `{control.id}` on {service}: {reason}")
            if check and check.outcome == "failed":
                reasons.append(f"- **`{control.id}` on {service} failed**: {check.message}")
        lines.append(f"| `{control.id}` ({control.profile}) | " + " | ".join(cells) + " |")
    return [*lines, "", *reasons]


def render_summary(
    environment_name: str,
    facts: list[ContainerFacts],
    checks: list[CheckResult],
    judgement: Judgement,
) -> str:
    passed = sum(check.outcome == "passed" for check in checks)
    failed = [check for check in checks if check.outcome == "failed"]
    not_applicable = sum(check.outcome == "skipped" for check in checks)
    services = [row.service for row in facts]
    lines = [
        f"## verify({environment_name}): {judgement.verdict}",
        "",
        f"{passed} passed, {len(failed)} failed, {not_applicable} not applicable.",
        *(f"{judgement.verdict}: {reason}." for reason in judgement.reasons),
        "",
        "| service | image | user (PID 1) | health | listening | resident memory / limit |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {f.service} | {short_id(f.image)} | {f.user} | {f.health} | {f.listening} "
        f"| {f.memory} |"
        for f in facts
    ]
    lines += ["", "Images verified (the digests `nox -s publish` accepts, and their IDs):", ""]
    lines += [f"- {f.service}: `{f.reference}` (image `{f.image}`)" for f in facts]
    lines += ["", "### Policy (pipeline/policy/controls.toml)", ""]
    lines += render_policy(environment_name, services, checks)
    lines += ["", "### Other checks", "", "| check | result | seconds |", "|---|---|---:|"]
    for check in checks:
        if check.name.startswith(POLICY_CASE):
            continue
        mark = {"passed": "pass", "failed": "**FAIL**", "skipped": "n/a"}[check.outcome]
        detail = f" — {check.message}" if check.message else ""
        lines.append(f"| `{check.name}` | {mark}{detail} | {check.seconds:.2f} |")
    return "\n".join(lines) + "\n"


def short_id(image_id: str) -> str:
    return image_id.removeprefix("sha256:")[:12]


# pytest's exit status when it was interrupted (Ctrl-C): what ran says nothing of the rest.
PYTEST_INTERRUPTED = 2


@dataclass(frozen=True)
class ChecksRun:
    """How the suite ran, beside what its JUnit file says."""

    exit_code: int | None  # pytest's exit status; None: stopped before it gave one
    arguments: tuple[str, ...] = ()  # what narrowed it (-k, paths, …), recorded as given
    collected: tuple[str, ...] | None = None  # every case before narrowing; None: never said
    policy_cases: frozenset[str] = frozenset()  # test_policy[<env>-<service>-<control>] due


@dataclass(frozen=True)
class Judgement:
    verdict: str  # PASS, PARTIAL, INTERRUPTED or FAIL
    reasons: tuple[str, ...] = ()


def judge(checks: list[CheckResult], run: ChecksRun) -> Judgement:
    """PASS only when pytest exited 0 and every case the environment owes ran, unnarrowed;
    INTERRUPTED, FAIL or PARTIAL (with why) otherwise."""
    if run.exit_code is None or run.exit_code == PYTEST_INTERRUPTED:
        return Judgement("INTERRUPTED", ("stopped before every check ran",))
    failed = [check.name for check in checks if check.outcome == "failed"]
    if failed or run.exit_code != 0:
        said = f"{len(failed)} check(s) failed" if failed else "no check failed"
        return Judgement("FAIL", (f"pytest exited {run.exit_code}; {said}",))
    if run.arguments:
        return Judgement("PARTIAL", (f"narrowed by `{' '.join(run.arguments)}`",))
    executed = [check.name for check in checks]
    if run.collected is None:
        return Judgement("FAIL", ("the suite never said what it collected",))
    missing = sorted((set(run.collected) | run.policy_cases) - set(executed))
    if missing or len(executed) != len(run.collected):
        shown = ", ".join(missing[:5]) + (f" … {len(missing) - 5} more" if len(missing) > 5 else "")
        return Judgement(
            "PARTIAL",
            (f"{len(executed)} of {len(run.collected)} collected checks ran; missing: {shown}",),
        )
    if not any(check.outcome == "passed" for check in checks):
        return Judgement("FAIL", ("no check passed",))
    return Judgement("PASS")


def render_record(
    environment_name: str,
    facts: list[ContainerFacts],
    judgement: Judgement,
    run: ChecksRun,
    bound: dict,
    finished: str,
) -> str:
    """reports/verify-<env>.json: the verdict, why, how the suite ran, what the run is bound
    to (commit, clean tree, digests of policy, suite and inputs) and every container's image
    by ID and reference, data stores included."""
    record = {
        "environment": environment_name,
        "verdict": judgement.verdict,
        "reasons": list(judgement.reasons),
        "finished": finished,
        "pytest": {
            "exit_code": run.exit_code,
            "arguments": list(run.arguments),
            "collected": len(run.collected) if run.collected is not None else None,
        },
        "bound": bound,
        "images": {row.service: row.image for row in facts},
        "references": {row.service: row.reference for row in facts},
    }
    return json.dumps(record, indent=2) + "\n"


def _publish(content_from: Path | str, destination: Path) -> None:
    """Put a file in place by renaming a complete copy over it: readers never see half."""
    REPORTS.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=destination.parent, prefix=f".{destination.name}.")
    with os.fdopen(descriptor, "w") as handle:
        if isinstance(content_from, Path):
            with content_from.open() as source:
                shutil.copyfileobj(source, handle)
        else:
            handle.write(content_from)
    os.replace(temporary, destination)


def publish(
    environment_name: str,
    stack: Stack,
    run_junit: Path,
    run_facts: Path,
    run: ChecksRun,
    bound: dict,
) -> tuple[Path, Judgement]:
    """reports/verify-<env>.{xml,md,json} from this run's own files; the Markdown is also
    appended to $GITHUB_STEP_SUMMARY when it is set. Returns the Markdown's path and the
    verdict."""
    checks = read_junit(run_junit)
    judgement = judge(checks, run)
    facts = container_facts(stack, read_facts(run_facts))
    text = render_summary(environment_name, facts, checks, judgement)
    if run_junit.is_file():
        _publish(run_junit, junit_path(environment_name))
    path = markdown_path(environment_name)
    _publish(text, path)
    finished = datetime.now(UTC).isoformat(timespec="seconds")
    _publish(
        render_record(environment_name, facts, judgement, run, bound, finished),
        record_path(environment_name),
    )
    step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if step_summary:
        with open(step_summary, "a") as handle:
            handle.write(text)
    return path, judgement
