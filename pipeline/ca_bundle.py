"""The host's CA bundle, handed to image builds as a BuildKit secret (never baked into a layer).

Builds reach the Python package index through whatever TLS the host trusts, including an
intercepting proxy whose CA only the host's bundle carries.
"""

from __future__ import annotations

import os
from pathlib import Path

# The id Dockerfiles mount with `--mount=type=secret,id=ca_bundle`.
CA_BUNDLE_ID = "ca_bundle"
SYSTEM_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


def ca_bundle_path() -> Path | None:
    """$SSL_CERT_FILE when it names a file, else the Debian/Ubuntu system bundle, else None."""
    configured = os.environ.get("SSL_CERT_FILE", "").strip()
    if configured and Path(configured).is_file():
        return Path(configured)
    if SYSTEM_BUNDLE.is_file():
        return SYSTEM_BUNDLE
    return None


def ca_bundle_secrets() -> list[str]:
    """The `--secret` values for a build: the bundle as `ca_bundle`, or none when there is none."""
    bundle = ca_bundle_path()
    return [f"id={CA_BUNDLE_ID},src={bundle}"] if bundle else []
