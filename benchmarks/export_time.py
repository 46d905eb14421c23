"""Export time for 10,000 labelled configurations through mlip.export.write_dataset (mtp, ace, extxyz).

    .venv/bin/python benchmarks/export_time.py                       # W-all repeated to 10,000 (default)
    .venv/bin/python benchmarks/export_time.py --source eam          # rattled 16/54-atom W cells, EAM-Zhou labels
    .venv/bin/python benchmarks/export_time.py --count 2000 --baseline 200

Sources (both real format: ase.Atoms with single-point energy, forces and stress):
- ``wall``: the paper's W-all set (1026 VASP configurations, 2-140 atoms, ../shared/reference) repeated
  in a seeded random order until ``--count`` configurations (distinct copies: pickle would store a
  repeated object once).
- ``eam``: ``--unique`` distinct rattled (0.05-0.15 A), strained 16- and 54-atom bcc W cells labelled
  with EAM-Zhou (the ``eam`` reference labeller's LAMMPS path, in process), repeated until ``--count``.

Every format writes the full set and a baseline of ``--baseline`` configurations (the first ones of
the same list, measured in the same run right before); the report gives seconds, configurations/s,
atoms/s, file size and the ratio time(count) / time(baseline) (count/baseline for linear scaling), in
wall clock and in CPU time of this process (the one to trust on a shared machine), so the numbers
compare between machines. Imports are excluded (a 10-configuration warm-up per format). Files go to a
temporary directory (or ``--workdir``); best of ``--repeat`` runs.
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mlip.export import EXPORT_FORMATS, write_dataset

W_ALL = Path(__file__).resolve().parents[2] / "shared" / "reference" / "ml-defect-modeling" / "W-all.pckl.gzip"
if not W_ALL.is_file():
    W_ALL = Path("/work/shared/reference/ml-defect-modeling/W-all.pckl.gzip")


def _fresh(atoms):
    """A distinct copy with its own label arrays (repeated objects would let pickle store references only)."""
    from ase.calculators.singlepoint import SinglePointCalculator

    copy = atoms.copy()
    copy.calc = SinglePointCalculator(copy, **{k: np.array(v, copy=True) if isinstance(v, np.ndarray) else v
                                               for k, v in atoms.calc.results.items()})
    return copy


def wall_images(count: int, seed: int) -> list:
    from sampling.datasets import read_dataset

    images = read_dataset(W_ALL)
    order = np.random.default_rng(seed).permutation(np.resize(np.arange(len(images)), count))
    return [_fresh(images[i]) for i in order]


def eam_images(count: int, unique: int, seed: int) -> list:
    from ase.build import bulk

    from labelling import quick
    from labelling.eam_run import calculate

    settings = quick("eam")
    rng = np.random.default_rng(seed)
    distinct = []
    for k in range(unique):
        atoms = bulk("W", "bcc", a=3.165, cubic=True).repeat((2, 2, 2) if k % 2 else (3, 3, 3))
        atoms.set_cell(atoms.cell * (1 + rng.uniform(-0.02, 0.02)), scale_atoms=True)
        atoms.rattle(rng.uniform(0.05, 0.15), seed=int(rng.integers(1 << 31)))
        labelled = calculate(atoms, settings, "benchmark").to_atoms(atoms, source="benchmark")
        # as the campaign export builds them: the label only as calculator results (LabelResult.to_atoms also
        # copies energy and stress into info, which ASE's extxyz writer refuses next to the same results)
        for key in ("energy", "stress"):
            labelled.info.pop(key, None)
        distinct.append(labelled)
    return [_fresh(distinct[i]) for i in np.resize(np.arange(unique), count)]


def time_export(images: list, fmt: str, path: Path, repeat: int) -> tuple[float, float]:
    """Best wall and CPU seconds (this process) of ``repeat`` exports."""
    best, best_cpu = float("inf"), float("inf")
    for _ in range(repeat):
        started, cpu = time.perf_counter(), time.process_time()
        if fmt == "ace":
            with open(path, "wb") as handle:
                write_dataset(handle, images, fmt)
        else:
            with open(path, "w") as handle:
                write_dataset(handle, images, fmt)
        best = min(best, time.perf_counter() - started)
        best_cpu = min(best_cpu, time.process_time() - cpu)
    return best, best_cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", choices=("wall", "eam"), default="wall" if W_ALL.is_file() else "eam")
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--baseline", type=int, default=1_000)
    parser.add_argument("--unique", type=int, default=200, help="distinct EAM cells (--source eam)")
    parser.add_argument("--formats", nargs="*", default=list(EXPORT_FORMATS), choices=EXPORT_FORMATS)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None, help="write the figures as JSON")
    args = parser.parse_args()
    if not 0 < args.baseline <= args.count:
        parser.error("need 0 < --baseline <= --count")

    started = time.perf_counter()
    images = (wall_images(args.count, args.seed) if args.source == "wall"
              else eam_images(args.count, args.unique, args.seed))
    n_atoms = sum(len(a) for a in images)
    base_atoms = sum(len(a) for a in images[: args.baseline])
    print(f"source {args.source}: {len(images)} configurations, {n_atoms} atoms "
          f"(baseline {args.baseline}: {base_atoms} atoms), prepared in {time.perf_counter() - started:.1f} s")
    print(f"{'format':>7} {'configs':>8} {'seconds':>9} {'cpu s':>8} {'configs/s':>10} {'atoms/s':>10} {'MB':>8} "
          f"{'ratio':>7} {'cpu ratio':>9}")
    rows = []
    with tempfile.TemporaryDirectory(prefix="dg-export-bench-") as tmp:
        root = args.workdir or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        for fmt in args.formats:
            suffix = {"mtp": "cfg", "ace": "pckl.gzip", "extxyz": "extxyz"}[fmt]
            base_path, full_path = root / f"baseline.{suffix}", root / f"full.{suffix}"
            time_export(images[:10], fmt, base_path, 1)  # warm-up: imports (pandas for ace) are not timed
            base_s, base_cpu = time_export(images[: args.baseline], fmt, base_path, args.repeat)
            full_s, full_cpu = time_export(images, fmt, full_path, args.repeat)
            for size, seconds, cpu, atoms, path in ((args.baseline, base_s, base_cpu, base_atoms, base_path),
                                                    (len(images), full_s, full_cpu, n_atoms, full_path)):
                ratio, cpu_ratio = seconds / base_s, cpu / base_cpu
                mb = path.stat().st_size / 1e6
                print(f"{fmt:>7} {size:8d} {seconds:9.2f} {cpu:8.2f} {size / seconds:10.0f} {atoms / seconds:10.0f} "
                      f"{mb:8.1f} {ratio:7.2f} {cpu_ratio:9.2f}", flush=True)
                rows.append({"format": fmt, "configurations": size, "atoms": atoms, "seconds": seconds,
                             "cpu_seconds": cpu, "configurations_per_s": size / seconds, "atoms_per_s": atoms / seconds,
                             "bytes": path.stat().st_size, "ratio_to_baseline": ratio,
                             "cpu_ratio_to_baseline": cpu_ratio})
            if fmt == "ace":  # the pickle is gzip: check it is one, as pacemaker reads it
                with gzip.open(full_path, "rb") as handle:
                    handle.read(2)
    print(f"ratio = time / time of the {args.baseline}-configuration baseline of the same format, wall and CPU "
          f"(linear scaling: {len(images) / args.baseline:.1f}; on a loaded machine trust the CPU column)")
    if args.json:
        args.json.write_text(json.dumps({"source": args.source, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
