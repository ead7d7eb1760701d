"""Small helpers shared by the verification checks and their fixtures."""

from __future__ import annotations

from pipeline.environments import SERVICE_PORTS


def mismatch(
    environment_name: str, service: str, prop: str, expected: object, found: object
) -> str:
    """Every failure message says environment, service, property, expected and found."""
    return f"[{environment_name}] {service}: {prop}: expected {expected!r}, found {found!r}"


def host_url(scheme: str, inspect: dict, service: str, path: str) -> str | None:
    """The URL of a service's endpoint through its host port; None when it publishes none."""
    ports = inspect["NetworkSettings"]["Ports"] or {}
    bindings = ports.get(f"{SERVICE_PORTS[service]}/tcp") or []
    if not bindings:
        return None
    return f"{scheme}://127.0.0.1:{bindings[0]['HostPort']}{path}"


def network_url(scheme: str, service: str, path: str) -> str:
    """The URL of a service's endpoint on the stack's own network."""
    return f"{scheme}://{service}:{SERVICE_PORTS[service]}{path}"
