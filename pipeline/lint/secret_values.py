"""Secret values by their shape in what git tracks: a Dockerfile's lines (an ENV or ARG
default ends up in the image's config or history), compose files (an environment value ends
up in `docker inspect`) and env files, each line through pipeline/secret_patterns.py."""

from __future__ import annotations

from fnmatch import fnmatch
from pathlib import Path

from pipeline.environments import ROOT
from pipeline.lint.common import Finding, git_files
from pipeline.secret_patterns import secrets_in

# The tracked files a value would be baked or handed into a container from.
SCANNED = ("*Dockerfile*", "compose/*.yml", "env/*", "bench/goss/*.yaml")


def check_secret_values(root: Path = ROOT) -> list[Finding]:
    tracked = git_files(root)
    if tracked is None:  # not a git work tree (an export, a copy): what is there
        tracked = [
            path.relative_to(root).as_posix()
            for path in root.rglob("*")
            if path.is_file() and not {".git", ".venv", ".nox"} & set(path.parts)
        ]
    findings = []
    for name in sorted(tracked):
        if not any(fnmatch(name, pattern) for pattern in SCANNED):
            continue
        path = root / name
        if not path.is_file():
            continue
        for looks in secrets_in(path.read_text(errors="replace")):
            findings.append(
                Finding(
                    name,
                    looks.line,
                    f"a value that looks like a {looks.kind}: a credential in a tracked file "
                    "reaches every clone and every image; rotate it and pass it as a build "
                    "secret or a Compose secret, or allow it in secret-allowlist.toml by its "
                    "SHA-256 with the reason",
                )
            )
    return findings
