"""PCC-GCMC: a non-periodic cluster -> a small periodic cell whose core is the cluster's, unchanged.

Physics (Shuang et al. 2025, Fig. 1b and 3b):

* The *core* (default: atoms within ``core_radius`` = 5 A, the MLIP cutoff, of the centre atom) is
  kept exactly: its atoms are LAMMPS type(s) of their own, outside the ``fix gcmc`` group (never
  translated, deleted), under ``fix setforce 0 0 0`` and not remapped when the box relaxes
  (``fix box/relax ... dilate partial`` on the mobile group). The centre atom's environment within
  the MLIP cutoff is therefore the cluster's.
* The box is orthogonal, along the cluster's axes, the core in its middle. Starting box: the
  core's extent plus a margin (default: the margin that makes the box hold ``max_atoms`` atoms at
  the cluster's own density); the candidates are a grid around it (the authors' 3 x 3 x 3 offsets
  -1.0, -0.5, 0.0 A per axis, or the paper's wider core extent + 1..10 A).
* Periodic axes of the cluster (``atoms.pbc``, e.g. along a dislocation line as in the paper's
  Fig. 3a) keep their period: no grid offsets and no box relaxation along them.
* No GCMC insertion or move within ``core_radius`` of the centre atom (``protect_centre``); each
  candidate records whether the centre's environment within ``core_radius`` is exactly the core's
  (``centre_environment_exact``; candidates where relaxation pulled another atom in are not admissible).
* The rest of the cluster seeds the box where it fits (periodic distance >= ``seed_min_distance``
  from atoms already placed, nearest to the centre first); those atoms are mobile.
* ``fix gcmc ... full_energy`` (needed for many-body EAM/MEAM) inserts, deletes and moves atoms of
  the inserted type only, with NVT dynamics of the mobile atoms in between; then CG relaxes the
  mobile atoms and the box (core fixed). Energy per atom, minimum distance and the GCMC statistics
  are recorded for every candidate; the best is the lowest energy per atom among the candidates
  with at most ``max_atoms`` atoms.

Several species (issue #18): the payload carries the cluster's ``species`` and ``shell_composition`` (atomic
fractions of the cluster atoms outside the core). The core keeps its atoms and species (types of their own);
every shell species gets a mobile type and the seeded shell atoms keep their species (an ordered alloy's shell
starts on its sublattices). ``fix gcmc`` inserts the one element as for a pure metal; then
:func:`_restore_shell_composition` sets the mobile counts to the shell's fractions (largest-remainder rounding;
random inserted atoms first change species) and orders them by canonical swaps, ``fix atom/swap ... semi-grand
no`` on the mobile group (composition exact by construction; the core is never swapped), ``ALLOY_SWAP_STEPS``
steps at the GCMC temperature. Chosen over ``semi-grand yes`` with chemical potentials by measurement (B2 NiAl
sphere, 8 A cut, 5 A core, one 11.77 A box, 200 reduced-protocol GCMC steps, seed 3, NiAlH_jea): canonical swaps
-> 128 atoms, shell Ni:Al 35:34 (cluster shell 0.509:0.491), E = perfect B2 - 0.015 eV/atom, 24 like
nearest-neighbour pairs (the 3 Ni antisites the Ni-rich counts force), none in the core, 3.5 s; semi-grand yes,
mu(Ni) - mu(Al) from -3 to +2 eV -> shell Ni:Al 52:17 (26 at.% off), 160 like pairs, E = B2 - 0.077 eV/atom (the
Ni-rich, disordered shell), the same for every mu tried. Cu-Ni 50/50 solid solution (CuNi.eam.alloy): shell Cu
0.451 vs the cluster's 0.455. One species: no payload-driven change (same seeding, types, commands and seeds).

The authors' input had bugs not copied here: the element is checked against the potential; only
admissible candidates (<= max_atoms, finished) can become the best; each box has its own
reproducible seed; the cap is ``max_atoms`` (140).

Cost (issue 5, ``benchmarks/pcc_gcmc.py``): GCMC is ~96% of a candidate's time with the authors'
protocol (each MC move and exchange is a full EAM energy evaluation with ``full_energy``; the 100
translations per invocation are ~90% of that), the CG relaxation < 1%, set-up ~0.5 s (mostly fix gcmc's
Monte Carlo estimate of the insertion region's volume). Every :class:`CandidateResult` records
``time_setup_s``, ``time_gcmc_s``, ``time_minimize_s``, ``time_s`` and ``cpu_s``; :func:`time_breakdown`
sums them over a grid. Speed-ups are :class:`GCMCParams` options, off by default (``GCMCParams.fast()``
turns the measured ones on): ``check_every`` (GCMC in chunks, bit-for-bit the single run, with a trace),
``early_stop``/``plateau_steps``/``min_steps``, ``stop_over_cap``, ``prune``; parallel candidates through
``reconstruct(max_workers=...)`` or a task queue.

Distribution: :func:`run_candidate` is a plain top-level function of JSON-ready arguments
(:func:`plan` makes them), so a process pool or a Celery group can fan it out; :func:`assemble`
picks the best from the results. :func:`reconstruct` does all three.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import multiprocessing
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms

from md.potentials import GeneralPotential, Potential, PotentialError, check_element, load_potential

from .params import GCMCParams

__all__ = [
    "CandidateResult",
    "NoAdmissibleCandidateError",
    "Reconstruction",
    "ReconstructionError",
    "assemble",
    "candidate_boxes",
    "candidate_seed",
    "default_core_mask",
    "min_distance",
    "plan",
    "potential_from_dict",
    "potential_to_dict",
    "prepare_payload",
    "reconstruct",
    "run_candidate",
    "select_best",
    "time_breakdown",
]

WALL_STIFFNESS = 1.0e4  # eV/A^3, K of the core wall: 0.02 A deep under a 4 eV/A push
_MAX_LAMMPS_SEED = 2**31 - 2  # RanPark/RanMars accept 1..2^31-1
# several species (issue #18): MD/swap steps after GCMC, and swap attempts per invocation per mobile atom
ALLOY_SWAP_STEPS = 500
ALLOY_SWAP_ATTEMPTS = 1


class ReconstructionError(RuntimeError):
    """A reconstruction cannot be set up or gave no usable result."""


class NoAdmissibleCandidateError(ReconstructionError):
    """No candidate finished with at most ``max_atoms`` atoms; ``candidates`` holds the table."""

    def __init__(self, message: str, candidates: list[CandidateResult]):
        super().__init__(message)
        self.candidates = candidates


# --------------------------------------------------------------------------- results

_STRUCTURE_FIELDS = ("symbols", "positions", "core", "inserted", "seeded")


@dataclass
class CandidateResult:
    """One box of the grid. ``status``: ok, failed (LAMMPS error; ``message``) or skipped (not run).

    A candidate stopped by ``stop_over_cap`` has status ok, ``admissible`` false, ``stop_reason``
    "over_cap", the atom count and unrelaxed energy (``energy_per_atom`` None: it was not relaxed).

    Lengths in A, energies in eV/atom. ``box``: the starting box lengths; ``box_final``: after the box
    relaxation (``cell`` the full final cell). ``core_displacement``: largest change of a core atom's
    position relative to the first core atom (A; 0 when the core is intact). The structure fields
    (``symbols`` ... ``seeded``) are left out of :meth:`to_dict` unless asked for.
    """

    box: list[float]
    seed: int
    status: str = "ok"
    message: str = ""
    index: int = -1
    admissible: bool = False
    n_atoms: int = 0
    n_core: int = 0
    n_seeded: int = 0
    n_inserted: int = 0
    insertion_attempts: int = 0
    insertions_accepted: int = 0
    deletion_attempts: int = 0
    deletions_accepted: int = 0
    translation_attempts: int = 0
    translations_accepted: int = 0
    # several species: mobile atoms given another species to reach the shell's composition, and the
    # composition-conserving swaps that ordered them (0 for one species)
    n_converted: int = 0
    swap_attempts: int = 0
    swaps_accepted: int = 0
    energy_per_atom: float | None = None
    energy_per_atom_before_relax: float | None = None
    min_distance: float | None = None
    core_displacement: float | None = None
    centre_environment_exact: bool | None = None
    core_wall: bool = False  # this run had the core wall (a retry: without it a mobile atom entered the core)
    box_final: list[float] | None = None
    cell: list[list[float]] | None = None
    time_s: float = 0.0
    # where the time went (s): LAMMPS set-up and seeding, GCMC/MD, CG relaxation; the rest of time_s is
    # bookkeeping (reading the structure back, distances). cpu_s: this process's CPU time (less noisy on a
    # shared machine). steps_run: GCMC steps done; stop_reason: "" (all steps), "plateau" (early_stop) or
    # "over_cap" (stop_over_cap); gcmc_trace: rows [step, atoms, potential energy (eV), insertions accepted,
    # deletions accepted] after each chunk when GCMC ran in chunks.
    time_setup_s: float = 0.0
    time_gcmc_s: float = 0.0
    time_minimize_s: float = 0.0
    cpu_s: float = 0.0
    steps_run: int = 0
    stop_reason: str = ""
    gcmc_trace: list[list[float]] | None = None
    symbols: list[str] | None = field(default=None, repr=False)
    positions: list[list[float]] | None = field(default=None, repr=False)
    core: list[bool] | None = field(default=None, repr=False)
    inserted: list[bool] | None = field(default=None, repr=False)
    seeded: list[bool] | None = field(default=None, repr=False)

    def to_dict(self, structure: bool = False) -> dict[str, Any]:
        data = asdict(self)
        if not structure:
            for name in _STRUCTURE_FIELDS:
                data.pop(name)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CandidateResult:
        return cls(**dict(data))

    def to_atoms(self) -> Atoms:
        """The candidate's periodic cell with arrays core/inserted/seeded (only for status ok)."""
        if self.status != "ok" or self.positions is None:
            raise ReconstructionError(f"candidate {self.index} has no structure (status {self.status}: {self.message})")
        if self.energy_per_atom is None or self.min_distance is None or self.box_final is None:
            raise ReconstructionError(f"candidate {self.index} was not relaxed (stop_reason {self.stop_reason!r}): "
                                      "no energy, distances or final box")
        atoms = Atoms(self.symbols, positions=np.array(self.positions), cell=np.array(self.cell), pbc=True)
        atoms.arrays["core"] = np.array(self.core, dtype=bool)
        atoms.arrays["inserted"] = np.array(self.inserted, dtype=bool)
        atoms.arrays["seeded"] = np.array(self.seeded, dtype=bool)
        atoms.info.update(
            {
                "energy_per_atom": float(self.energy_per_atom),
                "min_distance": float(self.min_distance),
                "box": [float(v) for v in self.box_final],
                "box_start": [float(v) for v in self.box],
                "seed": int(self.seed),
                "candidate": int(self.index),
                "n_inserted": int(self.n_inserted),
                "insertions_accepted": int(self.insertions_accepted),
            }
        )
        return atoms


@dataclass
class Reconstruction:
    """Result of :func:`reconstruct`: the best periodic cell and the whole candidate table.

    ``atoms``: periodic ase.Atoms, arrays ``core``, ``inserted`` (added by GCMC), ``seeded`` (cluster
    atoms outside the core used as a start, mobile); info ``energy_per_atom``, ``min_distance``,
    ``box`` (final lengths, A), ``seed`` and provenance. ``candidates``: every box, in grid order
    (``to_dict()`` rows are JSON-ready; the paper's Fig. 3b). ``best_index``: index into ``candidates``.
    """

    atoms: Atoms
    candidates: list[CandidateResult]
    best_index: int
    params: GCMCParams
    base_seed: int
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def best(self) -> CandidateResult:
        return self.candidates[self.best_index]

    def table(self) -> list[dict[str, Any]]:
        """Candidate rows without structures, JSON-ready."""
        return [c.to_dict() for c in self.candidates]

    def summary(self) -> dict[str, Any]:
        best = self.best
        return {
            "best_index": self.best_index,
            "energy_per_atom": best.energy_per_atom,
            "n_atoms": best.n_atoms,
            "n_core": best.n_core,
            "n_seeded": best.n_seeded,
            "n_inserted": best.n_inserted,
            "min_distance": best.min_distance,
            "box": best.box_final,
            "core_displacement": best.core_displacement,
            "seed": best.seed,
            "base_seed": self.base_seed,
            "n_candidates": len(self.candidates),
            "n_admissible": sum(c.admissible for c in self.candidates),
            "params": self.params.to_dict(),
            **self.info,
            "candidates": self.table(),
        }


# --------------------------------------------------------------------------- helpers


def potential_to_dict(potential: Potential) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": potential.name,
        "pair_style": potential.pair_style,
        "files": [str(p) for p in potential.files],
        "elements": list(potential.elements),
        "meam_labels": list(potential.meam_labels),
    }
    if isinstance(potential, GeneralPotential):  # a SNAP: its LAMMPS lines (file paths in them) and cutoff
        data |= {"lines": list(potential.lines), "cutoff": potential.cutoff}
    return data


def potential_from_dict(data: Mapping[str, Any]) -> Potential:
    files = tuple(Path(p) for p in data["files"])
    missing = [str(p) for p in files if not p.is_file()]
    if missing:
        raise PotentialError(f"potential '{data['name']}': file(s) {', '.join(missing)} not found on this machine")
    if "lines" in data:
        return GeneralPotential(data["name"], data["pair_style"], files, tuple(data["elements"]), (),
                                tuple(data["lines"]), data.get("cutoff"))
    return Potential(data["name"], data["pair_style"], files, tuple(data["elements"]),
                     tuple(data.get("meam_labels", ())))


def min_distance(atoms: Atoms, cutoff: float = 6.0) -> float:
    """Smallest interatomic distance (A), periodic images included; ``inf`` if none below ``cutoff``."""
    from ase.neighborlist import neighbor_list

    if len(atoms) < 1:
        return math.inf
    distances = neighbor_list("d", atoms, cutoff)
    return float(distances.min()) if len(distances) else math.inf


def _cluster_atoms(cluster: Any) -> tuple[Atoms, float | None]:
    """ase.Atoms of a selection.clusters.Cluster or Atoms, and the cut radius if known."""
    if isinstance(cluster, Atoms):
        radius = cluster.info.get("cut_radius")
        return cluster, float(radius) if radius is not None else None
    atoms = getattr(cluster, "atoms", None)
    if isinstance(atoms, Atoms):
        radius = getattr(cluster, "radius", None)
        return atoms, float(radius) if radius is not None else None
    raise TypeError(f"cluster must be an ase.Atoms or a selection.clusters.Cluster, got {type(cluster).__name__}")


def _centre_index(atoms: Atoms) -> int:
    """The selected atom: the first ``centre`` flag, else the atom nearest the geometric centre."""
    if "centre" in atoms.arrays:
        flagged = np.flatnonzero(np.asarray(atoms.arrays["centre"], dtype=bool))
        if len(flagged):
            return int(flagged[0])
    centroid = atoms.positions.mean(axis=0)
    return int(np.argmin(np.linalg.norm(atoms.positions - centroid, axis=1)))


def default_core_mask(cluster: Any, core_radius: float | None = None) -> np.ndarray:
    """Atoms within ``core_radius`` (None: GCMCParams' default) of the centre atom (``centre`` flag, else nearest
    the geometric centre)."""
    if core_radius is None:
        core_radius = GCMCParams.model_fields["core_radius"].default
    atoms, _ = _cluster_atoms(cluster)
    periodic, period = _periods(atoms)
    d = _relative(atoms.positions, atoms.positions[_centre_index(atoms)], periodic, period)
    return np.linalg.norm(d, axis=1) <= core_radius * (1 + 1e-12)


def _periods(atoms: Atoms) -> tuple[np.ndarray, np.ndarray]:
    """Periodic axes of a cluster (e.g. a dislocation line) and their periods; the cell must be orthogonal there."""
    periodic = np.asarray(atoms.pbc, dtype=bool).copy()
    cell = np.array(atoms.cell[:], dtype=float)
    period = np.zeros(3)
    for k in np.flatnonzero(periodic):
        others = [j for j in range(3) if j != k]
        if np.any(np.abs(cell[k, others]) > 1e-8) or np.any(np.abs(cell[others, k]) > 1e-8) or cell[k, k] <= 0:
            raise ReconstructionError(
                f"the cluster is periodic along axis {k} but its cell is not orthogonal there ({cell.tolist()}); "
                "PCC-GCMC keeps periodic directions of a cluster only for axis-aligned cell vectors"
            )
        period[k] = cell[k, k]
    return periodic, period


def _relative(positions: np.ndarray, centre: np.ndarray, periodic: np.ndarray, period: np.ndarray) -> np.ndarray:
    """Vectors from ``centre``, minimum image along the periodic axes."""
    d = np.asarray(positions, dtype=float) - centre
    for k in np.flatnonzero(periodic):
        d[:, k] -= np.rint(d[:, k] / period[k]) * period[k]
    return d


def _nearest_neighbour_distance(positions: np.ndarray) -> float:
    if len(positions) < 2:
        return 2.5
    differences = positions[:, None, :] - positions[None, :, :]
    distances = np.sqrt((differences**2).sum(-1))
    np.fill_diagonal(distances, np.inf)
    return float(np.median(distances.min(axis=1)))


def _density(relative: np.ndarray, periodic: np.ndarray, period: np.ndarray, radius: float | None, nn: float) -> float:
    """Atoms per A^3 of the cluster: count within a ball (cut radius minus a skin) of the free axes.

    Along periodic axes the ball is a cylinder (one periodic axis) or a slab (two), times the periods.
    """
    free = ~periodic
    if not free.any():
        return len(relative) / float(np.prod(period))
    r = np.linalg.norm(relative[:, free], axis=1)
    outer = float(radius) if radius else float(r.max())
    if outer - 0.25 * nn < 2.0 * nn or len(r) < 15:
        return math.sqrt(2) / nn**3  # too few atoms to tell: a close-packed-ish metal from the nn distance
    # counts within many radii, averaged: one radius alone is biased by the discrete neighbour shells
    probes = np.linspace(0.5 * outer, outer - 0.25 * nn, 64)
    counts = np.array([np.count_nonzero(r <= probe) for probe in probes])
    ball = {3: 4.0 / 3.0 * math.pi * probes**3, 2: math.pi * probes**2, 1: 2.0 * probes}[int(free.sum())]
    return float(np.mean(counts / (ball * np.prod(period[periodic]))))


def prepare_payload(
    cluster: Any,
    core_mask: Sequence[bool] | np.ndarray | None,
    potential: Potential | str,
    params: GCMCParams | Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """JSON-ready description of the cluster for :func:`run_candidate` (checks elements against the potential)."""
    params = GCMCParams.from_dict(params)
    if isinstance(potential, str):
        potential = load_potential(potential)
    atoms, radius = _cluster_atoms(cluster)
    if len(atoms) == 0:
        raise ReconstructionError("the cluster has no atoms")
    if core_mask is None:
        core = default_core_mask(atoms, params.core_radius)
    else:
        core = np.asarray(core_mask, dtype=bool)
        if core.shape != (len(atoms),):
            raise ValueError(f"core_mask has shape {core.shape}, expected ({len(atoms)},) (one flag per cluster atom)")
    if not core.any():
        raise ReconstructionError("the core is empty: core_mask selects no atom (or core_radius is too small)")
    symbols = atoms.get_chemical_symbols()
    for element in dict.fromkeys(symbols):
        check_element(potential, element)  # the authors mapped the wrong element: refuse a mismatch
    centre_index = _centre_index(atoms)
    if not core[centre_index]:
        centre_index = int(np.flatnonzero(core)[0])
    element = params.element or symbols[centre_index]
    check_element(potential, element)
    periodic, period = _periods(atoms)
    if periodic.all():
        raise ReconstructionError(
            "the structure is periodic along all three axes: PCC-GCMC takes a cluster cut from it "
            "(pbc False at least on one axis; `defect-genome select` or selection.clusters.cut_clusters cut one)"
        )
    relative = _relative(atoms.positions, atoms.positions[centre_index], periodic, period)
    nn = _nearest_neighbour_distance(relative[core] if core.sum() > 1 else relative)
    core_positions = relative[core]
    extent = core_positions.max(axis=0) - core_positions.min(axis=0)
    extent[periodic] = period[periodic]
    species, shell_composition = _species_and_shell(symbols, core, potential)
    return {
        "symbols": symbols,
        "positions": relative.tolist(),
        "periodic": periodic.tolist(),
        "period": period.tolist(),
        "core": core.tolist(),
        "centre_index": centre_index,
        "element": element,
        "potential": potential_to_dict(potential),
        "nn_distance": nn,
        "density": _density(relative, periodic, period, radius, nn),
        "core_extent": extent.tolist(),
        "source": atoms.info.get("source"),
        "species": species,
        "shell_composition": shell_composition,
    }


def _species_and_shell(
    symbols: Sequence[str], core: np.ndarray, potential: Potential | None = None
) -> tuple[list[str], dict[str, float]]:
    """The cluster's species (the potential's order, then first appearance) and the atomic fractions of the
    shell, the cluster atoms outside the core (the core's when the cluster is all core)."""
    present = list(dict.fromkeys(symbols))
    order = list(potential.elements) if potential is not None else []
    species = [e for e in order if e in present] + [e for e in present if e not in order]
    shell = [s for s, c in zip(symbols, core) if not c] or list(symbols)
    return species, {e: shell.count(e) / len(shell) for e in species if e in shell}


def _auto_margin(extent: np.ndarray, free: np.ndarray, density: float, max_atoms: int) -> float:
    """Margin m (A) on the free axes with prod(extent + m) * density = max_atoms (0 if already that big)."""
    target = max_atoms / density
    if np.prod(extent) >= target:
        return 0.0
    low, high = 0.0, float(target / max(np.prod(extent[~free]), 1e-9)) ** (1.0 / max(free.sum(), 1)) + 1.0
    for _ in range(100):
        middle = 0.5 * (low + high)
        if np.prod(extent + np.where(free, middle, 0.0)) < target:
            low = middle
        else:
            high = middle
    return 0.5 * (low + high)


def candidate_boxes(payload: Mapping[str, Any], params: GCMCParams | Mapping[str, Any] | None = None) -> list[dict]:
    """The grid: one dict per box with ``box`` (3 lengths, A), ``run`` (bool) and ``reason`` if not run."""
    params = GCMCParams.from_dict(params)
    extent = np.array(payload["core_extent"], dtype=float)
    free = ~np.array(payload.get("periodic", [False] * 3), dtype=bool)
    density = float(payload["density"])
    d_min = params.seed_min_distance or 0.85 * float(payload["nn_distance"])
    offsets = params.grid_offsets
    if params.grid == "authors":
        if params.margin is not None:
            margin = params.margin
        else:
            margin = _auto_margin(extent, free, density, params.max_atoms)
        start = extent + np.where(free, margin, 0.0)
    else:
        start = extent  # wide: box = core extent + offset
    boxes = []
    # periodic axes of the cluster (e.g. a dislocation line) keep their period: no offsets there
    for combination in itertools.product(offsets, repeat=int(free.sum())):
        shift = np.zeros(3)
        shift[free] = combination
        box = start + shift
        entry = {"box": [float(v) for v in box], "run": True, "reason": ""}
        expected = float(np.prod(box) * density)
        if np.any(box[free] < extent[free] + d_min):
            entry.update(run=False,
                         reason=f"box smaller than the core extent + {d_min:.2f} A: core would touch its image")
        elif params.prune_factor is not None and expected > params.prune_factor * params.max_atoms:
            entry.update(run=False, reason=f"expected {expected:.0f} atoms > {params.prune_factor} x max_atoms")
        boxes.append(entry)
    return boxes


def _payload_digest(payload: Mapping[str, Any]) -> bytes:
    text = repr((payload["symbols"], np.round(np.array(payload["positions"]), 6).tolist(), payload["core"]))
    return hashlib.sha256(text.encode()).digest()


def base_seed_for(payload: Mapping[str, Any], params: GCMCParams) -> int:
    """``params.seed``, or a seed derived from the cluster's content (same cluster -> same seed)."""
    if params.seed is not None:
        return int(params.seed)
    return int.from_bytes(_payload_digest(payload)[:4], "little") % _MAX_LAMMPS_SEED


def candidate_seed(base_seed: int, index: int) -> int:
    """Distinct, reproducible LAMMPS seed (1..2^31-2) of grid box ``index``."""
    state = np.random.SeedSequence([int(base_seed), int(index)]).generate_state(1, dtype=np.uint64)[0]
    return int(state % _MAX_LAMMPS_SEED) + 1


def plan(
    cluster: Any,
    core_mask: Sequence[bool] | np.ndarray | None,
    potential: Potential | str,
    params: GCMCParams | Mapping[str, Any] | None = None,
) -> tuple[dict[str, Any], list[dict[str, Any]], int]:
    """(payload, grid, base seed): ``grid`` entries have box, run, reason and a distinct ``seed``.

    Fan out ``run_candidate(payload, g["box"], params.to_dict(), g["seed"])`` for the entries with
    ``run`` true, then call :func:`assemble` with the results in grid order.
    """
    params = GCMCParams.from_dict(params)
    payload = prepare_payload(cluster, core_mask, potential, params)
    base = base_seed_for(payload, params)
    grid = candidate_boxes(payload, params)
    seeds: set[int] = set()
    for index, entry in enumerate(grid):
        seed = candidate_seed(base, index)
        while seed in seeds:  # astronomically unlikely; keeps seeds distinct regardless
            seed = seed % _MAX_LAMMPS_SEED + 1
        seeds.add(seed)
        entry["seed"] = seed
    return payload, grid, base


# --------------------------------------------------------------------------- one candidate


def _centre_rank(payload: Mapping[str, Any]) -> int:
    """Index of the centre atom among the core atoms (they are placed first, in cluster order)."""
    return int(np.count_nonzero(np.array(payload["core"], dtype=bool)[: payload["centre_index"]]))


def _initial_configuration(
    payload: Mapping[str, Any], box: np.ndarray, d_min: float, seed_shell: bool, keep_out: float | None = None
) -> tuple[np.ndarray, list[str], np.ndarray, int]:
    """Positions in [0, box), symbols, core flag (core atoms first) and number of seeded atoms.

    Seeded atoms never land within ``keep_out`` of the centre atom: a shell atom wrapped by the
    (smaller) box can otherwise fall onto an empty site of the core, e.g. a vacancy, and change the
    centre's environment.
    """
    positions = np.array(payload["positions"], dtype=float)
    symbols = list(payload["symbols"])
    core = np.array(payload["core"], dtype=bool)
    core_positions = positions[core]
    middle = 0.5 * (core_positions.min(axis=0) + core_positions.max(axis=0))
    periodic = np.array(payload.get("periodic", [False] * 3), dtype=bool)
    middle[periodic] = 0.0  # positions along periodic axes are within half a period of the centre
    shift = 0.5 * box - middle
    placed = [p + shift for p in core_positions]
    placed_symbols = [symbols[i] for i in np.flatnonzero(core)]
    n_seeded = 0
    if seed_shell:
        element = payload["element"]
        # one species: the inserted element's shell atoms (as before); several: every shell atom, its species
        # kept (an ordered alloy's shell starts on its sublattices)
        alloy = len(set(symbols)) > 1
        shell = [i for i in np.flatnonzero(~core) if alloy or symbols[i] == element]
        shell.sort(key=lambda i: float(np.linalg.norm(positions[i])))
        current = np.array(placed)
        centre = current[_centre_rank(payload)]
        for i in shell:
            p = np.mod(positions[i] + shift, box)
            if keep_out is not None:
                to_centre = p - centre
                to_centre -= np.rint(to_centre / box) * box
                if float(np.linalg.norm(to_centre)) <= keep_out:
                    continue
            d = current - p
            d -= np.rint(d / box) * box
            if np.min(np.einsum("ij,ij->i", d, d)) >= d_min * d_min:
                current = np.vstack([current, p])
                placed_symbols.append(symbols[i])
                n_seeded += 1
        placed = list(current)
    flags = np.zeros(len(placed), dtype=bool)
    flags[: int(core.sum())] = True
    return np.array(placed), placed_symbols, flags, n_seeded


def _gcmc_counts(system: Any, fix_id: str) -> list[int]:
    import lammps

    return [
        round(system.lmp.extract_fix(fix_id, lammps.LMP_STYLE_GLOBAL, lammps.LMP_TYPE_VECTOR, k))
        for k in range(6)
    ]


def _mobile_species(payload: Mapping[str, Any], element: str) -> tuple[list[str], list[float]]:
    """Species of the mobile atoms (the shell's, then the inserted element) and their target fractions."""
    composition = payload.get("shell_composition")
    if composition is None:  # a payload from before issue #18
        _, composition = _species_and_shell(payload["symbols"], np.array(payload["core"], dtype=bool))
    names = [e for e in composition if composition[e] > 0]
    if element not in names:
        names.append(element)
    return names, [float(composition.get(e, 0.0)) for e in names]


def _restore_shell_composition(
    system: Any, params: GCMCParams, result: CandidateResult, n_core: int, n_initial: int,
    mobile_types: Sequence[int], fractions: Sequence[float], seed: int,
) -> None:
    """Bring the mobile atoms to the shell's composition, then order them by canonical swaps (issue #18).

    1. Counts: ``whole_atom_counts(fractions, n_mobile)`` per mobile type. Atoms of a type above its count
       are given a type below its count, chosen at random (reproducibly from ``seed``) among the inserted
       atoms first, then the seeded ones (a seeded atom sits on the cluster's own site, with its species).
    2. Order: ``fix atom/swap ... semi-grand no`` (type-for-type exchanges: the counts stay exact) between
       each pair of mobile types, restricted to the mobile group (the core's atoms have types of their own
       and are never swapped), ``ALLOY_SWAP_ATTEMPTS`` x n_mobile attempts every ``params.gcmc_every`` steps
       for ``ALLOY_SWAP_STEPS`` steps at ``params.temperature``, with the NVT dynamics of the GCMC if on.
    """
    from sampling.alloys import whole_atom_counts

    lmp = system.lmp
    nlocal = lmp.extract_global("nlocal")
    ids = np.array(lmp.numpy.extract_atom("id")[:nlocal], dtype=np.int64)
    types = np.array(lmp.numpy.extract_atom("type")[:nlocal], dtype=np.int64)
    mobile = ids > n_core
    n_mobile = int(mobile.sum())
    if n_mobile == 0:
        return
    target = dict(zip(mobile_types, whole_atom_counts(fractions, n_mobile)))
    rng = np.random.default_rng([int(seed), 18])
    surplus: list[int] = []
    for t in mobile_types:
        of_type = ids[mobile & (types == t)]
        extra = len(of_type) - target[t]
        if extra > 0:
            inserted, seeded = of_type[of_type > n_initial], of_type[of_type <= n_initial]
            order = np.concatenate([rng.permutation(inserted), rng.permutation(seeded)])
            surplus += order[:extra].tolist()
    surplus = rng.permutation(np.array(surplus, dtype=np.int64)).tolist()
    for t in mobile_types:
        missing = target[t] - int(np.count_nonzero(mobile & (types == t)))
        if missing > 0:
            chosen, surplus = surplus[:missing], surplus[missing:]
            system.commands([f"group convert id {' '.join(str(i) for i in chosen)}", f"set group convert type {t}",
                             "group convert delete"])
            result.n_converted += len(chosen)
    fixes = []
    for k, (ti, tj) in enumerate(itertools.combinations(mobile_types, 2)):
        swap_seed = int(rng.integers(1, _MAX_LAMMPS_SEED))
        system.command(
            f"fix swap_{k} mobile atom/swap {params.gcmc_every} {max(ALLOY_SWAP_ATTEMPTS * n_mobile, 1)} {swap_seed} "
            f"{params.temperature!r} ke yes semi-grand no types {ti} {tj}"
        )
        fixes.append(f"swap_{k}")
    system.run(ALLOY_SWAP_STEPS)
    import lammps

    for name in fixes:
        result.swap_attempts += round(lmp.extract_fix(name, lammps.LMP_STYLE_GLOBAL, lammps.LMP_TYPE_VECTOR, 0))
        result.swaps_accepted += round(lmp.extract_fix(name, lammps.LMP_STYLE_GLOBAL, lammps.LMP_TYPE_VECTOR, 1))
        system.command(f"unfix {name}")


def _run_gcmc(system: Any, params: GCMCParams, result: CandidateResult) -> None:
    """``params.steps`` of GCMC/MD: one run, or chunks of ``params.gcmc_chunk`` steps with the stop checks.

    Fills ``steps_run``, ``stop_reason``, ``gcmc_trace`` and the GCMC counts of ``result``.
    """
    chunk = params.gcmc_chunk
    if chunk is None:
        system.run(params.steps)
        result.steps_run = int(params.steps)
    else:
        trace: list[list[float]] = []
        done, last_change, accepted = 0, 0, (0, 0)
        while done < params.steps:
            n = min(chunk, params.steps - done)
            # "pre no" after the first chunk: no re-setup between chunks (nothing changed but reads)
            system.command(f"run {n}" if done == 0 else f"run {n} pre no post no")
            done += n
            counts = _gcmc_counts(system, "exchange")
            natoms = system.natoms
            trace.append([done, natoms, system.potential_energy(), counts[3], counts[5]])
            if (counts[3], counts[5]) != accepted:
                accepted, last_change = (counts[3], counts[5]), done
            if params.stop_over_cap and natoms > params.max_atoms:
                result.stop_reason = "over_cap"
                break
            if params.early_stop and done >= params.min_steps and done - last_change >= params.plateau_steps:
                result.stop_reason = "plateau" if done < params.steps else ""
                break
        result.steps_run = int(done)
        result.gcmc_trace = trace
    counts = _gcmc_counts(system, "exchange")
    (result.translation_attempts, result.translations_accepted, result.insertion_attempts,
     result.insertions_accepted, result.deletion_attempts, result.deletions_accepted) = counts


def run_candidate(
    cluster_payload: Mapping[str, Any],
    box: Sequence[float],
    params: GCMCParams | Mapping[str, Any] | None,
    seed: int,
    stop_file: str | Path | None = None,
) -> CandidateResult:
    """One box of the grid: seed, GCMC insertion, CG relaxation of the mobile atoms and box (core fixed).

    Never raises for a LAMMPS failure: the result has status ``failed`` and the message. With
    ``stop_file``, LAMMPS stops within a fraction of a second (the current MD step and GCMC invocation)
    of that file appearing and this raises :class:`md.engine.Stopped`; without the file the
    result is the same as without ``stop_file``. Picklable
    arguments and result (plain data), so it can run in a process pool or a Celery task. The result
    records where the time went: ``time_setup_s``, ``time_gcmc_s``, ``time_minimize_s`` (their sum is at
    most ``time_s``, the rest is bookkeeping) and ``cpu_s``.

    With ``params.core_wall`` "retry" (the default) the box runs first without the core wall. Only when
    a mobile atom ended within core_radius of the centre (a vacancy in the core filled) does it run
    again, same seed, with the wall: the wall costs other cores energy (the screw cluster's best cell
    rose from E_coh + 0.138 to + 0.163 eV/atom with the wall on every box). The result's ``core_wall``
    says which run it is; its times include both runs.
    """
    params = GCMCParams.from_dict(params)
    lengths = np.array(box, dtype=float)
    seed = int(seed)
    if not 1 <= seed <= _MAX_LAMMPS_SEED + 1:
        raise ValueError(f"seed must be in 1..{_MAX_LAMMPS_SEED + 1}, got {seed}")
    stop = None if stop_file is None else Path(stop_file)
    if not params.protect_centre or params.core_wall != "retry":
        return _run_box(cluster_payload, lengths, params, seed,
                        wall=params.protect_centre and params.core_wall == "always", stop_file=stop)
    result = _run_box(cluster_payload, lengths, params, seed, wall=False, stop_file=stop)
    broken_centre = (result.status == "ok" and result.centre_environment_exact is False
                     and result.stop_reason != "over_cap" and result.n_atoms <= params.max_atoms)
    if not broken_centre:
        return result
    walled = _run_box(cluster_payload, lengths, params, seed, wall=True, stop_file=stop)
    for name in ("time_s", "cpu_s", "time_setup_s", "time_gcmc_s", "time_minimize_s"):
        setattr(walled, name, getattr(walled, name) + getattr(result, name))
    return walled


def _run_box(
    cluster_payload: Mapping[str, Any], box: np.ndarray, params: GCMCParams, seed: int, wall: bool,
    stop_file: Path | None = None,
) -> CandidateResult:
    """:func:`run_candidate`'s one run; ``wall``: the core wall on, seeded and inserted atoms beyond it."""
    from md.engine import LammpsSystem, Stopped

    if stop_file is not None and stop_file.exists():
        raise Stopped(f"stop file {stop_file} exists: box {box.tolist()} not started")

    result = CandidateResult(box=box.tolist(), seed=seed, core_wall=wall)
    started, cpu_started = time.perf_counter(), time.process_time()
    clock = {"mark": started}

    def lap(name: str) -> None:
        now = time.perf_counter()
        setattr(result, name, getattr(result, name) + now - clock["mark"])
        clock["mark"] = now

    def finish() -> CandidateResult:
        result.time_s = time.perf_counter() - started
        result.cpu_s = time.process_time() - cpu_started
        return result

    d_min = params.seed_min_distance or 0.85 * float(cluster_payload["nn_distance"])
    # the protected sphere: the core's radius, plus the wall's range when the wall is on (no seeded or
    # inserted atom inside)
    keep_out = params.core_radius + (params.wall_width if wall else 0.0)
    positions, symbols, core, n_seeded = _initial_configuration(
        cluster_payload, box, d_min, params.seed_shell, keep_out if params.protect_centre else None)
    n_core = int(core.sum())
    result.n_core, result.n_seeded = n_core, n_seeded
    element = cluster_payload["element"]
    free = ~np.array(cluster_payload.get("periodic", [False] * 3), dtype=bool)
    core_species = list(dict.fromkeys(symbols[:n_core]))
    # several species (issue #18): one mobile type per species of the shell (and the inserted element)
    alloy = len(set(cluster_payload["symbols"])) > 1
    mobile_species, shell_fractions = _mobile_species(cluster_payload, element) if alloy else ([element], [1.0])
    species = (*core_species, *mobile_species)
    insert_type = len(core_species) + mobile_species.index(element) + 1
    mobile_types = list(range(len(core_species) + 1, len(species) + 1))
    n_initial = len(symbols)
    atoms = Atoms(symbols, positions=positions, cell=np.diag(box), pbc=True)
    core_before = positions[:n_core] - positions[0]
    centre_rank = _centre_rank(cluster_payload)
    centre_position = positions[centre_rank]
    within = np.linalg.norm(positions[:n_core] - centre_position, axis=1) <= params.core_radius
    over_cap = False
    try:
        potential = potential_from_dict(cluster_payload["potential"])
        # LammpsSystem maps each symbol to its last type in ``species``: every W becomes the inserted
        # type; the core atoms are then given their own types (same element in pair_coeff).
        with LammpsSystem(atoms, potential, threads=params.threads, species=species) as system:
            if stop_file is not None:
                system.watch_stop_file(stop_file)
            commands = [f"group core id 1:{n_core}"]
            for t, s in enumerate(core_species, start=1):
                type_ids = [str(i + 1) for i in range(n_core) if symbols[i] == s]
                commands += [f"group core_{t} id {' '.join(type_ids)}", f"set group core_{t} type {t}"]
            commands += [
                f"group mobile type {f'{mobile_types[0]}:{mobile_types[-1]}' if alloy else insert_type}",
                "fix hold core setforce 0.0 0.0 0.0",
                "velocity core set 0.0 0.0 0.0",
                f"timestep {params.timestep!r}",
            ]
            system.commands(commands)
            if params.box_relax == "tri" and _box_relax_arguments("tri", free) is not None:
                system.command("change_box all triclinic")
            n_mobile = n_initial - n_core
            rng = np.random.default_rng(seed)
            if params.md:
                if n_mobile:
                    velocity_seed = int(rng.integers(1, _MAX_LAMMPS_SEED))
                    system.command(
                        f"velocity mobile create {params.temperature!r} {velocity_seed} dist gaussian mom yes rot no"
                    )
                system.commands(
                    [
                        f"fix integrate mobile nvt temp {params.temperature!r} {params.temperature!r} "
                        f"{100 * params.timestep!r}",
                        "compute_modify thermo_temp dynamic/dof yes",
                        "compute_modify integrate_temp dynamic/dof yes",
                    ]
                )
            gcmc = (
                f"fix exchange mobile gcmc {params.gcmc_every} {params.exchanges} {params.mc_moves} {insert_type} "
                f"{seed} {params.temperature!r} {params.mu!r} {params.max_displacement!r} full_energy"
            )
            if params.overlap_cutoff:
                gcmc += f" overlap_cutoff {params.overlap_cutoff!r}"
            if params.protect_centre:
                # no insertion/move within core_radius of the centre: its MLIP environment stays the cluster's
                x, y, z = (repr(float(v)) for v in centre_position)
                # (fix gcmc needs a bounded region: the box intersected with the outside of the sphere)
                system.commands([
                    f"region core_sphere sphere {x} {y} {z} {keep_out!r} side out units box",
                    f"region whole_box block 0 {float(box[0])!r} 0 {float(box[1])!r} 0 {float(box[2])!r} units box",
                    "region outside_core intersect 2 whole_box core_sphere",
                ])
                gcmc += " region outside_core"
            if wall:
                # fix indent's sphere pushes mobile atoms out of radius core_radius + wall_width with
                # F = K (R - r)^2 (minimum image; unlike wall/region it never aborts a run): MD and CG
                # cannot carry a mobile atom into the core, so a vacancy there stays empty. Counted in
                # the minimiser's energy; removed before the cell's energy is read.
                system.commands([
                    f"fix keep_out mobile indent {WALL_STIFFNESS!r} sphere {x} {y} {z} {keep_out!r} side out units box",
                    "fix_modify keep_out energy yes",
                ])
            system.command(gcmc)
            lap("time_setup_s")
            _run_gcmc(system, params, result)
            system.command("unfix exchange")
            if alloy and result.stop_reason != "over_cap":
                _restore_shell_composition(system, params, result, n_core, n_initial, mobile_types, shell_fractions,
                                           seed)
            if params.md:
                system.command("unfix integrate")
            system.command("velocity all set 0.0 0.0 0.0")
            result.energy_per_atom_before_relax = system.potential_energy() / system.natoms
            lap("time_gcmc_s")
            over_cap = result.stop_reason == "over_cap"
            if not over_cap:  # an over-cap box stays inadmissible whatever CG does (it adds no atoms)
                _relax(system, params, free)
            if wall:
                system.command("unfix keep_out")
            energy = system.potential_energy()
            natoms = system.natoms
            lap("time_minimize_s")
            final = system.get_atoms()
            ids = np.sort(np.array(system.lmp.numpy.extract_atom("id")[: system.lmp.extract_global("nlocal")]))
    except Stopped:
        raise  # cancelled: no result at all
    except Exception as error:  # a LAMMPS failure makes a failed candidate, not a failed grid
        result.status, result.message = "failed", f"{type(error).__name__}: {error}"
        return finish()

    is_core = ids <= n_core
    is_seeded = (ids > n_core) & (ids <= n_initial)
    is_inserted = ids > n_initial
    if int(is_core.sum()) != n_core:
        result.status, result.message = "failed", f"core atoms lost: {int(is_core.sum())} of {n_core} left"
        return finish()
    # Put the core back in the middle of the final cell and wrap the others around it.
    cell = np.array(final.cell[:], dtype=float)
    positions = final.positions
    core_positions = positions[is_core]
    middle = 0.5 * (core_positions.min(axis=0) + core_positions.max(axis=0))
    positions = positions - middle + 0.5 * cell.sum(axis=0)
    fractional = np.linalg.solve(cell.T, positions.T).T
    fractional[~is_core] -= np.floor(fractional[~is_core])
    positions = fractional @ cell
    final.positions = positions
    core_after = positions[is_core] - positions[is_core][0]
    result.core_displacement = float(np.abs(core_after - core_before).max())
    result.energy_per_atom = None if over_cap else float(energy / natoms)
    result.n_atoms = int(natoms)
    result.n_seeded = int(is_seeded.sum())
    result.n_inserted = int(is_inserted.sum())
    result.min_distance = min_distance(final)
    # the centre atom's environment within core_radius: exactly the core atoms that were there
    d = positions - positions[centre_rank]
    fractional_d = np.linalg.solve(cell.T, d.T).T
    d = (fractional_d - np.rint(fractional_d)) @ cell
    near = np.linalg.norm(d, axis=1) <= params.core_radius
    result.centre_environment_exact = bool(np.array_equal(np.flatnonzero(near), np.flatnonzero(within)))
    result.cell = cell.tolist()
    result.box_final = [float(v) for v in np.linalg.norm(cell, axis=1)]
    result.symbols = final.get_chemical_symbols()
    result.positions = positions.tolist()
    result.core, result.inserted, result.seeded = is_core.tolist(), is_inserted.tolist(), is_seeded.tolist()
    result.admissible = bool(
        not over_cap and result.energy_per_atom is not None  # (None exactly when over_cap)
        and np.isfinite(result.energy_per_atom) and natoms <= params.max_atoms
        and result.centre_environment_exact
    )
    if over_cap:
        result.message = (f"{natoms} atoms > max_atoms {params.max_atoms} after {result.steps_run} GCMC steps: "
                          "stopped, not relaxed")
    elif natoms > params.max_atoms:
        result.message = f"{natoms} atoms > max_atoms {params.max_atoms}"
    elif not result.centre_environment_exact:
        result.message = "an atom other than the core's came within core_radius of the centre"
    return finish()


def _box_relax_arguments(mode: str, free: np.ndarray) -> str | None:
    """``fix box/relax`` arguments relaxing only the free axes (a cluster's periodic axes keep their period)."""
    if mode == "none" or not free.any():
        return None
    if free.all():
        return f"{mode} 0.0"
    axes = [a for a, f in zip("xyz", free) if f]
    words = [f"{a} 0.0" for a in axes]
    if mode == "iso" and len(axes) == 2:
        words.append(f"couple {''.join(axes)}")
    else:
        words.append("couple none")
    if mode == "tri" and len(axes) == 2 and axes == ["x", "y"]:
        words.insert(len(axes), "xy 0.0")  # tilts involving a periodic axis would shear the core's images
    return " ".join(words)


def _relax(system: Any, params: GCMCParams, free: np.ndarray) -> None:
    """CG of the mobile atoms, with the box (mobile atoms remapped only) unless box_relax is 'none'."""
    minimize = f"minimize {params.min_etol!r} {params.min_ftol!r} {params.min_maxiter} {params.min_maxeval}"
    system.commands(["min_style cg", "min_modify line quadratic"])
    arguments = _box_relax_arguments(params.box_relax, free)
    if arguments is None:
        system.command(minimize)
        return
    # box/relax converges in stages (vmax bounds each step): repeat until the box stops changing
    system.command(f"fix relax_box mobile box/relax {arguments} vmax 0.001 dilate partial")
    previous = None
    for _ in range(6):
        system.command(minimize)
        lengths = np.linalg.norm(system.cell(), axis=1)
        if previous is not None and np.max(np.abs(lengths - previous)) < 1e-8:
            break
        previous = lengths
    system.command("unfix relax_box")
    system.command(minimize)  # positions at the final box (box/relax leaves a small residual)


# --------------------------------------------------------------------------- the grid


def select_best(candidates: Sequence[CandidateResult], max_atoms: int) -> int | None:
    """Index of the lowest energy per atom among finished candidates with <= max_atoms atoms, or None.

    (The authors updated the running minimum with any configuration, over the cap or not.)
    """
    best, best_energy = None, math.inf
    for k, candidate in enumerate(candidates):
        if candidate.status != "ok" or candidate.energy_per_atom is None or candidate.n_atoms > max_atoms:
            continue
        if candidate.centre_environment_exact is False:
            continue
        if not np.isfinite(candidate.energy_per_atom):
            continue
        if candidate.energy_per_atom < best_energy:
            best, best_energy = k, candidate.energy_per_atom
    return best


def assemble(
    payload: Mapping[str, Any],
    grid: Sequence[Mapping[str, Any]],
    results: Sequence[CandidateResult | Mapping[str, Any]],
    params: GCMCParams | Mapping[str, Any] | None,
    base_seed: int,
    info: Mapping[str, Any] | None = None,
) -> Reconstruction:
    """The :class:`Reconstruction` from the results of the grid entries that ran (in grid order)."""
    params = GCMCParams.from_dict(params)
    finished = [r if isinstance(r, CandidateResult) else CandidateResult.from_dict(r) for r in results]
    ran = [entry for entry in grid if entry["run"]]
    if len(ran) != len(finished):
        raise ValueError(f"{len(finished)} results for {len(ran)} candidates that ran")
    candidates: list[CandidateResult] = []
    iterator = iter(finished)
    for index, entry in enumerate(grid):
        if entry["run"]:
            candidate = next(iterator)
        else:
            candidate = CandidateResult(box=list(entry["box"]), seed=int(entry["seed"]), status="skipped",
                                        message=entry["reason"])
        candidate.index = index
        candidates.append(candidate)
    best = select_best(candidates, params.max_atoms)
    if best is None:
        reasons = "; ".join(f"#{c.index} {c.status} {c.message}".strip() for c in candidates[:5])
        raise NoAdmissibleCandidateError(
            f"no candidate box gave a configuration with <= {params.max_atoms} atoms ({reasons}"
            f"{' ...' if len(candidates) > 5 else ''}); lower the margin/offsets or raise max_atoms",
            candidates,
        )
    atoms = candidates[best].to_atoms()
    atoms.info["potential"] = payload["potential"]["name"]
    atoms.info["pcc_gcmc_params"] = repr(_compact_params(params))
    if payload.get("source"):
        atoms.info["source"] = f"{payload['source']}:pcc-gcmc"
    else:
        atoms.info["source"] = "pcc-gcmc"
    return Reconstruction(atoms=atoms, candidates=candidates, best_index=best, params=params,
                          base_seed=int(base_seed), info=dict(info or {}))


def time_breakdown(
    candidates: Sequence[CandidateResult | Mapping[str, Any]], wall_time_s: float | None = None, workers: int = 1
) -> dict[str, Any]:
    """Where the time of a grid went, JSON-ready: sums over the candidates that ran (s) and fractions.

    ``setup`` (LAMMPS instance, seeding), ``gcmc``, ``minimize``, ``bookkeeping`` (the rest of each
    candidate's time_s). With ``wall_time_s``: ``overhead_s`` = workers x wall - sum of time_s (planning,
    process start-up, idle workers at the end of the grid), and fractions of workers x wall.
    """
    rows = [c if isinstance(c, CandidateResult) else CandidateResult.from_dict(c) for c in candidates]
    rows = [c for c in rows if c.status != "skipped"]
    total = sum(c.time_s for c in rows)
    parts = {
        "setup_s": sum(c.time_setup_s for c in rows),
        "gcmc_s": sum(c.time_gcmc_s for c in rows),
        "minimize_s": sum(c.time_minimize_s for c in rows),
    }
    parts["bookkeeping_s"] = max(total - sum(parts.values()), 0.0)
    out: dict[str, Any] = {
        "n_run": len(rows),
        "candidates_s": total,
        "cpu_s": sum(c.cpu_s for c in rows),
        "steps_run": sum(c.steps_run for c in rows),
        **parts,
    }
    budget = total
    if wall_time_s is not None:
        budget = max(float(wall_time_s) * int(workers), total)
        out.update(wall_s=float(wall_time_s), workers=int(workers), overhead_s=budget - total)
    if budget > 0:
        for name in list(parts) + (["overhead_s"] if wall_time_s is not None else []):
            out[name[: -len("_s")] + "_fraction"] = out[name] / budget
    return out


def _compact_params(params: GCMCParams) -> dict[str, Any]:
    defaults = GCMCParams().to_dict()
    return {k: v for k, v in params.to_dict().items() if v != defaults[k]}


def _spawn_pool(max_workers: int) -> ProcessPoolExecutor:
    # spawn, not fork: the parent may hold an initialised MPI/LAMMPS, which must not be forked
    return ProcessPoolExecutor(max_workers=max_workers, mp_context=multiprocessing.get_context("spawn"))


def reconstruct(
    cluster: Any,
    core_mask: Sequence[bool] | np.ndarray | None = None,
    potential: Potential | str | None = None,
    params: GCMCParams | Mapping[str, Any] | None = None,
    *,
    executor: Executor | None = None,
    max_workers: int = 2,
) -> Reconstruction:
    """Periodic reconstruction of ``cluster`` (ase.Atoms or selection.clusters.Cluster) by PCC-GCMC.

    ``core_mask``: atoms kept fixed (default: within ``params.core_radius`` of the centre atom).
    Candidates run through ``executor`` if given (its ``map``), else in a spawn-started process pool
    of ``max_workers`` processes when there are several, else serially (``max_workers=1``).
    Raises :class:`NoAdmissibleCandidateError` if no candidate has at most ``max_atoms`` atoms.
    """
    if potential is None:
        raise TypeError("reconstruct() needs a potential (a Potential or a bundled name like 'W_zhou.eam.alloy')")
    params = GCMCParams.from_dict(params)
    started = time.perf_counter()
    payload, grid, base = plan(cluster, core_mask, potential, params)
    runnable = [entry for entry in grid if entry["run"]]
    arguments = ([payload] * len(runnable), [e["box"] for e in runnable], [params] * len(runnable),
                 [e["seed"] for e in runnable])
    workers = 1
    if executor is not None:
        results = list(executor.map(run_candidate, *arguments))
        mode = type(executor).__name__
        workers = int(getattr(executor, "_max_workers", 1) or 1)
    elif max_workers > 1 and len(runnable) > 1:
        workers = min(int(max_workers), len(runnable))
        with _spawn_pool(workers) as pool:
            results = list(pool.map(run_candidate, *arguments))
        mode = f"processes:{workers}"
    else:
        results = [run_candidate(*args) for args in zip(*arguments)]
        mode = "serial"
    wall = time.perf_counter() - started
    info = {"wall_time_s": wall, "execution": mode, "timing": time_breakdown(results, wall, workers)}
    return assemble(payload, grid, results, params, base, info)
