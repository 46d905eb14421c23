"""The training-set file formats, one registry for reading and writing (modelled on ``ase.io.formats``).

:data:`FORMATS` maps each format's name to a :class:`Format` (name, aliases, suffixes with the written
one first, binary or text, whether reading runs code, media type the API sends, reader, writer):

- ``mtp`` (alias ``cfg``): MLIP ``.cfg`` text (:mod:`formats.mtp`), ``text/plain``;
- ``pacemaker`` (alias ``ace``, the export name): ``.pckl.gzip`` (also ``.pkl.gzip``, ``.pckl.gz``,
  ``.pkl.gz``, ``.pckl``, ``.pkl``), binary, a pickle (reading it can run code), ``application/gzip``;
- ``extxyz``: ``.extxyz`` (also ``.xyz``) text, ``text/plain``.

Not in the registry: :mod:`formats.snapshot`, the compact binary format of sampling snapshots (``dg-snapshot``,
``.dgh5``, HDF5; float32 positions and CNA types, no labels), which the structure store writes and
``ase.io.read`` reads through ASE's plugin entry point.

- :func:`format_for`: a :class:`Format` by name (or alias) or by a file name's suffix; an unknown one is a
  :class:`FormatError` naming the field and the known formats.
- :func:`read`: a path or file object -> ``list[ase.Atoms]``, labels (energy, forces, stress) on a
  SinglePointCalculator and ``info["source"]`` naming the file and entry. Formats whose reading can run
  code (:attr:`Format.executes_code`: pacemaker's pickles) are refused unless ``allow_pickle=True``:
  never unpickle a file that came from someone else (an upload).
- :func:`write`: images -> a path or file object (binary for pacemaker, text otherwise: a binary stream
  is wrapped), ``species`` (MTP types) and ``reference_energies`` (pacemaker's ``energy_corrected``)
  where the format needs them. Writers are deterministic: the same images give the same bytes (pacemaker:
  written to a file of the same name, which gzip's header records; none for a BytesIO).

A top-level package below the science packages: it imports nothing of the project, and ``sampling``
(reading dataset B), ``selection``, ``mlip`` (exports, training files), ``workers`` and ``app`` (API, CLI)
use it.

Contracts (DESIGN.md section 3): ``.cfg`` ids 1-based, types 0-based (index in ``species``), ``PlusStress``
= -stress x volume (eV), ``Feature EFS_by <labeller>`` (:mod:`formats.mtp`); pacemaker: a pandas DataFrame
pickled with gzip (mtime 0), protocol 4, columns ``ase_atoms``, ``energy``, ``forces`` (n x 3),
``energy_corrected`` (energy minus the per-element reference energies, or the raw energy), no NaN, and
``label_engine``; extxyz writes the labeller as the info key ``label_engine``. The API and the CLI export
under :attr:`Format.export_name` (``mtp``, ``ace``, ``extxyz``: :data:`EXPORT_NAMES`).
"""

from __future__ import annotations

import gzip
import io
import os
import pickle
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal, Protocol, TextIO, cast, get_args

import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator

from formats.mtp import CfgFormatError, read_cfg, write_cfg

__all__ = [
    "EXPORT_NAMES",
    "FORMATS",
    "CfgFormatError",
    "DatasetError",
    "ExportError",
    "ExportName",
    "Format",
    "FormatError",
    "check_labelled",
    "corrected_energy",
    "format_for",
    "read",
    "write",
]


class DatasetError(ValueError):
    """A dataset file cannot be read (or, in :mod:`sampling.datasets`, generation settings are invalid)."""


class ExportError(ValueError):
    """A dataset that cannot be exported as asked; the message names the configuration and the fix."""


class FormatError(DatasetError, ExportError):
    """An unknown format name or file suffix: a :class:`DatasetError` when reading, an :class:`ExportError`
    when writing, so callers catching either keep working."""


class Reader(Protocol):
    def __call__(self, file: IO[Any], *, species: Sequence[str] | None, label: str) -> list[Atoms]: ...


class Writer(Protocol):
    def __call__(self, file: IO[Any], images: Sequence[Atoms], *, species: Sequence[str] | None,
                 reference_energies: Mapping[str, float] | None) -> None: ...


@dataclass(frozen=True)
class Format:
    """One training-set file format.

    ``reader`` takes a file object (binary if ``binary``, else text) and returns the configurations;
    ``label`` names the file in ``info["source"]`` (``<label>:<entry>``) and in errors. ``writer`` takes a
    file object of the same kind and the images, plus ``species`` and ``reference_energies`` (ignored by
    the formats that do not need them).
    """

    name: str
    description: str
    suffixes: tuple[str, ...]
    binary: bool
    executes_code: bool
    media_type: str
    reader: Reader
    writer: Writer
    export_name: str
    aliases: tuple[str, ...] = ()

    @property
    def suffix(self) -> str:
        """The suffix written files get."""
        return self.suffixes[0]

    @property
    def names(self) -> tuple[str, ...]:
        return (self.name, *self.aliases)


# --------------------------------------------------------------------------- labels


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


# --------------------------------------------------------------------------- mtp (.cfg)


def _tag_sources(images: list[Atoms], label: str) -> list[Atoms]:
    for k, atoms in enumerate(images):
        atoms.info.setdefault("source", f"{label}:{k}")
    return images


def _read_mtp(file: IO[Any], *, species: Sequence[str] | None, label: str) -> list[Atoms]:
    return _tag_sources(read_cfg(cast(TextIO, file), species), label)


def _write_mtp(file: IO[Any], images: Sequence[Atoms], *, species: Sequence[str] | None,
               reference_energies: Mapping[str, float] | None) -> None:
    """Type of an atom = index of its element in ``species`` (default: the elements present, sorted)."""
    order = list(species) if species else sorted({s for a in images for s in a.get_chemical_symbols()})
    write_cfg(cast(TextIO, file), images, order)


# --------------------------------------------------------------------------- extxyz


def _read_extxyz(file: IO[Any], *, species: Sequence[str] | None, label: str) -> list[Atoms]:
    from ase.io import read as ase_read

    try:
        read_images = ase_read(file, index=":", format="extxyz")
    except Exception as error:
        raise DatasetError(f"{label}: not readable as extended XYZ: {error}") from error
    images = read_images if isinstance(read_images, list) else [read_images]  # index=":" gives a list
    return _tag_sources(list(images), label)


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


def _write_extxyz(file: IO[Any], images: Sequence[Atoms], *, species: Sequence[str] | None,
                  reference_energies: Mapping[str, float] | None) -> None:
    from ase.io import write as ase_write

    ase_write(file, [_without_duplicated_results(atoms) for atoms in images], format="extxyz")


# --------------------------------------------------------------------------- pacemaker (.pckl.gzip)


def _read_pacemaker(file: IO[Any], *, species: Sequence[str] | None, label: str) -> list[Atoms]:
    """Unpickles: reached only through :func:`read` with ``allow_pickle=True`` (a trusted, local file)."""
    try:
        import pandas as pd
    except ImportError as error:  # pragma: no cover
        raise DatasetError("reading pacemaker datasets needs pandas (pip install pandas)") from error
    try:
        data = file.read()
        if isinstance(data, str):
            raise DatasetError(f"{label}: pacemaker pickles need a binary file object (open(..., 'rb'))")
        if data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
        frame = pd.read_pickle(io.BytesIO(data))
    except DatasetError:
        raise
    except Exception as error:
        raise DatasetError(f"{label}: not a pacemaker DataFrame pickle: {type(error).__name__}: {error}") from error
    if not hasattr(frame, "columns") or "ase_atoms" not in frame.columns:
        found = list(frame.columns) if hasattr(frame, "columns") else type(frame).__name__
        raise DatasetError(f"{label}: a pacemaker dataset needs an 'ase_atoms' column; found {found}")
    images = []
    has = set(frame.columns)
    for index, row in frame.iterrows():
        atoms = row["ase_atoms"].copy()
        results: dict[str, Any] = {}
        if "energy" in has and row["energy"] is not None and np.isfinite(row["energy"]):
            results["energy"] = float(row["energy"])
            results["free_energy"] = float(row["energy"])
        if "forces" in has and row["forces"] is not None:
            forces = np.asarray(row["forces"], dtype=float).reshape(-1, 3)
            if len(forces) != len(atoms):
                raise DatasetError(f"{label}, entry {index}: {len(forces)} forces for {len(atoms)} atoms")
            results["forces"] = forces
        if "stress" in has and row["stress"] is not None:
            results["stress"] = np.asarray(row["stress"], dtype=float)
        if results:
            atoms.calc = SinglePointCalculator(atoms, **results)
        for column in ("energy_corrected", "w_energy", "w_forces", "name"):
            if column in has and row[column] is not None:
                value = row[column]
                atoms.info[column] = value.tolist() if isinstance(value, np.ndarray) else value
        atoms.info.setdefault("source", f"{label}:{index}")
        images.append(atoms)
    return images


def _write_pacemaker(file: IO[Any], images: Sequence[Atoms], *, species: Sequence[str] | None,
                     reference_energies: Mapping[str, float] | None) -> None:
    """The pacemaker dataset (gzip-compressed pickle of a DataFrame, protocol 4) into a binary file;
    the images must be labelled (:func:`check_labelled`)."""
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
    with gzip.GzipFile(fileobj=cast(IO[bytes], file), mode="wb", mtime=0) as compressed:
        compressed.write(buffer.getvalue())


# --------------------------------------------------------------------------- the registry

FORMATS: dict[str, Format] = {
    fmt.name: fmt
    for fmt in (
        Format(name="mtp", description="MTP .cfg", suffixes=(".cfg",), binary=False, executes_code=False,
               media_type="text/plain", reader=_read_mtp, writer=_write_mtp, export_name="mtp", aliases=("cfg",)),
        Format(name="pacemaker", description="pacemaker .pckl.gzip",
               suffixes=(".pckl.gzip", ".pkl.gzip", ".pckl.gz", ".pkl.gz", ".pckl", ".pkl"), binary=True,
               executes_code=True, media_type="application/gzip", reader=_read_pacemaker, writer=_write_pacemaker,
               export_name="ace", aliases=("ace",)),
        Format(name="extxyz", description="extended XYZ", suffixes=(".extxyz", ".xyz"), binary=False,
               executes_code=False, media_type="text/plain", reader=_read_extxyz, writer=_write_extxyz,
               export_name="extxyz"),
    )
}

#: the names the API (``?format=``) and the CLI (``export --format``) take, in the registry's order
EXPORT_NAMES: tuple[str, ...] = tuple(fmt.export_name for fmt in FORMATS.values())
#: :data:`EXPORT_NAMES` as a type, for the API's query parameter (an enum in the OpenAPI schema)
ExportName = Literal["mtp", "ace", "extxyz"]
if get_args(ExportName) != EXPORT_NAMES:  # pragma: no cover - a registry edit without this line
    raise RuntimeError(f"formats.ExportName {get_args(ExportName)} is not the registry's {EXPORT_NAMES}")

_BY_NAME: dict[str, Format] = {name: fmt for fmt in FORMATS.values() for name in fmt.names}


def _known() -> str:
    def one(fmt: Format) -> str:
        aliases = f"or {', '.join(fmt.aliases)}; " if fmt.aliases else ""
        return f"{fmt.name} ({aliases}{' '.join(fmt.suffixes)})"

    return ", ".join(one(fmt) for fmt in FORMATS.values())


def format_for(name_or_path: str | os.PathLike[str] | Format, field: str | None = "format", *,
               what: str = "format") -> Format:
    """The :class:`Format` named ``name_or_path`` (a name or alias, any case), else the one whose suffix
    ends that file name (the longest suffix that matches). ``field`` (the input's name, e.g. ``format``;
    None for a file name, which the message quotes) and ``what`` (e.g. ``export format``) word the
    :class:`FormatError`, which lists the known formats."""
    if isinstance(name_or_path, Format):
        return name_or_path
    if isinstance(name_or_path, str) and name_or_path.lower() in _BY_NAME:
        return _BY_NAME[name_or_path.lower()]
    text = os.fspath(name_or_path)
    lower = text.lower()
    matches = [(len(suffix), fmt) for fmt in FORMATS.values() for suffix in fmt.suffixes if lower.endswith(suffix)]
    if matches:
        return max(matches, key=lambda match: match[0])[1]
    prefix = f"{field}: " if field else ""
    if isinstance(name_or_path, os.PathLike) or "." in Path(text).name or os.sep in text:
        raise FormatError(f"{prefix}cannot tell the {what} of {text!r} from its suffix; known formats: {_known()}")
    raise FormatError(f"{prefix}unknown {what} {text!r}; known formats: {_known()}")


def read(source: str | os.PathLike[str] | IO[Any], fmt: str | Format | None = None, *,
         allow_pickle: bool = False, species: Sequence[str] | None = None,
         label: str | None = None) -> list[Atoms]:
    """The configurations of a dataset file (a path or an open file object, text or binary).

    ``fmt``: a name or :class:`Format`; by default from the file's name. ``species``: element of each
    MTP type (types are 0-based). ``allow_pickle``: formats that run code when read (pacemaker pickles)
    are refused without it; pass True only for a local file the user chose, never for an upload.
    ``label`` (default: the file's name, else ``fmt``) names the file in ``info["source"]`` and errors.
    """
    name: str | None
    if isinstance(source, (str, os.PathLike)):
        name = os.fspath(source)
        if not Path(name).is_file():
            raise DatasetError(f"no dataset file at {name}")
    else:
        found = getattr(source, "name", None)
        name = found if isinstance(found, str) else None
    if fmt is None:
        if name is None:
            raise FormatError(f"format: a file object without a name; pass its format, one of {', '.join(FORMATS)}")
        fmt = format_for(name, None, what="dataset format")
    format_ = format_for(fmt, "format", what="dataset format")
    if label is None:
        label = Path(name).name if name else (fmt if isinstance(fmt, str) else format_.name)
    if format_.executes_code and not allow_pickle:
        raise DatasetError(f"{label}: {format_.name} pickles are not read from untrusted files (unpickling runs "
                           f"code); convert it with `defect-genome convert FILE{format_.suffix} FILE.extxyz` and "
                           "use the extxyz (or an MTP .cfg)")
    if isinstance(source, (str, os.PathLike)):
        if format_.binary:
            with open(source, "rb") as binary:
                return format_.reader(binary, species=species, label=label)
        with open(source, encoding="utf-8") as text:
            return format_.reader(text, species=species, label=label)
    if format_.binary or not isinstance(source.read(0), bytes):
        return format_.reader(source, species=species, label=label)
    wrapper = io.TextIOWrapper(cast(IO[bytes], source), encoding="utf-8")
    try:
        return format_.reader(wrapper, species=species, label=label)
    finally:
        wrapper.detach()  # the caller's stream stays open


def _is_binary_sink(file: IO[Any]) -> bool:
    if isinstance(file, io.TextIOBase):
        return False
    if isinstance(file, (io.RawIOBase, io.BufferedIOBase)):
        return True
    try:
        file.write(b"")
    except TypeError:
        return False
    return True


def write(target: str | os.PathLike[str] | IO[Any], images: Atoms | Iterable[Atoms], fmt: str | Format, *,
          species: Sequence[str] | None = None, reference_energies: Mapping[str, float] | None = None) -> int:
    """Write ``images`` as ``fmt`` into ``target`` (a path, or a file object: binary for a binary format;
    a binary one is wrapped for a text format); the number of configurations written.

    ``species``: element of each MTP type (default: the elements present, sorted); ``reference_energies``:
    eV per atom of each element, subtracted for pacemaker's ``energy_corrected`` (default: the raw energy).
    Labels are not checked here except where the format needs them (pacemaker); exports check them first
    (:func:`check_labelled`).
    """
    format_ = format_for(fmt, "format", what="export format")
    images = [images] if isinstance(images, Atoms) else list(images)
    options: dict[str, Any] = {"species": species, "reference_energies": reference_energies}
    if isinstance(target, (str, os.PathLike)):
        if format_.binary:
            with open(target, "wb") as binary:
                format_.writer(binary, images, **options)
        else:
            with open(target, "w", encoding="utf-8") as text:
                format_.writer(text, images, **options)
        return len(images)
    binary_sink = _is_binary_sink(target)
    if format_.binary and not binary_sink:
        raise ExportError(f"{format_.name} files are binary: pass a file opened with 'wb' (or a BytesIO)")
    if format_.binary or not binary_sink:
        format_.writer(target, images, **options)
        return len(images)
    wrapper = io.TextIOWrapper(cast(IO[bytes], target), encoding="utf-8", write_through=True)
    try:
        format_.writer(wrapper, images, **options)
        wrapper.flush()
    finally:
        wrapper.detach()  # the caller's stream stays open
    return len(images)
