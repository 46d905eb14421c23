"""Validation suites of a trained potential, the way the paper validates (Fig. 6 five scenarios, Fig. 4).

Three pure steps and a convenience wrapper:

- :func:`build_suite` ``(params, potential, element, lattice, a) -> {scenario: [Atoms]}``: the scenarios of
  :class:`schemas.validation.ValidationSuiteParams` built with the project's builders (``sampling.builders``)
  and loading protocols (``sampling.protocols``) run with the *sampling* potential; every configuration has a
  per-atom boolean array ``defect`` (adaptive CNA: atoms not in the perfect lattice; held atoms excluded) and
  ``info`` with ``scenario``, ``label`` and the suite's metadata. Seeds are derived from ``params.seed``
  (default 20250118, disjoint from a campaign's 12345) per scenario and structure.
- :func:`label_configurations` ``(configs, reference) -> labelled``: energies and forces of a reference
  ("teacher"): a LAMMPS :class:`md.potentials.Potential` (EAM, MEAM, or ``SnapFiles.potential()``),
  an ASE calculator, or a callable ``atoms -> (energy eV, forces eV/A)``; the labels are frozen in a
  ``SinglePointCalculator``.
- :func:`validate` ``(model, labelled, basis=None, active_set=None) -> ValidationReport``: per scenario the
  energy RMSE (meV/atom), force RMSE per component over all atoms and over the defect atoms (meV/A), the
  largest force error of one atom (meV/A) and, with a basis and an active set, gamma of every atom.
- :func:`defect_properties` / :func:`compare_properties`: a0, E_coh, C11/C12/C44 (``sampling.properties``),
  relaxed vacancy and <111> dumbbell formation energies, (100) and (110) surface energies, the Sigma5 (310)[001]
  GB energy and the energy-volume curve, for LAMMPS-evaluable potentials.
- :func:`run_validation`: all of it, as the ``defect-genome validate`` command does.

Same model, suite parameters, sampling potential and seed give an identical report (serial LAMMPS, velocities
drawn in atom-ID order); only ``report.timings`` differs between runs.
"""

from __future__ import annotations

import math
import os
import re
import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator
from ase.calculators.singlepoint import SinglePointCalculator

from md.potentials import Potential, PotentialError
from sampling.builders import bicrystal, bulk_crystal, dislocation_loop, polycrystal, single_crystal, slab
from sampling.protocols import execute, program_for
from schemas.validation import (
    PARITY_POINTS,
    GammaSummary,
    ParitySample,
    PropertyComparison,
    PropertySettings,
    ScenarioErrors,
    ValidationReport,
    ValidationSuiteParams,
)

__all__ = [
    "SCENARIOS",
    "Evaluator",
    "as_evaluator",
    "build_suite",
    "columnar_polycrystal",
    "compare_properties",
    "defect_properties",
    "evaluator_properties",
    "label_configurations",
    "lammps_energy_forces",
    "load_model",
    "load_reference",
    "read_snap_include",
    "run_validation",
    "validate",
]

SCENARIOS = ("gb", "compression", "polycrystal_2d", "polycrystal_3d", "crack", "loops", "nanoindent")
EV_PER_A2_TO_J_PER_M2 = 16.021766339999996
# etol, ftol (eV/A), iterations, force evaluations of the surface and GB relaxations: capped, a rough model
# (an under-trained SNAP) otherwise runs into the evaluation limit (17 s for one GB cell)
_PROPERTY_MINIMIZE = "minimize 1e-10 1e-4 300 3000"
_INFO_KEYS = ("step", "temperature", "strain", "indenter_depth", "protocol", "crack_length")


# =========================================================================== evaluation


def lammps_energy_forces(potential: Potential, atoms: Atoms, threads: int = 1) -> tuple[float, np.ndarray]:
    """Energy (eV) and forces (N x 3, eV/A, input order and frame) of ``atoms`` with a LAMMPS potential."""
    from md.engine import LammpsSystem

    work = Atoms(numbers=atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
    with LammpsSystem(work, potential, threads=threads, species=tuple(potential.elements)) as system:
        energy = system.potential_energy()
        forces = system.forces()
    return float(energy), np.asarray(forces, dtype=float)


@dataclass
class Evaluator:
    """Something that gives energies and forces: a LAMMPS potential, an ASE calculator or a function.

    ``family``: ``snap``, ``mtp``, ``eam``, ``meam``, ``calculator`` or ``function`` (a reference must not share
    the model's family: a SNAP reproduces a SNAP teacher exactly). ``potential`` is set when the evaluator is
    a LAMMPS potential (then :func:`defect_properties` can use it).
    """

    name: str
    family: str
    elements: tuple[str, ...]
    potential: Potential | None = None
    calculator: Calculator | None = None
    function: Callable[[Atoms], tuple[float, np.ndarray]] | None = None
    threads: int = 1
    details: dict[str, Any] = field(default_factory=dict)

    def energy_forces(self, atoms: Atoms) -> tuple[float, np.ndarray]:
        unknown = sorted(set(atoms.get_chemical_symbols()) - set(self.elements)) if self.elements else []
        if unknown:
            raise ValueError(f"{self.name} describes {', '.join(self.elements)}, not {', '.join(unknown)}")
        if self.potential is not None:
            return lammps_energy_forces(self.potential, atoms, self.threads)
        if self.calculator is not None:
            work = Atoms(numbers=atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
            work.calc = self.calculator
            return float(work.get_potential_energy()), np.array(work.get_forces(), dtype=float)
        if self.function is None:
            raise TypeError(f"evaluator {self.name}: no potential, calculator or function to evaluate with")
        energy, forces = self.function(atoms)
        return float(energy), np.asarray(forces, dtype=float).reshape(len(atoms), 3)


def _family_of(potential: Potential) -> str:
    style = potential.pair_style
    return {"eam/alloy": "eam", "eam/fs": "eam"}.get(style, style)


def as_evaluator(thing: Any, name: str | None = None) -> Evaluator:
    """An :class:`Evaluator` from an Evaluator, a Potential, a SnapModel/SnapFiles, an ASE calculator or a
    callable ``atoms -> (energy, forces)``."""
    from .snap import SnapFiles, SnapModel

    if isinstance(thing, Evaluator):
        return thing
    if isinstance(thing, SnapModel):
        thing = thing.files()
    if isinstance(thing, SnapFiles):
        return Evaluator(name or thing.coeff_path.stem, "snap", tuple(thing.elements), potential=thing.potential())
    if isinstance(thing, Potential):
        return Evaluator(name or thing.name, _family_of(thing), tuple(thing.elements), potential=thing)
    if isinstance(thing, Calculator):
        return Evaluator(name or type(thing).__name__, "calculator", (), calculator=thing)
    if callable(thing):
        return Evaluator(name or str(getattr(thing, "__name__", "function")), "function", (), function=thing)
    raise TypeError(f"cannot evaluate energies and forces with {type(thing).__name__}; give a Potential, a "
                    "SnapModel/SnapFiles, an ASE calculator or a function atoms -> (energy, forces)")


# =========================================================================== model and reference files


def read_snap_include(path: str | os.PathLike):
    """A SNAP potential from its LAMMPS include file (``.snap``: ``pair_style snap`` or ``hybrid/overlay
    <ref> snap`` with ``pair_coeff`` lines; ``variable ... equal`` substitutions and ``&`` continuations as in
    the files shipped with LAMMPS, e.g. ``W_2940_2017_2.snap``) as :class:`mlip.snap.SnapFiles`."""
    from schemas.training import SnapReference

    from .snap import read_snap
    from .train import TrainingInputError

    path = Path(path)
    if not path.is_file():
        raise TrainingInputError("path", f"no SNAP include file at {path}")
    joined: list[str] = []
    pending = ""
    for raw in path.read_text(errors="replace").splitlines():
        text = raw.split("#", 1)[0].rstrip()
        if text.endswith("&"):
            pending += text[:-1] + " "
            continue
        text = (pending + text).strip()
        pending = ""
        if text:
            joined.append(text)
    variables: dict[str, str] = {}
    style: list[str] | None = None
    coeffs: list[list[str]] = []
    for line in joined:
        line = re.sub(r"\$\{(\w+)\}|\$(\w)", lambda m: variables.get(m.group(1) or m.group(2), m.group(0)), line)
        words = line.split()
        if words[0] == "variable" and len(words) >= 4 and words[2] in ("equal", "string", "index"):
            variables[words[1]] = words[3]
        elif words[0] == "pair_style":
            style = words[1:]
        elif words[0] == "pair_coeff":
            coeffs.append(words[1:])
    if not style or "snap" not in style:
        raise TrainingInputError("path", f"{path}: no 'pair_style snap' (or hybrid/overlay ... snap) line")
    reference = None
    snap_line = None
    if style[0] == "snap":
        snap_line = next((c for c in coeffs if len(c) >= 5 and c[:2] == ["*", "*"]), None)
        if snap_line is not None:
            snap_line = snap_line[2:]
    elif style[0] == "hybrid/overlay" and style[-1] == "snap" and len(style) > 2:
        sub = style[1:-1]
        others = [c for c in coeffs if len(c) > 2 and c[2] != "snap"]
        reference = SnapReference(pair_style=" ".join(sub), pair_coeff=[" ".join(c) for c in others])
        snap_line = next((c[3:] for c in coeffs if len(c) >= 6 and c[2] == "snap"), None)
    else:
        raise TrainingInputError("path", f"{path}: pair_style {' '.join(style)} is not snap or hybrid/overlay "
                                         "<one sub-style> snap")
    if snap_line is None or len(snap_line) < 3:
        raise TrainingInputError("path", f"{path}: no 'pair_coeff * * [snap] X.snapcoeff X.snapparam elements' line")
    coeff, param = path.parent / snap_line[0], path.parent / snap_line[1]
    return read_snap(coeff, param, reference)


def load_model(path: str | os.PathLike, element: str | None = None, threads: int = 1) -> Evaluator:
    """The model to validate from a file: a SNAP written by ``mlip.train_snap`` (its record
    ``X.snapcoeff.json``, the ``X.snapcoeff`` or the ``X.snap`` include file) or an MTP (``X.mtp``, species from
    its record ``X.mtp.json`` or ``element``). Bad files raise ValueError naming the file's problem."""
    from .snap import SnapModel, read_snap
    from .train import SIDE_CAR, TrainedModel, TrainingInputError

    path = Path(path)
    if not path.exists():
        raise TrainingInputError("MODEL", f"no file {path}")
    name = path.name
    if name.endswith(".mtp.json") or name.endswith(".mtp"):
        mtp = path if name.endswith(".mtp") else path.with_name(name[: -len(SIDE_CAR)])
        record = mtp.with_name(mtp.name + SIDE_CAR)
        species = tuple(TrainedModel.load(record).species) if record.is_file() else ((element or "W"),)
        return _mtp_evaluator(mtp, species)
    if name.endswith(".snapcoeff.json") or name.endswith(".snapcoeff"):
        files = SnapModel.load(path).files() if (name.endswith(".json") or path.with_name(name + SIDE_CAR).is_file()) \
            else read_snap(path)
    elif name.endswith(".snap"):
        files = read_snap_include(path)
    else:
        raise TrainingInputError("MODEL", f"{name}: give a SNAP (.snapcoeff.json record, .snapcoeff or .snap "
                                          "written by mlip.train_snap) or an MTP (.mtp)")
    evaluator = as_evaluator(files, name=files.coeff_path.stem)
    evaluator.threads = threads
    evaluator.details = {"path": str(path), "twojmax": files.twojmax, "quadratic": files.quadratic}
    return evaluator


def _mtp_evaluator(path: Path, species: tuple[str, ...]) -> Evaluator:
    import logging

    from motep.calculator import make_calculator

    from .train import _read_mtp

    data = _read_mtp(path, species)
    details: dict[str, Any] = {"path": str(path), "configurations_below_min_dist": 0}
    motep_logger = logging.getLogger("motep.potentials.mtp.base")

    def energy_forces(atoms: Atoms) -> tuple[float, np.ndarray]:
        work = Atoms(atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
        work.calc = make_calculator(data, engine="cext", mode="run")
        # motep logs a warning per configuration with neighbours closer than the MTP's min_dist: counted, not
        # printed (relaxations and compressed cells would flood the terminal)
        level, motep_logger.disabled = motep_logger.disabled, True
        try:
            below = _nearest_distance(work) < float(data.radial_basis.min)
            result = float(work.get_potential_energy()), np.array(work.get_forces(), dtype=float)
        finally:
            motep_logger.disabled = level
        details["configurations_below_min_dist"] += int(below)
        return result

    return Evaluator(path.stem, "mtp", species, function=energy_forces, details=details)


def load_reference(name: str | os.PathLike, threads: int = 1) -> Evaluator:
    """A reference ("teacher") potential by bundled name or path: EAM / MEAM files (``md.potentials``),
    SNAP include files (``.snap``, e.g. ``W_2940_2017_2.snap``) or ``.snapcoeff`` (with its ``.snapparam``).
    Checked by one LAMMPS evaluation of a small bcc cell of its first element (LAMMPS's refusal raises
    :class:`md.potentials.PotentialError`)."""
    from md.potentials import bundled_potentials_dir, load_potential

    from .snap import read_snap

    text = str(name)
    candidate = Path(text).expanduser()
    if not candidate.is_file() and (bundled_potentials_dir() / candidate.name).is_file() and candidate.name == text:
        candidate = bundled_potentials_dir() / candidate.name
    if text.endswith(".snap"):
        files = read_snap_include(candidate)
        evaluator = as_evaluator(files, name=candidate.name)
    elif text.endswith(".snapcoeff"):
        evaluator = as_evaluator(read_snap(candidate), name=candidate.name)
    else:
        evaluator = as_evaluator(load_potential(text), name=Path(text).name)
    evaluator.threads = threads
    probe = bulk_crystal(evaluator.elements[0], "bcc", 3.2, (2, 2, 2))
    try:
        energy, forces = evaluator.energy_forces(probe)
    except PotentialError:
        raise
    except Exception as error:  # LammpsError and the lammps module's bare exceptions
        raise PotentialError(f"LAMMPS cannot evaluate {text}: {error}") from None
    if not (math.isfinite(energy) and np.all(np.isfinite(forces))):
        raise PotentialError(f"{text} gives a non-finite energy or forces for bcc {evaluator.elements[0]}")
    return evaluator


# =========================================================================== building the suite


def _seed(base: int, *parts: Any) -> int:
    """A positive 31-bit seed for one scenario/structure, derived from the suite seed."""
    keys = [int(base)] + [zlib.crc32(str(p).encode()) for p in parts]
    return int(np.random.SeedSequence(keys).generate_state(1)[0]) % (2**31 - 2) + 1


def columnar_polycrystal(element: str, lattice: str, a: float, box_xy: tuple[float, float], z_periods: int,
                         n_grains: int, seed: int, overlap_fraction: float = 0.6) -> Atoms:
    """A periodic 2D (columnar) polycrystal: ``n_grains`` grains whose [001] axes lie along z, each rotated by a
    random angle about z, Voronoi cells of random seeds in the xy plane; z is ``z_periods`` lattice constants.
    Of every pair closer than ``overlap_fraction`` nearest-neighbour distances one atom is removed (as
    :func:`sampling.builders.polycrystal`). ``arrays["grain_id"]``; ``info["grain_angles_deg"]``."""
    from scipy.spatial import cKDTree

    from sampling.builders import _NEAREST_NEIGHBOUR, _check_material, _drop_close_pairs, _lattice_ball, _wrap_into_box

    _check_material(element, lattice, a)
    if int(n_grains) != n_grains or n_grains < 1:
        raise ValueError(f"n_grains: must be a positive integer, got {n_grains!r}")
    lengths = np.array([float(box_xy[0]), float(box_xy[1]), int(z_periods) * float(a)])
    if lengths[:2].min() < 2 * a:
        raise ValueError(f"box_xy: every length must be at least two lattice constants (2*{a} A), got {box_xy}")
    rng = np.random.default_rng(seed)
    seeds = np.column_stack([rng.random((n_grains, 2)) * lengths[:2], np.zeros(n_grains)])
    angles = rng.random(n_grains) * (0.5 * math.pi)  # the [001] axis is fourfold: 0..90 degrees
    tree = cKDTree(seeds[:, :2], boxsize=lengths[:2])
    reach = 0.5 * float(np.linalg.norm(lengths[:2])) + 2.0 * a
    ball = _lattice_ball(lattice, float(a), math.sqrt(reach**2 + lengths[2] ** 2) + a)
    ball = ball[(ball[:, 2] > -1e-6) & (ball[:, 2] < lengths[2] - 1e-6)]
    ball = ball[np.linalg.norm(ball[:, :2], axis=1) <= reach]
    pieces, grain_ids = [], []
    for grain in range(n_grains):
        c, s = math.cos(angles[grain]), math.sin(angles[grain])
        rotation = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
        unwrapped = ball @ rotation.T + seeds[grain]
        wrapped = _wrap_into_box(unwrapped, lengths)
        distance, owner = tree.query(wrapped[:, :2])
        from_seed = np.linalg.norm(unwrapped[:, :2] - seeds[grain, :2], axis=1)
        mine = (owner == grain) & (from_seed <= distance + 1e-6)
        pieces.append(wrapped[mine])
        grain_ids.append(np.full(int(mine.sum()), grain, dtype=int))
    positions = np.concatenate(pieces)
    grain_id = np.concatenate(grain_ids)
    keep = _drop_close_pairs(positions, lengths, overlap_fraction * _NEAREST_NEIGHBOUR[lattice] * a)
    atoms = Atoms(symbols=[element] * int(keep.sum()), positions=positions[keep], cell=lengths, pbc=True)
    atoms.arrays["grain_id"] = grain_id[keep]
    atoms.info["grain_angles_deg"] = np.degrees(angles).tolist()
    return atoms


def _configuration(snapshot, scenario: str, label: str, meta: dict[str, Any]) -> Atoms:
    source = snapshot.atoms
    atoms = Atoms(numbers=source.numbers, positions=source.positions, cell=source.cell, pbc=source.pbc)
    defect = np.zeros(len(atoms), dtype=bool)
    defect[np.asarray(snapshot.defect_indices, dtype=int)] = True
    atoms.arrays["defect"] = defect
    atoms.arrays["structure_type"] = np.asarray(source.arrays["structure_type"], dtype=np.int32)
    atoms.info.update(meta)
    atoms.info.update({key: source.info[key] for key in _INFO_KEYS if key in source.info})
    atoms.info.update(scenario=scenario, label=label, sampling_energy=float(source.info.get("energy", 0.0)))
    return atoms


def _run(name: str, atoms: Atoms, potential: Potential, params: ValidationSuiteParams, element: str, lattice: str,
         a: float, threads: int, **arguments: Any) -> list:
    program = program_for(name, atoms, potential, element=element, lattice=lattice, lattice_constant=a,
                          **arguments)
    program.detection = params.detection
    return list(execute(program, potential, threads))


def _pick(snapshots: list, count: int) -> list:
    """The first snapshot and the last ``count - 1`` (or only the last when count is 1)."""
    if count <= 1 or len(snapshots) <= 1:
        return snapshots[-1:]
    return snapshots[:1] + snapshots[1:][-(count - 1):]


def build_suite(params: ValidationSuiteParams, potential: Potential, element: str, lattice: str, a: float,
                threads: int = 1, timings: dict[str, float] | None = None) -> dict[str, list[Atoms]]:
    """The suite's configurations per scenario (in ``params.scenarios`` order), built by MD with the sampling
    ``potential``; ``a`` (A) is the lattice constant the structures are built with (the sampling potential's).
    ``timings``, if given, receives the wall time (s) of each scenario."""
    if not isinstance(params, ValidationSuiteParams):
        params = ValidationSuiteParams.model_validate(params)
    meta = {"validation_suite": params.suite, "validation_seed": int(params.seed), "element": element,
            "lattice": lattice, "lattice_constant": float(a), "sampling_potential": potential.name}
    dt = params.timestep_fs
    run = lambda name, atoms, **kw: _run(name, atoms, potential, params, element, lattice, a, threads,  # noqa: E731
                                         timestep_fs=dt, **kw)
    suite: dict[str, list[Atoms]] = {}
    for scenario in params.scenarios:
        started = time.perf_counter()
        configs: list[Atoms] = []
        if scenario == "gb":
            gb = params.gb
            for k, (axis, plane) in enumerate(gb.boundaries):
                atoms = bicrystal(element, lattice, a, kind="symmetric_tilt", tilt_axis=axis, boundary_plane=plane,
                                  min_lengths=gb.min_lengths)
                snaps = run("anneal", atoms, temperatures=list(gb.temperatures),
                            steps_per_temperature=gb.steps_per_temperature, snapshot_every=gb.steps_per_temperature,
                            seed=_seed(params.seed, scenario, k))
                tag = "".join(str(v) for v in plane) + "[" + "".join(str(v) for v in axis) + "]"
                for snap, temperature in zip(snaps[1:], gb.temperatures):
                    config = _configuration(snap, scenario, f"({tag}) {temperature:g} K", meta)
                    config.info["boundary_z"] = [0.0, float(atoms.cell[2, 2]) / 2.0]
                    configs.append(config)
        elif scenario == "compression":
            comp = params.compression
            atoms = bulk_crystal(element, lattice, a, comp.supercell)
            total = round(comp.max_strain / (comp.strain_rate * dt * 1e-15))
            every = max(1, math.ceil(total / (comp.snapshots - 1))) if comp.snapshots > 1 else max(total, 1)
            snaps = run("uniaxial", atoms, axis="z", mode="compression", strain_rate=comp.strain_rate,
                        max_strain=comp.max_strain, temperature=comp.temperature, snapshot_every=every,
                        equilibration_steps=comp.equilibration_steps, lateral="npt", seed=_seed(params.seed, scenario))
            configs = [_configuration(s, scenario, f"strain {s.atoms.info['strain']:.3f}", meta)
                       for s in _pick(snaps, comp.snapshots)]
        elif scenario == "polycrystal_2d":
            pc2 = params.polycrystal_2d
            atoms = columnar_polycrystal(element, lattice, a, pc2.box_xy, pc2.z_periods, pc2.n_grains,
                                         seed=_seed(params.seed, scenario, "grains"))
            every = max(1, pc2.steps // (pc2.snapshots - 1)) if pc2.snapshots > 1 else pc2.steps
            snaps = run("anneal", atoms, temperatures=[pc2.temperature], steps_per_temperature=pc2.steps,
                        snapshot_every=every, seed=_seed(params.seed, scenario))
            configs = [_configuration(s, scenario, f"step {s.step}, {pc2.temperature:g} K", meta)
                       for s in _pick(snaps, pc2.snapshots)]
        elif scenario == "polycrystal_3d":
            pc3 = params.polycrystal_3d
            atoms = polycrystal(element, lattice, a, pc3.box, pc3.n_grains, seed=_seed(params.seed, scenario, "grains"))
            snaps = run("anneal", atoms, temperatures=list(pc3.temperatures),
                        steps_per_temperature=pc3.steps_per_temperature, snapshot_every=pc3.steps_per_temperature,
                        seed=_seed(params.seed, scenario))
            configs = [_configuration(s, scenario, f"{t:g} K", meta) for s, t in zip(snaps[1:], pc3.temperatures)]
        elif scenario == "crack":
            crk = params.crack
            atoms = single_crystal(element, lattice, a, min_lengths=crk.min_lengths)
            snaps = run("crack_opening", atoms, crack_length=crk.crack_length, normal="y", front="z",
                        max_strain=crk.max_strain, increments=crk.increments, temperature=crk.temperature,
                        seed=_seed(params.seed, scenario))
            configs = [_configuration(s, scenario, f"strain {s.atoms.info['strain']:.3f}", meta)
                       for s in snaps[-crk.snapshots:]]
        elif scenario == "loops":
            lps = params.loops
            for k, family in enumerate(lps.loops):
                atoms = dislocation_loop(bulk_crystal(element, lattice, a, lps.supercell), burgers=family,
                                         radius=lps.radius, nature="interstitial")
                snaps = run("anneal", atoms, temperatures=[lps.temperature], steps_per_temperature=lps.steps,
                            snapshot_every=lps.steps, seed=_seed(params.seed, scenario, k))
                configs.append(_configuration(snaps[0], scenario, f"{family} loop relaxed", meta))
                configs.append(_configuration(snaps[-1], scenario, f"{family} loop {lps.temperature:g} K", meta))
        elif scenario == "nanoindent":
            ind = params.nanoindent
            atoms = slab(element, lattice, a, normal=(0, 0, 1), thickness=ind.thickness,
                         lateral_min_lengths=ind.lateral, vacuum=max(ind.radius, 8.0))
            speed_steps = round(ind.depth / (ind.speed * 1e-5 * dt))
            snaps = run("nanoindent", atoms, radius=ind.radius, depth=ind.depth, speed=ind.speed,
                        temperature=ind.temperature, fixed_bottom=0.25 * ind.thickness,
                        snapshot_every=max(speed_steps, 1), equilibration_steps=ind.equilibration_steps,
                        seed=_seed(params.seed, scenario))
            deepest = snaps[-1]
            configs = [_configuration(deepest, scenario, f"depth {deepest.atoms.info['indenter_depth']:.2f} A", meta)]
        else:  # pragma: no cover - the schema's Literal refuses it
            raise ValueError(f"scenarios: unknown scenario {scenario!r}; choose from {', '.join(SCENARIOS)}")
        suite[scenario] = configs
        if timings is not None:
            timings[scenario] = time.perf_counter() - started
    return suite


# =========================================================================== labels


def label_configurations(configs: Mapping[str, Sequence[Atoms]], reference: Any,
                         name: str | None = None) -> dict[str, list[Atoms]]:
    """Copies of the configurations with the reference's energy and forces (eV, eV/A) in a
    SinglePointCalculator; ``info["reference"]`` is its name. ``reference``: anything :func:`as_evaluator`
    takes (a LAMMPS Potential such as WL.meam, ``SnapFiles``, an ASE calculator, a function)."""
    evaluator = as_evaluator(reference, name)
    labelled: dict[str, list[Atoms]] = {}
    for scenario, images in configs.items():
        out = []
        for atoms in images:
            energy, forces = evaluator.energy_forces(atoms)
            copy = atoms.copy()
            copy.calc = SinglePointCalculator(copy, energy=energy, forces=forces)
            copy.info["reference"] = evaluator.name
            out.append(copy)
        labelled[scenario] = out
    return labelled


# =========================================================================== errors


def validate(model: Any, labelled: Mapping[str, Sequence[Atoms]], basis=None, active_set=None,
             training: Sequence[Atoms] | None = None, name: str | None = None) -> ValidationReport:
    """Errors of ``model`` (anything :func:`as_evaluator` takes) against the labels of each scenario.

    With ``basis`` (a :class:`selection.bases.Basis`), gamma of every atom against ``active_set`` (or the MaxVol
    active set of ``training``, built here) is summarised per scenario: gamma_max, fractions above 1, 2, 10.
    """
    from selection.grading import gamma_summary, grade_atoms, training_active_set

    evaluator = as_evaluator(model, name)
    if basis is not None and active_set is None:
        if not training:
            raise ValueError("active_set: grading needs an active set, or the training configurations to build one")
        active_set = training_active_set(basis, list(training))
    started = time.perf_counter()
    per_scenario: dict[str, dict[str, Any]] = {}
    all_de: list[float] = []
    first: Atoms | None = None
    for scenario, images in labelled.items():
        if not images:
            raise ValueError(f"labelled: scenario {scenario!r} has no configuration")
        de, df, defect, gammas, fr, er, em = [], [], [], [], [], [], []
        for atoms in images:
            if atoms.calc is None:
                raise ValueError(f"labelled: a configuration of {scenario!r} has no labels (label_configurations)")
            first = first or atoms
            energy, forces = evaluator.energy_forces(atoms)
            n = len(atoms)
            de.append((energy - atoms.get_potential_energy()) / n)
            df.append(forces - atoms.get_forces())
            fr.append(atoms.get_forces())
            er.append(atoms.get_potential_energy() / n)
            em.append(energy / n)
            defect.append(np.asarray(atoms.arrays.get("defect", np.zeros(n, dtype=bool)), dtype=bool))
            if basis is not None:
                gammas.append(grade_atoms(basis, active_set, atoms)[1])
        all_de += de
        per_scenario[scenario] = {"de": np.array(de), "df": df, "defect": defect, "gamma": gammas,
                                  "sizes": [len(a) for a in images], "fr": fr, "er": er, "em": em}
    offset = float(np.mean(all_de)) if all_de else 0.0
    results = []
    for scenario, data in per_scenario.items():
        df_all = np.concatenate(data["df"])
        mask = np.concatenate(data["defect"])
        de_all = data["de"]
        gamma = None
        if data["gamma"]:
            summary = gamma_summary(np.concatenate(data["gamma"]))
            gamma = GammaSummary(n_atoms=summary["n_atoms"], gamma_max=summary["gamma_max"],
                                 fraction_above_1=summary["fraction_above_1"],
                                 fraction_above_2=summary["fraction_above_2"],
                                 fraction_above_10=summary["fraction_above_10"])
        results.append(ScenarioErrors(
            scenario=scenario, n_configurations=len(de_all), n_atoms=len(df_all),
            n_defect_atoms=int(mask.sum()),
            atoms_per_configuration=data["sizes"],
            energy_rmse_mev_per_atom=float(np.sqrt(np.mean(de_all**2)) * 1000.0),
            energy_rmse_centred_mev_per_atom=float(np.sqrt(np.mean((de_all - offset) ** 2)) * 1000.0),
            force_rmse_mev_per_A=float(np.sqrt(np.mean(df_all**2)) * 1000.0),
            force_rmse_defect_mev_per_A=float(np.sqrt(np.mean(df_all[mask] ** 2)) * 1000.0) if mask.any() else None,
            max_force_error_mev_per_A=float(np.linalg.norm(df_all, axis=1).max() * 1000.0),
            gamma=gamma, parity=_parity(data["fr"], df_all, mask, data["er"], data["em"])))
    info = first.info if first is not None else {}
    notes = []
    if evaluator.details.get("configurations_below_min_dist"):
        notes.append(f"model: {evaluator.details['configurations_below_min_dist']} evaluations had neighbours closer "
                     "than the MTP's min_dist (outside its radial basis)")
    return ValidationReport(
        model=evaluator.name, reference=str(info.get("reference", "?")), suite=str(info.get("validation_suite", "?")),
        element=str(info.get("element", "?")), lattice=str(info.get("lattice", "?")),
        lattice_constant=float(info.get("lattice_constant", 0.0)), seed=int(info.get("validation_seed", 0)),
        energy_offset_mev_per_atom=offset * 1000.0, scenarios=results, notes=notes,
        timings={"validate": time.perf_counter() - started})


def _parity(reference_forces: list[np.ndarray], df: np.ndarray, mask: np.ndarray, energy_reference: list[float],
            energy_model: list[float]) -> ParitySample:
    """At most PARITY_POINTS force components of the defect atoms (all atoms without any), evenly spaced."""
    reference = np.concatenate(reference_forces)
    rows = mask if mask.any() else np.ones(len(mask), dtype=bool)
    ref, model = reference[rows].ravel(), (reference + df)[rows].ravel()
    picks = np.unique(np.linspace(0, len(ref) - 1, min(PARITY_POINTS, len(ref))).round().astype(int))
    return ParitySample(defect_atoms=bool(mask.any()), n_components=len(ref),
                        force_reference=[float(v) for v in ref[picks]], force_model=[float(v) for v in model[picks]],
                        energy_reference=[float(v) for v in energy_reference],
                        energy_model=[float(v) for v in energy_model])


# =========================================================================== defect properties


def _minimised_energy(potential: Potential, atoms: Atoms, relax_z: bool = False) -> tuple[float, np.ndarray]:
    from md.engine import LammpsSystem

    with LammpsSystem(atoms, potential, species=tuple(potential.elements)) as system:
        system.commands(["min_style cg"])
        if relax_z:  # capped: box/relax of a rough potential can zigzag for minutes (149 s for a GB cell)
            system.commands(["fix dg_relax_z all box/relax z 0.0 vmax 0.001", _PROPERTY_MINIMIZE,
                             "unfix dg_relax_z"])
        system.command(_PROPERTY_MINIMIZE)
        return system.potential_energy(), system.cell()


def _relax(potential: Any, atoms: Atoms) -> tuple[float, np.ndarray]:
    """Energy (eV) and cell of ``atoms`` with positions relaxed at fixed cell: LAMMPS CG for a Potential, ASE
    BFGS (fmax 1e-3 eV/A, at most 500 steps) for any other evaluator (an MTP through motep)."""
    if isinstance(potential, Potential):
        return _minimised_energy(potential, atoms)
    from ase.optimize import BFGS

    work = Atoms(numbers=atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
    work.calc = _EvaluatorCalculator(as_evaluator(potential))
    before = _nearest_distance(work)
    BFGS(work, logfile=None).run(fmax=1e-3, steps=500)
    if _nearest_distance(work) < 0.6 * before:
        raise _Collapsed(f"atoms collapsed in the relaxation (nearest distance {before:.2f} -> "
                         f"{_nearest_distance(work):.2f} A): the model has no repulsion there")
    return float(work.get_potential_energy()), np.array(work.cell[:])


class _Collapsed(ValueError):
    """A relaxation with a model ended with atoms on top of each other."""


def _nearest_distance(atoms: Atoms) -> float:
    from ase.neighborlist import neighbor_list

    distances = neighbor_list("d", atoms, 3.0)
    return float(distances.min()) if len(distances) else 3.0


class _EvaluatorCalculator(Calculator):
    """An :class:`Evaluator` as an ASE calculator (energy and forces), for ASE's optimisers."""

    implemented_properties = ["energy", "free_energy", "forces"]  # noqa: RUF012  (an instance attribute in ASE)

    def __init__(self, evaluator: Evaluator) -> None:
        super().__init__()
        self.evaluator = evaluator

    def calculate(self, atoms=None, properties=("energy",), system_changes=None) -> None:
        from ase.calculators.calculator import all_changes

        super().calculate(atoms, properties, system_changes or all_changes)
        assert self.atoms is not None  # Calculator.calculate copied ``atoms`` into self.atoms
        energy, forces = self.evaluator.energy_forces(self.atoms)
        self.results = {"energy": energy, "free_energy": energy, "forces": forces}


def surface_energy(potential: Any, element: str, lattice: str, a: float, cohesive: float,
                   normal: tuple[int, int, int], thickness: float) -> float:
    """Relaxed surface energy (J/m^2) of a slab with free surfaces normal to ``normal``: (E - N E_coh) / 2A.
    ``potential``: a LAMMPS Potential or any evaluator (relaxed by :func:`_relax`)."""
    atoms = slab(element, lattice, a, normal=normal, thickness=thickness, lateral_min_lengths=(6.0, 6.0),
                 vacuum=8.0)
    energy, cell = _relax(potential, atoms)
    area = float(np.linalg.norm(np.cross(cell[0], cell[1])))
    return (energy - len(atoms) * cohesive) / (2.0 * area) * EV_PER_A2_TO_J_PER_M2


def gb_energy(potential: Any, element: str, lattice: str, a: float, cohesive: float,
              tilt_axis=(0, 0, 1), plane=(3, 1, 0), min_lengths=(6.0, 10.0, 30.0),
              expansions: Sequence[float] = (0.0, 0.01, 0.02, 0.03)) -> float:
    """Relaxed symmetric tilt GB energy (J/m^2) of a periodic bicrystal (two boundaries, as built: no search over
    rigid translations): (E - N E_coh) / 2A, the lowest over the cell stretched along z by ``expansions``
    (fractions), positions relaxed at each (a bounded stand-in for box/relax, which zigzags for minutes with a
    rough potential)."""
    atoms = bicrystal(element, lattice, a, kind="symmetric_tilt", tilt_axis=tilt_axis, boundary_plane=plane,
                      min_lengths=min_lengths)
    best = math.inf
    for expansion in expansions:
        stretched = atoms.copy()
        stretched.set_cell(atoms.cell[:] @ np.diag([1.0, 1.0, 1.0 + float(expansion)]), scale_atoms=True)
        energy, cell = _relax(potential, stretched)
        area = float(np.linalg.norm(np.cross(cell[0], cell[1])))
        best = min(best, (energy - len(atoms) * cohesive) / (2.0 * area) * EV_PER_A2_TO_J_PER_M2)
    return best


def energy_volume(potential: Any, element: str, lattice: str, constants: Sequence[float]) -> list[float]:
    """Energy per atom (eV) of the perfect crystal at each lattice constant (A); ``potential``: anything
    :func:`as_evaluator` takes (no relaxation is needed, so any model works, MTP included)."""
    evaluator = as_evaluator(potential)
    energies = []
    for value in constants:
        atoms = bulk_crystal(element, lattice, float(value), (2, 2, 2))
        energies.append(evaluator.energy_forces(atoms)[0] / len(atoms))
    return energies


def defect_properties(potential: Potential, element: str, lattice: str, settings: PropertySettings | None = None,
                      ev_constants: Sequence[float] | np.ndarray | None = None, threads: int = 1) -> dict[str, Any]:
    """Properties of a LAMMPS potential: a (A), E_coh (eV/atom), C11, C12, C44 (GPa), E_vac and E_sia_111 (eV,
    relaxed, constant volume, ``bulk_size``^3 cells), surface energies (100), (110) and the Sigma5 (310)[001] GB
    energy (J/m^2), and the energy per atom at ``ev_constants`` (default: a * (1 +/- ev_range))."""
    from sampling.properties import (
        elastic_constants,
        interstitial_formation_energy,
        relax_lattice_constant,
        vacancy_formation_energy,
    )

    settings = settings or PropertySettings()
    a, cohesive = relax_lattice_constant(potential, element, lattice, threads=threads)
    elastic = elastic_constants(potential, element, lattice, a, threads=threads)
    out: dict[str, Any] = {"a": a, "E_coh": cohesive, "C11": elastic["C11"], "C12": elastic["C12"],
                           "C44": elastic["C44"],
                           "E_vac": vacancy_formation_energy(potential, element, lattice, a, size=settings.bulk_size,
                                                             threads=threads)}
    if lattice == "bcc":
        out["E_sia_111"] = interstitial_formation_energy(potential, element, lattice, a, size=settings.bulk_size,
                                                         threads=threads)
    out["gamma_surface_100"] = surface_energy(potential, element, lattice, a, cohesive, (1, 0, 0),
                                              settings.slab_thickness)
    out["gamma_surface_110"] = surface_energy(potential, element, lattice, a, cohesive, (1, 1, 0),
                                              settings.slab_thickness)
    out["gamma_gb_sigma5_310"] = gb_energy(potential, element, lattice, a, cohesive,
                                           min_lengths=settings.gb_min_lengths, expansions=settings.gb_expansions)
    if ev_constants is None:
        ev_constants = a * np.linspace(1.0 - settings.ev_range, 1.0 + settings.ev_range, settings.ev_points)
    constants = [float(v) for v in ev_constants]
    per_atom = 2 if lattice == "bcc" else 4
    out["ev_volume"] = [v**3 / per_atom for v in constants]
    out["ev_energy"] = energy_volume(potential, element, lattice, constants)
    out["ev_constants"] = constants
    return out


def evaluator_properties(model: Any, element: str, lattice: str, settings: PropertySettings | None = None,
                         a_guess: float = 3.16,
                         ev_constants: Sequence[float] | np.ndarray | None = None) -> dict[str, Any]:
    """:func:`defect_properties` for a model LAMMPS cannot run (an MTP through motep): the same quantities from
    energies and forces alone. a and E_coh: the minimum of E(a) of a 2x2x2 cell (bounded scalar search, 1e-5 A);
    C11, C12, C44: second differences of the energy of that cell strained by +/-0.5 % (xx, isotropic, yz; no
    internal relaxation, none is needed in a monatomic bcc/fcc crystal); defects, surfaces and the GB: positions
    relaxed by ASE BFGS to 1e-3 eV/A (the reference's by LAMMPS CG: energies agree to ~1e-4 eV)."""
    from scipy.optimize import minimize_scalar

    from sampling.properties import EV_PER_A3_TO_GPA, dumbbell_111

    evaluator = as_evaluator(model)
    settings = settings or PropertySettings()

    def energy(atoms: Atoms) -> float:
        return evaluator.energy_forces(atoms)[0]

    def cell_energy(value: float) -> float:
        atoms = bulk_crystal(element, lattice, float(value), (2, 2, 2))
        return energy(atoms) / len(atoms)

    best = minimize_scalar(cell_energy, bounds=(0.9 * a_guess, 1.1 * a_guess), method="bounded",
                           options={"xatol": 1e-5})
    a, cohesive = float(best.x), float(best.fun)
    reference = bulk_crystal(element, lattice, a, (2, 2, 2))
    volume = reference.get_volume()

    def strained(epsilon: np.ndarray) -> float:
        atoms = reference.copy()
        atoms.set_cell(reference.cell[:] @ (np.eye(3) + epsilon), scale_atoms=True)
        return energy(atoms)

    delta, e0 = 0.005, energy(reference)

    def curvature(direction: np.ndarray) -> float:
        return (strained(delta * direction) + strained(-delta * direction) - 2.0 * e0) / (delta**2 * volume)

    c11 = curvature(np.diag([1.0, 0.0, 0.0]))
    c12 = (curvature(np.eye(3)) - 3.0 * c11) / 6.0
    shear = np.zeros((3, 3))
    shear[1, 2] = shear[2, 1] = 0.5  # engineering shear strain delta
    c44 = curvature(shear)
    out: dict[str, Any] = {"a": a, "E_coh": cohesive, "C11": c11 * EV_PER_A3_TO_GPA, "C12": c12 * EV_PER_A3_TO_GPA,
                           "C44": c44 * EV_PER_A3_TO_GPA}
    perfect = bulk_crystal(element, lattice, a, (settings.bulk_size,) * 3)
    n = len(perfect)
    e_perfect = energy(perfect)
    vacancy = perfect.copy()
    del vacancy[n // 2]
    notes: list[str] = []

    def guarded(key: str, compute: Callable[[], float]) -> None:
        try:
            out[key] = compute()
        except _Collapsed as error:
            out[key] = None
            notes.append(f"{key}: {error}")

    guarded("E_vac", lambda: _relax(evaluator, vacancy)[0] - (n - 1) / n * e_perfect)
    if lattice == "bcc":
        guarded("E_sia_111", lambda: _relax(evaluator, dumbbell_111(perfect, n // 2, a))[0] - (n + 1) / n * e_perfect)
    guarded("gamma_surface_100", lambda: surface_energy(evaluator, element, lattice, a, cohesive, (1, 0, 0),
                                                        settings.slab_thickness))
    guarded("gamma_surface_110", lambda: surface_energy(evaluator, element, lattice, a, cohesive, (1, 1, 0),
                                                        settings.slab_thickness))
    guarded("gamma_gb_sigma5_310", lambda: gb_energy(evaluator, element, lattice, a, cohesive,
                                                     min_lengths=settings.gb_min_lengths,
                                                     expansions=settings.gb_expansions))
    out["notes"] = notes
    if ev_constants is None:
        ev_constants = a * np.linspace(1.0 - settings.ev_range, 1.0 + settings.ev_range, settings.ev_points)
    out["ev_constants"] = [float(v) for v in ev_constants]
    out["ev_energy"] = energy_volume(evaluator, element, lattice, out["ev_constants"])
    return out


_PROPERTY_UNITS = {"a": "A", "E_coh": "eV/atom", "C11": "GPa", "C12": "GPa", "C44": "GPa", "E_vac": "eV",
                   "E_sia_111": "eV", "gamma_surface_100": "J/m^2", "gamma_surface_110": "J/m^2",
                   "gamma_gb_sigma5_310": "J/m^2"}


def compare_properties(model: Mapping[str, Any] | None, reference: Mapping[str, Any]) -> tuple[
        list[PropertyComparison], dict[str, list[float]]]:
    """Property rows (model, reference, model - reference) and the E-V curves; ``model`` None: not computed."""
    rows = []
    for key, unit in _PROPERTY_UNITS.items():
        if key not in reference:
            continue
        ref = float(reference[key])
        value = None if model is None or model.get(key) is None else float(model[key])
        rows.append(PropertyComparison(name=key, unit=unit, model=value, reference=ref,
                                       difference=None if value is None else value - ref))
    curves = {"volume_A3_per_atom": list(reference["ev_volume"]), "reference_eV_per_atom": list(reference["ev_energy"])}
    if model is not None:
        curves["model_eV_per_atom"] = list(model["ev_energy"])
        diff = np.array(model["ev_energy"]) - np.array(reference["ev_energy"])
        rows.append(PropertyComparison(name="E-V rmse", unit="meV/atom", model=float(np.sqrt(np.mean(diff**2)) * 1e3),
                                       reference=0.0, difference=float(np.sqrt(np.mean(diff**2)) * 1e3)))
        centred = diff - diff.mean()
        rows.append(PropertyComparison(name="E-V rmse, offset removed", unit="meV/atom",
                                       model=float(np.sqrt(np.mean(centred**2)) * 1e3), reference=0.0,
                                       difference=float(np.sqrt(np.mean(centred**2)) * 1e3)))
    return rows, curves


# =========================================================================== everything


def run_validation(model: Any, reference: Any, params: ValidationSuiteParams, sampling_potential: Potential,
                   element: str, lattice: str = "bcc", a: float | None = None, basis=None, active_set=None,
                   training: Sequence[Atoms] | None = None, threads: int = 1,
                   labeller: Callable[[Mapping[str, Sequence[Atoms]], Any], dict[str, list[Atoms]]] | None = None,
                   ) -> ValidationReport:
    """Build the suite with ``sampling_potential``, label it with ``reference``, validate ``model`` and (when
    ``params.properties.enabled``) compare their defect properties (relaxed ones when both are LAMMPS
    potentials). ``labeller(configs, reference) -> labelled`` replaces :func:`label_configurations` (e.g. labels
    through the job ledger)."""
    from sampling.properties import relax_lattice_constant

    model_ev, reference_ev = as_evaluator(model), as_evaluator(reference)
    timings: dict[str, float] = {}
    started = time.perf_counter()
    if a is None:
        a, _ = relax_lattice_constant(sampling_potential, element, lattice, threads=threads)
    per_scenario: dict[str, float] = {}
    configs = build_suite(params, sampling_potential, element, lattice, a, threads=threads, timings=per_scenario)
    timings["build"] = time.perf_counter() - started
    timings.update({f"build {name}": value for name, value in per_scenario.items()})
    started = time.perf_counter()
    labelled = (labeller or label_configurations)(configs, reference_ev)
    timings["label"] = time.perf_counter() - started
    report = validate(model_ev, labelled, basis=basis, active_set=active_set, training=training)
    timings["validate"] = report.timings["validate"]
    if params.properties.enabled:
        started = time.perf_counter()
        if reference_ev.potential is None:
            report.notes.append("properties: the reference is not a LAMMPS potential; not computed")
        else:
            ref_props = defect_properties(reference_ev.potential, element, lattice, params.properties,
                                          threads=threads)
            model_props = None
            if model_ev.potential is not None:
                model_props = defect_properties(model_ev.potential, element, lattice, params.properties,
                                                ev_constants=ref_props["ev_constants"], threads=threads)
            else:
                model_props = evaluator_properties(model_ev, element, lattice, params.properties,
                                                   a_guess=ref_props["a"], ev_constants=ref_props["ev_constants"])
                report.notes.append(f"properties: the model ({model_ev.family}) is not a LAMMPS potential here: its "
                                    "properties come from energies and forces (ASE BFGS relaxations, energy second "
                                    "differences for the elastic constants), the reference's from sampling.properties")
            report.notes += [f"properties: {note}" for note in (model_props or {}).get("notes", [])]
            report.properties, report.energy_volume = compare_properties(model_props, ref_props)
        timings["properties"] = time.perf_counter() - started
    report.timings = timings
    return report


# =========================================================================== the command line


DEFAULT_REFERENCES = {"snap": "WL.meam", "mtp": "W_2940_2017_2.snap"}


def validate_command(model_path: str | os.PathLike, reference: str | None = None, suite: str = "smoke",
                     out: str | os.PathLike | None = None, sampling_potential: str = "W_zhou.eam.alloy",
                     lattice: str = "bcc", element: str | None = None, seed: int | None = None,
                     properties: bool = True, allow_same_family: bool = False, threads: int = 1,
                     warn: Callable[[str], None] | None = None, train: str | os.PathLike | None = None,
                     twojmax: int = 6) -> ValidationReport:
    """``defect-genome validate``: load MODEL and the reference, run the suite, write the JSON report.

    With ``train`` (a training set file: extxyz, MTP .cfg, pacemaker), gamma of every atom against its MaxVol
    active set in the SNAP bispectrum basis (2J = ``twojmax``, cutoff 4.7 A; as ``defect-genome grade``).
    Every input problem raises ValueError whose message starts with the option it concerns (MODEL,
    --reference, --suite, --sampling-potential, --element, --seed, --train)."""
    from pydantic import ValidationError

    from md.potentials import check_element, load_potential
    from schemas.validation import SUITES, suite_params

    if suite not in SUITES:
        raise ValueError(f"--suite: unknown suite {suite!r}; choose one of {', '.join(SUITES)}")
    try:
        model = load_model(model_path, element=element, threads=threads)
    except (ValueError, OSError) as error:
        raise ValueError(f"MODEL: {error}".replace("MODEL: MODEL: ", "MODEL: ")) from None
    if len(model.elements) != 1:
        raise ValueError(f"MODEL: the validation suites are single-element; {Path(model_path).name} has "
                         f"{', '.join(model.elements)}")
    element_of_model = model.elements[0]
    if element is not None and element != element_of_model:
        raise ValueError(f"--element: {element} given, but MODEL describes {element_of_model}")
    reference_name = reference or DEFAULT_REFERENCES.get(model.family, "WL.meam")
    try:
        teacher = load_reference(reference_name, threads=threads)
    except (ValueError, OSError, RuntimeError) as error:
        raise ValueError(f"--reference: {error}") from None
    if element_of_model not in teacher.elements:
        raise ValueError(f"--reference: {reference_name} describes {', '.join(teacher.elements)}; MODEL "
                         f"({Path(model_path).name}) describes {element_of_model}: give a reference for "
                         f"{element_of_model} (or the model of the right element)")
    notes = []
    if teacher.family == model.family:
        message = (f"--reference: {reference_name} is a {teacher.family.upper()} potential, the family of MODEL: a "
                   f"{model.family.upper()} can reproduce a teacher of its own family exactly, so the errors would "
                   "not measure transfer to DFT (DESIGN.md section 5)")
        if not allow_same_family:
            suggestion = DEFAULT_REFERENCES.get(model.family, "WL.meam")
            raise ValueError(message + f"; choose a reference outside the family (e.g. {suggestion}) or pass "
                                       "--allow-same-family")
        notes.append("WARNING " + message)
        if warn is not None:
            warn("WARNING " + message)
    try:
        sampler = load_potential(sampling_potential)
        check_element(sampler, element_of_model)
    except (ValueError, OSError) as error:
        raise ValueError(f"--sampling-potential: {error}") from None
    try:
        params = suite_params(suite, **({} if seed is None else {"seed": seed}))
    except ValidationError as error:
        raise ValueError(f"--seed: {error.errors()[0]['msg']}") from None
    params.properties.enabled = bool(properties)
    basis = training = None
    if train is not None:
        from sampling.datasets import read_dataset
        from selection.bases import SnapBasis

        try:
            training = read_dataset(train)
        except (ValueError, OSError, KeyError) as error:
            raise ValueError(f"--train: cannot read {train}: {error}") from None
        foreign = sorted({s for atoms in training for s in atoms.get_chemical_symbols()} - {element_of_model})
        if not training or foreign:
            raise ValueError(f"--train: {train} has no configuration" if not training else
                             f"--train: {train} has {', '.join(foreign)}; MODEL describes {element_of_model}")
        basis = SnapBasis(element_of_model, twojmax=twojmax, threads=threads)
    report = run_validation(model, teacher, params, sampler, element_of_model, lattice, threads=threads, basis=basis,
                            training=training)
    report.notes = notes + report.notes
    if out is not None:
        path = Path(out)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(report.model_dump_json(indent=2) + "\n")
    return report
