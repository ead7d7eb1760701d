"""Health: Docker's view of every service, and the endpoints on the scheme each env serves."""

from __future__ import annotations

import json

import pytest

from pipeline.environments import DEV_CERTS
from tests.infra.helpers import host_url, mismatch, network_url, parse_fetched

pytestmark = pytest.mark.docker


def test_service_is_healthy_with_no_failures_or_restarts(env_name, service, container_inspect):
    state = container_inspect(service)["State"]
    health = state.get("Health")
    assert health, mismatch(env_name, service, "healthcheck", "configured", None)
    found = (health["Status"], health["FailingStreak"], container_inspect(service)["RestartCount"])
    assert found == ("healthy", 0, 0), mismatch(
        env_name, service, "(health, failing streak, restart count)", ("healthy", 0, 0), found
    )


def fetch(target, container_facts, container_inspect, service: str, path: str):
    """(status, body, where) from the host when published, else from inside the stack."""
    scheme = target.environment.scheme
    url = host_url(scheme, container_inspect(service), service, path)
    if url:
        # Imported here: ci reaches its services from inside the stack only.
        import ssl
        import urllib.error
        import urllib.request

        # Verified for real against the dev certificate the stack serves.
        context = (
            ssl.create_default_context(cafile=DEV_CERTS / "tls.crt")
            if target.environment.tls
            else None
        )
        # The stack on this host, never through a proxy the environment may name.
        opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=context)
        )
        try:
            with opener.open(url, timeout=5) as response:
                return response.status, response.read().decode(), f"host {url}"
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode(errors="replace"), f"host {url}"
        except OSError as error:
            return 0, repr(error), f"host {url}"
    url = network_url(scheme, service, path)
    fetched = container_facts["app"].get("fetched")
    if fetched is None or fetched.exit_code != 0:
        said = fetched.output.strip()[-200:] if fetched else ""
        return 0, f"the app container could not run the fetch: {said}", f"network {url}"
    status, body = parse_fetched(fetched.output).get(url, (0, "not fetched"))
    return status, body, f"network {url}"


def test_health_endpoint_answers_200(
    env_name, endpoint, target, container_facts, container_inspect
):
    service, path = endpoint
    status, body, where = fetch(target, container_facts, container_inspect, service, path)
    assert status == 200, mismatch(
        env_name, service, f"GET {path} via {where}", 200, f"{status} {body[:200]}"
    )


def test_readiness_reports_postgres_and_redis_up(
    env_name, target, container_facts, container_inspect
):
    status, body, where = fetch(target, container_facts, container_inspect, "app", "/health/ready")
    checks = json.loads(body).get("checks", {}) if status == 200 else body
    expected = {"postgres": "up", "redis": "up"}
    assert checks == expected, mismatch(
        env_name, "app", f"readiness checks via {where}", expected, checks
    )
