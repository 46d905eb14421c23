"""Running one work item: the body every Celery task and the in-process executor share.

A task receives an id, re-fetches the row, and does nothing if the item is already finished or
another live process holds its lease (workers/lease.py), so a re-delivered or duplicate message
changes nothing.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable

from core import access
from core.models import Status, WorkItem, utcnow
from core.session import session_scope
from workers import lease, pipeline
from workers.pipeline import TaskRef
from workers.stages.common import Cancelled

log = logging.getLogger(__name__)

RUNNERS: dict[str, Callable[[int], None]] = {stage.task_name: stage.runner for stage in pipeline.STAGES}


class PermanentError(Exception):
    """A failure that a retry cannot fix (bad input); the item fails at once."""


def _claim(item_id: int, owner: str) -> str | None:
    """Take the item's lease for `owner`; return its task name, or None when there is nothing to do here
    (finished, held by a live process, or its campaign stopped)."""
    with session_scope() as session:
        item = access.find_work_item(session, item_id)
        if item is None or item.status.finished:
            return None
        task_name = item.task_name
        campaign = access.find_campaign(session, item.campaign_id)
        if campaign is None or campaign.status in (Status.cancelled, Status.failed):
            # nothing more runs for a stopped campaign; an item a live process holds is left to it
            now = utcnow()
            access.cancel_unleased_item(session, item_id, now, lease.lapsed_before(now))
            return None
    return task_name if lease.claim(item_id, owner) else None


def _finish(item_id: int, owner: str, status: Status, error: str | None = None) -> list[TaskRef]:
    """Record the end of this process's run, only while `owner` still holds the item's lease.

    A lease taken over by another process (after a lapse) changes nothing here. A cancelled item keeps
    its status and its lease is released. An item the user resumed while this run was stopping (pending
    under our lease) takes a success as it is; otherwise its lease is released and it is sent again.
    """
    now = utcnow()
    values: dict = {"status": status, "error": error, "lease_owner": None, "heartbeat_at": now}
    if status.finished:
        values["finished_at"] = now
    if status == Status.succeeded:
        values["progress_done"] = WorkItem.progress_total
    ours = (Status.running, Status.pending) if status == Status.succeeded else (Status.running,)
    with session_scope() as session:
        # compare-and-set as the claim: only the lease holder's word counts
        if access.finish_leased_item(session, item_id, owner, ours, values):
            campaign_id = access.campaign_id_of_item(session, item_id)
            return pipeline.advance(session, campaign_id)
        if not access.release_lease(session, item_id, owner):
            log.warning("work item %s: lease %s was taken over; this run's %s is dropped", item_id, owner, status)
            return []
        item = access.get_work_item(session, item_id)
        if item.status == Status.pending:  # resumed under our lease: its message found the lease held
            return [TaskRef(item.id, item.task_name, item.queue)]
        return []  # cancelled (its stop file stays until the item is claimed again)


def abandon_item(item_id: int, message: str, owner: str) -> list[TaskRef]:
    """Fail an item whose last attempt died without reporting (its process crashed while holding `owner`)."""
    return _finish(item_id, owner, Status.failed, message)


def execute_item(item_id: int, *, final_attempt: bool, owner: str | None = None) -> list[TaskRef]:
    """Run the item under a lease; return the tasks to enqueue next. Raises to ask for a retry.

    A message for an item that another live process holds, or that is finished, does nothing.
    `owner`: the lease owner name to use (the in-process pool passes one, so the parent can free the
    item if this process dies); a new one by default.
    """
    owner = owner or lease.new_owner()
    task_name = _claim(item_id, owner)
    if task_name is None:
        return []
    failure: Exception | None = None  # re-raised after the lease is given back: the caller retries
    with lease.Heartbeat(item_id, owner):
        try:
            RUNNERS[task_name](item_id)
            status, error = Status.succeeded, None
        except Cancelled:
            status, error = Status.cancelled, "cancelled by the user"
        except Exception as exc:
            permanent = isinstance(exc, (PermanentError, ValueError))
            message = f"{type(exc).__name__}: {exc}"
            log.warning("work item %s failed: %s\n%s", item_id, message, traceback.format_exc())
            if permanent or final_attempt:
                status, error = Status.failed, message
            else:
                status, error, failure = Status.pending, f"retrying after {message}", exc
    follow_ups = _finish(item_id, owner, status, error)
    if failure is not None:
        raise failure
    return follow_ups
