"""Small helpers shared by the verification checks."""

from __future__ import annotations


def mismatch(env: str, service: str, prop: str, expected: object, found: object) -> str:
    """Every failure message says environment, service, property, expected and found."""
    return f"[{env}] {service}: {prop}: expected {expected!r}, found {found!r}"
