"""A verify run boots exactly the digests its build pushed to the registry.

The probe is a test file handed to a verify run's pytest as a positional argument (as
test_teardown hands it a failing one): inside the run it reads the stack's containers from
outside (`docker container inspect`) and asks the registry itself which image each digest
holds. It is shown to fail on a stack booted from tags (the self-test lab's way), and a
shell that names an image for a stage the run builds is refused (test_bad_input).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.reports import record_path
from tests.pipeline.conftest import Run, remove_project, run_nox

pytestmark = pytest.mark.docker

PROBE = '''\
"""Each of our services runs <registry>/dashtam/<stage>@sha256:…, and the registry serves
that digest as the very image the container runs."""

import json
import os
import subprocess
import urllib.request

from pipeline.registry_credentials import credentials

ACCEPT = (
    "application/vnd.docker.distribution.manifest.v2+json, "
    "application/vnd.oci.image.manifest.v1+json"
)


def docker(*arguments):
    return subprocess.run(["docker", *arguments], capture_output=True, text=True, check=True).stdout


def test_our_services_run_the_digest_the_registry_serves():
    project = os.environ["DASHTAM_VERIFY_PROJECT"]
    label = f"label=com.docker.compose.project={project}"
    listed = docker("ps", "-q", "--filter", label).split()
    containers = json.loads(docker("container", "inspect", *listed))
    service = "com.docker.compose.service"
    ours = [c for c in containers if c["Config"]["Labels"][service] in ("app", "callback")]
    assert len(ours) == 2, f"expected app and callback, found {[c['Name'] for c in ours]}"
    for container in ours:
        reference = container["Config"]["Image"]
        name, _, digest = reference.partition("@")
        assert digest.startswith("sha256:"), f"{container['Name']} runs {reference}, not a digest"
        host, _, repository = name.partition("/")
        request = urllib.request.Request(
            f"http://{host}/v2/{repository}/manifests/{digest}",
            headers={"Accept": ACCEPT, "Authorization": credentials().authorization},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            served = json.load(response)["config"]["digest"]
        runs = container["Image"]
        assert served == runs, f"{reference} is {served}, the container runs {runs}"
'''


@pytest.fixture(scope="module")
def probe(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("digest-probe") / "test_digest_probe.py"
    path.write_text(PROBE)
    return path


@pytest.fixture(scope="module")
def verified_ci(docker_engine, probe: Path) -> Run:
    # -rA: the summary names the probe as passed, so a probe never collected cannot pass.
    finished = run_nox("-s", "verify(ci)", "--", str(probe), "-rA")
    if "dashtam: booting" in finished.output:
        remove_project(finished.project)
    return finished


def test_verify_boots_the_digests_the_registry_serves(verified_ci: Run):
    assert verified_ci.returncode == 0, (
        f"verify(ci) with the digest probe: expected exit 0, found {verified_ci.returncode}:\n"
        f"{verified_ci.tail()}"
    )
    probed = (
        "PASSED " in verified_ci.output and "test_our_services_run_the_digest" in verified_ci.output
    )
    assert probed, f"verify(ci): the digest probe did not run:\n{verified_ci.tail()}"


def test_the_report_names_the_digests_verified(verified_ci: Run):
    from pipeline.environments import REPORTS

    record = json.loads(record_path("ci", REPORTS).read_text())
    ours = {s: r for s, r in record["references"].items() if s in ("app", "callback")}
    assert set(ours) == {"app", "callback"} and all("@sha256:" in r for r in ours.values()), (
        f"reports/verify-ci.json: expected app and callback by digest, found {record['references']}"
    )
    markdown = (REPORTS / "verify-ci.md").read_text()
    assert all(reference in markdown for reference in ours.values()), (
        "reports/verify-ci.md does not name the digests the run booted"
    )


class ProbeRun:
    """The lab's suite run, with the probe as the only check."""

    def __init__(self, probe: Path):
        self.probe = probe
        self.output = ""

    def run(self, test_env: dict[str, str], junit: Path) -> bool:
        result = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(self.probe)],
            env=os.environ | test_env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        self.output = result.stdout + result.stderr
        return result.returncode == 0


def test_the_probe_fails_on_a_stack_booted_from_tags(engine_and_real_images, lab_for, probe):
    from pipeline.environments import REPORTS

    real_record = record_path("ci", REPORTS)
    before = real_record.read_bytes() if real_record.is_file() else None
    lab = lab_for("digest-probe")
    lab.run_stack_from_tag("production", "callback")
    lab.suite = ProbeRun(probe)
    outcome = lab.verify("ci")
    assert not outcome.passed, "the digest probe passed on a stack that runs tags"
    assert "not a digest" in lab.suite.output, lab.suite.output[-2000:]
    after = real_record.read_bytes() if real_record.is_file() else None
    assert after == before, "the lab's failed verify overwrote the real reports/verify-ci.json"
