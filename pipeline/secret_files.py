"""prod's secrets as files: the set Compose mounts under /run/secrets, and how to make one.

No secret of prod is an environment variable or a command-line argument, where `docker
inspect` and `ps` would show it: PostgreSQL reads its password through POSTGRES_PASSWORD_FILE,
Redis its users (one per service, pipeline/redis_users.py) from an ACL file that holds only
each password's SHA-256, and our services read theirs through *_FILE settings. The folder is
named by DASHTAM_SECRETS_DIR.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from pipeline import redis_users
from pipeline.errors import PipelineError

# The env file variable naming the folder that holds the files below.
SECRETS_DIR_VARIABLE = "DASHTAM_SECRETS_DIR"
# File names, not secrets.
POSTGRES_PASSWORD = "postgres_password"  # noqa: S105
REDIS_PASSWORDS = redis_users.PASSWORD_FILES
REDIS_USERS = "redis_users.acl"
SECRET_FILES = (POSTGRES_PASSWORD, *REDIS_PASSWORDS.values(), REDIS_USERS)

# The folder holds the only copy on the host; each file is readable inside the containers
# that mount it (PostgreSQL and Redis run as 999, our services as 1000).
DIRECTORY_MODE = 0o700
FILE_MODE = 0o444


def write_secret_files(directory: Path) -> list[Path]:
    """A fresh set of secret files in `directory`; refuses to overwrite any file already there."""
    existing = [directory / name for name in SECRET_FILES if (directory / name).exists()]
    if existing:
        raise PipelineError(
            f"{existing[0]} already exists; the secrets there are kept. Choose an empty "
            "folder, or move the old files aside first."
        )
    if not directory.exists():
        directory.mkdir(mode=DIRECTORY_MODE, parents=True)
        # mkdir's mode passes through the umask; this folder is ours to set. A folder that
        # was already there keeps its own mode (`-- /tmp` must not change /tmp).
        directory.chmod(DIRECTORY_MODE)
    passwords = {user: secrets.token_urlsafe(24) for user in REDIS_PASSWORDS}
    contents = {
        POSTGRES_PASSWORD: secrets.token_urlsafe(24) + "\n",
        **{REDIS_PASSWORDS[user]: password + "\n" for user, password in passwords.items()},
        REDIS_USERS: redis_users.acl_file(passwords),
    }
    written: list[Path] = []
    try:
        for name, content in contents.items():
            written.append(_create(directory / name, content))
    except PipelineError:
        for path in written:  # half a set is no set: only what this call made goes
            path.unlink()
        raise
    return written


def _create(path: Path, content: str) -> Path:
    """A new file with its final mode from the start: never one that is already there, and
    never through a symlink someone left at its name."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
    try:
        descriptor = os.open(path, flags, FILE_MODE)
    except FileExistsError:
        raise PipelineError(
            f"{path} appeared while the secrets were written; the file there is kept. Choose "
            "an empty folder, or move it aside first."
        ) from None
    with os.fdopen(descriptor, "w") as handle:
        os.fchmod(handle.fileno(), FILE_MODE)  # the umask may have taken bits the containers need
        handle.write(content)
    return path


def secret_values(directory: Path) -> list[str]:
    """The secret values a set of files holds (the passwords), to look for where they must
    never be: container configuration, command lines, image layers."""
    return [
        (directory / name).read_text().strip()
        for name in (POSTGRES_PASSWORD, *REDIS_PASSWORDS.values())
        if (directory / name).is_file()
    ]
