"""Elastic-constant labels of configurations read from files (the ``defect-genome elastic`` command).

Each labelled configuration gets ``atoms.info["elastic_constants"]``: the 6 x 6 Voigt stiffness
matrix (order xx yy zz yz xz xy, engineering shear strains) in GPa, stored row-major as a flat list
of 36 floats (ASE's extxyz writer stores it as JSON and its reader returns a length-36 array:
``np.reshape(atoms.info["elastic_constants"], (6, 6))``), and
``atoms.info["elastic_constants_units"] = "GPa"``. The positions written are the input ones.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ase import Atoms

from md.potentials import Potential, check_element

from .properties import elastic_summary, elastic_tensor

__all__ = ["ELASTIC_KEY", "ELASTIC_UNITS_KEY", "LabelInputError", "Labelled", "label_configurations",
           "read_configurations", "table_lines"]

ELASTIC_KEY = "elastic_constants"
ELASTIC_UNITS_KEY = "elastic_constants_units"


class LabelInputError(ValueError):
    """Bad input of the elastic command; ``argument`` names the offending argument or option."""

    def __init__(self, argument: str, message: str) -> None:
        super().__init__(f"{argument}: {message}")
        self.argument = argument


@dataclass
class Labelled:
    source: str
    atoms: Atoms
    matrix: np.ndarray

    @property
    def summary(self) -> dict[str, float]:
        return elastic_summary(self.matrix)


def read_configurations(paths: Sequence[Path]) -> list[tuple[str, Atoms]]:
    """Every configuration of every file (ase.io.read, index ':'), each with its source ``file:index``."""
    import ase.io

    configurations: list[tuple[str, Atoms]] = []
    for path in paths:
        if not Path(path).is_file():
            raise LabelInputError("INPUT", f"no file '{path}'")
        try:
            images = ase.io.read(path, index=":")
        except Exception as exc:  # ASE raises many types for unreadable or unknown formats
            raise LabelInputError("INPUT", f"cannot read '{path}': {exc}") from exc
        if isinstance(images, Atoms):
            images = [images]
        if not images:
            raise LabelInputError("INPUT", f"'{path}' holds no configuration")
        for i, atoms in enumerate(images):
            configurations.append((f"{path}:{i}", atoms))
    return configurations


def check_configurations(configurations: Sequence[tuple[str, Atoms]], potential: Potential) -> None:
    """Fail before any computation: every configuration periodic, non-empty and of species ``potential`` describes."""
    for source, atoms in configurations:
        if len(atoms) == 0:
            raise LabelInputError("INPUT", f"{source} has no atoms")
        if not np.all(atoms.pbc):
            raise LabelInputError("INPUT", f"{source} is not periodic (atoms.pbc = {[bool(p) for p in atoms.pbc]}); "
                                           "elastic constants need a cell periodic along all three axes")
        for element in sorted(set(atoms.get_chemical_symbols())):
            try:
                check_element(potential, element)
            except ValueError as exc:
                raise LabelInputError("--potential", f"{source}: {exc}") from exc


def label_configurations(
    configurations: Sequence[tuple[str, Atoms]],
    potential: Potential,
    *,
    strain: float = 1e-3,
    threads: int = 1,
    progress: Callable[[int, str], None] | None = None,
) -> list[Labelled]:
    """:func:`sampling.properties.elastic_tensor` of each configuration; copies carry the labels in ``info``."""
    if not 0 < strain < 0.05:
        raise LabelInputError("--strain", f"must be in (0, 0.05), a small fraction such as 1e-3, got {strain!r}")
    check_configurations(configurations, potential)
    results = []
    for index, (source, atoms) in enumerate(configurations):
        if progress is not None:
            progress(index, source)
        matrix = elastic_tensor(atoms, potential, strain=strain, threads=threads)
        labelled = atoms.copy()
        labelled.calc = atoms.calc  # keep energies/forces read from the file
        labelled.info[ELASTIC_KEY] = [float(v) for v in matrix.ravel()]
        labelled.info[ELASTIC_UNITS_KEY] = "GPa"
        results.append(Labelled(source, labelled, matrix))
    return results


def table_lines(results: Sequence[Labelled]) -> list[str]:
    """A plain-text table: index, source, atoms, C11, C12, C44, B (GPa; cubic averages, Voigt bulk modulus)."""
    width = max([len("source")] + [len(r.source) for r in results])
    lines = [f"{'index':>5}  {'source':<{width}}  {'atoms':>6}  {'C11':>9}  {'C12':>9}  {'C44':>9}  {'B':>9}   (GPa)"]
    for index, result in enumerate(results):
        s = result.summary
        lines.append(f"{index:>5}  {result.source:<{width}}  {len(result.atoms):>6}  {s['C11']:>9.2f}  "
                     f"{s['C12']:>9.2f}  {s['C44']:>9.2f}  {s['bulk_modulus']:>9.2f}")
    return lines
