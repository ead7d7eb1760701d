"""The bake definition the pipeline builds every stage from (no Docker needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline import images
from pipeline.ca_bundle import CA_BUNDLE_ID

CONTEXT = Path("/work/project")
TAGS = {"production": ["dashtam/production:latest", "dashtam/production:abc1234"]}


def definition() -> dict:
    return images.bake_definition(
        TAGS, source="airgap", context=CONTEXT, dockerfile=CONTEXT / "docker" / "Dockerfile"
    )


@pytest.fixture(autouse=True)
def plain_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in (images.CACHE_VARIABLE, images.PULL_VARIABLE, images.NO_CACHE_VARIABLE):
        monkeypatch.delenv(variable, raising=False)


def test_one_target_per_stage_loaded_into_the_engine_with_its_tags():
    baked = definition()
    assert baked["group"]["default"]["targets"] == ["production"]
    target = baked["target"]["production"]
    assert target["target"] == "production"
    assert target["tags"] == TAGS["production"]
    assert target["output"] == ["type=docker"]
    # bake reads the Dockerfile path relative to the context
    assert target["dockerfile"] == "docker/Dockerfile"
    assert target["context"] == str(CONTEXT)


def test_base_images_come_from_the_selected_source():
    args = definition()["target"]["production"]["args"]
    assert args["PYTHON_IMAGE"].startswith("dashtam-airgap/")
    assert args["UV_IMAGE"].startswith("dashtam-airgap/")


def test_the_ca_bundle_is_a_secret_by_path_never_an_argument(monkeypatch, tmp_path):
    bundle = tmp_path / "bundle.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    target = definition()["target"]["production"]
    assert target["secret"] == [f"id={CA_BUNDLE_ID},src={bundle}"]
    assert "BEGIN CERTIFICATE" not in str(target["args"])


def test_gha_cache_has_one_scope_per_stage(monkeypatch):
    monkeypatch.setenv(images.CACHE_VARIABLE, "gha")
    target = definition()["target"]["production"]
    assert target["cache-from"] == ["type=gha,scope=production"]
    assert target["cache-to"] == ["type=gha,mode=max,scope=production"]
    monkeypatch.delenv(images.CACHE_VARIABLE)
    assert "cache-from" not in definition()["target"]["production"]


def test_weekly_rebuild_pulls_and_skips_the_cache(monkeypatch):
    assert "pull" not in definition()["target"]["production"]
    monkeypatch.setenv(images.PULL_VARIABLE, "1")
    monkeypatch.setenv(images.NO_CACHE_VARIABLE, "true")
    target = definition()["target"]["production"]
    assert target["pull"] is True
    assert target["no-cache"] is True


def test_stages_others_build_on_are_baked_after_them(tmp_path):
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text(
        "ARG BASE=python\n"
        "FROM ${BASE} AS base\n"
        "FROM base AS development\n"
        "FROM base AS builder\n"
        "FROM ${BASE} AS root\n"
        "RUN --mount=type=bind,from=builder,source=/app,target=/app true\n"
        "FROM scratch AS production\n"
        "COPY --from=root / /\n"
    )
    assert images.stage_ancestors(dockerfile)["production"] == {"root", "builder", "base"}
    rounds = images.bake_rounds(["base", "development", "builder", "production"], dockerfile)
    assert rounds == [["development", "production"], ["base", "builder"]]
    # One stage, or stages that do not build on each other: one round.
    assert images.bake_rounds(["production"], dockerfile) == [["production"]]
    assert images.bake_rounds(["development", "production"], dockerfile) == [
        ["development", "production"]
    ]


def test_the_projects_dockerfile_bakes_its_leaves_first():
    from pipeline.environments import DOCKERFILE, STAGES

    assert images.bake_rounds(STAGES, DOCKERFILE) == [
        ["development", "production", "callback"],
        ["base", "builder"],
    ]


# A build with nothing to do: the image a stage's tag names carries its inputs' digest.
BUILT = {
    "Id": "sha256:" + "a" * 64,
    "Size": 1,
    "RepoTags": ["dashtam/production:latest"],
    "RepoDigests": [],
    "Config": {"User": "appuser", "Labels": {images.build_inputs.INPUTS_LABEL: "sha256:in"}},
}
RUN_TAGS = {"production": ["dashtam/production:latest", "dashtam/production:verify-1"]}


def engine_holding(monkeypatch: pytest.MonkeyPatch, found: dict) -> list[tuple[str, str]]:
    tagged: list[tuple[str, str]] = []
    monkeypatch.setattr(images.engine, "inspect_images", lambda references: found)
    monkeypatch.setattr(images.engine, "tag_image", lambda *pair: tagged.append(pair))
    return tagged


def test_an_image_carrying_the_inputs_digest_is_the_build(monkeypatch):
    tagged = engine_holding(monkeypatch, {"dashtam/production:latest": BUILT})
    answers = images.images_built_from({"production": "sha256:in"}, RUN_TAGS)
    assert answers["production"].image_id == BUILT["Id"]
    assert tagged == [(BUILT["Id"], "dashtam/production:verify-1")]


@pytest.mark.parametrize(
    "found",
    [{}, {"dashtam/production:latest": {**BUILT, "Config": {"User": "appuser"}}}],
    ids=["no image", "no label"],
)
def test_otherwise_the_bake_runs(monkeypatch, found):
    tagged = engine_holding(monkeypatch, found)
    assert images.images_built_from({"production": "sha256:in"}, RUN_TAGS) is None
    assert images.images_built_from({"production": "sha256:other"}, RUN_TAGS) is None
    assert not tagged


def test_a_baked_image_is_labelled_with_its_inputs_digest():
    baked = images.labelled(definition(), {"production": "sha256:in"})
    labels = baked["target"]["production"]["labels"]
    assert labels[images.build_inputs.INPUTS_LABEL] == "sha256:in"
    assert "org.opencontainers.image.revision" in labels
