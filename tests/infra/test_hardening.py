"""Hardening: what `docker inspect` shows equals what compose declares, and the env's policy."""

from __future__ import annotations

import re

import pytest

from tests.infra.helpers import mismatch

pytestmark = pytest.mark.docker

_UNITS = {"": 1, "b": 1, "k": 2**10, "m": 2**20, "g": 2**30}


def _bytes(value) -> int:
    if isinstance(value, int):
        return value
    number, unit = re.fullmatch(r"([\d.]+)\s*([kmg]?)b?", str(value).lower()).groups()
    return int(float(number) * _UNITS[unit])


def _declared_and_found(declared: dict, host: dict) -> list[tuple[str, object, object]]:
    """(property, declared, found) for every hardening setting the service declares."""
    pairs = []
    if "read_only" in declared:
        pairs.append(("read-only root", bool(declared["read_only"]), host["ReadonlyRootfs"]))
    if declared.get("cap_drop"):
        pairs.append(
            (
                "dropped capabilities",
                sorted(declared["cap_drop"]),
                sorted(host.get("CapDrop") or []),
            )
        )
    for option in declared.get("security_opt", []):
        pairs.append((f"security option {option}", True, option in (host.get("SecurityOpt") or [])))
    if declared.get("restart"):
        pairs.append(("restart policy", declared["restart"], host["RestartPolicy"]["Name"]))
    limits = declared.get("deploy", {}).get("resources", {}).get("limits", {})
    pids = declared.get("pids_limit") or limits.get("pids")
    if pids:
        pairs.append(("pids limit", int(pids), host.get("PidsLimit")))
    if "memory" in limits:
        pairs.append(("memory limit (bytes)", _bytes(limits["memory"]), host["Memory"]))
    if "cpus" in limits:
        pairs.append(("CPU limit (nano CPUs)", int(float(limits["cpus"]) * 1e9), host["NanoCpus"]))
    reservations = declared.get("deploy", {}).get("resources", {}).get("reservations", {})
    if "memory" in reservations:
        pairs.append(
            (
                "memory reservation (bytes)",
                _bytes(reservations["memory"]),
                host["MemoryReservation"],
            )
        )
    return pairs


def test_runtime_hardening_equals_what_compose_declares(
    env_name, service, service_config, container_inspect
):
    host = container_inspect(service)["HostConfig"]
    wrong = [
        (prop, want, got)
        for prop, want, got in _declared_and_found(service_config(service), host)
        if want != got
    ]
    assert not wrong, mismatch(
        env_name, service, "hardening (property, declared, running)", [], wrong
    )


def test_hardened_environment_declares_the_full_set(env_name, hardened_app_service, service_config):
    app_service = hardened_app_service
    declared = service_config(app_service)
    limits = declared.get("deploy", {}).get("resources", {}).get("limits", {})
    found = {
        "read_only": bool(declared.get("read_only")),
        "cap_drop ALL": "ALL" in (declared.get("cap_drop") or []),
        "no-new-privileges": any(
            "no-new-privileges" in o for o in declared.get("security_opt", [])
        ),
        "memory and cpu limits": {"memory", "cpus"} <= set(limits),
        "pids limit": bool(declared.get("pids_limit") or limits.get("pids")),
        "restart on failure": declared.get("restart") == "on-failure",
    }
    missing = [name for name, present in found.items() if not present]
    assert not missing, mismatch(
        env_name, app_service, "hardening declared", "all of it", f"missing {missing}"
    )


def test_no_privileged_container_host_namespace_or_docker_socket(
    env_name, service, container_inspect
):
    inspect = container_inspect(service)
    host = inspect["HostConfig"]
    problems = []
    if host.get("Privileged"):
        problems.append("privileged")
    for mode in ("NetworkMode", "PidMode", "IpcMode", "UTSMode", "UsernsMode"):
        if host.get(mode) == "host":
            problems.append(f"{mode}=host")
    for mount in inspect.get("Mounts", []):
        if mount.get("Source", "").endswith("docker.sock"):
            problems.append(f"mounts {mount['Source']}")
    assert not problems, mismatch(env_name, service, "isolation", [], problems)


def test_tls_private_key_is_private_and_readable_by_appuser(
    env_name, tls_app_service, hosts, service_config
):
    app_service = tls_app_service
    key = service_config(app_service)["environment"]["APP_TLS_KEY_FILE"]
    mode = hosts[app_service]["root"].check_output(f"stat -c %a {key}")
    assert mode in ("600", "640"), mismatch(
        env_name, app_service, f"mode of {key}", "600 or 640", mode
    )
    readable = hosts[app_service]["default"].run(f"test -r {key}").rc == 0
    assert readable, mismatch(
        env_name, app_service, f"{key} readable by the service user", True, False
    )


def test_redis_refuses_commands_without_the_password(env_name, redis_service, hosts):
    # The container carries REDISCLI_AUTH for its healthcheck; this client goes without it.
    reply = hosts[redis_service]["default"].check_output("env -u REDISCLI_AUTH redis-cli ping")
    assert "NOAUTH" in reply, mismatch(env_name, "redis", "unauthenticated PING", "NOAUTH", reply)
