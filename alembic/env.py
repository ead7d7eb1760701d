"""Alembic environment: the database URL comes from the POSTGRES_* settings, not alembic.ini."""

from __future__ import annotations

from logging.config import fileConfig

from alembic import context
from sqlalchemy import URL, create_engine, pool, text

from src.settings import get_settings

# Long enough for a migration's slowest statement, short enough to fail on a dead server.
MIGRATION_SOCKET_TIMEOUT_SECONDS = 30

config = context.config
if config.config_file_name is not None:
    fileConfig(config.config_file_name, disable_existing_loggers=False)

# No ORM models yet: migrations are written by hand, so there is nothing to autogenerate from.
target_metadata = None

# Any fixed number: concurrent upgrades (two app replicas starting) queue on this lock.
MIGRATION_LOCK_ID = 0x64617368  # "dash"


def database_url() -> URL:
    """postgresql+pg8000 URL from the settings; URL.create escapes odd password characters."""
    settings = get_settings()
    return URL.create(
        "postgresql+pg8000",
        username=settings.POSTGRES_USER,
        password=settings.POSTGRES_PASSWORD.get_secret_value(),
        host=settings.POSTGRES_HOST,
        port=settings.POSTGRES_PORT,
        database=settings.POSTGRES_DB,
    )


def run_migrations_offline() -> None:
    """Print the SQL instead of running it (`alembic upgrade head --sql`); needs no database."""
    context.configure(
        dialect_name="postgresql",
        target_metadata=target_metadata,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Run the migrations against the configured database, one at a time across processes."""
    engine = create_engine(
        database_url(),
        poolclass=pool.NullPool,
        # pg8000's socket timeout bounds the connect and each statement of a migration.
        connect_args={"timeout": MIGRATION_SOCKET_TIMEOUT_SECONDS},
    )
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata)
        with context.begin_transaction():
            connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": MIGRATION_LOCK_ID})
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
