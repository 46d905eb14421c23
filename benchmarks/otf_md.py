"""OTF MD throughput: SNAP inside LAMMPS (mlip.snap_md.run_graded_snap) against the ASE path, on the same cell.

A tiny linear SNAP (2J = --twojmax) is fitted to EAM-Zhou labels of rattled, strained bcc W cells, the SNAP
selection basis with the model's settings (mlip.snap_md.snap_basis) gets its MaxVol active set on that
training set, and the target is a bcc W supercell (--size^3 cubic cells) with one vacancy at --temperature K,
Langevin NVT, graded every --check-every steps. Cases (same cell, model, basis, active set, thermostat):

- lammps graded:  run_graded_snap (pair_style snap + compute sna/atom in one LAMMPS instance, --steps steps)
- lammps bare:    the same LAMMPS input without grading (fix nve + fix langevin, one run of --steps steps)
- ase graded:     mlip.otf.grade_run's loop with ASE Langevin and mlip.snap.SnapCalculator (one LAMMPS
                  instance per force call, as that calculator is built) and selection.grading.grade_atoms every
                  --check-every steps, --ase-steps steps (it is slow)

Throughput is MD steps per second of the whole call (set-up and grading included); "ratio" is lammps graded /
ase graded. The machine may be shared: the cases run --repeats times, interleaved, and each keeps its best time.

    .venv/bin/python benchmarks/otf_md.py [--size 5] [--steps 1000] [--ase-steps 100] [--check-every 20]
                                          [--twojmax 4] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ase import Atoms  # noqa: E402
from ase.build import bulk  # noqa: E402
from ase.calculators.singlepoint import SinglePointCalculator  # noqa: E402

from md.engine import LammpsSystem  # noqa: E402
from md.potentials import load_potential  # noqa: E402
from mlip.otf import MDTarget  # noqa: E402
from mlip.snap import SnapCalculator, train_snap  # noqa: E402
from mlip.snap_md import _pair_lines, _set_velocities, _thermostat, run_graded_snap, snap_basis  # noqa: E402
from selection.grading import grade_atoms, training_active_set  # noqa: E402

A0 = 3.165  # EAM Zhou W


def training_set(count: int = 4, repeat: int = 3, seed: int = 0) -> list[Atoms]:
    """Rattled, slightly strained bcc W cells labelled by EAM-Zhou through LAMMPS."""
    eam = load_potential("W_zhou.eam.alloy")
    rng = np.random.default_rng(seed)
    images = []
    for k in range(count):
        atoms = bulk("W", "bcc", a=A0, cubic=True).repeat((repeat,) * 3)
        atoms.set_cell(atoms.cell[:] @ (np.eye(3) + rng.normal(0.0, 0.01, (3, 3))), scale_atoms=True)
        atoms.rattle(0.05 + 0.03 * k, seed=seed * 100 + k)
        with LammpsSystem(atoms, eam) as system:
            energy, forces = system.potential_energy(), system.forces()
        atoms.calc = SinglePointCalculator(atoms, energy=energy, forces=forces)
        images.append(atoms)
    return images


def vacancy_cell(size: int) -> Atoms:
    atoms = bulk("W", "bcc", a=A0, cubic=True).repeat((size,) * 3)
    del atoms[0]
    return atoms


def ase_graded(target: MDTarget, model, basis, active_set, check_every: int) -> tuple[int, float]:
    """grade_run's loop with SnapCalculator instead of the MTP: (steps done, wall s)."""
    from ase import units
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import Stationary, thermalize_momenta

    started = time.perf_counter()
    atoms = Atoms(target.atoms.numbers, positions=target.atoms.positions, cell=target.atoms.cell, pbc=target.atoms.pbc)
    atoms.calc = SnapCalculator(model)
    rng = np.random.default_rng(target.seed)
    thermalize_momenta(atoms, temperature_K=target.temperature, rng=rng)
    Stationary(atoms)
    dynamics = Langevin(atoms, target.timestep * units.fs, temperature_K=target.temperature,
                        friction=target.friction / units.fs, fixcm=False, rng=rng)
    steps = 0
    while True:
        atoms.get_potential_energy()
        grade_atoms(basis, active_set, atoms)
        if steps >= target.steps:
            break
        chunk = min(check_every, target.steps - steps)
        dynamics.run(chunk)
        steps += chunk
    return steps, time.perf_counter() - started


def lammps_bare(target: MDTarget, model) -> tuple[int, float]:
    """The same LAMMPS MD without compute sna/atom and grading: (steps, wall s)."""
    from mlip.snap import _PairLines

    started = time.perf_counter()
    files = model.files()
    potential = _PairLines(files.coeff_path.stem, "snap", (), files.elements, (), tuple(_pair_lines(files, None)))
    atoms = Atoms(target.atoms.numbers, positions=target.atoms.positions, cell=target.atoms.cell, pbc=target.atoms.pbc)
    with LammpsSystem(atoms, potential, species=files.elements) as system:
        system.command(f"timestep {target.timestep / 1000.0!r}")
        _set_velocities(system, target)
        _thermostat(system, target)
        system.command(f"run {target.steps} post no")
        system.potential_energy()
    return target.steps, time.perf_counter() - started


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=5, help="cubic bcc cells per edge (5: 249 atoms with the vacancy)")
    parser.add_argument("--steps", type=int, default=1000, help="MD steps of the LAMMPS cases")
    parser.add_argument("--ase-steps", type=int, default=100, help="MD steps of the ASE case")
    parser.add_argument("--check-every", type=int, default=20)
    parser.add_argument("--twojmax", type=int, default=4)
    parser.add_argument("--temperature", type=float, default=300.0)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="dg-otf-md-") as tmp:
        train = training_set()
        model = train_snap(train, workdir=tmp, twojmax=args.twojmax)
        basis = snap_basis(model)
        active_set = training_active_set(basis, train)
        cell = vacancy_cell(args.size)
        lammps_target = MDTarget(cell, args.temperature, args.steps, name="vacancy", seed=1, timestep=2.0)
        ase_target = MDTarget(cell, args.temperature, args.ase_steps, name="vacancy", seed=1, timestep=2.0)

        def graded():
            run, _ = run_graded_snap(lammps_target, model, basis, active_set, gamma_select=2.0, gamma_break=1e300,
                                     check_every=args.check_every)
            return run.steps_done, run.wall_time_s

        cases = (("lammps graded (run_graded_snap)", graded),
                 ("lammps bare (no grading)", lambda: lammps_bare(lammps_target, model)),
                 ("ase graded (SnapCalculator)",
                  lambda: ase_graded(ase_target, model, basis, active_set, args.check_every)))
        results: dict[str, list[tuple[int, float]]] = {name: [] for name, _ in cases}
        for _ in range(args.repeats):  # interleaved: a busy spell of the machine hits every case alike
            for name, function in cases:
                results[name].append(function())
        rows = []
        for name, _ in cases:
            steps, wall = min(results[name], key=lambda r: r[1])
            rows.append({"case": name, "steps": steps, "wall_s": wall, "steps_per_s": steps / wall})
    ratio = rows[0]["steps_per_s"] / rows[2]["steps_per_s"]
    overhead = rows[1]["steps_per_s"] / rows[0]["steps_per_s"] - 1.0
    print(f"cell: {len(cell)} atoms (bcc W {args.size}^3 cubic cells, one vacancy), linear SNAP 2J={args.twojmax} "
          f"({basis.n_features} basis columns), {args.temperature:g} K Langevin, graded every {args.check_every} "
          f"steps, best of {args.repeats}")
    print(f"{'case':34s} {'steps':>6s} {'wall s':>8s} {'steps/s':>9s}")
    for row in rows:
        print(f"{row['case']:34s} {row['steps']:6d} {row['wall_s']:8.3f} {row['steps_per_s']:9.1f}")
    print(f"ratio lammps graded / ase graded: {ratio:.1f}")
    print(f"grading overhead in LAMMPS (bare / graded - 1): {100 * overhead:.1f} %")
    report = {"n_atoms": len(cell), "twojmax": args.twojmax, "check_every": args.check_every, "rows": rows,
              "ratio": ratio, "grading_overhead": overhead}
    if args.json:
        args.json.write_text(json.dumps(report, indent=1) + "\n")
    return report


if __name__ == "__main__":
    main()
