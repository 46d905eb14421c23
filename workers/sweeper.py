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

from sqlalchemy.orm import Session

from core import access
from core.models import utcnow
from core.session import session_scope
from core.settings import get_settings
from workers import lease
from workers.dispatch import send
from workers.pipeline import TaskRef

log = logging.getLogger(__name__)

ADVISORY_LOCK_KEY = 0x64670001  # "dg" + 1: the sweeper's PostgreSQL advisory lock


def _lock(session: Session) -> bool:
    """Be the only sweeper until this transaction ends; False when another one is sweeping now."""
    return access.try_sweeper_lock(session, ADVISORY_LOCK_KEY)


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
    with session_scope() as session:
        if not _lock(session):
            return []
        lost_runs = access.requeue_lost_runs(session, campaign_id, lapsed, now)
        refs = [TaskRef(*row) for row in sorted(lost_runs)]
        if resend_pending:
            refs += _lost_messages(session, campaign_id, lapsed, now)
    if refs:
        log.warning("lease sweeper: sending again work items %s", [ref.item_id for ref in refs])
        send(refs)
    return refs


def _lost_messages(session: Session, campaign_id: int | None, lapsed: datetime, now: datetime) -> list[TaskRef]:
    """Pending items (of live campaigns, of ``campaign_id`` when given) that waited longer than the lease
    timeout behind an empty queue; marked queued now."""
    queues = access.waiting_queues(session, campaign_id, lapsed)
    if not queues:
        return []
    empty = [name for name, size in queue_sizes(queues).items() if size == 0]
    refs = [TaskRef(*row) for row in access.waiting_items(session, campaign_id, lapsed, empty)]
    if refs:
        access.mark_items_sent(session, [ref.item_id for ref in refs], now)
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
