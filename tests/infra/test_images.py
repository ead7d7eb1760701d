"""The images the containers run (by ID): exposed ports, nothing that must not ship."""

from __future__ import annotations

import fcntl
import functools
import hashlib
import io
import json
import re
import subprocess
import tarfile
import tomllib
from pathlib import Path

import pytest

from pipeline.ca_bundle import ca_bundle_path
from pipeline.environments import ROOT, RUNTIME_STAGES, SERVICE_PORTS
from pipeline.secret_patterns import secrets_in
from tests.infra.helpers import mismatch

pytestmark = pytest.mark.docker

COMPILERS = ("gcc", "cc", "c++", "g++", "clang", "make")
# Paths that must never be in any layer of any image, even if a later layer deleted them.
_FORBIDDEN_PATH = re.compile(
    r"(^|/)(\.git(/|$)|\.env(\.[\w-]+)?$|env/\.env|[^/]+\.(key|pem|p12|pfx)$|run/secrets/)"
)
_PRIVATE_KEY = re.compile(rb"-----BEGIN ([A-Z ]+ )?PRIVATE KEY-----")


def test_exposed_ports_are_the_declared_ones(environment_name, service, container_inspect, target):
    image_id = container_inspect(service)["Image"]
    found = set(target.image_config(image_id)["Config"].get("ExposedPorts") or {})
    # An image exposes the ports of every service this environment runs from it.
    sharing = [other for other in target.services if container_inspect(other)["Image"] == image_id]
    expected = {f"{SERVICE_PORTS[other]}/tcp" for other in sharing}
    assert found == expected, mismatch(
        environment_name, service, "image ExposedPorts", sorted(expected), sorted(found)
    )


def _dev_only_packages() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    runtime = {re.split(r"[<>=\[ ;]", d)[0].lower() for d in project["project"]["dependencies"]}
    dev = {re.split(r"[<>=\[ ;]", d)[0].lower() for d in project["dependency-groups"]["dev"]}
    return dev - runtime


def test_runtime_image_ships_no_build_or_dev_tools(environment_name, app_service, target, facts):
    if not set(target.environment.stages) & set(RUNTIME_STAGES):
        pytest.skip(f"not applicable: {environment_name} runs the development image")
    found_facts = facts[app_service]
    programs = {entry["path"].rsplit("/", 1)[1] for entry in found_facts["files"]["programs"]}
    distributions = {
        path.rsplit("/", 1)[1].split("-")[0].lower().replace("_", "-")
        for path in found_facts["globs"]["/app/.venv/lib/python*/site-packages/*.dist-info"]
    }
    found = sorted(programs & {*COMPILERS, "uv", "uvx"})
    found += found_facts["globs"]["/app/tests"] + sorted(_dev_only_packages() & distributions)
    assert not found, mismatch(
        environment_name, app_service, "compilers, uv, tests or dev packages", [], found
    )


# The official Python images' layout, which the stand-ins reproduce and docker/runtime-rootfs.sh
# carries into the runtime images: CPython in /usr/local, libpython a separate library the
# loader finds through its cache (no LD_LIBRARY_PATH), no Debian /etc/python3.X.
INTERPRETER = "/usr/local/bin/python3.13"
LIBPYTHON = "/usr/local/lib/libpython3.13.so.1.0"


def test_app_runs_the_official_python_layout(
    environment_name, app_service, facts, container_inspect
):
    found_facts = facts[app_service]
    main = next(process for process in found_facts["processes"] if process["pid"] == 1)
    environment = container_inspect(app_service)["Config"]["Env"] or []
    found = {
        "PID 1 runs": main["executable"],
        "libpython loaded": [path for path in main["libraries"] if "libpython" in path],
        "loader cache": found_facts["globs"]["/etc/ld.so.cache"],
        "Debian /etc/python3.X": found_facts["globs"]["/etc/python3*"],
        "LD_LIBRARY_PATH": [entry for entry in environment if entry.startswith("LD_LIBRARY_PATH=")],
    }
    expected = {
        "PID 1 runs": INTERPRETER,
        "libpython loaded": [LIBPYTHON],
        "loader cache": ["/etc/ld.so.cache"],
        "Debian /etc/python3.X": [],
        "LD_LIBRARY_PATH": [],
    }
    assert found == expected, mismatch(
        environment_name, app_service, "interpreter and libpython", expected, found
    )


# Scans are kept per image ID (a digest of its layers' contents), this scanner's source and
# the CA bundle it looks for: the second environment running an image, or a verify of an
# unchanged one, reads the answer instead of exporting every layer again (for the
# development image, seconds of the engine's CPU). A lock makes concurrent verifies scan once.
LAYER_SCANS = ROOT / ".dashtam" / "layer-scans"


@pytest.fixture(scope="session")
def layer_findings():
    """Image ID -> forbidden things found in its saved layers (scanned once per image)."""
    bundle = ca_bundle_path()
    bundle_digest = hashlib.sha256(bundle.read_bytes()).hexdigest() if bundle else None
    scanner = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()

    def scan_once(image_id: str) -> list[str]:
        key = hashlib.sha256(f"{image_id} {scanner} {bundle_digest}".encode()).hexdigest()
        LAYER_SCANS.mkdir(parents=True, exist_ok=True)
        record = LAYER_SCANS / f"{key}.json"
        with open(LAYER_SCANS / f"{key}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if record.is_file():
                return json.loads(record.read_text())
            findings = scan(image_id)
            partial = record.with_suffix(".partial")
            partial.write_text(json.dumps(findings))
            partial.replace(record)
            return findings

    def scan(reference: str) -> list[str]:
        findings = []
        saved = subprocess.run(
            ["docker", "image", "save", reference], capture_output=True, check=True
        ).stdout
        with tarfile.open(fileobj=io.BytesIO(saved)) as image_tar:
            # manifest.json names the layers in both `docker save` formats: <id>/layer.tar
            # (Docker < 25) and blobs/sha256/<digest> (OCI layout, Docker >= 25).
            manifest = json.load(image_tar.extractfile("manifest.json"))
            layers = [path for image in manifest for path in image["Layers"]]
            if not layers:
                findings.append("no layer found in `docker image save` (nothing was scanned)")
            for path in layers:
                blob = image_tar.extractfile(path).read()
                with tarfile.open(fileobj=io.BytesIO(blob)) as layer:
                    for entry in layer.getmembers():
                        name = entry.name.removeprefix("./")
                        # Installed packages ship public CA bundles (certifi's cacert.pem):
                        # their names are not findings, their contents are still scanned.
                        if _FORBIDDEN_PATH.search(name) and not name.startswith(
                            ("usr/", "etc/ssl/", "app/.venv/")
                        ):
                            findings.append(name)
                        if (
                            entry.isfile()
                            and 0 < entry.size < 5_000_000
                            and not name.startswith("usr/")
                        ):
                            content = layer.extractfile(entry).read()
                            if _PRIVATE_KEY.search(content):
                                findings.append(f"{name} (private key)")
                            # Our own files, by the shape of what they hold (installed
                            # packages ship test keys and examples of their own).
                            if name.startswith("app/") and not name.startswith("app/.venv/"):
                                findings += [
                                    f"{name}:{looks.line} (looks like a {looks.kind})"
                                    for looks in secrets_in(content.decode(errors="replace"))
                                ]
                            if (
                                bundle_digest
                                and hashlib.sha256(content).hexdigest() == bundle_digest
                            ):
                                findings.append(f"{name} (the build's CA bundle)")
        return findings

    return scan_once


def test_no_secret_in_any_layer(environment_name, app_service, layer_findings, container_inspect):
    found = layer_findings(container_inspect(app_service)["Image"])
    assert not found, mismatch(
        environment_name,
        app_service,
        "env files, keys, .git or CA bundle in the layers of the image it runs",
        [],
        found[:10],
    )


@functools.cache  # an image ID names one content: two checks read its history, once
def image_history(image_id: str) -> str:
    """Each layer's CreatedBy: the build's commands, with the build arguments they saw."""
    return subprocess.run(
        ["docker", "image", "history", "--no-trunc", "--format", "{{.CreatedBy}}", image_id],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def test_no_credential_shaped_value_in_the_image_config_or_history(
    environment_name, app_service, target, container_inspect
):
    """A live-looking key in ENV, a label, or a build argument the history kept."""
    image_id = container_inspect(app_service)["Image"]
    config = target.image_config(image_id)["Config"]
    texts = {
        "Env": "\n".join(config.get("Env") or []),
        "Labels": "\n".join(f"{k}={v}" for k, v in (config.get("Labels") or {}).items()),
        "history": image_history(image_id),
    }
    found = [
        f"{where} line {looks.line}: {looks.kind}"
        for where, text in texts.items()
        for looks in secrets_in(text)
    ]
    assert not found, mismatch(
        environment_name, app_service, "values shaped like credentials in the image", [], found
    )


def test_build_secrets_stay_out_of_history_and_config(
    environment_name, app_service, target, container_inspect
):
    image_id = container_inspect(app_service)["Image"]
    history = image_history(image_id)
    config = str(target.image_config(image_id)["Config"])
    leaked = [
        needle
        for needle in ("BEGIN CERTIFICATE", "PRIVATE KEY", "PASSWORD=")
        if needle in history + config
    ]
    assert not leaked, mismatch(
        environment_name, app_service, "secrets in the image's history or config", [], leaked
    )
