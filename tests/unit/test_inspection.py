"""Reading containers: the facts script and its parser, the /proc parsers (no Docker)."""

from __future__ import annotations

import subprocess

from pipeline.inspection import (
    Fact,
    facts_script,
    parse_listening_ports,
    parse_processes,
    split_facts,
)
from tests.infra.helpers import parse_fetched


def run_in_sh(script: str) -> str:
    return subprocess.run(["sh", "-c", script], capture_output=True, text=True).stdout


def test_each_section_keeps_its_own_output_and_exit_code():
    script = facts_script({"two": "echo one; echo two", "fails": "echo partial; false"})
    assert split_facts(run_in_sh(script)) == {
        "two": Fact(0, "one\ntwo\n"),
        "fails": Fact(1, "partial\n"),
    }


def test_output_without_a_final_newline_is_not_lost():
    facts = split_facts(run_in_sh(facts_script({"bare": "printf 999", "next": "echo x"})))
    assert facts == {"bare": Fact(0, "999\n"), "next": Fact(0, "x\n")}


def test_a_section_with_no_output_is_still_reported():
    assert split_facts(run_in_sh(facts_script({"quiet": ":"}))) == {"quiet": Fact(0, "")}


def test_listening_ports_are_the_listen_state_rows_except_dockers_dns():
    table = (
        "  sl  local_address rem_address   st\n"
        "   0: 00000000:1F40 00000000:0000 0A\n"  # 8000, LISTEN
        "   1: 0B00007F:A1B2 00000000:0000 0A\n"  # 127.0.0.11: Docker's DNS
        "   2: 0100007F:1F40 0100007F:C350 01\n"  # an established connection
    )
    assert parse_listening_ports(table) == {8000}


def test_process_lines_become_processes():
    processes = parse_processes("1 1000 1000 python\n27 999 999 postgres: checkpointer\n")
    assert [(p.pid, p.uid, p.name) for p in processes] == [
        (1, 1000, "python"),
        (27, 999, "postgres: checkpointer"),
    ]


def test_runc_starting_an_exec_is_the_engine_not_the_service():
    # Caught by a ci run: a healthcheck exec, mid-start, listed as root.
    listing = "1 1000 1000 python\n44 0 0 runc:[2:INIT]\n45 0 0 runc:[1:CHILD]\n"
    assert [p.pid for p in parse_processes(listing)] == [1]
    # A root process with any other name still counts.
    assert [p.uid for p in parse_processes("1 1000 1000 python\n9 0 0 sh\n")] == [1000, 0]


def test_fetched_lines_map_each_url_to_status_and_body():
    output = '["http://app:8000/health", 200, "{}"]\n["http://callback:8182/health", 0, "x"]\n'
    assert parse_fetched(output) == {
        "http://app:8000/health": (200, "{}"),
        "http://callback:8182/health": (0, "x"),
    }
