"""The lease sweeper: work whose process died is queued again. The database, not the broker, is the record.

Every DG_LEASE_TIMEOUT/4 s, one sweeper at a time (a PostgreSQL advisory lock; SQLite's write lock):

1. Lost runs: an item running (or pending under a lease, see pipeline.resume) whose heartbeat is older
   than DG_LEASE_TIMEOUT lost its process (SIGKILL, OOM, node gone). It goes back to pending and its
   task is sent again after the commit.
2. Lost messages (with a broker only): a killed worker's main process takes the messages it had
   reserved with it; Redis gives them back only after the visibility timeout (6 h by default). A
   pending item that has waited longer than DG_LEASE_TIMEOUT while its queue in the broker is empty
   has no message that anyone will run soon, so it is sent again. A message that was not lost after
   all (reserved by a live worker, a retry waiting for its countdown) makes a duplicate, and the
   duplicate does nothing: the claim is a compare-and-set (workers/lease.py). A queue with messages
   is left alone: the item may just be waiting its turn, and sending again would only pile up copies.

It runs in the API process (app/main.py), in every Celery worker's main process (workers/celery_app.py)
and, for its own campaign, in `defect-genome run/resume` (app/cli.py).
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime

from sqlalchemy import ColumnElement, and_, func, or_, select, text, update
from sqlalchemy.orm import Session

from core.models import Campaign, Status, WorkItem, utcnow
from core.session import session_scope
from core.settings import get_settings
from workers import lease
from workers.dispatch import send
from workers.pipeline import TaskRef

log = logging.getLogger(__name__)

ADVISORY_LOCK_KEY = 0x64670001  # "dg" + 1: the sweeper's PostgreSQL advisory lock


def _lock(session: Session) -> bool:
    """Be the only sweeper until this transaction ends; False when another one is sweeping now."""
    if session.get_bind().dialect.name == "postgresql":
        return bool(session.scalar(text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK_KEY}))
    # SQLite: a write that changes nothing takes the database's write lock; another sweeper waits for it
    session.execute(text("UPDATE work_items SET id = id WHERE 0 = 1"))
    return True


def queue_sizes(queues: set[str]) -> dict[str, int]:
    """Messages waiting in each broker queue (not counting those reserved by workers)."""
    from kombu.exceptions import ChannelError

    from workers.celery_app import celery_for

    sizes = {}
    with celery_for(get_settings().broker_url).connection_for_write() as connection:
        for name in sorted(queues):
            channel = connection.channel()
            try:
                sizes[name] = channel.queue_declare(queue=name, passive=True).message_count
            except ChannelError:  # Redis keeps no key for an empty list
                sizes[name] = 0
            finally:
                channel.close()
    return sizes


def sweep(*, resend_pending: bool, campaign_id: int | None = None) -> list[TaskRef]:
    """One pass (see the module doc); sends the items it requeued and returns them."""
    now = utcnow()
    lapsed = lease.lapsed_before(now)
    campaigns = select(Campaign.id).where(Campaign.status.in_((Status.pending, Status.running)))
    if campaign_id is not None:
        campaigns = campaigns.where(Campaign.id == campaign_id)
    in_live_campaign = WorkItem.campaign_id.in_(campaigns.scalar_subquery())
    with session_scope() as session:
        if not _lock(session):
            return []
        lost_runs = session.execute(
            update(WorkItem)
            .where(in_live_campaign, lease.lease_lapsed(lapsed),
                   or_(WorkItem.status == Status.running,
                       and_(WorkItem.status == Status.pending, WorkItem.lease_owner.is_not(None))))
            .values(status=Status.pending, lease_owner=None, heartbeat_at=now)
            .returning(WorkItem.id, WorkItem.task_name, WorkItem.queue)
            .execution_options(synchronize_session=False)
        ).all()
        refs = [TaskRef(*row) for row in sorted(lost_runs)]
        if resend_pending:
            refs += _lost_messages(session, in_live_campaign, lapsed, now)
    if refs:
        log.warning("lease sweeper: sending again work items %s", [ref.item_id for ref in refs])
        send(refs)
    return refs


def _lost_messages(session: Session, in_live_campaign: ColumnElement[bool], lapsed: datetime,
                   now: datetime) -> list[TaskRef]:
    """Pending items that waited longer than the lease timeout behind an empty queue; marked queued now."""
    waiting = (in_live_campaign, WorkItem.status == Status.pending, WorkItem.lease_owner.is_(None),
               func.coalesce(WorkItem.heartbeat_at, WorkItem.created_at) < lapsed)
    queues = set(session.scalars(select(WorkItem.queue).where(*waiting).distinct()))
    if not queues:
        return []
    empty = [name for name, size in queue_sizes(queues).items() if size == 0]
    refs = [TaskRef(*row) for row in session.execute(
        select(WorkItem.id, WorkItem.task_name, WorkItem.queue).where(*waiting, WorkItem.queue.in_(empty))
        .order_by(WorkItem.id)
    )]
    if refs:
        session.execute(
            update(WorkItem).where(WorkItem.id.in_([ref.item_id for ref in refs]), WorkItem.status == Status.pending)
            .values(heartbeat_at=now).execution_options(synchronize_session=False)
        )
    return refs


class Sweeper:
    """`sweep` every DG_LEASE_TIMEOUT/4 s on a daemon thread until `stop`."""

    def __init__(self, *, resend_pending: bool, campaign_id: int | None = None) -> None:
        self.resend_pending, self.campaign_id = resend_pending, campaign_id
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dg-lease-sweeper", daemon=True)

    def start(self) -> Sweeper:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.wait(lease.beat_interval()):
            try:
                sweep(resend_pending=self.resend_pending, campaign_id=self.campaign_id)
            except Exception:  # database or broker away for a moment: try again next round
                log.exception("lease sweeper: sweep failed")
