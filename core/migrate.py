"""Alembic, driven from code: `defect-genome db upgrade` and the embedded default's start-up.

Upgrades of one database are serialised across processes (`migration_lock`): two `defect-genome run`
started at once on a new data directory, or two deployments' migrate steps, would otherwise both
find no `alembic_version` table and both create the schema, and one of them fail.
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import make_url

from core.session import engine_for

ALEMBIC_DIR = Path(__file__).resolve().parents[1] / "alembic"
# pg_advisory_lock key of the migrations of a PostgreSQL database (any fixed 64-bit number; "dgmigrat")
PG_MIGRATION_LOCK_KEY = 0x64676D6967726174


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(ALEMBIC_DIR))
    # ConfigParser interpolation: a literal % in a password must be doubled.
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def sqlite_lock_path(database: str | Path) -> Path:
    """The lock file of a SQLite database file's migrations: beside it, e.g.
    <data_dir>/.defect-genome.sqlite.migrate.lock."""
    path = Path(database).absolute()
    return path.with_name(f".{path.name}.migrate.lock")


@contextmanager
def migration_lock(url: str) -> Iterator[None]:
    """Hold the database's migration lock: one process at a time migrates, the others wait.

    SQLite: an exclusive ``flock`` of a file beside the database (released by the kernel if the holder
    dies); PostgreSQL: the session-level advisory lock PG_MIGRATION_LOCK_KEY on a connection of its
    own (released when that connection ends). Other databases (and in-memory SQLite): no lock.
    """
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        database = parsed.database
        if not database or database == ":memory:" or parsed.query.get("mode") == "memory":
            yield
            return
        lock_path = sqlite_lock_path(database)
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        with open(lock_path, "a") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
    elif backend == "postgresql":
        # autocommit: the lock connection holds no snapshot and no transaction while the upgrade runs
        with engine_for(url).connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": PG_MIGRATION_LOCK_KEY})
            try:
                yield
            finally:
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": PG_MIGRATION_LOCK_KEY})
    else:
        yield


def upgrade(url: str, revision: str = "head") -> None:
    """Migrate to ``revision``; safe when several processes do it at once (the later ones find it done)."""
    with migration_lock(url):
        command.upgrade(alembic_config(url), revision)


def head_revision(url: str) -> str | None:
    return ScriptDirectory.from_config(alembic_config(url)).get_current_head()


def current_revision(url: str) -> str | None:
    with engine_for(url).connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def is_at_head(url: str) -> bool:
    return current_revision(url) == head_revision(url)
