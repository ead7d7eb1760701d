"""The builders the policy tests write their cases with: a prod service or container from
tests/unit/policy_samples.py changed in one place, its context, and one case's check."""

from __future__ import annotations

import pytest

from pipeline.environments import ENVIRONMENTS
from pipeline.policy import PROFILES, Context, context_for, evaluate, load_policy
from pipeline.policy.views import ServiceView, from_compose, from_container
from tests.unit.policy_samples import (
    container_facts,
    container_inspect,
    image_inspect,
    prod_compose,
)

SECRET = "correct-horse-battery-staple"

TLS = {"type": "bind", "source": "/srv/dashtam/tls", "target": "/run/tls", "read_only": True}


def compose(service: str = "app", without: tuple[str, ...] = (), **changes) -> ServiceView:
    """A prod service of the compose model, with `changes` made and the keys `without` gone."""
    config = prod_compose(service)
    for key in without:
        config.pop(key)
    config.update(changes)
    return from_compose(service, config)


def bind(source: str, target: str = "/host", read_only: bool = True) -> dict:
    return {"type": "bind", "source": source, "target": target, "read_only": read_only}


def running(
    service: str = "app",
    host: dict | None = None,
    config: dict | None = None,
    inspect_mounts: list | None = None,
    **facts,
) -> ServiceView:
    """A running prod container: its HostConfig, Config and Mounts changed by `host`, `config`
    and `inspect_mounts`, the inspector's facts by the other keywords (`image_user`: the
    image's configured user)."""
    inspect = container_inspect(service)
    if inspect_mounts is not None:
        inspect["Mounts"] = inspect_mounts
    inspect["HostConfig"].update(host or {})
    inspect["Config"].update(config or {})
    image = image_inspect(facts.pop("image_user", "appuser"))
    read = container_facts(service)
    read.update(facts)
    return from_container(service, inspect, image, read)


def files(**sections: list) -> dict:
    return {**container_facts()["files"], **sections}


def process(uid: int = 1000, effective: int = 1000, gid: int = 1000, **changes) -> dict:
    return {
        "pid": 1,
        "name": "python",
        "uid": {"real": uid, "effective": effective, "saved": effective},
        "gid": {"real": gid, "effective": gid, "saved": gid},
        "no_new_privileges": True,
        **changes,
    }


def finding(path: str, mode: str = "0644", uid: int = 0) -> dict:
    return {"path": path, "mode": mode, "uid": uid, "gid": uid}


def mounts_with(point: str, options: str) -> dict:
    """The app container's mounts (as the inspector reads them), with one changed or added."""
    mounts = container_facts()["mounts"]
    mounts[point] = {"options": options.split(","), "type": "tmpfs", "source": "tmpfs"}
    return mounts


def context(environment: str | None, service: str) -> Context:
    """The service's context in one of our environments; None: a compose project that is not
    ours (every profile applies, no environment model)."""
    if environment is None:
        return Context(load_policy(), PROFILES, None, ours=False, secret_values=(SECRET,))
    return context_for(ENVIRONMENTS[environment], service, (SECRET,))


PASS, FAIL, NA = "pass", "fail", "not applicable"
CASE_FIELDS = ("control_id", "view", "environment", "outcome", "detail")


def case(sentence, control, view, outcome, detail=None, environment="prod"):
    """One verdict to expect (`detail` must appear in its expected, found or reason), with an
    id that reads `control: sentence (environment)`."""
    sentence = f"not applicable to {sentence}" if outcome == NA else sentence
    where = f" ({environment})" if environment not in ("prod", None) else ""
    return pytest.param(
        control, view, environment, outcome, detail, id=f"{control}: {sentence}{where}"
    )


def check(control_id: str, view: ServiceView, environment, outcome: str, detail) -> None:
    """Evaluate one case and say what was expected and what was found when it is not that."""
    verdict = evaluate(load_policy().control(control_id), view, context(environment, view.service))
    said = f"expected {verdict.expected!r}, found {verdict.found!r}, reason {verdict.reason!r}"
    assert verdict.outcome == outcome, f"{control_id} on {view.service}: expected {outcome}, {said}"
    if detail is not None:
        assert detail in said, f"{control_id}: expected {detail!r} in the verdict, {said}"


APP_POSTGRES = {"POSTGRES_PASSWORD": SECRET}
DOCKER_SOCKET = {
    "Type": "bind",
    "Source": "/var/run/docker.sock",
    "Destination": "/var/run/docker.sock",
    "Mode": "",
    "RW": True,
    "Propagation": "rprivate",
}
WORKER = from_compose("worker", prod_compose("app"))  # a service the policy knows nothing of
