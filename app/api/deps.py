"""Request-scoped dependencies: a database session and the authenticated user."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, HTTPException, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from app.auth import user_for_token
from app.db.models import Campaign, User
from app.db.session import session_factory


def get_session() -> Iterator[Session]:
    session = session_factory()()
    try:
        yield session
    finally:
        session.close()


SessionDep = Annotated[Session, Depends(get_session)]
_bearer = HTTPBearer(auto_error=False, description="token from `defect-genome token create`")


def get_current_user(
    session: SessionDep, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> User:
    user = user_for_token(session, credentials.credentials) if credentials else None
    if user is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "missing or invalid bearer token; create one with `defect-genome token create`",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return user


CurrentUser = Annotated[User, Depends(get_current_user)]


def get_owned_campaign(campaign_id: int, session: SessionDep, user: CurrentUser) -> Campaign:
    campaign = session.get(Campaign, campaign_id)
    # Another user's campaign is indistinguishable from a missing one.
    if campaign is None or campaign.owner_id != user.id:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"campaign {campaign_id} not found")
    return campaign


OwnedCampaign = Annotated[Campaign, Depends(get_owned_campaign)]
