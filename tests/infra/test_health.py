"""Health, the endpoints on the scheme each environment serves, and what each service reaches."""

from __future__ import annotations

import json

import pytest

from pipeline.environments import DEV_CERTS
from tests.infra.conftest import PROBE_STATE
from tests.infra.helpers import fetched_in_network, host_url, mismatch, network_url

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


def fetch(target, facts, service: str, path: str):
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
    status, body = fetched_in_network(facts["app"]).get(url, (0, "not fetched"))
    return status, body, f"network {url}"


def test_health_endpoint_answers_200(environment_name, endpoint, target, facts):
    service, path = endpoint
    status, body, where = fetch(target, facts, service, path)
    assert status == 200, mismatch(
        environment_name, service, f"GET {path} via {where}", 200, f"{status} {body[:200]}"
    )


def test_readiness_reports_postgres_and_redis_up(environment_name, target, facts):
    status, body, where = fetch(target, facts, "app", "/health/ready")
    checks = json.loads(body).get("checks", {}) if status == 200 else body
    expected = {"postgres": "up", "redis": "up"}
    assert checks == expected, mismatch(
        environment_name, "app", f"readiness checks via {where}", expected, checks
    )


def test_callback_keeps_the_first_code_for_a_state(environment_name, target, facts):
    """The same state delivered twice from inside the stack: stored once, then refused."""
    fetched = facts["app"]["fetched"]
    statuses = [status for url, status, _ in fetched if f"state={PROBE_STATE}" in url]
    assert statuses == [200, 409], mismatch(
        environment_name,
        "callback",
        "two deliveries of one state (first, second)",
        [200, 409],
        statuses,
    )


# What each of our services must reach and must not, where networks are by need.
REACHES = {
    "app": {"postgres:5432": "connected", "redis:6379": "connected"},
    "callback": {"postgres:5432": "refused", "redis:6379": "connected"},
}


def test_each_service_reaches_only_what_it_needs(environment_name, app_service, target, facts):
    if not target.environment.networks_by_need:
        pytest.skip(f"not applicable: {environment_name} keeps every service on one network")
    connections = facts[app_service]["connections"]
    found = {address: connections[address].split(":")[0] for address in REACHES[app_service]}
    assert found == REACHES[app_service], mismatch(
        environment_name, app_service, "TCP connections", REACHES[app_service], connections
    )
