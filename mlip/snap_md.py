"""OTF MD with a SNAP model inside LAMMPS: :func:`run_graded_snap`, the LAMMPS-speed twin of :func:`mlip.otf.grade_run`.

One LAMMPS instance (:class:`md.engine.LammpsSystem`) holds the target's atoms with the model's own lines
(``pair_style snap``, or ``hybrid/overlay <reference> snap`` for a model with a reference such as ZBL), and a
``compute sna/atom`` that reproduces the selection basis (:class:`selection.bases.SnapBasis`). MD runs in chunks
of ``check_every`` steps (``run N``); after each chunk (and at step 0) the per-atom bispectrum rows are read from
the compute, the basis's constant column is appended, and :func:`selection.maxvol.grades` grades them against the
active set. Nothing leaves LAMMPS during a chunk.

Rows = the basis's rows, column for column
    The compute line is the basis's own (:meth:`SnapBasis.compute_command`: its rcutfac, rfac0, twojmax, radius,
    rmin0 and whatever keywords it carries), with the per-type weights put in the order of the LAMMPS types (= the
    model's elements). SnapBasis gives no flag keywords, so both use compute sna/atom's defaults: switchflag 1
    (as the model) and bzeroflag 1 (B_k minus the isolated-atom value; the model's pair_style snap uses
    bzeroflag 0). With the basis's constant column that shift is an invertible change of columns, so gamma is
    the same as for the model's own bzeroflag 0 rows; without it (``constant=False``) it is not, and the
    basis's rows are what is reproduced here. Columns: the basis's ``n_bispectrum`` components, then 1.0 when
    the basis has its constant column. The basis settings need not be the model's: gamma is defined by the basis the
    active set was built with (:func:`snap_basis` builds the basis with the model's bispectrum settings, the
    natural choice). Quadratic models: :class:`SnapBasis` has no quadratic columns, so a quadratic model is
    graded on its linear bispectrum rows, as :func:`selection.grading.grade_atoms` would grade it. When the
    basis's cutoff exceeds the model's, a ``zero`` sub-style with the basis's cutoff is overlaid (no energy, only
    the neighbour list LAMMPS needs for the compute). At step 0 the in-LAMMPS rows are checked against
    ``basis.rows`` of the same configuration (``check_rows``, one extra LAMMPS set-up); a difference raises
    ValueError. A basis that is not a SNAP basis, an element the basis or the model lacks, or an active set of
    another width raise ValueError naming the mismatch.

Thermostats (ASE's in :func:`mlip.otf.grade_run` -> LAMMPS here)
    ``langevin`` (friction gamma in 1/fs): ``fix langevin T T 1/gamma`` (damp in fs; the same friction force
    -m v / damp) + ``fix nve``. ``berendsen`` (taut fs): ``fix temp/berendsen T T taut`` + ``fix nve``, the same
    velocity rescaling as ASE's NVTBerendsen. The fixes are switched on after step 0 is graded (so step 0's
    forces are the model's alone). Timestep ``target.timestep`` fs. Initial velocities are ASE's
    (Maxwell-Boltzmann from ``numpy.random.default_rng(target.seed)``, then zero total momentum: the very
    velocities grade_run starts from); the Langevin noise comes from LAMMPS's generator seeded with
    ``1 + target.seed mod 2^30``, so trajectories are reproducible but not those of the ASE path.

Stop rules (grade_run's): grade at step 0 and every ``check_every`` steps (the last chunk may be shorter); stop
after the first snapshot with gamma_max > gamma_break (``"gamma_break"``, that snapshot is returned), when the
energy or positions are not finite, or LAMMPS loses atoms (``"unstable"``); else ``"completed"``. With a
``stop_file``, LAMMPS stops within ~0.2 s of the file appearing and :class:`md.engine.Stopped` propagates (as in
sampling and PCC-GCMC). Periodic cells only (MD targets are bulk cells).

Units: K, fs, eV, A.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ase import Atoms

from schemas.campaign import SelectionParams

from .otf import GradedRun, MDTarget, OTFRun

__all__ = ["GradedSnapshot", "run_graded_snap", "snap_basis"]

_COMPUTE_ID = "dg_otf_sna"
_ROW_TOLERANCE = 1e-9  # relative (to the largest entry of each column) between in-LAMMPS and basis rows
# LAMMPS errors of a run that mean the dynamics blew up (not a bad input)
_UNSTABLE_MESSAGES = ("lost atoms", "out of range atoms", "non-numeric", "neighbor list overflow")


@dataclass
class GradedSnapshot:
    """What :func:`run_graded_snap` passes to ``on_snapshot`` for every graded snapshot.

    ``atoms``: positions (input frame, unwrapped), cell, pbc, ``arrays["gamma"]``, ``info["step"]``;
    ``energy`` (eV) of the model as LAMMPS evaluated it; ``forces`` (N x 3, eV/A): the model's forces where LAMMPS
    holds them alone: at step 0 (graded before the thermostat is switched on) and at every snapshot of a
    Berendsen run; None at later Langevin snapshots (``fix langevin`` adds its friction and noise to LAMMPS's
    force array); ``temperature``: LAMMPS's kinetic temperature (K, 3N - 3 degrees of freedom); ``rows``: the
    graded rows; ``gamma``: their grades.
    """

    step: int
    atoms: Atoms
    energy: float
    forces: np.ndarray | None
    temperature: float
    rows: np.ndarray
    gamma: np.ndarray


def snap_basis(model, **settings):
    """The :class:`selection.bases.SnapBasis` with the bispectrum settings of a SNAP ``model`` (SnapModel,
    SnapFiles or ``.snapcoeff`` path): its elements, twojmax, rcutfac, rfac0, rmin0, radius and weights;
    ``settings`` are passed on (e.g. ``threads=2``). Raises ValueError for settings SnapBasis cannot hold:
    per-element radii, or flags other than compute sna/atom's defaults (switchflag 1; bnormflag, wselfallflag,
    chemflag, switchinnerflag 0). The model's bzeroflag (a shift, absorbed by the constant column) and
    quadraticflag (SnapBasis is linear) do not enter the basis."""
    from selection.bases import SnapBasis

    files = _files(model)
    if len(set(files.radii)) != 1:
        raise ValueError(f"the model's radii {dict(zip(files.elements, files.radii))} differ per element; "
                         "SnapBasis has one radius for all elements")
    flags = {key: files.parameters[key] for key in ("switchflag", "bnormflag", "wselfallflag", "chemflag",
                                                    "switchinnerflag")
             if key in files.parameters and files.parameters[key] != (1.0 if key == "switchflag" else 0.0)}
    if flags:
        raise ValueError(f"the model sets {flags}; SnapBasis uses compute sna/atom's defaults")
    return SnapBasis(files.elements, twojmax=files.twojmax, rcutfac=float(files.parameters["rcutfac"]),
                     rfac0=float(files.parameters.get("rfac0", 0.99363)),
                     rmin0=float(files.parameters.get("rmin0", 0.0)), radius=float(files.radii[0]),
                     weights=files.weights, **settings)


def _files(model):
    from .snap import SnapFiles, _files_of

    if isinstance(model, (str, os.PathLike, SnapFiles)) or hasattr(model, "files"):
        return _files_of(model)
    raise ValueError(f"model must be a SnapModel, SnapFiles or the path of a .snapcoeff, got {type(model).__name__}")


def _compute_line(basis, species: Sequence[str]) -> str:
    """The basis's ``compute sna/atom`` line with its per-type weights in the order of ``species`` (LAMMPS types)."""
    own = basis.compute_command(_COMPUTE_ID).split()
    n = len(basis.elements)
    head, radii, weights, tail = own[:7], own[7:7 + n], own[7 + n:7 + 2 * n], own[7 + 2 * n:]
    if head[3] != "sna/atom" or len(set(radii)) != 1:
        raise ValueError(f"basis compute line {' '.join(own)!r} is not a single-radius compute sna/atom")
    weight_of = dict(zip(basis.elements, weights))
    # a model element the basis does not know has no atom here (checked by the caller): any weight will do
    typed = [weight_of.get(element, "1.0") for element in species]
    return " ".join(head + [radii[0]] * len(species) + typed + tail)


def _pair_lines(files, extra_cutoff: float | None) -> list[str]:
    style, coeffs = files.pair_lines()
    if extra_cutoff is None:
        return [f"pair_style {style}", *(f"pair_coeff {line}" for line in coeffs)]
    # zero sub-style: the neighbour list of the (longer) basis cutoff, no energy
    if style.startswith("hybrid/overlay "):
        style = f"{style} zero {extra_cutoff!r}"
    else:  # plain snap: its pair_coeff line gets the sub-style name
        style = f"hybrid/overlay {style} zero {extra_cutoff!r}"
        coeffs = [f"* * snap {line[4:]}" if line.startswith("* * ") else line for line in coeffs]
    return [f"pair_style {style}", *(f"pair_coeff {line}" for line in coeffs), "pair_coeff * * zero"]


def _check_inputs(target: MDTarget, files, basis, active_set, check_every) -> None:
    from selection.bases import SnapBasis

    if not isinstance(target, MDTarget):
        raise ValueError(f"target must be an mlip.otf.MDTarget, got {type(target).__name__}")
    if not isinstance(basis, SnapBasis):
        raise ValueError(f"basis must be a selection.bases.SnapBasis (rows from compute sna/atom); got "
                         f"{type(basis).__name__} '{getattr(basis, 'name', '?')}': its rows cannot be computed "
                         "inside LAMMPS. Use snap_basis(model) and an active set built with it")
    if getattr(basis, "quadratic", False):
        raise ValueError("basis has quadratic columns; this compute sna/atom mapping supports linear SnapBasis rows")
    if active_set.size != basis.n_features:
        raise ValueError(f"the active set has m = {active_set.size} columns but the basis has {basis.n_features} "
                         f"({basis.n_bispectrum} bispectrum components{' + constant' if basis.constant else ''}); "
                         "build the active set with this basis")
    present = set(target.atoms.get_chemical_symbols())
    for owner, elements in (("model", files.elements), ("basis", basis.elements)):
        missing = sorted(present - set(elements))
        if missing:
            raise ValueError(f"target {target.name!r} has {', '.join(missing)}, not in the {owner}'s elements "
                             f"{list(elements)}")
    if isinstance(check_every, bool) or int(check_every) != check_every or check_every < 1:
        raise ValueError(f"check_every must be a positive integer, got {check_every!r}")


def _set_velocities(system, target: MDTarget) -> None:
    """ASE's initial velocities of grade_run (same rng use), written into LAMMPS (A/ps, LAMMPS frame)."""
    from ase import units
    from ase.md.velocitydistribution import Stationary, thermalize_momenta

    atoms = Atoms(target.atoms.numbers, positions=target.atoms.positions, cell=target.atoms.cell,
                  pbc=target.atoms.pbc)
    thermalize_momenta(atoms, temperature_K=target.temperature, rng=np.random.default_rng(target.seed))
    Stationary(atoms)
    velocities = atoms.get_velocities() * (1000.0 * units.fs)  # ASE units -> A/ps
    velocities = velocities @ system.frame.rotation  # v_lammps = v_input @ R
    lmp = system.lmp
    nlocal = int(lmp.extract_global("nlocal"))
    ids = np.array(lmp.numpy.extract_atom("id")[:nlocal])
    view = lmp.numpy.extract_atom("v")
    view[:nlocal] = velocities[ids - 1]


def _thermostat(system, target: MDTarget) -> None:
    """NVT fixes: fix nve + fix langevin (damp = 1/friction) or fix temp/berendsen (damp = taut)."""
    system.command("fix dg_nve all nve")
    if target.thermostat == "langevin":
        seed = 1 + int(target.seed) % (1 << 30)
        damp = 1.0 / target.friction / 1000.0  # 1/friction fs -> ps
        system.command(f"fix dg_thermostat all langevin {target.temperature!r} {target.temperature!r} "
                       f"{damp!r} {seed}")
    else:
        system.command(f"fix dg_thermostat all temp/berendsen {target.temperature!r} {target.temperature!r} "
                       f"{target.taut / 1000.0!r}")


def _step(system) -> int:
    return int(system.lmp.extract_global("ntimestep"))


def run_graded_snap(
    target: MDTarget,
    model,
    basis,
    active_set,
    *,
    gamma_select: float = SelectionParams.model_fields["gamma_select"].default,
    gamma_break: float = SelectionParams.model_fields["gamma_break"].default,
    check_every: int = 10,
    stop_file: str | os.PathLike | None = None,
    threads: int = 1,
    check_rows: bool = True,
    on_snapshot: Callable[[GradedSnapshot], None] | None = None,
) -> tuple[OTFRun, list[tuple[Atoms, np.ndarray, np.ndarray]]]:
    """MD of ``target`` with the SNAP ``model`` in LAMMPS, graded every ``check_every`` steps (see the module doc).

    ``model``: a :class:`mlip.snap.SnapModel`, :class:`mlip.snap.SnapFiles` or ``.snapcoeff`` path (its record
    gives the reference overlay). ``basis``: the :class:`selection.bases.SnapBasis` the ``active_set``
    (:func:`selection.grading.training_active_set`) was built with. Returns exactly what
    :func:`mlip.otf.grade_run` returns: the :class:`mlip.otf.OTFRun` and the graded snapshots holding atoms above
    ``gamma_select``, each (snapshot with ``arrays["gamma"]``, ``info["step"]`` and ``info["source"] =
    "otf:<target>:step-<step>"``, rows, gamma). ``threads``: OpenMP threads of LAMMPS. ``on_snapshot``: called
    with a :class:`GradedSnapshot` for every graded snapshot (energies, forces, temperature).
    """
    from md.engine import LammpsError, LammpsSystem
    from md.potentials import Potential
    from selection.maxvol import ActiveSet, grades

    from .snap import _PairLines

    started = time.perf_counter()
    files = _files(model)
    _check_inputs(target, files, basis, active_set, check_every)
    species = tuple(files.elements)
    compute = _compute_line(basis, species)
    extra = basis.cutoff + 0.1 if basis.cutoff > files.cutoff else None
    potential: Potential = _PairLines(files.coeff_path.stem, "snap", (files.coeff_path.resolve(),
                                      files.param_path.resolve()), species, (), tuple(_pair_lines(files, extra)))
    work = Atoms(target.atoms.numbers, positions=target.atoms.positions, cell=target.atoms.cell, pbc=target.atoms.pbc)
    if not np.all(work.pbc):
        raise ValueError(f"target {target.name!r}: MD needs a periodic cell (pbc {work.pbc.tolist()})")

    book = GradedRun(target, gamma_select=gamma_select, gamma_break=gamma_break, md_engine="lammps", started=started)
    width = basis.n_bispectrum
    with LammpsSystem(work, potential, threads=threads, species=species) as system:
        if stop_file is not None:
            system.watch_stop_file(Path(stop_file))
        system.command(compute)
        system.command(f"timestep {target.timestep / 1000.0!r}")  # metal units: ps
        _set_velocities(system, target)
        system.command("run 0 post no")  # step 0 before the thermostat: f holds the model's forces only
        pure_forces = True
        first = first_chunk = True
        while True:
            energy = system.potential_energy()
            positions = system.positions()
            if not (np.isfinite(energy) and np.all(np.isfinite(positions))):
                book.stopped = "unstable"
                break
            rows = system.per_atom_compute(_COMPUTE_ID, width)
            if basis.constant:
                rows = np.column_stack([rows, np.ones(len(rows))])
            snapshot = Atoms(work.numbers, positions=positions, cell=system.cell(), pbc=work.pbc)
            if first and check_rows:
                _compare_rows(rows, basis.rows(snapshot), basis)
            first = False
            gamma = grades(active_set, rows) if isinstance(active_set, ActiveSet) \
                else active_set.grades(rows, snapshot.get_chemical_symbols())  # per species
            book.label(snapshot, gamma)
            if on_snapshot is not None:
                on_snapshot(GradedSnapshot(step=book.steps_done, atoms=snapshot, energy=float(energy),
                                           forces=system.forces() if pure_forces else None,
                                           temperature=system.temperature(),
                                           rows=rows, gamma=gamma))
            if book.record(gamma):
                book.keep(snapshot, rows, gamma)
            chunk = book.next_chunk(gamma, check_every)
            if not chunk:
                break
            if first_chunk:
                _thermostat(system, target)
                pure_forces = target.thermostat != "langevin"  # fix langevin adds its forces to f
            try:
                system.command(f"run {chunk} {'pre yes' if first_chunk else 'pre no'} post no")
                first_chunk = False
            except LammpsError as error:
                if not any(word in str(error).lower() for word in _UNSTABLE_MESSAGES):
                    raise
                book.stopped = "unstable"
                try:
                    book.steps_done = _step(system)
                except Exception:  # the instance may be unusable after the error
                    pass
                break
            book.steps_done += chunk
    return book.result()


def _compare_rows(inside: np.ndarray, reference: np.ndarray, basis) -> None:
    if inside.shape != reference.shape:
        raise ValueError(f"compute sna/atom gave rows of shape {inside.shape}, the basis {reference.shape}")
    scale = np.maximum(np.abs(reference).max(axis=0), 1e-300)
    deviation = np.abs(inside - reference).max(axis=0) / scale
    bad = np.flatnonzero(deviation > _ROW_TOLERANCE)
    if bad.size:
        raise ValueError(f"compute sna/atom rows inside the MD differ from the basis's rows ({basis.describe()}) in "
                         f"columns {bad[:10].tolist()} (largest relative difference {deviation.max():.3g})")
