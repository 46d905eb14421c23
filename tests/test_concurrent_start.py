"""First starts that cannot race: migrations and the default user, from several processes at once.

Before the migration lock, two `defect-genome run` started together on an empty data directory
failed one of them 4 times out of 4 ("table alembic_version already exists"), and after `db upgrade`
3 out of 3 ("UNIQUE constraint failed: users.name"). These start real processes at the same moment:

- whole runs, 3 tries (10 under the ``slow`` marker): two `run` of a one-snapshot spec on an empty data
  directory (each migrates the SQLite file, creates or finds the user `local`, runs its campaign; ~3 s a
  try on an idle machine);
- PostgreSQL, 3 tries: two `db upgrade` on an empty database, then two `token create` of a new user;
- the user insert alone: get_or_create_user of one new name from 8 sessions at once (threads), 20
  rounds, on both backends (the code before the savepoint failed 20 of 20 rounds on SQLite, 18 of 20
  on PostgreSQL).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml
from sqlalchemy import create_engine, text
from support import reset_postgres

from core.migrate import head_revision, sqlite_lock_path

ONE_SNAPSHOT = {
    "name": "first-start", "element": "W", "lattice": "bcc", "lattice_constant": 3.165,
    "potential": "W_zhou.eam.alloy", "stop_after": "sampling",
    "sampling": {"protocols": [{"kind": "minimize", "name": "relax", "structure": {"kind": "bulk",
                                                                                   "supercell": [5, 5, 5]},
                                "box_relax": False}]},
}


def _start(*args: str, data_dir: Path, database_url: str | None = None) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DG_")}
    env["DG_DATA_DIR"] = str(data_dir)
    if database_url:
        env["DG_DATABASE_URL"] = database_url
    return subprocess.Popen([sys.executable, "-m", "app.cli", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _together(*commands: tuple[str, ...], data_dir: Path, database_url: str | None = None) -> list[str]:
    """Start the commands at once; assert each exits 0; their stdouts."""
    processes = [_start(*command, data_dir=data_dir, database_url=database_url) for command in commands]
    outputs = [process.communicate(timeout=120) for process in processes]
    for command, process, (_out, err) in zip(commands, processes, outputs):
        assert process.returncode == 0, f"{' '.join(command)} exited {process.returncode}:\n{err[-2000:]}"
    return [out for out, _ in outputs]


def _scalar(url: str, query: str):
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return connection.execute(text(query)).scalar()
    finally:
        engine.dispose()


@pytest.mark.parametrize("tries", [3, pytest.param(10, marks=pytest.mark.slow)])
def test_two_runs_started_at_once_on_an_empty_data_dir_both_succeed(tmp_path, tries):
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(ONE_SNAPSHOT))
    started = time.monotonic()
    for attempt in range(tries):
        data_dir = tmp_path / f"data-{attempt}"
        outputs = _together(("run", str(spec), "--no-progress"), ("run", str(spec), "--no-progress"),
                            data_dir=data_dir)
        assert all("'first-start': succeeded" in out for out in outputs), outputs
        url = f"sqlite:///{data_dir / 'defect-genome.sqlite'}"
        assert _scalar(url, "SELECT version_num FROM alembic_version") == head_revision(url)
        assert _scalar(url, "SELECT COUNT(*) FROM users") == 1
        assert _scalar(url, "SELECT COUNT(*) FROM campaigns WHERE status = 'succeeded'") == 2
        assert sqlite_lock_path(data_dir / "defect-genome.sqlite").exists()
    print(f"{tries} tries of two concurrent runs: {time.monotonic() - started:.1f} s")


def test_db_upgrade_at_once_on_an_empty_postgresql_database(tmp_path, postgres_server_url):
    started = time.monotonic()
    for attempt in range(3):
        reset_postgres(postgres_server_url)
        outputs = _together(("db", "upgrade"), ("db", "upgrade"), data_dir=tmp_path / "data",
                            database_url=postgres_server_url)
        head = head_revision(postgres_server_url)
        assert all(f"database at revision {head}" in out for out in outputs), outputs
        tokens = _together(("token", "create", "--user", f"user-{attempt}"),
                           ("token", "create", "--user", f"user-{attempt}"),
                           data_dir=tmp_path / "data", database_url=postgres_server_url)
        assert len({t.strip() for t in tokens}) == 2
        assert _scalar(postgres_server_url, "SELECT COUNT(*) FROM users") == 1
    print(f"3 tries of concurrent db upgrade + token create on PostgreSQL: {time.monotonic() - started:.1f} s")


def test_get_or_create_user_from_many_sessions_at_once_gives_one_user(env):
    from sqlalchemy import func, select

    from app.auth import get_or_create_user
    from core.models import User
    from core.session import session_scope

    sessions = 8
    for round_ in range(20):
        name = f"racer-{round_}"
        barrier = threading.Barrier(sessions)
        ids: list[int] = []
        errors: list[BaseException] = []

        def create(barrier: threading.Barrier, name: str, ids: list[int], errors: list[BaseException]) -> None:
            try:
                barrier.wait()
                with session_scope() as session:
                    ids.append(get_or_create_user(session, name).id)
            except BaseException as error:  # collected: the assertion below names it
                errors.append(error)

        threads = [threading.Thread(target=create, args=(barrier, name, ids, errors)) for _ in range(sessions)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert not errors, f"round {round_}: {errors[0]!r}"
        assert len(ids) == sessions and len(set(ids)) == 1
        with session_scope() as session:
            assert session.scalar(select(func.count()).select_from(User).where(User.name == name)) == 1

