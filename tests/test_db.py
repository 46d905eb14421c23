"""The schema on both backends: migrations, constraints, timestamps."""

from __future__ import annotations

from datetime import UTC

import pytest
from sqlalchemy import inspect
from sqlalchemy.exc import IntegrityError

from core.migrate import is_at_head
from core.models import Base, Campaign, Structure, User
from core.session import get_engine, session_scope


def test_migration_creates_every_model_table(env):
    assert is_at_head(env["DG_DATABASE_URL"])
    tables = set(inspect(get_engine()).get_table_names())
    assert set(Base.metadata.tables) <= tables
    assert {"campaigns", "stage_runs", "work_items", "structures", "environments", "labels", "artifacts"} <= tables


def test_migrations_match_the_models(env):
    """Alembic's autogenerate finds nothing to add: the models never run ahead of the migrations."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    with get_engine().connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert differences == []


def test_timestamps_come_back_timezone_aware(env):
    with session_scope() as session:
        session.add(User(name="carol"))
    with session_scope() as session:
        user = session.query(User).filter_by(name="carol").one()
        assert user.created_at.tzinfo is not None
        assert user.created_at.utcoffset() == UTC.utcoffset(None)


def test_a_snapshot_source_is_stored_once(env):
    with session_scope() as session:
        user = User(name="dave")
        session.add(user)
        session.flush()
        campaign = Campaign(owner_id=user.id, name="c", element="W", spec={})
        session.add(campaign)
        session.flush()
        campaign_id = campaign.id
    row = dict(campaign_id=campaign_id, sha256="0" * 64, path="p", stage="sampling", source="bulk/frame-0",
               formula="W2", n_atoms=2, pbc=[True] * 3, cell=[[1, 0, 0], [0, 1, 0], [0, 0, 1]])
    with session_scope() as session:
        session.add(Structure(**row))
    with pytest.raises(IntegrityError), session_scope() as session:
        session.add(Structure(**row))
