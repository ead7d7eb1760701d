"""Known vulnerabilities in uv.lock's packages: pip-audit's findings, less the reviewed
exceptions of audit-ignore.toml.

`uv export` writes the lock's pins as a requirements file; `uvx pip-audit==<pin>` looks each
pin up in PyPI's vulnerability data and answers in JSON. pip-audit runs from uv's tool cache,
so it is never a dependency in uv.lock. Everything after the two commands is pure: reading
pip-audit's JSON, reading the ignore file, deciding what fails.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
import textwrap
import tomllib
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from packaging.utils import canonicalize_name

from pipeline.ca_bundle import ca_bundle_path
from pipeline.environments import ROOT
from pipeline.errors import PipelineError
from pipeline.process import last_line, run

PIP_AUDIT = "pip-audit==2.10.1"
IGNORE_FILE = "audit-ignore.toml"
# pip-audit's default service: PyPI's JSON API, which carries the PyPA advisory database.
SERVICE = "pypi"
SERVICE_URL = "pypi.org/pypi/<package>/<version>/json"
TIMEOUT_SECONDS = 600
# The lock's exact pins; no hashes (pip-audit installs nothing, so checks none), no project
# line (the project is not a package), no comments.
EXPORT_ARGUMENTS = (
    "export --locked --format requirements-txt --no-hashes --all-groups --no-emit-project "
    "--no-header --no-annotate"
)
# Pinned requirements need no resolver and no pip; JSON with each advisory's aliases (so an
# ignore entry may name the CVE) and its one-line description.
PIP_AUDIT_ARGUMENTS = (
    f"--no-deps --disable-pip --vulnerability-service {SERVICE} --format json "
    "--desc on --aliases on --progress-spinner off"
)
SUMMARY_WIDTH = 120

ADVISORY_ID = re.compile(r"(PYSEC-\d{4}-\d+|GHSA(-[23456789cfghjmpqrvwx]{4}){3}|CVE-\d{4}-\d{4,})")
ENTRY_KEYS = ("id", "package", "reason", "expires")
EXPIRES_EXAMPLE = "expires = 2027-03-01"
# What pip-audit prints when the service did not answer: its own advice on a connection
# error, a traceback from its HTTP client (DNS, proxy, refused, timeout), or its ServiceError
# for an answer with an error status. Certificate failures are told apart: those are fixable.
NO_SERVICE_SIGNS = (
    "your network may be blocking this service",
    "requests.exceptions.",
    "pip_audit._service.interface.ServiceError",
)
CERTIFICATE_SIGN = "requests.exceptions.SSLError"


@dataclass(frozen=True)
class Vulnerability:
    """One advisory against one pinned package, as pip-audit reports it."""

    package: str
    version: str
    id: str
    aliases: tuple[str, ...]
    fix_versions: tuple[str, ...]
    summary: str

    def __str__(self) -> str:
        fix = ", ".join(self.fix_versions) or "none"
        summary = textwrap.shorten(self.summary, SUMMARY_WIDTH, placeholder=" …")
        return f"{self.package} {self.version}: {self.id} (fix: {fix}) — {summary}"


@dataclass(frozen=True)
class Report:
    """What pip-audit found: the vulnerabilities, the packages it looked up, those it could not."""

    vulnerabilities: tuple[Vulnerability, ...]
    audited: int
    skipped: tuple[str, ...]  # "name: reason"


@dataclass(frozen=True)
class IgnoreEntry:
    """A reviewed exception: this advisory, for this package, until this date (inclusive)."""

    id: str
    package: str
    reason: str
    expires: date

    def covers(self, vulnerability: Vulnerability) -> bool:
        same_package = canonicalize_name(self.package) == canonicalize_name(vulnerability.package)
        return same_package and self.id in (vulnerability.id, *vulnerability.aliases)


@dataclass(frozen=True)
class Unanswered:
    """No vulnerability service answered pip-audit, and what showed it."""

    reason: str


@dataclass(frozen=True)
class Outcome:
    """The lines to print, the summary line, and whether the session passes."""

    lines: tuple[str, ...]
    summary: str
    passed: bool


# ---------------------------------------------------------------- pip-audit's answer


def parse_report(text: str) -> Report:
    """pip-audit's `--format json` output: {"dependencies": [...], "fixes": [...]}."""
    try:
        dependencies = json.loads(text)["dependencies"]
        vulnerabilities, skipped, audited = [], [], 0
        for dependency in dependencies:
            if "skip_reason" in dependency:
                skipped.append(f"{dependency['name']}: {dependency['skip_reason']}")
                continue
            audited += 1
            vulnerabilities += [
                Vulnerability(
                    package=dependency["name"],
                    version=dependency["version"],
                    id=vuln["id"],
                    aliases=tuple(vuln.get("aliases", ())),
                    fix_versions=tuple(vuln["fix_versions"]),
                    summary=vuln.get("description") or "no description",
                )
                for vuln in dependency["vulns"]
            ]
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise PipelineError(
            f"{PIP_AUDIT} printed JSON of an unknown shape ({type(error).__name__}: {error}); "
            "check its --format json output by hand"
        ) from None
    return Report(tuple(vulnerabilities), audited, tuple(skipped))


def read_pip_audit(completed: subprocess.CompletedProcess[str]) -> Report | Unanswered:
    """The report, or Unanswered when no vulnerability service answered; other failures raise."""
    stdout = completed.stdout.strip()
    if stdout.startswith("{"):
        report = parse_report(stdout)
        if report.skipped and not report.audited:
            # The lock's packages all come from PyPI: when not one of them is found, the
            # service is what is missing (a proxy that answers 404 for per-version lookups).
            return Unanswered(f"all {len(report.skipped)} lookups answered 'not found'")
        return report
    if CERTIFICATE_SIGN in completed.stderr:
        bundle = ca_bundle_path() or "certifi's bundle"
        raise PipelineError(
            f"{PIP_AUDIT} could not verify the TLS certificate of pypi.org with {bundle}; "
            "set SSL_CERT_FILE to a CA bundle that holds your proxy's CA"
        )
    if any(sign in completed.stderr for sign in NO_SERVICE_SIGNS):
        return Unanswered(textwrap.shorten(last_line(completed.stderr), 90, placeholder="…"))
    raise PipelineError(
        f"`uvx {PIP_AUDIT}` exited {completed.returncode}: {last_line(completed.stderr)}"
    )


# ---------------------------------------------------------------- the ignore file


def parse_ignore_file(text: str, name: str = IGNORE_FILE) -> list[IgnoreEntry]:
    """The `[[ignore]]` tables; anything incomplete or unknown is bad input, in one line."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise PipelineError(f"{name}: not valid TOML ({error}); fix the syntax") from None
    unknown = sorted(set(document) - {"ignore"})
    tables = document.get("ignore", [])
    if unknown or not isinstance(tables, list):
        raise PipelineError(
            f"{name}: expected only [[ignore]] tables, found {unknown or 'ignore = ...'}; "
            "write each exception as an [[ignore]] table"
        )
    header_lines = [
        number
        for number, line in enumerate(text.splitlines(), start=1)
        if line.strip().startswith("[[ignore]]")
    ]
    # tomllib keeps no line numbers; the n-th `[[ignore]]` header is the n-th table's line.
    places = [f"{name}:{number}" for number in header_lines]
    places += [f"{name} entry {index + 1}" for index in range(len(places), len(tables))]
    return [ignore_entry(table, where) for table, where in zip(tables, places, strict=False)]


def ignore_entry(table: object, where: str) -> IgnoreEntry:
    """One `[[ignore]]` table, every key present and of its type."""
    if not isinstance(table, dict):
        raise PipelineError(f"{where}: expected an [[ignore]] table; write one per exception")
    unknown = sorted(set(table) - set(ENTRY_KEYS))
    if unknown:
        keys = ", ".join(ENTRY_KEYS)
        raise PipelineError(f"{where}: unknown key {unknown[0]!r}; the keys are {keys}")
    label = f"{where} ({table.get('id', '?')} for {table.get('package', '?')})"
    for key in ("id", "package", "reason"):
        if not isinstance(table.get(key), str) or not table[key].strip():
            hint = 'reason = "why it does not apply, who reviewed it"' if key == "reason" else key
            raise PipelineError(f"{label}: no {key}; add {hint}")
    if not ADVISORY_ID.fullmatch(table["id"]):
        raise PipelineError(f"{label}: id is not a PYSEC-, GHSA- or CVE- advisory id")
    expires = table.get("expires")
    if not isinstance(expires, date):
        found = "no expires" if expires is None else f"expires {expires!r} is not a TOML date"
        raise PipelineError(f"{label}: {found}; add {EXPIRES_EXAMPLE} (a date, no quotes)")
    return IgnoreEntry(table["id"], table["package"], table["reason"].strip(), expires)


def load_ignore_file(path: Path) -> list[IgnoreEntry]:
    """The file's entries; no file means no exceptions."""
    return parse_ignore_file(path.read_text(encoding="utf-8"), path.name) if path.is_file() else []


# ---------------------------------------------------------------- the verdict


def judge(report: Report, entries: list[IgnoreEntry], *, today: date, strict: bool) -> Outcome:
    """Findings not covered by a current entry fail; expired and unused entries are reported."""
    current = [entry for entry in entries if entry.expires >= today]
    lines, to_fix, ignored, used = [], [], 0, set()
    for vulnerability in report.vulnerabilities:
        entry = next((entry for entry in current if entry.covers(vulnerability)), None)
        if entry is None:
            to_fix.append(vulnerability)
            lines.append(str(vulnerability))
            continue
        ignored += 1
        used.add(entry)
        lines.append(f"ignored until {entry.expires}: {vulnerability} [{entry.reason}]")
    for entry in entries:
        if entry.expires < today:
            lines.append(
                f"{IGNORE_FILE}: {entry.id} ({entry.package}) expired on {entry.expires} and no "
                "longer ignores; fix the package, or review the entry and give it a new date"
            )
        elif entry not in used:
            lines.append(
                f"{IGNORE_FILE}: {entry.id} ({entry.package}) matches no finding; remove it"
            )
    lines += [f"not audited: {skipped}" for skipped in report.skipped]
    packages = len({vulnerability.package for vulnerability in to_fix})
    summary = (
        f"{counted(len(to_fix), 'known vulnerability', 'known vulnerabilities')} in "
        f"{packages} of {counted(report.audited, 'package')}"
        if to_fix
        else f"no known vulnerabilities in {counted(report.audited, 'package')}"
    )
    summary += f" ({ignored} ignored by {IGNORE_FILE}, {len(report.skipped)} not audited)"
    if strict and report.skipped:
        summary += "; --strict fails when a package could not be audited"
    passed = not to_fix and not (strict and report.skipped)
    return Outcome(tuple(lines), summary, passed)


def counted(number: int, singular: str, plural: str | None = None) -> str:
    return f"{number} {singular if number == 1 else plural or singular + 's'}"


def no_service(unanswered: Unanswered, *, strict: bool) -> Outcome:
    """The one line for a machine from which no vulnerability service answers."""
    consequence = "failing (--strict)" if strict else "`nox -s audit -- --strict` fails on this"
    return Outcome(
        (),
        f"nothing audited: pip-audit's vulnerability service, PyPI ({SERVICE_URL}), does not "
        f"answer from here ({unanswered.reason}); {consequence}",
        passed=not strict,
    )


# ---------------------------------------------------------------- the two commands


def export_requirements(root: Path, directory: Path) -> Path:
    """uv.lock's pins, every group, as a requirements file pip-audit reads without resolving.

    Every group, not only the runtime dependencies: the runtime ones matter most (they ship
    in the production image) and are all in here, but the `dev` group ships in the
    development image, and the `pipeline` group runs in CI next to the Docker engine.
    Environment markers stay: pip-audit skips a line whose marker does not hold for the
    interpreter uvx runs it on (a Windows-only package, say).
    """
    requirements = directory / "requirements.txt"
    exported = run(
        ["uv", *EXPORT_ARGUMENTS.split(), "--output-file", str(requirements)],
        cwd=root,
        timeout=TIMEOUT_SECONDS,
    )
    if exported.returncode != 0:
        raise PipelineError(f"uv export failed: {last_line(exported.stderr)}; run `uv lock`")
    return requirements


def pip_audit_command(requirements: Path) -> list[str]:
    """The pinned pip-audit, from uv's tool cache, on the exported requirements."""
    return ["uvx", PIP_AUDIT, "--requirement", str(requirements), *PIP_AUDIT_ARGUMENTS.split()]


def pip_audit_environment() -> dict[str, str]:
    """The environment with the host's CA bundle for both clients behind a TLS proxy: uv
    (fetching pip-audit) reads SSL_CERT_FILE; pip-audit's HTTP client (requests) reads
    REQUESTS_CA_BUNDLE, and trusts only certifi's bundle without it."""
    environment = dict(os.environ)
    bundle = ca_bundle_path()
    if bundle is not None:
        environment |= {"SSL_CERT_FILE": str(bundle), "REQUESTS_CA_BUNDLE": str(bundle)}
    return environment


def audit_locked_packages(root: Path = ROOT, *, strict: bool, today: date | None = None) -> Outcome:
    """Audit uv.lock and judge the findings against the ignore file (read first: bad input
    stops the session before anything is downloaded)."""
    entries = load_ignore_file(root / IGNORE_FILE)
    with tempfile.TemporaryDirectory(prefix="dashtam-audit-") as directory:
        try:
            requirements = export_requirements(root, Path(directory))
            completed = run(
                pip_audit_command(requirements),
                cwd=root,
                env=pip_audit_environment(),
                timeout=TIMEOUT_SECONDS,
            )
        except FileNotFoundError as error:
            raise PipelineError(
                f"{error.filename} is not on PATH; install uv (it ships uvx)"
            ) from None
        except subprocess.TimeoutExpired as error:
            raise PipelineError(f"{error.cmd[0]} ran over {TIMEOUT_SECONDS} s; retry") from None
    report = read_pip_audit(completed)
    if isinstance(report, Unanswered):
        return no_service(report, strict=strict)
    return judge(report, entries, today=today or date.today(), strict=strict)
