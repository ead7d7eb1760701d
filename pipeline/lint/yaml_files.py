"""YAML: yamllint with the repo's .yamllint on compose/ and .github/, syntax errors included."""

from __future__ import annotations

import re
from pathlib import Path

from pipeline.environments import ROOT
from pipeline.lint.common import (
    TOOL_TIMEOUT_SECONDS,
    Finding,
    find_tool,
    missing_tool,
    one_line,
)
from pipeline.process import run

YAMLLINT_LINE = re.compile(
    r"^(?P<path>.+?):(?P<line>\d+):(?P<column>\d+): \[(?P<level>error|warning)\] (?P<message>.*)$"
)


def check_yaml(root: Path = ROOT) -> list[Finding]:
    """yamllint with the repo's .yamllint on compose/ and .github/ (syntax errors included)."""
    targets = [folder for folder in ("compose", ".github") if (root / folder).is_dir()]
    if not targets:
        return []
    yamllint = find_tool("yamllint")
    if yamllint is None:
        return [missing_tool("yamllint", targets[0])]

    findings: list[Finding] = []
    if (root / ".yamllint").is_file():
        configuration = ["-c", ".yamllint"]
    else:
        configuration = ["-d", "relaxed"]
        findings.append(
            Finding(".yamllint", 1, "missing; linted with yamllint's relaxed preset", "warning")
        )
    result = run(
        [yamllint, *configuration, "-f", "parsable", *targets],
        cwd=root,
        timeout=TOOL_TIMEOUT_SECONDS,
    )
    problems = 0
    for output_line in result.stdout.splitlines():
        match = YAMLLINT_LINE.match(output_line)
        if match is None:
            continue
        problems += 1
        findings.append(
            Finding(
                match["path"].removeprefix("./"),
                int(match["line"]),
                f"{match['message']} (yamllint)",
                "error" if match["level"] == "error" else "warning",
            )
        )
    # yamllint exits 1 on an error and 2 on a warning in strict mode; 1 with no problem
    # printed means it failed to run.
    if result.returncode not in (0, 1, 2) or (result.returncode == 1 and problems == 0):
        findings.append(
            Finding(targets[0], 1, f"yamllint failed: {one_line(result.stderr or result.stdout)}")
        )
    return findings
