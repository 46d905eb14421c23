"""Reference clusters of bcc W for tests and benchmarks of PCC-GCMC (EAM-Zhou W unless told otherwise).

* :func:`perfect_sphere_cluster`: an 8 A sphere cut from perfect bcc W at the potential's own lattice
  constant (core 5 A: 27 atoms). Its ideal reconstruction is the perfect crystal, E = E_coh
  (-8.760 eV/atom for ``W_zhou.eam.alloy``).
* :func:`screw_line_cluster`: the paper's Fig. 3a cluster, 8 A around a relaxed 1/2<111> screw core,
  periodic along the line.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from ase import Atoms

from md.potentials import Potential, load_potential

__all__ = ["W_ELASTIC", "lattice", "perfect_sphere_cluster", "screw_line_cluster"]

W_ELASTIC = (522.5, 204.2, 160.8)  # GPa, C11 C12 C44 of EAM-Zhou W


def _potential(potential: Potential | str) -> Potential:
    return load_potential(potential) if isinstance(potential, str) else potential


def lattice(potential: Potential | str = "W_zhou.eam.alloy", element: str = "W") -> tuple[float, float]:
    """(lattice constant A, cohesive energy eV/atom) of bcc ``element`` with ``potential``."""
    from sampling.properties import relax_lattice_constant

    return relax_lattice_constant(_potential(potential), element, "bcc")


def perfect_sphere_cluster(
    potential: Potential | str = "W_zhou.eam.alloy", radius: float = 8.0, a: float | None = None
) -> Any:
    """A ``radius`` sphere of perfect bcc W around an atom (a selection.clusters.Cluster; ``.atoms`` flags the
    centre)."""
    from ase.build import bulk

    from selection.clusters import cut_clusters

    if a is None:
        a, _ = lattice(potential)
    repeats = int(np.ceil(2 * radius / a)) + 2  # 8 for the 8 A default, as in the tests
    crystal = bulk("W", "bcc", a, cubic=True).repeat((repeats, repeats, repeats))
    return cut_clusters(crystal, [0], radius)[0]


def screw_line_cluster(
    potential: Potential | str = "W_zhou.eam.alloy", radius: float = 8.0, a: float | None = None
) -> Atoms:
    """``radius`` around a relaxed 1/2<111> screw dislocation core in W, periodic along the line (z)."""
    from md.engine import LammpsSystem
    from sampling.builders import screw_dislocation

    potential = _potential(potential)
    if a is None:
        a, _ = lattice(potential)
    cylinder = screw_dislocation("W", "bcc", a, *W_ELASTIC, radius=2 * radius, fixed_width=5.0, line_repeats=4)
    fixed = np.flatnonzero(cylinder.arrays["fixed"])
    with LammpsSystem(cylinder, potential) as system:
        system.commands([f"group fixed id {' '.join(str(i + 1) for i in fixed)}",
                         "fix hold fixed setforce 0.0 0.0 0.0", "min_style cg", "minimize 0 1e-6 2000 20000"])
        relaxed = system.get_atoms()
    line = np.array(cylinder.info["core_position"])
    centre = int(np.argmin(np.linalg.norm(relaxed.positions[:, :2] - line[:2], axis=1)))
    keep = np.linalg.norm(relaxed.positions[:, :2] - relaxed.positions[centre, :2], axis=1) <= radius
    cluster = relaxed[keep]
    cluster.positions -= relaxed.positions[centre] * [1.0, 1.0, 0.0]
    cluster.cell = np.diag([0.0, 0.0, relaxed.cell[2, 2]])
    cluster.pbc = (False, False, True)
    flags = np.zeros(len(cluster), dtype=bool)
    flags[int(np.flatnonzero(keep).tolist().index(centre))] = True
    cluster.arrays["centre"] = flags
    return cluster
