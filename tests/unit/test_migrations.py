"""The Alembic scripts, checked without a database: one head, and the SQL it would run."""

from __future__ import annotations

import io

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

from src.entrypoint import ALEMBIC_INI


def test_the_migrations_form_a_single_line_ending_at_0001() -> None:
    scripts = ScriptDirectory.from_config(Config(str(ALEMBIC_INI)))
    assert scripts.get_heads() == ["0001"]


def test_the_first_migration_creates_oauth_connections_offline() -> None:
    output = io.StringIO()
    config = Config(str(ALEMBIC_INI), output_buffer=output)
    command.upgrade(config, "head", sql=True)
    sql = output.getvalue()
    assert "CREATE TABLE oauth_connections" in sql
    assert "id BIGSERIAL NOT NULL" in sql
    assert "CONSTRAINT uq_oauth_connections_state UNIQUE (state)" in sql
    assert "created_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL" in sql
