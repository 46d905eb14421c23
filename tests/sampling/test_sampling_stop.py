"""Stopping a LAMMPS run from outside: a stop file halts MD and minimisation within seconds.

The latencies asserted here are measured from the moment a timer thread creates the file to the
moment the run raised Stopped; benchmarks/stop_latency.py measures them up to 10^6 atoms (and the
cost of the watch: none).
"""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from md.engine import STOP_POLL_INTERVAL_S, LammpsSystem, Stopped
from sampling.builders import add_vacancies, bulk_crystal
from sampling.protocols import _MINIMIZE, execute, program_for

A0 = 3.165
W = dict(element="W", lattice="bcc", lattice_constant=A0)
LATENCY_LIMIT_S = 2.0  # measured 0.05-0.25 s (poll 0.2 s + one step); generous for a shared machine


def _create_later(path: Path, delay: float) -> dict[str, float]:
    """Create ``path`` from a timer thread after ``delay`` s; the returned dict gets its creation time."""
    created: dict[str, float] = {}

    def create() -> None:
        path.touch()
        created["at"] = time.perf_counter()

    threading.Timer(delay, create).start()
    return created


def _halted_step(error: pytest.ExceptionInfo) -> int:
    match = re.search(r"halted at step (\d+)", str(error.value))
    assert match, str(error.value)
    return int(match.group(1))


def test_md_run_stops_within_seconds_of_the_stop_file(w_zhou, tmp_path):
    stop = tmp_path / "data dir (1)" / "run" / "item-7.stop"
    stop.parent.mkdir(parents=True)
    atoms = bulk_crystal("W", "bcc", A0, (10, 10, 10))  # 2000 atoms
    program = program_for("anneal", atoms, w_zhou, **W, temperatures=[300.0], steps_per_temperature=10_000_000,
                          snapshot_every=10_000_000)
    snapshots = execute(program, w_zhou, stop_file=stop)
    first = next(snapshots)  # minimised, before the MD
    assert first.index == 0 and first.atoms.info["temperature"] == 0.0
    created = _create_later(stop, 1.5)
    with pytest.raises(Stopped, match=r"'run \d+.*' halted at step") as error:
        next(snapshots)  # would be 10^7 steps (~10 h) of MD
    latency = time.perf_counter() - created["at"]
    step = _halted_step(error)
    print(f"MD stop latency {latency * 1e3:.1f} ms at step {step} (file looked for every {STOP_POLL_INTERVAL_S} s)")
    assert latency < LATENCY_LIMIT_S
    assert 0 < step < 10_000_000  # stopped mid-run, after 1.5 s of MD
    snapshots.close()


def test_minimisation_stops_within_seconds_of_the_stop_file(w_zhou, tmp_path):
    stop = tmp_path / "item-8.stop"
    atoms = bulk_crystal("W", "bcc", A0, (16, 16, 16))  # 8192 atoms
    atoms.rattle(0.2, seed=1)
    program = program_for("minimize", atoms, w_zhou, **W, box_relax=False)
    # a minimisation that lasts (~30 s: at most 0.001 A per line search, no force tolerance in reach)
    position = program.items.index(_MINIMIZE)
    program.items[position:position + 1] = ["min_modify dmax 0.001", "minimize 0.0 1e-12 1000000 10000000"]
    snapshots = execute(program, w_zhou, stop_file=stop)
    created = _create_later(stop, 1.5)
    started = time.perf_counter()
    with pytest.raises(Stopped, match=r"'minimize .*' halted at step") as error:
        next(snapshots)
    latency = time.perf_counter() - created["at"]
    iterations = _halted_step(error)
    print(f"minimisation stop latency {latency * 1e3:.1f} ms after {iterations} iterations "
          f"({time.perf_counter() - started:.2f} s)")
    assert latency < LATENCY_LIMIT_S
    assert iterations > 0  # it was minimising


def test_a_present_stop_file_stops_before_lammps_starts(w_zhou, tmp_path):
    stop = tmp_path / "item-9.stop"
    stop.touch()
    program = program_for("anneal", bulk_crystal("W", "bcc", A0, (5, 5, 5)), w_zhou, **W, temperatures=[300.0],
                          steps_per_temperature=1000, snapshot_every=500)
    started = time.perf_counter()
    with pytest.raises(Stopped, match="not started"):
        next(execute(program, w_zhou, stop_file=stop))
    assert time.perf_counter() - started < 0.5


def test_watching_a_stop_file_leaves_the_snapshots_unchanged(w_zhou, tmp_path):
    """Same program with and without a watched (absent) stop file: bit-identical snapshots."""
    atoms = add_vacancies(bulk_crystal("W", "bcc", A0, (5, 5, 5)), 1, seed=3)
    program = program_for("anneal", atoms, w_zhou, **W, temperatures=[300.0, 900.0], steps_per_temperature=400,
                          snapshot_every=100)
    plain = list(execute(program, w_zhou))
    watched = list(execute(program, w_zhou, stop_file=tmp_path / "never.stop"))
    assert len(plain) == len(watched) == program.snapshot_count == 9
    for a, b in zip(plain, watched):
        assert a.atoms.info["energy"] == b.atoms.info["energy"]  # exactly, not approximately
        assert a.atoms.info["temperature"] == b.atoms.info["temperature"]
        np.testing.assert_array_equal(a.atoms.info["stress"], b.atoms.info["stress"])
        np.testing.assert_array_equal(a.atoms.positions, b.atoms.positions)
        np.testing.assert_array_equal(a.atoms.arrays["structure_type"], b.atoms.arrays["structure_type"])
        np.testing.assert_array_equal(a.defect_indices, b.defect_indices)
    assert plain[-1].atoms.info["temperature"] > 500.0  # the MD ran (and the first snapshot is minimised)


def test_a_watched_system_runs_exactly_as_an_unwatched_one(w_zhou, tmp_path):
    """Minimisation and NVT with the file looked for every millisecond: trajectories identical."""
    atoms = bulk_crystal("W", "bcc", A0, (4, 4, 4))
    atoms.rattle(0.1, seed=2)
    results = []
    for watch in (False, True):
        with LammpsSystem(atoms, w_zhou) as system:
            if watch:
                system.watch_stop_file(tmp_path / "never.stop", poll_interval=0.001)
            system.commands(["min_style cg", "minimize 0.0 1e-6 200 2000", "velocity all create 600.0 87287",
                             "fix integrate all nvt temp 600.0 600.0 0.1", "run 300"])
            results.append((system.potential_energy(), system.positions(), system.stress()))
    (e0, x0, s0), (e1, x1, s1) = results
    assert e0 == e1
    np.testing.assert_array_equal(x0, x1)
    np.testing.assert_array_equal(s0, s1)


def test_a_halted_system_never_runs_again_even_when_the_file_is_gone(w_zhou, tmp_path):
    """After a halt LAMMPS skips later runs; they raise Stopped instead of returning 0 steps as if done."""
    stop = tmp_path / "item-10.stop"
    with LammpsSystem(bulk_crystal("W", "bcc", A0, (6, 6, 6)), w_zhou) as system:
        system.commands(["velocity all create 300.0 1", "fix integrate all nve"])
        system.watch_stop_file(stop)
        _create_later(stop, 0.5)
        with pytest.raises(Stopped) as error:
            system.command("run 100000000")
        step = _halted_step(error)
        stop.unlink()  # e.g. removed by whoever runs the item next
        assert system.stop_requested()
        with pytest.raises(Stopped, match="not started"):
            system.run(10)
        # LAMMPS itself stays stopped too: a run issued past the check does no step
        system.lmp.command("run 10")
        assert int(system.lmp.get_thermo("step")) == step
        assert len(system.get_atoms()) == 432  # the instance is still readable


def test_closing_a_watched_system_ends_its_watcher(w_zhou, tmp_path):
    system = LammpsSystem(bulk_crystal("W", "bcc", A0, (3, 3, 3)), w_zhou)
    system.watch_stop_file(tmp_path / "never.stop")
    watcher = system._stop_watcher
    assert watcher.is_alive()
    system.close()
    assert not watcher.is_alive()
    (tmp_path / "never.stop").touch()  # nothing left to stop: no call into the freed instance
    time.sleep(2 * STOP_POLL_INTERVAL_S)
