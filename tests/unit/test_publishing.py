"""Publish only what passed: the verify records an image must be named in, the registry that
must hold it, and the tag."""

from __future__ import annotations

import json
import re

import pytest

from pipeline import provenance, publishing, registry_api
from pipeline.environments import ENVIRONMENTS
from pipeline.errors import PipelineError
from pipeline.reports import record_path

IMAGE = "sha256:" + "a" * 64
OTHER = "sha256:" + "b" * 64
ADDRESS = "127.0.0.1:5000"
DIGEST = "sha256:" + "c" * 64


def reference(stage: str, address: str = ADDRESS, digest: str = DIGEST) -> str:
    return f"{address}/dashtam/{stage}@{digest}"


def write_record(reports, environment, verdict="PASS", image=IMAGE, address=ADDRESS, **extra):
    development = environment in ("dev", "test")
    stages = (
        {"app": "development", "callback": "development"}
        if development
        else {
            "app": "production",
            "callback": "callback",
        }
    )
    record = {
        "environment": environment,
        "verdict": verdict,
        "images": {**dict.fromkeys(stages, image), "postgres": OTHER},
        "references": {
            **{service: reference(stage, address) for service, stage in stages.items()},
            "postgres": "postgres:17",
        },
        "bound": provenance.binding_of(ENVIRONMENTS[environment]),
        **extra,
    }
    record_path(environment, reports).write_text(json.dumps(record))


@pytest.fixture
def reports(tmp_path):
    for environment in ("dev", "test", "ci", "prod"):
        write_record(tmp_path, environment)
    return tmp_path


def test_the_image_every_environment_passed_on_is_the_one_verified(reports):
    verified = publishing.verified_image("production", reports)
    assert verified.image_id == IMAGE
    assert verified.references == (reference("production"),)
    assert verified.environments == ("ci", "prod")


def test_the_environments_that_run_a_stage_are_the_ones_asked():
    assert publishing.environments_running("production") == ["ci", "prod"]
    assert publishing.environments_running("development") == ["dev", "test"]


@pytest.mark.parametrize(
    ("breakage", "expected"),
    [
        ("missing", r"no verify\(prod\) report"),
        ("failed", r"the last verify\(prod\) is FAIL, not PASS"),
        ("partial", r"the last verify\(prod\) is PARTIAL, not PASS"),
        ("interrupted", r"the last verify\(prod\) is INTERRUPTED, not PASS"),
        ("other-commit", r"verify\(prod\) was reached on other code: the commit changed"),
        (
            "policy-changed",
            r"reached on other code: the policy \(controls.toml, rules.py\) changed",
        ),
        ("unbound", r"reached on other code: the commit, whether the tree"),
        ("other-image", r"passed on different images \(ci: sha256:aaaa.*prod: sha256:bbbb"),
        ("unreadable", r"verify-prod.json cannot be read"),
        ("no-digest", r"verify\(prod\) names no digest of dashtam/production"),
    ],
)
def test_an_image_without_a_passing_record_of_its_own_is_refused(reports, breakage, expected):
    path = record_path("prod", reports)
    if breakage == "missing":
        path.unlink()
    elif breakage in ("failed", "partial", "interrupted"):
        write_record(reports, "prod", verdict=breakage.upper().replace("FAILED", "FAIL"))
    elif breakage in ("other-commit", "policy-changed"):
        bound = dict(provenance.binding_of(ENVIRONMENTS["prod"]))
        field = "commit" if breakage == "other-commit" else "policy_sha256"
        bound[field] = "0" * 40
        write_record(reports, "prod", bound=bound)
    elif breakage == "unbound":
        write_record(reports, "prod", bound={})
    elif breakage == "other-image":
        write_record(reports, "prod", image=OTHER)
    elif breakage == "no-digest":
        write_record(reports, "prod", references={"app": "dashtam/production:latest"})
    else:
        path.write_text("{not json")
    with pytest.raises(PipelineError) as refused:
        publishing.verified_image("production", reports)
    assert re.search(expected, str(refused.value)), refused.value


def test_the_development_image_does_not_need_prods_verdict(reports):
    write_record(reports, "prod", verdict="FAIL")
    assert publishing.verified_image("development", reports).image_id == IMAGE


def test_one_image_verified_from_two_registries_is_one_image(reports):
    """The workflow's verify jobs each push to a registry of their own."""
    write_record(reports, "prod", address="127.0.0.1:5001")
    verified = publishing.verified_image("production", reports)
    assert verified.references == (
        reference("production"),
        reference("production", "127.0.0.1:5001"),
    )


class FakeManifest:
    def __init__(self, config: str):
        self.config_digest = config
        self.digest = DIGEST


def test_the_local_registry_must_hold_the_digest_verified(reports, monkeypatch):
    verified = publishing.verified_image("production", reports)
    with pytest.raises(
        PipelineError, match=r"not one digest in the registry now at 127.0.0.1:6000"
    ):
        publishing.verified_manifest(verified, "127.0.0.1:6000")
    monkeypatch.setattr(registry_api, "fetch_manifest", lambda *arguments: FakeManifest(OTHER))
    with pytest.raises(PipelineError, match=r"is image sha256:bbbb.*not the sha256:aaaa"):
        publishing.verified_manifest(verified, ADDRESS)
    monkeypatch.setattr(registry_api, "fetch_manifest", lambda *arguments: FakeManifest(IMAGE))
    assert publishing.verified_manifest(verified, ADDRESS).config_digest == IMAGE


FULL_SHA = "0123456789abcdef0123456789abcdef01234567"


def test_a_clean_tree_publishes_under_its_full_commit(monkeypatch):
    monkeypatch.setattr(provenance, "commit_state", lambda: provenance.CommitState(FULL_SHA, True))
    assert publishing.release_tag(None) == FULL_SHA


def test_a_dirty_tree_needs_an_explicit_tag(monkeypatch):
    monkeypatch.setattr(provenance, "commit_state", lambda: provenance.CommitState(FULL_SHA, False))
    with pytest.raises(PipelineError, match=r"uncommitted changes.*--tag NAME"):
        publishing.release_tag(None)
    assert publishing.release_tag("release-1") == "release-1"


@pytest.mark.parametrize("tag", ["", "-x", ".x", "a/b", "x" * 129, "a:b"])
def test_a_tag_docker_would_refuse_is_refused_first(tag):
    with pytest.raises(PipelineError, match="not a valid image tag"):
        publishing.release_tag(tag)


@pytest.mark.parametrize(
    "destination", ["ghcr.io", "GHCR.io/Acme", "ghcr.io/acme:1", "ghcr.io/acme/"]
)
def test_a_destination_that_is_not_registry_and_namespace_is_refused(destination, reports):
    with pytest.raises(PipelineError, match=r"--to .* is not a registry and namespace"):
        publishing.publish("release-1", destination, reports)


def test_nothing_is_tagged_when_one_image_is_refused(reports, monkeypatch):
    write_record(reports, "ci", image=OTHER)
    tagged = []
    monkeypatch.setattr(publishing, "image_exists", lambda image: True)
    monkeypatch.setattr(publishing.registry, "ensure_registry", lambda: ADDRESS)
    monkeypatch.setattr(registry_api, "tag_manifest", lambda *arguments: tagged.append(arguments))
    monkeypatch.setattr(publishing, "push_verified", lambda *arguments: tagged.append(arguments))
    with pytest.raises(PipelineError, match=r"dashtam/production is not published"):
        publishing.publish("release-1", None, reports)
    assert tagged == []


def test_an_image_this_engine_no_longer_holds_is_not_published(reports, monkeypatch):
    monkeypatch.setattr(publishing, "image_exists", lambda image: False)
    with pytest.raises(PipelineError, match=r"does not hold the verified image.*nox -s build-all"):
        publishing.publish("release-1", "ghcr.io/acme", reports)


def test_images_are_labelled_with_the_commit_they_are_built_from(monkeypatch):
    monkeypatch.setattr(provenance, "commit_state", lambda: provenance.CommitState(FULL_SHA, True))
    monkeypatch.setenv("GITHUB_SERVER_URL", "https://github.com")
    monkeypatch.setenv("GITHUB_REPOSITORY", "acme/dashtam")
    labels = provenance.image_labels()
    assert labels["org.opencontainers.image.revision"] == FULL_SHA, labels
    assert labels["org.opencontainers.image.source"] == "https://github.com/acme/dashtam", labels
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\dT[\d:]+[+-Z][\d:]*", labels["org.opencontainers.image.created"]
    )
    monkeypatch.setattr(provenance, "commit_state", lambda: provenance.CommitState(FULL_SHA, False))
    assert provenance.image_labels()["org.opencontainers.image.revision"] == f"{FULL_SHA}-dirty"


@pytest.mark.parametrize(
    ("origin", "expected"),
    [
        ("https://user:token@github.com/acme/dashtam.git", "https://github.com/acme/dashtam.git"),
        ("git@github.com:acme/dashtam.git", "git@github.com:acme/dashtam.git"),
        ("/home/me/dashtam", None),
    ],
    ids=["credentials are left out", "an ssh remote as it is", "a local path names nothing"],
)
def test_the_source_label_names_the_origin_without_credentials(monkeypatch, origin, expected):
    import subprocess

    monkeypatch.delenv("GITHUB_SERVER_URL", raising=False)
    monkeypatch.delenv("GITHUB_REPOSITORY", raising=False)
    monkeypatch.setattr(
        provenance, "run", lambda *a, **k: subprocess.CompletedProcess([], 0, origin + "\n", "")
    )
    assert provenance.source_repository() == expected


def test_a_fresh_checkout_binds_a_dev_record_to_the_template_its_env_file_is_made_from(
    tmp_path, monkeypatch
):
    """The workflow's publish job has no env/.env.dev: the record a verify job made from the
    template's copy must still be the one that is bound now; an edited copy is not."""
    import shutil

    from pipeline.environments import Environment

    development = ENVIRONMENTS["dev"]
    copy = tmp_path / ".env.dev"
    shutil.copyfile(development.template_file, copy)
    recorded = provenance.binding(development, copy, development.compose_file)
    monkeypatch.setattr(Environment, "env_file", property(lambda self: tmp_path / "absent"))
    assert provenance.verified_env_file(development) == development.template_file
    assert provenance.differences(recorded, provenance.binding_of(development)) == []
    copy.write_text(copy.read_text() + "APP_PORT=9999\n")
    edited = provenance.binding(development, copy, development.compose_file)
    assert provenance.differences(edited, recorded) == ["the environment's compose and env files"]
