"""Tracked secrets: what git tracks. No env file but the templates and the committed CI
one, nothing under certs/ or secrets/, no *.key or *.pem file anywhere."""

from __future__ import annotations

from pathlib import Path

from pipeline.environments import ROOT
from pipeline.lint.common import Finding, git_files, tracked_env_files


def check_tracked_secrets(root: Path = ROOT) -> list[Finding]:
    """git tracks no env file but the templates and env/.env.ci, nothing under certs/ or
    secrets/, and no *.key or *.pem file."""
    tracked = git_files(root)
    if tracked is None:
        return [
            Finding(
                ".gitignore",
                1,
                f"{root} is not a git work tree; skipped the tracked-secrets check",
                "warning",
            )
        ]
    allowed = tracked_env_files()
    findings = []
    for name in tracked:
        if name.startswith("env/") and name not in allowed:
            findings.append(
                Finding(
                    name,
                    1,
                    f"tracked by git, but only {', '.join(allowed)} may be under env/; "
                    f"run `git rm --cached {name}`",
                )
            )
        elif name.startswith("secrets/"):
            findings.append(
                Finding(
                    name,
                    1,
                    "a secret file tracked by git (secrets/ is made by `nox -s prod-secrets` "
                    f"on each machine): rotate it and run `git rm --cached {name}`",
                )
            )
        elif name.startswith("certs/") or name.endswith((".key", ".pem")):
            findings.append(
                Finding(
                    name,
                    1,
                    "key or certificate material tracked by git (certs/ is made by "
                    f"`nox -s certs` on each machine); run `git rm --cached {name}`",
                )
            )
    return findings
