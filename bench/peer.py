"""The peer: goss, run inside each container of the booted ci stack with bench/goss/*.yaml,
against our own suite restricted to the checks both can express.

goss has to run inside the container it checks, and ci's app and callback have no shell and
a read-only root: nothing can be copied in. So the bench boots that stack with a compose
override of its own (written to its scratch folder) that bind-mounts goss and each service's
goss file, read-only, into each container; `docker exec` then runs goss directly.
"""

from __future__ import annotations

import time
from pathlib import Path

import yaml

from bench.parsers import goss_summary
from bench.record import BenchRun
from pipeline import image_sources
from pipeline import stack as stacks
from pipeline.docker_client import container_output, docker, translated
from pipeline.environments import ROOT
from pipeline.process import run, say

GOSS_FOLDER = ROOT / "bench" / "goss"
# Where the override mounts goss and the service's goss file inside each container: a folder
# of its own, outside /app, /tmp and the program folders the policy reads.
GOSS_BINARY_IN_CONTAINER = "/dashtam-bench/goss"
GOSS_FILE_IN_CONTAINER = "/dashtam-bench/goss.yaml"
GOSS_OVERRIDE_FILE = "goss-mounts.compose.yml"
GOSS_IMAGE = "dashtam-bench/goss:latest"
MOUNTED_NOTE = (
    "The project's ci stack boots with goss bind-mounted read-only in every container "
    f"(bench.peer's compose override, at {GOSS_BINARY_IN_CONTAINER}): ci's policy allows no "
    "bind mount on app and callback, so tests/infra's bind-mounts control fails for them on "
    "that stack, by the bench's doing."
)
GOSS_SERVICES = ("app", "callback", "postgres", "redis")
# Our checks that goss can also express (each a pytest -k term: a substring of the test ids,
# so a policy control's id selects its case for every service), and how bench/goss/*.yaml
# expresses each.
GOSS_EQUIVALENTS = {
    "test_appuser_is_uid_and_gid_1000": "user appuser exists with uid/gid 1000 (app, callback)",
    "test_pid1_runs_as_the_service_user": "user postgres / redis exists",
    "test_app_folder_belongs_to_appuser": "file /app owned by appuser (app, callback)",
    "test_listening_sockets_are_exactly_the_service_port": "port tcp:<port> listening (all four)",
    "test_health_endpoint_answers_200": "http <service>/health[/ready] status 200",
}
GOSS_CANNOT_EXPRESS = (
    "which user a process runs as: goss `user` only reads /etc/passwd and `process` only says "
    "running, so PID 1's uid:gid (ours reads /proc) became 'the account exists'",
    "ownership of every file under /app: `file` checks one path, it does not recurse",
    "exactly the service's own port and no other, UDP included: `port` asserts listed ports, "
    "never the absence of unlisted ones",
    "expected values from `docker compose config` (one source of truth): the goss files "
    "re-type ports, users and URLs",
    "Docker's view of a container: health status, failing streak, restart count, runtime "
    "hardening (cap_drop, read-only, no-new-privileges), host port bindings (docker inspect)",
    "image facts: configured user, exposed ports, no compilers or dev packages, no secrets in "
    "any layer or in history (docker image inspect / save)",
    "no shell and no program outside the allow-list: `file` asserts named paths, never the "
    "absence of unnamed ones",
    "the readiness body's per-dependency JSON (only as a substring)",
    "a container read from outside: goss runs inside the one it checks, so a shell-less, "
    "read-only production image must have it bind-mounted at boot (this bench's compose "
    "override), which changes the stack under test: the policy's bind-mounts control fails "
    "for app and callback in the same run; ours reads every container from a helper "
    "container in its namespaces, so the stack is checked as it ships",
)


def goss_binary(bench_run: BenchRun) -> Path:
    """goss from Debian 13's package, built into a helper image once, copied out once."""
    if bench_run.goss_binary:
        return bench_run.goss_binary
    airgap = bench_run.source == image_sources.AIRGAP
    with translated(f"building {GOSS_IMAGE} from bench/goss/Dockerfile"):
        docker().buildx.build(
            GOSS_FOLDER,
            load=True,
            tags=[GOSS_IMAGE],
            build_args={"DEBIAN_IMAGE": image_sources.AIRGAP_ROOTFS} if airgap else {},
            progress=False,
        )
    directory = Path(bench_run.scratch.name)
    with translated(f"copying goss out of {GOSS_IMAGE}"):
        container = docker().container.create(GOSS_IMAGE)
        try:
            docker().container.copy((container, "/usr/bin/goss"), directory / "goss")
            version = container_output(GOSS_IMAGE, ["dpkg-query", "-W", "-f=${Version}", "goss"])
            bench_run.goss_version = version.strip()
        finally:
            container.remove()
    bench_run.goss_binary = directory / "goss"
    return bench_run.goss_binary


def equivalent_selection() -> str:
    """The pytest -k expression that selects our checks goss can also express."""
    return " or ".join(GOSS_EQUIVALENTS)


def goss_mounts(binary: Path, goss_folder: Path = GOSS_FOLDER) -> dict:
    """The compose override: goss and the service's goss file, read-only, in each service."""
    return {
        "services": {
            service: {
                "volumes": [
                    {
                        "type": "bind",
                        "source": str(source),
                        "target": target,
                        "read_only": True,
                    }
                    for source, target in (
                        (binary, GOSS_BINARY_IN_CONTAINER),
                        (goss_folder / f"{service}.yaml", GOSS_FILE_IN_CONTAINER),
                    )
                ]
            }
            for service in GOSS_SERVICES
        }
    }


def goss_override(bench_run: BenchRun) -> Path:
    """The override file that mounts goss into the ci stack (goss built on first use)."""
    binary = goss_binary(bench_run)
    path = Path(bench_run.scratch.name) / GOSS_OVERRIDE_FILE
    if not path.is_file():
        header = "# Written by `python -m bench`: goss for the peer, mounted read-only.\n"
        path.write_text(header + yaml.safe_dump(goss_mounts(binary), sort_keys=False))
    return path


def validate(container: str) -> str:
    """`goss validate` in one container: its JSON report (goss_summary reads it)."""
    # Plain `docker exec`: goss exits non-zero when a check fails, with its report on stdout,
    # which python-on-whales would raise as a failure; and a hung goss must time out.
    result = run(
        [
            *("docker", "exec", container, GOSS_BINARY_IN_CONTAINER),
            *("--gossfile", GOSS_FILE_IN_CONTAINER, "validate", "--format", "json", "--no-color"),
        ],
        timeout=120,
    )
    return result.stdout or result.stderr


def run_goss(bench_run: BenchRun, stack: stacks.Stack, repetition: int) -> dict:
    """goss in every container of the stack (mounted in at boot by goss_override), one after
    another; the whole wall time."""
    containers = {service: stack.container_id(service) for service in GOSS_SERVICES}
    tests = failed = 0
    failures: list[str] = []
    per_service = {}
    started = time.monotonic()
    for service, container in containers.items():
        service_started = time.monotonic()
        output = validate(container)
        per_service[service] = round(time.monotonic() - service_started, 3)
        summary = goss_summary(output)
        tests += summary["tests"]
        failed += summary["failed"]
        failures += [f"{service}: {failure}" for failure in summary["failures"]]
    seconds = time.monotonic() - started
    record = {
        "repetition": repetition,
        "seconds": round(seconds, 3),
        "per_service": per_service,
        "tests": tests,
        "failed": failed,
        "failures": failures,
    }
    bench_run.goss.append(record)
    say(
        f"goss on ci: {seconds:.2f} s, {tests} checks, {failed} failed "
        f"(repetition {repetition + 1})",
        speaker="bench",
    )
    return record
