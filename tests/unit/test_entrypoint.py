"""The container entrypoint: the uvicorn command line, migrations first, one-line failures."""

from __future__ import annotations

from pathlib import Path

import alembic.command
import pytest
from sqlalchemy.exc import OperationalError

from src import entrypoint
from src.ports import APP_PORT, CALLBACK_PORT
from src.settings import get_settings

pytestmark = pytest.mark.usefixtures("settings_environment")


@pytest.fixture
def exec_calls(monkeypatch: pytest.MonkeyPatch) -> list[dict]:
    """Records what the entrypoint would serve instead of starting a server."""
    calls: list[dict] = []
    monkeypatch.setattr(entrypoint, "serve", calls.append)
    return calls


@pytest.fixture
def upgrades(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """Records Alembic upgrades (config file, revision) instead of touching a database."""
    calls: list[tuple[str, str]] = []
    monkeypatch.setattr(
        alembic.command,
        "upgrade",
        lambda config, revision: calls.append((config.config_file_name, revision)),
    )
    return calls


@pytest.fixture
def tls_files(settings_environment, tmp_path: Path) -> tuple[Path, Path]:
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    cert.write_text("certificate")
    key.write_text("key")
    settings_environment.setenv("APP_TLS_CERT_FILE", str(cert))
    settings_environment.setenv("APP_TLS_KEY_FILE", str(key))
    return cert, key


@pytest.mark.parametrize(
    ("service", "application", "port"),
    [("app", "src.main:app", APP_PORT), ("callback", "src.callback:app", CALLBACK_PORT)],
    ids=["app serves src.main on 8000", "callback serves src.callback on 8182"],
)
def test_uvicorn_serves_the_service_on_its_port(service: str, application: str, port: int) -> None:
    options = entrypoint.uvicorn_options(service, get_settings(), reload=False)
    assert options["app"] == application
    assert options["port"] == port
    assert options["host"] == entrypoint.LISTEN_HOST
    assert options["proxy_headers"] is True
    assert options["timeout_graceful_shutdown"] == 5


def test_uvicorn_serves_plain_http_when_no_tls_files_are_set() -> None:
    options = entrypoint.uvicorn_options("app", get_settings(), reload=False)
    assert "ssl_certfile" not in options
    assert "ssl_keyfile" not in options


def test_uvicorn_serves_https_with_the_configured_tls_files(tls_files) -> None:
    cert, key = tls_files
    options = entrypoint.uvicorn_options("callback", get_settings(), reload=False)
    assert options["ssl_certfile"] == str(cert)
    assert options["ssl_keyfile"] == str(key)


@pytest.mark.parametrize("reload", [True, False], ids=["with --reload", "without --reload"])
def test_uvicorn_watches_only_the_source_folder_when_reloading(reload: bool) -> None:
    options = entrypoint.uvicorn_options("app", get_settings(), reload=reload)
    assert options.get("reload", False) is reload
    assert options.get("reload_dirs") == ([str(entrypoint.SOURCE_DIR)] if reload else None)


def test_every_option_is_one_uvicorn_run_takes() -> None:
    import inspect

    import uvicorn

    accepted = set(inspect.signature(uvicorn.run).parameters)
    options = entrypoint.uvicorn_options("app", get_settings(), reload=True)
    assert set(options) <= accepted, f"not uvicorn.run arguments: {set(options) - accepted}"


def test_the_alembic_config_sits_next_to_the_package() -> None:
    assert entrypoint.ALEMBIC_INI.is_file()
    assert (entrypoint.PROJECT_ROOT / "alembic" / "env.py").is_file()


def test_app_migrates_to_head_and_then_serves(exec_calls, upgrades) -> None:
    assert entrypoint.main(["app"]) == 0
    assert upgrades == [(str(entrypoint.ALEMBIC_INI), "head")]
    assert exec_calls == [entrypoint.uvicorn_options("app", get_settings(), reload=False)]


class FakeConnection:
    """pg8000.native.Connection's run/close, answering one query with rows or an error."""

    def __init__(self, rows: list[list[str]] | None = None, error: Exception | None = None):
        self.rows, self.error, self.closed = rows, error, False

    def run(self, _sql: str) -> list[list[str]]:
        if self.error:
            raise self.error
        return self.rows or []

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def recorded_heads(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """The heads file the production build writes, recording revision 0001."""
    heads = tmp_path / "heads"
    heads.write_text("0001\n")
    monkeypatch.setattr(entrypoint, "RECORDED_HEADS", heads)
    return heads


def database_answering(monkeypatch: pytest.MonkeyPatch, connection) -> list[FakeConnection]:
    """connect_postgres replaced: each call returns `connection` or raises it; the calls."""
    import src.connections

    made: list[FakeConnection] = []

    def connect(_settings):
        if isinstance(connection, Exception):
            raise connection
        made.append(connection)
        return connection

    monkeypatch.setattr(src.connections, "connect_postgres", connect)
    return made


def test_an_app_whose_database_is_at_the_recorded_head_serves_without_alembic(
    monkeypatch, recorded_heads, exec_calls, upgrades, capsys
) -> None:
    made = database_answering(monkeypatch, FakeConnection(rows=[["0001"]]))
    assert entrypoint.main(["app"]) == 0
    assert upgrades == [], "Alembic ran although the database was at the recorded head"
    assert made and made[0].closed, "the version query's connection was left open"
    assert "at 0001; no migration to run" in capsys.readouterr().out
    assert exec_calls == [entrypoint.uvicorn_options("app", get_settings(), reload=False)]


@pytest.mark.parametrize(
    "answer",
    [
        FakeConnection(rows=[["0000"]]),
        FakeConnection(rows=[]),
        FakeConnection(error=Exception('relation "alembic_version" does not exist')),
        ConnectionRefusedError(111, "Connection refused"),
    ],
    ids=["an older revision", "no revision", "no version table yet", "no answer"],
)
def test_an_app_whose_database_is_not_provably_at_head_runs_alembic(
    monkeypatch, recorded_heads, exec_calls, upgrades, answer
) -> None:
    database_answering(monkeypatch, answer)
    assert entrypoint.main(["app"]) == 0
    assert upgrades == [(str(entrypoint.ALEMBIC_INI), "head")]


def test_without_recorded_heads_alembic_runs_and_nothing_is_asked_first(
    monkeypatch, tmp_path, exec_calls, upgrades
) -> None:
    monkeypatch.setattr(entrypoint, "RECORDED_HEADS", tmp_path / "absent")
    made = database_answering(monkeypatch, FakeConnection(rows=[["0001"]]))
    assert entrypoint.main(["app"]) == 0
    assert upgrades == [(str(entrypoint.ALEMBIC_INI), "head")]
    assert made == [], "the database was asked although no heads were recorded"


def test_callback_starts_without_migrating(exec_calls, upgrades) -> None:
    entrypoint.main(["callback", "--reload"])
    assert upgrades == []
    assert exec_calls == [entrypoint.uvicorn_options("callback", get_settings(), reload=True)]


def test_a_failed_migration_prints_one_line_and_exits_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], exec_calls
) -> None:
    def refuse(_config, _revision) -> None:
        raise OperationalError(
            "SELECT 1", {}, Exception('password authentication failed for user "dashtam"\nmore')
        )

    monkeypatch.setattr(alembic.command, "upgrade", refuse)
    assert entrypoint.main(["app"]) == 1
    stderr = capsys.readouterr().err
    assert stderr.count("\n") == 1, stderr
    assert stderr.startswith("dashtam: migration failed: OperationalError: ")
    assert "password authentication failed" in stderr
    assert "Traceback" not in stderr
    assert exec_calls == []


def test_a_missing_alembic_ini_is_named_in_one_line(tmp_path: Path) -> None:
    with pytest.raises(entrypoint.StartupError, match=r"alembic\.ini not found"):
        entrypoint.run_migrations(tmp_path / "alembic.ini")


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ([], "unknown service nothing"),
        (["web"], "unknown service 'web'"),
        (["app", "--reloa"], "unknown option '--reloa'"),
    ],
    ids=["no service", "an unknown service", "an unknown option"],
)
def test_a_usage_mistake_prints_one_line_and_exits_2(
    capsys: pytest.CaptureFixture[str], exec_calls, arguments: list[str], message: str
) -> None:
    assert entrypoint.main(arguments) == 2
    stderr = capsys.readouterr().err
    assert stderr.count("\n") == 1, stderr
    assert message in stderr
    assert "usage: python -m src.entrypoint app|callback [--reload]" in stderr
    assert exec_calls == []


def test_missing_settings_are_named_in_one_line(
    settings_environment, capsys: pytest.CaptureFixture[str], exec_calls, upgrades
) -> None:
    settings_environment.delenv("POSTGRES_PASSWORD")
    assert entrypoint.main(["app"]) == 1
    stderr = capsys.readouterr().err
    assert stderr.count("\n") == 1, stderr
    assert "dashtam: invalid settings: POSTGRES_PASSWORD: Field required" in stderr
    assert upgrades == []
    assert exec_calls == []


def test_the_callback_starts_without_database_credentials(settings_environment, exec_calls) -> None:
    for name in ("POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB"):
        settings_environment.delenv(name)
    entrypoint.main(["callback"])
    assert len(exec_calls) == 1


def test_the_app_reads_its_database_password_from_a_secret_file(
    settings_environment, tmp_path: Path, exec_calls, upgrades
) -> None:
    secret = tmp_path / "postgres_password"
    secret.write_text("from-the-secret-file\n")
    settings_environment.delenv("POSTGRES_PASSWORD")
    settings_environment.setenv("POSTGRES_PASSWORD_FILE", str(secret))
    assert entrypoint.main(["app"]) == 0
    assert get_settings().POSTGRES_PASSWORD.get_secret_value() == "from-the-secret-file"
    assert len(upgrades) == 1
    assert len(exec_calls) == 1


def test_an_unreadable_secret_file_is_named_in_one_line(
    settings_environment,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    exec_calls,
    upgrades,
) -> None:
    absent = tmp_path / "postgres_password"
    settings_environment.delenv("POSTGRES_PASSWORD")
    settings_environment.setenv("POSTGRES_PASSWORD_FILE", str(absent))
    assert entrypoint.main(["app"]) == 1
    stderr = capsys.readouterr().err
    assert stderr.count("\n") == 1, stderr
    assert stderr.startswith(
        f"dashtam: invalid settings: POSTGRES_PASSWORD_FILE={absent} cannot be read "
        "(No such file or directory)"
    )
    assert "Traceback" not in stderr
    assert upgrades == []
    assert exec_calls == []


@pytest.mark.parametrize(
    ("service", "name"),
    [("app", "POSTGRES_PASSWORD"), ("callback", "REDIS_PASSWORD")],
    ids=["app with POSTGRES_PASSWORD", "callback with REDIS_PASSWORD"],
)
def test_a_secret_set_both_ways_stops_the_service_in_one_line_without_either_value(
    settings_environment,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    exec_calls,
    upgrades,
    service: str,
    name: str,
) -> None:
    secret = tmp_path / "secret"
    secret.write_text("secret-from-the-file-7f3a\n")
    settings_environment.setenv(name, "secret-from-the-environment-91c2")
    settings_environment.setenv(f"{name}_FILE", str(secret))
    assert entrypoint.main([service]) == 1
    stderr = capsys.readouterr().err
    assert stderr.count("\n") == 1, stderr
    assert f"dashtam: invalid settings: set {name} or {name}_FILE, not both" in stderr
    assert "secret-from-the-file-7f3a" not in stderr
    assert "secret-from-the-environment-91c2" not in stderr
    assert upgrades == []
    assert exec_calls == []


def test_a_missing_tls_file_is_named_before_uvicorn_starts(
    tls_files, capsys: pytest.CaptureFixture[str], exec_calls, upgrades
) -> None:
    cert, _key = tls_files
    cert.unlink()
    assert entrypoint.main(["app"]) == 1
    stderr = capsys.readouterr().err
    assert f"APP_TLS_CERT_FILE={cert} does not exist" in stderr
    assert upgrades == []
    assert exec_calls == []


class _DriverError(Exception):
    """Shaped like pg8000's errors: the server's fields in args[0]."""


class _WrappedError(Exception):
    """Shaped like SQLAlchemy's DBAPIError: the driver's error in .orig."""

    def __init__(self, orig: BaseException) -> None:
        super().__init__("(pg8000.exceptions.DatabaseError) {...}")
        self.orig = orig


def test_a_refused_password_names_the_settings_to_check():
    server = {"S": "FATAL", "C": "28P01", "M": 'password authentication failed for user "dashtam"'}
    described = entrypoint.describe_database_error(_WrappedError(_DriverError(server)))
    assert described == (
        'password authentication failed for user "dashtam" (SQLSTATE 28P01); '
        "check POSTGRES_USER and POSTGRES_PASSWORD"
    )


def test_an_unknown_database_error_keeps_its_first_line():
    assert entrypoint.describe_database_error(RuntimeError("boom\nmore")) == "boom"
