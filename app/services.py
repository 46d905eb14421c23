"""Campaign operations shared by the REST API and the CLI; each commits before it enqueues."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db.models import Campaign, Status, User
from schemas import CampaignSpec
from workers import pipeline
from workers.dispatch import send
from workers.pipeline import TaskRef

Dispatch = Callable[[Iterable[TaskRef]], None]


def submit_campaign(session: Session, owner: User, spec: CampaignSpec, dispatch: Dispatch = send) -> Campaign:
    pipeline.check_spec(spec)
    campaign = pipeline.create_campaign(session, owner, spec)
    refs = pipeline.start(session, campaign)
    session.commit()
    dispatch(refs)
    return campaign


def cancel_campaign(session: Session, campaign: Campaign) -> None:
    pipeline.cancel(session, campaign)
    session.commit()


def resume_campaign(session: Session, campaign: Campaign, dispatch: Dispatch = send) -> None:
    refs = pipeline.resume(session, campaign)
    session.commit()
    dispatch(refs)


def recover_interrupted(session: Session, dispatch: Dispatch = send) -> list[int]:
    """Re-run the unfinished work of campaigns left running by a process that died.

    For the in-process executor only: its queue lived in the dead process. With a broker,
    unacknowledged tasks are delivered again by the broker itself.
    """
    campaigns = session.scalars(
        select(Campaign).where(Campaign.status.in_((Status.pending, Status.running)))
    ).all()
    for campaign in campaigns:
        resume_campaign(session, campaign, dispatch)
    return [campaign.id for campaign in campaigns]
