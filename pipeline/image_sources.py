"""Where base images come from: the upstream registry pins, or local air-gapped stand-ins.

One switch, DASHTAM_IMAGE_SOURCE, picks the source. The Dockerfile and the compose files
take each reference from a build arg or variable whose default is the upstream pin, so a
plain `docker compose up` works for anyone with a registry; the pipeline only overrides
them in air-gapped mode.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass

from pipeline import engine
from pipeline.errors import PipelineError

SOURCE_VARIABLE = "DASHTAM_IMAGE_SOURCE"
UPSTREAM = "upstream"
AIRGAP = "airgap"
SOURCES = (UPSTREAM, AIRGAP)

# The uv release the Dockerfile pins; the air-gapped uv stand-in installs this one from PyPI.
UV_VERSION = "0.8.22"


@dataclass(frozen=True)
class BaseImage:
    """One upstream image the stack uses and its local stand-in."""

    key: str  # short name, also the stand-in's folder under docker/base-images/
    variable: str  # the build arg (Dockerfile) or compose variable that carries the reference
    upstream: str  # the seed design's pin
    airgap: str  # the stand-in's stable local reference (its real version is a second tag)


BASE_IMAGES: tuple[BaseImage, ...] = (
    BaseImage(
        key="uv",
        variable="UV_IMAGE",
        upstream=f"ghcr.io/astral-sh/uv:{UV_VERSION}-python3.13-trixie-slim",
        airgap=f"dashtam-airgap/uv:{UV_VERSION}-python3.13-debian13",
    ),
    BaseImage(
        key="python",
        variable="PYTHON_IMAGE",
        upstream="python:3.13-slim",
        airgap="dashtam-airgap/python:3.13-debian13",
    ),
    BaseImage(
        key="postgres",
        variable="POSTGRES_IMAGE",
        upstream="postgres:17.6",
        airgap="dashtam-airgap/postgres:17-debian13",
    ),
    BaseImage(
        key="redis",
        variable="REDIS_IMAGE",
        upstream="redis:8.2.1",
        airgap="dashtam-airgap/redis:8-debian13",
    ),
    # The OCI registry the pipeline starts itself (pipeline.registry). Debian has distribution
    # 2.8, not 3: the stand-in's stable reference names the major version it really holds.
    BaseImage(
        key="registry",
        variable="REGISTRY_IMAGE",
        upstream="registry:3.1.1",
        airgap="dashtam-airgap/registry:2-debian13",
    ),
)

# The Debian 13 root filesystem every stand-in is built FROM.
AIRGAP_ROOTFS = "dashtam-airgap/debian:13-minbase"


def selected_source() -> str:
    """The image source DASHTAM_IMAGE_SOURCE asks for; `upstream` when unset."""
    source = os.environ.get(SOURCE_VARIABLE, "").strip() or UPSTREAM
    if source not in SOURCES:
        raise PipelineError(
            f"{SOURCE_VARIABLE}={source!r} is not an image source; "
            f"set it to one of: {', '.join(SOURCES)}."
        )
    return source


def image_references(source: str | None = None) -> dict[str, str]:
    """Variable name -> image reference for the selected source (build args and compose vars)."""
    source = source or selected_source()
    return {
        image.variable: image.airgap if source == AIRGAP else image.upstream
        for image in BASE_IMAGES
    }


def require_image_source() -> str:
    """The selected source; in air-gapped mode every stand-in must already be built.

    A missing one stops the run here with the command that builds it, before a build or a
    `compose up` would try to pull it from a registry that is not there.
    """
    source = selected_source()
    if source == AIRGAP:
        require_stand_ins()
    return source


@functools.cache  # a run that builds, starts the registry and boots asks once; a miss again
def require_stand_ins() -> None:
    missing = missing_stand_ins()
    if missing:
        raise PipelineError(
            f"air-gapped mode: base image {', '.join(missing)} is missing; "
            "run `nox -s base-images` first."
        )


def missing_stand_ins() -> list[str]:
    """The stand-ins (stable references) not in the local image store."""
    return engine.missing_images([image.airgap for image in BASE_IMAGES])
