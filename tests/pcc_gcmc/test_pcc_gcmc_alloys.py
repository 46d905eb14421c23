"""PCC-GCMC with several species (issue #18), real LAMMPS runs.

The core is kept exactly, species included; GCMC inserts one element, then the mobile atoms are brought
to the cluster shell's composition (random conversions, inserted atoms first) and ordered by canonical
``fix atom/swap ... semi-grand no`` swaps restricted to the mobile group (pcc_gcmc.reconstruction
``_restore_shell_composition``).

- ordered B2 NiAl (NiAlH_jea.eam.alloy): cell energy per atom within 0.02 eV of perfect B2, the core's
  species and B2 order intact;
- random 50/50 Cu-Ni solid solution (CuNi.eam.alloy): the cell's shell composition within 5 at.% of
  the cluster's shell, the core's species identical.

Default tests: one box (offset 0 of the authors' grid), the reduced protocol of the W tests (200 steps,
100 exchanges and 20 moves every 10 steps); the authors' 3 x 3 x 3 grid is marked slow.
"""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.neighborlist import neighbor_list

from md.engine import LammpsSystem
from md.potentials import load_potential
from pcc_gcmc import GCMCParams, default_core_mask, plan, reconstruct
from sampling.alloys import occupy, ordered_crystal
from sampling.builders import bulk_crystal
from selection.clusters import cut_clusters

QUICK = {"steps": 200, "exchanges": 100, "mc_moves": 20}
CLUSTER_RADIUS, CORE_RADIUS = 8.0, 5.0  # the campaign's defaults


def _relaxed(crystal: Atoms, potential) -> tuple[float, float]:
    """(energy per atom eV, cubic cell length A) of ``crystal`` after an isotropic box relaxation."""
    with LammpsSystem(crystal, potential) as system:
        system.commands(["fix relax all box/relax iso 0.0", "min_style cg", "minimize 0 1e-10 2000 20000"])
        return system.potential_energy() / system.natoms, float(system.cell()[0, 0])


def _central_cluster(crystal: Atoms):
    centre = int(np.argmin(np.linalg.norm(crystal.positions - 0.5 * crystal.cell.lengths(), axis=1)))
    return cut_clusters(crystal, [centre], CLUSTER_RADIUS)[0]


def _fractions(symbols, species) -> np.ndarray:
    symbols = list(symbols)
    return np.array([symbols.count(e) / len(symbols) for e in species])


def _like_pairs(atoms: Atoms, cutoff: float, among: np.ndarray) -> int:
    """Nearest-neighbour pairs of the same species with both atoms in ``among`` (B2: 0 when ordered)."""
    i, j = neighbor_list("ij", atoms, cutoff)
    symbols = np.array(atoms.get_chemical_symbols())
    return int(np.count_nonzero((symbols[i] == symbols[j]) & among[i] & among[j]) // 2)


def _check_alloy_cell(result, cluster_atoms: Atoms, core: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    atoms = result.atoms
    cell_core = atoms.arrays["core"]
    assert atoms.pbc.all() and len(atoms) <= 140
    assert result.best.centre_environment_exact and result.best.core_displacement < 1e-6
    # the core exactly, species included: same symbols in the same (cluster) order
    assert atoms.get_chemical_symbols()[: int(core.sum())] == list(np.array(cluster_atoms.get_chemical_symbols())[core])
    assert np.array_equal(np.flatnonzero(cell_core), np.arange(int(core.sum())))
    species = sorted(set(cluster_atoms.get_chemical_symbols()))
    shell_cluster = _fractions(np.array(cluster_atoms.get_chemical_symbols())[~core], species)
    shell_cell = _fractions(np.array(atoms.get_chemical_symbols())[~cell_core], species)
    return shell_cluster, shell_cell


@pytest.fixture(scope="module")
def nial():
    potential = load_potential("NiAlH_jea.eam.alloy")
    e_b2, length = _relaxed(ordered_crystal("B2", ["Ni", "Al"], 2.863, (4, 4, 4)), potential)
    a = length / 4
    assert a == pytest.approx(2.863, abs=2e-3)
    cluster = _central_cluster(ordered_crystal("B2", ["Ni", "Al"], a, (7, 7, 7)))
    return potential, a, e_b2, cluster


@pytest.fixture(scope="module")
def cuni():
    potential = load_potential("CuNi.eam.alloy")
    solid = occupy(bulk_crystal("Cu", "fcc", 3.58, (5, 5, 5)), ["Cu", "Ni"], {"Cu": 0.5, "Ni": 0.5}, seed=1)
    _, length = _relaxed(solid, potential)
    a = length / 5
    solid = occupy(bulk_crystal("Cu", "fcc", a, (5, 5, 5)), ["Cu", "Ni"], {"Cu": 0.5, "Ni": 0.5}, seed=1)
    return potential, a, _central_cluster(solid)


def test_payload_carries_species_and_shell_composition(nial):
    potential, _, _, cluster = nial
    payload, _, _ = plan(cluster, None, potential, GCMCParams(offsets=(0.0,)))
    symbols = np.array(payload["symbols"])
    shell = symbols[~np.array(payload["core"])]
    assert payload["species"] == ["Ni", "Al"]  # the potential's order
    assert payload["shell_composition"] == pytest.approx({e: float(np.mean(shell == e)) for e in ("Ni", "Al")})


def test_b2_nial_sphere_restores_the_ordered_crystal(nial):
    potential, a, e_b2, cluster = nial
    core = default_core_mask(cluster, CORE_RADIUS)
    cluster_atoms = cluster.atoms
    # the cut cluster's core is perfect B2 (no like nearest neighbours at a sqrt(3)/2)
    nn_cut = 0.5 * (np.sqrt(3) / 2 * a + a)
    assert _like_pairs(cluster_atoms, nn_cut, core) == 0
    params = GCMCParams(**QUICK, offsets=(0.0,), seed=3, core_radius=CORE_RADIUS)
    result = reconstruct(cluster, core, potential, params, max_workers=1)
    shell_cluster, shell_cell = _check_alloy_cell(result, cluster_atoms, core)
    atoms, best = result.atoms, result.best
    energy = atoms.info["energy_per_atom"]
    cell_core = atoms.arrays["core"]
    like_core = _like_pairs(atoms, nn_cut, cell_core)
    like_all = _like_pairs(atoms, nn_cut, np.ones(len(atoms), dtype=bool))
    print(f"\nB2 NiAl sphere ({len(cluster_atoms)} atoms, core {int(core.sum())}): E = {energy:.4f} eV/atom, perfect "
          f"B2 {e_b2:.4f} (dE {energy - e_b2:+.4f}), {len(atoms)} atoms, box {np.round(best.box_final, 3).tolist()}, "
          f"shell Al:Ni cluster {shell_cluster.round(3).tolist()} cell {shell_cell.round(3).tolist()}, converted "
          f"{best.n_converted}, swaps {best.swaps_accepted}/{best.swap_attempts}, like NN pairs: core {like_core}, "
          f"cell {like_all}; {best.time_s:.1f} s")
    assert abs(energy - e_b2) <= 0.02
    assert like_core == 0  # no antisite within the core: its B2 order is intact
    assert np.all(np.abs(shell_cell - shell_cluster) <= 0.05)


def test_cuni_solid_solution_sphere_keeps_the_shell_composition(cuni):
    potential, a, cluster = cuni
    core = default_core_mask(cluster, CORE_RADIUS)
    params = GCMCParams(**QUICK, offsets=(0.0,), seed=3, core_radius=CORE_RADIUS)
    result = reconstruct(cluster, core, potential, params, max_workers=1)
    shell_cluster, shell_cell = _check_alloy_cell(result, cluster.atoms, core)
    best = result.best
    print(f"\nCu-Ni 50/50 sphere ({len(cluster.atoms)} atoms, core {int(core.sum())}, a {a:.4f}): shell Cu:Ni cluster "
          f"{shell_cluster.round(3).tolist()} cell {shell_cell.round(3).tolist()}, {len(result.atoms)} atoms, "
          f"E = {result.atoms.info['energy_per_atom']:.4f} eV/atom, converted {best.n_converted}, swaps "
          f"{best.swaps_accepted}/{best.swap_attempts}; {best.time_s:.1f} s")
    assert np.all(np.abs(shell_cell - shell_cluster) <= 0.05)


@pytest.mark.slow
def test_b2_nial_sphere_authors_grid(nial):
    potential, _, e_b2, cluster = nial
    core = default_core_mask(cluster, CORE_RADIUS)
    result = reconstruct(cluster, core, potential, GCMCParams(**QUICK, seed=3), max_workers=2)
    assert len(result.candidates) == 27
    _check_alloy_cell(result, cluster.atoms, core)
    energy = result.atoms.info["energy_per_atom"]
    print(f"\nB2 NiAl sphere, authors' grid: E = {energy:.4f} (perfect B2 {e_b2:.4f}), {len(result.atoms)} atoms, "
          f"wall {result.info['wall_time_s']:.0f} s")
    assert abs(energy - e_b2) <= 0.02
