"""The registry API client's own checks, against a tiny HTTP server that lies."""

from __future__ import annotations

import hashlib
import http.server
import json
import threading
from collections.abc import Iterator
from typing import ClassVar

import pytest

from pipeline import registry_api
from pipeline.errors import PipelineError

MANIFEST = json.dumps({"schemaVersion": 2, "config": {"digest": "sha256:" + "a" * 64}}).encode()
DIGEST = "sha256:" + hashlib.sha256(MANIFEST).hexdigest()
MEDIA_TYPE = registry_api.MANIFEST_TYPES[0]


class Registry(http.server.BaseHTTPRequestHandler):
    served = MANIFEST  # what GET answers, whatever was asked
    stored_as = DIGEST  # the digest PUT says it stored
    received: ClassVar[list[tuple[str, bytes, str]]] = []

    def do_GET(self):  # the http.server protocol names them
        self.send_response(200)
        self.send_header("Content-Type", MEDIA_TYPE)
        self.end_headers()
        self.wfile.write(self.served)

    def do_HEAD(self):
        self.send_response(200 if self.path.endswith(DIGEST) else 404)
        self.end_headers()

    def do_PUT(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Registry.received.append((self.path, body, self.headers["Content-Type"]))
        self.send_response(201)
        self.send_header("Docker-Content-Digest", self.stored_as)
        self.end_headers()

    def log_message(self, *arguments):
        pass


@pytest.fixture
def address(monkeypatch) -> Iterator[str]:
    monkeypatch.setattr(Registry, "received", [])
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Registry)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_a_manifest_is_read_with_its_digest_and_image(address):
    manifest = registry_api.fetch_manifest(address, "dashtam/production", DIGEST)
    assert (manifest.digest, manifest.media_type) == (DIGEST, MEDIA_TYPE)
    assert manifest.config_digest == "sha256:" + "a" * 64
    assert registry_api.has_manifest(address, "dashtam/production", DIGEST)
    assert not registry_api.has_manifest(address, "dashtam/production", "sha256:" + "0" * 64)


def test_content_that_is_not_the_digest_asked_for_is_refused(address, monkeypatch):
    monkeypatch.setattr(Registry, "served", MANIFEST + b" ")
    with pytest.raises(PipelineError, match=r"served dashtam/production@sha256:.* damaged"):
        registry_api.fetch_manifest(address, "dashtam/production", DIGEST)


def test_a_tag_is_the_same_bytes_under_a_new_name(address):
    manifest = registry_api.fetch_manifest(address, "dashtam/production", DIGEST)
    registry_api.tag_manifest(address, "dashtam/production", manifest, "v1")
    assert Registry.received == [("/v2/dashtam/production/manifests/v1", MANIFEST, MEDIA_TYPE)]


def test_a_registry_that_stores_something_else_under_the_tag_is_named(address, monkeypatch):
    manifest = registry_api.fetch_manifest(address, "dashtam/production", DIGEST)
    monkeypatch.setattr(Registry, "stored_as", "sha256:" + "f" * 64)
    with pytest.raises(PipelineError, match=r"stored dashtam/production:v1 as sha256:ffff"):
        registry_api.tag_manifest(address, "dashtam/production", manifest, "v1")


def test_no_registry_is_one_line_naming_the_session_to_run():
    with pytest.raises(PipelineError, match=r"did not serve .*nox -s registry") as failed:
        registry_api.fetch_manifest("127.0.0.1:9", "dashtam/production", DIGEST)
    assert "\n" not in str(failed.value)
