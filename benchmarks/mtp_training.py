"""MTP training time against set size (motep, through mlip.motep_trainer), and the W-all 90/10 figures.

    .venv/bin/python benchmarks/mtp_training.py                       # sizes 50 100 200 400, level 8
    .venv/bin/python benchmarks/mtp_training.py --sizes 25 50 --iters 3
    .venv/bin/python benchmarks/mtp_training.py --sizes --full        # only the W-all 90/10 training

Every size trains on the first N configurations of a seeded shuffle of the paper's W-all set
(1026 VASP configurations, 2-140 atoms) with the same level and number of optimiser iterations,
and reports the wall time next to a baseline measured in the same run: one energy + force pass
over the same configurations with the trained potential (motep's calculator, run mode), so the
ratio is comparable between machines. ``--full`` trains on 90 % of W-all and tests on the other
10 % (mlip.train.split, seed 0), printing train/test RMSE (meV/atom, meV/A) and the time. The
machine may be shared: timings are wall clock.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mlip.motep_trainer import train_mtp
from mlip.mtp_basis import mtp_basis_counts
from mlip.train import evaluate, split
from sampling.datasets import read_dataset

W_ALL = Path(__file__).resolve().parents[2] / "shared" / "reference" / "ml-defect-modeling" / "W-all.pckl.gzip"
if not W_ALL.is_file():
    W_ALL = Path("/work/shared/reference/ml-defect-modeling/W-all.pckl.gzip")


def _row(errors: dict | None) -> str:
    if not errors:
        return "-"
    return (f"E {errors['energy_mev_per_atom']:7.2f} meV/atom  F {errors['forces_mev_per_A']:7.1f} meV/A "
            f"(|dF| {errors['forces_norm_mev_per_A']:6.1f})")


def size_scan(images, sizes, level, iters, seed, workroot: Path) -> list[dict]:
    order = np.random.default_rng(seed).permutation(len(images))
    results = []
    counts = mtp_basis_counts(level)
    print(f"MTP level {level} ({counts['alpha_scalar_moments']} basis functions, "
          f"{counts['radial_funcs_count']} radial functions), {iters} Levenberg-Marquardt iterations, "
          "motep cext engine")
    print(f"{'configs':>8} {'atoms':>7} {'train s':>9} {'fit s':>8} {'E+F pass s':>11} {'ratio':>7}  train RMSE")
    for size in sizes:
        subset = [images[i] for i in order[:size]]
        workdir = workroot / f"size{size}"
        started = time.perf_counter()
        model = train_mtp(subset, level=level, max_iter=iters, seed=seed, workdir=workdir)
        elapsed = time.perf_counter() - started
        started = time.perf_counter()
        evaluate(model.path, subset, species=model.species)
        baseline = time.perf_counter() - started
        atoms = sum(len(a) for a in subset)
        row = {"configurations": size, "atoms": atoms, "train_wall_s": elapsed,
               "fit_wall_s": model.settings["fit_wall_time_s"], "ef_pass_s": baseline,
               "ratio": elapsed / baseline, "iterations": model.settings["iterations"],
               "rmse_train": model.rmse["train"]}
        results.append(row)
        print(f"{size:8d} {atoms:7d} {elapsed:9.1f} {row['fit_wall_s']:8.1f} {baseline:11.2f} {row['ratio']:7.1f}  "
              f"{_row(model.rmse['train'])}", flush=True)
    if len(results) > 1:
        x = np.log([r["atoms"] for r in results])
        y = np.log([r["train_wall_s"] for r in results])
        print(f"scaling: train time ~ atoms^{np.polyfit(x, y, 1)[0]:.2f}")
    return results


def full(images, level, iters, fit_subset, seed, workroot: Path, weights: dict) -> dict:
    train, test = split(images, test_fraction=0.1, seed=seed)
    print(f"W-all 90/10: {len(train)} training, {len(test)} test configurations; level {level}, {iters} iterations, "
          f"nonlinear fit on {fit_subset or len(train)} configurations, linear refit on all; weights {weights}")
    model = train_mtp(train, test=test, level=level, max_iter=iters, fit_subset=fit_subset, seed=seed,
                      workdir=workroot / "full", **weights)
    print(f"  train: {_row(model.rmse['train'])}")
    print(f"  test:  {_row(model.rmse['test'])}")
    print(f"  wall time {model.wall_time_s:.0f} s (fit {model.settings['fit_wall_time_s']:.0f} s, "
          f"{model.settings['iterations']} iterations); model {model.path}")
    verdict = (model.rmse["test"]["energy_mev_per_atom"] <= 10.0 and model.rmse["test"]["forces_mev_per_A"] <= 200.0)
    print(f"  paper-level accuracy (<= 10 meV/atom, <= 0.2 eV/A on the test set): {'yes' if verdict else 'no'}")
    return model.to_dict()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="*", default=[50, 100, 200, 400])
    parser.add_argument("--level", type=int, default=8)
    parser.add_argument("--iters", type=int, default=5, help="optimiser iterations per size")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--full", action="store_true", help="also train on 90 %% of W-all and test on 10 %%")
    parser.add_argument("--full-level", type=int, default=16)
    parser.add_argument("--full-iters", type=int, default=250)
    parser.add_argument("--fit-subset", type=int, default=60,
                        help="configurations in the nonlinear fit of --full (0: all)")
    parser.add_argument("--forces-weight", type=float, default=0.01, help="loss weight of forces in --full")
    parser.add_argument("--stress-weight", type=float, default=0.0,
                        help="loss weight of stress in --full (the paper trains its MTPs with 0)")
    parser.add_argument("--workdir", type=Path, default=None, help="keep the models here (default: a temp dir)")
    parser.add_argument("--json", type=Path, default=None, help="write the figures as JSON")
    args = parser.parse_args()

    started = time.perf_counter()
    images = read_dataset(W_ALL)
    print(f"read {W_ALL.name}: {len(images)} configurations, {sum(map(len, images))} atoms "
          f"in {time.perf_counter() - started:.1f} s")
    report: dict = {}
    with tempfile.TemporaryDirectory(prefix="dg-mtp-bench-") as tmp:
        workroot = args.workdir or Path(tmp)
        if args.sizes:
            report["sizes"] = size_scan(images, args.sizes, args.level, args.iters, args.seed, workroot)
        if args.full:
            report["full"] = full(images, args.full_level, args.full_iters, args.fit_subset or None, args.seed,
                                  workroot, {"forces_weight": args.forces_weight,
                                             "stress_weight": args.stress_weight})
    if args.json:
        args.json.write_text(json.dumps(report, indent=1, default=str) + "\n")


if __name__ == "__main__":
    main()
