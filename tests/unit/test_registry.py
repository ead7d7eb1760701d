"""The registry's port setting and when a running container counts as the one asked for."""

from __future__ import annotations

import pytest

from pipeline import registry, registry_credentials
from pipeline.errors import PipelineError

IMAGE = "dashtam-airgap/registry:2-debian13"
VOLUME = "dashtam-registry-data"


def inspected(
    image: str = IMAGE,
    host_ip: str = "127.0.0.1",
    port: str = "5000",
    settings: dict | None = None,
    htpasswd: str | None = None,
    htpasswd_digest: str | None = None,
) -> dict:
    """The parts of `docker container inspect` the module reads."""
    settings = registry.LOCKED_DOWN if settings is None else settings
    htpasswd = str(registry_credentials.htpasswd_file()) if htpasswd is None else htpasswd
    return {
        "Config": {
            "Image": image,
            "Labels": {
                registry.ROLE_LABEL: registry.ROLE,
                registry.HTPASSWD_LABEL: htpasswd_digest or registry_credentials.htpasswd_digest(),
            },
            "Env": [f"{key}={value}" for key, value in settings.items()],
        },
        "HostConfig": {"PortBindings": {"5000/tcp": [{"HostIp": host_ip, "HostPort": port}]}},
        "Mounts": [
            {"Type": "volume", "Name": VOLUME, "Destination": "/var/lib/registry"},
            {"Type": "bind", "Source": htpasswd, "Destination": registry.HTPASSWD_IN_CONTAINER},
        ],
    }


def test_port_is_5000_when_the_setting_is_unset(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv(registry.PORT_VARIABLE, raising=False)
    assert registry.registry_port() == 5000


def test_port_comes_from_the_setting(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv(registry.PORT_VARIABLE, " 5001 ")
    assert registry.registry_port() == 5001


@pytest.mark.parametrize("value", ["five", "0", "65536", "-1", "5000.0"])
def test_a_value_that_is_no_port_is_named_with_the_setting(
    monkeypatch: pytest.MonkeyPatch, value: str
):
    monkeypatch.setenv(registry.PORT_VARIABLE, value)
    with pytest.raises(PipelineError, match=rf"^{registry.PORT_VARIABLE}='{value}' is not a port"):
        registry.registry_port()


@pytest.mark.parametrize(
    ("changes", "as_asked"),
    [
        ({}, True),
        ({"image": "registry:3.1.1"}, False),
        ({"host_ip": "0.0.0.0"}, False),  # noqa: S104 - a binding, not a listener
        ({"port": "5001"}, False),
        ({"settings": {}}, False),
        ({"settings": {**registry.LOCKED_DOWN, "REGISTRY_STORAGE_DELETE_ENABLED": "true"}}, False),
        ({"htpasswd": "/tmp/someone-else-s"}, False),
        ({"htpasswd_digest": "0" * 16}, False),
    ],
    ids=[
        "same",
        "other-image",
        "other-host-ip",
        "other-port",
        "no authentication (an older pipeline's)",
        "deletes enabled",
        "another htpasswd file",
        "started with credentials made before the ones now",
    ],
)
def test_a_container_is_reused_only_as_asked(changes: dict, as_asked: bool):
    assert registry.is_as_asked(inspected(**changes), IMAGE, VOLUME, 5000) is as_asked


def test_a_container_on_another_volume_is_not_as_asked():
    assert not registry.is_as_asked(inspected(), IMAGE, "another-volume", 5000)


def test_a_container_without_the_label_is_refused_by_name():
    details = inspected()
    details["Config"]["Labels"] = {}
    with pytest.raises(PipelineError, match="named dashtam-registry exists"):
        registry.require_made_here(details, "dashtam-registry")


def test_the_registry_lock_is_the_user_s_own_and_private(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    path = registry.lock_file()
    assert path == tmp_path / "cache" / "dashtam" / "registry.lock", path
    with registry._one_at_a_time(timeout=1):
        mode = path.stat().st_mode & 0o777
    assert mode == 0o600, f"the lock file: expected mode 0600, found {mode:o}"


def test_a_held_registry_lock_ends_in_one_line_not_a_hang(tmp_path):
    import fcntl

    lock = tmp_path / "registry.lock"
    with open(lock, "w") as holder:
        fcntl.flock(holder, fcntl.LOCK_EX)
        with (
            pytest.raises(PipelineError, match=r"another session has held .* for 0 s"),
            registry._one_at_a_time(lock, timeout=0.3),
        ):
            pass


def test_the_registry_lock_is_never_taken_through_a_symlink(tmp_path):
    target = tmp_path / "someone-else-s-file"
    target.write_text("theirs\n")
    (tmp_path / "registry.lock").symlink_to(target)
    with pytest.raises(OSError), registry._one_at_a_time(tmp_path / "registry.lock", timeout=1):
        pass
    assert target.read_text() == "theirs\n"
