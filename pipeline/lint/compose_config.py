"""Compose config: `docker compose config` for every environment with its env file or
template, and the unfilled prod template must be refused (its empty secrets fail fast).

This is the one check that needs the compose plugin; without it the check says so and
skips.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from pipeline.envfiles import read_entries
from pipeline.environments import ENVIRONMENTS, ROOT, Environment
from pipeline.lint.common import (
    TOOL_TIMEOUT_SECONDS,
    Finding,
    compose_files,
    env_source,
    interpolations,
    one_line,
    read_text,
    repo_relative,
)
from pipeline.process import run
from pipeline.yaml_lines import yaml_error_line, yaml_line

COMPOSE_WARNING = re.compile(r'level=warn(?:ing)?\s+msg="(?P<message>(?:[^"\\]|\\.)*)"')


def check_compose_config(root: Path = ROOT) -> list[Finding]:
    """`docker compose config --quiet` for every environment with its env file or template,
    and the raw prod template must be refused (its empty secrets fail fast)."""
    command = compose_command()
    version = None
    if command is not None:
        try:
            version = run([*command, "version"], cwd=root, timeout=TOOL_TIMEOUT_SECONDS)
        except (OSError, subprocess.TimeoutExpired):
            version = None
    if command is None or version is None or version.returncode != 0:
        reason = one_line(version.stderr) if version is not None else "docker is not on PATH"
        return [
            Finding(
                "compose",
                1,
                f"skipped `docker compose config` for every environment: docker compose does "
                f"not run ({reason}); install the compose plugin",
                "warning",
            )
        ]

    clean = compose_environment(root)
    findings: list[Finding] = []
    for environment in ENVIRONMENTS.values():
        compose_relative = repo_relative(environment.compose_file)
        compose_file = root / compose_relative
        env_file = env_source(environment, root)
        # A missing compose file or env file is the env files check's finding.
        if not compose_file.is_file() or env_file is None or not env_file.is_file():
            continue
        text = read_text(compose_file)
        if environment.env_file_origin != "operator":
            result = _compose_config(command, compose_file, env_file, root, clean)
            findings += _compose_findings(result, compose_relative, text, root)
            continue

        with tempfile.TemporaryDirectory(prefix="dashtam-lint-") as directory:
            filled = filled_template(env_file, Path(directory))
            result = _compose_config(command, compose_file, filled, root, clean)
            findings += _compose_findings(result, compose_relative, text, root)
        raw = _compose_config(command, compose_file, env_file, root, clean)
        findings += _fail_fast_findings(raw, env_file.relative_to(root).as_posix(), environment)
    return findings


def compose_command() -> list[str] | None:
    """`docker compose`, or None when there is no docker CLI on PATH."""
    docker = shutil.which("docker")
    return [docker, "compose"] if docker else None


def _placeholder(name: str) -> str:
    """A dummy value of the right shape: a path mounts as a bind, a port is a number."""
    if name.endswith("_PORT"):
        return "1"
    if name.endswith(("_DIR", "_FILE", "_PATH")):
        return "./lint-placeholder"
    return "lint-placeholder"


def filled_template(template: Path, directory: Path) -> Path:
    """A copy of the prod template with every empty placeholder given a dummy value."""
    lines = read_text(template).splitlines()
    for entry in read_entries(template):
        if not entry.value:
            lines[entry.line - 1] = f"{entry.name}={_placeholder(entry.name)}"
    filled = directory / f"{template.name}.filled"
    filled.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return filled


def compose_environment(root: Path) -> dict[str, str]:
    """This process's environment without any variable a compose file interpolates: a value
    exported in the shell would override the env file and hide a missing one."""
    interpolated = {
        interpolation.name
        for compose_file in compose_files(root)
        for interpolation in interpolations(read_text(compose_file))
    }
    return {name: value for name, value in os.environ.items() if name not in interpolated}


def _compose_config(
    command: list[str], compose_file: Path, env_file: Path, root: Path, clean: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    return run(
        [*command, "-f", str(compose_file), "--env-file", str(env_file), "config", "--quiet"],
        cwd=root,
        env=clean,
        timeout=TOOL_TIMEOUT_SECONDS,
    )


def _compose_error_line(text: str, message: str) -> int:
    """Where in the compose file a `docker compose config` error points."""
    stated = re.search(r"\bline (\d+)\b", message)
    if stated and "yaml:" in message:
        # Compose's YAML parser names the line where the enclosing block starts; PyYAML (and
        # so yamllint) names the line at fault.
        at_fault = yaml_error_line(text)
        return at_fault if at_fault > 1 else int(stated[1])
    if stated:
        return int(stated[1])
    missing = re.search(r'required variable (\w+)|"(\w+)" variable is not set', message)
    if missing:
        name = missing[1] or missing[2]
        for number, line in enumerate(text.splitlines(), start=1):
            if re.search(r"\$\{?" + name + r"\b", line):
                return number
    dotted = re.search(r"\bservices\.[\w.-]+", message)
    if dotted:
        route = [part for part in dotted[0].rstrip(".").split(".") if part]
        return yaml_line(text, route) or 1
    service = re.search(r'\bservice "?([\w.-]+)"?', message)
    if service:
        return yaml_line(text, ["services", service[1]]) or 1
    return 1


def _compose_findings(
    result: subprocess.CompletedProcess[str], compose_relative: str, text: str, root: Path
) -> list[Finding]:
    """Findings from one `config` run: its error, and its warnings (unset variables...)."""
    findings: list[Finding] = []
    error_lines = []
    for output_line in result.stderr.replace(f"{root}/", "").splitlines():
        warning = COMPOSE_WARNING.search(output_line)
        if warning:
            message = warning["message"].replace('\\"', '"')
            findings.append(
                Finding(
                    compose_relative,
                    _compose_error_line(text, message),
                    f"{message} (docker compose config)",
                    "warning",
                )
            )
        elif output_line.strip():
            error_lines.append(output_line)
    if result.returncode != 0:
        message = one_line("\n".join(error_lines)) or f"exited {result.returncode}"
        required = re.search(r"required variable (\w+)", message)
        if required:
            # Compose may warn that the same variable "is not set" at its other uses first
            # (in map order, so only sometimes): the error already names that fault.
            unset = f'"{required[1]}" variable is not set'
            findings = [finding for finding in findings if unset not in finding.message]
        findings.append(
            Finding(
                compose_relative,
                _compose_error_line(text, message),
                f"{message} (docker compose config)",
            )
        )
    return findings


def _fail_fast_findings(
    raw: subprocess.CompletedProcess[str], template_relative: str, environment: Environment
) -> list[Finding]:
    """The unfilled operator template must stop compose on a required variable. Compose
    interpolates before it validates, so any other failure (but malformed YAML) means the
    unfilled template got through interpolation."""
    if "required variable" in raw.stderr:
        return []
    if raw.returncode != 0 and "yaml:" in raw.stderr:
        return []  # the filled run and yamllint report it
    compose_relative = repo_relative(environment.compose_file)
    outcome = (
        "accepts it"
        if raw.returncode == 0
        else f"gets past interpolation with it (then fails on: {one_line(raw.stderr, 160)})"
    )
    return [
        Finding(
            template_relative,
            1,
            f"unfilled, this template does not fail fast: `docker compose config` {outcome}; "
            f"leave every secret empty here and require it in {compose_relative} with "
            "${VAR:?set it in env/.env." + environment.name + "}",
        )
    ]
