"""The image's HEALTHCHECK command: scheme and port choice, exit statuses, one-line output."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from src import healthcheck
from src.ports import APP_PORT, CALLBACK_PORT, SERVICE_PORTS
from src.settings import Settings

pytestmark = pytest.mark.usefixtures("settings_environment")


@pytest.mark.parametrize(
    ("service", "environ", "url"),
    [
        ("app", {}, f"http://127.0.0.1:{APP_PORT}/health"),
        ("app", {"APP_TLS_CERT_FILE": ""}, f"http://127.0.0.1:{APP_PORT}/health"),
        ("app", {"APP_TLS_CERT_FILE": "/certs/tls.crt"}, f"https://127.0.0.1:{APP_PORT}/health"),
        ("callback", {}, f"http://127.0.0.1:{CALLBACK_PORT}/health"),
        (
            "callback",
            {"APP_TLS_CERT_FILE": "/certs/tls.crt"},
            f"https://127.0.0.1:{CALLBACK_PORT}/health",
        ),
    ],
    ids=[
        "app without tls uses http",
        "app with an empty tls variable uses http",
        "app with tls uses https",
        "callback without tls uses http",
        "callback with tls uses https",
    ],
)
def test_the_healthcheck_uses_the_scheme_and_port_the_server_serves(
    service: str, environ: dict[str, str], url: str
) -> None:
    assert healthcheck.health_url(service, environ) == url


def test_the_healthcheck_reads_the_same_tls_variable_as_the_settings() -> None:
    assert healthcheck.TLS_CERT_VARIABLE in Settings.model_fields


def test_the_healthcheck_does_not_verify_its_own_self_signed_certificate() -> None:
    context = healthcheck.loopback_tls_context()
    assert context.verify_mode.name == "CERT_NONE"
    assert context.check_hostname is False


@pytest.mark.parametrize(
    ("answer", "status", "output"),
    [
        (200, 0, "healthy: "),
        (503, 1, "unhealthy: http://127.0.0.1:8000/health answered 503"),
        (ConnectionRefusedError("[Errno 111] Connection refused"), 1, "did not answer"),
    ],
    ids=["200 is healthy", "503 is unhealthy", "no answer is unhealthy"],
)
def test_the_healthcheck_exits_0_only_on_200(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    answer: int | Exception,
    status: int,
    output: str,
) -> None:
    def fetch_status(_url: str) -> int:
        if isinstance(answer, Exception):
            raise answer
        return answer

    monkeypatch.setattr(healthcheck, "fetch_status", fetch_status)
    assert healthcheck.main(["app"]) == status
    captured = capsys.readouterr()
    printed = captured.out + captured.err
    assert printed.count("\n") == 1, printed
    assert output in printed


@pytest.mark.parametrize("arguments", [[], ["web"], ["app", "callback"]], ids=str)
def test_a_usage_mistake_is_unhealthy_not_dockers_reserved_status_2(
    capsys: pytest.CaptureFixture[str], arguments: list[str]
) -> None:
    assert healthcheck.main(arguments) == 1
    assert f"usage: python -m src.healthcheck {'|'.join(SERVICE_PORTS)}" in capsys.readouterr().err


def test_the_healthcheck_imports_no_web_framework() -> None:
    probe = (
        "import sys, src.healthcheck; "
        "print(sorted(m for m in ('fastapi', 'pydantic', 'starlette') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


REPLY_200 = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"


class _Answer(threading.Thread):
    """A one-shot server on 127.0.0.1 that answers the first request with `reply` (or, with
    tls, completes a TLS handshake with a fresh self-signed certificate first)."""

    def __init__(
        self, reply: bytes, tls_files: tuple[str, str] | None = None, port: int = 0
    ) -> None:
        super().__init__(daemon=True)
        self.reply = reply
        self.listener = socket.create_server(("127.0.0.1", port))
        self.port = self.listener.getsockname()[1]
        self.request = b""
        self.tls_files = tls_files
        self.start()

    def run(self) -> None:
        connection, _ = self.listener.accept()
        if self.tls_files:
            import ssl

            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*self.tls_files)
            connection = context.wrap_socket(connection, server_side=True)
        with connection:
            self.request = connection.recv(1024)
            connection.sendall(self.reply)


@pytest.mark.parametrize(
    ("reply", "status"),
    [
        (b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok", 200),
        (b"HTTP/1.1 503 Service Unavailable\r\n\r\n", 503),
    ],
    ids=["200", "503"],
)
def test_the_probe_reads_the_status_a_real_server_answers(reply: bytes, status: int) -> None:
    server = _Answer(reply)
    assert healthcheck.fetch_status(f"http://127.0.0.1:{server.port}/health") == status
    server.join(5)
    assert server.request.startswith(b"GET /health HTTP/1.1\r\n"), server.request


def test_the_probe_speaks_tls_to_a_server_with_a_self_signed_certificate(tmp_path) -> None:
    from pipeline.certs import generate_pair

    certificate, key = generate_pair()
    (tmp_path / "tls.crt").write_bytes(certificate)
    (tmp_path / "tls.key").write_bytes(key)
    server = _Answer(
        b"HTTP/1.1 200 OK\r\n\r\n", (str(tmp_path / "tls.crt"), str(tmp_path / "tls.key"))
    )
    assert healthcheck.fetch_status(f"https://127.0.0.1:{server.port}/health") == 200


def test_something_that_is_not_http_is_unhealthy(capsys: pytest.CaptureFixture[str]) -> None:
    server = _Answer(b"SSH-2.0-OpenSSH\r\n")
    with pytest.raises(ValueError, match="not an HTTP answer"):
        healthcheck.fetch_status(f"http://127.0.0.1:{server.port}/health")


def test_the_plain_http_probe_does_not_load_tls() -> None:
    probe = "import sys, src.healthcheck; print('ssl' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-S", "-c", probe], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False", "importing the probe loaded ssl"


def free_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        return probe.getsockname()[1]


def test_a_probe_of_a_starting_server_answers_once_it_listens() -> None:
    """Docker sees the service healthy when it starts listening, not at its next probe."""
    port = free_port()
    servers: list[_Answer] = []
    threading.Timer(0.3, lambda: servers.append(_Answer(REPLY_200, port=port))).start()
    began = time.monotonic()
    assert healthcheck.fetch_status(f"http://127.0.0.1:{port}/health", wait=5) == 200
    assert time.monotonic() - began < 3, "the probe waited past the server's start"


def test_a_port_that_keeps_refusing_fails_the_probe_after_the_wait() -> None:
    port = free_port()
    began = time.monotonic()
    with pytest.raises(ConnectionRefusedError):
        healthcheck.fetch_status(f"http://127.0.0.1:{port}/health", wait=0.2)
    waited = time.monotonic() - began
    assert 0.15 < waited < 2, f"expected to give up after about 0.2 s, gave up after {waited:.2f} s"


def healthcheck_timeouts() -> list[float]:
    """The probe timeouts our images and compose files give Docker (seconds)."""
    root = Path(__file__).resolve().parents[2]
    text = (root / "docker" / "Dockerfile").read_text()
    text += "".join(path.read_text() for path in sorted((root / "compose").glob("*.yml")))
    found = re.findall(r"--timeout=(\d+(?:\.\d+)?)s|^\s+timeout: (\d+(?:\.\d+)?)s$", text, re.M)
    return [float(dockerfile or compose) for dockerfile, compose in found]


def test_a_probe_that_waits_and_then_answers_slowly_ends_inside_dockers_timeout() -> None:
    """Docker kills a probe at its timeout and records the kill, not the probe's one line;
    a probe's longest path (a port refused for the whole wait, then the slowest answer it
    takes) leaves room for its own start."""
    timeouts = healthcheck_timeouts()
    assert timeouts, "no healthcheck timeout found in docker/Dockerfile or compose/"
    longest = healthcheck.STARTING_WAIT_SECONDS + healthcheck.TIMEOUT_SECONDS
    assert longest + 0.1 <= min(timeouts), (longest, min(timeouts))
