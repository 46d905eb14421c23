"""A PCC-GCMC box run stops within seconds of its stop file appearing, and is unchanged without it."""

from __future__ import annotations

import re
import threading
import time

import numpy as np
import pytest

from md.engine import Stopped
from md.potentials import load_potential
from pcc_gcmc import GCMCParams, plan, run_candidate
from pcc_gcmc.examples import perfect_sphere_cluster

A0 = 3.1648  # EAM-Zhou W at zero pressure


@pytest.fixture(scope="module")
def potential():
    return load_potential("W_zhou.eam.alloy")


@pytest.fixture(scope="module")
def sphere_cluster(potential):
    return perfect_sphere_cluster(potential, 8.0, a=A0)


def test_box_run_is_unchanged_by_an_absent_stop_file(sphere_cluster, potential, tmp_path):
    params = GCMCParams(steps=60, exchanges=50, mc_moves=20, offsets=(0.0,), seed=3)
    payload, grid, _ = plan(sphere_cluster, None, potential, params)
    box, seed = grid[0]["box"], grid[0]["seed"]
    plain = run_candidate(payload, box, params, seed)
    watched = run_candidate(payload, box, params, seed, stop_file=tmp_path / "never.stop")
    assert plain.status == watched.status == "ok"
    assert plain.energy_per_atom == watched.energy_per_atom  # exactly
    assert (plain.n_atoms, plain.insertions_accepted, plain.translations_accepted) == \
        (watched.n_atoms, watched.insertions_accepted, watched.translations_accepted)
    np.testing.assert_array_equal(np.array(plain.positions), np.array(watched.positions))


def test_box_run_stops_within_seconds_of_the_stop_file(sphere_cluster, potential, tmp_path):
    # 10^6 GCMC steps: hours; the authors' protocol has 2000
    params = GCMCParams(steps=1_000_000, offsets=(0.0,), seed=3)
    payload, grid, _ = plan(sphere_cluster, None, potential, params)
    stop = tmp_path / "item-3.stop"
    created: dict[str, float] = {}

    def create() -> None:
        stop.touch()
        created["at"] = time.perf_counter()

    threading.Timer(2.0, create).start()
    with pytest.raises(Stopped, match=r"'run 1000000' halted at step (\d+)") as error:
        run_candidate(payload, grid[0]["box"], params, grid[0]["seed"], stop_file=stop)
    latency = time.perf_counter() - created["at"]
    step = int(re.search(r"halted at step (\d+)", str(error.value)).group(1))
    print(f"PCC-GCMC box stop latency {latency * 1e3:.1f} ms at GCMC step {step}")
    assert latency < 2.0
    assert 0 < step < 1_000_000
