"""Equilibrium properties of a potential: lattice constant and cohesive energy."""

from __future__ import annotations

import numpy as np
from ase.data import atomic_numbers, reference_states

from .builders import LATTICES, bulk_crystal
from .lammps_engine import LammpsSystem
from .potentials import Potential, check_element

__all__ = ["relax_lattice_constant", "guess_lattice_constant"]

_ATOMS_PER_CUBIC_CELL = {"bcc": 2, "fcc": 4}


def guess_lattice_constant(element: str, lattice: str) -> float:
    """Cubic lattice constant from ASE's reference states, rescaled at equal volume per atom if needed."""
    state = reference_states[atomic_numbers[element]] or {}
    symmetry, a = state.get("symmetry"), state.get("a")
    if symmetry == lattice and a:
        return float(a)
    if symmetry in _ATOMS_PER_CUBIC_CELL and a:
        volume = a**3 / _ATOMS_PER_CUBIC_CELL[symmetry]
    else:
        volume = 16.0  # A^3 per atom, typical of transition metals; minimisation does the rest
    return float((volume * _ATOMS_PER_CUBIC_CELL[lattice]) ** (1.0 / 3.0))


def relax_lattice_constant(
    potential: Potential,
    element: str,
    lattice: str,
    a_guess: float | None = None,
    *,
    size: int = 3,
    threads: int = 1,
) -> tuple[float, float]:
    """Equilibrium cubic lattice constant (A) and cohesive energy per atom (eV, negative).

    Minimises a periodic size^3 conventional cell at zero pressure with
    isotropic box relaxation (the cubic symmetry is kept exactly).
    """
    check_element(potential, element)
    if lattice not in LATTICES:
        raise ValueError(f"lattice must be one of {', '.join(LATTICES)}, got {lattice!r}")
    a = guess_lattice_constant(element, lattice) if a_guess is None else float(a_guess)
    atoms = bulk_crystal(element, lattice, a, (size, size, size))
    with LammpsSystem(atoms, potential, threads=threads) as system:
        system.commands(["min_style cg", "min_modify line quadratic", "fix zero_pressure all box/relax iso 0.0 vmax 0.001"])
        # box/relax converges in stages (vmax limits each step); repeat until the box stops changing
        previous = None
        for _ in range(10):
            system.command("minimize 0.0 1e-10 1000 10000")
            length = float(system.cell()[0, 0])
            if previous is not None and abs(length - previous) < 1e-9 * length:
                break
            previous = length
        system.command("unfix zero_pressure")
        energy = system.potential_energy() / system.natoms
        a_relaxed = float(np.cbrt(abs(np.linalg.det(system.cell())))) / size
    return a_relaxed, float(energy)
