"""What a stage's image is built from, digested (no Docker needed): each input a bake reads
changes the digest, what it does not read leaves it alone, and what cannot be read for sure
gives no digest (the bake runs)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pipeline import build_inputs
from pipeline.environments import ROOT

DOCKERIGNORE = """\
# the allow-list form the project uses
*
!pyproject.toml
!src/
**/__pycache__
**/*.pyc
"""
DOCKERFILE = """\
ARG PYTHON_IMAGE=python:3.13-slim
FROM ${PYTHON_IMAGE} AS base
FROM base AS app
COPY src ./src
"""
BASE_IDS = {"dashtam-airgap/python:3.13-debian13": "sha256:" + "1" * 64}


@pytest.fixture
def context(tmp_path: Path) -> Path:
    (tmp_path / "docker").mkdir()
    (tmp_path / "docker" / "Dockerfile").write_text(DOCKERFILE)
    (tmp_path / "docker" / "Dockerfile.dockerignore").write_text(DOCKERIGNORE)
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "main.py").write_text("print('hello')\n")
    (tmp_path / "notes.txt").write_text("not in the context\n")
    return tmp_path


def definition(**changes: object) -> dict:
    target = {
        "context": "/ctx",
        "dockerfile": "docker/Dockerfile",
        "args": {"PYTHON_IMAGE": "dashtam-airgap/python:3.13-debian13"},
        "labels": {"org.opencontainers.image.revision": "abc"},
        "output": ["type=docker"],
        "target": "app",
        "tags": ["dashtam/app:latest"],
        "secret": ["id=ca_bundle,src=/tmp/ca.pem"],
        "cache-from": ["type=registry,ref=127.0.0.1:5000/dashtam/app:cache"],
    }
    return {"target": {"app": {**target, **changes}}}


def digest(context: Path, target: dict | None = None, **options: object) -> str | None:
    digests = build_inputs.stage_digests(
        target or definition(),
        context=context,
        dockerfile=context / "docker" / "Dockerfile",
        base_ids=options.get("base_ids", BASE_IDS),
        engine=options.get("engine", "26.1.5"),
    )
    return digests["app"] if digests else None


def test_the_context_is_what_the_allow_list_lets_in(context):
    (context / "src" / "__pycache__").mkdir()
    (context / "src" / "__pycache__" / "main.cpython-313.pyc").write_bytes(b"\0")
    ignore = build_inputs.dockerignore_for(context, context / "docker" / "Dockerfile")
    entries = build_inputs.context_entries(context, ignore)
    assert [path.relative_to(context).as_posix() for path in entries] == [
        "pyproject.toml",
        "src",
        "src/main.py",
    ]


def test_the_projects_own_context_is_read():
    ignore = build_inputs.dockerignore_for(ROOT, ROOT / "docker" / "Dockerfile")
    entries = build_inputs.context_entries(ROOT, ignore)
    names = {path.relative_to(ROOT).as_posix() for path in entries}
    assert {"uv.lock", "src/main.py", "alembic.ini", "docker/runtime-check.py"} <= names
    assert not {name for name in names if name.startswith(("tests/", "env/", ".git/"))}
    assert not {name for name in names if "__pycache__" in name}


@pytest.mark.parametrize(
    "ignore",
    [
        "!src/\n",  # not an allow-list: everything else would be in the context
        "*\n**/__pycache__\n!src/\n",  # an exception after an exclusion
        "*\n!src/*.py\n",  # a pattern, not a path
        "*\n!src/\nsrc/secret.txt\n",  # an exclusion of another form
    ],
)
def test_a_dockerignore_of_another_shape_gives_no_digest(context, ignore):
    (context / "docker" / "Dockerfile.dockerignore").write_text(ignore)
    assert digest(context) is None


def test_no_dockerignore_gives_no_digest(context):
    (context / "docker" / "Dockerfile.dockerignore").unlink()
    assert digest(context) is None


def test_the_contexts_own_dockerignore_applies_when_the_dockerfile_has_none(context):
    shutil.move(context / "docker" / "Dockerfile.dockerignore", context / ".dockerignore")
    assert digest(context) is not None


def test_equal_inputs_give_equal_digests(context):
    assert digest(context) == digest(context)
    (context / "src" / "main.py").touch()  # a new modification time: not an input
    assert digest(context) == digest(context)


# Each input a bake reads, changed: the digest must change (a stale image would pass).
def _edit_source(context: Path) -> None:
    (context / "src" / "main.py").write_text("print('changed')\n")


def _add_source(context: Path) -> None:
    (context / "src" / "new.py").write_text("")


def _add_folder(context: Path) -> None:
    (context / "src" / "empty").mkdir()


def _make_executable(context: Path) -> None:
    (context / "src" / "main.py").chmod(0o755)


def _edit_dockerfile(context: Path) -> None:
    (context / "docker" / "Dockerfile").write_text(DOCKERFILE + "USER appuser\n")


def _allow_more(context: Path) -> None:
    (context / "docker" / "Dockerfile.dockerignore").write_text(DOCKERIGNORE + "!notes.txt\n")


INPUT_CHANGES = [_edit_source, _add_source, _add_folder, _make_executable, _edit_dockerfile]


@pytest.mark.parametrize("change", [*INPUT_CHANGES, _allow_more], ids=lambda c: c.__name__)
def test_a_changed_input_changes_the_digest(context, change):
    before = digest(context)
    change(context)
    assert digest(context) != before


def test_files_outside_the_context_are_not_inputs(context):
    before = digest(context)
    (context / "notes.txt").write_text("edited\n")
    (context / "src" / "__pycache__").mkdir()
    (context / "src" / "__pycache__" / "x.pyc").write_bytes(b"\1")
    assert digest(context) == before


@pytest.mark.parametrize(
    "changed",
    [
        definition(args={"PYTHON_IMAGE": "python:3.13-slim"}),
        definition(labels={"org.opencontainers.image.revision": "abc-dirty"}),
        definition(target="other"),
    ],
    ids=["build argument", "label", "target"],
)
def test_the_bake_targets_inputs_change_the_digest(context, changed):
    assert digest(context, changed) != digest(context)


def test_tags_secrets_cache_sources_and_the_digests_label_are_not_inputs(context):
    labels = {"org.opencontainers.image.revision": "abc", build_inputs.INPUTS_LABEL: "sha256:x"}
    same = definition(
        tags=["dashtam/app:verify-1234"], secret=[], labels=labels, **{"cache-from": []}
    )
    assert digest(context, same) == digest(context)


def test_the_base_images_id_and_the_engine_are_inputs(context):
    rebuilt_base = {name: "sha256:" + "2" * 64 for name in BASE_IDS}
    assert digest(context, base_ids=rebuilt_base) != digest(context)
    assert digest(context, engine="27.0.0") != digest(context)


def test_base_references_fill_in_arguments_and_defaults():
    dockerfile = DOCKERFILE + "FROM scratch AS runtime\nCOPY --from=ghcr.io/x/tool:1 /t /t\n"
    assert build_inputs.base_references(dockerfile, {}) == [
        "ghcr.io/x/tool:1",
        "python:3.13-slim",
    ]
    assert build_inputs.base_references(dockerfile, {"PYTHON_IMAGE": "local/python:1"}) == [
        "ghcr.io/x/tool:1",
        "local/python:1",
    ]
    assert build_inputs.base_references("FROM ${UNSET} AS x\n", {}) is None


def test_the_projects_dockerfile_builds_from_the_uv_and_python_images():
    from pipeline.image_sources import image_references

    arguments = image_references("airgap")
    references = build_inputs.base_references(
        (ROOT / "docker" / "Dockerfile").read_text(), arguments
    )
    assert references == sorted({arguments["UV_IMAGE"], arguments["PYTHON_IMAGE"]})
