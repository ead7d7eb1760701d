"""A CycloneDX 1.5 bill of materials per image, read from the image's files without running it.

What it lists:
- the operating system (/etc/os-release) and its Debian packages: the installed entries of
  dpkg's status file (the development image), and the one-file-per-package inventory in
  /var/lib/dpkg/status.d/ that the runtime images carry (docker/runtime-inventory.py);
- every Python distribution: each *.dist-info folder in the app's venv, or in the
  interpreter's own site-packages (pip), named and versioned by its METADATA.

The files come from `docker export` of a container that is created and never started (the
runtime images have no shell). Components are sorted, so two SBOMs of one image differ only
in serial number and timestamp. tests/pipeline/test_sbom.py checks the result against the
image's files and the Python base image's dpkg database, not against this module's reading.

Written here, with the standard library, rather than with cyclonedx-bom: that tool reads a
Python environment by running its interpreter, which a shell-less image never does here,
and it knows nothing of dpkg.
"""

from __future__ import annotations

import email.parser
import email.policy
import json
import posixpath
import re
import shlex
import tarfile
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

from pipeline import engine
from pipeline.errors import PipelineError

SPEC_VERSION = "1.5"
SCHEMA = "http://cyclonedx.org/schema/bom-1.5.schema.json"
TOOL_NAME = "dashtam-pipeline-sbom"

# Paths inside the image, as `docker export` names them (no leading slash).
DPKG_STATUS = "var/lib/dpkg/status"
DPKG_INVENTORY = "var/lib/dpkg/status.d"
# os-release(5): /etc/os-release wins; /usr/lib/os-release is the fallback (and its target).
OS_RELEASE = ("etc/os-release", "usr/lib/os-release")
# The app's venv (UV_PROJECT_ENVIRONMENT) and the interpreter's own site-packages.
DIST_INFO_METADATA = re.compile(
    r"^(?:app/\.venv|usr/local)/lib/python3\.\d+/site-packages/[^/]+\.dist-info/METADATA$"
)

# Component kinds in the order the SBOM lists them.
DEB = "deb"
PYPI = "pypi"
KIND_ORDER = (DEB, PYPI)
LOCATION_PROPERTY = "dashtam:location"


@dataclass(frozen=True)
class Package:
    """One Debian package or Python distribution found in an image."""

    kind: str  # DEB or PYPI
    name: str
    version: str
    purl: str
    locations: tuple[str, ...]  # the files it was read from, absolute paths in the image


@dataclass(frozen=True)
class OperatingSystem:
    identifier: str  # os-release ID, e.g. debian
    version: str  # VERSION_ID, e.g. 13
    pretty_name: str

    @property
    def distro(self) -> str:
        """The purl `distro` qualifier: debian-13."""
        return f"{self.identifier}-{self.version}" if self.version else self.identifier


@dataclass(frozen=True)
class ImageIdentity:
    """Which image an SBOM describes."""

    reference: str  # as the caller named it: dashtam/production:latest, or an ID
    stage: str
    image_id: str  # sha256:<hex> of the image configuration
    created: str
    platform: str  # linux/amd64


# ---------------------------------------------------------------- package URLs


def purl_part(text: str) -> str:
    """Percent-encode one purl component: letters, digits, `.-_~` and `:` stay as they are."""
    return quote(text, safe=":")


def normalized_python_name(name: str) -> str:
    """PEP 503 / the purl pypi type: lowercase, runs of `-_.` become one `-`."""
    return re.sub(r"[-_.]+", "-", name).lower()


def deb_purl(vendor: str, name: str, version: str, architecture: str, distro: str) -> str:
    """pkg:deb/debian/libc6@2.41-12%2Bdeb13u5?arch=amd64&distro=debian-13"""
    qualifiers = {"arch": architecture, "distro": distro}
    query = "&".join(
        f"{key}={purl_part(value)}" for key, value in sorted(qualifiers.items()) if value
    )
    purl = f"pkg:deb/{purl_part(vendor.lower())}/{purl_part(name.lower())}@{purl_part(version)}"
    return f"{purl}?{query}" if query else purl


def pypi_purl(name: str, version: str) -> str:
    """pkg:pypi/typing-extensions@4.16.0"""
    return f"pkg:pypi/{purl_part(normalized_python_name(name))}@{purl_part(version)}"


# ---------------------------------------------------------------- reading the image's files


def wanted(path: str) -> bool:
    return (
        path == DPKG_STATUS
        or posixpath.dirname(path) == DPKG_INVENTORY
        or path in OS_RELEASE
        or DIST_INFO_METADATA.match(path) is not None
    )


def read_image_files(archive: tarfile.TarFile) -> dict[str, bytes]:
    """The files an SBOM is made of, by path inside the image (no leading slash).

    A symbolic link among them (/etc/os-release -> ../usr/lib/os-release) is read through,
    when its target is in the archive.
    """
    files: dict[str, bytes] = {}
    links: dict[str, str] = {}
    for member in archive:
        path = member.name.removeprefix("./").strip("/")
        if not wanted(path):
            continue
        if member.issym():
            target = posixpath.join(posixpath.dirname(path), member.linkname)
            links[path] = posixpath.normpath(target).lstrip("/")
        elif member.isfile() or member.islnk():
            content = archive.extractfile(member)
            if content is not None:
                files[path] = content.read()
    for path, target in links.items():
        if target in files:
            files[path] = files[target]
    return files


# ---------------------------------------------------------------- parsing


def dpkg_stanzas(text: str) -> list[dict[str, str]]:
    """The paragraphs of a dpkg status file: field -> value (continuation lines joined)."""
    stanzas = []
    for paragraph in re.split(r"\n[ \t]*\n", text):
        fields: dict[str, str] = {}
        current = None
        for line in paragraph.splitlines():
            if line[:1] in (" ", "\t"):
                if current is not None:
                    fields[current] += "\n" + line[1:]
            elif ":" in line:
                current, _, value = line.partition(":")
                current = current.strip()
                fields[current] = value.strip()
        if fields:
            stanzas.append(fields)
    return stanzas


def is_installed(stanza: Mapping[str, str], *, status_required: bool) -> bool:
    """dpkg's Status is `want flag state`; only state `installed` is on disk whole.

    The distroless inventory (status.d) may leave Status out: every entry there is installed.
    """
    status = stanza.get("Status")
    if status is None:
        return not status_required
    words = status.split()
    return len(words) == 3 and words[2] == "installed"


def parse_os_release(text: str) -> dict[str, str]:
    """os-release(5): KEY=value lines, values quoted as in a shell."""
    fields = {}
    for line in text.splitlines():
        key, separator, value = line.strip().partition("=")
        if not separator or key.startswith("#"):
            continue
        try:
            words = shlex.split(value)
        except ValueError:
            words = [value]
        fields[key] = " ".join(words)
    return fields


def operating_system(files: Mapping[str, bytes]) -> OperatingSystem | None:
    for path in OS_RELEASE:
        if path in files:
            fields = parse_os_release(files[path].decode(errors="replace"))
            identifier = fields.get("ID", "linux")
            version = fields.get("VERSION_ID") or fields.get("VERSION_CODENAME", "")
            return OperatingSystem(identifier, version, fields.get("PRETTY_NAME", identifier))
    return None


def distribution_metadata(content: bytes, path: str) -> tuple[str, str]:
    """Name and Version of a distribution, from its METADATA (email header format)."""
    headers = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(content)
    name, version = (headers.get("Name") or "").strip(), (headers.get("Version") or "").strip()
    if not name or not version:
        raise PipelineError(
            f"/{path} has no Name or Version header; the distribution is damaged, "
            "reinstall it (`uv sync --locked`) and rebuild the image."
        )
    return name, version


def merge(found: dict[str, Package], package: Package) -> None:
    """Add a package; one already seen (same purl) gains the new location instead."""
    seen = found.get(package.purl)
    if seen is None:
        found[package.purl] = package
    elif package.locations[0] not in seen.locations:
        found[package.purl] = Package(
            seen.kind, seen.name, seen.version, seen.purl, seen.locations + package.locations
        )


def debian_packages(files: Mapping[str, bytes], system: OperatingSystem | None) -> list[Package]:
    """dpkg's installed packages: the status file's, then the status.d inventory's."""
    sources = [DPKG_STATUS] if DPKG_STATUS in files else []
    sources += sorted(path for path in files if posixpath.dirname(path) == DPKG_INVENTORY)
    found: dict[str, Package] = {}
    for source in sources:
        for stanza in dpkg_stanzas(files[source].decode(errors="replace")):
            if not is_installed(stanza, status_required=source == DPKG_STATUS):
                continue
            name, version = stanza.get("Package", ""), stanza.get("Version", "")
            if not name or not version:
                raise PipelineError(
                    f"/{source}: an entry without Package or Version; the image's dpkg data "
                    "is damaged (the runtime inventory is written by docker/runtime-inventory.py)."
                )
            if system is None:
                raise PipelineError(
                    f"/{source} lists Debian packages, but the image has no /etc/os-release "
                    "to name their distribution; keep os-release in the image."
                )
            purl = deb_purl(
                system.identifier, name, version, stanza.get("Architecture", ""), system.distro
            )
            merge(found, Package(DEB, name, version, purl, ("/" + source,)))
    return list(found.values())


def python_distributions(files: Mapping[str, bytes]) -> list[Package]:
    """Every *.dist-info (its METADATA) in the venv and the interpreter's site-packages."""
    found: dict[str, Package] = {}
    for path in sorted(files):
        if DIST_INFO_METADATA.match(path):
            name, version = distribution_metadata(files[path], path)
            location = "/" + posixpath.dirname(path)
            merge(found, Package(PYPI, name, version, pypi_purl(name, version), (location,)))
    return list(found.values())


# ---------------------------------------------------------------- CycloneDX


def package_component(package: Package) -> dict:
    return {
        "type": "library",
        "bom-ref": package.purl,
        "name": package.name,
        "version": package.version,
        "purl": package.purl,
        "properties": [
            {"name": LOCATION_PROPERTY, "value": location} for location in package.locations
        ],
    }


def operating_system_component(system: OperatingSystem) -> dict:
    return {
        "type": "operating-system",
        "bom-ref": f"operating-system:{system.distro}",
        "name": system.identifier,
        "version": system.version,
        "description": system.pretty_name,
    }


def image_component(image: ImageIdentity) -> dict:
    """The image the SBOM describes: its ID (the SHA-256 of its configuration) and stage."""
    properties = {
        "dashtam:image:id": image.image_id,
        "dashtam:image:reference": image.reference,
        "dashtam:image:created": image.created,
        "dashtam:image:platform": image.platform,
        "dashtam:stage": image.stage,
    }
    return {
        "type": "container",
        "bom-ref": image.image_id,
        "name": image.reference,
        "version": image.image_id,
        "hashes": [{"alg": "SHA-256", "content": image.image_id.removeprefix("sha256:")}],
        "properties": [{"name": name, "value": value} for name, value in properties.items()],
    }


def sort_key(package: Package) -> tuple:
    """Debian packages, then Python distributions; each by normalized name, then version."""
    name = normalized_python_name(package.name) if package.kind == PYPI else package.name.lower()
    return (KIND_ORDER.index(package.kind), name, package.version, package.purl)


def bill_of_materials(
    image: ImageIdentity,
    system: OperatingSystem | None,
    packages: Iterable[Package],
    *,
    timestamp: datetime,
    serial_number: uuid.UUID,
) -> dict:
    """A CycloneDX 1.5 BOM: the image as the subject, the OS, then packages in a fixed order."""
    components = [operating_system_component(system)] if system else []
    components += [package_component(package) for package in sorted(packages, key=sort_key)]
    return {
        "$schema": SCHEMA,
        "bomFormat": "CycloneDX",
        "specVersion": SPEC_VERSION,
        "serialNumber": serial_number.urn,
        "version": 1,
        "metadata": {
            "timestamp": timestamp.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "lifecycles": [{"phase": "post-build"}],
            "tools": {"components": [{"type": "application", "name": TOOL_NAME}]},
            "component": image_component(image),
        },
        "components": components,
    }


def image_sbom(
    files: Mapping[str, bytes],
    image: ImageIdentity,
    *,
    timestamp: datetime,
    serial_number: uuid.UUID,
) -> dict:
    """The BOM of an image, from its files as read_image_files returns them."""
    system = operating_system(files)
    packages = debian_packages(files, system) + python_distributions(files)
    return bill_of_materials(
        image, system, packages, timestamp=timestamp, serial_number=serial_number
    )


# ---------------------------------------------------------------- images and files


def identify(reference: str, stage: str) -> ImageIdentity:
    details = engine.image_details(reference)
    return ImageIdentity(
        reference=reference,
        stage=stage,
        image_id=details["Id"],
        created=details.get("Created", ""),
        platform=f"{details.get('Os', '')}/{details.get('Architecture', '')}",
    )


def sbom_of_image(reference: str, stage: str, *, name_prefix: str = "dashtam-sbom") -> dict:
    """The BOM of a local image (by reference or ID); its files are read from the image ID
    resolved first, so a tag moved meanwhile cannot mix two images."""
    image = identify(reference, stage)
    with (
        engine.exported_filesystem(image.image_id, name_prefix=name_prefix) as archive_path,
        tarfile.open(archive_path) as archive,
    ):
        files = read_image_files(archive)
    return image_sbom(files, image, timestamp=datetime.now(UTC), serial_number=uuid.uuid4())


def write_sboms(
    images: Mapping[str, str], folder: Path, *, name_prefix: str = "dashtam-sbom"
) -> list[Path]:
    """Write <folder>/<stage>.json for each stage -> image reference; the paths written."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for stage, reference in images.items():
        document = sbom_of_image(reference, stage, name_prefix=name_prefix)
        path = folder / f"{stage}.json"
        path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
        written.append(path)
    return written


def component_counts(document: Mapping) -> dict[str, int]:
    """How many components of each kind a BOM lists: deb, pypi, operating-system."""
    counts: dict[str, int] = {}
    for component in document.get("components", []):
        purl = component.get("purl", "")
        kind = purl.removeprefix("pkg:").split("/", 1)[0] if purl else component.get("type", "")
        counts[kind] = counts.get(kind, 0) + 1
    return counts


def summary(path: Path, root: Path | None = None) -> str:
    """One line about a written SBOM: where, what it counts, which image."""
    document = json.loads(path.read_text())
    counts = component_counts(document)
    subject = document["metadata"]["component"]
    shown = path.relative_to(root) if root and path.is_relative_to(root) else path
    parts = ", ".join(f"{counts[kind]} {kind}" for kind in sorted(counts))
    return f"{shown}: {parts} ({subject['name']}, {subject['version'][:19]})"
