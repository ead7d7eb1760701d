"""The image's HEALTHCHECK: `python -S -m src.healthcheck app|callback`.

GETs /health on 127.0.0.1 at the service's port with the scheme the server uses (https
when APP_TLS_CERT_FILE is set). A raw socket and the standard library only (ssl only for
https), so a probe costs a Python start and a request: Docker runs one every half second
while a container starts, and every one competes with the starting server for the CPU.
While the port still refuses connections (the server is starting), a probe keeps trying
for a moment, so Docker sees the service healthy as soon as it listens rather than at its
next probe, start_interval and a probe's own start-up later.
Exit 0 when the answer is 200, else 1 with one line (Docker reserves exit status 2).
"""

from __future__ import annotations

import os
import socket
import sys
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from src.ports import SERVICE_PORTS

if TYPE_CHECKING:
    import ssl

# The same variable Settings.APP_TLS_CERT_FILE reads; read directly to keep pydantic out.
TLS_CERT_VARIABLE = "APP_TLS_CERT_FILE"
TIMEOUT_SECONDS = 1.2
# How long a refused connection is tried again; with TIMEOUT_SECONDS for the answer, a probe
# stays inside the images' 10 s healthcheck timeout. Most of it: a starting server refuses for
# seconds, and every probe is an exec through the engine (about 0.09 CPU-s), a retry is not;
# one probe then covers a whole start. A server that hangs still fails within TIMEOUT_SECONDS.
STARTING_WAIT_SECONDS = 8.5
RETRY_SECONDS = 0.02
USAGE = f"usage: python -m src.healthcheck {'|'.join(SERVICE_PORTS)}"


def health_url(service: str, environ: Mapping[str, str]) -> str:
    """The URL this service's liveness endpoint answers on inside its own container."""
    scheme = "https" if environ.get(TLS_CERT_VARIABLE, "").strip() else "http"
    return f"{scheme}://127.0.0.1:{SERVICE_PORTS[service]}/health"


def loopback_tls_context() -> ssl.SSLContext:
    """TLS without verification: this is the server calling itself with a self-signed cert."""
    import ssl

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def connect(host: str, port: int, wait: float) -> socket.socket:
    """A connection to host:port, trying again for `wait` seconds while it is refused."""
    deadline = time.monotonic() + wait
    while True:
        try:
            return socket.create_connection((host, port), timeout=TIMEOUT_SECONDS)
        except ConnectionRefusedError:
            if time.monotonic() + RETRY_SECONDS > deadline:
                raise
            time.sleep(RETRY_SECONDS)


def fetch_status(url: str, wait: float = STARTING_WAIT_SECONDS) -> int:
    """The HTTP status the URL answers with (raises OSError when nothing answers within
    `wait`, ValueError when what answers is not HTTP). Only URLs of health_url's own form."""
    scheme, _, rest = url.partition("://")
    address, _, path = rest.partition("/")
    host, _, port = address.rpartition(":")
    request = f"GET /{path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    connection = connect(host, int(port), wait)
    if scheme == "https":
        connection = loopback_tls_context().wrap_socket(connection, server_hostname=host)
    with connection:
        connection.sendall(request.encode())
        answer = b""
        while b"\r\n" not in answer and len(answer) < 1024:
            chunk = connection.recv(1024)
            if not chunk:
                break
            answer += chunk
    status_line = answer.split(b"\r\n", 1)[0].split()
    if len(status_line) < 2 or not status_line[0].startswith(b"HTTP/"):
        raise ValueError(f"not an HTTP answer: {answer[:60]!r}")
    return int(status_line[1])


def main(arguments: Sequence[str] | None = None) -> int:
    arguments = sys.argv[1:] if arguments is None else arguments
    if len(arguments) != 1 or arguments[0] not in SERVICE_PORTS:
        print(f"healthcheck: {USAGE}", file=sys.stderr)
        return 1
    url = health_url(arguments[0], os.environ)
    try:
        status = fetch_status(url)
    except (OSError, ValueError) as error:
        print(f"unhealthy: {url} did not answer: {error}", file=sys.stderr)
        return 1
    if status != 200:
        print(f"unhealthy: {url} answered {status}", file=sys.stderr)
        return 1
    print(f"healthy: {url} answered 200")
    return 0


if __name__ == "__main__":
    sys.exit(main())
