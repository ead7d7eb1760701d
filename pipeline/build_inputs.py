"""What a stage's image is built from, as one digest: a build whose inputs are exactly those
the image its tag names was built from has nothing to do.

BuildKit knows that as well — a bake with nothing to do solves every step from its cache —
but asking it costs about 1.5 CPU-seconds of the engine's each time, and `make verify` asked
five times (build-all, then each verify session for its own images): about a sixth of the
run's CPU on two cores. The digest covers everything a bake reads, so that equal digests mean
the same build:
- the Dockerfile and the .dockerignore that applies to it (BuildKit's rule: the Dockerfile's
  own `<Dockerfile>.dockerignore`, else the context's);
- every file and folder that .dockerignore lets into the context: path, mode, content (not
  the modification time, which BuildKit's cache keys leave out too);
- the stage's bake target: target stage, build arguments, labels (the revision, `-dirty`
  included), output — not its tags, which are applied either way, nor its secrets and cache
  sources, which BuildKit leaves out of its cache keys as well;
- the image ID each base image the Dockerfile builds from names in the engine, and the
  engine's version.
Whatever it cannot read for sure gives no digest, and the bake runs: a .dockerignore that is
not an allow-list (`*`, then `!path` lines, then exclusions of the form `**/name`), a base
image the engine does not have, a reference built from an argument it cannot resolve.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import re
from pathlib import Path

# The digest rides on the image it built, as base_images' stand-ins carry theirs: whether
# there is anything to build is one `docker image inspect` of the stage's tag.
INPUTS_LABEL = "dev.dashtam.build.inputs"
# What a bake target holds that does not change what it builds.
NOT_INPUTS = ("tags", "secret", "cache-from", "cache-to")

# A stage's parent: `FROM <parent> [AS <name>]`, and `COPY --from=` / `RUN --mount=...,from=`.
FROM_LINE = re.compile(r"^FROM\s+(?:--\S+\s+)*(?P<parent>\S+)(?:\s+AS\s+(?P<name>\S+))?", re.I)
FROM_OPTION = re.compile(r"(?:--|,)from=(?P<parent>[^\s,]+)")
_GLOBAL_ARG = re.compile(r"^ARG\s+(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:=(?P<default>\S*))?", re.I)
_VARIABLE = re.compile(r"\$\{?(?P<name>[A-Za-z_][A-Za-z0-9_]*)\}?")


def dockerignore_for(context: Path, dockerfile: Path) -> Path | None:
    """The .dockerignore BuildKit applies to this Dockerfile's context, if any."""
    for candidate in (
        dockerfile.with_name(f"{dockerfile.name}.dockerignore"),
        context / ".dockerignore",
    ):
        if candidate.is_file():
            return candidate
    return None


def context_entries(context: Path, dockerignore: Path | None) -> list[Path] | None:
    """Every file and folder an allow-list .dockerignore lets into the context, sorted; None
    when there is no .dockerignore, or one of another shape (then the context is not read)."""
    if dockerignore is None:
        return None
    allowed, excluded, started = [], [], False
    for raw in dockerignore.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if not started:
            if line != "*":
                return None
            started = True
        elif line.startswith("!") and not excluded and not set("*?[\\") & set(line[1:]):
            allowed.append(line[1:].strip("/"))
        elif line.startswith("**/") and "/" not in line[3:] and not line[3:].startswith("!"):
            excluded.append(line[3:])
        else:
            return None
    entries: list[Path] = []
    for name in allowed:
        top = context / name
        if not top.exists():
            continue
        for path in [top, *sorted(top.rglob("*"))] if top.is_dir() else [top]:
            parts = path.relative_to(context).parts
            if not any(
                fnmatch.fnmatchcase(part, pattern) for part in parts for pattern in excluded
            ):
                entries.append(path)
    return sorted(set(entries))


def base_references(dockerfile_text: str, arguments: dict[str, str]) -> list[str] | None:
    """The images outside the Dockerfile that its stages build from (FROM, --from=), with
    build arguments and global ARG defaults filled in; None when one cannot be resolved."""
    defaults: dict[str, str] = {}
    stages: set[str] = {"scratch"}
    parents: list[str] = []
    for raw in dockerfile_text.splitlines():
        line = raw.strip()
        match = FROM_LINE.match(line)
        if match:
            parents.append(match["parent"])
            if match["name"]:
                stages.add(match["name"].lower())
            continue
        argument = _GLOBAL_ARG.match(line)
        if argument and not stages - {"scratch"} and argument["default"] is not None:
            defaults[argument["name"]] = argument["default"].strip("\"'")
        parents += FROM_OPTION.findall(line)
    values = {**defaults, **arguments}
    references: set[str] = set()
    for parent in parents:
        resolved = _VARIABLE.sub(lambda found: values.get(found["name"], "$"), parent)
        if "$" in resolved:
            return None
        if resolved.lower() not in stages:
            references.add(resolved)
    return sorted(references)


def stage_digests(
    definition: dict, *, context: Path, dockerfile: Path, base_ids: dict[str, str], engine: str
) -> dict[str, str] | None:
    """Stage -> the digest of what its bake target builds it from (the digest's own label
    aside); None when the inputs cannot be read for sure. `base_ids`: base reference -> the
    image ID the engine has."""
    dockerignore = dockerignore_for(context, dockerfile)
    entries = context_entries(context, dockerignore)
    if entries is None:
        return None
    shared = hashlib.sha256()
    shared.update(f"engine {engine}\0".encode())
    for path in (dockerfile, dockerignore):
        shared.update(f"{path.name}\0".encode() + path.read_bytes() + b"\0")
    for reference, image_id in sorted(base_ids.items()):
        shared.update(f"base {reference} {image_id}\0".encode())
    for path in entries:
        shared.update(entry_bytes(context, path))
    digests = {}
    for stage, target in definition["target"].items():
        inputs = {key: value for key, value in target.items() if key not in NOT_INPUTS}
        inputs["labels"] = {
            name: value for name, value in target.get("labels", {}).items() if name != INPUTS_LABEL
        }
        digest = shared.copy()
        digest.update(json.dumps(inputs, sort_keys=True).encode())
        digests[stage] = f"sha256:{digest.hexdigest()}"
    return digests


def entry_bytes(context: Path, path: Path) -> bytes:
    """A context entry as the digest reads it: its path, its mode, and its content (a file),
    its target (a symbolic link) or nothing more (a folder)."""
    status = path.lstat()
    head = f"{path.relative_to(context).as_posix()}\0{status.st_mode:o}\0".encode()
    if path.is_symlink():
        return head + os.readlink(path).encode() + b"\0"
    if path.is_file():
        return head + path.read_bytes() + b"\0"
    return head
