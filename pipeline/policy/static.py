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

from pipeline.errors import PipelineError
from pipeline.policy import Context, Control, Verdict, evaluate, load_policy
from pipeline.policy.views import ServiceView, from_compose
from pipeline.process import last_line, run
from pipeline.yaml_lines import yaml_child


@dataclass(frozen=True)
class Violation:
    service: str
    control: Control
    verdict: Verdict
    path: Path
    line: int


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


def violations(
    model: dict, compose_file: Path, context_of: Callable[[str], Context]
) -> list[Violation]:
    """Every failing control of every service of the model, located in the compose files."""
    found = []
    for service, config in sorted(model.get("services", {}).items()):
        view: ServiceView = from_compose(service, config)
        context = context_of(service)
        for control in load_policy().controls:
            verdict = evaluate(control, view, context)
            if verdict.outcome != "fail":
                continue
            route = view.routes.get(verdict.field, [])
            path, line = locate(compose_file, service, route)
            found.append(Violation(service, control, verdict, path, line))
    return found


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


def describe_violation(violation: Violation, environment_name: str) -> str:
    verdict = violation.verdict
    return (
        f"[{violation.control.id}] {environment_name} {violation.service}: "
        f"{violation.control.title}: expected {verdict.expected!r}, found {verdict.found!r}"
    )
