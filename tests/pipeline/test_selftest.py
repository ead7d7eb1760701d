"""The verification suite can fail: each deliberately broken variant is caught by its check.

A variant breaks one thing: an image built FROM the real production image with one of the
Dockerfiles in tests/pipeline/selftest/, or a stage built from a copy of the build context
with a source file missing. The stack then boots through pipeline.verification.verify
exactly as `nox -s verify(<env>)` boots it (tests/pipeline/lab.py), and the real tests/infra
suite runs against it. Each test asserts that the run failed, that the check meant to catch
the breakage is among the failures, and that checks the breakage does not touch still pass.
Breakages a stack cannot boot with are caught earlier, by the build gate or the boot health
gate, and leave nothing behind. The policy's controls have a self-test of their own,
tests/pipeline/test_selftest_policy.py.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from pipeline import reports
from pipeline.errors import PipelineError
from tests.pipeline.lab import Lab

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("engine_and_real_images")]


def throwaway_secrets() -> dict[str, bytes]:
    """An env file and a freshly generated private key: what must never reach a layer."""
    key = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return {
        "env/.env.dev": b"POSTGRES_PASSWORD=selftest-throwaway\n",
        "selftest-tls.key.pem": key,
    }


# --- Variants the suite must catch, each by its own check ------------------------------------


@dataclass(frozen=True)
class Variant:
    key: str  # short: the image tag and the project name carry it
    environment: str
    breaks: Callable[[Lab], Path | None]  # makes the breakage; returns a broken compose file
    caught_by: str  # the tests/infra check that must fail
    still_passing: tuple[str, ...]  # checks the breakage does not touch


CAUGHT_BY_A_CHECK = [
    pytest.param(
        Variant(
            key="secret-in-a-layer",
            environment="ci",
            breaks=lambda lab: lab.production_image_from(
                "secret-deleted-in-a-later-layer.Dockerfile", throwaway_secrets()
            ),
            caught_by="test_no_secret_in_any_layer[ci-app]",
            still_passing=(
                "test_no_secret_in_any_layer[ci-callback]",
                # Deleted from the filesystem: only the layers still hold them.
                "test_policy[ci-app-app-files-owned-by-appuser]",
                "test_policy[ci-app-no-world-writable-files]",
            ),
        ),
        id="secret-deleted-in-a-later-layer-is-caught-by-the-layer-scan",
    ),
    pytest.param(
        Variant(
            key="credential-in-a-source-file",
            environment="ci",
            breaks=lambda lab: lab.production_image_from(
                "credential-in-a-source-file.Dockerfile",
                # AWS's documented example key, put together here: no line of ours holds it.
                {"local_settings.py": b'AWS_ACCESS_KEY_ID = "AKIA' + b'IOSFODNN7EXAMPLE"\n'},
            ),
            caught_by="test_no_secret_in_any_layer[ci-app]",
            still_passing=(
                "test_no_secret_in_any_layer[ci-callback]",
                # Only the file holds it: not the image's ENV, labels or history.
                "test_no_credential_shaped_value_in_the_image_config_or_history[ci-app]",
                "test_policy[ci-app-app-files-owned-by-appuser]",
            ),
        ),
        id="a-credential-shaped-value-in-one-of-our-files-is-caught-by-the-layer-scan",
    ),
    pytest.param(
        Variant(
            key="libpython-off-cache",
            environment="ci",
            breaks=lambda lab: lab.production_image_from(
                "libpython-off-the-loader-cache.Dockerfile"
            ),
            caught_by="test_app_runs_the_official_python_layout[ci-app]",
            still_passing=(
                "test_app_runs_the_official_python_layout[ci-callback]",
                "test_no_secret_in_any_layer[ci-app]",
            ),
        ),
        id="libpython-off-the-loader-cache-is-caught-by-the-layout-check",
    ),
    pytest.param(
        Variant(
            key="venv-symlinked",
            environment="ci",
            breaks=lambda lab: lab.production_image_from("venv-symlinked-elsewhere.Dockerfile"),
            caught_by="test_runtime_image_ships_no_build_or_dev_tools[ci-app]",
            still_passing=(
                "test_runtime_image_ships_no_build_or_dev_tools[ci-callback]",
                "test_symlinks_under_app_stay_inside_the_image[ci-app]",
            ),
        ),
        id="a-venv-symlinked-to-another-folder-is-read-in-the-container-s-root",
    ),
    pytest.param(
        Variant(
            key="callback-joins-the-app",
            environment="ci",
            breaks=lambda lab: lab.compose_file_with(
                "ci",
                (
                    "    networks: [callback-front, callback-cache]\n",
                    "    networks: [callback-front, callback-cache, app-front]\n",
                ),
            ),
            caught_by="test_each_service_reaches_only_what_it_needs[ci-callback]",
            still_passing=("test_an_issued_state_serves_one_redirect_and_its_code_is_read_once",),
        ),
        id="the-callback-on-the-app-s-network-is-caught-reaching-it",
    ),
    pytest.param(
        Variant(
            key="callback-any-state",
            environment="ci",
            breaks=lambda lab: lab.callback_image_from("callback-takes-any-state.Dockerfile"),
            caught_by="test_the_callback_refuses_a_state_no_one_issued_and_writes_nothing",
            still_passing=(
                "test_each_service_reaches_only_what_it_needs[ci-callback]",
                "test_policy[ci-callback-redis-users]",
            ),
        ),
        id="a-callback-storing-a-code-for-a-state-no-one-issued-is-caught",
    ),
    *(
        pytest.param(
            Variant(
                key=key,
                environment=environment,
                breaks=lambda lab, dockerfile=dockerfile: lab.production_image_from(dockerfile),
                caught_by=f"{check}[{environment}-app]",
                still_passing=(f"{check}[{environment}-callback]",),
            ),
            id=f"{dockerfile.removesuffix('.Dockerfile')}-is-caught",
        )
        for key, environment, dockerfile, check in (
            (
                "appuser-1001",
                "ci",
                "appuser-renumbered.Dockerfile",
                "test_appuser_is_uid_and_gid_1000",
            ),
            (
                "dangling-link",
                "ci",
                "dangling-link-under-app.Dockerfile",
                "test_symlinks_under_app_stay_inside_the_image",
            ),
            (
                "setuid-python",
                "ci",
                "setuid-interpreter.Dockerfile",
                "test_interpreter_is_neither_setuid_nor_writable",
            ),
            (
                "liveness-version",
                "prod",
                "liveness-names-its-version.Dockerfile",
                "test_liveness_in_production_says_only_that_the_service_is_up",
            ),
            (
                "credential-in-env",
                "ci",
                "credential-in-env.Dockerfile",
                "test_no_credential_shaped_value_in_the_image_config_or_history",
            ),
        )
    ),
]


@pytest.mark.parametrize("variant", CAUGHT_BY_A_CHECK)
def test_broken_variant_is_caught(variant: Variant, lab_for: Callable[[str], Lab]):
    lab = lab_for(variant.key)
    compose_file = variant.breaks(lab)
    outcome = lab.verify(variant.environment, compose_file)
    checks = {check.name: check for check in reports.read_junit(outcome.junit)}
    failed = sorted(name for name, check in checks.items() if check.outcome == "failed")
    context = f"\nfailed checks: {failed}\nsuite output (tail):\n{lab.suite.output[-3000:]}"
    assert checks, f"self-test {variant.key}: the suite reported no checks{context}"
    assert not outcome.passed, f"self-test {variant.key}: verify passed a broken stack{context}"
    assert variant.caught_by in failed, (
        f"self-test {variant.key}: {variant.caught_by}: expected failed, "
        f"found {checks[variant.caught_by].outcome if variant.caught_by in checks else 'not run'}"
        f"{context}"
    )
    not_passing = {
        name: checks[name].outcome if name in checks else "not run"
        for name in variant.still_passing
        if name not in checks or checks[name].outcome != "passed"
    }
    assert not not_passing, (
        f"self-test {variant.key}: checks the breakage does not touch: expected passed, "
        f"found {not_passing}{context}"
    )


# --- Variants a stack cannot boot with: the boot health gate catches them ------------------


@dataclass(frozen=True)
class BootVariant:
    key: str
    breaks: Callable[[Lab], None]
    unhealthy: str  # the service the gate must name
    healthy: tuple[str, ...]  # services it must not name
    evidence: str  # what the gate prints (logs, health log) that shows the cause


NEVER_BOOTS = [
    pytest.param(
        BootVariant(
            key="https-healthcheck",
            breaks=lambda lab: lab.production_image_from(
                "https-healthcheck-on-plain-http.Dockerfile"
            ),
            unhealthy="app",
            healthy=("callback", "postgres", "redis"),
            # A TLS error from a server that answers, not a refused connection.
            evidence="[SSL",
        ),
        id="https-healthcheck-on-a-plain-http-server-leaves-app-unhealthy",
    ),
]


@pytest.mark.parametrize("variant", NEVER_BOOTS)
def test_broken_variant_never_boots(
    variant: BootVariant, lab_for: Callable[[str], Lab], capsys: pytest.CaptureFixture[str]
):
    lab = lab_for(variant.key)
    variant.breaks(lab)
    capsys.readouterr()
    with pytest.raises(PipelineError) as refused:
        lab.verify("ci")
    printed = capsys.readouterr().err
    message = str(refused.value)
    assert " did not become healthy" in message, (
        f"self-test {variant.key}: verify error: expected the boot health gate, found {message!r}"
    )
    named = message.split(": ", 1)[1].split(" did not become healthy")[0].split(", ")
    wrongly_named = sorted(set(named) & set(variant.healthy))
    assert variant.unhealthy in named and not wrongly_named, (
        f"self-test {variant.key}: services the boot gate names: expected {variant.unhealthy!r} "
        f"and none of {list(variant.healthy)}, found {named}"
    )
    assert variant.evidence in printed, (
        f"self-test {variant.key}: what the boot gate printed: expected {variant.evidence!r}, "
        f"found:\n{printed[-3000:]}"
    )
    assert not lab.suite.output, (
        f"self-test {variant.key}: the suite ran on a stack that never booted"
    )
    assert not lab.leftovers(), f"self-test {variant.key}: teardown left {lab.leftovers()}"


# --- The build gate ------------------------------------------------------------------------


def test_stage_running_as_root_is_refused_by_the_build_gate(lab_for: Callable[[str], Lab]):
    lab = lab_for("root-build")
    context = lab.context_copy()
    # The unchanged copy builds: the gate refuses the breakage, not the copy.
    lab.build_stage_from(context, "production")
    dockerfile = context / "docker" / "Dockerfile"
    text = dockerfile.read_text()
    production_end = 'CMD ["app"]\n'
    assert text.count(production_end) == 1, f"docker/Dockerfile: expected {production_end!r} once"
    dockerfile.write_text(text.replace(production_end, production_end + "USER root\n"))
    with pytest.raises(PipelineError, match="stage 'production' is configured to run as root"):
        lab.build_stage_from(context, "production")


def test_stage_missing_its_source_is_refused_by_the_build(
    lab_for: Callable[[str], Lab], capsys: pytest.CaptureFixture[str]
):
    """The build imports what it ships (docker/runtime-check.py): a stage whose source is
    gone stops there, naming the module, before any stack could run it."""
    lab = lab_for("missing-source")
    context = lab.context_copy()
    (context / "src" / "callback.py").unlink()
    capsys.readouterr()
    with pytest.raises(PipelineError, match="stage 'callback' failed to build"):
        lab.build_stage_from(context, "callback")
    printed = capsys.readouterr().err
    assert "runtime-check: src.callback:app does not load" in printed, (
        f"self-test missing-source: the build's output: expected the module named, found:\n"
        f"{printed[-3000:]}"
    )
