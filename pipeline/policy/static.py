"""The policy on a compose model: `docker compose config --format json`, every service, every
control, and for each failure the file and line where the setting at fault is written —
the environment's compose file, an anchor it merges, or the file a service `extends`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from pipeline.engine import found_images
from pipeline.errors import PipelineError
from pipeline.policy import Context, Control, Verdict, evaluate, load_policy
from pipeline.policy.views import ServiceView, from_compose
from pipeline.process import last_line, run
from pipeline.yaml_lines import yaml_child


@dataclass(frozen=True)
class Finding:
    """One control judged on one service; a failure knows the file and line at fault."""

    service: str
    control: Control
    verdict: Verdict
    path: Path | None = None
    line: int = 0


def compose_model(
    compose_files: Sequence[Path],
    env_files: Sequence[Path],
    *,
    environment: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> dict:
    """`docker compose config --format json`: the model as Compose resolves it.

    A literal argument list: `environment` replaces this process's (the lint check hides the
    shell's values of interpolated variables), and python-on-whales can only add to it."""
    command = ["docker", "compose"]
    for path in compose_files:
        command += ["-f", str(path)]
    for path in env_files:
        command += ["--env-file", str(path)]
    result = run([*command, "config", "--format", "json"], cwd=cwd, env=environment, timeout=120)
    if result.returncode != 0:
        raise PipelineError(
            f"{compose_files[0]}: `docker compose config` failed ({last_line(result.stderr)})."
        )
    return json.loads(result.stdout)


def judged(model: dict, compose_file: Path, context_of: Callable[[str], Context]) -> list[Finding]:
    """Every control on every service of the model, each failure located in the compose files."""
    found = []
    services = sorted(model.get("services", {}).items())
    healthchecks = image_healthchecks([str(config.get("image") or "") for _, config in services])
    for service, config in services:
        view: ServiceView = from_compose(service, config, model.get("volumes"))
        if view.healthcheck is None:
            view.healthcheck = healthchecks.get(view.image)
        context = context_of(service)
        for control in load_policy().controls:
            verdict = evaluate(control, view, context)
            if verdict.outcome != "fail":
                found.append(Finding(service, control, verdict))
                continue
            route = view.routes.get(verdict.field, [])
            path, line = locate(compose_file, service, route)
            found.append(Finding(service, control, verdict, path, line))
    return found


def image_healthchecks(images: list[str]) -> dict[str, bool]:
    """Whether each image the local store holds has a HEALTHCHECK, read statically (one
    inspect); an image it does not hold (or no engine) is left out: its healthcheck is
    judged on the running container."""
    wanted = sorted({image for image in images if image})
    found = {}
    for image in found_images(wanted) if wanted else []:
        test = ((image.get("Config") or {}).get("Healthcheck") or {}).get("Test") or []
        healthy = bool(test) and test != ["NONE"]
        for name in {*(image.get("RepoTags") or []), image.get("Id", "")} & set(wanted):
            found[name] = healthy
    return found


def violations(
    model: dict, compose_file: Path, context_of: Callable[[str], Context]
) -> list[Finding]:
    """Every failing control of every service of the model, located in the compose files."""
    return [
        finding
        for finding in judged(model, compose_file, context_of)
        if finding.verdict.outcome == "fail"
    ]


def _route_node(node: yaml.Node | None, route: Sequence[str | int]) -> yaml.Node | None:
    """The key node a whole route ends at (merge keys followed), or None."""
    key = None
    for part in route:
        step = yaml_child(node, part)
        if step is None:
            return None
        key, node = step
    return key


def locate(compose_file: Path, service: str, route: Sequence[str | int]) -> tuple[Path, int]:
    """Where `route` of `service` is written: in the file, else in what the service extends
    (followed file by file), else the service's own line."""
    path, name = compose_file, service
    first: tuple[Path, int] | None = None
    for _ in range(10):  # an extends chain, never a cycle
        text = path.read_text()
        document = yaml.compose(text, Loader=yaml.SafeLoader)
        service_key = _route_node(document, ["services", name])
        if service_key is None:
            break
        first = first or (path, service_key.start_mark.line + 1)
        if route:
            key = _route_node(document, ["services", name, *route])
            if key is not None:
                return path, key.start_mark.line + 1
        extends = (yaml.safe_load(text).get("services") or {}).get(name, {}).get("extends")
        if not extends:
            break
        if isinstance(extends, str):
            name = extends
        else:
            path = (path.parent / extends["file"]) if extends.get("file") else path
            name = extends["service"]
    return first or (compose_file, 1)


def describe_violation(violation: Finding, environment_name: str) -> str:
    verdict = violation.verdict
    return (
        f"[{violation.control.id}] {environment_name} {violation.service}: "
        f"{violation.control.title}: expected {verdict.expected!r}, found {verdict.found!r}"
    )
