"""PCC-GCMC with real LAMMPS runs (EAM-Zhou W).

EAM-Zhou W as shipped (W_zhou.eam.alloy) has E_coh = -8.760 eV/atom at a = 3.1648 A (not the -8.90
of Zhou's parameter table that the issue quotes), so the criteria are relative: E <= E_coh + 0.05
(perfect crystal) and E <= E_coh + 0.15 (screw dislocation, the paper's -8.75 vs -8.90).

The default tests run a reduced protocol: 200 steps with 100 exchanges and 20 moves every 10 steps
(2000 exchange attempts, as many as the authors' 2000 steps x 10 / 10) and a sub-grid. The full
protocol (2000 steps, 10 exchanges + 100 moves, the full grid) is marked slow: ``pytest -m slow``.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import ase.io
import numpy as np
import pytest
from ase import Atoms

from md.potentials import load_potential
from pcc_gcmc import (
    CandidateResult,
    GCMCParams,
    NoAdmissibleCandidateError,
    assemble,
    default_core_mask,
    plan,
    reconstruct,
    run_candidate,
)
from pcc_gcmc.cli_support import reconstruct_file
from pcc_gcmc.examples import perfect_sphere_cluster, screw_line_cluster
from sampling.properties import relax_lattice_constant

QUICK = {"steps": 200, "exchanges": 100, "mc_moves": 20}


@pytest.fixture(scope="module")
def potential():
    return load_potential("W_zhou.eam.alloy")


@pytest.fixture(scope="module")
def w_bulk(potential):
    a, e_coh = relax_lattice_constant(potential, "W", "bcc")
    assert e_coh == pytest.approx(-8.760, abs=2e-3)  # measured; not Zhou's table value -8.90
    return a, e_coh


@pytest.fixture(scope="module")
def sphere_cluster(potential, w_bulk):
    a, _ = w_bulk
    return perfect_sphere_cluster(potential, 8.0, a=a)


@pytest.fixture(scope="module")
def screw_cluster(potential, w_bulk) -> Atoms:
    """The paper's Fig. 3a cluster: 8 A around a relaxed 1/2<111> screw core, periodic along the line."""
    a, _ = w_bulk
    return screw_line_cluster(potential, 8.0, a=a)


def _core_unchanged(result_atoms: Atoms, cluster_atoms: Atoms, core: np.ndarray) -> float:
    """Largest change (A) of the core atoms' positions relative to the first core atom."""
    before = cluster_atoms.positions[core]
    after = result_atoms.positions[result_atoms.arrays["core"]]
    assert len(after) == len(before)
    periodic = np.asarray(cluster_atoms.pbc)
    d_before = before - before[0]
    for k in np.flatnonzero(periodic):  # minimum image along the cluster's own periodic axes
        period = cluster_atoms.cell[k, k]
        d_before[:, k] -= np.rint(d_before[:, k] / period) * period
        # the reconstruction keeps the same image convention: compare modulo the period
    d_after = after - after[0]
    difference = d_after - d_before
    for k in np.flatnonzero(periodic):
        period = cluster_atoms.cell[k, k]
        difference[:, k] -= np.rint(difference[:, k] / period) * period
    return float(np.abs(difference).max())


def _check_result(result, cluster_atoms, core, max_atoms=140):
    atoms = result.atoms
    assert atoms.pbc.all()
    assert len(atoms) <= max_atoms
    assert atoms.arrays["core"].dtype == bool and atoms.arrays["inserted"].dtype == bool
    assert atoms.arrays["core"].sum() == core.sum()
    assert not np.any(atoms.arrays["core"] & atoms.arrays["inserted"])
    assert atoms.info["min_distance"] >= 2.2
    assert _core_unchanged(atoms, cluster_atoms, core) < 1e-6
    assert result.best.core_displacement < 1e-6
    json.dumps(result.table())  # the dashboard's grid is JSON-ready
    energies = [c.energy_per_atom for c in result.candidates if c.admissible]
    assert atoms.info["energy_per_atom"] == pytest.approx(min(energies))


# --------------------------------------------------------------------------- default (reduced protocol)


def test_perfect_bcc_sphere_reconstructs_to_the_crystal(sphere_cluster, potential, w_bulk):
    _, e_coh = w_bulk
    core = default_core_mask(sphere_cluster, 5.0)
    params = GCMCParams(**QUICK, offsets=(-0.5,), seed=3)  # one box of the authors' grid (about 12.7 A)
    result = reconstruct(sphere_cluster, core, potential, params, max_workers=1)
    assert len(result.candidates) == 1
    _check_result(result, sphere_cluster.atoms, core)
    assert not result.best.core_wall  # the centre's environment held: no retry with the core wall
    energy = result.atoms.info["energy_per_atom"]
    print(f"\nperfect W sphere, one box, reduced protocol: E = {energy:.4f} eV/atom (E_coh {e_coh:.4f}), "
          f"{len(result.atoms)} atoms, d_min {result.atoms.info['min_distance']:.3f} A, {result.best.time_s:.1f} s")
    # one box may keep a vacancy or two (the full grid reaches E_coh + 0.05: slow test; measured with the
    # reduced protocol over 27 boxes: -8.7600, the perfect 128-atom crystal)
    assert energy <= e_coh + 0.10


def test_process_pool_runs_the_same_function(sphere_cluster, potential):
    params = GCMCParams(steps=20, exchanges=10, mc_moves=10, offsets=(-0.5, 0.0), seed=8)
    result = reconstruct(sphere_cluster, None, potential, params, max_workers=2)
    assert result.info["execution"] == "processes:2" and len(result.candidates) == 8
    assert all(c.status == "ok" for c in result.candidates)
    payload, grid, _ = plan(sphere_cluster, None, potential, params)
    best = result.best_index
    direct = run_candidate(payload, grid[best]["box"], params, grid[best]["seed"])
    assert direct.energy_per_atom == result.best.energy_per_atom


def test_same_seed_same_result_and_distinct_seeds_differ(sphere_cluster, potential):
    params = GCMCParams(steps=50, exchanges=100, mc_moves=20, offsets=(0.0,))
    payload, grid, _ = plan(sphere_cluster, None, potential, params)
    box, seed = grid[0]["box"], grid[0]["seed"]
    first = run_candidate(payload, box, params.to_dict(), seed)
    second = run_candidate(payload, box, params, seed)
    assert first.status == second.status == "ok"
    assert first.energy_per_atom == second.energy_per_atom
    assert first.n_atoms == second.n_atoms and first.insertions_accepted == second.insertions_accepted
    np.testing.assert_array_equal(np.array(first.positions), np.array(second.positions))
    other = run_candidate(payload, box, params, seed + 1)
    assert (other.energy_per_atom, other.translations_accepted) != (first.energy_per_atom, first.translations_accepted)
    # without an explicit seed the same cluster plans the same per-box seeds
    _, again, _ = plan(sphere_cluster, None, potential, params)
    assert again[0]["seed"] == seed


def test_screw_dislocation_line_cluster_reduced(screw_cluster, potential, w_bulk):
    _, e_coh = w_bulk
    core = default_core_mask(screw_cluster, 5.0)
    params = GCMCParams(**QUICK, offsets=(0.0,), seed=3)
    result = reconstruct(screw_cluster, core, potential, params, max_workers=1)
    _check_result(result, screw_cluster, core)
    # the line direction keeps its period: the dislocation stays straight and periodic
    assert result.atoms.cell[2, 2] == pytest.approx(screw_cluster.cell[2, 2], abs=1e-9)
    energy = result.atoms.info["energy_per_atom"]
    print(f"\nscrew line cluster, one box, reduced protocol: E = {energy:.4f} (E_coh + {energy - e_coh:.3f}) eV/atom, "
          f"{len(result.atoms)} atoms, {result.best.time_s:.1f} s")
    assert energy <= e_coh + 0.30  # one box only; the full grid reaches <= E_coh + 0.15 (slow test)


def test_executor_is_used(sphere_cluster, potential):
    params = GCMCParams(steps=50, exchanges=20, mc_moves=20, offsets=(0.0,), seed=5)
    with ThreadPoolExecutor(max_workers=1) as executor:
        result = reconstruct(sphere_cluster, None, potential, params, executor=executor)
    assert result.info["execution"] == "ThreadPoolExecutor"
    assert result.candidates[0].status == "ok"


def test_reconstruct_file(tmp_path, sphere_cluster):
    cluster = sphere_cluster.atoms.copy()
    core = default_core_mask(cluster, 5.0)
    cluster.arrays["core"] = core
    del cluster.arrays["centre"]
    source = tmp_path / "cluster.extxyz"
    ase.io.write(source, cluster)
    out = tmp_path / "out" / "periodic.extxyz"
    summary = reconstruct_file(source, "W_zhou.eam.alloy", out, grid="authors", seed=9, steps=100, exchanges=50,
                               mc_moves=20, offsets=(0.0,), max_workers=1)
    json.dumps(summary)
    written = ase.io.read(out)
    assert written.pbc.all() and len(written) == summary["n_atoms"] <= 140
    assert written.arrays["core"].dtype == bool and written.arrays["core"].sum() == core.sum()
    assert "inserted" in written.arrays
    assert written.info["energy_per_atom"] == pytest.approx(summary["energy_per_atom"])
    assert written.info["seed"] == summary["seed"] and "min_distance" in written.info
    table = json.loads((tmp_path / "out" / "periodic.extxyz.candidates.json").read_text())
    assert len(table["candidates"]) == 1 and table["best_index"] == 0


# --------------------------------------------------------------------------- time breakdown and speed-ups (issue 5)

# A small real case: core 3.2 A (15 atoms), max_atoms 60, so the boxes (~9.3-9.8 A) fill to the perfect
# 54-atom 3 x 3 x 3 crystal (E_coh) within a few hundred steps; a box of ~60 atoms costs about half of a
# 140-atom one per energy evaluation.
SMALL = {"max_atoms": 60, "core_radius": 3.2, "offsets": (-0.5, 0.0), "exchanges": 20}


def test_candidate_records_where_the_time_goes_and_chunks_are_the_single_run(sphere_cluster, potential):
    params = GCMCParams(steps=60, mc_moves=10, seed=4, **SMALL)
    payload, grid, _ = plan(sphere_cluster, None, potential, params)
    box, seed = grid[0]["box"], grid[0]["seed"]
    single = run_candidate(payload, box, params, seed)
    chunked = run_candidate(payload, box, params.replace(check_every=20).to_dict(), seed)
    for result in (single, chunked):
        assert result.status == "ok" and result.steps_run == 60 and result.stop_reason == ""
        parts = (result.time_setup_s, result.time_gcmc_s, result.time_minimize_s)
        assert all(part > 0 for part in parts) and sum(parts) <= result.time_s
        assert result.cpu_s > 0
        row = json.loads(json.dumps(result.to_dict(structure=True)))  # what a Celery task returns
        assert CandidateResult.from_dict(row) == result
        assert {"time_setup_s", "time_gcmc_s", "time_minimize_s", "cpu_s"} <= set(result.to_dict())
    assert single.gcmc_trace is None
    assert [row[0] for row in chunked.gcmc_trace] == [20, 40, 60]
    assert chunked.gcmc_trace[-1][1] == chunked.n_atoms and chunked.gcmc_trace[-1][3] == chunked.insertions_accepted
    # GCMC in chunks ("run N pre no") is bit-for-bit the authors' single run
    assert chunked.energy_per_atom == single.energy_per_atom
    np.testing.assert_array_equal(np.array(chunked.positions), np.array(single.positions))


def test_candidate_over_the_cap_is_stopped_and_inadmissible(sphere_cluster, potential):
    params = GCMCParams(steps=400, mc_moves=0, seed=4, **SMALL)
    payload, grid, base = plan(sphere_cluster, None, potential, params)
    entry = grid[-1]  # the largest box: starts with ~47 atoms (core + seeded shell) and fills to > 50
    capped = params.replace(max_atoms=50, stop_over_cap=True, check_every=20)
    result = run_candidate(payload, entry["box"], capped, entry["seed"])
    assert result.status == "ok" and result.stop_reason == "over_cap" and not result.admissible
    assert result.n_atoms > 50 and result.steps_run < 400 and result.steps_run % 20 == 0
    assert result.energy_per_atom is None and result.energy_per_atom_before_relax is not None
    assert "max_atoms" in result.message
    with pytest.raises(NoAdmissibleCandidateError):
        assemble(payload, [entry], [result], capped, base)


def test_fast_variant_keeps_the_best_energy_of_the_full_grid(sphere_cluster, potential, w_bulk):
    _, e_coh = w_bulk
    full = reconstruct(sphere_cluster, None, potential, GCMCParams(steps=200, mc_moves=10, seed=2, **SMALL),
                       max_workers=2)
    fast = reconstruct(sphere_cluster, None, potential,
                       GCMCParams.fast(steps=200, seed=2, check_every=25, plateau_steps=50, **SMALL), max_workers=2)
    assert len(full.candidates) == len(fast.candidates) == 8
    e_full, e_fast = full.best.energy_per_atom, fast.best.energy_per_atom
    timing_full, timing_fast = full.info["timing"], fast.info["timing"]
    print(f"\nsmall grid: full {e_full:.5f} eV/atom, {timing_full['steps_run']} steps, "
          f"cpu {timing_full['cpu_s']:.1f} s; fast {e_fast:.5f}, {timing_fast['steps_run']} steps, "
          f"cpu {timing_fast['cpu_s']:.1f} s")
    assert e_full <= e_coh + 0.01  # the perfect 54-atom crystal
    assert e_fast - e_full <= 0.01
    assert timing_fast["steps_run"] < timing_full["steps_run"]
    assert any(c.stop_reason == "plateau" for c in fast.candidates)
    for timing in (timing_full, timing_fast):
        json.dumps(timing)
        assert timing["gcmc_s"] + timing["minimize_s"] + timing["setup_s"] <= timing["candidates_s"] + 1e-9
        assert timing["workers"] == 2 and timing["overhead_s"] >= 0


def test_vacancy_in_the_core_stays_empty(sphere_cluster, potential, w_bulk):
    """A core holding a vacancy (third shell, 4.48 A from the centre) reconstructs with the vacancy empty.

    Without the core wall a mobile neighbour often hops into the vacancy during MD/CG (the quick
    start's cluster hit this in session 2; measured 8 of 16 seed/box runs here, and the outcome of
    one seed differs between machines: the MD is chaotic), so the test takes the first of 8 seeds
    whose box breaks the centre's environment. With core_wall "retry" that box runs again with the
    wall, and only then (other cores lose energy to it). With the wall no atom but the core's is
    within core_radius of the centre, so the centre's environment (the MLIP's) is the cluster's. (A
    neighbour outside the core may still lean towards the vacant site, up to the wall: printed.)
    """
    _, e_coh = w_bulk
    atoms = sphere_cluster.atoms.copy()
    centre = int(np.flatnonzero(atoms.arrays["centre"])[0])
    distance = np.linalg.norm(atoms.positions - atoms.positions[centre], axis=1)
    vacancy = int(np.argmin(np.abs(distance - 4.48)))
    assert distance[vacancy] == pytest.approx(np.sqrt(2) * w_bulk[0], abs=1e-6)
    site = atoms.positions[vacancy] - atoms.positions[centre]
    del atoms[vacancy]
    core = default_core_mask(atoms, 5.0)
    assert core.sum() == 26  # 1 + 8 + 6 + 12 - 1

    for base_seed in range(1, 9):
        params = GCMCParams.fast(offsets=(0.0,), seed=base_seed)
        payload, grid, _ = plan(atoms, core, potential, params)
        unwalled = run_candidate(payload, grid[0]["box"], params.replace(core_wall="never"), grid[0]["seed"])
        if not unwalled.centre_environment_exact:
            break
    assert not unwalled.admissible and "within core_radius" in unwalled.message and not unwalled.core_wall

    result = reconstruct(atoms, core, potential, params, max_workers=1)
    assert result.best.admissible and result.best.centre_environment_exact and result.best.core_wall
    assert result.best.time_s > unwalled.time_s  # both runs counted
    _check_result(result, atoms, core)
    cell = result.atoms
    centre_after = cell.positions[cell.arrays["core"]][int(np.count_nonzero(core[:centre]))]

    def distances_to(point):
        d = cell.positions - point
        d -= np.rint(d @ np.linalg.inv(cell.cell[:])) @ cell.cell[:]
        return np.linalg.norm(d, axis=1)

    from_centre = distances_to(centre_after)
    nearest_to_site = float(distances_to(centre_after + site).min())
    energy = cell.info["energy_per_atom"]
    print(f"\nvacancy core: {len(cell)} atoms, E = {energy:.4f} eV/atom (E_coh {e_coh:.4f}), nearest non-core atom "
          f"to the centre {from_centre[~cell.arrays['core']].min():.3f} A, to the vacant site {nearest_to_site:.2f} A")
    assert from_centre[~cell.arrays["core"]].min() > 5.0
    assert np.count_nonzero(from_centre[cell.arrays["core"]] <= 5.0) == 26
    # one box of the fast protocol, picked for breaking without the wall, and a vacancy: the one-box screw bound
    assert energy <= e_coh + 0.30  # measured -8.583 (E_coh + 0.177), 129 atoms, base seed 1


# --------------------------------------------------------------------------- slow (the authors' full protocol)


@pytest.mark.slow
def test_perfect_bcc_sphere_reduced_protocol_sub_grid(sphere_cluster, potential, w_bulk):
    _, e_coh = w_bulk
    core = default_core_mask(sphere_cluster, 5.0)
    result = reconstruct(sphere_cluster, core, potential, GCMCParams(**QUICK, offsets=(-0.5, 0.0), seed=3))
    assert len(result.candidates) == 8
    _check_result(result, sphere_cluster.atoms, core)
    assert result.atoms.info["energy_per_atom"] <= e_coh + 0.05


@pytest.mark.slow
def test_perfect_bcc_sphere_full_protocol(sphere_cluster, potential, w_bulk):
    _, e_coh = w_bulk
    core = default_core_mask(sphere_cluster, 5.0)
    result = reconstruct(sphere_cluster, core, potential, GCMCParams(seed=1), max_workers=2)
    assert len(result.candidates) == 27
    _check_result(result, sphere_cluster.atoms, core)
    times = [c.time_s for c in result.candidates]
    print(f"\nperfect W sphere, authors' protocol: E = {result.atoms.info['energy_per_atom']:.4f} (E_coh {e_coh:.4f}), "
          f"{len(result.atoms)} atoms; per candidate {np.mean(times):.1f} s, wall {result.info['wall_time_s']:.0f} s")
    assert result.atoms.info["energy_per_atom"] <= e_coh + 0.05


@pytest.mark.slow
def test_screw_dislocation_wide_grid(screw_cluster, potential, w_bulk):
    """The paper's Fig. 3b search (box = core extent + 1..10 A on the free axes), reduced protocol.

    Measured (seed 3): 43 boxes run, best -8.6224 eV/atom = E_coh + 0.138, 128 atoms, 455 s on 2 busy cores.
    """
    _, e_coh = w_bulk
    core = default_core_mask(screw_cluster, 5.0)
    result = reconstruct(screw_cluster, core, potential, GCMCParams(**QUICK, grid="wide", seed=3), max_workers=2)
    _check_result(result, screw_cluster, core)
    energy = result.atoms.info["energy_per_atom"]
    print(f"\nscrew line cluster, wide grid: E = {energy:.4f} (E_coh + {energy - e_coh:.3f}), "
          f"{len(result.atoms)} atoms, wall {result.info['wall_time_s']:.0f} s")
    assert energy <= e_coh + 0.15
