"""The one reader of a running compose project: its containers by service, as the engine says.

`verify` (tests/infra), `nox -s policy -- --project NAME`, the reports and the bench all read
a project through `project_containers`, so they see the same containers the same way.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from pipeline.docker_client import docker, translated
from pipeline.errors import PipelineError
from pipeline.process import last_line, run

if TYPE_CHECKING:
    from python_on_whales import Container

PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"


def project_containers(project: str, *, stopped: bool = False) -> dict[str, Container]:
    """Service -> its container (inspected once), for one compose project; stopped ones too
    when `stopped`. A one-off container (`compose run`) counts under its service only when
    the service has no container of its own."""
    with translated(f"listing the containers of compose project {project!r}"):
        containers = docker().container.list(
            all=stopped, filters=[("label", f"{PROJECT_LABEL}={project}")]
        )
    by_service: dict[str, Container] = {}
    for container in sorted(containers, key=lambda c: c.name):
        service = container.config.labels.get(SERVICE_LABEL, container.name)
        if container.config.labels.get("com.docker.compose.oneoff") == "True":
            by_service.setdefault(service, container)
        else:
            by_service[service] = container
    return by_service


def running_project(project: str) -> dict[str, Container]:
    """The running containers of a project; one line when there are none."""
    containers = project_containers(project)
    if not containers:
        raise PipelineError(
            f"no running container of compose project {project!r}; start it, or check the "
            "name with `docker compose ls`."
        )
    return containers


def engine_json(kind: str, references: list[str]) -> list[dict]:
    """The engine's own `docker <container|image> inspect` JSON of `references`, in one call.

    A literal argument list, on purpose: the policy's views, the reports and the checks read
    the engine's JSON field for field, and python-on-whales' models re-serialise it (times in
    another form, absent fields as null).
    """
    result = run(["docker", kind, "inspect", *references])
    if result.returncode != 0:
        raise PipelineError(f"`docker {kind} inspect` failed ({last_line(result.stderr)}).")
    return json.loads(result.stdout)


def inspected(containers: dict[str, Container]) -> dict[str, dict]:
    """Service -> `docker container inspect` of its container."""
    if not containers:
        return {}
    ids = {container.id: service for service, container in containers.items()}
    return {ids[entry["Id"]]: entry for entry in engine_json("container", list(ids))}


def image_configuration(image_id: str) -> dict:
    """`docker image inspect` of the image a container runs (by its ID, never a tag)."""
    return engine_json("image", [image_id])[0]
