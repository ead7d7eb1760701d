"""The policy never crashes on a compose file Compose accepts (hypothesis).

Two levels. The model level generates services in the shapes `docker compose config
--format json` gives the checker — ports with ranges, addresses and protocols, binds with
propagation, volumes with driver options, tmpfs, devices, deploy limits and restart policies,
environments with unset values, healthchecks, secrets, x- fields — thousands of them, and
judges each with every control, in every context, in every output format. The file level
writes short and long syntax as a person would, lets Compose itself resolve it, and runs the
whole command on what Compose accepted.
"""

from __future__ import annotations

import json
import subprocess

import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from pipeline.environments import ENVIRONMENTS
from pipeline.policy import PROFILES, Context, context_for, evaluate, load_policy
from pipeline.policy import __main__ as policy_command
from pipeline.policy.output import FORMATS, render
from pipeline.policy.static import Finding
from pipeline.policy.views import from_compose

POLICY = load_policy()
# A project that is not ours (every profile), and our own services where the environments
# model holds them to the most: the contexts every rule's branches turn on.
CONTEXTS = [
    Context(POLICY, PROFILES),
    context_for(ENVIRONMENTS["prod"], "app"),
    context_for(ENVIRONMENTS["dev"], "redis"),
]

names = st.from_regex(r"[a-z][a-z0-9_-]{0,11}", fullmatch=True)
words = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=20)
paths = st.one_of(
    st.sampled_from(["/", "/etc", "/home/alice/.ssh", "/root", "/srv/data", "/lib64", "/tmp"]),
    st.lists(names, min_size=1, max_size=4).map(lambda parts: "/" + "/".join(parts)),
    names.map(lambda name: f"./{name}"),
)
ports = st.integers(min_value=0, max_value=65535)
addresses = st.sampled_from(["", "127.0.0.1", "0.0.0.0", "::", "::1", "[::1]", "10.1.2.3"])  # noqa: S104
published = st.one_of(
    ports.map(str),
    st.tuples(ports, ports).map(lambda pair: f"{min(pair)}-{max(pair)}"),
    st.tuples(addresses, ports).map(lambda pair: f"{pair[0]}:{pair[1]}"),
    st.just(""),
)
port_entries = st.fixed_dictionaries(
    {"target": ports, "protocol": st.sampled_from(["tcp", "udp", "sctp"])},
    optional={
        "published": published,
        "host_ip": addresses,
        "mode": st.sampled_from(["ingress", "host"]),
        "name": names,
        "app_protocol": st.sampled_from(["http", "grpc"]),
    },
)
mounts = st.one_of(
    st.fixed_dictionaries(
        {"type": st.just("bind"), "source": paths, "target": paths},
        optional={
            "read_only": st.booleans(),
            "bind": st.fixed_dictionaries(
                {},
                optional={
                    "propagation": st.sampled_from(
                        ["private", "rprivate", "shared", "rshared", "slave", "rslave"]
                    ),
                    "create_host_path": st.booleans(),
                    "selinux": st.sampled_from(["z", "Z"]),
                },
            ),
        },
    ),
    st.fixed_dictionaries(
        {"type": st.just("volume"), "target": paths},
        optional={"source": names, "read_only": st.booleans(), "volume": st.just({"nocopy": True})},
    ),
    st.fixed_dictionaries(
        {"type": st.just("tmpfs"), "target": paths},
        optional={"tmpfs": st.fixed_dictionaries({}, optional={"size": st.integers(0, 2**31)})},
    ),
    st.fixed_dictionaries(
        {"type": st.sampled_from(["npipe", "cluster", "image"]), "target": paths}
    ),
)
volume_definitions = st.dictionaries(
    names,
    st.one_of(
        st.none(),
        st.fixed_dictionaries(
            {},
            optional={
                "driver": st.sampled_from(["local", "nfs", "rexray"]),
                "driver_opts": st.dictionaries(
                    st.sampled_from(["o", "type", "device"]),
                    st.one_of(paths, st.sampled_from(["bind", "rbind,ro", "none", "addr=1"])),
                ),
                "external": st.booleans(),
                "name": names,
            },
        ),
    ),
    max_size=3,
)
services = st.fixed_dictionaries(
    {},
    optional={
        "image": st.one_of(names, st.just("redis:8.2.1"), st.just("")),
        "ports": st.lists(port_entries, max_size=4),
        "volumes": st.lists(mounts, max_size=4),
        "tmpfs": st.lists(paths, max_size=2),
        "environment": st.dictionaries(
            st.from_regex(r"[A-Z_][A-Z0-9_]{0,15}", fullmatch=True), st.one_of(st.none(), words)
        ),
        "command": st.one_of(st.none(), st.lists(words, max_size=5)),
        "entrypoint": st.one_of(st.none(), st.lists(words, max_size=3)),
        "restart": st.one_of(
            st.sampled_from(["no", "always", "on-failure", "unless-stopped", ""]),
            st.integers(0, 20).map(lambda n: f"on-failure:{n}"),
        ),
        "deploy": st.fixed_dictionaries(
            {},
            optional={
                "resources": st.fixed_dictionaries(
                    {},
                    optional={
                        "limits": st.fixed_dictionaries(
                            {},
                            optional={
                                "cpus": st.one_of(st.floats(0, 64), st.just("0.5")),
                                "memory": st.one_of(st.integers(0, 2**40).map(str), st.just("")),
                                "pids": st.integers(-1, 4096),
                            },
                        )
                    },
                ),
                "restart_policy": st.fixed_dictionaries(
                    {},
                    optional={
                        "condition": st.sampled_from(["none", "on-failure", "any"]),
                        "max_attempts": st.integers(0, 10),
                    },
                ),
            },
        ),
        "devices": st.lists(
            st.one_of(
                paths.map(lambda path: f"{path}:{path}:rwm"),
                st.fixed_dictionaries(
                    {"source": paths, "target": paths, "permissions": st.just("r")}
                ),
            ),
            max_size=2,
        ),
        "cap_add": st.lists(st.sampled_from(["NET_ADMIN", "cap_sys_admin", "ALL", "chown"])),
        "cap_drop": st.lists(st.sampled_from(["ALL", "NET_RAW"])),
        "security_opt": st.lists(
            st.sampled_from(["no-new-privileges:true", "seccomp=unconfined", "label=disable"])
        ),
        "user": st.one_of(st.just("0:0"), st.just("1000:1000"), names, st.just("")),
        "privileged": st.booleans(),
        "read_only": st.booleans(),
        "network_mode": st.sampled_from(["bridge", "host", "none", "service:db", "default"]),
        "pid": st.sampled_from(["host", "service:db", ""]),
        "ipc": st.sampled_from(["host", "private", "shareable"]),
        "cgroup_parent": st.one_of(st.just(""), paths),
        "healthcheck": st.fixed_dictionaries(
            {},
            optional={
                "test": st.one_of(st.just(["NONE"]), st.lists(words, max_size=3), words),
                "disable": st.booleans(),
                "interval": st.just("5s"),
            },
        ),
        "secrets": st.lists(
            st.fixed_dictionaries({"source": names}, optional={"target": paths}), max_size=2
        ),
        "profiles": st.lists(names, max_size=2),
        "x-note": words,
    },
)


# A thousand models of one to three services: thousands of services in all.
@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    services=st.dictionaries(names, services, min_size=1, max_size=3), volumes=volume_definitions
)
def test_every_control_judges_any_model_compose_gives_without_raising(services, volumes):
    judged = []
    for service, config in services.items():
        view = from_compose(service, config, volumes)
        for context in CONTEXTS:
            for control in POLICY.controls:
                verdict = evaluate(control, view, context)
                assert verdict.outcome in ("pass", "fail", "not applicable")
                judged.append(Finding(service, control, verdict))
    for output_format in FORMATS:
        assert render(judged, output_format, "generated")


# ---------------------------------------------------------------- through Compose itself

short_ports = st.one_of(
    ports.filter(lambda port: port > 0).map(str),
    st.tuples(st.integers(1, 60000), st.integers(1, 65535)).map(lambda p: f"{p[0]}:{p[1]}"),
    st.tuples(st.integers(1000, 2000), st.integers(1, 65535)).map(
        lambda p: f"{p[0]}-{p[0] + 5}:{p[1]}-{p[1]}" if p[1] < 65530 else f"{p[0]}:{p[1]}"
    ),
    st.tuples(st.sampled_from(["127.0.0.1", "0.0.0.0", "[::1]"]), st.integers(1, 65535)).map(  # noqa: S104
        lambda p: f"{p[0]}:{p[1]}:80/udp"
    ),
)
short_volumes = st.one_of(
    st.tuples(paths, paths).map(lambda pair: f"{pair[0]}:{pair[1]}"),
    st.tuples(paths, paths).map(lambda pair: f"{pair[0]}:{pair[1]}:ro,rshared"),
    st.tuples(names, paths).map(lambda pair: f"{pair[0]}:{pair[1]}"),
)
file_services = st.fixed_dictionaries(
    {"image": st.just("busybox")},
    optional={
        "ports": st.lists(st.one_of(short_ports, port_entries), max_size=3),
        "volumes": st.lists(short_volumes, max_size=3),
        "environment": st.one_of(
            st.lists(st.from_regex(r"[A-Z]{1,5}(=[a-z]{0,5})?", fullmatch=True), max_size=3),
            st.dictionaries(
                st.from_regex(r"[A-Z]{1,5}", fullmatch=True), st.one_of(st.none(), names)
            ),
        ),
        "restart": st.sampled_from(["no", "always", "on-failure:3", "unless-stopped"]),
        "devices": st.lists(paths.map(lambda path: f"{path}:{path}"), max_size=1),
        "profiles": st.lists(names, max_size=1),
        "x-anything": st.dictionaries(names, names, max_size=2),
        "cgroup_parent": names,
        "tmpfs": st.lists(paths, max_size=1),
    },
)


@pytest.mark.docker
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(services=st.dictionaries(names, file_services, min_size=1, max_size=2))
def test_the_command_runs_on_any_file_compose_accepts(services, tmp_path_factory, capsys):
    folder = tmp_path_factory.mktemp("compose")
    names_used = {
        volume.split(":", 1)[0]
        for service in services.values()
        for volume in service.get("volumes", [])
        if not volume.startswith(("/", "."))
    }
    document = {
        "services": services,
        "volumes": {name: None for name in names_used},
        "x-shared": {"note": "ignored"},
    }
    compose_file = folder / "compose.yml"
    compose_file.write_text(yaml.safe_dump(document))
    accepted = subprocess.run(
        ["docker", "compose", "-f", str(compose_file), "--profile", "*", "config", "--quiet"],
        capture_output=True,
        check=False,
        timeout=60,
    )
    assume(accepted.returncode == 0)
    for output_format in ("text", "sarif"):
        status = policy_command.main(["-f", str(compose_file), "--format", output_format])
        printed = capsys.readouterr()
        assert status in (0, 1), printed.err
        if output_format == "sarif":
            assert json.loads(printed.out)["version"] == "2.1.0"
