# /// script
# dependencies = ["nox>=2025.2.9", "python-on-whales>=0.75", "cryptography>=43", "pyyaml>=6.0"]
# ///
"""Dashtam's pipeline: lint, build every stage, boot and verify every environment.

`nox` runs the main job (lint, build, verify). Sessions stay thin; the work lives in the
`pipeline` package. Sessions that only drive Docker run in this process (python=False);
the ones that run tools or pytest install the lock file's groups with uv.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys

import nox
from nox.command import CommandFailed

sys.path.insert(0, os.path.dirname(__file__))

from pipeline.environments import ENVIRONMENTS, STAGES
from pipeline.errors import PipelineError

# python-on-whales logs every docker command at INFO; the build output says enough.
logging.getLogger("python_on_whales").setLevel(logging.WARNING)

nox.needs_version = ">=2025.2.9"
nox.options.default_venv_backend = "uv|virtualenv"
nox.options.sessions = ["lint", "build-all", "verify"]
nox.options.reuse_venv = "yes"

STAGE_PARAMS = [nox.param(name, id=name) for name in STAGES]
ENVIRONMENT_PARAMS = [nox.param(name, id=name) for name in ENVIRONMENTS]


def install_groups(session: nox.Session, *groups: str, project: bool = False) -> None:
    """Install exactly the lock file's groups into the session's venv."""
    selection = (
        [f"--group={group}" for group in groups]
        if project
        else [f"--only-group={group}" for group in groups]
    )
    session.run_install(
        "uv",
        "sync",
        "--locked",
        "--no-default-groups",
        *selection,
        env={"UV_PROJECT_ENVIRONMENT": session.virtualenv.location},
    )


@contextlib.contextmanager
def pipeline_errors(session: nox.Session):
    """A PipelineError ends the session with its one line, not a traceback."""
    try:
        yield
    except PipelineError as error:
        session.error(str(error).rstrip("."))  # nox ends the line with its own full stop


@nox.session
def lint(session: nox.Session) -> None:
    """Lint Dockerfile, YAML, compose configs, workflows and env files (file:line: message)."""
    install_groups(session, "pipeline")
    session.run("python", "-m", "pipeline.lint", *session.posargs)


@nox.session(python=False, tags=["build"])
@nox.parametrize("stage", STAGE_PARAMS)
def build(session: nox.Session, stage: str) -> None:
    """Build one Dockerfile stage as dashtam/<stage> (nox -s build builds all five)."""
    from pipeline import images

    with pipeline_errors(session):
        session.log("\n" + images.record_and_format(images.build_stages([stage])))


@nox.session(name="build-all", python=False)
def build_all(session: nox.Session) -> None:
    """Build every stage in one bake, tagging the images that run (dev, production, callback)."""
    from pipeline import images

    with pipeline_errors(session):
        built = images.build_stages(images.images_that_run())
        table = images.record_and_format(built, fresh=True)
        session.log(f"\n{table}\nbase and builder: built as their parts (tag one: build(<stage>))")


@nox.session(tags=["verify"])
@nox.parametrize("environment", ENVIRONMENT_PARAMS)
def verify(session: nox.Session, environment: str) -> None:
    """Boot one environment, run tests/infra against it, report, tear down (-- --keep)."""
    install_groups(session, "pipeline")
    from pipeline.verification import infra_pytest_arguments
    from pipeline.verification import verify as verify_environment

    keep = "--keep" in session.posargs
    pytest_args = [arg for arg in session.posargs if arg != "--keep"]

    def run_checks(test_env: dict[str, str], junit) -> bool:
        try:
            session.run("pytest", *infra_pytest_arguments(junit), *pytest_args, env=test_env)
        except CommandFailed:
            return False
        return True

    with pipeline_errors(session):
        outcome = verify_environment(environment, run_checks, keep=keep)
    if not outcome.passed:
        session.error(f"verify({environment}) failed; see {outcome.summary}")


@nox.session
def tests(session: nox.Session) -> None:
    """Run the unit tests: fast, no Docker."""
    install_groups(session, "dev", "pipeline", project=True)
    session.run("pytest", "tests/unit", *session.posargs)


@nox.session
def integration(session: nox.Session) -> None:
    """Test the pipeline on real Docker: stand-ins, self-test, faults, teardown, bad input."""
    install_groups(session, "dev", "pipeline", project=True)
    session.run("pytest", "tests/pipeline", *session.posargs)


@nox.session(name="base-images", python=False)
def base_images(session: nox.Session) -> None:
    """Build the air-gapped stand-ins for the upstream images (-- --force rebuilds)."""
    from pipeline.base_images import build_base_images

    with pipeline_errors(session):
        for image in build_base_images(force="--force" in session.posargs):
            session.log(str(image))


@nox.session(python=False)
def certs(session: nox.Session) -> None:
    """Make the self-signed dev TLS certificate in certs/dev (never overwrites a valid one)."""
    from pipeline.certs import ensure_dev_certs
    from pipeline.environments import DEV_CERTS

    with pipeline_errors(session):
        ensure_dev_certs(DEV_CERTS)


@nox.session(python=False, default=False)
@nox.parametrize("environment", ENVIRONMENT_PARAMS)
def up(session: nox.Session, environment: str) -> None:
    """Build and start an environment's stack for operators, and wait until it is healthy."""
    from pipeline import operations

    with pipeline_errors(session):
        operations.up(environment, rebuild="--build" in session.posargs)


@nox.session(python=False, default=False)
@nox.parametrize("environment", ENVIRONMENT_PARAMS)
def down(session: nox.Session, environment: str) -> None:
    """Stop an environment's stack; its data volumes are kept (-- --volumes deletes them)."""
    from pipeline import operations

    with pipeline_errors(session):
        operations.down(environment, delete_volumes="--volumes" in session.posargs)


@nox.session(python=False, default=False)
@nox.parametrize("environment", ENVIRONMENT_PARAMS)
def status(session: nox.Session, environment: str) -> None:
    """Show an environment's containers, health and ports."""
    from pipeline import operations

    with pipeline_errors(session):
        operations.status(environment)


@nox.session(python=False, default=False)
@nox.parametrize("environment", ENVIRONMENT_PARAMS)
def logs(session: nox.Session, environment: str) -> None:
    """Follow an environment's logs (-- <service> narrows it)."""
    from pipeline import operations

    with pipeline_errors(session):
        operations.logs(environment, session.posargs)


@nox.session(python=False, default=False)
@nox.parametrize("environment", ENVIRONMENT_PARAMS)
def shell(session: nox.Session, environment: str) -> None:
    """Open a shell in an environment's app container (-- <service> picks another)."""
    from pipeline import operations

    with pipeline_errors(session):
        operations.shell(environment, session.posargs[0] if session.posargs else "app")


@nox.session(default=False)
def bench(session: nox.Session) -> None:
    """Measure build, size, boot and verify against the seed design and goss (reports/bench.*)."""
    install_groups(session, "pipeline")
    session.run("python", "-m", "pipeline.bench", *session.posargs)


if __name__ == "__main__":
    nox.main()
