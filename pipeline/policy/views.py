"""One service as the policy sees it, read from the compose model or from the running container.

The same controls evaluate both: `from_compose` reads one service of `docker compose config
--format json`, `from_container` reads `docker inspect` (and the inspector's facts and the
image's configuration, which only a running stack has). Each field of a compose view keeps
where in the service it was written (`routes`), so a static finding can name its line.
"""

from __future__ import annotations

from dataclasses import dataclass, field

NAMESPACES = ("network", "pid", "ipc", "uts", "userns", "cgroupns")
# Compose's service keys for the namespaces, and docker inspect's HostConfig ones.
_COMPOSE_NAMESPACE_KEYS = {
    "network": "network_mode",
    "pid": "pid",
    "ipc": "ipc",
    "uts": "uts",
    "userns": "userns_mode",
    "cgroupns": "cgroup",
}
_INSPECT_NAMESPACE_KEYS = {
    "network": "NetworkMode",
    "pid": "PidMode",
    "ipc": "IpcMode",
    "uts": "UTSMode",
    "userns": "UsernsMode",
    "cgroupns": "CgroupnsMode",
}
_UNITS = {"": 1, "b": 1, "k": 2**10, "kb": 2**10, "m": 2**20, "mb": 2**20, "g": 2**30, "gb": 2**30}


@dataclass(frozen=True)
class Mount:
    kind: str  # bind | volume | tmpfs
    source: str
    target: str
    read_only: bool
    propagation: str = ""  # a bind's: "" (the engine's rprivate), private, shared, slave, …
    # The host folder a named volume binds (local driver, `o: bind` and a `device`), or "".
    host_folder: str = ""


@dataclass(frozen=True)
class Published:
    container_port: int
    protocol: str
    host_ip: str  # "" for every interface
    host_port: int  # 0: the engine picks one


@dataclass
class ServiceView:
    service: str
    image: str
    privileged: bool = False
    namespaces: dict[str, str] = field(default_factory=dict)
    cap_add: list[str] = field(default_factory=list)
    cap_drop: list[str] = field(default_factory=list)
    security_options: list[str] = field(default_factory=list)
    read_only: bool = False
    user: str = ""  # the container's configured user; "" is the image's (root when unset)
    mounts: list[Mount] = field(default_factory=list)
    memory_limit: int | None = None
    cpu_limit: float | None = None
    pids_limit: int | None = None
    restart: str = ""  # as compose writes it: "no", "always", "on-failure" or "on-failure:N"
    cgroup_parent: str = ""
    devices: list[str] = field(default_factory=list)  # host devices given to the container
    published: list[Published] = field(default_factory=list)
    environment: dict[str, str] = field(default_factory=dict)
    command: list[str] = field(default_factory=list)  # entrypoint and arguments
    healthcheck: bool | None = None  # None: not known here (the image may define one)
    # Only a running container has these: the inspector's facts and the image's config.
    facts: dict | None = None
    image_config: dict | None = None
    # Where each field was written in the compose service (for a finding's line).
    routes: dict[str, list] = field(default_factory=dict)

    @property
    def running(self) -> bool:
        return self.facts is not None


def capability(name: str) -> str:
    return str(name).upper().removeprefix("CAP_")


def security_option(option: str) -> str:
    """`no-new-privileges:true` (compose) and `no-new-privileges=true` read the same."""
    return str(option).replace(" ", "").replace(":", "=", 1)


def positive(value) -> int | None:
    """A count limit, or None for none set (0) and for unlimited (-1, Compose's and Docker's)."""
    number = int(value or 0)
    return number if number > 0 else None


def memory_bytes(value) -> int | None:
    if value in (None, "", 0, "0"):
        return None
    text = str(value).strip().lower()
    number = text.rstrip("bkmg")
    unit = text[len(number) :]
    return int(float(number) * _UNITS[unit])


# ---------------------------------------------------------------- from the compose model


def from_compose(service: str, config: dict, volumes: dict | None = None) -> ServiceView:
    """One service of `docker compose config --format json`; `volumes`, the model's top-level
    volumes, say which named volume binds a host folder."""
    limits = ((config.get("deploy") or {}).get("resources") or {}).get("limits") or {}
    view = ServiceView(
        service=service,
        image=str(config.get("image") or ""),
        privileged=bool(config.get("privileged")),
        namespaces={
            name: str(config.get(key) or "")
            for name, key in _COMPOSE_NAMESPACE_KEYS.items()
            if config.get(key)
        },
        cap_add=[capability(name) for name in config.get("cap_add") or []],
        cap_drop=[capability(name) for name in config.get("cap_drop") or []],
        security_options=[security_option(o) for o in config.get("security_opt") or []],
        read_only=bool(config.get("read_only")),
        user=str(config.get("user") or ""),
        mounts=_compose_mounts(config, volumes or {}),
        memory_limit=memory_bytes(limits.get("memory") or config.get("mem_limit")),
        cpu_limit=float(limits.get("cpus") or config.get("cpus") or 0) or None,
        pids_limit=positive(limits.get("pids") or config.get("pids_limit")),
        restart=_compose_restart(config),
        cgroup_parent=str(config.get("cgroup_parent") or ""),
        devices=[_compose_device(device) for device in config.get("devices") or []],
        published=[_compose_published(port) for port in config.get("ports") or []],
        environment={
            name: str(value or "") for name, value in (config.get("environment") or {}).items()
        },
        command=[
            str(word) for word in (config.get("entrypoint") or []) + (config.get("command") or [])
        ],
        healthcheck=_compose_healthcheck(config.get("healthcheck")),
    )
    view.routes = _compose_routes(config)
    return view


def _compose_published(port: dict) -> Published:
    """One entry of a service's `ports` as Compose resolves it. `published` may be a port, a
    range (`12400-12500`: the engine picks one; the lowest stands for them) or, written
    into the long syntax, `ADDRESS:PORT` (IPv6 in brackets); none of them is an error."""
    published = str(port.get("published") or "")
    host_ip = str(port.get("host_ip") or "")
    if ":" in published:
        address, _, published = published.rpartition(":")
        host_ip = host_ip or address.strip("[]")
    first = published.split("-", 1)[0].strip()
    target = str(port.get("target") or "0").split("-", 1)[0].strip()
    return Published(
        int(target) if target.isdigit() else 0,
        str(port.get("protocol") or "tcp"),
        host_ip,
        int(first) if first.isdigit() else 0,
    )


def _compose_healthcheck(healthcheck: dict | None) -> bool | None:
    """False when compose switches the healthcheck off; None when the image's decides (no
    block, or one that only tunes the timings of the image's test)."""
    healthcheck = healthcheck or {}
    if healthcheck.get("disable") or healthcheck.get("test") in (["NONE"], "NONE"):
        return False
    return True if healthcheck.get("test") else None


def _compose_device(device) -> str:
    """A `devices` entry, short (`/dev/x:/dev/y:rwm`) or long (`source`, `target`)."""
    if isinstance(device, dict):
        return str(device.get("source") or device.get("target") or "")
    return str(device).split(":", 1)[0]


def _compose_restart(config: dict) -> str:
    """The restart policy, `restart:` or deploy's `restart_policy` (condition and attempts)."""
    if config.get("restart"):
        return str(config["restart"])
    policy = (config.get("deploy") or {}).get("restart_policy") or {}
    condition = policy.get("condition")
    condition = {"any": "always", "none": "no"}.get(condition, condition)
    if condition == "on-failure" and policy.get("max_attempts"):
        return f"on-failure:{policy['max_attempts']}"
    return str(condition or "")


def _volume_host_folder(name: str, volumes: dict) -> str:
    """The host folder a named volume of the local driver binds (`o: bind`, `device`)."""
    volume = volumes.get(name) or {}
    options = volume.get("driver_opts") or {}
    if (volume.get("driver") or "local") != "local":
        return ""
    binds = "bind" in str(options.get("o") or "").replace(",", " ").split()
    return str(options.get("device") or "") if binds else ""


def _compose_mounts(config: dict, volumes: dict) -> list[Mount]:
    mounts = [
        Mount(
            str(volume.get("type") or "volume"),
            str(volume.get("source") or ""),
            str(volume["target"]),
            bool(volume.get("read_only")),
            str((volume.get("bind") or {}).get("propagation") or ""),
            _volume_host_folder(str(volume.get("source") or ""), volumes)
            if volume.get("type") == "volume"
            else "",
        )
        for volume in config.get("volumes") or []
    ]
    mounts += [
        Mount("tmpfs", "", str(entry).split(":")[0], False) for entry in config.get("tmpfs") or []
    ]
    # Compose's secrets reach the container as read-only bind mounts under /run/secrets.
    mounts += [
        Mount(
            "bind",
            f"secret:{secret['source']}",
            str(secret.get("target") or f"/run/secrets/{secret['source']}"),
            True,
        )
        for secret in config.get("secrets") or []
    ]
    return mounts


def _compose_routes(config: dict) -> dict[str, list]:
    """The compose key each view field comes from, to point a finding at its line."""
    routes: dict[str, list] = {
        "privileged": ["privileged"],
        "cap_add": ["cap_add"],
        "cap_drop": ["cap_drop"],
        "security_options": ["security_opt"],
        "read_only": ["read_only"],
        "user": ["user"],
        "mounts": ["volumes"],
        "restart": ["restart"] if config.get("restart") else ["deploy"],
        "cgroup_parent": ["cgroup_parent"],
        "devices": ["devices"],
        "published": ["ports"],
        "environment": ["environment"],
        "command": ["command"],
        "healthcheck": ["healthcheck"],
        "limits": ["deploy"],
        "image": ["image"],
    }
    routes.update({f"namespace.{name}": [key] for name, key in _COMPOSE_NAMESPACE_KEYS.items()})
    if config.get("tmpfs"):
        routes["tmpfs"] = ["tmpfs"]
    if config.get("secrets"):
        routes["secrets"] = ["secrets"]
    return routes


# ---------------------------------------------------------------- from a running container


def from_container(service: str, inspect: dict, image_config: dict, facts: dict) -> ServiceView:
    """One running container: `docker container inspect`, its image's `docker image inspect`,
    and what the inspector read from outside (pipeline.inspector)."""
    host = inspect["HostConfig"]
    config = inspect["Config"]
    return ServiceView(
        service=service,
        image=str(config.get("Image") or ""),
        privileged=bool(host.get("Privileged")),
        namespaces={
            name: str(host.get(key) or "")
            for name, key in _INSPECT_NAMESPACE_KEYS.items()
            if host.get(key)
        },
        cap_add=[capability(name) for name in host.get("CapAdd") or []],
        cap_drop=[capability(name) for name in host.get("CapDrop") or []],
        security_options=[security_option(o) for o in host.get("SecurityOpt") or []],
        read_only=bool(host.get("ReadonlyRootfs")),
        user=str(config.get("User") or ""),
        mounts=_container_mounts(inspect),
        memory_limit=int(host.get("Memory") or 0) or None,
        cpu_limit=(int(host.get("NanoCpus") or 0) / 1e9) or None,
        pids_limit=positive(host.get("PidsLimit")),
        restart=_container_restart(host.get("RestartPolicy") or {}),
        cgroup_parent=str(host.get("CgroupParent") or ""),
        devices=[str(d.get("PathOnHost") or "") for d in host.get("Devices") or []],
        published=_container_published(inspect),
        environment=dict(entry.split("=", 1) for entry in config.get("Env") or [] if "=" in entry),
        command=[
            str(word) for word in [inspect.get("Path") or "", *(inspect.get("Args") or [])] if word
        ],
        healthcheck=bool((config.get("Healthcheck") or {}).get("Test"))
        and (config.get("Healthcheck") or {}).get("Test") != ["NONE"],
        facts=facts,
        image_config=image_config,
    )


def _container_restart(policy: dict) -> str:
    name = str(policy.get("Name") or "")
    retries = int(policy.get("MaximumRetryCount") or 0)
    return f"{name}:{retries}" if name == "on-failure" and retries else name


def _container_mounts(inspect: dict) -> list[Mount]:
    mounts = [
        Mount(
            str(m.get("Type")),
            str(m.get("Source") or m.get("Name") or ""),
            str(m["Destination"]),
            not m.get("RW", True),
            str(m.get("Propagation") or "") if m.get("Type") == "bind" else "",
        )
        for m in inspect.get("Mounts") or []
    ]
    mounts += [
        Mount("tmpfs", "", path, "ro" in str(options).split(","))
        for path, options in ((inspect["HostConfig"].get("Tmpfs")) or {}).items()
    ]
    return mounts


def _container_published(inspect: dict) -> list[Published]:
    found = []
    for port, bindings in ((inspect.get("NetworkSettings") or {}).get("Ports") or {}).items():
        number, _, protocol = port.partition("/")
        for binding in bindings or []:
            host_ip = binding.get("HostIp") or ""
            found.append(
                Published(
                    int(number),
                    protocol or "tcp",
                    "" if host_ip in ("0.0.0.0", "::") else host_ip,  # noqa: S104 - reading
                    int(binding.get("HostPort") or 0),
                )
            )
    return found
