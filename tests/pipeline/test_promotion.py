"""Promotion: the images a build made reach verify and publish as they are, never rebuilt.

What the workflow's jobs do, on this engine: `build-all`, then `save-images` (the build
job's hand-off), then `verify(ci) -- --images FOLDER` (a verify job: it boots exactly the
saved images and builds nothing), and `load-images` refusing an archive that holds another
image than its record names.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from pipeline.environments import REPORTS
from tests.pipeline.conftest import TRACEBACK, Run, run_nox

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def saved(docker_engine, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("promoted") / "images"
    built = run_nox("-s", "build-all")
    assert built.returncode == 0, f"build-all failed:\n{built.tail()}"
    written = run_nox("-s", "save-images", "--", str(folder))
    assert written.returncode == 0, f"save-images failed:\n{written.tail()}"
    return folder


def saved_id(folder: Path, stage: str) -> str:
    return json.loads((folder / f"{stage}.json").read_text())["image_id"]


def test_save_images_writes_each_image_that_runs_with_its_id(saved: Path):
    names = sorted(path.name for path in saved.iterdir())
    assert names == sorted(
        f"{stage}.{suffix}"
        for stage in ("callback", "development", "production")
        for suffix in ("json", "tar")
    ), names


@pytest.fixture(scope="module")
def promoted_verify(saved: Path) -> Run:
    return run_nox("-s", "verify(ci)", "--", "--images", str(saved))


def test_verify_boots_exactly_the_saved_images_and_builds_nothing(saved: Path, promoted_verify):
    assert promoted_verify.returncode == 0, f"verify(ci) failed:\n{promoted_verify.tail()}"
    assert "dashtam: built " not in promoted_verify.output, "verify built images itself"
    record = json.loads((REPORTS / "verify-ci.json").read_text())
    expected = {"app": saved_id(saved, "production"), "callback": saved_id(saved, "callback")}
    found = {service: record["images"].get(service) for service in expected}
    assert found == expected, f"verify(ci) ran {found}, not the saved {expected}"
    assert record["verdict"] == "PASS", record["verdict"]
    assert all("@sha256:" in record["references"][service] for service in expected), record[
        "references"
    ]


def test_an_archive_holding_another_image_is_refused_in_one_line(saved: Path, tmp_path: Path):
    swapped = tmp_path / "images"
    shutil.copytree(saved, swapped)
    shutil.copy2(saved / "callback.tar", swapped / "production.tar")
    loaded = run_nox("-s", "load-images", "--", str(swapped))
    assert loaded.returncode != 0, "load-images accepted another image than its record names"
    assert TRACEBACK not in loaded.output, loaded.tail()
    assert f"{swapped / 'production.tar'} holds {saved_id(saved, 'callback')}" in loaded.output, (
        loaded.tail()
    )


def test_verify_refuses_a_folder_with_no_images_in_one_line(tmp_path: Path):
    refused = run_nox("-s", "verify(ci)", "--", "--images", str(tmp_path))
    assert refused.returncode != 0
    assert TRACEBACK not in refused.output, refused.tail()
    assert "names no image of production" in refused.output, refused.tail()
