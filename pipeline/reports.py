"""The verify report: per container facts and each check's result, as Markdown."""

from __future__ import annotations

import os
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from pathlib import Path

from python_on_whales import docker
from python_on_whales.exceptions import DockerException

from pipeline.environments import REPORTS
from pipeline.inspection import (
    LISTENING_SCRIPT,
    PROCESSES_SCRIPT,
    parse_listening_ports,
    parse_processes,
)
from pipeline.stack import Stack


@dataclass(frozen=True)
class ContainerFacts:
    service: str
    user: str
    health: str
    listening: str
    memory: str


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


def _exec(container, script: str) -> str:
    try:
        return docker.container.execute(container, ["sh", "-c", script])
    except DockerException:
        return ""


def container_facts(stack: Stack) -> list[ContainerFacts]:
    containers = stack.containers()
    memory_by_name = {}
    try:
        for stats in docker.container.stats(containers):
            memory_by_name[stats.container_name] = (
                f"{stats.memory_used / 2**20:.0f} MiB / {stats.memory_limit / 2**20:.0f} MiB"
            )
    except DockerException:
        pass
    facts = []
    for container in sorted(containers, key=lambda c: c.name):
        service = container.config.labels.get("com.docker.compose.service", container.name)
        processes = parse_processes(_exec(container, PROCESSES_SCRIPT))
        pid1 = next((p for p in processes if p.pid == 1), None)
        state = container.state
        facts.append(
            ContainerFacts(
                service=service,
                user=f"{pid1.uid}:{pid1.gid} ({pid1.name})" if pid1 else "unknown",
                health=(state.health.status if state.health else state.status) or "unknown",
                listening=", ".join(
                    str(p)
                    for p in sorted(parse_listening_ports(_exec(container, LISTENING_SCRIPT)))
                ),
                memory=memory_by_name.get(container.name, "n/a"),
            )
        )
    return facts


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
                    (element.get("message") or "").splitlines()[0][:200]
                    if element.get("message")
                    else ""
                )
                break
        results.append(
            CheckResult(case.get("name", "?"), outcome, float(case.get("time", 0) or 0), message)
        )
    return results


def render_summary(
    environment_name: str, facts: list[ContainerFacts], checks: list[CheckResult]
) -> str:
    passed = sum(check.outcome == "passed" for check in checks)
    failed = [check for check in checks if check.outcome == "failed"]
    skipped = sum(check.outcome == "skipped" for check in checks)
    verdict = "PASS" if checks and not failed and not skipped else "FAIL"
    lines = [
        f"## verify({environment_name}): {verdict}",
        "",
        f"{passed} passed, {len(failed)} failed, {skipped} skipped.",
        "",
        "| service | user (PID 1) | health | listening TCP | memory / limit |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {f.service} | {f.user} | {f.health} | {f.listening} | {f.memory} |" for f in facts
    ]
    lines += ["", "| check | result | seconds |", "|---|---|---:|"]
    for check in checks:
        mark = {"passed": "pass", "failed": "**FAIL**", "skipped": "skip"}[check.outcome]
        detail = f" — {check.message}" if check.message else ""
        lines.append(f"| `{check.name}` | {mark}{detail} | {check.seconds:.2f} |")
    return "\n".join(lines) + "\n"


def write_summary(environment_name: str, stack: Stack) -> Path:
    """reports/verify-<env>.md, also appended to $GITHUB_STEP_SUMMARY when it is set."""
    REPORTS.mkdir(parents=True, exist_ok=True)
    text = render_summary(
        environment_name, container_facts(stack), read_junit(junit_path(environment_name))
    )
    path = markdown_path(environment_name)
    path.write_text(text)
    step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if step_summary:
        with open(step_summary, "a") as handle:
            handle.write(text)
    return path
