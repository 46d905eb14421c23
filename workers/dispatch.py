"""Sending work items to be run: Celery queues when a broker is configured, else a thread here."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Iterable

from app.settings import get_settings
from workers.pipeline import TaskRef

log = logging.getLogger(__name__)


class InProcessExecutor:
    """Runs tasks one at a time on a daemon thread, with the same retry policy as Celery."""

    def __init__(self) -> None:
        self._queue: queue.Queue[TaskRef] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._busy = 0

    def submit(self, refs: Iterable[TaskRef]) -> None:
        with self._lock:
            for ref in refs:
                self._busy += 1
                self._queue.put(ref)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="dg-in-process", daemon=True)
                self._thread.start()

    def idle(self) -> bool:
        with self._lock:
            return self._busy == 0

    def wait(self, timeout: float | None = None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.idle():
            if deadline is not None and time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    def _loop(self) -> None:
        from workers.execute import execute_item

        settings = get_settings()
        while True:
            ref = self._queue.get()
            try:
                for attempt in range(settings.task_max_retries + 1):
                    try:
                        follow_ups = execute_item(ref.item_id, final_attempt=attempt == settings.task_max_retries)
                        self.submit(follow_ups)
                        break
                    except Exception:
                        time.sleep(settings.task_retry_backoff * 2**attempt)
            except BaseException:  # never let the thread die with work queued
                log.exception("in-process executor: task %s crashed", ref)
            finally:
                with self._lock:
                    self._busy -= 1


in_process = InProcessExecutor()


def send_to_celery(refs: Iterable[TaskRef], broker_url: str) -> None:
    from workers.celery_app import celery_for

    app = celery_for(broker_url)
    for ref in refs:
        app.send_task(ref.task_name, args=[ref.item_id], queue=ref.queue)


def send(refs: Iterable[TaskRef]) -> None:
    """Enqueue after the commit that created or reset these items."""
    settings = get_settings()
    refs = list(refs)
    if not refs:
        return
    if settings.in_process:
        in_process.submit(refs)
    else:
        send_to_celery(refs, settings.broker_url)
