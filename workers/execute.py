"""Running one work item: the body every Celery task and the in-process executor share.

A task receives an id, re-fetches the row, and does nothing if the item is
already finished, so a re-delivered message changes nothing.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable

from app.db.models import Campaign, Status, WorkItem, utcnow
from app.db.session import session_scope
from workers import pipeline
from workers.pipeline import TaskRef
from workers.stages.common import Cancelled
from workers.stages.labelling import label_structure
from workers.stages.reconstruction import assemble_cells, run_box
from workers.stages.refinement import ensemble_spread, refine_on_the_fly, train_model
from workers.stages.sampling import run_protocol
from workers.stages.selection import build_active_set, grade_snapshot, select_and_cut

log = logging.getLogger(__name__)

Runner = Callable[[int], None]
RUNNERS: dict[str, Runner] = {
    "dg.sampling.run_protocol": run_protocol,
    "dg.selection.build_active_set": build_active_set,
    "dg.selection.grade_snapshot": grade_snapshot,
    "dg.selection.select_and_cut": select_and_cut,
    "dg.reconstruction.run_box": run_box,
    "dg.reconstruction.assemble": assemble_cells,
    "dg.labelling.label_structure": label_structure,
    "dg.refinement.train_model": train_model,
    "dg.refinement.refine_on_the_fly": refine_on_the_fly,
    "dg.refinement.ensemble_spread": ensemble_spread,
}


class PermanentError(Exception):
    """A failure that a retry cannot fix (bad input); the item fails at once."""


def _claim(item_id: int) -> str | None:
    """Mark the item running; return its task name, or None when there is nothing to do."""
    with session_scope() as session:
        item = session.get(WorkItem, item_id, with_for_update=True)
        if item is None or item.status in (Status.succeeded, Status.cancelled, Status.failed):
            return None
        campaign = session.get(Campaign, item.campaign_id)
        if campaign is None or campaign.status in (Status.cancelled, Status.failed):
            item.status, item.finished_at = Status.cancelled, utcnow()
            return None
        item.status = Status.running
        item.attempts += 1
        item.started_at = item.heartbeat_at = utcnow()
        return item.task_name


def _finish(item_id: int, status: Status, error: str | None = None) -> list[TaskRef]:
    with session_scope() as session:
        item = session.get(WorkItem, item_id, with_for_update=True)
        if item is None:
            return []
        item.status, item.error = status, error
        if status.finished:
            item.finished_at = utcnow()
        if status == Status.succeeded:
            item.progress_done = item.progress_total
        return pipeline.advance(session, item.campaign_id)


def abandon_item(item_id: int, message: str) -> list[TaskRef]:
    """Fail an item whose last attempt died without reporting (its process crashed)."""
    with session_scope() as session:
        item = session.get(WorkItem, item_id)
        if item is None or item.status.finished:
            return []
    return _finish(item_id, Status.failed, message)


def execute_item(item_id: int, *, final_attempt: bool) -> list[TaskRef]:
    """Run the item; return the tasks to enqueue next. Raises to ask for a retry."""
    task_name = _claim(item_id)
    if task_name is None:
        return []
    try:
        RUNNERS[task_name](item_id)
    except Cancelled:
        return _finish(item_id, Status.cancelled, "cancelled by the user")
    except Exception as exc:
        permanent = isinstance(exc, (PermanentError, ValueError))
        message = f"{type(exc).__name__}: {exc}"
        log.warning("work item %s failed: %s\n%s", item_id, message, traceback.format_exc())
        if permanent or final_attempt:
            _finish(item_id, Status.failed, message)
            return []
        _finish(item_id, Status.pending, f"retrying after {message}")
        raise
    return _finish(item_id, Status.succeeded)
