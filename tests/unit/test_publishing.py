"""Publish only what passed: the verify records an image must be named in, and the tag."""

from __future__ import annotations

import json
import re

import pytest

from pipeline import images, publishing
from pipeline.errors import PipelineError
from pipeline.reports import record_path

IMAGE = "sha256:" + "a" * 64
OTHER = "sha256:" + "b" * 64


def write_record(reports, environment, verdict="PASS", image=IMAGE):
    record_path(environment, reports).write_text(
        json.dumps({"environment": environment, "verdict": verdict, "images": {"app": image}})
    )


@pytest.fixture
def reports(tmp_path):
    for environment in ("dev", "test", "ci", "prod"):
        write_record(tmp_path, environment)
    return tmp_path


def test_an_image_every_environment_passed_on_is_publishable(reports):
    assert publishing.refusal("production", IMAGE, reports) is None


def test_the_environments_that_run_a_stage_are_the_ones_asked():
    assert publishing.environments_running("production") == ["ci", "prod"]
    assert publishing.environments_running("development") == ["dev", "test"]


@pytest.mark.parametrize(
    ("breakage", "expected"),
    [
        ("missing", r"no verify\(prod\) report"),
        ("failed", r"the last verify\(prod\) failed"),
        ("other-image", r"verify\(prod\) passed on other images"),
        ("unreadable", r"verify-prod.json cannot be read"),
    ],
)
def test_an_image_without_a_passing_record_of_its_own_is_refused(reports, breakage, expected):
    path = record_path("prod", reports)
    if breakage == "missing":
        path.unlink()
    elif breakage == "failed":
        write_record(reports, "prod", verdict="FAIL")
    elif breakage == "other-image":
        write_record(reports, "prod", image=OTHER)
    else:
        path.write_text("{not json")
    reason = publishing.refusal("production", IMAGE, reports)
    assert reason is not None, f"{breakage}: published anyway"
    assert re.search(expected, reason), reason
    assert 'nox -s "verify(prod)"' in reason


def test_the_development_image_does_not_need_prods_verdict(reports):
    write_record(reports, "prod", verdict="FAIL")
    assert publishing.refusal("development", IMAGE, reports) is None


def test_a_clean_tree_publishes_under_its_commit(monkeypatch):
    monkeypatch.setattr(images, "clean_commit_sha", lambda: "abc1234")
    assert publishing.release_tag(None) == "abc1234"


def test_a_dirty_tree_needs_an_explicit_tag(monkeypatch):
    monkeypatch.setattr(images, "clean_commit_sha", lambda: None)
    with pytest.raises(PipelineError, match=r"uncommitted changes.*--tag NAME"):
        publishing.release_tag(None)
    assert publishing.release_tag("release-1") == "release-1"


@pytest.mark.parametrize("tag", ["", "-x", ".x", "a/b", "x" * 129, "a:b"])
def test_a_tag_docker_would_refuse_is_refused_first(tag):
    with pytest.raises(PipelineError, match="not a valid image tag"):
        publishing.release_tag(tag)


def test_nothing_is_pushed_when_one_image_is_refused(reports, monkeypatch):
    monkeypatch.setattr(images, "clean_commit_sha", lambda: "abc1234")
    monkeypatch.setattr(publishing, "image_id", lambda reference: IMAGE)
    write_record(reports, "ci", image=OTHER)
    pushed = []
    monkeypatch.setattr(publishing, "push", lambda *arguments: pushed.append(arguments))
    monkeypatch.setattr(publishing.registry, "ensure_registry", lambda: "localhost:1")
    with pytest.raises(PipelineError, match=r"dashtam/production:latest is not published"):
        publishing.publish(None, reports)
    assert pushed == []
