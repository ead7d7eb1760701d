"""Preflight checks run side by side, and one `docker image inspect` names the missing images."""

from __future__ import annotations

import threading
import time

import pytest

from pipeline import engine, preflight
from pipeline.errors import PipelineError


def test_checks_run_at_once_and_return_their_results_in_order():
    started = threading.Barrier(3, timeout=5)

    def check(value: str):
        # Each waits for the other two: only checks running at the same time get past it.
        return lambda: (started.wait(), value)[1]

    assert preflight.require_all(check("engine"), check("buildx"), check("lock")) == [
        "engine",
        "buildx",
        "lock",
    ]


def test_the_first_failing_check_in_the_given_order_is_the_one_reported():
    def slow_failure():
        time.sleep(0.2)
        raise PipelineError("the Docker daemon is not reachable")

    def quick_failure():
        raise PipelineError("base image dashtam-airgap/python is missing")

    with pytest.raises(PipelineError, match="daemon is not reachable"):
        preflight.require_all(slow_failure, quick_failure)


def store(*tags: str):
    """Stands in for `docker image inspect`: an engine holding one image tagged `tags`, which
    fails (as docker does) when any reference asked about names nothing."""

    def engine_json(kind, references):
        if not tags or not set(references) <= set(tags):
            raise PipelineError("`docker image inspect` failed (No such image).")
        return [{"Id": "sha256:1", "RepoTags": list(tags)} for _ in references]

    return engine_json


def test_missing_images_are_those_the_inspect_does_not_name(monkeypatch):
    monkeypatch.setattr(engine, "engine_json", store("dashtam-airgap/python:3.13-debian13"))
    wanted = ["dashtam-airgap/python:3.13-debian13", "dashtam-airgap/redis:8-debian13"]
    assert engine.missing_images(wanted) == ["dashtam-airgap/redis:8-debian13"]


def test_a_tag_that_only_shares_a_prefix_does_not_count_as_present(monkeypatch):
    monkeypatch.setattr(engine, "engine_json", store("dashtam-airgap/python:3.13-debian13-old"))
    assert engine.missing_images(["dashtam-airgap/python:3.13-debian13"]) == [
        "dashtam-airgap/python:3.13-debian13"
    ]


def test_every_image_is_missing_when_the_engine_cannot_list_them(monkeypatch):
    monkeypatch.setattr(engine, "engine_json", store())
    assert engine.missing_images(["a:1", "b:2"]) == ["a:1", "b:2"]
