"""One reader of a running project: `nox -s policy -- --project NAME` and `verify` read the same
kept stack through the same hosts, and reach the same verdict for every control and service."""

from __future__ import annotations

import pytest

from pipeline import reports
from pipeline.environments import REPORTS
from pipeline.policy import load_policy
from tests.pipeline.conftest import Run, remove_project, run_nox

# The policy command's matrix cells, and the suite's outcomes, in one vocabulary.
CELL = {"pass": "pass", "FAIL": "fail", "n/a": "not applicable"}
OUTCOME = {"passed": "pass", "failed": "fail", "skipped": "not applicable"}


@pytest.fixture(scope="module")
def kept_ci(docker_engine) -> Run:
    finished = run_nox("-s", "verify(ci)", "--", "--keep")
    yield finished
    if "dashtam: booting" in finished.output:
        remove_project(finished.project)


def policy_matrix(output: str, services: list[str]) -> dict[tuple[str, str], str]:
    """(control, service) -> verdict, from the matrix `policy --project` prints."""
    controls = {control.id for control in load_policy().controls}
    found = {}
    for line in output.splitlines():
        words = line.split()
        if words and words[0] in controls and len(words) == len(services) + 1:
            found |= {
                (words[0], s): CELL[cell] for s, cell in zip(services, words[1:], strict=True)
            }
    return found


def test_policy_on_the_project_agrees_with_verify_on_every_control_and_service(kept_ci: Run):
    assert kept_ci.returncode == 0, f"verify(ci) -- --keep failed:\n{kept_ci.tail()}"
    checked = run_nox("-s", "policy", "--", "--project", kept_ci.project, "--environment", "ci")
    assert checked.returncode == 0, f"policy --project failed:\n{checked.tail()}"
    services = sorted(["app", "callback", "postgres", "redis"])
    from_policy = policy_matrix(checked.output, services)
    from_verify = {}
    for check in reports.read_junit(REPORTS / "verify-ci.xml"):
        if check.name.startswith("test_policy[ci-"):
            case = check.name.removeprefix("test_policy[ci-").removesuffix("]")
            service, control = case.split("-", 1)
            from_verify[(control, service)] = OUTCOME[check.outcome]
    expected_cases = {(c.id, s) for c in load_policy().controls for s in services}
    assert set(from_verify) == expected_cases, (
        f"verify: expected every control and service, missing "
        f"{sorted(expected_cases - set(from_verify))[:5]}"
    )
    differ = {
        case: (from_verify[case], from_policy.get(case))
        for case in expected_cases
        if from_verify[case] != from_policy.get(case)
    }
    assert not differ, f"(verify, policy --project) differ on {differ}"
