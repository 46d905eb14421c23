"""Bearer tokens: created by `defect-genome token create`, stored as SHA-256 only."""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.access import get_user_by_name, user_by_name, user_for_token_digest
from core.models import ApiToken, User

LOCAL_USER = "local"


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def get_or_create_user(session: Session, name: str) -> User:
    """The user called ``name``, created if there is none; safe when another process creates it at the same
    time (two `defect-genome run` starting at once): the insert runs in a savepoint, and when it collides
    with the other process's row (IntegrityError) that row is read instead."""
    user = user_by_name(session, name)
    if user is not None:
        return user
    try:
        with session.begin_nested():
            user = User(name=name)
            session.add(user)
    except IntegrityError:
        user = get_user_by_name(session, name)
    return user


def create_token(session: Session, user_name: str, label: str = "") -> str:
    user = get_or_create_user(session, user_name)
    token = "dg_" + secrets.token_urlsafe(32)
    session.add(ApiToken(user_id=user.id, token_sha256=_digest(token), label=label))
    session.flush()
    return token


def user_for_token(session: Session, token: str) -> User | None:
    return user_for_token_digest(session, _digest(token))
