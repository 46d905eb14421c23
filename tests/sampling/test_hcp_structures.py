"""Issue #18: hcp structures with extended defects, checked with the bundled Mg_mm.eam.fs potential.

Basal and prismatic slabs (surface energies), the {10-12} twin bicrystal (twin energy, CNA
candidates at the boundaries), basal <a> screw and edge dislocations (candidates at the line /
the dissociated core on the glide plane) and the hcp polycrystal (candidates at the grain
boundaries, interiors hcp). Lattice constant and c/a are relaxed first with relax_hcp.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from ase import Atoms
from scipy.spatial import cKDTree

from md.engine import LammpsSystem
from md.potentials import Potential
from sampling.builders import bicrystal, polycrystal, screw_dislocation, slab
from sampling.defects import FCC, HCP, classify_atoms, count_structure_types, defect_mask
from sampling.hcp import basal_edge_dislocation, basal_screw_dislocation, hcp_nearest_neighbour

EV_PER_A2_IN_J_PER_M2 = 16.0217663


def _relax(atoms: Atoms, potential: Potential, fixed: np.ndarray | None = None,
           etol: float = 1e-8, maxiter: int = 5000) -> tuple[Atoms, float]:
    """Positions minimised at fixed box (atoms marked ``fixed`` held); relaxed atoms and energy (eV)."""
    with LammpsSystem(atoms, potential) as system:
        if fixed is not None and fixed.any():
            ids = (np.flatnonzero(fixed) + 1).tolist()
            for start in range(0, len(ids), 500):
                system.command("group held id " + " ".join(str(i) for i in ids[start:start + 500]))
            system.command("fix hold held setforce 0.0 0.0 0.0")
        system.command(f"minimize {etol} 1e-8 {maxiter} {10 * maxiter}")
        return system.get_atoms(), system.potential_energy()


# ------------------------------------------------------------------ slabs


def test_basal_and_prismatic_slabs_geometry_and_surface_energies(mg, mg_relaxed):
    a, ratio, e_bulk = mg_relaxed
    c = ratio * a
    energies = {}
    for surface in ("basal", "prismatic"):
        atoms = slab("Mg", "hcp", a, surface=surface, c_over_a=ratio, thickness=20.0, lateral_size=(3, 2),
                     vacuum=10.0)
        period = c if surface == "basal" else math.sqrt(3.0) * a
        layers = math.ceil(20.0 / period)
        assert len(atoms) == 4 * 3 * 2 * layers  # 4 atoms per orthohexagonal period cell
        assert tuple(atoms.pbc) == (True, True, False) and atoms.cell.orthorhombic
        lateral = (a, math.sqrt(3.0) * a) if surface == "basal" else (a, c)
        np.testing.assert_allclose(atoms.cell.lengths()[:2], [3 * lateral[0], 2 * lateral[1]])
        z = atoms.positions[:, 2]
        assert z.min() >= 10.0 - 1e-9
        assert atoms.cell[2, 2] - z.max() >= 10.0 - 1e-9
        planes = np.unique(np.round(z, 6))
        gaps = np.diff(planes)
        if surface == "basal":
            np.testing.assert_allclose(gaps, c / 2.0, atol=1e-5)  # ABAB, c/2 apart
        else:
            # prismatic double layers: a/(2 sqrt3) inside, a/sqrt3 between; cut in the wide gap
            np.testing.assert_allclose(sorted(set(np.round(gaps, 4))), [round(a / (2 * math.sqrt(3)), 4),
                                                                       round(a / math.sqrt(3), 4)], atol=2e-4)
            assert gaps[0] == pytest.approx(a / (2 * math.sqrt(3)), abs=1e-4)  # outermost plane has its pair
            assert gaps[-1] == pytest.approx(a / (2 * math.sqrt(3)), abs=1e-4)
        # bulk crystal inside: every atom away from the surfaces is hcp
        types = classify_atoms(atoms)
        interior = (z > z.min() + 6.0) & (z < z.max() - 6.0)
        assert interior.any() and np.all(types[interior] == HCP)
        _, energy = _relax(atoms, mg)
        gamma = (energy - len(atoms) * e_bulk) / (2.0 * atoms.info["surface_area"])
        energies[surface] = gamma
        print(f"Mg {surface} slab: {len(atoms)} atoms, surface energy {gamma:.5f} eV/A^2 "
              f"= {gamma * EV_PER_A2_IN_J_PER_M2:.4f} J/m^2")
        assert gamma > 0
    assert energies["basal"] < energies["prismatic"]  # the usual order for Mg (basal the densest plane)
    # Miller-Bravais indices select the same slabs
    same = slab("Mg", "hcp", a, normal=(1, 0, -1, 0), c_over_a=ratio, thickness=20.0)
    assert same.info["surface"] == "prismatic" and len(same) == 4 * math.ceil(20.0 / (math.sqrt(3) * a))
    assert slab("Mg", "hcp", a, normal=(0, 0, 0, 1)).info["surface"] == "basal"


# ------------------------------------------------------------------ {10-12} twin


def test_twin_bicrystal_energy_and_candidates_at_the_boundaries(mg, mg_relaxed):
    a, ratio, e_bulk = mg_relaxed
    atoms = bicrystal("Mg", "hcp", a, kind="twin", c_over_a=ratio, size=(3, 1, 12))
    spacing = atoms.info["twin_plane_spacing"]
    assert len(atoms) == 2 * 2 * 3 * 12  # 2 atoms per Bravais plane per cell, no atom removed
    np.testing.assert_array_equal(np.bincount(atoms.arrays["grain_id"]), [72, 72])
    assert atoms.cell[2, 2] == pytest.approx(24 * spacing)
    assert np.min(atoms.get_all_distances(mic=True) + 10 * np.eye(len(atoms))) > 0.75 * hcp_nearest_neighbour(a, ratio)
    relaxed, energy = _relax(atoms, mg)
    gamma = (energy - len(atoms) * e_bulk) / (2.0 * atoms.info["boundary_area"])
    types = classify_atoms(relaxed)
    mask = defect_mask(types, "hcp")
    length = relaxed.cell[2, 2]
    z = np.mod(relaxed.positions[:, 2], length)
    planes = np.array(atoms.info["boundary_positions"])
    distance = np.min(np.abs(np.mod(z[:, None] - planes[None] + 0.5 * length, length) - 0.5 * length), axis=1)
    print(f"Mg {{10-12}} twin: {len(atoms)} atoms, energy {gamma:.5f} eV/A^2 = {gamma * EV_PER_A2_IN_J_PER_M2:.4f} "
          f"J/m^2; {mask.sum()} candidates, farthest {distance[mask].max():.2f} A from a boundary plane; "
          f"{count_structure_types(types)}")
    assert gamma > 0
    assert 0.05 < gamma * EV_PER_A2_IN_J_PER_M2 < 0.3  # coherent twin, ~0.12 J/m^2 for Mg
    assert mask.sum() > 0 and distance[mask].max() < 3.5
    assert np.all(types[distance > 5.0] == HCP)
    # both boundaries carry candidates
    assert np.count_nonzero(mask & (np.abs(z - planes[1]) < 3.5)) > 0
    assert np.count_nonzero(mask & (distance < 3.5) & (np.abs(z - planes[1]) >= 3.5)) > 0


# ------------------------------------------------------------------ basal <a> dislocations


def _dislocation_check(atoms: Atoms, mg: Potential, radius: float, fixed_width: float):
    relaxed, _ = _relax(atoms, mg, atoms.arrays["fixed"], etol=0.0, maxiter=3000)
    core = np.array(atoms.info["core_position"])
    offset = relaxed.positions[:, :2] - core[:2]
    r = np.linalg.norm(offset, axis=1)
    types = classify_atoms(relaxed)
    mask = defect_mask(types, "hcp")
    # the free surface of the cylinder and its first shell are candidates too: look inside the fixed shell
    inner = r < radius - fixed_width - 3.0
    far = inner & (r > 12.0)
    candidates = mask & inner
    return relaxed, types, candidates, offset, r, far


def test_basal_screw_dislocation_core_is_localised(mg, mg_relaxed):
    a, ratio, _ = mg_relaxed
    radius, fixed_width = 25.0, 8.0
    atoms = basal_screw_dislocation("Mg", a, ratio, radius=radius, fixed_width=fixed_width, line_repeats=2)
    assert tuple(atoms.pbc) == (False, False, True)
    assert atoms.cell[2, 2] == pytest.approx(2 * a) and atoms.info["burgers_vector"] == pytest.approx([0, 0, a])
    fixed = atoms.arrays["fixed"]
    r0 = np.linalg.norm(atoms.positions[:, :2] - np.array(atoms.info["core_position"])[:2], axis=1)
    shell = radius - fixed_width
    assert fixed.any() and r0[fixed].min() > shell - 0.1 and r0[~fixed].max() < shell + 0.1
    _, types, candidates, _, r, far = _dislocation_check(atoms, mg, radius, fixed_width)
    within = np.count_nonzero(candidates & (r < 8.0))
    print(f"Mg basal screw: {len(atoms)} atoms, {candidates.sum()} candidates inside the fixed shell, "
          f"{within} within 8 A of the line, {np.count_nonzero(candidates & far)} beyond 12 A; "
          f"{count_structure_types(types[r < radius - fixed_width - 3.0])}")
    assert candidates.sum() >= 4
    assert within >= 0.8 * candidates.sum()
    assert not np.any(candidates & far)


def test_basal_edge_dislocation_core_on_the_glide_plane(mg, mg_relaxed):
    a, ratio, _ = mg_relaxed
    radius, fixed_width = 25.0, 8.0
    atoms = basal_edge_dislocation("Mg", a, ratio, radius=radius, fixed_width=fixed_width, line_repeats=2,
                                   poisson_ratio=0.29)
    assert atoms.cell[2, 2] == pytest.approx(2 * math.sqrt(3) * a) and atoms.info["burgers_vector"] == pytest.approx(
        [a, 0, 0])
    _, types, candidates, offset, r, far = _dislocation_check(atoms, mg, radius, fixed_width)
    within = np.count_nonzero(candidates & (r < 8.0))
    spread = np.abs(offset[candidates, 0])
    height = np.abs(offset[candidates, 1])
    stacking_fault = np.count_nonzero(candidates & (types == FCC))
    print(f"Mg basal edge: {len(atoms)} atoms, {candidates.sum()} candidates inside the fixed shell, "
          f"{within} ({within / candidates.sum():.0%}) within 8 A of the line; along b they reach "
          f"{spread.max():.1f} A, off the glide plane {height.max():.1f} A; {stacking_fault} fcc "
          f"(stacking-fault ribbon of the Shockley partials)")
    assert candidates.sum() >= 4
    # dissociated into Shockley partials on the basal plane: candidates in a ribbon around the glide
    # plane (the two basal planes next to the cut), not a compact core
    assert height.max() < 4.0
    assert within >= 0.6 * candidates.sum()
    assert not np.any(candidates & far & (np.abs(offset[:, 1]) > 4.0))


# ------------------------------------------------------------------ polycrystal


def _distance_to_voronoi_boundary(atoms: Atoms) -> np.ndarray:
    """Distance (A) of each atom from the nearest face of its grain's periodic Voronoi cell."""
    lengths = np.diag(atoms.cell[:])
    seeds = np.array(atoms.info["grain_seeds"])
    images = np.array(list(itertools.product((-1, 0, 1), repeat=3)), dtype=float) * lengths
    points = (seeds[:, None, :] + images[None]).reshape(-1, 3)
    squared = ((atoms.positions[:, None, :] - points[None]) ** 2).sum(axis=2)
    own = np.argmin(squared, axis=1)
    separation = np.linalg.norm(points[own][:, None, :] - points[None], axis=2)
    distance = (squared - squared[np.arange(len(atoms)), own][:, None]) / np.maximum(2.0 * separation, 1e-12)
    distance[np.arange(len(atoms)), own] = np.inf
    return distance.min(axis=1)


def _polycrystal_check(mg: Potential, a: float, ratio: float, box: float, n_grains: int, seed: int) -> None:
    atoms = polycrystal("Mg", "hcp", a, (box, box, box), n_grains, seed=seed, c_over_a=ratio)
    assert set(np.unique(atoms.arrays["grain_id"]).tolist()) == set(range(n_grains))
    volume_per_atom = math.sqrt(3.0) / 4.0 * a**3 * ratio
    density = len(atoms) * volume_per_atom / box**3
    nearest, _ = cKDTree(atoms.positions, boxsize=box).query(atoms.positions, k=2)
    assert nearest[:, 1].min() > 0.6 * hcp_nearest_neighbour(a, ratio)  # the duplicates are removed
    relaxed, _ = _relax(atoms, mg, etol=1e-5, maxiter=300)
    types = classify_atoms(relaxed)
    mask = defect_mask(types, "hcp")
    boundary = _distance_to_voronoi_boundary(atoms)
    interior = boundary > 6.0
    near = np.count_nonzero(mask & (boundary < 5.0))
    print(f"Mg polycrystal {n_grains} grains in {box:.0f} A: {len(atoms)} atoms ({density:.3f} of bulk density), "
          f"{mask.sum()} candidates, {near / mask.sum():.1%} within 5 A of a boundary; interior (>6 A) "
          f"{np.count_nonzero(interior)} atoms, {np.mean(types[interior] == HCP):.1%} hcp")
    assert 0.9 < density < 1.0
    assert np.count_nonzero(interior) > 50
    assert np.mean(types[interior] == HCP) > 0.97
    assert near >= 0.95 * mask.sum()


def test_hcp_polycrystal_candidates_at_grain_boundaries(mg, mg_relaxed):
    a, ratio, _ = mg_relaxed
    _polycrystal_check(mg, a, ratio, 34.0, 2, seed=3)


@pytest.mark.slow
def test_hcp_polycrystal_four_grains_slow(mg, mg_relaxed):
    a, ratio, _ = mg_relaxed
    _polycrystal_check(mg, a, ratio, 50.0, 4, seed=5)


# ------------------------------------------------------------------ bad input


def test_hcp_bad_input_names_the_argument():
    with pytest.raises(ValueError, match="surface: must be one of basal, prismatic"):
        slab("Mg", "hcp", 3.2, surface="pyramidal")
    with pytest.raises(ValueError, match=r"normal: hcp slabs are built for the basal \(0001\) and prismatic"):
        slab("Mg", "hcp", 3.2, normal=(1, 0, -1, 1))
    with pytest.raises(ValueError, match="normal: Miller-Bravais indices need h \\+ k \\+ i = 0"):
        slab("Mg", "hcp", 3.2, normal=(1, 1, 1, 0))
    with pytest.raises(ValueError, match="surface: for an hcp slab give surface='basal' or 'prismatic'"):
        slab("Mg", "hcp", 3.2)
    with pytest.raises(ValueError, match="normal: for hcp give Miller-Bravais indices"):
        slab("Mg", "hcp", 3.2, normal=(1, 1, 0))
    with pytest.raises(ValueError, match="surface: 'basal' contradicts normal"):
        slab("Mg", "hcp", 3.2, normal=(1, 0, -1, 0), surface="basal")
    with pytest.raises(ValueError, match="surface and c_over_a: only for lattice 'hcp'"):
        slab("Cu", "fcc", 3.6, surface="basal")
    with pytest.raises(ValueError, match="c_over_a: must be a positive number"):
        slab("Mg", "hcp", 3.2, surface="basal", c_over_a=0.0)
    with pytest.raises(ValueError, match=r"structure kind bicrystal \(symmetric_tilt\) is not supported for hcp"):
        bicrystal("Mg", "hcp", 3.2)
    with pytest.raises(ValueError, match="tilt_axis, boundary_plane and translation: not used"):
        bicrystal("Mg", "hcp", 3.2, kind="twin", boundary_plane=(1, 0, 2))
    with pytest.raises(ValueError, match="c_over_a: only for lattice 'hcp'"):
        polycrystal("Cu", "fcc", 3.6, (20.0, 20.0, 20.0), 2, seed=0, c_over_a=1.6)
    with pytest.raises(ValueError, match=r"structure kind screw dislocation is not supported for hcp yet.*basal_screw"):
        screw_dislocation("Mg", "hcp", 3.2, 60.0, 26.0, 17.0, 20.0)
    with pytest.raises(ValueError, match="radius: must exceed two lattice constants"):
        basal_screw_dislocation("Mg", 3.2, radius=5.0)
    with pytest.raises(ValueError, match=r"poisson_ratio: must be between -1 and 0\.5"):
        basal_edge_dislocation("Mg", 3.2, poisson_ratio=0.6)
    with pytest.raises(ValueError, match="line_repeats: must be a positive integer"):
        basal_edge_dislocation("Mg", 3.2, line_repeats=0)
    with pytest.raises(ValueError, match="element: 'Xx' is not a chemical symbol"):
        basal_screw_dislocation("Xx", 3.2)
