"""Content-addressed structure files under the data directory.

A structure is stored as extended XYZ (``structures/ab/<sha256>.extxyz``, the interchange format), or, for the
large sampling snapshots, in the compact binary ``dg-snapshot`` format (``structures/ab/<sha256>.dgh5``,
:mod:`formats.snapshot`: float32 positions, about 10 bytes per atom instead of 63). The SHA-256 is that of
the file's bytes either way. :meth:`StructureStore.read` tells the two apart by the suffix, so files stored
before the compact format existed stay readable; :meth:`StructureStore.extxyz_chunks` gives any stored
structure as extended XYZ, chunk by chunk (downloads).
"""

from __future__ import annotations

import hashlib
import io
import itertools
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO, cast

import ase
import ase.io

from formats.snapshot import SUFFIX as COMPACT_SUFFIX
from formats.snapshot import read_snapshot, snapshot_extxyz_chunks, write_snapshot

# bytes per chunk when an extxyz file is copied out; a compact file converts one HDF5 chunk of atoms at a time
COPY_CHUNK = 2**20


def canonical_extxyz(atoms: ase.Atoms) -> bytes:
    """The extxyz text whose SHA-256 names the file: same atoms, same bytes."""
    buffer = io.StringIO()
    ase.io.write(buffer, atoms, format="extxyz")
    return buffer.getvalue().encode()


def compact_snapshot(atoms: ase.Atoms) -> bytes:
    """The dg-snapshot bytes whose SHA-256 names the compact file: same atoms, same bytes."""
    buffer = io.BytesIO()
    write_snapshot(buffer, atoms)
    return buffer.getvalue()


class StructureStore:
    def __init__(self, data_dir: Path):
        self.data_dir = Path(data_dir)

    def put(self, atoms: ase.Atoms, compact: bool = False) -> tuple[str, str]:
        """Write the file if new; return (sha256, path relative to the data directory).

        ``compact``: the dg-snapshot format (positions, numbers, structure_type, cell, pbc, info; positions
        to float32), for sampling snapshots; otherwise extended XYZ with everything ASE writes."""
        payload = compact_snapshot(atoms) if compact else canonical_extxyz(atoms)
        sha256 = hashlib.sha256(payload).hexdigest()
        relative = f"structures/{sha256[:2]}/{sha256}{COMPACT_SUFFIX if compact else '.extxyz'}"
        target = self.data_dir / relative
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            # Write then rename: a killed worker never leaves a half file under the final name.
            partial = target.with_suffix(f".{os.getpid()}.partial")
            partial.write_bytes(payload)
            partial.replace(target)
        return sha256, relative

    def path(self, relative: str) -> Path:
        return self.data_dir / relative

    def read(self, relative: str) -> ase.Atoms:
        path = self.path(relative)
        if path.suffix == COMPACT_SUFFIX:
            return read_snapshot(path)
        with open(path) as handle:
            return cast(ase.Atoms, ase.io.read(handle, format="extxyz"))  # no index: one image

    def extxyz_chunks(self, relative: str) -> Iterator[bytes]:
        """The stored structure as extended XYZ, in chunks (a compact file is converted range by range, never
        whole). The file is opened and its first chunk read before this returns, so a missing or damaged file
        raises here (FileNotFoundError, formats.snapshot.SnapshotFormatError), not halfway through a download."""
        path = self.path(relative)
        if path.suffix == COMPACT_SUFFIX:
            chunks = snapshot_extxyz_chunks(path)
        else:
            chunks = _file_chunks(open(path, "rb"))  # noqa: SIM115 (closed by the generator)
        first = next(chunks, b"")
        return itertools.chain([first], chunks)

    def write_extxyz(self, relative: str, out: IO[bytes]) -> int:
        """Write the stored structure as extended XYZ to a binary file object, chunk by chunk; return the bytes
        written."""
        written = 0
        for chunk in self.extxyz_chunks(relative):
            out.write(chunk)
            written += len(chunk)
        return written


def _file_chunks(handle: IO[bytes]) -> Iterator[bytes]:
    with handle:
        yield from iter(lambda: handle.read(COPY_CHUNK), b"")
