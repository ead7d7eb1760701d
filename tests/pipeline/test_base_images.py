"""The air-gapped stand-ins keep the contracts the stack relies on from the upstream images.

Real containers from the locally built stand-ins (`nox -s base-images`): PostgreSQL and Redis
start with the upstream image's variables and flags, accept the credentials they were given,
refuse others and run without root; the registry serves on registry:3's port, config path
and data directory without root, and takes REGISTRY_* overrides; a venv made on the uv
stand-in runs on the Python stand-in; the CA bundle the uv build used never reaches a layer;
Python and uv have the official images' layout, so the code paths written for upstream run
here too. Image references come from pipeline.image_sources, the stand-ins' defaults (PGDATA,
WORKDIR) from the images themselves.
"""

from __future__ import annotations

import io
import os
import secrets
import tarfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from python_on_whales import Container, DockerException, docker

from pipeline.base_images import VERSION_LABEL
from pipeline.ca_bundle import ca_bundle_path
from pipeline.errors import PipelineError
from pipeline.image_sources import BASE_IMAGES, UV_VERSION, missing_stand_ins
from pipeline.preflight import require_engine

pytestmark = pytest.mark.docker

STAND_INS = {image.key: image for image in BASE_IMAGES}
POSTGRES_IMAGE = STAND_INS["postgres"].airgap
REDIS_IMAGE = STAND_INS["redis"].airgap
PYTHON_IMAGE = STAND_INS["python"].airgap
UV_IMAGE = STAND_INS["uv"].airgap
REGISTRY_IMAGE = STAND_INS["registry"].airgap

# The official images' layout (python:3.13-slim, uv's python3.13-trixie-slim): CPython built
# into /usr/local, libpython a separate library found through the loader's cache. Written
# here, not read from the images: a stand-in that drifts from upstream's layout fails.
INTERPRETER = "/usr/local/bin/python3.13"
LIBPYTHON = "/usr/local/lib/libpython3.13.so.1.0"
STDLIB = "/usr/local/lib/python3.13"
# registry:3's contract (distribution's official image), written here for the same reason.
REGISTRY_PORT = 5000
REGISTRY_CONFIG = "/etc/distribution/config.yml"
REGISTRY_DATA = "/var/lib/registry"
POSTGRES_USER = "dashtam_test"
POSTGRES_DB = "dashtam_test_db"
READY_TIMEOUT_SECONDS = 60


@pytest.fixture(scope="module", autouse=True)
def stand_ins_built() -> None:
    """Skip (fail in CI) when no engine answers or the stand-ins were never built."""
    try:
        require_engine()
    except PipelineError as error:
        if os.environ.get("CI"):
            pytest.fail(f"CI needs the base-image stand-ins: {error}")
        pytest.skip(str(error))
    missing = missing_stand_ins()
    if missing and os.environ.get("CI"):
        pytest.fail(f"CI needs the base-image stand-ins; missing: {', '.join(missing)}")
    if missing:
        pytest.skip(f"stand-ins {', '.join(missing)} are not built; run `nox -s base-images`")


def unique_name(purpose: str) -> str:
    return f"dashtam-test-{purpose}-{uuid.uuid4().hex[:8]}"


def image_environment(reference: str) -> dict[str, str]:
    variables = docker.image.inspect(reference).config.env or []
    return dict(variable.split("=", 1) for variable in variables)


def wait_until_ready(container: Container, command: list[str], what: str) -> None:
    """Run `command` in the container until it succeeds; fail with the logs if it never does."""
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while True:
        container.reload()
        if not container.state.running:
            pytest.fail(
                f"{what}: container exited (code {container.state.exit_code}) before it was "
                f"ready; its logs:\n{docker.container.logs(container)}"
            )
        try:
            container.execute(command)
            return
        except DockerException:
            if time.monotonic() > deadline:
                pytest.fail(
                    f"{what}: `{' '.join(command)}` did not succeed within "
                    f"{READY_TIMEOUT_SECONDS}s; logs:\n{docker.container.logs(container)}"
                )
            time.sleep(0.5)


def process_one_uids(container: Container) -> list[int]:
    """Real, effective, saved and filesystem UID of the container's main process."""
    status = str(container.execute(["cat", "/proc/1/status"]))
    uid_line = next(line for line in status.splitlines() if line.startswith("Uid:"))
    return [int(uid) for uid in uid_line.split()[1:]]


# --- PostgreSQL -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def postgres_password() -> str:
    return secrets.token_hex(16)


@pytest.fixture(scope="module", params=["named-volume", "tmpfs"])
def postgres(request: pytest.FixtureRequest, postgres_password: str) -> Iterator[Container]:
    """A PostgreSQL stand-in with PGDATA on a fresh named volume or on a tmpfs (root, 1777)."""
    data_directory = image_environment(POSTGRES_IMAGE)["PGDATA"]
    volume = (
        docker.volume.create(unique_name("pgdata")) if request.param == "named-volume" else None
    )
    storage: dict = (
        {"volumes": [(volume, data_directory)]} if volume else {"tmpfs": [data_directory]}
    )
    container = docker.run(
        POSTGRES_IMAGE,
        # Options alone, as a compose `command:` gives them: the entrypoint prepends postgres.
        ["-c", "fsync=off"],
        name=unique_name(f"postgres-{request.param}"),
        detach=True,
        envs={
            "POSTGRES_USER": POSTGRES_USER,
            "POSTGRES_PASSWORD": postgres_password,
            "POSTGRES_DB": POSTGRES_DB,
        },
        pull="never",
        **storage,
    )
    try:
        wait_until_ready(
            container,
            [
                "pg_isready",
                "--host=127.0.0.1",
                f"--username={POSTGRES_USER}",
                f"--dbname={POSTGRES_DB}",
            ],
            f"postgres ({request.param})",
        )
        yield container
    finally:
        container.remove(force=True, volumes=True)
        if volume:
            volume.remove()


def psql_over_tcp(container: Container, password: str, query: str) -> str:
    return str(
        container.execute(
            [
                "psql",
                "--host=127.0.0.1",
                f"--username={POSTGRES_USER}",
                f"--dbname={POSTGRES_DB}",
                "--no-password",
                "--tuples-only",
                "--no-align",
                "--command",
                query,
            ],
            envs={"PGPASSWORD": password},
        )
    ).strip()


def test_postgres_accepts_its_credentials_over_tcp(postgres: Container, postgres_password: str):
    found = psql_over_tcp(
        postgres, postgres_password, "SELECT current_user || ' ' || current_database()"
    )
    expected = f"{POSTGRES_USER} {POSTGRES_DB}"
    assert found == expected, f"postgres: login over TCP, expected {expected!r}, found {found!r}"


def test_postgres_refuses_a_wrong_password(postgres: Container):
    with pytest.raises(DockerException) as refused:
        psql_over_tcp(postgres, "not-the-password", "SELECT 1")
    assert "password authentication failed" in (refused.value.stderr or ""), (
        f"postgres: wrong password over TCP, expected 'password authentication failed', "
        f"found {refused.value.stderr!r}"
    )


def test_postgres_takes_server_options_from_the_command(
    postgres: Container, postgres_password: str
):
    found = psql_over_tcp(postgres, postgres_password, "SHOW fsync")
    assert found == "off", (
        f"postgres: `-c fsync=off` from the command, expected 'off', found {found!r}"
    )


def test_postgres_server_is_not_root(postgres: Container):
    uids = process_one_uids(postgres)
    command = str(postgres.execute(["cat", "/proc/1/comm"])).strip()
    assert command == "postgres", (
        f"postgres: PID 1, expected the postgres server, found {command!r}"
    )
    assert 0 not in uids, f"postgres: server UIDs, expected none to be root (0), found {uids}"


def test_postgres_without_a_password_stops_with_one_clear_line():
    container = docker.run(
        POSTGRES_IMAGE, name=unique_name("postgres-no-password"), detach=True, pull="never"
    )
    try:
        exit_code = docker.container.wait(container)
        output = docker.container.logs(container)
    finally:
        container.remove(force=True, volumes=True)
    lines = [line for line in output.splitlines() if line.strip()]
    assert exit_code != 0 and len(lines) == 1 and "POSTGRES_PASSWORD" in lines[0], (
        f"postgres: start without POSTGRES_PASSWORD, expected a failure with one line naming it, "
        f"found exit code {exit_code} and {lines}"
    )


# --- Redis ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def redis_password() -> str:
    return secrets.token_hex(16)


@pytest.fixture(scope="module")
def redis_network() -> Iterator[str]:
    network = docker.network.create(unique_name("redis-net"))
    try:
        yield network.name
    finally:
        network.remove()


@pytest.fixture(scope="module")
def redis(redis_password: str, redis_network: str) -> Iterator[Container]:
    """A Redis stand-in started the way compose starts it: flags only, no config file."""
    container = docker.run(
        REDIS_IMAGE,
        ["--requirepass", redis_password, "--appendonly", "yes"],
        name=unique_name("redis"),
        detach=True,
        networks=[redis_network],
        pull="never",
    )
    try:
        wait_until_ready(
            container,
            ["redis-cli", "-a", redis_password, "--no-auth-warning", "set", "probe", "written"],
            "redis",
        )
        yield container
    finally:
        container.remove(force=True, volumes=True)


def redis_cli(container: Container, *arguments: str, password: str | None = None) -> str:
    authentication = ["-a", password, "--no-auth-warning"] if password else []
    return str(container.execute(["redis-cli", *authentication, *arguments])).strip()


def test_redis_refuses_an_unauthenticated_command(redis: Container):
    # redis-cli prints a server error and still exits 0 when not on a terminal.
    try:
        found = redis_cli(redis, "get", "probe")
    except DockerException as error:
        found = f"{error.stdout or ''}{error.stderr or ''}"
    assert "NOAUTH" in found, f"redis: unauthenticated GET, expected NOAUTH, found {found!r}"


def test_redis_accepts_an_authenticated_command(redis: Container, redis_password: str):
    found = redis_cli(redis, "get", "probe", password=redis_password)
    assert found == "written", f"redis: authenticated GET, expected 'written', found {found!r}"


def test_redis_appends_to_the_data_directory(redis: Container, redis_password: str):
    data_directory = str(docker.image.inspect(REDIS_IMAGE).config.working_dir)
    found = redis_cli(redis, "config", "get", "dir", password=redis_password).splitlines()[-1]
    listing = str(redis.execute(["ls", data_directory]))
    assert found == data_directory, f"redis: data dir, expected {data_directory}, found {found}"
    assert "appendonlydir" in listing.split(), (
        f"redis: --appendonly yes, expected appendonlydir in {data_directory}, found {listing!r}"
    )


def test_redis_server_is_not_root(redis: Container):
    uids = process_one_uids(redis)
    assert 0 not in uids, f"redis: server UIDs, expected none to be root (0), found {uids}"


def test_redis_is_reachable_from_another_container(
    redis: Container, redis_password: str, redis_network: str
):
    found = str(
        docker.run(
            REDIS_IMAGE,
            ["redis-cli", "-h", str(redis.name), "-a", redis_password, "--no-auth-warning", "ping"],
            networks=[redis_network],
            name=unique_name("redis-client"),
            remove=True,
            pull="never",
        )
    ).strip()
    assert found == "PONG", f"redis: PING from another container, expected PONG, found {found!r}"


# --- Registry -------------------------------------------------------------------------------


def registry_answers(port: int) -> list[str]:
    """A readiness probe with the wget both registry images have (BusyBox's)."""
    return ["wget", "-q", "--spider", f"http://127.0.0.1:{port}/v2/"]


@pytest.fixture(scope="module")
def registry_network() -> Iterator[str]:
    network = docker.network.create(unique_name("registry-net"))
    try:
        yield network.name
    finally:
        network.remove()


@pytest.fixture(scope="module")
def registry(registry_network: str) -> Iterator[Container]:
    """A registry stand-in started as `docker run registry:3` starts: no arguments at all."""
    container = docker.run(
        REGISTRY_IMAGE,
        name=unique_name("registry"),
        detach=True,
        networks=[registry_network],
        pull="never",
    )
    try:
        wait_until_ready(container, registry_answers(REGISTRY_PORT), "registry")
        yield container
    finally:
        container.remove(force=True, volumes=True)


def test_registry_serves_the_api_on_its_port_as_non_root(registry: Container):
    found = str(registry.execute(["wget", "-q", "-O-", f"http://127.0.0.1:{REGISTRY_PORT}/v2/"]))
    uids = process_one_uids(registry)
    assert found.strip() == "{}", (
        f"registry: GET :{REGISTRY_PORT}/v2/, expected {{}}, found {found!r}"
    )
    assert 0 not in uids, f"registry: server UIDs, expected none to be root (0), found {uids}"


def test_registry_stores_uploads_under_its_data_directory(registry: Container):
    """An upload started over the API lands in REGISTRY_DATA, written by the non-root server."""
    registry.execute(
        [
            "wget",
            "-q",
            "-O-",
            "--post-data",
            "",
            f"http://127.0.0.1:{REGISTRY_PORT}/v2/dashtam-probe/blobs/uploads/",
        ]
    )
    repositories = f"{REGISTRY_DATA}/docker/registry/v2/repositories"
    found = str(registry.execute(["ls", repositories])).split()
    assert found == ["dashtam-probe"], (
        f"registry: repositories under {repositories}, expected ['dashtam-probe'], found {found}"
    )


def test_registry_reads_its_config_from_the_upstream_path(tmp_path: Path):
    """A config copied to REGISTRY_CONFIG moves the server to another port: it was read."""
    moved_port = REGISTRY_PORT + 2
    config = tmp_path / "config.yml"
    config.write_text(
        "version: 0.1\n"
        f"storage:\n  filesystem:\n    rootdirectory: {REGISTRY_DATA}\n"
        f"http:\n  addr: :{moved_port}\n"
    )
    config.chmod(0o644)
    container = docker.container.create(REGISTRY_IMAGE, name=unique_name("registry-config"))
    try:
        docker.copy(config, (container, REGISTRY_CONFIG))
        container.start()
        wait_until_ready(container, registry_answers(moved_port), "registry (copied config)")
        with pytest.raises(DockerException):
            container.execute(registry_answers(REGISTRY_PORT))
    finally:
        container.remove(force=True, volumes=True)


DELETE_SETTINGS = {
    # registry:3's config enables deletes: an unknown manifest is simply not found.
    "upstream-default": ({}, 404),
    "REGISTRY_STORAGE_DELETE_ENABLED=false": ({"REGISTRY_STORAGE_DELETE_ENABLED": "false"}, 405),
}
# DELETE from another container: BusyBox's wget cannot send one.
DELETE_REQUEST = """
import sys, urllib.error, urllib.request
request = urllib.request.Request(sys.argv[1], method="DELETE")
try:
    print(urllib.request.urlopen(request, timeout=10).status)
except urllib.error.HTTPError as error:
    print(error.code)
"""


@pytest.mark.parametrize("setting", list(DELETE_SETTINGS))
def test_registry_settings_yield_to_registry_variables(setting: str, registry_network: str):
    variables, expected = DELETE_SETTINGS[setting]
    container = docker.run(
        REGISTRY_IMAGE,
        name=unique_name("registry-delete"),
        detach=True,
        envs=variables,
        networks=[registry_network],
        pull="never",
    )
    try:
        wait_until_ready(container, registry_answers(REGISTRY_PORT), f"registry ({setting})")
        url = (
            f"http://{container.name}:{REGISTRY_PORT}/v2/dashtam-probe/manifests/sha256:{'0' * 64}"
        )
        found = str(
            docker.run(
                PYTHON_IMAGE,
                ["python3", "-c", DELETE_REQUEST, url],
                networks=[registry_network],
                name=unique_name("registry-client"),
                remove=True,
                pull="never",
            )
        ).strip()
    finally:
        container.remove(force=True, volumes=True)
    assert found == str(expected), (
        f"registry ({setting}): DELETE of an unknown manifest, expected HTTP {expected}, "
        f"found {found}"
    )


# --- Python and uv --------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["python3.13", "python3", "python"])
@pytest.mark.parametrize("reference", [PYTHON_IMAGE, UV_IMAGE], ids=["python", "uv"])
def test_python_commands_run_the_shared_interpreter(reference: str, command: str):
    found = str(
        docker.run(
            reference,
            [command, "-c", "import os, sys; print(os.path.realpath(sys.executable))"],
            name=unique_name("python-path"),
            remove=True,
            pull="never",
        )
    ).strip()
    assert found == INTERPRETER, f"{reference}: `{command}`, expected {INTERPRETER}, found {found}"


# What the image's loader and interpreter say about the layout, one `key value` per line.
LAYOUT_PROBE = r"""
echo "interpreter $(readlink -f "$(command -v python3)")"
echo "loads $(ldd "$(readlink -f "$(command -v python3)")" | awk '/libpython/ { print $3 }')"
echo "cached $(ldconfig -p | awk '$1 == "libpython3.13.so.1.0" { print $NF }')"
python3 - <<'PY'
import importlib.util, os, sysconfig
print("stdlib", sysconfig.get_path("stdlib"))
print("debian-config", os.path.exists("/etc/python3.13"))
print("sitecustomize", importlib.util.find_spec("sitecustomize") is not None)
print("pip", importlib.util.find_spec("pip") is not None)
PY
"""
UPSTREAM_LAYOUT = {
    "interpreter": INTERPRETER,
    "loads": LIBPYTHON,
    "cached": LIBPYTHON,
    "stdlib": STDLIB,
    "debian-config": "False",
    "sitecustomize": "False",
    "pip": "True",
}


@pytest.mark.parametrize("reference", [PYTHON_IMAGE, UV_IMAGE], ids=["python", "uv"])
def test_python_has_the_official_images_layout(reference: str):
    output = str(
        docker.run(
            reference,
            ["sh", "-c", LAYOUT_PROBE],
            name=unique_name("python-layout"),
            remove=True,
            pull="never",
        )
    )
    found = dict(line.split(" ", 1) for line in output.strip().splitlines())
    assert found == UPSTREAM_LAYOUT, (
        f"{reference}: Python layout, expected upstream's {UPSTREAM_LAYOUT}, found {found}"
    )


def test_uv_is_the_pinned_release_where_upstream_has_it():
    found = str(
        docker.run(
            UV_IMAGE,
            ["sh", "-c", "command -v uv; command -v uvx; uv --version"],
            name=unique_name("uv-version"),
            remove=True,
            pull="never",
        )
    ).split("\n")
    expected = ["/usr/local/bin/uv", "/usr/local/bin/uvx", f"uv {UV_VERSION}"]
    assert [line.strip() for line in found] == expected, (
        f"{UV_IMAGE}: uv location and version, expected {expected}, found {found}"
    )


def test_venv_built_on_uv_points_at_usr_local_and_runs_on_python():
    """uv picks the image's interpreter by itself, as in upstream, and records its home."""
    shared = docker.volume.create(unique_name("venv"))
    try:
        home = str(
            docker.run(
                UV_IMAGE,
                [
                    "sh",
                    "-c",
                    "uv venv --quiet /shared/venv && grep '^home = ' /shared/venv/pyvenv.cfg",
                ],
                volumes=[(shared, "/shared")],
                # Never fetch an interpreter: the point is that the image's own one is used.
                envs={"UV_PYTHON_DOWNLOADS": "never"},
                name=unique_name("uv-venv"),
                remove=True,
                pull="never",
            )
        ).strip()
        found = str(
            docker.run(
                PYTHON_IMAGE,
                [
                    "/shared/venv/bin/python",
                    "-c",
                    "import sys; print(sys.prefix, sys._base_executable)",
                ],
                volumes=[(shared, "/shared")],
                name=unique_name("python-venv"),
                remove=True,
                pull="never",
            )
        ).strip()
    finally:
        shared.remove()
    assert home == "home = /usr/local/bin", (
        f"{UV_IMAGE}: pyvenv.cfg of `uv venv`, expected 'home = /usr/local/bin', found {home!r}"
    )
    expected = f"/shared/venv {INTERPRETER}"
    assert found == expected, (
        f"{PYTHON_IMAGE}: venv from {UV_IMAGE}, expected {expected!r}, found {found!r}"
    )


# --- Labels and tags ------------------------------------------------------------------------


@pytest.mark.parametrize("key", list(STAND_INS))
def test_stand_in_says_what_it_is(key: str):
    image = STAND_INS[key]
    inspected = docker.image.inspect(image.airgap)
    labels = inspected.config.labels or {}
    repository = image.airgap.rsplit(":", 1)[0]
    version_tags = [
        t for t in inspected.repo_tags if t.startswith(f"{repository}:") and t != image.airgap
    ]
    assert labels.get(VERSION_LABEL), (
        f"{image.airgap}: label {VERSION_LABEL}, expected a version, found none"
    )
    assert "stand-in" in labels.get("org.opencontainers.image.description", ""), (
        f"{image.airgap}: description label, expected to say 'stand-in', found {labels}"
    )
    assert len(version_tags) == 1, (
        f"{image.airgap}: version tag, expected one, found {inspected.repo_tags}"
    )
    assert image.upstream not in inspected.repo_tags, (
        f"{image.airgap}: tags, expected no upstream name, found {inspected.repo_tags}"
    )


# --- The CA bundle stays out of the uv image ------------------------------------------------


def certificate_bodies(bundle: str) -> list[list[str]]:
    """The base64 lines of every PEM certificate in a bundle."""
    bodies, current = [], None
    for line in bundle.splitlines():
        line = line.strip()
        if line == "-----BEGIN CERTIFICATE-----":
            current = []
        elif line == "-----END CERTIFICATE-----" and current is not None:
            bodies.append(current)
            current = None
        elif current is not None and line:
            current.append(line)
    return bodies


def archive_findings(saved_image: Path, needles: list[bytes]) -> list[str]:
    """Where the needles, or a /run/secrets path, occur in a `docker save` archive's blobs
    (config, history, manifests) and inside each layer tar."""
    findings = []
    with tarfile.open(saved_image) as image_archive:
        for blob in image_archive:
            extracted = image_archive.extractfile(blob) if blob.isfile() else None
            if extracted is None:
                continue
            data = extracted.read()
            if any(needle in data for needle in needles):
                findings.append(f"{blob.name}: certificate bytes")
            if not tarfile.is_tarfile(io.BytesIO(data)):
                continue  # a JSON blob, already searched above
            with tarfile.open(fileobj=io.BytesIO(data)) as layer:
                for member in layer:
                    if "run/secrets" in member.name:
                        findings.append(f"{blob.name}:{member.name}: secret mount path")
                    content = layer.extractfile(member) if member.isfile() else None
                    if content is not None and any(n in content.read() for n in needles):
                        findings.append(f"{blob.name}:{member.name}: certificate bytes")
    return findings


def test_ca_bundle_is_in_no_layer_of_the_uv_image(tmp_path: Path):
    host_bundle = ca_bundle_path()
    if host_bundle is None:
        pytest.skip("the host has no CA bundle, so the uv build mounted none")
    image_bundle = str(
        docker.run(
            UV_IMAGE, ["cat", "/etc/ssl/certs/ca-certificates.crt"], remove=True, pull="never"
        )
    )
    # Certificates Debian's ca-certificates ships are in the image by design; only those the
    # host alone trusts (e.g. an intercepting proxy's CA) would betray the bundle.
    shipped = {tuple(body) for body in certificate_bodies(image_bundle)}
    host_only = [
        body for body in certificate_bodies(host_bundle.read_text()) if tuple(body) not in shipped
    ]
    if not host_only:
        pytest.skip(f"{host_bundle} holds no certificate the image does not already ship")
    needles = [body[len(body) // 2].encode() for body in host_only]
    saved = tmp_path / "uv-image.tar"
    docker.image.save(UV_IMAGE, output=saved)
    findings = archive_findings(saved, needles)
    config = docker.image.inspect(UV_IMAGE).config
    findings += [
        f"config env {variable}" for variable in config.env or [] if "/run/secrets" in variable
    ]
    assert not findings, (
        f"{UV_IMAGE}: host CA bundle, expected in no layer or config, found {findings}"
    )
