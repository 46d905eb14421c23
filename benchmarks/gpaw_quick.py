"""Label time of the GPAW quick profile for bcc W supercells, against the 2-atom cell measured in the same run.

Each size is one real ``labelling.label(atoms, quick("gpaw"), workdir)`` call, exactly as stage 5
runs it: a ``python -m labelling.gpaw_run`` subprocess (setup, SCF, forces, stress, result.json).
Cells are n x n x n conventional bcc W cubes (a0 = 3.165 A; n = 1, 2, 3, 4 -> 2, 16, 54, 128
atoms), rattled (Gaussian, --rattle A) so forces are non-zero and no symmetry reduces the
k-points beyond time reversal. The quick profile: PW 300 eV, k spacing 2*pi*0.1 1/A, FD 0.1 eV,
SCF 1e-4 eV, W setup with 6 valence electrons.

Parallelism: GPAW here is built without MPI and without OpenMP (``gpaw info``), and every label is
one single-threaded process (``labelling.backends._python_env`` pins OPENBLAS_NUM_THREADS = 1:
with 2 OpenBLAS threads the 2-atom label took 415 s instead of 40 s). Two cores are used the way
the campaign uses them: ``--parallel 2`` labels two cells of each size at once (rattled with
different seeds), and the time printed is the slower of the two, so it is the time per label
while both cores are busy. ``--parallel 1`` gives the one-label time on an otherwise idle core.

A size that runs past --max-minutes is killed by the launcher's walltime; its SCF iterations done
so far (time stamps in gpaw.txt) give the time per iteration, and its total is extrapolated as
(time to the first iteration) + (iterations of the largest finished size) x (time per iteration),
printed as such. The machine may be shared: the 1-minute load average before and after each size
is printed next to its time.

    .venv/bin/python benchmarks/gpaw_quick.py [--sizes 1 2 3 4] [--parallel 2] [--max-minutes 20]
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import re
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from labelling import LabelError, label, quick  # noqa: E402

A0 = 3.165


@dataclass
class Row:
    n: int
    natoms: int
    kpts: tuple[int, int, int]
    ibz: int | None = None
    bands: int | None = None
    plane_waves: int | None = None
    n_scf: int | None = None
    wall: float | None = None  # label() wall time, s (None: not finished)
    to_first_iter: float | None = None  # process start -> end of SCF iteration 1, s
    per_iter: float | None = None  # median of iterations 2.., s
    iters_done: int = 0
    forces_stress: float | None = None  # GPAW's force + stress computation time, s
    load: tuple[float, float] = (0.0, 0.0)
    estimate: float | None = None  # extrapolated total for an unfinished size, s
    model: str | None = None  # how the estimate was made when no iteration time of its own was measured
    ibz_computed: bool = False  # IBZ count from ibz_time_reversal, not from GPAW's log


def w_cell(n: int, rattle: float, seed: int):
    from ase.build import bulk

    atoms = bulk("W", "bcc", a=A0, cubic=True) * (n, n, n)
    atoms.rattle(stdev=rattle, seed=seed)
    return atoms


def ibz_time_reversal(kpts: tuple[int, int, int]) -> int:
    """Irreducible k-points of a Monkhorst-Pack grid when only time reversal (k ~ -k) is left,
    as in a rattled cell: what GPAW reports, known before GPAW gets that far."""
    from ase.dft.kpoints import monkhorst_pack

    seen: set[tuple[int, ...]] = set()
    count = 0
    for k in monkhorst_pack(kpts):
        key = tuple(round(x) for x in (np.mod(k, 1.0) * 2 * np.array(kpts)) % (2 * np.array(kpts)))
        if key in seen:
            continue
        count += 1
        seen.add(key)
        seen.add(tuple(round(x) for x in (np.mod(-k, 1.0) * 2 * np.array(kpts)) % (2 * np.array(kpts))))
    return count


def read_log(path: Path, start: float, row: Row) -> None:
    """Fill k-points, bands, plane waves, iteration timings and force/stress time from gpaw.txt."""
    if not path.is_file():
        return
    text = path.read_text(errors="replace")
    for attr, pattern in (("ibz", r"Number of IBZ points:\s*(\d+)"), ("bands", r"Bands:\s*(\d+)"),
                          ("plane_waves", r"Plane wave coefficients:\s*(\d+)")):
        match = re.search(pattern, text)
        if match:
            setattr(row, attr, int(match.group(1)))
    stamps = re.findall(r"\|iter:\s*\d+\|\s*(\d\d):(\d\d):(\d\d)\s*\|", text)
    if stamps:
        day0 = time.localtime(start)
        midnight = start - (day0.tm_hour * 3600 + day0.tm_min * 60 + day0.tm_sec)
        seconds = []
        for h, m, s in stamps:
            t = midnight + int(h) * 3600 + int(m) * 60 + int(s)
            # GPAW prints wall-clock times of day: a stamp earlier than the start (or than the last
            # stamp) is on the next day
            while t < (seconds[-1] if seconds else start - 1):
                t += 86400
            seconds.append(t)
        row.iters_done = len(seconds)
        row.to_first_iter = seconds[0] - start
        steps = [b - a for a, b in itertools.pairwise(seconds)]
        if steps:
            row.per_iter = statistics.median(steps)
    extra = [float(x) for x in re.findall(r"(?:Force|Stress) computation time:\s*([\d.]+)", text)]
    if extra:
        row.forces_stress = sum(extra)


def run_size(n: int, args: argparse.Namespace, base: Path) -> Row:
    """Label ``args.parallel`` rattled copies of the n x n x n cell at once; the row is the slowest."""
    from concurrent.futures import ThreadPoolExecutor

    cells = [w_cell(n, args.rattle, args.seed + copy) for copy in range(args.parallel)]
    limit = max(1, round(args.max_minutes * 60))
    settings = quick("gpaw", walltime=f"{limit // 3600:02d}:{limit % 3600 // 60:02d}:{limit % 60:02d}")
    row = Row(n=n, natoms=len(cells[0]), kpts=settings.kpoints(cells[0]))
    workdirs = [base / f"w{len(cells[0])}-{copy}" for copy in range(args.parallel)]
    load_before = os.getloadavg()[0]
    start = time.time()

    def one(copy: int):
        try:
            result = label(cells[copy], settings, workdirs[copy], reuse=False)
        except LabelError as error:
            if error.failure != "walltime":
                raise
            return None, None
        assert max(abs(result.forces).max(axis=1)) > 0.01, "rattled cell should have forces"
        return time.time() - start, result.n_scf

    with ThreadPoolExecutor(args.parallel) as pool:
        outcomes = list(pool.map(one, range(args.parallel)))
    if all(wall is not None for wall, _ in outcomes):
        slowest = max(range(args.parallel), key=lambda copy: outcomes[copy][0])
        row.wall, row.n_scf = outcomes[slowest]
    else:
        slowest = next(copy for copy, (wall, _) in enumerate(outcomes) if wall is None)
    row.load = (load_before, os.getloadavg()[0])
    read_log(workdirs[slowest] / "gpaw.txt", start, row)
    if row.ibz is None:  # stopped before GPAW printed it
        row.ibz = ibz_time_reversal(row.kpts)
        row.ibz_computed = True
    return row


def fmt(x: float | None, spec: str = ".0f") -> str:
    return "-" if x is None else format(x, spec)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 2, 3, 4],
                        help="supercell repetitions n (n x n x n cubes, 2 n^3 atoms); 1 (2 atoms) is the baseline")
    parser.add_argument("--parallel", type=int, default=2, help="labels of each size run at once (one core each)")
    parser.add_argument("--max-minutes", type=float, default=20.0,
                        help="walltime per size; longer runs are extrapolated")
    parser.add_argument("--rattle", type=float, default=0.03, help="Gaussian displacement stdev, A")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--workdir", type=Path, default=None, help="keep job directories here (default: a temp dir)")
    args = parser.parse_args(argv)

    import gpaw
    from gpaw import cgpaw

    mpi = bool(getattr(cgpaw, "have_mpi", False))
    print(f"GPAW {gpaw.__version__}: MPI {'yes' if mpi else 'no'}, OpenMP no; one single-threaded process per label, "
          f"{args.parallel} labels at once; {os.cpu_count()} cores on this machine")
    setups = quick("gpaw").engine_options.get("setups", "default")
    print(f"quick profile: {quick('gpaw').ecut:.0f} eV, "
          f"k spacing 2*pi*{quick('gpaw').kspacing / (2 * math.pi):.3g} 1/A, "
          f"setups {setups}, FD {quick('gpaw').sigma} eV, "
          f"SCF {quick('gpaw').scf_energy_tol:g} eV; rattle {args.rattle} A; "
          f"walltime {args.max_minutes:g} min per size")

    sizes = sorted(set(args.sizes))
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="gpaw_quick_") as tmp:
        base = args.workdir or Path(tmp)
        for n in sizes:
            row = run_size(n, args, base)
            rows.append(row)
            state = (f"{row.wall:.0f} s" if row.wall is not None
                     else f"stopped at {args.max_minutes:g} min after {row.iters_done} SCF iterations")
            print(f"  {row.natoms:4d} atoms: {state} (load {row.load[0]:.1f} -> {row.load[1]:.1f})", flush=True)

    finished = [r for r in rows if r.wall is not None]
    typical_scf = max(finished, key=lambda r: r.natoms).n_scf if finished else None
    for row in rows:
        if row.wall is None and row.per_iter is not None and row.to_first_iter is not None and typical_scf:
            row.estimate = row.to_first_iter + (typical_scf - 1) * row.per_iter
    # a size stopped before two iterations: time per iteration per IBZ k-point ~ atoms^p, p from the two
    # largest sizes with a measured iteration time; time to iteration 1 taken as two iterations
    timed = sorted((r for r in rows if r.per_iter and r.ibz), key=lambda r: r.natoms)
    exponent = None
    if len(timed) >= 2:
        small, large = timed[-2], timed[-1]
        exponent = (math.log((large.per_iter / large.ibz) / (small.per_iter / small.ibz))
                    / math.log(large.natoms / small.natoms))
    for row in rows:
        if row.wall is None and row.estimate is None and exponent is not None and row.ibz and typical_scf:
            ref = timed[-1]
            per_iter = ref.per_iter / ref.ibz * row.ibz * (row.natoms / ref.natoms) ** exponent
            row.estimate = (typical_scf + 1) * per_iter
            row.model = f"per iteration ~ IBZ k x atoms^{exponent:.2f} from {timed[-2].natoms} and {ref.natoms} atoms"
    base_row = rows[0] if rows and rows[0].wall is not None else None

    print()
    header = (f"{'atoms':>5} {'k-mesh':>7} {'IBZ k':>5} {'bands':>5} {'PW':>6} {'SCF it':>6} {'time/s':>8} "
              f"{'s/iter':>7} {'to it1/s':>8} {'F+S/s':>6} {'x base':>7} {'x base/atom':>11} {'load':>9}")
    print(header)
    print("-" * len(header))
    for row in rows:
        total = row.wall if row.wall is not None else row.estimate
        label_total = fmt(row.wall) if row.wall is not None else (f"~{row.estimate:.0f}*" if row.estimate else "-")
        ratio = total / base_row.wall if (base_row and total) else None
        per_atom = ratio / (row.natoms / base_row.natoms) if ratio else None
        ibz = fmt(row.ibz, "d") + ("'" if row.ibz_computed else "")
        print(f"{row.natoms:5d} {'x'.join(map(str, row.kpts)):>7} {ibz:>5} {fmt(row.bands, 'd'):>5} "
              f"{fmt(row.plane_waves, 'd'):>6} {fmt(row.n_scf, 'd') if row.n_scf else str(row.iters_done) + '+':>6} "
              f"{label_total:>8} {fmt(row.per_iter, '.1f'):>7} {fmt(row.to_first_iter):>8} "
              f"{fmt(row.forces_stress, '.1f'):>6} "
              f"{fmt(ratio, '.1f'):>7} {fmt(per_atom, '.2f'):>11} {row.load[0]:4.1f}/{row.load[1]:4.1f}")
    if any(r.estimate for r in rows):
        print(f"* extrapolated, not measured: time to SCF iteration 1 + ({typical_scf} - 1) x median time per "
              f"iteration measured before the walltime stopped the run ({typical_scf} = SCF iterations of the "
              f"largest finished size)")
        for row in rows:
            if row.model:
                print(f"  {row.natoms} atoms: no iteration finished in time; ({typical_scf} + 1) iterations, "
                      f"{row.model}")
    if any(r.ibz_computed for r in rows):
        print("' IBZ k-points counted here (time reversal only), GPAW stopped before printing them")
    print("time/s: label() wall time (subprocess start to result); s/iter: median SCF iteration; "
          "to it1/s: start to end of iteration 1 (imports, setup, LCAO guess, first iteration); F+S: forces + stress")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
