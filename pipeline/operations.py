"""Operator commands behind `make dev-up` and friends: up, down, status, logs."""

from __future__ import annotations

import contextlib
import os

from pipeline import image_sources, images
from pipeline import stack as stacks
from pipeline.docker_client import docker, translated
from pipeline.environments import ROOT
from pipeline.environments import environment as environment_named
from pipeline.errors import PipelineError
from pipeline.process import run, say


def up(environment_name: str, *, rebuild: bool = False) -> None:
    environment = environment_named(environment_name)
    stack = stacks.operator_stack(environment)
    stack.config()  # a missing variable is named here, before any build
    images.build_stages(environment.stages, show=False)
    stack.check_host_ports_free()
    stack.up()
    say(f"{stack.project} is up and healthy.")
    _print_status(stack)


def down(environment_name: str, *, delete_volumes: bool = False) -> None:
    environment = environment_named(environment_name)
    stack = stacks.operator_stack(environment)
    if delete_volumes:
        volumes = stack.leftovers()["volumes"]
        say(
            f"WARNING: deleting the data volumes of {stack.project}: {', '.join(volumes) or 'none'}"
        )
    stack.down(remove_volumes=delete_volumes)
    kept = stack.leftovers()["volumes"]
    if kept:
        say(f"{stack.project} is down; its data volumes are kept: {', '.join(kept)}")
    else:
        say(f"{stack.project} is down.")


def status(environment_name: str) -> None:
    stack = stacks.operator_stack(environment_named(environment_name))
    if not stack.container_ids():
        say(f"{stack.project} is not running; start it with `make {environment_name}-up`.")
        return
    _print_status(stack)


def _print_status(stack: stacks.Stack) -> None:
    for service, entry in sorted(stack.inspect_containers().items()):
        state = entry["State"]
        health = (state.get("Health") or {}).get("Status") or "no healthcheck"
        ports = ", ".join(
            f"{binding['HostIp']}:{binding['HostPort']}->{port}"
            for port, bindings in ((entry.get("NetworkSettings") or {}).get("Ports") or {}).items()
            for binding in bindings or []
        )
        print(f"{service:10} {state['Status']:10} {health:16} {ports or '-'}")


def logs(environment_name: str, services: list[str]) -> None:
    stack = stacks.operator_stack(environment_named(environment_name))
    # Streamed straight to the terminal (Compose's colours and all) until Ctrl-C.
    with contextlib.suppress(KeyboardInterrupt):
        run(
            stack.compose_arguments("logs", "--follow", "--tail", "100", *services),
            cwd=ROOT,
            capture=False,
        )


def shell(environment_name: str, service: str) -> None:
    stack = stacks.operator_stack(environment_named(environment_name))
    container = stack.container_id(service)
    if not stack.inspect_containers()[service]["State"]["Running"]:
        raise PipelineError(
            f"{stack.project}: {service} is not running; "
            f"start it with `nox -s 'up({environment_name})'`."
        )
    if not has_shell(container):
        # The production images ship no shell: look at one from a helper that shares its
        # namespaces (its processes, files under /proc/1/root, its network), as the checks do.
        python_image = image_sources.image_references()["PYTHON_IMAGE"]
        raise PipelineError(
            f"{stack.project}: {service}'s image has no shell (production images ship none); "
            f"look inside from a helper instead: `docker run --rm -it --pid container:"
            f"{container[:12]} --network container:{container[:12]} --cap-add SYS_PTRACE "
            f"{python_image} bash` (its files are under /proc/1/root)."
        )
    # Replace this process, so the shell owns the terminal (and its signals) until the user
    # leaves it: a literal argument list, as python-on-whales runs commands as children.
    command = ["docker", "exec", "-it", container, "sh"]
    os.execvp(command[0], command)  # noqa: S606


def has_shell(container: str) -> bool:
    try:
        with translated(f"running `sh` in {container[:12]}"):
            docker().container.execute(container, ["sh", "-c", ":"])
    except PipelineError:
        return False
    return True
