"""Labelled configurations -> the files users train on: MTP ``.cfg``, pacemaker ``.pckl.gzip``, extxyz.

Contracts (DESIGN.md section 3): ``.cfg`` ids 1-based, types 0-based (index in ``species``),
``PlusStress`` = -stress x volume (eV), ``Feature EFS_by <labeller>``; pacemaker: a pandas DataFrame
pickled with gzip, protocol 4, columns ``ase_atoms``, ``energy``, ``forces`` (n x 3),
``energy_corrected`` (energy minus the per-element reference energies, or the raw energy), no NaN, and
``label_engine``. The labeller is ``atoms.info["label_engine"]``: ``<engine> <version>`` for DFT (``gpaw 26.7.0``),
``lammps:<potential name>`` for a reference potential (``lammps:WL.meam``); extxyz writes it as the info key
``label_engine``.
Every writer takes a file object (binary for pacemaker, text otherwise); :func:`check_labelled`
refuses what a fitting code would choke on, naming the configuration.
"""

from __future__ import annotations

import gzip
import io
import pickle
from collections.abc import Iterable, Mapping, Sequence
from typing import BinaryIO, TextIO

import numpy as np
from ase import Atoms

from sampling.mlip_formats import write_cfg

EXPORT_FORMATS = ("mtp", "ace", "extxyz")
FILE_SUFFIX = {"mtp": ".cfg", "ace": ".pckl.gzip", "extxyz": ".extxyz"}


class ExportError(ValueError):
    """A dataset that cannot be exported as asked; the message names the configuration and the fix."""


def _label(atoms: Atoms, number: int) -> str:
    source = atoms.info.get("source")
    return f"configuration {number}" + (f" ({source})" if source else "")


def check_labelled(images: Sequence[Atoms]) -> None:
    """Every configuration has a finite energy and finite forces of shape (n, 3); the set is not empty."""
    if len(images) == 0:
        raise ExportError("the dataset is empty: no labelled configuration matches the chosen datasets and filters")
    for number, atoms in enumerate(images):
        results = atoms.calc.results if atoms.calc is not None else {}
        where = _label(atoms, number)
        if "energy" not in results or "forces" not in results:
            raise ExportError(f"{where} has no energy and forces: label it first (or leave it out)")
        if not np.isfinite(results["energy"]):
            raise ExportError(f"{where}: energy is {results['energy']}")
        forces = np.asarray(results["forces"], dtype=float)
        if forces.shape != (len(atoms), 3):
            raise ExportError(f"{where}: forces of shape {forces.shape} for {len(atoms)} atoms")
        bad = np.flatnonzero(~np.isfinite(forces).all(axis=1))
        if len(bad):
            raise ExportError(f"{where}: forces are not finite (NaN or inf) on atoms {bad[:5].tolist()}")
        if "stress" in results and not np.isfinite(np.asarray(results["stress"], dtype=float)).all():
            raise ExportError(f"{where}: stress is not finite")


def corrected_energy(atoms: Atoms, energy: float, reference_energies: Mapping[str, float] | None) -> float:
    """``energy`` minus the sum of the per-element reference energies (eV); the raw energy without them."""
    if reference_energies is None:
        return float(energy)
    symbols = atoms.get_chemical_symbols()
    missing = sorted(set(symbols) - set(reference_energies))
    if missing:
        raise ExportError(f"no reference energy for {', '.join(missing)}; give one per element (eV/atom)")
    return float(energy) - float(sum(reference_energies[s] for s in symbols))


def write_pacemaker(file: BinaryIO, images: Sequence[Atoms],
                    reference_energies: Mapping[str, float] | None = None) -> None:
    """The pacemaker dataset (gzip-compressed pickle of a DataFrame, protocol 4) into a binary file."""
    import pandas as pd

    check_labelled(images)
    rows = []
    for atoms in images:
        results = atoms.calc.results
        bare = Atoms(atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
        row = {
            "name": str(atoms.info.get("source", "")),
            "ase_atoms": bare,
            "energy": float(results["energy"]),
            "forces": np.asarray(results["forces"], dtype=float).copy(),
            "energy_corrected": corrected_energy(atoms, results["energy"], reference_energies),
            "label_engine": str(atoms.info.get("label_engine", "")),  # who labelled it (DFT or lammps:<name>)
        }
        if "stress" in results:
            row["stress"] = np.asarray(results["stress"], dtype=float).copy()
        rows.append(row)
    frame = pd.DataFrame(rows)
    buffer = io.BytesIO()
    pickle.dump(frame, buffer, protocol=4)
    # mtime 0: the same dataset gives the same bytes
    with gzip.GzipFile(fileobj=file, mode="wb", mtime=0) as compressed:
        compressed.write(buffer.getvalue())


def write_dataset(file: TextIO | BinaryIO, images: Iterable[Atoms], format: str, *,
                  species: Sequence[str] | None = None,
                  reference_energies: Mapping[str, float] | None = None) -> int:
    """Write labelled ``images`` as ``format`` (mtp, ace, extxyz); returns the number written.

    ``species``: element of each MTP type (default: the elements present, sorted). A binary file
    object is needed for ``ace``, a text one for the others.
    """
    images = list(images)
    if format not in EXPORT_FORMATS:
        raise ExportError(f"unknown export format {format!r}; use one of {', '.join(EXPORT_FORMATS)}")
    check_labelled(images)
    if format == "ace":
        write_pacemaker(file, images, reference_energies)  # type: ignore[arg-type]
    elif format == "mtp":
        order = list(species) if species else sorted({s for a in images for s in a.get_chemical_symbols()})
        write_cfg(file, images, order)  # type: ignore[arg-type]
    else:
        from ase.io import write

        write(file, [_without_duplicated_results(atoms) for atoms in images], format="extxyz")
    return len(images)


def _without_duplicated_results(atoms: Atoms) -> Atoms:
    """ASE's extxyz writer refuses an info key that the calculator also has (a labelled cell carries
    energy/stress in both, DESIGN section 3): the calculator's value is the one written."""
    calc = atoms.calc
    results = getattr(calc, "results", {}) if calc is not None else {}
    duplicated = [key for key in atoms.info if key in results]
    if not duplicated:
        return atoms
    copy = atoms.copy()
    copy.calc = calc
    for key in duplicated:
        del copy.info[key]
    return copy
