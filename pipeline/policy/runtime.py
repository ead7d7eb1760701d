"""The policy on a running compose project: every container read through its testinfra host.

`read_service` is the one place that decides what is read of a running service; the
verification suite (tests/infra) and `nox -s policy -- --project NAME` both call it on the
same kind of host (pipeline.inspector_host), so they judge a stack the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import testinfra
from testinfra.host import Host

from pipeline import readings, running
from pipeline.environments import APP_GID, APP_SERVICES, APP_UID, Environment
from pipeline.inspector_host import host_spec
from pipeline.policy import Context, Control, Verdict, evaluate, load_policy
from pipeline.policy.views import from_container

# What the checks look for in our images beyond the policy's own findings.
APP_GLOBS = (
    "/app/tests",
    "/app/.venv/lib/python*/site-packages/*.dist-info",
    "/etc/ld.so.cache",
    "/etc/python3*",
)


@dataclass(frozen=True)
class Evaluation:
    service: str
    control: Control
    verdict: Verdict


def read_service(host: Host, service: str, environment: Environment | None, inspect: dict) -> dict:
    """What the policy's runtime controls and the report read of one running service."""
    ours = service in APP_SERVICES
    variables = dict(entry.split("=", 1) for entry in inspect["Config"].get("Env") or [])
    writable = load_policy().writable_paths.get(service, []) if ours else []
    tls_key = variables.get("APP_TLS_KEY_FILE") if ours else None
    arguments = [inspect.get("Path", ""), *(inspect.get("Args") or [])]
    acl_file = (
        arguments[arguments.index("--aclfile") + 1] if "--aclfile" in arguments[:-1] else None
    )
    refused = load_policy().control("redis-users").parameters["refused"].get(service, [])
    return readings.read_container(
        host,
        app_uid=APP_UID,
        app_gid=APP_GID,
        # A data store's image is not ours: the controls on its files say they do not apply,
        # so only ours (or every service of a project no environment describes) are walked.
        files=ours or environment is None,
        writable_as=[f"{APP_UID}:{path}" for path in writable],
        readable_as=[f"{APP_UID}:{tls_key}"] if tls_key else [],
        globs=list(APP_GLOBS) if ours else [],
        connect=["postgres:5432", "redis:6379"] if ours and environment is not None else [],
        postgres_user=variables.get("POSTGRES_USER", "postgres") if service == "postgres" else None,
        redis=service == "redis",
        redis_acl_file=acl_file if service == "redis" else None,
        redis_login=redis_login(variables) if refused and environment is not None else None,
        redis_refused=refused,
    )


def redis_login(variables: dict[str, str]) -> tuple[str, str, str] | None:
    """Where and as whom one of our services logs in to Redis (src/settings.py's variables);
    None when it names no user of its own."""
    user = variables.get("REDIS_USER")
    password_file = variables.get("REDIS_PASSWORD_FILE")
    password = f"file:{password_file}" if password_file else variables.get("REDIS_PASSWORD")
    if not user or not password:
        return None
    address = f"{variables.get('REDIS_HOST', 'redis')}:{variables.get('REDIS_PORT', '6379')}"
    return address, user, password


def evaluate_project(project: str, context_of: Callable[[str], Context]) -> list[Evaluation]:
    """Every control on every running container of a compose project."""
    inspected = running.running_project(project)
    environment = context_of(next(iter(inspected))).environment
    hosts = {
        service: testinfra.get_host(host_spec(entry["Id"], f"{project}-{service}"))
        for service, entry in inspected.items()
    }
    with ThreadPoolExecutor(max_workers=max(len(inspected), 1)) as pool:
        readings_by_service = {
            service: pool.submit(read_service, hosts[service], service, environment, entry)
            for service, entry in inspected.items()
        }
        facts = {service: reading.result() for service, reading in readings_by_service.items()}
    images = running.image_configurations(inspected)
    evaluations = []
    for service, entry in sorted(inspected.items()):
        view = from_container(service, entry, images[entry["Image"]], facts[service])
        context = context_of(service)
        evaluations += [
            Evaluation(service, control, evaluate(control, view, context))
            for control in load_policy().controls
        ]
    return evaluations
