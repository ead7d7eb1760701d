"""Who really runs: read from /proc, not from the user `docker exec` happens to get."""

from __future__ import annotations

import shlex
import subprocess

import pytest

from pipeline.environments import APP_GID, APP_UID, APP_USER, DATA_SERVICE_USERS, image_name
from pipeline.inspection import parse_processes
from tests.infra.helpers import mismatch

pytestmark = pytest.mark.docker


@pytest.fixture(scope="session")
def processes(container_facts):
    """Service -> every process in its container."""
    return {
        service: parse_processes(facts["processes"].output)
        for service, facts in container_facts.items()
    }


def test_pid1_runs_as_appuser(env_name, app_service, processes):
    pid1 = next(p for p in processes[app_service] if p.pid == 1)
    assert (pid1.uid, pid1.gid) == (APP_UID, APP_GID), mismatch(
        env_name, app_service, "PID 1 uid:gid", (APP_UID, APP_GID), (pid1.uid, pid1.gid)
    )


def test_every_process_runs_as_appuser(env_name, app_service, processes):
    found = {(p.uid, p.gid, p.name) for p in processes[app_service]}
    wrong = {entry for entry in found if entry[:2] != (APP_UID, APP_GID)}
    assert not wrong, mismatch(
        env_name, app_service, "process uid:gid", (APP_UID, APP_GID), sorted(wrong)
    )


def test_compose_exec_whoami_prints_appuser(env_name, app_service, target):
    command = [*shlex.split(target.stack.compose_command()), "exec", "-T", app_service, "whoami"]
    found = subprocess.run(command, capture_output=True, text=True, check=False).stdout.strip()
    assert found == APP_USER, mismatch(
        env_name, app_service, "`compose exec whoami`", APP_USER, found
    )


def test_no_process_runs_as_root(env_name, service, processes):
    service_processes = processes[service]
    assert service_processes, mismatch(env_name, service, "processes", "at least one", [])
    root = [p for p in service_processes if p.uid == 0 or p.gid == 0]
    assert not root, mismatch(env_name, service, "processes running as root", [], root)


def test_data_store_runs_as_its_own_user(env_name, data_store, processes, container_facts):
    store = data_store
    user = DATA_SERVICE_USERS[store]
    account = container_facts[store]["uid"]
    assert account.exit_code == 0, mismatch(env_name, store, f"account {user}", "present", None)
    uid = int(account.output)
    pid1 = next(p for p in processes[store] if p.pid == 1)
    assert pid1.uid == uid, mismatch(env_name, store, "PID 1 user", f"{user} ({uid})", pid1.uid)


def test_image_configured_user_is_appuser(env_name, stage_image, image_config, stage_reference):
    configured = image_config(stage_reference(stage_image))["Config"].get("User") or "root"
    assert configured in (APP_USER, str(APP_UID), f"{APP_UID}:{APP_GID}"), mismatch(
        env_name, image_name(stage_image), "configured user (Config.User)", APP_USER, configured
    )
