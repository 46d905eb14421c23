"""Content-addressed structure files under the data directory."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path
from typing import cast

import ase
import ase.io


def canonical_extxyz(atoms: ase.Atoms) -> bytes:
    """The extxyz text whose SHA-256 names the file: same atoms, same bytes."""
    buffer = io.StringIO()
    ase.io.write(buffer, atoms, format="extxyz")
    return buffer.getvalue().encode()


class StructureStore:
    def __init__(self, data_dir: Path):
        self.data_dir = Path(data_dir)

    def put(self, atoms: ase.Atoms) -> tuple[str, str]:
        """Write the file if new; return (sha256, path relative to the data directory)."""
        payload = canonical_extxyz(atoms)
        sha256 = hashlib.sha256(payload).hexdigest()
        relative = f"structures/{sha256[:2]}/{sha256}.extxyz"
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
        with open(self.path(relative)) as handle:
            return cast(ase.Atoms, ase.io.read(handle, format="extxyz"))  # no index: one image
