"""Reading what really runs inside a container: processes, users, listening sockets.

Slim images have no `ps` or `ss`, so everything comes from /proc through `sh`. The shell
snippets and their parsers are shared by the verify report and the testinfra suite.
"""

from __future__ import annotations

from dataclasses import dataclass

# One exec prints every process as "pid uid gid name" (real IDs, from /proc/<pid>/status),
# leaving out this reader itself: its shell and the children it starts.
PROCESSES_SCRIPT = (
    "self=$$; for d in /proc/[0-9]*; do p=${d#/proc/}; "
    '[ "$p" = "$self" ] && continue; [ -r $d/status ] || continue; '
    "awk -v p=$p -v s=$self '/^Name:/{n=$2} /^PPid:/{pp=$2} /^Uid:/{u=$2} /^Gid:/{g=$2} "
    'END{if (n != "" && pp != s) print p, u, g, n}\' $d/status 2>/dev/null; done'
)
# Both socket tables; IPv6 may be absent in a container without it.
LISTENING_SCRIPT = "cat /proc/net/tcp /proc/net/tcp6 2>/dev/null"

_TCP_LISTEN = "0A"
# Docker's embedded DNS server listens on 127.0.0.11 inside every container on a user-defined
# network; it belongs to the engine, not to the service.
_DOCKER_DNS = "0B00007F"


@dataclass(frozen=True)
class Process:
    pid: int
    uid: int
    gid: int
    name: str


# runc's own bootstrap while it starts an exec (a healthcheck probe, a `docker exec`): it
# belongs to the engine and runs as root for a moment before it becomes the command, as the
# exec's user. Like Docker's DNS server below, it is never the service's process.
_RUNTIME_BOOTSTRAP = "runc:["


def parse_processes(text: str) -> list[Process]:
    processes = []
    for line in text.splitlines():
        fields = line.split(maxsplit=3)
        if len(fields) == 4 and fields[0].isdigit():
            if fields[3].startswith(_RUNTIME_BOOTSTRAP):
                continue
            processes.append(Process(int(fields[0]), int(fields[1]), int(fields[2]), fields[3]))
    return processes


def parse_listening_ports(text: str) -> set[int]:
    """TCP ports in LISTEN state from /proc/net/tcp{,6} (local_address is hex ip:port)."""
    ports = set()
    for line in text.splitlines():
        fields = line.split()
        if len(fields) > 3 and fields[3] == _TCP_LISTEN and ":" in fields[1]:
            address, port = fields[1].rsplit(":", 1)
            if address != _DOCKER_DNS:
                ports.add(int(port, 16))
    return ports


# ---------------------------------------------------------------- several facts in one exec

# Each `docker exec` waits on the engine for about 0.1 s: the suite asks a container for
# all its facts in one script, and every container at once.
_FACT_MARKER = "@@dashtam-fact"


@dataclass(frozen=True)
class Fact:
    exit_code: int
    output: str


def facts_script(sections: dict[str, str]) -> str:
    """One shell script running each section's command, its stdout and exit code marked."""
    return "\n".join(
        f'{command}\necho "{_FACT_MARKER} {name} $?"' for name, command in sections.items()
    )


def split_facts(output: str) -> dict[str, Fact]:
    """A facts_script's stdout back into {section: Fact(exit code, output)}."""
    facts = {}
    lines: list[str] = []
    for line in output.splitlines():
        # A section whose output lacks a final newline shares its last line with the marker.
        before, marker, status = line.partition(_FACT_MARKER + " ")
        if not marker:
            lines.append(line)
            continue
        if before:
            lines.append(before)
        name, code = status.rsplit(" ", 1)
        facts[name] = Fact(int(code), "".join(f"{text}\n" for text in lines))
        lines = []
    return facts
