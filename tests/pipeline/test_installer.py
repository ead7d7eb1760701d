"""scripts/install-docker.sh installs only what Debian's signature vouches for.

On a Debian 12 machine it adds Debian 13 as an apt source pinned to the engine's packages,
so apt checks the archive's signature and every package's checksum and keeps the engine
patched, while everything else stays on Debian 12. Shown here on a real Debian 12 root
filesystem in a container, the script run as on a fresh machine, its mirror reached through
a proxy of this test's that can tamper with one package on the way:

- a package whose bytes differ from what the signed index says stops the install with one
  line, and nothing of the engine is installed;
- the same run, untampered, installs the engine from Debian 13 and nothing else from there.

Also: an engine older than 26 that already runs is refused with the preflight's words.
The Debian 12 root filesystem (mmdebstrap, about 20 s) is cached as an image between runs.
"""

from __future__ import annotations

import http.server
import os
import shutil
import subprocess
import tempfile
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from pipeline.base_images import debian_mirror
from pipeline.engine import image_exists
from tests.pipeline.conftest import docker_output

pytestmark = pytest.mark.docker

INSTALLER = Path(__file__).resolve().parents[2] / "scripts" / "install-docker.sh"
DEBIAN_12 = "dashtam-test/debian:12-minbase"
# The package the proxy tampers with: small, and one of the engine's own.
TAMPERED = "/docker-buildx_"
ENGINE_PACKAGES = ("docker.io", "docker-cli", "docker-compose", "docker-buildx")
RUN_TIMEOUT_SECONDS = 900


class MirrorProxy(http.server.ThreadingHTTPServer):
    """The Debian mirror as seen through this test: every file relayed as it is, except the
    engine package named by TAMPERED while `tamper` is on: one of its bytes flipped."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.tamper = False
        self.tampered: list[str] = []
        super().__init__(("127.0.0.1", 0), _RelayHandler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _RelayHandler(http.server.BaseHTTPRequestHandler):
    server: MirrorProxy

    def do_GET(self) -> None:
        try:
            # The scheme is the mirror's own (http or https).
            with urllib.request.urlopen(self.server.upstream + self.path, timeout=120) as answer:  # noqa: S310
                body = answer.read()
                status = answer.status
        except urllib.error.HTTPError as error:
            body, status = b"", error.code
        if self.server.tamper and TAMPERED in self.path and body:
            body = body[:-1] + bytes([body[-1] ^ 0xFF])
            self.server.tampered.append(self.path)
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *arguments) -> None:
        pass


@pytest.fixture(scope="module")
def mirror() -> Iterator[MirrorProxy]:
    proxy = MirrorProxy(debian_mirror())
    thread = threading.Thread(target=proxy.serve_forever, daemon=True)
    thread.start()
    try:
        yield proxy
    finally:
        proxy.shutdown()


@pytest.fixture(scope="module")
def debian_12(docker_engine) -> str:
    """A Debian 12 minbase root filesystem as an image, made once with mmdebstrap."""
    if image_exists(DEBIAN_12):
        return DEBIAN_12
    if shutil.which("mmdebstrap") is None:
        pytest.fail("mmdebstrap is needed for the installer tests: apt-get install mmdebstrap")
    with tempfile.TemporaryDirectory(prefix="dashtam-test-debian12-") as directory:
        tarball = Path(directory) / "rootfs.tar"
        subprocess.run(
            ["mmdebstrap", "--variant=minbase", "bookworm", str(tarball), debian_mirror()],
            check=True,
            capture_output=True,
            timeout=600,
        )
        docker_output("import", str(tarball), DEBIAN_12)
    return DEBIAN_12


@dataclass
class Installation:
    returncode: int
    output: str
    installed: dict[str, str]  # package -> version, as dpkg has it afterwards
    sources: dict[str, str]  # package -> the release its installed version came from


# Run inside the container: the installer as on a fresh machine, then what dpkg and apt say.
_INSIDE = """
set -u
echo "deb {mirror}/ bookworm main" > /etc/apt/sources.list
rm -f /etc/apt/sources.list.d/*
DOCKERD_TIMEOUT=2 bash /installer.sh
echo "@@exit $?"
for package in {packages} containerd runc; do
  version=$(dpkg-query -W -f='${{Version}}' "$package" 2>/dev/null) || continue
  echo "@@installed $package $version"
  release=$(apt-cache policy "$package" | awk '/\\*\\*\\*/ {{getline; print $3; exit}}')
  echo "@@source $package ${{release%%/*}}"
done
"""


def install_in_debian_12(image: str, mirror: MirrorProxy, *, tamper: bool) -> Installation:
    mirror.tamper = tamper
    script = _INSIDE.format(mirror=mirror.url, packages=" ".join(ENGINE_PACKAGES))
    result = subprocess.run(
        [
            "docker",
            "run",
            "--rm",
            "--name",
            f"dashtam-test-installer-{uuid.uuid4().hex[:6]}",
            "--network",
            "host",  # the proxy listens on this host's loopback
            "--volume",
            f"{INSTALLER}:/installer.sh:ro",
            image,
            "bash",
            "-c",
            script,
        ],
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_SECONDS,
        check=False,
    )
    lines = result.stdout.splitlines()
    fields = [line.split() for line in lines if line.startswith("@@")]
    exit_code = next((int(f[1]) for f in fields if f[0] == "@@exit"), -1)
    return Installation(
        exit_code,
        result.stdout + result.stderr,
        {f[1]: f[2] for f in fields if f[0] == "@@installed" and len(f) == 3},
        {f[1]: f[2] for f in fields if f[0] == "@@source" and len(f) == 3},
    )


@pytest.fixture(scope="module")
def tampered_run(debian_12: str, mirror: MirrorProxy) -> Installation:
    return install_in_debian_12(debian_12, mirror, tamper=True)


@pytest.fixture(scope="module")
def clean_run(debian_12: str, mirror: MirrorProxy, tampered_run: Installation) -> Installation:
    return install_in_debian_12(debian_12, mirror, tamper=False)


def test_a_tampered_engine_package_was_served(tampered_run: Installation, mirror: MirrorProxy):
    assert mirror.tampered, "the proxy tampered with nothing: the installer never fetched it"


def test_a_tampered_engine_package_stops_the_install_with_one_line(tampered_run: Installation):
    ours = [line for line in tampered_run.output.splitlines() if line.startswith("install-docker:")]
    assert tampered_run.returncode == 1 and len(ours) == 1, (
        f"installer with a tampered package: expected exit 1 and one line of its own, found "
        f"exit {tampered_run.returncode} and {ours}:\n{tampered_run.output[-3000:]}"
    )
    assert "Hash Sum mismatch" in ours[0] or "hash" in ours[0].lower(), (
        f"installer with a tampered package: expected the checksum named, found {ours[0]!r}"
    )


def test_a_tampered_engine_package_installs_nothing_of_the_engine(tampered_run: Installation):
    installed = {package: tampered_run.installed.get(package) for package in ENGINE_PACKAGES}
    assert not any(installed.values()), (
        "installer with a tampered package: expected no engine package installed, "
        f"found {installed}"
    )


def test_the_engine_comes_from_debian_13_and_nothing_else_does(clean_run: Installation):
    assert set(clean_run.installed) >= set(ENGINE_PACKAGES), (
        f"installer, untampered: expected {ENGINE_PACKAGES} installed, found {clean_run.installed}"
        f":\n{clean_run.output[-3000:]}"
    )
    wrong = {
        package: release
        for package, release in clean_run.sources.items()
        if (release == "trixie") != (package in ENGINE_PACKAGES)
    }
    assert not wrong, (
        "installer, untampered: expected the engine from trixie and its dependencies from "
        f"bookworm, found {clean_run.sources}"
    )


def test_an_engine_older_than_26_that_runs_is_refused_in_the_preflights_words(tmp_path: Path):
    fake_docker = tmp_path / "docker"
    fake_docker.write_text('#!/bin/sh\ncase "$1" in version) echo 20.10.24 ;; esac\n')
    fake_docker.chmod(0o755)
    environment = {**os.environ, "PATH": f"{tmp_path}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(
        ["bash", str(INSTALLER)], env=environment, capture_output=True, text=True, check=False
    )
    assert result.returncode == 1, f"old engine: exit code: expected 1, found {result.returncode}"
    assert result.stderr.startswith(
        "install-docker: Docker Engine 20.10.24 is too old (need >= 26)"
    ), f"old engine: stderr: expected the preflight's words, found {result.stderr!r}"
