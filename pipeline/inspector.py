"""The inspector: reads one running container from outside, as JSON, with no shell in it.

Run in a helper container that shares the target's PID and network namespaces
(`docker run --pid container:<id> --net container:<id> --cap-add SYS_PTRACE dashtam/inspector`,
see pipeline.inspection). The target's PID 1 is then PID 1 here, its files are under
/proc/1/root, its sockets in /proc/net (this process's network namespace is the target's).
Like `kubectl debug` and `docker debug`, it needs nothing from the image it reads, so a
shell-less production image is read the same way as a development one.

Standard library only: it runs on the Python image's bare interpreter (`python3 -I -S`).

    python3 inspector.py [--files] [--app-uid N --app-gid N] [--writable-as UID:PATH ...]
                         [--readable-as UID:PATH ...] [--glob PATTERN ...] [--users]
                         [--fetch URL ...] [--connect HOST:PORT ...] [--postgres USER] [--redis]
"""

from __future__ import annotations

import argparse
import base64
import glob
import http.client
import json
import os
import re
import socket
import ssl
import stat
import struct
import sys
import urllib.parse
from collections.abc import Iterator

TARGET_ROOT = "/proc/1/root"
# Folders whose programs count as the image's binaries (shells, coreutils, package managers).
PROGRAM_FOLDERS = ("/bin", "/sbin", "/usr/bin", "/usr/sbin", "/usr/local/bin", "/usr/local/sbin")
# Docker's embedded DNS server listens on 127.0.0.11 in every container on a user-defined
# network: the engine's, not the service's.
DOCKER_DNS = "127.0.0.11"
# /proc/net socket states: TCP LISTEN, and UDP's "unconnected" (bound, receiving).
TCP_LISTEN = "0A"
UDP_BOUND = "07"
# runc's own bootstrap while it starts an exec (a healthcheck probe): the engine's, not
# the service's, and root only for a moment before it becomes the command.
RUNTIME_BOOTSTRAP = "runc:["
CONNECT_SECONDS = 3


# ---------------------------------------------------------------- processes


def read_status(pid: str) -> dict[str, str] | None:
    try:
        with open(f"/proc/{pid}/status") as status:
            return dict(line.rstrip("\n").split(":\t", 1) for line in status if ":\t" in line)
    except OSError:
        return None  # it ended while we looked


def executable_and_libraries(pid: str) -> tuple[str | None, list[str]]:
    """The program a process runs and the shared objects it has mapped, as paths inside the
    target (how its loader resolved them)."""
    try:
        executable = os.readlink(f"/proc/{pid}/exe")
        with open(f"/proc/{pid}/maps") as maps:
            # address perms offset device inode [path]: anonymous mappings have no path.
            fields = [line.split(None, 5) for line in maps]
        mapped = {entry[5].strip() for entry in fields if len(entry) == 6}
    except OSError:
        return None, []  # a kernel thread, or it ended while we looked
    return executable, sorted(path for path in mapped if ".so" in path.rsplit("/", 1)[-1])


def processes(own_pid: int) -> list[dict]:
    """Every process of the target (this inspector and what it starts left out)."""
    found = []
    for pid in sorted((name for name in os.listdir("/proc") if name.isdigit()), key=int):
        status = read_status(pid)
        if status is None or int(pid) == own_pid or int(status["PPid"]) == own_pid:
            continue
        if status["Name"].startswith(RUNTIME_BOOTSTRAP):
            continue
        uids = [int(value) for value in status["Uid"].split()]
        gids = [int(value) for value in status["Gid"].split()]
        executable, libraries = executable_and_libraries(pid)
        found.append(
            {
                "pid": int(pid),
                "name": status["Name"],
                "executable": executable,
                "libraries": libraries,
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


# ---------------------------------------------------------------- sockets


def _address(hex_address: str) -> str:
    """/proc/net's little-endian hex address (IPv4 or IPv6) in its usual text form."""
    raw = bytes.fromhex(hex_address)
    if len(raw) == 4:
        return socket.inet_ntop(socket.AF_INET, raw[::-1])
    words = b"".join(raw[index : index + 4][::-1] for index in range(0, 16, 4))
    return socket.inet_ntop(socket.AF_INET6, words)


def parse_sockets(protocol: str, text: str) -> list[dict]:
    """Listening TCP or bound UDP sockets of one /proc/net table, Docker's DNS left out."""
    wanted = TCP_LISTEN if protocol.startswith("tcp") else UDP_BOUND
    found = []
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 4 or fields[3] != wanted:
            continue
        hex_address, hex_port = fields[1].rsplit(":", 1)
        address = _address(hex_address)
        if address == DOCKER_DNS or address == f"::ffff:{DOCKER_DNS}":
            continue
        found.append({"protocol": protocol, "address": address, "port": int(hex_port, 16)})
    return found


def sockets() -> list[dict]:
    found = []
    for protocol in ("tcp", "tcp6", "udp", "udp6"):
        try:
            with open(f"/proc/net/{protocol}") as table:
                found += parse_sockets(protocol, table.read())
        except OSError:
            continue  # no IPv6 in this namespace
    return found


# ---------------------------------------------------------------- mounts and files


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


def mounts() -> dict[str, dict]:
    with open("/proc/1/mountinfo") as table:
        return parse_mounts(table.read())


def image_files(mount_points: set[str]) -> Iterator[tuple[str, os.stat_result]]:
    """(path, lstat) of every file and folder of the root filesystem; what is mounted over
    it (volumes, tmpfs, /proc, bind mounts) is left out."""
    for folder, subfolders, names in os.walk(TARGET_ROOT + "/"):
        inside = folder[len(TARGET_ROOT) :] or "/"
        subfolders[:] = [
            name for name in subfolders if os.path.join(inside, name) not in mount_points
        ]
        for name in [*subfolders, *names]:
            path = os.path.join(inside, name)
            try:
                yield path, os.lstat(TARGET_ROOT + path)
            except OSError:
                continue


def file_findings(mount_points: set[str], app_uid: int, app_gid: int) -> dict[str, list[dict]]:
    """The root filesystem's setuid/setgid files, world-writable paths (sticky folders
    aside), what under /app is not the app user's or is writable by others, and programs."""
    found: dict[str, list[dict]] = {
        "special_bits": [],
        "world_writable": [],
        "app": [],
        "programs": [],
    }
    # World-writable folders with the sticky bit (/tmp): anyone may write in them, which is
    # what they are for; what lies inside them is outside the check.
    sticky: list[str] = []
    for path, info in image_files(mount_points):
        mode = info.st_mode
        entry = {
            "path": path,
            "mode": f"{stat.S_IMODE(mode):04o}",
            "uid": info.st_uid,
            "gid": info.st_gid,
        }
        if stat.S_ISREG(mode) and mode & (stat.S_ISUID | stat.S_ISGID):
            found["special_bits"].append(entry)
        # Files and folders: a socket's or a device's mode says nothing of what may change.
        inside_sticky = any(path.startswith(folder + "/") for folder in sticky)
        if stat.S_ISDIR(mode) and mode & stat.S_IWOTH and mode & stat.S_ISVTX:
            sticky.append(path)
        elif (
            (stat.S_ISREG(mode) or stat.S_ISDIR(mode)) and mode & stat.S_IWOTH and not inside_sticky
        ):
            found["world_writable"].append(entry)
        in_app = (path == "/app" or path.startswith("/app/")) and not stat.S_ISLNK(mode)
        not_owned = (info.st_uid, info.st_gid) != (app_uid, app_gid)
        if in_app and (not_owned or mode & (stat.S_IWGRP | stat.S_IWOTH)):
            found["app"].append(entry)
        if os.path.dirname(path) in PROGRAM_FOLDERS and not stat.S_ISDIR(mode):
            found["programs"].append(entry)
    return found


def allowed_as(uid: int, path: str, mode: int) -> bool:
    """Whether `uid` (with its own group only) may access `path` in the target in `mode`
    (os.R_OK, os.W_OK): asked of the kernel by a child process that has become that user."""
    child = os.fork()
    if child == 0:
        try:
            os.setgroups([])
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)
            os._exit(0 if os.access(TARGET_ROOT + path, mode) else 1)
        except BaseException:
            os._exit(2)
    _, status = os.waitpid(child, 0)
    return os.waitstatus_to_exitcode(status) == 0


def file_access(path: str, uid: int) -> dict:
    """A file's owner and mode, and whether `uid` can read it (as that user)."""
    try:
        info = os.stat(TARGET_ROOT + path)
    except OSError as error:
        return {"path": path, "error": error.strerror}
    return {
        "path": path,
        "mode": f"{stat.S_IMODE(info.st_mode):04o}",
        "uid": info.st_uid,
        "gid": info.st_gid,
        "readable": allowed_as(uid, path, os.R_OK),
    }


def matching(pattern: str) -> list[str]:
    """Paths in the target matching a glob pattern (as the target sees them)."""
    return sorted(path[len(TARGET_ROOT) :] for path in glob.glob(TARGET_ROOT + pattern))


def users() -> dict[str, int]:
    """Account name -> UID, from the target's /etc/passwd."""
    try:
        with open(TARGET_ROOT + "/etc/passwd") as passwd:
            return {
                fields[0]: int(fields[2])
                for fields in (line.split(":") for line in passwd)
                if len(fields) > 2 and fields[2].isdigit()
            }
    except OSError:
        return {}


# ---------------------------------------------------------------- the network, from inside


def fetch(url: str) -> list:
    """[url, status, body] of a GET in the target's network (status 0: nothing answered).
    TLS is not verified here: the certificate's checks belong to the host's own fetch."""
    parts = urllib.parse.urlsplit(url)
    try:
        if parts.scheme == "https":
            context = ssl._create_unverified_context()  # noqa: S323 - see above
            connection = http.client.HTTPSConnection(
                parts.hostname, parts.port, timeout=5, context=context
            )
        else:
            connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=5)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        connection.request("GET", target)
        response = connection.getresponse()
        return [url, response.status, response.read().decode(errors="replace")]
    except OSError as error:
        return [url, 0, repr(error)]


def connects(address: str) -> str:
    """Whether a TCP connection to HOST:PORT opens from the target's network namespace."""
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=CONNECT_SECONDS):
            return "connected"
    except OSError as error:
        return f"refused: {error}"


# ---------------------------------------------------------------- data stores, tried


def _receive_message(connection: socket.socket) -> tuple[bytes, bytes]:
    header = _receive_exactly(connection, 5)
    length = struct.unpack("!I", header[1:5])[0]
    return header[:1], _receive_exactly(connection, length - 4)


def _receive_exactly(connection: socket.socket, count: int) -> bytes:
    data = b""
    while len(data) < count:
        chunk = connection.recv(count - len(data))
        if not chunk:
            raise ConnectionError("the server closed the connection")
        data += chunk
    return data


def _send(connection: socket.socket, kind: bytes, body: bytes) -> None:
    connection.sendall(kind + struct.pack("!I", len(body) + 4) + body)


def postgres_login(user: str, password: str | None, port: int = 5432) -> str:
    """What PostgreSQL answers a TCP login on loopback: "accepted" (AuthenticationOk),
    "refused: <SQLSTATE>" (an error), or "password requested" when no password is given.

    A wrong password is sent the way the server asks for it (cleartext, md5 or the SCRAM
    exchange with a proof that cannot be right), so the server's verdict is what counts.
    """
    startup = struct.pack("!I", 196608) + b"user\0" + user.encode() + b"\0database\0postgres\0\0"
    with socket.create_connection(("127.0.0.1", port), timeout=CONNECT_SECONDS) as connection:
        connection.sendall(struct.pack("!I", len(startup) + 4) + startup)
        while True:
            kind, body = _receive_message(connection)
            if kind == b"E":
                return "refused: " + _sqlstate(body)
            if kind != b"R":
                continue
            method = struct.unpack("!I", body[:4])[0]
            if method == 0:
                return "accepted"
            if password is None:
                return "password requested"
            if method in (3, 5):  # cleartext, md5: any wrong answer will do
                _send(connection, b"p", password.encode() + b"\0")
            elif method == 10:  # SASL: start SCRAM-SHA-256
                nonce = base64.b64encode(os.urandom(18))
                first = b"n,,n=,r=" + nonce
                payload = b"SCRAM-SHA-256\0" + struct.pack("!I", len(first)) + first
                _send(connection, b"p", payload)
            elif method == 11:  # SASL continue: answer with a proof that is not the password's
                server_first = dict(part.split(b"=", 1) for part in body[4:].split(b","))
                proof = base64.b64encode(os.urandom(32))
                _send(connection, b"p", b"c=biws,r=" + server_first[b"r"] + b",p=" + proof)
            elif method == 12:
                return "accepted"
            else:
                return f"unknown authentication method {method}"


def _sqlstate(body: bytes) -> str:
    for field in body.split(b"\0"):
        if field[:1] == b"C":
            return field[1:].decode()
    return "?"


def redis_unauthenticated(port: int = 6379) -> str:
    """Redis' first reply line to a PING sent without authenticating."""
    with socket.create_connection(("127.0.0.1", port), timeout=CONNECT_SECONDS) as connection:
        connection.sendall(b"PING\r\n")
        return connection.recv(256).decode(errors="replace").split("\r\n")[0]


def _tried(attempt, *arguments) -> str:
    try:
        return attempt(*arguments)
    except OSError as error:
        return f"no answer: {error}"


# ---------------------------------------------------------------- command line


def parse_arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="inspector", description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", action="store_true", help="walk the root filesystem")
    parser.add_argument("--app-uid", type=int, default=1000)
    parser.add_argument("--app-gid", type=int, default=1000)
    parser.add_argument(
        "--writable-as",
        action="append",
        default=[],
        metavar="UID:PATH",
        help="whether UID may write to PATH in the target",
    )
    parser.add_argument(
        "--readable-as",
        action="append",
        default=[],
        metavar="UID:PATH",
        help="owner, mode, and whether UID may read PATH in the target",
    )
    parser.add_argument("--glob", action="append", default=[], metavar="PATTERN")
    parser.add_argument("--users", action="store_true", help="the target's accounts")
    parser.add_argument("--fetch", action="append", default=[], metavar="URL")
    parser.add_argument("--connect", action="append", default=[], metavar="HOST:PORT")
    parser.add_argument("--postgres", metavar="USER", help="try TCP logins to PostgreSQL")
    parser.add_argument("--redis", action="store_true", help="try an unauthenticated PING")
    return parser.parse_args(argv)


def inspect(arguments: argparse.Namespace) -> dict:
    report: dict = {"processes": processes(os.getpid()), "sockets": sockets()}
    report["mounts"] = mounts()
    if arguments.files:
        points = {point for point in report["mounts"] if point != "/"}
        report["files"] = file_findings(points, arguments.app_uid, arguments.app_gid)
    report["writable"] = {
        path: allowed_as(int(uid), path, os.W_OK)
        for uid, path in (entry.split(":", 1) for entry in arguments.writable_as)
    }
    report["readable"] = [
        file_access(path, int(uid))
        for uid, path in (entry.split(":", 1) for entry in arguments.readable_as)
    ]
    report["globs"] = {pattern: matching(pattern) for pattern in arguments.glob}
    if arguments.users:
        report["users"] = users()
    # In order: a later fetch may depend on an earlier one (a second delivery of a code).
    report["fetched"] = [fetch(url) for url in arguments.fetch]
    report["connections"] = {address: connects(address) for address in arguments.connect}
    if arguments.postgres:
        report["postgres"] = {
            "without_password": _tried(postgres_login, arguments.postgres, None),
            "wrong_password": _tried(
                postgres_login, arguments.postgres, base64.b64encode(os.urandom(12)).decode()
            ),
        }
    if arguments.redis:
        report["redis"] = {"unauthenticated_ping": _tried(redis_unauthenticated)}
    return report


if __name__ == "__main__":
    json.dump(inspect(parse_arguments(sys.argv[1:])), sys.stdout)
    sys.stdout.write("\n")
