"""The OCI registry the pipeline runs for itself: one container, its data in a named volume.

`ensure_registry()` starts the container `dashtam-registry` from the selected image source
(registry:3 upstream, the Debian stand-in in air-gapped mode), or reuses it when it already
runs healthy as asked, and returns the address to push to: `127.0.0.1:<port>` — never
`localhost`, which may resolve to ::1 first, where anyone may listen. Docker trusts a registry
on 127.0.0.0/8 without TLS, so pushing there needs no daemon configuration.

It is ours alone: it answers only with this machine's credentials (pipeline.registry_credentials,
given to Docker by `docker login`), so no other user or container can push a poisoned layer
cache for the next cold build to import, and it refuses deletes.

The container is published on 127.0.0.1 only and runs as 999:999 with a read-only root
filesystem, no capabilities and no-new-privileges; the registry writes nowhere but its data
directory, the named volume `dashtam-registry-data`. `stop_registry()` removes the container
and never the volume: the next start serves what was pushed before.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

from pipeline import engine, image_sources, preflight, registry_credentials
from pipeline.docker_client import (
    best_effort,
    container_output,
    docker,
    engine_json,
    reason,
    translated,
)
from pipeline.errors import PipelineError
from pipeline.process import last_line, run
from pipeline.stack import port_is_free

CONTAINER_NAME = "dashtam-registry"
VOLUME_NAME = "dashtam-registry-data"
PORT_VARIABLE = "DASHTAM_REGISTRY_PORT"
DEFAULT_PORT = 5000
HOST_IP = "127.0.0.1"
# The upstream image's contract, which the stand-in keeps.
REGISTRY_PORT = 5000
DATA_DIRECTORY = "/var/lib/registry"
# The stand-in's docker-registry account; upstream's image has none and runs as root, so the
# ID is given here for both, and a fresh volume is handed to it before the first start.
RUN_AS = "999:999"
# Marks the containers this module made; one of that name without it is someone else's and is
# never replaced or removed.
ROLE_LABEL = "dashtam.role"
ROLE = "registry"
# The htpasswd the registry was started with: new credentials restart it.
HTPASSWD_LABEL = "dashtam.htpasswd"
# Both images have a wget (BusyBox's). /v2/ asks for credentials now; the debug server's
# health endpoint (both images serve it on 5001, inside the container only) says whether the
# registry serves.
DEBUG_PORT = 5001
HEALTH_COMMAND = f"wget -q --spider http://127.0.0.1:{DEBUG_PORT}/debug/health"
# Where the registry reads the htpasswd file, and the settings that make it ours alone (the
# REGISTRY_<SECTION>_<KEY> variables both images read over their config file).
HTPASSWD_IN_CONTAINER = "/auth/htpasswd"
LOCKED_DOWN = {
    "REGISTRY_AUTH": "htpasswd",
    "REGISTRY_AUTH_HTPASSWD_REALM": "dashtam registry",
    "REGISTRY_AUTH_HTPASSWD_PATH": HTPASSWD_IN_CONTAINER,
    "REGISTRY_STORAGE_DELETE_ENABLED": "false",
}
HEALTHY_TIMEOUT_SECONDS = 60
STOP_TIMEOUT_SECONDS = 10
START_HINT = "rerun `nox -s registry`"
# Sessions started side by side (every verify builds and pushes) start one registry, not
# several racing for its name: the first starts it, the others wait for it and reuse it. In
# the user's own cache folder, not the checkout (two clones share one engine's registry) and
# not a shared temporary folder (where another user could make it first, and hold it).


def lock_file() -> Path:
    """$XDG_CACHE_HOME/dashtam/registry.lock (~/.cache/… when it is unset)."""
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "dashtam" / "registry.lock"


# How long a session waits for another to finish starting the registry (it takes seconds).
LOCK_TIMEOUT_SECONDS = 120


def registry_port() -> int:
    """DASHTAM_REGISTRY_PORT, or 5000 when it is unset."""
    value = os.environ.get(PORT_VARIABLE, "").strip()
    if not value:
        return DEFAULT_PORT
    if not value.isdigit() or not 1 <= int(value) <= 65535:
        raise PipelineError(
            f"{PORT_VARIABLE}={value!r} is not a port; set it to a number from 1 to 65535 "
            f"(unset, the registry uses {DEFAULT_PORT})."
        )
    return int(value)


def ensure_registry(
    name: str = CONTAINER_NAME, volume: str = VOLUME_NAME, port: int | None = None
) -> str:
    """Start the registry (or reuse the running one) and return its address, 127.0.0.1:<port>.

    A container of this name that runs healthy from the selected image, on this port and
    volume, is reused as it is. One that differs, has stopped or is unhealthy is replaced;
    the data stays in the volume. A port something else holds stops it before any change.
    """
    preflight.require_all(preflight.require_engine, image_sources.require_image_source)
    return start_or_reuse(name, volume, port)


def start_or_reuse(
    name: str = CONTAINER_NAME, volume: str = VOLUME_NAME, port: int | None = None
) -> str:
    """ensure_registry without its checks, for a caller that runs the engine's and the image
    source's checks itself (a build runs them alongside this)."""
    with _one_at_a_time():
        return _start_or_reuse(name, volume, port)


@contextlib.contextmanager
def _one_at_a_time(path: Path | None = None, timeout: float | None = None) -> Iterator[None]:
    path = path or lock_file()
    timeout = LOCK_TIMEOUT_SECONDS if timeout is None else timeout
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    with os.fdopen(descriptor, "r+") as handle:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise PipelineError(
                        f"another session has held {path} for {timeout:.0f} s while "
                        "starting the registry; wait for it, or end it (`fuser -v "
                        f"{path}` names it) and run again."
                    ) from None
                time.sleep(0.1)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _start_or_reuse(name: str, volume: str, port: int | None) -> str:
    port = registry_port() if port is None else port
    source = image_sources.selected_source()
    image = image_sources.image_references(source)["REGISTRY_IMAGE"]
    address = f"{HOST_IP}:{port}"
    login = registry_credentials.credentials()
    existing = inspect_container(name)
    if existing is not None:
        require_made_here(existing, name)
        health = (existing["State"].get("Health") or {}).get("Status")
        if (
            is_as_asked(existing, image, volume, port)
            and existing["State"]["Running"]
            and (health == "healthy" or wait_until_healthy(name) == "healthy")
        ):
            ensure_logged_in(address, login)
            return address
    # The container being replaced may hold the port itself; anything else holding it stops
    # the start before the container is touched.
    holds_the_port = (
        existing is not None
        and existing["State"]["Running"]
        and published(existing) == [(HOST_IP, str(port))]
    )
    if not holds_the_port and not port_is_free(HOST_IP, port):
        raise port_taken(port)
    if existing is not None:
        remove_container(name)
    if source == image_sources.UPSTREAM:
        pull_if_missing(image)
    prepare_volume(image, volume)
    start_container(name, image, volume, port)
    status = wait_until_healthy(name)
    if status != "healthy":
        raise PipelineError(
            f"the registry container {name} is {status} rather than healthy "
            f"({unhealthy_detail(name)}); see `docker logs {name}`, then {START_HINT}."
        )
    ensure_logged_in(address, login)
    return address


def ensure_logged_in(address: str, login: registry_credentials.Credentials) -> None:
    """`docker login` to the registry, unless Docker already holds these credentials for it
    (read from its config file: a no-op build asks no process)."""
    config_folder = Path(os.environ.get("DOCKER_CONFIG") or Path.home() / ".docker")
    try:
        stored = json.loads((config_folder / "config.json").read_text()).get("auths", {})
    except (OSError, ValueError):
        stored = {}
    held = stored.get(address)
    expected = login.authorization.removeprefix("Basic ")
    if held is not None and held.get("auth") in (expected, None):
        return  # these credentials, or a credential store Docker keeps them in
    with translated(f"`docker login {address}`", f"check the registry, then {START_HINT}"):
        docker().login(server=address, username=login.username, password=login.password)


def stop_registry(name: str = CONTAINER_NAME) -> bool:
    """Stop and remove the registry container (never its volume); False when there was none."""
    preflight.require_engine()
    existing = inspect_container(name)
    if existing is None:
        return False
    require_made_here(existing, name)
    with best_effort():
        docker().container.stop(name, time=STOP_TIMEOUT_SECONDS)
    remove_container(name)
    return True


def inspect_container(name: str) -> dict | None:
    """`docker container inspect` of the container with this name, or None.

    The engine's JSON (pipeline.docker_client.engine_json), not python-on-whales: every build asks
    this, and python-on-whales' import would be a third of a no-op build's time."""
    try:
        return engine_json("container", [name])[0]
    except PipelineError:
        return None


def require_made_here(details: dict, name: str) -> None:
    """Refuse to touch a container of this name that this module did not make."""
    labels = details["Config"].get("Labels") or {}
    if labels.get(ROLE_LABEL) != ROLE:
        raise PipelineError(
            f"a container named {name} exists that the pipeline did not start; rename or "
            f"remove it (`docker rm -f {name}`), then {START_HINT}."
        )


def is_as_asked(details: dict, image: str, volume: str, port: int) -> bool:
    """Whether a container runs this image, on this host port and with this data volume."""
    data_mounts = [
        mount.get("Name")
        for mount in details.get("Mounts") or []
        if mount.get("Destination") == DATA_DIRECTORY
    ]
    settings = dict(
        entry.split("=", 1) for entry in details["Config"].get("Env") or [] if "=" in entry
    )
    htpasswd = [
        mount.get("Source")
        for mount in details.get("Mounts") or []
        if mount.get("Destination") == HTPASSWD_IN_CONTAINER
    ]
    return (
        details["Config"].get("Image") == image
        and published(details) == [(HOST_IP, str(port))]
        and data_mounts == [volume]
        and all(settings.get(key) == value for key, value in LOCKED_DOWN.items())
        and htpasswd == [str(registry_credentials.htpasswd_file())]
        and (details["Config"].get("Labels") or {}).get(HTPASSWD_LABEL)
        == registry_credentials.htpasswd_digest()
    )


def published(details: dict) -> list[tuple[str, str]]:
    """(host IP, host port) of every binding of the registry's port."""
    bindings = (details["HostConfig"].get("PortBindings") or {}).get(f"{REGISTRY_PORT}/tcp")
    return [(binding["HostIp"], binding["HostPort"]) for binding in bindings or []]


def port_taken(port: int) -> PipelineError:
    return PipelineError(
        f"port {port} on {HOST_IP} is already in use by something else; set {PORT_VARIABLE} "
        f"to a free port (e.g. {PORT_VARIABLE}={port + 1}) or stop what holds {port}, "
        f"then {START_HINT}."
    )


def remove_container(name: str) -> None:
    try:
        with translated(
            f"removing the registry container {name}",
            f"remove it with `docker rm -f {name}`, then {START_HINT}",
        ):
            docker().container.remove(name, force=True, volumes=True)
    except PipelineError:
        if inspect_container(name) is not None:
            raise


def pull_if_missing(image: str) -> None:
    if engine.image_exists(image):
        return
    with translated(
        f"pulling {image}",
        f"without a registry to pull from, set {image_sources.SOURCE_VARIABLE}=airgap and run "
        f"`nox -s base-images`, then {START_HINT}",
    ):
        docker().image.pull(image, quiet=True)


def prepare_volume(image: str, volume: str) -> None:
    """Hand the data volume's top directory to RUN_AS (`docker run` creates a new volume).

    The volume is mounted `nocopy` here and in the registry: otherwise Docker copies the
    image's data directory, and its owner (root in the upstream image), into it at every
    mount for as long as it is empty. A throwaway root container with the one capability
    chown needs, and no network, gives it to the registry's user; the registry itself never
    runs as root.
    """
    with translated(
        f"preparing the registry's volume {volume} with {image}",
        f"fix the cause, then {START_HINT}",
    ):
        container_output(
            image,
            [RUN_AS, DATA_DIRECTORY],
            pull="never",
            networks=["none"],
            user="0:0",
            cap_drop=["ALL"],
            cap_add=["CHOWN"],
            security_options=["no-new-privileges"],
            volumes=[(volume, DATA_DIRECTORY, "nocopy")],
            entrypoint="chown",
        )


def start_container(name: str, image: str, volume: str, port: int) -> None:
    # Plain `docker`: python-on-whales' run has no --health-start-interval, without which
    # the registry is reported healthy after the first 10 s interval instead of in 0.2 s.
    started = run(
        [
            "docker",
            "run",
            "--detach",
            "--name",
            name,
            "--label",
            f"{ROLE_LABEL}={ROLE}",
            "--label",
            f"{HTPASSWD_LABEL}={registry_credentials.htpasswd_digest()}",
            "--pull",
            "never",
            "--user",
            RUN_AS,
            "--read-only",
            "--cap-drop",
            "ALL",
            "--security-opt",
            "no-new-privileges",
            "--publish",
            f"{HOST_IP}:{port}:{REGISTRY_PORT}",
            "--volume",
            f"{volume}:{DATA_DIRECTORY}:nocopy",
            "--volume",
            f"{registry_credentials.htpasswd_file()}:{HTPASSWD_IN_CONTAINER}:ro",
            *(f"--env={key}={value}" for key, value in LOCKED_DOWN.items()),
            "--health-cmd",
            HEALTH_COMMAND,
            # The engine's default once started: each probe is an exec (about 0.09 CPU-s),
            # and the registry runs all day beside the stacks.
            "--health-interval",
            "30s",
            "--health-timeout",
            "3s",
            "--health-retries",
            "3",
            "--health-start-period",
            "30s",
            "--health-start-interval",
            "200ms",
            image,
        ]
    )
    if started.returncode == 0:
        return
    said = reason(started)
    if "port is already allocated" in said or "address already in use" in said:
        remove_container(name)  # created, but never started
        raise port_taken(port)
    if "is already in use by container" in said:
        raise PipelineError(
            f"another process started a container named {name} at the same moment; {START_HINT} "
            "to reuse it."
        )
    raise PipelineError(
        f"cannot start the registry container {name} from {image} ({said}); fix the cause, "
        f"then {START_HINT}."
    )


def wait_until_healthy(name: str) -> str:
    """Wait while the healthcheck is still starting; the status it settles on, or `exited`."""
    deadline = time.monotonic() + HEALTHY_TIMEOUT_SECONDS
    while True:
        details = inspect_container(name)
        if details is None:
            return "gone"
        state = details["State"]
        if not state["Running"]:
            return "exited"
        status = (state.get("Health") or {}).get("Status", "no healthcheck")
        if status != "starting" or time.monotonic() > deadline:
            return status
        time.sleep(0.1)


def unhealthy_detail(name: str) -> str:
    """The last thing the container or its healthcheck said."""
    details = inspect_container(name)
    if details is None:
        return "the container is gone"
    probes = (details["State"].get("Health") or {}).get("Log") or []
    if details["State"]["Running"] and probes:
        return f"healthcheck: {last_line(probes[-1].get('Output'))}"
    with translated(f"reading the logs of {name}"):
        logs = docker().container.logs(name, tail=20)
    return f"exit code {details['State']['ExitCode']}: {last_line(logs)}"
