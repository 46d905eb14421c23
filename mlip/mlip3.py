"""MTP training with MLIP-3's ``mlp`` (:func:`train_mlip3`): the user's binary, configured by ``mlp=`` or
``DG_MLP_BINARY`` (MLIP-3 is in no package registry).

The command lines are templates (:data:`MLIP3_TRAIN_COMMAND`, :data:`MLIP3_EFS_COMMAND`, filled by
:func:`mlip3_command`) so another MLIP version's syntax can be given; :func:`parse_mlip_errors` reads MLIP's
"Errors report" (RMSEs in meV, MLIP's force error per atom, |dF|). Training starts from a generated level-N
template (:func:`mlip.mtp_basis.write_mtp_template`).
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms

from .mtp_basis import _check_level, _check_radial, write_mtp_template
from .train import (
    TrainedModel,
    TrainingFailed,
    TrainingInputError,
    TrainingUnavailable,
    _run_logged,
    _write_cfg_file,
    checked_sets,
    rmse,
    start_workdir,
)

__all__ = ["MLIP3_EFS_COMMAND", "MLIP3_TRAIN_COMMAND", "mlip3_command", "parse_mlip_errors", "train_mlip3"]

MLIP3_TRAIN_COMMAND = ("{mlp}", "train", "{potential}", "{train}", "--save_to={output}",
                       "--iteration_limit={max_iter}", "--al_mode=nbh")
MLIP3_EFS_COMMAND = ("{mlp}", "calculate_efs", "{potential}", "{input}", "--output_filename={output}")


def mlip3_command(template: Sequence[str], **values: Any) -> list[str]:
    """A command line from a template; every ``{name}`` must be given."""
    try:
        return [part.format(**{k: str(v) for k, v in values.items()}) for part in template]
    except KeyError as error:
        raise TrainingInputError("command", f"the template {list(template)} needs {error.args[0]!r}") from None


_ERROR_SECTIONS = {"Energy": "energy", "Energy per atom": "energy_per_atom", "Forces": "forces"}


def parse_mlip_errors(text: str) -> dict[str, float]:
    """The last "Errors report" of MLIP's output -> RMSEs in meV (``energy_mev_per_atom``,
    ``forces_norm_mev_per_A``: MLIP's force error is per atom, |dF|), counts and maxima.
    """
    start = text.rfind("Errors report")
    if start < 0:
        raise TrainingFailed("no 'Errors report' in MLIP's output")
    section = None
    values: dict[str, float] = {}
    for line in text[start:].splitlines()[1:]:
        stripped = line.strip()
        if stripped.endswith(":") and stripped[:-1] in _ERROR_SECTIONS:
            section = _ERROR_SECTIONS[stripped[:-1]]
            continue
        if stripped.endswith(":") or stripped.startswith("Stresses"):
            section = None
            continue
        if section is None or ("=" not in stripped and not stripped.startswith("Errors checked")):
            continue
        if stripped.startswith("Errors checked for"):
            match = re.search(r"for\s+(\d+)", stripped)
            if match:
                values[f"{section}_count"] = int(match.group(1))
            continue
        key, _, number = stripped.partition("=")
        try:
            value = float(number.split()[0])
        except (ValueError, IndexError):
            continue
        key = " ".join(key.split())
        if key.startswith("RMS absolute"):
            values[f"{section}_rms"] = value
        elif key.startswith("Maximal absolute"):
            values[f"{section}_max"] = value
    if "energy_per_atom_rms" not in values or "forces_rms" not in values:
        raise TrainingFailed("MLIP's errors report has no energy-per-atom or force RMS line")
    return {
        "energy_mev_per_atom": values["energy_per_atom_rms"] * 1000.0,
        "forces_norm_mev_per_A": values["forces_rms"] * 1000.0,
        "n_configurations": values.get("energy_per_atom_count", values.get("energy_count", 0)),
        "n_atoms": values.get("forces_count", 0),
        "energy_max_mev_per_atom": values.get("energy_per_atom_max", float("nan")) * 1000.0,
        "forces_max_mev_per_A": values.get("forces_max", float("nan")) * 1000.0,
    }


def _mlp_binary(mlp: str | os.PathLike | None) -> str:
    mlp = mlp if mlp is not None else os.environ.get("DG_MLP_BINARY")
    if not mlp:
        raise TrainingUnavailable("MLIP-3 is not configured: set DG_MLP_BINARY (or pass mlp=) to the path of its "
                                  "`mlp` executable; MLIP-3 is in no package registry (https://gitlab.com/ashapeev/mlip-3)")
    resolved = str(mlp) if Path(mlp).is_file() else shutil.which(str(mlp))
    if resolved is None:
        raise TrainingUnavailable(f"MLIP-3 binary {str(mlp)!r} not found")
    return resolved


def train_mlip3(
    train: Sequence[Atoms],
    *,
    workdir: str | os.PathLike,
    level: int = 8,
    species: Sequence[str] | str | None = None,
    min_dist: float = 2.0,
    max_dist: float = 5.0,
    radial_basis_size: int = 8,
    max_iter: int = 1000,
    test: Sequence[Atoms] | None = None,
    mlp: str | os.PathLike | None = None,
    train_command: Sequence[str] = MLIP3_TRAIN_COMMAND,
    efs_command: Sequence[str] = MLIP3_EFS_COMMAND,
    name: str = "pot.almtp",
    timeout: float | None = None,
) -> TrainedModel:
    """Train with MLIP-3's ``mlp train`` from a generated level-``level`` template.

    Train errors come from MLIP's report (``parse_mlip_errors``); test errors from ``efs_command``
    (energies and forces of the test set written to a ``.cfg``, compared here with :func:`rmse`).
    """
    started = time.perf_counter()
    binary = _mlp_binary(mlp)
    level = _check_level(level)
    _check_radial(min_dist, max_dist, radial_basis_size)
    if isinstance(max_iter, bool) or not isinstance(max_iter, (int, np.integer)) or max_iter < 0:
        raise TrainingInputError("max_iter", f"needs an integer >= 0, got {max_iter!r}")
    species, train, test = checked_sets(train, test, species)
    workdir, log = start_workdir(workdir)
    write_mtp_template(workdir / "init.almtp", level, len(species), min_dist=min_dist, max_dist=max_dist,
                       radial_basis_size=radial_basis_size)
    _write_cfg_file(workdir / "train.cfg", train, species)
    output = workdir / name
    command = mlip3_command(train_command, mlp=binary, potential="init.almtp", train="train.cfg", output=name,
                            max_iter=max_iter)
    _run_logged(command, workdir, log, timeout)
    if not output.is_file():
        raise TrainingFailed(f"{' '.join(command)} wrote no {output} (log: {log})")
    errors: dict[str, dict[str, float] | None] = {"train": parse_mlip_errors(log.read_text(errors="replace")),
                                                  "test": None}
    if test:
        from formats.mtp import read_cfg

        _write_cfg_file(workdir / "test.cfg", test, species)
        command = mlip3_command(efs_command, mlp=binary, potential=name, input="test.cfg", output="test_efs.cfg")
        _run_logged(command, workdir, log, timeout)
        with open(workdir / "test_efs.cfg") as handle:
            predicted = read_cfg(handle, species)
        if len(predicted) != len(test):
            raise TrainingFailed(f"{' '.join(command)} returned {len(predicted)} of {len(test)} configurations")
        errors["test"] = rmse(test, [a.get_potential_energy() / len(a) for a in predicted],
                              [a.get_forces() for a in predicted])
    model = TrainedModel(path=output, kind="mlip3", species=species, n_train=len(train), n_test=len(test),
                         rmse=errors, engine=f"MLIP-3 ({binary})", wall_time_s=time.perf_counter() - started,
                         level=level, settings={"min_dist": min_dist, "max_dist": max_dist,
                                                "radial_basis_size": radial_basis_size, "max_iter": max_iter,
                                                "train_command": list(train_command)}, log=log)
    model.save()
    return model
