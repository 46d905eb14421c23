"""Starting structures for sampling: perfect crystals and crystals with vacancies."""

from __future__ import annotations

import numpy as np
from ase import Atoms
from ase.build import bulk

__all__ = ["LATTICES", "bulk_crystal", "add_vacancies"]

LATTICES = ("bcc", "fcc")


def bulk_crystal(element: str, lattice: str, a: float, size: tuple[int, int, int]) -> Atoms:
    """Conventional cubic cell of ``lattice`` (bcc or fcc) with constant ``a`` (A), repeated ``size`` times."""
    if lattice not in LATTICES:
        raise ValueError(f"lattice must be one of {', '.join(LATTICES)}, got {lattice!r}")
    if not a > 0:
        raise ValueError(f"lattice constant a must be positive (A), got {a!r}")
    if len(size) != 3 or any(int(n) != n or n < 1 for n in size):
        raise ValueError(f"size must be three positive integers (repetitions along x, y, z), got {size!r}")
    atoms = bulk(element, lattice, a=float(a), cubic=True).repeat(tuple(int(n) for n in size))
    atoms.pbc = True
    return atoms


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
