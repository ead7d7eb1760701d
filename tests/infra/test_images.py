"""The images: healthchecks they can run, exposed ports, nothing that must not ship."""

from __future__ import annotations

import hashlib
import io
import json
import re
import subprocess
import tarfile
import tomllib

import pytest

from pipeline.ca_bundle import ca_bundle_path
from pipeline.environments import ROOT, SERVICE_PORTS
from tests.infra.helpers import mismatch

pytestmark = pytest.mark.docker

COMPILERS = ("gcc", "cc", "c++", "g++", "clang", "make")
# Paths that must never be in any layer of any image, even if a later layer deleted them.
_FORBIDDEN_PATH = re.compile(
    r"(^|/)(\.git(/|$)|\.env(\.[\w-]+)?$|env/\.env|[^/]+\.(key|pem|p12|pfx)$|run/secrets/)"
)
_PRIVATE_KEY = re.compile(rb"-----BEGIN ([A-Z ]+ )?PRIVATE KEY-----")


def test_healthcheck_binary_is_in_the_image(env_name, service, container_inspect, hosts):
    test = (container_inspect(service)["Config"].get("Healthcheck") or {}).get("Test") or []
    assert test and test[0] in ("CMD", "CMD-SHELL"), mismatch(
        env_name, service, "healthcheck", "CMD or CMD-SHELL", test
    )
    binary = test[1] if test[0] == "CMD" else test[1].split()[0]
    result = hosts[service]["default"].run(f"command -v {binary}")
    assert result.rc == 0, mismatch(
        env_name, service, f"healthcheck binary {binary!r}", "present", "missing"
    )


def test_exposed_ports_are_the_declared_ones(
    env_name, service, container_inspect, image_config, target
):
    image_id = container_inspect(service)["Image"]
    found = set(image_config(image_id)["Config"].get("ExposedPorts") or {})
    # An image exposes the ports of every service this environment runs from it.
    sharing = [other for other in target.services if container_inspect(other)["Image"] == image_id]
    expected = {f"{SERVICE_PORTS[other]}/tcp" for other in sharing}
    assert found == expected, mismatch(
        env_name, service, "image ExposedPorts", sorted(expected), sorted(found)
    )


def _dev_only_packages() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    runtime = {re.split(r"[<>=\[ ;]", d)[0].lower() for d in project["project"]["dependencies"]}
    dev = {re.split(r"[<>=\[ ;]", d)[0].lower() for d in project["dependency-groups"]["dev"]}
    return dev - runtime


def test_runtime_image_ships_no_build_or_dev_tools(env_name, runtime_stage, stage_reference):
    stage_image = runtime_stage
    reference = stage_reference(stage_image)
    probe = (
        f"for tool in {' '.join(COMPILERS)} uv uvx; do command -v $tool; done; "
        "ls -d /app/tests 2>/dev/null; "
        "python -c \"import importlib.metadata as m; print('\\n'.join(d.metadata['Name'].lower() "
        'for d in m.distributions()))"'
    )
    output = subprocess.run(
        ["docker", "run", "--rm", "--entrypoint", "sh", reference, "-c", probe],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    found = [entry for entry in output if entry.startswith("/")] + sorted(
        _dev_only_packages() & set(output)
    )
    assert not found, mismatch(
        env_name, stage_image, "compilers, uv, tests or dev packages", [], found
    )


@pytest.fixture(scope="session")
def layer_findings():
    """Image reference -> forbidden things found in its saved layers (scanned once)."""
    cache: dict[str, list[str]] = {}
    bundle = ca_bundle_path()
    bundle_digest = hashlib.sha256(bundle.read_bytes()).hexdigest() if bundle else None

    def scan(reference: str) -> list[str]:
        if reference in cache:
            return cache[reference]
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
                            if (
                                bundle_digest
                                and hashlib.sha256(content).hexdigest() == bundle_digest
                            ):
                                findings.append(f"{name} (the build's CA bundle)")
        cache[reference] = findings
        return findings

    return scan


def test_no_secret_in_any_layer(env_name, stage_image, layer_findings, stage_reference):
    reference = stage_reference(stage_image)
    found = layer_findings(reference)
    assert not found, mismatch(
        env_name, stage_image, "env files, keys, .git or CA bundle in layers", [], found[:10]
    )


def test_build_secrets_stay_out_of_history_and_config(
    env_name, stage_image, image_config, stage_reference
):
    reference = stage_reference(stage_image)
    history = subprocess.run(
        ["docker", "image", "history", "--no-trunc", "--format", "{{.CreatedBy}}", reference],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    config = str(image_config(reference)["Config"])
    leaked = [
        needle
        for needle in ("BEGIN CERTIFICATE", "PRIVATE KEY", "PASSWORD=")
        if needle in history + config
    ]
    assert not leaked, mismatch(env_name, stage_image, "secrets in history or config", [], leaked)
