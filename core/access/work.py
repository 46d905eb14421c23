"""Stage runs and work items: progress, the lease compare-and-sets (workers.lease, workers.execute) and the
sweeper's queries (workers.sweeper). Every UPDATE here runs in the caller's transaction; the caller commits."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import ColumnElement, CursorResult, Result, Row, and_, case, func, or_, select, text, update
from sqlalchemy.orm import Session

from core.models import Campaign, StageRun, Status, WorkItem


def stage_runs(session: Session, campaign_id: int) -> Sequence[StageRun]:
    """The campaign's stage runs in stage order."""
    return session.scalars(
        select(StageRun).where(StageRun.campaign_id == campaign_id).order_by(StageRun.position)
    ).all()


def stage_run_states(session: Session, campaign_id: int,
                     stages: Sequence[str]) -> Sequence[Row[str, Status, datetime | None]]:
    """(stage, status, finished_at) of the campaign's runs of ``stages``, in stage order."""
    return session.execute(
        select(StageRun.stage, StageRun.status, StageRun.finished_at)
        .where(StageRun.campaign_id == campaign_id, StageRun.stage.in_(stages)).order_by(StageRun.position)
    ).all()


def stage_statuses(session: Session, campaign_ids: Sequence[int]) -> Sequence[Row[int, str, Status]]:
    """(campaign id, stage, status) of the campaigns' stage runs, per campaign in stage order."""
    return session.execute(
        select(StageRun.campaign_id, StageRun.stage, StageRun.status)
        .where(StageRun.campaign_id.in_(campaign_ids)).order_by(StageRun.campaign_id, StageRun.position)
    ).all()


def stage_progress(session: Session, stage_run_id: int) -> tuple[int, int]:
    """(progress done, progress total) summed over the stage run's work items."""
    done, total = session.execute(
        select(func.coalesce(func.sum(WorkItem.progress_done), 0), func.coalesce(func.sum(WorkItem.progress_total), 0))
        .where(WorkItem.stage_run_id == stage_run_id)
    ).one()
    return int(done), int(total)


def find_work_item(session: Session, item_id: int) -> WorkItem | None:
    return session.get(WorkItem, item_id)


def get_work_item(session: Session, item_id: int) -> WorkItem:
    """The work item; NoResultFound when there is none."""
    return session.get_one(WorkItem, item_id)


def work_items(session: Session, item_ids: Iterable[int]) -> Sequence[WorkItem]:
    return session.scalars(select(WorkItem).where(WorkItem.id.in_(list(item_ids)))).all()


def work_items_of_task(session: Session, campaign_id: int, task_name: str) -> Sequence[WorkItem]:
    return session.scalars(
        select(WorkItem).where(WorkItem.campaign_id == campaign_id, WorkItem.task_name == task_name)
    ).all()


def campaign_id_of_item(session: Session, item_id: int) -> int:
    """The work item's campaign; NoResultFound when there is no such item."""
    return session.scalars(select(WorkItem.campaign_id).where(WorkItem.id == item_id)).one()


def count_stage_items(session: Session, campaign_id: int, *, stage: str | None = None,
                      stage_prefix: str | None = None) -> int:
    """Work items of the campaign's stage runs named ``stage`` (or whose name starts with ``stage_prefix``)."""
    if stage is not None:
        named = StageRun.stage == stage
    else:
        assert stage_prefix is not None, "a stage or a stage prefix"
        named = StageRun.stage.startswith(stage_prefix)
    return int(session.scalar(
        select(func.count(WorkItem.id)).join(StageRun).where(StageRun.campaign_id == campaign_id, named)
    ) or 0)


def last_item_activity(session: Session, campaign_ids: Sequence[int]) -> dict[int, datetime | None]:
    """The latest finish, heartbeat or start of any work item, per campaign."""
    return dict(session.execute(
        select(WorkItem.campaign_id,
               func.max(func.coalesce(WorkItem.finished_at, WorkItem.heartbeat_at, WorkItem.started_at)))
        .where(WorkItem.campaign_id.in_(campaign_ids)).group_by(WorkItem.campaign_id)
    ).all())


def lease_lapsed(lapsed: datetime) -> ColumnElement[bool]:
    """SQL: nobody holds the item's lease (no owner, never beat, or the last beat is older than `lapsed`)."""
    return or_(WorkItem.lease_owner.is_(None), WorkItem.heartbeat_at.is_(None), WorkItem.heartbeat_at < lapsed)


def work_item_counts(session: Session, campaign_id: int, lapsed: datetime) -> Sequence[Row[int, str, int]]:
    """(stage run id, state, items) of the campaign: the items' status, but "stale" for a running item whose
    lease lapsed (heartbeat older than ``lapsed``)."""
    state = case(
        (and_(WorkItem.status == "running", lease_lapsed(lapsed)), "stale"), else_=WorkItem.status
    ).label("state")
    return session.execute(
        select(WorkItem.stage_run_id, state, func.count(WorkItem.id))
        .where(WorkItem.campaign_id == campaign_id).group_by(WorkItem.stage_run_id, "state")
    ).all()


def running_notes(session: Session, campaign_id: int) -> dict[int, str]:
    """stage run id -> what one of its running items says it is doing (the latest note), for the progress views."""
    rows = session.execute(
        select(WorkItem.stage_run_id, WorkItem.key, WorkItem.progress_note)
        .where(WorkItem.campaign_id == campaign_id, WorkItem.status == Status.running,
               WorkItem.progress_note.is_not(None))
        .order_by(WorkItem.heartbeat_at)
    ).all()
    return {stage_run_id: f"{key}: {note}" for stage_run_id, key, note in rows}


def cancel_unfinished_items(session: Session, campaign_id: int, now: datetime) -> None:
    """Pending and running items of the campaign become cancelled."""
    unfinished = (Status.pending, Status.running)
    session.execute(
        update(WorkItem)
        .where(WorkItem.campaign_id == campaign_id, WorkItem.status.in_(unfinished))
        .values(status=Status.cancelled, finished_at=now)
    )


def reset_lapsed_items(session: Session, stage_run_ids: Sequence[int], lapsed: datetime,
                       now: datetime) -> Sequence[Row[int, str, str]]:
    """Unfinished items of the stage runs whose lease lapsed go back to pending (a compare-and-set);
    returns their (id, task name, queue)."""
    return session.execute(
        update(WorkItem)
        .where(WorkItem.stage_run_id.in_(stage_run_ids), WorkItem.status != Status.succeeded, lease_lapsed(lapsed))
        .values(status=Status.pending, error=None, finished_at=None, lease_owner=None, heartbeat_at=now)
        .returning(WorkItem.id, WorkItem.task_name, WorkItem.queue)
        .execution_options(synchronize_session=False)
    ).all()


def reopen_cancelled_items(session: Session, stage_run_ids: Sequence[int]) -> None:
    """Cancelled items of the stage runs become pending (their lease, if any, is kept)."""
    session.execute(
        update(WorkItem).where(WorkItem.stage_run_id.in_(stage_run_ids), WorkItem.status == Status.cancelled)
        .values(status=Status.pending, error=None, finished_at=None)
        .execution_options(synchronize_session=False)
    )


# ---- leases (workers.lease, workers.execute): compare-and-set UPDATEs; the caller's transaction commits


def held_leases(session: Session, stage_run_ids: Sequence[int]) -> Sequence[Row[int, str | None]]:
    """(item id, lease owner) of the stage runs' items that have a lease owner."""
    return session.execute(
        select(WorkItem.id, WorkItem.lease_owner)
        .where(WorkItem.stage_run_id.in_(stage_run_ids), WorkItem.lease_owner.is_not(None))
    ).all()


def expire_lease(session: Session, item_id: int, owner: str) -> None:
    """The lease ``owner`` holds on the item lapses now (its heartbeat is cleared)."""
    session.execute(
        update(WorkItem).where(WorkItem.id == item_id, WorkItem.lease_owner == owner)
        .values(heartbeat_at=None).execution_options(synchronize_session=False)
    )


def _rowcount(result: Result[Any]) -> int:
    return cast(CursorResult[Any], result).rowcount  # an UPDATE's result is a CursorResult


def claim_item(session: Session, item_id: int, owner: str, now: datetime, lapsed: datetime) -> bool:
    """Take the item for ``owner`` if it is pending, or running under a lease older than ``lapsed``: one
    UPDATE whose WHERE is the condition; True when the row changed."""
    result = session.execute(
        update(WorkItem)
        .where(WorkItem.id == item_id, WorkItem.status.in_((Status.pending, Status.running)), lease_lapsed(lapsed))
        .values(status=Status.running, lease_owner=owner, heartbeat_at=now, started_at=now,
                finished_at=None, attempts=WorkItem.attempts + 1)
        .execution_options(synchronize_session=False)
    )
    return _rowcount(result) == 1


def renew_lease(session: Session, item_id: int, owner: str, now: datetime) -> bool:
    """Beat the lease; False when ``owner`` no longer holds it."""
    result = session.execute(
        update(WorkItem).where(WorkItem.id == item_id, WorkItem.lease_owner == owner)
        .values(heartbeat_at=now).execution_options(synchronize_session=False)
    )
    return _rowcount(result) == 1


def item_and_campaign_status(session: Session, item_id: int) -> Row[Status, Status] | None:
    """(item status, campaign status) of a work item; None when there is no such item."""
    return session.execute(
        select(WorkItem.status, Campaign.status).join(Campaign, WorkItem.campaign_id == Campaign.id)
        .where(WorkItem.id == item_id)
    ).one_or_none()


def release_dead_lease(session: Session, item_id: int, owner: str, now: datetime) -> None:
    """``owner``'s process died: a running item it held goes back to pending, and its lease is freed."""
    session.execute(
        update(WorkItem)
        .where(WorkItem.id == item_id, WorkItem.lease_owner == owner, WorkItem.status == Status.running)
        .values(status=Status.pending, lease_owner=None, heartbeat_at=now)
        .execution_options(synchronize_session=False)
    )
    session.execute(
        update(WorkItem).where(WorkItem.id == item_id, WorkItem.lease_owner == owner)
        .values(lease_owner=None).execution_options(synchronize_session=False)
    )


def cancel_unleased_item(session: Session, item_id: int, now: datetime, lapsed: datetime) -> None:
    """The item, if unfinished and nobody holds its lease (see ``lease_lapsed``), becomes cancelled."""
    session.execute(
        update(WorkItem)
        .where(WorkItem.id == item_id, WorkItem.status.in_((Status.pending, Status.running)), lease_lapsed(lapsed))
        .values(status=Status.cancelled, finished_at=now, lease_owner=None)
        .execution_options(synchronize_session=False)
    )


def finish_leased_item(session: Session, item_id: int, owner: str, statuses: Sequence[Status],
                       values: dict[str, Any]) -> bool:
    """Set ``values`` on the item while ``owner`` holds its lease and its status is one of ``statuses``
    (a compare-and-set); True when the row changed."""
    result = session.execute(
        update(WorkItem).where(WorkItem.id == item_id, WorkItem.lease_owner == owner, WorkItem.status.in_(statuses))
        .values(**values).execution_options(synchronize_session=False)
    )
    return _rowcount(result) == 1


def release_lease(session: Session, item_id: int, owner: str) -> bool:
    """Free the lease ``owner`` holds on the item; False when it does not hold it."""
    result = session.execute(
        update(WorkItem).where(WorkItem.id == item_id, WorkItem.lease_owner == owner)
        .values(lease_owner=None).execution_options(synchronize_session=False)
    )
    return _rowcount(result) == 1


# ---- the lease sweeper (workers.sweeper)


def try_sweeper_lock(session: Session, key: int) -> bool:
    """Be the only sweeper until this transaction ends (a PostgreSQL advisory transaction lock on ``key``;
    on SQLite the database's write lock, waited for); False when another one holds it now."""
    if session.get_bind().dialect.name == "postgresql":
        return bool(session.scalar(text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": key}))
    # SQLite: a write that changes nothing takes the database's write lock; another sweeper waits for it
    session.execute(text("UPDATE work_items SET id = id WHERE 0 = 1"))
    return True


def _in_live_campaign(campaign_id: int | None) -> ColumnElement[bool]:
    """SQL: the item belongs to a pending or running campaign (to campaign ``campaign_id`` when given)."""
    campaigns = select(Campaign.id).where(Campaign.status.in_((Status.pending, Status.running)))
    if campaign_id is not None:
        campaigns = campaigns.where(Campaign.id == campaign_id)
    return WorkItem.campaign_id.in_(campaigns.scalar_subquery())


def requeue_lost_runs(session: Session, campaign_id: int | None, lapsed: datetime,
                      now: datetime) -> Sequence[Row[int, str, str]]:
    """Items of live campaigns running (or pending under a lease) whose lease lapsed go back to pending,
    unleased; returns their (id, task name, queue)."""
    return session.execute(
        update(WorkItem)
        .where(_in_live_campaign(campaign_id), lease_lapsed(lapsed),
               or_(WorkItem.status == Status.running,
                   and_(WorkItem.status == Status.pending, WorkItem.lease_owner.is_not(None))))
        .values(status=Status.pending, lease_owner=None, heartbeat_at=now)
        .returning(WorkItem.id, WorkItem.task_name, WorkItem.queue)
        .execution_options(synchronize_session=False)
    ).all()


def _waiting(campaign_id: int | None, lapsed: datetime) -> tuple[ColumnElement[bool], ...]:
    """SQL: unleased pending items of live campaigns last touched before ``lapsed``."""
    return (_in_live_campaign(campaign_id), WorkItem.status == Status.pending, WorkItem.lease_owner.is_(None),
            func.coalesce(WorkItem.heartbeat_at, WorkItem.created_at) < lapsed)


def waiting_queues(session: Session, campaign_id: int | None, lapsed: datetime) -> set[str]:
    """The queues of the pending items that waited since before ``lapsed``."""
    return set(session.scalars(select(WorkItem.queue).where(*_waiting(campaign_id, lapsed)).distinct()))


def waiting_items(session: Session, campaign_id: int | None, lapsed: datetime,
                  queues: Sequence[str]) -> Sequence[Row[int, str, str]]:
    """(id, task name, queue) of the pending items of ``queues`` that waited since before ``lapsed``, by id."""
    return session.execute(
        select(WorkItem.id, WorkItem.task_name, WorkItem.queue)
        .where(*_waiting(campaign_id, lapsed), WorkItem.queue.in_(queues)).order_by(WorkItem.id)
    ).all()


def mark_items_sent(session: Session, item_ids: Sequence[int], now: datetime) -> None:
    """The pending items among ``item_ids`` were sent again at ``now``."""
    session.execute(
        update(WorkItem).where(WorkItem.id.in_(item_ids), WorkItem.status == Status.pending)
        .values(heartbeat_at=now).execution_options(synchronize_session=False)
    )
