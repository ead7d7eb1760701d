"""The inspector's readers (pipeline/inspector.py), on /proc tables and a root filesystem
written here: no container, no Docker. Its data-store logins are in test_inspector_logins.py.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from pipeline import inspector

HEADER = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid\n"
HEADER6 = "  sl  local_address                         remote_address                        st\n"
REST = " 00000000:00000000 00:00000000 00000000  1000        0 41234 1 0000000000000000 100 0 0"


def table(header: str, *rows: str) -> str:
    """A /proc/net table: its header, then `sl: local remote state` rows and the usual tail."""
    return header + "".join(f"{number:4d}: {row}{REST}\n" for number, row in enumerate(rows))


ANY4, ANY6 = "00000000:0000", "00000000000000000000000000000000:0000"

# ---------------------------------------------------------------- sockets


def test_tcp_counts_listening_rows_only_and_leaves_out_dockers_dns():
    text = table(
        HEADER,
        f"00000000:1F40 {ANY4} 0A",  # 0.0.0.0:8000, LISTEN
        f"0100007F:2382 {ANY4} 0A",  # 127.0.0.1:9090, LISTEN
        f"0B00007F:8CA1 {ANY4} 0A",  # 127.0.0.11: Docker's DNS
        "0300140A:1F40 0200140A:D2F0 01",  # 10.20.0.3:8000, an established connection
        "0300140A:1F40 0200140A:D2F2 06",  # TIME_WAIT
        f"00000000:1F41 {ANY4} 07",  # CLOSE: UDP's bound state means nothing for TCP
    )
    found = inspector.parse_sockets("tcp", text)
    expected = [
        {"protocol": "tcp", "address": "0.0.0.0", "port": 8000},  # noqa: S104 - reading
        {"protocol": "tcp", "address": "127.0.0.1", "port": 9090},
    ]
    assert found == expected, f"expected {expected}, found {found}"


def test_tcp6_addresses_decode_word_by_word():
    text = table(
        HEADER6,
        f"00000000000000000000000000000000:1F40 {ANY6} 0A",  # [::]:8000
        f"00000000000000000000000001000000:0CEA {ANY6} 0A",  # [::1]:3306
        f"B80D0120000000000000000001000000:01BB {ANY6} 0A",  # [2001:db8::1]:443
        f"0000000000000000FFFF00000100007F:1F90 {ANY6} 0A",  # [::ffff:127.0.0.1]:8080
        f"0000000000000000FFFF00000B00007F:A1B2 {ANY6} 0A",  # Docker's DNS, IPv4-mapped
    )
    found = [(s["address"], s["port"]) for s in inspector.parse_sockets("tcp6", text)]
    expected = [("::", 8000), ("::1", 3306), ("2001:db8::1", 443), ("::ffff:127.0.0.1", 8080)]
    assert found == expected, f"expected {expected}, found {found}"


def test_udp_counts_bound_rows_only_and_leaves_out_dockers_dns():
    text = table(
        HEADER,
        f"00000000:14E9 {ANY4} 07",  # 0.0.0.0:5353, bound
        f"0B00007F:D4C3 {ANY4} 07",  # 127.0.0.11: Docker's DNS
        "0300140A:A0B1 08080808:0035 01",  # a connected socket, asking 8.8.8.8
        f"00000000:1F40 {ANY4} 0A",  # TCP's LISTEN means nothing for UDP
    )
    found = inspector.parse_sockets("udp", text)
    expected = [{"protocol": "udp", "address": "0.0.0.0", "port": 5353}]  # noqa: S104 - reading
    assert found == expected, f"expected {expected}, found {found}"


def test_udp6_keeps_its_protocol_name():
    text = table(HEADER6, f"00000000000000000000000000000000:14E9 {ANY6} 07")
    found = inspector.parse_sockets("udp6", text)
    expected = [{"protocol": "udp6", "address": "::", "port": 5353}]
    assert found == expected, f"expected {expected}, found {found}"


def test_an_empty_table_has_no_sockets():
    found = inspector.parse_sockets("tcp", HEADER)
    assert found == [], f"expected no sockets from a table with only its header, found {found}"


# ---------------------------------------------------------------- mounts

MOUNTINFO = (
    "1021 962 0:101 / / ro,relatime master:493 - overlay overlay rw,lowerdir=/var/lib/docker/"
    "overlay2/l/ABC:/var/lib/docker/overlay2/l/DEF,upperdir=/var/lib/docker/overlay2/x/diff\n"
    "1022 1021 0:104 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw\n"
    "1023 1021 0:105 / /dev rw,nosuid - tmpfs tmpfs rw,size=65536k,mode=755,inode64\n"
    "1029 1021 0:110 / /tmp rw,nosuid,nodev,noexec,relatime - tmpfs tmpfs rw,inode64\n"
    "1030 1021 259:2 /srv/dashtam/tls /run/tls ro,relatime - ext4 /dev/nvme0n1p2 rw\n"
    "1032 1021 259:2 /srv/my\\040data /srv/my\\040data ro,relatime shared:1 master:2 - ext4 "
    "/dev/nvme0n1p2 rw,errors=remount-ro\n"
)


def test_mountinfo_gives_each_mount_point_its_options_type_and_source():
    mounts = inspector.parse_mounts(MOUNTINFO)
    expected = {
        "/": {"options": ["ro", "relatime"], "type": "overlay", "source": "overlay"},
        "/proc": {
            "options": ["rw", "nosuid", "nodev", "noexec", "relatime"],
            "type": "proc",
            "source": "proc",
        },
        "/dev": {"options": ["rw", "nosuid"], "type": "tmpfs", "source": "tmpfs"},
        "/tmp": {
            "options": ["rw", "nosuid", "nodev", "noexec", "relatime"],
            "type": "tmpfs",
            "source": "tmpfs",
        },
        "/run/tls": {"options": ["ro", "relatime"], "type": "ext4", "source": "/dev/nvme0n1p2"},
        "/srv/my data": {
            "options": ["ro", "relatime"],
            "type": "ext4",
            "source": "/dev/nvme0n1p2",
        },
    }
    assert mounts == expected, f"expected {expected}, found {mounts}"


def test_a_later_mount_over_the_same_point_wins():
    text = (
        "30 1 0:1 / /tmp rw,relatime - tmpfs tmpfs rw\n"
        "31 30 0:2 / /tmp ro,relatime - tmpfs tmpfs ro\n"
    )
    found = inspector.parse_mounts(text)["/tmp"]["options"]
    assert found == ["ro", "relatime"], f"expected the mount on top (ro), found {found}"


# ---------------------------------------------------------------- the root filesystem's files


def make(root: Path, path: str, mode: int, folder: bool = False) -> None:
    target = root / path.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    if folder:
        target.mkdir(exist_ok=True)
    else:
        target.write_text("x")
    target.chmod(mode)


@pytest.fixture
def rootfs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A root filesystem as the inspector sees it under /proc/1/root."""
    root = tmp_path / "root"
    monkeypatch.setattr(inspector, "TARGET_ROOT", str(root))
    make(root, "/usr/bin/su", 0o4755)
    make(root, "/usr/local/bin/newgrp", 0o2755)
    make(root, "/usr/local/bin/python3.13", 0o755)
    make(root, "/usr/bin/tools", 0o755, folder=True)
    make(root, "/usr/bin/tools/helper", 0o755)  # below a program folder, not in one
    (root / "usr/local/bin/python3").symlink_to("python3.13")
    make(root, "/etc/motd", 0o666)
    make(root, "/var/cache/shared", 0o777, folder=True)
    make(root, "/tmp", 0o1777, folder=True)
    make(root, "/tmp/scratch", 0o666)
    make(root, "/tmp/deeper", 0o777, folder=True)
    make(root, "/tmp/deeper/file", 0o666)
    make(root, "/proc/1/environ", 0o666)  # mounted over: not the image's
    make(root, "/app", 0o755, folder=True)
    make(root, "/app/src/main.py", 0o644)
    make(root, "/app/settings.toml", 0o664)
    (root / "app/src").chmod(0o755)
    (root / "app/current").symlink_to("src")
    # A socket's mode (0777 or so) says nothing of what the image lets others change.
    make(root, "/srv", 0o755, folder=True)
    monkeypatch.chdir(root / "srv")  # a short relative path: AF_UNIX allows 108 bytes
    with socket.socket(socket.AF_UNIX) as server:
        server.bind("app.sock")
    (root / "srv/app.sock").chmod(0o777)
    return root


def paths(findings: list[dict]) -> list[str]:
    return sorted(entry["path"] for entry in findings)


def findings_as_owner(app_uid: int | None = None, app_gid: int | None = None) -> dict:
    uid = os.getuid() if app_uid is None else app_uid
    gid = os.getgid() if app_gid is None else app_gid
    return inspector.file_findings({"/proc"}, uid, gid)


def test_setuid_and_setgid_files_are_found(rootfs):
    found = findings_as_owner()["special_bits"]
    assert paths(found) == ["/usr/bin/su", "/usr/local/bin/newgrp"], (
        f"expected su (setuid) and newgrp (setgid), found {paths(found)}"
    )
    modes = sorted(entry["mode"] for entry in found)
    assert modes == ["2755", "4755"], f"expected their modes in octal, found {modes}"


def test_world_writable_files_and_folders_are_found_but_not_inside_sticky_folders(rootfs):
    found = paths(findings_as_owner()["world_writable"])
    assert found == ["/etc/motd", "/var/cache/shared"], (
        f"expected /etc/motd and /var/cache/shared (not /tmp, what is in it, the socket or "
        f"what is mounted over), found {found}"
    )


def test_app_files_of_the_app_user_that_only_it_may_write_are_not_found(rootfs):
    found = paths(findings_as_owner()["app"])
    assert found == ["/app/settings.toml"], (
        f"expected only the group-writable /app/settings.toml, found {found}"
    )


def test_app_files_of_another_user_or_group_are_found(rootfs):
    expected = ["/app", "/app/settings.toml", "/app/src", "/app/src/main.py"]
    for owner in ({"app_uid": os.getuid() + 1}, {"app_gid": os.getgid() + 1}):
        found = paths(findings_as_owner(**owner)["app"])
        assert found == expected, f"{owner}: expected every /app path but the link, found {found}"


def test_programs_are_what_lies_directly_in_a_program_folder(rootfs):
    found = paths(findings_as_owner()["programs"])
    expected = [
        "/usr/bin/su",
        "/usr/local/bin/newgrp",
        "/usr/local/bin/python3",
        "/usr/local/bin/python3.13",
    ]
    assert found == expected, f"expected {expected} (no folder, nothing below one), found {found}"


def test_what_is_mounted_over_the_image_is_not_walked(rootfs):
    everything = [entry["path"] for section in findings_as_owner().values() for entry in section]
    inside = [path for path in everything if path == "/proc" or path.startswith("/proc/")]
    assert not inside, f"expected nothing under the mount point /proc, found {inside}"


# ---------------------------------------------------------------- accounts


def test_users_maps_account_names_to_uids(tmp_path, monkeypatch):
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\n"
        "appuser:x:1000:1000::/home/appuser:/usr/sbin/nologin\n"
        "+::::::\n"  # an NIS include: no UID
        "broken\n"
    )
    monkeypatch.setattr(inspector, "TARGET_ROOT", str(tmp_path))
    found = inspector.users()
    assert found == {"root": 0, "appuser": 1000}, f"expected root and appuser, found {found}"


def test_an_image_without_a_passwd_file_has_no_users(tmp_path, monkeypatch):
    monkeypatch.setattr(inspector, "TARGET_ROOT", str(tmp_path))
    found = inspector.users()
    assert found == {}, f"expected no users without /etc/passwd, found {found}"
