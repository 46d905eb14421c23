"""Campaigns and users: ownership checks, pages of a user's campaigns, the campaign row lock."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from core.access.base import count_rows
from core.models import ApiToken, Campaign, Status, User


def user_by_name(session: Session, name: str) -> User | None:
    return session.scalars(select(User).where(User.name == name)).one_or_none()


def get_user_by_name(session: Session, name: str) -> User:
    """The user called ``name``; NoResultFound when there is none."""
    return session.scalars(select(User).where(User.name == name)).one()


def user_for_token_digest(session: Session, token_sha256: str) -> User | None:
    """The owner of the API token with this SHA-256 (hex); None for an unknown token."""
    row = session.scalars(select(ApiToken).where(ApiToken.token_sha256 == token_sha256)).one_or_none()
    return row.user if row else None


def find_campaign(session: Session, campaign_id: int) -> Campaign | None:
    return session.get(Campaign, campaign_id)


def get_campaign(session: Session, campaign_id: int) -> Campaign:
    """The campaign; NoResultFound when there is none."""
    return session.get_one(Campaign, campaign_id)


def get_campaign_for_owner(session: Session, campaign_id: int, owner_id: int) -> Campaign | None:
    """The campaign if ``owner_id`` owns it; another user's campaign is None, as a missing one."""
    campaign = session.get(Campaign, campaign_id)
    return campaign if campaign is not None and campaign.owner_id == owner_id else None


def lock_campaign(session: Session, campaign_id: int) -> Campaign | None:
    """The campaign under a row lock (SELECT ... FOR UPDATE on PostgreSQL) until the transaction ends."""
    return session.scalars(select(Campaign).where(Campaign.id == campaign_id).with_for_update()).one_or_none()


def _owned(owner_id: int) -> Select[Campaign]:
    return select(Campaign).where(Campaign.owner_id == owner_id)


def count_campaigns(session: Session, owner_id: int) -> int:
    return count_rows(session, _owned(owner_id))


def campaigns_of(session: Session, owner_id: int, offset: int, limit: int) -> Sequence[Campaign]:
    """A page of the owner's campaigns, newest first."""
    return session.scalars(_owned(owner_id).order_by(Campaign.id.desc()).offset(offset).limit(limit)).all()


def list_campaigns(session: Session, owner_id: int, offset: int, limit: int) -> tuple[Sequence[Campaign], int]:
    """(a page of the owner's campaigns newest first, how many the owner has)."""
    count = count_campaigns(session, owner_id)
    return campaigns_of(session, owner_id, offset, limit), count


def campaigns_in_progress(session: Session) -> Sequence[Campaign]:
    """Campaigns pending or running."""
    return session.scalars(select(Campaign).where(Campaign.status.in_((Status.pending, Status.running)))).all()
