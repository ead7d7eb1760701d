"""The GitHub Actions matrices, derived from nox's own session list.

The `sessions` job of .github/workflows/pipeline.yml (and weekly.yml) runs

    nox --list --json --sessions build verify \
        | python -m pipeline.workflow_matrix >> "$GITHUB_OUTPUT"

so the build and verify jobs fan out over exactly the sessions noxfile.py defines: adding a
stage or an environment to the noxfile adds a CI job, and no session name is typed twice.
Standard library only: the job runs it before any dependency is installed.
"""

from __future__ import annotations

import json
import sys

from pipeline.errors import PipelineError

# The parametrized nox sessions that become one CI job per parameter.
MATRIX_SESSIONS = ("build", "verify")


def matrix_from_nox_sessions(sessions_json: str) -> dict[str, list[str]]:
    """Group `nox --list --json` output by session name: {"build": [...], "verify": [...]}.

    Each list holds full session names such as `build(base)` or `verify(ci)`, in noxfile
    order, ready for `nox --sessions "$SESSION"`.
    """
    try:
        sessions = json.loads(sessions_json)
    except json.JSONDecodeError as error:
        raise PipelineError(
            f"nox --list --json printed no JSON ({error.msg}); "
            "run it locally to see why noxfile.py did not load."
        ) from None
    if not isinstance(sessions, list):
        raise PipelineError("nox --list --json printed JSON that is not a list of sessions.")

    matrix: dict[str, list[str]] = {name: [] for name in MATRIX_SESSIONS}
    for session in sessions:
        if session.get("name") in matrix:
            matrix[session["name"]].append(session["session"])

    for name, session_names in matrix.items():
        if not session_names:
            raise PipelineError(
                f"noxfile.py lists no `{name}` sessions, so the CI `{name}` matrix would be "
                f"empty; list them with `nox --list --sessions {name}`."
            )
    return matrix


def github_output_lines(matrix: dict[str, list[str]]) -> list[str]:
    """`key=value` lines for $GITHUB_OUTPUT; each value is compact JSON for `fromJSON`."""
    return [
        f"{name}={json.dumps(session_names, separators=(',', ':'))}"
        for name, session_names in matrix.items()
    ]


def main() -> int:
    """Read `nox --list --json` on stdin and print the matrices as GitHub step outputs."""
    try:
        matrix = matrix_from_nox_sessions(sys.stdin.read())
    except PipelineError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print("\n".join(github_output_lines(matrix)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
