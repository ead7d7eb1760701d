"""Redis' users: written once (pipeline/redis_users.py), the same in every environment."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from pipeline import redis_users

ROOT = Path(__file__).resolve().parents[2]
PASSWORDS = {user: f"password-of-{user}" for user in redis_users.RULES}


def test_the_throwaway_environments_give_redis_exactly_these_users() -> None:
    """compose/redis-users.yml (dev, test, ci) spells the rules out as arguments: it must
    say what the rules say, with each password from its env file variable."""
    command = yaml.safe_load((ROOT / "compose/redis-users.yml").read_text())["services"]["redis"][
        "command"
    ]
    passwords = [word for word in command if word.startswith(">")]
    assert passwords == [
        f">${{{variable}:?set it in the env file (copy env/.env.example)}}"
        for variable in redis_users.PASSWORD_VARIABLES.values()
    ], passwords
    interpolated = [re.sub(r"\$\{[^}]*\}", "x", word) for word in command]
    expected = ["redis-server", *redis_users.server_arguments(PASSWORDS)]
    assert redis_users.users_in_command(interpolated) == redis_users.users_in_command(expected)


def test_every_service_of_the_throwaway_environments_uses_its_own_user() -> None:
    for environment in ("dev", "test", "ci"):
        text = (ROOT / f"compose/docker-compose.{environment}.yml").read_text()
        for user in ("app", "callback"):
            variable = redis_users.PASSWORD_VARIABLES[user]
            assert f"  REDIS_USER: {user}\n  REDIS_PASSWORD: ${{{variable}:?" in text, (
                f"docker-compose.{environment}.yml: expected {user}'s user and password"
            )


def test_the_acl_file_and_the_arguments_define_the_same_users() -> None:
    from_file = redis_users.users_in_acl_file(redis_users.acl_file(PASSWORDS))
    from_arguments = redis_users.users_in_command(
        ["redis-server", "--appendonly", "yes", *redis_users.server_arguments(PASSWORDS)]
    )
    assert from_file == from_arguments
    assert from_file["default"][0] == "off"
    assert sorted(from_file) == ["app", "callback", "default", "health"]


def test_no_password_or_hash_is_kept_in_what_a_report_shows() -> None:
    shown = redis_users.users_in_acl_file(redis_users.acl_file(PASSWORDS))
    words = {word for rules in shown.values() for word in rules}
    assert not [word for word in words if word.startswith(redis_users.PASSWORD_MARKS)], words
    assert not [word for word in words if "password-of" in word]


def test_a_selector_stays_one_argument() -> None:
    arguments = redis_users.server_arguments(PASSWORDS)
    assert "(+set %W~oauth:code:*)" in arguments
    assert "(+eval ~oauth:state:* ~oauth:code:*)" in arguments
