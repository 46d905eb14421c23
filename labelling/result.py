"""Small dataclasses passed between backends, launchers and the ledger."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

RESULT_FILE = "result.json"
ERROR_FILE = "error.json"
JOB_FILE = "job.json"
RUN_LOG = "run.log"
#: The electron density a GPAW label stores with ``save_density`` (np.savez_compressed; formats.density reads it).
DENSITY_FILE = "density.npz"


@dataclass
class LabelResult:
    """One labelled configuration.

    ``energy``: free energy (eV), the energy consistent with ``forces`` (VASP's TOTEN / "free
    energy", GPAW's free energy, QE's "!" total energy with smearing). ``energy_zero``: the
    sigma -> 0 estimate where the engine reports one. ``forces`` eV/A, shape (n, 3), input atom
    order. ``stress`` eV/A^3, 6 Voigt (xx yy zz yz xz xy), ASE sign (stress = -pressure), or None
    for non-periodic cells or when not computed. ``density_file``: the stored electron density
    (``density.npz``, see :data:`DENSITY_FILE`), relative to the label's work directory, when the settings
    asked for it (``save_density``), else None (then not written to result.json, which stays as before).
    """

    energy: float
    forces: np.ndarray
    stress: np.ndarray | None
    engine: str
    engine_version: str
    settings_hash: str
    converged: bool = True
    wall_time: float = 0.0
    n_scf: int | None = None
    energy_zero: float | None = None
    kpts: tuple[int, int, int] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    density_file: str | None = None

    def __post_init__(self) -> None:
        self.energy = float(self.energy)
        self.forces = np.asarray(self.forces, dtype=float).reshape(-1, 3)
        if self.stress is not None:
            stress = np.asarray(self.stress, dtype=float)
            if stress.shape == (3, 3):
                stress = stress[[0, 1, 2, 1, 0, 0], [0, 1, 2, 2, 2, 1]]
            self.stress = stress.reshape(6)
        if self.kpts is not None:
            kx, ky, kz = self.kpts
            self.kpts = (int(kx), int(ky), int(kz))

    @property
    def efs_by(self) -> str:
        """Who labelled it, as exports say (MTP ``Feature EFS_by``, extxyz ``label_engine``): a reference potential
        ``lammps:<potential name>``, else ``<engine> <engine version>``."""
        return str(self.extra.get("efs_by") or f"{self.engine} {self.engine_version}")

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "energy": self.energy,
            "forces": self.forces.tolist(),
            "stress": None if self.stress is None else self.stress.tolist(),
            "engine": self.engine,
            "engine_version": self.engine_version,
            "settings_hash": self.settings_hash,
            "converged": bool(self.converged),
            "wall_time": float(self.wall_time),
            "n_scf": self.n_scf,
            "energy_zero": self.energy_zero,
            "kpts": None if self.kpts is None else list(self.kpts),
            "extra": self.extra,
        }
        if self.density_file is not None:  # only when stored: labels without a density read and write as before
            data["density_file"] = self.density_file
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LabelResult:
        return cls(**data)

    def to_atoms(self, atoms, source: str = "labelling"):
        """A copy of ``atoms`` carrying the label (SinglePointCalculator + info per DESIGN section 3)."""
        from ase.calculators.singlepoint import SinglePointCalculator

        labelled = atoms.copy()
        results: dict[str, Any] = {"energy": self.energy, "free_energy": self.energy, "forces": self.forces.copy()}
        if self.stress is not None:
            results["stress"] = self.stress.copy()
        labelled.calc = SinglePointCalculator(labelled, **results)
        labelled.info["energy"] = self.energy
        if self.stress is not None:
            labelled.info["stress"] = self.stress.copy()
        labelled.info["source"] = source
        labelled.info["label_engine"] = self.efs_by
        labelled.info["label_settings_hash"] = self.settings_hash
        return labelled


@dataclass(frozen=True)
class RunOutcome:
    """How a run ended, as a launcher saw it.

    ``state``: COMPLETED (exit 0), FAILED (non-zero exit), TIMEOUT, NODE_FAIL, CANCELLED,
    OUT_OF_MEMORY (Slurm's words; the local launcher uses the same ones).
    """

    returncode: int | None
    state: str
    wall_time: float = 0.0
    job_id: str | None = None
    reason: str | None = None


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON via a temporary file and rename, so a killed writer leaves no half file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)


def run_job_main(argv: list[str], engine: str, calculate: Callable[..., LabelResult],
                 classify: Callable[[Exception], tuple[str, int]] | None = None) -> int:
    """The body of ``python -m labelling.<engine>_run WORKDIR``: job.json + atoms.json in, result.json out.

    ``calculate(atoms, settings, job, workdir) -> LabelResult``; ``classify(error) -> (failure class,
    exit code)`` for errors the engine recognises (default: ``unknown``, exit 1). A failure writes
    error.json, which labelling.failures reads.
    """
    import sys
    import traceback

    from ase.io import read

    from .settings import DFTSettings

    if len(argv) != 1:
        print(f"usage: python -m labelling.{engine}_run WORKDIR", file=sys.stderr)
        return 2
    workdir = Path(argv[0]).resolve()
    job = json.loads((workdir / JOB_FILE).read_text())
    settings = DFTSettings.from_dict(job["settings"])
    atoms = read(workdir / "atoms.json")
    try:
        result = calculate(atoms, settings, job, workdir)
    except Exception as error:  # classified and reported
        failure, code = classify(error) if classify else ("unknown", 1)
        write_json_atomic(
            workdir / ERROR_FILE,
            {"class": failure, "exception": type(error).__name__,
             "message": str(error) or ("Did not converge!" if failure == "scf_not_converged" else ""),
             "traceback": traceback.format_exc()},
        )
        print(f"{engine}_run: {type(error).__name__}: {error}", file=sys.stderr)
        return code
    write_json_atomic(workdir / RESULT_FILE, result.to_dict())
    return 0
