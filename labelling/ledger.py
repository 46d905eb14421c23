"""Job ledger logic: one record per (structure hash, settings hash), pure transitions.

The service keeps these records as DB rows; this module only says what a row becomes. States:
queued -> submitted -> running -> succeeded | failed (final) or back to queued for a retry.
:func:`run_attempts` runs one record's attempts with the retry policy; :class:`JsonLedger` +
:func:`run_stage` are a small file-backed version for the embedded mode, scripts and tests: resuming a
killed stage never reruns a succeeded job.
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from .failures import DEFAULT_POLICY, RetryPolicy, next_settings
from .result import LabelResult
from .settings import DFTSettings, settings_hash, structure_hash


class JobState(str, Enum):
    QUEUED = "queued"
    SUBMITTED = "submitted"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


@dataclass(frozen=True)
class JobRecord:
    """One ledger row. ``settings`` are those of the next (or last) attempt; ``settings_hash`` is the
    key's hash (of the settings first asked for) and never changes; ``result_hash`` is the hash of
    the settings that produced the stored label (differs after a retry that changed the smearing)."""

    structure_hash: str
    settings_hash: str
    settings: dict[str, Any]
    state: JobState = JobState.QUEUED
    attempts: int = 0
    failure: str | None = None
    failures: tuple[str, ...] = ()
    job_id: str | None = None
    result_hash: str | None = None
    message: str | None = None

    @property
    def key(self) -> tuple[str, str]:
        return (self.structure_hash, self.settings_hash)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["state"] = self.state.value
        data["failures"] = list(self.failures)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobRecord:
        data = dict(data)
        data["state"] = JobState(data["state"])
        data["failures"] = tuple(data.get("failures", ()))
        return cls(**data)


def job_key(atoms, settings: DFTSettings) -> tuple[str, str]:
    return structure_hash(atoms), settings_hash(settings)


def new_record(atoms, settings: DFTSettings) -> JobRecord:
    s_hash, k_hash = job_key(atoms, settings)
    return JobRecord(structure_hash=s_hash, settings_hash=k_hash, settings=settings.to_dict())


def needs_run(record: JobRecord | None) -> bool:
    """True for a missing or queued record; never for succeeded or finally failed ones.
    Submitted/running records belong to a live job: poll it (or call :func:`on_resume`)."""
    return record is None or record.state == JobState.QUEUED


def on_submitted(record: JobRecord, job_id: str | None = None) -> JobRecord:
    return dataclasses.replace(record, state=JobState.SUBMITTED, attempts=record.attempts + 1, job_id=job_id)


def on_running(record: JobRecord) -> JobRecord:
    return dataclasses.replace(record, state=JobState.RUNNING)


def on_success(record: JobRecord, result_settings_hash: str) -> JobRecord:
    return dataclasses.replace(record, state=JobState.SUCCEEDED, failure=None, result_hash=result_settings_hash,
                               message=None)


def on_failure(record: JobRecord, failure: str, message: str | None = None,
               policy: RetryPolicy = DEFAULT_POLICY) -> JobRecord:
    """Queue a retry with :func:`next_settings`, or mark the job failed for good."""
    settings = DFTSettings.from_dict(record.settings)
    retry = next_settings(settings, failure, record.attempts, policy)
    base = dataclasses.replace(record, failure=failure, failures=(*record.failures, failure), message=message,
                               job_id=None)
    if retry is None:
        return dataclasses.replace(base, state=JobState.FAILED)
    return dataclasses.replace(base, state=JobState.QUEUED, settings=retry.to_dict())


def on_resume(record: JobRecord, job_alive: bool = False) -> JobRecord:
    """After a restart: a submitted/running job whose process or Slurm job is gone goes back to queued
    (the attempt it used is kept); succeeded and failed records stay as they are."""
    if record.state in (JobState.SUBMITTED, JobState.RUNNING) and not job_alive:
        return dataclasses.replace(record, state=JobState.QUEUED, job_id=None)
    return record


# --------------------------------------------------------------------------- file-backed ledger


class JsonLedger:
    """Records in one JSON file, rewritten atomically under an flock (for the embedded mode and tests)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock_path = self.path.with_suffix(self.path.suffix + ".lock")

    def _load(self) -> dict[str, JobRecord]:
        if not self.path.is_file():
            return {}
        data = json.loads(self.path.read_text() or "{}")
        return {k: JobRecord.from_dict(v) for k, v in data.items()}

    def records(self) -> dict[str, JobRecord]:
        return self._load()

    def get(self, key: tuple[str, str]) -> JobRecord | None:
        return self._load().get("/".join(key))

    def put(self, record: JobRecord) -> None:
        with open(self._lock_path, "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            data = self._load()
            data["/".join(record.key)] = record
            tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps({k: v.to_dict() for k, v in data.items()}, indent=1))
            os.replace(tmp, self.path)


@dataclass
class StageReport:
    succeeded: int = 0
    failed: int = 0
    skipped: int = 0  # already succeeded before this call
    runs: int = 0
    failures: list[str] = field(default_factory=list)


def run_stage(
    structures: Sequence,
    settings: DFTSettings,
    root: Path,
    ledger: JsonLedger,
    launcher=None,
    policy: RetryPolicy = DEFAULT_POLICY,
    on_result=None,
) -> StageReport:
    """Label ``structures`` one after the other, with the ledger; safe to kill and call again.

    Work directories: ``root/<structure hash[:16]>-<settings hash[:12]>``. A record left
    submitted/running by a killed run is requeued (:func:`on_resume`); succeeded ones are skipped.
    ``on_result(atoms, result)`` is called for each new label.
    """
    report = StageReport()
    root = Path(root)
    for atoms in structures:
        record = ledger.get(job_key(atoms, settings)) or new_record(atoms, settings)
        record = on_resume(record)
        if record.state == JobState.SUCCEEDED:
            report.skipped += 1
            continue
        attempts, failures = record.attempts, len(record.failures)
        workdir = root / f"{record.structure_hash[:16]}-{record.settings_hash[:12]}"
        record, result = run_attempts(atoms, record, workdir, launcher, policy, save=ledger.put)
        report.runs += record.attempts - attempts
        report.failures.extend(record.failures[failures:])
        if result is not None:
            if on_result is not None:
                on_result(atoms, result)
            report.succeeded += 1
        else:
            report.failed += 1
    return report


def run_attempts(atoms, record: JobRecord, workdir: Path, launcher=None, policy: RetryPolicy = DEFAULT_POLICY,
                 save=None) -> tuple[JobRecord, LabelResult | None]:
    """Run a queued ``record`` until it succeeds or fails for good, each retry with the settings the
    policy gives (:func:`on_failure`); ``save(record)`` after every change of state. Returns the final
    record and the label (None when it failed). A converged result already in ``workdir`` is reused."""
    from .backends import LabelError, label

    result = None
    while record.state == JobState.QUEUED:
        attempt_settings = DFTSettings.from_dict(record.settings)
        record = on_submitted(record)
        if save is not None:
            save(record)
        try:
            result = label(atoms, attempt_settings, workdir, launcher, reuse=True)
        except LabelError as error:
            record = on_failure(record, error.failure, str(error), policy)
            if save is not None:
                save(record)
            continue
        record = on_success(record, result.settings_hash)
        if save is not None:
            save(record)
    return record, result if record.state == JobState.SUCCEEDED else None


def summarize(records: Iterable[JobRecord]) -> dict[str, int]:
    counts = {state.value: 0 for state in JobState}
    for record in records:
        counts[record.state.value] += 1
    return counts
