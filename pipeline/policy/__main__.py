"""`python -m pipeline.policy`: the security policy on any compose project (nox -s policy).

    -f FILE [-f FILE …] [--env-file FILE …] [--profile restricted]   the compose model
    --project NAME [--profile restricted]                            a running project
    --coverage                        the CIS coverage table (docs/cis-coverage.md)
    [--environment ENV]   hold it to one of ours: the environments model picks the profiles
    [--format text|json|sarif|junit] [--fail-on low|medium|high|critical]

A compose project that is not ours is held to baseline (or restricted, with --profile
restricted) for every service; the controls that need what only our stack knows (its
ports, allow-lists, data stores, images) say they do not apply. Each control has a
severity (controls.toml). Exit 0 when no failure is at or above --fail-on (low: any), 1 when
one is, 2 when a file does not load or the usage is wrong (one line on stderr).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from pipeline.environments import ENVIRONMENTS
from pipeline.errors import PipelineError
from pipeline.policy import PROFILES, SEVERITIES, Context, context_for, coverage, load_policy
from pipeline.policy.output import FORMATS, at_or_above, failures, render
from pipeline.policy.runtime import Evaluation, evaluate_project
from pipeline.policy.static import compose_model, judged


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="nox -s policy --", description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("-f", "--file", action="append", type=Path, dest="files", metavar="FILE")
    source.add_argument("--project", metavar="NAME", help="a running compose project")
    source.add_argument(
        "--coverage", action="store_true", help="print the CIS coverage table (markdown)"
    )
    parser.add_argument("--env-file", action="append", type=Path, default=[], metavar="FILE")
    parser.add_argument("--profile", choices=PROFILES, default="baseline")
    parser.add_argument("--environment", choices=sorted(ENVIRONMENTS), metavar="ENV")
    parser.add_argument("--format", choices=FORMATS, default="text", dest="output_format")
    parser.add_argument("--fail-on", choices=SEVERITIES, default="low", metavar="SEVERITY")
    return parser.parse_args(argv)


def context_maker(arguments: argparse.Namespace):
    if arguments.environment:
        environment = ENVIRONMENTS[arguments.environment]
        return lambda service: context_for(environment, service)
    profiles = PROFILES[: PROFILES.index(arguments.profile) + 1]
    return lambda service: Context(load_policy(), profiles)


def check_files(arguments: argparse.Namespace) -> list:
    missing = [path for path in [*arguments.files, *arguments.env_file] if not path.is_file()]
    if missing:
        raise PipelineError(f"{missing[0]}: no such file; name a compose file with -f.")
    files = [path.resolve() for path in arguments.files]
    env_files = [path.resolve() for path in arguments.env_file]
    model = compose_model(files, env_files, cwd=files[0].parent)
    return judged(model, files[0], context_maker(arguments))


def render_matrix(evaluations: list[Evaluation]) -> list[str]:
    services = sorted({evaluation.service for evaluation in evaluations})
    marks = {"pass": "pass", "fail": "FAIL", "not applicable": "n/a"}
    lines = ["control".ljust(28) + " ".join(service[:12].ljust(12) for service in services)]
    for control in load_policy().controls:
        row = {e.service: marks[e.verdict.outcome] for e in evaluations if e.control is control}
        lines.append(control.id.ljust(28) + " ".join(row[s].ljust(12) for s in services))
    return lines


def check_project(arguments: argparse.Namespace) -> list[Evaluation]:
    evaluations = evaluate_project(arguments.project, context_maker(arguments))
    if arguments.output_format == "text":
        print("\n".join(render_matrix(evaluations)))
    return evaluations


def main(argv: Sequence[str] | None = None) -> int:
    arguments = parse_arguments(argv)  # usage errors: argparse's line and exit status 2
    if arguments.coverage:
        print(coverage.markdown(load_policy()), end="")
        return 0
    try:
        results = check_files(arguments) if arguments.files else check_project(arguments)
    except PipelineError as error:
        print(f"policy: {error}", file=sys.stderr)
        return 2
    label = arguments.project or arguments.environment or arguments.profile
    if arguments.project and arguments.environment:
        label = f"{arguments.project} ({arguments.environment})"
    print(render(results, arguments.output_format, label))
    failing = [f for f in failures(results) if at_or_above(f.control.severity, arguments.fail_on)]
    return 1 if failing else 0


if __name__ == "__main__":
    sys.exit(main())
