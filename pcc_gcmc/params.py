"""Parameters of a PCC-GCMC reconstruction: defined once, in :mod:`schemas.reconstruction` (re-exported here).

Defaults: the authors' published LAMMPS protocol; ``GCMCParams.fast()``: the measured fast variant.
"""

from __future__ import annotations

from schemas.reconstruction import AUTHORS_OFFSETS, BOX_RELAX, CORE_WALL, WIDE_OFFSETS, GCMCParams

__all__ = ["AUTHORS_OFFSETS", "BOX_RELAX", "CORE_WALL", "WIDE_OFFSETS", "GCMCParams"]
