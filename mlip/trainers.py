"""Trainers behind one contract, as the labelling backends are: every model kind trains the same way, and the
kinds on-the-fly learning can run also grade and run MD.

A :class:`Trainer` holds its settings (the recipe, built once) and takes the data per call; ``kind`` names it
(:data:`TRAINERS` maps each kind to its class) and ``model_file`` is the model's file name in its work directory:

- ``train(train, test, workdir)`` -> :class:`mlip.train.TrainedModel` (its ``path`` is the model file, its
  ``rmse`` the train/test errors in meV/atom and meV/A). An engine that is not installed raises
  :class:`mlip.train.TrainingUnavailable` before anything runs.

A :class:`LearningTrainer` (what on-the-fly learning needs, :mod:`mlip.otf`) adds:

- ``basis(model_path, species)`` -> the linear basis whose rows grade the model's extrapolation (gamma);
- ``md(target, model_path, basis, active_set, gamma_select=, gamma_break=, check_every=, on_check=)`` ->
  (:class:`mlip.otf.OTFRun`, graded snapshots above gamma_select), with the stop rules of
  :func:`mlip.otf.grade_run`.

Learning trainers: ``mtp``, motep (:func:`mlip.motep_trainer.train_mtp`), graded with the MTP's own basis
(motep's Jacobian rows), MD in ASE with motep's calculator; ``snap``, :func:`mlip.snap.train_snap`, graded
with the bispectrum basis of the model's settings, MD inside LAMMPS (:func:`mlip.snap_md.run_graded_snap`).
Trainers only: ``mlip3``, MLIP-3's ``mlp train`` (:func:`mlip.mlip3.train_mlip3`, the binary of
``DG_MLP_BINARY``), and ``ace``, pacemaker (:func:`mlip.pacemaker.train_ace`); they have no MD or grading
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

__all__ = ["TRAINERS", "AceTrainer", "LearningTrainer", "Mlip3Trainer", "MtpTrainer", "SnapTrainer", "Trainer"]

Graded = list[tuple[Atoms, np.ndarray, np.ndarray]]


class Trainer(Protocol):
    """Trains a model of its ``kind`` on labelled configurations."""

    kind: str
    model_file: str  # the model's file name in its work directory

    def train(self, train: Sequence[Atoms], test: Sequence[Atoms] | None, workdir: Path) -> TrainedModel: ...


class LearningTrainer(Trainer, Protocol):
    """A trainer whose models on-the-fly learning can grade (``basis``) and run MD with (``md``)."""

    def basis(self, model_path: str | os.PathLike, species: Sequence[str]) -> Any: ...

    def md(self, target: MDTarget, model_path: str | os.PathLike, basis: Any, active_set: Any, *,
           gamma_select: float, gamma_break: float, check_every: int,
           on_check: Callable[[int], None] | None = None) -> tuple[OTFRun, Graded]: ...


@dataclass
class MtpTrainer:
    """A moment tensor potential by motep: ``settings`` are :func:`mlip.motep_trainer.train_mtp`'s keywords
    (level, max_iter, ...)."""

    settings: dict[str, Any] = field(default_factory=dict)
    kind: str = "mtp"
    model_file: str = "pot.mtp"

    def train(self, train: Sequence[Atoms], test: Sequence[Atoms] | None, workdir: Path) -> TrainedModel:
        from .motep_trainer import train_mtp
        from .train import _species_of

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


@dataclass
class Mlip3Trainer:
    """An MTP by MLIP-3's ``mlp train``: ``settings`` are :func:`mlip.mlip3.train_mlip3`'s keywords (level,
    max_iter, mlp, ...; the binary from ``DG_MLP_BINARY`` when ``mlp`` is not given). No MD or grading here."""

    settings: dict[str, Any] = field(default_factory=dict)
    kind: str = "mlip3"
    model_file: str = "pot.almtp"

    def train(self, train: Sequence[Atoms], test: Sequence[Atoms] | None, workdir: Path) -> TrainedModel:
        from .mlip3 import train_mlip3

        return train_mlip3(list(train), test=list(test) if test else None, workdir=workdir, name=self.model_file,
                           **self.settings)


@dataclass
class AceTrainer:
    """An ACE potential by pacemaker: ``settings`` are :func:`mlip.pacemaker.train_ace`'s keywords (cutoff,
    n_functions, max_iter, ...). pacemaker names its model ``output_potential.yaml``. No MD or grading here."""

    settings: dict[str, Any] = field(default_factory=dict)
    kind: str = "ace"
    model_file: str = field(default="output_potential.yaml", init=False)  # pacemaker's fixed output name

    def train(self, train: Sequence[Atoms], test: Sequence[Atoms] | None, workdir: Path) -> TrainedModel:
        from .pacemaker import train_ace

        return train_ace(list(train), test=list(test) if test else None, workdir=workdir, **self.settings)


TRAINERS: dict[str, type[Trainer]] = {"mtp": MtpTrainer, "snap": SnapTrainer, "mlip3": Mlip3Trainer, "ace": AceTrainer}
