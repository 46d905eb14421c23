"""Compact sampling snapshots: the ``dg-snapshot`` format (suffix ``.dgh5``), HDF5 through h5py.

A sampling snapshot of 82,000 atoms is 5 MB as extended XYZ (63 bytes per atom); this format keeps what the
pipeline reads back (species, positions, CNA type, cell, energy, stress, the protocol's info) in 9-10 bytes
per atom for a thermalised crystal (8.8 for 78,608 atoms of bcc W with 0.05 A noise).

Layout (root of the HDF5 file):

- attribute ``format`` = ``"defect-genome-snapshot-1"`` (:data:`FORMAT_VERSION`);
- dataset ``positions``: float32 (n, 3), A, chunked by :data:`CHUNK_ATOMS` atoms with the shuffle and gzip
  filters, so that a range of atoms is read without the rest (:func:`read_snapshot_range`);
- dataset ``numbers``: uint8 (n,), atomic numbers;
- dataset ``structure_type``: uint8 (n,), when ``atoms.arrays`` has it (CNA/PTM type, 0..255);
- attributes ``cell`` (3 x 3 float64, A) and ``pbc`` (3 bool);
- attributes ``energy`` (float64, eV) and ``stress`` (6 float64, Voigt xx yy zz yz xz xy, eV/A^3, ASE sign)
  when ``atoms.info`` has them (a 3 x 3 stress is written as its Voigt 6-vector);
- attribute ``info``: the other ``atoms.info`` entries as a JSON object (numbers, strings, lists, dicts;
  numpy scalars and arrays as their values), and ``info_ndarrays``: a JSON list of the keys that were numpy
  arrays, which :func:`read_snapshot` gives back as arrays.

Precision: positions are float32, so a coordinate x comes back within |x| * 2**-24 (6e-8 relative): at most
1.8e-5 A anywhere in a 300 A box (float32's spacing there even gives 1.53e-5 A), far below thermal
displacements (0.05-0.1 A); extxyz keeps 8 decimals (5e-9 A). Cell, energy and stress are float64, exact.

Writing is deterministic (the store names a file by the SHA-256 of its bytes) for a given h5py/HDF5 (the pinned
3.15.1/1.14.6): no timestamps (``track_times=False``), fixed chunk shape and filter settings, attributes in a
fixed order, JSON with sorted keys, a path written through a Python file object like any other. Per-atom
arrays other than numbers, positions and ``structure_type`` are refused (write extxyz to keep them); a
calculator's results are not written (the snapshot's energy and stress are in its info).

Functions take a path or a binary file object (as ASE's readers and writers do):

- :func:`write_snapshot`, :func:`read_snapshot`, :func:`read_snapshot_range` (atoms start..stop),
  :func:`iter_snapshot` (successive ranges of one open file), :func:`snapshot_extxyz_chunks` (the snapshot
  as extended XYZ bytes, range by range: a download that never holds the whole text).
- A file that is not a snapshot, or is truncated, raises :class:`SnapshotFormatError` (a ValueError) naming
  the file and what is wrong.

ASE reads and writes the format as ``dg-snapshot`` (``ase.io.read("frame.dgh5")``) through the
``ase.ioformats`` entry point in pyproject.toml, which names :data:`ase_format`.
"""

from __future__ import annotations

import errno
import io
import json
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import IO, Any

import numpy as np
from ase import Atoms
from ase.stress import full_3x3_to_voigt_6_stress
from ase.utils.plugins import ExternalIOFormat

__all__ = [
    "CHUNK_ATOMS",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "SUFFIX",
    "SnapshotFormatError",
    "ase_format",
    "iter_snapshot",
    "read_dg_snapshot",
    "read_snapshot",
    "read_snapshot_range",
    "snapshot_extxyz_chunks",
    "snapshot_length",
    "write_dg_snapshot",
    "write_snapshot",
]

FORMAT_NAME = "dg-snapshot"
SUFFIX = ".dgh5"
FORMAT_VERSION = "defect-genome-snapshot-1"
# Atoms per HDF5 chunk: a range read decompresses whole chunks, so this bounds its memory (0.8 MB of float32).
CHUNK_ATOMS = 65536
# gzip level: 1..9 differ by < 1% in size on thermal positions (their low mantissa bytes are noise), 4 is quick
GZIP_LEVEL = 4

# the info keys stored as their own typed attributes
_TYPED_INFO = ("energy", "stress")
_ARRAYS = ("numbers", "positions", "structure_type")

PathOrFile = str | os.PathLike[str] | IO[bytes]


class SnapshotFormatError(ValueError):
    """A file that is not a readable dg-snapshot, or atoms the format cannot hold; the message names which."""


def _name(file: PathOrFile) -> str:
    if isinstance(file, str | os.PathLike):
        return os.fspath(file)
    name = getattr(file, "name", None)
    return str(name) if isinstance(name, str) else f"<{type(file).__name__}>"


def _h5py() -> Any:
    # imported on use: ASE imports this module whenever it loads its formats, most of which never open HDF5
    import h5py

    return h5py


@contextmanager
def _open_for_reading(file: PathOrFile) -> Iterator[Any]:
    h5py = _h5py()
    name = _name(file)
    if isinstance(file, str | os.PathLike) and not os.path.exists(file):
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), name)
    try:
        handle = h5py.File(file, "r")
    except OSError as error:
        raise SnapshotFormatError(f"{name}: not a readable {FORMAT_NAME} file ({_reason(error)})") from None
    with handle:
        version = handle.attrs.get("format")
        if isinstance(version, bytes):
            version = version.decode()
        if version != FORMAT_VERSION:
            found = "no 'format' attribute" if version is None else f"format {version!r}"
            raise SnapshotFormatError(f"{name}: an HDF5 file with {found}, not {FORMAT_VERSION!r}: not a "
                                      f"{FORMAT_NAME} file (write one with formats.snapshot.write_snapshot)")
        for dataset in ("positions", "numbers"):
            if dataset not in handle:
                raise SnapshotFormatError(f"{name}: the {FORMAT_NAME} file has no '{dataset}' dataset")
        yield handle


def _reason(error: OSError) -> str:
    """HDF5's own reason in words, without h5py's call chain."""
    text = str(error)
    if "truncated file" in text:
        return f"the file is truncated, an interrupted write or copy; HDF5 says: {text.split('(', 1)[-1].rstrip(')')}"
    if "file signature not found" in text:
        return "it is not an HDF5 file"
    return text.split("(", 1)[-1].rstrip(")") or text


def _read_error(name: str, what: str, error: Exception) -> SnapshotFormatError:
    return SnapshotFormatError(f"{name}: cannot read {what} of the {FORMAT_NAME} file, it is damaged "
                               f"({_reason(error) if isinstance(error, OSError) else error})")


def _json_value(key: str, value: Any) -> Any:
    """A JSON-serialisable copy of one info value; numpy scalars and arrays become Python values."""
    if isinstance(value, np.ndarray | np.generic):
        return value.tolist()
    if isinstance(value, list | tuple):
        return [_json_value(key, item) for item in value]
    if isinstance(value, Mapping):
        return {str(k): _json_value(key, v) for k, v in value.items()}
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise SnapshotFormatError(f"atoms.info[{key!r}] is a {type(value).__name__}, which the {FORMAT_NAME} format "
                              "cannot hold (it keeps numbers, strings, lists and dicts): convert it or drop it")


def _info_attributes(info: Mapping[str, Any]) -> dict[str, Any]:
    """The root attributes holding ``info``, in the order they are written."""
    attributes: dict[str, Any] = {}
    if "energy" in info:
        try:
            attributes["energy"] = np.float64(info["energy"])
        except (TypeError, ValueError):
            raise SnapshotFormatError(f"atoms.info['energy'] must be a number (eV), not {info['energy']!r}") from None
    if "stress" in info:
        stress = np.asarray(info["stress"], dtype=np.float64)
        if stress.shape == (3, 3):
            stress = full_3x3_to_voigt_6_stress(stress)
        if stress.shape != (6,):
            raise SnapshotFormatError(f"atoms.info['stress'] must be 6 Voigt values or 3 x 3 (eV/A^3), not shape "
                                      f"{stress.shape}")
        attributes["stress"] = stress
    others = {str(key): value for key, value in info.items() if key not in _TYPED_INFO}
    attributes["info"] = json.dumps({key: _json_value(key, value) for key, value in others.items()}, sort_keys=True)
    attributes["info_ndarrays"] = json.dumps(sorted(key for key, value in others.items()
                                                    if isinstance(value, np.ndarray)))
    return attributes


def write_snapshot(file: PathOrFile, atoms: Atoms) -> None:
    """Write ``atoms`` to a path or a binary file object (seekable, opened for writing)."""
    extra = sorted(set(atoms.arrays) - set(_ARRAYS))
    if extra:
        raise SnapshotFormatError(f"atoms.arrays has {', '.join(map(repr, extra))}: the {FORMAT_NAME} format keeps "
                                  "positions, numbers and structure_type only; write extxyz to keep the others")
    numbers = np.asarray(atoms.numbers)
    if numbers.size and (numbers.min() < 1 or numbers.max() > 255):
        raise SnapshotFormatError("atoms.numbers must be atomic numbers 1..255")
    structure_type = atoms.arrays.get("structure_type")
    if structure_type is not None:
        structure_type = np.asarray(structure_type)
        if structure_type.shape != (len(atoms),) or not np.issubdtype(structure_type.dtype, np.integer) or (
                structure_type.size and (structure_type.min() < 0 or structure_type.max() > 255)):
            raise SnapshotFormatError("atoms.arrays['structure_type'] must be one integer 0..255 per atom")
    attributes = _info_attributes(atoms.info)
    if isinstance(file, str | os.PathLike):
        # through a Python file object as for any other: HDF5's own file driver lays out a file differently
        with open(file, "wb") as handle:
            _write(handle, atoms, numbers, structure_type, attributes)
    else:
        _write(file, atoms, numbers, structure_type, attributes)


def _write(file: IO[bytes], atoms: Atoms, numbers: np.ndarray, structure_type: np.ndarray | None,
           attributes: dict[str, Any]) -> None:
    h5py = _h5py()
    n = len(atoms)
    chunk = min(CHUNK_ATOMS, n)  # a function of n only: the same atoms give the same bytes

    def options(*shape: int, shuffle: bool = False) -> dict[str, Any]:
        if n == 0:  # HDF5 has no empty chunks: an empty snapshot's datasets are plain
            return {"track_times": False}
        return {"chunks": shape, "shuffle": shuffle, "compression": "gzip", "compression_opts": GZIP_LEVEL,
                "track_times": False}

    with h5py.File(file, "w", libver="earliest", track_order=False) as handle:
        handle.attrs["format"] = FORMAT_VERSION
        handle.create_dataset("positions", data=np.asarray(atoms.positions, dtype=np.float32).reshape(n, 3),
                              **options(chunk, 3, shuffle=True))
        handle.create_dataset("numbers", data=numbers.astype(np.uint8), **options(chunk))
        if structure_type is not None:
            handle.create_dataset("structure_type", data=structure_type.astype(np.uint8), **options(chunk))
        handle.attrs["cell"] = np.asarray(atoms.cell.array, dtype=np.float64)
        handle.attrs["pbc"] = np.asarray(atoms.pbc, dtype=bool)
        for key, value in attributes.items():
            handle.attrs[key] = value


def _header(handle: Any, name: str) -> tuple[int, np.ndarray, np.ndarray, dict[str, Any]]:
    """(number of atoms, cell, pbc, info) of an open snapshot."""
    attrs = handle.attrs
    try:
        cell = np.asarray(attrs["cell"], dtype=np.float64).reshape(3, 3)
        pbc = np.asarray(attrs["pbc"], dtype=bool).reshape(3)
        info: dict[str, Any] = json.loads(attrs.get("info", "{}"))
        for key in json.loads(attrs.get("info_ndarrays", "[]")):
            info[key] = np.asarray(info[key])
    except (KeyError, ValueError, TypeError, OSError) as error:
        raise _read_error(name, "the cell, pbc or info attributes", error) from None
    if "energy" in attrs:
        info["energy"] = float(attrs["energy"])
    if "stress" in attrs:
        info["stress"] = np.asarray(attrs["stress"], dtype=np.float64)
    n = int(handle["positions"].shape[0])
    if handle["positions"].shape != (n, 3) or handle["numbers"].shape != (n,) or (
            "structure_type" in handle and handle["structure_type"].shape != (n,)):
        raise SnapshotFormatError(f"{name}: the {FORMAT_NAME} file's positions, numbers and structure_type "
                                  "disagree on the number of atoms")
    return n, cell, pbc, info


def _atoms(handle: Any, name: str, start: int, stop: int, cell: np.ndarray, pbc: np.ndarray,
           info: dict[str, Any]) -> Atoms:
    try:
        positions = handle["positions"][start:stop].astype(np.float64)
        numbers = handle["numbers"][start:stop].astype(np.int64)
        types = handle["structure_type"][start:stop].astype(np.int32) if "structure_type" in handle else None
    except (OSError, ValueError) as error:
        raise _read_error(name, f"atoms {start}..{stop}", error) from None
    atoms = Atoms(numbers=numbers, positions=positions, cell=cell, pbc=pbc)
    if types is not None:
        atoms.arrays["structure_type"] = types
    atoms.info.update({key: value.copy() if isinstance(value, np.ndarray) else value for key, value in info.items()})
    return atoms


def read_snapshot(file: PathOrFile) -> Atoms:
    """The whole snapshot: positions float64 (from float32), ``arrays['structure_type']`` int32, info restored."""
    name = _name(file)
    with _open_for_reading(file) as handle:
        n, cell, pbc, info = _header(handle, name)
        return _atoms(handle, name, 0, n, cell, pbc, info)


def snapshot_length(file: PathOrFile) -> int:
    """The number of atoms, read from the file's header only."""
    with _open_for_reading(file) as handle:
        return _header(handle, _name(file))[0]


def read_snapshot_range(file: PathOrFile, start: int, stop: int) -> Atoms:
    """Atoms ``start`` to ``stop`` (Python slice bounds, clipped to the snapshot) with the snapshot's cell, pbc
    and info; only the HDF5 chunks holding them are read."""
    name = _name(file)
    with _open_for_reading(file) as handle:
        n, cell, pbc, info = _header(handle, name)
        begin, end, _ = slice(start, stop).indices(n)
        return _atoms(handle, name, begin, max(begin, end), cell, pbc, info)


def iter_snapshot(file: PathOrFile, atoms_per_range: int = CHUNK_ATOMS) -> Iterator[Atoms]:
    """Successive ranges of ``atoms_per_range`` atoms (one empty range for a snapshot without atoms), each with
    the snapshot's cell, pbc and info; the file stays open until the iterator ends or is closed."""
    for _n, part in _ranges(file, atoms_per_range):
        yield part


def _ranges(file: PathOrFile, atoms_per_range: int) -> Iterator[tuple[int, Atoms]]:
    """(atoms in the snapshot, the next range of atoms) from one open file."""
    if atoms_per_range < 1:
        raise ValueError(f"atoms_per_range must be at least 1, not {atoms_per_range}")
    name = _name(file)
    with _open_for_reading(file) as handle:
        n, cell, pbc, info = _header(handle, name)
        for start in range(0, max(n, 1), atoms_per_range):
            yield n, _atoms(handle, name, start, min(n, start + atoms_per_range), cell, pbc, info)


def snapshot_extxyz_chunks(file: PathOrFile, atoms_per_range: int = CHUNK_ATOMS) -> Iterator[bytes]:
    """The snapshot as extended XYZ, one chunk of bytes per range of atoms: the same bytes as
    ``ase.io.write(..., read_snapshot(file), format="extxyz")`` without holding the whole text."""
    from ase.io.extxyz import write_xyz

    for number, (n, part) in enumerate(_ranges(file, atoms_per_range)):
        text = io.StringIO()
        write_xyz(text, part)
        _count, comment, body = text.getvalue().split("\n", 2)
        # ASE writes the range's length on the first line and the same comment line (cell, Properties, info)
        # for every range: the snapshot's count and the comment once, then each range's atom lines
        yield (f"{n}\n{comment}\n{body}" if number == 0 else body).encode()


# ---- ASE's plugin interface (the ``ase.ioformats`` entry point): read_<name> and write_<name> of the module


def read_dg_snapshot(fileobj: IO[bytes], **_kwargs: Any) -> Atoms:
    return read_snapshot(fileobj)


def write_dg_snapshot(fileobj: IO[bytes], atoms: Atoms, **_kwargs: Any) -> None:
    write_snapshot(fileobj, atoms)


# code 1B: one Atoms per file, ASE hands over a file object opened in binary mode
ase_format = ExternalIOFormat(desc="defect-genome compact snapshot (HDF5)", code="1B", module="formats.snapshot",
                              ext=SUFFIX.lstrip("."))
