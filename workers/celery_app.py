"""The Celery application: one queue per stage so HPC nodes can consume only `dft` (or `md`)."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from celery import Celery
from celery.signals import worker_ready, worker_shutdown
from kombu import Queue

from core.settings import get_settings
from workers.pipeline import QUEUES


def _transport_options(visibility_timeout: float) -> dict[str, float]:
    """Redis: sweep for a dead worker's messages often enough for the visibility timeout chosen.

    kombu scans every interval x throttle seconds (100 s by default), which would dwarf a
    short timeout; long timeouts keep the default.
    """
    short = visibility_timeout < 1000
    return {
        "visibility_timeout": visibility_timeout,
        "unacked_restore_interval": max(1.0, min(10.0, visibility_timeout / 8)),
        "unacked_restore_throttle": 1 if short else 10,
    }


@lru_cache
def celery_for(broker_url: str) -> Celery:
    settings = get_settings()
    app = Celery("defect_genome", broker=broker_url, include=["workers.tasks"])
    app.conf.update(
        task_queues=[Queue(name) for name in QUEUES],
        task_default_queue="md",
        # A task is acknowledged only when it ends: a killed worker's task is delivered again.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        broker_connection_retry_on_startup=True,
        broker_transport_options=_transport_options(settings.broker_visibility_timeout),
        worker_hijack_root_logger=False,
    )
    return app


# The worker's app (`defect-genome worker`); producers use celery_for(current broker URL).
celery_app = celery_for(get_settings().broker_url or "memory://")


# The lease sweeper (workers/sweeper.py) runs in every worker's main process, never in its pool
# processes: the pool's children are forked before it starts, and a child forked later (to replace one
# that died) drops the parent's database connections (core/session.py).
_sweeper = None


@worker_ready.connect
def _start_sweeper(**_kwargs: Any) -> None:
    global _sweeper
    from workers.sweeper import Sweeper

    _sweeper = Sweeper(resend_pending=True).start()


@worker_shutdown.connect
def _stop_sweeper(**_kwargs: Any) -> None:
    if _sweeper is not None:
        _sweeper.stop()
