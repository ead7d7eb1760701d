"""The host side of reading containers (pipeline/inspection.py), where it needs no Docker:
the `docker run` of the helper, the inspector image's name, reading a run's facts, and which
commands the inspector runs without a shell.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pipeline import engine, image_sources, inspection, inspector

CONTAINER = "9c1e5c0b3a7f"
IMAGE = "dashtam/inspector:0123456789ab"


def command() -> list[str]:
    return inspection.helper_command(CONTAINER, IMAGE)


def option(words: list[str], name: str) -> list[str]:
    """Every value given to `name=` in a command line."""
    return [word.split("=", 1)[1] for word in words if word.startswith(f"{name}=")]


def test_the_helper_joins_the_container_s_pid_and_network_namespaces():
    words = command()
    found = (option(words, "--pid"), option(words, "--network"))
    expected = ([f"container:{CONTAINER}"], [f"container:{CONTAINER}"])
    assert found == expected, f"expected --pid and --network container:<id>, found {found}"


def test_the_helper_drops_every_capability_but_the_reading_ones_and_is_limited():
    words = command()
    assert option(words, "--cap-drop") == ["ALL"], f"expected --cap-drop=ALL, found {words}"
    added = sorted(option(words, "--cap-add"))
    expected = sorted(["SYS_PTRACE", "DAC_READ_SEARCH", "SYS_CHROOT", "SETUID", "SETGID"])
    assert added == expected, f"expected only {expected} added, found {added}"
    for flag in ("--read-only", "--rm", "--interactive", "--security-opt=no-new-privileges"):
        assert flag in words, f"expected {flag} in the helper's docker run, found {words}"
    assert option(words, "--memory") and option(words, "--pids-limit"), (
        f"expected memory and pids limits, found {words}"
    )
    assert not any(word.startswith("--privileged") for word in words), f"privileged: {words}"


def test_the_image_ends_the_command():
    words = command()
    assert words[:2] == ["docker", "run"], f"expected a docker run, found {words[:2]}"
    assert words[-1] == IMAGE, f"expected the image last, found {words[-1]}"


@pytest.fixture
def inspector_inputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    """The inspector's Dockerfile, its program and the Python image's ID, all changeable."""
    inputs = {
        "dockerfile": tmp_path / "Dockerfile",
        "source": tmp_path / "inspector.py",
        "python_id": "sha256:1111",
    }
    inputs["dockerfile"].write_text("FROM ${PYTHON_IMAGE}\nCOPY pipeline/inspector.py /\n")
    inputs["source"].write_text("print('facts')\n")
    monkeypatch.setattr(inspection, "INSPECTOR_SOURCES", (inputs["dockerfile"], inputs["source"]))
    monkeypatch.setattr(
        image_sources, "image_references", lambda *_: {"PYTHON_IMAGE": "python:3.13-slim"}
    )
    monkeypatch.setattr(engine, "image_id", lambda reference: inputs["python_id"])
    return inputs


def test_the_inspector_image_is_named_after_a_digest_of_what_it_is_built_from(
    inspector_inputs,
):
    name = inspection.inspector_image()
    assert re.fullmatch(r"dashtam/inspector:[0-9a-f]{12}", name), (
        f"expected dashtam/inspector:<12 hex digits>, found {name}"
    )
    assert inspection.inspector_image() == name, "expected the same name for the same inputs"


@pytest.mark.parametrize(
    "change",
    ["source", "dockerfile", "python_id"],
    ids=[
        "a change of the program makes a new image",
        "a change of its Dockerfile makes a new image",
        "a new Python image makes a new image",
    ],
)
def test_a_change_of_an_input_changes_the_name(inspector_inputs, change):
    before = inspection.inspector_image()
    if change == "python_id":
        inspector_inputs["python_id"] = "sha256:2222"
    else:
        path = inspector_inputs[change]
        path.write_text(path.read_text() + "# changed\n")
    after = inspection.inspector_image()
    assert after != before, f"expected a new name after a change of {change}, found {after} again"


def test_without_a_local_python_image_its_reference_counts(inspector_inputs, monkeypatch):
    monkeypatch.setattr(engine, "image_id", lambda reference: None)
    first = inspection.inspector_image()
    monkeypatch.setattr(image_sources, "image_references", lambda *_: {"PYTHON_IMAGE": "other"})
    second = inspection.inspector_image()
    assert first != second, f"expected the reference in the digest, found {first} for both"


def test_read_facts_reads_a_run_s_facts_or_gives_nothing(tmp_path):
    facts = tmp_path / "facts.json"
    facts.write_text('{"app": {"processes": []}}')
    assert inspection.read_facts(facts) == {"app": {"processes": []}}, "expected the facts read"
    facts.write_text("{not json")
    for path in (facts, tmp_path / "missing.json"):
        found = inspection.read_facts(path)
        assert found == {}, f"{path.name}: expected no facts, found {found}"


TOOLS = frozenset({"id", "ps", "stat", "test", "ss"})


@pytest.mark.parametrize(
    "command",
    ["id -u appuser", "ps -ww -p 1 -o lstart,ruid", "stat -Lc %U /app", "test -e /bin/busybox"],
)
def test_one_of_our_tools_with_plain_words_runs_without_the_shell(command):
    argv, program = inspector.argv_of(command, TOOLS)
    assert argv == command.split(), f"expected {command!r} as its words, found {argv}"
    assert program == f"{inspector.TOOLS_INSIDE_TARGET}/{argv[0]}", (
        f"expected our own {argv[0]}, found {program}"
    )


@pytest.mark.parametrize(
    "command",
    [
        "getent group appuser | cut -d':' -f3",  # a pipe, quoting
        "command -v ss",  # a builtin, no tool of ours
        "test -e /app/*.py",  # a glob
        "P=secret id -u",  # an assignment
        "id -u $USER",  # an expansion
        "ps -A > /tmp/x",  # a redirection
        "uname -s",  # a program that is not one of the tools
    ],
)
def test_anything_else_goes_through_the_shell(command):
    argv, program = inspector.argv_of(command, TOOLS)
    assert argv == ["sh", "-c", command], f"expected {command!r} run by sh, found {argv}"
    assert program == f"{inspector.TOOLS_INSIDE_TARGET}/sh", f"expected our sh, found {program}"
