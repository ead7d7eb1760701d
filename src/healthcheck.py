"""The image's HEALTHCHECK: `python -m src.healthcheck app|callback`.

GETs /health on 127.0.0.1 at the service's port with the scheme the server uses (https
when APP_TLS_CERT_FILE is set). Standard library only, so a check costs milliseconds.
Exit 0 when the answer is 200, else 1 with one line (Docker reserves exit status 2).
"""

from __future__ import annotations

import http.client
import os
import ssl
import sys
import urllib.parse
from collections.abc import Mapping, Sequence

from src.ports import SERVICE_PORTS

# The same variable Settings.APP_TLS_CERT_FILE reads; read directly to keep pydantic out.
TLS_CERT_VARIABLE = "APP_TLS_CERT_FILE"
TIMEOUT_SECONDS = 2.0
USAGE = f"usage: python -m src.healthcheck {'|'.join(SERVICE_PORTS)}"


def health_url(service: str, environ: Mapping[str, str]) -> str:
    """The URL this service's liveness endpoint answers on inside its own container."""
    scheme = "https" if environ.get(TLS_CERT_VARIABLE, "").strip() else "http"
    return f"{scheme}://127.0.0.1:{SERVICE_PORTS[service]}/health"


def loopback_tls_context() -> ssl.SSLContext:
    """TLS without verification: this is the server calling itself with a self-signed cert."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def fetch_status(url: str) -> int:
    """The HTTP status the URL answers with (raises OSError when nothing answers).

    http.client rather than urllib.request: fewer imports, and no HTTP(S)_PROXY variable
    can capture a loopback request.
    """
    parts = urllib.parse.urlsplit(url)
    connection: http.client.HTTPConnection
    if parts.scheme == "https":
        connection = http.client.HTTPSConnection(
            parts.hostname, parts.port, timeout=TIMEOUT_SECONDS, context=loopback_tls_context()
        )
    else:
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=TIMEOUT_SECONDS)
    try:
        connection.request("GET", parts.path)
        return connection.getresponse().status
    finally:
        connection.close()


def main(arguments: Sequence[str] | None = None) -> int:
    arguments = sys.argv[1:] if arguments is None else arguments
    if len(arguments) != 1 or arguments[0] not in SERVICE_PORTS:
        print(f"healthcheck: {USAGE}", file=sys.stderr)
        return 1
    url = health_url(arguments[0], os.environ)
    try:
        status = fetch_status(url)
    except (OSError, http.client.HTTPException) as error:
        print(f"unhealthy: {url} did not answer: {error}", file=sys.stderr)
        return 1
    if status != 200:
        print(f"unhealthy: {url} answered {status}", file=sys.stderr)
        return 1
    print(f"healthy: {url} answered 200")
    return 0


if __name__ == "__main__":
    sys.exit(main())
