"""Shared parts of MLIP training (stage 6): the model record, the errors, the sets and how they are measured.

The trainers live beside it: MTP with motep (:mod:`mlip.motep_trainer`, on MLIP's generated level-N basis,
:mod:`mlip.mtp_basis`), MLIP-3's ``mlp train`` (:mod:`mlip.mlip3`), ACE with pacemaker (:mod:`mlip.pacemaker`),
SNAP (:mod:`mlip.snap`); :mod:`mlip.trainers` puts them behind one contract. Here: :class:`TrainedModel`,
the training errors (:class:`TrainingInputError`, :class:`TrainingUnavailable`, :class:`TrainingFailed`),
:func:`split`, :func:`rmse`, :func:`evaluate` (an ``.mtp`` potential with motep's calculator) and the helpers
the trainers share (set checks, ``.cfg`` files, logged engine runs).

Units: energies eV, forces eV/A, distances A. Errors are stored in meV: ``energy_mev_per_atom``
(RMS of (E_model - E_ref) / N over configurations), ``forces_mev_per_A`` (RMS over every Cartesian
force component, the convention of motep and pacemaker) and ``forces_norm_mev_per_A`` (RMS over
atoms of |F_model - F_ref|, the convention of MLIP's error report; sqrt(3) times the former when
the error is isotropic).

Every model is stored with a JSON sidecar (``<model>.json``: level, species, set sizes, RMSEs,
engine and version, wall time, settings); :meth:`TrainedModel.load` reads it.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.data import atomic_numbers

__all__ = [
    "TrainedModel",
    "TrainingFailed",
    "TrainingInputError",
    "TrainingUnavailable",
    "evaluate",
    "rmse",
    "split",
]

SIDE_CAR = ".json"


class TrainingInputError(ValueError):
    """Bad training input; ``field`` names the argument (``train``, ``test``, ``level``, ...)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class TrainingUnavailable(RuntimeError):
    """The training engine is not installed or not configured on this machine."""


class TrainingFailed(RuntimeError):
    """The training engine ran and failed (its log tail is in the message)."""


# --------------------------------------------------------------------------- data helpers


def _species_of(images: Sequence[Atoms], species: Sequence[str] | str | None) -> tuple[str, ...]:
    if species is None:
        return tuple(sorted({s for atoms in images for s in atoms.get_chemical_symbols()}))
    species = (species,) if isinstance(species, str) else tuple(species)
    bad = [s for s in species if s not in atomic_numbers]
    if bad or not species or len(set(species)) != len(species):
        raise TrainingInputError("species", f"needs distinct chemical symbols, got {list(species)}")
    return species


def checked_sets(train: Sequence[Atoms] | None, test: Sequence[Atoms] | None,
                 species: Sequence[str] | str | None) -> tuple[tuple[str, ...], list[Atoms], list[Atoms]]:
    """A trainer's inputs checked: the species (given, or those of both sets) and the train (non-empty) and
    test sets, each labelled and of those species (TrainingInputError naming the set)."""
    species = _species_of(list(train or []) + list(test or []), species)
    return (species, _check_set(train, "train", species, allow_empty=False),
            _check_set(test, "test", species, allow_empty=True))


def start_workdir(workdir: str | os.PathLike) -> tuple[Path, Path]:
    """The trainer's work directory (created) and its emptied ``train.log``."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / "train.log"
    log.write_text("")
    return workdir, log


def _check_set(images: Sequence[Atoms] | None, name: str, species: Sequence[str], *, allow_empty: bool) -> list[Atoms]:
    from .export import ExportError, check_labelled

    images = [] if images is None else list(images)
    if not images:
        if allow_empty:
            return images
        raise TrainingInputError(name, "the set is empty: give at least one labelled configuration")
    for number, atoms in enumerate(images):
        if not isinstance(atoms, Atoms):
            raise TrainingInputError(name, f"{name}[{number}] is a {type(atoms).__name__}, not ase.Atoms")
    try:
        check_labelled(images)
    except ExportError as error:
        raise TrainingInputError(name, str(error)) from None
    for number, atoms in enumerate(images):
        unknown = sorted(set(atoms.get_chemical_symbols()) - set(species))
        if unknown:
            raise TrainingInputError(name, f"configuration {number} has {', '.join(unknown)}, not in species "
                                           f"{list(species)}")
        pbc = np.asarray(atoms.pbc, dtype=bool)
        if pbc.any() and not pbc.all():
            raise TrainingInputError(name, f"configuration {number} is periodic along some directions only "
                                           f"({pbc.tolist()}); use fully periodic cells or clusters")
    return images


def split(images: Sequence[Atoms], test_fraction: float = 0.1, seed: int = 0) -> tuple[list[Atoms], list[Atoms]]:
    """(train, test): a seeded random ``test_fraction`` of the configurations (rounded) is the test set.

    Deterministic for a given seed and set order; both parts keep the input order.
    """
    images = list(images)
    if not images:
        raise TrainingInputError("images", "the set is empty")
    if not (isinstance(test_fraction, (int, float)) and 0.0 <= test_fraction < 1.0):
        raise TrainingInputError("test_fraction", f"must be in [0, 1), got {test_fraction!r}")
    n_test = round(test_fraction * len(images))
    if n_test >= len(images):
        n_test = len(images) - 1
    chosen = set(np.random.default_rng(seed).permutation(len(images))[:n_test].tolist())
    train = [atoms for i, atoms in enumerate(images) if i not in chosen]
    test = [atoms for i, atoms in enumerate(images) if i in chosen]
    return train, test


def rmse(images: Sequence[Atoms], energies_per_atom: Sequence[float] | np.ndarray,
         forces: Sequence[np.ndarray]) -> dict[str, float]:
    """Errors of model predictions against the labels of ``images`` (meV/atom, meV/A).

    ``energies_per_atom`` (eV/atom) and ``forces`` (eV/A, one (n, 3) array per configuration) are the
    model's, as :func:`evaluate` returns them. Keys: ``energy_mev_per_atom``, ``forces_mev_per_A``
    (per Cartesian component), ``forces_norm_mev_per_A`` (per atom, |dF|), ``n_configurations``,
    ``n_atoms``.
    """
    images = list(images)
    if len(images) != len(energies_per_atom) or len(images) != len(forces):
        raise TrainingInputError("images", f"{len(images)} configurations but {len(energies_per_atom)} energies "
                                           f"and {len(forces)} force arrays")
    if not images:
        raise TrainingInputError("images", "the set is empty")
    de = np.array([float(e) - atoms.get_potential_energy() / len(atoms)
                   for e, atoms in zip(energies_per_atom, images)])
    df = np.concatenate([np.asarray(f, dtype=float).reshape(-1, 3) - atoms.get_forces()
                         for f, atoms in zip(forces, images)])
    return {
        "energy_mev_per_atom": float(np.sqrt(np.mean(de**2)) * 1000.0),
        "forces_mev_per_A": float(np.sqrt(np.mean(df**2)) * 1000.0),
        "forces_norm_mev_per_A": float(np.sqrt(np.mean(np.sum(df**2, axis=1))) * 1000.0),
        "n_configurations": len(images),
        "n_atoms": int(df.shape[0]),
    }


# --------------------------------------------------------------------------- the model record


@dataclass
class TrainedModel:
    """A trained potential and how good it is. ``rmse`` = {"train": {...}, "test": {...} or None}."""

    path: Path
    kind: str  # "mtp", "mlip3", "ace"
    species: tuple[str, ...]
    n_train: int
    n_test: int
    rmse: dict[str, dict[str, float] | None]
    engine: str
    wall_time_s: float
    level: int | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    log: Path | None = None

    @property
    def metadata_path(self) -> Path:
        return self.path.with_name(self.path.name + SIDE_CAR)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["path"] = self.path.name  # the sidecar sits next to the model
        data["log"] = str(self.log) if self.log else None
        data["species"] = list(self.species)
        data["units"] = {"energy_mev_per_atom": "meV/atom", "forces_mev_per_A": "meV/A per component",
                         "forces_norm_mev_per_A": "meV/A per atom (|dF|)", "wall_time_s": "s"}
        return data

    def save(self) -> Path:
        self.metadata_path.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")
        return self.metadata_path

    @classmethod
    def load(cls, path: str | os.PathLike) -> TrainedModel:
        """From the model file (``pot.mtp``) or its sidecar (``pot.mtp.json``)."""
        path = Path(path)
        meta = path if path.name.endswith(SIDE_CAR) else path.with_name(path.name + SIDE_CAR)
        data = json.loads(meta.read_text())
        data.pop("units", None)
        data["path"] = meta.with_name(data["path"])
        data["species"] = tuple(data["species"])
        data["log"] = Path(data["log"]) if data.get("log") else None
        return cls(**data)


def _engine_version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"{package} {version(package)}"
    except PackageNotFoundError:  # pragma: no cover
        return package


# --------------------------------------------------------------------------- MTP: evaluation


def _read_mtp(model_path: str | os.PathLike, species: Sequence[str]):
    from motep.io.mlip.mtp import read_mtp

    path = Path(model_path)
    if not path.is_file():
        raise TrainingInputError("model_path", f"no .mtp file at {path}")
    try:
        data = read_mtp(path)
    except Exception as error:  # motep raises bare KeyError/ValueError on files it cannot parse
        raise TrainingInputError(
            "model_path", f"motep cannot read {path}: {type(error).__name__}: {error} (MTP files must be in the "
                          "MLIP layout, write_mtp(..., legacy=True); MLIP-3 .almtp files are not readable)") from None
    if data.species_count != len(species):
        raise TrainingInputError("species", f"{path.name} has {data.species_count} species, species lists "
                                            f"{len(species)} ({list(species)})")
    data.species = [atomic_numbers[s] for s in species]
    return data


def evaluate(model_path: str | os.PathLike, images: Sequence[Atoms], species: Sequence[str] | str = ("W",),
             engine: str = "cext") -> tuple[np.ndarray, list[np.ndarray]]:
    """Energies per atom (eV/atom, array of n) and forces (eV/A, list of (n_i, 3)) of an ``.mtp`` potential.

    motep's ASE calculator in run mode; ``species`` are the elements of MTP types 0, 1, ...
    """
    from motep.calculator import make_calculator

    species = _species_of([], species)
    data = _read_mtp(model_path, species)
    energies, forces = [], []
    for number, atoms in enumerate(images):
        unknown = sorted(set(atoms.get_chemical_symbols()) - set(species))
        if unknown:
            raise TrainingInputError("images", f"configuration {number} has {', '.join(unknown)}, not in species "
                                               f"{list(species)}")
        work = Atoms(atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
        work.calc = make_calculator(data, engine=engine, mode="run")
        energies.append(work.get_potential_energy() / len(work))
        forces.append(np.array(work.get_forces(), dtype=float))
    return np.array(energies, dtype=float), forces


# --------------------------------------------------------------------------- engine runs


def _write_cfg_file(path: Path, images: Sequence[Atoms], species: Sequence[str]) -> None:
    from formats.mtp import write_cfg

    with open(path, "w") as handle:
        write_cfg(handle, images, species)


def _run_logged(command: Sequence[str], cwd: Path, log: Path, timeout: float | None, env=None) -> None:
    with open(log, "ab") as handle:
        try:
            done = subprocess.run(list(command), cwd=cwd, stdout=handle, stderr=subprocess.STDOUT,
                                  timeout=timeout, env=env)
        except subprocess.TimeoutExpired:
            raise TrainingFailed(f"{' '.join(command)} timed out after {timeout} s (log: {log})") from None
    if done.returncode != 0:
        tail = log.read_text(errors="replace").strip().splitlines()[-8:]
        raise TrainingFailed(f"{' '.join(command)} exited with {done.returncode} (log: {log}): " + " | ".join(tail))
