"""What the policy's runtime controls read of a running container, asked through its testinfra host.

`read_container(host, …)` returns the facts the rules of pipeline/policy/rules.py judge —
processes, listening sockets, mounts, the image's files, logins to the data stores — each
asked through testinfra's modules (`host.process`, `host.socket`, `host.file`, `host.addr`)
or `host.run` where no module fits, on the same hosts tests/infra checks with. The host is
the inspector beside the container (pipeline.inspector_host), so every path is the target's.
"""

from __future__ import annotations

import re
import secrets
import shlex

from testinfra.host import Host

from pipeline import redis_users

# Folders whose programs count as the image's binaries (shells, coreutils, package managers).
PROGRAM_FOLDERS = ("/bin", "/sbin", "/usr/bin", "/usr/sbin", "/usr/local/bin", "/usr/local/sbin")
# Docker's embedded DNS server listens on 127.0.0.11 in every container on a user-defined
# network, from the engine's own process outside the container: a listener there that a
# process of the container owns is the container's, like any other.
DOCKER_DNS = "127.0.0.11"
CONNECT_SECONDS = 3


def target_processes(host: Host, namespace: int | None = None, **matching) -> list:
    """The target's processes (testinfra's), with `matching` ps fields: those in PID 1's
    mount namespace (the inspector's own commands run in its helper's), the engine's
    bootstrap of an exec left out — recognised by what it is, never by its name."""
    namespace = namespace if namespace is not None else host.process.get(pid=1).mntns
    listed = host.process.filter(mntns=namespace, **matching)
    from_outside = {p.pid for p in host.process.filter(mntns=namespace, ppid=0)} - {1}
    engine = {pid for pid in from_outside if is_engine_bootstrap(host, pid)}
    return sorted((p for p in listed if p.pid not in engine), key=lambda p: p.pid)


def is_engine_bootstrap(host: Host, pid: int) -> bool:
    """runc's init while it starts an exec (a healthcheck's probe): its parent is outside the
    container (PID 0 in its namespace, which no process started inside can have) and the
    program it runs is no file of the container (runc's own, cloned into memory). PID 1 is
    never one. A process that renames itself `runc:[2:INIT]` is neither."""
    if pid == 1:
        return False
    link = host.run("readlink %s", f"/proc/{pid}/exe")
    if link.rc != 0:
        return True  # it ended: the exec it started is listed on its own
    return not host.file(link.stdout.strip()).exists


def processes(host: Host) -> list[dict]:
    """Every process of the target (see target_processes), read from /proc."""
    found = []
    for process in target_processes(host):
        status = _status(host, process.pid)
        if status is None:
            continue  # it ended while we looked
        uids = [int(value) for value in status["Uid"].split()]
        gids = [int(value) for value in status["Gid"].split()]
        found.append(
            {
                "pid": process.pid,
                "name": status["Name"],
                "uid": {"real": uids[0], "effective": uids[1], "saved": uids[2]},
                "gid": {"real": gids[0], "effective": gids[1], "saved": gids[2]},
                "no_new_privileges": status.get("NoNewPrivs", "0").strip() == "1",
                # Resident memory in kB (kernel threads and zombies have none).
                "resident_kb": int(status.get("VmRSS", "0 kB").split()[0]),
                "effective_capabilities": status.get("CapEff", "").strip(),
                "seccomp": int(status.get("Seccomp", "0").strip() or 0),
            }
        )
    return found


def _status(host: Host, pid: int) -> dict[str, str] | None:
    """/proc/<pid>/status as a dict; None when the process ended while we looked."""
    status = host.run("cat %s", f"/proc/{pid}/status")
    if status.rc != 0:
        return None
    return dict(line.split(":\t", 1) for line in status.stdout.splitlines() if ":\t" in line)


def executable_and_libraries(host: Host, pid: int) -> tuple[str, list[str]]:
    """The program a process runs and the shared objects it has mapped, as paths inside the
    target (how its loader resolved them)."""
    executable = host.file(f"/proc/{pid}/exe").linked_to
    # address perms offset device inode [path]: anonymous mappings have no path.
    fields = [
        line.split(None, 5) for line in host.file(f"/proc/{pid}/maps").content_string.splitlines()
    ]
    mapped = {entry[5].strip() for entry in fields if len(entry) == 6}
    return executable, sorted(path for path in mapped if ".so" in path.rsplit("/", 1)[-1])


def engine_listeners(host: Host) -> set[str]:
    """The listening sockets (testinfra's `tcp://ADDRESS:PORT` form) that are the engine's:
    on Docker's DNS address and owned by no process the container can see (ss names a
    socket's owner when one of the processes it can read holds it)."""
    listed = host.run("ss --listening --numeric --tcp --udp --processes")
    found = set()
    for line in listed.stdout.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 5 or fields[0] not in ("tcp", "udp") or "users:(" in line:
            continue
        address, _, port = fields[4].rpartition(":")
        if address.strip("[]") in (DOCKER_DNS, f"::ffff:{DOCKER_DNS}"):
            found.add(f"{fields[0]}://{address.strip('[]')}:{port}")
    return found


def sockets(host: Host) -> list[dict]:
    """Every listening TCP and bound UDP socket, IPv4 and IPv6, the engine's left out."""
    engine = engine_listeners(host)
    found = []
    for spec in host.socket.get_listening_sockets():
        protocol, _, rest = spec.partition("://")
        if protocol not in ("tcp", "udp") or spec in engine:
            continue
        address, _, port = rest.rpartition(":")
        found.append({"protocol": protocol, "address": address, "port": int(port)})
    return found


def parse_mounts(text: str) -> dict[str, dict]:
    """Mount point -> {options, type, source}, from a mountinfo table."""
    mounts = {}
    for line in text.splitlines():
        fields = line.split()
        separator = fields.index("-")
        # mountinfo escapes space, tab, newline and backslash as octal (\\040…).
        point = re.sub(r"\\([0-7]{3})", lambda octal: chr(int(octal[1], 8)), fields[4])
        mounts[point] = {
            "options": fields[5].split(","),
            "type": fields[separator + 1],
            "source": fields[separator + 2],
        }
    return mounts


def mounts(host: Host) -> dict[str, dict]:
    return parse_mounts(host.file("/proc/1/mountinfo").content_string)


# One walk of the root filesystem answers every file question (GNU find's `,` evaluates
# each branch on every entry): each matching entry is printed with the finding it is for.
_PRINT = "-printf '%s\\t%%p\\t%%m\\t%%U\\t%%G\\n'"
_PROGRAM_PATH = r"/\(bin\|sbin\|usr/bin\|usr/sbin\|usr/local/bin\|usr/local/sbin\)/[^/]*"


def file_findings(
    host: Host, app_uid: int, app_gid: int, mount_points: set[str]
) -> dict[str, list[dict]]:
    """The root filesystem's setuid/setgid files, world-writable paths (what lies in sticky
    folders aside), what under /app is not the app user's or is writable by group or others,
    and the programs in the usual folders. What is mounted over the root (volumes, tmpfs,
    /proc) is another filesystem: find's -xdev leaves it out, and a mount point is what is
    mounted there, not the image's."""
    walk = host.run(
        "find / -xdev "
        f"\\( -type d -perm -1002 {_PRINT % 'sticky'} \\) , "
        f"\\( -type f -perm /6000 {_PRINT % 'special_bits'} \\) , "
        f"\\( \\( -type f -o -type d \\) -perm -0002 {_PRINT % 'world_writable'} \\) , "
        f"\\( \\( -path /app -o -path '/app/*' \\) ! -type l "
        f"\\( ! -uid {app_uid} -o ! -gid {app_gid} -o -perm /022 \\) {_PRINT % 'app'} \\) , "
        f"\\( ! -type d -regex '{_PROGRAM_PATH}' {_PRINT % 'programs'} \\)"
    )
    found: dict[str, list[dict]] = {
        "special_bits": [],
        "world_writable": [],
        "app": [],
        "programs": [],
        "sticky": [],
    }
    for line in walk.stdout.splitlines():
        finding, path, mode, uid, gid = line.split("\t")
        if path not in mount_points:
            entry = {"path": path, "mode": f"{int(mode, 8):04o}", "uid": int(uid), "gid": int(gid)}
            found[finding].append(entry)
    # Anyone may write in a sticky world-writable folder (/tmp): that is what it is for, and
    # what lies inside it is outside the check.
    sticky = [entry["path"] for entry in found.pop("sticky")]
    found["world_writable"] = [
        entry
        for entry in found["world_writable"]
        if entry["path"] not in sticky
        and not any(entry["path"].startswith(folder.rstrip("/") + "/") for folder in sticky)
    ]
    return found


def allowed_as(host: Host, uid: int, path: str, test: str) -> bool:
    """Whether `uid` (with its own group only) passes `test -r|-w PATH`: asked of the kernel
    by a process that has become that user."""
    command = f"setpriv --reuid {uid} --regid {uid} --clear-groups test {test} %s"
    return host.run(command, path).rc == 0


def file_access(host: Host, path: str, uid: int) -> dict:
    """A file's owner and mode, and whether `uid` can read it (as that user)."""
    file = host.file(path)
    if not file.exists:
        return {"path": path, "error": "No such file or directory"}
    return {
        "path": path,
        "mode": f"{file.mode:04o}",
        "uid": file.uid,
        "gid": file.gid,
        "readable": allowed_as(host, uid, path, "-r"),
    }


def matching(host: Host, pattern: str) -> list[str]:
    """Paths in the target matching a glob pattern (expanded by the shell in the target's root)."""
    listed = host.run(f"ls -d -- {pattern} 2>/dev/null")
    return sorted(listed.stdout.splitlines()) if listed.rc == 0 else []


def users(host: Host) -> dict[str, int]:
    """Account name -> UID, from the target's /etc/passwd."""
    passwd = host.file("/etc/passwd")
    if not passwd.exists:
        return {}
    return {
        fields[0]: int(fields[2])
        for fields in (line.split(":") for line in passwd.content_string.splitlines())
        if len(fields) > 2 and fields[2].isdigit()
    }


def fetch(host: Host, url: str, json_body: str | None = None) -> list:
    """[url, status, body] of a GET in the target's network (a POST of `json_body` when one
    is given; status 0: nothing answered). TLS is not verified here: the certificate's checks
    belong to the host's own fetch."""
    marker = f"dashtam-status-{secrets.token_hex(4)}:"
    # testinfra formats the command with %: curl's own %{http_code} is written %%.
    write_out = f"'\\n{marker}%%{{http_code}}'"
    post = "--header 'Content-Type: application/json' --data %s " if json_body is not None else ""
    answer = host.run(
        f"curl --silent --show-error --insecure --max-time 5 --write-out {write_out} {post}%s",
        *([json_body] if json_body is not None else []),
        url,
    )
    body, _, status = answer.stdout.rpartition(f"\n{marker}")
    if answer.rc != 0 or not status.strip().isdigit():
        return [url, 0, answer.stderr.strip() or f"curl exit {answer.rc}"]
    return [url, int(status), body]


def connects(host: Host, address: str) -> str:
    """Whether a TCP connection to HOST:PORT opens from the target's network namespace."""
    name, _, port = address.rpartition(":")
    reachable = host.addr(name).port(int(port)).is_reachable
    return "connected" if reachable else "refused: no connection"


def postgres_login(host: Host, user: str, password: str | None) -> str:
    """What PostgreSQL answers a TCP login on loopback: "accepted", "password requested" when
    no password is given, or "refused: <SQLSTATE or what it said>"."""
    variables = f"PGPASSWORD={shlex.quote(password)} " if password else ""
    tried = host.run(
        f"{variables}PGCONNECT_TIMEOUT={CONNECT_SECONDS} psql --no-password --no-psqlrc "
        "--host=127.0.0.1 --username=%s --dbname=postgres --command='' 2>&1",
        user,
    )
    said = tried.stdout.strip().splitlines()
    if tried.rc == 0:
        return "accepted"
    if any("no password supplied" in line for line in said):
        return "password requested"
    if any("password authentication failed" in line for line in said):
        return "refused: 28P01"
    return "refused: " + (said[-1] if said else f"psql exit {tried.rc}")


def redis_unauthenticated(host: Host) -> str:
    """Redis' first reply line to a PING sent without authenticating."""
    reply = host.run(f"printf 'PING\\r\\n' | nc -N -w {CONNECT_SECONDS} 127.0.0.1 6379")
    lines = reply.stdout.replace("\r", "").splitlines()
    return lines[0] if lines else f"no answer: {reply.stderr.strip() or reply.rc}"


def redis_replies(
    host: Host, address: str, user: str, password: str, commands: list[str]
) -> dict[str, str]:
    """Redis' reply to each of `commands` (its first line), sent at `address` (HOST:PORT)
    after logging in as `user`; "AUTH" is the login's own. `password` is the password, or
    `file:PATH` to read it from a file of the target (then it never enters a command line)."""
    name, _, port = address.rpartition(":")
    if password.startswith("file:"):
        login = f'P="$(cat {shlex.quote(password.removeprefix("file:"))})"; '
    else:
        login = f"P={shlex.quote(password)}; "
    words = " ".join(shlex.quote(command) for command in commands)
    sent = host.run(
        f"{login}printf '%s\\r\\n' \"AUTH {shlex.quote(user)} $P\" {words} QUIT"
        f" | nc -N -w {CONNECT_SECONDS} {shlex.quote(name)} {int(port)}"
    )
    replies = first_lines_of_replies(sent.stdout.replace("\r", "").splitlines())
    if not replies:
        return {"AUTH": f"no answer: {sent.stderr.strip() or sent.rc}"}
    return dict(zip(["AUTH", *commands], replies, strict=False))


def first_lines_of_replies(lines: list[str]) -> list[str]:
    """The first line of each RESP reply in `lines`, a bulk string's or an array's body
    skipped (the answers a refused command gets are one line each)."""
    replies, index = [], 0

    def skip_one() -> None:
        nonlocal index
        kind, body = lines[index][:1], lines[index][1:]
        index += 1
        if kind == "$" and body.lstrip("-").isdigit() and int(body) >= 0:
            index += 1
        elif kind == "*" and body.lstrip("-").isdigit():
            for _ in range(max(int(body), 0)):
                if index < len(lines):
                    skip_one()

    while index < len(lines):
        replies.append(lines[index])
        skip_one()
    return replies


def read_container(
    host: Host,
    *,
    app_uid: int,
    app_gid: int,
    files: bool = False,
    writable_as: list[str] = (),
    readable_as: list[str] = (),
    globs: list[str] = (),
    fetch_urls: list[str] = (),
    connect: list[str] = (),
    postgres_user: str | None = None,
    redis: bool = False,
    redis_acl_file: str | None = None,
    redis_login: tuple[str, str, str] | None = None,
    redis_refused: list[str] = (),
) -> dict:
    """Everything the policy and the report read of one container, through its host."""
    report: dict = {"processes": processes(host), "sockets": sockets(host), "mounts": mounts(host)}
    if report["processes"]:
        executable, libraries = executable_and_libraries(host, report["processes"][0]["pid"])
        report["processes"][0].update(executable=executable, libraries=libraries)
    if files:
        points = {point for point in report["mounts"] if point != "/"}
        report["files"] = file_findings(host, app_uid, app_gid, points)
    report["writable"] = {
        path: allowed_as(host, int(uid), path, "-w")
        for uid, path in (entry.split(":", 1) for entry in writable_as)
    }
    report["readable"] = [
        file_access(host, path, int(uid))
        for uid, path in (entry.split(":", 1) for entry in readable_as)
    ]
    report["globs"] = {pattern: matching(host, pattern) for pattern in globs}
    report["users"] = users(host)
    # In order: a later fetch may depend on an earlier one (a second delivery of a code).
    report["fetched"] = [fetch(host, url) for url in fetch_urls]
    report["connections"] = {address: connects(host, address) for address in connect}
    if postgres_user:
        report["postgres"] = {
            "without_password": postgres_login(host, postgres_user, None),
            "wrong_password": postgres_login(host, postgres_user, secrets.token_urlsafe(12)),
        }
    if redis:
        report["redis"] = {"unauthenticated_ping": redis_unauthenticated(host)}
        if redis_acl_file:
            acl = host.file(redis_acl_file)
            report["redis"]["acl_users"] = (
                redis_users.users_in_acl_file(acl.content_string) if acl.is_file else None
            )
    if redis_login:
        address, user, password = redis_login
        report["redis_replies"] = redis_replies(host, address, user, password, list(redis_refused))
    return report
