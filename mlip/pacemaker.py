"""ACE potentials with pacemaker's CLI (:func:`train_ace`) on a generated ``input.yaml`` (:func:`pacemaker_input`).

Fitting needs pacemaker's TensorFlow backend (``tensorpotential``): without it (or without the ``pacemaker``
command) :class:`mlip.train.TrainingUnavailable` is raised before anything runs. Errors are computed with
pyace's calculator (meV/atom, meV/A per component, as :func:`mlip.train.rmse`).
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms

from .train import (
    TrainedModel,
    TrainingFailed,
    TrainingInputError,
    TrainingUnavailable,
    _engine_version,
    _run_logged,
    checked_sets,
    rmse,
    start_workdir,
)

__all__ = ["pacemaker_input", "train_ace"]


def pacemaker_input(species: Sequence[str], *, cutoff: float = 5.0, n_functions: int = 72, max_iter: int = 2000,
                    kappa: float = 0.01, test_size: float = 0.0, seed: int = 0,
                    dataset: str = "train.pckl.gzip", test_dataset: str | None = None) -> dict[str, Any]:
    """pacemaker's ``input.yaml`` as a dict (the paper's W settings: cutoff 5 A, 72 functions, kappa 0.01)."""
    if not (np.isfinite(cutoff) and cutoff > 0):
        raise TrainingInputError("cutoff", f"needs a positive distance in A, got {cutoff}")
    data: dict[str, Any] = {"filename": dataset}
    if test_dataset:
        data["test_filename"] = test_dataset
    elif test_size:
        data["test_size"] = float(test_size)
    return {
        "cutoff": float(cutoff),
        "seed": int(seed),
        "metadata": {"origin": "defect-genome mlip.pacemaker"},
        "potential": {
            "deltaSplineBins": 0.001,
            "elements": list(species),
            "embeddings": {"ALL": {
                "npot": "FinnisSinclairShiftedScaled",
                "fs_parameters": [1, 1, 1, 0.5, 1, 0.75, 1, 0.25, 1, 0.125, 1, 0.375, 1, 0.875, 1, 2],
                "ndensity": 8}},
            "bonds": {"ALL": {"radbase": "SBessel", "radparameters": [5.25], "rcut": float(cutoff), "dcut": 0.01,
                              "NameOfCutoffFunction": "cos"}},
            "functions": {"number_of_functions_per_element": int(n_functions),
                          "ALL": {"nradmax_by_orders": [15, 3, 2, 1], "lmax_by_orders": [0, 4, 2, 0]}},
        },
        "data": data,
        "fit": {"loss": {"kappa": float(kappa), "L1_coeffs": 1e-8, "L2_coeffs": 1e-8},
                "optimizer": "BFGS", "maxiter": int(max_iter), "repulsion": "auto"},
        "backend": {"evaluator": "tensorpot", "batch_size": 100, "display_step": 50},
    }


def _pacemaker_available(pacemaker: str | None) -> str:
    binary = shutil.which(pacemaker or "pacemaker") or (
        str(Path(sys.executable).with_name("pacemaker")) if Path(sys.executable).with_name("pacemaker").is_file()
        else None)
    if binary is None:
        raise TrainingUnavailable("pacemaker is not installed: pip install python-ace (and tensorpotential)")
    import importlib.util

    if importlib.util.find_spec("tensorpotential") is None:
        raise TrainingUnavailable("pacemaker is installed but cannot fit: its TensorFlow backend (tensorpotential, "
                                  "tensorflow) is not installed")
    return binary


def train_ace(
    train: Sequence[Atoms],
    *,
    workdir: str | os.PathLike,
    species: Sequence[str] | str | None = None,
    cutoff: float = 5.0,
    n_functions: int = 72,
    max_iter: int = 2000,
    test: Sequence[Atoms] | None = None,
    seed: int = 0,
    pacemaker: str | None = None,
    timeout: float | None = None,
) -> TrainedModel:
    """Fit an ACE potential with pacemaker's CLI; errors computed with pyace's calculator."""
    import yaml

    from .export import write_pacemaker

    started = time.perf_counter()
    binary = _pacemaker_available(pacemaker)
    species, train, test = checked_sets(train, test, species)
    workdir, log = start_workdir(workdir)
    with open(workdir / "train.pckl.gzip", "wb") as handle:
        write_pacemaker(handle, train)
    settings = pacemaker_input(species, cutoff=cutoff, n_functions=n_functions, max_iter=max_iter, seed=seed)
    (workdir / "input.yaml").write_text(yaml.safe_dump(settings, sort_keys=False))
    _run_logged([binary, "input.yaml", "--no-predict"], workdir, log, timeout)
    output = workdir / "output_potential.yaml"
    if not output.is_file():
        raise TrainingFailed(f"pacemaker wrote no {output} (log: {log})")
    from pyace import PyACECalculator

    errors: dict[str, dict[str, float] | None] = {}
    for label, images in (("train", train), ("test", test)):
        if not images:
            errors[label] = None
            continue
        energies, forces = [], []
        for atoms in images:
            work = Atoms(atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
            work.calc = PyACECalculator(str(output))
            energies.append(work.get_potential_energy() / len(work))
            forces.append(work.get_forces())
        errors[label] = rmse(images, energies, forces)
    model = TrainedModel(path=output, kind="ace", species=species, n_train=len(train), n_test=len(test),
                         rmse=errors, engine=_engine_version("python-ace"), wall_time_s=time.perf_counter() - started,
                         settings={"cutoff": cutoff, "n_functions": n_functions, "max_iter": max_iter}, log=log)
    model.save()
    return model
