"""Every control of the policy can fail: a broken variant per control, each caught by that
control and by no unrelated one.

A stack breaks at most one thing per service (a line in a copy of its compose file, or an
image built FROM the real one with a fixture Dockerfile from tests/pipeline/selftest/), so
one boot proves up to four controls. It boots exactly as `nox -s verify(<env>)` boots it
(tests/pipeline/lab.py) and the real tests/infra suite runs against it; the test then asserts
that the failed policy cases are exactly the ones expected — each breakage's own control on
its own service, nothing else — and that the other checks failed only where a breakage is
bound to show (listed with each variant).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from pipeline import reports
from pipeline.errors import PipelineError
from pipeline.lint.policy_check import check_policy
from pipeline.policy import load_policy
from tests.pipeline.conftest import copy_repository
from tests.pipeline.lab import Lab

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("engine_and_real_images")]

POLICY_CASE = re.compile(
    r"^test_policy\[(?P<environment>\w+)-(?P<service>[a-z]+)-(?P<control>[\w-]+)\]$"
)
# The first line of each service in the ci compose file: breakages are added right below.
CI_SERVICE = {
    "app": "    extends: {file: common.yml, service: api-service}\n",
    "callback": "    extends: {file: common.yml, service: our-service}\n",
    "postgres": "    extends: {file: common.yml, service: postgres}\n",
    "redis": "    extends: {file: redis-users.yml, service: redis}\n",
}


def below(service: str, *lines: str) -> tuple[str, str]:
    """A change to the ci compose file: `lines` added to `service`."""
    return CI_SERVICE[service], CI_SERVICE[service] + "".join(f"    {line}\n" for line in lines)


def entrypoint_with_a_child_named(name: str) -> str:
    """Redis' entrypoint line with a child beside it that calls itself `name` and waits (no
    child of its own, which would show under its real name); Redis starts as usual."""
    child = f"mkfifo /tmp/hold; printf {name} > /proc/self/comm; read held < /tmp/hold"
    return (
        f'entrypoint: [sh, -c, "sh -c \'{child}\' & exec docker-entrypoint.sh \\"$$@\\"", '
        "docker-entrypoint.sh]"
    )


@dataclass(frozen=True)
class PolicyVariant:
    key: str
    environment: str
    caught: frozenset[tuple[str, str]]  # (service, control) that must fail, and only those
    compose: tuple[tuple[str, str], ...] = ()  # changes to the environment's compose file
    images: tuple[tuple[str, str], ...] = ()  # (stage, fixture Dockerfile) built FROM the real one
    # Other checks a breakage is bound to fail too (the image has no healthcheck at all...).
    also_failing: frozenset[str] = field(default_factory=frozenset)

    def break_in(self, lab: Lab) -> Path | None:
        for stage, dockerfile in self.images:
            lab.image_from(stage, dockerfile)
        if self.images:
            broken = {stage for stage, _ in self.images}
            lab.run_stack_from_tag(*(s for s in ("production", "callback") if s not in broken))
        return lab.compose_file_with(self.environment, *self.compose) if self.compose else None


def caught(*pairs: str) -> frozenset[tuple[str, str]]:
    """("app:restart-policy", …) as {(service, control)}."""
    return frozenset(tuple(pair.split(":")) for pair in pairs)


VARIANTS = [
    PolicyVariant(
        "restart-limits-caps-seccomp",
        "ci",
        caught(
            "app:restart-policy",
            "callback:resource-limits",
            "postgres:capabilities-baseline",
            "redis:kernel-confinement",
        ),
        compose=(
            below("app", 'restart: "no"'),
            ('        limits: {cpus: "0.5", memory: 512M, pids: 128}\n', "        limits: {}\n"),
            below("postgres", "cap_add: [SYS_ADMIN]"),
            below("redis", "security_opt: [seccomp=unconfined]"),
        ),
    ),
    PolicyVariant(
        "root-writable-trust-etc",
        "ci",
        caught(
            "app:read-only-root",
            "callback:writable-paths",
            "postgres:data-store-authentication",
            "redis:sensitive-host-paths",
        ),
        compose=(
            below("app", "read_only: false"),
            below("callback", "tmpfs: [/tmp, /var/tmp]"),
            (
                "      POSTGRES_INITDB_ARGS: --no-sync\n",
                "      POSTGRES_INITDB_ARGS: --no-sync\n      POSTGRES_HOST_AUTH_METHOD: trust\n",
            ),
            below("redis", 'volumes: ["/etc/hostname:/etc/host-name:ro"]'),
        ),
    ),
    PolicyVariant(
        "caps-privileges-uts-root",
        "ci",
        caught(
            "app:capabilities-drop-all",
            "callback:no-new-privileges",
            "postgres:host-namespaces",
            "redis:processes-non-root",
        ),
        compose=(
            below("app", "cap_add: [CHOWN]"),
            below("callback", 'security_opt: !override ["no-new-privileges:false"]'),
            below("postgres", "uts: host"),
            # Root instead of the data store's own user; the image's entrypoint would then
            # drop root, so Redis is started directly (env runs the command) and keeps it.
            below("redis", 'user: "0:0"', "entrypoint: [env]"),
        ),
        also_failing=frozenset(
            {
                "test_pid1_runs_as_the_service_user[ci-redis]",
                "test_every_process_runs_as_the_service_user[ci-redis]",
            }
        ),
    ),
    PolicyVariant(
        "bind-privileged",
        "ci",
        # A privileged container also runs unconfined: the engine switches SELinux labelling
        # off for it (label=disable), which kernel-confinement reads.
        caught("app:bind-mounts", "postgres:privileged", "postgres:kernel-confinement"),
        compose=(
            below("app", 'volumes: ["../alembic:/app/extra:ro"]'),
            below("postgres", "privileged: true"),
        ),
    ),
    PolicyVariant(
        "udp-listener-a-database-password",
        "ci",
        caught("app:listening-sockets", "callback:least-secrets"),
        compose=(
            (
                "    environment: *callback-environment\n",
                "    environment:\n      <<: *callback-environment\n"
                "      POSTGRES_PASSWORD: ${POSTGRES_PASSWORD}\n",
            ),
        ),
        images=(("production", "extra-udp-listener.Dockerfile"),),
        # The stack's own socket check says it again, through testinfra's socket module.
        also_failing=frozenset({"test_listening_sockets_are_exactly_the_service_port[ci-app]"}),
    ),
    PolicyVariant(
        "image-user-setuid",
        "ci",
        caught("app:image-user-non-root", "callback:no-setuid-files"),
        images=(
            ("production", "running-as-root.Dockerfile"),
            ("callback", "setuid-file.Dockerfile"),
        ),
    ),
    PolicyVariant(
        "world-writable-root-owned",
        "ci",
        caught("app:no-world-writable-files", "callback:app-files-owned-by-appuser"),
        images=(
            ("production", "world-writable-file.Dockerfile"),
            ("callback", "root-owned-file.Dockerfile"),
        ),
        # The stack's own ownership check says it again, through testinfra's file module.
        also_failing=frozenset({"test_app_folder_belongs_to_appuser[ci-callback]"}),
    ),
    PolicyVariant(
        "a-shell-a-root-user",
        "ci",
        caught(
            "app:programs-allow-listed",
            "callback:container-user-non-root",
            "callback:processes-non-root",
        ),
        compose=(below("callback", 'user: "0:0"'),),
        images=(("production", "shell-added.Dockerfile"),),
        also_failing=frozenset(
            {
                # With a shell, `compose exec whoami` applies, and there is no whoami to run.
                "test_compose_exec_whoami_prints_appuser[ci-app]",
                # Root is what the two controls catch; the stack's own checks say it again,
                # and the engine makes the tmpfs root's, so appuser cannot write to it.
                "test_every_process_runs_as_the_service_user[ci-callback]",
                "test_pid1_runs_as_the_service_user[ci-callback]",
                "test_writable_paths_are_writable_by_appuser[ci-callback]",
            }
        ),
    ),
    PolicyVariant(
        "secret-in-a-variable",
        "prod",
        caught("redis:secrets-as-files"),
        compose=(
            (
                "    secrets: [redis_users, redis_health_password]\n",
                "    secrets: [redis_users, redis_health_password]\n"
                "    environment: {REDISCLI_AUTH: not-a-file}\n",
            ),
        ),
    ),
    PolicyVariant(
        "one-redis-user-for-everything",
        "ci",
        caught("callback:redis-users", "redis:redis-users"),
        compose=(
            # The callback logs in as the app: every key the app keeps is the callback's too.
            (
                "    environment: *callback-environment\n",
                "    environment:\n      <<: *callback-environment\n"
                "      REDIS_USER: app\n      REDIS_PASSWORD: ${REDIS_APP_PASSWORD}\n",
            ),
            # A user with every key and every command beside the services' own. The users
            # come first; --syslog-ident takes the `redis-server` Compose's command starts with.
            below(
                "redis",
                'entrypoint: [docker-entrypoint.sh, redis-server, --user, shared, "on", nopass,'
                ' "~*", "&*", "+@all", --syslog-ident]',
            ),
        ),
        # As the app, the callback may not run the script that consumes a state: the flow
        # stops at the callback (503), and an unissued state gets 503 too, not 400.
        also_failing=frozenset(
            {
                "test_the_callback_refuses_a_state_no_one_issued_and_writes_nothing",
                "test_an_issued_state_serves_one_redirect_and_its_code_is_read_once",
            }
        ),
    ),
    PolicyVariant(
        "cgroup-crashloop-sshd",
        "ci",
        caught("app:cgroup-parent", "callback:restart-policy", "redis:no-sshd"),
        compose=(
            below("app", "cgroup_parent: /dashtam-selftest"),
            # Restarts without a bound: a crash loop never stops.
            below("callback", "restart: on-failure"),
            # A child of Redis' own user that calls itself sshd and waits.
            below("redis", entrypoint_with_a_child_named("sshd")),
        ),
    ),
    PolicyVariant(
        "privileged-port-a-device",
        "dev",
        caught("app:privileged-ports", "redis:host-devices"),
        compose=(
            ('"127.0.0.1:${APP_PORT:-8000}:8000"', '"127.0.0.1:80:8000"'),
            (
                "    extends: {file: redis-users.yml, service: redis}\n",
                "    extends: {file: redis-users.yml, service: redis}\n"
                '    devices: ["/dev/zero:/dev/host-zero"]\n',
            ),
        ),
    ),
    PolicyVariant(
        "database-port-on-all-interfaces",
        "dev",
        caught("postgres:published-ports"),
        compose=(
            ('"127.0.0.1:${POSTGRES_HOST_PORT:-5432}:5432"', '"${POSTGRES_HOST_PORT:-5432}:5432"'),
        ),
    ),
    # Evasions of the inspector: each hides from a reader that trusts names or addresses.
    PolicyVariant(
        "root-process-named-like-runc",
        "ci",
        caught("redis:processes-non-root"),
        compose=(
            # A root child renames itself as runc's bootstrap and waits; Redis drops root as usual.
            below("redis", 'user: "0:0"', entrypoint_with_a_child_named("runc:[2:INIT]")),
        ),
        also_failing=frozenset({"test_every_process_runs_as_the_service_user[ci-redis]"}),
    ),
    PolicyVariant(
        "listener-on-docker-dns",
        "ci",
        caught("app:listening-sockets"),
        images=(("production", "listener-on-docker-dns.Dockerfile"),),
        also_failing=frozenset({"test_listening_sockets_are_exactly_the_service_port[ci-app]"}),
    ),
]


# A control whose failing case no stack here can boot with, judged on the compose model:
# lint's policy check finds it, at its line, and no other control does.
CAUGHT_IN_LINT = {
    # On the engine's default bridge a data store has no name the app can resolve: the app's
    # migrations never reach it, so no stack boots.
    "no-default-bridge": ("ci", ("    networks: [database]\n", "    network_mode: bridge\n")),
    # Shared propagation needs a shared mount at the source, which a host may not have.
    "mount-propagation": (
        "ci",
        below(
            "redis",
            "volumes: [{type: bind, source: /tmp, target: /host-tmp, read_only: true, "
            "bind: {propagation: rshared}}]",
        ),
    ),
}

# A control whose failing case no stack can boot with: caught before anything runs.
BEFORE_BOOT = {
    # `compose up --wait` refuses a container whose healthcheck is disabled (or NONE), so a
    # stack without one never boots; the control's static side catches it in lint.
    "healthcheck": ("ci", below("callback", "healthcheck: {disable: true}")),
}


def test_every_control_has_a_variant():
    covered = {control for variant in VARIANTS for _, control in variant.caught}
    covered |= set(BEFORE_BOOT) | set(CAUGHT_IN_LINT)
    missing = sorted({control.id for control in load_policy().controls} - covered)
    assert not missing, f"policy controls with no broken variant in the self-test: {missing}"


@pytest.mark.parametrize("variant", VARIANTS, ids=[variant.key for variant in VARIANTS])
def test_each_breakage_is_caught_by_its_own_control_only(
    variant: PolicyVariant, lab_for: Callable[[str], Lab]
):
    lab = lab_for(variant.key)
    outcome = lab.verify(variant.environment, variant.break_in(lab))
    checks = reports.read_junit(outcome.junit)
    failed = {check.name for check in checks if check.outcome == "failed"}
    failed_controls = {
        (match["service"], match["control"])
        for match in (POLICY_CASE.match(name) for name in failed)
        if match
    }
    others = {name for name in failed if not POLICY_CASE.match(name)}
    context = f"\nfailed: {sorted(failed)}\nsuite output (tail):\n{lab.suite.output[-3000:]}"
    assert checks, f"self-test {variant.key}: the suite reported no checks{context}"
    assert not outcome.passed, f"self-test {variant.key}: verify passed a broken stack{context}"
    assert failed_controls == variant.caught, (
        f"self-test {variant.key}: failed policy controls: expected {sorted(variant.caught)}, "
        f"found {sorted(failed_controls)}{context}"
    )
    assert others <= variant.also_failing, (
        f"self-test {variant.key}: other checks failed: expected at most "
        f"{sorted(variant.also_failing)}, found {sorted(others)}{context}"
    )


@pytest.mark.parametrize("control", sorted(BEFORE_BOOT))
def test_a_breakage_no_stack_boots_with_is_caught_by_its_control_before_it_runs(
    control: str, lab_for: Callable[[str], Lab], tmp_path: Path
):
    environment, change = BEFORE_BOOT[control]
    copy = copy_repository(tmp_path / "repo")
    compose = copy / "compose" / f"docker-compose.{environment}.yml"
    good, broken = change
    compose.write_text(compose.read_text().replace(good, broken))
    findings = [finding for finding in check_policy(copy) if f"[{control}]" in finding.message]
    assert findings, f"self-test {control}: lint's policy check found nothing"
    assert {finding.path for finding in findings} == {compose.relative_to(copy).as_posix()}

    lab = lab_for(f"before-boot-{control}")
    with pytest.raises(PipelineError):
        lab.verify(environment, lab.compose_file_with(environment, change))
    assert not lab.suite.output, f"self-test {control}: the suite ran on a stack that never booted"
    assert not lab.leftovers(), f"self-test {control}: teardown left {lab.leftovers()}"


@pytest.mark.parametrize("control", sorted(CAUGHT_IN_LINT))
def test_a_breakage_judged_on_the_model_is_caught_by_its_control_alone(
    control: str, tmp_path: Path
):
    environment, (good, broken) = CAUGHT_IN_LINT[control]
    copy = copy_repository(tmp_path / "repo")
    compose = copy / "compose" / f"docker-compose.{environment}.yml"
    assert compose.read_text().count(good) == 1, f"compose/{environment}: expected {good!r} once"
    compose.write_text(compose.read_text().replace(good, broken))
    findings = check_policy(copy)
    controls = {
        match.group(1)
        for finding in findings
        if (match := re.search(r"\[([\w-]+)\]", finding.message))
    }
    assert controls == {control}, f"self-test {control}: lint's policy check found {controls}"
    assert {finding.path for finding in findings} == {compose.relative_to(copy).as_posix()}
