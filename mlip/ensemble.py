"""Ensemble uncertainty (stage 6): k MTPs trained on the same set from different seeds, per-atom force spread.

The paper (Shuang et al. 2025, Methods, Eq. 1) trains independent MTPs on the same data and takes, for
every atom alpha, the standard deviation over the committee of each Cartesian force component, summed in
quadrature:

    sigma_F(alpha) = sqrt( sum_{i in x,y,z} sigma(F_{alpha,i}^{(1..N)})^2 )

``sigma`` is the population standard deviation over the N members (numpy's ``std``, ddof 0; the paper
does not say which; ``ddof=1`` is accepted), so sigma_F = sqrt(mean_k |F_k - <F>|^2): the RMS distance of
the members' force vectors from their mean. Units eV/A.

The members differ only in ``seed`` (:func:`mlip.motep_trainer.train_mtp`: the random start of motep's
initialisation); forces come from motep's ASE calculator (:func:`mlip.train.evaluate`).
:func:`sigma_histogram` bins sigma_F on log-spaced edges (as the gamma histograms,
:func:`selection.maxvol.log_histogram`), JSON-ready for the dashboard; histograms with the default edges
add up with :func:`selection.maxvol.merge_histograms`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from ase import Atoms

__all__ = ["DEFAULT_SIGMA_EDGES", "ensemble_report", "force_spread", "predict_forces", "sigma_histogram",
           "train_ensemble"]

# eV/A: 1e-4 .. 1e2, 10 bins per decade (the paper's Fig. 5 spans about 1e-3 .. 1 eV/A)
DEFAULT_SIGMA_EDGES = np.logspace(-4.0, 2.0, 61)


def train_ensemble(train: Sequence[Atoms], k: int, workdir: str | os.PathLike, *, seeds: Sequence[int] | None = None,
                   **train_kwargs):
    """Train ``k`` MTPs on ``train`` with seeds ``seeds`` (default 0..k-1) in ``workdir/member-NN``.

    ``train_kwargs`` go to :func:`mlip.motep_trainer.train_mtp` (level, max_iter, test, ...). Returns the
    :class:`mlip.train.TrainedModel` of every member.
    """
    from .motep_trainer import train_mtp
    from .train import TrainingInputError

    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 2:
        raise TrainingInputError("k", f"an ensemble needs an integer k >= 2 members, got {k!r}")
    seeds = list(range(k)) if seeds is None else [int(s) for s in seeds]
    if len(seeds) != k or len(set(seeds)) != k:
        raise TrainingInputError("seeds", f"needs {k} distinct seeds, got {seeds}")
    for key in ("seed", "workdir"):
        if key in train_kwargs:
            raise TrainingInputError(key, "set by train_ensemble (use seeds= and workdir=)")
    workdir = Path(workdir)
    return [train_mtp(train, workdir=workdir / f"member-{n:02d}", seed=seed, **train_kwargs)
            for n, seed in enumerate(seeds)]


def _model_path(model) -> Path:
    return Path(getattr(model, "path", model))


def predict_forces(models: Sequence, atoms: Atoms, species: Sequence[str] | str = ("W",)) -> np.ndarray:
    """Forces of ``atoms`` by every model: array (k, n_atoms, 3), eV/A. Models: TrainedModel or ``.mtp`` paths."""
    from .train import evaluate

    if not models:
        raise ValueError("no models given")
    return np.stack([evaluate(_model_path(model), [atoms], species)[1][0] for model in models])


def force_spread(forces: np.ndarray | Sequence[np.ndarray], ddof: int = 0) -> np.ndarray:
    """sigma_F per atom (paper Eq. 1) from the committee's forces, shape (k, n_atoms, 3) -> (n_atoms,)."""
    forces = np.asarray(forces, dtype=float)
    if forces.ndim != 3 or forces.shape[2] != 3:
        raise ValueError(f"forces must have shape (k models, n atoms, 3), got {forces.shape}")
    if forces.shape[0] < 1 + ddof:
        raise ValueError(f"{forces.shape[0]} models: too few for a standard deviation with ddof={ddof}")
    if not np.all(np.isfinite(forces)):
        raise ValueError("forces contain non-finite values")
    return np.sqrt(np.sum(np.std(forces, axis=0, ddof=ddof) ** 2, axis=1))


def sigma_histogram(sigma: np.ndarray | Sequence[float], bins: np.ndarray | None = None) -> dict:
    """JSON-ready histogram of sigma_F (eV/A) on log-spaced edges (default :data:`DEFAULT_SIGMA_EDGES`).

    Values below the first edge (a zero spread, e.g. perfect-lattice atoms) count in the first bin and
    in ``below``, values above the last edge in the last bin and in ``above``, so the counts sum to the
    number of atoms. Keys: ``edges``, ``counts``, ``n``, ``sigma_max``, ``sigma_mean``, ``below``,
    ``above``, ``units``.
    """
    from selection.maxvol import log_histogram

    sigma = np.asarray(sigma, dtype=float).ravel()
    if np.any(sigma < 0):
        raise ValueError("sigma_F is a norm: negative values are impossible")
    histogram = log_histogram(sigma, DEFAULT_SIGMA_EDGES if bins is None else bins)
    histogram.pop("gamma_max")
    finite = sigma[np.isfinite(sigma)]
    histogram["sigma_max"] = float(finite.max()) if finite.size else None
    histogram["sigma_mean"] = float(finite.mean()) if finite.size else None
    histogram["units"] = "eV/A"
    return histogram


def ensemble_report(models: Sequence, images: Sequence[Atoms], species: Sequence[str] | str = ("W",),
                    masks: Sequence[np.ndarray] | None = None, ddof: int = 0) -> dict:
    """sigma_F of every atom of ``images`` by the committee ``models``, summarised for the dashboard.

    ``masks``: per configuration, the atoms to count (e.g. the paper's Fig. 5 counts non-BCC atoms only);
    default every atom. Returns ``{"per_configuration": [{"n", "sigma_max", "sigma_mean"}], "histogram":
    the merged :func:`sigma_histogram` of the counted atoms, "sigma": per-configuration lists}`` (JSON-ready).
    """
    images = list(images)
    if masks is not None and len(masks) != len(images):
        raise ValueError(f"{len(masks)} masks for {len(images)} configurations")
    rows, counted, values = [], [], []
    for number, atoms in enumerate(images):
        sigma = force_spread(predict_forces(models, atoms, species), ddof=ddof)
        if masks is not None:
            mask = np.asarray(masks[number], dtype=bool)
            if mask.shape != (len(atoms),):
                raise ValueError(f"mask {number} has shape {mask.shape}, configuration has {len(atoms)} atoms")
            sigma = sigma[mask]
        values.append(sigma.tolist())
        counted.append(sigma)
        rows.append({"n": int(sigma.size), "sigma_max": float(sigma.max()) if sigma.size else None,
                     "sigma_mean": float(sigma.mean()) if sigma.size else None})
    every = np.concatenate(counted) if counted else np.zeros(0)
    return {"per_configuration": rows, "histogram": sigma_histogram(every), "sigma": values,
            "k": len(models), "ddof": int(ddof)}
