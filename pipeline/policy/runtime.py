"""The policy on a running compose project: every container read from `docker inspect` and
from outside by the inspector, every control evaluated (what `nox -s policy -- --project`
runs; tests/infra does the same, one test case per control and service)."""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from pipeline import inspection
from pipeline.errors import PipelineError
from pipeline.policy import Context, Control, Verdict, evaluate, load_policy
from pipeline.policy.views import from_container
from pipeline.process import last_line, run

PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"


@dataclass(frozen=True)
class Evaluation:
    service: str
    control: Control
    verdict: Verdict


def _docker_json(*arguments: str) -> list[dict]:
    result = run(["docker", *arguments])
    if result.returncode != 0:
        raise PipelineError(f"`docker {arguments[0]} …` failed ({last_line(result.stderr)}).")
    return json.loads(result.stdout)


def running_containers(project: str) -> dict[str, dict]:
    """Service -> `docker inspect` of its running container, for one compose project."""
    listing = run(["docker", "ps", "-q", "--filter", f"label={PROJECT_LABEL}={project}"])
    ids = listing.stdout.split()
    if not ids:
        raise PipelineError(
            f"no running container of compose project {project!r}; start it, or check the "
            "name with `docker compose ls`."
        )
    return {
        entry["Config"]["Labels"].get(SERVICE_LABEL, entry["Name"].lstrip("/")): entry
        for entry in _docker_json("container", "inspect", *ids)
    }


def evaluate_project(project: str, context_of: Callable[[str], Context]) -> list[Evaluation]:
    """Every control on every running container of a compose project."""
    containers = running_containers(project)
    inspector = inspection.ensure_inspector_image()
    with ThreadPoolExecutor(max_workers=max(len(containers), 1)) as pool:
        readings = {
            service: pool.submit(
                inspection.inspect_container, entry["Id"], inspector, ["--files", "--users"]
            )
            for service, entry in containers.items()
        }
        facts = {service: reading.result() for service, reading in readings.items()}
    failed = {service: fact["error"] for service, fact in facts.items() if "error" in fact}
    if failed:
        raise PipelineError(f"{project}: the inspector could not read {failed}.")
    evaluations = []
    for service, entry in sorted(containers.items()):
        image = _docker_json("image", "inspect", entry["Image"])[0]
        view = from_container(service, entry, image, facts[service])
        context = context_of(service)
        evaluations += [
            Evaluation(service, control, evaluate(control, view, context))
            for control in load_policy().controls
        ]
    return evaluations
