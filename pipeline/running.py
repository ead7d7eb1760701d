"""The one reader of a running compose project: its containers by service, as the engine says.

`verify` (tests/infra), `nox -s policy -- --project NAME`, the reports, the stack's own
lifecycle and the bench all read a project through `project_containers`, so they see the same
containers the same way: one listing through python-on-whales, then the engine's own
`docker container inspect` JSON of all of them in one call.
"""

from __future__ import annotations

from pipeline.docker_client import docker, engine_json, translated
from pipeline.errors import PipelineError

PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"
ONE_OFF_LABEL = "com.docker.compose.oneoff"


def project_containers(project: str, *, stopped: bool = False) -> dict[str, dict]:
    """Service -> `docker container inspect` of its container, for one compose project;
    stopped ones too when `stopped`. A one-off container (`compose run`) counts under its
    service only when the service has no container of its own."""
    with translated(f"listing the containers of compose project {project!r}"):
        listed = docker().container.list(
            all=stopped, filters=[("label", f"{PROJECT_LABEL}={project}")]
        )
    return by_service([container.id for container in listed])


def by_service(container_ids: list[str]) -> dict[str, dict]:
    """Service -> `docker container inspect` of the containers already listed (IDs)."""
    if not container_ids:
        return {}
    found: dict[str, dict] = {}
    for entry in sorted(engine_json("container", container_ids), key=lambda e: e["Name"]):
        labels = entry["Config"].get("Labels") or {}
        service = labels.get(SERVICE_LABEL, entry["Name"].lstrip("/"))
        if labels.get(ONE_OFF_LABEL) == "True":
            found.setdefault(service, entry)
        else:
            found[service] = entry
    return found


def running_project(project: str) -> dict[str, dict]:
    """The running containers of a project; one line when there are none."""
    containers = project_containers(project)
    if not containers:
        raise PipelineError(
            f"no running container of compose project {project!r}; start it, or check the "
            "name with `docker compose ls`."
        )
    return containers


def image_configurations(containers: dict[str, dict]) -> dict[str, dict]:
    """Image ID -> `docker image inspect` of it, for the images the containers run (by ID,
    never a tag), all in one call."""
    image_ids = sorted({entry["Image"] for entry in containers.values()})
    if not image_ids:
        return {}
    return {image["Id"]: image for image in engine_json("image", image_ids)}
