"""What every section of :mod:`core.access` shares: a row count, a round trip."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Select, func, select, text
from sqlalchemy.orm import Session


def count_rows(session: Session, query: Select[Any]) -> int:
    """Rows ``query`` returns (a count over it as a subquery)."""
    return session.scalar(select(func.count()).select_from(query.subquery())) or 0


def ping(connection: Connection) -> None:
    """A round trip to the database (raises when it is away)."""
    connection.execute(text("SELECT 1"))
