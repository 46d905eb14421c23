"""MTP training with motep (:func:`train_mtp`), run in a subprocess (``python -m mlip.motep_trainer mtp-worker``).

motep's trainer writes ``intermediate_*.mtp`` into the working directory and may use MPI, so training runs in a
subprocess on a generated untrained potential (:func:`mlip.mtp_basis.mtp_template`): motep's ``Level2MTP`` and
``LLS`` steps initialise the potential, then either Levenberg-Marquardt on motep's analytic Jacobians
(``optimizer="lm"``, default: a Gauss-Newton method for this least-squares loss, far fewer passes over the data
than BFGS) or motep's own BFGS step refines all coefficients; a final ``LLS`` refits the linear (moment,
species) coefficients on the whole training set (the nonlinear part may use ``fit_subset`` configurations
only). The loss is motep's (MLIP's): energy per atom, forces, stress x volume per atom, each per
configuration, with weights 1, 0.01, 0.001.

The potential is written with ``motep.io.mlip.mtp.write_mtp(..., legacy=True)``: motep 0.2.0's default writer
puts ``radial_funcs_count`` after the ``radial_coeffs`` block, where its own reader (which needs the count to
parse the block) fails with ``KeyError: 'radial_funcs_count'``; the legacy layout (flat
``min_dist``/``max_dist``/``radial_basis_size``/``radial_funcs_count`` before the coefficients) is the
MLIP-2/MLIP-3 layout, which motep's reader, MLIP-3 and :class:`selection.bases.MtpBasis` read. Every trained
file is read back (:func:`mlip.train.evaluate`) before it is reported.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.data import atomic_numbers

from .mtp_basis import _check_level, _check_radial, mtp_template
from .train import (
    TrainedModel,
    TrainingFailed,
    TrainingInputError,
    _engine_version,
    _run_logged,
    _write_cfg_file,
    checked_sets,
    evaluate,
    rmse,
    start_workdir,
)

__all__ = ["train_mtp"]

OPTIMIZERS = ("lm", "bfgs")


def _subset_indices(images: Sequence[Atoms], size: int | None) -> list[int]:
    """``size`` configurations spread evenly over the energy-per-atom ranking (all when None)."""
    if size is None or size >= len(images):
        return list(range(len(images)))
    order = np.argsort([atoms.get_potential_energy() / len(atoms) for atoms in images], kind="stable")
    picks = np.unique(np.round(np.linspace(0, len(images) - 1, size)).astype(int))
    return sorted(int(order[p]) for p in picks)


def train_mtp(
    train: Sequence[Atoms],
    *,
    workdir: str | os.PathLike,
    level: int = 8,
    species: Sequence[str] | str | None = None,
    min_dist: float = 2.0,
    max_dist: float = 5.0,
    radial_basis_size: int = 8,
    max_iter: int = 100,
    optimizer: str = "lm",
    fit_subset: int | None = None,
    energy_weight: float = 1.0,
    forces_weight: float = 0.01,
    stress_weight: float = 0.001,
    seed: int = 0,
    test: Sequence[Atoms] | None = None,
    name: str = "pot.mtp",
    timeout: float | None = None,
    engine: str = "cext",
) -> TrainedModel:
    """Train a level-``level`` MTP with motep on labelled ``train`` configurations; test on ``test``.

    ``min_dist``/``max_dist`` (A): the radial basis range (the paper's W MTPs: about 2.1 and 5.0;
    MLIP's default min_dist is the smallest distance in the set); ``max_iter``: iterations of the
    nonlinear optimiser (Levenberg-Marquardt steps or BFGS iterations); ``fit_subset``: number of
    configurations (spread over the energy range) used by the nonlinear optimiser, the final
    linear refit uses all of ``train``; weights as MLIP's (per atom, per configuration).
    Writes ``workdir/name`` (MLIP layout), ``name.json`` (this record) and ``train.log``.
    """
    started = time.perf_counter()
    level = _check_level(level)
    _check_radial(min_dist, max_dist, radial_basis_size)
    if optimizer not in OPTIMIZERS:
        raise TrainingInputError("optimizer", f"unknown optimizer {optimizer!r}; use one of {', '.join(OPTIMIZERS)}")
    if isinstance(max_iter, bool) or not isinstance(max_iter, (int, np.integer)) or max_iter < 0:
        raise TrainingInputError("max_iter", f"needs an integer >= 0, got {max_iter!r}")
    if fit_subset is not None and (not isinstance(fit_subset, (int, np.integer)) or fit_subset < 1):
        raise TrainingInputError("fit_subset", f"needs an integer >= 1 or None, got {fit_subset!r}")
    for label, weight in (("energy_weight", energy_weight), ("forces_weight", forces_weight),
                          ("stress_weight", stress_weight)):
        if not (np.isfinite(weight) and weight >= 0):
            raise TrainingInputError(label, f"needs a finite weight >= 0, got {weight!r}")
    species, train, test = checked_sets(train, test, species)
    if not name.endswith(".mtp") or "/" in name:
        raise TrainingInputError("name", f"a file name ending in .mtp, got {name!r}")

    workdir, log = start_workdir(workdir)
    model_path = workdir / name
    _write_cfg_file(workdir / "train.cfg", train, species)
    settings = {
        "level": level, "species": list(species), "min_dist": float(min_dist), "max_dist": float(max_dist),
        "radial_basis_size": int(radial_basis_size), "max_iter": int(max_iter), "optimizer": optimizer,
        "fit_subset": None if fit_subset is None else int(fit_subset),
        "subset": _subset_indices(train, fit_subset) if fit_subset is not None else None,
        "energy_weight": float(energy_weight), "forces_weight": float(forces_weight),
        "stress_weight": float(stress_weight), "seed": int(seed), "engine": engine, "output": name,
    }
    (workdir / "job.json").write_text(json.dumps(settings, indent=1) + "\n")
    root = str(Path(__file__).resolve().parents[1])
    env = dict(os.environ)
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    _run_logged([sys.executable, "-m", "mlip.motep_trainer", "mtp-worker", "job.json"], workdir, log, timeout, env=env)
    if not model_path.is_file():
        raise TrainingFailed(f"motep finished without writing {model_path} (log: {log})")
    worker = json.loads((workdir / "result.json").read_text())

    # read back (motep's reader) and measure on the in-memory labels
    errors: dict[str, dict[str, float] | None] = {}
    for label, images in (("train", train), ("test", test)):
        errors[label] = rmse(images, *evaluate(model_path, images, species, engine=engine)) if images else None
    settings.pop("subset")
    settings.update({"iterations": worker["iterations"], "final_loss": worker["loss"],
                     "fit_wall_time_s": worker["wall_time_s"]})
    model = TrainedModel(path=model_path, kind="mtp", species=species, n_train=len(train), n_test=len(test),
                         rmse=errors, engine=_engine_version("motep"),
                         wall_time_s=time.perf_counter() - started, level=level, settings=settings, log=log)
    model.save()
    return model


def _residual_system(loss, setting) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Newton normal equations (J^T J, J^T r) of motep's loss at its current parameters.

    r matches motep's ``LossFunction`` term by term (energy per atom, forces per atom, stress x
    volume per atom, each averaged over configurations), so |r|^2 is its loss value.
    """
    from ase.stress import voigt_6_to_full_3x3_stress

    images = loss.images
    n = len(images)
    p = loss.mtp_data.number_of_parameters_optimized
    a, g = np.zeros((p, p)), np.zeros(p)
    for atoms in images:
        engine, results, targets = atoms.calc.engine, atoms.calc.results, atoms.calc.targets
        count = len(atoms)
        c = math.sqrt(setting.energy_weight / n) / count
        row = c * np.asarray(engine.jac_energy(atoms).parameters, dtype=float)
        a += np.outer(row, row)
        g += row * c * (results["energy"] - targets["energy"])
        if "forces" in targets and setting.forces_weight:
            c = math.sqrt(setting.forces_weight / n / count)
            jac = c * np.asarray(engine.jac_forces(atoms).parameters, dtype=float).reshape(p, -1)
            a += jac @ jac.T
            g += jac @ (c * (results["forces"] - targets["forces"]).ravel())
        if "stress" in targets and setting.stress_weight and atoms.cell.rank == 3:
            c = math.sqrt(setting.stress_weight / n) * atoms.cell.volume / count
            jac = c * np.asarray(engine.jac_stress(atoms).parameters, dtype=float).reshape(p, -1)
            diff = voigt_6_to_full_3x3_stress(results["stress"]) - voigt_6_to_full_3x3_stress(targets["stress"])
            a += jac @ jac.T
            g += jac @ (c * diff.ravel())
    return a, g


def _levenberg_marquardt(loss, setting, max_iter: int, report: Callable[[str], None]) -> tuple[int, float]:
    """Minimise motep's loss over ``loss.mtp_data.optimized`` by damped Gauss-Newton steps."""
    x = np.array(loss.mtp_data.parameters, dtype=float)
    value = float(loss(x))
    a, g = _residual_system(loss, setting)
    damping, iterations, stalled = 1e-3, 0, 0
    report(f"LM start: loss {value:.8e}")
    while iterations < max_iter:
        iterations += 1
        accepted = False
        while damping < 1e10:
            diagonal = np.diag(a).copy()
            diagonal[diagonal <= 0] = 1e-12
            try:
                step = np.linalg.solve(a + damping * np.diag(diagonal), -g)
            except np.linalg.LinAlgError:
                damping *= 10
                continue
            trial = float(loss(x + step))
            if np.isfinite(trial) and trial < value:
                improvement = (value - trial) / value if value > 0 else 0.0
                x, value = x + step, trial
                a, g = _residual_system(loss, setting)
                damping = max(damping / 3, 1e-12)
                accepted = True
                stalled = stalled + 1 if improvement < 1e-6 else 0
                break
            damping *= 4
        report(f"LM {iterations}: loss {value:.8e} damping {damping:.2e}")
        if not accepted or stalled >= 3 or value == 0:
            break
    loss.mtp_data.parameters = x  # the best parameters (the loss may sit at a rejected trial)
    return iterations, value


def _mtp_worker(job_file: str) -> None:
    """Subprocess entry: train as ``job.json`` says, write the potential (legacy layout) and result.json."""
    import logging

    from motep.io.mlip.mtp import read_mtp, write_mtp
    from motep.loss import LossFunction, LossSetting
    from motep.train.trainer import Trainer

    from formats.mtp import read_cfg

    started = time.perf_counter()
    job = json.loads(Path(job_file).read_text())
    logger = logging.getLogger("motep")
    logger.setLevel(logging.INFO)
    handler = logging.StreamHandler(sys.stdout)
    handler.setLevel(logging.INFO)
    logger.addHandler(handler)

    def report(text: str) -> None:
        print(f"[{time.perf_counter() - started:9.1f} s] {text}", flush=True)

    species = job["species"]
    with open("train.cfg") as handle:
        images = read_cfg(handle, species)
    subset = [images[i] for i in job["subset"]] if job.get("subset") else images
    data = mtp_template(job["level"], len(species), min_dist=job["min_dist"], max_dist=job["max_dist"],
                       radial_basis_size=job["radial_basis_size"])
    data.species = [atomic_numbers[s] for s in species]
    setting = LossSetting(energy_weight=job["energy_weight"], forces_weight=job["forces_weight"],
                          stress_weight=job["stress_weight"])
    rng = np.random.default_rng(job["seed"])
    everything = ["species_coeffs", "moment_coeffs", "radial_coeffs"]
    linear = [{"method": "LLS", "optimized": ["species_coeffs", "moment_coeffs"]}]
    steps: list[dict[str, Any]] = [{"method": "Level2MTP", "optimized": ["species_coeffs", "radial_coeffs"]}, *linear]
    if job["optimizer"] == "bfgs" and job["max_iter"] > 0:
        steps.append({"method": "minimize", "optimized": everything,
                      "kwargs": {"method": "BFGS", "jac": True, "options": {"maxiter": job["max_iter"]}}})
    report(f"level {job['level']}: {data.alpha_scalar_moments} basis functions, "
           f"{len(subset)} of {len(images)} configurations in the nonlinear fit")
    Trainer(data, rng=rng, engine=job["engine"], loss=setting, steps=steps).train(subset)
    iterations = job["max_iter"] if job["optimizer"] == "bfgs" else 0
    if job["optimizer"] == "lm" and job["max_iter"] > 0:
        data.optimized = everything
        loss = LossFunction(subset, data, setting, engine=job["engine"])
        iterations, _ = _levenberg_marquardt(loss, setting, job["max_iter"], report)
        del loss
    report(f"linear refit on all {len(images)} configurations")
    final = Trainer(data, rng=rng, engine=job["engine"], loss=setting, steps=linear).train(images)
    value = float(final.calc_loss_function())
    output = Path(job["output"])
    write_mtp(output, data, legacy=True)  # motep 0.2.0 cannot read back its default layout
    read_mtp(output)  # fail here, not later, if the file does not read back
    Path("result.json").write_text(json.dumps({"iterations": int(iterations), "loss": value,
                                               "wall_time_s": time.perf_counter() - started}) + "\n")
    report(f"done: loss {value:.8e}, written {output}")


if __name__ == "__main__":  # the training subprocess: python -m mlip.motep_trainer mtp-worker job.json
    if len(sys.argv) != 3 or sys.argv[1] != "mtp-worker":
        sys.exit("usage: python -m mlip.motep_trainer mtp-worker job.json")
    _mtp_worker(sys.argv[2])
