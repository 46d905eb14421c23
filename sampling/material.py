"""What a campaign's structures are made of: its species on a lattice, with the potential's own constants.

A :class:`Material` is one element on bcc / fcc / hcp, or an alloy: ``species`` with a random-solid-solution
``composition`` or an ordered ``prototype`` (schemas.alloys.PROTOTYPES). :func:`relax_material` finds its
lattice constant (and c/a for hcp) with the potential; :meth:`Material.occupy` puts the species on the sites
of a structure built for ``Material.element`` (the builders place sites; the material says who sits there).

One element on bcc or fcc is relaxed exactly as before alloys (sampling.properties.relax_lattice_constant),
so single-element campaigns keep their numbers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from ase import Atoms

from md.potentials import Potential, check_element
from schemas.alloys import IDEAL_C_OVER_A, PROTOTYPES

from .alloys import conventional_size, occupy
from .builders import bulk_crystal, relax_hcp
from .properties import guess_lattice_constant, relax_box, relax_lattice_constant

__all__ = ["ORDERED_KINDS", "Material", "relax_material"]

# structure kinds whose sites occupy() can assign to a prototype's sublattices, per parent lattice: crystals whose
# grains are rotations of the lattice about a site. Not dislocations: in an ordered alloy they are superdislocations
# (pairs bounding an antiphase boundary), not the cubic metal's cylinder with its species painted on.
ORDERED_KINDS = {"bcc": ("bulk", "single_crystal", "slab", "polycrystal", "bicrystal"),
                 "fcc": ("bulk", "single_crystal", "slab", "polycrystal", "bicrystal"), "hcp": ("bulk",)}
# the crystal an alloy is relaxed in: conventional cells per axis (random solid solutions: enough sites that
# the composition is met within 1/N and the lattice constant averages over local environments)
_ORDERED_CELLS = 3
_RANDOM_CELLS = {"bcc": 5, "fcc": 4, "hcp": (5, 3, 3)}
_RELAX_SEED = 1  # the random occupation the lattice constant is relaxed in


@dataclass(frozen=True)
class Material:
    """``species`` on ``lattice`` with constant ``a`` (A; hcp: the basal constant, ``c_over_a`` its c/a);
    an alloy has a ``composition`` (atomic fractions in the order of ``species``) or a ``prototype``."""

    species: tuple[str, ...]
    lattice: str
    a: float
    c_over_a: float | None = None
    composition: tuple[float, ...] | None = None
    prototype: str | None = None

    @property
    def element(self) -> str:
        """The element the builders place on every site before :meth:`occupy` (the first species)."""
        return self.species[0]

    @property
    def is_alloy(self) -> bool:
        return len(self.species) > 1

    def occupy(self, atoms: Atoms, seed: int, kind: str = "bulk") -> Atoms:
        """``atoms`` (sites of ``element``, as built) with the alloy's species on them; a copy, or ``atoms``
        itself for one element. Random solid solutions: exact whole-atom counts, sites drawn from ``seed``.
        Prototypes: every site on its sublattice, for structure ``kind`` in ORDERED_KINDS."""
        if not self.is_alloy:
            return atoms
        if self.prototype is not None:
            kinds = ORDERED_KINDS[self.lattice]
            if kind not in kinds:
                raise ValueError(f"kind: an ordered {self.prototype} alloy is built only as {', '.join(kinds)} "
                                 f"so far, not {kind}; use one of those, or a composition (random solid "
                                 "solution) for this structure")
            return occupy(atoms, self.species, prototype=self.prototype, lattice=self.lattice)
        return occupy(atoms, self.species, composition=self.composition, seed=seed)

    def crystal(self, size: Sequence[int], seed: int = _RELAX_SEED) -> Atoms:
        """The perfect crystal of ``size`` cells of bulk_crystal (orthohexagonal for hcp), occupied."""
        atoms = bulk_crystal(self.element, self.lattice, self.a, tuple(int(n) for n in size),  # type: ignore[arg-type]
                             c_over_a=self.c_over_a if self.lattice == "hcp" else None)
        return self.occupy(atoms, seed)


def relax_material(
    potential: Potential,
    species: Sequence[str],
    lattice: str,
    *,
    composition: Sequence[float] | None = None,
    prototype: str | None = None,
    a_guess: float | None = None,
    c_over_a_guess: float | None = None,
    threads: int = 1,
) -> tuple[Material, float]:
    """The material with its zero-pressure constants from ``potential``, and its energy per atom (eV).

    One element: bcc / fcc by relax_lattice_constant, hcp by relax_hcp (a and c/a). An alloy: its crystal
    (a prototype: 3 x 3 x 3 conventional cells; a random solid solution: 250 (bcc), 256 (fcc) or 180 (hcp)
    sites, occupation seed 1) minimised with the box relaxed to zero stress, isotropically for cubic
    lattices (cubic shape kept: a = cube root of the volume per cell) and along x, y, z independently for
    hcp (a from the basal edges, c/a from the height).
    """
    names = tuple(species)
    for element in names:
        check_element(potential, element)
    if lattice not in ("bcc", "fcc", "hcp"):
        raise ValueError(f"lattice: must be bcc, fcc or hcp, got {lattice!r}")
    fractions = tuple(float(f) for f in composition) if composition is not None else None
    a0 = a_guess if a_guess is not None else _guess(names, fractions, prototype, lattice)
    ratio0 = (c_over_a_guess or IDEAL_C_OVER_A) if lattice == "hcp" else None
    if len(names) == 1:
        if lattice == "hcp":
            a, ratio, energy = relax_hcp(potential, names[0], a0, ratio0 or IDEAL_C_OVER_A, threads=threads)
            return Material(names, lattice, a, ratio), energy
        a, energy = relax_lattice_constant(potential, names[0], lattice, a_guess=a_guess, threads=threads)
        return Material(names, lattice, a), energy
    start = Material(names, lattice, float(a0), ratio0, fractions, prototype)
    if prototype is not None:
        size = conventional_size(prototype, (_ORDERED_CELLS,) * 3)
    else:
        cells = _RANDOM_CELLS[lattice]
        size = cells if isinstance(cells, tuple) else (cells,) * 3
    atoms = start.crystal(size)
    box = "aniso 0.0 couple none" if lattice == "hcp" else "iso 0.0"
    # an alloy's disordered positions converge slowly to 1e-10 eV/A; 1e-6 eV/A and 1e-7 in the lengths give a to
    # 1e-6 A at a fraction of the force calls (a SNAP's hundreds instead of thousands)
    lengths, energy = relax_box(atoms, potential, box, threads=threads, force_tolerance=1e-6, length_tolerance=1e-7)
    if lattice == "hcp":
        a = 0.5 * (lengths[0] / size[0] + lengths[1] / (size[1] * math.sqrt(3.0)))
        return Material(names, lattice, float(a), float(lengths[2] / size[2] / a), fractions, prototype), energy
    a = float(np.cbrt(np.prod(lengths) / np.prod(size)))
    return Material(names, lattice, a, None, fractions, prototype), energy


def _guess(species: tuple[str, ...], fractions: tuple[float, ...] | None, prototype: str | None,
           lattice: str) -> float:
    """Vegard's law over the elements' ASE reference constants at equal volume per atom (hcp: a of the ideal
    c/a at that volume); the box relaxation does the rest."""
    weights = PROTOTYPES[prototype][1] if prototype is not None else fractions or (1.0,) * len(species)
    cubic = "fcc" if lattice == "hcp" else lattice
    a_cubic = sum(w * guess_lattice_constant(e, cubic) for e, w in zip(species, weights)) / sum(weights)
    if lattice != "hcp":
        return a_cubic
    volume = a_cubic**3 / 4.0  # per atom, fcc
    return float((volume / (math.sqrt(3.0) / 4.0 * IDEAL_C_OVER_A)) ** (1.0 / 3.0))
