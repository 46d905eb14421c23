"""Grading and selection memory: peak memory of grading all snapshots of a campaign does not grow with their number.

For each N of --snapshots, a fresh process does what the selection stages do with N snapshots of the same size:
builds the SNAP basis (2J = --twojmax, cutoff 4.7 A, the campaign default) and the MaxVol active set of a small
basic set B (rattled bulk bcc W), then grades every snapshot with selection.grading.grade_atoms and writes its
candidates above gamma_select as grade_snapshot does (one .npz per snapshot), then selects with
selection.grading.select_streaming over selection.grading.saved_chunks, which reads those files one at a time
(select_and_cut's path, scope campaign). Snapshots: bcc W, --atoms atoms (n^3 cubic cells), one vacancy, rattled
0.05 A with seed k; odd k also have a 10 A vacuum gap along z (two (001) surfaces), so about 10 % of the atoms of
those grade above gamma_select.

Figures per N: wall time of grading + selection, snapshots/s, atoms graded per second (grading time only), and
peak memory of the grading + selection after the set-up: the increase of the peak RSS over the RSS after the set-up
(the kernel's high-water mark, reset after the set-up through /proc/self/clear_refs; where that cannot be reset,
ru_maxrss), the process's whole peak (resource ru_maxrss), and the peak of the Python-side allocations, numpy arrays
included (tracemalloc; LAMMPS's own memory is not in it). "in-memory" is the former select_and_cut for comparison: a
second fresh process loads every snapshot's candidates at once and runs select_environments on them (selection only,
the same files). The ratios are those of the largest N to the smallest.

    .venv/bin/python benchmarks/grading_memory.py [--atoms 2000] [--snapshots 10 100] [--pool-size P]
                                                  [--twojmax 6] [--max-new 200] [--json out.json]

Figures of a full run (default arguments; 2 cores shared with other jobs, load average 3.8; 35 s in all):

    W bcc: 1999 atoms per snapshot, SNAP 2J=6 (31 columns), gamma_select 2, max_new 200, pool 2000 rows
       N  wall s grade s  sel s snap/s atoms/s   cand chosen red  pool |  RSS+    RSS    py | in-memory  RSS+    py
      10    3.12    2.09   0.11   3.21    9560   2128      8   1  2128 |   9.6  136.3  3.20 |             4.8  2.67
     100   25.41   17.29   0.31   3.94   11565  21297     10  16  2284 |  15.0  142.0  3.82 |            34.2 23.27
    ratio 100/10: peak RSS increase 1.56, peak RSS 1.04, tracemalloc peak 1.19; in-memory selection: RSS increase
    7.06, tracemalloc 8.70

The Python-side peak (py) is the pool (at most 2000 rows plus one snapshot's, 2128 at N = 10, 2284 at N = 100)
and one snapshot's grading; loading every candidate instead grows with N (2.7 -> 23.3 MiB). The RSS increase
grows by 5 MiB from 10 to 100 snapshots without the rows in it: every grade_atoms opens and closes a LAMMPS
instance (SnapBasis.rows), and that alone creeps about 8-14 KB per instance (a bare md.engine.LammpsSystem opened
and closed 400 times on 432 atoms: +1.7 MiB from the 10th to the 400th; grading alone, 2000 atoms: 6.8 MiB after
10 snapshots, 8.4 after 100).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ase import Atoms  # noqa: E402
from ase.build import bulk  # noqa: E402

from selection import maxvol  # noqa: E402
from selection.bases import make_basis  # noqa: E402
from selection.grading import (  # noqa: E402
    default_pool_size,
    grade_atoms,
    save_candidates,
    saved_chunks,
    select_environments,
    select_streaming,
    training_active_set,
)

A0 = 3.165  # EAM Zhou W
MARK = "FIGURES "  # the worker's line of figures on stdout


def training_set() -> list[Atoms]:
    """B: rattled 3^3 bcc W cells (0.03-0.12 A), enough environments for the active set of the basis."""
    images = []
    for k in range(4):
        atoms = bulk("W", "bcc", a=A0, cubic=True).repeat((3, 3, 3))
        atoms.rattle(0.03 + 0.03 * k, seed=k)
        images.append(atoms)
    return images


def snapshot(k: int, cells: int) -> Atoms:
    """Snapshot k: cells^3 cubic bcc W cells, one vacancy, rattled 0.05 A; odd k with a 10 A vacuum gap along z."""
    atoms = bulk("W", "bcc", a=A0, cubic=True).repeat((cells,) * 3)
    del atoms[int(np.random.default_rng(k).integers(len(atoms)))]
    if k % 2:
        atoms.cell[2, 2] += 10.0
    atoms.rattle(0.05, seed=k)
    return atoms


def _status_kib(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def _max_rss_kib() -> int:
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)  # KiB on Linux


class PeakMemory:
    """Peak RSS increase over the RSS at start (high-water mark reset then, where Linux allows) and tracemalloc
    peak, of what runs inside the ``with`` block."""

    def __enter__(self) -> PeakMemory:
        try:
            Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
            self.reset = _status_kib("VmHWM") is not None
        except OSError:
            self.reset = False
        self.start_kib = (_status_kib("VmRSS") if self.reset else None) or _max_rss_kib()
        tracemalloc.start()
        tracemalloc.reset_peak()
        self.traced_start = tracemalloc.get_traced_memory()[0]
        return self

    def __exit__(self, *exc: object) -> None:
        self.traced_peak = tracemalloc.get_traced_memory()[1] - self.traced_start
        tracemalloc.stop()
        peak = (_status_kib("VmHWM") if self.reset else None) or _max_rss_kib()
        self.rss_increase_kib = max(peak - self.start_kib, 0)
        self.max_rss_kib = _max_rss_kib()


def worker(n: int, args: argparse.Namespace) -> dict:
    """Set-up, then grading and streaming selection of n snapshots in this process; the figures."""
    basis = make_basis("snap", elements=["W"], twojmax=args.twojmax, cutoff=4.7)
    active_set = training_active_set(basis, training_set())
    maxvol.save(active_set, args.workdir / "active_set.npz")
    cells = max(1, round((args.atoms / 2) ** (1 / 3)))
    pool_size = args.pool_size or default_pool_size(active_set, args.max_new)
    rows_dir = args.workdir / "rows"
    rows_dir.mkdir(parents=True, exist_ok=True)
    files, atoms_graded, grade_s = [], 0, 0.0
    with PeakMemory() as memory:
        started = time.perf_counter()
        for k in range(n):
            atoms = snapshot(k, cells)
            tick = time.perf_counter()
            rows, gamma = grade_atoms(basis, active_set, atoms)
            grade_s += time.perf_counter() - tick
            atoms_graded += len(atoms)
            # what grade_snapshot keeps for the selection (candidates "all"): the rows above gamma_select
            chosen = np.flatnonzero(gamma > args.gamma_select)
            files.append(rows_dir / f"{k}.npz")
            save_candidates(files[-1], atoms, rows, gamma, chosen)
            del atoms, rows, gamma
        tick = time.perf_counter()
        selection = select_streaming(active_set, saved_chunks(files, "W")(range(n)), gamma_select=args.gamma_select,
                                     max_new=args.max_new, pool_size=pool_size)
        select_s = time.perf_counter() - tick
        wall_s = time.perf_counter() - started
    return {
        "snapshots": n, "atoms_per_snapshot": atoms_graded // n, "columns": active_set.size, "pool_size": pool_size,
        "wall_s": wall_s, "grade_s": grade_s, "select_s": select_s, "snapshots_per_s": n / wall_s,
        "atoms_per_s": atoms_graded / grade_s, "candidates": selection.candidates, "chosen": len(selection.chosen),
        "reductions": selection.reductions, "largest_pool": selection.largest_pool,
        "log_abs_det_gain": selection.active_set.log_abs_det - active_set.log_abs_det,
        "rss_increase_mib": memory.rss_increase_kib / 1024, "max_rss_mib": memory.max_rss_kib / 1024,
        "tracemalloc_mib": memory.traced_peak / 2**20, "rss_reset": memory.reset,
    }


def worker_in_memory(n: int, args: argparse.Namespace) -> dict:
    """The former select_and_cut on the files the worker wrote: every snapshot's candidates loaded, then one
    select_environments."""
    active_set = maxvol.load(args.workdir / "active_set.npz")
    with PeakMemory() as memory:
        rows, gammas = [], []
        for k in range(n):
            with np.load(args.workdir / "rows" / f"{k}.npz") as saved:
                rows.append(saved["rows"])
                gammas.append(saved["gamma"])
        selection = select_environments(active_set, rows, gammas, gamma_select=args.gamma_select,
                                        max_new=args.max_new)
    return {"chosen": len(selection.chosen), "rss_increase_mib": memory.rss_increase_kib / 1024,
            "tracemalloc_mib": memory.traced_peak / 2**20}


def _in_fresh_process(mode: str, n: int, args: argparse.Namespace, workdir: Path) -> dict:
    command = [sys.executable, __file__, mode, str(n), "--workdir", str(workdir), "--atoms", str(args.atoms),
               "--twojmax", str(args.twojmax), "--max-new", str(args.max_new),
               "--gamma-select", repr(args.gamma_select), "--pool-size", str(args.pool_size or 0)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"{mode} {n} failed (exit {done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    (line,) = [line for line in done.stdout.splitlines() if line.startswith(MARK)]
    return json.loads(line[len(MARK):])


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--atoms", type=int, default=2000, help="atoms per snapshot (rounded to 2 n^3, less one)")
    parser.add_argument("--snapshots", type=int, nargs="+", default=[10, 100])
    parser.add_argument("--pool-size", type=int, default=0, help="rows of the selection pool (0: the default)")
    parser.add_argument("--twojmax", type=int, default=6)
    parser.add_argument("--max-new", type=int, default=200)
    parser.add_argument("--gamma-select", type=float, default=2.0)
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    parser.add_argument("--workdir", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("mode", nargs="?", choices=["worker", "in-memory"], help=argparse.SUPPRESS)
    parser.add_argument("n", nargs="?", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.mode:
        figures = (worker if args.mode == "worker" else worker_in_memory)(args.n, args)
        print(MARK + json.dumps(figures), flush=True)
        return figures

    rows = []
    for n in args.snapshots:
        with tempfile.TemporaryDirectory(prefix="dg-grading-memory-") as tmp:
            row = _in_fresh_process("worker", n, args, Path(tmp))
            row["in_memory"] = _in_fresh_process("in-memory", n, args, Path(tmp))
        rows.append(row)
    first, last = rows[0], rows[-1]
    print(f"W bcc: {first['atoms_per_snapshot']} atoms per snapshot, SNAP 2J={args.twojmax} ({first['columns']} "
          f"columns), gamma_select {args.gamma_select:g}, max_new {args.max_new}, pool {first['pool_size']} rows")
    print("RSS+: peak RSS increase over the set-up, RSS: peak RSS of the process, py: tracemalloc peak (MiB)")
    print("in-memory: the selection alone, every candidate loaded at once (select_environments)")
    print(f"{'N':>4s} {'wall s':>7s} {'grade s':>7s} {'sel s':>6s} {'snap/s':>6s} {'atoms/s':>7s} {'cand':>6s} "
          f"{'chosen':>6s} {'red':>3s} {'pool':>5s} | {'RSS+':>5s} {'RSS':>6s} {'py':>5s} | in-memory {'RSS+':>5s} "
          f"{'py':>5s}")
    for row in rows:
        print(f"{row['snapshots']:4d} {row['wall_s']:7.2f} {row['grade_s']:7.2f} {row['select_s']:6.2f} "
              f"{row['snapshots_per_s']:6.2f} {row['atoms_per_s']:7.0f} {row['candidates']:6d} {row['chosen']:6d} "
              f"{row['reductions']:3d} {row['largest_pool']:5d} | {row['rss_increase_mib']:5.1f} "
              f"{row['max_rss_mib']:6.1f} {row['tracemalloc_mib']:5.2f} | "
              f"{row['in_memory']['rss_increase_mib']:15.1f} {row['in_memory']['tracemalloc_mib']:5.2f}")

    def ratio(key: str, of: str | None = None) -> float:
        a, b = (last[of], first[of]) if of else (last, first)
        return a[key] / b[key] if b[key] > 0 else float("nan")

    ratios = {"rss_increase": ratio("rss_increase_mib"), "max_rss": ratio("max_rss_mib"),
              "tracemalloc": ratio("tracemalloc_mib"), "in_memory_rss_increase": ratio("rss_increase_mib", "in_memory"),
              "in_memory_tracemalloc": ratio("tracemalloc_mib", "in_memory")}
    print(f"ratio {last['snapshots']}/{first['snapshots']}: peak RSS increase {ratios['rss_increase']:.2f}, "
          f"peak RSS {ratios['max_rss']:.2f}, tracemalloc peak {ratios['tracemalloc']:.2f}; in-memory selection: "
          f"RSS increase {ratios['in_memory_rss_increase']:.2f}, tracemalloc {ratios['in_memory_tracemalloc']:.2f}")
    report = {"atoms": args.atoms, "twojmax": args.twojmax, "gamma_select": args.gamma_select,
              "max_new": args.max_new, "rows": rows, "ratios": ratios}
    if args.json:
        args.json.write_text(json.dumps(report, indent=1) + "\n")
    return report


if __name__ == "__main__":
    main()
