"""Fixtures for the verification suite: the stack under test, its containers and images.

The `verify(<env>)` session boots the stack and names it in DASHTAM_VERIFY_* variables;
run on its own (`pytest tests/infra --environment ci`) the suite boots a throwaway stack
itself. Everything expected comes from the environments model and from
`docker compose config --format json` — never from lists typed here.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest
import testinfra

from pipeline import stack as stacks
from pipeline.environments import (
    APP_SERVICES,
    DATA_SERVICE_USERS,
    DATA_SERVICES,
    ENVIRONMENTS,
    HEALTH_PATHS,
    RUNTIME_STAGES,
    SERVICES,
    image_name,
)
from pipeline.inspection import (
    LISTENING_SCRIPT,
    PROCESSES_SCRIPT,
    Fact,
    facts_script,
    split_facts,
)
from pipeline.verification import (
    COMPOSE_FILE_VARIABLE,
    ENV_FILE_VARIABLE,
    ENV_VARIABLE,
    PROJECT_VARIABLE,
)
from tests.infra.helpers import fetch_inside_command, host_url, network_url, unowned_files_command


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--environment",
        choices=sorted(ENVIRONMENTS),
        default=None,
        help="environment to verify when no verify session booted one (boots a throwaway stack)",
    )


def _engine_answers() -> bool:
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


class Target:
    """The environment and stack under test, resolved once per test run.

    Everything the checks read from Docker is looked up in the background as soon as the
    stack is known: Compose's config, container IDs, `docker inspect`, and one script per
    container. A `docker` call costs about 0.1 s of waiting on the engine; these overlap
    each other and pytest's own collection, instead of following one another.
    """

    def __init__(self, config: pytest.Config) -> None:
        name = os.environ.get(ENV_VARIABLE) or config.getoption("--environment") or "ci"
        self.environment = ENVIRONMENTS[name]
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
        self._background = ThreadPoolExecutor(max_workers=4)
        self._config = self._background.submit(self.stack.config)
        self._lookups: dict[str, Future] = {}
        if not self.boots_here:
            self.look_up_running_stack()

    def look_up_running_stack(self) -> None:
        """Start reading the running stack: IDs, then inspect, then the in-container facts."""
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
        """Service -> container ID."""
        return self._lookups["ids"].result()

    def inspect(self, service: str) -> dict:
        """`docker container inspect` of a service's container."""
        return self._lookups["inspect"].result()[service]

    def facts(self) -> dict[str, dict[str, Fact]]:
        """Service -> {fact: Fact(exit code, output)}, read inside each container."""
        return self._lookups["facts"].result()

    def _inspect_containers(self) -> dict[str, dict]:
        ids = self.container_ids()
        output = subprocess.run(
            ["docker", "container", "inspect", *ids.values()],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        by_id = {entry["Id"]: entry for entry in json.loads(output)}
        return {service: by_id[container] for service, container in ids.items()}

    def _gather_facts(self) -> dict[str, dict[str, Fact]]:
        """One script per container, as root (to see every process), all at once; the
        in-network fetch of endpoints with no host port runs alongside, in the app container."""
        ids = self.container_ids()
        declared = self.config["services"]
        sections: dict[str, dict[str, str]] = {}
        for service in ids:
            facts = {"processes": PROCESSES_SCRIPT, "listening": LISTENING_SCRIPT}
            if service in APP_SERVICES:
                facts["unowned"] = unowned_files_command(declared[service])
            if service in DATA_SERVICE_USERS:
                facts["uid"] = f"id -u {DATA_SERVICE_USERS[service]}"
            sections[service] = facts
        scheme = self.environment.scheme
        inside = [
            network_url(scheme, service, path)
            for service in self.services
            if service in ids
            for path in HEALTH_PATHS.get(service, ())
            if host_url(scheme, self.inspect(service), service, path) is None
        ]
        # One worker per container, running that container's execs one after another (two
        # at once would see each other starting); the fetch runs as the image's user.
        execs: dict[str, list[tuple[str, dict[str, str]]]] = {
            service: [(f"root@{ids[service]}", facts)] for service, facts in sections.items()
        }
        if inside and "app" in ids:
            execs["app"].append((ids["app"], {"fetched": fetch_inside_command(inside)}))

        def read(service: str) -> dict[str, Fact]:
            found: dict[str, Fact] = {}
            for spec, facts in execs[service]:
                result = testinfra.get_host(f"docker://{spec}").run(facts_script(facts))
                found.update(split_facts(result.stdout))
                # An exec that could not run (a container that is gone) reports each
                # section it was asked for as failed, with what `docker exec` said.
                for name in facts:
                    found.setdefault(name, Fact(result.rc or -1, result.stderr))
            return found

        with ThreadPoolExecutor(max_workers=max(len(execs), 1)) as pool:
            readings = {service: pool.submit(read, service) for service in execs}
            found = {service: reading.result() for service, reading in readings.items()}
        return found


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "docker: needs a Docker engine")
    # A verify session names the stack it just booted: the engine answers, no need to ask.
    if not os.environ.get(PROJECT_VARIABLE) and not _engine_answers():
        config._dashtam_target = None
        return
    config._dashtam_target = Target(config)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config._dashtam_target is not None:
        # A check that applies to nothing in this environment is not run, rather than
        # reported as skipped: the report lists what was checked, and nothing is skipped.
        inapplicable = [
            item
            for item in items
            if any(
                "got empty parameter set" in str(m.kwargs.get("reason", ""))
                for m in item.iter_markers("skip")
            )
        ]
        if inapplicable:
            config.hook.pytest_deselected(items=inapplicable)
            items[:] = [item for item in items if item not in inapplicable]
        return
    if os.environ.get("CI"):
        raise pytest.UsageError("no Docker engine answers, and CI requires one for tests/infra")
    skip = pytest.mark.skip(reason="no Docker engine answers (`docker info` failed)")
    for item in items:
        item.add_marker(skip)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrize by what the environment really declares, with ids that read well."""
    target = metafunc.config._dashtam_target
    name = target.environment.name if target else "none"
    services = target.services if target else list(SERVICES)
    declared = target.config["services"] if target else {}
    read_only = [s for s in services if declared.get(s, {}).get("read_only")]
    ours = [s for s in services if s in APP_SERVICES]
    environment = target.environment if target else None
    groups = {
        "service": services,
        "app_service": ours,
        "data_store": [s for s in services if s in DATA_SERVICES],
        "redis_service": [s for s in services if s == "redis"],
        "read_only_service": read_only,
        "read_only_app_service": [s for s in read_only if s in APP_SERVICES],
        "tls_app_service": ours if environment and environment.tls else [],
        "hardened_app_service": ours if environment and environment.hardened else [],
    }
    for fixture, values in groups.items():
        if fixture in metafunc.fixturenames:
            metafunc.parametrize(fixture, values, ids=[f"{name}-{v}" for v in values])
    if "endpoint" in metafunc.fixturenames:
        endpoints = [(s, p) for s in services for p in HEALTH_PATHS.get(s, ())]
        metafunc.parametrize(
            "endpoint", endpoints, ids=[f"{name}-{s}{p.replace('/', '-')}" for s, p in endpoints]
        )
    stages = list(environment.stages) if environment else []
    for fixture, values in {
        "stage_image": stages,
        "runtime_stage": [s for s in stages if s in RUNTIME_STAGES],
    }.items():
        if fixture in metafunc.fixturenames:
            metafunc.parametrize(fixture, values, ids=[f"{name}-{v}" for v in values])


@pytest.fixture(scope="session")
def target(request: pytest.FixtureRequest) -> Target:
    target = request.config._dashtam_target
    if target.boots_here:
        target.stack.up()
        request.addfinalizer(lambda: target.stack.down(remove_volumes=True))
        target.look_up_running_stack()
    return target


@pytest.fixture(scope="session")
def env_name(target: Target) -> str:
    return target.environment.name


@pytest.fixture(scope="session")
def containers(target: Target) -> dict[str, str]:
    """Service -> container ID."""
    return target.container_ids()


@pytest.fixture(scope="session")
def hosts(containers: dict[str, str]) -> dict:
    """Service -> testinfra host as root (to read every process) and as the image's user."""
    return {
        service: {
            "root": testinfra.get_host(f"docker://root@{container}"),
            "default": testinfra.get_host(f"docker://{container}"),
        }
        for service, container in containers.items()
    }


@pytest.fixture(scope="session")
def container_facts(target: Target) -> dict[str, dict]:
    """Service -> {fact: Fact(exit code, output)}: processes, listening sockets, files
    under /app not owned by appuser, data-store account UIDs, in-network endpoint fetches."""
    return target.facts()


@pytest.fixture(scope="session")
def service_config(target: Target):
    return lambda service: target.config["services"][service]


@pytest.fixture(scope="session")
def image_config():
    @functools.cache
    def inspect(reference: str) -> dict:
        output = subprocess.run(
            ["docker", "image", "inspect", reference], capture_output=True, text=True, check=True
        ).stdout
        return json.loads(output)[0]

    return inspect


@pytest.fixture(scope="session")
def container_inspect(target: Target):
    """Service -> `docker container inspect` of its container."""
    return target.inspect


@pytest.fixture(scope="session")
def stage_reference(target: Target):
    """Stage -> the image reference the stack under test runs it from.

    Read from compose's own `image:` (interpolated, so DASHTAM_IMAGE_TAG counts), never a
    fixed :latest: the image checks must look at what runs, not at what was built last.
    """

    def reference(stage: str) -> str:
        repository = image_name(stage)
        running = {
            service["image"]
            for service in target.config["services"].values()
            if service.get("image", "").rsplit(":", 1)[0] == repository
        }
        if len(running) != 1:
            pytest.fail(
                f"[{target.environment.name}] {repository}: image references in compose: "
                f"expected one, found {sorted(running)}"
            )
        return running.pop()

    return reference
