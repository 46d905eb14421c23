"""Chemical occupation of crystal sites: random solid solutions and ordered prototypes (issue #18).

:func:`occupy` puts ``elements`` on the sites of a crystal (from :func:`sampling.builders.bulk_crystal`):
either at random with an exact composition (rounded to whole atoms by the largest-remainder method,
reproducible by ``seed``), or as an ordered prototype of :data:`schemas.alloys.PROTOTYPES` on its
parent lattice. :func:`ordered_crystal` builds a prototype directly from its conventional cell:

- B2, L1_2, L1_0: the cubic cell of the parent lattice (2, 4, 4 atoms);
- D0_19: the orthohexagonal 2a x 2a sqrt(3) x c cell of hcp (16 atoms, 12 A + 4 B), i.e. the
  2 x 2 basal supercell of the hexagonal cell in orthogonal form. B occupies a triangular
  2a lattice in each basal plane; the B sites of neighbouring planes are placed so that every B
  has 12 A nearest neighbours (Ni3Sn type), every A 8 A and 4 B.

Sites are told apart by their position relative to atom 0 in the lattice frame of ``bulk_crystal``
(cube axes along x, y, z; hcp a1 along x, c along z), so ordered occupation needs such a crystal,
a whole number of the prototype's conventional cells.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from ase import Atoms
from ase.data import atomic_numbers

from schemas.alloys import PROTOTYPES

from .builders import bulk_crystal
from .defects import BCC, FCC, HCP, adaptive_cna, estimate_lattice_constant

__all__ = ["conventional_size", "occupy", "ordered_crystal", "whole_atom_counts"]

_LATTICE_OF_TYPE = {BCC: "bcc", FCC: "fcc", HCP: "hcp"}
# conventional cell of each prototype in cells of bulk_crystal(parent lattice)
_CELLS_PER_CONVENTIONAL = {"B2": (1, 1, 1), "L1_2": (1, 1, 1), "L1_0": (1, 1, 1), "D0_19": (2, 2, 1)}


def whole_atom_counts(fractions: Sequence[float], n_atoms: int) -> list[int]:
    """Atoms per species for ``n_atoms`` sites: floor(f N), the remainder to the largest fractional parts.

    Largest-remainder (Hamilton) rounding: the counts sum to ``n_atoms`` and each differs from
    f N by less than 1; ties go to the species listed first.
    """
    exact = [float(f) * n_atoms for f in fractions]
    counts = [math.floor(x + 1e-9) for x in exact]
    order = sorted(range(len(exact)), key=lambda i: (-(exact[i] - counts[i]), i))
    for i in order[: n_atoms - sum(counts)]:
        counts[i] += 1
    return counts


def _check_elements(elements: Sequence[str]) -> list[str]:
    if isinstance(elements, str) or not isinstance(elements, Sequence) or len(elements) == 0:
        raise ValueError(f"elements: expected a list of chemical symbols such as ['Cu', 'Ni'], got {elements!r}")
    names = list(elements)
    unknown = [e for e in names if not isinstance(e, str) or e not in atomic_numbers]
    if unknown:
        raise ValueError(f"elements: {', '.join(map(repr, unknown))} is not a chemical symbol; give e.g. 'Ni', 'Al'")
    if len(set(names)) != len(names):
        raise ValueError(f"elements: each element once, got {names!r}")
    return names


def _fractions(composition: Mapping[str, float] | Sequence[float], elements: list[str]) -> list[float]:
    if isinstance(composition, Mapping):
        foreign = [k for k in composition if k not in elements]
        if foreign:
            raise ValueError(f"composition: {', '.join(map(repr, foreign))} not in elements {elements!r}")
        values = [composition.get(e, 0.0) for e in elements]
    else:
        values = list(composition)
        if len(values) != len(elements):
            raise ValueError(f"composition: {len(values)} fractions for {len(elements)} elements {elements!r}")
    try:
        fractions = [float(v) for v in values]
    except (TypeError, ValueError):
        raise ValueError(f"composition: fractions must be numbers, got {composition!r}") from None
    if any(not math.isfinite(f) or f < 0 for f in fractions):
        raise ValueError(f"composition: fractions must be between 0 and 1, got {composition!r}")
    total = sum(fractions)
    if abs(total - 1.0) > 1e-6:
        raise ValueError(f"composition: atomic fractions must sum to 1 (within 1e-6), "
                         f"got {total!r} from {composition!r}")
    return fractions


def _check_prototype(prototype: str, elements: list[str], lattice: str | None) -> tuple[str, tuple[float, ...]]:
    if prototype not in PROTOTYPES:
        raise ValueError(f"prototype: must be one of {', '.join(PROTOTYPES)}, got {prototype!r}")
    parent, fractions = PROTOTYPES[prototype]
    if len(elements) != len(fractions):
        raise ValueError(f"elements: prototype {prototype} orders {len(fractions)} species, "
                         f"got {len(elements)}: {elements!r}")
    if lattice is not None and lattice != parent:
        raise ValueError(f"prototype: {prototype} is an ordering of the {parent} lattice, not of {lattice!r}; "
                         f"use lattice '{parent}' or a prototype of {lattice!r}")
    return parent, fractions


def _detected_lattice(atoms: Atoms) -> str | None:
    """bcc, fcc or hcp when most atoms have that adaptive-CNA type, else None."""
    types = adaptive_cna(atoms.positions, atoms.cell[:], atoms.pbc)
    values, counts = np.unique(types, return_counts=True)
    best = int(values[np.argmax(counts)])
    return _LATTICE_OF_TYPE.get(best) if counts.max() > 0.9 * len(atoms) else None


def _near_integers(values: np.ndarray, tolerance: float = 0.02) -> np.ndarray:
    rounded = np.rint(values)
    if np.any(np.abs(values - rounded) > tolerance):
        raise ValueError("atoms: sites are not on a perfect lattice of one orientation; build the crystal with "
                         "sampling.builders.bulk_crystal, single_crystal or slab (or ordered_crystal) before "
                         "occupying it")
    return rounded.astype(int)


def _check_whole_cells(lengths: np.ndarray, periods: np.ndarray, prototype: str) -> None:
    ratio = lengths / periods
    if np.any(np.abs(ratio - np.rint(ratio)) > 1e-6) or np.any(np.rint(ratio) < 1):
        raise ValueError(f"atoms: the cell {np.round(lengths, 4).tolist()} A is not a whole number of {prototype} "
                         f"conventional cells {np.round(periods, 4).tolist()} A; use ordered_crystal or a size "
                         f"that is a multiple of {_CELLS_PER_CONVENTIONAL[prototype]}")


def _cubic_sublattice(twice: np.ndarray, prototype: str) -> np.ndarray:
    """Sublattice of cubic sites given as 2 x (cube-frame coordinates relative to a corner) / a (integers)."""
    parity = twice % 2
    odd = parity.sum(axis=1)
    if prototype == "B2":  # corner A, body centre B
        return (odd == 3).astype(int)
    if prototype == "L1_2":  # face centres A, corners B
        return (odd == 0).astype(int)
    return parity[:, 2].astype(int)  # L1_0: (001) planes at z = 0 A, at z = a/2 B


def _polycrystal_sublattice(atoms: Atoms, prototype: str, a: float) -> np.ndarray:
    """Sublattices of a polycrystal (sampling.builders.polycrystal): in each grain the cube-frame position relative
    to the grain's seed, a lattice site (r_box = R r_crystal + seed, info grain_rotations / grain_seeds; the
    minimum image, as the seed owns its grain's atoms). Each grain is ordered with the first species on its seed."""
    from ase.geometry import find_mic

    rotations = np.asarray(atoms.info["grain_rotations"], dtype=float).reshape(-1, 3, 3)
    seeds = np.asarray(atoms.info["grain_seeds"], dtype=float)
    grains = np.asarray(atoms.arrays["grain_id"], dtype=int)
    sublattice = np.empty(len(atoms), dtype=int)
    for grain in np.unique(grains):
        members = np.flatnonzero(grains == grain)
        vectors, _ = find_mic(atoms.positions[members] - seeds[grain], atoms.cell, atoms.pbc)
        sublattice[members] = _cubic_sublattice(_near_integers(2.0 * (vectors @ rotations[grain]) / a), prototype)
    return sublattice


def _sublattice(atoms: Atoms, prototype: str, lattice: str) -> np.ndarray:
    """Index into ``elements`` of each site of the prototype (0 = first species)."""
    relative = atoms.positions - atoms.positions[0]
    if len(atoms) < 2:
        raise ValueError(f"atoms: a {prototype} crystal needs at least 2 sites, got {len(atoms)}")
    nearest = float(np.min(atoms.get_distances(0, list(range(1, len(atoms))), mic=True)))
    lengths = atoms.cell.lengths()
    if lattice in ("bcc", "fcc"):
        a = nearest / (math.sqrt(3.0) / 2.0 if lattice == "bcc" else math.sqrt(0.5))
        if "grain_rotations" in atoms.info and "grain_id" in atoms.arrays:
            # atom 0 may sit at a boundary: a from the median nearest-neighbour distance
            a = estimate_lattice_constant(atoms.positions, atoms.cell[:], atoms.pbc, lattice)
            return _polycrystal_sublattice(atoms, prototype, a)
        # cube axes of the crystal: info["orientation"] (Miller directions along x, y, z, as single_crystal
        # and slab record them) or the cell axes
        rows = np.asarray(atoms.info.get("orientation", np.eye(3)), dtype=float)
        unit = rows / np.linalg.norm(rows, axis=1)[:, None]
        frame = relative @ unit
        if "grain_id" in atoms.arrays:
            # sampling.builders.bicrystal: grain 0 the oriented block from a site at the origin, grain 1 its
            # image by 180 degrees about z through that site; both back in grain 0's frame
            upper = np.asarray(atoms.arrays["grain_id"]) == 1
            frame = atoms.positions @ unit
            frame[upper] = (atoms.positions[upper] * np.array([-1.0, -1.0, 1.0])) @ unit
        sublattice = _cubic_sublattice(_near_integers(2.0 * frame / a), prototype)
        periodic = [axis for axis in np.flatnonzero(atoms.pbc) if axis < 2 or "grain_id" not in atoms.arrays]
        for axis in periodic:  # each periodic image must continue the ordering (a bicrystal's z: boundaries)
            shifted = _near_integers(2.0 * (frame + atoms.cell[axis] @ unit) / a)
            if np.any(_cubic_sublattice(shifted, prototype) != sublattice):
                raise ValueError(f"atoms: the cell {np.round(lengths, 4).tolist()} A is not a whole number of "
                                 f"{prototype} periods along {'xyz'[axis]}, so the ordering would break at the "
                                 f"periodic boundary; make the box longer than {lengths[axis]:.2f} A along "
                                 f"{'xyz'[axis]} (the next number of its periods is even)")
        return sublattice
    # hcp / D0_19: in-plane coordinates (u, v) on a1 = a x, a2 = a (-1/2, sqrt3/2); layers c/2 apart;
    # a is the nearest distance within atom 0's basal plane (the out-of-plane neighbours are at a only for ideal c/a)
    vectors = atoms.get_distances(0, list(range(1, len(atoms))), mic=True, vector=True)
    same_layer = np.abs(vectors[:, 2]) < 1e-3 * nearest
    if not same_layer.any():
        raise ValueError("atoms: no other site in the basal plane of atom 0; use a larger hcp crystal")
    a = float(np.min(np.linalg.norm(vectors[same_layer], axis=1)))
    layer_heights = np.unique(np.round(np.mod(relative[:, 2], lengths[2]), 6))
    half_c = float(np.min(np.diff(np.append(layer_heights, lengths[2])))) if len(layer_heights) > 1 else lengths[2]
    _check_whole_cells(lengths, np.array([2.0 * a, 2.0 * math.sqrt(3.0) * a, 2.0 * half_c]), prototype)
    layer = _near_integers(relative[:, 2] / half_c) % 2
    v = relative[:, 1] / (a * math.sqrt(3.0) / 2.0)
    u = relative[:, 0] / a + 0.5 * v
    thirds_u, thirds_v = _near_integers(3.0 * u), _near_integers(3.0 * v)
    # odd layers sit at s + Z^2 with s = (1/3, 2/3) or (2/3, 1/3) mod 1; their B site is s + (1, 0) mod 2,
    # the one site of the layer not above/below a B of the even layers (every B keeps 12 A neighbours)
    shift_u, shift_v = thirds_u % 3, thirds_v % 3
    n, m = (thirds_u - shift_u) // 3, (thirds_v - shift_v) // 3
    even_b = (n % 2 == 0) & (m % 2 == 0)
    odd_b = (n % 2 == 1) & (m % 2 == 0)
    return np.where(layer == 0, even_b, odd_b).astype(int)


def occupy(
    atoms: Atoms,
    elements: Sequence[str],
    composition: Mapping[str, float] | Sequence[float] | None = None,
    prototype: str | None = None,
    seed: int = 0,
    lattice: str | None = None,
) -> Atoms:
    """A copy of ``atoms`` with its sites occupied by ``elements``; give ``composition`` or ``prototype``.

    ``composition``: atomic fractions (a mapping element -> fraction, or a list in the order of
    ``elements``) summing to 1 within 1e-6; a random solid solution with exactly
    :func:`whole_atom_counts` atoms of each element, the sites drawn from ``seed`` (same seed, same
    occupation). ``prototype``: one of :data:`schemas.alloys.PROTOTYPES`, ``elements`` in the order
    of its sublattices (B2 ["Ni", "Al"]: Ni on cube corners); ``atoms`` must be a perfect
    axis-aligned crystal of the prototype's parent lattice (as from ``bulk_crystal``), a whole
    number of conventional cells. ``lattice``, when given, must be the prototype's parent lattice.
    Positions, cell and per-atom arrays are kept; ``info["occupation"]`` is "random" or the prototype.
    """
    names = _check_elements(elements)
    if (composition is None) == (prototype is None):
        raise ValueError("composition and prototype: give exactly one of them (random solid solution or ordered)")
    if len(atoms) == 0:
        raise ValueError("atoms: no sites to occupy")
    result = atoms.copy()
    numbers = np.array([atomic_numbers[e] for e in names])
    if composition is not None:
        fractions = _fractions(composition, names)
        counts = whole_atom_counts(fractions, len(atoms))
        species = np.repeat(np.arange(len(names)), counts)
        order = np.random.default_rng(seed).permutation(len(atoms))
        occupation = np.empty(len(atoms), dtype=int)
        occupation[order] = species
        result.numbers = numbers[occupation]
        result.info["occupation"] = "random"
        return result
    assert prototype is not None
    parent, proportions = _check_prototype(prototype, names, lattice)
    found = lattice or _detected_lattice(atoms)  # a slab's surfaces hide a thin crystal's lattice from CNA
    if found != parent:
        raise ValueError(f"prototype: {prototype} is an ordering of the {parent} lattice, but atoms is "
                         f"{'a ' + found + ' crystal' if found else 'not a perfect bcc, fcc or hcp crystal'}")
    occupation = _sublattice(atoms, prototype, parent)
    expected = whole_atom_counts(proportions, len(atoms))
    if parent == "hcp" and np.bincount(occupation, minlength=len(names)).tolist() != expected:
        raise ValueError(f"atoms: the sites do not form whole {prototype} cells (got "
                         f"{np.bincount(occupation, minlength=len(names)).tolist()} sites per species)")
    result.numbers = numbers[occupation]
    result.info["occupation"] = prototype
    return result


def conventional_size(prototype: str, size: Sequence[int]) -> tuple[int, int, int]:
    """``bulk_crystal`` repetitions of the parent lattice's cell for ``size`` conventional cells of ``prototype``."""
    if prototype not in PROTOTYPES:
        raise ValueError(f"prototype: must be one of {', '.join(PROTOTYPES)}, got {prototype!r}")
    if len(size) != 3 or any(int(n) != n or n < 1 for n in size):
        raise ValueError(f"size: expected three positive integers (conventional cells along x, y, z), got {size!r}")
    factors = _CELLS_PER_CONVENTIONAL[prototype]
    return (int(size[0]) * factors[0], int(size[1]) * factors[1], int(size[2]) * factors[2])


def ordered_crystal(
    prototype: str,
    elements: Sequence[str],
    a: float,
    size: Sequence[int],
    c_over_a: float | None = None,
) -> Atoms:
    """The ordered ``prototype`` with lattice constant ``a`` (A), ``size`` conventional cells along x, y, z.

    Cubic prototypes: ``size`` cubic cells (B2 (3, 3, 3): 54 atoms). D0_19: ``size`` cells of
    2a x 2a sqrt(3) x c (16 atoms each); ``c_over_a`` (hcp only) defaults to the ideal sqrt(8/3).
    """
    names = _check_elements(elements)
    if prototype not in PROTOTYPES:
        raise ValueError(f"prototype: must be one of {', '.join(PROTOTYPES)}, got {prototype!r}")
    parent, _ = _check_prototype(prototype, names, None)
    crystal = bulk_crystal(names[0], parent, a, conventional_size(prototype, size), c_over_a=c_over_a)
    return occupy(crystal, names, prototype=prototype)
