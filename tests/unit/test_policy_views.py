"""The policy's two views of a service (pipeline/policy/views.py), on realistic input.

`from_compose` reads one service of `docker compose config --format json`; `from_container`
reads `docker container inspect`, the image's `docker image inspect` and the inspector's
facts. The samples (tests/unit/policy_samples.py) have the shapes those commands print.
"""

from __future__ import annotations

import pytest

from pipeline.policy import evaluate, load_policy
from pipeline.policy.views import (
    Mount,
    Published,
    from_compose,
    from_container,
    memory_bytes,
)
from tests.unit.policy_cases import compose, context
from tests.unit.policy_samples import (
    EVERY_IPV4,
    SECRETS_DIR,
    TLS_DIR,
    container_facts,
    container_inspect,
    image_inspect,
    prod_compose,
)

# ---------------------------------------------------------------- from the compose model


def test_prod_app_from_compose_reads_every_field():
    view = from_compose("app", prod_compose("app"))
    expected = {
        "service": "app",
        "image": "dashtam/production:latest",
        "privileged": False,
        "namespaces": {"cgroupns": "private"},
        "cap_add": [],
        "cap_drop": ["ALL"],
        "security_options": ["no-new-privileges=true"],
        "read_only": True,
        "user": "1000:1000",
        "memory_limit": 4 * 2**30,
        "cpu_limit": 2.0,
        "pids_limit": 256,
        "restart": "on-failure:5",
        "published": [Published(8000, "tcp", "", 8443)],
        "command": [],
        "healthcheck": None,
        "facts": None,
        "image_config": None,
    }
    found = {name: getattr(view, name) for name in expected}
    assert found == expected, f"expected {expected}, found {found}"
    assert view.environment["POSTGRES_PASSWORD_FILE"] == "/run/secrets/postgres_password", (
        f"expected the environment as a mapping, found {view.environment}"
    )
    assert not view.running, "expected a compose view not to count as running"


def test_compose_mounts_are_volumes_tmpfs_and_secrets_as_read_only_binds():
    app = from_compose("app", prod_compose("app")).mounts
    expected = [
        Mount("bind", TLS_DIR, "/run/tls", True),
        Mount("tmpfs", "", "/tmp", False),
        Mount("bind", "secret:postgres_password", "/run/secrets/postgres_password", True),
        Mount("bind", "secret:redis_app_password", "/run/secrets/redis_app_password", True),
    ]
    assert app == expected, f"expected {expected}, found {app}"


def test_compose_named_volumes_are_writable_and_tmpfs_options_are_cut():
    config = prod_compose("postgres") | {"tmpfs": ["/run/postgresql:size=16m,mode=1777"]}
    mounts = from_compose("postgres", config).mounts
    expected = [
        Mount("volume", "postgres-data", "/var/lib/postgresql/data", False),
        Mount("tmpfs", "", "/run/postgresql", False),
        Mount("bind", "secret:postgres_password", "/run/secrets/postgres_password", True),
    ]
    assert mounts == expected, f"expected {expected}, found {mounts}"


def test_a_secret_without_a_target_lands_in_run_secrets_under_its_name():
    config = prod_compose("callback") | {"secrets": [{"source": "redis_password"}]}
    secrets = [mount for mount in from_compose("callback", config).mounts if mount.kind == "bind"]
    assert Mount("bind", "secret:redis_password", "/run/secrets/redis_password", True) in secrets, (
        f"expected the secret at /run/secrets/redis_password, found {secrets}"
    )


def test_redis_from_compose_reads_its_command_and_healthcheck():
    view = from_compose("redis", prod_compose("redis"))
    assert view.command[:3] == ["redis-server", "--aclfile", "/run/secrets/redis_users"], (
        f"expected redis-server --aclfile first, found {view.command}"
    )
    assert view.healthcheck is True, f"expected a declared healthcheck, found {view.healthcheck}"
    assert view.published == [], f"expected nothing published, found {view.published}"


def test_entrypoint_and_command_make_one_command_line():
    config = prod_compose("app") | {"entrypoint": ["python", "-m"], "command": ["src.entrypoint"]}
    command = from_compose("app", config).command
    assert command == ["python", "-m", "src.entrypoint"], f"expected both, found {command}"


def test_compose_spellings_are_read_the_way_docker_reads_them():
    config = prod_compose("app") | {
        "cap_add": ["cap_net_raw", "SYS_ADMIN"],
        "security_opt": ["label:type:spc_t", "seccomp = unconfined"],
        "pid": "host",
        "network_mode": "host",
        "ports": [{"target": 8000, "published": "8000", "host_ip": "127.0.0.1"}],
    }
    view = from_compose("app", config)
    assert view.cap_add == ["NET_RAW", "SYS_ADMIN"], f"expected short names, found {view.cap_add}"
    assert view.security_options == ["label=type:spc_t", "seccomp=unconfined"], (
        f"expected key=value options, found {view.security_options}"
    )
    expected = {"cgroupns": "private", "pid": "host", "network": "host"}
    assert view.namespaces == expected, f"expected {expected}, found {view.namespaces}"
    assert view.published == [Published(8000, "tcp", "127.0.0.1", 8000)], (
        f"expected tcp on 127.0.0.1, found {view.published}"
    )


@pytest.mark.parametrize(
    ("healthcheck", "expected"),
    [
        (None, None),
        ({"test": ["CMD", "true"], "interval": "5s"}, True),
        ({"test": ["NONE"]}, False),
        ({"test": ["CMD", "true"], "disable": True}, False),
    ],
    ids=[
        "none declared leaves it to the image",
        "a test is a healthcheck",
        "NONE is none",
        "disable: true is none",
    ],
)
def test_compose_healthcheck(healthcheck, expected):
    config = prod_compose("postgres")
    config.pop("healthcheck")
    if healthcheck is not None:
        config["healthcheck"] = healthcheck
    found = from_compose("postgres", config).healthcheck
    assert found is expected, f"{healthcheck}: expected {expected}, found {found}"


def test_a_healthcheck_that_only_tunes_timings_leaves_the_test_to_the_image():
    # `docker compose config` keeps such a block as it is ({"interval": "5s"}), and the engine
    # then takes the test from the image (moby merges an empty Test with the image's).
    config = prod_compose("app") | {"healthcheck": {"interval": "5s", "start_interval": "1s"}}
    found = from_compose("app", config).healthcheck
    assert found is None, f"expected None (the image's healthcheck counts), found {found}"


def test_an_unlimited_pids_limit_fails_resource_limits():
    view = compose("app", without=("deploy",), mem_limit="512m", cpus=0.5, pids_limit=-1)
    verdict = evaluate(load_policy().control("resource-limits"), view, context("prod", "app"))
    assert verdict.outcome == "fail", f"expected pids_limit -1 to fail, found {verdict}"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("4294967296", 4 * 2**30),
        ("512m", 512 * 2**20),
        ("512MB", 512 * 2**20),
        ("1.5g", 3 * 2**29),
        ("64k", 64 * 2**10),
        (1073741824, 2**30),
        (None, None),
        ("0", None),
        ("", None),
    ],
    ids=str,
)
def test_memory_bytes(value, expected):
    found = memory_bytes(value)
    assert found == expected, f"{value!r}: expected {expected} bytes, found {found}"


def test_routes_name_the_compose_key_of_each_field():
    routes = from_compose("app", prod_compose("app")).routes
    expected = {
        "cap_drop": ["cap_drop"],
        "security_options": ["security_opt"],
        "limits": ["deploy"],
        "namespace.pid": ["pid"],
        "namespace.network": ["network_mode"],
        "tmpfs": ["tmpfs"],
        "secrets": ["secrets"],
    }
    found = {key: routes.get(key) for key in expected}
    assert found == expected, f"expected {expected}, found {found}"


def test_tmpfs_and_secrets_have_routes_only_where_declared():
    routes = from_compose("redis", prod_compose("redis") | {"secrets": []}).routes
    assert "tmpfs" not in routes and "secrets" not in routes, (
        f"expected no tmpfs or secrets route for a service without them, found {sorted(routes)}"
    )


# ---------------------------------------------------------------- from a running container


def app_container(**changes) -> dict:
    inspect = container_inspect("app")
    inspect.update(changes)
    return inspect


def test_prod_app_from_container_reads_every_field():
    facts, image = container_facts("app"), image_inspect()
    view = from_container("app", container_inspect("app"), image, facts)
    expected = {
        "service": "app",
        "image": "dashtam/production:latest",
        "privileged": False,
        "namespaces": {"network": "dashtam-prod_frontend", "ipc": "private", "cgroupns": "private"},
        "cap_add": [],
        "cap_drop": ["ALL"],
        "security_options": ["no-new-privileges=true"],
        "read_only": True,
        "user": "1000:1000",
        "memory_limit": 2**30,
        "cpu_limit": 1.0,
        "pids_limit": 256,
        "restart": "on-failure:5",
        "command": ["python", "-m", "src.entrypoint", "app"],
        "healthcheck": True,
    }
    found = {name: getattr(view, name) for name in expected}
    assert found == expected, f"expected {expected}, found {found}"
    assert view.facts is facts and view.image_config is image, (
        "expected the inspector's facts and the image's configuration kept as they are"
    )
    assert view.running, "expected a container view with facts to count as running"


def test_container_mounts_are_binds_volumes_and_tmpfs():
    mounts = from_container("app", container_inspect("app"), {}, {}).mounts
    expected = [
        Mount("bind", TLS_DIR, "/run/tls", True, "rprivate"),
        *(
            Mount("bind", f"{SECRETS_DIR}/{name}", f"/run/secrets/{name}", True, "rprivate")
            for name in ("postgres_password", "redis_app_password")
        ),
        Mount("tmpfs", "", "/tmp", False),
    ]
    assert mounts == expected, f"expected {expected}, found {mounts}"
    postgres = from_container("postgres", container_inspect("postgres"), {}, {}).mounts
    data = [mount for mount in postgres if mount.target == "/var/lib/postgresql/data"]
    source = "/var/lib/docker/volumes/dashtam-prod_postgres-data/_data"
    assert data == [Mount("volume", source, "/var/lib/postgresql/data", False)], (
        f"expected postgres' data volume, writable, found {data}"
    )


def test_a_read_only_tmpfs_is_read_only():
    inspect = container_inspect("app")
    inspect["HostConfig"]["Tmpfs"] = {"/tmp": "ro,size=64m"}
    mounts = from_container("app", inspect, {}, {}).mounts
    assert Mount("tmpfs", "", "/tmp", True) in mounts, f"expected /tmp read-only, found {mounts}"


def test_published_ports_read_every_interface_as_blank_and_keep_a_bind_address():
    ports = {
        "8000/tcp": [
            {"HostIp": EVERY_IPV4, "HostPort": "8443"},
            {"HostIp": "::", "HostPort": "8443"},
        ],
        "8182/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8182"}],
        "9000/udp": [{"HostIp": "", "HostPort": "9000"}],
        "6379/tcp": None,  # exposed by the image, not published
    }
    view = from_container("app", app_container(NetworkSettings={"Ports": ports}), {}, {})
    expected = [
        Published(8000, "tcp", "", 8443),
        Published(8000, "tcp", "", 8443),
        Published(8182, "tcp", "127.0.0.1", 8182),
        Published(9000, "udp", "", 9000),
    ]
    assert view.published == expected, f"expected {expected}, found {view.published}"


@pytest.mark.parametrize(
    ("healthcheck", "expected"),
    [(None, False), ({"Test": ["NONE"]}, False), ({"Test": ["CMD", "true"]}, True)],
    ids=["no healthcheck is none", "NONE is none", "a test is a healthcheck"],
)
def test_container_healthcheck(healthcheck, expected):
    inspect = container_inspect("app")
    inspect["Config"]["Healthcheck"] = healthcheck
    found = from_container("app", inspect, {}, {}).healthcheck
    assert found is expected, f"{healthcheck}: expected {expected}, found {found}"


def test_container_environment_keeps_values_with_equals_signs():
    inspect = container_inspect("app")
    inspect["Config"]["Env"] = ["URL=redis://redis:6379/0?a=b", "EMPTY=", "NOVALUE"]
    found = from_container("app", inspect, {}, {}).environment
    expected = {"URL": "redis://redis:6379/0?a=b", "EMPTY": ""}
    assert found == expected, f"expected {expected}, found {found}"


def test_no_limits_read_as_none():
    inspect = container_inspect("app")
    inspect["HostConfig"].update(Memory=0, NanoCpus=0, PidsLimit=None)
    view = from_container("app", inspect, {}, {})
    found = (view.memory_limit, view.cpu_limit, view.pids_limit)
    assert found == (None, None, None), f"expected no limits, found {found}"


def test_a_compose_service_and_its_container_agree_on_the_hardening():
    declared = from_compose("app", prod_compose("app"))
    running = from_container("app", container_inspect("app"), image_inspect(), container_facts())
    fields = ("privileged", "cap_add", "cap_drop", "security_options", "read_only", "user")
    fields += ("restart", "pids_limit")
    differ = {
        name: (getattr(declared, name), getattr(running, name))
        for name in fields
        if getattr(declared, name) != getattr(running, name)
    }
    assert not differ, f"expected compose and docker inspect read alike, found {differ}"
    targets = ({m.target for m in declared.mounts}, {m.target for m in running.mounts})
    assert targets[0] == targets[1], f"expected the same mount targets, found {targets}"


@pytest.mark.parametrize(
    ("port", "expected"),
    [
        ({"target": 80, "published": "12400-12500"}, (80, "tcp", "", 12400)),
        ({"target": 80, "published": "127.0.0.1:8080"}, (80, "tcp", "127.0.0.1", 8080)),
        ({"target": 80, "published": "[::1]:8080", "protocol": "udp"}, (80, "udp", "::1", 8080)),
        ({"target": 80, "host_ip": "::", "published": "8080"}, (80, "tcp", "::", 8080)),
        ({"target": 80}, (80, "tcp", "", 0)),
    ],
    ids=[
        "a host port range",
        "an address written into published",
        "an IPv6 address in brackets, UDP",
        "host_ip on its own",
        "nothing published: the engine picks",
    ],
)
def test_every_published_port_form_compose_allows_is_read_not_crashed_on(port, expected):
    [found] = from_compose("app", {"ports": [port]}).published
    assert (found.container_port, found.protocol, found.host_ip, found.host_port) == expected
