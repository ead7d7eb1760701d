"""Stack lifecycle: env files, compose up/down/status/logs, and what is left after a run."""

from __future__ import annotations

import contextlib
import errno
import json
import re
import secrets
import shutil
import socket
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline import image_sources, preflight
from pipeline.environments import DEV_CERTS, ROOT, Environment
from pipeline.errors import PipelineError

if TYPE_CHECKING:
    from python_on_whales import DockerClient

# python-on-whales (and pydantic under it) is imported where a method needs it: the suite in
# tests/infra attaches to a booted stack through config() and container_ids() alone, and
# pays half a second less per run for it.

# Per-run variable files (image references, ports, throwaway secrets): git-ignored.
RUNS = ROOT / ".dashtam" / "runs"
PROJECT_LABEL = "com.docker.compose.project"
WAIT_TIMEOUT_SECONDS = 180
STOP_TIMEOUT_SECONDS = 10

# `ports: ["127.0.0.1:${APP_PORT:-8000}:8000"]` -> APP_PORT publishes container port 8000.
_PORT_VARIABLE = re.compile(r"\$\{(\w+)(?::?-[^}]*)?\}:(\d+)")


def say(message: str) -> None:
    print(f"dashtam: {message}", file=sys.stderr, flush=True)


def host_port_variables(compose_file: Path) -> dict[str, int]:
    """Variable -> container port it publishes, read from the compose file itself."""
    text = compose_file.read_text()
    return {match.group(1): int(match.group(2)) for match in _PORT_VARIABLE.finditer(text)}


def ensure_env_file(environment: Environment) -> Path:
    """The environment's env file; dev/test are created from the template on first use."""
    env_file = environment.env_file
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


def throwaway_env_file(environment: Environment, project: str) -> Path:
    """A copy of the template with generated secrets, for verifying a stack nobody keeps."""
    assert environment.template_file is not None
    RUNS.mkdir(parents=True, exist_ok=True)
    path = RUNS / f"{project}.secrets.env"
    lines = []
    for line in environment.template_file.read_text().splitlines():
        name, separator, value = line.partition("=")
        if separator and not line.lstrip().startswith("#") and not value and _is_secret(name):
            value = secrets.token_urlsafe(24)
        lines.append(f"{name}{separator}{value}" if separator else line)
    path.touch(mode=0o600)
    path.write_text("\n".join(lines) + "\n")
    return path


def _is_secret(name: str) -> bool:
    return any(word in name for word in ("PASSWORD", "SECRET", "TOKEN"))


@dataclass
class Stack:
    """One compose project of one environment: the user's own, or a verify run's."""

    environment: Environment
    project: str
    env_file: Path
    variables: dict[str, str] = field(default_factory=dict)
    owns_env_file: bool = False  # a throwaway env file, deleted with the stack
    compose_file: Path | None = None  # defaults to the environment's; the self-test swaps it

    def __post_init__(self) -> None:
        self.compose_file = self.compose_file or self.environment.compose_file

    @property
    def variables_file(self) -> Path:
        return RUNS / f"{self.project}.env"

    @property
    def env_files(self) -> list[Path]:
        return [self.env_file, self.variables_file]

    def write_variables(self) -> None:
        RUNS.mkdir(parents=True, exist_ok=True)
        body = "".join(f"{name}={value}\n" for name, value in sorted(self.variables.items()))
        self.variables_file.write_text(
            "# Written by the pipeline for this run: image references, ports, cert folder.\n" + body
        )

    @property
    def client(self) -> DockerClient:
        from python_on_whales import DockerClient

        self.write_variables()
        return DockerClient(
            compose_files=[self.compose_file],
            compose_env_files=self.env_files,
            compose_project_name=self.project,
        )

    def compose_command(self) -> str:
        """The plain `docker compose` command line that reaches this stack."""
        files = " ".join(f"--env-file {_shown(path)}" for path in self.env_files)
        return f"docker compose -p {self.project} -f {_shown(self.compose_file)} {files}"

    def config(self) -> dict:
        """`docker compose config --format json`: the stack as Compose resolves it."""
        self.write_variables()
        command = ["docker", "compose", "-p", self.project, "-f", str(self.compose_file)]
        for path in self.env_files:
            command += ["--env-file", str(path)]
        command += ["config", "--format", "json"]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise PipelineError(_compose_error(self, result.stderr, result.returncode))
        return json.loads(result.stdout)

    def container_ids(self) -> dict[str, str]:
        """Service -> container ID, for every container of this project (running or not)."""
        listing = subprocess.run(
            [
                "docker",
                "ps",
                "--all",
                "--no-trunc",
                "--filter",
                f"label={PROJECT_LABEL}={self.project}",
                "--format",
                '{{.Label "com.docker.compose.service"}} {{.ID}}',
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        return dict(line.split() for line in listing.stdout.splitlines() if line.count(" ") == 1)

    def check_host_ports_free(self) -> None:
        """Fail before Compose does, naming the variable to change, when a host port is taken."""
        if self.containers():
            return  # the stack is already up: its own ports are taken by itself
        port_variables = host_port_variables(self.compose_file)
        for service_name, service in self.config().get("services", {}).items():
            for port in service.get("ports", []):
                published = int(port.get("published") or 0)
                if not published:
                    continue
                host_ip = port.get("host_ip") or "0.0.0.0"  # noqa: S104 - probing, not serving
                if _port_is_free(host_ip, published):
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

    def up(self) -> None:
        from python_on_whales.exceptions import DockerException

        try:
            self.client.compose.up(
                detach=True,
                wait=True,
                wait_timeout=WAIT_TIMEOUT_SECONDS,
                # Air-gapped: a missing image is named by the preflight, never pulled.
                pull="never"
                if image_sources.selected_source() == image_sources.AIRGAP
                else "missing",
            )
        except DockerException as error:
            unhealthy = self.print_unhealthy()
            if unhealthy:
                raise PipelineError(
                    f"{self.project}: {', '.join(unhealthy)} did not become healthy "
                    f"(waited up to {WAIT_TIMEOUT_SECONDS} s); "
                    "the logs and health log above say why."
                ) from None
            raise PipelineError(_compose_error(self, error.stderr, error.return_code)) from None

    def down(self, *, remove_volumes: bool) -> None:
        from python_on_whales.exceptions import DockerException

        with contextlib.suppress(DockerException):
            self.client.compose.down(
                volumes=remove_volumes,
                remove_orphans=True,
                timeout=STOP_TIMEOUT_SECONDS,
                quiet=True,
            )
        if self.owns_env_file:
            self.env_file.unlink(missing_ok=True)
        self.variables_file.unlink(missing_ok=True)

    def containers(self) -> list:
        from python_on_whales import docker

        return docker.container.list(
            all=True, filters=[("label", f"{PROJECT_LABEL}={self.project}")]
        )

    def container(self, service: str):
        for container in self.containers():
            if container.config.labels.get("com.docker.compose.service") == service:
                return container
        raise PipelineError(f"{self.project}: no container for service {service!r}.")

    def leftovers(self) -> dict[str, list[str]]:
        """Containers, networks and volumes that still carry this run's project label."""
        from python_on_whales import docker

        label = [("label", f"{PROJECT_LABEL}={self.project}")]
        return {
            "containers": [c.name for c in docker.container.list(all=True, filters=label)],
            "networks": [n.name for n in docker.network.list(filters=label)],
            "volumes": [v.name for v in docker.volume.list(filters=label)],
        }

    def print_unhealthy(self) -> list[str]:
        """Print logs and health log of every container not running healthy; name them."""
        from python_on_whales import docker
        from python_on_whales.exceptions import DockerException

        unhealthy = []
        for container in self.containers():
            state = container.state
            health = state.health.status if state.health else None
            if state.running and health in (None, "healthy"):
                continue
            service = container.config.labels.get("com.docker.compose.service", container.name)
            unhealthy.append(service)
            say(
                f"{service} is {health or state.status} "
                f"(exit code {state.exit_code}); its last logs:"
            )
            with contextlib.suppress(DockerException):
                print(docker.container.logs(container, tail=40), file=sys.stderr)
            for probe in (state.health.log or [])[-3:] if state.health else []:
                say(f"{service} healthcheck exit {probe.exit_code}: {(probe.output or '').strip()}")
        return unhealthy


def _port_is_free(host_ip: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host_ip else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host_ip, port))
        except OSError as error:
            return error.errno != errno.EADDRINUSE
    return True


def _compose_error(stack: Stack, stderr: str | None, return_code: int) -> str:
    """Compose's own last line (it names the variable or file), with where to fix it."""
    lines = [line.strip() for line in (stderr or "").splitlines() if line.strip()]
    reason = lines[-1] if lines else f"docker compose exited {return_code}"
    return f"{_shown(stack.compose_file)} with {_shown(stack.env_file)}: {reason}"


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


def _preflight(environment: Environment) -> None:
    preflight.require_engine()
    preflight.require_compose()
    if image_sources.selected_source() == image_sources.AIRGAP:
        from pipeline import base_images

        base_images.require_stand_ins()


def operator_stack(environment: Environment) -> Stack:
    """The user's own long-lived stack: project dashtam-<env>, their env file and ports."""
    _preflight(environment)
    env_file = ensure_env_file(environment)
    variables = _common_variables(environment)
    if environment.tls and _env_value(env_file, "TLS_CERT_DIR"):
        variables.pop("TLS_CERT_DIR")  # the operator chose their own certificates
    return Stack(environment, environment.project, env_file, variables)


def verify_stack(
    environment: Environment, run_id: str | None = None, compose_file: Path | None = None
) -> Stack:
    """A throwaway stack under a unique project name, with ephemeral host ports."""
    _preflight(environment)
    run_id = run_id or uuid.uuid4().hex[:8]
    project = f"{environment.project}-verify-{run_id}"
    if environment.env_file_origin == "operator":
        env_file, owns = throwaway_env_file(environment, project), True
    else:
        env_file, owns = ensure_env_file(environment), False
    variables = _common_variables(environment)
    # Port 0: Docker picks a free port, so runs never collide with each other or a dev stack.
    compose_file = compose_file or environment.compose_file
    variables.update({name: "0" for name in host_port_variables(compose_file)})
    return Stack(environment, project, env_file, variables, owns, compose_file)


def attach_stack(
    environment: Environment, project: str, env_file: Path, compose_file: Path | None = None
) -> Stack:
    """The stack a verify session booted, as the test suite sees it (variables file reused)."""
    stack = Stack(environment, project, env_file, compose_file=compose_file)
    stack.variables = _read_variables(stack.variables_file)
    return stack


def _read_variables(path: Path) -> dict[str, str]:
    variables = {}
    for line in path.read_text().splitlines() if path.is_file() else []:
        name, separator, value = line.partition("=")
        if separator and not line.startswith("#"):
            variables[name] = value
    return variables


def _env_value(path: Path, name: str) -> str:
    return _read_variables(path).get(name, "")
