"""Policy: the security policy (pipeline/policy/controls.toml) on every environment's model.

`docker compose config --format json` of each environment, with its committed env file or
its template (filled with dummies where the operator fills it), every service against every
control of the profiles the environments model gives it. A failure names its control and
points at the line where the setting is written: the environment's file, an anchor it
merges, or compose/common.yml it extends. The same controls run again on the running
containers (tests/infra/test_policy.py).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from pipeline.environments import ENVIRONMENTS, ROOT
from pipeline.errors import PipelineError
from pipeline.lint.common import Finding, env_source, repo_relative
from pipeline.lint.compose_config import compose_command, compose_environment, filled_template
from pipeline.policy import context_for
from pipeline.policy.static import compose_model, describe_violation, violations


def check_policy(root: Path = ROOT) -> list[Finding]:
    if compose_command() is None:
        return [
            Finding("compose", 1, "skipped the policy: the docker CLI is not on PATH", "warning")
        ]
    environment_variables = compose_environment(root)
    findings: list[Finding] = []
    for environment in ENVIRONMENTS.values():
        compose_file = root / repo_relative(environment.compose_file)
        env_file = env_source(environment, root)
        if not compose_file.is_file() or env_file is None or not env_file.is_file():
            continue  # the env files check names what is missing
        with tempfile.TemporaryDirectory(prefix="dashtam-lint-") as directory:
            if environment.env_file_origin == "operator":
                env_file = filled_template(env_file, Path(directory))
            try:
                model = compose_model(
                    [compose_file], [env_file], environment=environment_variables, cwd=root
                )
            except PipelineError:
                continue  # the compose-config check reports why it does not resolve
        for violation in violations(
            model, compose_file, lambda service, e=environment: context_for(e, service)
        ):
            findings.append(
                Finding(
                    violation.path.relative_to(root).as_posix(),
                    violation.line,
                    describe_violation(violation, environment.name),
                )
            )
    return findings
