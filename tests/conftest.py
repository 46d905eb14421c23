"""Fixtures: a migrated database on each backend (SQLite file, real PostgreSQL), a data dir, users."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis
from sqlalchemy.engine import make_url
from support import POSTGRES_URL, REDIS_URL, reset_postgres


def _admin_conninfo() -> str:
    url = make_url(POSTGRES_URL)
    return (f"host={url.host} port={url.port or 5432} user={url.username} password={url.password or ''} "
            f"dbname={url.database}")


@pytest.fixture(scope="session")
def postgres_server_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, dropped at the end."""
    name = f"dg_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(_admin_conninfo(), autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    url = make_url(POSTGRES_URL).set(drivername="postgresql+psycopg", database=name)
    yield url.render_as_string(hide_password=False)
    from core.session import engine_for

    engine_for(url.render_as_string(hide_password=False)).dispose()
    with psycopg.connect(_admin_conninfo(), autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'dg.sqlite'}"
    url = request.getfixturevalue("postgres_server_url")
    reset_postgres(url)
    return url


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, database_url: str) -> dict[str, str]:
    """DG_ settings for one test: its own data dir and migrated database, tasks in-process."""
    from core.migrate import upgrade
    from core.settings import get_settings

    values = {
        "DG_DATA_DIR": str(tmp_path / "data"),
        "DG_DATABASE_URL": database_url,
        "DG_TASK_RETRY_BACKOFF": "0",
        "DG_TASK_MAX_RETRIES": "1",
    }
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("DG_BROKER_URL", raising=False)
    get_settings.cache_clear()
    upgrade(database_url)
    yield values
    from workers.dispatch import in_process

    in_process.wait(timeout=120)  # no task of this test may outlive its database
    get_settings.cache_clear()


@pytest.fixture
def broker(env, monkeypatch):
    """An API node: DG_BROKER_URL on the test Redis database with no worker consuming it; flushed after."""
    from core.settings import get_settings

    monkeypatch.setenv("DG_BROKER_URL", REDIS_URL)
    get_settings.cache_clear()
    redis.Redis.from_url(REDIS_URL).flushdb()
    yield REDIS_URL
    redis.Redis.from_url(REDIS_URL).flushdb()


@pytest.fixture
def tokens(env: dict[str, str]) -> dict[str, str]:
    from app.auth import create_token
    from core.session import session_scope

    with session_scope() as session:
        return {"alice": create_token(session, "alice"), "bob": create_token(session, "bob")}


@pytest.fixture
def client(env: dict[str, str]):
    from fastapi.testclient import TestClient

    from app.main import create_app

    with TestClient(create_app()) as test_client:
        yield test_client


@pytest.fixture(scope="session")
def local_slurm() -> str:
    """slurmctld + slurmd on localhost (scripts/start_slurm.sh; idempotent); the partition name."""
    import subprocess

    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(["bash", str(root / "scripts" / "start_slurm.sh")], capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, f"local Slurm did not start: {done.stderr.strip()[-300:]}"
    return "debug"
