"""Work-item leases: at most one live process runs a work item.

A process takes an item with one atomic compare-and-set UPDATE (`claim`), correct on PostgreSQL and
SQLite alike: the row changes only if the item is pending, or running under a lease whose heartbeat
is older than DG_LEASE_TIMEOUT (its holder died or lost the database). While the item's runner runs,
a `Heartbeat` thread of the same process renews the lease every DG_LEASE_TIMEOUT/4 s (LAMMPS and GPAW
release the GIL, so it beats during long runs too) and notices cancellation: it creates
`stop_file(item_id)`, which halts the item's LAMMPS run. Finishing an item takes effect only while
this process still holds the lease (workers.execute). The sweeper (workers.sweeper) requeues items
whose lease lapsed.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy.orm import Session

from core import access
from core.models import Status, utcnow
from core.session import session_scope
from core.settings import get_settings

log = logging.getLogger(__name__)


def stop_file(item_id: int) -> Path:
    """The file whose existence asks the process running `item_id` to stop (created on cancellation)."""
    path = get_settings().data_dir / "run" / f"item-{item_id}.stop"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def new_owner() -> str:
    """A lease owner name, new for every claim: host and pid for people, a token so it is never reused."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


def lapsed_before(now: datetime | None = None) -> datetime:
    """Heartbeats older than this are lapsed leases."""
    return (now or utcnow()) - timedelta(seconds=get_settings().lease_timeout)


CANCEL_POLL = 1.0  # s between the heartbeat's looks for a cancel


def beat_interval() -> float:
    return get_settings().lease_timeout / 4


def _gone_from_this_machine(owner: str) -> bool:
    """The lease's process ran on this machine and no longer exists."""
    host, _, rest = owner.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # someone else's process: alive
        return False
    return False


def expire_dead_local_leases(session: Session, stage_run_ids: Sequence[int]) -> None:
    """Embedded default: leases (of items of ``stage_run_ids``) of processes of this machine that are gone (a
    killed `run`, a server that died) lapse now rather than after the lease timeout, so `resume` at once runs
    what they held. Only where every executor is a process of this machine; a reused pid only means waiting
    for the timeout."""
    for item_id, owner in access.held_leases(session, stage_run_ids):
        if owner is not None and _gone_from_this_machine(owner):  # the query excludes None
            access.expire_lease(session, item_id, owner)


def claim(item_id: int, owner: str) -> bool:
    """Take the item for `owner`: pending, or running under a lapsed lease. False: someone else holds it,
    or it is finished. One UPDATE whose WHERE is the condition (a compare-and-set); the row count says
    whether it was ours. A stop file a cancelled earlier run left is removed."""
    now = utcnow()
    with session_scope() as session:
        claimed = access.claim_item(session, item_id, owner, now, lapsed_before(now))
    if claimed:
        stop_file(item_id).unlink(missing_ok=True)
    return claimed


def renew(item_id: int, owner: str) -> bool:
    """Renew the lease; False when `owner` no longer holds it (the item was taken over after a lapse)."""
    with session_scope() as session:
        return access.renew_lease(session, item_id, owner, utcnow())


def cancelled(item_id: int) -> bool:
    """The item or its campaign was cancelled."""
    with session_scope() as session:
        row = access.item_and_campaign_status(session, item_id)
    return row is None or Status.cancelled in row


def release_dead(item_id: int, owner: str) -> None:
    """The process that held `owner`'s lease died (the in-process pool saw it): free the item at once
    rather than after the lease timeout; a running item goes back to pending."""
    with session_scope() as session:
        access.release_dead_lease(session, item_id, owner, utcnow())


# Leases this process holds: item id -> owner (report_progress checks the item is still ours).
_held: dict[int, str] = {}
_held_lock = threading.Lock()


def held_owner(item_id: int) -> str | None:
    with _held_lock:
        return _held.get(item_id)


class Heartbeat:
    """`with Heartbeat(item_id, owner):` renews the lease from a daemon thread while the block runs.

    When the lease is lost (another process took the item over after a lapse) the thread stops
    beating and `lost` is set; report_progress then stops the runner. When the item or its campaign is
    cancelled it creates the stop file, once.
    """

    def __init__(self, item_id: int, owner: str) -> None:
        self.item_id, self.owner = item_id, owner
        self.lost = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"dg-lease-{item_id}", daemon=True)

    def __enter__(self) -> Heartbeat:
        with _held_lock:
            _held[self.item_id] = self.owner
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()
        with _held_lock:
            if _held.get(self.item_id) == self.owner:
                del _held[self.item_id]

    def _run(self) -> None:
        # Cancellation is looked for every second (one small SELECT), so LAMMPS stops within seconds of a
        # cancel; the lease is renewed every lease_timeout/4.
        stop_requested = False
        next_beat = time.monotonic() + beat_interval()
        while not self._stop.wait(min(CANCEL_POLL, beat_interval())):
            try:
                if time.monotonic() >= next_beat:
                    next_beat = time.monotonic() + beat_interval()
                    if not renew(self.item_id, self.owner):
                        self.lost = True
                        log.warning("work item %s: lease %s lost; another process runs it now", self.item_id,
                                    self.owner)
                        return
                if not stop_requested and cancelled(self.item_id):
                    stop_file(self.item_id).touch()
                    stop_requested = True
            except Exception:  # the database may be away for a moment: keep trying until the lease lapses
                log.exception("work item %s: heartbeat failed", self.item_id)
