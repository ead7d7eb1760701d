"""A whole lint run that found no error is kept with the digest of everything it read: on the
same inputs, `python -m pipeline.lint` prints that run's findings again instead of running
the checks again (about 5 CPU-seconds, a sixth of `make verify` on two cores). `--again`
runs them whatever the record says; `--check` runs (the pre-commit hooks) are never kept.

The inputs are taken wide, so that a missed one can only cost a run, never reuse a verdict
on other inputs:
- every file of the checkout (path, mode, content), tracked, new or git-ignored alike (the
  developer's own env files and certificates count), except what the pipeline and its tools
  write (OUTPUTS: the venvs, caches, reports, the pipeline's state);
- which files git tracks (the tracked-secrets check reads exactly that);
- this process's environment (Compose reads its own variables there), its interpreter, and
  the Compose plugin's version. The linters' versions are uv.lock's, a file of the checkout:
  the session syncs its venv to the lock before it runs lint.
A run during which a file changed is not kept.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from pipeline.build_inputs import entry_bytes
from pipeline.environments import REPORTS
from pipeline.lint.common import TOOL_TIMEOUT_SECONDS, git_files
from pipeline.lint.compose_config import compose_command
from pipeline.process import run

# Folders at the top of the checkout that only the pipeline and its tools write.
OUTPUTS = (".git", ".venv", ".nox", ".dashtam", "reports", "images")
# Folders and files that tools write anywhere in the tree.
CACHES = ("__pycache__", ".pytest_cache", ".ruff_cache", ".mypy_cache", ".hypothesis")
CACHE_SUFFIXES = (".pyc",)
# Variables a shell changes on its own between two runs of the same command.
VOLATILE_VARIABLES = ("_", "OLDPWD")


def record_path() -> Path:
    """Where the last passing run is kept (REPORTS read at the call, as the reports do)."""
    return REPORTS / "lint.json"


def inputs_digest(root: Path) -> str | None:
    """The digest of everything a whole lint run of `root` can read (the module docstring);
    None when a file cannot be read (then lint runs, and nothing is kept)."""
    digest = hashlib.sha256()
    try:
        for path in checkout_entries(root):
            digest.update(entry_bytes(root, path))
    except OSError:
        return None
    tracked = git_files(root)
    digest.update(b"tracked\0" + ("\0".join(tracked).encode() if tracked is not None else b"-"))
    environment = {
        name: value for name, value in os.environ.items() if name not in VOLATILE_VARIABLES
    }
    digest.update(json.dumps(environment, sort_keys=True).encode())
    digest.update(f"\0{sys.executable}\0{sys.version}\0{compose_version(root)}".encode())
    return f"sha256:{digest.hexdigest()}"


def checkout_entries(root: Path) -> list[Path]:
    """Every file, folder and link under root but the pipeline's and the tools' own output."""
    entries: list[Path] = []
    for folder, folders, files in os.walk(root):
        top = Path(folder) == root
        # A link to a folder stays an entry of its own (its target): os.walk does not follow it.
        folders[:] = sorted(
            name for name in folders if name not in CACHES and not (top and name in OUTPUTS)
        )
        entries += [Path(folder, name) for name in folders]
        entries += [
            Path(folder, name) for name in sorted(files) if not name.endswith(CACHE_SUFFIXES)
        ]
    return entries


@functools.cache  # asked before and after the checks of one run: the plugin does not change
def compose_version(root: Path) -> str:
    """`docker compose version`'s answer, or why there is none (then the check warns)."""
    command = compose_command()
    if command is None:
        return "no docker"
    try:
        answer = run([*command, "version"], cwd=root, timeout=TOOL_TIMEOUT_SECONDS)
    except OSError as error:
        return str(error)
    return f"{answer.returncode} {answer.stdout} {answer.stderr}"


def kept_output(inputs: str, record: Path | None = None) -> tuple[list[str], str] | None:
    """The lines a passing run on exactly these inputs printed, and when it finished; None
    when no such run is on record (or the record cannot be read: then lint runs)."""
    try:
        kept = json.loads((record or record_path()).read_text(encoding="utf-8"))
        if kept["inputs"] == inputs:
            return [str(line) for line in kept["output"]], str(kept["finished"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return None


def keep(inputs: str, output: Sequence[str], record: Path | None = None) -> None:
    """Record a passing run's printed lines under its inputs' digest (a complete file, renamed
    into place)."""
    record = record or record_path()
    record.parent.mkdir(parents=True, exist_ok=True)
    finished = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    temporary = record.with_name(f".{record.name}.{os.getpid()}")
    temporary.write_text(
        json.dumps({"inputs": inputs, "finished": finished, "output": list(output)}, indent=2)
        + "\n",
        encoding="utf-8",
    )
    os.replace(temporary, record)
