"""On-the-fly active learning (OTF-AL, stage 6): MD with the trained MTP, extrapolation grades, refinement.

One iteration (:func:`run_otf`):

1. **MD** with the current MTP (motep's ASE calculator, run mode, as :func:`mlip.train.evaluate`) for
   every target (:class:`MDTarget`: a structure, a temperature, a number of steps; Langevin or
   Berendsen NVT through ASE).
2. **Grades** every ``check_every`` steps (and at step 0): the per-atom extrapolation grade gamma with
   the selection stage's own MaxVol code: the basis is :class:`selection.bases.MtpBasis` of the model
   being run (``selection.bases.make_basis("mtp", ...)``; rows = motep's per-atom Jacobian of the site
   energy with respect to the linear MTP coefficients, the moments of the trained radial functions),
   the active set is :func:`selection.grading.training_active_set` over every atom of the current
   training set, grades come from :func:`selection.grading.grade_atoms` (``maxvol.grades``). The MTP
   basis works with models trained by :func:`mlip.motep_trainer.train_mtp` (legacy-layout files), so the
   project's default SNAP basis is not used here; since the moments depend on the radial
   coefficients, the active set is rebuilt after every retraining. A snapshot whose gamma_max exceeds
   ``gamma_break`` stops its run (the paper's gamma_break = 10); atoms above ``gamma_select`` (2) are
   collected with their snapshot.
3. **Selection** among the collected atoms: greedy D-optimal :func:`selection.grading.select_environments`
   (the same ``select_add`` as stage 2), so an environment repeated over many snapshots (the same
   vacancy neighbour) is added once; at most ``max_new`` per iteration.
4. **Cut -> PCC-GCMC -> label**: one sphere of ``cluster_radius`` per selected atom
   (:func:`selection.clusters.cut_clusters`, one per atom), rebuilt as a periodic cell with the
   selected atom's environment within ``gcmc.core_radius`` fixed (:func:`pcc_gcmc.reconstruct`),
   labelled with :func:`labelling.label` (DFT, or the ``eam`` reference labeller for tests and demos)
   under the ledger's retry policy (:func:`labelling.ledger.run_attempts`).
5. **Retrain** :func:`mlip.motep_trainer.train_mtp` on the old set + the new labelled cells (same settings).

The loop stops when an iteration adds nothing (``stopped = "converged"`` when no atom exceeded
gamma_select, ``"nothing_added"`` when every reconstruction or label failed) or after
``max_iterations`` iterations (the last one is then a production check: its candidates are counted,
not added). ``max_labels`` caps the label (DFT) jobs of the whole loop: once they are spent, the next
iteration is a production check of the last model and the loop stops with ``"budget"`` (or
``"converged"``). The production configurations are the snapshots of the final iteration.

Each step is a plain function: :func:`active_set_of`, :func:`grade_run`, :func:`select_new`,
:func:`cut_cluster`, :func:`retrain`, :func:`stop_reason`. A campaign runs them as stages on its queues
(``workers/stages/otf.py``: MD items on ``md``, selection and retraining on ``select``, PCC-GCMC boxes on
``gcmc``, labels through the ledger on ``dft``), which is what resumes and cancels; :func:`run_otf` composes
the same functions in one process for a notebook, with no state of its own between calls.

Units: K, fs, eV, A; RMSE in meV/atom and meV/A as :func:`mlip.train.rmse`.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from ase import Atoms
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.fields import FieldInfo

from schemas.campaign import OTFParams, OTFTarget, SelectionParams

if TYPE_CHECKING:  # mlip.trainers imports this module
    from .trainers import LearningTrainer, Trainer

__all__ = ["Chosen", "GradedRun", "MDTarget", "OTFError", "OTFIteration", "OTFResult", "OTFRun", "OTFSettings",
           "active_set_of", "added_record", "cut_cluster", "grade_run", "retrain", "run_otf", "select_new",
           "stop_reason", "write_json"]


# the parameters the campaign spec defines (default, bounds, units); OTFSettings reuses their definitions
_SELECTION = SelectionParams.model_fields
_OTF = OTFParams.model_fields


def _schema_field(fields: dict[str, FieldInfo], name: str) -> Any:
    """A copy of the schema's field ``name`` (default, bounds, description) to stand as an OTFSettings field's
    default; typed Any, as pydantic's Field() is, since it stands for a value of the field's type."""
    return copy.copy(fields[name])


class OTFError(ValueError):
    """Bad OTF input (``field`` names the argument) or a work directory made with other settings."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(f"{field_name}: {message}")
        self.field = field_name


_TARGET = OTFTarget.model_fields


class MDTarget(BaseModel):
    """One production condition: MD of ``atoms`` at ``temperature`` K for ``steps`` steps of ``timestep`` fs.

    ``temperature``, ``steps``, ``timestep`` (the spec's ``timestep_fs``) and ``seed`` keep the campaign spec's
    definitions (:class:`schemas.campaign.OTFTarget`: default, bounds, units). ``thermostat``: ``"langevin"``
    (friction ``friction`` in 1/fs) or ``"berendsen"`` (NVT, time constant ``taut`` fs). Velocities start from a
    Maxwell-Boltzmann distribution of ``seed``. Positional arguments: atoms, temperature, steps. Bad values raise
    :class:`OTFError` (field ``targets``).
    """

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True, allow_inf_nan=False)

    atoms: Atoms
    temperature: float = _schema_field(_TARGET, "temperature")
    steps: int = _schema_field(_TARGET, "steps")
    name: str = "md"
    # the spec's default and units; its cap (10 fs) is a campaign's, a script may take longer steps
    timestep: float = Field(_TARGET["timestep_fs"].default, gt=0, description=_TARGET["timestep_fs"].description)
    thermostat: Literal["langevin", "berendsen"] = "langevin"
    friction: float = Field(0.01, gt=0, description="Langevin friction, 1/fs")
    taut: float = Field(100.0, gt=0, description="Berendsen time constant, fs")
    seed: int = _schema_field(_TARGET, "seed")

    def __init__(self, *args: Any, **data: Any) -> None:
        data |= dict(zip(("atoms", "temperature", "steps"), args, strict=False))
        try:
            super().__init__(**data)
        except ValidationError as exc:
            error = exc.errors()[0]
            where = ".".join(str(part) for part in error["loc"]) or "target"
            raise OTFError("targets", f"{data.get('name', 'md')}: {where}: "
                                      f"{error['msg'].removeprefix('Value error, ')}") from None

    @field_validator("steps", mode="before")
    @classmethod
    def _no_bool(cls, value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError(f"steps must be a positive integer, got {value!r}")
        return value

    @field_validator("atoms")
    @classmethod
    def _atoms(cls, value: Atoms) -> Atoms:
        if len(value) == 0:
            raise ValueError("atoms must be a non-empty ase.Atoms")
        return value


class OTFSettings(BaseModel):
    """Loop settings. The campaign's parameters keep their schema definitions (default, bounds, units):
    gamma_select, gamma_break and cluster_radius of ``SelectionParams``, check_every, max_iterations and max_new
    of ``OTFParams``. Bad values raise :class:`OTFError` naming the field.

    ``train``: keyword arguments of :func:`mlip.motep_trainer.train_mtp` (level, max_iter, seed, ...), used for
    the initial model and every retraining (or ``trainer``: a :class:`mlip.trainers.LearningTrainer`, e.g. a
    SNAP's).
    ``max_labels``: most label jobs over all iterations (None: no cap), e.g. what is left of a campaign's DFT
    budget. ``gcmc``: :class:`pcc_gcmc.GCMCParams` or a dict (None: ``GCMCParams.fast()``). ``potential``: the
    classical potential of PCC-GCMC.
    """

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    gamma_select: float = _schema_field(_SELECTION, "gamma_select")
    gamma_break: float = _schema_field(_SELECTION, "gamma_break")
    check_every: int = _schema_field(_OTF, "check_every")
    max_iterations: int = _schema_field(_OTF, "max_iterations")
    max_new: int | None = Field(_OTF["max_new"].default, ge=1, description=f"{_OTF['max_new'].description}; "
                                "None: no cap")
    max_labels: int | None = Field(None, ge=0, description="most label jobs over all iterations; None: no cap")
    cluster_radius: float = _schema_field(_SELECTION, "cluster_radius")
    potential: str = Field("W_zhou.eam.alloy", description="the classical potential of PCC-GCMC")
    gcmc: Any = Field(None, description="PCC-GCMC parameters (GCMCParams or its dict); None: GCMCParams.fast()")
    train: dict[str, Any] = Field(default_factory=dict, description="train_mtp keywords")
    species: tuple[str, ...] | None = None
    trainer: Any = Field(None, description="a mlip.trainers.LearningTrainer; None: an MTP with `train`")

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            error = exc.errors()[0]
            where = ".".join(str(part) for part in error["loc"]) or "settings"
            raise OTFError(where, error["msg"].removeprefix("Value error, ")) from None

    @field_validator("train")
    @classmethod
    def _train_keys(cls, value: dict[str, Any]) -> dict[str, Any]:
        for key in ("workdir", "train", "test", "name", "species"):
            if key in value:
                raise ValueError(f"{key!r} is set by the OTF loop, not by train settings")
        return value

    @model_validator(mode="after")
    def _break_above_select(self) -> OTFSettings:
        if not self.gamma_break > self.gamma_select:
            raise ValueError(f"gamma_break must exceed gamma_select ({self.gamma_select}), got {self.gamma_break!r}")
        return self

    def gcmc_params(self):
        from pcc_gcmc import GCMCParams

        return GCMCParams.fast() if self.gcmc is None else GCMCParams.from_dict(self.gcmc)


@dataclass
class OTFRun:
    """One MD run of one iteration. ``gamma_max``: per graded snapshot (steps in ``snapshot_steps``)."""

    target: str
    steps_requested: int
    steps_done: int
    stopped: str  # "completed", "gamma_break", "unstable"
    snapshot_steps: list[int]
    gamma_max: list[float]
    n_candidates: int  # atoms above gamma_select, summed over snapshots
    wall_time_s: float
    # every graded atom of every snapshot (selection.maxvol.log_histogram)
    gamma_histogram: dict[str, Any] | None = None
    md_engine: str = "ase"  # where the MD ran: "ase" (motep's calculator) or "lammps" (a SNAP, mlip.snap_md)

    @property
    def completed(self) -> bool:
        return self.stopped == "completed"


@dataclass
class OTFIteration:
    """What one iteration did. ``rmse``: the retrained model's train/test errors (None when not retrained)."""

    index: int
    model: str  # the model the MD ran with
    n_train_before: int
    runs: list[OTFRun]
    n_candidates: int
    n_selected: int
    selected: list[dict[str, Any]]  # {"run", "snapshot_step", "atom", "gamma"}
    n_added: int
    added: list[dict[str, Any]]  # {"source", "n_atoms", "energy_per_atom" (label, eV/atom), "gamma"}
    failures: list[dict[str, Any]]
    retrained: str | None
    rmse: dict[str, Any] | None
    gamma_max: float
    wall_time_s: float
    timing: dict[str, float] = field(default_factory=dict)
    n_labels: int = 0  # label jobs started (counted against OTFSettings.max_labels)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OTFIteration:
        data = dict(data)
        data["runs"] = [OTFRun(**run) for run in data["runs"]]
        return cls(**data)


@dataclass
class OTFResult:
    """The loop's record. ``model``: the final model (the last retrained one, else the initial one)."""

    iterations: list[OTFIteration]
    initial_model: str
    model: str
    stopped: str  # "converged", "nothing_added", "max_iterations", "budget"
    training_set: list[Atoms]
    initial_rmse: dict[str, Any]
    workdir: Path

    @property
    def added_per_iteration(self) -> list[int]:
        return [it.n_added for it in self.iterations]

    @property
    def production_gamma_max(self) -> float:
        """gamma_max over the final iteration's snapshots (the production configurations)."""
        return self.iterations[-1].gamma_max

    def summary(self) -> dict[str, Any]:
        return {
            "stopped": self.stopped,
            "n_iterations": len(self.iterations),
            "added_per_iteration": self.added_per_iteration,
            "gamma_max_per_iteration": [it.gamma_max for it in self.iterations],
            "n_training": len(self.training_set),
            "initial_model": self.initial_model,
            "model": self.model,
            "initial_rmse": self.initial_rmse,
            "rmse_per_iteration": [it.rmse for it in self.iterations],
        }


# --------------------------------------------------------------------------- helpers


def _structure_hash(atoms: Atoms) -> str:
    digest = hashlib.sha1()
    digest.update(np.asarray(atoms.numbers, dtype=np.int64).tobytes())
    digest.update(np.round(np.asarray(atoms.positions, dtype=float), 6).tobytes())
    digest.update(np.round(np.asarray(atoms.cell[:], dtype=float), 6).tobytes())
    digest.update(np.asarray(atoms.pbc, dtype=bool).tobytes())
    return digest.hexdigest()


def _labels_hash(images: Sequence[Atoms]) -> str:
    digest = hashlib.sha1()
    for atoms in images:
        digest.update(_structure_hash(atoms).encode())
        digest.update(np.round(atoms.get_potential_energy(), 8).tobytes() if atoms.calc else b"-")
    return digest.hexdigest()


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def write_json(path: Path, data: dict[str, Any]) -> None:
    """``data`` as JSON (numpy numbers and arrays, paths as plain values) through a temporary file and a rename."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, default=_json_default) + "\n")
    os.replace(tmp, path)


def _write_images(path: Path, images: Sequence[Atoms]) -> None:
    from ase.io import write

    clean = []
    for atoms in images:  # labels travel as calculator results; info copies of them clash in extxyz
        copy = atoms.copy()
        copy.calc = atoms.calc
        if atoms.calc is not None:
            for key in list(copy.info):
                if key in atoms.calc.results:
                    del copy.info[key]
        clean.append(copy)
    tmp = path.with_name(path.name + ".tmp")
    write(tmp, clean, format="extxyz")
    os.replace(tmp, path)


def _calculator(model_path: Path, species: Sequence[str], engine: str = "cext"):
    from motep.calculator import make_calculator

    from .train import _read_mtp

    return make_calculator(_read_mtp(model_path, species), engine=engine, mode="run")


# --------------------------------------------------------------------------- one MD run


class GradedRun:
    """The bookkeeping of one graded MD run, shared by :func:`grade_run` (ASE) and
    :func:`mlip.snap_md.run_graded_snap` (LAMMPS): the steps done, gamma_max and the histogram of every graded
    snapshot, the snapshots holding atoms above ``gamma_select``, the stop rule (gamma_break, the last step) and
    the :class:`OTFRun` record. The engine sets ``stopped = "unstable"`` itself and advances ``steps_done``."""

    def __init__(self, target: MDTarget, *, gamma_select: float, gamma_break: float, md_engine: str,
                 started: float | None = None) -> None:
        self.target = target
        self.gamma_select = gamma_select
        self.gamma_break = gamma_break
        self.md_engine = md_engine
        self.started = time.perf_counter() if started is None else started
        self.steps_done = 0
        self.stopped = "completed"
        self.snapshot_steps: list[int] = []
        self.maxima: list[float] = []
        self.histograms: list[dict[str, Any]] = []
        self.collected: list[tuple[Atoms, np.ndarray, np.ndarray]] = []
        self.n_candidates = 0

    def label(self, snapshot: Atoms, gamma: np.ndarray) -> Atoms:
        """``snapshot`` with its grades (``arrays["gamma"]``), ``info["step"]`` and ``info["source"]``."""
        snapshot.arrays["gamma"] = gamma.copy()
        snapshot.info["step"] = self.steps_done
        snapshot.info["source"] = f"otf:{self.target.name}:step-{self.steps_done}"
        return snapshot

    def record(self, gamma: np.ndarray) -> bool:
        """One graded snapshot at ``steps_done``; True when it holds atoms above gamma_select (counted): the
        caller then keeps it (:meth:`keep`)."""
        from selection.maxvol import log_histogram

        self.snapshot_steps.append(self.steps_done)
        self.maxima.append(float(gamma.max()))
        self.histograms.append(log_histogram(gamma))
        above = gamma > self.gamma_select
        self.n_candidates += int(above.sum())
        return bool(above.any())

    def keep(self, snapshot: Atoms, rows: np.ndarray, gamma: np.ndarray) -> None:
        """A graded snapshot with atoms above gamma_select (labelled by :meth:`label`), its rows and grades."""
        self.collected.append((snapshot, rows, gamma))

    def next_chunk(self, gamma: np.ndarray, check_every: int) -> int:
        """MD steps to the next check; 0 when the run stops here (gamma_max above gamma_break, or done)."""
        if gamma.max() > self.gamma_break:
            self.stopped = "gamma_break"
            return 0
        if self.steps_done >= self.target.steps:
            return 0
        return min(int(check_every), int(self.target.steps) - self.steps_done)

    def result(self) -> tuple[OTFRun, list[tuple[Atoms, np.ndarray, np.ndarray]]]:
        from selection.maxvol import merge_histograms

        run = OTFRun(target=self.target.name, steps_requested=int(self.target.steps), steps_done=self.steps_done,
                     stopped=self.stopped, snapshot_steps=self.snapshot_steps, gamma_max=self.maxima,
                     n_candidates=self.n_candidates, wall_time_s=time.perf_counter() - self.started,
                     gamma_histogram=merge_histograms(self.histograms) if self.histograms else None,
                     md_engine=self.md_engine)
        return run, self.collected


def grade_run(
    target: MDTarget,
    model_path: str | os.PathLike,
    basis,
    active_set,
    *,
    species: Sequence[str] = ("W",),
    gamma_select: float,
    gamma_break: float,
    check_every: int,
    on_check: Callable[[int], None] | None = None,
) -> tuple[OTFRun, list[tuple[Atoms, np.ndarray, np.ndarray]]]:
    """MD of ``target`` with the MTP at ``model_path``, graded every ``check_every`` steps.

    Returns the run record and the graded snapshots that hold atoms above ``gamma_select``, each as
    (snapshot with ``arrays["gamma"]`` and ``info["step"]``, rows, gamma). The run stops after the
    first snapshot with gamma_max > ``gamma_break`` (that snapshot is returned) or when the energy or
    positions stop being finite (``stopped = "unstable"``). ``on_check(step)`` is called after every graded
    snapshot (progress, and a place for the caller to stop the run by raising).
    """
    from ase import units
    from ase.md.langevin import Langevin
    from ase.md.md import MolecularDynamics
    from ase.md.nvtberendsen import NVTBerendsen
    from ase.md.velocitydistribution import Stationary, thermalize_momenta

    from selection.grading import grade_atoms

    started = time.perf_counter()
    atoms = Atoms(target.atoms.numbers, positions=target.atoms.positions, cell=target.atoms.cell,
                  pbc=target.atoms.pbc)
    atoms.calc = _calculator(Path(model_path), species)
    rng = np.random.default_rng(target.seed)
    thermalize_momenta(atoms, temperature_K=target.temperature, rng=rng)
    Stationary(atoms)
    dynamics: MolecularDynamics
    if target.thermostat == "langevin":
        dynamics = Langevin(atoms, target.timestep * units.fs, temperature_K=target.temperature,
                            friction=target.friction / units.fs, fixcm=False, rng=rng)
    else:
        dynamics = NVTBerendsen(atoms, target.timestep * units.fs, temperature_K=target.temperature,
                                taut=target.taut * units.fs)
    book = GradedRun(target, gamma_select=gamma_select, gamma_break=gamma_break, md_engine="ase", started=started)
    while True:
        energy = atoms.get_potential_energy()
        if not (np.isfinite(energy) and np.all(np.isfinite(atoms.positions))):
            book.stopped = "unstable"
            break
        rows, gamma = grade_atoms(basis, active_set, atoms)
        if book.record(gamma):
            book.keep(book.label(Atoms(atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=atoms.pbc),
                                 gamma), rows, gamma)
        if on_check is not None:
            on_check(book.steps_done)
        chunk = book.next_chunk(gamma, check_every)
        if not chunk:
            break
        dynamics.run(chunk)
        book.steps_done += chunk
    return book.result()


# --------------------------------------------------------------------------- the steps of one iteration


def active_set_of(model_path: str | os.PathLike, training: Sequence[Atoms], species: Sequence[str],
                  trainer: LearningTrainer | None = None):
    """(basis, active set) of the model at ``model_path`` over ``training``: the grading reference of its MD; one
    active set per species for several ``species`` (as MLIP-3 keeps them). ``trainer``: the model's
    :class:`mlip.trainers.LearningTrainer` (default an MTP's)."""
    from selection.grading import training_active_set

    from .trainers import MtpTrainer

    basis = (trainer or MtpTrainer()).basis(model_path, species)
    return basis, training_active_set(basis, list(training), per_species=len(species) > 1)


@dataclass
class Chosen:
    """A selected environment: atom ``atom`` of the snapshot ``snapshot`` of run ``run``."""

    run: str
    snapshot: Atoms
    atom: int
    gamma: float

    def record(self) -> dict[str, Any]:
        return {"run": self.run, "snapshot_step": int(self.snapshot.info["step"]), "atom": int(self.atom),
                "gamma": float(self.gamma)}

    @property
    def origin(self) -> str:
        """Where the environment came from: ``otf:<run>:step-<n>:atom-<i>``."""
        return f"{self.snapshot.info['source']}:atom-{self.atom}"


def select_new(active_set, collected: Sequence[tuple[str, Sequence[tuple[Atoms, np.ndarray, np.ndarray]]]], *,
               gamma_select: float, max_new: int | None) -> list[Chosen]:
    """Greedy D-optimal selection (stage 2's ``select_add``) among the atoms above ``gamma_select`` of every
    collected snapshot, runs in the given order; an environment repeated over snapshots is added once."""
    from selection.grading import select_environments

    flat = [(run, snapshot, rows, gamma) for run, snapshots in collected for snapshot, rows, gamma in snapshots]
    if not flat:
        return []
    selection = select_environments(active_set, [f[2] for f in flat], [f[3] for f in flat],
                                    gamma_select=gamma_select, max_new=max_new,
                                    species=[f[1].get_chemical_symbols() for f in flat])
    return [Chosen(flat[k][0], flat[k][1], int(atom), float(flat[k][3][atom])) for k, atom in selection.chosen]


def cut_cluster(chosen: Chosen, radius: float):
    """The spherical cluster of ``radius`` A around the chosen atom (:func:`selection.clusters.cut_clusters`)."""
    from selection.clusters import cut_clusters

    return cut_clusters(chosen.snapshot, [chosen.atom], radius=radius, source=chosen.snapshot.info["source"])[0]


def retrain(trainer: Trainer, train: Sequence[Atoms], test: Sequence[Atoms] | None, workdir: Path):
    """A model on ``train`` by ``trainer`` (:class:`mlip.trainers.Trainer`) in ``workdir``."""
    model = trainer.train(list(train), list(test) if test else None, Path(workdir))
    model.settings["labels_sha1"] = _labels_hash(train)
    model.save()
    return model


def added_record(cell: Atoms) -> dict[str, Any]:
    """What an iteration record keeps of one labelled new cell."""
    return {"source": cell.info.get("source"), "n_atoms": len(cell),
            "energy_per_atom": float(cell.get_potential_energy() / len(cell)), "gamma": cell.info.get("otf_gamma")}


def stop_reason(record: OTFIteration, last: bool, labels_left: int | None) -> str | None:
    """Why the loop stops after ``record`` (None: it goes on); ``labels_left`` after this iteration."""
    if record.n_candidates == 0 and all(run.completed for run in record.runs):
        return "converged"
    if record.n_added == 0:
        if last:
            return "max_iterations"
        return "budget" if labels_left == 0 else "nothing_added"
    return None


# --------------------------------------------------------------------------- the loop


def _refine(chosen: list[Chosen], workdir: Path, settings: OTFSettings, label_settings, label_launcher,
            max_labels: int | None) -> tuple[list[Atoms], list[dict[str, Any]], dict[str, float], int]:
    """Cut -> PCC-GCMC -> label for every chosen environment, starting at most ``max_labels`` label jobs;
    returns labelled cells, failures, timing and the number of label jobs started."""
    from labelling.ledger import new_record, run_attempts
    from pcc_gcmc import ReconstructionError, reconstruct

    params = settings.gcmc_params()
    added, failures = [], []
    timing = {"reconstruct_s": 0.0, "label_s": 0.0}
    n_labels = 0
    for number, environment in enumerate(chosen):
        where = {k: v for k, v in environment.record().items() if k != "gamma"}
        if max_labels is not None and n_labels >= max_labels:
            failures.append({**where, "stage": "budget", "reason": "max_labels label jobs already started"})
            continue
        started = time.perf_counter()
        try:
            rebuilt = reconstruct(cut_cluster(environment, settings.cluster_radius), None, settings.potential, params,
                                  max_workers=1)
        except ReconstructionError as error:
            failures.append({**where, "stage": "reconstruction", "reason": str(error)[:500]})
            timing["reconstruct_s"] += time.perf_counter() - started
            continue
        timing["reconstruct_s"] += time.perf_counter() - started
        cell = rebuilt.atoms
        started = time.perf_counter()
        n_labels += 1
        # the ledger's retry policy (e.g. SCF not converged: stronger mixing)
        record, result = run_attempts(cell, new_record(cell, label_settings), workdir / f"label-{number:03d}",
                                      label_launcher)
        timing["label_s"] += time.perf_counter() - started
        if result is None:
            failures.append({**where, "stage": "labelling", "attempts": record.attempts,
                             "reason": str(record.message)[:500]})
            continue
        labelled = result.to_atoms(cell, source=environment.origin)
        labelled.info["otf_gamma"] = environment.gamma
        gcmc_energy = rebuilt.best.energy_per_atom
        assert gcmc_energy is not None, "the best candidate was relaxed (pcc_gcmc.select_best)"
        labelled.info["energy_per_atom_gcmc"] = float(gcmc_energy)
        added.append(labelled)
    return added, failures, timing, n_labels


def run_otf(
    initial: Sequence[Atoms],
    targets: Sequence[MDTarget],
    workdir: str | os.PathLike,
    *,
    label_settings,
    settings: OTFSettings | None = None,
    test: Sequence[Atoms] | None = None,
    label_launcher=None,
    initial_model=None,
    on_iteration: Callable[[OTFIteration, list[Atoms]], None] | None = None,
) -> OTFResult:
    """The OTF-AL loop (see the module docstring) from the labelled ``initial`` set, in one process.

    A notebook helper composing the steps a campaign runs as stages on its queues
    (``workers/stages/otf.py``): :func:`grade_run`, :func:`select_new`, :func:`cut_cluster`,
    :func:`pcc_gcmc.reconstruct`, the ledger's labelling, :func:`retrain`, :func:`stop_reason`. It keeps
    no state between calls: a campaign is what resumes.

    ``label_settings``: :class:`labelling.DFTSettings` of the new cells (``labelling.quick("eam")`` is
    the classical reference labeller for tests). ``test``: labelled configurations for the test RMSE of
    every model (optional). ``initial_model``: a :class:`mlip.train.TrainedModel` (or its ``.mtp`` path)
    already trained on ``initial`` with ``settings.train``, used instead of training ``model-0``.
    ``on_iteration(record, added)``: called after every iteration with its record and its labelled new cells.
    One JSON record per iteration is written to ``workdir`` (``iteration-NNN.json``).
    """
    from .train import TrainedModel, _species_of
    from .trainers import MtpTrainer

    settings = settings or OTFSettings()
    initial = list(initial)
    targets = list(targets)
    if not initial:
        raise OTFError("initial", "the initial training set is empty")
    if not targets:
        raise OTFError("targets", "give at least one MDTarget")
    names = [t.name for t in targets]
    if len(set(names)) != len(names):
        raise OTFError("targets", f"target names must be distinct, got {names}")
    _label_settings(label_settings)
    species = _species_of(initial + [t.atoms for t in targets], settings.species)
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)

    trainer = settings.trainer or MtpTrainer(settings.train | {"species": list(species)})
    if initial_model is not None:
        model = initial_model if isinstance(initial_model, TrainedModel) else TrainedModel.load(initial_model)
    else:
        model = retrain(trainer, initial, test, workdir / "model-0")
    initial_path, initial_rmse = str(model.path), model.rmse
    training = list(initial)
    iterations: list[OTFIteration] = []
    stopped = "max_iterations"
    labels_left = settings.max_labels  # None: no cap
    for index in range(1, settings.max_iterations + 1):
        folder = workdir / f"iteration-{index:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        timing: dict[str, float] = {}
        basis, active_set = active_set_of(model.path, training, species, trainer)
        runs, collected = [], []
        tick = time.perf_counter()
        for target in targets:
            run, snapshots = trainer.md(target, model.path, basis, active_set, gamma_select=settings.gamma_select,
                                        gamma_break=settings.gamma_break, check_every=settings.check_every)
            runs.append(run)
            collected.append((target.name, snapshots))
        timing["md_s"] = time.perf_counter() - tick
        if any(snapshots for _, snapshots in collected):
            _write_images(folder / "snapshots.extxyz", [s for _, snapshots in collected for s, _, _ in snapshots])
        n_candidates = sum(run.n_candidates for run in runs)
        last = index == settings.max_iterations or labels_left == 0
        chosen = select_new(active_set, collected, gamma_select=settings.gamma_select,
                            max_new=settings.max_new) if n_candidates else []
        added: list[Atoms] = []
        failures: list[dict[str, Any]] = []
        retrained, rmse_record, n_labels = None, None, 0
        if chosen and not last:
            added, failures, refine_timing, n_labels = _refine(chosen, folder, settings, label_settings,
                                                               label_launcher, labels_left)
            timing.update(refine_timing)
            labels_left = None if labels_left is None else labels_left - n_labels
        if added:
            _write_images(folder / "added.extxyz", added)
            training = training + added
            tick = time.perf_counter()
            model = retrain(trainer, training, test, folder / "model")
            timing["train_s"] = time.perf_counter() - tick
            retrained, rmse_record = str(model.path), model.rmse
        record = OTFIteration(
            index=index, model=str(basis.path), n_train_before=len(training) - len(added), runs=runs,
            n_candidates=n_candidates, n_selected=len(chosen), selected=[c.record() for c in chosen],
            n_added=len(added), added=[added_record(a) for a in added], failures=failures, retrained=retrained,
            rmse=rmse_record, gamma_max=max(max(run.gamma_max) for run in runs),
            wall_time_s=time.perf_counter() - started, timing=timing, n_labels=n_labels,
        )
        write_json(workdir / f"iteration-{index:03d}.json", record.to_dict())
        iterations.append(record)
        if on_iteration is not None:
            on_iteration(record, added)
        reason = stop_reason(record, index == settings.max_iterations, labels_left)
        if reason:
            stopped = reason
            break
    return OTFResult(iterations=iterations, initial_model=initial_path, model=str(model.path), stopped=stopped,
                     training_set=training, initial_rmse=initial_rmse, workdir=workdir)


def _label_settings(label_settings) -> None:
    if label_settings is None:
        raise OTFError("label_settings", "give the labelling settings of the new cells (labelling.DFTSettings; "
                                         "labelling.quick('eam') is the classical reference labeller)")
