"""Ownership, writable paths, listening sockets and host port bindings."""

from __future__ import annotations

import pytest

from pipeline.environments import APP_UID, SERVICE_PORTS
from pipeline.inspection import parse_listening_ports
from tests.infra.helpers import mismatch

pytestmark = pytest.mark.docker

# Mounts every container has, which no compose file declares.
_RUNTIME_MOUNTS = ("/proc", "/sys", "/dev", "/etc/hosts", "/etc/hostname", "/etc/resolv.conf")
_ALL_ADDRESSES = {"", "0.0.0.0", "::"}  # noqa: S104 - names of "every interface", not a bind


def writable_declared_targets(service_config: dict) -> set[str]:
    targets = {
        volume["target"]
        for volume in service_config.get("volumes", [])
        if not volume.get("read_only")
    }
    return targets | {entry.split(":")[0] for entry in service_config.get("tmpfs", [])}


@pytest.fixture(scope="session")
def listening_ports(container_facts):
    """Service -> the TCP ports something listens on in its container."""
    return {
        service: parse_listening_ports(facts["listening"].output)
        for service, facts in container_facts.items()
    }


def test_everything_under_app_is_owned_by_appuser(env_name, app_service, container_facts):
    listing = container_facts[app_service]["unowned"]
    assert listing.exit_code == 0, mismatch(
        env_name, app_service, "`find /app` exit code", 0, listing.exit_code
    )
    found = listing.output.split()
    assert not found, mismatch(
        env_name, app_service, "files under /app not owned by appuser", [], found[:10]
    )


def _mounts(host) -> dict[str, str]:
    """Mount point -> options, from /proc/self/mountinfo (fields 5 and 6)."""
    mounts = {}
    for line in host.check_output("cat /proc/self/mountinfo").splitlines():
        fields = line.split()
        mounts[fields[4]] = fields[5]
    return mounts


def test_writable_paths_are_exactly_the_declared_ones(
    env_name, read_only_service, hosts, service_config
):
    service = read_only_service
    declared = service_config(service)
    mounts = _mounts(hosts[service]["root"])
    assert mounts["/"].split(",")[0] == "ro", mismatch(
        env_name, service, "root filesystem", "ro", mounts["/"]
    )
    writable = {
        point
        for point, options in mounts.items()
        if options.split(",")[0] == "rw"
        and point != "/"
        and not any(point == m or point.startswith(m + "/") for m in _RUNTIME_MOUNTS)
    }
    expected = writable_declared_targets(declared)
    assert writable == expected, mismatch(
        env_name, service, "writable paths", sorted(expected), sorted(writable)
    )


def test_declared_writable_paths_are_writable_by_appuser(
    env_name, read_only_app_service, hosts, service_config
):
    app_service = read_only_app_service
    declared = service_config(app_service)
    for path in sorted(writable_declared_targets(declared)):
        result = hosts[app_service]["default"].run(f"test -w {path}")
        assert result.rc == 0, mismatch(
            env_name, app_service, f"{path} writable by UID {APP_UID}", True, False
        )


def test_listening_ports_are_exactly_the_declared_ones(env_name, service, listening_ports):
    found = listening_ports[service]
    expected = {SERVICE_PORTS[service]}
    assert found == expected, mismatch(
        env_name, service, "listening TCP ports", sorted(expected), sorted(found)
    )


def _address(host_ip: str | None) -> str:
    return "all interfaces" if (host_ip or "") in _ALL_ADDRESSES else host_ip


def test_declared_ports_follow_the_environment_policy(env_name, service, target, service_config):
    environment = target.environment
    declared = service_config(service).get("ports", [])
    if service not in environment.published_services:
        assert not declared, mismatch(env_name, service, "published ports", [], declared)
        return
    for port in declared:
        if environment.host_bind_address:
            assert port.get("host_ip") == environment.host_bind_address, mismatch(
                env_name,
                service,
                f"host address of port {port['target']}",
                environment.host_bind_address,
                _address(port.get("host_ip")),
            )


def test_host_bindings_equal_the_declared_ones(
    env_name, service, service_config, container_inspect
):
    declared = {
        (int(port["target"]), _address(port.get("host_ip")), int(port.get("published") or 0))
        for port in service_config(service).get("ports", [])
    }
    bindings = container_inspect(service)["NetworkSettings"]["Ports"] or {}
    found = set()
    for container_port, host_bindings in bindings.items():
        for binding in host_bindings or []:
            found.add(
                (
                    int(container_port.split("/")[0]),
                    _address(binding["HostIp"]),
                    int(binding["HostPort"]),
                )
            )
    # Port 0 means "Docker picks": any host port matches it.
    found_loose = {
        (port, address, 0) if (port, address, 0) in declared else (port, address, host_port)
        for port, address, host_port in found
    }
    assert found_loose == declared, mismatch(
        env_name, service, "host port bindings", sorted(declared), sorted(found)
    )
