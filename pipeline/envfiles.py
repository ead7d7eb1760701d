"""Env files: reading them, and the one rule for which variable holds a secret.

Compose interprets env files itself wherever the answer is Compose's (`docker compose
config`); everywhere else they are read with python-dotenv, whose parser also gives the
line each variable is on, for findings that point at it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from dotenv import dotenv_values
from dotenv.parser import parse_stream

# A variable whose name says it holds a secret: never a real value in a tracked file,
# always generated for a throwaway stack, empty in the prod template.
_SECRET_WORDS = re.compile(r"PASSWORD|SECRET|TOKEN|KEY", re.IGNORECASE)
# ...unless it only names where one is (APP_TLS_KEY_FILE, TLS_CERT_DIR).
_LOCATION_SUFFIXES = ("_FILE", "_DIR", "_PATH")


@dataclass(frozen=True)
class EnvEntry:
    """One `NAME=value` of an env file; `line` is 1-based."""

    name: str
    value: str
    line: int


def read_entries(path: Path) -> list[EnvEntry]:
    """Every variable the file sets, in file order (a name set twice appears twice)."""
    with path.open(encoding="utf-8", errors="replace") as stream:
        return [
            EnvEntry(binding.key, binding.value or "", binding.original.line)
            for binding in parse_stream(stream)
            if binding.key is not None and not binding.error
        ]


def read_values(path: Path) -> dict[str, str]:
    """Name -> value (the last one wins, as in Compose); {} when the file does not exist."""
    if not path.is_file():
        return {}
    return {name: value or "" for name, value in dotenv_values(path).items()}


def is_secret_name(name: str) -> bool:
    """PASSWORD, SECRET, TOKEN or KEY in the name, but not a path to one (APP_TLS_KEY_FILE)."""
    return bool(_SECRET_WORDS.search(name)) and not name.endswith(_LOCATION_SUFFIXES)
