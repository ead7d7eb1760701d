"""The pipeline's registry is ours alone: credentials made once per machine and user, kept in
the user's config folder, given to the registry as an htpasswd file and to Docker by login.

Without them anyone on the machine — any local user, any container on the host network —
could push a poisoned layer cache that the next cold build imports. The password file is
0600 in a 0700 folder; the htpasswd file holds only a bcrypt hash, and is 0644 so the
registry's own user can read it through its bind mount (the folder keeps others out).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import PipelineError

USERNAME = "dashtam"
FOLDER_MODE = 0o700
PASSWORD_FILE_MODE = 0o600
HTPASSWD_FILE_MODE = 0o644
# bcrypt's cost: the registry checks it on every request (a push makes dozens), and the
# password is 32 random bytes that no guessing reaches at any cost: the lowest bcrypt allows.
BCRYPT_ROUNDS = 4


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str

    @property
    def authorization(self) -> str:
        """The HTTP Basic header value the registry's API expects."""
        token = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        return f"Basic {token}"


def folder() -> Path:
    """$XDG_CONFIG_HOME/dashtam (~/.config/dashtam when it is unset)."""
    config = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(config) / "dashtam"


def credentials_file() -> Path:
    return folder() / "registry-credentials.json"


def htpasswd_file() -> Path:
    return folder() / "registry.htpasswd"


def credentials() -> Credentials:
    """This machine's registry credentials, made on first use (and the htpasswd beside them)."""
    path = credentials_file()
    made = not path.exists()
    if made:
        _write(path, json.dumps({"username": USERNAME, "password": secrets.token_urlsafe(32)}))
    try:
        stored = json.loads(path.read_text())
        found = Credentials(str(stored["username"]), str(stored["password"]))
    except (OSError, ValueError, KeyError, TypeError):
        raise PipelineError(
            f"{path} cannot be read as the registry's credentials; move it aside and run again "
            "(new ones are made, and the registry restarted with them)."
        ) from None
    if made or not htpasswd_file().exists():
        # New credentials replace an htpasswd left from old ones (the registry, started with
        # the old file's digest in a label, is then replaced: pipeline.registry).
        htpasswd_file().unlink(missing_ok=True)
        _write(htpasswd_file(), htpasswd_line(found), HTPASSWD_FILE_MODE)
    return found


def htpasswd_digest() -> str:
    """A digest of the htpasswd file the registry is started with (made if missing)."""
    credentials()
    return hashlib.sha256(htpasswd_file().read_bytes()).hexdigest()[:16]


def htpasswd_line(found: Credentials) -> str:
    import bcrypt  # the pipeline's group; only a registry start needs it

    digest = bcrypt.hashpw(found.password.encode(), bcrypt.gensalt(rounds=BCRYPT_ROUNDS))
    return f"{found.username}:{digest.decode()}\n"


def _write(path: Path, content: str, mode: int = PASSWORD_FILE_MODE) -> None:
    """A new file, created with its mode, never through a symlink or over another file."""
    path.parent.mkdir(mode=FOLDER_MODE, parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    with os.fdopen(descriptor, "w") as handle:
        os.fchmod(handle.fileno(), mode)
        handle.write(content)
