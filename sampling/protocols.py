"""Loading protocols that stream MD snapshots with their CNA classification."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator, Sequence

import numpy as np
from ase import Atoms

from .defects import cna_cutoff, count_structure_types, defect_mask
from .lammps_engine import LammpsSystem
from .potentials import Potential, check_element

__all__ = ["Snapshot", "anneal", "anneal_snapshot_count", "derived_seed"]

_NOSE_HOOVER_TDAMP_STEPS = 100
_NOSE_HOOVER_PDAMP_STEPS = 1000


@dataclass
class Snapshot:
    """One configuration of a protocol.

    ``atoms.arrays["structure_type"]`` is the CNA value per atom (input order);
    ``atoms.info`` has ``energy`` (eV, total potential energy), ``temperature``
    (K), ``stress`` (6 Voigt, eV/A^3, ASE sign, virial only), ``step`` and
    ``protocol``. ``defect_indices`` are the atoms that are not the perfect lattice.
    """

    index: int
    step: int
    time_ps: float
    atoms: Atoms
    defect_indices: np.ndarray
    counts: dict[str, int] = field(default_factory=dict)


def anneal_snapshot_count(temperatures: Sequence[float], steps_per_temperature: int, snapshot_every: int) -> int:
    """Snapshots :func:`anneal` yields: one after minimisation, then one every ``snapshot_every`` MD steps."""
    _validate_schedule(temperatures, steps_per_temperature, snapshot_every)
    return 1 + (len(temperatures) * int(steps_per_temperature)) // int(snapshot_every)


def derived_seed(seed: int, index: int) -> int:
    """A LAMMPS velocity seed (1 .. 2^31-2) for stage ``index`` of a run seeded with ``seed``."""
    state = np.random.SeedSequence([int(seed), int(index)]).generate_state(1)[0]
    return int(state) % (2**31 - 2) + 1


def _validate_schedule(temperatures: Sequence[float], steps_per_temperature: int, snapshot_every: int) -> None:
    if len(temperatures) == 0:
        raise ValueError("temperatures is empty; give at least one temperature in K, e.g. [300.0]")
    bad = [t for t in temperatures if not float(t) > 0]
    if bad:
        raise ValueError(f"temperatures must be > 0 K (use a minimisation for 0 K), got {bad}")
    for name, value in (("steps_per_temperature", steps_per_temperature), ("snapshot_every", snapshot_every)):
        if isinstance(value, bool) or int(value) != value or value <= 0:
            raise ValueError(f"{name} must be a positive integer number of MD steps, got {value!r}")


def anneal(
    atoms: Atoms,
    potential: Potential,
    *,
    element: str,
    lattice: str,
    lattice_constant: float,
    temperatures: Sequence[float],
    steps_per_temperature: int,
    snapshot_every: int,
    timestep_fs: float = 1.0,
    ensemble: str = "nvt",
    seed: int = 12345,
    threads: int = 1,
) -> Iterator[Snapshot]:
    """Minimise, then run Nose-Hoover MD at each temperature in turn, yielding snapshots.

    Snapshot 0 follows the minimisation (positions only for nvt; positions and
    box at zero pressure for npt); then one every ``snapshot_every`` MD steps,
    counted over the whole run, :func:`anneal_snapshot_count` in total.
    Velocities are drawn anew at each temperature from ``derived_seed(seed, i)``
    (``loop geom``: independent of atom order), so the same inputs and thread
    count give identical snapshots. Closing the generator early frees LAMMPS.
    """
    _validate_schedule(temperatures, steps_per_temperature, snapshot_every)
    if not timestep_fs > 0:
        raise ValueError(f"timestep_fs must be > 0, got {timestep_fs!r}")
    if ensemble not in ("nvt", "npt"):
        raise ValueError(f"ensemble must be 'nvt' or 'npt', got {ensemble!r}")
    if ensemble == "npt" and not np.any(atoms.pbc):
        raise ValueError("ensemble 'npt' needs at least one periodic direction; use 'nvt' for clusters")
    check_element(potential, element)
    cutoff = cna_cutoff(lattice, lattice_constant)

    timestep_ps = timestep_fs / 1000.0
    steps_per_temperature, snapshot_every = int(steps_per_temperature), int(snapshot_every)
    system = LammpsSystem(atoms, potential, threads=threads)
    try:
        coupled = [axis for axis, periodic in zip("xyz", atoms.pbc) if periodic]
        if system.triclinic and all(atoms.pbc):
            coupled += ["xy", "xz", "yz"]
        pdamp = _NOSE_HOOVER_PDAMP_STEPS * timestep_ps
        barostat = " ".join(f"{dof} 0.0 0.0 {pdamp!r}" for dof in coupled)
        system.commands(
            [
                f"compute structure_type all cna/atom {cutoff!r}",
                f"timestep {timestep_ps!r}",
                "min_style cg",
            ]
        )
        if ensemble == "npt":
            relaxed = " ".join(f"{dof} 0.0" for dof in coupled)
            system.command(f"fix zero_pressure all box/relax {relaxed} vmax 0.001")
        system.command("minimize 0.0 1e-6 10000 100000")
        if ensemble == "npt":
            system.command("unfix zero_pressure")
        system.command("reset_timestep 0")

        index = 0
        yield _snapshot(system, index, 0, timestep_ps, lattice)
        step = 0
        for stage, temperature in enumerate(temperatures):
            temperature = float(temperature)
            tdamp = _NOSE_HOOVER_TDAMP_STEPS * timestep_ps
            thermostat = f"temp {temperature!r} {temperature!r} {tdamp!r}"
            system.commands(
                [
                    f"velocity all create {temperature!r} {derived_seed(seed, stage)} "
                    "mom yes rot no dist gaussian loop geom",
                    f"fix integrate all nvt {thermostat}"
                    if ensemble == "nvt"
                    else f"fix integrate all npt {thermostat} {barostat}",
                ]
            )
            stage_end = step + steps_per_temperature
            while step < stage_end:
                next_snapshot = (step // snapshot_every + 1) * snapshot_every
                target = min(next_snapshot, stage_end)
                system.run(target - step)
                step = target
                if step % snapshot_every == 0:
                    index += 1
                    yield _snapshot(system, index, step, timestep_ps, lattice)
            system.command("unfix integrate")
    finally:
        system.close()


def _snapshot(system: LammpsSystem, index: int, step: int, timestep_ps: float, lattice: str) -> Snapshot:
    structure_type = np.rint(system.per_atom_compute("structure_type")).astype(np.int32)
    atoms = system.get_atoms()
    atoms.arrays["structure_type"] = structure_type
    atoms.info.update(
        energy=system.potential_energy(),
        temperature=system.temperature(),
        stress=system.stress(),
        step=step,
        protocol="anneal",
    )
    return Snapshot(
        index=index,
        step=step,
        time_ps=step * timestep_ps,
        atoms=atoms,
        defect_indices=np.flatnonzero(defect_mask(structure_type, lattice)),
        counts=count_structure_types(structure_type),
    )
