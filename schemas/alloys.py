"""Names shared by the alloy and hcp parts of a campaign: lattices and ordered prototypes, defined once.

A prototype is an ordered occupation of a parent lattice's conventional cell by ``len(fractions)`` species,
given in the order of the spec's ``elements`` (the first element takes the first sublattice):

- ``B2`` (CsCl, e.g. NiAl): bcc, cube corner A, body centre B, A:B = 1:1;
- ``L1_2`` (Cu3Au, e.g. Ni3Al): fcc, face centres A, corners B, 3:1;
- ``L1_0`` (CuAu, e.g. FePt, TiAl): fcc, alternate (001) planes A and B, 1:1 (tetragonal c/a kept 1 here);
- ``D0_19`` (Ni3Sn, e.g. Ti3Al, Mg3Cd): hcp, 2x2 basal supercell of the hcp cell, 3:1.
"""

from __future__ import annotations

from typing import Literal

Lattice = Literal["bcc", "fcc", "hcp"]
LATTICES: tuple[str, ...] = ("bcc", "fcc", "hcp")

Prototype = Literal["B2", "L1_2", "L1_0", "D0_19"]

# prototype -> (parent lattice, atomic fraction of each species, in the order of ``elements``)
PROTOTYPES: dict[str, tuple[str, tuple[float, ...]]] = {
    "B2": ("bcc", (0.5, 0.5)),
    "L1_2": ("fcc", (0.75, 0.25)),
    "L1_0": ("fcc", (0.5, 0.5)),
    "D0_19": ("hcp", (0.75, 0.25)),
}

# ideal hcp c/a; a campaign relaxes it with its potential
IDEAL_C_OVER_A = (8.0 / 3.0) ** 0.5
