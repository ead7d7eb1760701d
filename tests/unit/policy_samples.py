"""Realistic input for the policy tests, in the shapes the pipeline reads.

- PROD_COMPOSE: prod's services as `docker compose config --format json` prints them (taken
  from a real run on compose/docker-compose.prod.yml and env/.env.prod.example);
- container_inspect(): a prod container as `docker container inspect` prints it;
- image_inspect(): its image as `docker image inspect` prints it;
- container_facts(): what pipeline/inspector.py reads from a container that keeps every promise.

Every function returns a fresh copy: a test changes what it is about and nothing else.
"""

from __future__ import annotations

import copy

from pipeline import redis_users
from pipeline.policy import load_policy

# How docker inspect and /proc write "every interface" (read here, never bound).
EVERY_IPV4 = "0.0.0.0"  # noqa: S104
TLS_DIR = "/srv/dashtam/tls"
SECRETS_DIR = "/srv/dashtam/secrets"

_HARDENING = {
    "cap_drop": ["ALL"],
    "cgroup": "private",
    "read_only": True,
    "restart": "on-failure:5",
    "security_opt": ["no-new-privileges:true"],
}
_TLS_VOLUME = {
    "type": "bind",
    "source": TLS_DIR,
    "target": "/run/tls",
    "read_only": True,
    "bind": {"create_host_path": True},
}


def _secret(name: str) -> dict:
    return {"source": name, "target": f"/run/secrets/{name}"}


_PROD_COMPOSE: dict[str, dict] = {
    "app": {
        **_HARDENING,
        "command": None,
        "deploy": {
            "resources": {
                "limits": {"cpus": 2, "memory": "4294967296", "pids": 256},
                "reservations": {"cpus": 1, "memory": "2147483648"},
            },
            "placement": {},
        },
        "entrypoint": None,
        "environment": {
            "APP_DEBUG": "false",
            "APP_ENV": "production",
            "APP_TLS_CERT_FILE": "/run/tls/tls.crt",
            "APP_TLS_KEY_FILE": "/run/tls/tls.key",
            "POSTGRES_DB": "dashtam",
            "POSTGRES_HOST": "postgres",
            "POSTGRES_PASSWORD_FILE": "/run/secrets/postgres_password",
            "POSTGRES_USER": "dashtam",
            "REDIS_HOST": "redis",
            "REDIS_PASSWORD_FILE": "/run/secrets/redis_app_password",
            "REDIS_USER": "app",
        },
        "image": "dashtam/production:latest",
        "networks": {"cache": None, "database": None, "frontend": None},
        "ports": [{"mode": "ingress", "target": 8000, "published": "8443", "protocol": "tcp"}],
        "secrets": [_secret("postgres_password"), _secret("redis_app_password")],
        "tmpfs": ["/tmp"],
        "user": "1000:1000",
        "volumes": [_TLS_VOLUME],
    },
    "callback": {
        **_HARDENING,
        "command": None,
        "deploy": {
            "resources": {"limits": {"cpus": 0.5, "memory": "536870912", "pids": 128}},
            "placement": {},
        },
        "entrypoint": None,
        "environment": {
            "APP_DEBUG": "false",
            "APP_ENV": "production",
            "APP_TLS_CERT_FILE": "/run/tls/tls.crt",
            "APP_TLS_KEY_FILE": "/run/tls/tls.key",
            "REDIS_HOST": "redis",
            "REDIS_PASSWORD_FILE": "/run/secrets/redis_callback_password",
            "REDIS_USER": "callback",
        },
        "image": "dashtam/callback:latest",
        "networks": {"cache": None, "frontend": None},
        "ports": [{"mode": "ingress", "target": 8182, "published": "8182", "protocol": "tcp"}],
        "secrets": [_secret("redis_callback_password")],
        "tmpfs": ["/tmp"],
        "user": "1000:1000",
        "volumes": [_TLS_VOLUME],
    },
    "postgres": {
        **_HARDENING,
        "command": None,
        "deploy": {
            "resources": {"limits": {"cpus": 1, "memory": "1073741824", "pids": 256}},
            "placement": {},
        },
        "entrypoint": None,
        "environment": {
            "POSTGRES_DB": "dashtam",
            "POSTGRES_PASSWORD_FILE": "/run/secrets/postgres_password",
            "POSTGRES_USER": "dashtam",
        },
        "healthcheck": {
            "test": [
                "CMD-SHELL",
                'pg_isready -U "$$POSTGRES_USER" -d "$$POSTGRES_DB" -h 127.0.0.1',
            ],
            "timeout": "3s",
            "interval": "5s",
            "retries": 5,
            "start_period": "30s",
            "start_interval": "1s",
        },
        "image": "postgres:17.6",
        "networks": {"database": None},
        "secrets": [_secret("postgres_password")],
        "tmpfs": ["/run/postgresql", "/tmp"],
        "user": "999:999",
        "volumes": [
            {
                "type": "volume",
                "source": "postgres-data",
                "target": "/var/lib/postgresql/data",
                "volume": {},
            }
        ],
    },
    "redis": {
        **_HARDENING,
        "command": [
            "redis-server",
            "--aclfile",
            "/run/secrets/redis_users",
            "--appendonly",
            "yes",
            "--maxmemory",
            "192mb",
            "--maxmemory-policy",
            "noeviction",
        ],
        "deploy": {
            "resources": {"limits": {"cpus": 0.5, "memory": "268435456", "pids": 64}},
            "placement": {},
        },
        "entrypoint": None,
        "healthcheck": {
            "test": [
                "CMD-SHELL",
                'REDISCLI_AUTH="$$(cat /run/secrets/redis_health_password)" '
                "redis-cli --user health ping | grep -q PONG",
            ],
            "timeout": "3s",
            "interval": "5s",
            "retries": 5,
            "start_period": "10s",
            "start_interval": "1s",
        },
        "image": "redis:8.2.1",
        "networks": {"cache": None},
        "secrets": [_secret("redis_users"), _secret("redis_health_password")],
        "user": "999:999",
        "volumes": [{"type": "volume", "source": "redis-data", "target": "/data", "volume": {}}],
    },
}


def prod_compose(service: str) -> dict:
    """One service of prod's `docker compose config --format json`."""
    return copy.deepcopy(_PROD_COMPOSE[service])


# ---------------------------------------------------------------- a running prod container

# What differs between the services' containers; the rest is the same hardening.
_CONTAINERS = {
    "app": {
        "image": "dashtam/production:latest",
        "user": "1000:1000",
        "port": 8000,
        "published": "8443",
        "path": "python",
        "args": ["-m", "src.entrypoint", "app"],
        "tmpfs": ["/tmp"],
        "volume": None,
        "secrets": ["postgres_password", "redis_app_password"],
        "environment": [
            "POSTGRES_PASSWORD_FILE=/run/secrets/postgres_password",
            "REDIS_USER=app",
            "REDIS_PASSWORD_FILE=/run/secrets/redis_app_password",
            "APP_TLS_KEY_FILE=/run/tls/tls.key",
        ],
        "healthcheck": ["CMD", "python", "-m", "src.healthcheck", "app"],
        "processes": [(1, "python", 1000)],
    },
    "postgres": {
        "image": "postgres:17.6",
        "user": "999:999",
        "port": 5432,
        "published": None,
        "path": "docker-entrypoint.sh",
        "args": ["postgres"],
        "tmpfs": ["/run/postgresql", "/tmp"],
        "volume": "/var/lib/postgresql/data",
        "secrets": ["postgres_password"],
        "environment": ["POSTGRES_PASSWORD_FILE=/run/secrets/postgres_password"],
        "healthcheck": ["CMD-SHELL", 'pg_isready -U "$POSTGRES_USER" -h 127.0.0.1'],
        "processes": [(1, "postgres", 999), (27, "postgres", 999)],
    },
    "redis": {
        "image": "redis:8.2.1",
        "user": "999:999",
        "port": 6379,
        "published": None,
        "path": "docker-entrypoint.sh",
        "args": ["redis-server", "--aclfile", "/run/secrets/redis_users"],
        "tmpfs": [],
        "volume": "/data",
        "secrets": ["redis_users", "redis_health_password"],
        "environment": [],
        "healthcheck": ["CMD-SHELL", "redis-cli --user health ping | grep -q PONG"],
        "processes": [(1, "redis-server", 999)],
    },
}


def container_inspect(service: str = "app") -> dict:
    """`docker container inspect` of one prod container (the entry of its JSON list)."""
    spec = _CONTAINERS[service]
    port = f"{spec['port']}/tcp"
    mounts = [
        {
            "Type": "bind",
            "Source": TLS_DIR,
            "Destination": "/run/tls",
            "Mode": "ro",
            "RW": False,
            "Propagation": "rprivate",
        }
    ] * (service == "app")
    mounts += [
        {
            "Type": "bind",
            "Source": f"{SECRETS_DIR}/{name}",
            "Destination": f"/run/secrets/{name}",
            "Mode": "",
            "RW": False,
            "Propagation": "rprivate",
        }
        for name in spec["secrets"]
    ]
    if spec["volume"]:
        name = f"dashtam-prod_{service}-data"
        mounts.append(
            {
                "Type": "volume",
                "Name": name,
                "Source": f"/var/lib/docker/volumes/{name}/_data",
                "Destination": spec["volume"],
                "Driver": "local",
                "Mode": "z",
                "RW": True,
                "Propagation": "",
            }
        )
    bindings = (
        [
            {"HostIp": EVERY_IPV4, "HostPort": spec["published"]},
            {"HostIp": "::", "HostPort": spec["published"]},
        ]
        if spec["published"]
        else None
    )
    return {
        "Id": "9c1e5c0b3a7f4d2e8b6a1f0c3d5e7a9b1c3d5e7f9a1b3c5d7e9f1a3b5c7d9e1f",
        "Created": "2025-06-01T10:00:00.000000000Z",
        "Path": spec["path"],
        "Args": list(spec["args"]),
        "State": {"Status": "running", "Running": True, "Pid": 4242, "ExitCode": 0},
        "Image": "sha256:5d1f9c0e2b4a6c8e0f2a4b6c8d0e2f4a6b8c0d2e4f6a8b0c2d4e6f8a0b2c4d6e",
        "Name": f"/dashtam-prod-{service}-1",
        "RestartCount": 0,
        "HostConfig": {
            "Binds": None,
            "NetworkMode": "dashtam-prod_frontend",
            "PortBindings": {port: [{"HostIp": "", "HostPort": spec["published"]}]}
            if spec["published"]
            else {},
            "RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 5},
            "CapAdd": None,
            "CapDrop": ["ALL"],
            "CgroupnsMode": "private",
            "IpcMode": "private",
            "PidMode": "",
            "Privileged": False,
            "PublishAllPorts": False,
            "ReadonlyRootfs": True,
            "SecurityOpt": ["no-new-privileges:true"],
            "Tmpfs": {path: "" for path in spec["tmpfs"]} or None,
            "UTSMode": "",
            "UsernsMode": "",
            "Memory": 1073741824,
            "NanoCpus": 1000000000,
            "PidsLimit": 256,
            "MaskedPaths": ["/proc/acpi", "/proc/kcore", "/sys/firmware"],
            "ReadonlyPaths": ["/proc/bus", "/proc/sys"],
        },
        "Mounts": mounts,
        "Config": {
            "Hostname": "9c1e5c0b3a7f",
            "User": spec["user"],
            "ExposedPorts": {port: {}},
            "Env": [*spec["environment"], "PATH=/usr/local/bin:/usr/bin:/bin"],
            "Cmd": list(spec["args"]),
            "Healthcheck": {"Test": list(spec["healthcheck"]), "Interval": 5000000000},
            "Image": spec["image"],
            "Entrypoint": [spec["path"]],
            "Labels": {
                "com.docker.compose.project": "dashtam-prod",
                "com.docker.compose.service": service,
            },
        },
        "NetworkSettings": {
            "Ports": {port: bindings},
            "Networks": {"dashtam-prod_frontend": {"IPAddress": "172.20.0.3"}},
        },
    }


def image_inspect(user: str = "appuser") -> dict:
    """`docker image inspect` of the image a container runs (the entry of its JSON list)."""
    return {
        "Id": "sha256:5d1f9c0e2b4a6c8e0f2a4b6c8d0e2f4a6b8c0d2e4f6a8b0c2d4e6f8a0b2c4d6e",
        "RepoTags": ["dashtam/production:latest"],
        "Config": {
            "User": user,
            "Env": ["PATH=/usr/local/bin:/usr/bin:/bin"],
            "Entrypoint": ["python", "-m", "src.entrypoint"],
            "Cmd": ["app"],
        },
    }


def _mount(options: str, kind: str = "tmpfs") -> dict:
    return {"options": options.split(","), "type": kind, "source": kind}


def container_facts(service: str = "app") -> dict:
    """What the inspector reads from one prod container that keeps every promise."""
    spec = _CONTAINERS[service]
    mounts = {
        "/": _mount("ro,relatime", "overlay"),
        # Every container has these; no compose file declares them.
        "/proc": _mount("rw,nosuid,nodev,noexec,relatime", "proc"),
        "/dev": _mount("rw,nosuid,size=65536k,mode=755"),
        "/dev/shm": _mount("rw,nosuid,nodev,noexec,relatime,size=65536k"),
        "/sys": _mount("ro,nosuid,nodev,noexec,relatime", "sysfs"),
        "/etc/hosts": _mount("rw,relatime", "ext4"),
        "/etc/hostname": _mount("rw,relatime", "ext4"),
        "/etc/resolv.conf": _mount("rw,relatime", "ext4"),
        "/proc/kcore": _mount("rw,nosuid,size=65536k,mode=755"),
        **{f"/run/secrets/{name}": _mount("ro,relatime", "ext4") for name in spec["secrets"]},
        **{path: _mount("rw,nosuid,nodev,noexec,relatime") for path in spec["tmpfs"]},
    }
    if spec["volume"]:
        mounts[spec["volume"]] = _mount("rw,relatime", "ext4")
    if service == "app":
        mounts["/run/tls"] = _mount("ro,relatime", "ext4")
    facts = {
        "processes": [
            {
                "pid": pid,
                "name": name,
                "uid": {"real": uid, "effective": uid, "saved": uid},
                "gid": {"real": uid, "effective": uid, "saved": uid},
                "no_new_privileges": True,
                "effective_capabilities": "0000000000000000",
                "seccomp": 2,
            }
            for pid, name, uid in spec["processes"]
        ],
        "sockets": [
            {"protocol": "tcp", "address": EVERY_IPV4, "port": spec["port"]},
            {"protocol": "tcp6", "address": "::", "port": spec["port"]},
        ],
        "mounts": mounts,
        "files": {
            "special_bits": [],
            "world_writable": [],
            "app": [],
            "programs": [
                {"path": f"/usr/local/bin/{name}", "mode": "0755", "uid": 0, "gid": 0}
                for name in ("python", "python3", "python3.13")
            ],
        },
        "writable": {path: True for path in spec["tmpfs"]} if service == "app" else {},
        "readable": [],
        "globs": {},
        "users": {"root": 0, "appuser": 1000},
        "fetched": [],
        "connections": {},
    }
    if service == "postgres":
        facts["postgres"] = {
            "without_password": "password requested",
            "wrong_password": "refused: 28P01",
        }
    if service == "redis":
        facts["redis"] = {
            "unauthenticated_ping": "-NOAUTH Authentication required.",
            "acl_users": redis_users.users_in_acl_file(
                redis_users.acl_file(dict.fromkeys(redis_users.RULES, "sample-password"))
            ),
        }
    if service == "app":
        refused = load_policy().control("redis-users").parameters["refused"]["app"]
        facts["redis_replies"] = {
            "AUTH": "+OK",
            **dict.fromkeys(refused, "-NOPERM User app has no permissions"),
        }
    return facts
