"""The package inventory of a root filesystem cut from a Debian-based image, for scanners.

    python3 runtime-inventory.py ROOTFS [BASE_ROOTFS]

Run in the image the files were cut from (docker/Dockerfile's runtime-root stage), with its
dpkg database. For every Debian package that owns a file now in ROOTFS it writes that
package's status entry to ROOTFS/var/lib/dpkg/status.d/<package>, the layout distroless
uses and Trivy, Grype and Syft read: a scanner then sees OpenSSL, glibc and the rest at
their real versions instead of an image with no packages. Packages already listed in
BASE_ROOTFS's inventory are not written again. Standard library only.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

DPKG_INFO = Path("/var/lib/dpkg/info")
DPKG_STATUS = Path("/var/lib/dpkg/status")
INVENTORY = Path("var/lib/dpkg/status.d")
# Debian's merged /usr: a package may list a file under either name.
MERGED = (
    ("/bin/", "/usr/bin/"),
    ("/sbin/", "/usr/sbin/"),
    ("/lib/", "/usr/lib/"),
    ("/lib64/", "/usr/lib64/"),
)


def owners() -> dict[str, str]:
    """Path -> the package that installed it, from dpkg's own file lists."""
    owned: dict[str, str] = {}
    for listing in sorted(DPKG_INFO.glob("*.list")):
        package = listing.stem.split(":")[0]
        for line in listing.read_text(errors="replace").splitlines():
            owned.setdefault(line, package)
    return owned


def aliases(path: str) -> list[str]:
    names = [path]
    for short, long in MERGED:
        if path.startswith(short):
            names.append(long + path[len(short) :])
        elif path.startswith(long):
            names.append(short + path[len(long) :])
    return names


def files_of(rootfs: Path) -> list[str]:
    """Every file and symbolic link in rootfs, as an absolute path inside it."""
    found = []
    for folder, _, names in os.walk(rootfs):
        for name in names:
            found.append("/" + str((Path(folder) / name).relative_to(rootfs)))
    return found


def owning_packages(rootfs: Path) -> set[str]:
    owned = owners()
    return {
        owned[name]
        for path in files_of(rootfs)
        for name in aliases(path)
        if name in owned and not path.startswith("/" + str(INVENTORY))
    }


def status_entries() -> dict[str, str]:
    """Package -> its stanza of dpkg's status file (installed packages only)."""
    entries = {}
    for stanza in DPKG_STATUS.read_text(errors="replace").split("\n\n"):
        fields = dict(
            line.split(": ", 1)
            for line in stanza.splitlines()
            if ": " in line and not line.startswith(" ")
        )
        if fields.get("Status", "").endswith(" installed") and "Package" in fields:
            entries[fields["Package"]] = stanza.strip() + "\n"
    return entries


def main(arguments: list[str]) -> int:
    if len(arguments) not in (1, 2):
        print("usage: runtime-inventory.py ROOTFS [BASE_ROOTFS]", file=sys.stderr)
        return 2
    rootfs = Path(arguments[0])
    listed = set()
    if len(arguments) == 2:
        listed = {path.name for path in (Path(arguments[1]) / INVENTORY).glob("*")}
    entries = status_entries()
    packages = sorted(owning_packages(rootfs) - listed)
    unknown = [package for package in packages if package not in entries]
    if unknown:
        print(f"runtime-inventory: no dpkg status for {', '.join(unknown)}", file=sys.stderr)
        return 1
    (rootfs / INVENTORY).mkdir(parents=True, exist_ok=True)
    for package in packages:
        (rootfs / INVENTORY / package).write_text(entries[package])
    print(f"runtime-inventory: {len(packages)} package(s): {' '.join(packages)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
