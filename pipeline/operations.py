"""Operator commands behind `make dev-up` and friends: up, down, status, logs."""

from __future__ import annotations

import contextlib
import os
import shlex
import subprocess

from pipeline import images
from pipeline import stack as stacks
from pipeline.environments import ROOT
from pipeline.environments import environment as environment_named
from pipeline.errors import PipelineError


def up(environment_name: str, *, rebuild: bool = False) -> None:
    environment = environment_named(environment_name)
    stack = stacks.operator_stack(environment)
    stack.config()  # a missing variable is named here, before any build
    images.build_stages(environment.stages, progress=False)
    stack.check_host_ports_free()
    stack.up()
    stacks.say(f"{stack.project} is up and healthy.")
    _print_status(stack)


def down(environment_name: str, *, delete_volumes: bool = False) -> None:
    environment = environment_named(environment_name)
    stack = stacks.operator_stack(environment)
    if delete_volumes:
        volumes = stack.leftovers()["volumes"]
        stacks.say(
            f"WARNING: deleting the data volumes of {stack.project}: {', '.join(volumes) or 'none'}"
        )
    stack.down(remove_volumes=delete_volumes)
    kept = stack.leftovers()["volumes"]
    if kept:
        stacks.say(f"{stack.project} is down; its data volumes are kept: {', '.join(kept)}")
    else:
        stacks.say(f"{stack.project} is down.")


def status(environment_name: str) -> None:
    stack = stacks.operator_stack(environment_named(environment_name))
    if not stack.containers():
        stacks.say(f"{stack.project} is not running; start it with `make {environment_name}-up`.")
        return
    _print_status(stack)


def _print_status(stack: stacks.Stack) -> None:
    for container in sorted(stack.containers(), key=lambda c: c.name):
        state = container.state
        health = state.health.status if state.health else "no healthcheck"
        service = container.config.labels.get("com.docker.compose.service", container.name)
        ports = ", ".join(
            f"{binding['HostIp']}:{binding['HostPort']}->{port}"
            for port, bindings in (container.network_settings.ports or {}).items()
            for binding in bindings or []
        )
        print(f"{service:10} {state.status:10} {health:16} {ports or '-'}")


def logs(environment_name: str, services: list[str]) -> None:
    stack = stacks.operator_stack(environment_named(environment_name))
    stack.write_variables()
    # Streamed straight to the terminal until Ctrl-C.
    with contextlib.suppress(KeyboardInterrupt):
        subprocess.run(
            [*shlex.split(stack.compose_command()), "logs", "--follow", "--tail", "100", *services],
            cwd=ROOT,
            check=False,
        )


def shell(environment_name: str, service: str) -> None:
    stack = stacks.operator_stack(environment_named(environment_name))
    container = stack.container(service)
    if not container.state.running:
        raise PipelineError(
            f"{stack.project}: {service} is not running; "
            f"start it with `nox -s 'up({environment_name})'`."
        )
    # Replace this process: the shell owns the terminal until the user leaves it.
    os.execvp("docker", ["docker", "exec", "-it", container.id, "sh"])  # noqa: S606
