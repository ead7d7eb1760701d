"""The baseline profile of the security policy on crafted services (see test_policy.py)."""

from __future__ import annotations

import pytest

from pipeline import redis_users
from pipeline.policy import load_policy
from pipeline.policy.views import Published, from_compose
from tests.unit.policy_cases import (
    CASE_FIELDS,
    DOCKER_SOCKET,
    FAIL,
    NA,
    PASS,
    SECRET,
    WORKER,
    bind,
    case,
    check,
    compose,
    files,
    finding,
    process,
    running,
)
from tests.unit.policy_samples import EVERY_IPV4, container_facts, prod_compose

APP_POSTGRES = {"POSTGRES_PASSWORD": SECRET}


def view_with_volumes(volumes: list[dict], defined: dict):
    """The app with these mounts, in a model whose top-level volumes are `defined`."""
    config = prod_compose("app") | {"volumes": volumes}
    return from_compose("app", config, defined)


def running_published(port: str):
    """The app's container, its port published on the host at `port`."""
    view = running()
    view.published = [Published(8000, "tcp", "", int(port))]
    return view


PASSWORDS = dict.fromkeys(redis_users.RULES, SECRET)
REDIS_USERS = redis_users.users_in_acl_file(redis_users.acl_file(PASSWORDS))
APP_REFUSED = load_policy().control("redis-users").parameters["refused"]["app"]


def acl_with(**users: str) -> dict:
    """The running Redis' facts with its ACL users changed (NAME="RULE RULE …")."""
    changed = {**REDIS_USERS, **{name: rules.split() for name, rules in users.items()}}
    return {"unauthenticated_ping": "-NOAUTH Authentication required.", "acl_users": changed}


def app_replies(**changed: str) -> dict:
    replies = {"AUTH": "+OK", **dict.fromkeys(APP_REFUSED, "-NOPERM no permissions")}
    return {**replies, **{command.replace("_", " "): reply for command, reply in changed.items()}}


BASELINE = [
    case("an unprivileged container passes", "privileged", compose(), PASS),
    case("a privileged service fails", "privileged", compose(privileged=True), FAIL, "True"),
    case("a privileged container fails", "privileged", running(host={"Privileged": True}), FAIL),
    case("private namespaces pass", "host-namespaces", compose(), PASS),
    case("the host's pid namespace fails", "host-namespaces", compose(pid="host"), FAIL, "pid"),
    case(
        "a container on the host network fails",
        "host-namespaces",
        running(host={"NetworkMode": "host"}),
        FAIL,
        "network: host",
    ),
    case(
        "a default capability added passes",
        "capabilities-baseline",
        compose(cap_add=["NET_BIND_SERVICE"]),
        PASS,
    ),
    case(
        "SYS_ADMIN added fails",
        "capabilities-baseline",
        compose(cap_add=["SYS_ADMIN"]),
        FAIL,
        "SYS_ADMIN",
    ),
    case(
        "CAP_SYS_PTRACE added fails under its short name",
        "capabilities-baseline",
        compose(cap_add=["cap_sys_ptrace"]),
        FAIL,
        "'SYS_PTRACE'",
    ),
    case("ALL added fails", "capabilities-baseline", compose(cap_add=["ALL"]), FAIL, "ALL"),
    case("confinement left on passes", "kernel-confinement", compose(), PASS),
    case(
        "seccomp:unconfined fails",
        "kernel-confinement",
        compose(security_opt=["seccomp:unconfined"]),
        FAIL,
        "seccomp=unconfined",
    ),
    case(
        "the spc_t label fails",
        "kernel-confinement",
        compose(security_opt=["label:type:spc_t"]),
        FAIL,
        "label=type:spc_t",
    ),
    case(
        "an unconfined AppArmor container fails",
        "kernel-confinement",
        running(host={"SecurityOpt": ["apparmor=unconfined"]}),
        FAIL,
        "apparmor=unconfined",
    ),
    case("a TLS folder bind passes", "sensitive-host-paths", compose(), PASS),
    case(
        "a named volume passes",
        "sensitive-host-paths",
        compose(volumes=[{"type": "volume", "source": "etc", "target": "/etc"}]),
        PASS,
    ),
    case(
        "a bind of /srv/data passes",
        "sensitive-host-paths",
        compose(volumes=[bind("/srv/data")]),
        PASS,
    ),
    *[
        case(
            f"a bind of {source} fails",
            "sensitive-host-paths",
            compose(volumes=[bind(source)]),
            FAIL,
            f"{source}:/host",
        )
        for source in (
            "/",
            "/etc/ssl",
            "/home/alice",
            "/var/run/docker.sock",
            "/var",
            "/proc",
            "/root/.ssh",
            "/home/alice/.ssh",
            "/home/alice/.aws/credentials",
            "/srv/deploy/.ssh/id_ed25519",
            "/usr/lib",
            "/bin",
            "/lib64",
            "/sbin",
            "/run/containerd",
            "/var/lib/docker/volumes",
        )
    ],
    case(
        "a checkout under a home passes",
        "sensitive-host-paths",
        compose(volumes=[bind("/home/alice/dashtam/src")]),
        PASS,
    ),
    case(
        "a named volume that binds /etc fails",
        "sensitive-host-paths",
        view_with_volumes(
            [{"type": "volume", "source": "config", "target": "/config"}],
            {
                "config": {
                    "driver": "local",
                    "driver_opts": {"type": "none", "o": "bind", "device": "/etc"},
                }
            },
        ),
        FAIL,
        "config (binds /etc):/config",
    ),
    case(
        "a named volume of another driver passes",
        "sensitive-host-paths",
        view_with_volumes(
            [{"type": "volume", "source": "data", "target": "/data"}],
            {"data": {"driver": "nfs", "driver_opts": {"o": "bind", "device": "/etc"}}},
        ),
        PASS,
    ),
    case("a container with TLS and secret binds passes", "sensitive-host-paths", running(), PASS),
    case(
        "a container with the Docker socket fails",
        "sensitive-host-paths",
        running(inspect_mounts=[DOCKER_SOCKET]),
        FAIL,
        "/var/run/docker.sock:/var/run/docker.sock",
    ),
    case("processes as appuser pass", "processes-non-root", running(), PASS),
    case(
        "a process with effective uid 0 fails",
        "processes-non-root",
        running(processes=[process(effective=0)]),
        FAIL,
        "uid 1000/0",
    ),
    case(
        "a process with gid 0 fails",
        "processes-non-root",
        running(processes=[process(gid=0)]),
        FAIL,
        "gid 0/0",
    ),
    case(
        "no process at all fails",
        "processes-non-root",
        running(processes=[]),
        FAIL,
        "at least one",
    ),
    case("a compose service", "processes-non-root", compose(), NA, "read at runtime"),
    case("TCP 8000 on IPv4 and IPv6 passes", "listening-sockets", running(), PASS),
    case(
        "another TCP port fails",
        "listening-sockets",
        running(sockets=[{"protocol": "tcp", "address": EVERY_IPV4, "port": 9000}]),
        FAIL,
        "9000/tcp",
    ),
    case(
        "a UDP socket fails",
        "listening-sockets",
        running(
            sockets=[
                *container_facts()["sockets"],
                {"protocol": "udp6", "address": "::", "port": 5353},
            ]
        ),
        FAIL,
        "5353/udp",
    ),
    case("a compose service", "listening-sockets", compose(), NA, "read at runtime"),
    case(
        "a container of another project",
        "listening-sockets",
        running(),
        NA,
        "knows no port for app",
        environment=None,
    ),
    case("app published on any address passes", "published-ports", compose(), PASS),
    case(
        "postgres published fails",
        "published-ports",
        compose("postgres", ports=[{"target": 5432, "published": "5432", "protocol": "tcp"}]),
        FAIL,
        "*:5432->5432",
    ),
    case(
        "app on 127.0.0.1 passes",
        "published-ports",
        compose(ports=[{"target": 8000, "published": "8000", "host_ip": "127.0.0.1"}]),
        PASS,
        environment="dev",
    ),
    case(
        "app on every interface fails",
        "published-ports",
        compose(),
        FAIL,
        "all interfaces:8443->8000",
        environment="dev",
    ),
    case(
        "a container on 0.0.0.0 fails",
        "published-ports",
        running(),
        FAIL,
        "all interfaces:8443->8000",
        environment="dev",
    ),
    case("anything published fails", "published-ports", compose(), FAIL, "*:8443", "ci"),
    case(
        "another project's port on every interface fails",
        "published-ports",
        compose(),
        FAIL,
        "all interfaces:8443->8000",
        environment=None,
    ),
    case(
        "another project's port on a chosen address passes",
        "published-ports",
        compose(ports=[{"target": 8000, "published": "8000", "host_ip": "10.0.0.5"}]),
        PASS,
        environment=None,
    ),
    case("port 8443 passes", "privileged-ports", compose(), PASS),
    case(
        "port 80 fails",
        "privileged-ports",
        compose(ports=[{"target": 8000, "published": "80", "host_ip": "127.0.0.1"}]),
        FAIL,
        "127.0.0.1:80->8000",
    ),
    case(
        "a range starting at 443 fails",
        "privileged-ports",
        compose(ports=[{"target": 8000, "published": "443-450"}]),
        FAIL,
        "all interfaces:443->8000",
    ),
    case(
        "a container publishing 22 fails",
        "privileged-ports",
        running_published("22"),
        FAIL,
        ":22->8000",
    ),
    case("private propagation passes", "mount-propagation", compose(), PASS),
    case(
        "rshared propagation fails",
        "mount-propagation",
        compose(volumes=[{**bind("/srv/x", "/x"), "bind": {"propagation": "rshared"}}]),
        FAIL,
        "/x (rshared)",
    ),
    case(
        "a container's shared bind fails",
        "mount-propagation",
        running(inspect_mounts=[{**DOCKER_SOCKET, "Propagation": "shared"}]),
        FAIL,
        "(shared)",
    ),
    case("the engine's cgroup passes", "cgroup-parent", compose(), PASS),
    case(
        "a cgroup parent fails",
        "cgroup-parent",
        compose(cgroup_parent="/custom"),
        FAIL,
        "/custom",
    ),
    case(
        "a container with a cgroup parent fails",
        "cgroup-parent",
        running(host={"CgroupParent": "system.slice"}),
        FAIL,
        "system.slice",
    ),
    case("no device passes", "host-devices", compose(), PASS),
    case(
        "a host device fails",
        "host-devices",
        compose(devices=["/dev/sda:/dev/xvda:rwm"]),
        FAIL,
        "/dev/sda",
    ),
    case(
        "a container with a device fails",
        "host-devices",
        running(host={"Devices": [{"PathOnHost": "/dev/fuse", "PathInContainer": "/dev/fuse"}]}),
        FAIL,
        "/dev/fuse",
    ),
    case("a project network passes", "no-default-bridge", running(), PASS),
    case(
        "the default bridge fails",
        "no-default-bridge",
        compose(network_mode="bridge"),
        FAIL,
        "bridge",
    ),
    case(
        "a container on the default bridge fails",
        "no-default-bridge",
        running(host={"NetworkMode": "default"}),
        FAIL,
        "default",
    ),
    case("no sshd passes", "no-sshd", running(), PASS),
    case(
        "an sshd process fails",
        "no-sshd",
        running(processes=[process(), process(pid=7, name="sshd")]),
        FAIL,
        "sshd (pid 7)",
    ),
    case("sshd before it runs", "no-sshd", compose(), NA, "at runtime"),
    case("postgres' pg_isready passes", "healthcheck", compose("postgres"), PASS),
    case(
        "a NONE healthcheck fails",
        "healthcheck",
        compose("postgres", healthcheck={"test": ["NONE"]}),
        FAIL,
    ),
    case(
        "a disabled healthcheck fails",
        "healthcheck",
        compose("postgres", healthcheck={"disable": True}),
        FAIL,
        "none",
    ),
    case(
        "a compose service that leaves it to the image", "healthcheck", compose(), NA, "HEALTHCHECK"
    ),
    case("the image's healthcheck passes at runtime", "healthcheck", running(), PASS),
    case(
        "a container without one fails",
        "healthcheck",
        running(config={"Healthcheck": None}),
        FAIL,
    ),
    case(
        "postgres asking a password passes", "data-store-authentication", compose("postgres"), PASS
    ),
    case(
        "postgres trusting everyone fails",
        "data-store-authentication",
        compose("postgres", environment={"POSTGRES_HOST_AUTH_METHOD": "trust"}),
        FAIL,
        "trust",
    ),
    case("redis with an ACL file passes", "data-store-authentication", compose("redis"), PASS),
    case(
        "redis with --requirepass passes",
        "data-store-authentication",
        compose("redis", command=["redis-server", "--requirepass", "x"]),
        PASS,
    ),
    case(
        "redis without authentication fails",
        "data-store-authentication",
        compose("redis", command=["redis-server", "--appendonly", "yes"]),
        FAIL,
        "--requirepass, --aclfile or --user default off",
    ),
    case(
        "redis with its users as arguments, the default off, passes",
        "data-store-authentication",
        compose("redis", command=["redis-server", *redis_users.server_arguments(PASSWORDS)]),
        PASS,
    ),
    case("redis's users, one per service, pass", "redis-users", running("redis"), PASS),
    case(
        "redis's default user on fails",
        "redis-users",
        running("redis", redis=acl_with(default="on nopass ~* +@all")),
        FAIL,
        "the default user is on",
    ),
    case(
        "a redis user with every key and every command fails",
        "redis-users",
        running("redis", redis=acl_with(callback="on ~* &* +@all")),
        FAIL,
        "callback has every key and every command",
    ),
    case(
        "every command taken back in part passes",
        "redis-users",
        running("redis", redis=acl_with(callback="on ~* +@all -@dangerous")),
        PASS,
    ),
    case(
        "one redis user shared by the services fails",
        "redis-users",
        running("redis", redis=acl_with(shared="on ~app:* +@read")),
        FAIL,
        "users ['app', 'callback', 'health', 'shared']",
    ),
    case(
        "an unreadable ACL file fails",
        "redis-users",
        running("redis", redis={"unauthenticated_ping": "-NOAUTH", "acl_users": None}),
        FAIL,
        "unreadable",
    ),
    case(
        "redis's users as arguments pass",
        "redis-users",
        compose("redis", command=["redis-server", *redis_users.server_arguments(PASSWORDS)]),
        PASS,
    ),
    case(
        "one password for everything (--requirepass) fails",
        "redis-users",
        compose("redis", command=["redis-server", "--requirepass", "x"]),
        FAIL,
        "the default user is on",
    ),
    case("an ACL file before it runs", "redis-users", compose("redis"), NA, "judged when it runs"),
    case("the app refused what is not its own passes", "redis-users", running(), PASS),
    case(
        "the app allowed FLUSHALL fails",
        "redis-users",
        running(redis_replies=app_replies(FLUSHALL="+OK")),
        FAIL,
        "FLUSHALL",
    ),
    case(
        "a service whose login fails proves nothing and fails",
        "redis-users",
        running(redis_replies=app_replies(AUTH="-WRONGPASS invalid username-password pair")),
        FAIL,
        "WRONGPASS",
    ),
    case(
        "an app with no redis user of its own fails",
        "redis-users",
        running(redis_replies=None),
        FAIL,
        "no Redis user of its own",
    ),
    case("the callback before it runs", "redis-users", compose("callback"), NA, "running stack"),
    case("postgres", "redis-users", compose("postgres"), NA, "does not log in to Redis"),
    case(
        "a project that is not the stack",
        "redis-users",
        compose("redis"),
        NA,
        "not the stack",
        environment=None,
    ),
    case(
        "redis with no command fails",
        "data-store-authentication",
        compose("redis", command=None),
        FAIL,
        "no command",
    ),
    case(
        "a running postgres refusing logins passes",
        "data-store-authentication",
        running("postgres"),
        PASS,
    ),
    case(
        "a running postgres accepting any login fails",
        "data-store-authentication",
        running(
            "postgres", postgres={"without_password": "accepted", "wrong_password": "accepted"}
        ),
        FAIL,
        "accepted",
    ),
    case(
        "a running postgres that does not answer fails",
        "data-store-authentication",
        running("postgres", postgres={"without_password": "no answer: [Errno 111]"}),
        FAIL,
        "no answer",
    ),
    case(
        "a running redis answering NOAUTH passes",
        "data-store-authentication",
        running("redis"),
        PASS,
    ),
    case(
        "a running redis answering PONG fails",
        "data-store-authentication",
        running("redis", redis={"unauthenticated_ping": "+PONG"}),
        FAIL,
        "+PONG",
    ),
    case("app", "data-store-authentication", compose(), NA, "not one of the stack's data stores"),
    case(
        "the postgres of another project",
        "data-store-authentication",
        compose("postgres"),
        NA,
        "not one of",
        environment=None,
    ),
    case("app's two secrets pass", "least-secrets", compose(), PASS),
    case("redis' ACL file and password pass", "least-secrets", compose("redis"), PASS),
    case(
        "callback with postgres' secret file fails",
        "least-secrets",
        compose("callback", secrets=[{"source": "postgres_password"}]),
        FAIL,
        "postgres_password",
    ),
    case(
        "callback with postgres' password variable fails",
        "least-secrets",
        compose("callback", environment=APP_POSTGRES),
        FAIL,
        "postgres_password",
    ),
    case(
        "a running redis given postgres' password fails",
        "least-secrets",
        running("redis", config={"Env": ["POSTGRES_PASSWORD_FILE=/run/secrets/x"]}),
        FAIL,
        "postgres_password",
    ),
    case("a service it lists none for", "least-secrets", WORKER, NA, "no secrets for worker"),
    case("an image user appuser passes", "image-user-non-root", running(), PASS),
    *[
        case(
            f"an image user {user!r} fails",
            "image-user-non-root",
            running(image_user=user),
            FAIL,
            user or "not set (root)",
        )
        for user in ("", "root", "0:0")
    ],
    case("postgres' image", "image-user-non-root", running("postgres"), NA, "not built from"),
    case("a compose service", "image-user-non-root", compose(), NA, "at runtime"),
    *[
        case(f"{sentence} passes", control, running(), PASS)
        for control, sentence in (
            ("no-setuid-files", "an image without setuid files"),
            ("no-world-writable-files", "an image with nothing world-writable"),
            ("app-files-owned-by-appuser", "an /app that is all appuser's"),
        )
    ],
    case(
        "a setuid su fails",
        "no-setuid-files",
        running(files=files(special_bits=[finding("/usr/bin/su", "4755")])),
        FAIL,
        "/usr/bin/su (4755 0:0)",
    ),
    case(
        "a world-writable folder fails",
        "no-world-writable-files",
        running(files=files(world_writable=[finding("/app/data", "0777", 1000)])),
        FAIL,
        "/app/data (0777 1000:1000)",
    ),
    case(
        "a root-owned source file fails",
        "app-files-owned-by-appuser",
        running(files=files(app=[finding("/app/src/main.py")])),
        FAIL,
        "/app/src/main.py (0644 0:0)",
    ),
    *[
        case(sentence, control, view, NA, detail)
        for control in ("no-setuid-files", "no-world-writable-files", "app-files-owned-by-appuser")
        for sentence, view, detail in (
            ("postgres' image", running("postgres"), "not built from docker/Dockerfile"),
            ("a compose service", compose(), "read at runtime"),
        )
    ],
]


@pytest.mark.parametrize(CASE_FIELDS, BASELINE)
def test_baseline_control(control_id, view, environment, outcome, detail):
    check(control_id, view, environment, outcome, detail)
