"""The environments model: the one source of truth that sessions and tests read.

Each environment names its compose file, its env file and template, the image stages
it runs, and what the stack promises (TLS, hardening, which services are ours). What
compose itself declares — services, published ports, volumes, limits — is read from
`docker compose config --format json`, never re-typed here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import PipelineError
from src.ports import SERVICE_PORTS as APP_SERVICE_PORTS

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "docker" / "Dockerfile"
REPORTS = ROOT / "reports"
DEV_CERTS = ROOT / "certs" / "dev"

# Every stage of docker/Dockerfile the pipeline builds, in build order; tagged dashtam/<stage>.
STAGES = ("base", "development", "builder", "production", "callback")
IMAGE_NAMESPACE = "dashtam"
# The stages that ship: no compiler, no uv, no tests, no dev packages.
RUNTIME_STAGES = ("production", "callback")

# The non-root user our images run as.
APP_USER = "appuser"
APP_UID = 1000
APP_GID = 1000

# Services built from our Dockerfile (run as appuser), and the data stores (their own users).
APP_SERVICES = ("app", "callback")
DATA_SERVICES = ("postgres", "redis")
SERVICES = APP_SERVICES + DATA_SERVICES

# The TCP port each service listens on inside its container: exactly these, no other.
# Our two services' ports come from the app itself (src/ports.py, dependency-free).
SERVICE_PORTS = {**APP_SERVICE_PORTS, "postgres": 5432, "redis": 6379}

# The user each data store's processes run as (never root).
DATA_SERVICE_USERS = {"postgres": "postgres", "redis": "redis"}

# The naming scheme of every variable a compose file interpolates (besides the base image
# variables of pipeline.image_sources): lint holds the compose files to it, and the tests
# clear variables with these prefixes from their environment so only the env files steer.
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

# Health endpoints each of our services answers with 200 when the stack is ready.
HEALTH_PATHS = {"app": ("/health", "/health/ready"), "callback": ("/health",)}


@dataclass(frozen=True)
class Environment:
    name: str
    description: str
    stages: tuple[str, ...]  # image stages the stack runs
    tls: bool  # app and callback serve https
    # Where the env file comes from when it is missing:
    #   "template": copied from the template on first use (dev, test)
    #   "committed": tracked in git (ci)
    #   "operator": written by the operator; verify uses a throwaway copy of the template
    env_file_origin: str
    template: str | None
    # Services that may publish a host port, and the only host address they may bind
    # (None: any address). Everything else publishes nothing.
    published_services: tuple[str, ...] = ()
    host_bind_address: str | None = None
    # The services held to the policy's restricted profile on top of its baseline
    # (pipeline/policy/controls.toml): every service in prod, and our services wherever the
    # production images run. The compose file has no say in it.
    restricted_services: tuple[str, ...] = ()
    # Whether each service is on the networks it needs and no other (the callback reaches
    # Redis and not PostgreSQL; the data stores reach nothing outside).
    networks_by_need: bool = False
    # Whether the stack's credentials are secrets kept as files (Compose secrets); where they
    # are not, why that is fine (secrets_reason).
    secrets_as_files: bool = False
    secrets_reason: str = ""

    @property
    def project(self) -> str:
        return f"dashtam-{self.name}"

    @property
    def compose_file(self) -> Path:
        return ROOT / "compose" / f"docker-compose.{self.name}.yml"

    @property
    def env_file(self) -> Path:
        return ROOT / "env" / f".env.{self.name}"

    @property
    def template_file(self) -> Path | None:
        return ROOT / "env" / self.template if self.template else None

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"


# dev and test are the two stacks a developer runs side by side: the development image, an
# env file from the template, every port published on 127.0.0.1 only.
_WORKSTATION_STACK = {
    "stages": ("development",),
    "env_file_origin": "template",
    "template": ".env.example",
    "published_services": SERVICES,
    "host_bind_address": "127.0.0.1",
    "secrets_reason": "the developer's own values in env/.env.<env>, on a workstation",
}

ENVIRONMENTS: dict[str, Environment] = {
    environment.name: environment
    for environment in (
        Environment(
            name="dev",
            description="development image, hot reload, TLS, 127.0.0.1 ports, named volumes",
            tls=True,
            **_WORKSTATION_STACK,
        ),
        Environment(
            name="test",
            description="development image for the app's own tests, tmpfs data, other ports",
            tls=False,
            **_WORKSTATION_STACK,
        ),
        Environment(
            name="ci",
            description="production and callback images, no host ports, tmpfs data",
            stages=("production", "callback"),
            tls=False,
            env_file_origin="committed",
            template=None,
            restricted_services=APP_SERVICES,
            networks_by_need=True,
            secrets_reason="ci's credentials are committed throwaway values (env/.env.ci) of "
            "a stack that publishes nothing",
        ),
        Environment(
            name="prod",
            description="production and callback images, TLS, read-only and hardened",
            stages=("production", "callback"),
            tls=True,
            env_file_origin="operator",
            template=".env.prod.example",
            published_services=APP_SERVICES,
            restricted_services=SERVICES,
            networks_by_need=True,
            secrets_as_files=True,
        ),
    )
}


def environment(name: str) -> Environment:
    """The environment called `name`, or a one-line error listing the known ones."""
    try:
        return ENVIRONMENTS[name]
    except KeyError:
        raise PipelineError(
            f"unknown environment {name!r}; use one of: {', '.join(ENVIRONMENTS)}."
        ) from None


def stage(name: str) -> str:
    """Validate a stage name against docker/Dockerfile's stages."""
    if name not in STAGES:
        raise PipelineError(f"unknown stage {name!r}; use one of: {', '.join(STAGES)}.")
    return name


def image_name(stage_name: str) -> str:
    return f"{IMAGE_NAMESPACE}/{stage_name}"
