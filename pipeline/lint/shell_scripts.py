"""Shell scripts: shellcheck, every severity, on the installer, the CI entry point and the
image entrypoints."""

from __future__ import annotations

import re
from pathlib import Path

from pipeline.environments import ROOT
from pipeline.lint.common import TOOL_TIMEOUT_SECONDS, Finding, find_tool, missing_tool
from pipeline.process import run

SCRIPT_PATTERNS = ("scripts/*.sh", ".ci/run", "docker/*.sh", "docker/base-images/*/*.sh")
SHELLCHECK_LINE = re.compile(r"^(?P<path>.+?):(?P<line>\d+):\d+: (?P<level>\w+): (?P<message>.*)$")


def check_shell_scripts(root: Path = ROOT) -> list[Finding]:
    """shellcheck (every severity) on the installer, CI entry point and image entrypoints."""
    scripts = sorted(
        path.relative_to(root).as_posix()
        for pattern in SCRIPT_PATTERNS
        for path in root.glob(pattern)
    )
    if not scripts:
        return []
    shellcheck = find_tool("shellcheck")
    if shellcheck is None:
        return [missing_tool("shellcheck", scripts[0])]
    result = run(
        [shellcheck, "--format", "gcc", "--severity", "style", *scripts],
        cwd=root,
        timeout=TOOL_TIMEOUT_SECONDS,
    )
    findings = []
    for line in result.stdout.splitlines():
        match = SHELLCHECK_LINE.match(line)
        if match:
            findings.append(
                Finding(match["path"], int(match["line"]), f"{match['message']} (shellcheck)")
            )
    return findings
