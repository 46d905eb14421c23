"""Sampling at scale: a polycrystal protocol through the sampling stage against the same LAMMPS input run bare.

One run of this script (issue 19):

1. A campaign on the embedded default (SQLite, in this process), stopped after selection: a periodic Voronoi W
   polycrystal of --atoms atoms (EAM Zhou), minimised (the spec's default minimisation settings unless
   --max-iterations) then annealed at 300 K for --steps MD steps with a snapshot every --every steps, run by an
   external LAMMPS (`sampling.lammps`: `mpirun -np --ranks lmp`, the local launcher). The sampling stage writes
   the input, streams the snapshots into the store (compact files, environment rows) as LAMMPS writes them,
   classifying each by the spec's default detection (adaptive CNA, in the worker).
2. The very input the stage wrote (in.lammps, atoms.data, the potential) run bare: `mpirun -np --ranks lmp` in a
   copy of the run directory, nothing else. Overhead = stage / bare - 1: the stage's whole item (building the
   polycrystal, writing the input, minimisation, MD, parsing and storing the snapshots) against LAMMPS alone.
3. Stored bytes per atom per snapshot (the snapshot files); environment rows per second into a fresh SQLite file
   and, with --postgres URL, into a fresh PostgreSQL database created and dropped by this script (the candidate
   rows of the stored snapshots, each snapshot's rows in one transaction, as the stage inserts them, repeated
   until --rows rows); the worker's peak resident memory (this process: the stage ran here); grading
   throughput (atoms graded per second by the grading stage's items, SNAP basis).

    .venv/bin/python benchmarks/sampling_scale.py [--atoms 100000] [--million] [--steps 200] [--every 100]
        [--ranks 2] [--postgres postgresql://postgres:postgres@127.0.0.1:5432/postgres] [--json out.json]

Measured here (2 cores, 2026-12-07), default arguments: 98,149 atoms, 3 snapshots (minimisation capped at 1000
iterations, then 200 MD steps), mpirun -np 2 lmp: sampling stage 501.5 s, the same input bare 503.9 s, overhead
-0.5 % (within the run-to-run noise); 9.38 stored bytes per atom per snapshot; 28,340 candidate rows per snapshot;
rows per second 312,804 (SQLite) and 171,612 (PostgreSQL, COPY); worker peak memory 509 MB; grading 27,244
atoms/s (SNAP 2J=6, one thread). --million --steps 100 --every 50 --max-iterations 100: 983,703 atoms, stage
376.5 s, bare 356.9 s, overhead 5.5 %; 9.07 bytes per atom per snapshot; 238,157 candidate rows per snapshot;
266,794 rows/s (SQLite), 162,673 rows/s (PostgreSQL); worker peak memory 1,790 MB; grading 26,971 atoms/s.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

A0 = 3.165  # EAM Zhou W
ATOMS_PER_A3 = 2 / A0**3  # bcc


def _spec(atoms: int, steps: int, every: int, ranks: int, max_iterations: int | None) -> dict:
    side = round((atoms / ATOMS_PER_A3) ** (1 / 3), 2)
    bin_dir = Path(sys.prefix) / "bin"
    sampling: dict = {
        "threads": 1,
        "lammps": {"command": [str(bin_dir / "mpirun"), "-np", str(ranks), str(bin_dir / "lmp")],
                   "poll_interval": 0.5},
        "protocols": [{"kind": "anneal", "name": "polycrystal",
                       "structure": {"kind": "polycrystal", "box": [side, side, side],
                                     "n_grains": max(2, min(64, atoms // 12_500)), "seed": 5},
                       "temperatures": [300], "steps_per_temperature": steps, "snapshot_every": every}],
    }
    if max_iterations is not None:
        sampling["minimization"] = {"max_iterations": max_iterations}
    return {"name": f"scale-{atoms}", "element": "W", "lattice": "bcc", "lattice_constant": A0,
            "potential": "W_zhou.eam.alloy", "stop_after": "selection", "sampling": sampling,
            "selection": {"basis": "snap", "twojmax": 6, "max_new": 20}}


def _run_campaign(spec: dict) -> int:
    from app.auth import LOCAL_USER, get_or_create_user
    from app.services import submit_campaign
    from core.migrate import upgrade
    from core.session import session_scope
    from core.settings import get_settings
    from schemas import parse_spec
    from workers.dispatch import in_process

    upgrade(get_settings().database_url or f"sqlite:///{get_settings().data_dir / 'defect-genome.sqlite'}")
    with session_scope() as session:
        campaign_id = submit_campaign(session, get_or_create_user(session, LOCAL_USER), parse_spec(spec),
                                      dispatch=in_process.submit).id
    in_process.wait(timeout=None)
    return campaign_id


def _seconds(start, end) -> float:
    return (end - start).total_seconds()


def _stage_figures(campaign_id: int) -> dict:
    from core.models import Campaign, Environment, Structure
    from core.session import session_scope
    from core.settings import get_settings

    data_dir = get_settings().data_dir
    with session_scope() as session:
        campaign = session.get(Campaign, campaign_id)
        if campaign.status.value != "succeeded":
            raise SystemExit(f"the campaign did not succeed: {campaign.status.value} {campaign.error}")
        items = {stage.stage: stage.items for stage in campaign.stages}
        (sampling,) = items["sampling"]
        snapshots = session.query(Structure).filter_by(campaign_id=campaign_id, stage="sampling").all()
        graded = items["grading"]
        rows = {s.id: sorted((e.atom_index, e.structure_type) for e in
                             session.query(Environment).filter_by(structure_id=s.id)) for s in snapshots}
        return {
            "stage_s": _seconds(sampling.started_at, sampling.finished_at),
            "snapshots": len(snapshots),
            "atoms": snapshots[0].n_atoms,
            "bytes": sum((data_dir / s.path).stat().st_size for s in snapshots),
            "formats": sorted({Path(s.path).suffix for s in snapshots}),
            "rows": [rows[s.id] for s in snapshots],
            "grading_s": sum(_seconds(item.started_at, item.finished_at) for item in graded),
            "graded_atoms": sum(s.n_atoms for s in snapshots),
        }


def _bare(run_dir: Path, ranks: int, workdir: Path) -> float:
    """The stage's own input, run by the same command with nothing else: the seconds it takes."""
    from sampling.lammps_script import DATA, DUMP_DIR, INPUT, RESTART_DIR, launch_command

    bare = workdir / "bare"
    shutil.rmtree(bare, ignore_errors=True)
    bare.mkdir(parents=True)
    shutil.copy(run_dir / INPUT, bare / INPUT)
    shutil.copy(run_dir / DATA, bare / DATA)
    shutil.copytree(run_dir / "potential", bare / "potential")
    (bare / DUMP_DIR).mkdir()
    (bare / RESTART_DIR).mkdir()
    bin_dir = Path(sys.prefix) / "bin"
    words = launch_command([str(bin_dir / "mpirun"), "-np", str(ranks), str(bin_dir / "lmp")])
    start = time.perf_counter()
    subprocess.run(words, cwd=bare, check=True, env=dict(os.environ, OMP_NUM_THREADS="1"),
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def _insert_rate(url: str, snapshot_rows: list[list[tuple[int, str]]], total: int) -> tuple[float, int]:
    """(rows per second, rows) of the stage's bulk insert into a freshly migrated database at ``url``."""
    import numpy as np
    from sqlalchemy import create_engine
    from sqlalchemy.orm import Session

    from core import access
    from core.migrate import upgrade
    from core.models import Campaign, Structure, User

    upgrade(url)
    engine = create_engine(url)
    with Session(engine) as session, session.begin():
        user = User(name="bench")
        session.add(user)
        session.flush()
        campaign = Campaign(owner_id=user.id, name="rows", element="W", spec={})
        session.add(campaign)
        session.flush()
        campaign_id = campaign.id
    inserted, elapsed, k = 0, 0.0, 0
    while inserted < total:
        rows = snapshot_rows[k % len(snapshot_rows)]
        indices = np.array([i for i, _ in rows], dtype=np.int64)
        kinds = [kind for _, kind in rows]
        with Session(engine) as session, session.begin():
            structure = Structure(campaign_id=campaign_id, sha256=f"{k:064x}", path=f"structures/{k}",
                                  stage="sampling", source=f"bench/frame-{k}", formula="W", n_atoms=len(rows),
                                  pbc=[True] * 3, cell=[[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0]], info={})
            session.add(structure)
            session.flush()
            start = time.perf_counter()
            access.insert_environments(session, structure.id, indices, kinds)
        elapsed += time.perf_counter() - start
        inserted += len(rows)
        k += 1
    engine.dispose()
    return inserted / elapsed, inserted


def _fresh_postgres(url: str, name: str) -> str:
    import psycopg

    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}"')
        connection.execute(f'CREATE DATABASE "{name}"')
    return url.rsplit("/", 1)[0] + f"/{name}"


def _drop_postgres(url: str, name: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--atoms", type=int, default=100_000)
    parser.add_argument("--million", action="store_true", help="10^6 atoms (overrides --atoms)")
    parser.add_argument("--steps", type=int, default=200, help="MD steps at 300 K")
    parser.add_argument("--every", type=int, default=100, help="MD steps between snapshots")
    parser.add_argument("--ranks", type=int, default=2, help="MPI ranks of mpirun")
    parser.add_argument("--max-iterations", type=int, default=None, help="minimisation cap (default: the spec's)")
    parser.add_argument("--rows", type=int, default=300_000, help="environment rows inserted for the rate")
    parser.add_argument("--postgres", default=None, help="a PostgreSQL server URL: the rate into a fresh database")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    atoms = 1_000_000 if args.million else args.atoms

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="dg-scale-"))
    workdir.mkdir(parents=True, exist_ok=True)
    os.environ["DG_DATA_DIR"] = str(workdir / "data")
    for key in ("DG_DATABASE_URL", "DG_BROKER_URL"):
        os.environ.pop(key, None)
    from core.settings import get_settings

    get_settings.cache_clear()

    spec = _spec(atoms, args.steps, args.every, args.ranks, args.max_iterations)
    start = time.perf_counter()
    campaign_id = _run_campaign(spec)
    campaign_s = time.perf_counter() - start
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    figures = _stage_figures(campaign_id)
    run_dir = get_settings().data_dir / "campaigns" / str(campaign_id) / "sampling" / "protocol-0"
    bare_s = _bare(run_dir, args.ranks, workdir)

    rates = {}
    sqlite_url = f"sqlite:///{workdir / 'rows.sqlite'}"
    rates["SQLite"] = _insert_rate(sqlite_url, figures["rows"], args.rows)
    if args.postgres:
        name = f"dg_bench_rows_{os.getpid()}"
        try:
            rates["PostgreSQL"] = _insert_rate(_fresh_postgres(args.postgres, name), figures["rows"], args.rows)
        finally:
            _drop_postgres(args.postgres, name)

    natoms, snapshots = figures["atoms"], figures["snapshots"]
    report = {
        "atoms": natoms, "snapshots": snapshots, "steps": args.steps, "ranks": args.ranks,
        "stage_s": figures["stage_s"], "bare_s": bare_s, "overhead": figures["stage_s"] / bare_s - 1.0,
        "campaign_s": campaign_s,
        "bytes_per_atom_snapshot": figures["bytes"] / (natoms * snapshots), "snapshot_format": figures["formats"],
        "candidate_rows_per_snapshot": sum(len(r) for r in figures["rows"]) / snapshots,
        "rows_per_s": {name: rate for name, (rate, _) in rates.items()},
        "rows_inserted": {name: rows for name, (_, rows) in rates.items()},
        "peak_rss_mb": peak_rss_mb,
        "grading_atoms_per_s": figures["graded_atoms"] / figures["grading_s"],
        "workdir": str(workdir),
    }
    print(f"polycrystal W: {natoms} atoms, {snapshots} snapshots ({args.steps} MD steps, every {args.every}), "
          f"mpirun -np {args.ranks} lmp")
    print(f"{'sampling stage (item wall time)':44s} {report['stage_s']:10.1f} s")
    print(f"{'same input, LAMMPS bare':44s} {bare_s:10.1f} s")
    print(f"{'overhead (stage / bare - 1)':44s} {100 * report['overhead']:10.1f} %")
    print(f"{'stored bytes per atom per snapshot':44s} {report['bytes_per_atom_snapshot']:10.2f}   "
          f"({', '.join(figures['formats'])})")
    print(f"{'candidate rows per snapshot':44s} {report['candidate_rows_per_snapshot']:10.0f}")
    for name, (rate, rows) in rates.items():
        print(f"{'environment rows per s, ' + name:44s} {rate:10.0f}   ({rows} rows)")
    print(f"{'peak memory of the worker (this process)':44s} {peak_rss_mb:10.0f} MB")
    print(f"{'grading throughput (SNAP, 2J=6)':44s} {report['grading_atoms_per_s']:10.0f} atoms/s")
    print(f"{'whole campaign to selection':44s} {campaign_s:10.1f} s")
    assert math.isfinite(report["overhead"])
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    main()
