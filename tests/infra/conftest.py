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
from pathlib import Path

import pytest
import testinfra

from pipeline import stack as stacks
from pipeline.environments import (
    APP_SERVICES,
    DATA_SERVICES,
    ENVIRONMENTS,
    RUNTIME_STAGES,
    SERVICES,
    image_name,
)
from pipeline.verification import (
    COMPOSE_FILE_VARIABLE,
    ENV_FILE_VARIABLE,
    ENV_VARIABLE,
    PROJECT_VARIABLE,
)


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
    """The environment and stack under test, resolved once per test run."""

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

    @functools.cached_property
    def config(self) -> dict:
        return self.stack.config()

    @property
    def services(self) -> list[str]:
        return [name for name in SERVICES if name in self.config["services"]]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "docker: needs a Docker engine")
    if not _engine_answers():
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
        from pipeline.environments import HEALTH_PATHS

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
    return target


@pytest.fixture(scope="session")
def env_name(target: Target) -> str:
    return target.environment.name


@pytest.fixture(scope="session")
def containers(target: Target) -> dict:
    """Service -> python-on-whales Container, looked up once."""
    found = {}
    for container in target.stack.containers():
        found[container.config.labels["com.docker.compose.service"]] = container
    return found


@pytest.fixture(scope="session")
def hosts(containers: dict) -> dict:
    """Service -> testinfra host as root (to read every process) and as the image's user."""
    return {
        service: {
            "root": testinfra.get_host(f"docker://root@{container.id}"),
            "default": testinfra.get_host(f"docker://{container.id}"),
        }
        for service, container in containers.items()
    }


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
def container_inspect(containers: dict):
    @functools.cache
    def inspect(service: str) -> dict:
        output = subprocess.run(
            ["docker", "container", "inspect", containers[service].id],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        return json.loads(output)[0]

    return inspect


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
