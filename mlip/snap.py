"""SNAP training: linear and quadratic SNAP fitted by weighted, regularised least squares on LAMMPS
``compute snap`` rows, written as ``.snapcoeff`` / ``.snapparam`` that ``pair_style snap`` reads.

Units: energies eV, forces eV/A, virials eV, distances A; errors stored in meV (as :mod:`mlip.train`).

Rows (:func:`snap_rows`)
    One LAMMPS run per configuration (``pair_style zero``, or ``hybrid/overlay zero <reference>``) with
    ``compute snap rcutfac rfac0 twojmax R_1..R_T w_1..w_T rmin0 .. bzeroflag 0 quadraticflag q switchflag 1``.
    Its global array has 1 + 3N + 6 rows and T*K + 1 columns (K = bispectrum components, or K + K(K+1)/2
    with quadraticflag 1, per element type): the energy row (per-type sums of B_k), 3N force rows (by atom
    id, i.e. in input order; same sign as forces), six virial rows (xx yy zz yz xz xy, eV) and a last column
    holding the reference pair style's energy, forces and pressure (bar; converted here to a virial in eV
    with LAMMPS's own nktv2p). A constant column per element type is put in front (energy row: the number
    of atoms of that type; force and virial rows: 0): with ``bzeroflag 0`` these rows reproduce
    ``pair_style snap`` to round-off (checked by the round-trip tests). Triclinic cells are rotated into
    LAMMPS's frame by :class:`md.engine.LammpsSystem`; force and virial rows are rotated back.

Loss (the weights of MLIP and motep, which trains this project's MTPs)
    L(beta) = 1/n_c sum_c [ w_E ((E_c(beta) - E_c) / N_c)^2
                            + w_F / N_c sum_{i, alpha} (F_c,i,alpha(beta) - F_c,i,alpha)^2
                            + w_S (V_c / N_c)^2 sum_{a, b = 1..3} (sigma_c,ab(beta) - sigma_c,ab)^2 ]
              + lambda sum_k G_kk beta_k^2
    over the n_c training configurations (N_c atoms, volume V_c): energy per atom, forces per component
    divided by the number of atoms, stress times volume per atom over the full 3x3 tensor (so the three
    off-diagonal virial rows carry sqrt(2)). As weighted rows: energy row / N_c times sqrt(w_E); force rows
    times sqrt(w_F / N_c); virial rows / N_c times sqrt(w_S) (sqrt(2 w_S) off the diagonal). Defaults:
    w_E = 1, w_F = 0.01, w_S = 0 (the paper's W potentials). FitSNAP multiplies each row by its group's
    weight instead (eweight on the per-atom energy row, fweight on force rows): the same fit with
    eweight = sqrt(w_E) and fweight = sqrt(w_F / N_c) when every configuration has N_c atoms.

Ridge
    ``ridge`` lambda is relative (dimensionless): G = A^T W A is the weighted Gram matrix of the training
    rows, so lambda penalises each descriptor coefficient in the units of its own column (plain ridge on
    equilibrated columns), invariant to the scale of B_k and to the number of configurations; the constant
    (per-element energy) columns are not penalised. ``ridge="auto"`` holds out ``validation_fraction`` of
    the training configurations (seeded), solves for every value of ``ridge_grid`` on the rest and keeps
    the one with the lowest validation loss (the loss above without the penalty), then refits on all the
    training configurations. The test set is never used.

Solve (normal equations, equilibrated, one eigendecomposition)
    Rows are never stored: each configuration's weighted rows [A | b] are added into the Gram matrix G_aug =
    [A b]^T [A b] (BLAS dsyrk, buffered; configurations sorted by size so one dsyrk per run of equal N feeds
    both the weighted and the unweighted force sums), so memory is n^2 for n columns (1596 per element for
    quadratic 2J = 8, where the full row matrix of W-all would take 3.6 GB) and workers' partial sums just
    add. Householder QR of the same rows was measured 17x slower here (303 s vs 18 s for the 283k x 1597 rows
    of quadratic W-all), so QR/lstsq is not used. Conditioning: columns are scaled to unit diagonal (cond of
    the Gram is the square of the row matrix's), the energy target is shifted by the mean energy per atom
    (absorbed exactly by the constant columns, so the Gram's right-hand side stays small), the constant
    columns are eliminated exactly (Schur complement, Cholesky of a T x T block), and the remaining symmetric
    matrix S is diagonalised once: beta(lambda) = V (w + lambda)^-1 V^T r for every lambda of the grid at no
    extra cost. lambda = 0 is the minimum-norm solution with eigenvalues below n * eps * max(w) dropped. The
    condition number of S is stored with the model. The price of the normal equations: row-space directions
    with relative singular values below ~sqrt(n * eps) are dropped. Linear fits are far from that (cond(S)
    1e6-1e7: coefficients equal FitSNAP's SVD fit to 1e-9 relative); a quadratic fit on few configurations is
    not (40 W cells: 26 of 1596 directions dropped, train force RMSE 43.6 vs 42.9 meV/A by SVD of the rows),
    which is what a ridge is for. RMSEs on the training set follow from the stored energy rows (one per
    configuration) and the unweighted force Gram matrix (x^T G x with x = [beta, -1]: absolute accuracy about
    1e-5 meV/A, from cancellation); test RMSEs come from the written model evaluated by LAMMPS ``pair_style
    snap`` (:func:`evaluate_snap`). Every written model is read back and, on the smallest training
    configuration, evaluated by LAMMPS against the fit's own rows (1e-6 eV/atom and eV/A, else
    :class:`mlip.train.TrainingFailed`).

Files
    ``<name>.snapcoeff`` (per element: ``symbol radius weight`` then 1 + columns coefficients, the first the
    constant), ``<name>.snapparam`` (rcutfac, twojmax, rfac0, rmin0, bzeroflag 0, quadraticflag, switchflag 1),
    ``<name>.snap`` (the pair_style / pair_coeff lines, file names relative, as LAMMPS's shipped ``.snap``
    files) and ``<name>.snapcoeff.json`` (the :class:`SnapModel` record).
"""

from __future__ import annotations

import json
import logging
import math
import multiprocessing
import os
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes
from ase.data import atomic_numbers
from pydantic import ValidationError

from md.potentials import Potential, PotentialError
from schemas.training import SnapReference, SnapTrainingParams
from selection.bases import bispectrum_count

from .train import SIDE_CAR, TrainedModel, TrainingFailed, TrainingInputError, _check_set, _species_of, rmse

log = logging.getLogger(__name__)

__all__ = [
    "NKTV2P_METAL",
    "SnapCalculator",
    "SnapFiles",
    "SnapModel",
    "SnapRows",
    "evaluate_snap",
    "read_snap",
    "snap_column_count",
    "snap_rows",
    "train_snap",
]

NKTV2P_METAL = 1.6021765e6  # LAMMPS metal units: pressure (bar) = nktv2p * virial (eV) / volume (A^3)
_COMPUTE_ID = "dg_snap"
_GRAM_CHUNK_ROWS = 4096
# .snapparam keywords whose non-default values compute snap rows here do not reproduce (bzeroflag only shifts
# the constant, so any value is fine for a teacher)
_UNSUPPORTED_FLAGS = {"switchflag": 1.0, "bnormflag": 0.0, "wselfallflag": 0.0, "switchinnerflag": 0.0, "chemflag": 0.0}
_ROUND_TRIP_TOLERANCE = 1e-6  # eV/atom and eV/A between the fit's rows and LAMMPS pair_style snap
_OFF_DIAGONAL = np.array([1.0, 1.0, 1.0, math.sqrt(2.0), math.sqrt(2.0), math.sqrt(2.0)])


# --------------------------------------------------------------------------- parameters


def snap_column_count(twojmax: int, quadratic: bool = False) -> int:
    """Descriptor columns per element of ``compute snap`` (K, or K + K(K+1)/2 with quadraticflag 1)."""
    k = bispectrum_count(int(twojmax))
    return k + k * (k + 1) // 2 if quadratic else k


def _params(params: SnapTrainingParams | dict | None, overrides: dict[str, Any]) -> SnapTrainingParams:
    """Validated parameters; a bad value raises TrainingInputError naming the field."""
    if isinstance(params, SnapTrainingParams) and not overrides:
        return params
    data = params.model_dump() if isinstance(params, SnapTrainingParams) else dict(params or {})
    data.update(overrides)
    try:
        return SnapTrainingParams.model_validate(data)
    except ValidationError as error:
        first = error.errors()[0]
        # keep field names and list indices; drop pydantic's union-member tags ('float', "literal['auto']")
        names = set(SnapTrainingParams.model_fields) | set(SnapReference.model_fields)
        where = (".".join(str(p) for p in first["loc"] if isinstance(p, int) or p in names)
                 or ".".join(str(p) for p in first["loc"]) or "params")
        raise TrainingInputError(where, f"{first['msg']} (got {first.get('input')!r})") from None


def _check_elements(params: SnapTrainingParams, species: Sequence[str]) -> None:
    for label, values in (("radii", params.radii), ("weights", params.weights)):
        extra = sorted(set(values or {}) - set(species))
        if extra:
            raise TrainingInputError(label, f"{', '.join(extra)} is not one of the species {list(species)}")


def _cutoff(params: SnapTrainingParams, species: Sequence[str]) -> float:
    radii = [params.radius(s) for s in species]
    return params.rcutfac * 2.0 * max(radii)


def _compute_command(params: SnapTrainingParams, species: Sequence[str]) -> str:
    radii = " ".join(repr(params.radius(s)) for s in species)
    weights = " ".join(repr(params.weight(s)) for s in species)
    return (f"compute {_COMPUTE_ID} all snap {params.rcutfac!r} {params.rfac0!r} {params.twojmax} {radii} {weights} "
            f"rmin0 {params.rmin0!r} bzeroflag 0 quadraticflag {int(params.quadratic)} switchflag 1")


@dataclass(frozen=True)
class _PairLines(Potential):
    """A potential given by its LAMMPS lines for a fixed list of species (LAMMPS types 1..n in order)."""

    lines: tuple[str, ...] = ()

    def pair_commands(self, species: Sequence[str]) -> list[str]:
        if tuple(species) != tuple(self.elements):
            raise PotentialError(f"potential '{self.name}' maps LAMMPS types to {list(self.elements)}, "
                                 f"not {list(species)}")
        return list(self.lines)


def _row_potential(params: SnapTrainingParams, species: Sequence[str]) -> _PairLines:
    cut = repr(round(_cutoff(params, species) + 0.1, 6))
    lines: tuple[str, ...]
    if params.reference is None:
        lines = (f"pair_style zero {cut}", "pair_coeff * *")
    else:
        lines = (f"pair_style hybrid/overlay zero {cut} {params.reference.pair_style}", "pair_coeff * * zero",
                 *(f"pair_coeff {line}" for line in params.reference.pair_coeff))
    return _PairLines("compute-snap", "zero", (), tuple(species), (), lines)


def _quote(path: Path) -> str:
    text = str(path)
    return f'"{text}"' if any(c.isspace() for c in text) else text


def _model_lines(coeff: Path | str, param: Path | str, species: Sequence[str],
                 reference: SnapReference | None) -> tuple[str, list[str]]:
    """(pair_style, pair_coeff lines without the keyword) that evaluate a SNAP model."""
    files = f"{_quote(Path(coeff))} {_quote(Path(param))} {' '.join(species)}"
    if reference is None:
        return "snap", [f"* * {files}"]
    return f"hybrid/overlay {reference.pair_style} snap", [*reference.pair_coeff, f"* * snap {files}"]


# --------------------------------------------------------------------------- rows


def _lammps_ready(atoms: Atoms, cutoff: float) -> Atoms:
    """A calculator-free copy LAMMPS can hold: clusters without a cell get a vacuum box."""
    work = Atoms(numbers=atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
    if not np.any(work.pbc) and abs(np.linalg.det(np.asarray(work.cell[:]))) < 1e-9:
        work.center(vacuum=cutoff + 1.0)
    return work


@dataclass
class SnapRows:
    """``compute snap`` rows of one configuration, input frame, constant columns first.

    Columns: T constant columns (one per element type), then T blocks of ``snap_column_count`` descriptor
    columns. ``energy`` (n_cols,): the energy row (a sum over atoms, not per atom); ``forces`` (3N, n_cols):
    rows 3i, 3i+1, 3i+2 are atom i's x, y, z force; ``virial`` (6, n_cols): xx yy zz yz xz xy of
    -stress * volume (eV). The ``*_ref`` arrays are the reference pair style's part (0 without one):
    the model gives E = energy @ beta + energy_ref, F = forces @ beta + forces_ref, W = virial @ beta + virial_ref.
    """

    species: tuple[str, ...]
    counts: np.ndarray
    energy: np.ndarray
    forces: np.ndarray
    virial: np.ndarray
    energy_ref: float
    forces_ref: np.ndarray
    virial_ref: np.ndarray
    volume: float

    @property
    def n_atoms(self) -> int:
        return self.forces.shape[0] // 3

    def predict(self, coefficients: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        """Energy (eV), forces (N x 3, eV/A) and ASE stress (6 Voigt, eV/A^3) of flat coefficients."""
        beta = np.asarray(coefficients, dtype=float)
        energy = float(self.energy @ beta + self.energy_ref)
        forces = (self.forces @ beta + self.forces_ref).reshape(-1, 3)
        virial = self.virial @ beta + self.virial_ref
        stress = -virial / self.volume if self.volume > 0 else np.full(6, np.nan)
        return energy, forces, stress


def _rows_from_lammps(atoms: Atoms, params: SnapTrainingParams, species: tuple[str, ...]) -> SnapRows:
    import lammps

    from md.engine import LammpsSystem

    work = _lammps_ready(atoms, _cutoff(params, species))
    n = len(work)
    types = len(species)
    width = snap_column_count(params.twojmax, params.quadratic)
    with LammpsSystem(work, _row_potential(params, species), species=species) as system:
        system.command(_compute_command(params, species))
        system.run(0)  # one run: compute snap defines its own pressure compute at every init
        array = system.lmp.numpy.extract_compute(_COMPUTE_ID, lammps.LMP_STYLE_GLOBAL, lammps.LMP_TYPE_ARRAY)
        array = np.array(array, dtype=float)
        rotation = system.frame.rotation
        boxlo, boxhi, *_ = system.lmp.extract_box()
        volume = float(np.prod(np.array(boxhi) - np.array(boxlo)))
    if array.shape != (1 + 3 * n + 6, types * width + 1):
        expected = (1 + 3 * n + 6, types * width + 1)
        raise RuntimeError(f"compute snap returned a {array.shape} array, expected {expected}")
    counts = np.bincount([species.index(s) for s in work.get_chemical_symbols()], minlength=types).astype(float)
    descriptors, reference = array[:, :-1], array[:, -1]
    forces = descriptors[1:1 + 3 * n]
    virial = descriptors[1 + 3 * n:]
    forces_ref = reference[1:1 + 3 * n].copy()
    virial_ref = reference[1 + 3 * n:] * volume / NKTV2P_METAL
    if not np.array_equal(rotation, np.eye(3)):  # LAMMPS frame -> input frame (v_lammps = v_input @ R)
        forces = np.einsum("ba,nac->nbc", rotation, forces.reshape(n, 3, -1)).reshape(3 * n, -1)
        forces_ref = (forces_ref.reshape(n, 3) @ rotation.T).ravel()
        virial = _rotate_voigt(virial, rotation)
        virial_ref = _rotate_voigt(virial_ref[:, None], rotation)[:, 0]
    zeros = np.zeros
    return SnapRows(
        species=species, counts=counts,
        energy=np.concatenate([counts, descriptors[0]]),
        forces=np.hstack([zeros((3 * n, types)), forces]),
        virial=np.hstack([zeros((6, types)), virial]),
        energy_ref=float(reference[0]), forces_ref=forces_ref, virial_ref=virial_ref,
        volume=float(abs(np.linalg.det(np.asarray(atoms.cell[:])))) if np.all(atoms.pbc) else 0.0,
    )


def _rotate_voigt(rows: np.ndarray, rotation: np.ndarray) -> np.ndarray:
    """Voigt rows (xx yy zz yz xz xy) x columns of tensors in LAMMPS's frame -> input frame (R T R^T)."""
    xx, yy, zz, yz, xz, xy = rows
    tensor = np.array([[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]])  # 3 x 3 x columns
    out = np.einsum("ia,abc,jb->ijc", rotation, tensor, rotation)
    return np.array([out[0, 0], out[1, 1], out[2, 2], out[1, 2], out[0, 2], out[0, 1]])


def snap_rows(atoms: Atoms, params: SnapTrainingParams | None = None, species: Sequence[str] | str | None = None,
              **overrides: Any) -> SnapRows:
    """``compute snap`` rows of one configuration (see :class:`SnapRows`); ``species`` are the element types
    in order (default: the configuration's elements, sorted)."""
    params = _params(params, overrides)
    species = _species_of([atoms], species)
    unknown = sorted(set(atoms.get_chemical_symbols()) - set(species))
    if unknown:
        raise TrainingInputError("atoms", f"has {', '.join(unknown)}, not in species {list(species)}")
    _check_elements(params, species)
    return _rows_from_lammps(atoms, params, tuple(species))


# --------------------------------------------------------------------------- accumulation (workers)


class _Gram:
    """Buffered sum of X^T X over added row blocks X (upper triangle, BLAS dsyrk)."""

    def __init__(self, n: int) -> None:
        self.matrix = np.zeros((n, n), order="F")
        self._buffer: list[np.ndarray] = []
        self._rows = 0

    def add(self, rows: np.ndarray) -> None:
        self._buffer.append(rows)
        self._rows += len(rows)
        if self._rows >= _GRAM_CHUNK_ROWS:
            self.flush()

    def flush(self) -> None:
        from scipy.linalg.blas import dsyrk

        if self._buffer:
            block = np.vstack(self._buffer)
            self.matrix = dsyrk(1.0, block.T, beta=1.0, c=self.matrix, overwrite_c=1)
            self._buffer, self._rows = [], 0

    def full(self) -> np.ndarray:
        self.flush()
        return _symmetric(self.matrix)


def _symmetric(upper: np.ndarray) -> np.ndarray:
    upper = np.triu(upper)
    return upper + np.triu(upper, 1).T


class _ForceGram:
    """Sum of X^T X (unweighted) and of s X^T X (weighted, s = w_F / N per configuration) over force row
    blocks X, from one dsyrk per block of equal s: half the work of two separate sums. Feed configurations
    sorted by N so that equal weights come in runs."""

    def __init__(self, n: int) -> None:
        self.unweighted = np.zeros((n, n), order="F")
        self.weighted = np.zeros((n, n), order="F")
        self._buffer: list[np.ndarray] = []
        self._rows = 0
        self._scale: float | None = None

    def add(self, rows: np.ndarray, scale: float) -> None:
        if self._scale is not None and scale != self._scale:
            self.flush()
        self._scale = scale
        self._buffer.append(rows)
        self._rows += len(rows)
        if self._rows >= _GRAM_CHUNK_ROWS:
            self.flush()

    def flush(self) -> None:
        from scipy.linalg.blas import dsyrk

        if self._buffer:
            block = np.vstack(self._buffer)
            gram = dsyrk(1.0, block.T)
            self.unweighted += gram
            if self._scale:
                self.weighted += self._scale * gram
            self._buffer, self._rows = [], 0


@dataclass
class _Sums:
    """Per group of configurations: the weighted and the force Gram matrices (augmented by b) and the
    energy-per-atom rows themselves (one per configuration: exact energy errors at any size)."""

    weighted: np.ndarray
    energy: np.ndarray
    forces: np.ndarray
    n_configurations: int = 0
    n_atoms: int = 0

    def __add__(self, other: _Sums) -> _Sums:
        return _Sums(self.weighted + other.weighted, np.vstack([self.energy, other.energy]),
                     self.forces + other.forces, self.n_configurations + other.n_configurations,
                     self.n_atoms + other.n_atoms)


def _label_arrays(atoms: Atoms) -> dict[str, Any]:
    results = atoms.calc.results
    item = {"numbers": atoms.numbers.copy(), "positions": atoms.positions.copy(), "cell": atoms.cell[:].copy(),
            "pbc": atoms.pbc.copy(), "energy": float(results["energy"]),
            "forces": np.asarray(results["forces"], dtype=float).copy()}
    if "stress" in results and np.all(atoms.pbc):
        item["stress"] = atoms.get_stress(voigt=True).copy()
    return item


def _accumulate(job: dict[str, Any]) -> dict[str, Any]:
    """Worker: rows of each configuration of ``job['items']`` added into the sums of its group."""
    params = SnapTrainingParams.model_validate(job["params"])
    species = tuple(job["species"])
    e0 = job["e0"]
    n_cols = len(species) * (1 + snap_column_count(params.twojmax, params.quadratic))
    groups = job["groups"]
    grams: list[tuple[_Gram, list[np.ndarray], _ForceGram]] = [(_Gram(n_cols + 1), [], _ForceGram(n_cols + 1))
                                                                for _ in range(groups)]
    counts = [[0, 0] for _ in range(groups)]
    sw_e = math.sqrt(params.energy_weight)
    lammps_s = gram_s = 0.0
    for item, group in sorted(job["items"], key=lambda pair: (pair[1], len(pair[0]["numbers"]))):
        started = time.process_time()
        atoms = Atoms(numbers=item["numbers"], positions=item["positions"], cell=item["cell"], pbc=item["pbc"])
        rows = _rows_from_lammps(atoms, params, species)
        middle = time.process_time()
        n = len(atoms)
        energy_row = np.append(rows.energy / n, (item["energy"] - rows.energy_ref) / n - e0)
        force_rows = np.column_stack([rows.forces, item["forces"].ravel() - rows.forces_ref])
        weighted, energy, forces = grams[group]
        weighted.add(sw_e * energy_row[None, :])
        if params.stress_weight > 0 and "stress" in item:
            volume = abs(np.linalg.det(item["cell"]))
            virial_label = -np.asarray(item["stress"]) * volume
            virial_rows = np.column_stack([rows.virial, virial_label - rows.virial_ref])
            weighted.add((math.sqrt(params.stress_weight) / n * _OFF_DIAGONAL)[:, None] * virial_rows)
        energy.append(energy_row)
        forces.add(force_rows, params.forces_weight / n)
        counts[group][0] += 1
        counts[group][1] += n
        lammps_s += middle - started
        gram_s += time.process_time() - middle
    started = time.process_time()
    sums = []
    for (w, e, f), c in zip(grams, counts):
        f.flush()
        sums.append(_Sums(w.full() + _symmetric(f.weighted), np.array(e).reshape(-1, n_cols + 1),
                          _symmetric(f.unweighted), c[0], c[1]))
    gram_s += time.process_time() - started
    return {"sums": sums, "lammps_s": lammps_s, "gram_s": gram_s}


def _partition(costs: Sequence[float], parts: int) -> list[list[int]]:
    """Indices split into ``parts`` lists of about equal total cost (largest first onto the lightest)."""
    loads = [0.0] * parts
    chunks: list[list[int]] = [[] for _ in range(parts)]
    for index in sorted(range(len(costs)), key=lambda i: -costs[i]):
        target = loads.index(min(loads))
        chunks[target].append(index)
        loads[target] += costs[index]
    return [sorted(chunk) for chunk in chunks if chunk]


def _run_jobs(function, jobs: list[dict[str, Any]], processes: int) -> list[Any]:
    if processes <= 1 or len(jobs) <= 1:
        return [function(job) for job in jobs]
    context = multiprocessing.get_context("spawn")  # LAMMPS and its MPI library are not fork-safe
    with ProcessPoolExecutor(max_workers=min(processes, len(jobs)), mp_context=context) as pool:
        return list(pool.map(function, jobs))


# --------------------------------------------------------------------------- solve


class _NormalSystem:
    """The equilibrated normal equations of one weighted Gram matrix, ready for any relative ridge."""

    def __init__(self, gram: np.ndarray, n_const: int) -> None:
        n = gram.shape[0] - 1
        g, h = gram[:n, :n], gram[:n, n]
        diagonal = np.diag(g).copy()
        scale = np.sqrt(np.clip(diagonal, 0.0, None))
        active = scale > (scale.max() * 1e-150 if scale.size else 0.0)
        if not np.all(active[:n_const]):
            raise TrainingInputError("train", "an element has no energy row in the training set (constant column 0)")
        self.n, self.n_const, self.active, self.scale = n, n_const, active, np.where(active, scale, 1.0)
        index = np.flatnonzero(active)
        d = self.scale[index]
        gs = g[np.ix_(index, index)] / np.outer(d, d)
        hs = h[index] / d
        c = n_const
        self._gcc = gs[:c, :c]
        self._gcp = gs[:c, c:]
        self._hc = hs[:c]
        self._chol = np.linalg.cholesky(self._gcc)
        x = self._cho_solve(self._gcp)
        schur = gs[c:, c:] - self._gcp.T @ x
        r = hs[c:] - x.T @ self._hc
        w, v = np.linalg.eigh((schur + schur.T) / 2.0)
        self._w = np.clip(w, 0.0, None)
        self._v = v
        self._rt = v.T @ r
        w_max = self._w.max() if self._w.size else 0.0
        self._cut = w_max * max(len(w), 1) * np.finfo(float).eps
        kept = self._w[self._w > self._cut]
        self.condition = float(w_max / kept.min()) if kept.size else float("inf")
        self.rank = int(kept.size)

    def _cho_solve(self, b: np.ndarray) -> np.ndarray:
        y = np.linalg.solve(self._chol, b)
        return np.linalg.solve(self._chol.T, y)

    def solve(self, ridge: float) -> np.ndarray:
        """Coefficients (all n columns, inactive ones 0) minimising the loss + ridge * sum G_kk beta_k^2."""
        if ridge > 0:
            inverse = 1.0 / (self._w + ridge)
        else:
            inverse = np.where(self._w > self._cut, 1.0 / np.where(self._w > self._cut, self._w, 1.0), 0.0)
        xp = self._v @ (inverse * self._rt)
        xc = self._cho_solve(self._hc - self._gcp @ xp)
        beta = np.zeros(self.n)
        beta[np.flatnonzero(self.active)] = np.concatenate([xc, xp])
        return beta / self.scale


def _quadratic_form(gram: np.ndarray, beta: np.ndarray) -> float:
    x = np.append(beta, -1.0)
    return float(max(x @ gram @ x, 0.0))


def _errors(sums: _Sums, beta: np.ndarray) -> dict[str, float]:
    """RMSEs (meV) of coefficients on the configurations of ``sums`` (keys as mlip.train.rmse)."""
    e2 = float(np.sum((sums.energy @ np.append(beta, -1.0)) ** 2))
    f2 = _quadratic_form(sums.forces, beta)
    return {
        "energy_mev_per_atom": math.sqrt(e2 / sums.n_configurations) * 1000.0,
        "forces_mev_per_A": math.sqrt(f2 / (3 * sums.n_atoms)) * 1000.0,
        "forces_norm_mev_per_A": math.sqrt(f2 / sums.n_atoms) * 1000.0,
        "n_configurations": sums.n_configurations,
        "n_atoms": sums.n_atoms,
    }


# --------------------------------------------------------------------------- files


def _format_number(value: float) -> str:
    return repr(float(value))  # shortest repr: LAMMPS's strtod reads back the same double


def write_snap_files(directory: Path, name: str, species: Sequence[str], params: SnapTrainingParams,
                     coefficients: np.ndarray, header: str = "") -> tuple[Path, Path, Path]:
    """Write ``name.snapcoeff``, ``name.snapparam`` and the include file ``name.snap``; flat ``coefficients``
    in :class:`SnapRows` column order."""
    types = len(species)
    width = snap_column_count(params.twojmax, params.quadratic)
    coefficients = np.asarray(coefficients, dtype=float)
    if coefficients.shape != (types * (1 + width),):
        raise ValueError(f"{coefficients.shape} coefficients for {types} elements x {1 + width}")
    comment = f"# {header}\n" if header else ""
    lines = [f"# SNAP coefficients written by defect-genome mlip.snap\n{comment}", f"{types} {1 + width}"]
    for t, element in enumerate(species):
        lines.append(f"{element} {_format_number(params.radius(element))} {_format_number(params.weight(element))}")
        lines.append(_format_number(coefficients[t]))
        lines.extend(_format_number(c) for c in coefficients[types + t * width: types + (t + 1) * width])
    coeff = directory / f"{name}.snapcoeff"
    coeff.write_text("\n".join(lines) + "\n")
    param = directory / f"{name}.snapparam"
    param.write_text(
        f"# SNAP parameters written by defect-genome mlip.snap\n{comment}\n"
        f"rcutfac {_format_number(params.rcutfac)}\ntwojmax {params.twojmax}\n\n"
        f"rfac0 {_format_number(params.rfac0)}\nrmin0 {_format_number(params.rmin0)}\n"
        f"bzeroflag 0\nquadraticflag {int(params.quadratic)}\nswitchflag 1\n")
    style, coeffs = _model_lines(coeff.name, param.name, species, params.reference)
    include = directory / f"{name}.snap"
    include.write_text("# SNAP potential written by defect-genome mlip.snap (include it from its directory)\n"
                       + f"pair_style {style}\n" + "".join(f"pair_coeff {line}\n" for line in coeffs))
    return coeff, param, include


@dataclass(frozen=True)
class SnapFiles:
    """A SNAP potential on disk: ``.snapcoeff`` + ``.snapparam`` (+ optional reference pair style)."""

    coeff_path: Path
    param_path: Path
    elements: tuple[str, ...]
    radii: tuple[float, ...]
    weights: tuple[float, ...]
    coefficients: tuple[np.ndarray, ...]
    parameters: dict[str, float]
    reference: SnapReference | None = None

    @property
    def twojmax(self) -> int:
        return int(self.parameters["twojmax"])

    @property
    def quadratic(self) -> bool:
        return bool(int(self.parameters.get("quadraticflag", 0)))

    @property
    def cutoff(self) -> float:
        return 2.0 * float(self.parameters["rcutfac"]) * max(self.radii)

    def flat_coefficients(self) -> np.ndarray:
        """Coefficients in :class:`SnapRows` column order: the constants of every element, then each
        element's descriptor coefficients."""
        return np.concatenate([[c[0] for c in self.coefficients], *[c[1:] for c in self.coefficients]])

    def training_params(self) -> SnapTrainingParams:
        """The row settings of this model (bispectrum, quadratic, reference) as SnapTrainingParams."""
        unsupported = {key: self.parameters[key] for key in _UNSUPPORTED_FLAGS
                       if float(self.parameters.get(key, _UNSUPPORTED_FLAGS[key])) != _UNSUPPORTED_FLAGS[key]}
        if unsupported:
            raise TrainingInputError("param_path", f"{self.param_path.name} sets {unsupported}: mlip.snap's rows "
                                                   f"use {_UNSUPPORTED_FLAGS}")
        return SnapTrainingParams(
            twojmax=self.twojmax, rcutfac=float(self.parameters["rcutfac"]),
            rfac0=float(self.parameters.get("rfac0", 0.99363)), rmin0=float(self.parameters.get("rmin0", 0.0)),
            radii=dict(zip(self.elements, self.radii)), weights=dict(zip(self.elements, self.weights)),
            quadratic=self.quadratic, reference=self.reference)

    def pair_lines(self) -> tuple[str, list[str]]:
        """``pair_style`` argument and ``pair_coeff`` lines (absolute paths) of this model."""
        return _model_lines(self.coeff_path.resolve(), self.param_path.resolve(), self.elements, self.reference)

    def potential(self) -> Potential:
        """The model as a :class:`md.potentials.Potential` (LAMMPS types = ``elements`` in order)."""
        style, coeffs = self.pair_lines()
        lines = (f"pair_style {style}", *(f"pair_coeff {line}" for line in coeffs))
        return _PairLines(self.coeff_path.stem, "snap", (self.coeff_path.resolve(), self.param_path.resolve()),
                          self.elements, (), lines)


def _numbers_and_words(path: Path) -> list[list[str]]:
    lines = []
    for raw in path.read_text(errors="replace").splitlines():
        text = raw.split("#", 1)[0].strip()
        if text:
            lines.append(text.split())
    return lines


def read_snap(coeff_path: str | os.PathLike, param_path: str | os.PathLike | None = None,
              reference: SnapReference | dict | None = None) -> SnapFiles:
    """Read and check a SNAP model (``param_path`` defaults to the ``.snapparam`` beside the ``.snapcoeff``).

    Bad files raise :class:`TrainingInputError` naming ``coeff_path`` or ``param_path``.
    """
    coeff = Path(coeff_path)
    if not coeff.is_file():
        raise TrainingInputError("coeff_path", f"no .snapcoeff file at {coeff}")
    param = Path(param_path) if param_path is not None else coeff.with_suffix(".snapparam")
    if not param.is_file():
        raise TrainingInputError("param_path", f"no .snapparam file at {param} (pair_style snap needs the "
                                               f"parameter file beside {coeff.name}; pass param_path=)")
    parameters: dict[str, float] = {}
    for words in _numbers_and_words(param):
        if len(words) != 2:
            raise TrainingInputError("param_path",
                                     f"{param}: expected 'keyword value' lines, found {' '.join(words)!r}")
        try:
            parameters[words[0]] = float(words[1])
        except ValueError:
            raise TrainingInputError("param_path", f"{param}: {words[0]} has no number: {words[1]!r}") from None
    for key in ("rcutfac", "twojmax"):
        if key not in parameters:
            raise TrainingInputError("param_path", f"{param} has no {key} (required by pair_style snap)")
    if parameters.get("chemflag", 0):
        raise TrainingInputError("param_path", f"{param}: explicit multi-element SNAP (chemflag 1) is not supported")
    rows = _numbers_and_words(coeff)
    try:
        types, width = int(rows[0][0]), int(rows[0][1])
    except (IndexError, ValueError):
        raise TrainingInputError("coeff_path", f"{coeff}: the first line must be 'n_elements n_coefficients'") from None
    expected = 1 + snap_column_count(int(parameters["twojmax"]), bool(int(parameters.get("quadraticflag", 0))))
    if width != expected:
        raise TrainingInputError("coeff_path", f"{coeff} has {width} coefficients per element; twojmax "
                                               f"{int(parameters['twojmax'])} (quadraticflag "
                                               f"{int(parameters.get('quadraticflag', 0))}) in {param.name} needs "
                                               f"{expected}")
    elements: list[str] = []
    radii: list[float] = []
    weights: list[float] = []
    coefficients: list[Any] = []
    position = 1
    for _ in range(types):
        try:
            symbol, radius, weight = rows[position][0], float(rows[position][1]), float(rows[position][2])
            values = np.array([float(r[0]) for r in rows[position + 1: position + 1 + width]])
        except (IndexError, ValueError):
            raise TrainingInputError("coeff_path",
                                     f"{coeff}: element block {len(elements) + 1} is incomplete") from None
        if symbol not in atomic_numbers or len(values) != width:
            raise TrainingInputError("coeff_path",
                                     f"{coeff}: element block {len(elements) + 1} ({symbol}) is incomplete")
        elements.append(symbol)
        radii.append(radius)
        weights.append(weight)
        coefficients.append(values)
        position += 1 + width
    if isinstance(reference, dict):
        reference = SnapReference.model_validate(reference)
    return SnapFiles(coeff, param, tuple(elements), tuple(radii), tuple(weights), tuple(coefficients), parameters,
                     reference)


# --------------------------------------------------------------------------- the model record


@dataclass
class SnapModel(TrainedModel):
    """A trained SNAP: ``path`` is the ``.snapcoeff``; ``param_path`` the ``.snapparam``; ``include_path`` the
    ``.snap`` file with the LAMMPS lines; ``timings`` (s): ``rows`` (compute snap + Gram sums, wall),
    ``lammps_cpu``/``gram_cpu`` (CPU time of the workers, summed), ``solve``, ``evaluate_test``
    (pair_style snap on the test set), ``total``; ``reference``: the overlaid pair style (SnapReference as a
    dict) or None."""

    param_path: Path | None = None
    include_path: Path | None = None
    reference: dict[str, Any] | None = None
    timings: dict[str, float] = field(default_factory=dict)

    def files(self) -> SnapFiles:
        return read_snap(self.path, self.param_path, self.reference)

    @property
    def param_file(self) -> Path:
        """The ``.snapparam``: ``param_path``, by default the one beside the ``.snapcoeff`` (as :func:`read_snap`)."""
        return Path(self.param_path) if self.param_path is not None else Path(self.path).with_suffix(".snapparam")

    @property
    def pair_style(self) -> str:
        """``pair_style`` arguments that evaluate the model, e.g. ``hybrid/overlay zbl 4.0 4.8 snap``."""
        reference = SnapReference.model_validate(self.reference) if self.reference else None
        return _model_lines(self.path, self.param_file, self.species, reference)[0]

    @property
    def pair_coeff(self) -> list[str]:
        """``pair_coeff`` lines (without the keyword, absolute file paths) that evaluate the model."""
        reference = SnapReference.model_validate(self.reference) if self.reference else None
        return _model_lines(self.path.resolve(), self.param_file.resolve(), self.species, reference)[1]

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        data["param_path"] = Path(self.param_path).name if self.param_path else None
        data["include_path"] = Path(self.include_path).name if self.include_path else None
        data["pair_style"] = self.pair_style
        data["pair_coeff"] = _model_lines(self.path.name, self.param_file.name, self.species,
                                          SnapReference.model_validate(self.reference) if self.reference else None)[1]
        data["units"]["timings"] = "s"
        return data

    @classmethod
    def load(cls, path: str | os.PathLike) -> SnapModel:
        """From the ``.snapcoeff`` or its sidecar ``.snapcoeff.json``."""
        path = Path(path)
        meta = path if path.name.endswith(SIDE_CAR) else path.with_name(path.name + SIDE_CAR)
        if not meta.is_file():
            raise TrainingInputError("path", f"no model record {meta} (written by train_snap)")
        data = json.loads(meta.read_text())
        for key in ("units", "pair_style", "pair_coeff"):
            data.pop(key, None)
        for key in ("path", "param_path", "include_path"):
            data[key] = meta.with_name(data[key]) if data.get(key) else None
        data["species"] = tuple(data["species"])
        data["log"] = Path(data["log"]) if data.get("log") else None
        return cls(**data)


# --------------------------------------------------------------------------- evaluation


def _files_of(model: SnapModel | SnapFiles | str | os.PathLike) -> SnapFiles:
    if isinstance(model, SnapFiles):
        return model
    if isinstance(model, SnapModel):
        return model.files()
    path = Path(model)
    sidecar = path if path.name.endswith(SIDE_CAR) else path.with_name(path.name + SIDE_CAR)
    if sidecar.is_file():
        return SnapModel.load(sidecar).files()
    return read_snap(path)


def _evaluate_one(files: SnapFiles, atoms: Atoms, want_stress: bool) -> tuple[float, np.ndarray, np.ndarray | None]:
    from md.engine import LammpsSystem

    work = _lammps_ready(atoms, files.cutoff)
    with LammpsSystem(work, files.potential(), species=files.elements) as system:
        energy = system.potential_energy()
        forces = system.forces()
        stress = None
        if want_stress and np.all(atoms.pbc):
            import lammps

            from md.engine import BAR_TO_EV_PER_A3

            pressure = system.lmp.numpy.extract_compute("virial_pressure", lammps.LMP_STYLE_GLOBAL,
                                                        lammps.LMP_TYPE_VECTOR)
            # LAMMPS's own bar <-> eV/A^3 factor (nktv2p), so stress x volume is its virial to round-off;
            # LammpsSystem.stress() uses CODATA's eV, 8.4e-8 relative away from it
            stress = system.frame.stress(np.asarray(pressure, dtype=float) / (NKTV2P_METAL * BAR_TO_EV_PER_A3))
    return energy, forces, stress


def _evaluate_job(job: dict[str, Any]) -> list[tuple[float, np.ndarray, np.ndarray | None]]:
    files = job["files"]
    out = []
    for item in job["items"]:
        atoms = Atoms(numbers=item["numbers"], positions=item["positions"], cell=item["cell"], pbc=item["pbc"])
        out.append(_evaluate_one(files, atoms, job["stress"]))
    return out


def evaluate_snap(model: SnapModel | SnapFiles | str | os.PathLike, images: Sequence[Atoms], *, processes: int = 1,
                  stress: bool = False):
    """Energies per atom (eV/atom, array) and forces (eV/A, list of (n_i, 3)) of a written SNAP model,
    computed by LAMMPS ``pair_style snap`` (with its reference overlay); with ``stress=True`` also a list of
    ASE stresses (eV/A^3, None for non-periodic configurations). ``model``: a :class:`SnapModel`,
    :class:`SnapFiles` or the path of a ``.snapcoeff`` (its record, if any, gives the reference overlay)."""
    files = _files_of(model)
    images = list(images)
    for number, atoms in enumerate(images):
        unknown = sorted(set(atoms.get_chemical_symbols()) - set(files.elements))
        if unknown:
            raise TrainingInputError("images", f"configuration {number} has {', '.join(unknown)}, not in the "
                                               f"model's elements {list(files.elements)}")
    items = [{"numbers": a.numbers.copy(), "positions": a.positions.copy(), "cell": a.cell[:].copy(),
              "pbc": a.pbc.copy()} for a in images]
    chunks = _partition([len(a) + 10.0 for a in images], max(1, int(processes)))
    jobs = [{"files": files, "items": [items[i] for i in chunk], "stress": stress} for chunk in chunks]
    results: list[Any] = [None] * len(images)
    for chunk, values in zip(chunks, _run_jobs(_evaluate_job, jobs, processes)):
        for index, value in zip(chunk, values):
            results[index] = value
    energies = np.array([e / len(a) for (e, _, _), a in zip(results, images)], dtype=float)
    forces = [np.asarray(f, dtype=float) for _, f, _ in results]
    if stress:
        return energies, forces, [s for _, _, s in results]
    return energies, forces


class SnapCalculator(Calculator):
    """ASE calculator of a written SNAP model through LAMMPS ``pair_style snap`` (energy, forces, stress).

    One LAMMPS instance per calculation (about 10 ms of set-up): meant for validation and round trips,
    not for long MD (use the model's ``pair_style``/``pair_coeff`` lines in LAMMPS for that).
    """

    implemented_properties = ["energy", "free_energy", "forces", "stress"]  # noqa: RUF012  (an instance attribute in ASE)

    def __init__(self, model: SnapModel | SnapFiles | str | os.PathLike, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.files = _files_of(model)

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes) -> None:
        super().calculate(atoms, properties, system_changes)
        assert self.atoms is not None  # Calculator.calculate copied ``atoms`` into self.atoms
        unknown = sorted(set(self.atoms.get_chemical_symbols()) - set(self.files.elements))
        if unknown:
            raise TrainingInputError("atoms", f"has {', '.join(unknown)}, not in the model's elements "
                                              f"{list(self.files.elements)}")
        energy, forces, stress = _evaluate_one(self.files, self.atoms, "stress" in properties)
        self.results = {"energy": energy, "free_energy": energy, "forces": forces}
        if stress is not None:
            self.results["stress"] = stress


# --------------------------------------------------------------------------- training


def _round_trip(files: SnapFiles, atoms: Atoms, params: SnapTrainingParams, species: tuple[str, ...],
                coefficients: np.ndarray) -> dict[str, float]:
    """The written model through LAMMPS pair_style snap against the fit's own rows on one configuration."""
    energy, forces, _ = _rows_from_lammps(atoms, params, species).predict(coefficients)
    lammps_energy, lammps_forces, _ = _evaluate_one(files, atoms, False)
    check = {"energy_ev_per_atom": abs(energy - lammps_energy) / len(atoms),
             "forces_ev_per_A": float(np.abs(forces - lammps_forces).max())}
    if max(check.values()) > _ROUND_TRIP_TOLERANCE:
        raise TrainingFailed(f"the written model {files.coeff_path} does not reproduce the fit in LAMMPS: {check}")
    return check


def train_snap(
    train: Sequence[Atoms],
    *,
    workdir: str | os.PathLike,
    params: SnapTrainingParams | dict | None = None,
    test: Sequence[Atoms] | None = None,
    species: Sequence[str] | str | None = None,
    name: str = "snap",
    processes: int = 1,
    **overrides: Any,
) -> SnapModel:
    """Fit a SNAP (linear, or quadratic with ``quadratic=True``) to labelled ``train`` configurations.

    Settings: a :class:`schemas.training.SnapTrainingParams` (or dict) in ``params`` and/or its fields as
    keywords (``twojmax=6``, ``ridge="auto"``, ``reference=SnapReference.zbl(["W"])``, ...). ``species``:
    the elements in LAMMPS type order (default: those of the training set, sorted). ``processes``: LAMMPS
    row workers (spawned processes, one core each). Writes ``workdir/name.snapcoeff``, ``.snapparam``,
    ``.snap`` and the record ``name.snapcoeff.json``; returns the :class:`SnapModel` with train RMSEs
    (from the fit's Gram matrices) and test RMSEs (the written model through LAMMPS ``pair_style snap``).
    Bad input raises :class:`mlip.train.TrainingInputError` naming the field.
    """
    started = time.perf_counter()
    params = _params(params, overrides)
    if isinstance(processes, bool) or not isinstance(processes, (int, np.integer)) or processes < 1:
        raise TrainingInputError("processes", f"needs an integer >= 1, got {processes!r}")
    if not isinstance(name, str) or not name or "/" in name or name.startswith(".") or any(c.isspace() for c in name):
        raise TrainingInputError("name", f"a plain file stem (no '/', no spaces), got {name!r}")
    species = _species_of(list(train or []), species)
    train = _check_set(train, "train", species, allow_empty=False)
    test = _check_set(test, "test", species, allow_empty=True)
    present = {s for atoms in train for s in atoms.get_chemical_symbols()}
    absent = [s for s in species if s not in present]
    if absent:
        raise TrainingInputError("species", f"{', '.join(absent)} has no atom in the training set: its SNAP "
                                            "coefficients cannot be fitted")
    _check_elements(params, species)
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)

    # Held-out part for ridge="auto": a seeded share of the training configurations (never the test set).
    auto = params.ridge == "auto"
    group = np.zeros(len(train), dtype=int)
    if auto:
        if len(train) < 2:
            raise TrainingInputError("ridge", "ridge='auto' needs at least 2 training configurations to hold one out")
        n_val = min(max(1, round(params.validation_fraction * len(train))), len(train) - 1)
        group[np.random.default_rng(params.seed).permutation(len(train))[:n_val]] = 1
    e0 = float(np.mean([atoms.get_potential_energy() / len(atoms) for atoms in train]))
    items = [_label_arrays(atoms) for atoms in train]
    chunks = _partition([len(atoms) + 10.0 for atoms in train], processes)
    n_groups = 2 if auto else 1
    base = {"params": params.model_dump(mode="json"), "species": list(species), "e0": e0, "groups": n_groups}
    jobs = [dict(base, items=[(items[i], int(group[i])) for i in chunk]) for chunk in chunks]
    rows_started = time.perf_counter()
    outputs = _run_jobs(_accumulate, jobs, processes)
    rows_s = time.perf_counter() - rows_started
    groups = [sum((out["sums"][g] for out in outputs[1:]), outputs[0]["sums"][g]) for g in range(n_groups)]
    lammps_cpu = sum(out["lammps_s"] for out in outputs)
    gram_cpu = sum(out["gram_s"] for out in outputs)
    del outputs

    solve_started = time.perf_counter()
    n_const = len(species)
    scan: list[dict[str, float]] = []
    if auto:
        fit, held_out = groups
        system = _NormalSystem(fit.weighted, n_const)
        for value in params.ridge_grid:
            beta = system.solve(value)
            errors = _errors(held_out, beta)
            scan.append({"ridge": value,
                         "validation_loss": _quadratic_form(held_out.weighted, beta) / held_out.n_configurations,
                         "validation_energy_mev_per_atom": errors["energy_mev_per_atom"],
                         "validation_forces_mev_per_A": errors["forces_mev_per_A"]})
        ridge = min(scan, key=lambda row: (row["validation_loss"], row["ridge"]))["ridge"]
        if ridge == max(params.ridge_grid) and len(params.ridge_grid) > 1:
            log.warning("ridge: the held-out loss is lowest at the grid's largest value %g; extend ridge_grid", ridge)
        everything = fit + held_out
    else:
        ridge = float(params.ridge)
        everything = groups[0]
    system = _NormalSystem(everything.weighted, n_const)
    beta = system.solve(ridge)
    train_errors = _errors(everything, beta)
    loss = _quadratic_form(everything.weighted, beta) / everything.n_configurations
    coefficients = beta.copy()
    coefficients[:n_const] += e0  # the energy target was shifted by e0 per atom
    solve_s = time.perf_counter() - solve_started
    if not np.all(np.isfinite(coefficients)):
        raise TrainingInputError("train", "the fit gave non-finite coefficients (labels with NaN/inf?)")

    from md.engine import lammps_version

    engine = f"LAMMPS {lammps_version()} compute snap + numpy {np.__version__}"
    kind = "quadratic" if params.quadratic else "linear"
    coeff, param, include = write_snap_files(
        workdir, name, species, params, coefficients,
        header=f"{kind} SNAP 2J={params.twojmax}, {len(train)} training configurations, relative ridge {ridge:g}")
    files = read_snap(coeff, param, params.reference)
    if not np.array_equal(files.flat_coefficients(), coefficients):
        raise TrainingFailed(f"{coeff} does not read back the fitted coefficients")
    smallest = min(range(len(train)), key=lambda i: len(train[i]))
    round_trip = _round_trip(files, train[smallest], params, tuple(species), coefficients)
    round_trip["configuration"] = smallest
    model = SnapModel(path=coeff, kind="snap", species=tuple(species), n_train=len(train), n_test=len(test),
                      rmse={"train": train_errors, "test": None}, engine=engine, wall_time_s=0.0,
                      param_path=param, include_path=include,
                      reference=params.reference.model_dump() if params.reference else None)
    evaluate_s = 0.0
    if test:
        evaluate_started = time.perf_counter()
        energies, forces = evaluate_snap(model, test, processes=processes)
        model.rmse["test"] = rmse(test, energies, forces)
        evaluate_s = time.perf_counter() - evaluate_started
    model.settings = {
        **params.model_dump(mode="json"),
        "species": list(species), "quadraticflag": int(params.quadratic), "bzeroflag": 0, "switchflag": 1,
        "n_columns": len(coefficients),
        "columns_per_element": 1 + snap_column_count(params.twojmax, params.quadratic),
        "ridge_used": ridge, "ridge_scan": scan, "validation_configurations": int(group.sum()),
        "condition_number": system.condition, "rank": system.rank + n_const, "final_loss": loss,
        "energy_shift_ev_per_atom": e0, "processes": int(processes), "round_trip": round_trip,
        "solver": "normal equations (dsyrk), equilibrated, constant columns eliminated, eigendecomposition",
    }
    model.timings = {"rows": rows_s, "lammps_cpu": lammps_cpu, "gram_cpu": gram_cpu, "solve": solve_s,
                     "evaluate_test": evaluate_s}
    model.wall_time_s = time.perf_counter() - started
    model.timings["total"] = model.wall_time_s
    model.save()
    return model
