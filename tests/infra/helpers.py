"""Small helpers shared by the verification checks and their fixtures."""

from __future__ import annotations

import json
import shlex

from pipeline.environments import APP_GID, APP_UID, SERVICE_PORTS


def mismatch(env: str, service: str, prop: str, expected: object, found: object) -> str:
    """Every failure message says environment, service, property, expected and found."""
    return f"[{env}] {service}: {prop}: expected {expected!r}, found {found!r}"


def declared_mount_targets(service_config: dict) -> set[str]:
    targets = {volume["target"] for volume in service_config.get("volumes", [])}
    targets |= {entry.split(":")[0] for entry in service_config.get("tmpfs", [])}
    return targets


def unowned_files_command(service_config: dict) -> str:
    """find every path under /app (mounted folders left out) not owned by appuser."""
    prune = sorted(t for t in declared_mount_targets(service_config) if t.startswith("/app/"))
    prune_expression = " ".join(f"-path {t} -prune -o" for t in prune)
    return f"find /app -xdev {prune_expression} \\( ! -uid {APP_UID} -o ! -gid {APP_GID} \\) -print"


def host_url(scheme: str, inspect: dict, service: str, path: str) -> str | None:
    """The URL of a service's endpoint through its host port; None when it publishes none."""
    ports = inspect["NetworkSettings"]["Ports"] or {}
    bindings = ports.get(f"{SERVICE_PORTS[service]}/tcp") or []
    if not bindings:
        return None
    return f"{scheme}://127.0.0.1:{bindings[0]['HostPort']}{path}"


def network_url(scheme: str, service: str, path: str) -> str:
    """The URL of a service's endpoint on the stack's own network."""
    return f"{scheme}://{service}:{SERVICE_PORTS[service]}{path}"


# Run inside the app container for services with no host port: stdlib only, as the image
# has, and only the light modules (ssl only for https). One line of JSON per URL:
# [url, status, body]; status 0 when nothing answered.
_FETCH_INSIDE = """\
import http.client, json, sys, urllib.parse
for url in sys.argv[1:]:
    parts = urllib.parse.urlsplit(url)
    try:
        if parts.scheme == "https":
            import ssl
            connection = http.client.HTTPSConnection(
                parts.hostname, parts.port, timeout=5, context=ssl._create_unverified_context()
            )
        else:
            connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=5)
        connection.request("GET", parts.path)
        response = connection.getresponse()
        status, body = response.status, response.read().decode(errors="replace")
    except OSError as error:
        status, body = 0, repr(error)
    print(json.dumps([url, status, body]))
"""


def fetch_inside_command(urls: list[str]) -> str:
    # -I -S: no user site, no site-packages: the stdlib is all the script needs, and the
    # interpreter starts sooner.
    urls_text = " ".join(shlex.quote(url) for url in urls)
    return f"python -I -S -c {shlex.quote(_FETCH_INSIDE)} {urls_text}"


def parse_fetched(output: str) -> dict[str, tuple[int, str]]:
    """fetch_inside_command's output: {url: (status, body)}."""
    fetched = {}
    for line in output.splitlines():
        if line.startswith("["):
            url, status, body = json.loads(line)
            fetched[url] = (status, body)
    return fetched
