"""A build whose inputs are unchanged is the image built before, on real Docker: BuildKit is
not asked; a changed source, or the image gone from the engine, and it bakes again.

The builds run from a copy of the build context (as the self-test lab's do) and tag only
dashtam/callback:inputs-<id>, so the checkout's own images and tags are never touched.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from pipeline import engine, images
from tests.pipeline.conftest import docker_output
from tests.pipeline.lab import copy_build_context

pytestmark = pytest.mark.docker
STAGE = "callback"


@pytest.fixture
def context(tmp_path: Path) -> Path:
    context = copy_build_context(tmp_path / "context")
    # An image of its own: never the checkout's callback image, whose tags stay untouched.
    (context / "src" / "inputs_marker.py").write_text(f"RUN = {uuid.uuid4().hex!r}\n")
    return context


@pytest.fixture
def build(docker_engine, context: Path, monkeypatch: pytest.MonkeyPatch):
    """Build the stage from the copy; returns (image ID, whether BuildKit was asked)."""
    tag = f"{images.image_name(STAGE)}:inputs-{uuid.uuid4().hex[:8]}"
    monkeypatch.setattr(images, "ROOT", context)
    monkeypatch.setattr(images, "DOCKERFILE", context / "docker" / "Dockerfile")
    monkeypatch.setattr(images, "stage_tags", lambda name, commit: [tag])
    real_bake = images.bake
    asked: list[bool] = []

    def counted_bake(*args, **kwargs):
        asked.append(True)
        return real_bake(*args, **kwargs)

    monkeypatch.setattr(images, "bake", counted_bake)

    built: set[str] = set()

    def build_once() -> tuple[str, bool]:
        asked.clear()
        (result,) = images.build_stages([STAGE], show=False)
        built.add(result.image_id)
        return result.image_id, bool(asked)

    yield build_once
    for image_id in built:
        if engine.image_id(image_id):
            docker_output("image", "rm", "--force", image_id)


def test_unchanged_inputs_are_the_image_built_before(build):
    first, baked = build()
    assert baked, "the first build from a fresh record must ask BuildKit"
    again, baked = build()
    assert (again, baked) == (first, False)


def test_a_changed_source_is_baked_again(build, context: Path):
    first, _ = build()
    (context / "src" / "callback.py").write_text(
        (context / "src" / "callback.py").read_text() + "\n# changed\n"
    )
    changed, baked = build()
    assert baked and changed != first


def test_an_image_gone_from_the_engine_is_baked_again(build):
    first, _ = build()
    docker_output("image", "rm", "--force", first)
    _, baked = build()
    assert baked
