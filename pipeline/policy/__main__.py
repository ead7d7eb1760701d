"""`python -m pipeline.policy`: the security policy on any compose project (nox -s policy).

    -f FILE [-f FILE …] [--env-file FILE …] [--profile restricted]   the compose model
    --project NAME [--profile restricted]                            a running project
    [--environment ENV]   hold it to one of ours: the environments model picks the profiles

A compose project that is not ours is held to baseline (or restricted, with --profile
restricted) for every service; the controls that need what only our stack knows (its
ports, allow-lists, data stores, images) say they do not apply. Exit 1 on any failure.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from pipeline.environments import ENVIRONMENTS
from pipeline.errors import PipelineError
from pipeline.policy import PROFILES, Context, context_for, load_policy
from pipeline.policy.runtime import Evaluation, evaluate_project
from pipeline.policy.static import compose_model, describe_violation, violations


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="nox -s policy --", description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("-f", "--file", action="append", type=Path, dest="files", metavar="FILE")
    source.add_argument("--project", metavar="NAME", help="a running compose project")
    parser.add_argument("--env-file", action="append", type=Path, default=[], metavar="FILE")
    parser.add_argument("--profile", choices=PROFILES, default="baseline")
    parser.add_argument("--environment", choices=sorted(ENVIRONMENTS), metavar="ENV")
    return parser.parse_args(argv)


def context_maker(arguments: argparse.Namespace):
    if arguments.environment:
        environment = ENVIRONMENTS[arguments.environment]
        return lambda service: context_for(environment, service)
    profiles = PROFILES[: PROFILES.index(arguments.profile) + 1]
    return lambda service: Context(load_policy(), profiles)


def check_files(arguments: argparse.Namespace) -> int:
    missing = [path for path in [*arguments.files, *arguments.env_file] if not path.is_file()]
    if missing:
        raise PipelineError(f"{missing[0]}: no such file; name a compose file with -f.")
    files = [path.resolve() for path in arguments.files]
    env_files = [path.resolve() for path in arguments.env_file]
    model = compose_model(files, env_files, cwd=files[0].parent)
    found = violations(model, files[0], context_maker(arguments))
    label = arguments.environment or arguments.profile
    for violation in found:
        shown = os.path.relpath(violation.path)
        print(f"{shown}:{violation.line}: {describe_violation(violation, label)}")
    services = len(model.get("services", {}))
    print(f"policy ({label}): {len(found)} failure(s) in {services} service(s)")
    return 1 if found else 0


def render_matrix(evaluations: list[Evaluation]) -> list[str]:
    services = sorted({evaluation.service for evaluation in evaluations})
    marks = {"pass": "pass", "fail": "FAIL", "not applicable": "n/a"}
    lines = ["control".ljust(28) + " ".join(service[:12].ljust(12) for service in services)]
    for control in load_policy().controls:
        row = {e.service: marks[e.verdict.outcome] for e in evaluations if e.control is control}
        lines.append(control.id.ljust(28) + " ".join(row[s].ljust(12) for s in services))
    return lines


def check_project(arguments: argparse.Namespace) -> int:
    evaluations = evaluate_project(arguments.project, context_maker(arguments))
    print("\n".join(render_matrix(evaluations)))
    failures = [e for e in evaluations if e.verdict.outcome == "fail"]
    for e in failures:
        print(
            f"[{e.control.id}] {arguments.project} {e.service}: {e.control.title}: "
            f"expected {e.verdict.expected!r}, found {e.verdict.found!r}"
        )
    print(f"policy ({arguments.environment or arguments.profile}): {len(failures)} failure(s)")
    return 1 if failures else 0


def main(argv: Sequence[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    try:
        return check_files(arguments) if arguments.files else check_project(arguments)
    except PipelineError as error:
        print(f"policy: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
