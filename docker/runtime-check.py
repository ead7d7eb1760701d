"""Run in the runtime image while it is built: what ships must load, and what loads ships compiled.

    python runtime-check.py interpreter              (the runtime stage, its root filesystem)
    python runtime-check.py dependencies PYPROJECT   (the runtime stage, with the venv)
    python runtime-check.py SERVICE                  (SERVICE: app | callback)
    env APP_UID, APP_GID: who gets the files under /app

Each step checks what the one before could not see, once, in the earliest stage that has
it, so a dependency or a source change re-runs only the steps after it.
`interpreter`, on the cut root filesystem alone:
1. Every extension module of the standard library imports (a library that only `dlopen`
   finds would otherwise fail in a running container, not here).
2. TLS: a default client context finds the trust store.
`dependencies`, with the venv, shared by both images:
3. Each runtime dependency PYPROJECT names imports (its top-level modules), with what every
   service's start loads besides its own code (uvicorn's protocols and reloader, Alembic and
   the database dialect), and a time zone resolves (the venv's tzdata package).
SERVICE, in the service's own image:
4. The service loads as far as it can without PostgreSQL and Redis: uvicorn's configuration
   imports the ASGI app and its protocol implementations; for the app, the migrations too,
   whose head revisions it records in /app/alembic/heads for the entrypoint.

Every module the run loads from source leaves its bytecode in __pycache__ beside it (the
image's runtime sets PYTHONDONTWRITEBYTECODE and has a read-only root: this is the only time
bytecode is written), so a cold start reads bytecode instead of compiling on every start:
written as each module is imported, and compiled at the end for those the interpreter
loaded before this script could turn writing on (encodings, the venv's .pth hook). What the
dependencies load is compiled in the shared stage, so a source change compiles only the
rest. Files under /app are handed to APP_UID:APP_GID. A failure prints one line naming it
and stops the build.
"""

from __future__ import annotations

import sys

# Each module imported from here on writes its bytecode as it is compiled for the import,
# instead of being compiled a second time below; compile_what_loaded catches the rest.
sys.dont_write_bytecode = False

import compileall  # noqa: E402
import importlib  # noqa: E402
import os  # noqa: E402
import py_compile  # noqa: E402
import re  # noqa: E402
import ssl  # noqa: E402
from collections.abc import Iterable  # noqa: E402
from pathlib import Path  # noqa: E402
from types import ModuleType  # noqa: E402

APP_ROOT = Path("/app")
ASGI_APPS = {"app": "src.main:app", "callback": "src.callback:app"}


def fail(message: str) -> None:
    print(f"runtime-check: {message}", file=sys.stderr)
    sys.exit(1)


def import_standard_extensions() -> int:
    folders = [Path(entry) for entry in sys.path if entry.endswith("lib-dynload")]
    if not folders:
        fail(f"no lib-dynload folder on sys.path {sys.path}")
    names = sorted({path.name.split(".")[0] for folder in folders for path in folder.glob("*.so")})
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError as error:
            fail(f"the standard library's {name} does not import ({error}); add what it loads")
    return len(names)


def check_tls() -> None:
    context = ssl.create_default_context()
    paths = ssl.get_default_verify_paths()
    if paths.cafile:
        context.load_verify_locations(paths.cafile)
    if not context.cert_store_stats()["x509_ca"]:
        fail(f"TLS: no trusted certificate authority found ({paths.cafile or paths.capath})")


def check_time_zones() -> None:
    """A zoneinfo lookup: the slim image ships no tz database, the venv's tzdata package does."""
    import zoneinfo

    try:
        zoneinfo.ZoneInfo("Europe/Berlin")
    except zoneinfo.ZoneInfoNotFoundError as error:
        fail(f"time zones: {error}; ship the tz database or the tzdata package")


def canonical_name(distribution: str) -> str:
    """A distribution's normalized name (PEP 503): Pydantic_Settings -> pydantic-settings."""
    return re.sub(r"[-_.]+", "-", distribution).lower()


def import_dependencies(pyproject: Path) -> int:
    """Import the top-level modules of each runtime dependency pyproject.toml names; how many."""
    import tomllib
    from importlib.metadata import packages_distributions

    requirements = tomllib.loads(pyproject.read_text())["project"]["dependencies"]
    wanted = {canonical_name(re.match(r"[A-Za-z0-9._-]+", item).group()) for item in requirements}
    modules: dict[str, list[str]] = {name: [] for name in wanted}
    for module, distributions in packages_distributions().items():
        for distribution in {canonical_name(name) for name in distributions} & wanted:
            if not module.startswith("_"):
                modules[distribution].append(module)
    missing = sorted(name for name, found in modules.items() if not found)
    if missing:
        fail(f"runtime dependency {', '.join(missing)} has no module in the venv; check uv.lock")
    for module in sorted({module for found in modules.values() for module in found}):
        try:
            importlib.import_module(module)
        except ImportError as error:
            fail(f"the runtime dependency module {module} does not import ({error})")
    return sum(len(found) for found in modules.values())


def load_server_machinery() -> None:
    """What every service's start loads besides its own code: uvicorn with its protocol,
    lifespan and reload implementations, and the migrations' Alembic and database dialect."""
    import uvicorn.config
    import uvicorn.main  # uvicorn.run
    import uvicorn.supervisors  # --reload in development
    from alembic import command  # noqa: F401 - upgrade
    from alembic.runtime import migration  # noqa: F401 - what an upgrade runs
    from sqlalchemy import create_engine

    async def placeholder(scope, receive, send) -> None:  # an app, so that none is imported
        return None

    uvicorn.config.Config(placeholder, log_config=None).load()
    create_engine("postgresql+pg8000://compile@localhost/compile")  # imports the dialect


def load_service(service: str) -> None:
    """Import what the service's start imports (entrypoint, uvicorn, the app)."""
    import uvicorn.config

    sys.path.insert(0, str(APP_ROOT))
    for module in ("src.entrypoint", "src.healthcheck"):
        importlib.import_module(module)
    try:
        uvicorn.config.Config(ASGI_APPS[service], log_config=None).load()
    except (ImportError, SystemExit) as error:
        fail(f"{ASGI_APPS[service]} does not load ({error})")
    if service == "app":
        load_migrations()


def load_migrations() -> None:
    """Every revision, without a database (the machinery and the dialect loaded with the
    dependencies)."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config(str(APP_ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(APP_ROOT / "alembic"))
    scripts = ScriptDirectory.from_config(config)
    list(scripts.walk_revisions())
    compileall.compile_dir(str(APP_ROOT / "alembic"), quiet=1)
    # What src/entrypoint.py compares the database with, to skip Alembic when it is there.
    (APP_ROOT / "alembic" / "heads").write_text(" ".join(sorted(scripts.get_heads())) + "\n")


def compile_what_loaded(modules: Iterable[ModuleType] | None = None) -> int:
    """Bytecode for every loaded module (`modules`: sys.modules) whose source file has none
    yet; how many were compiled."""
    compiled = 0
    for module in list(sys.modules.values()) if modules is None else modules:
        spec = getattr(module, "__spec__", None)
        source, cached = getattr(spec, "origin", None), getattr(spec, "cached", None)
        if source and cached and source.endswith(".py") and not os.path.exists(cached):
            try:
                py_compile.compile(source, cfile=cached, doraise=True)
            except (py_compile.PyCompileError, OSError) as error:
                fail(f"cannot compile {source} ({error})")
            compiled += 1
    return compiled


def hand_app_files_to_the_app_user() -> None:
    uid, gid = int(os.environ["APP_UID"]), int(os.environ["APP_GID"])
    for folder, subfolders, names in os.walk(APP_ROOT):
        for name in [*subfolders, *names]:
            path = os.path.join(folder, name)
            if os.lstat(path).st_uid != uid:
                os.chown(path, uid, gid, follow_symlinks=False)


USAGE = f"usage: runtime-check.py interpreter | dependencies PYPROJECT | {'|'.join(ASGI_APPS)}"


def main(arguments: list[str]) -> int:
    if arguments == ["interpreter"]:
        extensions = import_standard_extensions()
        check_tls()
        checked = f"{extensions} standard extension modules and TLS load"
    elif len(arguments) == 2 and arguments[0] == "dependencies":
        imported = import_dependencies(Path(arguments[1]))
        load_server_machinery()
        check_time_zones()
        checked = f"{imported} dependency modules and time zones load"
    elif len(arguments) == 1 and arguments[0] in ASGI_APPS:
        load_service(arguments[0])
        checked = f"{arguments[0]} loads"
    else:
        print(USAGE, file=sys.stderr)
        return 2
    compiled = compile_what_loaded()
    hand_app_files_to_the_app_user()
    print(
        f"runtime-check: {checked}; bytecode kept for what they loaded "
        f"({compiled} compiled after loading)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
