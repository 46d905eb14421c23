"""File-level entry point of PCC-GCMC for the ``defect-genome`` CLI (the click command lives in app.cli)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from .params import GCMCParams
from .reconstruction import ReconstructionError, default_core_mask, reconstruct

__all__ = ["read_cluster", "reconstruct_file", "write_reconstruction"]


def read_cluster(path: str | os.PathLike, core_radius: float | None = None) -> tuple[Any, np.ndarray]:
    """The cluster of ``path`` (any ASE-readable file, last frame) and its core mask.

    The core is the per-atom bool array ``core`` if the file has one, else the atoms within
    ``core_radius`` of the atom flagged ``centre`` or, without flags, the atom nearest the cluster's
    geometric centre. ``core_radius`` None: GCMCParams' default.
    """
    import ase.io
    from ase import Atoms

    if core_radius is None:
        core_radius = GCMCParams.model_fields["core_radius"].default

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"cluster file {path} not found")
    try:
        atoms = ase.io.read(path, index=-1)
    except Exception as error:  # ASE raises many types for unreadable files
        raise ReconstructionError(f"cannot read cluster file {path}: {error}") from error
    assert isinstance(atoms, Atoms), "ase.io.read with index=-1 returns one image"
    if "core" in atoms.arrays:
        core = np.asarray(atoms.arrays["core"], dtype=bool)
        if not core.any():
            raise ReconstructionError(f"{path}: the 'core' array flags no atom")
    else:
        core = default_core_mask(atoms, core_radius)
    return atoms, core


def write_reconstruction(reconstruction: Any, out_path: str | os.PathLike) -> Path:
    """Periodic extxyz of the best cell (arrays core/inserted/seeded) and ``<out>.candidates.json``."""
    import ase.io

    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    ase.io.write(out_path, reconstruction.atoms, format="extxyz")
    table = out_path.with_name(out_path.name + ".candidates.json")
    table.write_text(json.dumps(reconstruction.summary(), indent=1, default=float))
    return table


def reconstruct_file(
    cluster_path: str | os.PathLike,
    potential_name: str,
    out_path: str | os.PathLike,
    **params: Any,
) -> dict[str, Any]:
    """Reconstruct the cluster in ``cluster_path`` into a periodic cell written to ``out_path`` (extxyz).

    Keyword arguments are :class:`GCMCParams` fields (max_atoms, grid, seed, core_radius, steps, ...; the
    rest keep GCMCParams' defaults), plus
    ``max_workers`` (processes, default 2). Also writes ``<out_path>.candidates.json`` (the grid).
    Returns a JSON-ready summary: best energy per atom, atom counts, minimum distance, box, the
    candidate table, the output paths.
    """
    max_workers = int(params.pop("max_workers", 2))
    settings = GCMCParams(**params)
    atoms, core = read_cluster(cluster_path, settings.core_radius)
    result = reconstruct(atoms, core, potential_name, settings, max_workers=max_workers)
    result.atoms.info["cluster_file"] = str(cluster_path)
    table = write_reconstruction(result, out_path)
    summary = result.summary()
    summary.update({"output": str(out_path), "candidates_file": str(table), "cluster": str(cluster_path),
                    "potential": potential_name})
    return summary
