"""Env files: the variables the compose files interpolate against the env files and
templates. Required ones set, every set one used, names in one scheme and spelled one way,
no real secret in a tracked file, the prod template's secrets empty and required."""

from __future__ import annotations

import math
import re
from collections import Counter
from pathlib import Path

from pipeline.envfiles import EnvEntry, is_secret_name, read_entries
from pipeline.environments import ENVIRONMENTS, ROOT, VARIABLE_PREFIXES, Environment
from pipeline.image_sources import BASE_IMAGES
from pipeline.lint.common import (
    Finding,
    Interpolation,
    compose_files,
    env_source,
    git_files,
    interpolations,
    read_text,
    repo_relative,
    tracked_env_files,
)

# Besides the naming scheme's prefixes, a compose file may read the base image variables
# the pipeline overrides in air-gapped mode.
IMAGE_VARIABLES = tuple(image.variable for image in BASE_IMAGES)

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


def check_env_files(root: Path = ROOT) -> list[Finding]:
    """Compose variables against the env files and templates: required ones set, every set
    one used, names in one scheme and spelled one way, no real secret in a tracked file."""
    findings: list[Finding] = []
    compose_texts = {
        path.relative_to(root).as_posix(): read_text(path) for path in compose_files(root)
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


def _follows_scheme(name: str) -> bool:
    return name.startswith(VARIABLE_PREFIXES) or name in IMAGE_VARIABLES


def _variant_key(name: str) -> str:
    """A name with case, environment prefixes, the PG/POSTGRES spelling and underscores
    folded away: two names with the same key mean the same thing spelled two ways."""
    folded = name.upper()
    folded = re.sub(r"^(?:TEST|DEV|CI|PROD)_", "", folded)
    folded = re.sub(r"^PG_?(?!.*POSTGRES)", "POSTGRES_", folded)
    return folded.replace("_", "")


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
            path = root / repo_relative(candidate)
            if path.is_file() and path not in sources:
                sources.append(path)
    return sources


# ---------------------------------------------------------------- one environment


def _environment_findings(
    environment: Environment, root: Path, compose_texts: dict[str, str]
) -> list[Finding]:
    """One environment's compose file against its env file (or template)."""
    compose_relative = repo_relative(environment.compose_file)
    if compose_relative not in compose_texts:
        return [
            Finding(
                compose_relative,
                1,
                f"missing: pipeline/environments.py declares the {environment.name} "
                "environment; add the file or drop the environment",
            )
        ]
    source = env_source(environment, root)
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
    entries = {entry.name: entry for entry in read_entries(source)}
    uses = interpolations(compose_texts[compose_relative])
    operator_template = environment.env_file_origin == "operator"
    findings = _required_variable_findings(
        uses, entries, compose_relative, source_relative, operator_template
    )
    if operator_template:
        findings += _operator_template_findings(
            uses, entries, environment, compose_relative, source_relative
        )
    return findings


def _required_variable_findings(
    uses: list[Interpolation],
    entries: dict[str, EnvEntry],
    compose_relative: str,
    source_relative: str,
    operator_template: bool,
) -> list[Finding]:
    """Each variable the compose file reads without a default is set, and (but in the
    operator's template, which is filled in later) not empty."""
    findings: list[Finding] = []
    seen: set[str] = set()
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
    return findings


def _operator_template_findings(
    uses: list[Interpolation],
    entries: dict[str, EnvEntry],
    environment: Environment,
    compose_relative: str,
    source_relative: str,
) -> list[Finding]:
    """The operator's template leaves every secret empty, and the compose file requires each
    empty placeholder it reads, so a copy that was never filled in fails fast."""
    fail_fast = {use.name for use in uses if use.fail_fast}
    used_here = {use.name for use in uses}
    findings: list[Finding] = []
    for entry in entries.values():
        if entry.value and is_secret_name(entry.name):
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


# ---------------------------------------------------------------- across env files


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
        for entry in read_entries(source):
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
    meant_to_be_tracked = tracked_env_files()
    for relative in meant_to_be_tracked:
        path = root / relative
        if not path.is_file():
            continue
        for entry in read_entries(path):
            if is_secret_name(entry.name) and _looks_like_real_secret(entry.value):
                findings.append(
                    Finding(
                        relative,
                        entry.line,
                        f"{entry.name} looks like a real secret, and this file is tracked by "
                        "git: rotate it and put an obvious placeholder here "
                        "(e.g. ci-only-not-a-secret, change-me)",
                    )
                )
    scanned = list(dict.fromkeys([*meant_to_be_tracked, *(git_files(root, "env/") or [])]))
    for relative in scanned:
        path = root / relative
        if not path.is_file():
            continue
        for number, line in enumerate(read_text(path).splitlines(), start=1):
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
