"""Trainers behind one contract, as the labelling backends are: what on-the-fly learning needs of a model kind.

A :class:`Trainer` holds its settings (the recipe, built once) and takes the data per call:

- ``train(train, test, workdir)`` -> :class:`mlip.train.TrainedModel` (its ``path`` is the model file, its
  ``rmse`` the train/test errors in meV/atom and meV/A);
- ``basis(model_path, species)`` -> the linear basis whose rows grade the model's extrapolation (gamma);
- ``md(target, model_path, basis, active_set, gamma_select=, gamma_break=, check_every=, on_check=)`` ->
  (:class:`mlip.otf.OTFRun`, graded snapshots above gamma_select), with the stop rules of
  :func:`mlip.otf.grade_run`.

``mtp``: motep (:func:`mlip.train.train_mtp`), graded with the MTP's own basis (motep's Jacobian rows), MD
in ASE with motep's calculator. ``snap``: :func:`mlip.snap.train_snap`, graded with the bispectrum basis of
the model's settings, MD inside LAMMPS (:func:`mlip.snap_md.run_graded_snap`). The MLIP-3 and pacemaker
command lines (:func:`mlip.train.train_mlip3`, :func:`mlip.train.train_ace`) train only: they have no MD
step here.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from ase import Atoms

from schemas.training import SnapTrainingParams

from .otf import MDTarget, OTFRun, grade_run
from .train import TrainedModel

__all__ = ["MtpTrainer", "SnapTrainer", "Trainer"]

Graded = list[tuple[Atoms, np.ndarray, np.ndarray]]


class Trainer(Protocol):
    kind: str
    model_file: str  # the model's file name in its work directory

    def train(self, train: Sequence[Atoms], test: Sequence[Atoms] | None, workdir: Path) -> TrainedModel: ...

    def basis(self, model_path: str | os.PathLike, species: Sequence[str]) -> Any: ...

    def md(self, target: MDTarget, model_path: str | os.PathLike, basis: Any, active_set: Any, *,
           gamma_select: float, gamma_break: float, check_every: int,
           on_check: Callable[[int], None] | None = None) -> tuple[OTFRun, Graded]: ...


@dataclass
class MtpTrainer:
    """A moment tensor potential: ``settings`` are :func:`mlip.train.train_mtp`'s keywords (level, max_iter, ...)."""

    settings: dict[str, Any] = field(default_factory=dict)
    kind: str = "mtp"
    model_file: str = "pot.mtp"

    def train(self, train: Sequence[Atoms], test: Sequence[Atoms] | None, workdir: Path) -> TrainedModel:
        from .train import _species_of, train_mtp

        species = list(_species_of(list(train), self.settings.get("species")))
        settings = {k: v for k, v in self.settings.items() if k != "species"}
        return train_mtp(list(train), test=list(test) if test else None, workdir=workdir, species=species,
                         name=self.model_file, **settings)

    def basis(self, model_path: str | os.PathLike, species: Sequence[str]) -> Any:
        from selection.bases import make_basis

        return make_basis("mtp", mtp_file=Path(model_path), species=list(species))

    def md(self, target: MDTarget, model_path: str | os.PathLike, basis: Any, active_set: Any, *,
           gamma_select: float, gamma_break: float, check_every: int,
           on_check: Callable[[int], None] | None = None) -> tuple[OTFRun, Graded]:
        return grade_run(target, model_path, basis, active_set, species=tuple(basis.species),
                         gamma_select=gamma_select, gamma_break=gamma_break, check_every=check_every,
                         on_check=on_check)


@dataclass
class SnapTrainer:
    """A linear or quadratic SNAP with ``params`` (:class:`schemas.training.SnapTrainingParams`)."""

    params: SnapTrainingParams = field(default_factory=SnapTrainingParams)
    species: Sequence[str] | None = None
    kind: str = "snap"
    model_file: str = "snap.snapcoeff"

    def train(self, train: Sequence[Atoms], test: Sequence[Atoms] | None, workdir: Path) -> TrainedModel:
        from .snap import train_snap

        model = train_snap(list(train), workdir=workdir, params=self.params, test=list(test) if test else None,
                           species=self.species, name=Path(self.model_file).stem)
        model.save()
        return model

    def basis(self, model_path: str | os.PathLike, species: Sequence[str]) -> Any:
        from .snap import SnapModel
        from .snap_md import snap_basis

        return snap_basis(SnapModel.load(model_path))

    def md(self, target: MDTarget, model_path: str | os.PathLike, basis: Any, active_set: Any, *,
           gamma_select: float, gamma_break: float, check_every: int,
           on_check: Callable[[int], None] | None = None) -> tuple[OTFRun, Graded]:
        from .snap import SnapModel
        from .snap_md import run_graded_snap

        progress = None if on_check is None else (lambda graded: on_check(int(graded.step)))
        return run_graded_snap(target, SnapModel.load(model_path), basis, active_set, gamma_select=gamma_select,
                               gamma_break=gamma_break, check_every=check_every, on_snapshot=progress)
