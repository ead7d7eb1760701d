"""python-on-whales' errors become one line that says what was done, why it failed, the fix."""

from __future__ import annotations

import pytest
from python_on_whales.exceptions import DockerException, NoSuchImage

from pipeline.docker_client import best_effort, reason, translated
from pipeline.errors import PipelineError

REFUSED_RUN = (
    b"docker: Error response from daemon: No such image: nope:1\n\n"
    b"Run 'docker run --help' for more information\n"
)


def failure(stderr: bytes | None, stdout: bytes | None = b"") -> DockerException:
    return DockerException(["docker", "run", "nope:1"], 125, stdout, stderr)


def test_the_reason_is_what_docker_said_last_without_its_usage_hint():
    assert reason(failure(REFUSED_RUN)) == "Error response from daemon: No such image: nope:1"


def test_output_that_went_to_the_terminal_is_pointed_to():
    assert reason(failure(None, None)) == "see its output above"


def test_a_failure_that_said_nothing_is_named_by_its_exit_code():
    assert reason(failure(b"\n")) == "exit code 125"


def test_a_failure_becomes_one_line_with_the_action_and_the_fix():
    with (
        pytest.raises(PipelineError) as raised,
        translated("pulling nope:1", "set DASHTAM_IMAGE_SOURCE=airgap."),
    ):
        raise failure(REFUSED_RUN)
    assert str(raised.value) == (
        "pulling nope:1 failed (Error response from daemon: No such image: nope:1); "
        "set DASHTAM_IMAGE_SOURCE=airgap."
    )


def test_a_best_effort_call_lets_a_docker_failure_go_and_nothing_else():
    with best_effort():
        raise NoSuchImage(["docker", "image", "rm", "nope:1"], 1, b"", b"No such image")
    with pytest.raises(ValueError), best_effort():
        raise ValueError("a bug")
