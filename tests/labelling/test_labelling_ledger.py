"""Ledger transitions and a labelling stage killed half-way and resumed (counting backend runs)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from ase.build import bulk

from labelling import JobState, JsonLedger, quick, run_stage
from labelling.ledger import needs_run, new_record, on_failure, on_resume, on_submitted, on_success
from labelling.result import ERROR_FILE, write_json_atomic
from labelling.settings import settings_hash
from labelling.submit import LocalLauncher

ROOT = Path(__file__).resolve().parents[2]

STAGE_SCRIPT = r"""
import sys, time
from pathlib import Path
from ase.build import bulk
from labelling import JsonLedger, quick, run_stage
from labelling.submit import LocalLauncher

root, counter = Path(sys.argv[1]), Path(sys.argv[2])

class CountingLauncher(LocalLauncher):
    def run(self, argv, workdir, **kwargs):
        with open(counter, "a") as handle:       # one line per backend run
            handle.write(Path(workdir).name + "\n")
        return super().run(argv, workdir, **kwargs)

structures = []
for seed in range(6):
    atoms = bulk("W", "bcc", a=3.165, cubic=True) * (2, 2, 2)
    atoms.rattle(0.04, seed=seed)
    structures.append(atoms)
report = run_stage(structures, quick("eam"), root / "jobs", JsonLedger(root / "ledger.json"), CountingLauncher(1))
print("REPORT", report.succeeded, report.skipped, report.runs, flush=True)
"""


def _succeeded(ledger_path: Path) -> int:
    if not ledger_path.is_file():
        return 0
    try:
        data = json.loads(ledger_path.read_text())
    except ValueError:
        return 0
    return sum(1 for row in data.values() if row["state"] == "succeeded")


def test_stage_killed_and_resumed_never_reruns_a_succeeded_job(tmp_path):
    script = tmp_path / "stage.py"
    script.write_text(STAGE_SCRIPT)
    counter = tmp_path / "runs.txt"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen([sys.executable, str(script), str(tmp_path), str(counter)], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 120
    while _succeeded(tmp_path / "ledger.json") < 2 and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)  # the stage and its running job
    process.wait()
    before = json.loads((tmp_path / "ledger.json").read_text())
    done_before = {key.split("/")[0][:16] for key, row in before.items() if row["state"] == "succeeded"}
    assert 2 <= len(done_before) < 6, "kill came too late to test a resume"
    runs_before = Counter(counter.read_text().split())

    done = subprocess.run([sys.executable, str(script), str(tmp_path), str(counter)], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    runs = Counter(counter.read_text().split())
    after = json.loads((tmp_path / "ledger.json").read_text())
    assert all(row["state"] == "succeeded" for row in after.values()) and len(after) == 6
    for name, count in runs.items():
        if name[:16] in done_before:
            assert count == runs_before[name] == 1, (name, count)  # never run again
        else:
            assert count <= 2  # at most the killed attempt plus the resumed one
    report = done.stdout.split("REPORT")[-1].split()
    assert int(report[1]) == len(done_before)  # skipped
    assert int(report[2]) == 6 - len(done_before)  # runs in the resumed stage


def test_transitions_and_scf_retry_in_stage(tmp_path):
    atoms = bulk("W", "bcc", a=3.165, cubic=True) * (2, 2, 2)
    settings = quick("eam")
    record = new_record(atoms, settings)
    assert needs_run(None) and needs_run(record)
    record = on_submitted(record, job_id="17")
    assert record.state == JobState.SUBMITTED and record.attempts == 1 and not needs_run(record)
    assert on_resume(record, job_alive=True).state == JobState.SUBMITTED
    assert on_resume(record).state == JobState.QUEUED
    failed = on_failure(record, "parse_error")
    assert failed.state == JobState.FAILED and failed.failures == ("parse_error",)
    node = on_failure(record, "node_failure")
    assert node.state == JobState.QUEUED and node.settings == record.settings
    assert on_success(record, settings_hash(settings)).state == JobState.SUCCEEDED

    # SCF failure on the first attempt (a launcher that makes the first run fail like GPAW does)
    gpaw_like = quick("gpaw", kpts=(1, 1, 1))
    calls = []

    class FirstFails(LocalLauncher):
        def run(self, argv, workdir, **kwargs):
            calls.append(json.loads((Path(workdir) / "job.json").read_text())["settings"])
            if len(calls) == 1:
                write_json_atomic(Path(workdir) / ERROR_FILE,
                                  {"class": "scf_not_converged", "message": "Did not converge!"})
                from labelling.result import RunOutcome

                return RunOutcome(returncode=3, state="FAILED")
            # second attempt: pretend success by writing an EAM label through the eam runner
            job = json.loads((Path(workdir) / "job.json").read_text())
            job["settings"]["engine"] = "eam"
            (Path(workdir) / "job.json").write_text(json.dumps(job))
            return super().run([sys.executable, "-m", "labelling.eam_run", "."], workdir, **kwargs)

    ledger = JsonLedger(tmp_path / "ledger.json")
    report = run_stage([atoms], gpaw_like, tmp_path / "jobs", ledger, FirstFails(1))
    assert report.succeeded == 1 and report.failures == ["scf_not_converged"] and report.runs == 2
    row = next(iter(ledger.records().values()))
    assert row.attempts == 2 and row.failures == ("scf_not_converged",)
    assert calls[1]["mixing_beta"] == pytest.approx(0.025) and calls[1]["max_scf_steps"] == 666
    assert row.settings_hash == settings_hash(gpaw_like)  # the key keeps the first settings' hash
