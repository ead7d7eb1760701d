"""The rules behind the controls of controls.toml: each takes a service view, its control and
its context, and gives a verdict. A rule that needs a running container says so on a compose
view (not applicable: read at runtime); everything else reads both kinds of view alike.
"""

from __future__ import annotations

import fnmatch
import posixpath
from collections.abc import Callable

from pipeline import redis_users
from pipeline.envfiles import is_secret_name
from pipeline.environments import APP_GID, APP_UID, DATA_SERVICES, SERVICE_PORTS
from pipeline.policy import Context, Control, Verdict, fails, not_applicable, passes
from pipeline.policy.views import ServiceView

Rule = Callable[[ServiceView, Control, Context], Verdict]
RULES: dict[str, Rule] = {}

AT_RUNTIME = "read at runtime, from the running container"
ROOT_USERS = ("", "root", "0")
# Mounts every container has that no compose file declares.
RUNTIME_MOUNTS = ("/proc", "/sys", "/dev", "/etc/hosts", "/etc/hostname", "/etc/resolv.conf")


def rule(name: str) -> Callable[[Rule], Rule]:
    def register(function: Rule) -> Rule:
        RULES[name] = function
        return function

    return register


def _verdict(problems: list, expected: object, field: str = "") -> Verdict:
    return fails(expected, problems, field) if problems else passes()


def _not_ours(view: ServiceView) -> Verdict:
    return not_applicable(
        f"{view.image or view.service} is not built from docker/Dockerfile: it is taken as it "
        "is, and what it may do is held by the container controls"
    )


def _is_root(user: str) -> bool:
    return user.split(":")[0] in ROOT_USERS


# ---------------------------------------------------------------- the container's configuration


@rule("not-privileged")
def not_privileged(view: ServiceView, control: Control, context: Context) -> Verdict:
    return fails(False, True, "privileged") if view.privileged else passes()


@rule("no-host-namespaces")
def no_host_namespaces(view: ServiceView, control: Control, context: Context) -> Verdict:
    shared = sorted(name for name, mode in view.namespaces.items() if mode == "host")
    field = f"namespace.{shared[0]}" if shared else ""
    return _verdict([f"{name}: host" for name in shared], "no host namespace", field)


@rule("capabilities-within")
def capabilities_within(view: ServiceView, control: Control, context: Context) -> Verdict:
    allowed = set(control.parameters["allowed"])
    return _verdict(sorted(set(view.cap_add) - allowed), "only Docker's defaults", "cap_add")


@rule("capabilities-drop-all")
def capabilities_drop_all(view: ServiceView, control: Control, context: Context) -> Verdict:
    if "ALL" in view.cap_drop and not view.cap_add:
        return passes()
    field = "cap_add" if view.cap_add else "cap_drop"
    return fails(
        {"cap_drop": ["ALL"], "cap_add": []},
        {"cap_drop": view.cap_drop, "cap_add": view.cap_add},
        field,
    )


@rule("no-forbidden-security-options")
def no_forbidden_security_options(view: ServiceView, control: Control, context: Context) -> Verdict:
    forbidden = set(control.parameters["forbidden"])
    return _verdict(
        [option for option in view.security_options if option in forbidden],
        "none of " + ", ".join(sorted(forbidden)),
        "security_options",
    )


@rule("no-new-privileges")
def no_new_privileges(view: ServiceView, control: Control, context: Context) -> Verdict:
    declared = [o for o in view.security_options if o.split("=")[0] == "no-new-privileges"]
    if not declared or declared[-1] not in ("no-new-privileges", "no-new-privileges=true"):
        return fails("no-new-privileges=true", declared or "not set", "security_options")
    if view.running:
        without = [p["name"] for p in view.facts["processes"] if not p["no_new_privileges"]]
        if without:
            return fails("every process with NoNewPrivs", f"not in {without}")
    return passes()


@rule("container-user-non-root")
def container_user_non_root(view: ServiceView, control: Control, context: Context) -> Verdict:
    return (
        fails("a non-root user", view.user or "not set (root)", "user")
        if _is_root(view.user)
        else passes()
    )


@rule("read-only-root")
def read_only_root(view: ServiceView, control: Control, context: Context) -> Verdict:
    if not view.read_only:
        return fails(True, False, "read_only")
    if view.running and "ro" not in view.facts["mounts"]["/"]["options"]:
        return fails("/ mounted ro", view.facts["mounts"]["/"]["options"])
    return passes()


@rule("resource-limits")
def resource_limits(view: ServiceView, control: Control, context: Context) -> Verdict:
    limits = {"memory": view.memory_limit, "cpus": view.cpu_limit, "pids": view.pids_limit}
    missing = sorted(name for name, value in limits.items() if not value)
    return _verdict(
        [f"no {name} limit" for name in missing], "memory, cpus and pids limits", "limits"
    )


@rule("restart-policy")
def restart_policy(view: ServiceView, control: Control, context: Context) -> Verdict:
    most = control.parameters["max_retries"]
    name, _, retries = view.restart.partition(":")
    bounded = name == "on-failure" and retries.isdigit() and 1 <= int(retries) <= most
    expected = f"on-failure:N with 1 <= N <= {most}"
    return passes() if bounded else fails(expected, view.restart or "no", "restart")


@rule("host-devices")
def host_devices(view: ServiceView, control: Control, context: Context) -> Verdict:
    return _verdict(sorted(view.devices), "no host device", "devices")


@rule("no-default-bridge")
def no_default_bridge(view: ServiceView, control: Control, context: Context) -> Verdict:
    network = view.namespaces.get("network", "")
    on_it = network in control.parameters["default_networks"]
    return (
        fails("a network of the project's own", network, "namespace.network") if on_it else passes()
    )


@rule("no-sshd")
def no_sshd(view: ServiceView, control: Control, context: Context) -> Verdict:
    if not view.running:
        return not_applicable(AT_RUNTIME)
    names = set(control.parameters["names"])
    found = sorted(
        {f"{p['name']} (pid {p['pid']})" for p in view.facts["processes"] if p["name"] in names}
    )
    return _verdict(found, "no ssh server", "command")


@rule("cgroup-parent")
def cgroup_parent(view: ServiceView, control: Control, context: Context) -> Verdict:
    found = view.cgroup_parent
    return fails("the engine's default cgroup", found, "cgroup_parent") if found else passes()


@rule("healthcheck")
def healthcheck(view: ServiceView, control: Control, context: Context) -> Verdict:
    if view.healthcheck is None:
        return not_applicable(
            f"not declared in compose, and {view.image or 'its image'} is not in the local image "
            "store to read its HEALTHCHECK: that is " + AT_RUNTIME
        )
    return passes() if view.healthcheck else fails("a healthcheck", "none", "healthcheck")


# ---------------------------------------------------------------- mounts and writable paths


def _below(path: str, top: str) -> bool:
    """`path` is `top` or lies under it; `top` may be a pattern (/lib* for /lib, /lib64)."""
    return fnmatch.fnmatch(path, top) or fnmatch.fnmatch(path, top.rstrip("/") + "/*")


def _sensitive(source: str, parameters: dict) -> bool:
    path = posixpath.normpath(source) if source.startswith("/") else ""
    if not path:
        return False  # a named volume, or one of compose's secrets
    parts = path.split("/")
    in_a_home = [
        path.removeprefix(home.rstrip("/") + "/").split("/")
        for home in parameters["homes"]
        if path.startswith(home.rstrip("/") + "/")
    ]
    return (
        path == "/"
        or any(_below(path, top) for top in parameters["subtrees"])
        # A home folder itself, or what its dot-folders hold (keys, tokens, shell history);
        # a project checked out under a home is what dev binds, and stays allowed.
        or any(len(rest) == 1 or rest[1].startswith(".") for rest in in_a_home)
        or any(fnmatch.fnmatch(part, name) for part in parts for name in parameters["names"])
        # Every folder above one of them holds it (/var holds /var/run and the socket).
        or any(
            top.startswith(path.rstrip("/") + "/")
            for top in (*parameters["subtrees"], *parameters["homes"])
        )
    )


@rule("no-sensitive-host-paths")
def no_sensitive_host_paths(view: ServiceView, control: Control, context: Context) -> Verdict:
    found = [
        f"{mount.source}:{mount.target}"
        for mount in view.mounts
        if mount.kind == "bind" and _sensitive(mount.source, control.parameters)
    ]
    found += [
        f"{mount.source} (binds {mount.host_folder}):{mount.target}"
        for mount in view.mounts
        if mount.kind == "volume" and _sensitive(mount.host_folder, control.parameters)
    ]
    return _verdict(found, "no sensitive host path", "mounts")


@rule("mount-propagation")
def mount_propagation(view: ServiceView, control: Control, context: Context) -> Verdict:
    shared = [
        f"{mount.target} ({mount.propagation})"
        for mount in view.mounts
        if mount.propagation in control.parameters["refused"]
    ]
    return _verdict(shared, "private or slave propagation", "mounts")


@rule("bind-mounts")
def bind_mounts(view: ServiceView, control: Control, context: Context) -> Verdict:
    name = context.environment.name if context.environment else "default"
    allowed = context.policy.bind_targets.get(name, context.policy.bind_targets.get("default", []))
    problems = []
    for mount in view.mounts:
        listed = any(fnmatch.fnmatch(mount.target, pattern) for pattern in allowed)
        if mount.kind == "bind" and not listed:
            problems.append(f"{mount.target} (not allow-listed)")
        elif mount.kind == "bind" and not mount.read_only:
            problems.append(f"{mount.target} (writable)")
    code = control.parameters["code_paths"]
    problems += [
        f"{mount.target} (writable over code)"
        for mount in view.mounts
        if not mount.read_only
        and any(mount.target == path or mount.target.startswith(path + "/") for path in code)
    ]
    return _verdict(sorted(set(problems)), f"read-only binds on {allowed or 'nothing'}", "mounts")


def _writable_targets(view: ServiceView) -> set[str]:
    if view.running:
        return {
            point
            for point, mount in view.facts["mounts"].items()
            if "rw" in mount["options"]
            and point != "/"
            and not any(point == m or point.startswith(m + "/") for m in RUNTIME_MOUNTS)
        }
    return {mount.target for mount in view.mounts if not mount.read_only}


@rule("writable-paths")
def writable_paths(view: ServiceView, control: Control, context: Context) -> Verdict:
    allowed = context.policy.writable_paths.get(view.service)
    if allowed is None:
        return not_applicable(f"the policy lists no writable paths for {view.service}")
    found = _writable_targets(view)
    if found != set(allowed):
        tmpfs = {mount.target for mount in view.mounts if mount.kind == "tmpfs"}
        # Point at the tmpfs list when that is where the difference is, else at the volumes.
        where = "tmpfs" if (found ^ set(allowed)) <= tmpfs and "tmpfs" in view.routes else "mounts"
        return fails(sorted(allowed), sorted(found), where)
    return passes()


# ---------------------------------------------------------------- ports and sockets


@rule("published-ports")
def published_ports(view: ServiceView, control: Control, context: Context) -> Verdict:
    environment = context.environment
    if environment is None:
        # What a project that is not ours may publish is its own affair; on which interface
        # is not: bound to every one, a port answers every network the host is on.
        everywhere = [
            f"all interfaces:{p.host_port}->{p.container_port}"
            for p in view.published
            if p.host_ip in ("", "0.0.0.0", "::")  # noqa: S104 - reading, not binding
        ]
        return _verdict(everywhere, "each port bound to a chosen host address", "published")
    if view.service not in environment.published_services:
        return _verdict(
            [f"{p.host_ip or '*'}:{p.host_port}->{p.container_port}" for p in view.published],
            "nothing published",
            "published",
        )
    address = environment.host_bind_address
    wrong = [
        f"{p.host_ip or 'all interfaces'}:{p.host_port}->{p.container_port}"
        for p in view.published
        if address and p.host_ip != address
    ]
    return _verdict(
        wrong, f"published on {address} only" if address else "any address", "published"
    )


@rule("privileged-ports")
def privileged_ports(view: ServiceView, control: Control, context: Context) -> Verdict:
    below = control.parameters["below"]
    found = [
        f"{p.host_ip or 'all interfaces'}:{p.host_port}->{p.container_port}"
        for p in view.published
        if 0 < p.host_port < below
    ]
    return _verdict(found, f"host ports from {below} up", "published")


@rule("listening-sockets")
def listening_sockets(view: ServiceView, control: Control, context: Context) -> Verdict:
    if not view.running:
        return not_applicable(AT_RUNTIME)
    if view.service not in SERVICE_PORTS or context.environment is None:
        return not_applicable(f"the policy knows no port for {view.service}")
    expected = {f"{SERVICE_PORTS[view.service]}/tcp"}
    found = {f"{s['port']}/{s['protocol'].rstrip('6')}" for s in view.facts["sockets"]}
    return passes() if found == expected else fails(sorted(expected), sorted(found))


# ---------------------------------------------------------------- who runs


@rule("processes-non-root")
def processes_non_root(view: ServiceView, control: Control, context: Context) -> Verdict:
    if not view.running:
        return not_applicable(AT_RUNTIME)
    processes = view.facts["processes"]
    if not processes:
        return fails("at least one process", [])
    root = [
        f"{p['pid']} {p['name']} uid {p['uid']['real']}/{p['uid']['effective']} "
        f"gid {p['gid']['real']}/{p['gid']['effective']}"
        for p in processes
        if 0 in (p["uid"]["real"], p["uid"]["effective"], p["gid"]["real"], p["gid"]["effective"])
    ]
    return _verdict(root, "no process as uid or gid 0")


@rule("image-user-non-root")
def image_user_non_root(view: ServiceView, control: Control, context: Context) -> Verdict:
    if not context.ours:
        return _not_ours(view)
    if view.image_config is None:
        return not_applicable("the image's configuration is " + AT_RUNTIME)
    user = str(view.image_config["Config"].get("User") or "")
    return fails("a non-root user", user or "not set (root)") if _is_root(user) else passes()


# ---------------------------------------------------------------- the image's files


def _file_rule(view: ServiceView, context: Context, section: str, expected: str) -> Verdict:
    if not context.ours:
        return _not_ours(view)
    if not view.running:
        return not_applicable(AT_RUNTIME)
    found = [
        f"{entry['path']} ({entry['mode']} {entry['uid']}:{entry['gid']})"
        for entry in view.facts["files"][section]
    ]
    return _verdict(
        found[:10] + ([f"… {len(found) - 10} more"] if len(found) > 10 else []), expected
    )


@rule("no-setuid-files")
def no_setuid_files(view: ServiceView, control: Control, context: Context) -> Verdict:
    return _file_rule(view, context, "special_bits", "no setuid or setgid file")


@rule("no-world-writable-files")
def no_world_writable_files(view: ServiceView, control: Control, context: Context) -> Verdict:
    return _file_rule(view, context, "world_writable", "nothing world-writable but sticky folders")


@rule("app-files-owned-by-appuser")
def app_files_owned_by_appuser(view: ServiceView, control: Control, context: Context) -> Verdict:
    return _file_rule(view, context, "app", f"owner {APP_UID}:{APP_GID}, not group/other-writable")


@rule("programs-allow-listed")
def programs_allow_listed(view: ServiceView, control: Control, context: Context) -> Verdict:
    if not context.ours:
        return _not_ours(view)
    if not view.running:
        return not_applicable(AT_RUNTIME)
    allowed = set(control.parameters["allowed"])
    found = sorted(
        {
            entry["path"]
            for entry in view.facts["files"]["programs"]
            if posixpath.basename(entry["path"]) not in allowed
        }
    )
    return _verdict(found, sorted(allowed))


# ---------------------------------------------------------------- secrets and data stores


def _received_secrets(view: ServiceView, context: Context) -> set[str]:
    variables = context.policy.secret_variables
    received = {
        variables[name] for name, value in view.environment.items() if name in variables and value
    }
    received |= {
        posixpath.basename(m.target) for m in view.mounts if m.target.startswith("/run/secrets/")
    }
    return received


@rule("least-secrets")
def least_secrets(view: ServiceView, control: Control, context: Context) -> Verdict:
    allowed = context.policy.secrets.get(view.service)
    if allowed is None:
        return not_applicable(f"the policy lists no secrets for {view.service}")
    extra = sorted(_received_secrets(view, context) - set(allowed))
    field = (
        "secrets"
        if "secrets" in view.routes
        and not any(name in context.policy.secret_variables for name in view.environment)
        else "environment"
    )
    return _verdict(extra, f"only {allowed}", field)


@rule("secrets-as-files")
def secrets_as_files(view: ServiceView, control: Control, context: Context) -> Verdict:
    environment = context.environment
    if environment is not None and not environment.secrets_as_files:
        return not_applicable(environment.secrets_reason)
    carriers = {name for name in context.policy.secret_variables if not name.endswith("_FILE")}
    in_variables = sorted(
        name
        for name, value in view.environment.items()
        if value and (is_secret_name(name) or name in carriers)
    )
    # `--requirepass X`, or a Redis user's password given as `>X` on the command line.
    in_command = [
        word if word == "--requirepass" else "a Redis password (>…)"
        for word in view.command
        if word == "--requirepass" or word.startswith(">")
    ]
    leaked = [
        f"a secret value in {where}"
        for where, text in (
            ("environment", " ".join(view.environment.values())),
            ("command", " ".join(view.command)),
        )
        for value in context.secret_values
        if value and value in text
    ]
    problems = (
        [f"variable {name}" for name in in_variables]
        + [f"command {word}" for word in in_command]
        + leaked
    )
    return _verdict(
        problems,
        "secrets only as files under /run/secrets",
        "environment" if in_variables else "command",
    )


@rule("data-store-authentication")
def data_store_authentication(view: ServiceView, control: Control, context: Context) -> Verdict:
    if view.service not in DATA_SERVICES or context.environment is None:
        return not_applicable(f"{view.service} is not one of the stack's data stores")
    if not view.running:
        return _declared_authentication(view)
    if view.service == "postgres":
        tried = view.facts.get("postgres") or {}
        ok = tried.get("without_password") == "password requested" and str(
            tried.get("wrong_password", "")
        ).startswith("refused")
        return (
            passes()
            if ok
            else fails(
                {"without_password": "password requested", "wrong_password": "refused: 28P01"},
                tried,
            )
        )
    reply = str((view.facts.get("redis") or {}).get("unauthenticated_ping", ""))
    return passes() if reply.startswith("-NOAUTH") else fails("-NOAUTH …", reply)


def _declared_authentication(view: ServiceView) -> Verdict:
    if view.service == "postgres":
        method = view.environment.get("POSTGRES_HOST_AUTH_METHOD", "")
        return fails("a password method", method, "environment") if method == "trust" else passes()
    users = redis_users.users_in_command(view.command)
    if "default" in users and _switch(users["default"]) == "off":
        return passes()
    if not {"--requirepass", "--aclfile"} & set(view.command):
        expected = "--requirepass, --aclfile or --user default off"
        return fails(expected, view.command or "no command", "command")
    return passes()


def _switch(rules: list[str]) -> str:
    """A Redis user's last on/off: "off" when neither is given (Redis' own default)."""
    return next((rule for rule in reversed(rules) if rule in ("on", "off")), "off")


def _every_key_and_command(rules: list[str]) -> bool:
    every_key = any(rule in ("~*", "%RW~*", "allkeys") for rule in rules)
    granted = [i for i, rule in enumerate(rules) if rule in ("+@all", "allcommands")]
    taken_back = granted and any(rule.startswith("-") for rule in rules[granted[-1] :])
    return every_key and bool(granted) and not taken_back


@rule("redis-users")
def redis_users_rule(view: ServiceView, control: Control, context: Context) -> Verdict:
    if context.environment is None:
        return not_applicable("a project that is not the stack: its services' users are unknown")
    if view.service == "redis":
        return _redis_acl(view, control)
    refused = control.parameters["refused"].get(view.service)
    if refused is None:
        return not_applicable(f"{view.service} does not log in to Redis")
    if not view.running:
        return not_applicable("judged on the running stack, with the service's own credentials")
    replies = view.facts.get("redis_replies")
    if replies is None:
        return fails("REDIS_USER and its password", "no Redis user of its own", "environment")
    expected = {"AUTH": "+OK", **dict.fromkeys(refused, "-NOPERM …")}
    allowed = [
        f"{command}: {replies.get(command, 'no reply')}"
        for command in refused
        if not replies.get(command, "").startswith("-NOPERM")
    ]
    if replies.get("AUTH") != "+OK" or allowed:
        return fails(expected, replies)
    return passes()


def _redis_acl(view: ServiceView, control: Control) -> Verdict:
    users = (view.facts.get("redis") or {}).get("acl_users") if view.running else None
    if users is None and "--aclfile" in view.command:
        if not view.running:
            return not_applicable("its users are in an ACL file, a secret: judged when it runs")
        return fails("the ACL file --aclfile names, readable", "unreadable", "command")
    users = users if users is not None else redis_users.users_in_command(view.command)
    expected_users = sorted(control.parameters["users"])
    problems = []
    if _switch(users.get("default", ["on"])) != "off":
        problems.append("the default user is on")
    if sorted(set(users) - {"default"}) != expected_users:
        problems.append(f"users {sorted(set(users) - {'default'})}")
    problems += [
        f"{name} has every key and every command"
        for name, rules in sorted(users.items())
        if _switch(rules) == "on" and _every_key_and_command(rules)
    ]
    return _verdict(
        problems,
        f"default off, users {expected_users}, none with every key and every command",
        "command",
    )
