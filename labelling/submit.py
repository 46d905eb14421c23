"""Launchers: run a job's command locally (with a concurrency cap) or through Slurm.

dpdispatcher (1.1.0) was looked at and not used: its Slurm status check reads only ``squeue`` plus
its own finish-tag files, so a job that left the queue is "finished" or "terminated" with no way to
tell TIMEOUT from NODE_FAIL (the retry policy needs that); its ``Submission`` owns a blocking poll
loop and keeps its own job state under ~/.dpdispatcher, which would compete with the job ledger;
and it brings paramiko/dargs for remote contexts we do not need. This module is ~200 lines of the
same sbatch/squeue/sacct/scancel calls with the states we need.

Both launchers have ``run(argv, workdir, *, env, stdout, walltime) -> RunOutcome`` (blocking).
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from .result import RUN_LOG, RunOutcome

# --------------------------------------------------------------------------- local


def _seconds(walltime: str | None) -> float | None:
    if not walltime:
        return None
    from .failures import _hours

    return _hours(walltime) * 3600.0


class LocalLauncher:
    """Subprocesses on this machine, at most ``max_workers`` at once (shared by all threads using it).

    ``run`` blocks; ``submit`` returns a Future (a thread pool of ``max_workers`` threads, each
    waiting on one subprocess). A job longer than its walltime is killed and reported as TIMEOUT.
    ``cancel_all`` kills the running subprocesses (their state becomes CANCELLED).
    """

    def __init__(self, max_workers: int = 1, default_walltime: str | None = None):
        if max_workers < 1:
            raise ValueError("max_workers must be >= 1")
        self.max_workers = max_workers
        self.default_walltime = default_walltime
        self._slots = threading.BoundedSemaphore(max_workers)
        self._pool: ThreadPoolExecutor | None = None
        self._running: dict[int, subprocess.Popen] = {}
        self._lock = threading.Lock()
        self._cancelled: set[int] = set()

    def run(
        self,
        argv: Sequence[str],
        workdir: Path,
        *,
        env: Mapping[str, str] | None = None,
        stdout: str = RUN_LOG,
        walltime: str | None = None,
    ) -> RunOutcome:
        workdir = Path(workdir)
        limit = _seconds(walltime or self.default_walltime)
        full_env = {**os.environ, **(env or {})}
        with self._slots:
            start = time.perf_counter()
            with open(workdir / stdout, "ab") as log:
                process = subprocess.Popen(
                    list(argv), cwd=workdir, env=full_env, stdout=log, stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL, start_new_session=True,
                )
                with self._lock:
                    self._running[process.pid] = process
                try:
                    returncode = process.wait(timeout=limit)
                    timed_out = False
                except subprocess.TimeoutExpired:
                    _kill_group(process)
                    returncode = process.wait()
                    timed_out = True
                finally:
                    with self._lock:
                        self._running.pop(process.pid, None)
            wall = time.perf_counter() - start
        if timed_out:
            state = "TIMEOUT"
        elif process.pid in self._cancelled:
            state = "CANCELLED"
        else:
            state = "COMPLETED" if returncode == 0 else "FAILED"
        return RunOutcome(returncode=returncode, state=state, wall_time=wall, job_id=str(process.pid))

    def submit(self, fn: Callable, *args, **kwargs) -> Future:
        """Run ``fn(*args, **kwargs)`` (e.g. :func:`labelling.backends.label` with ``launcher=self``) in the pool."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=self.max_workers, thread_name_prefix="dg-label")
        return self._pool.submit(fn, *args, **kwargs)

    def cancel_all(self) -> None:
        with self._lock:
            processes = list(self._running.values())
            self._cancelled.update(p.pid for p in processes)
        for process in processes:
            _kill_group(process)

    def shutdown(self, cancel: bool = False) -> None:
        if cancel:
            self.cancel_all()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=cancel)
            self._pool = None


def _kill_group(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


# --------------------------------------------------------------------------- Slurm

#: Slurm job states -> ledger states (submitted/running) or a final launcher state.
PENDING_STATES = {"PENDING", "CONFIGURING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD",
                  "SUSPENDED", "STOPPED", "RESIZING", "SIGNALING", "STAGE_OUT"}
RUNNING_STATES = {"RUNNING", "COMPLETING"}
FINAL_STATES = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "BOOT_FAIL", "OUT_OF_MEMORY",
                "PREEMPTED", "DEADLINE", "SPECIAL_EXIT", "REVOKED"}


@dataclass(frozen=True)
class SlurmStatus:
    job_id: str
    state: str  # Slurm's word, e.g. PENDING, RUNNING, COMPLETED, TIMEOUT, NODE_FAIL, UNKNOWN
    exit_code: int | None = None
    signal: int | None = None
    reason: str | None = None
    source: str = ""  # squeue, sacct or scontrol

    @property
    def ledger_state(self) -> str:
        """'submitted', 'running' or 'finished' (then look at ``state``)."""
        if self.state in PENDING_STATES:
            return "submitted"
        if self.state in RUNNING_STATES:
            return "running"
        if self.state in FINAL_STATES:
            return "finished"
        return "unknown"


class SlurmError(RuntimeError):
    pass


def _run_command(argv: Sequence[str], cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(list(argv), cwd=cwd, capture_output=True, text=True, timeout=120)


def normalize_state(word: str) -> str:
    """'CANCELLED by 0' -> 'CANCELLED'; 'CA' style short codes are not used (we ask for %T)."""
    word = word.strip().split()[0] if word.strip() else "UNKNOWN"
    return word.rstrip("+").upper()


def parse_exit_code(text: str) -> tuple[int | None, int | None]:
    """Slurm ExitCode 'code:signal' -> (code, signal)."""
    match = text.strip().split(":")
    try:
        return int(match[0]), int(match[1]) if len(match) > 1 else None
    except ValueError:
        return None, None


def parse_sacct(job_id: str, text: str) -> SlurmStatus | None:
    """Output of ``sacct -j ID --format=JobID,State,ExitCode -P -n`` (allocation line first)."""
    rows = [line.split("|") for line in text.splitlines() if line.strip()]
    if not rows:
        return None
    main = next((r for r in rows if r[0] == job_id), rows[0]) if len(rows[0]) >= 3 else rows[0]
    if len(main) >= 3:
        state, exit_text = main[1], main[2]
    else:
        state, exit_text = main[0], main[1] if len(main) > 1 else ""
    code, sig = parse_exit_code(exit_text)
    return SlurmStatus(job_id, normalize_state(state), code, sig, source="sacct")


def parse_scontrol(job_id: str, text: str) -> SlurmStatus | None:
    """Output of ``scontrol show job -o ID`` (key=value pairs on one line)."""
    state = re.search(r"\bJobState=(\S+)", text)
    if not state:
        return None
    exit_match = re.search(r"\bExitCode=(\S+)", text)
    reason = re.search(r"\bReason=(\S+)", text)
    code, sig = parse_exit_code(exit_match.group(1)) if exit_match else (None, None)
    return SlurmStatus(job_id, normalize_state(state.group(1)), code, sig,
                       reason.group(1) if reason else None, source="scontrol")



@dataclass
class SlurmLauncher:
    """Batch jobs through Slurm: ``sbatch --parsable``, ``squeue``/``sacct`` polling, ``scancel``.

    ``time`` is the default walltime ('HH:MM:SS'; a job's own walltime overrides it). ``modules``
    are loaded with ``module load``; ``extra_lines`` go verbatim after the #SBATCH lines (e.g.
    ``"#SBATCH --qos=normal"``, ``"source ~/venv/bin/activate"``). ``runner`` executes scheduler
    commands (default: subprocess; tests pass recorded outputs). Jobs are submitted with
    ``--no-requeue`` so that a node failure reaches the ledger as NODE_FAIL instead of a silent requeue.
    """

    account: str | None = None
    partition: str | None = None
    time: str = "01:00:00"
    nodes: int = 1
    ntasks: int = 1
    cpus_per_task: int | None = None
    modules: Sequence[str] = ()
    extra_lines: Sequence[str] = ()
    poll_interval: float = 10.0
    job_name: str = "dg-label"
    runner: Callable[..., subprocess.CompletedProcess] = field(default=_run_command, repr=False)

    # ---- script

    def batch_script(
        self,
        argv: Sequence[str],
        workdir: Path,
        *,
        env: Mapping[str, str] | None = None,
        stdout: str = RUN_LOG,
        walltime: str | None = None,
    ) -> str:
        workdir = Path(workdir).resolve()
        lines = ["#!/bin/bash", f"#SBATCH --job-name={self.job_name}"]
        if self.account:
            lines.append(f"#SBATCH --account={self.account}")
        if self.partition:
            lines.append(f"#SBATCH --partition={self.partition}")
        lines += [
            f"#SBATCH --time={walltime or self.time}",
            f"#SBATCH --nodes={self.nodes}",
            f"#SBATCH --ntasks={self.ntasks}",
        ]
        if self.cpus_per_task:
            lines.append(f"#SBATCH --cpus-per-task={self.cpus_per_task}")
        lines += [
            f"#SBATCH --chdir={workdir}",
            f"#SBATCH --output={workdir / stdout}",
            "#SBATCH --no-requeue",
        ]
        lines += list(self.extra_lines)
        lines.append("set -e")
        for module in self.modules:
            lines.append(f"module load {shlex.quote(module)}")
        for key, value in (env or {}).items():
            lines.append(f"export {key}={shlex.quote(str(value))}")
        lines.append(f"cd {shlex.quote(str(workdir))}")
        lines.append("exec " + shlex.join([str(a) for a in argv]))
        return "\n".join(lines) + "\n"

    # ---- scheduler calls

    def submit(
        self,
        argv: Sequence[str],
        workdir: Path,
        *,
        env: Mapping[str, str] | None = None,
        stdout: str = RUN_LOG,
        walltime: str | None = None,
    ) -> str:
        """Write ``workdir/job.sbatch``, submit it, return the job id."""
        workdir = Path(workdir).resolve()
        script = workdir / "job.sbatch"
        script.write_text(self.batch_script(argv, workdir, env=env, stdout=stdout, walltime=walltime))
        done = self.runner(["sbatch", "--parsable", str(script)], cwd=workdir)
        if done.returncode != 0:
            raise SlurmError(f"sbatch failed ({done.returncode}): {done.stderr.strip() or done.stdout.strip()}")
        job_id = done.stdout.strip().splitlines()[-1].split(";")[0].strip()
        if not job_id.isdigit():
            raise SlurmError(f"sbatch --parsable printed {done.stdout!r}, not a job id")
        (workdir / "slurm_job_id").write_text(job_id + "\n")
        return job_id

    def status(self, job_id: str) -> SlurmStatus:
        """squeue while the job is queued or running; then sacct; then scontrol (no accounting)."""
        job_id = str(job_id)
        done = self.runner(["squeue", "-h", "-j", job_id, "-o", "%T|%r"])
        if done.returncode == 0 and done.stdout.strip():
            state, _, reason = done.stdout.strip().splitlines()[0].partition("|")
            return SlurmStatus(job_id, normalize_state(state), reason=reason or None, source="squeue")
        done = self.runner(["sacct", "-j", job_id, "--format=JobID,State,ExitCode", "-P", "-n"])
        if done.returncode == 0:
            parsed = parse_sacct(job_id, done.stdout)
            if parsed is not None:
                return parsed
        done = self.runner(["scontrol", "show", "job", "-o", job_id])
        if done.returncode == 0:
            parsed = parse_scontrol(job_id, done.stdout)
            if parsed is not None:
                return parsed
        return SlurmStatus(job_id, "UNKNOWN", source="none")

    def cancel(self, job_id: str) -> None:
        done = self.runner(["scancel", str(job_id)])
        if done.returncode != 0:
            raise SlurmError(f"scancel {job_id} failed: {done.stderr.strip()}")

    def wait(self, job_id: str, timeout: float | None = None, poll_interval: float | None = None) -> SlurmStatus:
        """Poll until the job is in a final state (or ``timeout`` seconds pass: then its last status)."""
        interval = self.poll_interval if poll_interval is None else poll_interval
        start = time.monotonic()
        unknown = 0
        while True:
            status = self.status(job_id)
            if status.ledger_state == "finished":
                return status
            unknown = unknown + 1 if status.state == "UNKNOWN" else 0
            if unknown >= 5 or (timeout is not None and time.monotonic() - start > timeout):
                return status
            time.sleep(interval)

    def run(
        self,
        argv: Sequence[str],
        workdir: Path,
        *,
        env: Mapping[str, str] | None = None,
        stdout: str = RUN_LOG,
        walltime: str | None = None,
    ) -> RunOutcome:
        start = time.perf_counter()
        job_id = self.submit(argv, workdir, env=env, stdout=stdout, walltime=walltime)
        status = self.wait(job_id)
        state = status.state if status.state in FINAL_STATES else "FAILED"
        if state == "FAILED" and status.exit_code == 0:
            state = "COMPLETED"
        return RunOutcome(
            returncode=status.exit_code, state=state, wall_time=time.perf_counter() - start,
            job_id=job_id, reason=status.reason,
        )
