"""Equilibrium properties of a potential: lattice constant, cohesive energy, elastic constants, point defects."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import cast

import numpy as np
from ase import Atoms
from ase.data import atomic_numbers, reference_states

from md.engine import LammpsSystem
from md.potentials import Potential, check_element

from .builders import LATTICES, bulk_crystal

__all__ = [
    "EV_PER_A3_TO_GPA",
    "characterize",
    "elastic_constants",
    "elastic_summary",
    "elastic_tensor",
    "guess_lattice_constant",
    "interstitial_formation_energy",
    "relax_box",
    "relax_lattice_constant",
    "vacancy_formation_energy",
]

_ATOMS_PER_CUBIC_CELL = {"bcc": 2, "fcc": 4}

# 1 eV/A^3 = 1.602176634e-19 J / 1e-30 m^3 = 160.2176634 GPa
EV_PER_A3_TO_GPA = 160.2176634

# Positions are relaxed to this force (eV/A); the defect energies converge to < 1e-4 eV.
_FORCE_TOLERANCE = 1e-6


def guess_lattice_constant(element: str, lattice: str) -> float:
    """Cubic lattice constant from ASE's reference states, rescaled at equal volume per atom if needed."""
    state = reference_states[atomic_numbers[element]] or {}
    symmetry, a = state.get("symmetry"), cast(float | None, state.get("a"))  # ASE's table: a in A, or absent
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
    _check(potential, element, lattice)
    a = guess_lattice_constant(element, lattice) if a_guess is None else float(a_guess)
    atoms = bulk_crystal(element, lattice, a, (size, size, size))
    with LammpsSystem(atoms, potential, threads=threads) as system:
        system.commands(["min_style cg", "min_modify line quadratic",
                         "fix zero_pressure all box/relax iso 0.0 vmax 0.001"])
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


def relax_box(atoms: Atoms, potential: Potential, box: str, *, threads: int = 1, force_tolerance: float = 1e-10,
              length_tolerance: float = 1e-9) -> tuple[np.ndarray, float]:
    """Box edge lengths (A) and energy per atom (eV) after minimising positions and box (fix box/relax
    ``box``, forces to ``force_tolerance`` eV/A) until the box changes by less than ``length_tolerance`` (relative)
    from one minimisation to the next (box/relax converges in vmax-limited stages)."""
    with LammpsSystem(atoms, potential, threads=threads) as system:
        system.commands(["min_style cg", "min_modify line quadratic",
                         f"fix zero_stress all box/relax {box} vmax 0.001"])
        previous: np.ndarray | None = None
        for _ in range(20):
            system.command(f"minimize 0.0 {force_tolerance!r} 2000 20000")
            lengths = np.diag(system.cell()).copy()
            if previous is not None and np.all(np.abs(lengths - previous) < length_tolerance * lengths):
                break
            previous = lengths
        system.command("unfix zero_stress")
        return np.diag(system.cell()).copy(), system.potential_energy() / system.natoms


def _check(potential: Potential, element: str, lattice: str) -> None:
    check_element(potential, element)
    if lattice not in LATTICES:
        raise ValueError(f"lattice must be one of {', '.join(LATTICES)}, got {lattice!r}")


def _relaxed_state(system: LammpsSystem) -> tuple[float, np.ndarray]:
    """Minimise positions at fixed cell; total energy (eV) and stress (6 Voigt, eV/A^3, ASE sign)."""
    system.commands(["min_style cg", f"minimize 0.0 {_FORCE_TOLERANCE!r} 10000 100000"])
    return system.potential_energy(), system.stress()


def _check_strain(strain: float) -> None:
    if not 0 < strain < 0.05:
        raise ValueError(f"strain must be in (0, 0.05), a small fraction such as 1e-3, got {strain!r}")


def _stiffness_matrix(reference: Atoms, potential: Potential, strain: float, threads: int) -> np.ndarray:
    """6 x 6 Voigt stiffness (GPa) of ``reference`` by central differences of the stress.

    Each Voigt strain j is applied as +/- ``strain`` to the cell (atoms scaled with it;
    Voigt 4, 5, 6 = yz, xz, xy as engineering shear strains gamma = 2 epsilon_ij), the
    positions are relaxed at that fixed cell and C_ij = d sigma_i / d epsilon_j.
    """
    matrix = np.zeros((6, 6))
    for j in range(6):
        stresses = []
        for sign in (1.0, -1.0):
            epsilon = np.zeros((3, 3))
            if j < 3:
                epsilon[j, j] = sign * strain
            else:
                # Voigt 4, 5, 6 = yz, xz, xy; engineering shear strain gamma = 2 epsilon_ij
                p, q = ((1, 2), (0, 2), (0, 1))[j - 3]
                epsilon[p, q] = epsilon[q, p] = 0.5 * sign * strain
            strained = reference.copy()
            strained.set_cell(reference.cell[:] @ (np.eye(3) + epsilon), scale_atoms=True)
            with LammpsSystem(strained, potential, threads=threads) as system:
                stresses.append(_relaxed_state(system)[1])
        matrix[:, j] = (stresses[0] - stresses[1]) / (2.0 * strain)
    matrix *= EV_PER_A3_TO_GPA
    return matrix


def _cubic_averages(matrix: np.ndarray) -> tuple[float, float, float]:
    """C11, C12, C44: the means of the cubic-symmetry-equivalent entries of a 6 x 6 Voigt matrix."""
    c11 = float(np.mean(np.diag(matrix)[:3]))
    c12 = float(np.mean([matrix[0, 1], matrix[0, 2], matrix[1, 2], matrix[1, 0], matrix[2, 0], matrix[2, 1]]))
    c44 = float(np.mean(np.diag(matrix)[3:]))
    return c11, c12, c44


def elastic_tensor(
    atoms: Atoms,
    potential: Potential,
    *,
    strain: float = 1e-3,
    threads: int = 1,
    relax_reference: bool = True,
) -> np.ndarray:
    """Full 6 x 6 Voigt stiffness matrix (GPa, order xx yy zz yz xz xy) of any periodic configuration at 0 K.

    Works for defective cells (vacancies, voids, interstitials), polycrystals and alloys of any species
    ``potential`` describes. With ``relax_reference`` the positions of the unstrained cell are first
    relaxed at fixed cell, so the reference is at a minimum; then each Voigt strain is applied as
    +/- ``strain`` (engineering shear strains for 4-6), positions relaxed at each strained cell, and
    C_ij = d sigma_i / d epsilon_j by central differences (the reference's residual stress cancels; the
    cell is not relaxed, so a cell under stress gives the stress-strain coefficients at that state).
    The matrix is returned as computed, not symmetrised: its asymmetry measures the numerical error.
    """
    if not np.all(atoms.pbc):
        raise ValueError(
            f"atoms.pbc must be periodic along all three axes for elastic constants, got {[bool(p) for p in atoms.pbc]}"
        )
    _check_strain(strain)
    for element in sorted(set(atoms.get_chemical_symbols())):
        check_element(potential, element)
    reference = Atoms(numbers=atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=True)
    if relax_reference:
        with LammpsSystem(reference, potential, threads=threads) as system:
            _relaxed_state(system)
            reference.positions = system.positions()
    return _stiffness_matrix(reference, potential, strain, threads)


def elastic_summary(matrix: np.ndarray) -> dict[str, float]:
    """Scalar moduli (GPa) of a 6 x 6 Voigt stiffness ``matrix``: C11, C12, C44 (cubic averages, as
    :func:`elastic_constants`), the Voigt bulk modulus B = (C11 + C22 + C33 + 2 (C12 + C13 + C23)) / 9 and the
    Voigt shear modulus G = (C11 + C22 + C33 - (C12 + C13 + C23) + 3 (C44 + C55 + C66)) / 15."""
    c = np.asarray(matrix, dtype=float)
    if c.shape != (6, 6):
        raise ValueError(f"matrix must be 6 x 6 (Voigt), got shape {c.shape}")
    c11, c12, c44 = _cubic_averages(c)
    normal = float(c[0, 0] + c[1, 1] + c[2, 2])
    off = float(c[0, 1] + c[0, 2] + c[1, 2])
    shear = float(c[3, 3] + c[4, 4] + c[5, 5])
    return {
        "C11": c11,
        "C12": c12,
        "C44": c44,
        "bulk_modulus": (normal + 2.0 * off) / 9.0,
        "shear_modulus": (normal - off + 3.0 * shear) / 15.0,
    }


def elastic_constants(
    potential: Potential,
    element: str,
    lattice: str,
    a: float | None = None,
    *,
    strain: float = 1e-3,
    size: int = 3,
    threads: int = 1,
    occupy: Callable[[Atoms], Atoms] | None = None,
) -> dict[str, float]:
    """Cubic elastic constants (GPa) at 0 K from the stress of strained, position-relaxed cells.

    Each of the six Voigt strains is applied as +/- ``strain`` to the
    conventional cell at lattice constant ``a`` (default: the relaxed one, so
    the reference stress is zero); positions are relaxed at fixed cell (no
    effect for monatomic bcc/fcc, where every atom is a centre of inversion,
    but cheap) and C_ij = d sigma_i / d epsilon_j by central differences
    (epsilon_4..6 engineering shear strains). The cubic constants average the
    symmetry-equivalent entries of the 6 x 6 matrix. Returns C11, C12, C44,
    the bulk modulus B = (C11 + 2 C12) / 3, the shear moduli C' = (C11 - C12) / 2
    and C44, the Zener ratio A = C44 / C' and the lattice constant used (A). ``occupy`` puts an alloy's species
    on the reference crystal's sites (sampling.material.Material.occupy): the constants are then the alloy's
    cubic averages (a random solid solution is cubic only on average).
    """
    _check(potential, element, lattice)
    _check_strain(strain)
    if a is None:
        a, _ = relax_lattice_constant(potential, element, lattice, threads=threads)
    reference = bulk_crystal(element, lattice, float(a), (size, size, size))
    if occupy is not None:
        reference = occupy(reference)
    matrix = _stiffness_matrix(reference, potential, strain, threads)
    c11, c12, c44 = _cubic_averages(matrix)
    shear_prime = 0.5 * (c11 - c12)
    return {
        "C11": c11,
        "C12": c12,
        "C44": c44,
        "bulk_modulus": (c11 + 2.0 * c12) / 3.0,
        "C_prime": shear_prime,
        "zener_ratio": c44 / shear_prime if shear_prime else math.inf,
        "a": float(a),
    }


def _perfect_energy(potential: Potential, atoms: Atoms, threads: int) -> float:
    with LammpsSystem(atoms, potential, threads=threads) as system:
        return _relaxed_state(system)[0]


def vacancy_formation_energy(
    potential: Potential,
    element: str,
    lattice: str,
    a: float | None = None,
    size: int = 5,
    *,
    threads: int = 1,
) -> float:
    """Relaxed vacancy formation energy (eV) at constant volume: E(N-1) - (N-1)/N E(N).

    ``size``^3 conventional cells at lattice constant ``a`` (default: the
    relaxed one); positions relaxed, cell fixed (the usual constant-volume
    value; the difference to zero pressure is O(1/N)).
    """
    _check(potential, element, lattice)
    if int(size) != size or size < 2:
        raise ValueError(f"size must be an integer >= 2 (cubic cells per edge), got {size!r}")
    if a is None:
        a, _ = relax_lattice_constant(potential, element, lattice, threads=threads)
    perfect = bulk_crystal(element, lattice, float(a), (int(size),) * 3)
    n = len(perfect)
    energy_perfect = _perfect_energy(potential, perfect, threads)
    defective = perfect.copy()
    del defective[n // 2]
    with LammpsSystem(defective, potential, threads=threads) as system:
        energy_defect, _ = _relaxed_state(system)
    return float(energy_defect - (n - 1) / n * energy_perfect)


def dumbbell_111(atoms: Atoms, index: int, a: float, separation: float | None = None) -> Atoms:
    """A copy of bcc ``atoms`` with site ``index`` replaced by a <111> dumbbell (two atoms on the [111] axis).

    ``separation`` (A) defaults to 0.6 x the nearest-neighbour distance a sqrt3/2.
    """
    if separation is None:
        separation = 0.6 * a * math.sqrt(3.0) / 2.0
    axis = np.ones(3) / math.sqrt(3.0)
    centre = atoms.positions[index].copy()
    result = atoms.copy()
    result.positions[index] = centre - 0.5 * separation * axis
    result += Atoms(atoms[index].symbol, positions=[centre + 0.5 * separation * axis])
    return result


def interstitial_formation_energy(
    potential: Potential,
    element: str,
    lattice: str = "bcc",
    a: float | None = None,
    size: int = 5,
    *,
    threads: int = 1,
) -> float:
    """Relaxed <111> dumbbell self-interstitial formation energy (eV): E(N+1) - (N+1)/N E(N), bcc only.

    Constant volume, positions relaxed from a dumbbell of two atoms sharing a
    lattice site along [111] (in bcc W this is the stable interstitial; the
    minimiser keeps the symmetry, so the result is the <111> configuration
    whether it is the dumbbell or the crowdion the potential prefers).
    """
    _check(potential, element, lattice)
    if lattice != "bcc":
        raise ValueError(f"the <111> dumbbell is a bcc interstitial; lattice must be 'bcc', got {lattice!r}")
    if int(size) != size or size < 2:
        raise ValueError(f"size must be an integer >= 2 (cubic cells per edge), got {size!r}")
    if a is None:
        a, _ = relax_lattice_constant(potential, element, lattice, threads=threads)
    perfect = bulk_crystal(element, lattice, float(a), (int(size),) * 3)
    n = len(perfect)
    energy_perfect = _perfect_energy(potential, perfect, threads)
    with LammpsSystem(dumbbell_111(perfect, n // 2, float(a)), potential, threads=threads) as system:
        energy_defect, _ = _relaxed_state(system)
    return float(energy_defect - (n + 1) / n * energy_perfect)


def characterize(
    potential: Potential,
    element: str,
    lattice: str,
    *,
    interstitial: bool = False,
    threads: int = 1,
) -> dict[str, object]:
    """The basic properties of ``potential`` for ``element`` in ``lattice``, one JSON-ready dict.

    Keys: potential, element, lattice, a (A), E_coh (eV/atom, negative), C11,
    C12, C44, bulk_modulus (GPa), E_vac (eV) and, with ``interstitial=True``
    (bcc only), E_sia_111 (eV).
    """
    _check(potential, element, lattice)
    a, cohesive = relax_lattice_constant(potential, element, lattice, threads=threads)
    elastic = elastic_constants(potential, element, lattice, a, threads=threads)
    report: dict[str, object] = {
        "potential": potential.name,
        "element": element,
        "lattice": lattice,
        "a": a,
        "E_coh": cohesive,
        "C11": elastic["C11"],
        "C12": elastic["C12"],
        "C44": elastic["C44"],
        "bulk_modulus": elastic["bulk_modulus"],
        "E_vac": vacancy_formation_energy(potential, element, lattice, a, threads=threads),
    }
    if interstitial:
        report["E_sia_111"] = interstitial_formation_energy(potential, element, lattice, a, threads=threads)
    return report
