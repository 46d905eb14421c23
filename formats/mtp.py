"""MLIP (MTP) ``.cfg`` configuration files: reader and writer on text file objects (format ``mtp`` of
:data:`formats.FORMATS`).

Layout (MLIP-2/3, see DESIGN.md section 3)::

    BEGIN_CFG
     Size
        2
     Supercell                      (absent for non-periodic clusters)
        3.16 0 0
        0 3.16 0
        0 0 3.16
     AtomData:  id type cartes_x cartes_y cartes_z fx fy fz [nbh_grades]
                 1    0  0.0 0.0 0.0  0.0 0.0 0.0
     Energy
        -25.9
     PlusStress:  xx yy zz yz xz xy    (= -stress * volume, eV)
        ...
     Feature   EFS_by  VASP
     Feature   MV_grade  2.3
    END_CFG

``id`` is 1-based, ``type`` 0-based; ``species`` maps types to chemical
symbols (type t -> species[t]). The columns of AtomData are read by their
header names, so files with extra or reordered columns (e.g. MLIP-3's graded
output ``id type cartes_x cartes_y cartes_z nbh_grades``) load too; direct
coordinates ``direct_x..`` are converted with the supercell.

On reading, energy/forces/stress become an ASE SinglePointCalculator;
``nbh_grades`` goes to ``atoms.arrays["gamma"]`` (the interchange name) and
``MV_grade`` to ``atoms.info["gamma_max"]``; other features to
``atoms.info["features"]`` (dict of strings) and ``EFS_by`` also to
``atoms.info["source"]``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TextIO

import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator

__all__ = ["CfgFormatError", "read_cfg", "write_cfg"]


class CfgFormatError(ValueError):
    """A .cfg file does not follow the MLIP layout; the message names the line."""


def _type_to_symbol(species: Sequence[str] | None, t: int, line_no: int) -> str:
    if species is None:
        raise CfgFormatError(
            f"line {line_no}: .cfg files store atom types (0, 1, ...) not elements; pass species=['W', ...]"
        )
    if not 0 <= t < len(species):
        raise CfgFormatError(
            f"line {line_no}: atom type {t} but species lists {len(species)} element(s) {list(species)}"
        )
    return species[t]


def read_cfg(file: TextIO, species: Sequence[str] | None = None) -> list[Atoms]:
    """All configurations of an MLIP ``.cfg`` text stream."""
    images: list[Atoms] = []
    lines = iter(enumerate(file, start=1))
    current: dict | None = None
    pending: str | None = None  # header whose value lines follow

    def next_line(what: str, after: int) -> tuple[int, str]:
        for number, text in lines:
            if text.strip():
                return number, text
        raise CfgFormatError(f"file ends after line {after} while reading {what}")

    for number, raw in lines:
        text = raw.strip()
        if not text:
            continue
        key = text.split()[0]
        if key == "BEGIN_CFG":
            if current is not None:
                raise CfgFormatError(f"line {number}: BEGIN_CFG inside a configuration (missing END_CFG)")
            current = {"features": {}, "start": number}
            continue
        if current is None:
            raise CfgFormatError(f"line {number}: {text[:40]!r} outside BEGIN_CFG ... END_CFG")
        if key == "END_CFG":
            images.append(_finish(current, species))
            current = None
        elif key == "Size":
            n_line, value = next_line("Size", number)
            try:
                current["size"] = int(value.split()[0])
            except ValueError:
                raise CfgFormatError(f"line {n_line}: Size must be an integer, got {value.strip()!r}") from None
        elif key == "Supercell":
            rows = []
            # 1 to 3 lattice vectors (MLIP writes only the periodic ones)
            for _ in range(3):
                n_line, value = next_line("Supercell", number)
                parts = value.split()
                try:
                    rows.append([float(x) for x in parts[:3]])
                except ValueError:
                    pending = value
                    break
                if len(parts) != 3:
                    raise CfgFormatError(f"line {n_line}: a Supercell row needs 3 numbers, got {value.strip()!r}")
            current["cell"] = np.array(rows)
            if pending is not None:
                raise CfgFormatError(
                    f"line {n_line}: Supercell with fewer than 3 vectors is not supported, got {pending.strip()!r}"
                )
        elif key.startswith("AtomData"):
            columns = text.split(":", 1)[1].split()
            if "size" not in current:
                raise CfgFormatError(f"line {number}: AtomData before Size")
            data = []
            for _ in range(current["size"]):
                n_line, value = next_line("AtomData", number)
                parts = value.split()
                if len(parts) != len(columns):
                    raise CfgFormatError(
                        f"line {n_line}: {len(parts)} values for {len(columns)} AtomData columns ({' '.join(columns)})"
                    )
                try:
                    data.append([float(x) for x in parts])
                except ValueError:
                    raise CfgFormatError(f"line {n_line}: non-numeric AtomData {value.strip()!r}") from None
            current["atom_columns"] = columns
            current["atom_data"] = np.array(data).reshape(current["size"], len(columns))
            current["atom_line"] = number
        elif key == "Energy":
            n_line, value = next_line("Energy", number)
            try:
                current["energy"] = float(value.split()[0])
            except ValueError:
                raise CfgFormatError(f"line {n_line}: Energy must be a number, got {value.strip()!r}") from None
        elif key.startswith("PlusStress"):
            columns = text.split(":", 1)[1].split() if ":" in text else ["xx", "yy", "zz", "yz", "xz", "xy"]
            n_line, value = next_line("PlusStress", number)
            try:
                values = dict(zip(columns, (float(x) for x in value.split())))
                current["plus_stress"] = np.array([values[k] for k in ("xx", "yy", "zz", "yz", "xz", "xy")])
            except (ValueError, KeyError):
                raise CfgFormatError(
                    f"line {n_line}: PlusStress needs xx yy zz yz xz xy values, got {value.strip()!r}"
                ) from None
        elif key == "Feature":
            parts = text.split(None, 2)
            if len(parts) < 2:
                raise CfgFormatError(f"line {number}: Feature without a name")
            current["features"][parts[1]] = parts[2].strip() if len(parts) > 2 else ""
        else:
            raise CfgFormatError(f"line {number}: unknown .cfg keyword {key!r}")
    if current is not None:
        raise CfgFormatError(f"configuration starting at line {current['start']} has no END_CFG")
    return images


def _finish(current: dict, species: Sequence[str] | None) -> Atoms:
    start = current["start"]
    if "atom_data" not in current:
        raise CfgFormatError(f"configuration starting at line {start} has no AtomData")
    columns: list[str] = current["atom_columns"]
    data: np.ndarray = current["atom_data"]
    column = {name: i for i, name in enumerate(columns)}
    if "type" not in column:
        raise CfgFormatError(f"line {current['atom_line']}: AtomData has no 'type' column")
    symbols = [_type_to_symbol(species, int(t), current["atom_line"]) for t in data[:, column["type"]]]
    cell = current.get("cell")
    if all(c in column for c in ("cartes_x", "cartes_y", "cartes_z")):
        positions = data[:, [column["cartes_x"], column["cartes_y"], column["cartes_z"]]]
    elif all(c in column for c in ("direct_x", "direct_y", "direct_z")):
        if cell is None:
            raise CfgFormatError(f"line {current['atom_line']}: direct coordinates without a Supercell")
        positions = data[:, [column["direct_x"], column["direct_y"], column["direct_z"]]] @ cell
    else:
        raise CfgFormatError(f"line {current['atom_line']}: AtomData has no cartes_x/y/z (or direct_x/y/z) columns")
    if "id" in column:
        order = np.argsort(data[:, column["id"]], kind="stable")
        if not np.array_equal(order, np.arange(len(order))):
            data, positions = data[order], positions[order]
            symbols = [symbols[i] for i in order]
    if cell is None:
        atoms = Atoms(symbols=symbols, positions=positions, pbc=False)
    else:
        atoms = Atoms(symbols=symbols, positions=positions, cell=cell, pbc=True)

    results: dict = {}
    if "energy" in current:
        results["energy"] = current["energy"]
        results["free_energy"] = current["energy"]
    if all(c in column for c in ("fx", "fy", "fz")):
        results["forces"] = data[:, [column["fx"], column["fy"], column["fz"]]].copy()
    if "plus_stress" in current:
        if cell is None:
            raise CfgFormatError(f"configuration starting at line {start}: PlusStress without a Supercell")
        results["stress"] = -current["plus_stress"] / abs(np.linalg.det(cell))
    if results:
        atoms.calc = SinglePointCalculator(atoms, **results)
    if "nbh_grades" in column:
        atoms.arrays["gamma"] = data[:, column["nbh_grades"]].copy()
    features = dict(current["features"])
    if "MV_grade" in features:
        try:
            atoms.info["gamma_max"] = float(features["MV_grade"].split()[0])
        except (ValueError, IndexError):
            raise CfgFormatError(f"configuration starting at line {start}: MV_grade {features['MV_grade']!r}") from None
    if "EFS_by" in features:
        atoms.info["source"] = features["EFS_by"]
    if features:
        atoms.info["features"] = features
    return atoms


def write_cfg(
    file: TextIO,
    images: Atoms | Iterable[Atoms],
    species: Sequence[str],
    efs_by: str | None = None,
) -> None:
    """Write configurations as MLIP ``.cfg``; type of an atom = index of its element in ``species``
    (the declared order, e.g. ``["Ni", "Al"]``: Ni type 0, Al type 1; the file itself does not store it).

    Energy, forces and stress come from ``atoms.calc`` results (when present);
    ``atoms.arrays["gamma"]`` is written as the ``nbh_grades`` column. Clusters
    (no periodic direction) are written without ``Supercell``. ``efs_by`` (else
    ``atoms.info["label_engine"]``, else ``atoms.info["source"]``) becomes ``Feature EFS_by``.
    """
    if isinstance(images, Atoms):
        images = [images]
    species = list(species)
    repeated = sorted({s for s in species if species.count(s) > 1})
    if repeated:  # type = index of the element: a repeated one would give every such atom the first index
        raise ValueError(f"species {species} lists {', '.join(repeated)} more than once; one type per element")
    for number, atoms in enumerate(images):
        unknown = sorted(set(atoms.get_chemical_symbols()) - set(species))
        if unknown:
            raise ValueError(f"configuration {number} has {', '.join(unknown)}, not in species {species}")
        pbc = np.asarray(atoms.pbc, dtype=bool)
        if pbc.any() and not pbc.all():
            raise ValueError(
                f"configuration {number} is periodic along some directions only ({pbc.tolist()}); "
                ".cfg supports fully periodic cells or clusters"
            )
        results = atoms.calc.results if atoms.calc is not None else {}
        forces = results.get("forces")
        lines = ["BEGIN_CFG", " Size", f"    {len(atoms)}"]
        if pbc.all():
            lines.append(" Supercell")
            lines += ["    " + " ".join(f"{x:16.10f}" for x in row) for row in np.asarray(atoms.cell[:])]
        header = " AtomData:  id type       cartes_x      cartes_y      cartes_z"
        if forces is not None:
            header += "           fx          fy          fz"
        gamma = atoms.arrays.get("gamma")
        if gamma is not None:
            header += "   nbh_grades"
        lines.append(header)
        types = [species.index(s) for s in atoms.get_chemical_symbols()]
        for i, (t, position) in enumerate(zip(types, atoms.positions)):
            row = f"    {i + 1:6d} {t:4d} " + " ".join(f"{x:14.8f}" for x in position)
            if forces is not None:
                row += " " + " ".join(f"{f:11.6f}" for f in forces[i])
            if gamma is not None:
                row += f" {float(gamma[i]):12.5f}"
            lines.append(row)
        if "energy" in results:
            lines += [" Energy", f"    {float(results['energy']):.10f}"]
        if "stress" in results and pbc.all():
            stress = np.asarray(results["stress"], dtype=float)
            if stress.shape == (3, 3):
                stress = stress[[0, 1, 2, 1, 0, 0], [0, 1, 2, 2, 2, 1]]
            plus = -stress * abs(atoms.get_volume())
            lines += [" PlusStress:  xx          yy          zz          yz          xz          xy",
                      "    " + " ".join(f"{x:11.5f}" for x in plus)]
        source = efs_by or atoms.info.get("label_engine") or atoms.info.get("source")
        if source:
            lines.append(f" Feature   EFS_by  {source}")
        if "gamma_max" in atoms.info:
            lines.append(f" Feature   MV_grade  {float(atoms.info['gamma_max']):.6f}")
        lines.append("END_CFG")
        file.write("\n".join(lines) + "\n\n")
