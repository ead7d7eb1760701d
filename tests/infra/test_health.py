"""Health, the endpoints on the scheme each environment serves, and what each service reaches."""

from __future__ import annotations

import json
import uuid

import pytest

from pipeline.environments import APP_SERVICES, DEV_CERTS
from pipeline.policy.runtime import redis_login
from pipeline.readings import fetch as fetch_inside
from pipeline.readings import redis_replies
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


def app_redis_replies(target, commands: list[str]) -> dict[str, str]:
    """Redis' replies to `commands`, sent as the app's own Redis user from the app's host."""
    variables = dict(entry.split("=", 1) for entry in target.inspect("app")["Config"]["Env"])
    login = redis_login(variables)
    assert login, "the app names no Redis user of its own (REDIS_USER and its password)"
    return redis_replies(target.host("app"), *login, commands)


def test_the_callback_refuses_a_state_no_one_issued_and_writes_nothing(environment_name, target):
    """Whoever learns or makes up a state cannot park a code under it: 400, and no key."""
    state = f"never-issued-{uuid.uuid4().hex}"
    url = network_url(
        target.environment.scheme, "callback", f"/oauth/callback?code=c&state={state}"
    )
    status = fetch_inside(target.host("callback"), url)[1]
    keys = f"EXISTS oauth:state:{state} oauth:code:{state}"
    found = (status, app_redis_replies(target, [keys]).get(keys))
    assert found == (400, ":0"), mismatch(
        environment_name,
        "callback",
        f"a redirect with a state never issued, then {keys}",
        (400, ":0"),
        found,
    )


def test_an_issued_state_serves_one_redirect_and_its_code_is_read_once(environment_name, target):
    """The flow across the stack: the API issues a state, the provider's redirect reaches the
    callback (a second one is refused), the API hands the code over once."""
    scheme = target.environment.scheme
    app, callback = target.host("app"), target.host("callback")
    started = fetch_inside(app, network_url(scheme, "app", "/oauth/schwab/start"), "{}")
    assert started[1] == 201, mismatch(
        environment_name, "app", "POST /oauth/schwab/start", 201, started[1:]
    )
    state, code = json.loads(started[2])["state"], f"code-{uuid.uuid4().hex[:12]}"
    redirect = network_url(scheme, "callback", f"/oauth/callback?code={code}&state={state}")
    deliveries = [fetch_inside(callback, redirect)[1] for _ in range(2)]
    take = network_url(scheme, "app", "/oauth/schwab/code")
    taken = [fetch_inside(app, take, json.dumps({"state": state}))[1:] for _ in range(2)]
    found = (
        deliveries,
        taken[0][0],
        json.loads(taken[0][1]) if taken[0][0] == 200 else taken[0][1],
        taken[1][0],
    )
    expected = ([200, 400], 200, {"code": code}, 404)
    assert found == expected, mismatch(
        environment_name,
        "app and callback",
        "(two redirects, the code taken, taken again)",
        expected,
        found,
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
