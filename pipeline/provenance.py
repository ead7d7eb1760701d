"""What a verify record is bound to: the commit, whether the tree was clean, and digests of
the policy, the suite and the environment's inputs.

A record names these so that `publish` can refuse one reached on other code: a verify at
commit A does not let commit B's tag onto A's images, and a policy or suite changed since
does not inherit the old verdict.
"""

from __future__ import annotations

import hashlib
import os
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from pipeline.environments import ROOT, Environment
from pipeline.process import run

# The policy: its controls and the rules that judge them.
POLICY_FILES = (
    ROOT / "pipeline" / "policy" / "controls.toml",
    ROOT / "pipeline" / "policy" / "rules.py",
)
# The suite: every file of tests/infra, and what it reads through (its host and readings).
SUITE_FOLDER = ROOT / "tests" / "infra"
SUITE_READERS = (
    ROOT / "pipeline" / "readings.py",
    ROOT / "pipeline" / "inspector.py",
    ROOT / "pipeline" / "inspector_host.py",
    ROOT / "pipeline" / "secret_patterns.py",
    ROOT / "secret-allowlist.toml",
)


@dataclass(frozen=True)
class CommitState:
    sha: str | None  # the full SHA of HEAD; None outside a git checkout
    clean: bool  # the work tree is exactly that commit (nothing changed, nothing untracked)


def commit_state() -> CommitState:
    """HEAD's full SHA, and whether the work tree is exactly that commit."""
    try:
        head = run(["git", "rev-parse", "HEAD"], cwd=ROOT)
        changes = run(["git", "status", "--porcelain"], cwd=ROOT)
    except FileNotFoundError:
        return CommitState(None, False)
    if head.returncode != 0 or changes.returncode != 0:
        return CommitState(None, False)
    return CommitState(head.stdout.strip() or None, not changes.stdout.strip())


def files_digest(paths: list[Path], names: list[str] | None = None) -> str:
    """sha256 over the files' names and contents, in order: each named by its path in the
    repository, or by the role given in `names` (an env file is the same input whether the
    operator's copy or the template it was made from)."""
    digest = hashlib.sha256()
    for index, path in enumerate(paths):
        if names:
            name = names[index]
        else:
            name = str(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)
        digest.update(f"{name}\0".encode())
        digest.update(path.read_bytes() if path.is_file() else b"(missing)")
        digest.update(b"\0")
    return f"sha256:{digest.hexdigest()}"


def suite_files() -> list[Path]:
    return [*sorted(SUITE_FOLDER.rglob("*.py")), *SUITE_READERS]


# The roles of the files Compose reads for a stack: its compose file, the blocks it
# extends (dev, test and ci take Redis' users from redis-users.yml), its env file.
SHARED_COMPOSE_FILES = ("common.yml", "redis-users.yml")
INPUT_ROLES = ["compose file", *SHARED_COMPOSE_FILES, "env file"]


def environment_inputs(environment: Environment, env_file: Path, compose_file: Path) -> list[Path]:
    """The files Compose reads for a stack of the environment, in INPUT_ROLES' order."""
    shared = [compose_file.parent / name for name in SHARED_COMPOSE_FILES]
    return [compose_file, *shared, env_file]


def binding(environment: Environment, env_file: Path, compose_file: Path) -> dict:
    """What a record of a verify run of `environment` is bound to, now."""
    state = commit_state()
    return {
        "commit": state.sha,
        "clean": state.clean,
        "policy_sha256": files_digest(list(POLICY_FILES)),
        "suite_sha256": files_digest(suite_files()),
        "inputs_sha256": files_digest(
            environment_inputs(environment, env_file, compose_file), INPUT_ROLES
        ),
    }


def verified_env_file(environment: Environment) -> Path:
    """The env file a verify run of the environment reads: the template for an operator's
    environment (verify never reads the operator's own); the environment's own file, or the
    template it is made from on first use when there is none yet (a fresh checkout, like the
    workflow's publish job)."""
    template = environment.template_file
    if environment.env_file_origin == "operator" and template is not None:
        return template
    if (
        environment.env_file_origin == "template"
        and template
        and not environment.env_file.is_file()
    ):
        return template
    return environment.env_file


def binding_of(environment: Environment) -> dict:
    """What a verify run of `environment` at this moment would be bound to."""
    return binding(environment, verified_env_file(environment), environment.compose_file)


# What each field of a binding is, for a refusal that says what changed.
BOUND_FIELDS = {
    "commit": "the commit",
    "clean": "whether the tree had uncommitted changes",
    "policy_sha256": "the policy (controls.toml, rules.py)",
    "suite_sha256": "the checks (tests/infra and what they read through)",
    "inputs_sha256": "the environment's compose and env files",
}


def differences(recorded: dict, now: dict) -> list[str]:
    """What differs between a record's binding and now, in words; [] when nothing does."""
    return [words for field, words in BOUND_FIELDS.items() if recorded.get(field) != now.get(field)]


def image_labels() -> dict[str, str]:
    """The OCI labels that name what an image is built from: the revision (the full SHA,
    `-dirty` when the tree has changes), the source repository when there is one to name,
    and the commit's time as `created` — never the build's, nor the checkout's path: one
    commit builds one image, whenever and wherever it is built."""
    state = commit_state()
    committed = run(["git", "show", "-s", "--format=%cI", "HEAD"], cwd=ROOT)
    labels = {
        "org.opencontainers.image.revision": (state.sha or "unknown")
        + ("" if state.clean else "-dirty"),
        "org.opencontainers.image.created": committed.stdout.strip()
        if committed.returncode == 0
        else "1970-01-01T00:00:00Z",
    }
    source = source_repository()
    if source:
        labels["org.opencontainers.image.source"] = source
    return labels


def source_repository() -> str | None:
    """The GitHub repository in a workflow, else the checkout's `origin` (credentials left
    out), else None."""
    server, repository = os.environ.get("GITHUB_SERVER_URL"), os.environ.get("GITHUB_REPOSITORY")
    if server and repository:
        return f"{server}/{repository}"
    origin = run(["git", "remote", "get-url", "origin"], cwd=ROOT)
    url = origin.stdout.strip() if origin.returncode == 0 else ""
    if not url or url.startswith(("/", "file:")):
        return None  # a local path names a folder on one machine, not a source
    parts = urllib.parse.urlsplit(url)
    if parts.scheme and "@" in parts.netloc:
        return parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]).geturl()
    return url
