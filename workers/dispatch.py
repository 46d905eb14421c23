"""Sending work items to be run: Celery queues when a broker is configured, else a thread here."""

from __future__ import annotations

import logging
import multiprocessing
import os
import queue
import threading
import time
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from core.settings import get_settings
from workers.pipeline import TaskRef

log = logging.getLogger(__name__)


# Queues whose items run side by side in worker processes on the embedded default: the PCC-GCMC
# boxes of a cluster are independent LAMMPS runs (one LAMMPS per process, never two per process);
# DFT labels are single-threaded GPAW processes (no MPI build here), so two cores need two labels.
PROCESS_QUEUES = frozenset({"gcmc", "dft"})


def exit_with_parent(parent_pid: int) -> None:
    """Pool processes end when the process that started them dies (e.g. a SIGKILLed `run`)."""

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, name="dg-parent-watch", daemon=True).start()


def _spawn_pool(workers: int) -> ProcessPoolExecutor:
    # spawn, not fork: this process may hold an initialised MPI/LAMMPS and open database connections
    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=exit_with_parent, initargs=(os.getpid(),))


def dg_environment() -> dict[str, str]:
    return {key: value for key, value in os.environ.items() if key.startswith("DG_")}


def apply_dg_environment(environment: dict[str, str]) -> None:
    """In a spawned helper process: the parent's current DG_ settings (they may change between calls)."""
    if environment != dg_environment():
        for key in [k for k in os.environ if k.startswith("DG_")]:
            del os.environ[key]
        os.environ.update(environment)
        get_settings.cache_clear()


def _execute_in_child(item_id: int, final_attempt: bool, environment: dict[str, str], owner: str) -> list[TaskRef]:
    """execute_item in a pool process, with the parent's current DG_ settings."""
    from workers.execute import execute_item

    apply_dg_environment(environment)
    return execute_item(item_id, final_attempt=final_attempt, owner=owner)


class InProcessExecutor:
    """Runs tasks on a daemon thread, with the same retry policy as Celery.

    Items of PROCESS_QUEUES run in a pool of `DG_LOCAL_PROCESSES` spawned processes, the rest one
    at a time on the thread; stages never overlap (the next is planned when the last item ends).
    """

    def __init__(self) -> None:
        self._queue: queue.Queue[TaskRef] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._busy = 0
        self._threads: ThreadPoolExecutor | None = None
        self._processes: ProcessPoolExecutor | None = None

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
        while True:
            ref = self._queue.get()
            if ref.queue in PROCESS_QUEUES:
                with self._lock:
                    if self._threads is None:
                        self._threads = ThreadPoolExecutor(get_settings().local_processes, "dg-process-feeder")
                self._threads.submit(self._run, ref, True)
            else:
                self._run(ref, False)

    def _process_pool(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._processes is None:
                self._processes = _spawn_pool(get_settings().local_processes)
            return self._processes

    def _run(self, ref: TaskRef, in_process_pool: bool) -> None:
        from workers.execute import abandon_item, execute_item
        from workers.lease import new_owner, release_dead

        settings = get_settings()
        try:
            for attempt in range(settings.task_max_retries + 1):
                final = attempt == settings.task_max_retries
                owner = new_owner()  # the lease name this attempt runs under, known here if its process dies
                try:
                    if in_process_pool:
                        pool = self._process_pool()
                        try:
                            follow_ups = pool.submit(
                                _execute_in_child, ref.item_id, final, dg_environment(), owner
                            ).result()
                        except BrokenProcessPool:
                            with self._lock:  # a worker process died (e.g. LAMMPS crashed): a new pool
                                if self._processes is pool:
                                    self._processes = None
                            raise
                    else:
                        follow_ups = execute_item(ref.item_id, final_attempt=final, owner=owner)
                    self.submit(follow_ups)
                    break
                except Exception as exc:
                    if final:  # normally execute_item has marked it failed; not if its process died
                        self.submit(abandon_item(ref.item_id, f"{type(exc).__name__}: {exc}", owner))
                    else:
                        release_dead(ref.item_id, owner)  # a dead process's lease: free it for the retry now
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
    if settings.in_process or settings.broker_url is None:  # in_process: no broker_url
        in_process.submit(refs)
    else:
        send_to_celery(refs, settings.broker_url)
