"""Loading protocols that stream MD snapshots with their CNA classification.

Every protocol is a generator ``name(atoms, potential, params, *, element, lattice,
lattice_constant, threads) -> Iterator[Snapshot]`` with a matching
``name_snapshot_count(params)`` (snapshots it yields, for done/total displays).
``params`` is the protocol's model in :mod:`schemas.sampling` (e.g.
:class:`~schemas.sampling.UniaxialProtocol`, a campaign spec's
``spec.sampling.protocols[i]``): the one definition of every parameter, its
default, bounds and units, validated by pydantic. :func:`parameters` builds one
from keyword arguments (a bad one raises ValueError naming it, its bound and
unit); the protocols check only what depends on the atoms (periodic axes, slab
thickness, ...), before any LAMMPS work.

Each protocol is written once, as a :class:`Program`: the LAMMPS commands of
the run with :class:`SnapshotPoint` markers between them. A program runs either
in this process (:func:`execute`: a :class:`LammpsSystem`, snapshots read
through numpy, no files) or as a standalone LAMMPS input under ``mpirun``
(:mod:`sampling.lammps_script`: dumps parsed back into the same snapshots).
Both paths build their snapshots in :func:`make_snapshot`.

Protocols (defaults, in schemas.sampling, follow the paper: 300 K, strain rates 1e8..1e9 1/s):

- :func:`minimize`: 0 K relaxation (positions, optionally the box), 1 snapshot.
- :func:`anneal`: Nose-Hoover MD over a temperature schedule.
- :func:`uniaxial`: tension or compression at constant engineering strain rate
  (``fix deform erate``), lateral axes at zero pressure (``npt``) or fixed.
- :func:`shear`: simple shear of a tilt factor (``change_box triclinic`` +
  ``fix deform erate`` on the tilt).
- :func:`nanoindent`: spherical ``fix indent`` pushed into the free top (+z)
  surface of a slab at constant speed, bottom layer held fixed.
- :func:`crack_opening`: mode-I opening of a through-thickness slit crack by
  increasing strain normal to the crack plane, quasi-static (0 K) or MD.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Generator, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from pydantic import BaseModel, ValidationError

from md.engine import LammpsSystem, Stopped, _lammps_frame
from md.potentials import Potential, check_element
from schemas.sampling import (
    AnnealProtocol,
    CrackOpeningProtocol,
    MinimizationParams,
    MinimizeProtocol,
    NanoindentProtocol,
    ShearProtocol,
    UniaxialProtocol,
)

from .defects import classify_atoms, cna_cutoff, count_structure_types, defect_mask

# the parameters of one protocol run: its model in schemas.sampling
ProtocolParams = (MinimizeProtocol | AnnealProtocol | UniaxialProtocol | ShearProtocol | NanoindentProtocol
                  | CrackOpeningProtocol)

__all__ = [
    "PROTOCOLS",
    "Program",
    "ProtocolParams",
    "Snapshot",
    "SnapshotPoint",
    "Stopped",
    "anneal",
    "anneal_snapshot_count",
    "crack_opening",
    "crack_opening_snapshot_count",
    "derived_seed",
    "execute",
    "make_snapshot",
    "minimize",
    "minimize_snapshot_count",
    "nanoindent",
    "nanoindent_snapshot_count",
    "parameters",
    "program_for",
    "shear",
    "shear_snapshot_count",
    "snapshot_count",
    "uniaxial",
    "uniaxial_snapshot_count",
]

_NOSE_HOOVER_TDAMP_STEPS = 100
_NOSE_HOOVER_PDAMP_STEPS = 1000
_AXES = ("x", "y", "z")
# The protocols' `minimize` command at the schema's defaults (etol, ftol eV/A, max iterations, max force
# evaluations); program_for puts the campaign's MinimizationParams in its place.
_MINIMIZE = MinimizationParams().command()
_PER_SECOND_TO_PER_PS = 1e-12  # strain rate: LAMMPS metal time unit is the picosecond
_M_PER_S_TO_A_PER_PS = 1e-2  # 1 m/s = 1e10 A / 1e12 ps


# =========================================================================== snapshots


@dataclass
class Snapshot:
    """One configuration of a protocol.

    ``atoms.arrays["structure_type"]`` is the CNA value per atom (input order);
    ``atoms.info`` has ``energy`` (eV, total potential energy), ``temperature``
    (K), ``stress`` (6 Voigt, eV/A^3, ASE sign, virial only), ``step`` and
    ``protocol``, plus protocol quantities (``strain``, ``shear_strain``,
    ``indenter_depth``, ``indenter_load``). ``defect_indices`` are the atoms
    that are not the perfect lattice.
    """

    index: int
    step: int
    time_ps: float
    atoms: Atoms
    defect_indices: np.ndarray
    counts: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class SnapshotPoint:
    """Where a program takes snapshot ``index``: right after a ``run`` or ``minimize`` command.

    ``info`` is known in advance (e.g. the applied strain); ``variables`` maps an
    ``atoms.info`` key to an equal-style LAMMPS variable read at this point
    (e.g. ``{"indenter_load": "indenter_load"}``).
    """

    index: int
    step: int
    time_ps: float
    info: dict[str, Any] = field(default_factory=dict)
    variables: dict[str, str] = field(default_factory=dict)


@dataclass
class Program:
    """A protocol as data: LAMMPS commands (after atoms and potential exist) with snapshot points.

    ``atoms`` is the configuration the run starts from (it may differ from the
    protocol's input, e.g. with a crack cut into it); ``thermo_every`` is the
    thermo output interval a standalone run uses for its log.
    """

    protocol: str
    atoms: Atoms
    element: str
    lattice: str
    lattice_constant: float
    timestep_ps: float
    items: list[str | SnapshotPoint] = field(default_factory=list)
    thermo_every: int = 0
    # Structure identification of every snapshot: "cna" (LAMMPS cna/atom, computed in the run)
    # or "acna" (adaptive CNA of sampling.defects, no lattice cutoff; robust to strain and heat).
    detection: str = "cna"
    # indices of atoms held fixed (atoms.arrays["fixed"], e.g. a dislocation cylinder's outer shell):
    # zero force, no velocity, never candidates
    held: tuple[int, ...] = ()

    @property
    def points(self) -> list[SnapshotPoint]:
        return [item for item in self.items if isinstance(item, SnapshotPoint)]

    @property
    def snapshot_count(self) -> int:
        return len(self.points)

    @property
    def commands(self) -> list[str]:
        return [item for item in self.items if isinstance(item, str)]

    def check(self) -> Program:
        """Snapshot points must follow a run/minimize (energy, virial and computes are current there)."""
        previous = ""
        for position, item in enumerate(self.items):
            if isinstance(item, SnapshotPoint):
                if previous.split()[:1] not in (["run"], ["minimize"]):
                    raise AssertionError(f"{self.protocol}: snapshot {item.index} at item {position} "
                                         f"follows {previous!r}, not a run or minimize")
            else:
                words = item.split()
                if words[:1] == ["run"] and " pre no" in item and previous.split()[:1] != ["run"]:
                    raise AssertionError(f"{self.protocol}: {item!r} at item {position} does not continue a run")
                previous = item
        indices = [p.index for p in self.points]
        if indices != list(range(len(indices))):
            raise AssertionError(f"{self.protocol}: snapshot indices {indices} are not 0..n-1")
        return self


def make_snapshot(
    program: Program,
    point: SnapshotPoint,
    atoms: Atoms,
    lammps_structure_type: np.ndarray,
    energy: float,
    temperature: float,
    stress: np.ndarray,
    values: dict[str, float],
) -> Snapshot:
    """THE snapshot constructor of both execution paths: classification, defect atoms, info."""
    if program.detection == "acna":
        structure_type = classify_atoms(atoms, lattice=program.lattice, method="acna")
    else:  # LAMMPS `compute structure_type ... cna/atom`, defined by every program
        structure_type = np.rint(np.asarray(lammps_structure_type, dtype=float)).astype(np.int32)
    atoms.arrays["structure_type"] = structure_type
    atoms.info.update(
        energy=float(energy),
        temperature=float(temperature),
        stress=np.asarray(stress, dtype=float),
        step=point.step,
        protocol=program.protocol,
    )
    atoms.info.update(point.info)
    atoms.info.update({key: float(value) for key, value in values.items()})
    return Snapshot(
        index=point.index,
        step=point.step,
        time_ps=point.time_ps,
        atoms=atoms,
        defect_indices=np.setdiff1d(np.flatnonzero(defect_mask(structure_type, program.lattice)), program.held),
        counts=count_structure_types(structure_type),
    )


def _snapshot(system: LammpsSystem, program: Program, point: SnapshotPoint) -> Snapshot:
    lammps_structure_type = system.per_atom_compute("structure_type")
    atoms = system.get_atoms()
    return make_snapshot(
        program,
        point,
        atoms,
        lammps_structure_type,
        energy=system.potential_energy(),
        temperature=system.temperature(),
        stress=system.stress(),
        values={key: system.equal_variable(name) for key, name in point.variables.items()},
    )


def execute(program: Program, potential: Potential, threads: int = 1,
            stop_file: str | Path | None = None,
            progress: Callable[[str], None] | None = None) -> Generator[Snapshot, None, None]:
    """Run ``program`` in this process, yielding its snapshots. Closing the generator early frees LAMMPS.

    With ``stop_file``, LAMMPS stops mid-run or mid-minimisation within a fraction of a second plus one MD
    step or minimiser iteration of that file appearing (:meth:`LammpsSystem.watch_stop_file`; this function
    also looks for it between commands and before each snapshot) and the generator raises :class:`Stopped`.
    Without the file the snapshots are exactly those of a run without ``stop_file``.
    ``progress`` is called from a thread every few seconds of a minimisation with e.g. ``minimising: iteration
    350 of at most 1000`` (it must not raise).
    """
    if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or threads < 1:
        raise ValueError(f"threads must be a positive integer (OpenMP threads), got {threads!r}")
    return _execute(program, potential, int(threads), None if stop_file is None else Path(stop_file), progress)


_PROGRESS_EVERY_S = 5.0


@contextmanager
def _minimising(system: LammpsSystem, command: str, progress: Callable[[str], None] | None) -> Iterator[None]:
    """Reports the iterations of the minimisation ``command`` runs, from a thread, while it runs."""
    if progress is None:
        yield
        return
    first, cap = system.step, int(command.split()[3])
    done = threading.Event()

    def report() -> None:
        while not done.wait(_PROGRESS_EVERY_S):
            progress(f"minimising: iteration {system.step - first} of at most {cap}")

    watcher = threading.Thread(target=report, name="dg-minimise-progress", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        done.set()
        watcher.join()


def _execute(program: Program, potential: Potential, threads: int, stop_file: Path | None = None,
             progress: Callable[[str], None] | None = None) -> Generator[Snapshot, None, None]:
    if stop_file is not None and stop_file.exists():
        raise Stopped(f"stop file {stop_file} exists: {program.protocol} not started")
    system = LammpsSystem(program.atoms, potential, threads=threads)
    try:
        if stop_file is not None:
            system.watch_stop_file(stop_file)
        for item in program.items:
            if stop_file is not None and stop_file.exists():
                raise Stopped(f"stop file {stop_file} exists: {program.protocol} stopped before {item!r}")
            if isinstance(item, SnapshotPoint):
                yield _snapshot(system, program, item)
            elif item.startswith("minimize "):
                with _minimising(system, item, progress):
                    system.command(item)
            else:
                system.command(item)
    finally:
        system.close()


# =========================================================================== parameters


def _unit(description: str | None) -> str:
    """The unit of a schema field: its description after the last ', ' (schemas put units there), else ''."""
    return description.rsplit(", ", 1)[1] if description and ", " in description else ""


def _readable(error: ValidationError, model: type[BaseModel]) -> str:
    """A pydantic error of a protocol model as one line naming each field, its bound and unit."""
    bounds = {"greater_than": (">", "gt"), "greater_than_equal": (">=", "ge"),
              "less_than": ("<", "lt"), "less_than_equal": ("<=", "le")}
    messages = []
    for item in error.errors():
        location = ".".join(str(part) for part in item["loc"])
        field = model.model_fields.get(str(item["loc"][0])) if item["loc"] else None
        unit = _unit(field.description) if field is not None else ""
        if item["type"] in bounds:
            sign, key = bounds[item["type"]]
            limit = item["ctx"][key]
            limit = f"{limit:g}" if isinstance(limit, float) else limit
            messages.append(f"{location} must be {sign} {limit}{' ' + unit if unit else ''}, "
                            f"got {item['input']!r}")
        elif location:
            messages.append(f"{location}: {item['msg']}, got {item['input']!r}")
        else:  # a model validator: the message names its fields
            messages.append(str(item["msg"]).removeprefix("Value error, "))
    return "; ".join(messages)


def parameters(name: str, **fields: Any) -> ProtocolParams:
    """The schema model of protocol ``name`` (schemas.sampling) from keyword ``fields``, the schema's defaults for
    the rest. Validated strictly (Python types: no "yes" for True); a bad field raises ValueError naming it, its
    bound and unit."""
    model = _protocol(name).model
    try:
        return model.model_validate(fields, strict=True)
    except ValidationError as error:
        raise ValueError(f"{name}: {_readable(error, model)}") from None


def _common(atoms: Atoms, potential: Potential, element: str, lattice: str, lattice_constant: float,
            timestep_fs: float) -> float:
    """Checks of the run's context shared by all protocols (the parameters are the schema's); returns the timestep
    in ps."""
    if not isinstance(atoms, Atoms) or len(atoms) == 0:
        raise ValueError(f"atoms must be a non-empty ase.Atoms, got {atoms!r}")
    check_element(potential, element)
    if isinstance(lattice_constant, bool) or not isinstance(lattice_constant, (int, float, np.integer, np.floating)) \
            or not math.isfinite(lattice_constant) or not lattice_constant > 0:
        raise ValueError(f"lattice_constant must be > 0 A, got {lattice_constant!r}")
    if lattice not in ("bcc", "fcc", "hcp"):
        raise ValueError(f"lattice must be 'bcc', 'fcc' or 'hcp', got {lattice!r}")
    return float(timestep_fs) / 1000.0


def _require_lammps_orientation(atoms: Atoms, protocol: str) -> None:
    """Axes of loading protocols are LAMMPS axes: the cell must need no rotation (a along x, b in xy)."""
    rotation, _ = _lammps_frame(np.array(atoms.cell[:], dtype=float))
    if not np.array_equal(rotation, np.eye(3)):
        raise ValueError(
            f"{protocol}: atoms.cell must have its first vector along +x and its second in the xy plane "
            "(LAMMPS orientation; loading axes are the Cartesian axes); got cell "
            f"{np.round(atoms.cell[:], 4).tolist()}"
        )


def _program(protocol: str, atoms: Atoms, element: str, lattice: str, lattice_constant: float,
             timestep_ps: float) -> Program:
    cutoff = cna_cutoff(lattice, lattice_constant)
    program = Program(protocol, atoms.copy(), element, lattice, float(lattice_constant), timestep_ps)
    program.held = tuple(int(i) for i in np.flatnonzero(np.asarray(atoms.arrays.get("fixed", np.zeros(len(atoms))),
                                                                   dtype=bool)))
    program.items += [
        f"compute structure_type all cna/atom {cutoff!r}",
        f"timestep {timestep_ps!r}",
        "min_style cg",
        *_held_group(program.held),
        "group mobile subtract all held",
    ]
    program.items += _hold(program)
    return program


def _held_group(held: Sequence[int]) -> list[str]:
    """Group ``held`` by atom ID (input order, 1-based) in ranges; empty when nothing is held."""
    fixed = np.asarray(held, dtype=int) + 1
    if len(fixed) == 0:
        return ["group held empty"]
    breaks = np.flatnonzero(np.diff(fixed) != 1)
    starts = np.concatenate([[fixed[0]], fixed[breaks + 1]])
    ends = np.concatenate([fixed[breaks], [fixed[-1]]])
    ranges = [f"{a}" if a == b else f"{a}:{b}" for a, b in zip(starts, ends)]
    # one command per 500 ranges keeps every input line short; group is additive
    return [f"group held id {' '.join(ranges[k:k + 500])}" for k in range(0, len(ranges), 500)]


def _hold(program: Program) -> list[str]:
    """Zero force on the held atoms (in minimisation and MD), once per program; none if nothing is held."""
    if "fix hold held setforce 0.0 0.0 0.0" in program.items:
        return []
    held = any(item.startswith("group held id") or item.startswith("group held region") for item in program.items
               if isinstance(item, str))
    return ["fix hold held setforce 0.0 0.0 0.0"] if held else []


def _periodic_dofs(atoms: Atoms, axes: Sequence[str] = _AXES, tilts: bool = True) -> list[str]:
    dofs = [axis for axis in axes if atoms.pbc[_AXES.index(axis)]]
    _, lower = _lammps_frame(np.array(atoms.cell[:], dtype=float))
    triclinic = bool(lower[1, 0] or lower[2, 0] or lower[2, 1])
    if tilts and triclinic and all(atoms.pbc):
        dofs += ["xy", "xz", "yz"]
    return dofs


def _box_relaxed_minimisation(atoms: Atoms) -> list[str]:
    """Minimise positions and box at zero pressure along the periodic directions, then positions alone."""
    dofs = _periodic_dofs(atoms)
    if not dofs:
        return [_MINIMIZE]
    relaxed = " ".join(f"{dof} 0.0" for dof in dofs)
    return [f"fix zero_pressure all box/relax {relaxed} vmax 0.001", _MINIMIZE, "unfix zero_pressure", _MINIMIZE]


def _thermostat(temperature: float, timestep_ps: float) -> str:
    tdamp = _NOSE_HOOVER_TDAMP_STEPS * timestep_ps
    return f"temp {temperature!r} {temperature!r} {tdamp!r}"


def _barostat(dofs: Sequence[str], timestep_ps: float) -> str:
    pdamp = _NOSE_HOOVER_PDAMP_STEPS * timestep_ps
    return " ".join(f"{dof} 0.0 0.0 {pdamp!r}" for dof in dofs)


def _snapshot_steps(total: int, every: int) -> list[int]:
    """Loading steps with a snapshot: every ``every`` steps, and the last step (the maximum load)."""
    steps = list(range(every, total + 1, every))
    if not steps or steps[-1] != total:
        steps.append(total)
    return steps


def _loading_run(program: Program, total: int, every: int, first_index: int, offset: int,
                 info: Callable[[int], dict[str, Any]], variables: dict[str, str] | None = None) -> None:
    """MD for ``total`` steps from LAMMPS timestep ``offset``, a snapshot at each of _snapshot_steps.

    The runs are one run for fixes that ramp (``start``/``stop``: fix deform's box
    follows the strain of one continuous run), cut at the snapshot steps.
    """
    done = 0
    for index, step in enumerate(_snapshot_steps(total, every), start=first_index):
        program.items.append(f"run {step - done} start {offset} stop {offset + total}{_continued(done)} post no")
        done = step
        program.items.append(SnapshotPoint(index, step, step * program.timestep_ps, info(step), dict(variables or {})))


def _continued(steps_done: int) -> str:
    """``pre no`` for a run continuing the previous one with only a snapshot in between.

    The setup (re-neighbouring, force evaluation, fix init) is skipped, so the
    pieces of a run cut at the snapshot steps follow the trajectory of one
    continuous run, and cost no more. Valid because taking a snapshot changes
    nothing in LAMMPS (checked by Program.check: no command between the runs).
    """
    return " pre no" if steps_done else ""


def _velocities(group: str, temperature: float, seed: int, stage: int) -> str:
    # loop all: velocities drawn in atom-ID order, so serial, threaded and MPI runs start identically
    # (loop geom hashes coordinates, and round-off after an MPI minimisation changes the draw)
    return (f"velocity {group} create {temperature!r} {derived_seed(seed, stage)} "
            "mom yes rot no dist gaussian loop all")


def derived_seed(seed: int, index: int) -> int:
    """A LAMMPS velocity seed (1 .. 2^31-2) for stage ``index`` of a run seeded with ``seed``."""
    state = np.random.SeedSequence([int(seed), int(index)]).generate_state(1)[0]
    return int(state) % (2**31 - 2) + 1


# =========================================================================== minimize


def minimize_snapshot_count(params: MinimizeProtocol) -> int:
    """Snapshots :func:`minimize` yields: one, the minimised configuration."""
    return 1


def minimize(atoms: Atoms, potential: Potential, params: MinimizeProtocol, *, element: str, lattice: str,
             lattice_constant: float, threads: int = 1) -> Iterator[Snapshot]:
    """Conjugate-gradient minimisation to 1e-6 eV/A; ONE snapshot, the minimised configuration (step 0).

    The unminimised input is not a snapshot: a built structure (overlapping
    atoms at a grain boundary, an unrelaxed core) is not a physical environment.
    ``params.box_relax``: first relax the box to zero pressure along the periodic
    directions (tilts too for a fully periodic triclinic cell), then the
    positions alone at that box. ``params.seed`` is unused (no random numbers).
    """
    program = program_for(params, atoms, potential, element=element, lattice=lattice, lattice_constant=lattice_constant)
    return execute(program, potential, threads)


def _minimize_program(atoms: Atoms, potential: Potential, params: MinimizeProtocol, *, element: str, lattice: str,
                      lattice_constant: float) -> Program:
    timestep_ps = _common(atoms, potential, element, lattice, lattice_constant, 1.0)
    program = _program("minimize", atoms, element, lattice, lattice_constant, timestep_ps)
    program.items += _box_relaxed_minimisation(atoms) if params.box_relax else [_MINIMIZE]
    program.items.append(SnapshotPoint(0, 0, 0.0))
    return program


# =========================================================================== anneal


def anneal_snapshot_count(params: AnnealProtocol) -> int:
    """Snapshots :func:`anneal` yields: one after minimisation, then one every ``snapshot_every`` MD steps."""
    return 1 + (len(params.temperatures) * params.steps_per_temperature) // params.snapshot_every


def anneal(atoms: Atoms, potential: Potential, params: AnnealProtocol, *, element: str, lattice: str,
           lattice_constant: float, threads: int = 1) -> Iterator[Snapshot]:
    """Minimise, then run Nose-Hoover MD at each of ``params.temperatures`` in turn, yielding snapshots.

    Snapshot 0 follows the minimisation (positions only for nvt; positions and
    box at zero pressure for npt); then one every ``snapshot_every`` MD steps,
    counted over the whole run, :func:`anneal_snapshot_count` in total.
    Velocities are drawn anew at each temperature from ``derived_seed(seed, i)``
    (``loop all``: drawn in atom-ID order), so the same inputs and thread
    count give identical snapshots. Closing the generator early frees LAMMPS.
    """
    program = program_for(params, atoms, potential, element=element, lattice=lattice, lattice_constant=lattice_constant)
    return execute(program, potential, threads)


def _anneal_program(atoms: Atoms, potential: Potential, params: AnnealProtocol, *, element: str, lattice: str,
                    lattice_constant: float) -> Program:
    timestep_ps = _common(atoms, potential, element, lattice, lattice_constant, params.timestep_fs)
    ensemble, seed = params.ensemble, params.seed
    if ensemble == "npt" and not np.any(atoms.pbc):
        raise ValueError("ensemble 'npt' needs at least one periodic direction; use 'nvt' for clusters")
    steps_per_temperature, snapshot_every = params.steps_per_temperature, params.snapshot_every
    program = _program("anneal", atoms, element, lattice, lattice_constant, timestep_ps)
    program.thermo_every = snapshot_every
    coupled = _periodic_dofs(atoms)
    if ensemble == "npt":
        relaxed = " ".join(f"{dof} 0.0" for dof in coupled)
        program.items.append(f"fix zero_pressure all box/relax {relaxed} vmax 0.001")
    program.items.append(_MINIMIZE)
    program.items.append(SnapshotPoint(0, 0, 0.0))
    if ensemble == "npt":
        program.items.append("unfix zero_pressure")
    program.items.append("reset_timestep 0")

    index, step = 0, 0
    for stage, temperature in enumerate(params.temperatures):
        temperature = float(temperature)
        thermostat = _thermostat(temperature, timestep_ps)
        program.items += [
            _velocities("mobile", temperature, seed, stage),
            f"fix integrate mobile nvt {thermostat}" if ensemble == "nvt"
            else f"fix integrate mobile npt {thermostat} {_barostat(coupled, timestep_ps)}",
        ]
        stage_end = step + steps_per_temperature
        while step < stage_end:
            target = min((step // snapshot_every + 1) * snapshot_every, stage_end)
            program.items.append(f"run {target - step}{_continued(step - stage_end + steps_per_temperature)} post no")
            step = target
            if step % snapshot_every == 0:
                index += 1
                program.items.append(SnapshotPoint(index, step, step * timestep_ps))
        program.items.append("unfix integrate")
    return program


# =========================================================================== uniaxial


def _loading_steps(rate_name: str, rate: float, amount_name: str, amount: float, timestep_fs: float) -> int:
    """MD steps to reach ``amount`` (strain) at ``rate`` (1/s) with timestep_fs (all > 0: the schema's bounds)."""
    steps = round(amount / (rate * timestep_fs * 1e-15))
    if steps < 1:
        raise ValueError(f"{amount_name} = {amount!r} is reached in less than one step at {rate_name} = "
                         f"{rate!r} 1/s and timestep_fs = {timestep_fs!r}; lower {rate_name}")
    return steps


def uniaxial_snapshot_count(params: UniaxialProtocol) -> int:
    """Snapshots :func:`uniaxial` yields: one at zero strain, then every ``snapshot_every`` steps and at the end."""
    steps = _loading_steps("strain_rate", params.strain_rate, "max_strain", params.max_strain, params.timestep_fs)
    return 1 + len(_snapshot_steps(steps, params.snapshot_every))


def uniaxial(atoms: Atoms, potential: Potential, params: UniaxialProtocol, *, element: str, lattice: str,
             lattice_constant: float, threads: int = 1) -> Iterator[Snapshot]:
    """Uniaxial tension or compression along ``params.axis`` at a constant engineering strain rate.

    Minimise (box at zero pressure along periodic axes), equilibrate
    ``equilibration_steps`` at ``temperature`` (NPT at zero pressure for
    ``lateral="npt"``, NVT for ``"fixed"``), then load: ``fix deform ... erate``
    along ``axis`` (``strain_rate`` in 1/s, converted to 1/ps; the box length
    along ``axis`` becomes L0 (1 +/- max_strain)) with Nose-Hoover NPT at zero
    pressure on the periodic lateral axes (``"npt"``) or NVT with the lateral
    box fixed (``"fixed"``). Snapshot 0 is the equilibrated state (strain 0),
    then one every ``snapshot_every`` loading steps and one at ``max_strain``.
    ``atoms.info["strain"]`` is the applied engineering strain (negative in
    compression).
    """
    program = program_for(params, atoms, potential, element=element, lattice=lattice, lattice_constant=lattice_constant)
    return execute(program, potential, threads)


def _uniaxial_program(atoms: Atoms, potential: Potential, params: UniaxialProtocol, *, element: str, lattice: str,
                      lattice_constant: float) -> Program:
    timestep_ps = _common(atoms, potential, element, lattice, lattice_constant, params.timestep_fs)
    axis, mode, lateral, temperature, seed = params.axis, params.mode, params.lateral, params.temperature, params.seed
    total = _loading_steps("strain_rate", params.strain_rate, "max_strain", params.max_strain, params.timestep_fs)
    every, equilibration = params.snapshot_every, params.equilibration_steps
    if not atoms.pbc[_AXES.index(axis)]:
        raise ValueError(f"axis {axis!r} must be periodic to be strained (atoms.pbc = {atoms.pbc.tolist()})")
    _require_lammps_orientation(atoms, "uniaxial")

    sign = 1.0 if mode == "tension" else -1.0
    rate_per_ps = sign * float(params.strain_rate) * _PER_SECOND_TO_PER_PS
    lateral_dofs = [a for a in _periodic_dofs(atoms, tilts=False) if a != axis] if lateral == "npt" else []
    thermostat = _thermostat(temperature, timestep_ps)

    def integrator(dofs: list[str]) -> str:
        if dofs:
            return f"fix integrate mobile npt {thermostat} {_barostat(dofs, timestep_ps)}"
        return f"fix integrate mobile nvt {thermostat}"

    program = _program("uniaxial", atoms, element, lattice, lattice_constant, timestep_ps)
    program.thermo_every = every
    program.items += _box_relaxed_minimisation(atoms)
    start = {"strain": 0.0, "loading": f"{mode} {axis}"}
    if equilibration == 0:
        program.items.append(SnapshotPoint(0, 0, 0.0, start))
    program.items += [
        "reset_timestep 0",
        _velocities("mobile", temperature, seed, 0),
        integrator(_periodic_dofs(atoms, tilts=False) if lateral == "npt" else []),
    ]
    if equilibration:
        program.items += [f"run {equilibration} post no", SnapshotPoint(0, 0, 0.0, start)]
    program.items += [
        "unfix integrate",
        integrator(lateral_dofs),
        f"fix load all deform 1 {axis} erate {rate_per_ps!r} remap x",
    ]
    _loading_run(program, total, every, 1, equilibration,
                 lambda step: {"strain": step * timestep_ps * rate_per_ps, "loading": f"{mode} {axis}"})
    program.items += ["unfix load", "unfix integrate"]
    return program


# =========================================================================== shear

_TILT_NORMAL = {"xy": "y", "xz": "z", "yz": "z"}  # LAMMPS tilt factor -> axis it is proportional to


def shear_snapshot_count(params: ShearProtocol) -> int:
    """Snapshots :func:`shear` yields: one at zero shear, then every ``snapshot_every`` steps and at the end."""
    steps = _loading_steps("shear_rate", params.shear_rate, "max_shear", params.max_shear, params.timestep_fs)
    return 1 + len(_snapshot_steps(steps, params.snapshot_every))


def shear(atoms: Atoms, potential: Potential, params: ShearProtocol, *, element: str, lattice: str,
          lattice_constant: float, threads: int = 1) -> Iterator[Snapshot]:
    """Simple shear at a constant engineering shear rate (1/s) on the LAMMPS tilt factor ``params.plane``.

    ``"xy"`` moves atoms along x in proportion to y (tilt xy = gamma * Ly);
    ``"xz"``: along x with z; ``"yz"``: along y with z. The box is made
    triclinic (``change_box all triclinic``), minimised at zero pressure,
    equilibrated (NVT, ``equilibration_steps``), then sheared with
    ``fix deform <plane> erate`` under NVT up to ``max_shear`` (engineering
    shear strain, ``atoms.info["shear_strain"]``). Snapshot 0 is the
    equilibrated state, then one every ``snapshot_every`` steps and one at the end.
    """
    program = program_for(params, atoms, potential, element=element, lattice=lattice, lattice_constant=lattice_constant)
    return execute(program, potential, threads)


def _shear_program(atoms: Atoms, potential: Potential, params: ShearProtocol, *, element: str, lattice: str,
                   lattice_constant: float) -> Program:
    timestep_ps = _common(atoms, potential, element, lattice, lattice_constant, params.timestep_fs)
    plane, temperature = params.plane, params.temperature
    total = _loading_steps("shear_rate", params.shear_rate, "max_shear", params.max_shear, params.timestep_fs)
    every, equilibration = params.snapshot_every, params.equilibration_steps
    if not all(atoms.pbc):
        raise ValueError(f"shear needs a fully periodic cell (atoms.pbc = {atoms.pbc.tolist()})")
    _require_lammps_orientation(atoms, "shear")

    rate_per_ps = float(params.shear_rate) * _PER_SECOND_TO_PER_PS
    program = _program("shear", atoms, element, lattice, lattice_constant, timestep_ps)
    program.thermo_every = every
    program.items.append("change_box all triclinic")
    program.items += _box_relaxed_minimisation(atoms)
    start = {"shear_strain": 0.0, "loading": f"shear {plane}"}
    if equilibration == 0:
        program.items.append(SnapshotPoint(0, 0, 0.0, start))
    program.items += [
        "reset_timestep 0",
        _velocities("mobile", temperature, params.seed, 0),
        f"fix integrate mobile nvt {_thermostat(temperature, timestep_ps)}",
    ]
    if equilibration:
        program.items += [f"run {equilibration} post no", SnapshotPoint(0, 0, 0.0, start)]
    program.items.append(f"fix load all deform 1 {plane} erate {rate_per_ps!r} remap x")
    _loading_run(program, total, every, 1, equilibration,
                 lambda step: {"shear_strain": step * timestep_ps * rate_per_ps, "loading": f"shear {plane}"})
    program.items += ["unfix load", "unfix integrate"]
    return program


# =========================================================================== nanoindentation


def _indent_steps(depth: float, speed: float, timestep_fs: float) -> int:
    """MD steps to indent ``depth`` A at ``speed`` m/s (all > 0: the schema's bounds)."""
    steps = round(depth / (speed * _M_PER_S_TO_A_PER_PS * timestep_fs * 1e-3))
    if steps < 1:
        raise ValueError(f"depth = {depth!r} A is reached in less than one step at speed = {speed!r} m/s; "
                         "lower speed")
    return steps


def nanoindent_snapshot_count(params: NanoindentProtocol) -> int:
    """Snapshots :func:`nanoindent` yields: one before contact, then every ``snapshot_every`` steps and at ``depth``."""
    steps = _indent_steps(params.depth, params.speed, params.timestep_fs)
    return 1 + len(_snapshot_steps(steps, params.snapshot_every))


def nanoindent(slab_atoms: Atoms, potential: Potential, params: NanoindentProtocol, *, element: str, lattice: str,
               lattice_constant: float, threads: int = 1) -> Iterator[Snapshot]:
    """Spherical indentation of the top (+z) surface of a slab at constant speed.

    ``slab_atoms`` must be non-periodic along z (a free surface; x and y are
    usually periodic). Atoms within ``fixed_bottom`` A of the lowest atom are
    held fixed (``fix setforce``, zero velocity); the rest are minimised,
    equilibrated (NVT at ``temperature``, ``equilibration_steps``) and then
    indented by ``fix indent <force_constant> sphere`` (K in eV/A^3, the
    LAMMPS form K (r - R)^2) of ``radius`` A, centred over the middle of the
    cell, its lowest point starting at the highest atom and moving down at
    ``speed`` m/s (0.01 A/ps per m/s) by ``depth`` A. Snapshot 0 is the
    equilibrated slab (depth 0), then one every ``snapshot_every`` steps and
    one at ``depth``. ``atoms.info``: ``indenter_depth`` (A below the initial
    top surface) and ``indenter_load`` (eV/A, z force of the atoms on the
    indenter, ``f_indent[3]``; 1 eV/A = 1.602 nN). The reported temperature
    counts all atoms, the fixed ones included. (``params.structure`` is not
    used: the slab is ``slab_atoms``.)
    """
    program = program_for(params, slab_atoms, potential, element=element, lattice=lattice,
                          lattice_constant=lattice_constant)
    return execute(program, potential, threads)


def _nanoindent_program(atoms: Atoms, potential: Potential, params: NanoindentProtocol, *, element: str, lattice: str,
                        lattice_constant: float) -> Program:
    timestep_ps = _common(atoms, potential, element, lattice, lattice_constant, params.timestep_fs)
    if atoms.pbc[2]:
        raise ValueError(
            "nanoindent needs a free top surface: slab_atoms.pbc must be False along z (the indentation axis), "
            f"got pbc = {atoms.pbc.tolist()}; e.g. slab.pbc = (True, True, False); slab.center(vacuum=10, axis=2)"
        )
    _require_lammps_orientation(atoms, "nanoindent")
    radius, depth, temperature = params.radius, params.depth, params.temperature
    fixed_bottom, force_constant = params.fixed_bottom, params.force_constant
    total = _indent_steps(depth, params.speed, params.timestep_fs)
    every, equilibration = params.snapshot_every, params.equilibration_steps
    z = atoms.positions[:, 2]
    bottom, top = float(z.min()), float(z.max())
    if not fixed_bottom < top - bottom:
        raise ValueError(f"fixed_bottom = {fixed_bottom!r} A must be thinner than the slab ({top - bottom:.2f} A)")
    if not depth < top - bottom - fixed_bottom:
        raise ValueError(f"depth = {depth!r} A must be smaller than the mobile slab thickness "
                         f"({top - bottom - fixed_bottom:.2f} A = slab - fixed_bottom)")

    cell = np.array(atoms.cell[:], dtype=float)
    centre_x, centre_y = (0.5 * (cell[0] + cell[1]))[:2]
    speed_per_step = float(params.speed) * _M_PER_S_TO_A_PER_PS * timestep_ps  # A per step
    thermostat = _thermostat(temperature, timestep_ps)
    program = _program("nanoindent", atoms, element, lattice, lattice_constant, timestep_ps)
    program.thermo_every = every
    program.items += [
        f"region fixed_layer block INF INF INF INF INF {bottom + fixed_bottom!r} units box",
        "group held region fixed_layer",
        "group mobile clear",
        "group mobile subtract all held",
    ]
    program.items += [*_hold(program), _MINIMIZE]
    start = {"indenter_depth": 0.0, "indenter_load": 0.0, "indenter_radius": radius}
    if equilibration == 0:
        program.items.append(SnapshotPoint(0, 0, 0.0, start))
    program.items += [
        "reset_timestep 0",
        _velocities("mobile", temperature, params.seed, 0),
        "velocity held set 0.0 0.0 0.0",
        f"fix integrate mobile nvt {thermostat}",
    ]
    if equilibration:
        program.items += [f"run {equilibration} post no", SnapshotPoint(0, 0, 0.0, start)]
    # sphere centre: lowest point at the initial top surface, then down at `speed`
    program.items += [
        f"variable indenter_z equal {top + radius!r}-{speed_per_step!r}*(step-{equilibration})",
        f"fix indent all indent {force_constant!r} sphere {float(centre_x)!r} {float(centre_y)!r} "
        f"v_indenter_z {radius!r} units box",
        "variable indenter_load equal f_indent[3]",
    ]
    _loading_run(program, total, every, 1, equilibration,
                 lambda step: {"indenter_depth": step * speed_per_step, "indenter_radius": radius},
                 variables={"indenter_load": "indenter_load"})
    program.items += ["unfix indent", "unfix integrate", "unfix hold"]
    return program


# =========================================================================== crack opening


def crack_opening_snapshot_count(params: CrackOpeningProtocol) -> int:
    """Snapshots :func:`crack_opening` yields: the relaxed cracked crystal, then one per strain increment."""
    return 1 + params.increments


def crack_opening(atoms: Atoms, potential: Potential, params: CrackOpeningProtocol, *, element: str, lattice: str,
                  lattice_constant: float, threads: int = 1) -> Iterator[Snapshot]:
    """Mode-I opening of a through-thickness slit crack by stepwise tensile strain normal to it.

    The crack is cut into a copy of ``atoms`` (orthogonal, periodic along
    ``normal``): atoms with |r_normal - centre| < ``slit_width``/2 (default:
    one lattice constant, two (100) planes of bcc) and |r_p - centre| <
    ``crack_length``/2 along the third axis p are deleted, through the whole
    thickness along ``front`` (the crack front direction). Snapshots carry
    the cracked crystal's atoms (fewer than ``atoms``). The crystal is
    minimised (snapshot 0, strain 0), then strained along ``normal`` in
    ``increments`` equal steps up to ``max_strain`` (``change_box ... remap``,
    other axes fixed: plane strain). At ``temperature`` 0 (default, quasi-
    static) each increment is minimised; at T > 0 the crystal is first
    equilibrated (NVT, ``equilibration_steps``) and each increment runs
    ``steps_per_increment`` NVT steps (unused at 0 K). One snapshot per increment
    (``atoms.info["strain"]``; ``step`` is the increment at 0 K, the MD step otherwise).
    """
    program = program_for(params, atoms, potential, element=element, lattice=lattice, lattice_constant=lattice_constant)
    return execute(program, potential, threads)


def _crack_opening_program(atoms: Atoms, potential: Potential, params: CrackOpeningProtocol, *, element: str,
                           lattice: str, lattice_constant: float) -> Program:
    timestep_ps = _common(atoms, potential, element, lattice, lattice_constant, params.timestep_fs)
    normal, front, crack_length = params.normal, params.front, params.crack_length
    max_strain, increments, temperature = params.max_strain, params.increments, params.temperature
    steps_per_increment, equilibration = params.steps_per_increment, params.equilibration_steps
    cell = np.array(atoms.cell[:], dtype=float)
    if np.abs(cell - np.diag(np.diag(cell))).max() > 1e-9:
        raise ValueError(f"crack_opening needs an orthogonal cell (atoms.cell diagonal), "
                         f"got {np.round(cell, 4).tolist()}")
    n, f = _AXES.index(normal), _AXES.index(front)
    p = 3 - n - f  # crack propagation direction
    if not atoms.pbc[n]:
        raise ValueError(f"normal axis {normal!r} must be periodic to be strained (atoms.pbc = {atoms.pbc.tolist()})")
    if not crack_length < cell[p, p]:
        raise ValueError(f"crack_length = {crack_length!r} A must be shorter than the cell along "
                         f"{_AXES[p]} ({cell[p, p]:.3f} A), or the crystal is cut in two")
    slit_width = float(lattice_constant) if params.slit_width is None else params.slit_width
    if not slit_width < 0.5 * cell[n, n]:
        raise ValueError(f"slit_width = {slit_width!r} A must be less than half the cell along {normal} "
                         f"({0.5 * cell[n, n]:.3f} A)")

    centre = 0.5 * np.diag(cell)
    positions = atoms.positions
    cut = (np.abs(positions[:, n] - centre[n]) < 0.5 * slit_width) & \
          (np.abs(positions[:, p] - centre[p]) < 0.5 * crack_length)
    if not cut.any():
        raise ValueError(f"crack_length = {crack_length!r} A and slit_width = {slit_width!r} A cut no atoms; "
                         "make them larger")
    cracked = atoms.copy()
    del cracked[np.flatnonzero(cut)]

    program = _program("crack_opening", cracked, element, lattice, lattice_constant, timestep_ps)
    program.thermo_every = steps_per_increment if temperature > 0 else 0
    info = {"crack_length": crack_length, "loading": f"mode I {normal}"}
    program.items += [_MINIMIZE, SnapshotPoint(0, 0, 0.0, {"strain": 0.0, **info})]
    if temperature > 0:
        program.items += [
            "reset_timestep 0",
            _velocities("mobile", temperature, params.seed, 0),
            f"fix integrate mobile nvt {_thermostat(temperature, timestep_ps)}",
        ]
        if equilibration:
            program.items.append(f"run {equilibration} post no")
    length = float(cell[n, n])  # the LAMMPS box spans 0..length along an axis of an orthogonal cell
    for k in range(1, increments + 1):
        strain = max_strain * k / increments
        program.items.append(f"change_box all {normal} final 0.0 {float(length * (1.0 + strain))!r} remap units box")
        if temperature > 0:
            step = k * steps_per_increment
            program.items.append(f"run {steps_per_increment} post no")
            program.items.append(SnapshotPoint(k, step, step * timestep_ps, {"strain": strain, **info}))
        else:
            program.items.append(_MINIMIZE)
            program.items.append(SnapshotPoint(k, k, 0.0, {"strain": strain, **info}))
    if temperature > 0:
        program.items.append("unfix integrate")
    return program


# =========================================================================== registry


@dataclass(frozen=True)
class _Protocol:
    model: type[ProtocolParams]  # the protocol's parameters: its model in schemas.sampling (the one definition)
    run: Callable[..., Iterator[Snapshot]]
    program: Callable[..., Program]
    count: Callable[..., int]


PROTOCOLS: dict[str, _Protocol] = {
    "minimize": _Protocol(MinimizeProtocol, minimize, _minimize_program, minimize_snapshot_count),
    "anneal": _Protocol(AnnealProtocol, anneal, _anneal_program, anneal_snapshot_count),
    "uniaxial": _Protocol(UniaxialProtocol, uniaxial, _uniaxial_program, uniaxial_snapshot_count),
    "shear": _Protocol(ShearProtocol, shear, _shear_program, shear_snapshot_count),
    "nanoindent": _Protocol(NanoindentProtocol, nanoindent, _nanoindent_program, nanoindent_snapshot_count),
    "crack_opening": _Protocol(CrackOpeningProtocol, crack_opening, _crack_opening_program,
                               crack_opening_snapshot_count),
}

# keyword arguments of program_for/snapshot_count that describe the run, not the protocol's parameters
_CONTEXT = ("element", "lattice", "lattice_constant", "threads", "minimization")


def _protocol(name: str) -> _Protocol:
    if name not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {', '.join(PROTOCOLS)}, got {name!r}")
    return PROTOCOLS[name]


def _params(protocol: str | ProtocolParams, fields: dict[str, Any]) -> ProtocolParams:
    """The protocol's schema model: ``protocol`` itself, or built from its name and ``fields``."""
    if isinstance(protocol, str):
        return parameters(protocol, **fields)
    kind = getattr(protocol, "kind", None)
    if not isinstance(kind, str) or not isinstance(protocol, _protocol(kind).model):
        raise ValueError(f"protocol must be a protocol name or a schemas.sampling protocol model, got {protocol!r}")
    if fields:
        raise ValueError(f"{kind}: give the parameters in the model, not as keywords ({', '.join(sorted(fields))})")
    return protocol


def program_for(protocol: str | ProtocolParams, atoms: Atoms, potential: Potential, *, element: str, lattice: str,
                lattice_constant: float, minimization: MinimizationParams | None = None, **fields: Any) -> Program:
    """The validated :class:`Program` of ``protocol``: a schemas.sampling protocol model (e.g. a campaign
    spec's ``spec.sampling.protocols[i]``), or a protocol name with its parameters as keyword ``fields``
    (:func:`parameters`: the schema's defaults for the rest). ``minimization`` (a campaign's
    ``spec.sampling.minimization``; default the schema's) sets every ``minimize`` of the program.

    ``threads`` may be among ``fields`` (it does not change the program).
    """
    fields.pop("threads", None)
    params = _params(protocol, fields)
    program = _protocol(params.kind).program(atoms, potential, params, element=element, lattice=lattice,
                                             lattice_constant=lattice_constant)
    if minimization is not None:
        command = minimization.command()
        program.items = [command if item == _MINIMIZE else item for item in program.items]
    return program.check()


def snapshot_count(protocol: str | ProtocolParams, **fields: Any) -> int:
    """Snapshots ``protocol`` yields: a schemas.sampling protocol model, or a protocol name with its parameters
    as keyword ``fields`` (the schema's defaults for the rest; element, lattice, lattice_constant and threads
    are ignored)."""
    params = _params(protocol, {k: v for k, v in fields.items() if k not in _CONTEXT})
    return _protocol(params.kind).count(params)
