"""Stack lifecycle: env files, compose up/down/status/logs, and what is left after a run."""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shlex
import shutil
import socket
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline import envfiles, image_sources, preflight
from pipeline.docker_client import compose, docker, failing_as, translated
from pipeline.environments import DEV_CERTS, ROOT, Environment, image_name
from pipeline.errors import PipelineError
from pipeline.process import run, say
from pipeline.running import PROJECT_LABEL, project_containers
from pipeline.secret_files import SECRETS_DIR_VARIABLE, write_secret_files

if TYPE_CHECKING:
    from python_on_whales import DockerClient

# Per-run variable files (image references, ports, throwaway secrets): git-ignored.
RUNS = ROOT / ".dashtam" / "runs"
# The project the operator commands act on (default dashtam-<env>): a second stack of an
# environment, or a test's throwaway one, lives beside the user's own, with its own env file
# and volumes.
PROJECT_OVERRIDE_VARIABLE = "DASHTAM_PROJECT"
# Compose's rule for project names.
_PROJECT_NAME = re.compile(r"[a-z0-9][a-z0-9_-]*")


def image_variable(stage: str) -> str:
    """The variable that names the image a stage's services run: the compose files run
    ${DASHTAM_<STAGE>_IMAGE:-dashtam/<stage>:latest}, and a verify run sets it to the digest
    it built and pushed."""
    return f"DASHTAM_{stage.upper()}_IMAGE"


WAIT_TIMEOUT_SECONDS = 180
STOP_TIMEOUT_SECONDS = 10

# `ports: ["127.0.0.1:${APP_PORT:-8000}:8000"]` -> APP_PORT publishes container port 8000.
_PORT_VARIABLE = re.compile(r"\$\{(\w+)(?::?-[^}]*)?\}:(\d+)")


def host_port_variables(compose_file: Path) -> dict[str, int]:
    """Variable -> container port it publishes, read from the compose file itself."""
    text = compose_file.read_text()
    return {match.group(1): int(match.group(2)) for match in _PORT_VARIABLE.finditer(text)}


def operator_project(environment: Environment) -> str:
    """DASHTAM_PROJECT when it is set, else the environment's own project (dashtam-<env>)."""
    project = os.environ.get(PROJECT_OVERRIDE_VARIABLE, "").strip() or environment.project
    if not _PROJECT_NAME.fullmatch(project):
        raise PipelineError(
            f"{PROJECT_OVERRIDE_VARIABLE}={project!r} is not a compose project name; use "
            "lowercase letters, digits, - and _, starting with a letter or a digit."
        )
    return project


def operator_env_file(environment: Environment, project: str) -> Path:
    """env/.env.<env> for the environment's own project, env/.env.<project> for another one
    (the committed ci env file serves every ci project)."""
    if project == environment.project or environment.env_file_origin == "committed":
        return environment.env_file
    return environment.env_file.with_name(f".env.{project}")


def ensure_env_file(environment: Environment, env_file: Path | None = None) -> Path:
    """The environment's env file (or `env_file`); dev/test ones are created from the
    template on first use, and an existing one is never overwritten."""
    env_file = env_file or environment.env_file
    if env_file.is_file():
        return env_file
    relative = env_file.relative_to(ROOT)
    if environment.env_file_origin == "template" and environment.template_file:
        shutil.copyfile(environment.template_file, env_file)
        env_file.chmod(0o600)
        say(f"created {relative} from {_shown(environment.template_file)}; edit it to taste.")
        return env_file
    if environment.env_file_origin == "committed":
        raise PipelineError(f"{relative} is missing; restore it with `git checkout -- {relative}`.")
    template = environment.template_file.relative_to(ROOT) if environment.template_file else ""
    raise PipelineError(
        f"{relative} is missing; copy {template} to {relative} and fill in every value."
    )


@dataclass
class Stack:
    """One compose project of one environment: the user's own, or a verify run's."""

    environment: Environment
    project: str
    env_file: Path
    variables: dict[str, str] = field(default_factory=dict)
    compose_file: Path | None = None  # defaults to the environment's; the self-test swaps it
    # Files and folders made for this stack alone (throwaway secrets), deleted with it.
    owned_paths: tuple[Path, ...] = ()
    # The tag of this run's own images (dashtam/<stage>:<tag>), removed with it.
    image_tag: str | None = None
    # Compose files layered over compose_file, in order (the bench mounts its goss with one).
    override_files: tuple[Path, ...] = ()
    _config: dict | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.compose_file = self.compose_file or self.environment.compose_file

    @property
    def variables_file(self) -> Path:
        return self.run_file("env")

    def run_file(self, suffix: str) -> Path:
        """A file of this stack's own under .dashtam/runs (git-ignored)."""
        return RUNS / f"{self.project}.{suffix}"

    @property
    def env_files(self) -> list[Path]:
        return [self.env_file, self.variables_file]

    @property
    def compose_files(self) -> list[Path]:
        return [self.compose_file, *self.override_files]

    def write_variables(self) -> None:
        RUNS.mkdir(parents=True, exist_ok=True)
        body = "".join(f"{name}={value}\n" for name, value in sorted(self.variables.items()))
        self.variables_file.write_text(
            "# Written by the pipeline for this run: image references, ports, cert folder.\n" + body
        )

    def compose_command(self) -> str:
        """The plain `docker compose` command line that reaches this stack."""
        files = " ".join(f"-f {_shown(path)}" for path in self.compose_files)
        env_files = " ".join(f"--env-file {_shown(path)}" for path in self.env_files)
        return f"docker compose -p {self.project} {files} {env_files}"

    def compose_arguments(self, *arguments: str) -> list[str]:
        """`docker compose` for this stack with `arguments` (its variables file written).

        A literal argument list for the commands python-on-whales cannot run as they must be:
        `down`, which must outlive this process (see there), and `logs --follow`, which owns
        the terminal. Everything else reaches Compose through `compose_client`."""
        self.write_variables()
        command = ["docker", "compose", "-p", self.project]
        for path in self.compose_files:
            command += ["-f", str(path)]
        for path in self.env_files:
            command += ["--env-file", str(path)]
        return [*command, *arguments]

    def compose_client(self) -> DockerClient:
        """python-on-whales' client of this stack's compose project (its variables written)."""
        self.write_variables()
        return compose(self.compose_files, self.env_files, self.project)

    def compose_failures(self) -> contextlib.AbstractContextManager[None]:
        """Compose's own last line (it names the variable or file), with where to fix it."""
        shown = f"{_shown(self.compose_file)} with {_shown(self.env_file)}"
        return failing_as(lambda said: f"{shown}: {said}")

    def config(self) -> dict:
        """`docker compose config --format json`: the stack as Compose resolves it, read once
        (its files and variables do not change while the stack is up)."""
        if self._config is None:
            with self.compose_failures():
                self._config = self.compose_client().compose.config(return_json=True)
        return self._config

    def container_ids(self) -> dict[str, str]:
        """Service -> container ID, for every container of this project (running or not)."""
        containers = project_containers(self.project, stopped=True)
        return {service: entry["Id"] for service, entry in containers.items()}

    def check_host_ports_free(self) -> None:
        """Fail before Compose does, naming the variable to change, when a host port is taken."""
        if self.container_ids():
            return  # the stack is already up: its own ports are taken by itself
        port_variables = host_port_variables(self.compose_file)
        for service_name, service in self.config().get("services", {}).items():
            for port in service.get("ports", []):
                published = int(port.get("published") or 0)
                if not published:
                    continue
                host_ip = port.get("host_ip") or "0.0.0.0"  # noqa: S104 - probing, not serving
                if port_is_free(host_ip, published):
                    continue
                variable = next(
                    (name for name, target in port_variables.items() if target == port["target"]),
                    "its port variable",
                )
                raise PipelineError(
                    f"{service_name}: host port {host_ip}:{published} is already in use; set "
                    f"{variable} in {_shown(self.env_file)} to a free port, "
                    "or stop what holds it."
                )

    def up(self, started: Callable[[], None] | None = None) -> None:
        """Start the stack and wait until every service is healthy; `started`, when given,
        is called once every container runs, while the last ones are still becoming healthy
        (a verify run starts its inspector helpers there)."""
        # Air-gapped: a missing image is named by the preflight, never pulled.
        airgap = image_sources.selected_source() == image_sources.AIRGAP
        pull = "never" if airgap else "missing"
        try:
            with self.compose_failures():
                client = self.compose_client()
                if started is not None:
                    # Returns once every container has started (after the ones it depends on
                    # are healthy); the second `up` below only waits.
                    client.compose.up(detach=True, pull=pull, quiet=True)
                    started()
                client.compose.up(
                    detach=True,
                    wait=True,
                    wait_timeout=WAIT_TIMEOUT_SECONDS,
                    pull=pull,
                    quiet=True,  # its output is kept: a failure is told in one line
                )
        except PipelineError:
            unhealthy = self.print_unhealthy()
            if unhealthy:
                raise PipelineError(
                    f"{self.project}: {', '.join(unhealthy)} did not become healthy "
                    f"(waited up to {WAIT_TIMEOUT_SECONDS} s); the logs and health log above "
                    "say why."
                ) from None
            raise

    def down(self, *, remove_volumes: bool, graceful: bool = True) -> None:
        """Remove the stack's containers and networks (and its volumes), then what was made
        for it alone: its variables file, throwaway secrets, its run's image tag.

        graceful=False stops the containers at once (SIGKILL) instead of giving them
        STOP_TIMEOUT_SECONDS to shut down: for a throwaway stack whose data goes with it.
        One script in a session of its own, waited for: an interrupt that ends this process
        (nox's parallel runner stops a session with SIGTERM, and SIGKILL two seconds later)
        cannot cut the removal short.
        """
        timeout = STOP_TIMEOUT_SECONDS if graceful else 0
        down = ["down", "--remove-orphans", "--timeout", str(timeout)]
        steps = [self.compose_arguments(*down, *(["--volumes"] if remove_volumes else []))]
        steps.append(["rm", "-rf", *(str(p) for p in (self.variables_file, *self.owned_paths))])
        if self.image_tag:
            tags = [f"{image_name(stage)}:{self.image_tag}" for stage in self.environment.stages]
            # In the same script as the compose down, for the same reason.
            steps.append(["docker", "image", "rm", *tags])
        script = "; ".join(shlex.join(step) + " >/dev/null 2>&1" for step in steps)
        run(["sh", "-c", script], new_session=True)

    def inspect_containers(self) -> dict[str, dict]:
        """Service -> `docker container inspect` of its container (running or not)."""
        return project_containers(self.project, stopped=True)

    def container_id(self, service: str) -> str:
        container = self.container_ids().get(service)
        if container is None:
            raise PipelineError(f"{self.project}: no container for service {service!r}.")
        return container

    def leftovers(self) -> dict[str, list[str]]:
        """Containers, networks and volumes that still carry this run's project label."""
        return project_objects(self.project)

    def print_unhealthy(self) -> list[str]:
        """Print logs and health log of every container not running healthy; name them."""
        unhealthy = []
        for service, entry in sorted(self.inspect_containers().items()):
            state = entry["State"]
            health = (state.get("Health") or {}).get("Status")
            if state.get("Running") and health in (None, "healthy"):
                continue
            unhealthy.append(service)
            say(
                f"{service} is {health or state.get('Status')} "
                f"(exit code {state.get('ExitCode')}); its last logs:"
            )
            print(container_logs(entry["Id"], tail=40), file=sys.stderr)
            for probe in ((state.get("Health") or {}).get("Log") or [])[-3:]:
                output = (probe.get("Output") or "").strip()
                say(f"{service} healthcheck exit {probe.get('ExitCode')}: {output}")
        return unhealthy


def project_objects(project: str) -> dict[str, list[str]]:
    """Containers, networks and volumes carrying a compose project's label, by name."""
    labelled = [("label", f"{PROJECT_LABEL}={project}")]
    with translated(f"listing what compose project {project!r} left"):
        containers = docker().container.list(all=True, filters=labelled)
        networks = docker().network.list(filters=labelled)
        volumes = docker().volume.list(filters=labelled)
        return {
            "containers": sorted(container.name for container in containers),
            "networks": sorted(network.name for network in networks),
            "volumes": sorted(volume.name for volume in volumes),
        }


def container_logs(container: str, *, tail: int) -> str:
    """The last `tail` lines a container wrote (stdout and stderr), or why they cannot be read."""
    try:
        with translated(f"reading the logs of {container[:12]}"):
            return docker().container.logs(container, tail=tail)
    except PipelineError as error:
        return str(error)


def port_is_free(host_ip: str, port: int) -> bool:
    """Whether nothing listens on host_ip:port, so Docker can publish a port there."""
    family = socket.AF_INET6 if ":" in host_ip else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        # As Docker's own listener does: connections just closed on that port (TIME_WAIT,
        # e.g. a container stopped a moment ago) do not make it taken; a listener does.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host_ip, port))
        except OSError as error:
            return error.errno != errno.EADDRINUSE
    return True


def _shown(path: Path) -> str:
    """A path as the user should read it: relative to the repo when inside it."""
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def _common_variables(environment: Environment) -> dict[str, str]:
    variables = dict(image_sources.image_references())
    if environment.tls:
        from pipeline.certs import ensure_dev_certs

        cert_directory = DEV_CERTS
        ensure_dev_certs(cert_directory)
        variables["TLS_CERT_DIR"] = str(cert_directory)
    return variables


def _preflight() -> None:
    preflight.require_all(
        preflight.require_engine, preflight.require_compose, image_sources.require_image_source
    )


def operator_stack(environment: Environment) -> Stack:
    """The user's own long-lived stack: project dashtam-<env> (or DASHTAM_PROJECT), their
    env file and ports."""
    project = operator_project(environment)
    _preflight()
    env_file = ensure_env_file(environment, operator_env_file(environment, project))
    variables = _common_variables(environment)
    if environment.tls and envfiles.read_values(env_file).get("TLS_CERT_DIR"):
        variables.pop("TLS_CERT_DIR")  # the operator chose their own certificates
    return Stack(environment, project, env_file, variables)


def verify_stack(
    environment: Environment,
    run_id: str | None = None,
    compose_file: Path | None = None,
    image_tag: str | None = None,
    override_files: tuple[Path, ...] = (),
    images: dict[str, str] | None = None,
) -> Stack:
    """A throwaway stack under a unique project name, with ephemeral host ports, running
    `images` (stage -> reference, through DASHTAM_<STAGE>_IMAGE; a shell's own value wins),
    with `override_files` layered over its compose file. `image_tag`: the run's own local tag
    of those images, removed with the stack."""
    _preflight()
    run_id = run_id or uuid.uuid4().hex[:8]
    project = f"{environment.project}-verify-{run_id}"
    variables = _common_variables(environment)
    # Port 0: Docker picks a free port, so runs never collide with each other or a dev stack.
    compose_file = compose_file or environment.compose_file
    variables.update({name: "0" for name in host_port_variables(compose_file)})
    variables.update({image_variable(stage): ref for stage, ref in (images or {}).items()})
    owned: tuple[Path, ...] = ()
    if environment.env_file_origin == "operator":
        # Nobody keeps this stack: the template as it is, and secret files made for it alone.
        env_file = environment.template_file
        assert env_file is not None, f"{environment.name}: an operator env file needs a template"
        secrets_directory = RUNS / f"{project}.secrets"
        write_secret_files(secrets_directory)
        variables[SECRETS_DIR_VARIABLE] = str(secrets_directory)
        owned = (secrets_directory,)
    else:
        env_file = ensure_env_file(environment)
    return Stack(
        environment, project, env_file, variables, compose_file, owned, image_tag, override_files
    )


def attach_stack(
    environment: Environment, project: str, env_file: Path, compose_file: Path | None = None
) -> Stack:
    """The stack a verify session booted, as the test suite sees it (variables file reused)."""
    stack = Stack(environment, project, env_file, compose_file=compose_file)
    stack.variables = envfiles.read_values(stack.variables_file)
    return stack
