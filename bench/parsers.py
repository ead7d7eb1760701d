"""Reading what the tools print: BuildKit's plain progress, Docker timestamps, goss's JSON,
`dpkg -S`'s owners.

Pure: every input is recorded text.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

_STEP_HEADER = re.compile(r"^#(?P<id>\d+) \[(?P<label>[^\]]+)\] (?P<instruction>.+)$")
_STEP_STATUS = re.compile(r"^#(?P<id>\d+) (?P<status>CACHED|DONE (?P<seconds>[\d.]+)s|ERROR\b.*)$")
# "builder 2/4", or under bake "<target> builder 2/4" (a shared step is reported once).
_STAGE_LABEL = re.compile(r"^(?:[\w.-]+ )?(?P<stage>[\w.-]+) (?P<index>\d+)/(?P<count>\d+)$")


@dataclass(frozen=True)
class BuildStep:
    """One Dockerfile instruction as BuildKit reported it: cached, ran or error."""

    label: str  # "builder 2/4"
    instruction: str
    status: str
    seconds: float | None = None

    @property
    def name(self) -> str:
        return f"[{self.label}] {self.instruction}"


def parse_build_steps(progress: str) -> list[BuildStep]:
    """The Dockerfile steps in `--progress=plain` output, in BuildKit's order.

    `[internal]` steps (context, metadata) and FROM lines are left out: they are not work the
    Dockerfile asks for.
    """
    headers: dict[int, tuple[str, str]] = {}
    statuses: dict[int, tuple[str, float | None]] = {}
    for line in progress.splitlines():
        line = line.rstrip()
        header = _STEP_HEADER.match(line)
        if header:
            step_id = int(header["id"])
            label = _STAGE_LABEL.match(header["label"])
            if label and step_id not in headers:
                headers[step_id] = (
                    f"{label['stage']} {label['index']}/{label['count']}",
                    header["instruction"].strip(),
                )
            continue
        status = _STEP_STATUS.match(line)
        if status:
            text = status["status"]
            kind = "cached" if text == "CACHED" else "ran" if text.startswith("DONE") else "error"
            seconds = float(status["seconds"]) if status["seconds"] else None
            statuses[int(status["id"])] = (kind, seconds)
    steps = []
    for step_id in sorted(headers):
        label, instruction = headers[step_id]
        if instruction.startswith("FROM "):
            continue
        kind, seconds = statuses.get(step_id, ("unknown", None))
        steps.append(BuildStep(label, instruction, kind, seconds))
    return steps


def split_cached(step_lists: Sequence[Sequence[BuildStep]]) -> tuple[list[str], list[str]]:
    """(steps that ran, steps that came back cached) over several stage builds, by name.

    A step the first stage build ran shows up cached in the next ones: it counts as ran.
    """
    ran: dict[str, None] = {}
    seen: dict[str, None] = {}
    for steps in step_lists:
        for step in steps:
            seen[step.name] = None
            if step.status != "cached":
                ran[step.name] = None
    return list(ran), [name for name in seen if name not in ran]


_DOCKER_TIME = re.compile(
    r"^(?P<base>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(?P<fraction>\d+))?(?P<zone>Z|[+-]\d\d:\d\d)$"
)


def parse_docker_time(text: str) -> float:
    """A Docker RFC 3339 timestamp (nanoseconds, Z or offset) as Unix seconds."""
    match = _DOCKER_TIME.match(text.strip())
    if not match:
        raise ValueError(f"not a Docker timestamp: {text!r}")
    zone = "+00:00" if match["zone"] == "Z" else match["zone"]
    moment = datetime.fromisoformat(f"{match['base']}{zone}")
    # datetime keeps microseconds; Docker writes nanoseconds.
    fraction = float(f"0.{match['fraction']}") if match["fraction"] else 0.0
    return moment.timestamp() + fraction


def first_answer(
    polled: float | None, probe: tuple[float, float] | None, unanswered: float | None
) -> float | None:
    """When the app first answered: our poll's moment, or, when Docker's first passing probe
    (start, end) began before it, a moment within that probe — no earlier than its start nor
    than the start of our last poll that got no answer (a probe that waits for the port
    begins long before the app answers it), and no later than its end."""
    if probe is None or (polled is not None and polled <= probe[0]):
        return polled
    start, end = probe
    return min(max(start, unanswered or start), end)


def first_healthy_probe(
    health_log: Sequence[dict], after: float | None = None
) -> tuple[float, float] | None:
    """(start, end) of the first passing healthcheck probe: when Docker turned healthy.

    `after`: only probes that started then or later count (a restarted container keeps the
    health log of its previous run).
    """
    for probe in health_log:
        if probe.get("ExitCode") == 0 and probe.get("Start") and probe.get("End"):
            start, end = parse_docker_time(probe["Start"]), parse_docker_time(probe["End"])
            if after is None or start >= after:
                return start, end
    return None


def goss_summary(output: str) -> dict:
    """Counts and failures from `goss validate --format json`."""
    try:
        document = json.loads(output)
    except json.JSONDecodeError:
        return {"tests": 0, "failed": 0, "failures": [f"unreadable goss output: {output[-200:]!r}"]}
    results = document.get("results") or []
    failures = [
        f"{result.get('resource-type')} {result.get('resource-id')}: {result.get('property')}"
        for result in results
        if not result.get("successful")
    ]
    summary = document.get("summary") or {}
    return {
        "tests": int(summary.get("test-count", len(results))),
        "failed": int(summary.get("failed-count", len(failures))),
        "failures": failures,
    }


def dpkg_owners(output: str) -> set[str]:
    """The packages `dpkg -S <path>…` names as owners (architecture qualifiers dropped).

    Its lines read `package[:arch][, package…]: /path`; diversion lines and dpkg's own
    complaints (on stderr, or without a path) are not ownership.
    """
    owners = set()
    for line in output.splitlines():
        packages, separator, path = line.partition(": ")
        if not separator or not path.startswith("/") or line.startswith("diversion by "):
            continue
        owners |= {name.strip().split(":")[0] for name in packages.split(",") if name.strip()}
    return owners
