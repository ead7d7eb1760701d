"""The boot section: each environment from `compose up` to healthy, then tests/infra against it
(and on ci, goss: bench.peer); the seed design's ci stack boots too, for the ratio.

Stacks come from pipeline.stack (verify_stack: a throwaway project, ephemeral ports), the
suite's arguments and variables from pipeline.verification, as `nox -s verify` uses them.
The project's ci stack boots with bench.peer's compose override, which mounts goss in.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from bench import peer
from bench.parsers import first_answer, first_healthy_probe, parse_docker_time
from bench.record import BASELINE, PROJECT, BenchRun, Variant
from pipeline import engine, images, reports
from pipeline import stack as stacks
from pipeline.docker_client import best_effort, docker
from pipeline.environments import ENVIRONMENTS, ROOT, SERVICE_PORTS, image_name
from pipeline.errors import PipelineError
from pipeline.process import environment_set, run, say
from pipeline.running import project_containers
from pipeline.verification import suite_variables

# The service whose endpoint the boot probe polls.
PROBED_SERVICE = "app"
POLL_SECONDS = 0.2
# How long the health observer keeps watching after `compose up --wait` returned.
OBSERVE_AFTER_UP_SECONDS = 40
# The environment goss runs on, against our checks.
PEER_ENVIRONMENT = "ci"

# Run inside the app container with `python -I -S`: a bare socket request (urllib and its
# imports would cost the booting app more CPU at every poll). Prints the moment /health
# answered 200; exits non-zero while nothing answers.
_ANSWER_PROBE = """\
import socket, sys, time
connection = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=2)
if sys.argv[2] == "https":
    import ssl
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    connection = context.wrap_socket(connection)
connection.sendall(b"GET /health HTTP/1.1\\r\\nHost: 127.0.0.1\\r\\nConnection: close\\r\\n\\r\\n")
if connection.recv(64).split(b" ")[1] != b"200":
    sys.exit(1)
print(time.time())
"""


class HealthObserver(threading.Thread):
    """Watches a booting stack: when each container starts and turns healthy, when the app answers.

    "Answers": /health returned 200 to a request made inside the app container, polled every
    POLL_SECONDS. "Healthy": the end of a container's first passing healthcheck probe, read
    from Docker's health log as soon as it says healthy (the log keeps only five probes, so it
    is read while booting, not afterwards). When Docker's probe saw the app answer before our
    poll did, the answer is placed within that probe (bench.parsers.first_answer).
    """

    def __init__(self, project: str, service: str, port: int, scheme: str) -> None:
        super().__init__(daemon=True)
        self.project = project
        self.service = service
        self.port = port
        self.scheme = scheme
        self.answered_at: float | None = None
        self.started: dict[str, float] = {}
        self.healthy: dict[str, float] = {}
        self.first_probe: dict[str, tuple[float, float]] = {}
        self.polled_answer: float | None = None
        self.unanswered_at: float | None = None  # the start of our last poll with no answer
        self.services: set[str] = set()
        self.polls = 0
        self._stop_event = threading.Event()

    def stop(self) -> None:
        self._stop_event.set()

    @property
    def healthy_at(self) -> float | None:
        return self.healthy.get(self.service)

    @property
    def done(self) -> bool:
        return (
            self.answered_at is not None
            and bool(self.services)
            and all(service in self.healthy for service in self.services)
        )

    def run(self) -> None:
        while not self._stop_event.is_set() and not self.done:
            self._poll()
            self._stop_event.wait(POLL_SECONDS)

    def _poll(self) -> None:
        self.polls += 1
        app_container = None
        for state in self._container_states():
            service = self._note(state)
            if service == self.service:
                app_container = state.get("Id")
        if app_container and self.polled_answer is None:
            self._ask(app_container)
        self.answered_at = first_answer(
            self.polled_answer, self.first_probe.get(self.service), self.unanswered_at
        )

    def _container_states(self) -> list[dict]:
        """`docker inspect` of the project's running containers (none while it starts, or
        while one is replaced between the listing and the inspect)."""
        try:
            return list(project_containers(self.project).values())
        except PipelineError:
            return []

    def _note(self, state: dict) -> str:
        """Record when this container started and first turned healthy; its service's name."""
        service = (state.get("Config", {}).get("Labels") or {}).get(
            "com.docker.compose.service", state.get("Name", "?")
        )
        self.services.add(service)
        with contextlib.suppress(ValueError, KeyError):
            self.started.setdefault(service, parse_docker_time(state["State"]["StartedAt"]))
        health = state.get("State", {}).get("Health") or {}
        if service not in self.healthy and health.get("Status") == "healthy":
            probe = first_healthy_probe(health.get("Log") or [])
            self.healthy[service] = probe[1] if probe else time.time()
            if probe:
                self.first_probe[service] = probe
        return service

    def _ask(self, app_container: str) -> None:
        """Request /health inside the app container; note when it first answered 200."""
        # Plain `docker exec`: a poll must not hang on a container that stopped answering,
        # and python-on-whales' execute takes no timeout.
        asked = time.time()
        result = run(
            [
                *("docker", "exec", app_container),
                *("python", "-I", "-S", "-c", _ANSWER_PROBE, str(self.port), self.scheme),
            ],
            timeout=10,
        )
        if result.returncode == 0:
            # The moment printed inside the container is when the answer arrived.
            with contextlib.suppress(ValueError, IndexError):
                self.polled_answer = float(result.stdout.split()[-1])
        else:
            self.unanswered_at = asked

    def timeline(self, started_wall: float) -> dict[str, dict]:
        """Per service: seconds from `compose up` to its container's start and to healthy."""
        return {
            service: {
                "started_after": seconds_after(self.started.get(service), started_wall),
                "healthy_after": seconds_after(self.healthy.get(service), started_wall),
            }
            for service in sorted(self.services)
        }


def seconds_after(moment: float | None, started: float) -> float | None:
    return round(moment - started, 3) if moment is not None else None


@contextlib.contextmanager
def images_tagged(tag: str | None) -> Iterator[None]:
    """DASHTAM_<STAGE>_IMAGE=dashtam/<stage>:<tag> for compose (the shell's value wins over the
    env files); with no tag, compose's own default (dashtam/<stage>:latest)."""
    with environment_set(
        {
            stacks.image_variable(stage): f"{image_name(stage)}:{tag}" if tag else None
            for stage in images.images_that_run()
        }
    ):
        yield


def stack_tag(bench_run: BenchRun, variant: Variant, stages: Sequence[str]) -> str | None:
    """Tag this run's images as dashtam/<stage>:bench-…, for the compose files to run."""
    sources = {stage: f"{variant.namespace}/{stage}:noop" for stage in stages}
    missing = [reference for reference in sources.values() if not engine.image_exists(reference)]
    if missing:
        if variant is BASELINE:
            raise PipelineError(
                f"{', '.join(missing)} not built; run the bench with its build section."
            )
        note = f"stacks ran dashtam/<stage>:latest: {', '.join(missing)} not built in this run."
        if note not in bench_run.notes:
            bench_run.notes.append(note)
        return None
    tag = f"bench-{bench_run.run_id}" + ("-seed" if variant is BASELINE else "")
    for stage, reference in sources.items():
        target = f"{image_name(stage)}:{tag}"
        engine.tag_image(reference, target)
        if target not in bench_run.temporary_tags:
            bench_run.temporary_tags.append(target)
    return tag


def remove_temporary_tags(bench_run: BenchRun) -> None:
    for tag in bench_run.temporary_tags:
        with best_effort():
            docker().image.remove(tag)
    bench_run.temporary_tags.clear()


def run_boots(bench_run: BenchRun) -> None:
    """The boot section: every environment asked for, then the seed design's ci stack."""
    for name in bench_run.environments:
        tag = stack_tag(bench_run, PROJECT, ENVIRONMENTS[name].stages)
        for repetition in range(bench_run.repeat):
            boot_and_record(bench_run, PROJECT, name, repetition, tag, checks=True)
    if "ci" in bench_run.environments:
        try:
            tag = stack_tag(bench_run, BASELINE, ENVIRONMENTS["ci"].stages)
        except PipelineError as error:
            bench_run.errors["boot baseline ci"] = str(error)
            return
        for repetition in range(bench_run.repeat):
            boot_and_record(bench_run, BASELINE, "ci", repetition, tag, checks=False)


def boot_and_record(
    bench_run: BenchRun,
    variant: Variant,
    name: str,
    repetition: int,
    tag: str | None,
    *,
    checks: bool,
) -> None:
    """One boot; a stack that fails to come up is recorded, and the run goes on."""
    with images_tagged(tag):
        try:
            boot(bench_run, variant, name, repetition, checks=checks)
        except PipelineError as error:
            bench_run.errors[f"boot {variant.name} {name}"] = str(error)
            say(f"{variant.name} {name}: not measured: {error}", speaker="bench")


def boot(
    bench_run: BenchRun, variant: Variant, name: str, repetition: int, *, checks: bool
) -> None:
    """Boot one stack under the observer, record its timeline, check it, tear it down."""
    environment = ENVIRONMENTS[name]
    stack = stacks.verify_stack(
        environment,
        run_id=f"bench{bench_run.run_id}{variant.name[0]}{repetition}",
        override_files=peer_override(bench_run) if checks and name == PEER_ENVIRONMENT else (),
    )
    observer = HealthObserver(
        stack.project, PROBED_SERVICE, SERVICE_PORTS[PROBED_SERVICE], environment.scheme
    )
    record: dict = {"variant": variant.name, "environment": name, "repetition": repetition}
    bench_run.boots.append(record)
    try:
        stack.check_host_ports_free()
        observer.start()
        started_wall, started = time.time(), time.monotonic()
        stack.up()
        up_seconds = time.monotonic() - started
        observer.join(timeout=OBSERVE_AFTER_UP_SECONDS)
        observer.stop()
        record_boot(bench_run, record, observer, started_wall, up_seconds)
        if checks:
            run_checks(bench_run, stack, name, repetition)
    finally:
        observer.stop()
        stack.down(remove_volumes=True)


def peer_override(bench_run: BenchRun) -> tuple[Path, ...]:
    """bench.peer's override that mounts goss in, or none (and why) when goss is not there."""
    try:
        override = peer.goss_override(bench_run)
    except PipelineError as error:
        bench_run.errors["goss"] = str(error)
        return ()
    if peer.MOUNTED_NOTE not in bench_run.notes:
        bench_run.notes.append(peer.MOUNTED_NOTE)
    return (override,)


def record_boot(
    bench_run: BenchRun,
    record: dict,
    observer: HealthObserver,
    started_wall: float,
    up_seconds: float,
) -> None:
    """One boot's timeline into its record, and its figures into the samples."""
    variant, name = record["variant"], record["environment"]
    record.update(
        up_seconds=round(up_seconds, 3),
        answered_after=seconds_after(observer.answered_at, started_wall),
        healthy_after=seconds_after(observer.healthy_at, started_wall),
        polls=observer.polls,
        services=observer.timeline(started_wall),
    )
    key = f"boot.{name}" if variant == PROJECT.name else f"boot.baseline.{name}"
    bench_run.add(f"{key}.up_seconds", up_seconds)
    if observer.answered_at is not None and observer.healthy_at is not None:
        cadence = observer.healthy_at - observer.answered_at
        record["answer_to_healthy_seconds"] = round(cadence, 3)
        bench_run.add(f"{key}.answer_to_healthy_seconds", cadence)
    say(
        f"{variant} {name}: healthy after {up_seconds:.1f} s; app answers to "
        f"healthy {record.get('answer_to_healthy_seconds', 'n/a')} s "
        f"(repetition {record['repetition'] + 1})",
        speaker="bench",
    )


def run_checks(bench_run: BenchRun, stack: stacks.Stack, name: str, repetition: int) -> None:
    """tests/infra against the booted stack; on ci, when goss is mounted in, also goss and our
    equivalent checks."""
    suite = run_suite(bench_run, stack, name, repetition, selection=None)
    bench_run.add(f"verify.{name}.suite_seconds", suite["seconds"])
    bench_run.add(f"verify.{name}.helpers_seconds", suite["helpers_seconds"])
    if name != PEER_ENVIRONMENT or not stack.override_files:
        return
    # Alternate which goes first, so neither always gets the warmer caches.
    order = ("goss", "ours") if repetition % 2 == 0 else ("ours", "goss")
    for which in order:
        if which == "goss":
            goss_run = peer.run_goss(bench_run, stack, repetition)
            bench_run.add("goss.seconds", goss_run["seconds"])
        else:
            selection = peer.equivalent_selection()
            equivalent = run_suite(bench_run, stack, name, repetition, selection=selection)
            bench_run.add("goss.suite_equivalent_seconds", equivalent["seconds"])


def run_suite(
    bench_run: BenchRun, stack: stacks.Stack, name: str, repetition: int, selection: str | None
) -> dict:
    """tests/infra (or the -k `selection`) against the stack, as `nox -s verify` runs it
    (bench.suite: a process of its own, helpers started first and timed apart)."""
    with tempfile.TemporaryDirectory(prefix="dashtam-bench-suite-") as directory:
        junit = Path(directory) / "junit.xml"
        config = Path(directory) / "config.json"
        process_environment = dict(os.environ) | suite_variables(stack, config_file=config)
        command = [sys.executable, "-m", "bench.suite", str(junit), "-q"]
        if selection:
            command += ["-k", selection]
        result = run(command, cwd=ROOT, env=process_environment, timeout=900)
        timing = timing_of(result.stdout)
        checks = reports.read_junit(junit)
    seconds = timing.get("seconds", 0.0)
    record = {
        "environment": name,
        "repetition": repetition,
        "selection": selection or "all",
        "seconds": round(seconds, 3),
        "helpers_seconds": round(timing.get("helpers_seconds", 0.0), 3),
        "exit_code": timing.get("exit_code", result.returncode),
        "passed": sum(check.outcome == "passed" for check in checks),
        "failed": sum(check.outcome == "failed" for check in checks),
        "failures": [check.name for check in checks if check.outcome == "failed"],
        "checks": [
            {"name": check.name, "outcome": check.outcome, "seconds": check.seconds}
            for check in checks
        ],
    }
    if not checks or not timing:
        record["output"] = result.stdout[-2000:] + result.stderr[-2000:]
    bench_run.suites.append(record)
    scope = "tests/infra" if not selection else "tests/infra, goss's checks"
    say(
        f"{scope} on {name}: {seconds:.1f} s, {record['passed']} passed, "
        f"{record['failed']} failed (repetition {repetition + 1})",
        speaker="bench",
    )
    return record


def timing_of(output: str) -> dict:
    """bench.suite's last line: its JSON timing, or {} when it did not get that far."""
    lines = output.strip().splitlines()
    try:
        return json.loads(lines[-1]) if lines else {}
    except ValueError:
        return {}
