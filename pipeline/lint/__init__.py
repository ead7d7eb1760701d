"""Lint checks for the Docker and Compose infrastructure and the Python code, one module each.

Every check takes the repository root (default: this checkout) so tests can point it at a
temporary copy, and returns `Finding`s that print as `path:line: message`. `nox -s lint`
runs them all with `python -m pipeline.lint`; each pre-commit hook runs one of them with
`--check NAME`, so both read the same definition of every lint tool. A whole run that found
no error is not run again on the same inputs (pipeline.lint.reuse; `--again` runs it anyway).

  dockerfiles          hadolint on docker/Dockerfile and docker/base-images/*/Dockerfile
  shell-scripts        shellcheck on the installer, CI entry point and image entrypoints
  yaml                 yamllint on compose/ and .github/
  compose-config       `docker compose config` for every environment (needs the plugin)
  workflows            check-jsonschema and zizmor on .github/
  env-files            compose variables against the env files and templates
  tracked-secrets      what git tracks under env/, certs/ and as *.key / *.pem
  policy               the security policy (pipeline/policy) on every environment's model
  python               ruff check and ruff format --check with pyproject.toml's settings
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

from pipeline.environments import ROOT
from pipeline.errors import PipelineError
from pipeline.lint import reuse
from pipeline.lint.common import Check, Finding
from pipeline.lint.compose_config import check_compose_config
from pipeline.lint.dockerfiles import check_dockerfiles
from pipeline.lint.env_files import check_env_files
from pipeline.lint.policy_check import check_policy
from pipeline.lint.python_style import check_python_style
from pipeline.lint.secret_values import check_secret_values
from pipeline.lint.shell_scripts import check_shell_scripts
from pipeline.lint.tracked_secrets import check_tracked_secrets
from pipeline.lint.workflows import check_workflows
from pipeline.lint.yaml_files import check_yaml

# Every check by the name `--check` takes, in the order they run and report.
CHECKS: dict[str, Check] = {
    "dockerfiles": check_dockerfiles,
    "shell-scripts": check_shell_scripts,
    "yaml": check_yaml,
    "compose-config": check_compose_config,
    "workflows": check_workflows,
    "env-files": check_env_files,
    "tracked-secrets": check_tracked_secrets,
    "secret-values": check_secret_values,
    "policy": check_policy,
    "python": check_python_style,
}
# The checks that run `docker compose`, which `--no-compose` skips.
COMPOSE_CHECKS = ("compose-config", "policy")


def run_all(
    include_compose: bool = True, root: Path = ROOT, checks: Iterable[str] | None = None
) -> list[Finding]:
    """The findings of the checks named in `checks` (default: all), in CHECKS order;
    `include_compose=False` skips the one check that runs `docker compose`."""
    selected = list(CHECKS) if checks is None else list(checks)
    unknown = [name for name in selected if name not in CHECKS]
    if unknown:
        raise PipelineError(
            f"unknown check {', '.join(map(repr, unknown))}; use one of: {', '.join(CHECKS)}."
        )
    findings: list[Finding] = []
    for name, check in CHECKS.items():
        if name not in selected or (name in COMPOSE_CHECKS and not include_compose):
            continue
        findings += check(root)
    return findings


def report(findings: Iterable[Finding]) -> tuple[int, list[str]]:
    """Each finding and a one-line summary, printed; the exit status (1 when any finding is
    an error, else 0) and the lines printed."""
    findings = list(findings)
    lines = [str(finding) for finding in findings]
    errors = sum(finding.severity == "error" for finding in findings)
    warnings = len(findings) - errors
    lines.append(
        f"lint: {errors} error(s), {warnings} warning(s)" if findings else "lint: no findings"
    )
    print("\n".join(lines))
    return (1 if errors else 0), lines


def main(arguments: Sequence[str] | None = None) -> int:
    """`python -m pipeline.lint [--check NAME]... [--no-compose]`: what the nox `lint`
    session (every check) and each pre-commit hook (one check) run."""
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.lint",
        description="Lint the Dockerfiles, shell scripts, YAML, compose configs, workflows, "
        "env files and Python code; print each finding as file:line: message and exit 1 on "
        "any error.",
    )
    parser.add_argument(
        "--check",
        action="append",
        dest="checks",
        metavar="NAME",
        help=f"run only this check; repeatable (default: all of {', '.join(CHECKS)})",
    )
    parser.add_argument(
        "--no-compose",
        action="store_true",
        help="skip `docker compose config` (the one check that needs the compose plugin)",
    )
    parser.add_argument(
        "--again",
        action="store_true",
        help="run every check even when a run on the same inputs passed before "
        f"({os.path.relpath(reuse.record_path(), ROOT)})",
    )
    options = parser.parse_args(arguments)
    root = ROOT
    whole_run = options.checks is None and not options.no_compose
    inputs = reuse.inputs_digest(root) if whole_run else None
    kept = reuse.kept_output(inputs) if inputs and not options.again else None
    if kept is not None:
        output, finished = kept
        print("\n".join(output))
        print(
            f"lint: not run again: these very inputs passed every check at {finished} "
            f"({os.path.relpath(reuse.record_path(), ROOT)}); --again runs them anyway"
        )
        return 0
    try:
        findings = run_all(include_compose=not options.no_compose, root=root, checks=options.checks)
    except PipelineError as error:
        print(f"{parser.prog}: {error}", file=sys.stderr)
        return 2  # a usage error, as argparse's own
    status, output = report(findings)
    if inputs and status == 0 and reuse.inputs_digest(root) == inputs:
        try:
            reuse.keep(inputs, output)
        except OSError as error:  # the verdict stands; the next run simply runs again
            print(f"lint: this run is not kept ({error}); the next one runs every check")
    return status
