"""Dockerfiles: hadolint with the repo's .hadolint.yaml on docker/Dockerfile and
docker/base-images/*/Dockerfile, reporting what reaches the file's failure threshold."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import yaml

from pipeline.base_images import BASE_IMAGES_DIRECTORY
from pipeline.environments import DOCKERFILE, ROOT
from pipeline.lint.common import (
    TOOL_TIMEOUT_SECONDS,
    Finding,
    find_tool,
    missing_tool,
    one_line,
    read_text,
    repo_relative,
)
from pipeline.process import run
from pipeline.yaml_lines import yaml_error_line

# hadolint's levels, most severe first: a threshold fails on its level and every one above.
HADOLINT_LEVELS = ("error", "warning", "info", "style")


def check_dockerfiles(root: Path = ROOT) -> list[Finding]:
    """hadolint with the repo's .hadolint.yaml; findings at or above its failure threshold."""
    main = repo_relative(DOCKERFILE)
    if not (root / main).is_file():
        return [Finding(main, 1, "missing: the pipeline builds every image from this file")]
    dockerfiles = [main] + [
        path.relative_to(root).as_posix()
        for path in sorted((root / repo_relative(BASE_IMAGES_DIRECTORY)).glob("*/Dockerfile"))
    ]
    hadolint = find_tool("hadolint")
    if hadolint is None:
        return [missing_tool("hadolint", main)]

    options, threshold, findings = _configuration(root)
    if options is None:
        return findings
    result = run(
        [hadolint, "--format", "json", "--no-color", *options, *dockerfiles],
        cwd=root,
        timeout=TOOL_TIMEOUT_SECONDS,
    )
    return findings + _hadolint_findings(result, main, threshold)


def _configuration(root: Path) -> tuple[list[str] | None, str, list[Finding]]:
    """(hadolint's config options, failure threshold, findings about the config file); the
    options are None when the config cannot be read, so hadolint cannot run."""
    config = root / ".hadolint.yaml"
    if not config.is_file():
        missing = Finding(
            ".hadolint.yaml",
            1,
            "missing; linted with hadolint's defaults and failure threshold warning",
            "warning",
        )
        return ["--failure-threshold", "warning"], "warning", [missing]
    try:
        settings = yaml.safe_load(read_text(config)) or {}
    except yaml.YAMLError:
        line = yaml_error_line(read_text(config))
        invalid = Finding(".hadolint.yaml", line, "not valid YAML; fix it so hadolint can run")
        return None, "", [invalid]
    return ["--config", str(config)], str(settings.get("failure-threshold", "info")), []


def _hadolint_findings(
    result: subprocess.CompletedProcess[str], main: str, threshold: str
) -> list[Finding]:
    """hadolint's JSON report as findings, keeping the levels the threshold fails on."""
    # `ignore` and `none` thresholds fail on nothing.
    failing_levels = (
        HADOLINT_LEVELS[: HADOLINT_LEVELS.index(threshold) + 1]
        if threshold in HADOLINT_LEVELS
        else ()
    )
    try:
        results = json.loads(result.stdout or "[]")
    except json.JSONDecodeError:
        output = one_line(result.stderr or result.stdout)
        return [Finding(main, 1, f"hadolint failed: {output}")]
    return [
        Finding(
            str(item.get("file", main)).removeprefix("./"),
            int(item.get("line") or 1),
            f"{one_line(item.get('message', ''))} (hadolint {item.get('code', '?')})",
        )
        for item in results
        if item.get("level") in failing_levels
    ]
