"""The lint checks find what they promise, at the right file and line, on a copy of the repo.

Each fault is injected into a temporary copy of the files the checks read; the real
repository must pass every check that needs no Docker. Only the `docker compose config`
tests need the compose plugin (marked `docker`). The Python style check runs on a folder of
its own, and `--check` selection on stand-in checks.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipeline import lint, secret_patterns
from pipeline.environments import ENVIRONMENTS, ROOT
from pipeline.lint import (
    common,
    compose_config,
    dockerfiles,
    env_files,
    policy_check,
    python_style,
    reuse,
    secret_values,
    tracked_secrets,
    workflows,
    yaml_files,
)
from pipeline.lint.common import Finding

# What the checks read; a copy of these is a repository the checks cannot tell from the real one.
COPIED = (
    "compose",
    "docker",
    ".github",
    ".hadolint.yaml",
    ".yamllint",
    ".gitignore",
    "env/.env.example",
    "env/.env.prod.example",
    "env/.env.ci",
)
CI_COMPOSE = "compose/docker-compose.ci.yml"
PROD_COMPOSE = "compose/docker-compose.prod.yml"
# The first line of the app service in the ci compose file, to insert settings after.
CI_APP = "    extends: {file: common.yml, service: api-service}"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A temporary copy of the linted files (no git-ignored env file from this machine)."""
    for relative in COPIED:
        source = ROOT / relative
        target = tmp_path / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target)
        elif source.is_file():
            shutil.copy2(source, target)
    return tmp_path


def insert_after(path: Path, anchor: str, new_lines: str) -> int:
    """Insert `new_lines` after the first line equal to `anchor`; the first new line's number."""
    lines = path.read_text().splitlines(keepends=True)
    position = next(index for index, line in enumerate(lines) if line.rstrip("\n") == anchor)
    lines[position + 1 : position + 1] = [new_lines]
    path.write_text("".join(lines))
    return position + 2


def line_of(path: Path, prefix: str) -> int:
    return next(
        number
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if line.startswith(prefix)
    )


def located(findings: list[Finding], path: str, line: int) -> list[Finding]:
    return [finding for finding in findings if (finding.path, finding.line) == (path, line)]


def errors(findings: list[Finding]) -> list[str]:
    return [str(finding) for finding in findings if finding.severity == "error"]


# ---------------------------------------------------------------- the real repository

NO_DOCKER_CHECKS = [
    pytest.param(dockerfiles.check_dockerfiles, id="dockerfiles"),
    pytest.param(yaml_files.check_yaml, id="yaml"),
    pytest.param(env_files.check_env_files, id="env-files"),
    pytest.param(tracked_secrets.check_tracked_secrets, id="tracked-secrets"),
]


@pytest.mark.parametrize("check", NO_DOCKER_CHECKS)
def test_the_repository_passes(check: common.Check) -> None:
    findings = check(ROOT)
    assert errors(findings) == [], f"{check.__name__} on the repository: expected no error"


# ---------------------------------------------------------------- 1. Dockerfiles


def test_a_dockerfile_syntax_error_is_reported_with_file_and_line(repo: Path) -> None:
    dockerfile = repo / "docker" / "Dockerfile"
    broken_line = len(dockerfile.read_text().splitlines()) + 1
    with dockerfile.open("a") as handle:
        handle.write("FROOM base AS broken\n")

    findings = located(dockerfiles.check_dockerfiles(repo), "docker/Dockerfile", broken_line)

    assert [finding.severity for finding in findings] == ["error"], findings
    assert "DL1000" in findings[0].message
    assert "\n" not in findings[0].message


def test_a_hadolint_warning_fails_and_names_the_rule(repo: Path) -> None:
    dockerfile = repo / "docker" / "Dockerfile"
    added_line = len(dockerfile.read_text().splitlines()) + 1
    with dockerfile.open("a") as handle:
        handle.write("WORKDIR relative/path\n")  # DL3000: use absolute WORKDIR

    findings = located(dockerfiles.check_dockerfiles(repo), "docker/Dockerfile", added_line)

    assert [(finding.severity, "DL3000" in finding.message) for finding in findings] == [
        ("error", True)
    ]


# ---------------------------------------------------------------- 2. YAML


def test_malformed_compose_yaml_is_reported_with_file_and_line(repo: Path) -> None:
    compose_file = repo / CI_COMPOSE
    broken_line = insert_after(compose_file, CI_APP, "   misindented: true\n")
    with pytest.raises(yaml.MarkedYAMLError) as parse_error:
        yaml.safe_load(compose_file.read_text())
    assert parse_error.value.problem_mark is not None
    assert parse_error.value.problem_mark.line + 1 == broken_line, "the fault sits elsewhere"

    findings = located(yaml_files.check_yaml(repo), CI_COMPOSE, broken_line)

    assert [finding.severity for finding in findings] == ["error"]
    assert str(findings[0]).startswith(f"{CI_COMPOSE}:{broken_line}: syntax error")


def test_a_missing_yamllint_config_falls_back_with_a_warning(repo: Path) -> None:
    (repo / ".yamllint").unlink(missing_ok=True)

    findings = yaml_files.check_yaml(repo)

    assert (
        Finding(".yamllint", 1, "missing; linted with yamllint's relaxed preset", "warning")
        in findings
    )


# ---------------------------------------------------------------- 4. workflows


def test_a_workflow_schema_error_is_reported_at_its_line(repo: Path) -> None:
    workflows_folder = repo / ".github" / "workflows"
    workflows_folder.mkdir(parents=True, exist_ok=True)
    (workflows_folder / "broken.yml").write_text(
        "name: broken\n"
        "on: push\n"
        "permissions: {}\n"
        "jobs:\n"
        "  build:\n"
        "    runs-on: ubuntu-24.04\n"
        "    steps:\n"
        "      - run: true\n"
    )

    findings = located(workflows.check_workflows(repo), ".github/workflows/broken.yml", 8)

    assert any("check-jsonschema" in finding.message for finding in findings), findings


def test_a_zizmor_finding_is_reported_at_its_line(repo: Path) -> None:
    workflows_folder = repo / ".github" / "workflows"
    workflows_folder.mkdir(parents=True, exist_ok=True)
    (workflows_folder / "injectable.yml").write_text(
        "name: injectable\n"
        "on: pull_request\n"
        "permissions: {}\n"
        "jobs:\n"
        "  greet:\n"
        "    runs-on: ubuntu-24.04\n"
        "    steps:\n"
        '      - run: echo "${{ github.event.pull_request.title }}"\n'
    )

    findings = workflows.check_workflows(repo)

    injection = [
        finding
        for finding in findings
        if finding.path == ".github/workflows/injectable.yml"
        and "template-injection" in str(finding)
    ]
    assert [(finding.line, finding.severity) for finding in injection] == [(8, "error")], findings


def test_no_workflow_files_means_nothing_to_check(repo: Path) -> None:
    shutil.rmtree(repo / ".github", ignore_errors=True)

    assert workflows.check_workflows(repo) == []


# ---------------------------------------------------------------- 5. env files


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("${A}", [("A", True, False)], id="braced-is-required"),
        pytest.param("$A", [("A", True, False)], id="bare-is-required"),
        pytest.param("${A:?set it}", [("A", True, True)], id="colon-question-fails-fast"),
        pytest.param("${A?set it}", [("A", True, False)], id="question-is-required"),
        pytest.param("${A:-x}", [("A", False, False)], id="colon-dash-has-a-default"),
        pytest.param("${A-x}", [("A", False, False)], id="dash-has-a-default"),
        pytest.param("$$A and $${B}", [], id="double-dollar-is-an-escape"),
        pytest.param("# ${A}", [], id="comment-lines-are-skipped"),
        pytest.param("${A:-${B}}", [("A", False, False), ("B", False, False)], id="nested-default"),
    ],
)
def test_interpolations(text: str, expected: list[tuple[str, bool, bool]]) -> None:
    found = [(use.name, use.required, use.fail_fast) for use in common.interpolations(text)]
    assert found == expected


def test_a_variable_missing_from_the_env_file_is_an_error_naming_both(repo: Path) -> None:
    compose_file = repo / CI_COMPOSE
    line = insert_after(compose_file, '  APP_DEBUG: "false"', "  APP_FEATURE: ${APP_FEATURE}\n")

    findings = located(env_files.check_env_files(repo), CI_COMPOSE, line)

    assert [finding.severity for finding in findings] == ["error"], findings
    assert "APP_FEATURE" in findings[0].message
    assert "env/.env.ci" in findings[0].message


def test_an_unused_env_variable_is_a_warning(repo: Path) -> None:
    template = repo / "env" / ".env.example"
    with template.open("a") as handle:
        handle.write("APP_NOBODY_READS_THIS=1\n")
    line = len(template.read_text().splitlines())

    findings = located(env_files.check_env_files(repo), "env/.env.example", line)

    assert [str(finding) for finding in findings] == [
        f"env/.env.example:{line}: warning: APP_NOBODY_READS_THIS is set but no compose file "
        "uses it; remove it or use it"
    ]


@pytest.mark.parametrize("misspelled", ["TEST_POSTGRES_USER", "postgres_user", "PGUSER"])
def test_a_variable_spelled_otherwise_than_compose_reads_it_is_an_error(
    repo: Path, misspelled: str
) -> None:
    template = repo / "env" / ".env.example"
    with template.open("a") as handle:
        handle.write(f"{misspelled}=dashtam\n")
    line = len(template.read_text().splitlines())

    findings = located(env_files.check_env_files(repo), "env/.env.example", line)

    assert [finding.severity for finding in findings] == ["error"], findings
    assert "rename it to POSTGRES_USER" in findings[0].message


def test_a_compose_variable_outside_the_naming_scheme_is_an_error(repo: Path) -> None:
    compose_file = repo / CI_COMPOSE
    line = insert_after(compose_file, '  APP_DEBUG: "false"', "  LOG_LEVEL: ${LOG_LEVEL:-info}\n")

    findings = located(env_files.check_env_files(repo), CI_COMPOSE, line)

    assert [finding.severity for finding in findings] == ["error"], findings
    assert "LOG_LEVEL does not follow the naming scheme" in findings[0].message


def test_a_real_looking_password_in_the_ci_env_file_is_an_error(repo: Path) -> None:
    env_file = repo / "env" / ".env.ci"
    env_file.write_text(
        env_file.read_text().replace(
            "POSTGRES_PASSWORD=ci-only-not-a-secret", "POSTGRES_PASSWORD=Zq8vT2mLp9Rx4wKe7Jd3"
        )
    )
    line = line_of(env_file, "POSTGRES_PASSWORD=")

    findings = located(env_files.check_env_files(repo), "env/.env.ci", line)

    assert [finding.severity for finding in findings] == ["error"], findings
    assert "Zq8vT2mLp9Rx4wKe7Jd3" not in str(findings[0]), "a finding must not print the secret"


@pytest.mark.parametrize(
    ("value", "looks_real"),
    [
        ("ci-only-not-a-secret", False),
        ("change-me-postgres", False),
        ("", False),
        ("short1A", False),
        ("Zq8vT2mLp9Rx4wKe7Jd3", True),
        ("9f86d081884c7d659a2feaa0c55ad015", True),
    ],
)
def test_real_looking_secrets(value: str, looks_real: bool) -> None:
    assert env_files._looks_like_real_secret(value) is looks_real


def test_a_private_key_in_an_env_file_is_an_error(repo: Path) -> None:
    template = repo / "env" / ".env.prod.example"
    with template.open("a") as handle:
        handle.write("# -----BEGIN RSA PRIVATE KEY-----\n")
    line = len(template.read_text().splitlines())

    findings = located(env_files.check_env_files(repo), "env/.env.prod.example", line)

    assert [finding.severity for finding in findings] == ["error"], findings


def test_a_secret_with_a_value_in_the_prod_template_is_an_error(repo: Path) -> None:
    template = repo / "env" / ".env.prod.example"
    template.write_text(template.read_text() + "POSTGRES_PASSWORD=change-me\n")
    line = line_of(template, "POSTGRES_PASSWORD=")

    findings = located(env_files.check_env_files(repo), "env/.env.prod.example", line)

    assert [finding.severity for finding in findings] == ["error"], findings
    assert "leave it empty" in findings[0].message


# ---------------------------------------------------------------- 6. tracked secrets


def git(root: Path, *arguments: str) -> None:
    subprocess.run(["git", *arguments], cwd=root, check=True, capture_output=True)


@pytest.mark.parametrize(
    "tracked",
    [
        "env/.env.dev",
        "env/.env.prod",
        "certs/dev/tls.key",
        "docker/server.pem",
        "secrets/prod/redis_password",
    ],
)
def test_a_tracked_secret_file_is_an_error(repo: Path, tracked: str) -> None:
    (repo / tracked).parent.mkdir(parents=True, exist_ok=True)
    (repo / tracked).write_text("anything\n")
    git(repo, "init", "--quiet")
    git(repo, "add", "--force", ".")

    findings = tracked_secrets.check_tracked_secrets(repo)

    assert [(finding.path, finding.severity) for finding in findings] == [(tracked, "error")]
    assert f"git rm --cached {tracked}" in findings[0].message


def test_only_the_templates_and_the_ci_env_file_are_allowed(repo: Path) -> None:
    git(repo, "init", "--quiet")
    git(repo, "add", "--force", ".")

    assert tracked_secrets.check_tracked_secrets(repo) == []


# ---------------------------------------------------------------- 7. the security policy


@pytest.mark.parametrize(
    ("added", "controls"),
    [
        pytest.param("    privileged: true\n", ["privileged"], id="privileged"),
        pytest.param("    ipc: host\n", ["host-namespaces"], id="host-ipc"),
        pytest.param("    pid: host\n", ["host-namespaces"], id="host-pid"),
        pytest.param(
            "    cap_add: [SYS_ADMIN]\n",
            ["capabilities-baseline", "capabilities-drop-all"],
            id="sys-admin-beyond-the-defaults-and-added-at-all",
        ),
        pytest.param(
            "    volumes: [/var/run/docker.sock:/var/run/docker.sock]\n",
            ["bind-mounts", "sensitive-host-paths", "writable-paths"],
            id="docker-socket",
        ),
        pytest.param(
            "    volumes:\n      - type: bind\n        source: /run/docker.sock\n"
            "        target: /var/run/docker.sock\n",
            ["bind-mounts", "sensitive-host-paths", "writable-paths"],
            id="docker-socket-long-syntax",
        ),
        pytest.param("    read_only: false\n", ["read-only-root"], id="writable-root"),
        pytest.param('    restart: "no"\n', ["restart-policy"], id="no-restart"),
    ],
)
def test_a_setting_the_policy_forbids_is_an_error_at_its_line(
    repo: Path, added: str, controls: list[str]
) -> None:
    line = insert_after(repo / CI_COMPOSE, CI_APP, added)

    findings = policy_check.check_policy(repo)

    assert {(finding.path, finding.line) for finding in findings} == {(CI_COMPOSE, line)}, findings
    found = sorted(finding.message.split("]")[0].removeprefix("[") for finding in findings)
    assert found == controls, f"controls: expected {controls}, found {found}"
    assert all(finding.severity == "error" for finding in findings)
    assert all(" ci app: " in finding.message for finding in findings)


def test_a_forbidden_setting_in_an_anchor_is_reported_where_it_is_written(repo: Path) -> None:
    line = insert_after(repo / PROD_COMPOSE, "x-hardening: &hardening", "  privileged: true\n")

    findings = policy_check.check_policy(repo)

    assert {(finding.path, finding.line) for finding in findings} == {(PROD_COMPOSE, line)}
    assert sorted(finding.message.split()[2].rstrip(":") for finding in findings) == [
        "app",
        "callback",
        "postgres",
        "redis",
    ]


def test_a_forbidden_setting_in_the_shared_blocks_is_reported_in_common_yml(repo: Path) -> None:
    common = "compose/common.yml"
    line = insert_after(repo / common, "  redis:", "    cap_add: [NET_ADMIN]\n")

    findings = policy_check.check_policy(repo)

    assert {(finding.path, finding.line) for finding in findings} == {(common, line)}, findings
    # Every environment's redis extends it: each one is named.
    assert sorted(
        finding.message.split()[1]
        for finding in findings
        if "capabilities-baseline" in finding.message
    ) == [
        "ci",
        "dev",
        "prod",
        "test",
    ]


def test_a_weakened_compose_file_cannot_weaken_its_own_restricted_profile(repo: Path) -> None:
    """ci's app is held to restricted by the environments model: dropping its limits from
    the compose file is a finding, not a new normal."""
    compose = repo / CI_COMPOSE
    compose.write_text(
        compose.read_text().replace(
            '        limits: {cpus: "2", memory: 1G, pids: 256}\n', "        limits: {}\n"
        )
    )

    findings = policy_check.check_policy(repo)

    assert [finding.message.split("]")[0] for finding in findings] == ["[resource-limits"], findings


# ---------------------------------------------------------------- 9. Python style

RUFF_SETTINGS = '[tool.ruff]\nline-length = 100\n\n[tool.ruff.lint]\nselect = ["E", "F", "I"]\n'


@pytest.fixture
def python_project(tmp_path: Path) -> Path:
    """A folder with ruff settings in its pyproject.toml, like the repository's."""
    (tmp_path / "pyproject.toml").write_text(RUFF_SETTINGS)
    return tmp_path


def test_a_ruff_lint_error_is_reported_with_file_and_line(python_project: Path) -> None:
    (python_project / "package").mkdir()
    (python_project / "package" / "module.py").write_text('"""A module."""\n\nimport os\n')

    findings = python_style.check_python_style(python_project)

    assert [str(finding) for finding in findings] == [
        "package/module.py:3: `os` imported but unused (ruff F401)"
    ]
    assert findings[0].severity == "error"


def test_a_file_ruff_format_would_change_is_an_error(python_project: Path) -> None:
    (python_project / "module.py").write_text("value=1\n")

    findings = python_style.check_python_style(python_project)

    assert [(str(finding), finding.severity) for finding in findings] == [
        (
            "module.py:1: not formatted as `ruff format` writes it; run `ruff format module.py`",
            "error",
        )
    ]


def test_a_python_syntax_error_is_reported_once_at_its_line(python_project: Path) -> None:
    (python_project / "module.py").write_text('"""A module."""\n\n\ndef broken(:\n    pass\n')

    findings = python_style.check_python_style(python_project)

    assert findings, "a syntax error must be a finding"
    assert {(finding.path, finding.line, finding.severity) for finding in findings} == {
        ("module.py", 4, "error")
    }, findings
    assert all("(ruff invalid-syntax)" in finding.message for finding in findings), findings


def test_clean_python_under_the_pyproject_settings_has_no_findings(python_project: Path) -> None:
    # 95 characters: over ruff's default line length of 88, within the pyproject's 100.
    line = 'VALUE = "' + "x" * 85 + '"'
    assert len(line) == 95
    (python_project / "module.py").write_text(f'"""A module."""\n\n{line}\n')

    assert python_style.check_python_style(python_project) == []


def test_python_without_ruff_settings_is_linted_with_a_warning(tmp_path: Path) -> None:
    (tmp_path / "module.py").write_text("value = 1\n")

    findings = python_style.check_python_style(tmp_path)

    assert findings == [
        Finding("pyproject.toml", 1, "missing; linted with ruff's defaults", "warning")
    ]


def test_broken_ruff_settings_are_one_finding_naming_the_file(python_project: Path) -> None:
    (python_project / "pyproject.toml").write_text('[tool.ruff]\nline-length = "long"\n')
    (python_project / "module.py").write_text("value = 1\n")

    findings = python_style.check_python_style(python_project)

    assert [(finding.path, finding.severity) for finding in findings] == [
        ("pyproject.toml", "error")
    ], findings
    assert findings[0].message.startswith("ruff check failed: ")
    assert "\n" not in findings[0].message


# ---------------------------------------------------------------- --check


@pytest.fixture
def stand_in_checks(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[str]:
    """CHECKS replaced by checks that record their name and find one warning (an error for
    `failing`); the list of names in the order they ran. The checkout and the record of a
    passing run (pipeline.lint.reuse) are the test's own."""
    ran: list[str] = []

    def stand_in(name: str) -> common.Check:
        def check(root: Path) -> list[Finding]:
            ran.append(name)
            severity = "error" if name == "failing" else "warning"
            return [Finding(f"{name}.txt", 1, f"{name} ran", severity)]

        return check

    names = ("dockerfiles", lint.COMPOSE_CHECKS[0], "failing", "python")
    monkeypatch.setattr(lint, "CHECKS", {name: stand_in(name) for name in names})
    monkeypatch.setattr(lint, "ROOT", tmp_path)
    monkeypatch.setattr(reuse, "REPORTS", tmp_path / "reports")
    return ran


def test_without_check_every_check_runs_in_order(stand_in_checks: list[str]) -> None:
    lint.main([])

    assert stand_in_checks == ["dockerfiles", lint.COMPOSE_CHECKS[0], "failing", "python"]


def test_check_runs_only_the_named_checks_in_their_order(
    stand_in_checks: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert lint.main(["--check", "python", "--check", "dockerfiles"]) == 0

    assert stand_in_checks == ["dockerfiles", "python"]
    assert capsys.readouterr().out.splitlines() == [
        "dockerfiles.txt:1: warning: dockerfiles ran",
        "python.txt:1: warning: python ran",
        "lint: 0 error(s), 2 warning(s)",
    ]


def test_a_named_check_that_finds_an_error_fails(stand_in_checks: list[str]) -> None:
    assert lint.main(["--check", "failing"]) == 1
    assert stand_in_checks == ["failing"]


def test_no_compose_skips_the_compose_check_even_when_named(stand_in_checks: list[str]) -> None:
    lint.main(["--no-compose", "--check", lint.COMPOSE_CHECKS[0], "--check", "python"])

    assert stand_in_checks == ["python"]


def test_an_unknown_check_is_one_line_naming_the_known_ones(
    stand_in_checks: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert lint.main(["--check", "python", "--check", "nope"]) == 2

    output = capsys.readouterr()
    assert stand_in_checks == [], "no check runs when one name is wrong"
    assert output.out == ""
    assert output.err.splitlines() == [
        f"python -m pipeline.lint: unknown check 'nope'; use one of: {', '.join(lint.CHECKS)}."
    ]


def test_python_m_pipeline_lint_takes_check_names() -> None:
    def lint_command(*arguments: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "pipeline.lint", *arguments],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    passing = lint_command("--check", "tracked-secrets")
    unknown = lint_command("--check", "nope")

    assert (passing.returncode, passing.stdout) == (0, "lint: no findings\n"), passing.stderr
    assert unknown.returncode == 2
    assert "unknown check 'nope'" in unknown.stderr
    assert all(name in unknown.stderr for name in lint.CHECKS)


def test_each_pre_commit_hook_runs_one_lint_check_and_every_check_has_one() -> None:
    configuration = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text())
    hooks = [hook for repo in configuration["repos"] for hook in repo["hooks"]]
    tracked = common.git_files(ROOT)
    if tracked is None:
        pytest.skip(f"{ROOT} is not a git work tree: no files to trigger the hooks")
    prefix = "uv run --locked --no-default-groups --group pipeline python -m pipeline.lint --check "

    checked = []
    for hook in hooks:
        assert hook["entry"].startswith(prefix), f"hook {hook['id']}: runs {hook['entry']!r}"
        assert hook.get("pass_filenames") is False, f"hook {hook['id']}: pass_filenames"
        assert hook.get("language") == "unsupported", f"hook {hook['id']}: language"
        triggers = [name for name in tracked if re.search(hook.get("files", "^$"), name)]
        assert triggers, f"hook {hook['id']}: its files pattern matches no tracked file"
        checked.append(hook["entry"].removeprefix(prefix))

    assert sorted(checked) == sorted(lint.CHECKS)


# ---------------------------------------------------------------- report


def test_report_prints_findings_and_fails_on_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    findings = [
        Finding("env/.env.example", 7, "FOO is set but no compose file uses it", "warning"),
        Finding("docker/Dockerfile", 3, "broken"),
    ]

    status, lines = lint.report(findings)

    assert status == 1
    assert lines == capsys.readouterr().out.splitlines()
    assert lines == [
        "env/.env.example:7: warning: FOO is set but no compose file uses it",
        "docker/Dockerfile:3: broken",
        "lint: 1 error(s), 1 warning(s)",
    ]


def test_report_passes_on_warnings_only(capsys: pytest.CaptureFixture[str]) -> None:
    assert lint.report([Finding("env/.env.ci", 1, "note", "warning")])[0] == 0
    assert lint.report([]) == (0, ["lint: no findings"])


# ---------------------------------------------------------------- 3. docker compose config


def compose_runs() -> bool:
    try:
        result = subprocess.run(
            ["docker", "compose", "version"], capture_output=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0


@pytest.fixture
def compose_plugin() -> None:
    """Skip without the compose plugin, except in CI, where its absence is a failure."""
    if compose_runs():
        return
    if os.environ.get("CI"):
        pytest.fail("docker compose does not run, and CI must run the compose config checks")
    pytest.skip("docker compose does not run on this machine")


@pytest.mark.docker
def test_compose_reports_a_missing_required_variable_at_its_line(
    repo: Path, compose_plugin: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A value exported in the shell must not hide the one missing from the env file.
    monkeypatch.setenv("REDIS_APP_PASSWORD", "exported-in-the-shell")
    env_file = repo / "env" / ".env.ci"
    env_file.write_text(
        "".join(
            line
            for line in env_file.read_text().splitlines(keepends=True)
            if not line.startswith("REDIS_APP_PASSWORD=")
        )
    )
    compose_file = repo / CI_COMPOSE
    line = line_of(compose_file, "  REDIS_PASSWORD: ${REDIS_APP_PASSWORD:?")

    findings = located(compose_config.check_compose_config(repo), CI_COMPOSE, line)

    assert [finding.severity for finding in findings] == ["error"], findings
    assert "required variable REDIS_APP_PASSWORD" in findings[0].message


@pytest.mark.docker
def test_a_prod_template_that_does_not_fail_fast_is_an_error(
    repo: Path, compose_plugin: None
) -> None:
    prod = ENVIRONMENTS["prod"]
    assert prod.template_file is not None
    template = repo / prod.template_file.relative_to(ROOT)
    template.write_text(
        "".join(
            line.replace("=\n", "=./filled-in\n")
            for line in template.read_text().splitlines(keepends=True)
        )
    )

    findings = compose_config.check_compose_config(repo)

    template_path = template.relative_to(repo).as_posix()
    assert any(
        finding.path == template_path and "does not fail fast" in finding.message
        for finding in findings
    ), findings


@pytest.mark.docker
def test_the_unfilled_prod_template_fails_fast(repo: Path, compose_plugin: None) -> None:
    findings = compose_config.check_compose_config(repo)

    prod_template = ENVIRONMENTS["prod"].template_file
    assert prod_template is not None
    template_path = prod_template.relative_to(ROOT).as_posix()
    assert [finding for finding in findings if finding.path == template_path] == []


@pytest.mark.docker
def test_compose_reports_malformed_yaml_at_the_line_yamllint_names(
    repo: Path, compose_plugin: None
) -> None:
    broken_line = insert_after(repo / CI_COMPOSE, CI_APP, "   misindented: true\n")

    findings = located(compose_config.check_compose_config(repo), CI_COMPOSE, broken_line)

    assert [finding.severity for finding in findings] == ["error"], findings
    assert "yaml:" in findings[0].message


# ---------------------------------------------------------------- secret values by their shape


@pytest.mark.parametrize(
    ("relative", "line", "kind"),
    [
        (
            "docker/Dockerfile",
            "ENV AWS_ACCESS_KEY_ID=AKIA" + "IOSFODNN7EXAMPLE\n",
            "AWS Access Key",
        ),
        ("compose/docker-compose.ci.yml", "# token: ghp_" + "a" * 36 + "\n", "GitHub Token"),
        (
            "env/.env.ci",
            "SLACK_TOKEN=xoxb-" + "1" * 12 + "-" + "2" * 13 + "-" + "Ab" * 12 + "\n",
            "Slack Token",
        ),
    ],
    ids=[
        "an AWS key in a Dockerfile ENV",
        "a GitHub token in a compose file",
        "a Slack token in an env file",
    ],
)
def test_a_value_shaped_like_a_credential_is_found_at_its_line(repo: Path, relative, line, kind):
    path = repo / relative
    path.write_text(path.read_text() + line)
    findings = located(
        secret_values.check_secret_values(repo), relative, len(path.read_text().splitlines())
    )
    assert [finding.severity for finding in findings] == ["error"], findings
    assert f"looks like a {kind}" in findings[0].message


def test_an_allowed_value_is_not_a_finding(repo: Path, monkeypatch):
    key = "AKIA" + "IOSFODNN7EXAMPLE"
    monkeypatch.setattr(
        secret_patterns,
        "allowed_digests",
        lambda: frozenset({hashlib.sha256(key.encode()).hexdigest()}),
    )
    dockerfile = repo / "docker" / "Dockerfile"
    dockerfile.write_text(dockerfile.read_text() + f"ENV AWS_ACCESS_KEY_ID={key}\n")
    assert secret_values.check_secret_values(repo) == []


def test_the_repository_has_no_value_shaped_like_a_credential():
    assert secret_values.check_secret_values() == []
