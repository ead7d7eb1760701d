"""Lint checks for the Docker and Compose infrastructure, each a function returning findings.

Every check takes the repository root (default: this checkout) so tests can point it at a
temporary copy, and returns `Finding`s that print as `path:line: message`. The nox `lint`
session runs them all with `run_all()` and turns them into an exit code with `report()`.

  check_dockerfiles          hadolint on docker/Dockerfile and docker/base-images/*/Dockerfile
  check_yaml                 yamllint on compose/ and .github/
  check_compose_config       `docker compose config` for every environment (needs the plugin)
  check_workflows            check-jsonschema and zizmor on .github/
  check_env_files            compose variables against the env files and templates
  check_tracked_secrets      what git tracks under env/, certs/ and as *.key / *.pem
  check_container_security   no privileged, host-namespace or docker.sock services
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from pipeline.environments import DOCKERFILE, ENVIRONMENTS, ROOT, Environment
from pipeline.image_sources import BASE_IMAGES

Severity = Literal["error", "warning"]

# A linter that hangs must not hang the session; every one of them answers in seconds.
TOOL_TIMEOUT_SECONDS = 300

# Every variable a compose file interpolates starts with one of these prefixes, or is one of
# the base image variables the pipeline overrides in air-gapped mode.
VARIABLE_PREFIXES = (
    "POSTGRES_",
    "REDIS_",
    "APP_",
    "CALLBACK_",
    "TEST_",
    "DEV_",
    "TLS_",
    "DASHTAM_",
)
IMAGE_VARIABLES = tuple(image.variable for image in BASE_IMAGES)

# Variables whose values are secrets: never real in a tracked file, empty in the prod template.
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|KEY", re.IGNORECASE)
# Words that mark a value as an obvious placeholder (compared with separators removed).
PLACEHOLDER_WORDS = (
    "changeme",
    "cionly",
    "notasecret",
    "example",
    "placeholder",
    "dummy",
    "fake",
    "insecure",
    "devonly",
    "testonly",
    "replaceme",
)
PRIVATE_KEY_BLOCK = re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----")
AWS_ACCESS_KEY = re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b")

# Host namespaces a service must never join.
HOST_NAMESPACE_KEYS = ("network_mode", "pid", "ipc", "userns_mode", "uts")
FORBIDDEN_CAPABILITIES = ("SYS_ADMIN", "ALL")
UNCONFINED_SECURITY_OPTIONS = (
    "seccomp:unconfined",
    "seccomp=unconfined",
    "apparmor:unconfined",
    "apparmor=unconfined",
)

HADOLINT_LEVELS = ("error", "warning", "info", "style")


@dataclass(frozen=True)
class Finding:
    """One problem at one place: `path` is relative to the repository root, `line` 1-based."""

    path: str
    line: int
    message: str
    severity: Severity = "error"

    def __str__(self) -> str:
        label = "warning: " if self.severity == "warning" else ""
        return f"{self.path}:{self.line}: {label}{self.message}"


# ---------------------------------------------------------------- helpers


def _relative(path: Path) -> str:
    """A path of this checkout (from the environments model) as a repo-relative string."""
    return path.relative_to(ROOT).as_posix()


def _tool(name: str) -> str | None:
    """The linter beside the running interpreter (the pipeline venv), else the one on PATH."""
    beside_python = Path(sys.executable).parent / name
    if beside_python.is_file():
        return str(beside_python)
    return shutil.which(name)


def _missing_tool(name: str, path: str) -> Finding:
    return Finding(
        path,
        1,
        f"{name} is not installed; install the pipeline tools with `uv sync --group pipeline`",
    )


def _run(
    arguments: Sequence[str], root: Path, environment: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(arguments),
        cwd=root,
        capture_output=True,
        text=True,
        timeout=TOOL_TIMEOUT_SECONDS,
        env=environment,
        check=False,
    )


def _one_line(text: str, limit: int = 300) -> str:
    """Multi-line tool output as one line, shortened when it runs on."""
    joined = "; ".join(part.strip() for part in text.splitlines() if part.strip())
    return joined if len(joined) <= limit else joined[: limit - 1] + "…"


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace")


def _yaml_line(text: str, route: Sequence[str | int]) -> int | None:
    """The 1-based line of the deepest node of `route` found in the YAML text.

    Follows merge keys (`<<: *anchor`), so a key a service inherits from an anchor resolves
    to the line inside the anchor where it is written. None when nothing of the route is found.
    """
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return None
    line = None
    for part in route:
        found = _yaml_child(node, part)
        if found is None:
            break
        marker, node = found
        line = marker.start_mark.line + 1
    return line


def _yaml_child(node: yaml.Node | None, part: str | int) -> tuple[yaml.Node, yaml.Node] | None:
    """(node whose line to report, child node) for one step of a route."""
    if isinstance(node, yaml.SequenceNode) and isinstance(part, int):
        if 0 <= part < len(node.value):
            return node.value[part], node.value[part]
        return None
    if not isinstance(node, yaml.MappingNode):
        return None
    merged: list[yaml.Node] = []
    for key, value in node.value:
        if key.tag == "tag:yaml.org,2002:merge":
            merged.extend(value.value if isinstance(value, yaml.SequenceNode) else [value])
        elif str(key.value) == str(part):
            return key, value
    for parent in merged:
        found = _yaml_child(parent, part)
        if found is not None:
            return found
    return None


def _yaml_error_line(text: str) -> int:
    """The line PyYAML stops at in malformed YAML, else 1."""
    try:
        yaml.safe_load(text)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        if mark is not None:
            return mark.line + 1
    except yaml.YAMLError:
        pass
    return 1


def _json_path_route(path: str) -> list[str | int]:
    """`$.jobs.build.steps[2].run` (check-jsonschema's error paths) as a route."""
    route: list[str | int] = []
    for match in re.finditer(
        r"\.([^.\[\]]+)|\[(\d+)\]|\[[\"'](.+?)[\"']\]", path.removeprefix("$")
    ):
        name, index, quoted = match.groups()
        route.append(int(index) if index is not None else (name or quoted))
    return route


def _compose_files(root: Path) -> list[Path]:
    directory = root / "compose"
    return sorted(directory.glob("*.yml")) + sorted(directory.glob("*.yaml"))


# ---------------------------------------------------------------- 1. Dockerfiles


def check_dockerfiles(root: Path = ROOT) -> list[Finding]:
    """hadolint with the repo's .hadolint.yaml; findings at or above its failure threshold."""
    main = _relative(DOCKERFILE)
    if not (root / main).is_file():
        return [Finding(main, 1, "missing: the pipeline builds every image from this file")]
    dockerfiles = [main] + [
        path.relative_to(root).as_posix()
        for path in sorted((root / "docker" / "base-images").glob("*/Dockerfile"))
    ]
    hadolint = _tool("hadolint")
    if hadolint is None:
        return [_missing_tool("hadolint", main)]

    findings: list[Finding] = []
    config = root / ".hadolint.yaml"
    threshold = "warning"
    arguments = [hadolint, "--format", "json", "--no-color"]
    if config.is_file():
        try:
            settings = yaml.safe_load(_read(config)) or {}
        except yaml.YAMLError:
            line = _yaml_error_line(_read(config))
            return [Finding(".hadolint.yaml", line, "not valid YAML; fix it so hadolint can run")]
        threshold = str(settings.get("failure-threshold", "info"))
        arguments += ["--config", str(config)]
    else:
        findings.append(
            Finding(
                ".hadolint.yaml",
                1,
                "missing; linted with hadolint's defaults and failure threshold warning",
                "warning",
            )
        )
        arguments += ["--failure-threshold", threshold]
    # `ignore` and `none` thresholds fail on nothing.
    failing_levels = (
        HADOLINT_LEVELS[: HADOLINT_LEVELS.index(threshold) + 1]
        if threshold in HADOLINT_LEVELS
        else ()
    )

    result = _run([*arguments, *dockerfiles], root)
    try:
        results = json.loads(result.stdout or "[]")
    except json.JSONDecodeError:
        output = _one_line(result.stderr or result.stdout)
        return [*findings, Finding(main, 1, f"hadolint failed: {output}")]
    for item in results:
        if item.get("level") not in failing_levels:
            continue
        findings.append(
            Finding(
                str(item.get("file", main)).removeprefix("./"),
                int(item.get("line") or 1),
                f"{_one_line(item.get('message', ''))} (hadolint {item.get('code', '?')})",
            )
        )
    return findings


# ---------------------------------------------------------------- 2. YAML


YAMLLINT_LINE = re.compile(
    r"^(?P<path>.+?):(?P<line>\d+):(?P<column>\d+): \[(?P<level>error|warning)\] (?P<message>.*)$"
)


def check_yaml(root: Path = ROOT) -> list[Finding]:
    """yamllint with the repo's .yamllint on compose/ and .github/ (syntax errors included)."""
    targets = [folder for folder in ("compose", ".github") if (root / folder).is_dir()]
    if not targets:
        return []
    yamllint = _tool("yamllint")
    if yamllint is None:
        return [_missing_tool("yamllint", targets[0])]

    findings: list[Finding] = []
    if (root / ".yamllint").is_file():
        configuration = ["-c", ".yamllint"]
    else:
        configuration = ["-d", "relaxed"]
        findings.append(
            Finding(".yamllint", 1, "missing; linted with yamllint's relaxed preset", "warning")
        )
    result = _run([yamllint, *configuration, "-f", "parsable", *targets], root)
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
    if result.returncode not in (0, 1, 2) or (result.returncode == 1 and problems == 0):
        findings.append(
            Finding(targets[0], 1, f"yamllint failed: {_one_line(result.stderr or result.stdout)}")
        )
    return findings


# ---------------------------------------------------------------- 3. docker compose config


COMPOSE_WARNING = re.compile(r'level=warn(?:ing)?\s+msg="(?P<message>(?:[^"\\]|\\.)*)"')


def _compose_command() -> list[str] | None:
    """`docker compose`, or None when there is no docker CLI on PATH."""
    docker = shutil.which("docker")
    return [docker, "compose"] if docker else None


def _env_source(environment: Environment, root: Path) -> Path | None:
    """The env file the checks read: the committed one, else the template (git-ignored files
    are the developer's or operator's own, so the checks stay the same on every machine)."""
    if environment.env_file_origin == "committed":
        return root / _relative(environment.env_file)
    if environment.template_file is None:
        return None
    return root / _relative(environment.template_file)


def _placeholder(name: str) -> str:
    """A dummy value of the right shape: a path mounts as a bind, a port is a number."""
    if name.endswith("_PORT"):
        return "1"
    if name.endswith(("_DIR", "_FILE", "_PATH")):
        return "./lint-placeholder"
    return "lint-placeholder"


def _filled_template(template: Path, directory: Path) -> Path:
    """A copy of the prod template with every empty placeholder given a dummy value."""
    lines = []
    for line in _read(template).splitlines():
        entry = re.match(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*$", line)
        lines.append(f"{entry[1]}={_placeholder(entry[1])}" if entry else line)
    filled = directory / f"{template.name}.filled"
    filled.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return filled


def _compose_environment(root: Path) -> dict[str, str]:
    """This process's environment without any variable a compose file interpolates: a value
    exported in the shell would override the env file and hide a missing one."""
    interpolated = {
        interpolation.name
        for compose_file in _compose_files(root)
        for interpolation in interpolations(_read(compose_file))
    }
    return {name: value for name, value in os.environ.items() if name not in interpolated}


def _compose_error_line(text: str, message: str) -> int:
    """Where in the compose file a `docker compose config` error points."""
    stated = re.search(r"\bline (\d+)\b", message)
    if stated and "yaml:" in message:
        # Compose's YAML parser names the line where the enclosing block starts; PyYAML (and
        # so yamllint) names the line at fault.
        at_fault = _yaml_error_line(text)
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
        return _yaml_line(text, route) or 1
    service = re.search(r'\bservice "?([\w.-]+)"?', message)
    if service:
        return _yaml_line(text, ["services", service[1]]) or 1
    return 1


def _compose_config(
    command: list[str], compose_file: Path, env_file: Path, root: Path, clean: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    return _run(
        [*command, "-f", str(compose_file), "--env-file", str(env_file), "config", "--quiet"],
        root,
        clean,
    )


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
        message = _one_line("\n".join(error_lines)) or f"exited {result.returncode}"
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
    compose_relative = _relative(environment.compose_file)
    outcome = (
        "accepts it"
        if raw.returncode == 0
        else f"gets past interpolation with it (then fails on: {_one_line(raw.stderr, 160)})"
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


def check_compose_config(root: Path = ROOT) -> list[Finding]:
    """`docker compose config --quiet` for every environment with its env file or template,
    and the raw prod template must be refused (its empty secrets fail fast)."""
    command = _compose_command()
    version = None
    if command is not None:
        try:
            version = _run([*command, "version"], root)
        except (OSError, subprocess.TimeoutExpired):
            version = None
    if version is None or version.returncode != 0:
        reason = _one_line(version.stderr) if version is not None else "docker is not on PATH"
        return [
            Finding(
                "compose",
                1,
                f"skipped `docker compose config` for every environment: docker compose does "
                f"not run ({reason}); install the compose plugin",
                "warning",
            )
        ]

    clean = _compose_environment(root)
    findings: list[Finding] = []
    for environment in ENVIRONMENTS.values():
        compose_relative = _relative(environment.compose_file)
        compose_file = root / compose_relative
        env_file = _env_source(environment, root)
        # A missing compose file or env file is check_env_files' finding.
        if not compose_file.is_file() or env_file is None or not env_file.is_file():
            continue
        text = _read(compose_file)
        if environment.env_file_origin != "operator":
            result = _compose_config(command, compose_file, env_file, root, clean)
            findings += _compose_findings(result, compose_relative, text, root)
            continue

        with tempfile.TemporaryDirectory(prefix="dashtam-lint-") as directory:
            filled = _filled_template(env_file, Path(directory))
            result = _compose_config(command, compose_file, filled, root, clean)
            findings += _compose_findings(result, compose_relative, text, root)
        raw = _compose_config(command, compose_file, env_file, root, clean)
        findings += _fail_fast_findings(raw, env_file.relative_to(root).as_posix(), environment)
    return findings


# ---------------------------------------------------------------- 4. GitHub workflows


def _schema_findings(
    check_jsonschema: str, schema: str, files: Sequence[str], root: Path
) -> list[Finding]:
    result = _run(
        [check_jsonschema, "--builtin-schema", schema, "-o", "json", *files],
        root,
    )
    try:
        report = json.loads(result.stdout)
    except json.JSONDecodeError:
        output = _one_line(result.stderr or result.stdout)
        return [Finding(files[0], 1, f"check-jsonschema failed: {output}")]
    findings = []
    for error in report.get("errors", []):
        path = error["filename"].removeprefix("./")
        deepest = error.get("best_deep_match") or error
        line = _yaml_line(_read(root / path), _json_path_route(deepest["path"])) or 1
        findings.append(
            Finding(
                path,
                line,
                f"{deepest['path']}: {_one_line(deepest['message'], 200)} "
                f"(check-jsonschema {schema})",
            )
        )
    for error in report.get("parse_errors", []):
        path = error["filename"].removeprefix("./")
        findings.append(
            Finding(
                path,
                _yaml_error_line(_read(root / path)),
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
    result = _run([zizmor, "--offline", "--format", "json", ".github/workflows"], root)
    try:
        results = json.loads(result.stdout)
    except json.JSONDecodeError:
        output = _one_line(result.stderr or result.stdout)
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
    check_jsonschema = _tool("check-jsonschema")
    if check_jsonschema is None:
        findings.append(_missing_tool("check-jsonschema", (workflows + dependabot)[0]))
    else:
        if workflows:
            findings += _schema_findings(
                check_jsonschema, "vendor.github-workflows", workflows, root
            )
        if dependabot:
            findings += _schema_findings(check_jsonschema, "vendor.dependabot", dependabot, root)
    if workflows:
        zizmor = _tool("zizmor")
        if zizmor is None:
            findings.append(_missing_tool("zizmor", workflows[0]))
        else:
            findings += _zizmor_findings(zizmor, root)
    return findings


# ---------------------------------------------------------------- 5. env files


@dataclass(frozen=True)
class Interpolation:
    """One `${VAR...}` or `$VAR` in a compose file."""

    name: str
    line: int
    required: bool  # no default: the env file must set it
    fail_fast: bool  # `${VAR:?message}`: unset or empty stops compose


@dataclass(frozen=True)
class EnvEntry:
    name: str
    value: str
    line: int


VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
DEFAULT_OPERATORS = (":-", "-", ":+", "+")
OPERATORS = (":-", ":?", ":+", "-", "?", "+")


def interpolations(text: str) -> list[Interpolation]:
    """Every variable compose interpolates in `text`; `$$` escapes and comment lines skipped."""
    found: list[Interpolation] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.lstrip().startswith("#"):
            found += _scan(line, number, inside_default=False)
    return found


def _scan(segment: str, number: int, inside_default: bool) -> list[Interpolation]:
    found: list[Interpolation] = []
    index = 0
    while index < len(segment):
        if segment.startswith("$$", index):
            index += 2
            continue
        if segment.startswith("${", index):
            name = VARIABLE_NAME.match(segment, index + 2)
            if name is None:
                index += 2
                continue
            cursor = name.end()
            operator = next((op for op in OPERATORS if segment.startswith(op, cursor)), None)
            cursor += len(operator or "")
            depth, end = 1, cursor
            while end < len(segment) and depth:
                depth += {"{": 1, "}": -1}.get(segment[end], 0)
                end += 1
            argument = segment[cursor : end - 1] if depth == 0 else segment[cursor:]
            found.append(
                Interpolation(
                    name[0],
                    number,
                    required=not inside_default and operator not in DEFAULT_OPERATORS,
                    fail_fast=operator == ":?",
                )
            )
            nested_default = inside_default or operator in DEFAULT_OPERATORS
            found += _scan(argument, number, nested_default)
            index = end
            continue
        if segment[index] == "$":
            name = VARIABLE_NAME.match(segment, index + 1)
            if name is not None:
                found.append(Interpolation(name[0], number, not inside_default, False))
                index = name.end()
                continue
        index += 1
    return found


def parse_env_file(path: Path) -> list[EnvEntry]:
    """`NAME=value` lines of an env file (comments, blanks and `export ` skipped)."""
    entries = []
    for number, line in enumerate(_read(path).splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        stripped = stripped.removeprefix("export ").lstrip()
        name, separator, value = stripped.partition("=")
        name = name.strip()
        if not VARIABLE_NAME.fullmatch(name):
            continue
        value = value.strip() if separator else ""
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        else:
            value = re.sub(r"\s+#.*$", "", value)
        entries.append(EnvEntry(name, value, number))
    return entries


def _follows_scheme(name: str) -> bool:
    return name.startswith(VARIABLE_PREFIXES) or name in IMAGE_VARIABLES


def _variant_key(name: str) -> str:
    """A name with case, environment prefixes, the PG/POSTGRES spelling and underscores
    folded away: two names with the same key mean the same thing spelled two ways."""
    folded = name.upper()
    folded = re.sub(r"^(?:TEST|DEV|CI|PROD)_", "", folded)
    folded = re.sub(r"^PG_?(?!.*POSTGRES)", "POSTGRES_", folded)
    return folded.replace("_", "")


def _is_secret_name(name: str) -> bool:
    """PASSWORD, SECRET, TOKEN or KEY in the name, but not a path to one (APP_TLS_KEY_FILE)."""
    return bool(SECRET_NAME.search(name)) and not name.endswith(("_FILE", "_DIR", "_PATH"))


def _looks_like_real_secret(value: str) -> bool:
    """Long, high-entropy, mixed letters and digits, and no placeholder word."""
    if len(value) < 16 or value.startswith(("/", "./", "../")):
        return False
    letters_only = re.sub(r"[^a-z]", "", value.lower())
    if any(word in letters_only for word in PLACEHOLDER_WORDS):
        return False
    classes = sum(bool(re.search(pattern, value)) for pattern in (r"[a-z]", r"[A-Z]", r"[0-9]"))
    counts = Counter(value)
    entropy = -sum(count / len(value) * math.log2(count / len(value)) for count in counts.values())
    return classes >= 2 and entropy >= 3.0


def _env_sources(root: Path) -> list[Path]:
    """The env files the naming checks read: the templates, the committed ones, and any
    git-ignored env file that exists on this machine."""
    sources: list[Path] = []
    for environment in ENVIRONMENTS.values():
        candidates = [environment.template_file, environment.env_file]
        for candidate in candidates:
            if candidate is None:
                continue
            path = root / _relative(candidate)
            if path.is_file() and path not in sources:
                sources.append(path)
    return sources


def _tracked_env_files() -> tuple[str, ...]:
    """The env files meant to be in git: the templates and the committed env files."""
    tracked: list[str] = []
    for environment in ENVIRONMENTS.values():
        if environment.template_file is not None:
            tracked.append(_relative(environment.template_file))
        if environment.env_file_origin == "committed":
            tracked.append(_relative(environment.env_file))
    return tuple(dict.fromkeys(tracked))


def check_env_files(root: Path = ROOT) -> list[Finding]:
    """Compose variables against the env files and templates: required ones set, every set
    one used, names in one scheme and spelled one way, no real secret in a tracked file."""
    findings: list[Finding] = []
    compose_texts = {
        path.relative_to(root).as_posix(): _read(path) for path in _compose_files(root)
    }
    used: dict[str, tuple[str, int]] = {}  # name -> first (compose file, line)
    for compose_relative, text in compose_texts.items():
        reported: set[str] = set()
        for interpolation in interpolations(text):
            used.setdefault(interpolation.name, (compose_relative, interpolation.line))
            if _follows_scheme(interpolation.name) or interpolation.name in reported:
                continue
            reported.add(interpolation.name)
            findings.append(
                Finding(
                    compose_relative,
                    interpolation.line,
                    f"{interpolation.name} does not follow the naming scheme: start it with "
                    f"one of {', '.join(VARIABLE_PREFIXES)} (or use an image variable: "
                    f"{', '.join(IMAGE_VARIABLES)})",
                )
            )

    for environment in ENVIRONMENTS.values():
        findings += _environment_findings(environment, root, compose_texts)

    findings += _unused_and_misspelled(root, used)
    findings += _secret_findings(root)
    return findings


def _environment_findings(
    environment: Environment, root: Path, compose_texts: dict[str, str]
) -> list[Finding]:
    """One environment's compose file against its env file (or template)."""
    compose_relative = _relative(environment.compose_file)
    if compose_relative not in compose_texts:
        return [
            Finding(
                compose_relative,
                1,
                f"missing: pipeline/environments.py declares the {environment.name} "
                "environment; add the file or drop the environment",
            )
        ]
    source = _env_source(environment, root)
    if source is None:
        return []
    source_relative = source.relative_to(root).as_posix()
    if not source.is_file():
        return [
            Finding(
                source_relative,
                1,
                f"missing: {compose_relative} is checked against it; restore it from git",
            )
        ]
    entries = {entry.name: entry for entry in parse_env_file(source)}
    operator_template = environment.env_file_origin == "operator"
    findings: list[Finding] = []
    seen: set[str] = set()
    uses = interpolations(compose_texts[compose_relative])
    for interpolation in uses:
        if not interpolation.required or interpolation.name in seen:
            continue
        seen.add(interpolation.name)
        entry = entries.get(interpolation.name)
        if entry is None:
            findings.append(
                Finding(
                    compose_relative,
                    interpolation.line,
                    f"{interpolation.name} has no default here and {source_relative} does not "
                    f"set it; add {interpolation.name}= to {source_relative} or give it a "
                    "default",
                )
            )
        elif not entry.value and not operator_template:
            findings.append(
                Finding(
                    source_relative,
                    entry.line,
                    f"{entry.name} is empty but {compose_relative}:{interpolation.line} needs "
                    "a value; set one",
                )
            )

    if operator_template:
        fail_fast = {use.name for use in uses if use.fail_fast}
        used_here = {use.name for use in uses}
        for entry in entries.values():
            if entry.value and _is_secret_name(entry.name):
                findings.append(
                    Finding(
                        source_relative,
                        entry.line,
                        f"{entry.name} has a value in the {environment.name} template; leave "
                        f"it empty ({entry.name}=) so a copy that was never filled in fails "
                        "fast",
                    )
                )
            elif not entry.value and entry.name in used_here and entry.name not in fail_fast:
                findings.append(
                    Finding(
                        source_relative,
                        entry.line,
                        f"{entry.name} is an empty placeholder but {compose_relative} never "
                        f"requires it; write ${{{entry.name}:?set it in "
                        f"env/.env.{environment.name}}} there so an unfilled copy fails fast",
                    )
                )
    return findings


def _unused_and_misspelled(root: Path, used: dict[str, tuple[str, int]]) -> list[Finding]:
    """Env file variables no compose file reads: a warning, or an error when a compose file
    reads the same name spelled another way (case, TEST_/DEV_ prefix, PG for POSTGRES)."""
    used_by_key: dict[str, str] = {}
    for name in used:
        used_by_key.setdefault(_variant_key(name), name)
    findings: list[Finding] = []
    for source in _env_sources(root):
        source_relative = source.relative_to(root).as_posix()
        first_line: dict[str, int] = {}
        for entry in parse_env_file(source):
            if entry.name in first_line:
                findings.append(
                    Finding(
                        source_relative,
                        entry.line,
                        f"{entry.name} is set twice (first on line {first_line[entry.name]}); "
                        "compose uses the last one: keep one",
                        "warning",
                    )
                )
                continue
            first_line[entry.name] = entry.line
            if entry.name in used:
                continue
            spelled_otherwise = used_by_key.get(_variant_key(entry.name))
            if spelled_otherwise is not None:
                compose_relative, line = used[spelled_otherwise]
                findings.append(
                    Finding(
                        source_relative,
                        entry.line,
                        f"{entry.name} is set but the compose files read {spelled_otherwise} "
                        f"({compose_relative}:{line}); rename it to {spelled_otherwise}",
                    )
                )
            else:
                findings.append(
                    Finding(
                        source_relative,
                        entry.line,
                        f"{entry.name} is set but no compose file uses it; remove it or use it",
                        "warning",
                    )
                )
    return findings


def _secret_findings(root: Path) -> list[Finding]:
    """No real-looking secret value in a tracked env file, no key material under env/."""
    findings: list[Finding] = []
    meant_to_be_tracked = _tracked_env_files()
    for relative in meant_to_be_tracked:
        path = root / relative
        if not path.is_file():
            continue
        for entry in parse_env_file(path):
            if _is_secret_name(entry.name) and _looks_like_real_secret(entry.value):
                findings.append(
                    Finding(
                        relative,
                        entry.line,
                        f"{entry.name} looks like a real secret, and this file is tracked by "
                        "git: rotate it and put an obvious placeholder here "
                        "(e.g. ci-only-not-a-secret, change-me)",
                    )
                )
    scanned = list(dict.fromkeys([*meant_to_be_tracked, *(_git_files(root, "env/") or [])]))
    for relative in scanned:
        path = root / relative
        if not path.is_file():
            continue
        for number, line in enumerate(_read(path).splitlines(), start=1):
            if PRIVATE_KEY_BLOCK.search(line):
                findings.append(
                    Finding(
                        relative,
                        number,
                        "a private key block is in a tracked file: remove it and rotate the key",
                    )
                )
            if AWS_ACCESS_KEY.search(line):
                findings.append(
                    Finding(
                        relative,
                        number,
                        "an AWS access key id is in a tracked file: remove it and rotate the key",
                    )
                )
    return findings


# ---------------------------------------------------------------- 6. tracked secrets


def _git_files(root: Path, *pathspecs: str) -> list[str] | None:
    """`git ls-files` under root (repo-relative), or None when root is not a git work tree."""
    git = shutil.which("git")
    if git is None:
        return None
    try:
        result = _run([git, "ls-files", "-z", "--", *pathspecs], root)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if result.returncode != 0:
        return None
    return [name for name in result.stdout.split("\0") if name]


def check_tracked_secrets(root: Path = ROOT) -> list[Finding]:
    """git tracks no env file but the templates and env/.env.ci, nothing under certs/, and no
    *.key or *.pem file."""
    tracked = _git_files(root)
    if tracked is None:
        return [
            Finding(
                ".gitignore",
                1,
                f"{root} is not a git work tree; skipped the tracked-secrets check",
                "warning",
            )
        ]
    allowed = _tracked_env_files()
    findings = []
    for name in tracked:
        if name.startswith("env/") and name not in allowed:
            findings.append(
                Finding(
                    name,
                    1,
                    f"tracked by git, but only {', '.join(allowed)} may be under env/; "
                    f"run `git rm --cached {name}`",
                )
            )
        elif name.startswith("certs/") or name.endswith((".key", ".pem")):
            findings.append(
                Finding(
                    name,
                    1,
                    "key or certificate material tracked by git (certs/ is made by "
                    f"`nox -s certs` on each machine); run `git rm --cached {name}`",
                )
            )
    return findings


# ---------------------------------------------------------------- 7. container security


def _expand_defaults(value: str) -> str:
    """`${VAR:-default}` as its default, so an interpolated mount source can be judged."""
    return re.sub(r"\$\{[A-Za-z_][A-Za-z0-9_]*:?-([^}]*)\}", r"\1", value)


def _volume_source(volume: Any) -> str:
    if isinstance(volume, dict):
        return _expand_defaults(str(volume.get("source", "")))
    return _expand_defaults(str(volume)).split(":", 1)[0]


def _service_problems(service: dict[str, Any]) -> list[tuple[list[str | int], str]]:
    """(route inside the service, what is wrong and the fix) for one service."""
    problems: list[tuple[list[str | int], str]] = []
    if str(service.get("privileged", "")).lower() == "true":
        problems.append(
            (
                ["privileged"],
                "runs privileged (every capability, every host device); remove privileged: "
                "true and add only the capability it needs",
            )
        )
    for key in HOST_NAMESPACE_KEYS:
        if str(service.get(key, "")).lower() == "host":
            problems.append(([key], f"shares the host's namespace ({key}: host); remove it"))
    for index, capability in enumerate(service.get("cap_add") or []):
        name = str(capability).upper().removeprefix("CAP_")
        if name in FORBIDDEN_CAPABILITIES:
            problems.append(
                (
                    ["cap_add", index],
                    f"adds capability {name}, which is as good as root on the host; drop it",
                )
            )
    for index, volume in enumerate(service.get("volumes") or []):
        if Path(_volume_source(volume)).name == "docker.sock":
            problems.append(
                (
                    ["volumes", index],
                    "mounts the Docker socket, which hands out root on the host; remove the mount",
                )
            )
    for index, option in enumerate(service.get("security_opt") or []):
        if str(option).replace(" ", "") in UNCONFINED_SECURITY_OPTIONS:
            problems.append(
                (
                    ["security_opt", index],
                    f"turns off a kernel confinement ({option}); remove it",
                )
            )
    return problems


def check_container_security(root: Path = ROOT) -> list[Finding]:
    """No compose service runs privileged, joins a host namespace, adds SYS_ADMIN or ALL,
    drops seccomp/AppArmor, or mounts the Docker socket."""
    findings: list[Finding] = []
    for compose_file in _compose_files(root):
        compose_relative = compose_file.relative_to(root).as_posix()
        text = _read(compose_file)
        try:
            document = yaml.safe_load(text)
        except yaml.YAMLError:
            continue  # check_yaml reports the syntax error with its line
        services = document.get("services") if isinstance(document, dict) else None
        if not isinstance(services, dict):
            continue
        for name, service in services.items():
            if not isinstance(service, dict):
                continue
            for route, problem in _service_problems(service):
                line = (
                    _yaml_line(text, ["services", name, *route])
                    or _yaml_line(text, ["services", name])
                    or 1
                )
                findings.append(Finding(compose_relative, line, f"service {name} {problem}"))
    return findings


# ---------------------------------------------------------------- all together


Check = Callable[[Path], list[Finding]]

# ---------------------------------------------------------------- 8. Shell scripts

SHELLCHECK_LINE = re.compile(r"^(?P<path>.+?):(?P<line>\d+):\d+: (?P<level>\w+): (?P<message>.*)$")


def check_shell_scripts(root: Path = ROOT) -> list[Finding]:
    """shellcheck (every severity) on the installer, CI entry point and image entrypoints."""
    scripts = sorted(
        path.relative_to(root).as_posix()
        for pattern in ("scripts/*.sh", ".ci/run", "docker/*.sh", "docker/base-images/*/*.sh")
        for path in root.glob(pattern)
    )
    if not scripts:
        return []
    shellcheck = _tool("shellcheck")
    if shellcheck is None:
        return [_missing_tool("shellcheck", scripts[0])]
    result = _run([shellcheck, "--format", "gcc", "--severity", "style", *scripts], root)
    findings = []
    for line in result.stdout.splitlines():
        match = SHELLCHECK_LINE.match(line)
        if match:
            findings.append(
                Finding(match["path"], int(match["line"]), f"{match['message']} (shellcheck)")
            )
    return findings


CHECKS: tuple[tuple[str, Check], ...] = (
    ("dockerfiles", check_dockerfiles),
    ("shell scripts", check_shell_scripts),
    ("yaml", check_yaml),
    ("compose config", check_compose_config),
    ("workflows", check_workflows),
    ("env files", check_env_files),
    ("tracked secrets", check_tracked_secrets),
    ("container security", check_container_security),
)


def run_all(include_compose: bool = True, root: Path = ROOT) -> list[Finding]:
    """Every check's findings in check order; `include_compose=False` skips the one check
    that runs `docker compose`."""
    findings: list[Finding] = []
    for _name, check in CHECKS:
        if check is check_compose_config and not include_compose:
            continue
        findings += check(root)
    return findings


def report(findings: Iterable[Finding]) -> int:
    """Print each finding and a one-line summary; 1 when any finding is an error, else 0."""
    findings = list(findings)
    for finding in findings:
        print(finding)
    errors = sum(finding.severity == "error" for finding in findings)
    warnings = len(findings) - errors
    if findings:
        print(f"lint: {errors} error(s), {warnings} warning(s)")
    else:
        print("lint: no findings")
    return 1 if errors else 0


def main(arguments: Sequence[str] | None = None) -> int:
    """`python -m pipeline.lint [--no-compose]`: what the nox `lint` session runs."""
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.lint",
        description="Lint the Dockerfiles, YAML, compose configs, workflows and env files; "
        "print each finding as file:line: message and exit 1 on any error.",
    )
    parser.add_argument(
        "--no-compose",
        action="store_true",
        help="skip `docker compose config` (the one check that needs the compose plugin)",
    )
    options = parser.parse_args(arguments)
    return report(run_all(include_compose=not options.no_compose))


if __name__ == "__main__":
    sys.exit(main())
