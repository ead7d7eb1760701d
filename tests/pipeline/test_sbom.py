"""Each image's SBOM is complete: what the image holds is listed, at the version it holds.

An SBOM is made with pipeline.sbom for each image that runs (development, production,
callback) and held to an expectation read another way, never from the generator's reading:
- Python: the names and versions of the *.dist-info folders in the exported image (their
  folder names, not their METADATA);
- Debian: every package whose dpkg file list (/var/lib/dpkg/info/*.list) names a file or
  link present in the image, at the version dpkg's status file gives it. The runtime images
  carry only the inventory under test (status.d), so their file lists come from the Python
  base image they were cut from (PYTHON_IMAGE of the selected image source); the
  development image has dpkg's own database.
The comparison also catches the reverse (a package listed that the image does not hold),
and is shown to go red: tampered SBOMs, each missing or misstating exactly one item, are
reported with exactly that item.
"""

from __future__ import annotations

import os
import re
import tarfile
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote

import pytest
from python_on_whales import docker

from pipeline import engine
from pipeline.environments import RUNTIME_STAGES, image_name
from pipeline.image_sources import image_references
from pipeline.images import images_that_run
from pipeline.sbom import sbom_of_image

pytestmark = pytest.mark.docker

STAGES = tuple(images_that_run())
# The runtime image the red variants tamper with.
RUNTIME = RUNTIME_STAGES[0]
PYTHON_BASE = "python-base"
# Debian's merged /usr: /bin, /sbin and /lib* are links into /usr, and a file list may name
# a file under either path.
MERGED_USR = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")
DPKG_INFO = "/var/lib/dpkg/info/"
DPKG_STATUS = "/var/lib/dpkg/status"
SITE_PACKAGES = (
    "/app/.venv/lib/python3.13/site-packages/",
    "/usr/local/lib/python3.13/site-packages/",
)


# ---------------------------------------------------------------- the images, exported


@dataclass
class ImageFiles:
    """What an exported image holds: every path that is not a folder, canonical under merged
    /usr; its *.dist-info folders; and its dpkg database, when it has one."""

    paths: set[str] = field(default_factory=set)
    dist_info: set[str] = field(default_factory=set)
    file_lists: dict[str, list[str]] = field(default_factory=dict)  # package -> its paths
    status: str = ""


def canonical(path: str) -> str:
    """/lib/x86_64-linux-gnu/libc.so.6 and /usr/lib/x86_64-linux-gnu/libc.so.6 are one file."""
    parts = path.strip("/").split("/")
    if len(parts) > 1 and parts[0] in MERGED_USR:
        parts.insert(0, "usr")
    return "/" + "/".join(parts)


def read_export(archive_path: Path) -> ImageFiles:
    found = ImageFiles()
    with tarfile.open(archive_path) as archive:
        for member in archive:
            path = "/" + member.name.removeprefix("./").strip("/")
            folder, _, name = path.rpartition("/")
            if member.isdir():
                if folder + "/" in SITE_PACKAGES and name.endswith(".dist-info"):
                    found.dist_info.add(name)
                continue
            found.paths.add(canonical(path))
            if folder + "/" == DPKG_INFO and name.endswith(".list"):
                package = name.removesuffix(".list").split(":")[0]
                text = archive.extractfile(member).read().decode()
                found.file_lists.setdefault(package, []).extend(text.split())
            elif path == DPKG_STATUS:
                found.status = archive.extractfile(member).read().decode()
    return found


def export_image(image_id: str, purpose: str, scratch: Path) -> ImageFiles:
    """The files of a container created (never started) from the image, then removed."""
    name = f"dashtam-test-sbom-{purpose}-{uuid.uuid4().hex[:8]}"
    archive = scratch / f"{name}.tar"
    container = docker.container.create(image_id, name=name, entrypoint="/never-started")
    try:
        docker.container.export(container, archive)
        return read_export(archive)
    finally:
        container.remove(force=True, volumes=True)
        archive.unlink(missing_ok=True)


@pytest.fixture(scope="module")
def image_ids() -> dict[str, str]:
    """The ID of each image that runs and of the Python base, resolved once: a tag moved by a
    build meanwhile cannot mix two images into one comparison."""
    references = {stage: f"{image_name(stage)}:latest" for stage in STAGES}
    references[PYTHON_BASE] = image_references()["PYTHON_IMAGE"]
    ids = {key: engine.image_id(reference) for key, reference in references.items()}
    missing = [references[key] for key, found in ids.items() if found is None]
    if missing:
        reason = (
            f"images {', '.join(missing)} are not built; run `nox -s build-all` "
            "(with DASHTAM_IMAGE_SOURCE=airgap: `nox -s base-images` first)"
        )
        if os.environ.get("CI"):
            pytest.fail(f"CI needs the images: {reason}")
        pytest.skip(reason)
    return {key: found for key, found in ids.items() if found}


@pytest.fixture(scope="module")
def exported(
    image_ids: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, ImageFiles]:
    scratch = tmp_path_factory.mktemp("sbom-exports")
    return {key: export_image(image_id, key, scratch) for key, image_id in image_ids.items()}


@pytest.fixture(scope="module")
def sboms(image_ids: dict[str, str]) -> dict[str, dict]:
    return {
        stage: sbom_of_image(image_ids[stage], stage, name_prefix="dashtam-test-sbom")
        for stage in STAGES
    }


# ---------------------------------------------------------------- the expectation


def python_distributions(image: ImageFiles) -> dict[str, str]:
    """Normalized name -> version, from `<name>-<version>.dist-info` folder names (the wheel
    format escapes `-` in the name, so the first `-` ends it)."""
    found = {}
    for folder in image.dist_info:
        name, _, version = folder.removesuffix(".dist-info").partition("-")
        found[normalized(name)] = version
    return found


def normalized(name: str) -> str:
    """The Python packaging name normalization: lowercase, runs of `-_.` become one `-`."""
    return re.sub(r"[-_.]+", "-", name).lower()


def installed_versions(status: str) -> dict[str, str]:
    """Package -> version, for the entries of a dpkg status file in state `installed`."""
    versions = {}
    for paragraph in status.split("\n\n"):
        fields = {}
        for line in paragraph.splitlines():
            if line and not line[0].isspace() and ": " in line:
                key, value = line.split(": ", 1)
                fields[key] = value
        if fields.get("Status", "").endswith(" installed"):
            versions[fields["Package"]] = fields["Version"]
    return versions


def debian_packages(image: ImageFiles, database: ImageFiles) -> dict[str, str]:
    """Package -> version of every package the database's file lists say owns a file or link
    present in the image (all owners of a shared path)."""
    owners: dict[str, set[str]] = {}
    for package, paths in database.file_lists.items():
        for path in paths:
            owners.setdefault(canonical(path), set()).add(package)
    versions = installed_versions(database.status)
    owning = {package for path in image.paths for package in owners.get(path, ())}
    return {package: versions.get(package, "(not installed)") for package in owning}


def name_and_version(purl: str) -> tuple[str, str]:
    """pkg:deb/debian/libc6@2.41-12%2Bdeb13u5?arch=amd64 -> (libc6, 2.41-12+deb13u5)"""
    name, _, version = purl.split("?", 1)[0].rpartition("/")[2].partition("@")
    return unquote(name), unquote(version)


def listed(document: Mapping, purl_type: str) -> dict[str, str]:
    """Name -> version of the SBOM's components of a purl type, read from their purls."""
    return dict(
        name_and_version(component["purl"])
        for component in document.get("components", [])
        if component.get("purl", "").startswith(f"pkg:{purl_type}/")
    )


def differences(expected: Mapping[str, str], in_sbom: Mapping[str, str]) -> list[str]:
    """What the SBOM leaves out, misstates, or lists that the image does not hold."""
    found = []
    for name in sorted(expected.keys() | in_sbom.keys()):
        if name not in in_sbom:
            found.append(f"{name} {expected[name]}: in the image, missing from the SBOM")
        elif name not in expected:
            found.append(f"{name} {in_sbom[name]}: in the SBOM, not in the image")
        elif in_sbom[name] != expected[name]:
            found.append(f"{name}: the SBOM says {in_sbom[name]}, the image has {expected[name]}")
    return found


def database_of(stage: str, exported: dict[str, ImageFiles]) -> ImageFiles:
    """Whose dpkg database says which package owns what: the Python base for a runtime
    image (which carries only the inventory under test), the image itself otherwise."""
    return exported[PYTHON_BASE] if stage in RUNTIME_STAGES else exported[stage]


# ---------------------------------------------------------------- the images' SBOMs


@pytest.mark.parametrize("stage", STAGES)
def test_every_python_distribution_is_listed_with_its_version(
    stage: str, exported: dict[str, ImageFiles], sboms: dict[str, dict]
):
    expected = python_distributions(exported[stage])
    assert expected, f"{stage}: no *.dist-info found in {SITE_PACKAGES}; the export is broken"
    found = differences(expected, listed(sboms[stage], "pypi"))
    assert not found, (
        f"{stage}: SBOM Python distributions, expected the {len(expected)} *.dist-info of the "
        "image, found:\n" + "\n".join(found)
    )


@pytest.mark.parametrize("stage", STAGES)
def test_every_debian_package_owning_a_file_is_listed_with_its_version(
    stage: str, exported: dict[str, ImageFiles], sboms: dict[str, dict]
):
    database = database_of(stage, exported)
    assert database.file_lists and database.status, (
        f"{stage}: the dpkg database it is checked against has no file lists or status"
    )
    expected = debian_packages(exported[stage], database)
    assert expected, f"{stage}: no file of the image is owned by a Debian package"
    found = differences(expected, listed(sboms[stage], "deb"))
    assert not found, (
        f"{stage}: SBOM Debian packages, expected the {len(expected)} that own a file in the "
        "image (if the Python base image changed since the build, rebuild: "
        "`nox -s build-all`), found:\n" + "\n".join(found)
    )


@pytest.mark.parametrize("stage", STAGES)
def test_the_sbom_describes_its_image(
    stage: str, image_ids: dict[str, str], sboms: dict[str, dict]
):
    document = sboms[stage]
    subject = document["metadata"]["component"]
    properties = {item["name"]: item["value"] for item in subject["properties"]}
    references = [component["bom-ref"] for component in document["components"]]
    assert (document["bomFormat"], document["specVersion"]) == ("CycloneDX", "1.5")
    assert (subject["type"], subject["version"]) == ("container", image_ids[stage]), (
        f"{stage}: SBOM subject, expected container {image_ids[stage]}, found {subject}"
    )
    assert properties["dashtam:stage"] == stage
    assert len(references) == len(set(references)), f"{stage}: bom-refs are not unique"


# ---------------------------------------------------------------- the check goes red


def without(document: dict, purl: str) -> dict:
    return {
        **document,
        "components": [item for item in document["components"] if item.get("purl") != purl],
    }


def purl_of(document: dict, purl_type: str, name: str) -> str:
    return next(
        item["purl"]
        for item in document["components"]
        if item.get("purl", "").startswith(f"pkg:{purl_type}/")
        and name_and_version(item["purl"])[0] == name
    )


@pytest.mark.parametrize("stage", STAGES)
def test_a_python_distribution_left_out_is_reported(
    stage: str, exported: dict[str, ImageFiles], sboms: dict[str, dict]
):
    expected = python_distributions(exported[stage])
    left_out = sorted(expected)[len(expected) // 2]
    tampered = without(sboms[stage], purl_of(sboms[stage], "pypi", left_out))
    assert differences(expected, listed(tampered, "pypi")) == [
        f"{left_out} {expected[left_out]}: in the image, missing from the SBOM"
    ]


@pytest.mark.parametrize("stage", STAGES)
def test_a_debian_package_left_out_is_reported(
    stage: str, exported: dict[str, ImageFiles], sboms: dict[str, dict]
):
    expected = debian_packages(exported[stage], database_of(stage, exported))
    left_out = sorted(expected)[len(expected) // 2]
    tampered = without(sboms[stage], purl_of(sboms[stage], "deb", left_out))
    assert differences(expected, listed(tampered, "deb")) == [
        f"{left_out} {expected[left_out]}: in the image, missing from the SBOM"
    ]


def test_a_misstated_version_is_reported(exported: dict[str, ImageFiles], sboms: dict[str, dict]):
    expected = debian_packages(exported[RUNTIME], exported[PYTHON_BASE])
    document = sboms[RUNTIME]
    target = purl_of(document, "deb", "libc6")
    tampered = {
        **document,
        "components": [
            {**item, "purl": target.replace("@", "@0.0-older-", 1)}
            if item.get("purl") == target
            else item
            for item in document["components"]
        ],
    }
    assert differences(expected, listed(tampered, "deb")) == [
        f"libc6: the SBOM says 0.0-older-{expected['libc6']}, the image has {expected['libc6']}"
    ]


def test_a_package_the_image_does_not_hold_is_reported(
    exported: dict[str, ImageFiles], sboms: dict[str, dict]
):
    expected = debian_packages(exported[RUNTIME], exported[PYTHON_BASE])
    document = sboms[RUNTIME]
    added = "pkg:deb/debian/bash@5.2.37-2?arch=amd64&distro=debian-13"
    tampered = {**document, "components": [*document["components"], {"purl": added}]}
    assert differences(expected, listed(tampered, "deb")) == [
        "bash 5.2.37-2: in the SBOM, not in the image"
    ]
