"""Fixtures for the verification suite: the stack under test, read from outside.

The `verify(<env>)` session boots the stack and names it in DASHTAM_VERIFY_* variables;
run on its own (`pytest tests/infra --environment ci`) the suite boots a throwaway stack
itself. Facts — which services exist, what they declare — come from the environments model
and `docker compose config --format json`; policy — what must hold — from
pipeline/policy/controls.toml; what runs is read from `docker inspect` and from the
inspector, a helper container in each container's PID and network namespaces
(pipeline.inspection), so images without a shell are read like any other.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

from pipeline import envfiles, inspection
from pipeline import stack as stacks
from pipeline.environments import (
    APP_GID,
    APP_SERVICES,
    APP_UID,
    DATA_SERVICES,
    ENVIRONMENTS,
    HEALTH_PATHS,
    SERVICES,
)
from pipeline.policy import Context, context_for, load_policy
from pipeline.policy.views import ServiceView, from_container
from pipeline.preflight import NO_ENGINE, engine_answers
from pipeline.secret_files import SECRETS_DIR_VARIABLE, secret_values
from pipeline.verification import (
    COMPOSE_FILE_VARIABLE,
    ENV_FILE_VARIABLE,
    ENVIRONMENT_NAME_VARIABLE,
    FACTS_FILE_VARIABLE,
    PROJECT_VARIABLE,
)
from tests.infra.helpers import host_url, network_url

# A state no real provider issued, fresh for each run: the callback's first-code-wins check.
PROBE_STATE = f"verify-{uuid.uuid4().hex}"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--environment",
        choices=sorted(ENVIRONMENTS),
        default=None,
        help="environment to verify when no verify session booted one (boots a throwaway stack)",
    )


def callback_probe_urls(scheme: str) -> list[str]:
    """The same state delivered twice, from inside the stack: the second must be refused."""
    path = f"/oauth/callback?code=first-{uuid.uuid4().hex[:8]}&state={PROBE_STATE}"
    second = path.replace("code=first-", "code=second-")
    return [network_url(scheme, "callback", path), network_url(scheme, "callback", second)]


class Target:
    """The environment and stack under test, resolved once per test run.

    Everything the checks read from Docker is looked up in the background as soon as the
    stack is known: Compose's config, container IDs, `docker inspect` of the containers and
    their images, and one inspector run per container, all at once, while pytest collects.
    """

    def __init__(self, config: pytest.Config) -> None:
        environment_name = (
            os.environ.get(ENVIRONMENT_NAME_VARIABLE) or config.getoption("--environment") or "ci"
        )
        self.environment = ENVIRONMENTS[environment_name]
        project = os.environ.get(PROJECT_VARIABLE)
        compose_file = os.environ.get(COMPOSE_FILE_VARIABLE)
        if project:
            self.stack = stacks.attach_stack(
                self.environment,
                project,
                Path(os.environ[ENV_FILE_VARIABLE]),
                Path(compose_file) if compose_file else None,
            )
            self.boots_here = False
        else:
            self.stack = stacks.verify_stack(self.environment)
            self.boots_here = True
        self.facts_file = (
            Path(os.environ[FACTS_FILE_VARIABLE]) if os.environ.get(FACTS_FILE_VARIABLE) else None
        )
        self._background = ThreadPoolExecutor(max_workers=4)
        self._config = self._background.submit(self.stack.config)
        self._inspector = self._background.submit(inspection.ensure_inspector_image)
        self._lookups: dict[str, Future] = {}
        if not self.boots_here:
            self.look_up_running_stack()

    def look_up_running_stack(self) -> None:
        self._lookups["ids"] = self._background.submit(self.stack.container_ids)
        self._lookups["inspect"] = self._background.submit(self._inspect_containers)
        self._lookups["facts"] = self._background.submit(self._gather_facts)

    @functools.cached_property
    def config(self) -> dict:
        return self._config.result()

    @property
    def services(self) -> list[str]:
        return [name for name in SERVICES if name in self.config["services"]]

    def container_ids(self) -> dict[str, str]:
        return self._lookups["ids"].result()

    def inspect(self, service: str) -> dict:
        """`docker container inspect` of a service's container."""
        return self._lookups["inspect"].result()[service]

    def facts(self) -> dict[str, dict]:
        """Service -> what the inspector read from outside its container."""
        return self._lookups["facts"].result()

    @functools.cache  # noqa: B019 - one Target per run
    def image_config(self, image_id: str) -> dict:
        """`docker image inspect` of the image a container runs (by its ID, never a tag)."""
        return docker_json("image", "inspect", image_id)[0]

    def view(self, service: str) -> ServiceView:
        inspect = self.inspect(service)
        return from_container(
            service, inspect, self.image_config(inspect["Image"]), self.facts()[service]
        )

    @functools.cached_property
    def secret_values(self) -> tuple[str, ...]:
        """The stack's secrets, to look for where they must not be: the secret files of a
        prod stack, the password variables of the env file elsewhere."""
        directory = self.stack.variables.get(SECRETS_DIR_VARIABLE)
        if directory:
            return tuple(secret_values(Path(directory)))
        values = envfiles.read_values(self.stack.env_file)
        return tuple(
            value for name, value in values.items() if value and envfiles.is_secret_name(name)
        )

    def context(self, service: str) -> Context:
        return context_for(self.environment, service, self.secret_values)

    def _inspect_containers(self) -> dict[str, dict]:
        ids = self.container_ids()
        by_id = {entry["Id"]: entry for entry in docker_json("container", "inspect", *ids.values())}
        return {service: by_id[container] for service, container in ids.items()}

    def _inspector_options(self, service: str) -> list[str]:
        """What to read from one container, besides processes, sockets and mounts."""
        options = ["--users", "--app-uid", str(APP_UID), "--app-gid", str(APP_GID)]
        if service in APP_SERVICES:
            # The image's files are the policy's only for images we build (the controls on a
            # data store's image say they do not apply), so only ours are walked.
            options.append("--files")
            policy = load_policy()
            options += [
                f"--writable-as={APP_UID}:{path}" for path in policy.writable_paths[service]
            ]
            options += [
                "--glob",
                "/app/tests",
                "--glob",
                "/app/.venv/lib/python*/site-packages/*.dist-info",
                "--glob",
                "/etc/ld.so.cache",
                "--glob",
                "/etc/python3*",
            ]
            environment = dict(
                entry.split("=", 1) for entry in self.inspect(service)["Config"]["Env"] or []
            )
            if environment.get("APP_TLS_KEY_FILE"):
                options.append(f"--readable-as={APP_UID}:{environment['APP_TLS_KEY_FILE']}")
            options += ["--connect", "postgres:5432", "--connect", "redis:6379"]
        if service == "postgres":
            environment = dict(
                entry.split("=", 1) for entry in self.inspect(service)["Config"]["Env"] or []
            )
            options += ["--postgres", environment.get("POSTGRES_USER", "postgres")]
        if service == "redis":
            options.append("--redis")
        if service == "app":
            options += [f"--fetch={url}" for url in self._urls_inside()]
        return options

    def _urls_inside(self) -> list[str]:
        """The endpoints with no host port (fetched in the app's network), and the callback's
        first-code-wins probe."""
        scheme = self.environment.scheme
        inside = [
            network_url(scheme, service, path)
            for service in self.services
            for path in HEALTH_PATHS.get(service, ())
            if host_url(scheme, self.inspect(service), service, path) is None
        ]
        return inside + (callback_probe_urls(scheme) if "callback" in self.services else [])

    def _gather_facts(self) -> dict[str, dict]:
        ids = self.container_ids()
        image = self._inspector.result()
        with ThreadPoolExecutor(max_workers=max(len(ids), 1)) as pool:
            readings = {
                service: pool.submit(
                    inspection.inspect_container, container, image, self._inspector_options(service)
                )
                for service, container in ids.items()
            }
            facts = {service: reading.result() for service, reading in readings.items()}
        if self.facts_file:
            self.facts_file.write_text(json.dumps(facts))
        return facts


def docker_json(*arguments: str) -> list[dict]:
    output = subprocess.run(
        ["docker", *arguments], capture_output=True, text=True, check=True
    ).stdout
    return json.loads(output)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "docker: needs a Docker engine")
    # A verify session names the stack it just booted: the engine answers, no need to ask.
    if not os.environ.get(PROJECT_VARIABLE) and not engine_answers():
        config._dashtam_target = None
        return
    config._dashtam_target = Target(config)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config._dashtam_target is not None:
        return
    if os.environ.get("CI"):
        raise pytest.UsageError("no Docker engine answers, and CI requires one for tests/infra")
    skip = pytest.mark.skip(reason=NO_ENGINE)
    for item in items:
        item.add_marker(skip)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrize by what the environment really runs, with ids that read well. Every
    check is listed for every service it could apply to: one that does not apply says so
    (skipped, with its reason), so nothing leaves the report without a trace."""
    target = metafunc.config._dashtam_target
    environment_name = target.environment.name if target else "none"
    services = target.services if target else list(SERVICES)
    ours = [s for s in services if s in APP_SERVICES]
    groups = {
        "service": services,
        "app_service": ours,
        "data_store": [s for s in services if s in DATA_SERVICES],
    }
    for fixture, values in groups.items():
        if fixture in metafunc.fixturenames:
            metafunc.parametrize(fixture, values, ids=[f"{environment_name}-{v}" for v in values])
    if "endpoint" in metafunc.fixturenames:
        endpoints = [(s, p) for s in services for p in HEALTH_PATHS.get(s, ())]
        metafunc.parametrize(
            "endpoint",
            endpoints,
            ids=[f"{environment_name}-{s}{p.replace('/', '-')}" for s, p in endpoints],
        )
    if "policy_case" in metafunc.fixturenames:
        cases = [(control, s) for control in load_policy().controls for s in services]
        metafunc.parametrize(
            "policy_case",
            cases,
            ids=[f"{environment_name}-{s}-{control.id}" for control, s in cases],
        )


@pytest.fixture(scope="session")
def target(request: pytest.FixtureRequest) -> Target:
    target = request.config._dashtam_target
    if target.boots_here:
        target.stack.up()
        request.addfinalizer(lambda: target.stack.down(remove_volumes=True))
        target.look_up_running_stack()
    return target


@pytest.fixture(scope="session")
def environment_name(target: Target) -> str:
    return target.environment.name


@pytest.fixture(scope="session")
def facts(target: Target) -> dict[str, dict]:
    """Service -> what the inspector read from outside its container."""
    found = target.facts()
    failed = {service: fact["error"] for service, fact in found.items() if "error" in fact}
    if failed:
        pytest.fail(f"[{target.environment.name}] the inspector could not read: {failed}")
    return found


@pytest.fixture(scope="session")
def service_config(target: Target):
    return lambda service: target.config["services"][service]


@pytest.fixture(scope="session")
def container_inspect(target: Target):
    """Service -> `docker container inspect` of its container."""
    return target.inspect
