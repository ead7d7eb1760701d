"""Redis' users: one per service that logs in, each allowed only what that service does.

The one place these rules are written, in Redis' ACL syntax. prod's ACL file (`nox -s
prod-secrets`) is made from them with each password's SHA-256; dev, test and ci hand them
to redis-server as `--user` directives with the password from the env file, and a unit
test (tests/unit/test_redis_users.py) holds those compose files to these rules. The key
prefixes are src/oauth_states.py's.
"""

from __future__ import annotations

import hashlib

# Nobody logs in without a user and a password.
DEFAULT_USER = "default off resetpass -@all"

RULES = {
    # The API: its own keys and the OAuth flow's, reads and writes and transactions; no
    # scripting, no administration, nothing that lists or flushes the keyspace.
    "app": (
        "resetchannels ~app:* ~oauth:* -@all +@read +@write +@connection +@transaction -@dangerous"
    ),
    # The callback: runs the one script that consumes a state (src/oauth_states.py); inside
    # it, GETDEL on a state and SET on a code, which it can write and never read back.
    "callback": (
        "resetchannels -@all +getdel ~oauth:state:* (+set %W~oauth:code:*) "
        "(+eval ~oauth:state:* ~oauth:code:*)"
    ),
    # Redis' own healthcheck: PING and nothing else.
    "health": "resetchannels -@all +ping",
}

# Each user's password: the env file variable (dev, test, ci) and the secret file (prod).
PASSWORD_VARIABLES = {user: f"REDIS_{user.upper()}_PASSWORD" for user in RULES}
PASSWORD_FILES = {user: f"redis_{user}_password" for user in RULES}


def acl_file(passwords: dict[str, str]) -> str:
    """Redis' ACL file: the default user off, then each user on with its password's hash."""
    lines = [f"user {DEFAULT_USER}"]
    for user, rules in RULES.items():
        digest = hashlib.sha256(passwords[user].encode()).hexdigest()
        lines.append(f"user {user} on #{digest} {rules}")
    return "\n".join(lines) + "\n"


def server_arguments(passwords: dict[str, str]) -> list[str]:
    """The same users as redis-server arguments (`--user NAME on >PASSWORD RULE …`)."""
    arguments = ["--user", *DEFAULT_USER.split()]
    for user, rules in RULES.items():
        arguments += ["--user", user, "on", f">{passwords[user]}", *rule_tokens(rules)]
    return arguments


def rule_tokens(rules: str) -> list[str]:
    """The rules as words, a selector `(…)` kept as one (Redis merges it back the same way)."""
    tokens: list[str] = []
    for word in rules.split():
        if tokens and tokens[-1].startswith("(") and not tokens[-1].endswith(")"):
            tokens[-1] += " " + word
        else:
            tokens.append(word)
    return tokens


# Tokens that set a password ("on >secret", "#sha256", "<remove", "!hash"): never kept.
PASSWORD_MARKS = (">", "<", "#", "!")


def parse_users(directives: list[list[str]]) -> dict[str, list[str]]:
    """Each user's rules, from `user NAME RULE …` directives (words after `user`), with the
    passwords and their hashes left out: what a report may show."""
    users: dict[str, list[str]] = {}
    for words in directives:
        if not words:
            continue
        name, *rules = words
        users[name] = [rule for rule in rules if not rule.startswith(PASSWORD_MARKS)]
    return users


def users_in_command(command: list[str]) -> dict[str, list[str]]:
    """The users redis-server's `--user` arguments define (each runs to the next `--`)."""
    directives: list[list[str]] = []
    collecting = False
    for word in command:
        if word.startswith("--"):
            collecting = word == "--user"
            if collecting:
                directives.append([])
        elif collecting:
            directives[-1] += word.split()
    return parse_users(directives)


def users_in_acl_file(text: str) -> dict[str, list[str]]:
    """The users an ACL file defines (`user NAME RULE …` lines)."""
    lines = (line.split() for line in text.splitlines())
    return parse_users([words[1:] for words in lines if words and words[0] == "user"])
