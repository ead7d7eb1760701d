"""GitHub workflows: check-jsonschema against GitHub's workflow schema (and dependabot.yml
against its own), and zizmor's offline security audits of the workflows."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pipeline.environments import ROOT
from pipeline.lint.common import (
    TOOL_TIMEOUT_SECONDS,
    Finding,
    find_tool,
    json_path_route,
    missing_tool,
    one_line,
    read_text,
)
from pipeline.process import run
from pipeline.yaml_lines import yaml_error_line, yaml_line


def check_workflows(root: Path = ROOT) -> list[Finding]:
    """Workflows against GitHub's schema and zizmor's offline audits; dependabot.yml against
    its schema. No workflow files: nothing to check."""
    workflows_folder = root / ".github" / "workflows"
    workflows = sorted(
        path.relative_to(root).as_posix()
        for pattern in ("*.yml", "*.yaml")
        for path in workflows_folder.glob(pattern)
    )
    dependabot = [
        path.relative_to(root).as_posix()
        for path in (root / ".github" / "dependabot.yml", root / ".github" / "dependabot.yaml")
        if path.is_file()
    ]
    if not workflows and not dependabot:
        return []
    findings: list[Finding] = []
    check_jsonschema = find_tool("check-jsonschema")
    if check_jsonschema is None:
        findings.append(missing_tool("check-jsonschema", (workflows + dependabot)[0]))
    else:
        if workflows:
            findings += _schema_findings(
                check_jsonschema, "vendor.github-workflows", workflows, root
            )
        if dependabot:
            findings += _schema_findings(check_jsonschema, "vendor.dependabot", dependabot, root)
    if workflows:
        zizmor = find_tool("zizmor")
        if zizmor is None:
            findings.append(missing_tool("zizmor", workflows[0]))
        else:
            findings += _zizmor_findings(zizmor, root)
    return findings


def _schema_findings(
    check_jsonschema: str, schema: str, files: Sequence[str], root: Path
) -> list[Finding]:
    result = run(
        [check_jsonschema, "--builtin-schema", schema, "-o", "json", *files],
        cwd=root,
        timeout=TOOL_TIMEOUT_SECONDS,
    )
    try:
        report = json.loads(result.stdout)
    except json.JSONDecodeError:
        output = one_line(result.stderr or result.stdout)
        return [Finding(files[0], 1, f"check-jsonschema failed: {output}")]
    findings = []
    for error in report.get("errors", []):
        path = error["filename"].removeprefix("./")
        deepest = error.get("best_deep_match") or error
        line = yaml_line(read_text(root / path), json_path_route(deepest["path"])) or 1
        findings.append(
            Finding(
                path,
                line,
                f"{deepest['path']}: {one_line(deepest['message'], 200)} "
                f"(check-jsonschema {schema})",
            )
        )
    for error in report.get("parse_errors", []):
        path = error["filename"].removeprefix("./")
        findings.append(
            Finding(
                path,
                yaml_error_line(read_text(root / path)),
                f"not valid YAML, so not checked against {schema} (check-jsonschema)",
            )
        )
    return findings


def _zizmor_location(finding: dict[str, Any]) -> tuple[str, int, str]:
    """(path, line, annotation) of a zizmor finding's primary location."""
    locations = finding.get("locations") or [{}]
    primary = next(
        (
            location
            for location in locations
            if location.get("symbolic", {}).get("kind") == "Primary"
        ),
        locations[0],
    )
    symbolic = primary.get("symbolic", {})
    key = symbolic.get("key", {}).get("Local", {})
    path = key.get("verbatim_path") or key.get("given_path") or key.get("prefix") or "?"
    row = primary.get("concrete", {}).get("location", {}).get("start_point", {}).get("row", 0)
    return str(path).removeprefix("./"), int(row) + 1, str(symbolic.get("annotation", ""))


def _zizmor_findings(zizmor: str, root: Path) -> list[Finding]:
    result = run(
        [zizmor, "--offline", "--format", "json", ".github/workflows"],
        cwd=root,
        timeout=TOOL_TIMEOUT_SECONDS,
    )
    try:
        results = json.loads(result.stdout)
    except json.JSONDecodeError:
        output = one_line(result.stderr or result.stdout)
        return [Finding(".github/workflows", 1, f"zizmor failed: {output}")]
    findings = []
    for item in results:
        if item.get("ignored"):
            continue
        path, line, annotation = _zizmor_location(item)
        severity = item.get("determinations", {}).get("severity", "Unknown")
        findings.append(
            Finding(
                path,
                line,
                f"{item.get('desc', '')}: {annotation} "
                f"(zizmor {item.get('ident', '?')}, {severity.lower()} severity, "
                f"{item.get('url', '')})",
                "warning" if severity in ("Informational", "Unknown") else "error",
            )
        )
    return findings
