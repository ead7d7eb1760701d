"""The registry's HTTP API (the OCI distribution spec) for what `docker` cannot do: ask which
image a digest holds, and give a manifest the registry already has one more tag — no layer
is read or uploaded.

Only the pipeline's own registry on 127.0.0.1 is spoken to here, in plain HTTP as Docker
itself speaks to a registry on 127.0.0.0/8, with this machine's credentials
(pipeline.registry_credentials).
"""

from __future__ import annotations

import hashlib
import json
import urllib.error
import urllib.request
from dataclasses import dataclass

from pipeline.errors import PipelineError
from pipeline.registry_credentials import credentials

# The manifest types a `docker push` of the classic image store writes, and OCI's.
MANIFEST_TYPES = (
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
)
TIMEOUT_SECONDS = 20
HINT = "check the registry with `nox -s registry`, then run the session again"


@dataclass(frozen=True)
class Manifest:
    content: bytes  # exactly as served: its sha256 is the digest
    media_type: str

    @property
    def digest(self) -> str:
        return "sha256:" + hashlib.sha256(self.content).hexdigest()

    @property
    def config_digest(self) -> str:
        """The image's config digest, which is the image ID the engine shows."""
        return str((json.loads(self.content).get("config") or {}).get("digest", ""))


def _request(method: str, url: str, **arguments) -> urllib.request.Request:
    return urllib.request.Request(url, method=method, **arguments)  # noqa: S310 (http only)


def _manifest_request(method: str, address: str, name: str, reference: str):
    return _request(
        method,
        f"http://{address}/v2/{name}/manifests/{reference}",
        headers={"Accept": ", ".join(MANIFEST_TYPES)},
    )


def _open(request: urllib.request.Request):
    # The pipeline's own registry on 127.0.0.1, which Docker also speaks plain HTTP to.
    request.add_header("Authorization", credentials().authorization)
    return urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS)  # noqa: S310


def fetch_manifest(address: str, name: str, reference: str) -> Manifest:
    """The manifest the registry serves for `name` at a tag or digest; a digest is checked."""
    try:
        with _open(_manifest_request("GET", address, name, reference)) as response:
            manifest = Manifest(response.read(), response.headers.get_content_type())
    except (urllib.error.URLError, OSError) as error:
        raise PipelineError(
            f"the registry at {address} did not serve {name}:{reference} ({error}); {HINT}."
        ) from error
    if reference.startswith("sha256:") and manifest.digest != reference:
        raise PipelineError(
            f"the registry at {address} served {name}@{reference} with content of digest "
            f"{manifest.digest}; its storage is damaged: inspect it before using it."
        )
    return manifest


def has_manifest(address: str, name: str, digest: str) -> bool:
    """Whether the registry holds this manifest (one HEAD request)."""
    try:
        with _open(_manifest_request("HEAD", address, name, digest)) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def tag_manifest(address: str, name: str, manifest: Manifest, tag: str) -> None:
    """Put `manifest`, whose layers and config the registry already holds, under `tag`."""
    request = _request(
        "PUT",
        f"http://{address}/v2/{name}/manifests/{tag}",
        data=manifest.content,
        headers={"Content-Type": manifest.media_type},
    )
    try:
        with _open(request) as response:
            answered = response.headers.get("Docker-Content-Digest", manifest.digest)
    except (urllib.error.URLError, OSError) as error:
        raise PipelineError(
            f"the registry at {address} refused to tag {name}@{manifest.digest} as {tag} "
            f"({error}); {HINT}."
        ) from error
    if answered != manifest.digest:
        raise PipelineError(
            f"the registry at {address} stored {name}:{tag} as {answered}, not "
            f"{manifest.digest}; inspect it before using it."
        )
