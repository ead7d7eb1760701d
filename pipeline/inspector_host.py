"""A testinfra backend whose host is a running container, read from outside by the inspector.

testinfra's own docker backend runs `docker exec <container> /bin/sh -c …`: it needs a shell
and the tools in the image, which our production and callback images do not have, and it
would trust what the image's own `ps` or `stat` says. This backend sends the same commands to
a helper container beside the target (pipeline.inspection.Helper), which runs them inside the
target's root with tools of its own; testinfra's modules (`host.user`, `host.file`,
`host.socket`, `host.process`, `host.addr`, `host.run`) work unchanged on top of it.

Registered under testinfra's backends as `inspector`, the way testinfra names its own:

    host = testinfra.get_host("inspector://<env>-<service>@<container>")

`<env>-<service>` is the pytest id (`test_listening_ports[prod-app]`); the container is an ID
or name. One helper serves every Host object of one container.
"""

from __future__ import annotations

import atexit
import threading
from collections.abc import Iterable
from typing import Any

import testinfra.backend
from testinfra.backend import base

from pipeline import inspection

NAME = "inspector"

_helpers: dict[str, inspection.Helper] = {}
_helpers_lock = threading.Lock()


def helper_for(container: str) -> inspection.Helper:
    """The one helper beside `container`, started on first use (or again, when the one
    before ended with an incarnation of the container that restarted), ended when Python
    ends."""
    with _helpers_lock:
        helper = _helpers.get(container)
        if helper is None or not helper.alive:
            helper = _helpers[container] = inspection.Helper(
                container, inspection.ensure_inspector_image()
            )
        return helper


def start_helpers(containers: Iterable[str]) -> None:
    """Start the helpers of `containers` now, without waiting for them: a verify run starts
    them while its stack is still becoming healthy, so its checks find them ready."""
    for container in containers:
        helper_for(container)


@atexit.register
def close_helpers() -> None:
    """End every helper (each removes its container), all at once."""
    with _helpers_lock:
        helpers = list(_helpers.values())
        _helpers.clear()
    for helper in helpers:
        helper.close()
    for helper in helpers:
        helper.wait_closed()


class InspectorBackend(base.BaseBackend):
    """Run testinfra's commands inside a container's root, from the inspector beside it."""

    NAME = NAME

    def __init__(self, name: str, *args: Any, **kwargs: Any) -> None:
        container, self.label = self.parse_containerspec(name)
        self.container = container
        super().__init__(container, *args, **kwargs)

    def get_pytest_id(self) -> str:
        return self.label or self.container[:12]

    def run(self, command: str, *args: str, **kwargs: Any) -> base.CommandResult:
        cmd = self.get_command(command, *args)
        answer = helper_for(self.container).run(cmd)
        return self.result(answer.rc, self.encode(cmd), answer.stdout, answer.stderr)


def host_spec(container: str, label: str) -> str:
    """The testinfra host spec of a container, named `label` in test ids."""
    return f"{NAME}://{label}@{container}"


testinfra.backend.BACKENDS[NAME] = f"{__name__}.InspectorBackend"
