"""The verification suite can fail: each deliberately broken variant is caught by its check.

A variant breaks one thing: an image built FROM the real production image with one of the
Dockerfiles in tests/pipeline/selftest/, a stage built from a copy of the build context with
a source file missing, or a copy of a compose file with one line changed. The stack then
boots through pipeline.verification.verify exactly as `nox -s verify(<env>)` boots it, and
the real tests/infra suite runs against it. Each test asserts that the run failed, that the
check meant to catch the breakage is among the failures, and that checks the breakage does
not touch still pass: the named check caught it, not a general collapse. Breakages a stack
cannot boot with are caught earlier, by the build gate or the boot health gate, and leave
nothing behind.

Everything made here carries `selftest` in its name: images dashtam/<stage>:selftest-<key>
(the compose files pick them through DASHTAM_IMAGE_TAG) and projects
dashtam-<env>-verify-selftest-<key>-<id>. All of it is removed when a test ends.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from python_on_whales import docker

from pipeline import images, reports, verification
from pipeline import stack as stacks
from pipeline.environments import ROOT, image_name
from pipeline.errors import PipelineError
from pipeline.verification import infra_pytest_arguments

pytestmark = pytest.mark.docker

FIXTURES = Path(__file__).parent / "selftest"
TAG_VARIABLE = "DASHTAM_IMAGE_TAG"
# What the Dockerfile's build context holds (docker/Dockerfile.dockerignore lets in no more).
BUILD_CONTEXT = ("pyproject.toml", "uv.lock", "alembic.ini", "alembic", "src", "docker")
SUITE_TIMEOUT_SECONDS = 600


def _engine_answers() -> bool:
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.fixture(scope="module", autouse=True)
def engine_and_real_images() -> None:
    """Skip (fail in CI) when no engine answers or the real images were never built."""
    problem = None
    if not _engine_answers():
        problem = "no Docker engine answers (`docker info` failed)"
    else:
        missing = [
            f"{image_name(stage)}:latest"
            for stage in ("production", "callback", "development")
            if not docker.image.exists(f"{image_name(stage)}:latest")
        ]
        if missing:
            problem = f"{', '.join(missing)} not built; build them with `nox -s build`"
    if problem and os.environ.get("CI"):
        pytest.fail(f"CI needs Docker and the built images for the self-test: {problem}")
    if problem:
        pytest.skip(problem)


# --- The lab: broken images, compose files and contexts, and the stacks booted from them ------


@dataclass
class SuiteRun:
    """What the real tests/infra suite said about one stack."""

    output: str = ""

    def run(self, test_env: dict[str, str], junit: Path) -> bool:
        result = subprocess.run(
            # The real suite, as the verify session runs it.
            [sys.executable, "-m", "pytest", *infra_pytest_arguments(junit), "-q"],
            cwd=ROOT,
            env=os.environ | test_env,
            capture_output=True,
            text=True,
            timeout=SUITE_TIMEOUT_SECONDS,
            check=False,
        )
        self.output = result.stdout + result.stderr
        return result.returncode == 0


@dataclass
class Lab:
    """Builds one variant's breakage and boots it; remembers everything to clean up."""

    key: str
    tmp_path: Path
    monkeypatch: pytest.MonkeyPatch
    tags: list[str] = field(default_factory=list)
    stacks: list[stacks.Stack] = field(default_factory=list)
    suite: SuiteRun = field(default_factory=SuiteRun)

    @property
    def tag(self) -> str:
        return f"selftest-{self.key}"

    def reference(self, stage: str) -> str:
        return f"{image_name(stage)}:{self.tag}"

    def run_stack_from_tag(self, *real_stages: str) -> None:
        """Compose picks dashtam/<stage>:selftest-<key>; the stages not broken are the real ones."""
        for stage in real_stages:
            docker.image.tag(f"{image_name(stage)}:latest", self.reference(stage))
            self.tags.append(self.reference(stage))
        self.monkeypatch.setenv(TAG_VARIABLE, self.tag)

    def production_image_from(self, dockerfile: str, files: dict[str, bytes] | None = None) -> None:
        """dashtam/production:selftest-<key>, built FROM the real one with a fixture Dockerfile."""
        context = self.tmp_path / "context"
        context.mkdir()
        for relative, content in (files or {}).items():
            (context / relative).parent.mkdir(parents=True, exist_ok=True)
            (context / relative).write_bytes(content)
        self.tags.append(self.reference("production"))
        docker.buildx.build(
            context,
            file=FIXTURES / dockerfile,
            tags=[self.reference("production")],
            build_args={"BASE_IMAGE": f"{image_name('production')}:latest"},
            load=True,
            progress=False,
        )
        self.run_stack_from_tag("callback")

    def context_copy(self) -> Path:
        """A copy of the Dockerfile's build context, to break before building from it."""
        context = self.tmp_path / "context"
        for name in BUILD_CONTEXT:
            source = ROOT / name
            if source.is_dir():
                shutil.copytree(
                    source, context / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
                )
            else:
                context.mkdir(exist_ok=True)
                shutil.copy2(source, context / name)
        return context

    def build_stage_from(self, context: Path, stage: str) -> None:
        """The pipeline's own build of `stage` (build gate included), from `context`,
        tagged dashtam/<stage>:selftest-<key> only: the real tags are never touched."""
        self.tags.append(self.reference(stage))
        with self.monkeypatch.context() as patch:
            patch.setattr(images, "ROOT", context)
            patch.setattr(images, "DOCKERFILE", context / "docker" / "Dockerfile")
            patch.setattr(images, "stage_tags", lambda name: [self.reference(name)])
            images.build_stages([stage], progress=False)

    def stage_without_source(self, stage: str, relative: str) -> None:
        """dashtam/<stage>:selftest-<key> built from a context that lacks `relative`."""
        context = self.context_copy()
        (context / relative).unlink()
        self.build_stage_from(context, stage)
        self.run_stack_from_tag(*(other for other in ("production", "callback") if other != stage))

    def compose_file_with(self, environment: str, good: str, broken: str) -> Path:
        """A copy of compose/docker-compose.<env>.yml with one line broken, in tmp_path.

        Relative paths in a compose file are relative to its folder, so `../` becomes the
        repository root: the copy mounts the same source and certificates as the original.
        """
        original = (ROOT / "compose" / f"docker-compose.{environment}.yml").read_text()
        assert original.count(good) == 1, f"compose/{environment}: expected {good!r} once"
        path = self.tmp_path / f"docker-compose.{environment}.selftest-{self.key}.yml"
        path.write_text(original.replace(good, broken).replace("../", f"{ROOT}/"))
        return path

    def verify(
        self, environment: str, compose_file: Path | None = None
    ) -> verification.VerifyOutcome:
        """pipeline.verification.verify with the real suite, under a `selftest` project."""
        real_verify_stack = stacks.verify_stack

        def selftest_stack(*arguments, **keywords):
            keywords["run_id"] = f"selftest-{self.key}-{uuid.uuid4().hex[:6]}"
            stack = real_verify_stack(*arguments, **keywords)
            self.stacks.append(stack)
            return stack

        with self.monkeypatch.context() as patch:
            patch.setattr(stacks, "verify_stack", selftest_stack)
            return verification.verify(
                environment, self.suite.run, build=False, compose_file=compose_file
            )

    def leftovers(self) -> dict[str, dict[str, list[str]]]:
        found = {}
        for stack in self.stacks:
            left = {kind: names for kind, names in stack.leftovers().items() if names}
            if left:
                found[stack.project] = left
        return found

    def clean_up(self) -> None:
        for stack in self.stacks:
            if any(stack.leftovers().values()):
                stack.down(remove_volumes=True)
        for tag in self.tags:
            if docker.image.exists(tag):
                docker.image.remove(tag)


@pytest.fixture
def lab_for(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], Lab]]:
    """Labs for variant keys; reports go to tmp_path, not the reports/ of a real verify run."""
    monkeypatch.setattr(verification, "REPORTS", tmp_path / "reports")
    monkeypatch.setattr(reports, "REPORTS", tmp_path / "reports")
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    monkeypatch.delenv(TAG_VARIABLE, raising=False)
    opened: list[Lab] = []

    def open_lab(key: str) -> Lab:
        lab = Lab(key, tmp_path, monkeypatch)
        opened.append(lab)
        return lab

    yield open_lab
    for lab in opened:
        leftovers = lab.leftovers()
        lab.clean_up()
        left_images = [tag for tag in lab.tags if docker.image.exists(tag)]
        assert not leftovers, f"self-test {lab.key}: stacks left after teardown: {leftovers}"
        assert not left_images, f"self-test {lab.key}: images left behind: {left_images}"


def throwaway_secrets() -> dict[str, bytes]:
    """An env file and a freshly generated private key: what must never reach a layer."""
    key = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return {
        "env/.env.dev": b"POSTGRES_PASSWORD=selftest-throwaway\n",
        "selftest-tls.key.pem": key,
    }


# --- Variants the suite must catch, each by its own check ------------------------------------


@dataclass(frozen=True)
class Variant:
    key: str  # short: the image tag and the project name carry it
    environment: str
    breaks: Callable[[Lab], Path | None]  # makes the breakage; returns a broken compose file
    caught_by: str  # the tests/infra check that must fail
    still_passing: tuple[str, ...]  # checks the breakage does not touch


CAUGHT_BY_A_CHECK = [
    pytest.param(
        Variant(
            key="running-as-root",
            environment="ci",
            breaks=lambda lab: lab.production_image_from("running-as-root.Dockerfile"),
            caught_by="test_pid1_runs_as_appuser[ci-app]",
            still_passing=(
                "test_pid1_runs_as_appuser[ci-callback]",
                "test_health_endpoint_answers_200[ci-app-health]",
            ),
        ),
        id="stage-running-as-root-is-caught-by-the-pid1-check",
    ),
    pytest.param(
        Variant(
            key="root-owned-file",
            environment="ci",
            breaks=lambda lab: lab.production_image_from("root-owned-file.Dockerfile"),
            caught_by="test_everything_under_app_is_owned_by_appuser[ci-app]",
            still_passing=(
                "test_everything_under_app_is_owned_by_appuser[ci-callback]",
                "test_pid1_runs_as_appuser[ci-app]",
                "test_health_endpoint_answers_200[ci-app-health]",
            ),
        ),
        id="file-owned-by-root-is-caught-by-the-ownership-check",
    ),
    pytest.param(
        Variant(
            key="extra-listening-port",
            environment="ci",
            breaks=lambda lab: lab.production_image_from("extra-listening-port.Dockerfile"),
            caught_by="test_listening_ports_are_exactly_the_declared_ones[ci-app]",
            still_passing=(
                "test_listening_ports_are_exactly_the_declared_ones[ci-callback]",
                "test_pid1_runs_as_appuser[ci-app]",
                "test_health_endpoint_answers_200[ci-app-health]",
                "test_readiness_reports_postgres_and_redis_up",
            ),
        ),
        id="extra-listening-port-is-caught-by-the-listening-ports-check",
    ),
    pytest.param(
        Variant(
            key="secret-in-a-layer",
            environment="ci",
            breaks=lambda lab: lab.production_image_from(
                "secret-deleted-in-a-later-layer.Dockerfile", throwaway_secrets()
            ),
            caught_by="test_no_secret_in_any_layer[ci-production]",
            still_passing=(
                "test_no_secret_in_any_layer[ci-callback]",
                # Deleted from the filesystem: only the layers still hold them.
                "test_everything_under_app_is_owned_by_appuser[ci-app]",
            ),
        ),
        id="secret-deleted-in-a-later-layer-is-caught-by-the-layer-scan",
    ),
    pytest.param(
        Variant(
            key="database-port-on-all-interfaces",
            environment="dev",
            breaks=lambda lab: lab.compose_file_with(
                "dev",
                '"127.0.0.1:${POSTGRES_HOST_PORT:-5432}:5432"',
                '"${POSTGRES_HOST_PORT:-5432}:5432"',
            ),
            caught_by="test_declared_ports_follow_the_environment_policy[dev-postgres]",
            still_passing=(
                "test_declared_ports_follow_the_environment_policy[dev-redis]",
                # The engine binds what compose declares; only the policy knows it is wrong.
                "test_host_bindings_equal_the_declared_ones[dev-postgres]",
                "test_health_endpoint_answers_200[dev-app-health]",
            ),
        ),
        id="database-port-on-all-interfaces-is-caught-by-the-port-policy-check",
    ),
]


@pytest.mark.parametrize("variant", CAUGHT_BY_A_CHECK)
def test_broken_variant_is_caught(variant: Variant, lab_for: Callable[[str], Lab]):
    lab = lab_for(variant.key)
    compose_file = variant.breaks(lab)
    outcome = lab.verify(variant.environment, compose_file)
    checks = {check.name: check for check in reports.read_junit(outcome.junit)}
    failed = sorted(name for name, check in checks.items() if check.outcome == "failed")
    context = f"\nfailed checks: {failed}\nsuite output (tail):\n{lab.suite.output[-3000:]}"
    assert checks, f"self-test {variant.key}: the suite reported no checks{context}"
    assert not outcome.passed, f"self-test {variant.key}: verify passed a broken stack{context}"
    assert variant.caught_by in failed, (
        f"self-test {variant.key}: {variant.caught_by}: expected failed, "
        f"found {checks[variant.caught_by].outcome if variant.caught_by in checks else 'not run'}"
        f"{context}"
    )
    not_passing = {
        name: checks[name].outcome if name in checks else "not run"
        for name in variant.still_passing
        if name not in checks or checks[name].outcome != "passed"
    }
    assert not not_passing, (
        f"self-test {variant.key}: checks the breakage does not touch: expected passed, "
        f"found {not_passing}{context}"
    )


# --- Variants a stack cannot boot with: the boot health gate catches them ------------------


@dataclass(frozen=True)
class BootVariant:
    key: str
    breaks: Callable[[Lab], None]
    unhealthy: str  # the service the gate must name
    healthy: tuple[str, ...]  # services it must not name
    evidence: str  # what the gate prints (logs, health log) that shows the cause


NEVER_BOOTS = [
    pytest.param(
        BootVariant(
            key="https-healthcheck",
            breaks=lambda lab: lab.production_image_from(
                "https-healthcheck-on-plain-http.Dockerfile"
            ),
            unhealthy="app",
            healthy=("callback", "postgres", "redis"),
            # A TLS error from a server that answers, not a refused connection.
            evidence="[SSL",
        ),
        id="https-healthcheck-on-a-plain-http-server-leaves-app-unhealthy",
    ),
    pytest.param(
        BootVariant(
            key="missing-source",
            breaks=lambda lab: lab.stage_without_source("callback", "src/callback.py"),
            unhealthy="callback",
            healthy=("app", "postgres", "redis"),
            evidence='Could not import module "src.callback"',
        ),
        id="stage-missing-its-source-file-leaves-callback-unhealthy",
    ),
]


@pytest.mark.parametrize("variant", NEVER_BOOTS)
def test_broken_variant_never_boots(
    variant: BootVariant, lab_for: Callable[[str], Lab], capsys: pytest.CaptureFixture[str]
):
    lab = lab_for(variant.key)
    variant.breaks(lab)
    capsys.readouterr()
    with pytest.raises(PipelineError) as refused:
        lab.verify("ci")
    printed = capsys.readouterr().err
    message = str(refused.value)
    assert " did not become healthy" in message, (
        f"self-test {variant.key}: verify error: expected the boot health gate, found {message!r}"
    )
    named = message.split(": ", 1)[1].split(" did not become healthy")[0].split(", ")
    wrongly_named = sorted(set(named) & set(variant.healthy))
    assert variant.unhealthy in named and not wrongly_named, (
        f"self-test {variant.key}: services the boot gate names: expected {variant.unhealthy!r} "
        f"and none of {list(variant.healthy)}, found {named}"
    )
    assert variant.evidence in printed, (
        f"self-test {variant.key}: what the boot gate printed: expected {variant.evidence!r}, "
        f"found:\n{printed[-3000:]}"
    )
    assert not lab.suite.output, (
        f"self-test {variant.key}: the suite ran on a stack that never booted"
    )
    assert not lab.leftovers(), f"self-test {variant.key}: teardown left {lab.leftovers()}"


# --- The build gate ------------------------------------------------------------------------


def test_stage_running_as_root_is_refused_by_the_build_gate(lab_for: Callable[[str], Lab]):
    lab = lab_for("root-build")
    context = lab.context_copy()
    # The unchanged copy builds: the gate refuses the breakage, not the copy.
    lab.build_stage_from(context, "production")
    dockerfile = context / "docker" / "Dockerfile"
    text = dockerfile.read_text()
    production_end = 'CMD ["app"]\n'
    assert text.count(production_end) == 1, f"docker/Dockerfile: expected {production_end!r} once"
    dockerfile.write_text(text.replace(production_end, production_end + "USER root\n"))
    with pytest.raises(PipelineError, match="stage 'production' is configured to run as root"):
        lab.build_stage_from(context, "production")
