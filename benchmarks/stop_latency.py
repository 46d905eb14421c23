"""How fast a stop file halts LAMMPS (cancellation), and what watching for it costs.

For periodic bcc W cells (EAM Zhou) of several sizes, in this process, one thread:

- step:        wall time of one MD step (NVE, 300 K), from a bare run
- MD latency:  a long NVE run watches a stop file (LammpsSystem.watch_stop_file: a thread looks for the
               file every STOP_POLL_INTERVAL_S and calls lammps_force_timeout); the file is created from a
               timer thread once the run is under way; latency = file created -> Stopped raised
- min latency: the same for a CG minimisation of a copy rattled by 0.2 A, at most 0.001 A per line search
               (min_modify dmax: > 1000 iterations); "-" when it converged before the file was made
- overhead:    the same MD run (--atom-steps atoms x steps) with and without the watch, best CPU time of
               --repeats interleaved runs; t_with / t_without - 1 (LAMMPS does no extra work: this is the
               noise of the machine)

and, once, the alternative the watch replaces: a `fix halt N v_x != 0` on `variable x equal is_file(...)`
inside LAMMPS. Its check makes LAMMPS tally energy and virial on every checked step (measured: it costs
what `thermo 1` costs, and nothing more with both), so N = 1 (needed to react within a step at 10^5 atoms
and more, where a step takes 0.5-3 s) costs that on every step.

    .venv/bin/python benchmarks/stop_latency.py [--sizes 4 10 25 40 80] [--atom-steps 4e6] [--repeats 3]
    .venv/bin/python benchmarks/stop_latency.py --sizes 3 --atom-steps 2e4 --repeats 1 --halt-size 3 \
        --halt-steps 50 --start-delay 0.05                                     # a smoke run (the test suite's)
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from md.engine import STOP_POLL_INTERVAL_S, LammpsSystem, Stopped  # noqa: E402
from md.potentials import load_potential  # noqa: E402
from sampling.builders import bulk_crystal  # noqa: E402

A0 = 3.165  # EAM Zhou W
MD = ["velocity all create 300.0 4928459 dist gaussian", "fix integrate all nve"]


def step_time(atoms, potential, steps: int) -> float:
    """Seconds per MD step of a bare run (set-up excluded: a first run of 1 step does it)."""
    with LammpsSystem(atoms, potential) as system:
        system.commands(MD)
        system.run(1)
        started = time.perf_counter()
        system.command(f"run {steps} pre no post no")
        return (time.perf_counter() - started) / steps


def latency(atoms, potential, command: str, delay: float, stop: Path, prepare: list[str]) -> dict:
    """Create ``stop`` ``delay`` s after ``command`` started; the time until it raised Stopped."""
    stop.unlink(missing_ok=True)
    created: dict[str, float] = {}

    def create() -> None:
        created["at"] = time.perf_counter()  # before the file exists: a latency is never negative
        stop.touch()

    with LammpsSystem(atoms, potential) as system:
        system.commands(prepare)
        system.watch_stop_file(stop)
        timer = threading.Timer(delay, create)
        started = time.perf_counter()
        timer.start()
        try:
            system.command(command)
        except Stopped:
            ended = time.perf_counter()
        else:  # it ended by itself before the file was there (a small cell's minimisation): nothing to measure
            timer.cancel()
            return {"latency_s": None, "steps_done": int(system.lmp.get_thermo("step")),
                    "ended_by_itself_s": time.perf_counter() - started}
        step = int(system.lmp.get_thermo("step"))
    stop.unlink(missing_ok=True)
    return {"latency_s": ended - created["at"], "steps_done": step}


def _run_cpu(atoms, potential, steps: int, prepare: list[str], watch: Path | None = None) -> float:
    """CPU seconds of ``steps`` MD steps (set-up excluded)."""
    with LammpsSystem(atoms, potential) as system:
        system.commands(MD + prepare)
        if watch is not None:
            system.watch_stop_file(watch)
        system.run(1)
        started = time.process_time()
        system.command(f"run {steps} pre no post no")
        return time.process_time() - started


def fix_halt_cost(potential, stop: Path, size: int, steps: int, repeats: int) -> dict:
    """Per-step CPU cost of the in-LAMMPS alternative (fix halt every step on is_file()) and of `thermo 1`."""
    atoms = bulk_crystal("W", "bcc", A0, (size, size, size))
    cases = {
        "bare": [],
        "fix_halt_is_file_every_step": [f"variable dg_stop equal is_file({stop})",
                                        "fix dg_stop all halt 1 v_dg_stop != 0 error soft message no"],
        "thermo_every_step": ["thermo 1"],
    }
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(repeats):
        for name, prepare in cases.items():
            times[name].append(_run_cpu(atoms, potential, steps, prepare))
    bare = min(times["bare"])
    return {"atoms": len(atoms), "steps": steps,
            **{name: min(values) / bare - 1.0 for name, values in times.items() if name != "bare"}}


def overhead(atoms, potential, steps: int, repeats: int, stop: Path) -> dict:
    """The same run with and without the watch; best CPU time of interleaved repeats."""
    stop.unlink(missing_ok=True)
    times: dict[str, list[float]] = {"bare": [], "watched": []}
    for _ in range(repeats):
        times["bare"].append(_run_cpu(atoms, potential, steps, []))
        times["watched"].append(_run_cpu(atoms, potential, steps, [], watch=stop))
    bare, watched = min(times["bare"]), min(times["watched"])
    return {"bare_s": bare, "watched_s": watched, "overhead": watched / bare - 1.0, "steps": steps}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[4, 10, 25, 40, 80],
                        help="cubic supercells of the 2-atom bcc cell (80: 1,024,000 atoms)")
    parser.add_argument("--atom-steps", type=float, default=4e6, help="atoms x MD steps of one overhead run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--halt-size", type=int, default=12, help="supercell of the fix-halt comparison")
    parser.add_argument("--halt-steps", type=int, default=300, help="MD steps of each fix-halt comparison run")
    parser.add_argument("--start-delay", type=float, default=1.0,
                        help="s after 5 MD steps' time at which the stop file is made (the run is under way)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args(argv)
    potential = load_potential("W_zhou.eam.alloy")
    rows = []
    with tempfile.TemporaryDirectory() as directory:
        stop = Path(directory) / "item.stop"
        alternative = fix_halt_cost(potential, stop, args.halt_size, args.halt_steps, args.repeats)
        print(f"fix halt on is_file() every step ({alternative['atoms']} atoms): "
              f"{alternative['fix_halt_is_file_every_step'] * 100:+.1f} % per step; thermo every step: "
              f"{alternative['thermo_every_step'] * 100:+.1f} %", flush=True)
        print(f"watch: the file is looked for every {STOP_POLL_INTERVAL_S} s", flush=True)
        for size in args.sizes:
            atoms = bulk_crystal("W", "bcc", A0, (size, size, size))
            n = len(atoms)
            per_step = step_time(atoms, potential, max(2, min(500, int(2e6 // n))))
            # the timer fires once the run is under way: set-up (neighbour lists, first forces) is ~3 steps
            delay = 5 * per_step + args.start_delay
            md = latency(atoms, potential, "run 1000000000", delay, stop, MD)
            rattled = atoms.copy()
            rattled.rattle(0.2, seed=1)
            minimisation = latency(rattled, potential, "minimize 0.0 1e-12 1000000000 1000000000", delay, stop,
                                   ["min_style cg", "min_modify dmax 0.001"])
            steps = max(3, int(args.atom_steps // n))
            cost = overhead(atoms, potential, steps, args.repeats, stop)
            row = {"atoms": n, "step_s": per_step, "md_latency_s": md["latency_s"],
                   "min_latency_s": minimisation["latency_s"], "min_iterations": minimisation["steps_done"],
                   **{f"overhead_{k}": v for k, v in cost.items()}}
            rows.append(row)
            min_text = "     -" if minimisation["latency_s"] is None else f"{minimisation['latency_s'] * 1e3:6.0f}"
            print(f"{n:>9} atoms  step {per_step * 1e3:8.2f} ms  stop latency MD {md['latency_s'] * 1e3:6.0f} ms  "
                  f"minimize {min_text} ms  watch overhead {cost['overhead'] * 100:+6.2f} % "
                  f"({cost['bare_s']:.2f} s vs {cost['watched_s']:.2f} s CPU, {steps} steps)", flush=True)
    if args.json:
        args.json.write_text(json.dumps({"poll_interval_s": STOP_POLL_INTERVAL_S, "fix_halt_alternative": alternative,
                                         "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
