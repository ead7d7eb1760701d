"""Drift: the running containers are what compose declares (the policy says what must hold;
this says nothing changed between the file and the engine)."""

from __future__ import annotations

import pytest

from pipeline.policy.views import from_compose
from tests.infra.helpers import mismatch

pytestmark = pytest.mark.docker

# What both views read the same way; mounts and the environment differ in what the engine
# adds (its own mounts, the image's variables), so they are the policy's to judge.
COMPARED = (
    "privileged",
    "cap_add",
    "cap_drop",
    "security_options",
    "read_only",
    "restart",
    "memory_limit",
    "cpu_limit",
    "pids_limit",
)


# What the engine adds by itself: a privileged container runs with SELinux labelling off.
ENGINE_IMPLIED = {"privileged": {"security_options": ["label=disable"]}}


def normalized(view, field: str):
    value = getattr(view, field)
    if isinstance(value, list):
        implied = ENGINE_IMPLIED["privileged"].get(field, []) if view.privileged else []
        return sorted(item for item in value if item not in implied)
    return "no" if field == "restart" and not value else value


def test_running_container_matches_its_compose_declaration(
    environment_name, service, service_config, target
):
    declared = from_compose(service, service_config(service))
    running = target.view(service)
    drift = {
        field: (normalized(declared, field), normalized(running, field))
        for field in COMPARED
        if normalized(declared, field) != normalized(running, field)
    }
    assert not drift, mismatch(environment_name, service, "(declared, running)", {}, drift)


def test_host_bindings_equal_the_declared_ones(environment_name, service, service_config, target):
    declared = {
        (p.container_port, p.host_ip, p.host_port)
        for p in from_compose(service, service_config(service)).published
    }
    found = {(p.container_port, p.host_ip, p.host_port) for p in target.view(service).published}
    # Port 0 means "Docker picks": any host port matches it.
    found_loose = {
        (port, address, 0) if (port, address, 0) in declared else (port, address, host_port)
        for port, address, host_port in found
    }
    assert found_loose == declared, mismatch(
        environment_name, service, "host port bindings", sorted(declared), sorted(found)
    )
