"""Who really runs, and what they own: testinfra's user, group, process and file modules on
every service's host (read from outside, so shell-less images are hosts like the others).

A new check is one more function of `host`:

    def test_app_home_is_app(host, host_service):
        if host_service not in APP_SERVICES:
            pytest.skip(f"not applicable: {host_service} is not one of our services")
        assert host.user("appuser").home == "/app"
"""

from __future__ import annotations

import shlex
import stat
import subprocess

import pytest

from pipeline.environments import (
    APP_GID,
    APP_SERVICES,
    APP_UID,
    APP_USER,
    DATA_SERVICE_USERS,
    SERVICE_PORTS,
)
from pipeline.policy import load_policy
from pipeline.readings import engine_listeners, mounts, target_processes
from tests.infra.helpers import mismatch

pytestmark = pytest.mark.docker

SHELLS = ("/bin/sh", "/usr/bin/sh")


def ours_only(service: str) -> None:
    if service not in APP_SERVICES:
        pytest.skip(f"not applicable: {service} runs an image that is not ours")


@pytest.fixture(scope="module")
def target_namespace(host) -> int:
    """The mount namespace of the target's PID 1: its processes are the ones in it (the
    inspector's own commands run in its helper's)."""
    return host.process.get(pid=1).mntns


def ids_of(user) -> tuple[int, int, int, int]:
    """(real uid, effective uid, real gid, effective gid) a process of `user` runs with."""
    uid, gid = user.uid, user.gid
    return (uid, uid, gid, gid)


def test_appuser_is_uid_and_gid_1000(environment_name, host, host_service):
    ours_only(host_service)
    user, group = host.user(APP_USER), host.group(APP_USER)
    found = (user.exists, user.uid, user.gid, group.gid)
    expected = (True, APP_UID, APP_GID, APP_GID)
    assert found == expected, mismatch(
        environment_name, host_service, f"{APP_USER} (exists, uid, gid, group gid)", expected, found
    )


def test_pid1_runs_as_the_service_user(environment_name, host, host_service):
    user = host.user(APP_USER if host_service in APP_SERVICES else DATA_SERVICE_USERS[host_service])
    main = host.process.get(pid=1)
    found = (main.ruid, main.euid, main.rgid, main.egid)
    expected = ids_of(user)
    assert found == expected, mismatch(
        environment_name,
        host_service,
        f"PID 1 real/effective uid, gid ({user.name})",
        expected,
        found,
    )


def test_every_process_runs_as_the_service_user(
    environment_name, host, host_service, target_namespace
):
    user = host.user(APP_USER if host_service in APP_SERVICES else DATA_SERVICE_USERS[host_service])
    expected = ids_of(user)
    every = target_processes(host, target_namespace)
    ruid, euid, rgid, egid = expected
    as_user = {
        process.pid
        for process in target_processes(
            host, target_namespace, ruid=ruid, euid=euid, rgid=rgid, egid=egid
        )
    }
    others = {}
    # The two listings are moments apart: a process only the first saw is asked again by
    # its PID (testinfra checks it is still the same one), and one that ended in between
    # (a healthcheck's probe) has nothing left to judge.
    for process in every:
        if process.pid in as_user:
            continue
        try:
            found = (process.ruid, process.euid, process.rgid, process.egid)
        except (AssertionError, IndexError, RuntimeError):
            continue
        if found != expected:
            others[process.pid] = (process.comm, found)
    assert every and not others, mismatch(
        environment_name,
        host_service,
        f"processes (ruid, euid, rgid, egid) not {expected}",
        {},
        others,
    )


def test_listening_sockets_are_exactly_the_service_port(environment_name, host, host_service):
    """IPv4 and IPv6, TCP and UDP: one TCP port, the service's, and nothing else (the
    engine's own DNS listeners aside, known by their owner, not their address)."""
    sockets = {
        spec
        for spec in host.socket.get_listening_sockets()
        if spec.startswith(("tcp://", "udp://"))
    } - engine_listeners(host)
    found = {(spec.split("://")[0], int(spec.rsplit(":", 1)[1])) for spec in sockets}
    expected = {("tcp", SERVICE_PORTS[host_service])}
    assert found == expected, mismatch(
        environment_name, host_service, "listening (protocol, port)", expected, sorted(sockets)
    )


def test_app_folder_belongs_to_appuser(environment_name, host, host_service):
    ours_only(host_service)
    app = host.file("/app")
    found = (app.is_directory, app.user, app.group, app.mode & 0o022)
    expected = (True, APP_USER, APP_USER, 0)
    assert found == expected, mismatch(
        environment_name,
        host_service,
        "/app (directory, owner, group, group/other write)",
        expected,
        found,
    )
    # What is mounted under /app is the mount's, not the image's (the policy judges mounts).
    mount_points = set(mounts(host))
    not_owned = [
        path
        for path in host.run(
            f"find /app -xdev ! -type l \\( ! -uid {APP_UID} -o ! -gid {APP_GID} -o -perm /022 \\)"
        ).stdout.split()
        if path not in mount_points
    ]
    assert not not_owned, mismatch(
        environment_name,
        host_service,
        f"files under /app not {APP_UID}:{APP_GID} or writable",
        [],
        not_owned[:10],
    )


def test_symlinks_under_app_stay_inside_the_image(environment_name, host, host_service):
    """Every link under /app resolves, within the container's own root, to something that
    exists (a venv pointing at a missing interpreter would fail at the first request)."""
    ours_only(host_service)
    links = host.run("find /app -xdev -type l").stdout.split()
    broken = [link for link in links if not host.file(link).exists]
    assert not broken, mismatch(
        environment_name, host_service, "dangling links under /app", [], broken[:10]
    )


def test_interpreter_is_neither_setuid_nor_writable(environment_name, host, host_service):
    ours_only(host_service)
    main = host.process.get(pid=1)
    executable = host.file(f"/proc/{main.pid}/exe").linked_to
    mode = host.file(executable).mode
    found = (host.file(executable).user, bool(mode & (stat.S_ISUID | stat.S_ISGID)), mode & 0o022)
    assert found == ("root", False, 0), mismatch(
        environment_name,
        host_service,
        f"{executable} (owner, setuid/setgid, group/other write)",
        ("root", False, 0),
        found,
    )


def test_compose_exec_whoami_prints_appuser(environment_name, host, host_service, target):
    ours_only(host_service)
    if not any(host.file(shell).exists for shell in SHELLS):
        pytest.skip("not applicable: the image has no shell to exec into (read from outside)")
    command = [*shlex.split(target.stack.compose_command()), "exec", "-T", host_service, "whoami"]
    found = subprocess.run(command, capture_output=True, text=True, check=False).stdout.strip()
    assert found == APP_USER, mismatch(
        environment_name, host_service, "`compose exec whoami`", APP_USER, found
    )


def test_tls_private_key_is_private_and_readable_by_appuser(
    environment_name, host, host_service, target, container_inspect
):
    ours_only(host_service)
    if not target.environment.tls:
        pytest.skip(f"not applicable: {environment_name} serves plain HTTP")
    variables = dict(
        entry.split("=", 1) for entry in container_inspect(host_service)["Config"]["Env"]
    )
    path = variables.get("APP_TLS_KEY_FILE")
    assert path, mismatch(environment_name, host_service, "APP_TLS_KEY_FILE", "set", None)
    key = host.file(path)
    assert key.exists and key.mode in (0o600, 0o640), mismatch(
        environment_name,
        host_service,
        f"mode of {path}",
        "0600 or 0640",
        oct(key.mode) if key.exists else None,
    )
    readable = host.run(
        f"setpriv --reuid {APP_UID} --regid {APP_GID} --clear-groups test -r %s", path
    )
    assert readable.rc == 0, mismatch(
        environment_name, host_service, f"{path} readable by UID {APP_UID}", True, False
    )


def test_writable_paths_are_writable_by_appuser(environment_name, host, host_service):
    """The paths the policy lets a service write to are usable by the user it runs as."""
    ours_only(host_service)
    allowed = load_policy().writable_paths.get(host_service, [])
    refused = [
        path
        for path in allowed
        if host.run(
            f"setpriv --reuid {APP_UID} --regid {APP_GID} --clear-groups test -w %s", path
        ).rc
    ]
    assert allowed and not refused, mismatch(
        environment_name,
        host_service,
        f"writable by UID {APP_UID}",
        "every allow-listed path",
        refused,
    )
