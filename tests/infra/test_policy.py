"""The security policy (pipeline/policy/controls.toml), evaluated on every running container.

One case per control and service: it passes, fails naming the control, environment,
service, expected and found, or is skipped as not applicable, with the reason (the profile
does not apply here, the image is not ours, the policy lists nothing for that service).
The profiles each service is held to come from the environments model, never from compose.
"""

from __future__ import annotations

import pytest

from pipeline.policy import describe, evaluate

pytestmark = pytest.mark.docker


def test_policy(environment_name, policy_case, target, facts):
    control, service = policy_case
    verdict = evaluate(control, target.view(service), target.context(service))
    if verdict.outcome == "not applicable":
        pytest.skip(f"not applicable: {verdict.reason}")
    assert verdict.passed, describe(control, verdict, environment_name, service)
