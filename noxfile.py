# /// script
# dependencies = [
#   "nox>=2026.10.20", "cryptography>=43", "pyyaml>=6.0", "python-dotenv>=1.0",
# ]
# ///
"""Dashtam's pipeline: lint, build every stage, boot and verify every environment.

`nox` runs the main job (build, then lint and verify side by side). Sessions stay thin; the
work lives in the `pipeline` package. Sessions that only drive Docker, and verify (its suite
runs in-process), run in this process (python=False); the ones that run tools or the unit
tests install the lock file's groups with uv.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

import nox

sys.path.insert(0, os.path.dirname(__file__))

from pipeline.environments import ENVIRONMENTS, STAGES
from pipeline.errors import PipelineError
from pipeline.verification import BYTECODE_CACHE, default_jobs, verifies_every_environment

# The sessions that drive Docker import python-on-whales and pydantic (imported when first
# used, after this): with bytecode off in the caller's environment (PYTHONDONTWRITEBYTECODE)
# every run would compile them again, about 0.7 s. Their bytecode is kept with the suite's;
# so is that of every process nox starts (its parallel workers compile nox itself, 0.27 s
# each, and the sessions' tools). `make` sets the same for nox's own process.
sys.dont_write_bytecode = False
sys.pycache_prefix = str(BYTECODE_CACHE)
os.environ.update(PYTHONDONTWRITEBYTECODE="", PYTHONPYCACHEPREFIX=str(BYTECODE_CACHE))

nox.needs_version = ">=2026.10.20"
nox.options.default_venv_backend = "uv|virtualenv"
nox.options.sessions = ["build-all", "lint", "verify"]
nox.options.reuse_venv = "yes"
# `nox`, `nox -s verify`, `make verify`: nox's own scheduler verifies the environments side by
# side (each in its own process, with its own stack, report and teardown; output printed
# whole as each finishes), lint beside them (one job more: it is light, and fills the CPU the
# booting stacks leave idle); every other session runs alone, in order. `-j 1` for one at a
# time.
if verifies_every_environment(sys.argv[1:]):
    nox.options.parallel = default_jobs() + 1

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


@nox.session(allow_parallel=True)
def lint(session: nox.Session) -> None:
    """Lint Dockerfiles, YAML, compose, workflows, env files, shell and Python (file:line: msg)."""
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


# python=False: the suite runs in this process (pytest.main), beside the helpers it started
# while the stack booted; nox runs from the lock file's pipeline group, which holds pytest.
@nox.session(python=False, tags=["verify"], allow_parallel=True)
@nox.parametrize("environment_name", ENVIRONMENT_PARAMS)
def verify(session: nox.Session, environment_name: str) -> None:
    """Boot one environment, run tests/infra against it, report, tear down (-- --keep;
    -- --images FOLDER boots the images `save-images` wrote there instead of building)."""
    from pipeline.verification import verify as verify_environment

    keep = "--keep" in session.posargs
    pytest_args = [arg for arg in session.posargs if arg != "--keep"]
    images_from = None
    if "--images" in pytest_args:
        at = pytest_args.index("--images")
        if at + 1 >= len(pytest_args):
            session.error("usage: --images FOLDER (the folder `nox -s save-images` wrote)")
        images_from = Path(pytest_args[at + 1]).resolve()
        del pytest_args[at : at + 2]

    with pipeline_errors(session):
        outcome = verify_environment(
            environment_name,
            keep=keep,
            images_from=images_from,
            arguments=tuple(pytest_args),
        )
    if not outcome.passed:
        session.error(
            f"verify({environment_name}) failed ({outcome.verdict}); see {outcome.summary}"
        )


@nox.session(python=False, default=False)
def publish(session: nox.Session) -> None:
    """Tag the digests every verify passed on (-- --tag NAME, --to REGISTRY); refuse others."""
    from pipeline.environments import ROOT
    from pipeline.publishing import PUBLISHED_RECORD, publish

    options = {"--tag": None, "--to": None}
    arguments = list(session.posargs)
    while arguments[:1] and arguments[0] in options and len(arguments) >= 2:
        option, value, *arguments = arguments
        options[option] = value
    if arguments:
        session.error("usage: nox -s publish [-- --tag NAME] [--to REGISTRY/NAMESPACE]")
    with pipeline_errors(session):
        for item in publish(options["--tag"], options["--to"]):
            session.log(f"{item.stage}: {item.repository}:{item.tag} = {item.digest}")
        session.log(f"recorded in {PUBLISHED_RECORD.relative_to(ROOT)} and reports/sbom/")


@nox.session(default=False)
def policy(session: nox.Session) -> None:
    """Hold any compose file (-- -f FILE) or running project (-- --project NAME) to the policy."""
    install_groups(session, "pipeline")
    session.run("python", "-m", "pipeline.policy", *session.posargs)


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
            session.log(f"{image.reference} = {image.version_reference} ({image.version})")


@nox.session(python=False)
def sbom(session: nox.Session) -> None:
    """Write a CycloneDX SBOM of each image that runs to reports/sbom/<stage>.json."""
    from pipeline.environments import REPORTS, ROOT, image_name
    from pipeline.images import images_that_run
    from pipeline.sbom import summary, write_sboms

    images = {stage: f"{image_name(stage)}:latest" for stage in images_that_run()}
    with pipeline_errors(session):
        for path in write_sboms(images, REPORTS / "sbom"):
            session.log(summary(path, ROOT))


@nox.session(name="save-images", python=False, default=False)
def save_images(session: nox.Session) -> None:
    """Write the images this checkout built that an environment runs to FOLDER (-- FOLDER),
    each with its image ID: what the workflow's build jobs hand on."""
    from pipeline.promotion import save_images as save

    if len(session.posargs) != 1:
        session.error("usage: nox -s save-images -- FOLDER")
    with pipeline_errors(session):
        written = save(Path(session.posargs[0]).resolve())
    session.log(", ".join(path.name for path in written) or "no image that runs was built here")


@nox.session(name="load-images", python=False, default=False)
def load_images(session: nox.Session) -> None:
    """Load the images `save-images` wrote to FOLDER (-- FOLDER), each checked to be the
    image its record names, as dashtam/<stage>:latest: what publish then pushes."""
    from pipeline.images import images_that_run
    from pipeline.promotion import load_images as load

    if len(session.posargs) != 1:
        session.error("usage: nox -s load-images -- FOLDER")
    with pipeline_errors(session):
        loaded = load(Path(session.posargs[0]).resolve(), images_that_run())
    for stage, image in loaded.items():
        session.log(f"{stage}: {image}")


@nox.session(python=False, default=False)
def registry(session: nox.Session) -> None:
    """Start the pipeline's OCI registry (or reuse it) and print its address (127.0.0.1:5000)."""
    from pipeline.registry import VOLUME_NAME, ensure_registry

    with pipeline_errors(session):
        address = ensure_registry()
    session.log(f"registry at {address}, data in volume {VOLUME_NAME}; push to {address}/<name>")
    print(address)  # alone on stdout: `address=$(nox -s registry)`


@nox.session(name="registry-stop", python=False, default=False)
def registry_stop(session: nox.Session) -> None:
    """Stop and remove the registry's container; its volume, and what was pushed, stays."""
    from pipeline.registry import CONTAINER_NAME, VOLUME_NAME, stop_registry

    with pipeline_errors(session):
        stopped = stop_registry()
    if stopped:
        session.log(f"{CONTAINER_NAME} stopped and removed; its data stays in {VOLUME_NAME}")
    else:
        session.log(f"no {CONTAINER_NAME} container; nothing to stop")


@nox.session(python=False)
def certs(session: nox.Session) -> None:
    """Make the self-signed dev TLS certificate in certs/dev (never overwrites a valid one)."""
    from pipeline.certs import ensure_dev_certs
    from pipeline.environments import DEV_CERTS

    with pipeline_errors(session):
        ensure_dev_certs(DEV_CERTS)


@nox.session(name="prod-secrets", python=False, default=False)
def prod_secrets(session: nox.Session) -> None:
    """Write a fresh set of prod secret files (-- FOLDER, default secrets/prod); never overwrite."""
    from pipeline.environments import ROOT
    from pipeline.secret_files import SECRETS_DIR_VARIABLE, write_secret_files

    folder = Path(session.posargs[0]).resolve() if session.posargs else ROOT / "secrets" / "prod"
    with pipeline_errors(session):
        for path in write_secret_files(folder):
            session.log(f"wrote {path}")
    session.log(
        f"set {SECRETS_DIR_VARIABLE} in env/.env.prod to that folder (relative to compose/)"
    )


@nox.session(python=False, default=False)
def audit(session: nox.Session) -> None:
    """Audit uv.lock's packages for known vulnerabilities (-- --strict: no service fails)."""
    from pipeline.audit import audit_locked_packages

    unknown = [argument for argument in session.posargs if argument != "--strict"]
    if unknown:
        session.error(f"unknown argument {unknown[0]!r}; the only one is --strict")
    with pipeline_errors(session):
        outcome = audit_locked_packages(strict="--strict" in session.posargs)
    for line in outcome.lines:
        session.log(line)
    if not outcome.passed:
        session.error(outcome.summary)
    session.log(outcome.summary)


@nox.session(python=False, default=False)
@nox.parametrize("environment_name", ENVIRONMENT_PARAMS)
def up(session: nox.Session, environment_name: str) -> None:
    """Build and start an environment's stack for operators, and wait until it is healthy."""
    from pipeline import operations

    with pipeline_errors(session):
        operations.up(environment_name, rebuild="--build" in session.posargs)


@nox.session(python=False, default=False)
@nox.parametrize("environment_name", ENVIRONMENT_PARAMS)
def down(session: nox.Session, environment_name: str) -> None:
    """Stop an environment's stack; its data volumes are kept (-- --volumes deletes them)."""
    from pipeline import operations

    with pipeline_errors(session):
        operations.down(environment_name, delete_volumes="--volumes" in session.posargs)


@nox.session(python=False, default=False)
@nox.parametrize("environment_name", ENVIRONMENT_PARAMS)
def status(session: nox.Session, environment_name: str) -> None:
    """Show an environment's containers, health and ports."""
    from pipeline import operations

    with pipeline_errors(session):
        operations.status(environment_name)


@nox.session(python=False, default=False)
@nox.parametrize("environment_name", ENVIRONMENT_PARAMS)
def logs(session: nox.Session, environment_name: str) -> None:
    """Follow an environment's logs (-- <service> narrows it)."""
    from pipeline import operations

    with pipeline_errors(session):
        operations.logs(environment_name, session.posargs)


@nox.session(python=False, default=False)
@nox.parametrize("environment_name", ENVIRONMENT_PARAMS)
def shell(session: nox.Session, environment_name: str) -> None:
    """Open a shell in an environment's app container (-- <service> picks another)."""
    from pipeline import operations

    with pipeline_errors(session):
        operations.shell(environment_name, session.posargs[0] if session.posargs else "app")


@nox.session(default=False)
def bench(session: nox.Session) -> None:
    """Measure build, size, boot and verify against the seed design and goss (reports/bench.*)."""
    install_groups(session, "pipeline")
    session.run("python", "-m", "bench", *session.posargs)


if __name__ == "__main__":
    nox.main()
