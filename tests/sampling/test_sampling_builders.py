"""Builders of oriented, poly-, bi- and defective crystals: geometry, counts and a few relaxed energies (W EAM-Zhou)."""

import math
import time

import numpy as np
import pytest
from ase.neighborlist import neighbor_list
from scipy.spatial import cKDTree

from md.engine import LammpsSystem
from sampling.builders import (
    add_interstitial,
    bicrystal,
    bulk_crystal,
    check_box_for_cutoff,
    dislocation_loop,
    edge_dislocation,
    grain_boundary_positions,
    polycrystal,
    screw_dislocation,
    single_crystal,
    slab,
)
from sampling.defects import cna_cutoff, defect_mask

A_W = 3.16519  # relaxed W_zhou.eam.alloy lattice constant (A)
E_COH_W = -8.75999  # its bcc energy per atom (eV)
D_NN_W = A_W * math.sqrt(3) / 2
W_ELASTIC = (523.0, 204.0, 161.0)  # C11, C12, C44 of W EAM-Zhou (GPa)
EV_PER_A2_IN_J_PER_M2 = 16.0218


def coordination(atoms, cutoff):
    return np.bincount(neighbor_list("i", atoms, cutoff), minlength=len(atoms))


# --------------------------------------------------------------------------- single crystal


def test_single_crystal_orientations_have_bulk_density_and_perfect_neighbours():
    atoms = single_crystal("W", "bcc", A_W, ((1, 1, 0), (-1, 1, 0), (0, 0, 1)))
    assert len(atoms) == 4 and atoms.pbc.all()
    assert np.allclose(atoms.cell.lengths(), [A_W * 2**0.5, A_W * 2**0.5, A_W])
    assert len(atoms) / atoms.get_volume() == pytest.approx(2 / A_W**3, rel=1e-12)

    # the shortest period along [111] in bcc is a*sqrt(3)/2
    screw_frame = single_crystal("W", "bcc", A_W, ((1, 1, -2), (-1, 1, 0), (1, 1, 1)), size=(2, 3, 6))
    assert screw_frame.cell.lengths()[2] == pytest.approx(6 * D_NN_W)
    assert len(screw_frame) == 2 * 3 * 6 * 6
    coordination_numbers = coordination(screw_frame, 0.5 * (D_NN_W + A_W))  # between 1st (8) and 2nd shell
    assert coordination_numbers.min() == coordination_numbers.max() == 8

    copper = single_crystal("Cu", "fcc", 3.615, ((1, 1, -2), (-1, 1, 0), (1, 1, 1)), min_lengths=(20, 20, 20))
    assert np.all(copper.cell.lengths() >= 20) and np.all(copper.cell.lengths() < 20 + 3.615 * 2.5)
    assert len(copper) / copper.get_volume() == pytest.approx(4 / 3.615**3)
    assert coordination(copper, 3.0).min() == coordination(copper, 3.0).max() == 12


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(orientation=((1, 1, 0), (1, 0, 0), (0, 0, 1))),
         r"orientation: x=\[1,1,0\] and y=\[1,0,0\] are not orthogonal"),
        (dict(orientation=((1, 0, 0), (0, 1, 0), (0, 0, -1))), r"left-handed; use z=\[0,0,1\]"),
        (dict(orientation=((0.5, 0, 0), (0, 1, 0), (0, 0, 1))), "orientation x: Miller indices must be integers"),
        (dict(orientation=((0, 0, 0), (0, 1, 0), (0, 0, 1))), "orientation x: the zero vector"),
        (dict(size=(2, 2, 2), min_lengths=(10, 10, 10)), "size and min_lengths: give one"),
        (dict(size=(0, 1, 1)), "size: expected 3 positive integers"),
        (dict(min_lengths=(10, -1, 10)), "min_lengths: expected 3 positive lengths"),
    ],
)
def test_single_crystal_rejects_bad_input(kwargs, message):
    with pytest.raises(ValueError, match=message):
        single_crystal("W", "bcc", A_W, **kwargs)


def test_single_crystal_rejects_unknown_lattice_and_element():
    with pytest.raises(ValueError, match="lattice must be one of bcc, fcc"):
        single_crystal("W", "hcp", A_W)
    with pytest.raises(ValueError, match="element"):
        single_crystal("Wx", "bcc", A_W)
    with pytest.raises(ValueError, match="lattice constant a"):
        single_crystal("W", "bcc", -1.0)


# --------------------------------------------------------------------------- polycrystal


def test_polycrystal_grains_spacing_density_and_reproducibility():
    box = (56.0, 56.0, 56.0)
    atoms = polycrystal("W", "bcc", A_W, box, n_grains=6, seed=3)
    assert atoms.pbc.all() and np.allclose(atoms.cell.lengths(), box)
    assert sorted(np.unique(atoms.arrays["grain_id"])) == list(range(6))
    assert np.all((atoms.positions >= 0) & (atoms.positions < 56.0))
    # no pair (periodic) closer than the overlap distance
    pairs = cKDTree(atoms.positions, boxsize=box).query_pairs(0.6 * D_NN_W)
    assert len(pairs) == 0
    density = len(atoms) / atoms.get_volume()
    assert density == pytest.approx(2 / A_W**3, rel=0.05)  # measured -3.5 %: one atom of each close GB pair removed
    # grain interiors are perfect bcc: most atoms have 8 nearest neighbours
    assert np.mean(coordination(atoms, 0.5 * (D_NN_W + A_W)) == 8) > 0.6

    again = polycrystal("W", "bcc", A_W, box, n_grains=6, seed=3)
    assert np.array_equal(atoms.positions, again.positions)
    assert np.array_equal(atoms.arrays["grain_id"], again.arrays["grain_id"])
    other = polycrystal("W", "bcc", A_W, box, n_grains=6, seed=4)
    assert len(other) != len(atoms) or not np.allclose(other.positions, atoms.positions)


def test_polycrystal_of_20000_atoms_is_fast():
    side = (20000 / (2 / A_W**3)) ** (1 / 3)
    start = time.perf_counter()
    atoms = polycrystal("W", "bcc", A_W, (side, side, side), n_grains=10, seed=1)
    elapsed = time.perf_counter() - start
    assert 19000 < len(atoms) < 20100
    assert elapsed < 5.0  # measured ~0.15 s on an idle core


def test_polycrystal_rejects_bad_input():
    with pytest.raises(ValueError, match="n_grains"):
        polycrystal("W", "bcc", A_W, (30, 30, 30), n_grains=0, seed=0)
    with pytest.raises(ValueError, match="box"):
        polycrystal("W", "bcc", A_W, (30, 30), n_grains=2, seed=0)
    with pytest.raises(ValueError, match="overlap_fraction"):
        polycrystal("W", "bcc", A_W, (30, 30, 30), n_grains=2, seed=0, overlap_fraction=1.5)


# --------------------------------------------------------------------------- slab


def test_slab_has_free_surfaces_along_z():
    atoms = slab("W", "bcc", A_W, normal=(0, 0, 1), thickness=10.0, lateral_size=(3, 3), vacuum=8.0)
    assert list(atoms.pbc) == [True, True, False]
    assert len(atoms) == 2 * 3 * 3 * 4  # ceil(10 / a) = 4 cubic periods
    z = atoms.positions[:, 2]
    assert z.min() == pytest.approx(8.0) and atoms.cell[2, 2] - z.max() == pytest.approx(8.0 + A_W / 2)
    cn = coordination(atoms, 0.5 * (D_NN_W + A_W))
    assert np.all(cn[np.isclose(z, z.max())] == 4) and np.all(cn[np.isclose(z, z.min())] == 4)  # bcc (001) surface
    assert cn.max() == 8

    dense = slab("W", "bcc", A_W, normal=(1, 1, 0), thickness=15.0, lateral_min_lengths=(10.0, 10.0))
    assert dense.info["orientation"][2] == [1, 1, 0]
    assert np.all(dense.cell.lengths()[:2] >= 10.0)
    # bulk density inside the crystal slab
    crystal_thickness = np.ptp(dense.positions[:, 2]) + A_W / 2**0.5  # plus one (110) spacing
    assert len(dense) / (dense.cell[0, 0] * dense.cell[1, 1] * crystal_thickness) == pytest.approx(2 / A_W**3)
    with pytest.raises(ValueError, match="x_direction"):
        slab("W", "bcc", A_W, normal=(1, 1, 0), x_direction=(1, 0, 0))
    with pytest.raises(ValueError, match="thickness"):
        slab("W", "bcc", A_W, thickness=0)


# --------------------------------------------------------------------------- bicrystal


def relaxed_gb_energy(atoms, potential):
    """(E - N e_coh) / (2 A) in J/m^2 after minimising positions and the box length normal to the GBs."""
    with LammpsSystem(atoms, potential) as system:
        system.commands(["fix relax_z all box/relax z 0.0 vmax 0.001", "minimize 0 1e-8 2000 20000"])
        energy, natoms = system.potential_energy(), system.natoms
    area = atoms.cell[0, 0] * atoms.cell[1, 1]
    return (energy - natoms * E_COH_W) / (2 * area) * EV_PER_A2_IN_J_PER_M2


def test_sigma5_310_bicrystal_geometry_and_grain_boundary_energy(w_zhou):
    atoms = bicrystal("W", "bcc", A_W, size=(2, 1, 2))
    assert atoms.pbc.all() and atoms.info["orientation"] == [[0, 0, 1], [1, -3, 0], [3, 1, 0]]
    lengths = atoms.cell.lengths()
    assert lengths == pytest.approx([2 * A_W, A_W * 10**0.5, 4 * A_W * 10**0.5])
    ids = atoms.arrays["grain_id"]
    assert sorted(np.unique(ids)) == [0, 1] and np.count_nonzero(ids == 0) == np.count_nonzero(ids == 1) == 80
    # grain 1 is grain 0 mirrored: the misorientation is 36.87 degrees about [001] (Sigma5)
    boundaries = grain_boundary_positions(atoms)
    spacing = A_W / 10**0.5  # (310) interplanar distance
    assert len(boundaries) == 2
    assert boundaries[0] == pytest.approx(lengths[2] / 2, abs=spacing)
    assert min(boundaries[1], lengths[2] - boundaries[1]) < spacing
    assert len(cKDTree(atoms.positions % lengths, boxsize=lengths).query_pairs(0.6 * D_NN_W)) == 0

    energy = relaxed_gb_energy(atoms, w_zhou)
    assert 1.0 < energy < 2.5  # measured 2.007 J/m^2 (DFT for W Sigma5(310): about 1.9-2.0)


def test_bcc_twin_energy_is_low(w_zhou):
    atoms = bicrystal("W", "bcc", A_W, kind="twin", size=(1, 2, 8))
    assert atoms.info["orientation"][2] == [1, 1, 2]
    energy = relaxed_gb_energy(atoms, w_zhou)
    assert 0.3 < energy < 1.0  # measured 0.58 J/m^2: the (112) twin is the lowest-energy bcc boundary


def test_bicrystal_rejects_bad_input():
    with pytest.raises(ValueError, match=r"tilt_axis \[1,0,0\] does not lie in boundary_plane \[3,1,0\]"):
        bicrystal("W", "bcc", A_W, tilt_axis=(1, 0, 0))
    with pytest.raises(ValueError, match="kind"):
        bicrystal("W", "bcc", A_W, kind="twist")
    with pytest.raises(ValueError, match=r"boundary_plane: a bcc twin lies on a \{112\} plane"):
        bicrystal("W", "bcc", A_W, kind="twin", tilt_axis=(0, 0, 1), boundary_plane=(3, 1, 0))


# --------------------------------------------------------------------------- dislocations


def burgers_circuit(atoms, radius, points=36):
    """Closure failure (cell frame, A) of a right-handed circuit of atoms at ``radius`` around the core.

    Each step between atoms of the dislocated crystal is mapped to the nearest perfect
    bcc lattice vector; the sum of (perfect - actual) steps is the Burgers vector.
    """
    core = np.array(atoms.info["core_position"])
    axes = np.array(atoms.info["crystal_axes"], dtype=float)
    rotation = axes / np.linalg.norm(axes, axis=1)[:, None]
    angles = np.linspace(0, 2 * np.pi, points, endpoint=False)
    targets = core[:2] + radius * np.c_[np.cos(angles), np.sin(angles)]
    xy = atoms.positions[:, :2]
    path = [int(np.argmin(np.linalg.norm(xy - t, axis=1))) for t in targets]
    path = [i for k, i in enumerate(path) if i != path[k - 1]]
    length_z = atoms.cell[2, 2]
    closure = np.zeros(3)
    for i, j in zip(path, path[1:] + path[:1]):
        step = atoms.positions[j] - atoms.positions[i]
        step[2] -= length_z * np.rint(step[2] / length_z)
        crystal = step @ rotation / (A_W / 2)  # in units of a/2 along the cube axes
        even = 2 * np.rint(crystal / 2)
        odd = 2 * np.rint((crystal - 1) / 2) + 1
        perfect = even if np.linalg.norm(even - crystal) < np.linalg.norm(odd - crystal) else odd
        closure += (perfect - crystal) * (A_W / 2)
    return rotation @ closure


@pytest.mark.parametrize("builder, axis", [(screw_dislocation, 2), (edge_dislocation, 0)])
def test_dislocation_cylinder_has_burgers_vector_a_sqrt3_over_2(builder, axis):
    atoms = builder("W", "bcc", A_W, *W_ELASTIC, radius=25.0, fixed_width=8.0)
    assert list(atoms.pbc) == [False, False, True]
    b = np.array(atoms.info["burgers_vector"])
    assert np.linalg.norm(b) == pytest.approx(D_NN_W) and abs(b[axis]) == pytest.approx(D_NN_W)
    # the displacement field closes a Burgers circuit around the core with b = a sqrt(3)/2
    closure = burgers_circuit(atoms, radius=12.0)
    assert np.linalg.norm(closure) == pytest.approx(D_NN_W, abs=0.02)
    assert abs(closure[axis]) == pytest.approx(D_NN_W, abs=0.02)
    # the fixed shell is the outer fixed_width of the cylinder (measured before displacement: +-b/2)
    core = np.array(atoms.info["core_position"])
    radial = np.linalg.norm(atoms.positions[:, :2] - core[:2], axis=1)
    fixed = atoms.arrays["fixed"]
    assert fixed.any() and radial[fixed].min() > 17.0 - 1.5 and radial[~fixed].max() < 17.0 + 1.5
    assert np.all(atoms.positions[:, :2] > 0) and np.all(atoms.positions[:, :2] < atoms.cell.lengths()[:2])
    longer = builder("W", "bcc", A_W, *W_ELASTIC, radius=25.0, fixed_width=8.0, line_repeats=3)
    assert len(longer) == 3 * len(atoms)


def test_fcc_dislocations_build():
    screw = screw_dislocation("Cu", "fcc", 3.615, 169.9, 122.6, 76.2, radius=15.0, fixed_width=5.0)
    assert np.linalg.norm(screw.info["burgers_vector"]) == pytest.approx(3.615 / 2**0.5)
    assert abs(screw.info["burgers_vector"][2]) == pytest.approx(3.615 / 2**0.5)


def test_dislocation_rejects_bad_input():
    with pytest.raises(ValueError, match="C11, C12, C44"):
        screw_dislocation("W", "bcc", A_W, 200.0, 300.0, 161.0, radius=20.0)
    with pytest.raises(ValueError, match="fixed_width"):
        edge_dislocation("W", "bcc", A_W, *W_ELASTIC, radius=20.0, fixed_width=25.0)
    with pytest.raises(ValueError, match="radius"):
        edge_dislocation("W", "bcc", A_W, *W_ELASTIC, radius=3.0)


# --------------------------------------------------------------------------- interstitials and loops


def test_interstitials_add_one_atom_at_the_expected_site():
    crystal = bulk_crystal("W", "bcc", A_W, (4, 4, 4))
    host = 37
    dumbbell = add_interstitial(crystal, "<111>", near=host, seed=2)
    assert len(dumbbell) == len(crystal) + 1
    pair = dumbbell.positions[-1] - dumbbell.positions[host]
    assert np.allclose(np.abs(pair), np.abs(pair[0]))  # along a <111> direction
    assert np.linalg.norm(pair) == pytest.approx(0.75 * D_NN_W)
    assert np.allclose(dumbbell.positions[[host, -1]].mean(axis=0), crystal.positions[host])
    assert np.array_equal(dumbbell.positions, add_interstitial(crystal, "<111>", near=host, seed=2).positions)

    pair110 = np.sort(np.abs(np.diff(add_interstitial(crystal, "<110>", near=host).positions[[host, -1]], axis=0)[0]))
    assert pair110[0] == pytest.approx(0, abs=1e-9) and pair110[1] == pytest.approx(pair110[2])

    target = crystal.positions[host] + [A_W / 2, 0.1, 0.0]
    octahedral = add_interstitial(crystal, "octahedral", near=target)
    assert np.allclose(octahedral.positions[-1], crystal.positions[host] + [A_W / 2, 0, 0])
    distances = np.linalg.norm(octahedral.positions[:-1] - octahedral.positions[-1], axis=1)
    assert distances.min() == pytest.approx(A_W / 2)  # octahedral site: two neighbours at a/2

    # works in a rotated grain: the dumbbell is still along a <111> nearest-neighbour bond
    rotated = single_crystal("W", "bcc", A_W, ((1, 1, -2), (-1, 1, 0), (1, 1, 1)), size=(2, 3, 6))
    with_sia = add_interstitial(rotated, "<111>", near=5, seed=1)
    bond = with_sia.positions[-1] - with_sia.positions[5]
    bonds = rotated.positions - rotated.positions[5]
    bonds = bonds[np.isclose(np.linalg.norm(bonds, axis=1), D_NN_W)]
    assert np.max(np.abs(bonds @ bond) / (D_NN_W * np.linalg.norm(bond))) == pytest.approx(1.0)


def test_interstitial_rejects_bad_input():
    crystal = bulk_crystal("W", "bcc", A_W, (3, 3, 3))
    with pytest.raises(ValueError, match="kind"):
        add_interstitial(crystal, "crowdion")
    with pytest.raises(ValueError, match="near: atom index 99"):
        add_interstitial(crystal, near=99)
    with pytest.raises(ValueError, match="atoms: atom 0 has"):
        add_interstitial(crystal[:5], near=0)


def loop_relaxation(atoms, potential, loop):
    """Minimise ``loop``; return its CNA defect mask and positions (input order)."""
    with LammpsSystem(loop, potential) as system:
        system.commands(["minimize 0 1e-3 300 3000", f"compute cna all cna/atom {cna_cutoff('bcc', A_W)}"])
        return defect_mask(system.per_atom_compute("cna"), "bcc"), system.positions()


@pytest.mark.parametrize(
    "burgers, nature, b_length, cells, radius",
    [("<100>", "interstitial", A_W, 10, 7.0), ("<111>", "vacancy", D_NN_W, 12, 9.0)],
)
def test_prismatic_loop_survives_minimisation_as_a_ring(w_zhou, burgers, nature, b_length, cells, radius):
    crystal = bulk_crystal("W", "bcc", A_W, (cells, cells, cells))
    loop = dislocation_loop(crystal, burgers, radius, nature)
    change = len(loop) - len(crystal)
    assert change == loop.info["loop_atoms"] and (change > 0) == (nature == "interstitial")
    disc_atoms = math.pi * radius**2 * b_length * 2 / A_W**3
    assert abs(change) == pytest.approx(disc_atoms, rel=0.2)  # measured 29 (<100>, R 7 A) and 43 (<111>, R 9 A)
    b = np.array(loop.info["loop_burgers_vector"])
    assert np.linalg.norm(b) == pytest.approx(b_length)

    defective, positions = loop_relaxation(crystal, w_zhou, loop)
    normal = b / np.linalg.norm(b)
    relative = positions - crystal.cell.lengths() / 2
    height = relative @ normal
    in_plane = np.linalg.norm(relative - height[:, None] * normal, axis=1)
    assert 0 < defective.sum() < 0.15 * len(loop)  # measured 104 of 2029 and ~190 of 3413
    # a ring: defect atoms sit around the loop's edge, the crystal inside the loop is bcc again
    assert 0.6 * radius < np.median(in_plane[defective]) < 1.4 * radius
    inside = (in_plane < radius / 2) & (np.abs(height) < 1.5 * b_length)
    assert inside.sum() > 0 and defective[inside].mean() < 0.2


def test_loop_rejects_bad_input():
    crystal = bulk_crystal("W", "bcc", A_W, (6, 6, 6))
    with pytest.raises(ValueError, match="burgers: for a bcc crystal use '<100>' or '<111>'"):
        dislocation_loop(crystal, "<110>", 4.0)
    with pytest.raises(ValueError, match="nature"):
        dislocation_loop(crystal, "<111>", 4.0, nature="frank")
    with pytest.raises(ValueError, match="radius: a loop of diameter 30 A does not fit"):
        dislocation_loop(crystal, "<111>", 15.0)


# --------------------------------------------------------------------------- box size


def test_box_must_hold_twice_the_cutoff(w_zhou):
    small = bulk_crystal("W", "bcc", A_W, (2, 6, 6))
    message = (r"box length along x is 6.33 A, smaller than twice the potential cutoff 2\*7.89\d* A; "
               r"use a larger supercell")
    with pytest.raises(ValueError, match=message):
        check_box_for_cutoff(small, w_zhou)  # cutoff 7.8925 A from the setfl header
    with pytest.raises(ValueError, match=r"along x is 6.33 A, smaller than twice the potential cutoff 2\*5.5 A"):
        check_box_for_cutoff(small, 5.5)
    check_box_for_cutoff(bulk_crystal("W", "bcc", A_W, (6, 6, 6)), w_zhou)
    # non-periodic directions (slab normal) are not checked
    check_box_for_cutoff(slab("W", "bcc", A_W, thickness=3.0, lateral_size=(6, 6)), w_zhou)
    with pytest.raises(ValueError, match="cutoff"):
        check_box_for_cutoff(small, -1.0)
