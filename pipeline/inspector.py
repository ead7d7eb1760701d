"""The inspector's server: runs a testinfra host's commands inside one container, from outside.

It runs in a helper container that shares the target's PID and network namespaces (started by
pipeline.inspection). The target's PID 1 is PID 1 here, so /proc/1/root is the target's root
filesystem, mounts and all: each command runs chrooted there, so every path it names — and
every symlink it follows — is the target's, and `ps`, `ss` and `nc` see the target's
processes and network. Nothing of ours is inside the target: the tools (coreutils, procps,
iproute2, netcat, curl, psql; see docker/inspector/) are reached through a descriptor of
this image's root, kept open as fd 7 across the chroot, and were patched to load their
interpreter and libraries through it. Like `kubectl debug` and `docker debug`, it needs
nothing from the image it reads, so a shell-less image is a host like any other.

Protocol, one JSON object per line: {"command": "..."} in, {"rc": N, "stdout": base64,
"stderr": base64} out; end of input ends the server (and the helper container with it).
Standard library only: it runs on the Python image's bare interpreter (`python3 -I -S`).
"""

from __future__ import annotations

import base64
import json
import os
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


# chroot(8) enters the target's root (and its /) and runs our shell there: a program of this
# image rather than a preexec hook, so the server starts each command the cheap way (vfork),
# about twice as fast (1.5 ms against 3 ms a command, measured in the helper).
ENTER_TARGET = ("/usr/sbin/chroot", TARGET_ROOT)


def run(command: str) -> dict:
    """One shell command inside the target: its exit status and output."""
    try:
        done = subprocess.run(
            [*ENTER_TARGET, f"{TOOLS_INSIDE_TARGET}/sh", "-c", command],
            pass_fds=(HELPER_ROOT_FD,),
            env=ENVIRONMENT,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=COMMAND_TIMEOUT_SECONDS,
            check=False,
        )
        rc, stdout, stderr = done.returncode, done.stdout, done.stderr
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
    for line in requests:
        if line.strip():
            answers.write(json.dumps(run(json.loads(line)["command"])) + "\n")
            answers.flush()


if __name__ == "__main__":
    serve(sys.stdin, sys.stdout)
