"""When the stand-ins need a build: the digest of their inputs, read without BuildKit."""

from __future__ import annotations

import pytest

from pipeline import base_images
from pipeline.base_images import INPUTS_LABEL, VERSION_LABEL, inputs_digest
from pipeline.image_sources import AIRGAP_ROOTFS, BASE_IMAGES

IDS = {AIRGAP_ROOTFS: "sha256:rootfs-1"}


@pytest.fixture
def folder(tmp_path, monkeypatch):
    """A stand-in folder `python` under a throwaway docker/base-images."""
    (tmp_path / "python").mkdir()
    (tmp_path / "python" / "Dockerfile").write_text("FROM scratch\n")
    monkeypatch.setattr(base_images, "BASE_IMAGES_DIRECTORY", tmp_path)
    return tmp_path / "python"


def test_digest_is_stable_for_the_same_inputs(folder):
    arguments = {"ROOTFS_IMAGE": AIRGAP_ROOTFS}
    assert inputs_digest("python", arguments, IDS) == inputs_digest("python", arguments, IDS)


@pytest.mark.parametrize(
    "change",
    ["dockerfile", "new-file", "base-image-id", "build-arg"],
)
def test_digest_changes_with_each_input(folder, change):
    arguments = {"ROOTFS_IMAGE": AIRGAP_ROOTFS}
    before = inputs_digest("python", arguments, IDS)
    ids = dict(IDS)
    if change == "dockerfile":
        (folder / "Dockerfile").write_text("FROM scratch\nRUN true\n")
    elif change == "new-file":
        (folder / "entrypoint.sh").write_text("#!/bin/sh\n")
    elif change == "base-image-id":
        ids[AIRGAP_ROOTFS] = "sha256:rootfs-2"
    else:
        arguments["UV_VERSION"] = "9.9.9"
    assert inputs_digest("python", arguments, ids) != before, f"{change} left the digest as it was"


def _inspected(reference: str, inputs: str, *, version_tag: bool = True) -> dict:
    repository = reference.rsplit(":", 1)[0]
    tags = [reference] + ([f"{repository}:1.2.3-debian13"] if version_tag else [])
    return {
        "Id": f"sha256:{reference}",
        "RepoTags": tags,
        "Config": {"Labels": {INPUTS_LABEL: inputs, VERSION_LABEL: "1.2.3"}},
    }


def _all_current(monkeypatch, *, stale: str | None = None, untagged: str | None = None) -> None:
    """Every stand-in inspected with today's digest, except `stale` (another digest)."""
    references = [AIRGAP_ROOTFS, *(image.airgap for image in BASE_IMAGES)]
    ids = {reference: f"sha256:{reference}" for reference in references}
    inspected = {AIRGAP_ROOTFS: {"Id": ids[AIRGAP_ROOTFS], "RepoTags": [AIRGAP_ROOTFS]}}
    for image in BASE_IMAGES:
        digest = inputs_digest(image.key, base_images.stand_in_build_args(image.key), ids)
        inspected[image.airgap] = _inspected(
            image.airgap,
            "sha256:old" if image.key == stale else digest,
            version_tag=image.key != untagged,
        )
    monkeypatch.setattr(base_images, "inspect_images", lambda refs: inspected)


def test_nothing_to_build_when_every_stand_in_has_todays_inputs(monkeypatch):
    _all_current(monkeypatch)
    current = base_images.current_stand_ins()
    assert current is not None, "every stand-in carries today's digest, yet a build was planned"
    assert [image.key for image in current] == [image.key for image in BASE_IMAGES]


@pytest.mark.parametrize("key", [image.key for image in BASE_IMAGES])
def test_a_stand_in_with_other_inputs_is_rebuilt(monkeypatch, key):
    _all_current(monkeypatch, stale=key)
    assert base_images.current_stand_ins() is None, f"{key} has other inputs, yet no build"


def test_a_stand_in_without_its_version_tag_is_rebuilt(monkeypatch):
    _all_current(monkeypatch, untagged="postgres")
    assert base_images.current_stand_ins() is None


def test_a_missing_image_means_a_build(monkeypatch):
    monkeypatch.setattr(base_images, "inspect_images", lambda refs: {})
    assert base_images.current_stand_ins() is None
