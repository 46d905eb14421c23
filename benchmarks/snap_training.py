"""SNAP training (mlip.train_snap) on the paper's W-all set: fit time and test RMSE, linear and quadratic.

    .venv/bin/python benchmarks/snap_training.py                          # linear + quadratic 2J=8, 2 processes
    .venv/bin/python benchmarks/snap_training.py --kinds linear --processes 1
    .venv/bin/python benchmarks/snap_training.py --max-configs 6 --twojmax 4   # a smoke run (the test suite's)

W-all (1026 VASP configurations, 94,516 atoms) is split 90/10 with mlip.train.split (seed 0, the split of
benchmarks/mtp_training.py). Each fit reports: the time to build the rows (LAMMPS ``compute snap`` + Gram
sums, wall clock with ``--processes`` workers, and the CPU seconds of each part summed over workers), the
solve, the test evaluation (the written model through LAMMPS ``pair_style snap``) and the train/test RMSE,
printed beside the paper's ACE and this project's MTP on the same kind of split. Timings are wall clock on
a machine that may be shared.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mlip.snap import snap_column_count, train_snap
from mlip.train import split
from sampling.datasets import read_dataset

W_ALL = Path(__file__).resolve().parents[2] / "shared" / "reference" / "ml-defect-modeling" / "W-all.pckl.gzip"
if not W_ALL.is_file():
    W_ALL = Path("/work/shared/reference/ml-defect-modeling/W-all.pckl.gzip")

# Test-set RMSE on W-all 90/10 (energy meV/atom, forces meV/A per component) of the other potentials.
REFERENCES = {
    "ACE (paper, 924/102)": (4.24, 160.7),
    "MTP level 16 (motep, this project)": (7.64, 194.0),
}


def run(kind: str, train, test, twojmax: int, ridge, processes: int, workdir: Path, seed: int) -> dict:
    quadratic = kind == "quadratic"
    model = train_snap(train, test=test, workdir=workdir / kind, name=f"W_{kind}", twojmax=twojmax,
                       quadratic=quadratic, ridge=ridge, seed=seed, processes=processes)
    t = model.timings
    row = {
        "kind": kind, "twojmax": twojmax, "columns": model.settings["n_columns"],
        "ridge": model.settings["ridge_used"], "ridge_requested": ridge,
        "condition_number": model.settings["condition_number"],
        "train": model.rmse["train"], "test": model.rmse["test"],
        "fit_s": t["rows"] + t["solve"], "rows_s": t["rows"], "lammps_cpu_s": t["lammps_cpu"],
        "gram_cpu_s": t["gram_cpu"], "solve_s": t["solve"], "evaluate_test_s": t["evaluate_test"],
        "total_s": t["total"], "ridge_scan": model.settings["ridge_scan"], "model": str(model.path),
    }
    print(f"{kind:9s} 2J={twojmax} {row['columns']:5d} columns  ridge {row['ridge']:g}"
          f"{' (auto)' if ridge == 'auto' else ''}  cond {row['condition_number']:.2e}")
    print(f"  fit {row['fit_s']:7.1f} s = rows {t['rows']:.1f} s wall "
          f"(LAMMPS compute snap {t['lammps_cpu']:.1f} s CPU, "
          f"Gram sums {t['gram_cpu']:.1f} s CPU, {processes} process(es)) + solve {t['solve']:.2f} s;  "
          f"test evaluation {t['evaluate_test']:.1f} s;  total {t['total']:.1f} s")
    for label in ("train", "test"):
        errors = row[label]
        if errors:
            print(f"  {label:5s} E {errors['energy_mev_per_atom']:8.2f} meV/atom   "
                  f"F {errors['forces_mev_per_A']:7.1f} meV/A"
                  f"   (|dF| {errors['forces_norm_mev_per_A']:6.1f})   {errors['n_configurations']} configurations")
    if row["ridge_scan"]:
        best = min(row["ridge_scan"], key=lambda r: r["validation_loss"])
        print("  ridge scan (validation part of the training set): " + ", ".join(
            f"{r['ridge']:g}: {r['validation_energy_mev_per_atom']:.1f}/{r['validation_forces_mev_per_A']:.0f}"
            for r in row["ridge_scan"]) + f"  -> {best['ridge']:g}")
    return row


def summary(rows: list[dict]) -> None:
    print(f"\n{'W-all test RMSE':40s} {'E meV/atom':>11s} {'F meV/A':>9s} {'fit s':>8s}")
    for name, (e, f) in REFERENCES.items():
        print(f"{name:40s} {e:11.2f} {f:9.1f} {'':>8s}")
    for row in rows:
        test = row["test"] or {}
        print(f"{row['kind'] + ' SNAP 2J=' + str(row['twojmax']) + ' (this run)':40s} "
              f"{test.get('energy_mev_per_atom', math.nan):11.2f} {test.get('forces_mev_per_A', math.nan):9.1f} "
              f"{row['fit_s']:8.1f}")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kinds", nargs="+", choices=("linear", "quadratic"), default=["linear", "quadratic"])
    parser.add_argument("--twojmax", type=int, default=8)
    parser.add_argument("--ridge-linear", default="0", help="relative ridge of the linear fit, or 'auto' (default 0)")
    parser.add_argument("--ridge-quadratic", default="auto", help="relative ridge of the quadratic fit (default auto)")
    parser.add_argument("--processes", type=int, default=2, help="LAMMPS row workers (one core each)")
    parser.add_argument("--max-configs", type=int, default=0, help="use only the first N of a seeded shuffle (0: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dataset", type=Path, default=W_ALL)
    parser.add_argument("--workdir", type=Path, default=None, help="keep the models here (default: a temp dir)")
    parser.add_argument("--json", type=Path, default=None, help="write the figures as JSON")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    images = read_dataset(args.dataset)
    if args.max_configs:
        import numpy as np

        order = np.random.default_rng(args.seed).permutation(len(images))[: args.max_configs]
        images = [images[i] for i in sorted(order)]
    train, test = split(images, test_fraction=0.1, seed=args.seed)
    print(f"{args.dataset.name}: {len(images)} configurations, {sum(map(len, images))} atoms "
          f"(read in {time.perf_counter() - started:.1f} s); {len(train)} train / {len(test)} test (seed {args.seed})")
    print(f"SNAP 2J={args.twojmax}: {snap_column_count(args.twojmax)} bispectrum components (+1 constant); quadratic "
          f"{snap_column_count(args.twojmax, True)} (+1); weights energy 1 (per atom), forces 0.01, stress 0")
    ridges = {"linear": args.ridge_linear, "quadratic": args.ridge_quadratic}
    rows = []
    with tempfile.TemporaryDirectory(prefix="dg-snap-bench-") as tmp:
        workdir = args.workdir or Path(tmp)
        for kind in args.kinds:
            ridge = ridges[kind] if ridges[kind] == "auto" else float(ridges[kind])
            rows.append(run(kind, train, test, args.twojmax, ridge, args.processes, workdir, args.seed))
    summary(rows)
    report = {"dataset": str(args.dataset), "n_train": len(train), "n_test": len(test), "processes": args.processes,
              "references": {k: {"energy_mev_per_atom": v[0], "forces_mev_per_A": v[1]} for k, v in REFERENCES.items()},
              "fits": rows}
    if args.json:
        args.json.write_text(json.dumps(report, indent=1, default=str) + "\n")
    return report


if __name__ == "__main__":
    main()
