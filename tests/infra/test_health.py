"""Health: Docker's view of every service, and the endpoints on the scheme each env serves."""

from __future__ import annotations

import json
import shlex
import ssl

import httpx
import pytest

from pipeline.environments import DEV_CERTS, SERVICE_PORTS
from tests.infra.helpers import mismatch

pytestmark = pytest.mark.docker

# Run inside the app container when a service has no host port: stdlib only, as the image has.
_FETCH_INSIDE = (
    "import ssl, sys, urllib.request; "
    "context = ssl._create_unverified_context(); "
    "response = urllib.request.urlopen(sys.argv[1], timeout=5, context=context); "
    "print(response.status); print(response.read().decode())"
)


def test_service_is_healthy_with_no_failures_or_restarts(env_name, service, container_inspect):
    state = container_inspect(service)["State"]
    health = state.get("Health")
    assert health, mismatch(env_name, service, "healthcheck", "configured", None)
    found = (health["Status"], health["FailingStreak"], container_inspect(service)["RestartCount"])
    assert found == ("healthy", 0, 0), mismatch(
        env_name, service, "(health, failing streak, restart count)", ("healthy", 0, 0), found
    )


def _host_url(target, container_inspect, service: str, path: str) -> str | None:
    ports = container_inspect(service)["NetworkSettings"]["Ports"] or {}
    bindings = ports.get(f"{SERVICE_PORTS[service]}/tcp") or []
    if not bindings:
        return None
    return f"{target.environment.scheme}://127.0.0.1:{bindings[0]['HostPort']}{path}"


def fetch(target, hosts, container_inspect, service: str, path: str) -> tuple[int, str, str]:
    """(status, body, where) from the host when published, else from inside the stack."""
    url = _host_url(target, container_inspect, service, path)
    if url:
        # Verified for real against the dev certificate the stack serves.
        verify = (
            ssl.create_default_context(cafile=DEV_CERTS / "tls.crt")
            if target.environment.tls
            else True
        )
        response = httpx.get(url, verify=verify, timeout=5)
        return response.status_code, response.text, f"host {url}"
    url = f"{target.environment.scheme}://{service}:{SERVICE_PORTS[service]}{path}"
    result = hosts["app"]["default"].run(
        f"python -c {shlex.quote(_FETCH_INSIDE)} {shlex.quote(url)}"
    )
    if result.rc != 0:
        return (
            0,
            result.stderr.strip().splitlines()[-1] if result.stderr.strip() else "",
            f"network {url}",
        )
    status, _, body = result.stdout.partition("\n")
    return int(status), body, f"network {url}"


def test_health_endpoint_answers_200(env_name, endpoint, target, hosts, container_inspect):
    service, path = endpoint
    status, body, where = fetch(target, hosts, container_inspect, service, path)
    assert status == 200, mismatch(
        env_name, service, f"GET {path} via {where}", 200, f"{status} {body[:200]}"
    )


def test_readiness_reports_postgres_and_redis_up(env_name, target, hosts, container_inspect):
    status, body, where = fetch(target, hosts, container_inspect, "app", "/health/ready")
    checks = json.loads(body).get("checks", {}) if status == 200 else body
    expected = {"postgres": "up", "redis": "up"}
    assert checks == expected, mismatch(
        env_name, "app", f"readiness checks via {where}", expected, checks
    )
