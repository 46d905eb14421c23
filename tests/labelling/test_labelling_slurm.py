"""SlurmLauncher: batch script, state mapping on recorded scheduler output, and a real single-node Slurm.

The real tests start slurmctld + slurmd on localhost with scripts/start_slurm.sh (root; installs
Debian's slurm-wlm and munge if missing) and fail if that is impossible. Without slurmdbd, sacct
says "Slurm accounting storage is disabled": the launcher then reads `scontrol show job`; the
sacct parsing is tested on recorded output in Slurm's `-P -n` format.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from ase.build import bulk

from labelling import classify_failure, label, quick
from labelling.submit import SlurmLauncher, parse_sacct, parse_scontrol

ROOT = Path(__file__).resolve().parents[2]


def _done(stdout="", returncode=0, stderr=""):
    return subprocess.CompletedProcess(args=[], returncode=returncode, stdout=stdout, stderr=stderr)


class Recorded:
    """Replays scheduler outputs: ``answers`` maps a command name to a list of CompletedProcess."""

    def __init__(self, answers):
        self.answers = {k: list(v) for k, v in answers.items()}
        self.calls = []

    def __call__(self, argv, cwd=None):
        self.calls.append(list(argv))
        queue = self.answers[argv[0]]
        return queue.pop(0) if len(queue) > 1 else queue[0]


# Recorded on a Slurm 22.05 cluster shape (formats as `sacct -P -n`, `squeue -h -o "%T|%r"`, `scontrol -o`).
SACCT_TIMEOUT = "4242|TIMEOUT|0:0\n4242.batch|CANCELLED|0:15\n4242.extern|COMPLETED|0:0\n"
SACCT_NODE_FAIL = "4243|NODE_FAIL|0:0\n4243.batch|CANCELLED|0:9\n4243.extern|CANCELLED|0:9\n"
SACCT_CANCELLED = "4244|CANCELLED by 1000|0:0\n4244.batch|CANCELLED|0:15\n"
SACCT_FAILED = "4245|FAILED|3:0\n4245.batch|FAILED|3:0\n4245.extern|COMPLETED|0:0\n"
# recorded on this machine's single-node Slurm 22.05.8 (`scontrol show job -o 1`), shortened
SCONTROL_COMPLETED = (
    "JobId=1 JobName=dgtest UserId=root(0) GroupId=root(0) MCS_label=N/A Priority=4294901759 Nice=0 "
    "Account=(null) QOS=(null) JobState=COMPLETED Reason=None Dependency=(null) Requeue=1 Restarts=0 "
    "BatchFlag=1 Reboot=0 ExitCode=0:0 RunTime=00:00:02 TimeLimit=00:01:00 TimeMin=N/A Partition=debug "
    "NodeList=vm BatchHost=vm NumNodes=1 NumCPUs=1 NumTasks=1 CPUs/Task=1 Command=/tmp/sj/j.sh WorkDir=/tmp/sj\n"
)
SCONTROL_NODE_FAIL = ("JobId=7 JobName=wrap UserId=root(0) JobState=NODE_FAIL Reason=NodeDown Dependency=(null) "
                      "ExitCode=0:15\n")


def test_batch_script_from_settings(tmp_path):
    launcher = SlurmLauncher(account="proj42", partition="cpu", time="02:00:00", nodes=2, ntasks=128,
                             modules=("vasp/6.4.2", "intel-mpi"), extra_lines=("#SBATCH --qos=normal",))
    script = launcher.batch_script(["srun", "vasp_std"], tmp_path, env={"OMP_NUM_THREADS": "1"}, stdout="vasp.out",
                                   walltime="04:00:00")
    lines = script.splitlines()
    assert lines[0] == "#!/bin/bash"
    for expected in ("#SBATCH --account=proj42", "#SBATCH --partition=cpu", "#SBATCH --time=04:00:00",
                     "#SBATCH --nodes=2", "#SBATCH --ntasks=128", f"#SBATCH --output={tmp_path / 'vasp.out'}",
                     "#SBATCH --no-requeue", "#SBATCH --qos=normal", "module load vasp/6.4.2",
                     "export OMP_NUM_THREADS=1", "exec srun vasp_std"):
        assert expected in lines, expected
    assert lines.index("#SBATCH --qos=normal") < lines.index("module load vasp/6.4.2")


def test_recorded_states():
    assert parse_sacct("4242", SACCT_TIMEOUT).state == "TIMEOUT"
    assert parse_sacct("4243", SACCT_NODE_FAIL).state == "NODE_FAIL"
    status = parse_sacct("4244", SACCT_CANCELLED)
    assert status.state == "CANCELLED" and status.ledger_state == "finished"
    failed = parse_sacct("4245", SACCT_FAILED)
    assert (failed.state, failed.exit_code, failed.signal) == ("FAILED", 3, 0)
    done = parse_scontrol("1", SCONTROL_COMPLETED)
    assert (done.state, done.exit_code, done.source) == ("COMPLETED", 0, "scontrol")
    assert parse_scontrol("7", SCONTROL_NODE_FAIL).reason == "NodeDown"


def test_recorded_submit_poll_cancel(tmp_path):
    runner = Recorded({
        "sbatch": [_done("4242\n")],
        "squeue": [_done("PENDING|Priority\n"), _done("RUNNING|None\n"), _done("")],
        "sacct": [_done(SACCT_TIMEOUT)],
        "scontrol": [_done("", 1, "slurm_load_jobs error: Invalid job id specified")],
        "scancel": [_done("")],
    })
    launcher = SlurmLauncher(partition="cpu", poll_interval=0.0, runner=runner)
    outcome = launcher.run(["true"], tmp_path)
    assert (outcome.state, outcome.job_id) == ("TIMEOUT", "4242")
    assert runner.calls[0][:2] == ["sbatch", "--parsable"] and (tmp_path / "job.sbatch").is_file()
    assert ["squeue", "-h", "-j", "4242", "-o", "%T|%r"] in runner.calls
    assert ["sacct", "-j", "4242", "--format=JobID,State,ExitCode", "-P", "-n"] in runner.calls
    assert classify_failure(tmp_path, outcome) == "walltime"
    launcher.cancel("4242")
    assert runner.calls[-1] == ["scancel", "4242"]

    # no accounting (sacct fails): scontrol answers; multi-cluster sbatch output "id;cluster"
    runner = Recorded({
        "sbatch": [_done("4243;cluster1\n")],
        "squeue": [_done("")],
        "sacct": [_done("", 1, "Slurm accounting storage is disabled")],
        "scontrol": [_done(SCONTROL_NODE_FAIL.replace("JobId=7", "JobId=4243"))],
    })
    outcome = SlurmLauncher(poll_interval=0.0, runner=runner).run(["true"], tmp_path)
    assert (outcome.state, outcome.job_id) == ("NODE_FAIL", "4243")
    assert classify_failure(tmp_path, outcome) == "node_failure"

    failing = Recorded({"sbatch": [_done("", 1, "sbatch: error: Batch job submission failed: Invalid account")]})
    with pytest.raises(RuntimeError, match="Invalid account"):
        SlurmLauncher(runner=failing).submit(["true"], tmp_path)


# --------------------------------------------------------------------------- real Slurm


@pytest.fixture(scope="module")
def slurm():
    done = subprocess.run(["bash", str(ROOT / "scripts" / "start_slurm.sh")], capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, f"local Slurm did not start: {done.stderr.strip()[-300:]}"
    return SlurmLauncher(partition="debug", time="00:05:00", poll_interval=0.5)


def test_real_slurm_label_eam(tmp_path, slurm):
    """A real sbatch of the EAM labeller; the result equals the local run's."""
    atoms = bulk("W", "bcc", a=3.165, cubic=True) * (2, 2, 2)
    atoms.rattle(0.03, seed=5)
    result = label(atoms, quick("eam"), tmp_path / "slurm", launcher=slurm)
    local = label(atoms, quick("eam"), tmp_path / "local")
    assert result.energy == pytest.approx(local.energy, abs=1e-9)
    np.testing.assert_allclose(result.forces, local.forces, atol=1e-9)
    job_id = (tmp_path / "slurm" / "slurm_job_id").read_text().strip()
    assert slurm.status(job_id).state == "COMPLETED"


def test_real_slurm_failed_cancel_and_node_failure(tmp_path, slurm):
    failed = slurm.run(["bash", "-c", "exit 3"], tmp_path)
    assert (failed.state, failed.returncode) == ("FAILED", 3)

    job_id = slurm.submit(["sleep", "120"], tmp_path)
    for _ in range(40):
        if slurm.status(job_id).ledger_state == "running":
            break
        time.sleep(0.5)
    assert slurm.status(job_id).ledger_state == "running"
    slurm.cancel(job_id)
    status = slurm.wait(job_id, timeout=60, poll_interval=0.5)
    assert status.state == "CANCELLED"

    # a real node failure: the node is set DOWN under a running job (then resumed)
    job_id = slurm.submit(["sleep", "120"], tmp_path)
    node = subprocess.run(["hostname", "-s"], capture_output=True, text=True).stdout.strip()
    for _ in range(40):
        if slurm.status(job_id).ledger_state == "running":
            break
        time.sleep(0.5)
    try:
        subprocess.run(["scontrol", "update", f"NodeName={node}", "State=DOWN", "Reason=dg-test"], check=True)
        status = slurm.wait(job_id, timeout=60, poll_interval=0.5)
    finally:
        subprocess.run(["scontrol", "update", f"NodeName={node}", "State=RESUME"], capture_output=True)
        for _ in range(30):
            state = subprocess.run(["sinfo", "-h", "-n", node, "-o", "%t"], capture_output=True, text=True).stdout
            if state.strip() in ("idle", "mix", "alloc"):
                break
            time.sleep(0.5)
    assert status.state == "NODE_FAIL"
    from labelling.result import RunOutcome

    assert classify_failure(None, RunOutcome(status.exit_code, status.state)) == "node_failure"


@pytest.mark.slow
def test_real_slurm_walltime(tmp_path, slurm):
    """Slurm's smallest limit is 1 minute: a job past it ends TIMEOUT (measured: 90 s)."""
    outcome = slurm.run(["sleep", "300"], tmp_path, walltime="00:01:00")
    assert outcome.state == "TIMEOUT"
    assert classify_failure(tmp_path, outcome) == "walltime"
    assert "DUE TO TIME LIMIT" in (tmp_path / "run.log").read_text()
