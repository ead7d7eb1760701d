"""The scripts docker/Dockerfile runs while it builds the runtime image, without an image.

docker/runtime-inventory.py reads a dpkg database and a cut root filesystem; both are written
here (its DPKG_INFO and DPKG_STATUS point at them). docker/runtime-check.py needs the image
it checks; only its command line is tested here.
"""

from __future__ import annotations

import importlib
import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from pipeline.environments import ROOT

STATUS = """\
Package: libc6
Status: install ok installed
Priority: optional
Section: libs
Architecture: amd64
Multi-Arch: same
Source: glibc
Version: 2.36-9+deb12u10
Description: GNU C Library: Shared libraries
 Contains the standard libraries that are used by nearly all programs on
 the system.

Package: libssl3
Status: install ok installed
Architecture: amd64
Source: openssl
Version: 3.0.16-1~deb12u1
Description: Secure Sockets Layer toolkit - shared libraries

Package: tzdata
Status: install ok installed
Architecture: all
Version: 2025b-0+deb12u1

Package: bash
Status: install ok installed
Architecture: amd64
Version: 5.2.15-2+b8

Package: oldconf
Status: deinstall ok config-files
Architecture: all
Version: 1.0
"""
# Package -> the files dpkg lists for it (folders too, as dpkg does).
LISTS = {
    # Listed under /lib, present under /usr/lib (merged /usr).
    "libc6:amd64": ["/.", "/lib", "/lib/x86_64-linux-gnu", "/lib/x86_64-linux-gnu/libc.so.6"],
    # Listed under /usr/lib, present under /lib.
    "libssl3:amd64": ["/usr/lib/x86_64-linux-gnu/libssl.so.3"],
    "tzdata": ["/usr/share/zoneinfo", "/usr/share/zoneinfo/Europe/Berlin"],
    "bash": ["/bin/bash", "/usr/share/doc/bash/copyright"],  # nothing of it is in the rootfs
    "oldconf": ["/etc/oldconf.conf"],
}
PRESENT = (
    "/usr/lib/x86_64-linux-gnu/libc.so.6",
    "/lib/x86_64-linux-gnu/libssl.so.3",
    "/usr/share/zoneinfo/Europe/Berlin",
    "/app/src/main.py",  # ours: no package owns it
)


@pytest.fixture(autouse=True)
def bytecode_setting_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    """runtime-check.py turns bytecode writing on as it loads: undone after each test."""
    monkeypatch.setattr(sys, "dont_write_bytecode", sys.dont_write_bytecode)


def load(script: str) -> ModuleType:
    path = ROOT / "docker" / script
    spec = importlib.util.spec_from_file_location(path.stem.replace("-", "_"), path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_files(root: Path, paths: tuple[str, ...]) -> None:
    for path in paths:
        target = root / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("x")


@pytest.fixture
def inventory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """runtime-inventory.py reading a dpkg database under tmp_path/dpkg."""
    module = load("runtime-inventory.py")
    info = tmp_path / "dpkg" / "info"
    info.mkdir(parents=True)
    for package, paths in LISTS.items():
        (info / f"{package}.list").write_text("".join(f"{path}\n" for path in paths))
    # Only the .list files say who owns a file (sorted first, this one would make it bash's).
    (info / "bash.conffiles").write_text("/usr/share/zoneinfo/Europe/Berlin\n")
    (tmp_path / "dpkg" / "status").write_text(STATUS)
    monkeypatch.setattr(module, "DPKG_INFO", info)
    monkeypatch.setattr(module, "DPKG_STATUS", tmp_path / "dpkg" / "status")
    return module


@pytest.fixture
def rootfs(tmp_path: Path) -> Path:
    root = tmp_path / "rootfs"
    write_files(root, PRESENT)
    return root


def written(root: Path) -> list[str]:
    folder = root / "var/lib/dpkg/status.d"
    return sorted(path.name for path in folder.iterdir()) if folder.is_dir() else []


def stanza(package: str) -> str:
    return next(s for s in STATUS.split("\n\n") if s.startswith(f"Package: {package}\n"))


def test_exactly_the_packages_owning_a_file_get_an_entry(inventory, rootfs, capsys):
    code = inventory.main([str(rootfs)])
    assert code == 0, f"expected exit 0, found {code}: {capsys.readouterr().err}"
    found = written(rootfs)
    assert found == ["libc6", "libssl3", "tzdata"], (
        f"expected libc6 and libssl3 (through merged /usr) and tzdata, not bash, found {found}"
    )
    output = capsys.readouterr().out
    assert output == "runtime-inventory: 3 package(s): libc6 libssl3 tzdata\n", (
        f"expected one line naming the three packages, found {output!r}"
    )


def test_an_entry_is_the_package_s_whole_status_stanza(inventory, rootfs):
    inventory.main([str(rootfs)])
    found = (rootfs / "var/lib/dpkg/status.d/libc6").read_text()
    expected = stanza("libc6").strip() + "\n"
    assert found == expected, f"expected libc6's stanza with its description, found {found!r}"


def test_packages_the_base_rootfs_lists_are_not_written_again(inventory, rootfs, tmp_path):
    base = tmp_path / "base"
    (base / "var/lib/dpkg/status.d").mkdir(parents=True)
    (base / "var/lib/dpkg/status.d/libc6").write_text(stanza("libc6"))
    code = inventory.main([str(rootfs), str(base)])
    found = written(rootfs)
    assert (code, found) == (0, ["libssl3", "tzdata"]), (
        f"expected exit 0 and libc6 left to the base, found exit {code} and {found}"
    )


def test_an_owner_that_is_not_installed_stops_with_one_line(inventory, rootfs, capsys):
    write_files(rootfs, ("/etc/oldconf.conf",))
    code = inventory.main([str(rootfs)])
    error = capsys.readouterr().err
    assert code == 1, f"expected exit 1 for a package with no installed status, found {code}"
    assert error == "runtime-inventory: no dpkg status for oldconf\n", (
        f"expected one line naming oldconf, found {error!r}"
    )
    assert written(rootfs) == [], f"expected nothing written, found {written(rootfs)}"


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/lib/x86_64-linux-gnu/libc.so.6", ["/usr/lib/x86_64-linux-gnu/libc.so.6"]),
        ("/usr/sbin/nologin", ["/sbin/nologin"]),
        ("/usr/lib64/ld-linux-x86-64.so.2", ["/lib64/ld-linux-x86-64.so.2"]),
        ("/etc/passwd", []),
        ("/usr/share/zoneinfo/UTC", []),
    ],
    ids=str,
)
def test_merged_usr_aliases(inventory, path, expected):
    found = inventory.aliases(path)
    assert found == [path, *expected], f"{path}: expected {[path, *expected]}, found {found}"


@pytest.mark.parametrize("arguments", [[], ["a", "b", "c"]], ids=["no rootfs", "three arguments"])
def test_inventory_usage_errors_exit_2(inventory, capsys, arguments):
    code = inventory.main(arguments)
    error = capsys.readouterr().err
    assert code == 2, f"expected exit 2 for {arguments}, found {code}"
    assert error.startswith("usage: runtime-inventory.py ROOTFS"), (
        f"expected the usage line, found {error!r}"
    )


# ---------------------------------------------------------------- runtime-check.py


@pytest.fixture
def runtime_check(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """runtime-check.py, loaded, with every step that touches the image failing the test."""
    module = load("runtime-check.py")
    # A usage error must stop before any check: each would fail the test.
    for name in (
        "import_standard_extensions",
        "check_tls",
        "check_time_zones",
        "import_dependencies",
        "load_server_machinery",
        "load_service",
        "compile_what_loaded",
        "hand_app_files_to_the_app_user",
    ):
        monkeypatch.setattr(module, name, lambda *_, name=name: pytest.fail(f"{name} ran"))
    return module


@pytest.mark.parametrize(
    "arguments",
    [[], ["worker"], ["app", "callback"], ["dependencies"], ["interpreter", "app"]],
    ids=[
        "no service",
        "an unknown service",
        "two services",
        "dependencies without a file",
        "interpreter with more",
    ],
)
def test_runtime_check_usage_errors_exit_2(runtime_check, capsys, arguments):
    code = runtime_check.main(arguments)
    error = capsys.readouterr().err
    assert code == 2, f"expected exit 2 for {arguments}, found {code}"
    assert error == (
        "usage: runtime-check.py interpreter | dependencies PYPROJECT | app|callback\n"
    ), f"expected the usage line naming every step, found {error!r}"


@pytest.mark.parametrize(
    "script", ["runtime-inventory.py", "runtime-check.py"], ids=["inventory", "check"]
)
def test_run_without_arguments_the_scripts_exit_2(script):
    result = subprocess.run(
        [sys.executable, "-I", str(ROOT / "docker" / script)], capture_output=True, text=True
    )
    assert result.returncode == 2, (
        f"{script}: expected exit 2, found {result.returncode}: {result.stderr}"
    )
    assert result.stderr.startswith("usage: "), f"{script}: expected usage, found {result.stderr}"


def test_a_module_loaded_without_bytecode_gets_it_and_one_that_has_it_is_left(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
):
    """What the interpreter loaded before any bytecode could be written (encodings, the
    venv's .pth hook, the script's own imports) is compiled too: the runtime never can."""
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "loaded_at_start.py").write_text("VALUE = 1\n")
    module = importlib.import_module("loaded_at_start")
    monkeypatch.delitem(sys.modules, "loaded_at_start")
    cached = Path(module.__spec__.cached)
    assert not cached.exists(), "the test module must start without bytecode"
    check = load("runtime-check.py")
    assert check.compile_what_loaded([module]) == 1
    assert cached.is_file(), f"expected bytecode at {cached}"
    assert check.compile_what_loaded([module]) == 0, "bytecode already there is kept as it is"


def pyproject_with(tmp_path: Path, *dependencies: str) -> Path:
    path = tmp_path / "pyproject.toml"
    listed = ", ".join(f'"{dependency}"' for dependency in dependencies)
    path.write_text(f'[project]\nname = "x"\ndependencies = [{listed}]\n')
    return path


def test_each_runtime_dependency_is_imported_by_its_top_level_modules(tmp_path: Path):
    check = load("runtime-check.py")
    # pytest ships the modules pytest, py and _pytest: the private one is imported through them.
    assert check.import_dependencies(pyproject_with(tmp_path, "PyTest>=8")) >= 1
    assert "pytest" in sys.modules


def test_a_runtime_dependency_missing_from_the_venv_stops_the_build_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    check = load("runtime-check.py")
    with pytest.raises(SystemExit):
        check.import_dependencies(pyproject_with(tmp_path, "pytest", "not-in-this-venv>=1"))
    assert (
        "runtime dependency not-in-this-venv has no module in the venv" in capsys.readouterr().err
    )
