"""Health, the endpoints on the scheme each environment serves, and what each service reaches."""

from __future__ import annotations

import json
import uuid

import pytest

from pipeline.environments import APP_SERVICES, DEV_CERTS
from pipeline.readings import fetch as fetch_inside
from tests.infra.helpers import host_url, mismatch, network_url

pytestmark = pytest.mark.docker


def test_service_is_healthy_with_no_failures_or_restarts(
    environment_name, service, container_inspect
):
    state = container_inspect(service)["State"]
    health = state.get("Health")
    assert health, mismatch(environment_name, service, "healthcheck", "configured", None)
    found = (health["Status"], health["FailingStreak"], container_inspect(service)["RestartCount"])
    assert found == ("healthy", 0, 0), mismatch(
        environment_name,
        service,
        "(health, failing streak, restart count)",
        ("healthy", 0, 0),
        found,
    ) + last_failed_probe(health)


def last_failed_probe(health: dict) -> str:
    """What the newest failed probe said, so a failure names its cause."""
    failed = [probe for probe in health.get("Log") or [] if probe.get("ExitCode") != 0]
    if not failed:
        return ""
    probe = failed[-1]
    output = " ".join((probe.get("Output") or "").split())[:300]
    return f"; last failed probe at {probe.get('Start')}: exit {probe.get('ExitCode')}, {output!r}"


def fetch(target, service: str, path: str):
    """(status, body, where) from the host when published, else from inside the stack."""
    scheme = target.environment.scheme
    url = host_url(scheme, target.inspect(service), service, path)
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
    _, status, body = fetch_inside(target.host(service), url)
    return status, body, f"network {url} (from {service}'s own)"


def test_health_endpoint_answers_200(environment_name, endpoint, target):
    service, path = endpoint
    status, body, where = fetch(target, service, path)
    assert status == 200, mismatch(
        environment_name, service, f"GET {path} via {where}", 200, f"{status} {body[:200]}"
    )


def test_liveness_in_production_says_only_that_the_service_is_up(
    environment_name, app_service, target
):
    """The public ports answer anyone: a version or an environment name is a hint to them."""
    if target.environment.name != "prod":
        pytest.skip(f"not applicable: {environment_name} is not production")
    status, body, where = fetch(target, app_service, "/health")
    found = json.loads(body) if status == 200 else f"{status} {body[:200]}"
    assert found == {"status": "ok"}, mismatch(
        environment_name, app_service, f"GET /health via {where}", {"status": "ok"}, found
    )


def test_readiness_reports_postgres_and_redis_up(environment_name, target):
    status, body, where = fetch(target, "app", "/health/ready")
    checks = json.loads(body).get("checks", {}) if status == 200 else body
    expected = {"postgres": "up", "redis": "up"}
    assert checks == expected, mismatch(
        environment_name, "app", f"readiness checks via {where}", expected, checks
    )


def test_callback_keeps_the_first_code_for_a_state(environment_name, target):
    """The same state delivered twice from inside the stack (a state no real provider
    issued, fresh for each run): stored once, then refused."""
    state = f"verify-{uuid.uuid4().hex}"
    callback = target.host("callback")
    scheme = target.environment.scheme
    statuses = [
        fetch_inside(
            callback, network_url(scheme, "callback", f"/oauth/callback?code={code}&state={state}")
        )[1]
        for code in (f"first-{uuid.uuid4().hex[:8]}", f"second-{uuid.uuid4().hex[:8]}")
    ]
    assert statuses == [200, 409], mismatch(
        environment_name,
        "callback",
        "two deliveries of one state (first, second)",
        [200, 409],
        statuses,
    )


# What each of our services must reach and must not, where networks are by need.
REACHES = {
    "app": {("postgres", 5432): True, ("redis", 6379): True, ("callback", 8182): False},
    "callback": {("postgres", 5432): False, ("redis", 6379): True, ("app", 8000): False},
}


def test_each_service_reaches_only_what_it_needs(environment_name, host, host_service, target):
    if host_service not in APP_SERVICES:
        pytest.skip(f"not applicable: {host_service} is a data store (its networks are internal)")
    if not target.environment.networks_by_need:
        pytest.skip(f"not applicable: {environment_name} keeps every service on one network")
    found = {
        (name, port): host.addr(name).port(port).is_reachable
        for name, port in REACHES[host_service]
    }
    assert found == REACHES[host_service], mismatch(
        environment_name, host_service, "TCP reachable (name, port)", REACHES[host_service], found
    )
