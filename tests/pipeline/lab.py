"""The self-test's lab: broken images, compose files and build contexts, booted through
pipeline.verification.verify exactly as `nox -s verify(<env>)` boots them, with the real
tests/infra suite run against them.

Everything made here carries `selftest` in its name: images dashtam/<stage>:selftest-<key>
(the compose files pick them through DASHTAM_<STAGE>_IMAGE) and projects
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
from python_on_whales import docker

from pipeline import images, reports, verification
from pipeline import stack as stacks
from pipeline.environments import ROOT, image_name
from pipeline.image_sources import image_references
from pipeline.preflight import NO_ENGINE, engine_answers
from pipeline.provenance import SHARED_COMPOSE_FILES
from pipeline.stack import image_variable
from pipeline.verification import infra_pytest_arguments

FIXTURES = Path(__file__).parent / "selftest"
# What the Dockerfile's build context holds (docker/Dockerfile.dockerignore lets in no more).
BUILD_CONTEXT = ("pyproject.toml", "uv.lock", "alembic.ini", "alembic", "src", "docker")
SUITE_TIMEOUT_SECONDS = 600
# The stages whose images the compose files name through DASHTAM_<STAGE>_IMAGE.
RUNNING_STAGES = tuple(images.images_that_run())


@pytest.fixture(scope="module")
def engine_and_real_images() -> None:
    """Skip (fail in CI) when no engine answers or the real images were never built."""
    problem = None
    if not engine_answers():
        problem = NO_ENGINE
    else:
        missing = [
            f"{image_name(stage)}:latest"
            for stage in RUNNING_STAGES
            if not docker.image.exists(f"{image_name(stage)}:latest")
        ]
        if missing:
            problem = f"{', '.join(missing)} not built; build them with `nox -s build-all`"
    if problem and os.environ.get("CI"):
        pytest.fail(f"CI needs Docker and the built images for the self-test: {problem}")
    if problem:
        pytest.skip(problem)


# --- The lab: broken images, compose files and contexts, and the stacks booted from them ------


@dataclass
class SuiteRun:
    """What the real tests/infra suite said about one stack."""

    output: str = ""

    def run(self, test_env: dict[str, str], junit: Path) -> int:
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
        return result.returncode


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
        for stage in RUNNING_STAGES:
            self.monkeypatch.setenv(image_variable(stage), self.reference(stage))

    def image_from(
        self, stage: str, dockerfile: str, files: dict[str, bytes] | None = None
    ) -> None:
        """dashtam/<stage>:selftest-<key>, built FROM the real one with a fixture Dockerfile."""
        context = self.tmp_path / f"context-{stage}"
        context.mkdir()
        for relative, content in (files or {}).items():
            (context / relative).parent.mkdir(parents=True, exist_ok=True)
            (context / relative).write_bytes(content)
        self.tags.append(self.reference(stage))
        docker.buildx.build(
            context,
            file=FIXTURES / dockerfile,
            tags=[self.reference(stage)],
            build_args={
                "BASE_IMAGE": f"{image_name(stage)}:latest",
                "PYTHON_IMAGE": image_references()["PYTHON_IMAGE"],
            },
            load=True,
            progress=False,
        )

    def production_image_from(self, dockerfile: str, files: dict[str, bytes] | None = None) -> None:
        """A broken production image beside the real callback one."""
        self.image_from("production", dockerfile, files)
        self.run_stack_from_tag("callback")

    def callback_image_from(self, dockerfile: str) -> None:
        """A broken callback image beside the real production one."""
        self.image_from("callback", dockerfile)
        self.run_stack_from_tag("production")

    def context_copy(self) -> Path:
        """A copy of the Dockerfile's build context, to break before building from it."""
        return copy_build_context(self.tmp_path / "context")

    def build_stage_from(self, context: Path, stage: str) -> None:
        """The pipeline's own build of `stage` (build gate included), from `context`,
        tagged dashtam/<stage>:selftest-<key> only: the real tags are never touched."""
        self.tags.append(self.reference(stage))
        with self.monkeypatch.context() as patch:
            patch.setattr(images, "ROOT", context)
            patch.setattr(images, "DOCKERFILE", context / "docker" / "Dockerfile")
            patch.setattr(images, "stage_tags", lambda name, commit: [self.reference(name)])
            images.build_stages([stage], show=False)

    def stage_without_source(self, stage: str, relative: str) -> None:
        """dashtam/<stage>:selftest-<key> built from a context that lacks `relative`."""
        context = self.context_copy()
        (context / relative).unlink()
        self.build_stage_from(context, stage)
        self.run_stack_from_tag(*(other for other in ("production", "callback") if other != stage))

    def compose_file_with(self, environment: str, *changes: tuple[str, str]) -> Path:
        """A copy of compose/docker-compose.<env>.yml with lines broken, in tmp_path: each
        change (good, broken) replaces a text that stands exactly once in the file.

        Relative paths in a compose file are relative to its folder, so `../` becomes the
        repository root: the copy mounts the same source and certificates as the original,
        and finds the blocks it extends in copies of the shared compose files beside it.
        """
        text = (ROOT / "compose" / f"docker-compose.{environment}.yml").read_text()
        for good, broken in changes:
            assert text.count(good) == 1, f"compose/{environment}: expected {good!r} once"
            text = text.replace(good, broken)
        path = self.tmp_path / f"docker-compose.{environment}.selftest-{self.key}.yml"
        path.write_text(text.replace("../", f"{ROOT}/"))
        for name in SHARED_COMPOSE_FILES:
            shutil.copy2(ROOT / "compose" / name, self.tmp_path / name)
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
    for stage in RUNNING_STAGES:
        monkeypatch.delenv(image_variable(stage), raising=False)
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


def copy_build_context(context: Path) -> Path:
    """The Dockerfile's build context (BUILD_CONTEXT, bytecode aside) copied to `context`."""
    for name in BUILD_CONTEXT:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(
                source, context / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
            )
        else:
            context.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, context / name)
    return context
