"""Fixtures for the verification suite: every service of the stack under test is a testinfra host.

The `verify(<env>)` session boots the stack and names it in DASHTAM_VERIFY_* variables; run on
its own (`pytest tests/infra --environment ci`) the suite boots a throwaway stack itself,
before collection. Either way each running container becomes a testinfra host through
testinfra's own `--hosts` option, `inspector://<env>-<service>@<container>`: testinfra's
plugin parametrizes the `host` fixture with them, so a check is a function of `host` and
testinfra's modules, and its id names environment and service (`…[prod-app]`).

Why a backend of our own (pipeline/inspector_host.py) rather than testinfra's docker one: the
production and callback images have no shell and none of the tools testinfra's modules run,
and a check must not trust tools the image under test ships. The `inspector` backend runs
the same commands in a helper container that shares the target's PID and network namespaces
and enters its root with tools of its own; every service, shell-less or not, is read the
same way. The policy's runtime controls read the same hosts (pipeline.policy.runtime).

Facts — which services exist, what they declare — come from the environments model and
`docker compose config --format json`; policy — what must hold — from
pipeline/policy/controls.toml; what runs is read from the engine and through the hosts.
"""

from __future__ import annotations

import functools
import json
import os
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest
import testinfra
from testinfra.host import Host

from pipeline import envfiles, running
from pipeline import stack as stacks
from pipeline.environments import APP_SERVICES, DATA_SERVICES, ENVIRONMENTS, HEALTH_PATHS, SERVICES
from pipeline.inspector_host import host_spec
from pipeline.policy import Context, context_for, load_policy
from pipeline.policy.runtime import read_service
from pipeline.policy.views import ServiceView, from_container
from pipeline.preflight import NO_ENGINE, engine_answers
from pipeline.secret_files import SECRETS_DIR_VARIABLE, secret_values
from pipeline.verification import (
    COLLECTED_FILE_VARIABLE,
    COMPOSE_FILE_VARIABLE,
    CONFIG_FILE_VARIABLE,
    CONTAINERS_VARIABLE,
    ENV_FILE_VARIABLE,
    ENVIRONMENT_NAME_VARIABLE,
    FACTS_FILE_VARIABLE,
    PROJECT_VARIABLE,
)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--environment",
        choices=sorted(ENVIRONMENTS),
        default=None,
        help="environment to verify when no verify session booted one (boots a throwaway stack)",
    )


class Target:
    """The environment and running stack under test, resolved once per test run.

    What the checks read is looked up in the background as soon as the stack is known:
    Compose's config (the one the verify session read, when it hands it over), the
    containers (one reader: pipeline.running) and what the policy reads through each
    service's host, all at once, while pytest collects.
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
        else:
            self.stack = stacks.verify_stack(self.environment)
            self.stack.up()
            config.add_cleanup(lambda: self.stack.down(remove_volumes=True))
        self.facts_file = (
            Path(os.environ[FACTS_FILE_VARIABLE]) if os.environ.get(FACTS_FILE_VARIABLE) else None
        )
        self._background = ThreadPoolExecutor(max_workers=4)
        config_file = os.environ.get(CONFIG_FILE_VARIABLE)
        self._config = (
            self._background.submit(lambda: json.loads(Path(config_file).read_text()))
            if config_file
            else self._background.submit(self.stack.config)
        )
        handed = os.environ.get(CONTAINERS_VARIABLE)
        self.containers = (
            running.by_service(list(json.loads(handed).values()))
            if handed
            else running.project_containers(self.stack.project, stopped=True)
        )
        self._facts: Future | None = None

    @functools.cached_property
    def config(self) -> dict:
        return self._config.result()

    @property
    def services(self) -> list[str]:
        return [name for name in SERVICES if name in self.config["services"]]

    def host_specs(self) -> list[str]:
        """testinfra's --hosts: one inspector host per container, named <env>-<service>."""
        return [
            host_spec(entry["Id"], f"{self.environment.name}-{service}")
            for service, entry in self.containers.items()
            if service in SERVICES
        ]

    def host(self, service: str) -> Host:
        """The host of `service`: the very object testinfra's `host` fixture gives."""
        return self.hosts[f"{self.environment.name}-{service}"]

    def use_testinfra_hosts(self, config: pytest.Config) -> None:
        """The Host objects testinfra's plugin parametrizes `host` with (asked the way it
        asks, so its cache returns the same objects), each made ready in the background
        while pytest collects."""
        option = config.option
        hosts = testinfra.get_hosts(
            option.hosts.split(","),
            connection=option.connection,
            ssh_config=option.ssh_config,
            ssh_identity_file=option.ssh_identity_file,
            sudo=option.sudo,
            sudo_user=option.sudo_user,
            ansible_inventory=option.ansible_inventory,
            force_ansible=option.force_ansible,
        )
        self.hosts = {host.backend.get_pytest_id(): host for host in hosts}
        for host in hosts:
            self._background.submit(make_ready, host)

    def inspect(self, service: str) -> dict:
        """`docker container inspect` of a service's container."""
        return self.containers[service]

    def read_facts_in_background(self) -> None:
        """Start reading what the policy judges, through every host, once."""
        if self._facts is None:
            self._facts = self._background.submit(self._gather_facts)

    def facts(self) -> dict[str, dict]:
        """Service -> what the policy reads through its host."""
        self.read_facts_in_background()
        return self._facts.result()

    @functools.cached_property
    def image_configs(self) -> dict[str, dict]:
        """Image ID -> `docker image inspect` of every image the stack runs, read at once."""
        return running.image_configurations(self.containers)

    def image_config(self, image_id: str) -> dict:
        """`docker image inspect` of the image a container runs (by its ID, never a tag)."""
        return self.image_configs[image_id]

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

    def _gather_facts(self) -> dict[str, dict]:
        services = [service for service in self.services if service in self.containers]
        with ThreadPoolExecutor(max_workers=max(len(services), 1)) as pool:
            readings = {
                service: pool.submit(
                    read_service,
                    self.host(service),
                    service,
                    self.environment,
                    self.inspect(service),
                )
                for service in services
            }
            facts = {service: reading.result() for service, reading in readings.items()}
        if self.facts_file:
            self.facts_file.write_text(json.dumps(facts))
        return facts


def make_ready(host: Host) -> None:
    """What testinfra asks a host once before its first check, asked now: the system it is,
    and which of its user, file, process and socket implementations fit (a few commands
    each; the helper is started here if it was not yet)."""
    for module in ("system_info", "user", "file", "process", "socket"):
        getattr(host, module)
    host.system_info.type  # noqa: B018 - reading it is what makes testinfra ask


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "docker: needs a Docker engine")
    # A verify session names the stack it just booted: the engine answers, no need to ask.
    if not os.environ.get(PROJECT_VARIABLE) and not engine_answers():
        config._dashtam_target = None
        return
    target = Target(config)
    config._dashtam_target = target
    if config.option.hosts is None:
        config.option.hosts = ",".join(target.host_specs())
    target.use_testinfra_hosts(config)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Before any -k or -m narrows the run: list every case collected, for the verdict (a
    run that did not run them all is never a PASS)."""
    collected_file = os.environ.get(COLLECTED_FILE_VARIABLE)
    if collected_file:
        Path(collected_file).write_text(json.dumps([item.name for item in items]))
    if config._dashtam_target is not None:
        return
    if os.environ.get("CI"):
        raise pytest.UsageError("no Docker engine answers, and CI requires one for tests/infra")
    skip = pytest.mark.skip(reason=NO_ENGINE)
    for item in items:
        item.add_marker(skip)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Read what the policy judges while the first checks run, when any selected check
    needs it (a run narrowed to others, `-k health`, does not pay for it)."""
    target = session.config._dashtam_target
    if target is not None and any(
        {"facts", "policy_case"} & set(getattr(item, "fixturenames", ())) for item in session.items
    ):
        target.read_facts_in_background()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrize what is not a host by what the environment really runs, with ids that
    read well (`host` is testinfra's: its plugin parametrizes it with --hosts). Every check
    is listed for every service it could apply to: one that does not apply says so
    (skipped, with its reason), so nothing leaves the report without a trace."""
    target = metafunc.config._dashtam_target
    environment_name = target.environment.name if target else "none"
    services = target.services if target else list(SERVICES)
    groups = {
        "service": services,
        "app_service": [s for s in services if s in APP_SERVICES],
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
    return request.config._dashtam_target


@pytest.fixture(scope="session")
def environment_name(target: Target) -> str:
    return target.environment.name


@pytest.fixture(scope="module")
def host_service(host: Host) -> str:
    """The compose service a host is (its id is <env>-<service>)."""
    return host.backend.get_pytest_id().split("-", 1)[1]


@pytest.fixture(scope="session")
def facts(target: Target) -> dict[str, dict]:
    """Service -> what the policy reads through its host."""
    return target.facts()


@pytest.fixture(scope="session")
def service_config(target: Target):
    return lambda service: target.config["services"][service]


@pytest.fixture(scope="session")
def container_inspect(target: Target):
    """Service -> `docker container inspect` of its container."""
    return target.inspect
