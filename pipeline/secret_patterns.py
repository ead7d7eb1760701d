"""Secrets found by what they look like, not by knowing their value.

detect-secrets' pattern detectors (AWS, GitHub, GitLab, Slack, Stripe, OpenAI, private keys,
JWTs and the rest): a value shaped like a live credential is a finding wherever it sits — a
Dockerfile's ENV or ARG default, a compose file's environment, an image's configuration,
history or files. Its entropy detectors and its keyword detector are left out: they judge
by randomness or by a variable's name, and flag digests, commit SHAs and `${PASSWORD}`
references the pipeline writes on purpose. A value that looks like a secret and is not is
allowed in secret-allowlist.toml by its SHA-256 (never the value itself) with the reason it
was reviewed.
"""

from __future__ import annotations

import hashlib
import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from pipeline.environments import ROOT

ALLOWLIST = ROOT / "secret-allowlist.toml"
DETECTORS = (
    "AWSKeyDetector",
    "ArtifactoryDetector",
    "AzureStorageKeyDetector",
    "BasicAuthDetector",
    "CloudantDetector",
    "DiscordBotTokenDetector",
    "GitHubTokenDetector",
    "GitLabTokenDetector",
    "IbmCloudIamDetector",
    "IbmCosHmacDetector",
    "JwtTokenDetector",
    "MailchimpDetector",
    "NpmDetector",
    "OpenAIDetector",
    "PrivateKeyDetector",
    "PypiTokenDetector",
    "SendGridDetector",
    "SlackDetector",
    "SoftlayerDetector",
    "SquareOAuthDetector",
    "StripeDetector",
    "TelegramBotTokenDetector",
    "TwilioKeyDetector",
)


@dataclass(frozen=True)
class Looks:
    kind: str  # the detector's name for it: "AWS Access Key", "GitHub Token", …
    line: int  # 1-based, within the text scanned


@cache
def allowed_digests(path: Path = ALLOWLIST) -> frozenset[str]:
    """The SHA-256 of each reviewed value (secret-allowlist.toml's [[allowed]] entries)."""
    if not path.is_file():
        return frozenset()
    entries = tomllib.loads(path.read_text()).get("allowed", [])
    return frozenset(str(entry["sha256"]).lower() for entry in entries)


def secrets_in(text: str) -> list[Looks]:
    """Each line of `text` holding a value shaped like a credential, and what it looks like."""
    # Imported at the first scan: detect-secrets loads requests, a fifth of a second that a
    # suite run narrowed to other checks does not pay.
    from detect_secrets.core.scan import scan_line
    from detect_secrets.settings import transient_settings

    allowed = allowed_digests()
    found = []
    with transient_settings({"plugins_used": [{"name": name} for name in DETECTORS]}):
        for number, line in enumerate(text.splitlines(), start=1):
            for secret in scan_line(line):
                value = secret.secret_value or ""
                if hashlib.sha256(value.encode()).hexdigest() not in allowed:
                    found.append(Looks(secret.type, number))
    return sorted(set(found), key=lambda looks: (looks.line, looks.kind))
