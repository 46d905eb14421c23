"""Starting structures for sampling: perfect, oriented and defective crystals of cubic metals (and bulk hcp).

All builders return ``ase.Atoms`` in A. Oriented crystals use the smallest
periodic vector of the lattice along each Miller direction, so an oriented cell
holds exactly ``volume * atoms_per_cubic_cell / a**3`` atoms. Elastic constants
are in GPa.

Per-atom arrays set here: ``grain_id`` (int, polycrystal and bicrystal),
``fixed`` (bool, outer shell of dislocation cylinders).

hcp (issue #18): the perfect bulk crystal (:func:`bulk_crystal`, orthohexagonal cell),
:func:`relax_hcp`, basal and prismatic slabs (:func:`slab` with ``surface=``), the {10-12}
twin bicrystal (:func:`bicrystal` with ``kind="twin"``), the polycrystal (:func:`polycrystal`)
and basal <a> dislocations (:mod:`sampling.hcp`: ``basal_screw_dislocation``,
``basal_edge_dislocation``); ``c_over_a`` defaults to the ideal sqrt(8/3). Other
builders raise "structure kind X is not supported for hcp yet".
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from functools import reduce
from pathlib import Path
from typing import TYPE_CHECKING, TypeGuard

import numpy as np
from ase import Atoms
from ase.build import bulk
from ase.data import atomic_numbers

from schemas.alloys import IDEAL_C_OVER_A
from schemas.alloys import LATTICES as ALL_LATTICES

if TYPE_CHECKING:
    from md.potentials import Potential

__all__ = [
    "LATTICES",
    "add_interstitial",
    "add_vacancies",
    "bicrystal",
    "bulk_crystal",
    "check_box_for_cutoff",
    "dislocation_loop",
    "edge_dislocation",
    "grain_boundary_positions",
    "polycrystal",
    "relax_hcp",
    "screw_dislocation",
    "single_crystal",
    "slab",
    "slab_from_period",
]

LATTICES = ("bcc", "fcc")  # the cubic lattices (oriented crystals, cubic elastic constants); hcp: ALL_LATTICES
# structure kinds built for hcp so far
HCP_KINDS = ("bulk", "slab", "polycrystal", "bicrystal (twin)", "basal screw dislocation", "basal edge dislocation")

# Lattice sites of the conventional cubic cell, in units of a.
_BASIS = {
    "bcc": np.array([[0.0, 0.0, 0.0], [0.5, 0.5, 0.5]]),
    "fcc": np.array([[0.0, 0.0, 0.0], [0.5, 0.5, 0.0], [0.5, 0.0, 0.5], [0.0, 0.5, 0.5]]),
}
_NEAREST_NEIGHBOUR = {"bcc": math.sqrt(3.0) / 2.0, "fcc": math.sqrt(0.5)}  # in units of a
_AXES = "xyz"


def bulk_crystal(element: str, lattice: str, a: float, size: tuple[int, int, int],
                 c_over_a: float | None = None) -> Atoms:
    """Conventional cell of ``lattice`` with constant ``a`` (A), repeated ``size`` times.

    bcc/fcc: the cubic cell. hcp: the orthohexagonal cell a x a sqrt(3) x c (x along
    a1 = [2-1-10], z along c = [0001]), 4 atoms: (0, 0, 0), (1/2, 1/2, 0),
    (0, 1/3, 1/2), (1/2, 5/6, 1/2) in fractions of the edges (AB stacking);
    ``c_over_a`` defaults to the ideal sqrt(8/3) and is only accepted for hcp.
    """
    if lattice not in ALL_LATTICES:
        raise ValueError(f"lattice must be one of {', '.join(ALL_LATTICES)}, got {lattice!r}")
    if not a > 0:
        raise ValueError(f"lattice constant a must be positive (A), got {a!r}")
    if len(size) != 3 or any(int(n) != n or n < 1 for n in size):
        raise ValueError(f"size must be three positive integers (repetitions along x, y, z), got {size!r}")
    if lattice == "hcp":
        ratio = IDEAL_C_OVER_A if c_over_a is None else c_over_a
        if not (isinstance(ratio, (int, float, np.floating)) and math.isfinite(ratio) and ratio > 0):
            raise ValueError(f"c_over_a: must be a positive number (c/a of hcp), got {c_over_a!r}")
        if element not in atomic_numbers:
            raise ValueError(f"element: {element!r} is not a chemical symbol; give one such as 'Mg', 'Ti' or 'Zr'")
        edges = np.array([1.0, math.sqrt(3.0), float(ratio)]) * float(a)
        positions, cell = _tile(_HCP_ORTHO_BASIS * edges, edges, [int(n) for n in size])
        return Atoms(numbers=_numbers(element, len(positions)), positions=positions, cell=cell, pbc=True)
    if c_over_a is not None:
        raise ValueError(f"c_over_a: only for lattice 'hcp', got c_over_a={c_over_a!r} with lattice {lattice!r}")
    atoms = bulk(element, lattice, a=float(a), cubic=True).repeat(tuple(int(n) for n in size))
    atoms.pbc = True
    return atoms


# Orthohexagonal hcp cell, fractions of (a, a sqrt 3, c).
_HCP_ORTHO_BASIS = np.array([[0.0, 0.0, 0.0], [0.5, 0.5, 0.0], [0.0, 1.0 / 3.0, 0.5], [0.5, 5.0 / 6.0, 0.5]])


def relax_hcp(
    potential: Potential,
    element: str,
    a_guess: float,
    c_over_a_guess: float = IDEAL_C_OVER_A,
    *,
    size: tuple[int, int, int] = (4, 3, 3),
    threads: int = 1,
) -> tuple[float, float, float]:
    """Equilibrium hcp ``a`` (A), ``c/a`` and energy per atom (eV) of ``element`` with ``potential``.

    Method: LAMMPS ``fix box/relax aniso 0.0`` (x, y and z box lengths relax independently to zero
    stress) with conjugate-gradient minimisation of the periodic orthohexagonal supercell ``size``
    (4 atoms per cell), repeated until the box stops changing (box/relax converges in vmax-limited
    stages). Zero stress along x/y and z is the minimum of E(a, c) at zero pressure, i.e. both
    dE/da = 0 and dE/dc = 0. a is the mean of Lx/nx and Ly/(ny sqrt 3) (equal by symmetry).
    """
    from md.potentials import check_element
    from sampling.properties import relax_box

    check_element(potential, element)
    _check_material(element, "hcp", a_guess, kind="bulk")
    if not (isinstance(c_over_a_guess, (int, float, np.floating)) and c_over_a_guess > 0):
        raise ValueError(f"c_over_a_guess: must be positive, got {c_over_a_guess!r}")
    atoms = bulk_crystal(element, "hcp", float(a_guess), size, c_over_a=float(c_over_a_guess))
    lengths, energy = relax_box(atoms, potential, "aniso 0.0 couple none", threads=threads)
    a = 0.5 * (lengths[0] / size[0] + lengths[1] / (size[1] * math.sqrt(3.0)))
    return float(a), float(lengths[2] / size[2] / a), float(energy)


def add_vacancies(atoms: Atoms, n: int, seed: int) -> Atoms:
    """A copy of ``atoms`` with ``n`` atoms removed at random (same seed, same atoms removed)."""
    if int(n) != n or n < 0:
        raise ValueError(f"n (number of vacancies) must be a non-negative integer, got {n!r}")
    if n >= len(atoms):
        raise ValueError(f"n = {n} vacancies would remove all {len(atoms)} atoms; use a larger cell")
    removed = np.random.default_rng(seed).choice(len(atoms), size=int(n), replace=False)
    result = atoms.copy()
    del result[np.sort(removed)]
    return result


# --------------------------------------------------------------------------- validation helpers


def _check_material(element: str, lattice: str, a: float, kind: str | None = None) -> None:
    """Element, lattice (bcc, fcc, hcp) and a; for hcp also that structure ``kind`` is built for hcp yet."""
    if element not in atomic_numbers:
        raise ValueError(f"element: {element!r} is not a chemical symbol; give one such as 'W', 'Fe' or 'Cu'")
    if lattice not in ALL_LATTICES:
        raise ValueError(f"lattice must be one of {', '.join(ALL_LATTICES)}, got {lattice!r}")
    if lattice == "hcp" and kind not in HCP_KINDS:
        name = f"structure kind {kind}" if kind else "this structure kind"
        hint = ("; for hcp use sampling.hcp.basal_screw_dislocation / basal_edge_dislocation"
                if kind and kind.endswith("dislocation") else "")
        raise ValueError(f"{name} is not supported for hcp yet: lattice must be one of {', '.join(LATTICES)} "
                         f"for it (hcp so far: {', '.join(HCP_KINDS)}){hint}")
    if not (isinstance(a, (int, float, np.floating, np.integer)) and a > 0):
        raise ValueError(f"lattice constant a must be positive (A), got {a!r}")


def _miller(name: str, vector: Sequence[float]) -> np.ndarray:
    """An integer direction reduced by its common divisor; ValueError naming ``name`` otherwise."""
    values = np.asarray(vector, dtype=float)
    if values.shape != (3,) or not np.all(np.isfinite(values)):
        raise ValueError(f"{name}: expected three integers (a Miller direction such as (1, 1, 0)), got {vector!r}")
    if not np.allclose(values, np.rint(values)):
        raise ValueError(f"{name}: Miller indices must be integers, got {vector!r}; "
                         "e.g. use (1, 1, 2) for [0.5, 0.5, 1]")
    ints = np.rint(values).astype(int)
    if not ints.any():
        raise ValueError(f"{name}: the zero vector is not a direction; give e.g. (0, 0, 1)")
    return ints // reduce(math.gcd, np.abs(ints).tolist())


def _fmt(vector: np.ndarray) -> str:
    return "[" + ",".join(str(int(v)) for v in vector) + "]"


def _check_orientation(orientation: Sequence[Sequence[int]], name: str = "orientation") -> np.ndarray:
    """Rows x, y, z as reduced integer vectors: mutually orthogonal and right-handed."""
    if len(orientation) != 3:
        raise ValueError(f"{name}: expected three Miller directions (x, y, z), got {orientation!r}")
    rows = np.array([_miller(f"{name} {axis}", v) for axis, v in zip(_AXES, orientation)])
    for i, j in ((0, 1), (0, 2), (1, 2)):
        if rows[i] @ rows[j] != 0:
            raise ValueError(
                f"{name}: {_AXES[i]}={_fmt(rows[i])} and {_AXES[j]}={_fmt(rows[j])} are not orthogonal; "
                "give three mutually orthogonal Miller directions"
            )
    if np.linalg.det(rows) < 0:
        raise ValueError(
            f"{name}: x={_fmt(rows[0])}, y={_fmt(rows[1])}, z={_fmt(rows[2])} is left-handed; "
            f"use z={_fmt(-rows[2])} (the direction of x cross y)"
        )
    return rows


def _positive_lengths(name: str, values: Sequence[float], count: int) -> np.ndarray:
    lengths = np.asarray(values, dtype=float)
    if lengths.shape != (count,) or not np.all(np.isfinite(lengths)) or np.any(lengths <= 0):
        raise ValueError(f"{name}: expected {count} positive lengths in A, got {values!r}")
    return lengths


def _repeats(
    size: Sequence[int] | None,
    min_lengths: Sequence[float] | None,
    periods: np.ndarray,
    default: Sequence[int],
    names: tuple[str, str] = ("size", "min_lengths"),
) -> tuple[int, ...]:
    """Repetitions of a cell with edge ``periods`` (A): given directly, or the fewest reaching ``min_lengths``."""
    count = len(periods)
    if size is not None and min_lengths is not None:
        raise ValueError(f"{names[0]} and {names[1]}: give one of them, not both")
    if min_lengths is not None:
        lengths = _positive_lengths(names[1], min_lengths, count)
        return tuple(int(n) for n in np.maximum(np.ceil(lengths / periods - 1e-9), 1))
    size = default if size is None else size
    if len(size) != count or any(int(n) != n or n < 1 for n in size):
        raise ValueError(f"{names[0]}: expected {count} positive integers (repetitions), got {size!r}")
    return tuple(int(n) for n in size)


# --------------------------------------------------------------------------- lattice kernels


def _period_vector(direction: np.ndarray, lattice: str) -> np.ndarray:
    """Shortest lattice vector along a reduced integer ``direction``, in units of a."""
    # Half the direction is a lattice vector in bcc when all indices are odd ([111]/2),
    # in fcc when their sum is even ([110]/2, [112]/2).
    half_allowed = np.all(direction % 2 == 1) if lattice == "bcc" else direction.sum() % 2 == 0
    return direction / 2.0 if half_allowed else direction.astype(float)


def _oriented_block(lattice: str, a: float, orientation: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positions (A) and edge lengths (A) of the smallest orthogonal periodic cell along ``orientation``."""
    periods = np.array([_period_vector(d, lattice) for d in orientation])
    corners = np.array(list(itertools.product((0, 1), repeat=3)), dtype=float) @ periods
    low, high = np.floor(corners.min(axis=0)) - 1, np.ceil(corners.max(axis=0)) + 1
    cells = np.stack(np.meshgrid(*(np.arange(lo, hi + 1) for lo, hi in zip(low, high)), indexing="ij"), -1)
    sites = (cells.reshape(-1, 1, 3) + _BASIS[lattice][None]).reshape(-1, 3)
    fractional = sites @ np.linalg.inv(periods)
    # lattice sites have rational fractional coordinates: a small tolerance keeps 0 and drops 1
    inside = np.all((fractional > -1e-8) & (fractional < 1 - 1e-8), axis=1)
    lengths = np.linalg.norm(periods, axis=1) * a
    positions = np.clip(fractional[inside], 0.0, None) * lengths
    expected = round(abs(np.linalg.det(periods)) * len(_BASIS[lattice]))
    if len(positions) != expected:  # cannot happen for valid input; guards the kernel itself
        raise RuntimeError(f"oriented cell has {len(positions)} sites, expected {expected}")
    order = np.lexsort((positions[:, 0], positions[:, 1], positions[:, 2]))
    return positions[order], lengths


def _numbers(element: str, count: int) -> np.ndarray:
    return np.full(count, atomic_numbers[element], dtype=int)


def _tile(positions: np.ndarray, lengths: np.ndarray, repeats: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    shifts = np.stack(np.meshgrid(*(np.arange(n) for n in repeats), indexing="ij"), -1).reshape(-1, 3) * lengths
    return (shifts[:, None, :] + positions[None]).reshape(-1, 3), lengths * np.asarray(repeats)


def _lattice_ball(lattice: str, a: float, radius: float, c_over_a: float | None = None) -> np.ndarray:
    """Lattice sites (A, cubic or orthohexagonal frame, origin on a site) within ``radius`` of the origin."""
    if lattice == "hcp":
        from sampling.hcp import hcp_ball

        return hcp_ball(a, c_over_a, radius)
    n = math.ceil(radius / a) + 1
    grid = np.arange(-n, n + 1, dtype=float)
    cells = np.stack(np.meshgrid(grid, grid, grid, indexing="ij"), -1).reshape(-1, 1, 3)
    sites = (cells + _BASIS[lattice][None]).reshape(-1, 3) * a
    return sites[np.einsum("ij,ij->i", sites, sites) <= radius * radius]


def _wrap_into_box(positions: np.ndarray, box: np.ndarray) -> np.ndarray:
    wrapped = np.mod(positions, box)
    wrapped[wrapped >= box] = 0.0  # np.mod(-1e-17, L) == L in floating point
    return wrapped


def _drop_close_pairs(positions: np.ndarray, box: np.ndarray, distance: float) -> np.ndarray:
    """Mask keeping all atoms but one of each pair closer than ``distance`` (periodic box).

    Pairs are visited in index order and the higher index is dropped unless its partner
    already was, so the result is deterministic and removes as few atoms as a greedy pass can.
    """
    from scipy.spatial import cKDTree

    keep = np.ones(len(positions), dtype=bool)
    pairs = cKDTree(positions, boxsize=box).query_pairs(distance, output_type="ndarray")
    if len(pairs) == 0:
        return keep
    pairs = np.sort(pairs, axis=1)
    pairs = pairs[np.lexsort((pairs[:, 1], pairs[:, 0]))]
    for i, j in pairs.tolist():
        if keep[i] and keep[j]:
            keep[j] = False
    return keep


# --------------------------------------------------------------------------- oriented crystals


def single_crystal(
    element: str,
    lattice: str,
    a: float,
    orientation: Sequence[Sequence[int]] = ((1, 0, 0), (0, 1, 0), (0, 0, 1)),
    size: tuple[int, int, int] | None = None,
    min_lengths: tuple[float, float, float] | None = None,
) -> Atoms:
    """Orthogonal periodic crystal with x, y, z along the Miller directions ``orientation``.

    The unit is the smallest periodic cell along those directions (e.g. a*sqrt(3)/2
    along [111] in bcc). Give either ``size`` (repetitions of that cell, default
    (1, 1, 1)) or ``min_lengths`` (A; the fewest repetitions reaching them).
    Directions must be mutually orthogonal and right-handed (z along x cross y).
    """
    _check_material(element, lattice, a, kind="single_crystal")
    rows = _check_orientation(orientation)
    positions, lengths = _oriented_block(lattice, float(a), rows)
    repeats = _repeats(size, min_lengths, lengths, (1, 1, 1))
    positions, cell = _tile(positions, lengths, repeats)
    atoms = Atoms(numbers=_numbers(element, len(positions)), positions=positions, cell=cell, pbc=True)
    atoms.info["orientation"] = rows.tolist()
    return atoms


def _in_plane_direction(normal: np.ndarray) -> np.ndarray:
    """Shortest integer direction perpendicular to ``normal`` (preferring [1,0,0], [1,-1,0] ...)."""
    span = int(np.abs(normal).max()) + 1
    candidates = np.array(list(itertools.product(range(-span, span + 1), repeat=3)))
    candidates = candidates[(candidates @ normal == 0) & candidates.any(axis=1)]
    keys = [(int(v @ v), abs(int(v[2])), -int(v[0]), -int(v[1]), -int(v[2])) for v in candidates]
    return candidates[min(range(len(keys)), key=keys.__getitem__)]


def _reduced(vector: np.ndarray) -> np.ndarray:
    return vector // reduce(math.gcd, np.abs(vector).tolist())


def slab(
    element: str,
    lattice: str,
    a: float,
    normal: Sequence[int] = (0, 0, 1),
    thickness: float = 20.0,
    lateral_size: tuple[int, int] | None = None,
    lateral_min_lengths: tuple[float, float] | None = None,
    vacuum: float = 10.0,
    x_direction: Sequence[int] | None = None,
    surface: str | None = None,
    c_over_a: float | None = None,
) -> Atoms:
    """Slab with free surfaces normal to z (Miller ``normal``), periodic along x and y.

    At least ``thickness`` A of crystal (whole periods along the normal), ``vacuum`` A
    on each side; pbc is (True, True, False). In-plane x is ``x_direction`` or the
    shortest direction perpendicular to the normal; y = normal cross x. Lateral
    extent: ``lateral_size`` repetitions (default (1, 1)) or ``lateral_min_lengths`` (A).

    hcp: ``surface="basal"`` (0001) or ``"prismatic"`` (10-10), or ``normal`` as
    Miller-Bravais plane indices (0, 0, 0, 1) / (1, 0, -1, 0); ``c_over_a`` (default
    ideal); see :func:`sampling.hcp.hcp_slab`. ``surface`` and ``c_over_a`` are hcp only.
    """
    _check_material(element, lattice, a, kind="slab")
    if lattice == "hcp":
        from sampling.hcp import _surface_from_normal, hcp_slab

        if x_direction is not None:
            raise ValueError("x_direction: not used for hcp slabs (x is [2-1-10]); leave it None")
        if len(normal) == 4:
            from_normal = _surface_from_normal(normal)
            if surface is not None and surface != from_normal:
                raise ValueError(f"surface: {surface!r} contradicts normal {tuple(normal)!r} ({from_normal})")
            surface = from_normal
        elif tuple(normal) != (0, 0, 1):
            raise ValueError(f"normal: for hcp give Miller-Bravais indices (h, k, i, l) or surface=, got {normal!r}")
        if surface is None:
            raise ValueError("surface: for an hcp slab give surface='basal' or 'prismatic' "
                             "(or normal=(0, 0, 0, 1) / (1, 0, -1, 0))")
        return hcp_slab(element, a, surface, c_over_a, thickness, lateral_size, lateral_min_lengths, vacuum)
    if surface is not None or c_over_a is not None:
        raise ValueError(f"surface and c_over_a: only for lattice 'hcp', got lattice {lattice!r}; use normal=")
    n = _miller("normal", normal)
    if not (thickness > 0):
        raise ValueError(f"thickness: must be positive (A), got {thickness!r}")
    if not (vacuum >= 0):
        raise ValueError(f"vacuum: must be non-negative (A, on each side), got {vacuum!r}")
    if x_direction is None:
        x = _in_plane_direction(n)
    else:
        x = _miller("x_direction", x_direction)
        if x @ n != 0:
            raise ValueError(f"x_direction: {_fmt(x)} is not perpendicular to normal {_fmt(n)}; "
                             "give an in-plane direction")
    rows = np.array([x, _reduced(np.cross(n, x)), n])
    positions, lengths = _oriented_block(lattice, float(a), rows)
    atoms = slab_from_period(element, positions, lengths, thickness, vacuum, lateral_size, lateral_min_lengths)
    atoms.info["orientation"] = rows.tolist()
    return atoms


def slab_from_period(element: str, positions: np.ndarray, lengths: np.ndarray, thickness: float, vacuum: float,
                     lateral_size: tuple[int, int] | None, lateral_min_lengths: tuple[float, float] | None) -> Atoms:
    """A slab tiled from one orthogonal period cell (``positions`` in [0, ``lengths``)): repeated laterally by
    ``lateral_size`` (or to ``lateral_min_lengths`` A), stacked to at least ``thickness`` A along z, with
    ``vacuum`` A on each side; pbc (True, True, False)."""
    lateral = _repeats(lateral_size, lateral_min_lengths, lengths[:2], (1, 1), ("lateral_size", "lateral_min_lengths"))
    layers = int(max(math.ceil(thickness / lengths[2] - 1e-9), 1))
    positions, cell = _tile(positions, lengths, (*lateral, layers))
    positions[:, 2] += vacuum
    cell[2] += 2.0 * vacuum
    return Atoms(numbers=_numbers(element, len(positions)), positions=positions, cell=cell, pbc=(True, True, False))


# --------------------------------------------------------------------------- polycrystal


def polycrystal(
    element: str,
    lattice: str,
    a: float,
    box: tuple[float, float, float],
    n_grains: int,
    seed: int,
    overlap_fraction: float = 0.6,
    c_over_a: float | None = None,
) -> Atoms:
    """Periodic Voronoi polycrystal in an orthogonal ``box`` (A) with ``n_grains`` random grains.

    Seeds are uniform in the box and orientations uniform on SO(3), both drawn from
    ``seed`` (same seed, same atoms). Each grain is its rotated lattice (a site on the
    seed) restricted to the grain's periodic Voronoi cell; then of every pair closer
    than ``overlap_fraction`` times the nearest-neighbour distance one atom is removed.
    ``arrays["grain_id"]`` is the grain (0..n_grains-1); ``info["grain_rotations"]``
    the crystal-to-box rotation matrices, ``info["grain_seeds"]`` the seeds (A).
    hcp: the orthohexagonal lattice with ``c_over_a`` (default ideal; hcp only),
    nearest-neighbour distance min(a, sqrt(a^2/3 + c^2/4)).
    """
    from scipy.spatial import cKDTree
    from scipy.spatial.transform import Rotation

    _check_material(element, lattice, a, kind="polycrystal")
    if lattice == "hcp":
        from sampling.hcp import _ratio, hcp_nearest_neighbour

        c_over_a = _ratio(c_over_a)
        nearest_neighbour = hcp_nearest_neighbour(float(a), c_over_a)
    elif c_over_a is not None:
        raise ValueError(f"c_over_a: only for lattice 'hcp', got lattice {lattice!r}")
    else:
        nearest_neighbour = 0.0  # unused for cubic lattices, see below
    lengths = _positive_lengths("box", box, 3)
    if int(n_grains) != n_grains or n_grains < 1:
        raise ValueError(f"n_grains: must be a positive integer, got {n_grains!r}")
    if not 0 < overlap_fraction < 1:
        raise ValueError("overlap_fraction: must be between 0 and 1 (of the nearest-neighbour distance), "
                         f"got {overlap_fraction!r}")
    if lengths.min() < 2 * a:
        raise ValueError(f"box: every length must be at least two lattice constants (2*{a} A), got {tuple(lengths)}")
    n_grains = int(n_grains)
    rng = np.random.default_rng(seed)
    seeds = rng.random((n_grains, 3)) * lengths
    rotations = Rotation.random(n_grains, random_state=rng).as_matrix()
    seed_tree = cKDTree(seeds, boxsize=lengths)

    mean_radius = (3.0 * lengths.prod() / (4.0 * math.pi * n_grains)) ** (1.0 / 3.0)
    # No periodic Voronoi cell reaches beyond the Wigner-Seitz cell of the box lattice.
    largest_radius = 0.5 * float(np.linalg.norm(lengths)) + a
    pieces: list[np.ndarray] = []
    for grain in range(n_grains):
        radius = min(2.0 * mean_radius, largest_radius)
        while True:
            unwrapped = _lattice_ball(lattice, float(a), radius, c_over_a) @ rotations[grain].T + seeds[grain]
            wrapped = _wrap_into_box(unwrapped, lengths)
            distance, owner = seed_tree.query(wrapped)
            from_seed = np.linalg.norm(unwrapped - seeds[grain], axis=1)
            # owned by this seed itself, not by one of its periodic images: each box point once
            mine = (owner == grain) & (from_seed <= distance + 1e-6)
            reach = from_seed[mine].max() if mine.any() else 0.0
            if reach < radius - 1.5 * a or radius >= largest_radius:
                break
            radius = min(1.5 * radius, largest_radius)  # cell may extend past the ball: grow it
        pieces.append(wrapped[mine])

    grain_id = np.concatenate([np.full(len(p), g, dtype=int) for g, p in enumerate(pieces)])
    positions = np.concatenate(pieces)
    # cubic: the same expression (and float rounding) as before hcp was added
    if lattice == "hcp":
        overlap_distance = overlap_fraction * nearest_neighbour
    else:
        overlap_distance = overlap_fraction * _NEAREST_NEIGHBOUR[lattice] * a
    keep = _drop_close_pairs(positions, lengths, overlap_distance)
    atoms = Atoms(numbers=_numbers(element, int(keep.sum())), positions=positions[keep], cell=lengths, pbc=True)
    atoms.arrays["grain_id"] = grain_id[keep]
    atoms.info["grain_rotations"] = rotations.reshape(n_grains, 9).tolist()
    atoms.info["grain_seeds"] = seeds.tolist()
    return atoms


# --------------------------------------------------------------------------- bicrystal

# (tilt axis, boundary plane) per kind and lattice
_BICRYSTAL_DEFAULTS = {
    ("symmetric_tilt", "bcc"): ((0, 0, 1), (3, 1, 0)),  # Sigma5 (310)[001]
    ("symmetric_tilt", "fcc"): ((0, 0, 1), (3, 1, 0)),  # Sigma5 (310)[001]
    ("twin", "bcc"): ((1, -1, 0), (1, 1, 2)),  # Sigma3 (112)[1-10]
    ("twin", "fcc"): ((1, -1, 0), (1, 1, 1)),  # Sigma3 (111)[1-10] coherent twin
}
_TWIN_PLANE_FAMILY = {"bcc": (1, 1, 2), "fcc": (1, 1, 1)}


def bicrystal(
    element: str,
    lattice: str,
    a: float,
    kind: str = "symmetric_tilt",
    tilt_axis: Sequence[int] | None = None,
    boundary_plane: Sequence[int] | None = None,
    size: tuple[int, int, int] | None = None,
    min_lengths: tuple[float, float, float] | None = None,
    translation: tuple[float, float, float] = (0.0, 0.0, 0.0),
    overlap_fraction: float = 0.6,
    c_over_a: float | None = None,
) -> Atoms:
    """Periodic bicrystal with two symmetric tilt grain boundaries normal to z.

    x is the ``tilt_axis``, z the ``boundary_plane`` normal of grain 0, y = z cross x.
    Grain 1 is the mirror image of grain 0 across the boundary plane (for a
    centrosymmetric lattice: grain 0 rotated 180 degrees about z). Grain 0 fills
    0 <= z < Lz/2, grain 1 the rest; the boundaries are the atomic planes at z = 0
    (periodic image) and z = Lz/2. Defaults: bcc/fcc Sigma5 (310)[001] for
    ``kind="symmetric_tilt"``, Sigma3 (112)[1-10] (bcc) or (111)[1-10] (fcc) for
    ``kind="twin"``. ``size`` is (nx, ny, periods per grain along z), default
    (1, 1, 2); or ``min_lengths`` (Lx, Ly, total Lz) in A. ``translation`` (A) shifts
    grain 1 rigidly; then of every pair closer than ``overlap_fraction`` times the
    nearest-neighbour distance the grain-1 atom is removed.
    ``arrays["grain_id"]`` is 0 or 1.

    hcp: ``kind="twin"`` only, the {10-12} twin (:func:`sampling.hcp.hcp_twin_bicrystal`;
    ``size`` = (nx, ny, Bravais planes per grain)); tilt_axis, boundary_plane and
    translation are not used; ``c_over_a`` (hcp only) defaults to the ideal ratio.
    """
    _check_material(element, lattice, a, kind=f"bicrystal ({kind})")
    if lattice == "hcp":
        from sampling.hcp import hcp_twin_bicrystal

        if tilt_axis is not None or boundary_plane is not None or any(translation):
            raise ValueError("tilt_axis, boundary_plane and translation: not used for the hcp {10-12} twin; "
                             "leave them at their defaults")
        return hcp_twin_bicrystal(element, a, c_over_a, size, min_lengths, overlap_fraction)
    if c_over_a is not None:
        raise ValueError(f"c_over_a: only for lattice 'hcp', got lattice {lattice!r}")
    if (kind, lattice) not in _BICRYSTAL_DEFAULTS:
        raise ValueError(f"kind: must be 'symmetric_tilt' or 'twin', got {kind!r}")
    default_axis, default_plane = _BICRYSTAL_DEFAULTS[(kind, lattice)]
    t = _miller("tilt_axis", default_axis if tilt_axis is None else tilt_axis)
    n = _miller("boundary_plane", default_plane if boundary_plane is None else boundary_plane)
    if t @ n != 0:
        raise ValueError(
            f"tilt_axis {_fmt(t)} does not lie in boundary_plane {_fmt(n)} (dot product {int(t @ n)}); "
            "for a tilt boundary choose an axis perpendicular to the plane normal"
        )
    if kind == "twin" and sorted(np.abs(n).tolist()) != sorted(_TWIN_PLANE_FAMILY[lattice]):
        family = "".join(str(i) for i in _TWIN_PLANE_FAMILY[lattice])
        raise ValueError(f"boundary_plane: a {lattice} twin lies on a {{{family}}} plane, got {_fmt(n)}; "
                         "use kind='symmetric_tilt'")
    shift = np.asarray(translation, dtype=float)
    if shift.shape != (3,) or not np.all(np.isfinite(shift)):
        raise ValueError(f"translation: expected three finite numbers (A), got {translation!r}")
    if not 0 < overlap_fraction < 1:
        raise ValueError("overlap_fraction: must be between 0 and 1 (of the nearest-neighbour distance), "
                         f"got {overlap_fraction!r}")

    rows = np.array([t, _reduced(np.cross(n, t)), n])
    positions, periods = _oriented_block(lattice, float(a), rows)
    if min_lengths is not None and size is None:
        lengths = _positive_lengths("min_lengths", min_lengths, 3)
        repeats = _repeats(None, (lengths[0], lengths[1], lengths[2] / 2.0), periods, (1, 1, 2))
    else:
        repeats = _repeats(size, min_lengths, periods, (1, 1, 2))
    positions, cell = _tile(positions, periods, (repeats[0], repeats[1], 2 * repeats[2]))
    half = 0.5 * cell[2]
    tolerance = 1e-6
    lower = positions[positions[:, 2] < half - tolerance]
    # 180 degrees about z through a lattice site: the planes at z = 0 and Lz/2 map onto themselves
    rotated = _wrap_into_box(positions * np.array([-1.0, -1.0, 1.0]), cell)
    upper = rotated[rotated[:, 2] >= half - tolerance]
    upper = _wrap_into_box(upper + shift, cell)
    combined = np.concatenate([lower, upper])
    grain_id = np.concatenate([np.zeros(len(lower), dtype=int), np.ones(len(upper), dtype=int)])
    keep = _drop_close_pairs(_wrap_into_box(combined, cell), cell, overlap_fraction * _NEAREST_NEIGHBOUR[lattice] * a)
    atoms = Atoms(numbers=_numbers(element, int(keep.sum())), positions=combined[keep], cell=cell, pbc=True)
    atoms.arrays["grain_id"] = grain_id[keep]
    atoms.info["orientation"] = rows.tolist()
    atoms.info["boundary_area"] = float(cell[0] * cell[1])
    return atoms


def grain_boundary_positions(atoms: Atoms, axis: int = 2, merge_distance: float = 3.0) -> np.ndarray:
    """Positions (A, sorted, in [0, L)) along ``axis`` where ``arrays["grain_id"]`` changes.

    Each boundary is the midpoint between the outermost atomic planes of the two
    grains; candidates closer than ``merge_distance`` (rumpled planes after
    relaxation) are averaged. For a bicrystal: two values, Lz/2 apart.
    """
    if "grain_id" not in atoms.arrays:
        raise ValueError("atoms: no arrays['grain_id']; build it with bicrystal() or polycrystal()")
    if axis not in (0, 1, 2):
        raise ValueError(f"axis: must be 0, 1 or 2 (x, y, z), got {axis!r}")
    length = float(atoms.cell[axis, axis])
    coordinate = np.mod(atoms.positions[:, axis], length)
    order = np.argsort(coordinate)
    coordinate, grain = coordinate[order], atoms.arrays["grain_id"][order]
    following = np.roll(np.arange(len(coordinate)), -1)
    changes = np.flatnonzero(grain != grain[following])
    if len(changes) == 0:
        return np.array([])
    gap = np.mod(coordinate[following[changes]] - coordinate[changes], length)
    candidates = np.mod(coordinate[changes] + 0.5 * gap, length)
    candidates.sort()
    # group candidates circularly: start a new group after every gap larger than merge_distance
    gaps = np.mod(np.roll(candidates, -1) - candidates, length)
    if len(candidates) == 1 or np.all(gaps <= merge_distance):
        return np.array([candidates[0]])
    start = (int(np.argmax(gaps)) + 1) % len(candidates)
    ring = np.roll(candidates, -start)
    ring = np.concatenate([ring[:1], ring[0] + np.mod(ring[1:] - ring[0], length)])
    breaks = np.flatnonzero(np.diff(ring) > merge_distance) + 1
    return np.sort(np.mod([group.mean() for group in np.split(ring, breaks)], length))


# --------------------------------------------------------------------------- dislocations


def _check_elastic_constants(C11: float, C12: float, C44: float) -> None:
    if not (C44 > 0 and C11 - C12 > 0 and C11 + 2 * C12 > 0):
        raise ValueError(
            f"C11, C12, C44 = {C11}, {C12}, {C44} GPa are not mechanically stable cubic elastic constants "
            "(need C44 > 0, C11 > |C12|, C11 + 2 C12 > 0); give the potential's values, e.g. W: 523, 204, 161"
        )


def _dislocation_cylinder(
    character: str,
    element: str,
    lattice: str,
    a: float,
    C11: float,
    C12: float,
    C44: float,
    radius: float,
    fixed_width: float,
    line_repeats: int,
    vacuum: float,
) -> Atoms:
    import warnings

    from matscipy import dislocation as md

    _check_material(element, lattice, a, kind=f"{character} dislocation")
    _check_elastic_constants(C11, C12, C44)
    if not radius > 2 * a:
        raise ValueError(f"radius: must exceed two lattice constants (2*{a} A), got {radius!r}")
    if not 0 <= fixed_width < radius:
        raise ValueError(f"fixed_width: must be between 0 and radius ({radius} A), got {fixed_width!r}")
    if int(line_repeats) != line_repeats or line_repeats < 1:
        raise ValueError(f"line_repeats: must be a positive integer, got {line_repeats!r}")
    if not vacuum >= 0:
        raise ValueError(f"vacuum: must be non-negative (A), got {vacuum!r}")
    classes = {
        ("bcc", "screw"): md.BCCScrew111Dislocation,
        ("bcc", "edge"): md.BCCEdge111Dislocation,
        ("fcc", "screw"): md.FCCScrew110Dislocation,
        ("fcc", "edge"): md.FCCEdge110Dislocation,
    }
    model = classes[(lattice, character)](float(a), C11, C12, C44, symbol=element)
    options = {"partial_distance": 0} if lattice == "fcc" else {}  # undissociated a/2<110>
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # matscipy warns about the missing atomman and uses its own solver
        _, cylinder = model.build_cylinder(
            float(radius), fix_width=float(fixed_width), method="adsl", verbose=False, **options
        )
    fixed = np.array(cylinder.arrays.get("fix_mask", np.zeros(len(cylinder), dtype=bool)), dtype=bool)
    atoms = Atoms(cylinder.get_chemical_symbols(), positions=cylinder.positions, cell=cylinder.cell, pbc=True)
    atoms.arrays["fixed"] = fixed
    core = np.array(cylinder.info["core_positions"][0], dtype=float)
    # recentre the cylinder with vacuum around it; x and y are free surfaces
    before = atoms.positions[0].copy()
    atoms.center(vacuum=float(vacuum), axis=(0, 1))
    core += atoms.positions[0] - before
    atoms.pbc = (False, False, True)
    if line_repeats > 1:
        atoms = atoms.repeat((1, 1, int(line_repeats)))
    axes = np.array(model.axes, dtype=float)
    rotation = axes / np.linalg.norm(axes, axis=1)[:, None]  # crystal -> cell frame
    atoms.info.update(
        {
            "dislocation": model.name,
            "core_position": core.tolist(),
            "burgers_vector": (rotation @ np.asarray(model.burgers, dtype=float)).tolist(),
            "crystal_axes": np.asarray(model.axes, dtype=int).tolist(),
            "elastic_constants_GPa": [float(C11), float(C12), float(C44)],
        }
    )
    return atoms


def screw_dislocation(
    element: str,
    lattice: str,
    a: float,
    C11: float,
    C12: float,
    C44: float,
    radius: float,
    fixed_width: float = 10.0,
    line_repeats: int = 1,
    vacuum: float = 5.0,
) -> Atoms:
    """Cylinder of ``radius`` (A) around a straight screw dislocation along z (anisotropic elasticity).

    bcc: b = a/2[111] along z, axes x=[11-2], y=[-110], z=[111]; fcc: b = a/2[1-10],
    undissociated. Displacements are the Stroh solution for the cubic elastic
    constants C11, C12, C44 (GPa; W EAM-Zhou: 523, 204, 161), from matscipy.
    Periodic along the line (``line_repeats`` periods), free surfaces with ``vacuum``
    A around; ``arrays["fixed"]`` marks the outer shell of ``fixed_width`` A to hold
    fixed. ``info`` has core_position, burgers_vector (cell frame, A), crystal_axes.
    """
    return _dislocation_cylinder("screw", element, lattice, a, C11, C12, C44, radius, fixed_width, line_repeats, vacuum)


def edge_dislocation(
    element: str,
    lattice: str,
    a: float,
    C11: float,
    C12: float,
    C44: float,
    radius: float,
    fixed_width: float = 10.0,
    line_repeats: int = 1,
    vacuum: float = 5.0,
) -> Atoms:
    """Cylinder of ``radius`` (A) around a straight edge dislocation along z (anisotropic elasticity).

    bcc: b = a/2[111] along x, glide plane normal y=[1-10], line z=[11-2]; fcc:
    b = a/2[1-10] along x, glide plane (111). Otherwise as :func:`screw_dislocation`.
    """
    return _dislocation_cylinder("edge", element, lattice, a, C11, C12, C44, radius, fixed_width, line_repeats, vacuum)


# --------------------------------------------------------------------------- point defects and loops


def _minimum_image(atoms: Atoms, vectors: np.ndarray) -> np.ndarray:
    """``vectors`` reduced to their shortest periodic images along the periodic cell vectors."""
    cell = np.array(atoms.cell[:], dtype=float)
    pbc = np.array(atoms.pbc, dtype=bool)
    if not pbc.any():
        return vectors
    fractional = np.linalg.solve(cell.T, vectors.T).T
    fractional[:, pbc] -= np.rint(fractional[:, pbc])
    reduced = fractional @ cell
    if abs(cell[0] @ cell[1]) + abs(cell[0] @ cell[2]) + abs(cell[1] @ cell[2]) < 1e-9:
        return reduced  # orthogonal cell: rounding fractional coordinates is exact
    from ase.geometry import find_mic

    return find_mic(vectors, cell, pbc)[0]


def _local_cubic_frame(atoms: Atoms, index: int) -> tuple[str, float, np.ndarray]:
    """Lattice, local lattice constant and cubic axes (rows, lab frame) around atom ``index``.

    Found from the neighbour shells: 8 (bcc) or 12 (fcc) nearest neighbours; the
    6 second neighbours lie along <100> at distance a. Of the equivalent cubic
    frames the one closest to the lab axes is returned.
    """
    vectors = _minimum_image(atoms, atoms.positions - atoms.positions[index])
    distances = np.linalg.norm(vectors, axis=1)
    distances[index] = np.inf
    nearest = distances.min()
    first_shell = int(np.count_nonzero(distances < 1.1 * nearest))
    ratio = {8: 2.0 / math.sqrt(3.0), 12: math.sqrt(2.0)}.get(first_shell)
    if ratio is None:
        raise ValueError(
            f"atoms: atom {index} has {first_shell} nearest neighbours, not 8 (bcc) or 12 (fcc); "
            "choose a site in perfect crystal (near=...) or a larger cell"
        )
    lattice = "bcc" if first_shell == 8 else "fcc"
    second = vectors[np.abs(distances - ratio * nearest) < 0.05 * nearest]
    if len(second) < 4:
        raise ValueError(f"atoms: atom {index} lacks the <100> second-neighbour shell; "
                         "choose a site in perfect crystal")
    axis_x = second[np.argmax(second[:, 0])]
    perpendicular = second[np.abs(second @ axis_x) < 0.1 * nearest**2]
    axis_y = perpendicular[np.argmax(perpendicular[:, 1])]
    axis_x, axis_y = axis_x / np.linalg.norm(axis_x), axis_y / np.linalg.norm(axis_y)
    frame = np.array([axis_x, axis_y, np.cross(axis_x, axis_y)])
    # cubic: the <100> shell holds +-z too; hcp's 12 + 6 shells pass the counts above but not this
    along_z = second @ frame[2] / np.linalg.norm(second, axis=1)
    if abs(axis_x @ axis_y) > 0.1 or along_z.max() < 0.95 or along_z.min() > -0.95:
        raise ValueError(f"atoms: atom {index} is not in a cubic (bcc/fcc) crystal (no <100> neighbour shell); "
                         "structure kind interstitial or dislocation loop is not supported for hcp yet")
    return lattice, float(ratio * nearest), frame


def _family(kind: str) -> np.ndarray:
    """One vector per +-pair of the cubic family ``<hkl>`` (e.g. 4 for <111>)."""
    indices = tuple(int(c) for c in kind.strip("<>"))
    members = {
        tuple(s * p for s, p in zip(signs, perm))
        for perm in set(itertools.permutations(indices))
        for signs in itertools.product((1, -1), repeat=3)
    }
    unique: list[tuple[int, ...]] = []
    for m in sorted(members, reverse=True):
        if tuple(-c for c in m) not in unique:
            unique.append(m)
    return np.array(unique, dtype=float)


_INTERSTITIAL_KINDS = ("<111>", "<110>", "<100>", "octahedral", "tetrahedral")


def add_interstitial(
    atoms: Atoms,
    kind: str = "<111>",
    near: int | Sequence[float] | None = None,
    seed: int = 0,
) -> Atoms:
    """A copy of ``atoms`` with one self-interstitial atom added.

    ``kind``: "<111>" (dumbbell, the stable SIA in W and most bcc metals), "<110>",
    "<100>" (dumbbell, stable in fcc), "octahedral" or "tetrahedral" site. A
    dumbbell replaces the host atom by two atoms 0.75 d_nn apart along the
    direction, centred on the site. The host is atom ``near`` (an index), the atom
    nearest to ``near`` (a position, A), or a random atom; the direction or site
    among equivalent ones is random. Both draws come from ``seed``. The crystal
    axes are found locally from the host's neighbour shells, so rotated grains
    work. The added atom is the last one and copies the host's per-atom arrays.
    """
    if kind not in _INTERSTITIAL_KINDS:
        raise ValueError(f"kind: must be one of {', '.join(_INTERSTITIAL_KINDS)}, got {kind!r}")
    if len(atoms) < 2:
        raise ValueError("atoms: needs a crystal of at least 2 atoms")
    rng = np.random.default_rng(seed)
    host = _pick_atom(atoms, near, rng)
    lattice, a, frame = _local_cubic_frame(atoms, host)
    site = atoms.positions[host]
    result = atoms.copy()
    added = atoms[[host]]
    if kind.startswith("<"):
        directions = _family(kind)
        direction = directions[rng.integers(len(directions))] @ frame
        direction /= np.linalg.norm(direction)
        half = 0.375 * _NEAREST_NEIGHBOUR[lattice] * a
        result.positions[host] = site + half * direction
        added.positions[0] = site - half * direction
    else:
        if kind == "octahedral":  # a/2 <100> from a site (cube edge and face centres), bcc and fcc
            offsets = _signed_permutations((0.5, 0.0, 0.0))
        elif lattice == "bcc":
            offsets = _signed_permutations((0.5, 0.25, 0.0))
        else:
            offsets = _signed_permutations((0.25, 0.25, 0.25))
        candidates = site + (offsets * a) @ frame
        if near is not None and not _is_index(near):
            target = np.asarray(near, dtype=float)
            choice = int(np.argmin(np.linalg.norm(_minimum_image(atoms, candidates - target), axis=1)))
        else:
            choice = int(rng.integers(len(candidates)))
        added.positions[0] = candidates[choice]
    result.extend(added)
    result.wrap(eps=1e-9)
    return result


def _signed_permutations(values: tuple[float, float, float]) -> np.ndarray:
    """All distinct vectors obtained by permuting ``values`` and flipping signs (sorted, deterministic)."""
    vectors = {
        tuple(s * v for s, v in zip(signs, perm))
        for perm in itertools.permutations(values)
        for signs in itertools.product((1.0, -1.0), repeat=3)
    }
    return np.array(sorted(vectors), dtype=float)


def _is_index(value: object) -> TypeGuard[int | np.integer]:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _pick_atom(atoms: Atoms, near: int | Sequence[float] | None, rng: np.random.Generator) -> int:
    if near is None:
        return int(rng.integers(len(atoms)))
    if _is_index(near):
        if not 0 <= near < len(atoms):
            raise ValueError(f"near: atom index {near} is out of range for {len(atoms)} atoms")
        return int(near)
    target = np.asarray(near, dtype=float)
    if target.shape != (3,) or not np.all(np.isfinite(target)):
        raise ValueError(f"near: expected an atom index or a position (x, y, z) in A, got {near!r}")
    return int(np.argmin(np.linalg.norm(_minimum_image(atoms, atoms.positions - target), axis=1)))


# Burgers vector in units of a for (lattice, family): bcc a<100>, a/2<111>; fcc a/2<110>, Frank a/3<111>
_LOOP_BURGERS = {
    ("bcc", "<100>"): np.array([1.0, 0.0, 0.0]),
    ("bcc", "<111>"): np.array([1.0, 1.0, 1.0]) / 2.0,
    ("fcc", "<110>"): np.array([1.0, 1.0, 0.0]) / 2.0,
    ("fcc", "<111>"): np.array([1.0, 1.0, 1.0]) / 3.0,
}


def _disc_solid_angle_fraction(relative: np.ndarray, normal: np.ndarray, radius: float,
                               segments: int = 96) -> np.ndarray:
    """Solid angle of a disc (centre 0, ``normal``) seen from ``relative`` points, divided by 2 pi.

    +1 just above the disc (normal side), -1 just below, ~0 far away. Sum over a fan of
    triangles with the Van Oosterom-Strackee formula, one numpy pass per triangle.
    """
    helper = np.eye(3)[int(np.argmin(np.abs(normal)))]
    e1 = np.cross(normal, helper)
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(normal, e1)
    angles = np.linspace(0.0, 2.0 * math.pi, segments + 1)
    vertices = radius * (np.cos(angles)[:, None] * e1 + np.sin(angles)[:, None] * e2)
    r0 = -relative
    n0 = np.linalg.norm(r0, axis=1)
    total = np.zeros(len(relative))
    for k in range(segments):
        r1, r2 = vertices[k] - relative, vertices[k + 1] - relative
        n1, n2 = np.linalg.norm(r1, axis=1), np.linalg.norm(r2, axis=1)
        numerator = np.einsum("ij,ij->i", r0, np.cross(r1, r2))
        denominator = (
            n0 * n1 * n2
            + np.einsum("ij,ij->i", r0, r1) * n2
            + np.einsum("ij,ij->i", r0, r2) * n1
            + np.einsum("ij,ij->i", r1, r2) * n0
        )
        total += 2.0 * np.arctan2(numerator, denominator)
    return -total / (2.0 * math.pi)


def dislocation_loop(
    atoms: Atoms,
    burgers: str = "<111>",
    radius: float = 8.0,
    nature: str = "interstitial",
    center: Sequence[float] | None = None,
) -> Atoms:
    """A copy of ``atoms`` with a prismatic dislocation loop of ``radius`` (A) at ``center``.

    The habit plane is normal to b. An interstitial loop inserts a disc of lattice
    one |b| thick (the atoms of that disc, shifted by -b/2), a vacancy loop removes
    one; all other atoms get the displacement field (b/2) * Omega / (2 pi) of the
    disc (Omega: solid angle), so the crystal inside the loop is in registry and
    minimisation leaves a loop. ``burgers``: bcc "<111>" (a/2<111>) or "<100>" (a<100>);
    fcc "<110>" (a/2<110>) or "<111>" (Frank loop a/3<111>, with a stacking fault).
    Direction: the family member closest to (1,1,1) / (1,0,0) / (1,1,0) in the local
    cubic frame (found from neighbour shells at the centre). ``center`` defaults to
    the cell centre. ``info["loop_atoms"]`` is the number of atoms added (negative: removed).
    """
    if nature not in ("interstitial", "vacancy"):
        raise ValueError(f"nature: must be 'interstitial' or 'vacancy', got {nature!r}")
    if not (isinstance(radius, (int, float, np.floating)) and radius > 0):
        raise ValueError(f"radius: must be positive (A), got {radius!r}")
    cell = np.array(atoms.cell[:], dtype=float)
    if center is None:
        centre = cell.sum(axis=0) / 2.0
    else:
        centre = np.asarray(center, dtype=float)
        if centre.shape != (3,) or not np.all(np.isfinite(centre)):
            raise ValueError(f"center: expected a position (x, y, z) in A, got {center!r}")
    host = _pick_atom(atoms, centre, np.random.default_rng(0))
    lattice, a, frame = _local_cubic_frame(atoms, host)
    if (lattice, burgers) not in _LOOP_BURGERS:
        options = " or ".join(f"'{f}'" for (lat, f) in _LOOP_BURGERS if lat == lattice)
        raise ValueError(f"burgers: for a {lattice} crystal use {options}, got {burgers!r}")
    b_vector = (_LOOP_BURGERS[(lattice, burgers)] * a) @ frame
    b_length = float(np.linalg.norm(b_vector))
    normal = b_vector / b_length
    widths = abs(np.linalg.det(cell)) / np.linalg.norm(np.cross(cell[[1, 2, 0]], cell[[2, 0, 1]]), axis=1)
    smallest = float(widths[np.array(atoms.pbc, dtype=bool)].min()) if any(atoms.pbc) else np.inf
    if 2.0 * radius + 2.0 * a > smallest:
        raise ValueError(
            f"radius: a loop of diameter {2 * radius:.4g} A does not fit the cell (narrowest periodic width "
            f"{smallest:.4g} A); use a smaller radius or a larger supercell"
        )

    relative = _minimum_image(atoms, atoms.positions - centre)
    height = relative @ normal
    in_plane = np.linalg.norm(relative - height[:, None] * normal, axis=1)
    # put the disc midway between two atomic planes near the centre (no atom on the cut)
    planes = np.unique(np.round(height[(in_plane < radius + a) & (np.abs(height) < 2.0 * b_length + a)], 3))
    gaps = np.diff(planes)
    middles = planes[:-1] + 0.5 * gaps
    cut = float(middles[np.argmin(np.abs(middles) + 1e3 * (gaps < 0.1))])
    relative = relative - cut * normal
    height = height - cut
    disc = in_plane < radius

    if nature == "vacancy":
        # the removed slab closes: measure heights from its faces so that the planes
        # bounding it move by nearly b/2 each, not by the smaller value at the mid-plane
        face = np.sign(height) * np.maximum(np.abs(height) - 0.5 * b_length, 0.0)
        relative = relative + (face - height)[:, None] * normal
    fraction = _disc_solid_angle_fraction(relative, normal, float(radius))
    sign = 1.0 if nature == "interstitial" else -1.0
    result = atoms.copy()
    result.positions += sign * 0.5 * b_length * fraction[:, None] * normal
    if nature == "interstitial":
        # the inserted disc: lattice one |b| thick above the cut, moved down into the opened gap
        source = np.flatnonzero(disc & (height >= 0) & (height < b_length))
        inserted = atoms[source]
        inserted.positions = atoms.positions[source] - 0.5 * b_vector
        result.extend(inserted)
        change = len(source)
    else:
        removed = np.flatnonzero(disc & (np.abs(height) < 0.5 * b_length))
        del result[removed]
        change = -len(removed)
    result.wrap(eps=1e-9)
    result.info["loop_atoms"] = int(change)
    result.info["loop_burgers_vector"] = b_vector.tolist()
    return result


# --------------------------------------------------------------------------- box size checks


def _potential_cutoff(potential: Potential) -> float:
    """Cutoff (A) from the potential file: setfl/eam.fs line 5, funcfl line 3, MEAM ``rc`` (default 4.0); a
    GeneralPotential's own (read off its SNAP files)."""
    from md.potentials import GeneralPotential

    if isinstance(potential, GeneralPotential) and potential.cutoff is not None:
        return potential.cutoff
    path = Path(potential.files[-1])
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    try:
        if potential.pair_style in ("eam/alloy", "eam/fs"):
            return float(lines[4].split()[-1])
        if potential.pair_style == "eam":
            return float(lines[2].split()[-1])
        if potential.pair_style == "meam":
            for line in lines:
                words = line.split("#")[0].replace("=", " ").split()
                if len(words) == 2 and words[0] == "rc":
                    return float(words[1])
            return 4.0  # LAMMPS's default rc for MEAM
    except (IndexError, ValueError):
        pass
    raise ValueError(f"cutoff: cannot read the cutoff of potential {potential.name} from {path}; pass it in A")


def check_box_for_cutoff(atoms: Atoms, cutoff: float | Potential) -> None:
    """Raise ValueError if a periodic direction of ``atoms`` is narrower than twice ``cutoff``.

    ``cutoff`` is in A or a Potential (its file's cutoff). The width along a cell
    vector is the distance between the opposite cell faces (the edge length for
    orthogonal cells). Below 2*cutoff an atom would see two images of one neighbour.
    """
    if not isinstance(cutoff, (int, float)) and hasattr(cutoff, "files") and hasattr(cutoff, "pair_style"):
        cutoff = _potential_cutoff(cutoff)
    if not (isinstance(cutoff, (int, float, np.floating)) and cutoff > 0):
        raise ValueError(f"cutoff: must be a positive distance in A or a Potential, got {cutoff!r}")
    cell = np.array(atoms.cell[:], dtype=float)
    pbc = np.array(atoms.pbc, dtype=bool)
    volume = abs(np.linalg.det(cell))
    for axis in np.flatnonzero(pbc):
        face = np.linalg.norm(np.cross(cell[(axis + 1) % 3], cell[(axis + 2) % 3]))
        width = volume / face if face > 0 else 0.0
        if width < 2.0 * cutoff:
            raise ValueError(
                f"box length along {_AXES[axis]} is {width:.4g} A, smaller than twice the potential cutoff "
                f"2*{cutoff:.4g} A; use a larger supercell"
            )
