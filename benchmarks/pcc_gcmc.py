"""PCC-GCMC wall time per cluster: the authors' full grid on 1 and 2 processes, where the time goes, and
the fast variant (issue 5) against it, with the best energy per atom of each.

Clusters (pcc_gcmc.examples, EAM-Zhou W): ``sphere``, an 8 A sphere of perfect bcc W (core 5 A; the
ideal reconstruction is the perfect crystal, E_coh = -8.760 eV/atom), and optionally ``screw``, 8 A
around a relaxed 1/2<111> screw dislocation (periodic along the line: a 3 x 3 grid).

For each cluster, in this order (baseline and variant interleaved, so load from other users hits both):

    authors  1 process  | fast  1 process | authors  2 processes | fast  2 processes

``authors``: GCMCParams(steps=--steps, seed, check_every=100) - the published protocol, every box of the
grid (check_every only records the atom count after each 100 steps; the chunked run is bit-for-bit the
single run). ``fast``: GCMCParams.fast(...) - the same T, mu, steps and insertion/deletion attempts, 10
instead of 100 MC translations per GCMC invocation, GCMC stopped once no insertion/deletion was accepted
for steps/4 steps (early_stop) or once the box holds more than max_atoms atoms (stop_over_cap: it cannot
be admissible, so it is not relaxed). The same per-box seeds. "which options matter" splits the gain:
GCMC cost per step (the translations), steps run (early_stop; and what early_stop alone would have
done on the authors' own trajectories, read from their traces), boxes over the cap, pruned boxes.

Columns: ``wall`` the grid's wall time (= per cluster), ``per box`` mean candidate time, then where the
time went as fractions of processes x wall: GCMC (fix gcmc + MD), CG minimisation, set-up (LAMMPS
instance, seeding) + bookkeeping, overhead (planning, process start-up, idle processes at the end of
the grid). ``cpu`` is the candidates' CPU time (less sensitive to other users of the machine than wall).
The machine may be shared: wall times are noisy; compare the interleaved rows, and cpu.

Measured here (2 cores shared with other users' runs, load 3-6: wall times noisy, so 2 processes gained
little; cpu s steadier), seed 1, 2000 steps:

    sphere, 27 boxes: authors 1594 s (1 proc), 1525 s (2 proc); GCMC 96-98%, CG 0.3%, set-up ~1%,
        overhead <= 2%; fast 413 s / 364 s (x3.9 / x4.2 wall, x4.4 / x4.9 cpu: x3.8 from the cheaper
        GCMC step, 85% of the steps run); best -8.75992 (full) vs -8.75998 eV/atom (fast), both 128 atoms.
        (An earlier authors' run on 2 processes with less load: 1184 s.)
    screw, 9 boxes, 2 proc: authors 344 s, fast 39 s (x8.9; 48% of the steps run); best -8.59653 (full)
        vs -8.60015 eV/atom (fast).

    .venv/bin/python benchmarks/pcc_gcmc.py                    # authors' 2000 steps, 27 boxes (~20-30 min)
    .venv/bin/python benchmarks/pcc_gcmc.py --quick            # 300 steps, 8 boxes (a few minutes; not
                                                                # converged: boxes keep vacancies, so the
                                                                # best-energy comparison is noise there)
    .venv/bin/python benchmarks/pcc_gcmc.py --cluster sphere screw --workers 2 --json out.json
    .venv/bin/python benchmarks/pcc_gcmc.py --steps 100 --offsets 0.0 --workers 1   # one box (smoke run, seconds)

``--offsets`` replaces the grid's per-axis offsets (default: the authors' 3 x 3 x 3 grid, or --quick's 2 x 2 x 2).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from md.potentials import load_potential  # noqa: E402
from pcc_gcmc import GCMCParams, reconstruct  # noqa: E402
from pcc_gcmc.examples import lattice, perfect_sphere_cluster, screw_line_cluster  # noqa: E402

POTENTIAL = "W_zhou.eam.alloy"
TOLERANCE = 0.01  # eV/atom: the fast variant's best must be within this of the full grid's


def build(name: str, potential: Any, a: float) -> Any:
    if name == "sphere":
        return perfect_sphere_cluster(potential, 8.0, a=a)
    if name == "screw":
        return screw_line_cluster(potential, 8.0, a=a)
    raise ValueError(name)


def run_one(cluster: Any, potential: Any, params: GCMCParams, workers: int) -> dict[str, Any]:
    started = time.perf_counter()
    result = reconstruct(cluster, None, potential, params, max_workers=workers)
    wall = time.perf_counter() - started
    timing = dict(result.info["timing"])
    ran = [c for c in result.candidates if c.status != "skipped"]
    return {
        "workers": workers,
        "wall_s": wall,
        "boxes": len(result.candidates),
        "boxes_run": len(ran),
        "per_box_s": timing["candidates_s"] / max(len(ran), 1),
        "timing": timing,
        "best_energy_per_atom": result.best.energy_per_atom,
        "best_n_atoms": result.best.n_atoms,
        "best_index": result.best_index,
        "n_admissible": sum(c.admissible for c in result.candidates),
        "stops": {reason or "all steps": sum((c.stop_reason == reason) for c in ran)
                  for reason in sorted({c.stop_reason for c in ran})},
        "steps_run": sum(c.steps_run for c in ran),
        "steps_full": params.steps * len(ran),
        "candidates": result.table(),
    }


def fraction(timing: dict[str, Any], name: str) -> str:
    value = timing.get(f"{name}_fraction")
    return f"{100 * value:5.1f}%" if value is not None else "   -  "


def print_table(cluster: str, rows: list[tuple[str, dict[str, Any]]], e_coh: float) -> None:
    header = (f"{'cluster':7} {'variant':8} {'procs':>5} {'boxes':>7} {'wall s':>8} {'per box s':>9} {'cpu s':>8} "
              f"{'GCMC':>6} {'min':>6} {'setup+bk':>8} {'overhd':>6} {'steps':>7} {'best eV/at':>11} {'atoms':>5}")
    print(header)
    print("-" * len(header))
    for variant, row in rows:
        t = row["timing"]
        setup = {"x_fraction": t.get("setup_fraction", 0.0) + t.get("bookkeeping_fraction", 0.0)}
        print(f"{cluster:7} {variant:8} {row['workers']:>5} {row['boxes_run']:>3}/{row['boxes']:<3} "
              f"{row['wall_s']:8.1f} {row['per_box_s']:9.1f} {t['cpu_s']:8.1f} "
              f"{fraction(t, 'gcmc')} {fraction(t, 'minimize')} {fraction(setup, 'x'):>8} {fraction(t, 'overhead')} "
              f"{row['steps_run'] / max(row['steps_full'], 1):7.0%} {row['best_energy_per_atom']:11.5f} "
              f"{row['best_n_atoms']:5d}")
    print(f"(E_coh of bcc W with {POTENTIAL}: {e_coh:.4f} eV/atom; steps: GCMC steps run / the full protocol's)")


def plateau_stops(candidates: list[dict[str, Any]], steps: int, plateau: int) -> tuple[int, int, int]:
    """From the authors' traces: (GCMC steps early_stop alone would run, boxes it stops with fewer atoms than
    the full run, boxes it stops at the full run's largest count). Exact for the counts: the chunked run
    is bit-for-bit the single run, so an early-stopped box runs a prefix of the same trajectory."""
    run, fewer, top = 0, 0, 0
    largest = max(c["n_atoms"] for c in candidates if c["status"] == "ok")
    for c in candidates:
        if c["status"] != "ok" or not c["gcmc_trace"]:
            continue
        stop, count, last, accepted = steps, c["n_atoms"], 0, None
        for step, natoms, _, inserted, deleted in c["gcmc_trace"]:
            if (inserted, deleted) != accepted:
                accepted, last = (inserted, deleted), step
            if step - last >= plateau and step < steps:
                stop, count = step, natoms
                break
        run += stop
        fewer += count < c["n_atoms"]
        top += count == largest
    return run, fewer, top


def print_summary(cluster: str, results: dict[tuple[str, int], dict[str, Any]], workers: list[int],
                  fast_params: GCMCParams) -> bool:
    ok = True
    print(f"\n{cluster}: where the authors' grid's time went (sums over the boxes that ran, s):")
    for w in workers:
        t = results[("authors", w)]["timing"]
        print(f"  {w} proc: GCMC {t['gcmc_s']:.1f}, minimisation {t['minimize_s']:.1f}, set-up {t['setup_s']:.1f}, "
              f"bookkeeping {t['bookkeeping_s']:.1f}, overhead {t['overhead_s']:.1f} "
              f"(of {w} x wall {t['wall_s']:.1f} s)")
    if len(workers) > 1:
        one, two = results[("authors", workers[0])], results[("authors", workers[-1])]
        print(f"  authors' grid, {workers[0]} -> {workers[-1]} processes: wall {one['wall_s']:.1f} -> "
              f"{two['wall_s']:.1f} s (x{one['wall_s'] / two['wall_s']:.2f})")
    print(f"{cluster}: fast variant against the full grid (same processes, same per-box seeds):")
    for w in workers:
        full, fast = results[("authors", w)], results[("fast", w)]
        delta = fast["best_energy_per_atom"] - full["best_energy_per_atom"]
        ok &= delta <= TOLERANCE  # a lower (better) best is not a loss
        verdict = ("within" if abs(delta) <= TOLERANCE else
                   "lower: fast found a better cell" if delta < 0 else "NOT within")
        print(f"  {w} proc: wall fast/full {fast['wall_s']:.1f}/{full['wall_s']:.1f} s = "
              f"{fast['wall_s'] / full['wall_s']:.2f} (x{full['wall_s'] / fast['wall_s']:.1f}; "
              f"cpu x{full['timing']['cpu_s'] / fast['timing']['cpu_s']:.1f}); "
              f"best E/atom full {full['best_energy_per_atom']:.5f}, fast {fast['best_energy_per_atom']:.5f}, "
              f"fast - full {delta:+.5f} eV ({verdict}; tolerance {TOLERANCE})")
    # which option saved what
    w = workers[-1]
    full, fast = results[("authors", w)], results[("fast", w)]
    per_step_full = full["timing"]["gcmc_s"] / max(full["steps_run"], 1) * 1e3
    per_step_fast = fast["timing"]["gcmc_s"] / max(fast["steps_run"], 1) * 1e3
    print(f"  which options matter ({w} proc run):")
    print(f"    GCMC cost per step: authors {per_step_full:.2f} ms, fast {per_step_fast:.2f} ms "
          f"(x{per_step_full / per_step_fast:.1f}: mc_moves {fast_params.mc_moves} instead of {GCMCParams().mc_moves})")
    stops = ", ".join(f"{k} {v}" for k, v in fast["stops"].items())
    print(f"    GCMC steps run: fast {fast['steps_run']} of {fast['steps_full']} "
          f"({fast['steps_run'] / fast['steps_full']:.0%}; "
          f"boxes by stop reason: {stops})")
    if fast_params.early_stop:
        steps = fast_params.steps
        run, fewer, top = plateau_stops(full["candidates"], steps, fast_params.plateau_steps)
        print(f"    early_stop alone on the authors' trajectories (plateau {fast_params.plateau_steps} steps): "
              f"{run / full['steps_full']:.0%} of the steps; {fewer} boxes stopped with fewer atoms than they reach; "
              f"{top} boxes still reach the grid's largest count")
    over = sum(1 for c in full["candidates"] if c["status"] == "ok" and c["n_atoms"] > fast_params.max_atoms)
    print(f"    stop_over_cap: {over} boxes of the authors' grid end over max_atoms ({fast_params.max_atoms}); "
          f"boxes pruned before running: {fast['boxes'] - fast['boxes_run']}; "
          f"minimisation is {100 * full['timing'].get('minimize_fraction', 0):.1f}% of the authors' time")
    print(f"    best box: full #{full['best_index']} ({full['best_n_atoms']} atoms, "
          f"{full['n_admissible']} admissible boxes), "
          f"fast #{fast['best_index']} ({fast['best_n_atoms']} atoms, {fast['n_admissible']} admissible)")
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=None,
                        help="GCMC steps per box (default: the authors' 2000; 300 with --quick)")
    parser.add_argument("--quick", action="store_true", help="300 steps and the 2 x 2 x 2 sub-grid (offsets -0.5, 0.0)")
    parser.add_argument("--offsets", type=float, nargs="+", default=None,
                        help="per-axis grid offsets, A (default: the authors' grid; -0.5 0.0 with --quick)")
    parser.add_argument("--cluster", nargs="+", default=["sphere"], choices=["sphere", "screw"])
    parser.add_argument("--workers", nargs="+", type=int, default=[1, 2], help="process counts (default 1 2)")
    parser.add_argument("--plateau-steps", type=int, default=None,
                        help="fast variant's plateau_steps (default: GCMCParams.fast's)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path, default=None, help="write every run (candidate tables included) here")
    args = parser.parse_args(argv)

    steps = args.steps or (300 if args.quick else 2000)
    grid: dict[str, Any] = {"offsets": (-0.5, 0.0)} if args.quick else {}
    if args.offsets:
        grid = {"offsets": tuple(args.offsets)}
    # check_every=100 only records a trace (atoms, energy after each 100 steps): bit-for-bit the single run
    full_params = GCMCParams(steps=steps, seed=args.seed, check_every=100, **grid)
    fast_changes: dict[str, Any] = dict(steps=steps, seed=args.seed, **grid)
    if args.plateau_steps is not None:
        fast_changes["plateau_steps"] = args.plateau_steps
    fast_params = GCMCParams.fast(**fast_changes)
    compact = {k: v for k, v in fast_params.to_dict().items()
               if (v != full_params.to_dict()[k] and k != "check_every")
               or (k == "plateau_steps" and fast_params.early_stop)}
    potential = load_potential(POTENTIAL)
    a, e_coh = lattice(potential)
    print(f"PCC-GCMC benchmark: {steps} steps per box, grid offsets {full_params.grid_offsets}, processes "
          f"{args.workers}, seed {args.seed}; fast variant = authors' + {compact}")
    print("(wall times are noisy on a shared machine: the rows run interleaved; cpu s is the steadier measure)\n")
    everything: dict[str, Any] = {"steps": steps, "quick": args.quick, "fast_params": fast_params.to_dict(),
                                  "full_params": full_params.to_dict(), "e_coh": e_coh, "clusters": {}}
    all_ok = True
    for name in args.cluster:
        cluster = build(name, potential, a)
        results: dict[tuple[str, int], dict[str, Any]] = {}
        order = [(variant, w) for w in args.workers for variant in ("authors", "fast")]
        for variant, w in order:
            params = full_params if variant == "authors" else fast_params
            results[(variant, w)] = run_one(cluster, potential, params, w)
            row = results[(variant, w)]
            print(f"  ran {name} {variant} on {w} process(es): {row['wall_s']:.1f} s, "
                  f"best {row['best_energy_per_atom']:.5f}", flush=True)
        print()
        print_table(name, [(v, results[(v, w)]) for v, w in order], e_coh)
        all_ok &= print_summary(name, results, args.workers, fast_params)
        print()
        everything["clusters"][name] = {f"{v}:{w}": row for (v, w), row in results.items()}
    if args.json:
        args.json.write_text(json.dumps(everything, indent=1, default=float))
        print(f"wrote {args.json}")
    print(f"every fast best is at most {TOLERANCE} eV/atom above the full grid's" if all_ok
          else f"SOME fast best is more than {TOLERANCE} eV/atom above the full grid's")
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
