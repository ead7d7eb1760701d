"""The GitHub workflows: their matrices come from nox, and they keep the hardening zizmor asks for.

No Docker here. The matrix tests run the real noxfile (`python -m nox --list --json`) and
the same `pipeline.workflow_matrix` code the `sessions` job runs; the hardening tests read
the workflow files as YAML (and as text, for the `# vX.Y.Z` comments YAML drops).
"""

from __future__ import annotations

import copy
import functools
import io
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipeline.environments import ENVIRONMENTS, STAGES
from pipeline.errors import PipelineError
from pipeline.images import images_that_run
from pipeline.workflow_matrix import (
    MATRIX_SESSIONS,
    github_output_lines,
    main,
    matrix_from_nox_sessions,
)

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW_DIRECTORY = ROOT / ".github" / "workflows"
WORKFLOW_PATHS = sorted(WORKFLOW_DIRECTORY.glob("*.yml"))
NOXFILE = ROOT / "noxfile.py"

FULL_COMMIT_SHA = re.compile(r"[0-9a-f]{40}")
VERSION_COMMENT = re.compile(r"v\d+(\.\d+){0,2}")
# `uses: owner/repo[/path]@ref  # comment` on one line, as a step or a reusable-workflow job.
USES_LINE = re.compile(r"^\s*(?:-\s+)?uses:\s*(?P<reference>\S+)(?:\s+#\s*(?P<comment>.*\S))?\s*$")
# The session names after `nox ... --sessions` (or `-s`), up to a pipe or the end of the line.
# (A `)` ends a `$(nox ...)` substitution.)
NOX_SESSIONS_ARGUMENT = re.compile(r"\bnox\b[^|\n]*?\s(?:--sessions|-s)\s+(?P<names>[^|)\n]+)")


def load_workflow(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


WORKFLOWS = {path.name: load_workflow(path) for path in WORKFLOW_PATHS}


def triggers(workflow: dict) -> dict:
    """The `on:` block; PyYAML reads the bare key `on` as the boolean True (YAML 1.1)."""
    return workflow.get("on", workflow.get(True)) or {}


def steps(workflow: dict):
    """(job id, step) for every step of every job."""
    for job_id, job in workflow["jobs"].items():
        for step in job.get("steps", []):
            yield job_id, step


def run_scripts(workflow: dict):
    """(job id, script) for every `run:` step."""
    for job_id, step in steps(workflow):
        if "run" in step:
            yield job_id, step["run"]


def literal_session_names(workflow: dict) -> list[str]:
    """Session names typed into the workflow's nox commands (the matrix's "$SESSION" aside)."""
    names: list[str] = []
    for _job_id, script in run_scripts(workflow):
        for match in NOX_SESSIONS_ARGUMENT.finditer(script):
            for word in shlex.split(match["names"]):
                if word.startswith(("-", "$")):
                    break
                names.append(word)
    return names


@functools.cache
def nox_list(*session_names: str) -> list[dict]:
    """`nox --list --json --sessions ...` on the repo's noxfile; fails the test if nox does."""
    if not NOXFILE.exists():
        pytest.fail(f"{NOXFILE.relative_to(ROOT)} is missing; the workflows run its sessions.")
    result = subprocess.run(
        [sys.executable, "-m", "nox", "--list", "--json", "--sessions", *session_names],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        # Load the noxfile in this interpreter; never build a PEP 723 script environment.
        env={**os.environ, "NOX_SCRIPT_MODE": "none"},
    )
    if result.returncode != 0:
        pytest.fail(
            f"nox --list --sessions {' '.join(session_names)}: exit {result.returncode}, "
            f"expected 0; nox said: {result.stderr.strip()[-400:]}"
        )
    return json.loads(result.stdout)


def job_ids_with_matrix(workflow: dict) -> dict[str, str]:
    """Matrix session name (build/verify) -> the job id that fans out over it."""
    return {
        job_id: name
        for job_id, job in workflow["jobs"].items()
        for name in MATRIX_SESSIONS
        if job.get("strategy", {}).get("matrix", {}).get("session")
        == f"${{{{ fromJSON(needs.sessions.outputs.{name}) }}}}"
    }


def pinned_uses() -> list[tuple[str, int, str, str | None]]:
    """(workflow, line number, reference, comment) for every `uses:` line of every workflow."""
    found = []
    for path in WORKFLOW_PATHS:
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            match = USES_LINE.match(line)
            if match:
                found.append((path.name, number, match["reference"], match["comment"]))
    return found


USES = pinned_uses()


# --- the matrix module, on nox output of known shape --------------------------------------


def nox_entry(name: str, parameter: str | None = None) -> dict:
    session = f"{name}({parameter})" if parameter else name
    return {
        "session": session,
        "name": name,
        "description": "",
        "python": False,
        "tags": [],
        "call_spec": {"value": parameter} if parameter else {},
    }


def test_matrix_groups_sessions_by_name_in_noxfile_order():
    listing = [
        nox_entry("lint"),
        nox_entry("build", "base"),
        nox_entry("verify", "ci"),
        nox_entry("build", "production"),
        nox_entry("verify", "dev"),
    ]
    assert matrix_from_nox_sessions(json.dumps(listing)) == {
        "build": ["build(base)", "build(production)"],
        "verify": ["verify(ci)", "verify(dev)"],
    }


@pytest.mark.parametrize("missing", MATRIX_SESSIONS)
def test_matrix_refuses_a_listing_without_sessions_for(missing):
    present = [name for name in MATRIX_SESSIONS if name != missing]
    listing = [nox_entry(name, "x") for name in present]
    with pytest.raises(PipelineError, match=f"no `{missing}` sessions"):
        matrix_from_nox_sessions(json.dumps(listing))


@pytest.mark.parametrize("output", ["", "nox > Error while collecting sessions.", '{"a": 1}'])
def test_matrix_refuses_output_that_is_not_a_session_list(output):
    with pytest.raises(PipelineError, match="nox --list --json"):
        matrix_from_nox_sessions(output)


def test_github_output_lines_are_compact_json_for_fromjson():
    lines = github_output_lines({"build": ["build(base)"], "verify": ["verify(ci)", "verify(dev)"]})
    assert lines == ['build=["build(base)"]', 'verify=["verify(ci)","verify(dev)"]']


def test_main_reads_stdin_and_prints_step_outputs(monkeypatch, capsys):
    listing = [nox_entry("build", "base"), nox_entry("verify", "ci")]
    monkeypatch.setattr(sys, "stdin", io.StringIO(json.dumps(listing)))
    assert main() == 0
    assert capsys.readouterr().out.splitlines() == [
        'build=["build(base)"]',
        'verify=["verify(ci)"]',
    ]


def test_main_says_what_is_wrong_in_one_line_and_exits_1(monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdin", io.StringIO("not json"))
    assert main() == 1
    error_lines = capsys.readouterr().err.strip().splitlines()
    assert len(error_lines) == 1 and error_lines[0].startswith("error: "), error_lines


# --- the matrix, on the real noxfile ------------------------------------------------------


def test_there_are_workflows_to_check():
    assert {"pipeline.yml", "weekly.yml"} <= set(WORKFLOWS), sorted(WORKFLOWS)


@pytest.mark.parametrize("workflow_name", sorted(WORKFLOWS))
def test_sessions_job_pipes_nox_listing_into_the_matrix_module(workflow_name):
    job = WORKFLOWS[workflow_name]["jobs"].get("sessions")
    assert job, (
        f"{workflow_name}: job `sessions` expected, "
        f"found jobs {sorted(WORKFLOWS[workflow_name]['jobs'])}"
    )
    matrix_steps = [step for step in job["steps"] if step.get("id") == "matrix"]
    assert len(matrix_steps) == 1, (
        f"{workflow_name}: sessions job: one step with id `matrix` expected"
    )
    script = matrix_steps[0]["run"]
    assert "python -m pipeline.workflow_matrix" in script, (
        f"{workflow_name}: sessions job: expected `python -m pipeline.workflow_matrix`, "
        f"found {script!r}"
    )
    assert '"$GITHUB_OUTPUT"' in script, (
        f"{workflow_name}: sessions job: matrix not written to $GITHUB_OUTPUT"
    )
    listed = literal_session_names({"jobs": {"sessions": {"steps": matrix_steps}}})
    assert tuple(listed) == MATRIX_SESSIONS, (
        f"{workflow_name}: sessions job: nox should list {MATRIX_SESSIONS}, found {listed}"
    )
    for name in MATRIX_SESSIONS:
        assert job["outputs"].get(name) == f"${{{{ steps.matrix.outputs.{name} }}}}", (
            f"{workflow_name}: sessions job: output `{name}` expected from steps.matrix, "
            f"found {job['outputs'].get(name)!r}"
        )


@pytest.mark.parametrize("workflow_name", sorted(WORKFLOWS))
def test_build_and_verify_jobs_fan_out_over_the_sessions_job_outputs(workflow_name):
    workflow = WORKFLOWS[workflow_name]
    fan_outs = job_ids_with_matrix(workflow)
    assert sorted(fan_outs.values()) == sorted(MATRIX_SESSIONS), (
        f"{workflow_name}: one job per matrix {MATRIX_SESSIONS} expected, found {fan_outs}"
    )
    for job_id in fan_outs:
        needs = workflow["jobs"][job_id].get("needs")
        needs = [needs] if isinstance(needs, str) else needs or []
        assert "sessions" in needs, (
            f"{workflow_name}: job {job_id}: needs `sessions`, found {needs}"
        )
    verify_job = next(job_id for job_id, name in fan_outs.items() if name == "verify")
    build_job = next(job_id for job_id, name in fan_outs.items() if name == "build")
    assert build_job in workflow["jobs"][verify_job]["needs"], (
        f"{workflow_name}: job {verify_job}: needs `{build_job}` (verify runs on built images)"
    )


def test_matrix_from_the_real_noxfile_has_a_build_session_per_stage():
    matrix = matrix_from_nox_sessions(json.dumps(nox_list(*MATRIX_SESSIONS)))
    expected = {f"build({stage})" for stage in STAGES}
    found = set(matrix["build"])
    assert found == expected, (
        f"build matrix: missing {sorted(expected - found)}, unknown {sorted(found - expected)}"
    )


def test_matrix_from_the_real_noxfile_has_a_verify_session_per_environment():
    matrix = matrix_from_nox_sessions(json.dumps(nox_list(*MATRIX_SESSIONS)))
    expected = {f"verify({name})" for name in ENVIRONMENTS}
    found = set(matrix["verify"])
    assert found == expected, (
        f"verify matrix: missing {sorted(expected - found)}, unknown {sorted(found - expected)}"
    )


@pytest.mark.parametrize(
    ("workflow_name", "session_name"),
    [
        (name, session)
        for name, workflow in WORKFLOWS.items()
        for session in literal_session_names(workflow)
    ],
)
def test_every_session_a_workflow_names_is_known_to_nox(workflow_name, session_name):
    listed = {entry["session"] for entry in nox_list(session_name)} | {
        entry["name"] for entry in nox_list(session_name)
    }
    assert session_name in listed, (
        f"{workflow_name}: `nox --sessions {session_name}` lists {sorted(listed)}"
    )


# --- pinning ------------------------------------------------------------------------------


def test_every_uses_line_is_seen_by_the_pin_check():
    """Guards the line regex: a `uses:` YAML sees but the regex misses would go unchecked."""
    for name, workflow in WORKFLOWS.items():
        in_yaml = sum("uses" in step for _job_id, step in steps(workflow))
        in_yaml += sum("uses" in job for job in workflow["jobs"].values())
        in_text = sum(1 for workflow_name, *_rest in USES if workflow_name == name)
        assert in_text == in_yaml, f"{name}: {in_yaml} `uses:` in YAML, {in_text} found by line"


@pytest.mark.parametrize(
    ("reference", "comment"),
    [
        pytest.param(reference, comment, id=f"{name}:{line}-{reference.split('@')[0]}")
        for name, line, reference, comment in USES
        # A local action or workflow (./…) is pinned by this repository's own commit.
        if not reference.startswith("./")
    ],
)
def test_third_party_action_is_pinned_by_full_sha_with_version_comment(reference, comment):
    action, _, ref = reference.partition("@")
    assert FULL_COMMIT_SHA.fullmatch(ref), (
        f"{action}: ref expected a 40-hex commit SHA, found {ref!r}"
    )
    assert comment and VERSION_COMMENT.fullmatch(comment), (
        f"{action}@{ref[:12]}: version comment expected like `# v1.2.3`, found {comment!r}"
    )


def test_each_action_is_pinned_to_one_sha_across_workflows():
    shas: dict[str, set[str]] = {}
    for _name, _line, reference, _comment in USES:
        action, _, ref = reference.partition("@")
        shas.setdefault(action, set()).add(ref)
    disagreeing = {action: sorted(refs) for action, refs in shas.items() if len(refs) > 1}
    assert not disagreeing, f"actions pinned to more than one SHA: {disagreeing}"


# --- hardening ----------------------------------------------------------------------------


@pytest.mark.parametrize("workflow_name", sorted(WORKFLOWS))
def test_workflow_token_can_only_read_contents(workflow_name):
    workflow = WORKFLOWS[workflow_name]
    assert workflow.get("permissions") == {"contents": "read"}, (
        f"{workflow_name}: top-level permissions expected {{contents: read}}, "
        f"found {workflow.get('permissions')!r}"
    )
    for job_id, job in workflow["jobs"].items():
        if (workflow_name, job_id) == PUBLISHING_JOB:
            continue
        if (workflow_name, job_id) == CODE_SCANNING_JOB:
            assert job.get("permissions") == CODE_SCANNING_PERMISSIONS, (
                f"{workflow_name}: job {job_id}: permissions expected "
                f"{CODE_SCANNING_PERMISSIONS}, found {job.get('permissions')!r}"
            )
            continue
        granted = job.get("permissions", {})
        assert granted in ({}, "read-all") or set(granted.values()) <= {"read", "none"}, (
            f"{workflow_name}: job {job_id}: permissions expected read-only, found {granted!r}"
        )


# The job that uploads the policy's SARIF: it may write security events, nothing else.
CODE_SCANNING_JOB = ("pipeline.yml", "code-scanning")
CODE_SCANNING_PERMISSIONS = {"contents": "read", "security-events": "write"}


def test_code_scanning_gets_the_policy_as_sarif_from_a_pinned_upload():
    workflow_name, job_id = CODE_SCANNING_JOB
    job = WORKFLOWS[workflow_name]["jobs"][job_id]
    scripts = " ".join(step.get("run", "") for step in job["steps"])
    assert "python -m pipeline.policy" in scripts and "--format sarif > policy.sarif" in scripts, (
        f"{workflow_name}: job {job_id}: expected the policy written as SARIF, found {scripts!r}"
    )
    uploads = step_using(job, "github/codeql-action/upload-sarif")
    assert len(uploads) == 1 and uploads[0]["with"]["sarif_file"] == "policy.sarif", uploads
    assert uploads[0].get("if") == "always()", "the upload must run when the policy finds something"
    assert "head.repo.full_name == github.repository" in job.get("if", ""), (
        f"{workflow_name}: job {job_id}: a fork's pull request has no token to upload with"
    )


# The one job whose token may write: packages, and the provenance it signs (policy, #16).
PUBLISHING_JOB = ("pipeline.yml", "publish")
PUBLISHING_PERMISSIONS = {
    "contents": "read",
    "packages": "write",
    "id-token": "write",
    "attestations": "write",
}


def test_only_main_publishes_and_only_after_every_build_and_verify_passed():
    workflow_name, job_id = PUBLISHING_JOB
    job = WORKFLOWS[workflow_name]["jobs"][job_id]
    assert job.get("permissions") == PUBLISHING_PERMISSIONS, (
        f"{workflow_name}: job {job_id}: permissions expected {PUBLISHING_PERMISSIONS}, "
        f"found {job.get('permissions')!r}"
    )
    condition = "github.event_name == 'push' && github.ref == 'refs/heads/main'"
    assert job.get("if") == condition, (
        f"{workflow_name}: job {job_id}: if expected {condition!r}, found {job.get('if')!r}"
    )
    assert {"build", "verify"} <= set(job.get("needs", [])), (
        f"{workflow_name}: job {job_id}: needs expected build and verify, found {job.get('needs')}"
    )
    scripts = " ".join(script for name, script in run_scripts({"jobs": {job_id: job}}))
    assert "nox --sessions publish -- --to" in scripts, (
        f"{workflow_name}: job {job_id}: expected a `nox --sessions publish -- --to` step"
    )
    attested = [
        step for step in job["steps"] if step.get("uses", "").startswith("actions/attest-build-")
    ]
    assert len(attested) == 3, (
        f"{workflow_name}: job {job_id}: expected a provenance attestation per published "
        f"image (3), found {len(attested)}"
    )
    sbom_attested = [
        step
        for step in job["steps"]
        if step.get("uses", "").startswith(("actions/attest@", "actions/attest-sbom@"))
        and "sbom-path" in step.get("with", {})
    ]
    assert len(sbom_attested) == 3, (
        f"{workflow_name}: job {job_id}: expected an SBOM attestation per published "
        f"image (3), found {len(sbom_attested)}"
    )
    # What publish pushes (pipeline.publishing), each with reports/sbom/<stage>.json.
    expected_sboms = {f"reports/sbom/{stage}.json" for stage in images_that_run()}
    found_sboms = {step["with"]["sbom-path"] for step in sbom_attested}
    assert found_sboms == expected_sboms, (
        f"{workflow_name}: job {job_id}: sbom-path expected {sorted(expected_sboms)}, "
        f"found {sorted(found_sboms)}"
    )
    for step in sbom_attested:
        stage = Path(step["with"]["sbom-path"]).stem
        subject = {
            key: f"${{{{ steps.published.outputs.{stage}-{output} }}}}"
            for key, output in (("subject-name", "repository"), ("subject-digest", "digest"))
        }
        found = {key: step["with"].get(key) for key in subject}
        assert found == subject, (
            f"{workflow_name}: job {job_id}: the {stage} SBOM must be attested for the "
            f"{stage} image: expected {subject}, found {found}"
        )


# A newer push to a pull request supersedes its run; a run on main (between its push to GHCR
# and its attestations) or a scheduled one is never cut off.
CANCEL_IN_PROGRESS = {
    "pipeline.yml": "${{ github.event_name == 'pull_request' }}",
    "weekly.yml": False,
}


@pytest.mark.parametrize("workflow_name", sorted(WORKFLOWS))
def test_only_a_pull_request_s_newer_run_cancels_the_older_one(workflow_name):
    concurrency = WORKFLOWS[workflow_name].get("concurrency")
    expected = {
        "group": "${{ github.workflow }}-${{ github.ref }}",
        "cancel-in-progress": CANCEL_IN_PROGRESS[workflow_name],
    }
    assert concurrency == expected, (
        f"{workflow_name}: concurrency expected {expected}, found {concurrency!r}"
    )


@pytest.mark.parametrize(
    ("workflow_name", "job_id"),
    [(name, job_id) for name, workflow in WORKFLOWS.items() for job_id in workflow["jobs"]],
)
def test_job_has_a_timeout_and_a_pinned_runner(workflow_name, job_id):
    job = WORKFLOWS[workflow_name]["jobs"][job_id]
    timeout = job.get("timeout-minutes")
    assert isinstance(timeout, int) and 0 < timeout <= 120, (
        f"{workflow_name}: job {job_id}: timeout-minutes expected 1..120, found {timeout!r}"
    )
    assert job.get("runs-on") == "ubuntu-24.04", (
        f"{workflow_name}: job {job_id}: runs-on expected ubuntu-24.04, "
        f"found {job.get('runs-on')!r}"
    )


def uses_the_sources(job: dict) -> bool:
    """A job that runs a script with the project's tools (uv, nox) reads the checkout."""
    return any(
        "uv run" in step.get("run", "") or "nox" in step.get("run", "")
        for step in job.get("steps", [])
    )


@pytest.mark.parametrize(
    ("workflow_name", "job_id"),
    [
        (name, job_id)
        for name, workflow in WORKFLOWS.items()
        for job_id, job in workflow["jobs"].items()
        if uses_the_sources(job)
    ],
)
def test_checkout_does_not_leave_the_token_in_git_config(workflow_name, job_id):
    checkouts = [
        step
        for step in WORKFLOWS[workflow_name]["jobs"][job_id].get("steps", [])
        if step.get("uses", "").startswith("actions/checkout@")
    ]
    assert checkouts, (
        f"{workflow_name}: job {job_id}: expected an actions/checkout step, found none"
    )
    for step in checkouts:
        found = step.get("with", {}).get("persist-credentials")
        assert found is False, (
            f"{workflow_name}: job {job_id}: checkout persist-credentials expected false, "
            f"found {found!r}"
        )


@pytest.mark.parametrize("workflow_name", sorted(WORKFLOWS))
def test_run_scripts_take_no_template_expansions(workflow_name):
    """`${{ }}` in a script is pasted in before bash parses it; values go through `env:`."""
    for job_id, script in run_scripts(WORKFLOWS[workflow_name]):
        assert "${{" not in script, (
            f"{workflow_name}: job {job_id}: run script expands a template: {script!r}"
        )


def matrix_job(workflow: dict, fan_out: str) -> dict:
    """The job that fans out over the sessions job's `build` or `verify` output."""
    job_id = next(
        job_id for job_id, name in job_ids_with_matrix(workflow).items() if name == fan_out
    )
    return workflow["jobs"][job_id]


def step_using(job: dict, action: str) -> list[dict]:
    return [step for step in job["steps"] if step.get("uses", "").split("@")[0] == action]


# buildx by version, and the BuildKit image it runs by digest: a moved tag changes nothing.
BUILDX_VERSION = re.compile(r"v\d+\.\d+\.\d+")
BUILDKIT_BY_DIGEST = re.compile(r"image=moby/buildkit:v\d+\.\d+\.\d+@sha256:[0-9a-f]{64}")


def build_job_problems(job: dict) -> list[str]:
    """What keeps a build job from handing on exactly what a pinned BuildKit built."""
    problems = []
    buildx = step_using(job, "docker/setup-buildx-action")
    options = buildx[0].get("with", {}) if len(buildx) == 1 else {}
    if not BUILDX_VERSION.fullmatch(str(options.get("version", ""))):
        problems.append(f"buildx version expected vX.Y.Z, found {options.get('version')!r}")
    if not BUILDKIT_BY_DIGEST.fullmatch(str(options.get("driver-opts", "")).strip()):
        problems.append(f"BuildKit image expected by digest, found {options.get('driver-opts')!r}")
    if not step_using(job, "crazy-max/ghaction-github-runtime"):
        problems.append("no ghaction-github-runtime step (the gha cache needs it)")
    if job.get("env", {}).get("DASHTAM_BUILDX_CACHE") != "gha":
        problems.append("DASHTAM_BUILDX_CACHE is not gha")
    scripts = [step.get("run", "") for step in job["steps"]]
    if "uv run --group pipeline nox --sessions save-images -- images" not in scripts:
        problems.append("no save-images step")
    uploaded = {
        step["with"].get("name"): step["with"].get("path")
        for step in step_using(job, "actions/upload-artifact")
    }
    if uploaded.get("images-${{ matrix.session }}") != "images/":
        problems.append(f"the images are not uploaded as images-<session>: {uploaded}")
    return problems


def verify_job_problems(job: dict) -> list[str]:
    """What lets a verify job boot anything but the images the build jobs handed on."""
    problems = []
    if step_using(job, "docker/setup-buildx-action"):
        problems.append("a buildx step: a verify job builds nothing")
    if "DASHTAM_BUILDX_CACHE" in job.get("env", {}):
        problems.append("a build cache: a verify job builds nothing")
    downloads = [step.get("with", {}) for step in step_using(job, "actions/download-artifact")]
    if {"pattern": "images-*", "merge-multiple": True, "path": "images/"} not in downloads:
        problems.append(f"the built images are not downloaded: {downloads}")
    scripts = [step.get("run", "") for step in job["steps"]]
    if 'uv run --group pipeline nox --sessions "$SESSION" -- --images images' not in scripts:
        problems.append(f"the session does not run on those images: {scripts}")
    uploads = step_using(job, "actions/upload-artifact")
    if not uploads or any(step.get("if") != "always()" for step in uploads):
        problems.append("the reports are not uploaded with `if: always()`")
    return problems


def publish_job_problems(job: dict) -> list[str]:
    """What lets the publish job push anything but the verified images, or run code logged in."""
    problems = []
    steps = job["steps"]
    scripts = " ".join(step.get("run", "") for step in steps)
    if re.search(r"nox --sessions \"?build", scripts):
        problems.append("a build session")
    if step_using(job, "docker/setup-buildx-action") or "DASHTAM_BUILDX_CACHE" in job.get(
        "env", {}
    ):
        problems.append("buildx or a build cache")
    logins = [i for i, step in enumerate(steps) if step.get("uses", "").startswith("docker/login")]
    loads = [i for i, step in enumerate(steps) if "load-images" in step.get("run", "")]
    if len(logins) != 1 or not loads or max(loads) > logins[0]:
        problems.append("the images are not loaded before the one login")
    else:
        after = [step.get("run", "") for step in steps[logins[0] + 1 :] if step.get("run")]
        if [
            script
            for script in after
            if "uv run" in script and "nox --sessions publish" not in script
        ]:
            problems.append(f"project code other than publish runs after the login: {after}")
    if '--tag "$GITHUB_SHA"' not in scripts:
        problems.append("the release tag is not the full commit SHA")
    return problems


@pytest.mark.parametrize("workflow_name", sorted(WORKFLOWS))
def test_build_jobs_use_pinned_buildx_and_hand_their_images_on(workflow_name):
    problems = build_job_problems(matrix_job(WORKFLOWS[workflow_name], "build"))
    assert not problems, f"{workflow_name}: build job: {problems}"


@pytest.mark.parametrize("workflow_name", sorted(WORKFLOWS))
def test_verify_jobs_boot_the_built_images_and_build_nothing(workflow_name):
    problems = verify_job_problems(matrix_job(WORKFLOWS[workflow_name], "verify"))
    assert not problems, f"{workflow_name}: verify job: {problems}"


def test_the_publish_job_builds_nothing_and_logs_in_last():
    workflow_name, job_id = PUBLISHING_JOB
    problems = publish_job_problems(WORKFLOWS[workflow_name]["jobs"][job_id])
    assert not problems, f"{workflow_name}: job {job_id}: {problems}"


def broken(job_of: str, change) -> dict:
    """A copy of a pipeline.yml job with one thing broken."""
    workflow = copy.deepcopy(WORKFLOWS["pipeline.yml"])
    job = workflow["jobs"]["publish"] if job_of == "publish" else matrix_job(workflow, job_of)
    change(job)
    return job


def drop_step(job: dict, predicate) -> None:
    job["steps"] = [step for step in job["steps"] if not predicate(step)]


def buildx_options(job: dict) -> dict:
    return step_using(job, "docker/setup-buildx-action")[0]["with"]


# Each check above, shown to fail on the breakage it exists to catch.
BROKEN_JOBS = [
    ("build", lambda job: buildx_options(job).pop("version"), build_job_problems, "buildx version"),
    (
        "build",
        lambda job: buildx_options(job).update({"driver-opts": "image=moby/buildkit:latest"}),
        build_job_problems,
        "BuildKit image expected by digest",
    ),
    (
        "build",
        lambda job: drop_step(job, lambda step: "save-images" in step.get("run", "")),
        build_job_problems,
        "no save-images step",
    ),
    (
        "verify",
        lambda job: job["steps"].insert(0, {"uses": "docker/setup-buildx-action@x"}),
        verify_job_problems,
        "a verify job builds nothing",
    ),
    (
        "verify",
        lambda job: [
            step.update({"run": 'uv run --group pipeline nox --sessions "$SESSION"'})
            for step in job["steps"]
            if "--images" in step.get("run", "")
        ],
        verify_job_problems,
        "does not run on those images",
    ),
    (
        "publish",
        lambda job: job["steps"].insert(
            3, {"run": "uv run --group pipeline nox --sessions build-all"}
        ),
        publish_job_problems,
        "a build session",
    ),
    (
        "publish",
        lambda job: job["steps"].insert(
            1,
            job["steps"].pop(
                next(i for i, s in enumerate(job["steps"]) if "login" in s.get("uses", ""))
            ),
        ),
        publish_job_problems,
        "loaded before the one login",
    ),
    (
        "publish",
        lambda job: [
            step.update({"run": step["run"].replace('"$GITHUB_SHA"', '"${GITHUB_SHA::7}"')})
            for step in job["steps"]
            if "publish -- --to" in step.get("run", "") and "--tag main" not in step["run"]
        ],
        publish_job_problems,
        "full commit SHA",
    ),
]


@pytest.mark.parametrize(("job_of", "change", "check", "said"), BROKEN_JOBS)
def test_each_workflow_check_catches_its_breakage(job_of, change, check, said):
    problems = check(broken(job_of, change))
    assert any(said in problem for problem in problems), problems


def test_pipeline_runs_on_push_to_main_pull_requests_and_by_hand():
    on = triggers(WORKFLOWS["pipeline.yml"])
    assert set(on) == {"push", "pull_request", "workflow_dispatch"}, (
        f"pipeline.yml: triggers found {sorted(on)}"
    )
    assert on["push"] == {"branches": ["main"]}, f"pipeline.yml: push filter found {on['push']!r}"


# Policy: the vulnerability audit runs on every pull request and every week, strictly: a
# service that does not answer fails the job rather than passing it without an audit.
STRICT_AUDIT = re.compile(r"\bnox\s+(?:--sessions|-s)\s+audit\s+--\s+--strict\b")


@pytest.mark.parametrize("workflow_name", ["pipeline.yml", "weekly.yml"])
def test_the_vulnerability_audit_runs_strictly(workflow_name):
    workflow = WORKFLOWS[workflow_name]
    scripts = [script for _job_id, script in run_scripts(workflow)]
    assert any(STRICT_AUDIT.search(script) for script in scripts), (
        f"{workflow_name}: expected a step running `nox --sessions audit -- --strict`, "
        f"found run scripts {scripts}"
    )


def test_weekly_rebuilds_from_fresh_base_images_without_cache():
    workflow = WORKFLOWS["weekly.yml"]
    on = triggers(workflow)
    assert set(on) == {"schedule", "workflow_dispatch"}, f"weekly.yml: triggers found {sorted(on)}"
    build_job = next(
        job_id for job_id, name in job_ids_with_matrix(workflow).items() if name == "build"
    )
    env = workflow["jobs"][build_job]["env"]
    for variable in ("DASHTAM_BUILD_PULL", "DASHTAM_BUILD_NO_CACHE"):
        assert env.get(variable) == "1", (
            f"weekly.yml: job {build_job}: env {variable} expected '1', found {env.get(variable)!r}"
        )
