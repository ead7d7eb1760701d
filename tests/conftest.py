"""What every test session does with skips: in CI, a skip fails the run unless its reason is
on the reviewed allow-list below.

A test that cannot run says why (pytest's `-ra` summary lists it); outside CI that is enough.
In CI (the CI variable is set) a skip would leave a check unproven behind a green run, so the
session fails, naming each skip and its reason. To allow one, add a pattern of its reason
here, with why CI may skip it, in a reviewed change.
"""

from __future__ import annotations

import os
import re

import pytest

# (pattern of the skip reason, why CI may skip it). "No Docker engine answers" is never here.
ALLOWED_IN_CI: tuple[tuple[str, str], ...] = (
    (
        r"^not applicable: ",
        "tests/infra lists every check for every service; one that does not apply there (a "
        "profile the environments model does not give it, an image we do not build) is "
        "reported with its reason, which the model and pipeline/policy/controls.toml decide",
    ),
)

_skipped: list[tuple[str, str]] = []


def skip_is_allowed_in_ci(reason: str) -> bool:
    return any(re.search(pattern, reason) for pattern, _why in ALLOWED_IN_CI)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped and not hasattr(report, "wasxfail"):
        # A skip's longrepr is (file, line, "Skipped: <reason>").
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        _skipped.append((report.nodeid, reason.removeprefix("Skipped: ")))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if not os.environ.get("CI"):
        return
    refused = [(test, reason) for test, reason in _skipped if not skip_is_allowed_in_ci(reason)]
    if not refused:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    write = reporter.write_line if reporter else print
    for test, reason in refused:
        write(f"CI: skipped and not allowed: {test}: {reason} (allow-list: tests/conftest.py)")
    session.exitstatus = pytest.ExitCode.TESTS_FAILED
