"""Request-scoped dependencies (a database session, the authenticated user), the bounded parameter types
every route uses, and the documented error answers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Path, Query, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict
from sqlalchemy.orm import Session

from app.auth import user_for_token
from core.access import get_campaign_for_owner
from core.models import Campaign, User
from core.session import session_factory


def get_session() -> Iterator[Session]:
    session = session_factory()()
    try:
        yield session
    finally:
        session.close()


SessionDep = Annotated[Session, Depends(get_session)]

# Row ids are PostgreSQL `integer`: a larger id in a path is a 422 naming the parameter, not a database error.
MAX_ID = 2**31 - 1
CampaignId = Annotated[int, Path(ge=1, le=MAX_ID, description="campaign id")]
StructureId = Annotated[int, Path(ge=1, le=MAX_ID, description="structure id")]
LabelId = Annotated[int, Path(ge=1, le=MAX_ID, description="label (job ledger row) id")]
Offset = Annotated[int, Query(ge=0, le=MAX_ID, description="rows to skip")]
Limit = Annotated[int, Query(ge=1, le=1000, description="most rows returned")]
# Free text in a query string (a stage, a cluster or snapshot name): printable, short; it reaches SQL as a
# bound parameter, where PostgreSQL refuses NUL.
PRINTABLE = r"^[^\x00-\x1f\x7f]*$"
QueryText = Annotated[str, Query(max_length=200, pattern=PRINTABLE)]


class Problem(BaseModel):
    """One entry of a 422: `field`/`message` (spec and upload checks) or FastAPI's `loc`/`msg`/`type`."""

    model_config = ConfigDict(extra="allow")

    field: str | None = None
    message: str | None = None
    loc: list[str | int] | None = None
    msg: str | None = None
    type: str | None = None


class Unprocessable(BaseModel):
    detail: list[Problem]


class ErrorMessage(BaseModel):
    detail: str | list[Problem]


def responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI documentation of the error answers ``codes`` of a route."""
    described = {
        400: (ErrorMessage, "malformed request body (e.g. not multipart/form-data)"),
        401: (ErrorMessage, "missing or invalid bearer token"),
        404: (ErrorMessage, "no such campaign or structure (or it is another user's)"),
        409: (ErrorMessage, "the request does not fit the current state"),
        413: (ErrorMessage, "the request body is too large"),
        422: (Unprocessable, "invalid input; each entry names the field"),
        503: (ErrorMessage, "busy: too many specs being checked; retry after the Retry-After seconds"),
    }
    return {code: {"model": described[code][0], "description": described[code][1]} for code in codes}

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


def get_owned_campaign(campaign_id: CampaignId, session: SessionDep, user: CurrentUser) -> Campaign:
    campaign = get_campaign_for_owner(session, campaign_id, user.id)
    # Another user's campaign is indistinguishable from a missing one.
    if campaign is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"campaign {campaign_id} not found")
    return campaign


OwnedCampaign = Annotated[Campaign, Depends(get_owned_campaign)]
