"""Bearer tokens: created by `defect-genome token create`, stored as SHA-256 only."""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.models import ApiToken, User

LOCAL_USER = "local"


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def get_or_create_user(session: Session, name: str) -> User:
    """The user called ``name``, created if there is none; safe when another process creates it at the same
    time (two `defect-genome run` starting at once): the insert runs in a savepoint, and when it collides
    with the other process's row (IntegrityError) that row is read instead."""
    user = session.scalars(select(User).where(User.name == name)).one_or_none()
    if user is not None:
        return user
    try:
        with session.begin_nested():
            user = User(name=name)
            session.add(user)
    except IntegrityError:
        user = session.scalars(select(User).where(User.name == name)).one()
    return user


def create_token(session: Session, user_name: str, label: str = "") -> str:
    user = get_or_create_user(session, user_name)
    token = "dg_" + secrets.token_urlsafe(32)
    session.add(ApiToken(user_id=user.id, token_sha256=_digest(token), label=label))
    session.flush()
    return token


def user_for_token(session: Session, token: str) -> User | None:
    row = session.scalars(select(ApiToken).where(ApiToken.token_sha256 == _digest(token))).one_or_none()
    return row.user if row else None
