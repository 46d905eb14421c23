"""Classification of atoms by common neighbour analysis (LAMMPS ``compute cna/atom``)."""

from __future__ import annotations

import math

import numpy as np

__all__ = ["STRUCTURE_TYPES", "cna_cutoff", "defect_mask", "count_structure_types"]

# Values of LAMMPS compute cna/atom: 0 when the atom has neither 12 nor 14 neighbours within the
# cutoff (e.g. next to a vacancy), 5 when the count fits but the bond signatures match no pattern.
STRUCTURE_TYPES: dict[int, str] = {0: "unknown", 1: "fcc", 2: "hcp", 3: "bcc", 4: "ico", 5: "other"}

_PERFECT_TYPE = {"fcc": 1, "hcp": 2, "bcc": 3}


def cna_cutoff(lattice: str, a: float) -> float:
    """Cutoff for conventional CNA: midway between the shells that define the lattice and the next one.

    fcc: between 1st (a/sqrt 2) and 2nd (a) neighbours, 0.854 a.
    bcc: between 2nd (a) and 3rd (a sqrt 2) neighbours, 1.207 a (8 + 6 neighbours).
    """
    if not a > 0:
        raise ValueError(f"lattice constant a must be positive (A), got {a!r}")
    if lattice == "fcc":
        return 0.5 * (1.0 + math.sqrt(0.5)) * a
    if lattice == "bcc":
        return 0.5 * (1.0 + math.sqrt(2.0)) * a
    raise ValueError(f"lattice must be 'bcc' or 'fcc' for a CNA cutoff, got {lattice!r}")


def defect_mask(structure_type: np.ndarray, lattice: str) -> np.ndarray:
    """True for atoms whose CNA type is not the perfect ``lattice`` (bcc, fcc or hcp)."""
    if lattice not in _PERFECT_TYPE:
        raise ValueError(f"lattice must be one of {', '.join(_PERFECT_TYPE)}, got {lattice!r}")
    return np.asarray(structure_type).astype(int) != _PERFECT_TYPE[lattice]


def count_structure_types(structure_type: np.ndarray) -> dict[str, int]:
    """Number of atoms of each CNA type, every name of STRUCTURE_TYPES present (zeros included)."""
    values = np.asarray(structure_type).astype(int)
    unknown = set(np.unique(values).tolist()) - set(STRUCTURE_TYPES)
    if unknown:
        raise ValueError(f"structure types {sorted(unknown)} are not CNA values {sorted(STRUCTURE_TYPES)}")
    return {name: int(np.count_nonzero(values == value)) for value, name in STRUCTURE_TYPES.items()}
