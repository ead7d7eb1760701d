"""Build the air-gapped stand-ins for the upstream base images from the Debian 13 archive.

Without a container registry the stack still needs python, uv, postgres and redis images,
and the pipeline's own OCI registry (pipeline.registry) an image to run. We bootstrap a
Debian 13 root filesystem with mmdebstrap from the host's own Debian mirror, import it, and
build each stand-in (docker/base-images/<key>/Dockerfile) on top of it with apt-get.
PostgreSQL, Redis and the registry are Debian's packages; Python is CPython built from
source into /usr/local, the official image's layout (so upstream's code paths run here too),
and uv's stand-in is built on it.

Every stand-in gets two tags: its stable reference from pipeline.image_sources (what the
Dockerfile and compose files use) and a truthful one naming the version inside, read from the
built image (e.g. dashtam-airgap/postgres:17.6-debian13). Nothing is ever tagged with an
upstream name.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from pipeline import preflight
from pipeline.ca_bundle import ca_bundle_secrets
from pipeline.docker_client import container_output, docker, translated
from pipeline.engine import image_id, inspect_images, remove_if_untagged
from pipeline.environments import DOCKERFILE
from pipeline.errors import PipelineError
from pipeline.image_sources import AIRGAP_ROOTFS, BASE_IMAGES, UV_VERSION, BaseImage
from pipeline.process import last_line, run

# Debian 13, the release the stable references name; the version tags end the same way.
DEBIAN_SUITE = "trixie"
DEBIAN_TAG_SUFFIX = "debian13"
BASE_IMAGES_DIRECTORY = DOCKERFILE.parent / "base-images"
# Overrides the mirror read from the host's apt sources (e.g. on a non-Debian host).
MIRROR_VARIABLE = "DASHTAM_DEBIAN_MIRROR"
REBUILD_HINT = "then rerun `nox -s base-images`"

# apt-get in the stand-ins' builds deletes what it downloaded and keeps no binary caches.
APT_CLEAN_CONFIG = """\
APT::Keep-Downloaded-Packages "false";
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
"""

VERSION_LABEL = "org.opencontainers.image.version"
DESCRIPTION_LABEL = "org.opencontainers.image.description"
# A digest of everything a stand-in is built from (its folder, its build args, the IDs of the
# images it is built FROM): when the image carries the digest of today's inputs there is
# nothing to do, decided from one `docker image inspect`, without BuildKit.
INPUTS_LABEL = "dev.dashtam.base-image.inputs"
# The buildx driver that builds into the engine's own image store (the others cannot see it).
LOCAL_IMAGES_DRIVER = "docker"

# The build order: uv is built FROM the python stand-in.
BUILD_ORDER = ("python", "uv", "postgres", "redis", "registry")

# Shell run inside each built image, printing "<package version> <version for the tag>".
# The package version (Debian's, or uv's own) goes into the OCI version label; the second field
# is what the program itself reports, made into the truthful tag.
_PYTHON_VERSION = "python3.13 -c 'import platform; print(platform.python_version())'"
VERSION_PROBES = {
    # CPython built from source: no package, so the interpreter's own version is both.
    "python": f"""python_version=$({_PYTHON_VERSION})
echo "$python_version $python_version" """,
    "uv": f"""uv_version=$(uv --version | cut -d' ' -f2)
echo "$uv_version $uv_version-python$({_PYTHON_VERSION})" """,
    "postgres": """echo "$(dpkg-query -W -f='${Version}' postgresql-17) \
$(postgres --version | sed -E 's/^[^0-9]*([0-9][0-9.]*).*/\\1/')" """,
    "redis": """echo "$(dpkg-query -W -f='${Version}' redis-server) \
$(redis-server --version | sed -E 's/.* v=([^ ]+).*/\\1/')" """,
    "registry": """echo "$(dpkg-query -W -f='${Version}' docker-registry) \
$(registry --version | sed -E 's/.* v?([0-9]+[.][0-9]+[.][0-9]+).*/\\1/')" """,
}
_TAG_PATTERN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")


@dataclass(frozen=True)
class BuiltImage:
    """A stand-in as built: its stable reference, its truthful version tag, and the version."""

    key: str
    reference: str  # the stable reference from pipeline.image_sources
    version_reference: str  # the same image, tagged with the version it really contains
    version: str  # the package version, also in the org.opencontainers.image.version label
    image_id: str


def build_base_images(force: bool = False, progress: bool = True) -> list[BuiltImage]:
    """Build the Debian 13 rootfs (if missing) and the stand-ins; nothing when unchanged.

    force: rebuild the rootfs and every layer without the BuildKit cache.
    progress: show mmdebstrap and BuildKit output; otherwise it is captured and only a failure
    is reported.
    """
    preflight.require_engine()
    if not force:
        current = current_stand_ins()
        if current is not None:
            return current
    require_local_image_builder()
    if force or image_id(AIRGAP_ROOTFS) is None:
        import_debian_rootfs(progress=progress)
    images_by_key = {image.key: image for image in BASE_IMAGES}
    built: list[BuiltImage] = []
    for key in BUILD_ORDER:
        image = images_by_key[key]
        build_args = stand_in_build_args(key)
        built.append(build_stand_in(image, build_args, force, progress))
    return built


def stand_in_build_args(key: str) -> dict[str, str]:
    build_args = {"ROOTFS_IMAGE": AIRGAP_ROOTFS}
    if key == "uv":
        python = next(image for image in BASE_IMAGES if image.key == "python")
        build_args |= {"PYTHON_IMAGE": python.airgap, "UV_VERSION": UV_VERSION}
    return build_args


def inputs_digest(key: str, build_args: dict[str, str], image_ids: dict[str, str]) -> str:
    """sha256 over the stand-in's folder, its build args and the images they name (by ID)."""
    digest = hashlib.sha256(key.encode())
    for name, value in sorted(build_args.items()):
        digest.update(f"\0{name}={image_ids.get(value, value)}".encode())
    folder = BASE_IMAGES_DIRECTORY / key
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            digest.update(f"\0{path.relative_to(folder)}\0".encode())
            digest.update(path.read_bytes())
    return f"sha256:{digest.hexdigest()}"


def current_stand_ins() -> list[BuiltImage] | None:
    """The stand-ins as built, when every one carries the digest of today's inputs."""
    references = [AIRGAP_ROOTFS, *(image.airgap for image in BASE_IMAGES)]
    inspected = inspect_images(references)
    if len(inspected) != len(references):
        return None
    image_ids = {reference: entry["Id"] for reference, entry in inspected.items()}
    current = []
    for image in BASE_IMAGES:
        entry = inspected[image.airgap]
        labels = entry["Config"].get("Labels") or {}
        expected = inputs_digest(image.key, stand_in_build_args(image.key), image_ids)
        recorded = recorded_stand_in(image, entry)
        if labels.get(INPUTS_LABEL) != expected or recorded is None:
            return None
        current.append(recorded)
    return current


def require_local_image_builder() -> None:
    """The stand-ins are built FROM local images, which only buildx's docker driver can see."""
    with translated("`docker buildx inspect`", "check the buildx plugin with `docker buildx ls`"):
        builder = docker().buildx.inspect()
    if builder.driver != LOCAL_IMAGES_DRIVER:
        raise PipelineError(
            f"the current buildx builder {builder.name!r} uses the {builder.driver!r} "
            f"driver, which cannot build FROM local images; run `docker buildx use default`, "
            f"{REBUILD_HINT}."
        )


def debian_mirror() -> str:
    """The Debian mirror the host's apt sources use for the host's own release."""
    override = os.environ.get(MIRROR_VARIABLE, "").strip()
    if override:
        return override
    codename = host_codename()
    try:
        listing = run(
            ["apt-get", "indextargets", "--format", "$(REPO_URI) $(CODENAME) $(IDENTIFIER)"]
        )
    except OSError:
        listing = None
    if listing is None or listing.returncode != 0:
        raise PipelineError(
            "cannot list the host's apt sources (`apt-get indextargets` failed); "
            f"set {MIRROR_VARIABLE} to a Debian mirror URL, {REBUILD_HINT}."
        )
    index_targets = listing.stdout
    for line in index_targets.splitlines():
        fields = line.split()
        if len(fields) == 3 and fields[1] == codename and fields[2] == "Packages":
            return fields[0]
    raise PipelineError(
        f"no apt source for the host release {codename!r} found; add a Debian mirror to "
        f"/etc/apt/sources.list or set {MIRROR_VARIABLE}, {REBUILD_HINT}."
    )


def host_codename() -> str:
    """VERSION_CODENAME from /etc/os-release (e.g. bookworm)."""
    os_release = Path("/etc/os-release")
    try:
        lines = os_release.read_text().splitlines()
    except OSError as error:
        raise PipelineError(
            f"cannot read {os_release} to find the host release; "
            f"set {MIRROR_VARIABLE} to a Debian mirror URL, {REBUILD_HINT}."
        ) from error
    for line in lines:
        name, _, value = line.partition("=")
        if name == "VERSION_CODENAME" and value.strip('"'):
            return value.strip('"')
    raise PipelineError(
        f"{os_release} has no VERSION_CODENAME; set {MIRROR_VARIABLE} to a Debian mirror URL, "
        f"{REBUILD_HINT}."
    )


def require_mirror_serves_suite(mirror: str) -> None:
    """Fail early, naming the mirror, rather than deep inside mmdebstrap's output."""
    release_url = f"{mirror.rstrip('/')}/dists/{DEBIAN_SUITE}/Release"
    fix = (
        f"check the network, or point {MIRROR_VARIABLE} at a Debian mirror that serves "
        f"{DEBIAN_SUITE}, {REBUILD_HINT}."
    )
    if not release_url.startswith(("http://", "https://")):
        raise PipelineError(f"Debian mirror {mirror!r} is not an http(s) URL; {fix}")
    try:
        # The scheme is checked above: only http(s) is ever opened.
        with urllib.request.urlopen(release_url, timeout=20):  # noqa: S310
            pass
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise PipelineError(
            f"Debian mirror {mirror} does not serve {DEBIAN_SUITE} ({release_url}: {reason}); {fix}"
        ) from error


def import_debian_rootfs(progress: bool) -> None:
    """mmdebstrap a minimal Debian 13 and import it as AIRGAP_ROOTFS (about 15-25 s)."""
    if shutil.which("mmdebstrap") is None:
        raise PipelineError(
            "mmdebstrap is not installed; run `apt-get install mmdebstrap` (Debian/Ubuntu), "
            "then rerun `nox -s base-images`."
        )
    mirror = debian_mirror()
    require_mirror_serves_suite(mirror)
    if progress:
        print(f"base-images: bootstrapping Debian {DEBIAN_SUITE} from {mirror}", flush=True)
    with tempfile.TemporaryDirectory(prefix="dashtam-rootfs-") as workdir:
        rootfs_tar = Path(workdir) / "rootfs.tar"
        apt_clean_config = Path(workdir) / "docker-clean"
        apt_clean_config.write_text(APT_CLEAN_CONFIG)
        command = [
            "mmdebstrap",
            "--variant=minbase",
            # These persist in the rootfs, so the stand-ins' apt-get installs stay slim too.
            '--aptopt=APT::Install-Recommends "false"',
            '--aptopt=Acquire::Languages "none"',
            "--dpkgopt=path-exclude=/usr/share/doc/*",
            "--dpkgopt=path-include=/usr/share/doc/*/copyright",
            "--dpkgopt=path-exclude=/usr/share/man/*",
            "--dpkgopt=path-exclude=/usr/share/info/*",
            "--dpkgopt=path-exclude=/usr/share/locale/*",
            # Like Debian's official images: no .deb files or package caches left in a layer.
            f"--customize-hook=copy-in {apt_clean_config} /etc/apt/apt.conf.d/",
            # mmdebstrap's own cleanup looks for the caches by the names just switched off.
            '--customize-hook=rm -f "$1"/var/cache/apt/*.bin',
            DEBIAN_SUITE,
            str(rootfs_tar),
            mirror,
        ]
        bootstrap = run(command, capture=not progress)
        if bootstrap.returncode != 0:
            detail = last_line(bootstrap.stderr) if not progress else "see its output above"
            raise PipelineError(
                f"mmdebstrap could not bootstrap Debian {DEBIAN_SUITE} from {mirror} "
                f"(exit {bootstrap.returncode}: {detail}); check the mirror and network, "
                f"{REBUILD_HINT}."
            )
        import_rootfs(rootfs_tar, mirror)


def import_rootfs(rootfs_tar: Path, mirror: str) -> None:
    """`docker import` the bootstrapped tarball as AIRGAP_ROOTFS, labelled with its version."""
    debian_version = read_debian_version(rootfs_tar)
    with translated(
        f"importing the Debian {DEBIAN_SUITE} rootfs as {AIRGAP_ROOTFS}",
        f"check the engine's free disk space, {REBUILD_HINT}",
    ):
        docker().image.import_(
            rootfs_tar,
            AIRGAP_ROOTFS,
            changes=[
                f'LABEL {VERSION_LABEL}="{debian_version}"',
                f'LABEL {DESCRIPTION_LABEL}="Local air-gapped Debian {DEBIAN_SUITE} minbase '
                'root filesystem (mmdebstrap), base of the dashtam-airgap stand-ins."',
                'CMD ["bash"]',
            ],
            message=f"mmdebstrap --variant=minbase {DEBIAN_SUITE} {mirror}",
        )


def read_debian_version(rootfs_tar: Path) -> str:
    """/etc/debian_version inside the bootstrapped tarball (e.g. 13.1)."""
    with tarfile.open(rootfs_tar) as archive:
        member = archive.extractfile("./etc/debian_version")
        if member is None:
            raise PipelineError(
                f"the rootfs bootstrapped from {rootfs_tar.name} has no /etc/debian_version; "
                f"check the mirror, {REBUILD_HINT}."
            )
        return member.read().decode().strip()


def build_stand_in(
    image: BaseImage, build_args: dict[str, str], force: bool, progress: bool
) -> BuiltImage:
    """Build one stand-in, read the versions inside it, then label and tag it truthfully.

    The label and the version tag need the versions the build produced. The first build
    reuses the label of the image it replaces: when that yields the very same image, nothing
    changed and we are done. Otherwise the versions are read from the new image and a second,
    all-cached build adds the right label and tags. Both carry the digest of the inputs.
    """
    if progress:
        print(f"base-images: building {image.airgap}", flush=True)
    inspected = inspect_images([image.airgap, *build_args.values()])
    current = inspected.get(image.airgap)
    image_ids = {reference: entry["Id"] for reference, entry in inspected.items()}
    inputs = {INPUTS_LABEL: inputs_digest(image.key, build_args, image_ids)}
    previous = recorded_stand_in(image, current) if current else None
    first_labels = inputs | ({VERSION_LABEL: previous.version} if previous else {})
    first_id = run_build(
        image, build_args, [image.airgap], first_labels, cache=not force, progress=progress
    )
    if previous and first_id == previous.image_id:
        built = previous
    else:
        package_version, tag_version = probe_versions(image, first_id)
        version_reference = f"{repository_of(image)}:{tag_version}-{DEBIAN_TAG_SUFFIX}"
        labelled_id = run_build(
            image,
            build_args,
            [image.airgap, version_reference],
            inputs | {VERSION_LABEL: package_version},
            cache=True,
            progress=progress,
        )
        # Neither the first build (only a means to read the versions) nor the image this one
        # replaces should linger untagged; a replaced image keeps its own version tag if it
        # had another version.
        replaced_id = current["Id"] if current else first_id
        for superseded_id in {first_id, replaced_id} - {labelled_id}:
            remove_if_untagged(superseded_id)
        built = BuiltImage(image.key, image.airgap, version_reference, package_version, labelled_id)
    if progress:
        print(
            f"base-images: {built.reference} = {built.version_reference} ({built.version})",
            flush=True,
        )
    return built


def recorded_stand_in(image: BaseImage, inspected: dict) -> BuiltImage | None:
    """The stand-in as a previous run left it, if it carries its version label and tag."""
    version = (inspected["Config"].get("Labels") or {}).get(VERSION_LABEL)
    version_references = [
        tag
        for tag in (inspected.get("RepoTags") or [])
        if tag.startswith(f"{repository_of(image)}:") and tag != image.airgap
    ]
    if not version or len(version_references) != 1:
        return None
    return BuiltImage(image.key, image.airgap, version_references[0], version, inspected["Id"])


def repository_of(image: BaseImage) -> str:
    return image.airgap.rsplit(":", 1)[0]


def run_build(
    image: BaseImage,
    build_args: dict[str, str],
    tags: list[str],
    labels: dict[str, str],
    cache: bool,
    progress: bool,
) -> str:
    """`docker buildx build --load` of the stand-in; the ID of the image it loaded."""
    dockerfile = BASE_IMAGES_DIRECTORY / image.key / "Dockerfile"
    with translated(f"building {image.airgap} from {dockerfile}", f"fix the cause, {REBUILD_HINT}"):
        built = docker().buildx.build(
            dockerfile.parent,
            file=dockerfile,
            load=True,
            tags=tags,
            labels=labels,
            build_args=build_args,
            secrets=ca_bundle_secrets(),
            cache=cache,
            # False captures BuildKit's output, which then names a failure's last line.
            progress="auto" if progress else False,
        )
    if built is None or not built.id:
        raise PipelineError(
            f"building {image.airgap} loaded no image into the engine; "
            f"check `docker buildx ls` for the current builder, {REBUILD_HINT}."
        )
    return built.id


def probe_versions(image: BaseImage, reference: str) -> tuple[str, str]:
    """(package version, tag version) as the built image itself reports them."""
    with translated(
        f"running the freshly built {image.airgap} to read its versions",
        f"fix its Dockerfile, {REBUILD_HINT}",
    ):
        output = container_output(
            reference, ["-c", VERSION_PROBES[image.key]], pull="never", entrypoint="/bin/sh"
        )
    output = output.strip()
    fields = output.split()
    if len(fields) != 2 or not _TAG_PATTERN.fullmatch(f"{fields[1]}-{DEBIAN_TAG_SUFFIX}"):
        raise PipelineError(
            f"cannot read the version inside {image.airgap} (got {output!r}); fix VERSION_PROBES "
            f"in {__name__}, {REBUILD_HINT}."
        )
    return fields[0], fields[1]
