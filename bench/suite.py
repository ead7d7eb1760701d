"""tests/infra timed as `nox -s verify` runs it, in a process of its own for each run.

A verify session runs the suite in its own process (pipeline.verification.run_suite_here),
after its stack's inspector helpers started while the stack became healthy. This module
does the same for one booted stack, named by the suite's variables in its environment
(pipeline.verification.suite_variables): it starts the helpers and waits until each answers,
timed on their own (`helpers_seconds`), then times the suite alone (`seconds`) — pytest's
import, collection, the checks, as in verify. A fresh process each time, so nothing the
suite imports is warm from an earlier run.

    python -m bench.suite JUNIT [PYTEST ARGUMENTS…]

Prints one JSON line last: {"seconds", "helpers_seconds", "exit_code"}.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from pipeline import inspector_host
from pipeline.verification import CONTAINERS_VARIABLE, run_suite_here


def main(arguments: list[str]) -> int:
    junit, *pytest_arguments = arguments
    containers = list(json.loads(os.environ[CONTAINERS_VARIABLE]).values())
    started = time.monotonic()
    inspector_host.start_helpers(containers)
    for container in containers:
        inspector_host.helper_for(container).run("true")
    helpers_seconds = time.monotonic() - started
    started = time.monotonic()
    exit_code = run_suite_here({}, Path(junit), pytest_arguments)
    seconds = time.monotonic() - started
    inspector_host.close_helpers()
    print(
        json.dumps({"seconds": seconds, "helpers_seconds": helpers_seconds, "exit_code": exit_code})
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
