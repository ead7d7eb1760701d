"""The pipeline's own OCI registry: started from the selected image source, pushed to over
127.0.0.1 with this machine's credentials (and refusing anyone without them), answering the
registry API, hardened, reused while it runs, and keeping what was pushed in its volume when
it is stopped and started again.

Every test works on a registry of its own (a throwaway container name, volume and free
port), never on the user's `dashtam-registry`, and removes it afterwards. The image pushed
is a one-file image imported here, tagged only with its push reference and deleted after.
"""

from __future__ import annotations

import io
import json
import os
import re
import socket
import subprocess
import tarfile
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from python_on_whales import docker

from pipeline.errors import PipelineError
from pipeline.image_sources import image_references, require_image_source
from pipeline.preflight import require_engine
from pipeline.registry import PORT_VARIABLE, ROLE, ROLE_LABEL, ensure_registry, stop_registry
from pipeline.registry_credentials import credentials
from tests.pipeline.conftest import docker_output, free_port, inspect

pytestmark = pytest.mark.docker

REPOSITORY = "dashtam-test/x"
TAG = "1"
DIGEST = re.compile(r"digest: (sha256:[0-9a-f]{64})")
# Docker pushes a Docker v2 manifest; an OCI one is as good an answer.
MANIFEST_TYPES = (
    "application/vnd.docker.distribution.manifest.v2+json, "
    "application/vnd.oci.image.manifest.v1+json"
)
# Where the upstream image and the stand-in keep their data; policy, not read from the code.
DATA_DIRECTORY = "/var/lib/registry"


@pytest.fixture(scope="module", autouse=True)
def registry_image_available() -> None:
    """Skip (fail in CI) when no engine answers or, air-gapped, the stand-ins are not built."""
    try:
        require_engine()
        require_image_source()
    except PipelineError as error:
        if os.environ.get("CI"):
            pytest.fail(f"CI needs the registry's image: {error}")
        pytest.skip(str(error))


@dataclass(frozen=True)
class Registry:
    """A throwaway registry: its container, volume, port and the address it answers on."""

    name: str
    volume: str
    port: int
    address: str

    def ensure(self) -> str:
        return ensure_registry(self.name, self.volume, self.port)

    def container_id(self) -> str:
        return inspect(self.name)["Id"]


def throwaway_names(purpose: str) -> tuple[str, str]:
    suffix = uuid.uuid4().hex[:8]
    return f"dashtam-test-{purpose}-{suffix}", f"dashtam-test-{purpose}-data-{suffix}"


def docker_quietly(*arguments: str) -> None:
    """A clean-up command: whether it finds anything to remove is not the test's question."""
    subprocess.run(["docker", *arguments], capture_output=True, check=False, timeout=120)


def remove_registry(name: str, volume: str) -> None:
    docker_quietly("container", "rm", "--force", "--volumes", name)
    docker_quietly("volume", "rm", "--force", volume)


@pytest.fixture(scope="module")
def registry() -> Iterator[Registry]:
    name, volume = throwaway_names("registry")
    port = free_port()
    try:
        address = ensure_registry(name, volume, port)
        yield Registry(name, volume, port, address)
    finally:
        remove_registry(name, volume)


def one_file_image(directory: Path, reference: str) -> None:
    """Import a one-file image (a few hundred bytes) under `reference` alone."""
    archive = directory / "image.tar"
    content = f"dashtam registry test {uuid.uuid4()}\n".encode()
    with tarfile.open(archive, "w") as image_tar:
        member = tarfile.TarInfo("hello.txt")
        member.size = len(content)
        image_tar.addfile(member, io.BytesIO(content))
    docker.image.import_(archive, tag=reference)


@pytest.fixture(scope="module")
def pushed(registry: Registry, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The digest `docker push` reported for REPOSITORY:TAG."""
    reference = f"{registry.address}/{REPOSITORY}:{TAG}"
    one_file_image(tmp_path_factory.mktemp("image"), reference)
    try:
        output = docker_output("push", reference)
    finally:
        docker_quietly("image", "rm", reference)
    match = DIGEST.search(output)
    assert match, f"registry: `docker push {reference}`, expected a digest, found {output!r}"
    return match[1]


def api(
    registry: Registry,
    path: str,
    method: str = "GET",
    accept: str = "",
    authenticated: bool = True,
    data: bytes | None = None,
) -> tuple:
    """(status, headers, body) of one request to the registry's API, with this machine's
    credentials unless `authenticated` is False."""
    headers = {"Accept": accept} if accept else {}
    if authenticated:
        headers["Authorization"] = credentials().authorization
    request = urllib.request.Request(
        f"http://{registry.address}{path}", method=method, headers=headers, data=data
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - http only
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


def manifest_digest(registry: Registry) -> str | None:
    status, headers, _ = api(
        registry, f"/v2/{REPOSITORY}/manifests/{TAG}", method="HEAD", accept=MANIFEST_TYPES
    )
    return headers.get("Docker-Content-Digest") if status == 200 else f"HTTP {status}"


# --- start, push, API ------------------------------------------------------------------------


def test_address_is_127_0_0_1_on_the_port_asked(registry: Registry):
    """Never `localhost`: it may resolve to ::1 first, where anyone may listen."""
    expected = f"127.0.0.1:{registry.port}"
    assert registry.address == expected, (
        f"registry: address, expected {expected}, found {registry.address}"
    )


def test_the_api_asks_for_credentials(registry: Registry):
    status, headers, _ = api(registry, "/v2/", authenticated=False)
    assert (status, "Basic" in headers.get("WWW-Authenticate", "")) == (401, True), (
        f"registry: GET /v2/ without credentials, expected 401 asking for Basic, found "
        f"{status} {headers.get('WWW-Authenticate')}"
    )
    assert api(registry, "/v2/")[0] == 200, "registry: GET /v2/ with the credentials refused"


def test_a_push_without_credentials_is_refused_and_imports_nothing(
    registry: Registry, tmp_path: Path
):
    """A poisoned layer cache pushed by someone without the credentials (a Docker config of
    their own) is refused; the registry holds no such cache for a build to import."""
    reference = f"{registry.address}/dashtam/production:cache"
    one_file_image(tmp_path, reference)
    stranger = tmp_path / "stranger-docker-config"
    stranger.mkdir()
    try:
        pushed = subprocess.run(
            ["docker", "--config", str(stranger), "push", reference],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        docker_quietly("image", "rm", reference)
    said = (pushed.stdout + pushed.stderr).lower()
    refused = any(words in said for words in ("unauthorized", "no basic auth credentials"))
    assert pushed.returncode != 0 and refused, (
        f"registry: an unauthenticated push, expected refused, found exit {pushed.returncode}: "
        f"{pushed.stdout[-300:]} {pushed.stderr[-300:]}"
    )
    status, _, _ = api(
        registry, "/v2/dashtam/production/manifests/cache", method="HEAD", accept=MANIFEST_TYPES
    )
    assert status == 404, f"registry: the refused cache is there (HTTP {status})"
    from pipeline.pushing import layer_caches

    assert layer_caches(registry.address, ["production"]) == [], "a build would import it"


def test_deletes_are_refused(registry: Registry, pushed: str):
    status, _, _ = api(registry, f"/v2/{REPOSITORY}/manifests/{pushed}", method="DELETE")
    assert status in (405, 403), f"registry: DELETE of a manifest, expected refused, found {status}"
    assert manifest_digest(registry) == pushed, "registry: the manifest is gone after a DELETE"


def test_runs_the_selected_sources_image(registry: Registry):
    expected = image_references()["REGISTRY_IMAGE"]
    found = inspect(registry.name)["Config"]["Image"]
    assert found == expected, f"registry: image, expected {expected}, found {found}"


def test_push_reports_a_digest(pushed: str):
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", pushed), (
        f"registry: digest of the push, expected sha256:<64 hex>, found {pushed!r}"
    )


def test_catalog_lists_the_pushed_repository(registry: Registry, pushed: str):
    status, _, body = api(registry, "/v2/_catalog")
    found = json.loads(body or b"{}").get("repositories") if status == 200 else f"HTTP {status}"
    assert found == [REPOSITORY], f"registry: /v2/_catalog, expected [{REPOSITORY}], found {found}"


def test_manifest_answers_with_the_pushed_digest(registry: Registry, pushed: str):
    found = manifest_digest(registry)
    assert found == pushed, (
        f"registry: HEAD /v2/{REPOSITORY}/manifests/{TAG}, Docker-Content-Digest expected "
        f"{pushed}, found {found}"
    )


# --- hardening: policy written here, facts from `docker inspect` ------------------------------


def user_of(details: dict) -> str:
    return details["Config"]["User"] or "root (image default)"


HARDENING = {
    "runs-as-a-non-root-user": (
        user_of,
        lambda user: user.split(":")[0] not in ("", "0", "root", "root (image default)"),
    ),
    "has-a-read-only-root-filesystem": (
        lambda details: details["HostConfig"]["ReadonlyRootfs"],
        lambda read_only: read_only is True,
    ),
    "drops-every-capability": (
        lambda details: (details["HostConfig"]["CapDrop"], details["HostConfig"]["CapAdd"]),
        lambda caps: caps[0] == ["ALL"] and not caps[1],
    ),
    "sets-no-new-privileges": (
        lambda details: details["HostConfig"]["SecurityOpt"] or [],
        lambda options: any(option.startswith("no-new-privileges") for option in options),
    ),
    "publishes-on-loopback-only": (
        lambda details: [
            binding["HostIp"]
            for bindings in (details["HostConfig"]["PortBindings"] or {}).values()
            for binding in bindings
        ],
        lambda host_ips: bool(host_ips) and set(host_ips) == {"127.0.0.1"},
    ),
    "is-healthy-by-its-healthcheck": (
        lambda details: (
            (details["Config"].get("Healthcheck") or {}).get("Test"),
            (details["State"].get("Health") or {}).get("Status"),
        ),
        lambda health: bool(health[0]) and health[0] != ["NONE"] and health[1] == "healthy",
    ),
    "is-labelled-as-the-pipelines-registry": (
        lambda details: (details["Config"]["Labels"] or {}).get(ROLE_LABEL),
        lambda role: role == ROLE,
    ),
}


@pytest.mark.parametrize("control", list(HARDENING))
def test_registry_container(registry: Registry, control: str):
    read, holds = HARDENING[control]
    found = read(inspect(registry.name))
    assert holds(found), f"registry: {control}, found {found!r}"


def test_data_lives_in_the_named_volume(registry: Registry):
    mounts = [
        (mount["Type"], mount.get("Name"))
        for mount in inspect(registry.name)["Mounts"]
        if mount["Destination"] == DATA_DIRECTORY
    ]
    expected = [("volume", registry.volume)]
    assert mounts == expected, f"registry: {DATA_DIRECTORY}, expected {expected}, found {mounts}"


def test_server_process_is_not_root(registry: Registry):
    """What the kernel says about PID 1, not what the container was asked to be."""
    status = docker_output("exec", registry.name, "cat", "/proc/1/status")
    uid_line = next(line for line in status.splitlines() if line.startswith("Uid:"))
    uids = [int(uid) for uid in uid_line.split()[1:]]
    assert 0 not in uids, f"registry: server UIDs, expected none to be root (0), found {uids}"


# --- lifecycle --------------------------------------------------------------------------------


def test_second_ensure_reuses_the_running_registry(registry: Registry):
    before = inspect(registry.name)
    address = registry.ensure()
    after = inspect(registry.name)
    assert address == registry.address, (
        f"registry: address of the second ensure, expected {registry.address}, found {address}"
    )
    assert (after["Id"], after["State"]["StartedAt"]) == (
        before["Id"],
        before["State"]["StartedAt"],
    ), (
        f"registry: second ensure, expected the same container {before['Id'][:12]} "
        f"(started {before['State']['StartedAt']}), found {after['Id'][:12]} "
        f"(started {after['State']['StartedAt']})"
    )


def test_stop_keeps_the_volume_and_a_new_start_serves_the_push(registry: Registry, pushed: str):
    first_container = registry.container_id()
    stopped = stop_registry(registry.name)
    containers = docker_output("ps", "--all", "--quiet", "--filter", f"name=^{registry.name}$")
    volumes = docker_output("volume", "ls", "--quiet", "--filter", f"name=^{registry.volume}$")
    assert stopped and not containers.strip(), (
        f"registry: after stop_registry, expected no container {registry.name}, found "
        f"{containers.split()} (stop_registry returned {stopped})"
    )
    assert volumes.split() == [registry.volume], (
        f"registry: after stop_registry, expected the volume {registry.volume}, "
        f"found {volumes.split()}"
    )
    address = registry.ensure()
    assert registry.container_id() != first_container and address == registry.address, (
        f"registry: ensure after stop, expected a new container at {registry.address}, "
        f"found {registry.container_id()[:12]} at {address}"
    )
    found = manifest_digest(registry)
    assert found == pushed, (
        f"registry: manifest after stop and start, expected {pushed} (kept in the volume), "
        f"found {found}"
    )


def test_stop_without_a_registry_says_so():
    name, _ = throwaway_names("no-registry")
    assert stop_registry(name) is False, f"registry: stop_registry({name!r}) with no container"


@pytest.fixture
def throwaway() -> Iterator[tuple[str, str]]:
    name, volume = throwaway_names("other")
    try:
        yield name, volume
    finally:
        remove_registry(name, volume)


def test_a_new_root_owned_volume_is_handed_to_the_registry_user(throwaway: tuple[str, str]):
    """A volume made beforehand belongs to root, as the upstream image's data directory does."""
    name, volume = throwaway
    docker_output("volume", "create", volume)
    port = free_port()
    started = Registry(name, volume, port, ensure_registry(name, volume, port))
    status, _, body = api(started, f"/v2/{REPOSITORY}/blobs/uploads/", method="POST")
    assert status == 202, (
        f"registry on a new root-owned volume: POST of an upload, expected HTTP 202, found "
        f"{status} {body[:200]!r}"
    )


# --- refusals -------------------------------------------------------------------------------


def test_busy_port_is_one_line_naming_the_port_and_the_setting(throwaway: tuple[str, str]):
    name, volume = throwaway
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(PipelineError) as refused:
            ensure_registry(name, volume, port)
    message = str(refused.value)
    assert "\n" not in message and str(port) in message and PORT_VARIABLE in message, (
        f"registry: port {port} taken, expected one line naming {port} and {PORT_VARIABLE}, "
        f"found {message!r}"
    )
    leftovers = docker_output("ps", "--all", "--quiet", "--filter", f"name=^{name}$").split()
    leftovers += docker_output("volume", "ls", "--quiet", "--filter", f"name=^{volume}$").split()
    assert not leftovers, f"registry: port {port} taken, expected nothing made, found {leftovers}"


def test_a_container_the_pipeline_did_not_start_is_left_alone(throwaway: tuple[str, str]):
    name, volume = throwaway
    foreign = docker_output(
        "container", "create", "--name", name, image_references()["REGISTRY_IMAGE"]
    ).strip()
    with pytest.raises(PipelineError) as refused:
        ensure_registry(name, volume, free_port())
    assert name in str(refused.value), (
        f"registry: foreign container {name}, expected a refusal naming it, found {refused.value}"
    )
    assert inspect(name)["Id"] == foreign, f"registry: foreign container {name} was replaced"


# --- Builds land by digest; publishing tags what was verified, uploading nothing ------------

# An access-log line of a blob upload (started, continued or finished): the registry's own
# account of what was uploaded, which the client's progress output may not show.
BLOB_UPLOAD = re.compile(r'"(?:POST|PATCH|PUT) /v2/\S+/blobs/uploads/')


def blob_uploads(registry: Registry) -> int:
    logs = subprocess.run(
        ["docker", "container", "logs", registry.name], capture_output=True, text=True, check=False
    )
    return len(BLOB_UPLOAD.findall(logs.stdout + logs.stderr))


@pytest.fixture(scope="module")
def built_callback(registry: Registry) -> Iterator[tuple[str, object]]:
    """The real callback image as a build lands it in the (throwaway) registry."""
    from pipeline import pushing

    local_id = docker_output("image", "inspect", "--format", "{{.Id}}", "dashtam/callback:latest")
    local_id = local_id.strip()
    try:
        yield local_id, pushing.push_images({"callback": local_id}, registry.address)["callback"]
    finally:
        docker_quietly("image", "rm", f"{registry.address}/dashtam/callback:build-{local_id[7:19]}")


def test_a_build_lands_by_digest_and_an_unchanged_one_is_not_pushed_again(
    registry: Registry, built_callback
):
    from pipeline import pushing

    local_id, pushed = built_callback
    status, _, body = api(
        registry,
        f"/v2/dashtam/callback/manifests/{pushed.digest}",
        accept="application/vnd.docker.distribution.manifest.v2+json",
    )
    assert status == 200, f"registry: manifest {pushed.digest}, expected 200, found {status}"
    served = json.loads(body)["config"]["digest"]
    assert served == local_id, f"registry: config of {pushed.reference}, expected {local_id}"
    assert pushed.reference == f"{registry.address}/dashtam/callback@{pushed.digest}"
    uploads = blob_uploads(registry)
    again = pushing.push_images({"callback": local_id}, registry.address)["callback"]
    assert (again.digest, again.uploaded) == (pushed.digest, False), (
        f"registry: second push of an unchanged image, expected {pushed.digest} found there, "
        f"found {again}"
    )
    assert blob_uploads(registry) == uploads, "registry: an unchanged image uploaded blobs again"


def test_a_new_build_removes_the_superseded_one_nothing_else_names(
    registry: Registry, tmp_path: Path
):
    """Two builds of a stage one after the other: the first, named by its build tag alone,
    goes; an image another tag still names (a verify run's) stays."""
    from pipeline import pushing

    target = f"{registry.address}/dashtam/callback"
    identifiers = []
    for build in ("first", "second", "third"):
        scratch = f"dashtam-test/superseded:{build}"
        (tmp_path / build).mkdir()
        one_file_image(tmp_path / build, scratch)
        identifiers.append(
            docker_output("image", "inspect", "--format", "{{.Id}}", scratch).strip()
        )
        pushing.push_images({"callback": identifiers[-1]}, registry.address)
        if build != "second":
            docker_quietly("image", "rm", scratch)  # the second keeps a tag of its own
    try:
        left = docker_output("image", "ls", "--no-trunc", "--format", "{{.ID}}", target).split()
        assert identifiers[0] not in left, "registry: the superseded first build was kept"
        assert identifiers[1] in left, "registry: a build another tag names was removed"
        assert identifiers[2] in left, "registry: the current build was removed"
    finally:
        docker_quietly("image", "rm", "dashtam-test/superseded:second")
        for identifier in identifiers:
            docker_quietly("image", "rm", f"{target}:build-{identifier[7:19]}")


def test_a_new_build_removes_the_layer_cache_images_the_cache_tag_moved_off(
    registry: Registry, tmp_path: Path
):
    """Each build that changed an image pushes a new `:cache`; the one it replaced keeps only
    the registry's digest record, no tag, and would pile up (and be inspected by every build)
    unless the next build removes it."""
    from pipeline import pushing

    target = f"{registry.address}/dashtam/callback"
    identifiers = {}
    for name in ("old-cache", "new-cache", "build"):
        scratch = f"dashtam-test/cache-moved:{name}"
        (tmp_path / name).mkdir()
        one_file_image(tmp_path / name, scratch)
        identifiers[name] = docker_output(
            "image", "inspect", "--format", "{{.Id}}", scratch
        ).strip()
        if name != "build":
            docker_quietly("image", "tag", scratch, f"{target}:cache")
            docker_quietly("image", "push", "--quiet", f"{target}:cache")
            docker_quietly("image", "rm", scratch)
    try:
        pushing.push_images({"callback": identifiers["build"]}, registry.address)
        left = docker_output("image", "ls", "--no-trunc", "--format", "{{.ID}}", target).split()
        assert identifiers["old-cache"] not in left, "registry: the replaced layer cache was kept"
        assert identifiers["new-cache"] in left, "registry: the current layer cache was removed"
        assert identifiers["build"] in left, "registry: the current build was removed"
    finally:
        docker_quietly(
            "image", "rm", f"{target}:cache", f"{target}:build-{identifiers['build'][7:19]}"
        )
        docker_quietly("image", "rm", identifiers["old-cache"], "dashtam-test/cache-moved:build")


def verified_records(reports: Path, local_id: str, reference: str) -> None:
    """Passing verify(ci) and verify(prod) records that booted the callback from `reference`."""
    from pipeline.environments import ENVIRONMENTS
    from pipeline.provenance import binding_of
    from pipeline.reports import record_path

    for environment in ("ci", "prod"):
        record = {
            "verdict": "PASS",
            "bound": binding_of(ENVIRONMENTS[environment]),
            "images": {"callback": local_id},
            "references": {"callback": reference},
        }
        record_path(environment, reports).write_text(json.dumps(record))


def test_publish_tags_the_verified_digest_and_uploads_nothing(
    registry: Registry, built_callback, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    from pipeline import images, publishing

    local_id, pushed = built_callback
    verified_records(tmp_path, local_id, pushed.reference)
    monkeypatch.setattr(images, "images_that_run", lambda: ["callback"])
    monkeypatch.setattr(publishing.registry, "ensure_registry", lambda: registry.address)
    uploads = blob_uploads(registry)
    [published] = publishing.publish("publish-test", None, tmp_path)
    status, headers, _ = api(
        registry,
        "/v2/dashtam/callback/manifests/publish-test",
        method="HEAD",
        accept=MANIFEST_TYPES,
    )
    tagged = headers.get("Docker-Content-Digest")
    assert (status, tagged) == (200, pushed.digest), (
        f"registry: callback:publish-test, expected the verified {pushed.digest}, found "
        f"HTTP {status} {tagged}"
    )
    assert published.digest == pushed.digest
    assert blob_uploads(registry) == uploads, "registry: publishing uploaded blobs"
    record = json.loads((tmp_path / "published.json").read_text())
    assert record["callback"]["verified_by"] == ["ci", "prod"]
    assert (tmp_path / "sbom" / "callback.json").is_file(), "publish wrote no SBOM"


def test_publish_refuses_a_digest_no_passing_verify_named(
    registry: Registry, built_callback, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """The registry's digest for another image ID (the records name an image the registry
    does not hold under that digest): nothing is tagged."""
    from pipeline import images, publishing
    from pipeline.errors import PipelineError

    _, pushed = built_callback
    other = "sha256:" + "0" * 64
    verified_records(tmp_path, other, pushed.reference)
    monkeypatch.setattr(images, "images_that_run", lambda: ["callback"])
    monkeypatch.setattr(publishing, "image_exists", lambda image: True)
    monkeypatch.setattr(publishing.registry, "ensure_registry", lambda: registry.address)
    with pytest.raises(PipelineError, match=r"is image sha256:.*not the sha256:0000"):
        publishing.publish("refused-test", None, tmp_path)
    status, _, _ = api(
        registry,
        "/v2/dashtam/callback/manifests/refused-test",
        method="HEAD",
        accept=MANIFEST_TYPES,
    )
    assert status == 404, f"registry: a refused publish tagged refused-test (HTTP {status})"


def test_publish_to_another_registry_pushes_the_verified_image(
    registry: Registry, built_callback, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """--to: the verified image ID lands under <destination>/dashtam/<stage>:<tag>."""
    from pipeline import images, publishing

    local_id, pushed = built_callback
    verified_records(tmp_path, local_id, pushed.reference)
    monkeypatch.setattr(images, "images_that_run", lambda: ["callback"])
    destination = f"{registry.address}/mirror"
    try:
        [published] = publishing.publish("to-test", destination, tmp_path)
    finally:
        docker_quietly("image", "rm", f"{destination}/dashtam/callback:to-test")
    status, _, body = api(
        registry,
        f"/v2/mirror/dashtam/callback/manifests/{published.digest}",
        accept="application/vnd.docker.distribution.manifest.v2+json",
    )
    assert status == 200 and json.loads(body)["config"]["digest"] == local_id, (
        f"registry: {published.reference}, expected the verified image {local_id}"
    )
