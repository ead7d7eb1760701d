"""The inspector's server: runs a testinfra host's commands inside one container, from outside.

It runs in a helper container that shares the target's PID and network namespaces (started by
pipeline.inspection). The target's PID 1 is PID 1 here, so /proc/1/root is the target's root
filesystem, mounts and all: the server chroots there once, and every command it runs starts
there, so every path it names — and every symlink it follows — is the target's, and `ps`,
`ss` and `nc` see the target's processes and network. Nothing of ours is inside the target:
the tools (coreutils, procps, iproute2, netcat, curl, psql; see docker/inspector/) are
reached through a descriptor of this image's root, kept open as fd 7 across the chroot, and
were patched to load their interpreter and libraries through it. Like `kubectl debug` and
`docker debug`, it needs nothing from the image it reads, so a shell-less image is a host
like any other.

Protocol, one JSON object per line: {"command": "..."} in, {"rc": N, "stdout": base64,
"stderr": base64} out; end of input ends the server (and the helper container with it).
Standard library only: it runs on the Python image's bare interpreter (`python3 -I -S`).
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys

TARGET_ROOT = "/proc/1/root"
TOOLS = "/opt/inspector/bin"
# The descriptor the patched tools load their interpreter and libraries through.
HELPER_ROOT_FD = 7
TOOLS_INSIDE_TARGET = f"/proc/self/fd/{HELPER_ROOT_FD}{TOOLS}"
# Only our tools, in the C locale: nothing the target ships is ever run.
ENVIRONMENT = {"PATH": TOOLS_INSIDE_TARGET, "LC_ALL": "C"}
COMMAND_TIMEOUT_SECONDS = 60
TIMED_OUT = 124
NOT_RUN = 127


# A command made only of plain words (no quoting, expansion, redirection, globbing or
# assignment) whose first word is one of our tools runs without the shell: one program
# started instead of two, as `sh -c` would have run it.
PLAIN_WORDS = re.compile(r"[A-Za-z0-9 _./,:%+@-]+")


def argv_of(command: str, tools: frozenset[str]) -> tuple[list[str], str]:
    """The program and arguments that run `command`, and the file to execute."""
    words = command.split() if PLAIN_WORDS.fullmatch(command) else []
    if words and words[0] in tools:
        return words, f"{TOOLS_INSIDE_TARGET}/{words[0]}"
    return ["sh", "-c", command], f"{TOOLS_INSIDE_TARGET}/sh"


def run(command: str, tools: frozenset[str] = frozenset()) -> dict:
    """One shell command inside the target: its exit status and output."""
    argv, program = argv_of(command, tools)
    try:
        done = subprocess.run(
            argv,
            executable=program,
            pass_fds=(HELPER_ROOT_FD,),
            env=ENVIRONMENT,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=COMMAND_TIMEOUT_SECONDS,
            check=False,
        )
        rc, stdout, stderr = done.returncode, done.stdout, done.stderr
        if rc < 0:  # ended by a signal, which the shell reports as 128 + its number
            rc = 128 - rc
    except subprocess.TimeoutExpired as expired:
        rc, stdout = TIMED_OUT, expired.stdout or b""
        stderr = f"inspector: no answer in {COMMAND_TIMEOUT_SECONDS} s".encode()
    except OSError as error:
        rc, stdout, stderr = NOT_RUN, b"", f"inspector: {error}".encode()
    return {
        "rc": rc,
        "stdout": base64.b64encode(stdout).decode(),
        "stderr": base64.b64encode(stderr).decode(),
    }


def serve(requests, answers) -> None:
    root = os.open("/", os.O_PATH | os.O_DIRECTORY)
    os.dup2(root, HELPER_ROOT_FD, inheritable=True)
    tools = frozenset(os.listdir(TOOLS))
    # Into the target's root once, for every command after: each starts there without a
    # chroot(8) of its own (no preexec hook either, so subprocess keeps its cheap vfork).
    os.chroot(TARGET_ROOT)
    os.chdir("/")
    for line in requests:
        if line.strip():
            answers.write(json.dumps(run(json.loads(line)["command"], tools)) + "\n")
            answers.flush()


if __name__ == "__main__":
    serve(sys.stdin, sys.stdout)
