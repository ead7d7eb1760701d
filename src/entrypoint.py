"""The container entrypoint: `python -m src.entrypoint app|callback [--reload]`.

For `app` it runs the Alembic migrations to head (skipped when the database is already at
the head the image's build recorded), then serves with uvicorn in the same
process: PID 1 is the server and receives SIGTERM directly, and what the migrations already
imported (pydantic, the settings) is not imported a second time by a new interpreter, so
the service answers sooner after a start. `callback` skips the migrations. Every startup
problem is reported as one line on stderr, never a traceback.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

from pydantic import ValidationError

from src.ports import APP_PORT, CALLBACK_PORT
from src.settings import Settings, SharedSettings, get_settings, get_shared_settings

# The directory holding src/, alembic/ and alembic.ini: /app in the image, the repo on a host.
PROJECT_ROOT = Path(__file__).resolve().parent.parent
SOURCE_DIR = PROJECT_ROOT / "src"
ALEMBIC_INI = PROJECT_ROOT / "alembic.ini"
# The revisions the shipped migrations end at, written by the production build
# (docker/runtime-check.py, from the same alembic/ folder); absent in development.
RECORDED_HEADS = PROJECT_ROOT / "alembic" / "heads"

# Service name -> (ASGI application, port).
SERVICES: dict[str, tuple[str, int]] = {
    "app": ("src.main:app", APP_PORT),
    "callback": ("src.callback:app", CALLBACK_PORT),
}
# The container's only job is to serve; listening on every interface is the point.
LISTEN_HOST = "0.0.0.0"  # noqa: S104
# Well inside Docker's default 10 s stop timeout, so SIGKILL never cuts a request.
GRACEFUL_SHUTDOWN_SECONDS = 5
USAGE = "usage: python -m src.entrypoint app|callback [--reload]"


class StartupError(Exception):
    """A startup problem the operator can fix; printed as one line, exit status 1."""


def first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else ""


# PostgreSQL error codes a deployment can fix, and where (SQLSTATE, per the PostgreSQL docs).
SQLSTATE_FIXES = {
    "28P01": "check POSTGRES_USER and POSTGRES_PASSWORD",
    "28000": "check POSTGRES_USER and POSTGRES_PASSWORD",
    "3D000": "check POSTGRES_DB",
}


def describe_database_error(error: BaseException) -> str:
    """The server's own message and the setting to fix, from a driver error's details.

    SQLAlchemy wraps the driver's error (`.orig`); pg8000 carries the server's fields as a
    dict (M: message, C: SQLSTATE). Anything else falls back to the first line.
    """
    original = getattr(error, "orig", None) or error
    details = original.args[0] if original.args else None
    if isinstance(details, dict) and "M" in details:
        code = details.get("C", "")
        fix = SQLSTATE_FIXES.get(code)
        return f"{details['M']} (SQLSTATE {code})" + (f"; {fix}" if fix else "")
    return first_line(error)


def describe_settings_error(error: ValidationError) -> str:
    """One line naming every bad or missing setting."""
    problems = []
    for item in error.errors():
        name = ".".join(str(part) for part in item["loc"])
        problems.append(f"{name}: {item['msg']}" if name else item["msg"])
    return "; ".join(problems)


def uvicorn_options(service: str, settings: SharedSettings, *, reload: bool) -> dict:
    """uvicorn.run's arguments for `service` (a pure function of its inputs)."""
    application, port = SERVICES[service]
    options: dict = {
        "app": application,
        "app_dir": str(PROJECT_ROOT),
        "host": LISTEN_HOST,
        "port": port,
        "proxy_headers": True,
        "timeout_graceful_shutdown": GRACEFUL_SHUTDOWN_SECONDS,
    }
    if settings.APP_TLS_CERT_FILE is not None and settings.APP_TLS_KEY_FILE is not None:
        options["ssl_certfile"] = str(settings.APP_TLS_CERT_FILE)
        options["ssl_keyfile"] = str(settings.APP_TLS_KEY_FILE)
    if settings.APP_DEBUG:
        options["log_level"] = "debug"
    if reload:
        options |= {"reload": True, "reload_dirs": [str(SOURCE_DIR)]}
    return options


def serve(options: dict) -> None:
    """Serve until SIGTERM or SIGINT (uvicorn's own handlers: a graceful shutdown)."""
    import uvicorn

    uvicorn.run(**options)


def check_tls_files(settings: SharedSettings) -> None:
    """Fail with a clear line, not a uvicorn traceback, when a TLS file cannot be read."""
    for name in ("APP_TLS_CERT_FILE", "APP_TLS_KEY_FILE"):
        path: Path | None = getattr(settings, name)
        if path is None:
            continue
        if not path.is_file():
            raise StartupError(
                f"{name}={path} does not exist; create the dev pair with `nox -s certs` "
                "and mount it, or unset both TLS variables"
            )
        if not os.access(path, os.R_OK):
            raise StartupError(
                f"{name}={path} is not readable by uid {os.getuid()}; "
                "make it readable by that user (e.g. chown it to the container user)"
            )


def run_migrations(alembic_ini: Path = ALEMBIC_INI) -> None:
    """Upgrade the database to the newest Alembic revision (a no-op when already there)."""
    if not alembic_ini.is_file():
        raise StartupError(
            f"migration failed: {alembic_ini} not found; copy alembic.ini and alembic/ "
            "next to src/ in the image"
        )
    # Imported here: only `app` migrates, and the callback should not pay for Alembic.
    from alembic import command
    from alembic.config import Config

    try:
        command.upgrade(Config(str(alembic_ini)), "head")
    except Exception as error:
        raise StartupError(
            f"migration failed: {type(error).__name__}: {describe_database_error(error)}"
        ) from error


def recorded_heads(path: Path) -> set[str]:
    """The head revisions the image's build recorded (empty when it recorded none)."""
    try:
        return set(path.read_text().split())
    except OSError:
        return set()


def database_is_at(heads: set[str], settings: Settings) -> bool:
    """Whether the database's Alembic version is exactly `heads`, asked in one query.

    A restart of an up-to-date app then skips importing and running Alembic, the larger part
    of its start. Any doubt (no answer, no version table yet, another version) is False:
    Alembic runs, and reports what is wrong as it always does.
    """
    from src.connections import connect_postgres

    try:
        connection = connect_postgres(settings)
    except Exception:
        return False
    try:
        rows = connection.run("SELECT version_num FROM alembic_version")
    except Exception:
        return False
    finally:
        connection.close()
    return bool(heads) and {row[0] for row in rows} == heads


def migrate(settings: Settings) -> None:
    """Bring the database to the migrations' head, unless it is provably there already."""
    heads = recorded_heads(RECORDED_HEADS)
    if heads and database_is_at(heads, settings):
        print(f"dashtam: the database is at {' '.join(sorted(heads))}; no migration to run")
        return
    run_migrations()


def parse_arguments(arguments: Sequence[str]) -> tuple[str, bool]:
    """(service, reload) from the command line, or StartupError for a usage mistake."""
    if not arguments or arguments[0] not in SERVICES:
        given = repr(arguments[0]) if arguments else "nothing"
        raise StartupError(f"unknown service {given}; {USAGE}")
    unknown = [argument for argument in arguments[1:] if argument != "--reload"]
    if unknown:
        raise StartupError(f"unknown option {unknown[0]!r}; {USAGE}")
    return arguments[0], "--reload" in arguments[1:]


def main(arguments: Sequence[str] | None = None) -> int:
    """Prepare and serve the service; the exit status when it stops or cannot start."""
    arguments = sys.argv[1:] if arguments is None else arguments
    try:
        service, reload = parse_arguments(arguments)
    except StartupError as error:
        print(f"dashtam: {error}", file=sys.stderr)
        return 2
    try:
        try:
            # The callback gets only the shared settings: it needs no database credentials.
            settings = get_settings() if service == "app" else get_shared_settings()
        except ValidationError as error:
            raise StartupError(
                f"invalid settings: {describe_settings_error(error)} "
                "(set them in the container environment, e.g. env/.env)"
            ) from error
        check_tls_files(settings)
        if service == "app":
            migrate(settings)
    except StartupError as error:
        print(f"dashtam: {error}", file=sys.stderr)
        return 1
    serve(uvicorn_options(service, settings, reload=reload))
    return 0


if __name__ == "__main__":
    sys.exit(main())
