"""Who really runs: the processes read from outside, and the user `docker exec` gets."""

from __future__ import annotations

import shlex
import subprocess

import pytest

from pipeline.environments import APP_GID, APP_UID, APP_USER, DATA_SERVICE_USERS
from tests.infra.helpers import mismatch

pytestmark = pytest.mark.docker

SHELLS = ("/bin/sh", "/usr/bin/sh")


def pid1(facts: dict, service: str) -> dict:
    return next(process for process in facts[service]["processes"] if process["pid"] == 1)


def test_pid1_runs_as_appuser(environment_name, app_service, facts):
    process = pid1(facts, app_service)
    found = (process["uid"]["effective"], process["gid"]["effective"])
    assert found == (APP_UID, APP_GID), mismatch(
        environment_name, app_service, "PID 1 uid:gid", (APP_UID, APP_GID), found
    )


def test_every_process_runs_as_appuser(environment_name, app_service, facts):
    found = {
        (p["uid"]["effective"], p["gid"]["effective"], p["name"])
        for p in facts[app_service]["processes"]
    }
    wrong = {entry for entry in found if entry[:2] != (APP_UID, APP_GID)}
    assert not wrong, mismatch(
        environment_name, app_service, "process uid:gid", (APP_UID, APP_GID), sorted(wrong)
    )


def test_compose_exec_whoami_prints_appuser(environment_name, app_service, target, facts):
    programs = {entry["path"] for entry in facts[app_service]["files"]["programs"]}
    if not programs & set(SHELLS):
        pytest.skip("not applicable: the image has no shell to exec into (read from outside)")
    command = [*shlex.split(target.stack.compose_command()), "exec", "-T", app_service, "whoami"]
    found = subprocess.run(command, capture_output=True, text=True, check=False).stdout.strip()
    assert found == APP_USER, mismatch(
        environment_name, app_service, "`compose exec whoami`", APP_USER, found
    )


def test_data_store_runs_as_its_own_user(environment_name, data_store, facts):
    user = DATA_SERVICE_USERS[data_store]
    uid = facts[data_store]["users"].get(user)
    assert uid is not None, mismatch(
        environment_name, data_store, f"account {user}", "present", None
    )
    found = pid1(facts, data_store)["uid"]["effective"]
    assert found == uid, mismatch(
        environment_name, data_store, "PID 1 user", f"{user} ({uid})", found
    )


def test_tls_private_key_is_private_and_readable_by_appuser(
    environment_name, app_service, target, facts
):
    if not target.environment.tls:
        pytest.skip(f"not applicable: {environment_name} serves plain HTTP")
    readings = facts[app_service]["readable"]
    assert readings, mismatch(environment_name, app_service, "APP_TLS_KEY_FILE", "set", None)
    key = readings[0]
    assert key.get("mode") in ("0600", "0640"), mismatch(
        environment_name, app_service, f"mode of {key['path']}", "0600 or 0640", key
    )
    assert key.get("readable"), mismatch(
        environment_name, app_service, f"{key['path']} readable by UID {APP_UID}", True, False
    )


def test_writable_paths_are_writable_by_appuser(environment_name, app_service, facts):
    """The paths the policy lets a service write to are usable by the user it runs as."""
    refused = sorted(
        path for path, writable in facts[app_service]["writable"].items() if not writable
    )
    assert facts[app_service]["writable"] and not refused, mismatch(
        environment_name,
        app_service,
        f"writable by UID {APP_UID}",
        "every allow-listed path",
        refused,
    )
