"""The vulnerability audit: pip-audit's JSON read, the ignore file applied, the verdict.

Fixtures in fixtures/pip-audit/: `no-service.json` is what pip-audit 2.10.1 printed on this
project's lock from a machine whose proxy answers 404 for PyPI's per-version JSON (every
package skipped, exit 0). `vulnerabilities.json` has the shape of pip-audit 2.10.1's
`--format json` output (pip_audit/_format/json.py: dependencies with `vulns`, `aliases`,
`description`; `fixes`) and published advisories for old pins, because no vulnerability
service answers from the machine the tests were written on. The stderr tails below were
printed by pip-audit 2.10.1 there, with the proxy, the CA bundle or the service broken.
No test runs a command: the ones that reach `audit_locked_packages` fake `run`.
"""

from __future__ import annotations

import subprocess
from datetime import date
from pathlib import Path

import pytest

from pipeline import audit
from pipeline.audit import (
    IgnoreEntry,
    Report,
    Unanswered,
    Vulnerability,
    judge,
    no_service,
    parse_ignore_file,
    parse_report,
    read_pip_audit,
)
from pipeline.errors import PipelineError

FIXTURES = Path(__file__).parent / "fixtures" / "pip-audit"
VULNERABLE_OUTPUT = (FIXTURES / "vulnerabilities.json").read_text()
NO_SERVICE_OUTPUT = (FIXTURES / "no-service.json").read_text()
ROOT = Path(__file__).resolve().parents[2]
TODAY = date(2026, 12, 2)

# The last lines pip-audit printed on stderr (the earlier traceback frames are left out).
PROXY_REFUSED = """\
WARNING:pip_audit._cli:--no-deps is supported, but users are encouraged to fully hash their pinned dependencies
Traceback (most recent call last):
    raise ProxyError(e, request=request)
requests.exceptions.ProxyError: HTTPSConnectionPool(host='pypi.org', port=443): Max retries exceeded with url: /pypi/fastapi/0.165.0/json (Caused by ProxyError('Unable to connect to proxy', NewConnectionError("HTTPSConnection(host='127.0.0.1', port=9): Failed to establish a new connection: [Errno 111] Connection refused")))
"""  # noqa: E501
NAME_NOT_RESOLVED = """\
Traceback (most recent call last):
    raise ConnectionError(e, request=request)
requests.exceptions.ConnectionError: HTTPSConnectionPool(host='api.osv.dev', port=443): Max retries exceeded with url: /v1/query (Caused by NameResolutionError("HTTPSConnection(host='api.osv.dev', port=443): Failed to resolve 'api.osv.dev' ([Errno -2] Name or service not known)"))
"""  # noqa: E501
ERROR_STATUS = """\
  File "/root/.cache/uv/archive-v0/s9Wvq-Wzob1VYO57/lib/python3.11/site-packages/pip_audit/_service/osv.py", line 79, in query
    raise ServiceError from http_error
pip_audit._service.interface.ServiceError
"""  # noqa: E501
# pip_audit/_cli.py's own words for its ConnectionError (a connect timeout to PyPI).
CONNECT_TIMEOUT = """\
ERROR:pip_audit._cli:Could not connect to PyPI's vulnerability feed
ERROR:pip_audit._cli:Tip: your network may be blocking this service. Try another service with `-s SERVICE`
"""  # noqa: E501
UNTRUSTED_CERTIFICATE = """\
    raise SSLError(e, request=request)
requests.exceptions.SSLError: HTTPSConnectionPool(host='pypi.org', port=443): Max retries exceeded with url: /pypi/fastapi/0.165.0/json (Caused by SSLError(SSLCertVerificationError(1, '[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: self-signed certificate in certificate chain (_ssl.c:1006)')))
"""  # noqa: E501
# uvx itself, offline with pip-audit not in its cache.
UVX_CANNOT_FETCH = """\
error: No solution found when resolving tool dependencies
  cause: Because pip-audit==2.9.0 needs to be downloaded from a registry and you require pip-audit==2.9.0, we can conclude that your requirements are unsatisfiable.

hint: Packages were unavailable because the network was disabled. When the network is disabled, registry packages may only be read from the cache.
"""  # noqa: E501


def completed(returncode: int, stdout: str = "", stderr: str = "") -> subprocess.CompletedProcess:
    return subprocess.CompletedProcess(["uvx", audit.PIP_AUDIT], returncode, stdout, stderr)


def entry(
    id: str = "GHSA-q2x7-8rv6-6q7h",
    package: str = "jinja2",
    expires: date = date(2027, 3, 1),
    reason: str = "sandbox not used: templates are ours",
) -> IgnoreEntry:
    return IgnoreEntry(id, package, reason, expires)


def finding(package: str, id: str) -> Vulnerability:
    report = parse_report(VULNERABLE_OUTPUT)
    found = [v for v in report.vulnerabilities if v.package == package and v.id == id]
    assert len(found) == 1, f"fixture: expected one {package} {id}, found {found}"
    return found[0]


# --- pip-audit's JSON -------------------------------------------------------------------


def test_the_recorded_report_is_read_whole():
    report = parse_report(VULNERABLE_OUTPUT)
    assert report.audited == 8, f"audited packages: expected 8, found {report.audited}"
    assert report.skipped == ()
    by_package: dict[str, int] = {}
    for vulnerability in report.vulnerabilities:
        by_package[vulnerability.package] = by_package.get(vulnerability.package, 0) + 1
    assert by_package == {
        "ecdsa": 1,
        "idna": 1,
        "jinja2": 3,
        "requests": 2,
        "starlette": 1,
        "urllib3": 1,
    }


def test_a_vulnerability_keeps_its_aliases_and_fix_versions():
    idna = finding("idna", "PYSEC-2024-60")
    assert (idna.package, idna.version, idna.aliases, idna.fix_versions) == (
        "idna",
        "3.6",
        ("CVE-2024-3651", "GHSA-jjg7-2v4v-x38h"),
        ("3.7",),
    )
    assert idna.summary.startswith("A vulnerability was identified in the kjd/idna library")


@pytest.mark.parametrize(
    ("package", "id", "line"),
    [
        pytest.param(
            "jinja2",
            "GHSA-q2x7-8rv6-6q7h",
            "jinja2 3.1.4: GHSA-q2x7-8rv6-6q7h (fix: 3.1.5) — "
            "Jinja has a sandbox breakout through indirect reference to format method",
            id="one fix version",
        ),
        pytest.param(
            "urllib3",
            "GHSA-34jh-p97f-mpxf",
            "urllib3 2.2.1: GHSA-34jh-p97f-mpxf (fix: 1.26.19, 2.2.2) — "
            "urllib3's Proxy-Authorization request header isn't stripped during cross-origin "
            "redirects",
            id="a fix on each branch",
        ),
    ],
)
def test_a_finding_reads_package_version_id_fix_and_summary(package, id, line):
    assert str(finding(package, id)) == line


def test_a_finding_without_a_fix_says_none():
    assert "ecdsa 0.19.0: GHSA-wj6h-64fc-37mp (fix: none) — " in str(
        finding("ecdsa", "GHSA-wj6h-64fc-37mp")
    )


def test_a_long_description_is_shortened_to_one_line():
    line = str(finding("idna", "PYSEC-2024-60"))
    assert "\n" not in line and line.endswith(" …"), line
    assert len(line) < 200, f"finding line: expected < 200 characters, found {len(line)}"


def test_a_skipped_dependency_is_counted_apart():
    report = parse_report(
        '{"dependencies": [{"name": "private-lib", "skip_reason": "Dependency not found on '
        'PyPI and could not be audited: private-lib (1.0)"}, {"name": "idna", "version": '
        '"3.10", "vulns": []}], "fixes": []}'
    )
    assert report.audited == 1
    assert report.skipped == (
        "private-lib: Dependency not found on PyPI and could not be audited: private-lib (1.0)",
    )


@pytest.mark.parametrize(
    "output",
    [
        pytest.param('{"dependencies": [{"name": "idna"}]}', id="no version"),
        pytest.param('[{"name": "idna", "version": "3.6", "vulns": []}]', id="pre-2.0 list"),
        pytest.param('{"dependencies": [{"name": "x", "version": "1"', id="cut short"),
    ],
)
def test_json_of_another_shape_is_one_clear_error(output):
    with pytest.raises(PipelineError, match=r"pip-audit==\S+ printed JSON of an unknown shape"):
        parse_report(output)


# --- the ignore file --------------------------------------------------------------------

VALID_IGNORE_FILE = """\
# reviewed 2026-11-30
[[ignore]]
id = "GHSA-q2x7-8rv6-6q7h"
package = "jinja2"
reason = "the sandbox is not used: every template is ours"
expires = 2027-03-01

[[ignore]]
id = "CVE-2024-23342"
package = "ecdsa"
reason = "no fix exists; only verification is used, which is not affected"
expires = 2027-01-15
"""


def test_the_ignore_file_is_read_into_entries():
    assert parse_ignore_file(VALID_IGNORE_FILE) == [
        IgnoreEntry(
            "GHSA-q2x7-8rv6-6q7h",
            "jinja2",
            "the sandbox is not used: every template is ours",
            date(2027, 3, 1),
        ),
        IgnoreEntry(
            "CVE-2024-23342",
            "ecdsa",
            "no fix exists; only verification is used, which is not affected",
            date(2027, 1, 15),
        ),
    ]


def test_the_committed_ignore_file_is_valid():
    path = ROOT / audit.IGNORE_FILE
    assert path.is_file(), f"{audit.IGNORE_FILE}: expected at the repository root"
    audit.load_ignore_file(path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param(
            VALID_IGNORE_FILE.replace(
                'reason = "no fix exists; only verification is used, which is not affected"\n', ""
            ),
            r"^audit-ignore\.toml:8 \(CVE-2024-23342 for ecdsa\): no reason; add reason = ",
            id="missing reason",
        ),
        pytest.param(
            VALID_IGNORE_FILE.replace('reason = "the sandbox', 'reason = "  "\n# "the sandbox'),
            r"^audit-ignore\.toml:2 \(GHSA-q2x7-8rv6-6q7h for jinja2\): no reason",
            id="blank reason",
        ),
        pytest.param(
            VALID_IGNORE_FILE.replace("expires = 2027-03-01\n", ""),
            r"^audit-ignore\.toml:2 \(GHSA-q2x7-8rv6-6q7h for jinja2\): no expires; "
            r"add expires = 2027-03-01",
            id="missing expiry",
        ),
        pytest.param(
            VALID_IGNORE_FILE.replace("expires = 2027-03-01", 'expires = "2027-03-01"'),
            r"expires '2027-03-01' is not a TOML date; add expires = 2027-03-01 \(a date, no",
            id="expiry as a string",
        ),
        pytest.param(
            VALID_IGNORE_FILE.replace('package = "jinja2"\n', ""),
            r"^audit-ignore\.toml:2 \(GHSA-q2x7-8rv6-6q7h for \?\): no package",
            id="missing package",
        ),
        pytest.param(
            VALID_IGNORE_FILE.replace('id = "CVE-2024-23342"', 'id = "jinja-sandbox"'),
            r"^audit-ignore\.toml:8 \(jinja-sandbox for ecdsa\): id is not a PYSEC-, GHSA- or",
            id="not an advisory id",
        ),
        pytest.param(
            VALID_IGNORE_FILE.replace("expires = 2027-01-15", "expiry = 2027-01-15"),
            r"^audit-ignore\.toml:8: unknown key 'expiry'; the keys are id, package, reason, ",
            id="misspelt key",
        ),
        pytest.param(
            VALID_IGNORE_FILE.replace('[[ignore]]\nid = "CVE', '[[ignored]]\nid = "CVE'),
            r"^audit-ignore\.toml: expected only \[\[ignore\]\] tables, found \['ignored'\]",
            id="misspelt table",
        ),
        pytest.param(
            VALID_IGNORE_FILE.replace('package = "jinja2"', "package = jinja2"),
            r"^audit-ignore\.toml: not valid TOML \(Invalid value \(at line 4, column 11\)\); "
            r"fix the syntax$",
            id="malformed TOML",
        ),
    ],
)
def test_bad_ignore_file_is_one_line_naming_the_file_and_the_fix(text, message):
    with pytest.raises(PipelineError, match=message) as raised:
        parse_ignore_file(text)
    assert "\n" not in str(raised.value), f"expected one line, found {str(raised.value)!r}"


def test_an_empty_ignore_file_and_no_file_mean_no_exceptions(tmp_path):
    assert parse_ignore_file("# nothing reviewed yet\n") == []
    assert audit.load_ignore_file(tmp_path / audit.IGNORE_FILE) == []


# --- ignore rules and the verdict ---------------------------------------------------------


def only_jinja_report() -> Report:
    report = parse_report(VULNERABLE_OUTPUT)
    jinja = tuple(v for v in report.vulnerabilities if v.package == "jinja2")
    return Report(jinja, report.audited, ())


def test_a_current_entry_ignores_its_finding_and_says_so():
    outcome = judge(only_jinja_report(), [entry()], today=TODAY, strict=False)
    ignored = [line for line in outcome.lines if line.startswith("ignored until 2027-03-01: ")]
    assert ignored == [
        "ignored until 2027-03-01: jinja2 3.1.4: GHSA-q2x7-8rv6-6q7h (fix: 3.1.5) — Jinja has "
        "a sandbox breakout through indirect reference to format method "
        "[sandbox not used: templates are ours]"
    ]
    assert not any(line.startswith("jinja2 3.1.4: GHSA-q2x7") for line in outcome.lines)
    assert not any("matches no finding" in line for line in outcome.lines), outcome.lines
    assert "(1 ignored by audit-ignore.toml, 0 not audited)" in outcome.summary


def test_an_entry_may_name_the_advisory_by_its_cve_alias():
    outcome = judge(only_jinja_report(), [entry(id="CVE-2024-56201")], today=TODAY, strict=False)
    assert not any(line.startswith("jinja2 3.1.4: GHSA-gmj6-6f8f-6699") for line in outcome.lines)
    assert "1 ignored" in outcome.summary


def test_an_entry_for_another_package_ignores_nothing_and_is_reported_unused():
    outcome = judge(only_jinja_report(), [entry(package="jinja")], today=TODAY, strict=False)
    assert "jinja2 3.1.4: GHSA-q2x7-8rv6-6q7h (fix: 3.1.5) — " in "\n".join(outcome.lines)
    assert "audit-ignore.toml: GHSA-q2x7-8rv6-6q7h (jinja) matches no finding; remove it" in (
        outcome.lines
    )
    assert not outcome.passed


def test_package_names_compare_as_pypi_does():
    outcome = judge(only_jinja_report(), [entry(package="Jinja2")], today=TODAY, strict=False)
    assert "1 ignored" in outcome.summary, outcome.summary


def test_an_entry_ignores_through_its_expiry_day():
    outcome = judge(only_jinja_report(), [entry(expires=TODAY)], today=TODAY, strict=False)
    assert "1 ignored" in outcome.summary, outcome.summary


def test_an_expired_entry_no_longer_ignores_and_is_reported():
    expired = entry(expires=date(2026, 12, 1))
    outcome = judge(only_jinja_report(), [expired], today=TODAY, strict=False)
    assert "jinja2 3.1.4: GHSA-q2x7-8rv6-6q7h (fix: 3.1.5) — " in "\n".join(outcome.lines)
    assert (
        "audit-ignore.toml: GHSA-q2x7-8rv6-6q7h (jinja2) expired on 2026-12-01 and no longer "
        "ignores; fix the package, or review the entry and give it a new date"
    ) in outcome.lines
    assert "0 ignored" in outcome.summary
    assert not outcome.passed


def test_unignored_vulnerabilities_fail_with_a_count_in_the_summary():
    outcome = judge(parse_report(VULNERABLE_OUTPUT), [entry()], today=TODAY, strict=False)
    assert not outcome.passed
    assert outcome.summary == (
        "8 known vulnerabilities in 6 of 8 packages (1 ignored by audit-ignore.toml, 0 not audited)"
    )
    findings = [line for line in outcome.lines if " (fix: " in line and "ignored" not in line]
    assert len(findings) == 8, findings


def test_every_finding_ignored_passes():
    entries = [
        entry(id=vulnerability.id, package=vulnerability.package)
        for vulnerability in only_jinja_report().vulnerabilities
    ]
    outcome = judge(only_jinja_report(), entries, today=TODAY, strict=True)
    assert outcome.passed, outcome
    assert outcome.summary == (
        "no known vulnerabilities in 8 packages (3 ignored by audit-ignore.toml, 0 not audited)"
    )


def test_a_clean_report_passes():
    outcome = judge(Report((), 1, ()), [], today=TODAY, strict=True)
    assert outcome == audit.Outcome(
        lines=(),
        summary="no known vulnerabilities in 1 package (0 ignored by audit-ignore.toml, "
        "0 not audited)",
        passed=True,
    )


@pytest.mark.parametrize(("strict", "passes"), [(False, True), (True, False)])
def test_a_package_not_audited_is_listed_and_fails_only_strict(strict, passes):
    report = Report((), 3, ("private-lib: Dependency not found on PyPI",))
    outcome = judge(report, [], today=TODAY, strict=strict)
    assert "not audited: private-lib: Dependency not found on PyPI" in outcome.lines
    assert outcome.passed is passes


# --- no vulnerability service -----------------------------------------------------------


def test_every_lookup_not_found_means_no_service_answered():
    unanswered = read_pip_audit(completed(0, NO_SERVICE_OUTPUT))
    assert unanswered == Unanswered("all 66 lookups answered 'not found'")


@pytest.mark.parametrize(
    "stderr",
    [
        pytest.param(PROXY_REFUSED, id="proxy refused"),
        pytest.param(NAME_NOT_RESOLVED, id="name not resolved"),
        pytest.param(ERROR_STATUS, id="service answered an error status"),
        pytest.param(CONNECT_TIMEOUT, id="connect timeout"),
    ],
)
def test_a_service_that_does_not_answer_is_recognised_from_stderr(stderr):
    unanswered = read_pip_audit(completed(1, "", stderr))
    assert isinstance(unanswered, Unanswered), unanswered
    assert "\n" not in unanswered.reason and len(unanswered.reason) <= 90, unanswered.reason


@pytest.mark.parametrize(("strict", "passes"), [(False, True), (True, False)])
def test_no_service_is_one_line_naming_the_service_and_strict(strict, passes):
    outcome = no_service(Unanswered("all 66 lookups answered 'not found'"), strict=strict)
    assert outcome.lines == ()
    assert "\n" not in outcome.summary
    assert outcome.summary.startswith(
        "nothing audited: pip-audit's vulnerability service, PyPI "
        "(pypi.org/pypi/<package>/<version>/json), does not answer from here "
        "(all 66 lookups answered 'not found'); "
    )
    assert "--strict" in outcome.summary
    assert outcome.passed is passes


def test_an_untrusted_certificate_is_an_error_naming_ssl_cert_file():
    expected = r"could not verify the TLS certificate of pypi.org with .*; set SSL_CERT_FILE to a"
    with pytest.raises(PipelineError, match=expected):
        read_pip_audit(completed(1, "", UNTRUSTED_CERTIFICATE))


def test_uvx_failing_to_fetch_pip_audit_is_an_error_with_its_last_line():
    with pytest.raises(PipelineError) as raised:
        read_pip_audit(completed(1, "", UVX_CANNOT_FETCH))
    assert str(raised.value).startswith(f"`uvx {audit.PIP_AUDIT}` exited 1: hint: Packages were")


def test_vulnerabilities_found_exit_1_and_are_still_read():
    report = read_pip_audit(completed(1, VULNERABLE_OUTPUT, "Found 9 known vulnerabilities"))
    assert isinstance(report, Report) and len(report.vulnerabilities) == 9


# --- the commands -----------------------------------------------------------------------


def test_pip_audit_is_pinned_and_reads_pins_without_resolving(tmp_path):
    command = audit.pip_audit_command(tmp_path / "requirements.txt")
    assert command[:2] == ["uvx", "pip-audit==2.10.1"]
    for flag in ("--no-deps", "--disable-pip", "--requirement"):
        assert flag in command, f"pip-audit command: expected {flag}, found {command}"
    assert command[command.index("--format") + 1] == "json"


def test_both_http_clients_get_the_hosts_ca_bundle(tmp_path, monkeypatch):
    bundle = tmp_path / "proxy-ca.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    environment = audit.pip_audit_environment()
    assert environment["SSL_CERT_FILE"] == str(bundle)
    assert environment["REQUESTS_CA_BUNDLE"] == str(bundle)


class FakeRun:
    """Stands in for pipeline.process.run: records commands, answers uvx with `answer`."""

    def __init__(self, answer: subprocess.CompletedProcess):
        self.answer = answer
        self.commands: list[list[str]] = []

    def __call__(self, command, **_options):
        self.commands.append(list(command))
        if command[0] == "uvx":
            return self.answer
        return completed(0)


def test_the_audit_exports_the_lock_then_judges_pip_audits_answer(tmp_path, monkeypatch):
    (tmp_path / audit.IGNORE_FILE).write_text(VALID_IGNORE_FILE)
    fake = FakeRun(completed(1, VULNERABLE_OUTPUT))
    monkeypatch.setattr(audit, "run", fake)
    outcome = audit.audit_locked_packages(tmp_path, strict=True, today=TODAY)
    assert [command[:2] for command in fake.commands] == [
        ["uv", "export"],
        ["uvx", audit.PIP_AUDIT],
    ]
    assert "--all-groups" in fake.commands[0] and "--locked" in fake.commands[0]
    assert not outcome.passed
    assert outcome.summary.startswith("7 known vulnerabilities in 5 of 8 packages (2 ignored")


def test_a_bad_ignore_file_stops_the_audit_before_any_command(tmp_path, monkeypatch):
    (tmp_path / audit.IGNORE_FILE).write_text('[[ignore]]\nid = "CVE-2024-1"\n')
    fake = FakeRun(completed(0, NO_SERVICE_OUTPUT))
    monkeypatch.setattr(audit, "run", fake)
    with pytest.raises(PipelineError, match=r"^audit-ignore\.toml:1 "):
        audit.audit_locked_packages(tmp_path, strict=False, today=TODAY)
    assert fake.commands == [], f"expected no command, found {fake.commands}"


def test_a_lock_uv_cannot_export_is_one_line_naming_uv_lock(tmp_path, monkeypatch):
    def failing_export(command, **_options):
        return completed(2, "", "error: The lockfile at `uv.lock` needs to be updated\n")

    monkeypatch.setattr(audit, "run", failing_export)
    with pytest.raises(PipelineError, match=r"^uv export failed: error: The lockfile .*; run `uv"):
        audit.audit_locked_packages(tmp_path, strict=False, today=TODAY)
