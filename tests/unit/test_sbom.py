"""The SBOM's parts, without Docker: dpkg stanzas, METADATA, package URLs, the CycloneDX
document, and reading an exported filesystem (fixture tar files built in memory)."""

from __future__ import annotations

import io
import json
import re
import tarfile
import uuid
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import pytest
from python_on_whales.exceptions import DockerException

from pipeline import engine, sbom
from pipeline.errors import PipelineError

TIMESTAMP = datetime(2026, 12, 2, 17, 40, 5, tzinfo=UTC)
SERIAL = uuid.UUID("3e671687-395b-41f5-a30f-a58921a69b79")
IMAGE = sbom.ImageIdentity(
    reference="dashtam/production:latest",
    stage="production",
    image_id="sha256:" + "ab" * 32,
    created="2026-12-02T17:36:29Z",
    platform="linux/amd64",
)
DEBIAN = sbom.OperatingSystem("debian", "13", "Debian GNU/Linux 13 (trixie)")

LIBC6 = """\
Package: libc6
Status: install ok installed
Priority: optional
Architecture: amd64
Multi-Arch: same
Source: glibc
Version: 2.41-12+deb13u5
Depends: libgcc-s1
Conffiles:
 /etc/ld.so.conf.d/x86_64-linux-gnu.conf d4e7a7b88a71b5ffd9e2644e71a0cfab
Description: GNU C Library: Shared libraries
 Contains the standard libraries that are used by nearly all programs on
 .
 the system.
"""
ZLIB = """\
Package: zlib1g
Status: install ok installed
Architecture: amd64
Version: 1:1.3.dfsg+really1.3.1-1+deb13u1
"""
REMOVED = """\
Package: libold1
Status: deinstall ok config-files
Architecture: amd64
Version: 1.0-1
"""
TZDATA_WITHOUT_STATUS = """\
Package: tzdata
Architecture: all
Version: 2026f-0+deb13u1
"""
OS_RELEASE = b"""\
PRETTY_NAME="Debian GNU/Linux 13 (trixie)"
NAME="Debian GNU/Linux"
VERSION_ID="13"
VERSION_CODENAME=trixie
ID=debian
"""


def metadata(name: str, version: str, body: str = "") -> bytes:
    return (
        f"Metadata-Version: 2.4\nName: {name}\nVersion: {version}\n"
        f"Summary: a package\nRequires-Dist: idna>=2.8\n\n{body}"
    ).encode()


def exported_tar(entries: list[tuple[str, str, bytes | str]]) -> tarfile.TarFile:
    """A tar as `docker export` writes it: (name, "file"|"dir"|"symlink"|"hardlink", content
    or link target), read back from memory."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, kind, content in entries:
            member = tarfile.TarInfo(name)
            if kind == "file":
                data = content if isinstance(content, bytes) else content.encode()
                member.size = len(data)
                archive.addfile(member, io.BytesIO(data))
                continue
            member.type = {
                "dir": tarfile.DIRTYPE,
                "symlink": tarfile.SYMTYPE,
                "hardlink": tarfile.LNKTYPE,
            }[kind]
            member.linkname = str(content)
            archive.addfile(member)
    buffer.seek(0)
    return tarfile.open(fileobj=buffer)


VENV = "app/.venv/lib/python3.13/site-packages"
SYSTEM = "usr/local/lib/python3.13/site-packages"


def dist_info(site_packages: str, name: str, version: str) -> tuple[str, str, bytes]:
    return (f"{site_packages}/{name}-{version}.dist-info/METADATA", "file", metadata(name, version))


RUNTIME_EXPORT = [
    ("etc/", "dir", ""),
    ("etc/os-release", "symlink", "../usr/lib/os-release"),
    ("usr/lib/os-release", "file", OS_RELEASE),
    ("var/lib/dpkg/status.d/", "dir", ""),
    ("var/lib/dpkg/status.d/zlib1g", "file", ZLIB),
    ("var/lib/dpkg/status.d/libc6", "file", LIBC6),
    (f"{VENV}/typing_extensions-4.16.0.dist-info/", "dir", ""),
    dist_info(VENV, "typing_extensions", "4.16.0"),
    (f"{VENV}/typing_extensions-4.16.0.dist-info/RECORD", "file", "typing_extensions.py,,\n"),
    dist_info(VENV, "Mako", "1.4.3"),
    dist_info(VENV, "pydantic_core", "2.50.5"),
    (f"{VENV}/pydantic_core/__init__.py", "file", "METADATA = 1\n"),
    ("usr/local/bin/python3.13", "file", b"\x7fELF"),
]


def runtime_files() -> dict[str, bytes]:
    with exported_tar(RUNTIME_EXPORT) as archive:
        return sbom.read_image_files(archive)


def runtime_document(**changes) -> dict:
    files = runtime_files()
    return sbom.image_sbom(
        files, changes.get("image", IMAGE), timestamp=TIMESTAMP, serial_number=SERIAL
    )


# ---------------------------------------------------------------- dpkg status stanzas


def test_a_status_file_splits_into_one_stanza_per_package():
    stanzas = sbom.dpkg_stanzas(LIBC6 + "\n" + ZLIB + "\n" + REMOVED)
    assert [stanza["Package"] for stanza in stanzas] == ["libc6", "zlib1g", "libold1"]
    assert stanzas[1]["Version"] == "1:1.3.dfsg+really1.3.1-1+deb13u1"


def test_continuation_lines_belong_to_their_field_and_do_not_become_fields():
    (libc6,) = sbom.dpkg_stanzas(LIBC6)
    assert libc6["Description"].splitlines() == [
        "GNU C Library: Shared libraries",
        "Contains the standard libraries that are used by nearly all programs on",
        ".",
        "the system.",
    ]
    assert libc6["Conffiles"].strip().startswith("/etc/ld.so.conf.d/")
    assert "/etc/ld.so.conf.d/x86_64-linux-gnu.conf d4e7a7b88a71b5ffd9e2644e71a0cfab" not in libc6


@pytest.mark.parametrize(
    ("status", "installed"),
    [
        ("install ok installed", True),
        ("hold ok installed", True),
        ("deinstall ok config-files", False),
        ("install ok half-configured", False),
        ("install ok unpacked", False),
    ],
)
def test_only_the_installed_state_counts(status: str, installed: bool):
    assert sbom.is_installed({"Status": status}, status_required=True) is installed


def test_an_inventory_entry_without_status_is_installed_but_a_status_file_entry_is_not():
    assert sbom.is_installed({"Package": "tzdata"}, status_required=False)
    assert not sbom.is_installed({"Package": "tzdata"}, status_required=True)


def test_the_status_file_lists_installed_packages_and_the_inventory_adds_to_it():
    files = {
        sbom.DPKG_STATUS: (LIBC6 + "\n" + REMOVED).encode(),
        f"{sbom.DPKG_INVENTORY}/libc6": LIBC6.encode(),
        f"{sbom.DPKG_INVENTORY}/tzdata": TZDATA_WITHOUT_STATUS.encode(),
    }
    packages = sbom.debian_packages(files, DEBIAN)
    assert {(package.name, package.version) for package in packages} == {
        ("libc6", "2.41-12+deb13u5"),
        ("tzdata", "2026f-0+deb13u1"),
    }
    libc6 = next(package for package in packages if package.name == "libc6")
    assert libc6.locations == ("/var/lib/dpkg/status", "/var/lib/dpkg/status.d/libc6")


def test_an_entry_without_a_version_stops_with_the_file_named():
    files = {f"{sbom.DPKG_INVENTORY}/broken": b"Package: broken\nArchitecture: amd64\n"}
    with pytest.raises(PipelineError, match=r"^/var/lib/dpkg/status\.d/broken: .*Version"):
        sbom.debian_packages(files, DEBIAN)


def test_debian_packages_without_os_release_stop_with_one_line():
    with pytest.raises(PipelineError, match="os-release"):
        sbom.debian_packages({sbom.DPKG_STATUS: ZLIB.encode()}, None)


# ---------------------------------------------------------------- os-release and METADATA


def test_os_release_values_are_unquoted():
    fields = sbom.parse_os_release(OS_RELEASE.decode() + "# a comment\n\nBUG_REPORT_URL='x y'\n")
    assert fields["PRETTY_NAME"] == "Debian GNU/Linux 13 (trixie)"
    assert (fields["ID"], fields["VERSION_ID"]) == ("debian", "13")
    assert fields["BUG_REPORT_URL"] == "x y"


def test_etc_os_release_wins_over_the_fallback():
    files = {"usr/lib/os-release": b"ID=debian\nVERSION_ID=12\n", "etc/os-release": OS_RELEASE}
    assert sbom.operating_system(files) == DEBIAN
    assert sbom.operating_system({}) is None


def test_metadata_gives_name_and_version_and_ignores_the_description_body():
    body = "Name: not-this\nVersion: 0\n"
    assert sbom.distribution_metadata(metadata("SQLAlchemy", "2.1.9", body), "x/METADATA") == (
        "SQLAlchemy",
        "2.1.9",
    )


def test_metadata_without_a_version_stops_with_the_file_named():
    with pytest.raises(PipelineError, match=r"^/app/x-1\.dist-info/METADATA has no Name or Ver"):
        sbom.distribution_metadata(
            b"Metadata-Version: 2.1\nName: x\n", "app/x-1.dist-info/METADATA"
        )


# ---------------------------------------------------------------- package URLs


@pytest.mark.parametrize(
    ("name", "version", "architecture", "expected"),
    [
        # `+` is percent-encoded; the epoch's `:` and `~` are not
        ("libc6", "2.41-12+deb13u5", "amd64", "libc6@2.41-12%2Bdeb13u5?arch=amd64&"),
        ("zlib1g", "1:1.3.dfsg+really1", "amd64", "zlib1g@1:1.3.dfsg%2Breally1?arch=amd64&"),
        ("libssl3t64", "3.5.9-1~deb13u1", "amd64", "libssl3t64@3.5.9-1~deb13u1?arch=amd64&"),
        ("tzdata", "2026f-0", "all", "tzdata@2026f-0?arch=all&"),
        # no architecture, no arch qualifier; `+` in a name is encoded too
        ("libstdc++6", "14.2.0-19", "", "libstdc%2B%2B6@14.2.0-19?"),
    ],
)
def test_deb_purls_follow_the_purl_spec(name, version, architecture, expected):
    purl = sbom.deb_purl("Debian", name, version, architecture, "debian-13")
    assert purl == f"pkg:deb/debian/{expected}distro=debian-13"


@pytest.mark.parametrize(
    ("name", "version", "expected"),
    [
        ("typing_extensions", "4.16.0", "pkg:pypi/typing-extensions@4.16.0"),
        ("Mako", "1.4.3", "pkg:pypi/mako@1.4.3"),
        ("zope.interface", "7.0", "pkg:pypi/zope-interface@7.0"),
        ("a_.-b", "1.0+local.1", "pkg:pypi/a-b@1.0%2Blocal.1"),
    ],
)
def test_pypi_purls_use_the_normalized_name(name, version, expected):
    assert sbom.pypi_purl(name, version) == expected


def test_the_distro_qualifier_names_the_release():
    assert DEBIAN.distro == "debian-13"
    assert sbom.OperatingSystem("debian", "", "sid").distro == "debian"


# ---------------------------------------------------------------- reading an exported image


def test_the_export_yields_dpkg_data_metadata_and_os_release_through_its_link():
    files = runtime_files()
    assert set(files) == {
        "etc/os-release",
        "usr/lib/os-release",
        "var/lib/dpkg/status.d/zlib1g",
        "var/lib/dpkg/status.d/libc6",
        f"{VENV}/typing_extensions-4.16.0.dist-info/METADATA",
        f"{VENV}/Mako-1.4.3.dist-info/METADATA",
        f"{VENV}/pydantic_core-2.50.5.dist-info/METADATA",
    }
    assert files["etc/os-release"] == OS_RELEASE


def test_the_export_reads_hard_links_dot_prefixed_names_and_the_system_site_packages():
    pip = metadata("pip", "25.1.1")
    pip_metadata = f"{SYSTEM}/pip-25.1.1.dist-info/METADATA"
    entries = [
        (f"./{pip_metadata}", "file", pip),
        (f"./{VENV}/pip-25.1.1.dist-info/METADATA", "hardlink", f"./{pip_metadata}"),
        ("./etc/os-release", "symlink", "/usr/lib/os-release"),
        ("./usr/lib/os-release", "file", OS_RELEASE),
        dist_info("./usr/lib/python3.13/site-packages", "x", "1"),
    ]
    with exported_tar(entries) as archive:
        files = sbom.read_image_files(archive)
    assert files[f"{SYSTEM}/pip-25.1.1.dist-info/METADATA"] == pip
    assert files[f"{VENV}/pip-25.1.1.dist-info/METADATA"] == pip
    assert files["etc/os-release"] == OS_RELEASE
    assert not any("usr/lib/python3.13" in path for path in files)
    (pip_package,) = sbom.python_distributions(files)
    assert pip_package.locations == (
        f"/{VENV}/pip-25.1.1.dist-info",
        f"/{SYSTEM}/pip-25.1.1.dist-info",
    )


# ---------------------------------------------------------------- the CycloneDX document


def test_the_document_has_what_cyclonedx_1_5_requires():
    document = runtime_document()
    assert (document["bomFormat"], document["specVersion"]) == ("CycloneDX", "1.5")
    assert document["$schema"] == "http://cyclonedx.org/schema/bom-1.5.schema.json"
    assert re.fullmatch(
        r"urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
        document["serialNumber"],
    )
    assert document["version"] == 1
    assert document["metadata"]["timestamp"] == "2026-12-02T17:40:05Z"
    assert document["metadata"]["tools"]["components"][0]["type"] == "application"
    for component in document["components"]:
        assert {"type", "name", "bom-ref"} <= component.keys()
    references = [component["bom-ref"] for component in document["components"]]
    assert len(references) == len(set(references))


def test_the_subject_is_the_image_with_its_id_and_stage():
    subject = runtime_document()["metadata"]["component"]
    properties = {item["name"]: item["value"] for item in subject["properties"]}
    assert subject["type"] == "container"
    assert subject["name"] == "dashtam/production:latest"
    assert subject["version"] == IMAGE.image_id
    assert subject["hashes"] == [{"alg": "SHA-256", "content": "ab" * 32}]
    assert properties["dashtam:stage"] == "production"
    assert properties["dashtam:image:id"] == IMAGE.image_id


def test_components_are_the_os_then_debs_then_python_each_sorted():
    components = runtime_document()["components"]
    assert [(item["type"], item.get("purl", item["bom-ref"])) for item in components] == [
        ("operating-system", "operating-system:debian-13"),
        ("library", "pkg:deb/debian/libc6@2.41-12%2Bdeb13u5?arch=amd64&distro=debian-13"),
        (
            "library",
            "pkg:deb/debian/zlib1g@1:1.3.dfsg%2Breally1.3.1-1%2Bdeb13u1?arch=amd64&distro=debian-13",
        ),
        ("library", "pkg:pypi/mako@1.4.3"),
        ("library", "pkg:pypi/pydantic-core@2.50.5"),
        ("library", "pkg:pypi/typing-extensions@4.16.0"),
    ]
    mako = components[3]
    assert (mako["name"], mako["version"]) == ("Mako", "1.4.3")
    assert mako["properties"] == [
        {"name": "dashtam:location", "value": f"/{VENV}/Mako-1.4.3.dist-info"}
    ]
    assert components[0]["version"] == "13"


def test_the_same_files_in_any_order_give_the_same_document():
    shuffled = dict(reversed(runtime_files().items()))
    again = sbom.image_sbom(shuffled, IMAGE, timestamp=TIMESTAMP, serial_number=SERIAL)
    assert json.dumps(again) == json.dumps(runtime_document())


def test_an_image_without_packages_still_gets_a_valid_document():
    document = sbom.image_sbom({}, IMAGE, timestamp=TIMESTAMP, serial_number=SERIAL)
    assert document["components"] == []
    assert sbom.component_counts(document) == {}


def test_the_summary_counts_each_kind_and_names_the_image(tmp_path: Path):
    path = tmp_path / "sbom" / "production.json"
    path.parent.mkdir()
    path.write_text(json.dumps(runtime_document()))
    assert sbom.summary(path, tmp_path) == (
        "sbom/production.json: 2 deb, 1 operating-system, 3 pypi "
        "(dashtam/production:latest, sha256:abababababab)"
    )


def test_write_sboms_writes_one_file_per_stage(monkeypatch, tmp_path: Path):
    made = []

    def fake_sbom_of_image(reference: str, stage: str, *, name_prefix: str) -> dict:
        made.append((reference, stage, name_prefix))
        return runtime_document()

    monkeypatch.setattr(sbom, "sbom_of_image", fake_sbom_of_image)
    written = sbom.write_sboms(
        {"production": "dashtam/production:latest", "callback": "dashtam/callback:latest"},
        tmp_path / "reports" / "sbom",
    )
    assert [path.name for path in written] == ["production.json", "callback.json"]
    assert made[0] == ("dashtam/production:latest", "production", "dashtam-sbom")
    assert json.loads(written[0].read_text())["specVersion"] == "1.5"


# ---------------------------------------------------------------- the export's container


def test_the_container_is_removed_even_when_the_export_fails(monkeypatch):
    calls = []

    class Containers:
        def create(self, image, **options):
            calls.append(("create", image, options))

        def export(self, container, output):
            calls.append(("export", container))
            raise DockerException(["docker", "export"], 1, b"", b"no space left")

        def remove(self, container, **options):
            calls.append(("remove", container, options))

    monkeypatch.setattr(engine, "docker", lambda: SimpleNamespace(container=Containers()))
    with (
        pytest.raises(PipelineError, match="no space left"),
        engine.exported_filesystem("sha256:abc", name_prefix="dashtam-test-sbom") as _,
    ):
        pass
    created, exported, removed = calls
    name = created[2]["name"]
    assert name.startswith("dashtam-test-sbom-")
    assert created[1] == "sha256:abc"
    assert exported == ("export", name)
    assert removed == ("remove", name, {"force": True, "volumes": True})
