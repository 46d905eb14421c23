"""OTF MD with SNAP inside LAMMPS (mlip.snap_md.run_graded_snap): grade_run's contract, gamma equal to the
selection basis's, energies and forces equal to mlip.snap's evaluation, the gamma_break stop, a thermostatted
temperature, a reference (ZBL) model with a longer basis cutoff in a triclinic cell, bad input, and the
benchmark with tiny arguments."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.calculators.singlepoint import SinglePointCalculator
from ase.md.velocitydistribution import Stationary, thermalize_momenta

from md.engine import LammpsSystem, Stopped
from md.potentials import load_potential
from mlip import MDTarget, SnapReference, evaluate_snap, train_snap
from mlip.snap_md import GradedSnapshot, run_graded_snap, snap_basis
from selection.bases import SnapBasis
from selection.grading import grade_atoms, training_active_set

ROOT = Path(__file__).resolve().parents[2]
A0 = 3.165  # EAM Zhou W


def _labelled(count: int = 4, seed: int = 0) -> list[Atoms]:
    """Rattled, slightly strained 54-atom bcc W cells labelled by EAM-Zhou through LAMMPS."""
    eam = load_potential("W_zhou.eam.alloy")
    rng = np.random.default_rng(seed)
    images = []
    for k in range(count):
        atoms = bulk("W", "bcc", a=A0, cubic=True).repeat((3, 3, 3))
        atoms.set_cell(atoms.cell[:] @ (np.eye(3) + rng.normal(0.0, 0.01, (3, 3))), scale_atoms=True)
        atoms.rattle(0.05 + 0.03 * k, seed=seed * 100 + k)
        with LammpsSystem(atoms, eam) as system:
            energy, forces = system.potential_energy(), system.forces()
        atoms.calc = SinglePointCalculator(atoms, energy=energy, forces=forces)
        images.append(atoms)
    return images


def _vacancy_cell() -> Atoms:
    atoms = bulk("W", "bcc", a=A0, cubic=True).repeat((5, 5, 5))
    del atoms[0]
    return atoms  # 249 atoms


def _dumbbell_cell() -> Atoms:
    """A <111> dumbbell: atom 0 and an added atom split symmetrically about its site (251 atoms)."""
    atoms = bulk("W", "bcc", a=A0, cubic=True).repeat((5, 5, 5))
    site = atoms.positions[0].copy()
    shift = np.full(3, 0.7)
    atoms.positions[0] = site + shift
    atoms += Atoms("W", positions=[site - shift])
    return atoms


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    train = _labelled()
    model = train_snap(train, workdir=tmp_path_factory.mktemp("snap"), twojmax=4)
    basis = snap_basis(model)
    return train, model, basis, training_active_set(basis, train)


@pytest.fixture(scope="module")
def vacancy_run(setup):
    _, model, basis, active_set = setup
    target = MDTarget(_vacancy_cell(), 300.0, 100, name="vacancy", seed=1, timestep=2.0)
    seen: list[GradedSnapshot] = []
    run, collected = run_graded_snap(target, model, basis, active_set, gamma_select=2.0, gamma_break=10.0,
                                     check_every=20, on_snapshot=seen.append)
    return target, run, collected, seen


def test_basis_has_the_model_settings(setup):
    _, model, basis, _ = setup
    files = model.files()
    assert isinstance(basis, SnapBasis)
    assert (basis.elements, basis.twojmax, basis.rcutfac, basis.radius) == (
        ("W",), 4, float(files.parameters["rcutfac"]), files.radii[0])
    assert basis.n_features == 15  # 14 bispectrum components of 2J = 4 + the constant


def test_run_follows_grade_runs_contract(vacancy_run):
    target, run, collected, seen = vacancy_run
    assert run.target == "vacancy" and run.steps_requested == 100
    assert run.stopped == "completed" and run.completed and run.steps_done == 100
    assert run.snapshot_steps == [0, 20, 40, 60, 80, 100] == [s.step for s in seen]
    assert run.gamma_max == [float(s.gamma.max()) for s in seen]
    assert run.gamma_histogram["n"] == 6 * len(target.atoms)
    assert run.gamma_histogram["gamma_max"] == max(run.gamma_max)
    above = [s for s in seen if s.gamma.max() > 2.0]
    assert 0 < len(above) < len(seen)  # measured: gamma_max 1.85 at step 0, up to 2.64 later
    assert [snap.info["step"] for snap, _, _ in collected] == [s.step for s in above]
    assert run.n_candidates == sum(int((s.gamma > 2.0).sum()) for s in above)
    for snapshot, rows, gamma in collected:
        step = snapshot.info["step"]
        assert snapshot.info["source"] == f"otf:vacancy:step-{step}"
        assert np.array_equal(snapshot.arrays["gamma"], gamma)
        assert rows.shape == (len(target.atoms), 15) and np.all(rows[:, -1] == 1.0)
        assert snapshot.calc is None and np.array_equal(snapshot.numbers, target.atoms.numbers)


def test_gamma_equals_the_basis_grade_of_every_snapshot(setup, vacancy_run):
    _, _, basis, active_set = setup
    _, _, collected, seen = vacancy_run
    worst = 0.0
    for snap in seen:
        rows, gamma = grade_atoms(basis, active_set, snap.atoms)
        assert np.allclose(snap.rows, rows, rtol=1e-9, atol=1e-12)
        worst = max(worst, float(np.max(np.abs(snap.gamma - gamma) / gamma)))
    assert worst < 1e-6, worst  # measured: 1e-14
    for snapshot, rows, gamma in collected:
        again_rows, again = grade_atoms(basis, active_set, snapshot)
        assert np.allclose(rows, again_rows, rtol=1e-9, atol=1e-12)
        assert np.allclose(gamma, again, rtol=1e-6, atol=0)


def test_step_zero_energy_forces_and_velocities(setup, vacancy_run):
    _, model, _, _ = setup
    target, _, _, seen = vacancy_run
    first = seen[0]
    energies, forces = evaluate_snap(model, [target.atoms])
    assert abs(energies[0] * len(target.atoms) - first.energy) < 1e-8
    assert np.abs(forces[0] - first.forces).max() < 1e-8
    assert np.allclose(first.atoms.positions, target.atoms.positions, atol=1e-12)
    assert all(s.forces is None for s in seen[1:])  # fix langevin's forces are in LAMMPS's f after step 0
    # the initial velocities are grade_run's: ASE's Maxwell-Boltzmann of target.seed, zero momentum
    atoms = target.atoms.copy()
    thermalize_momenta(atoms, temperature_K=target.temperature, rng=np.random.default_rng(target.seed))
    Stationary(atoms)
    n = len(atoms)
    # (LAMMPS's metal-unit boltz and mvv2e differ from ASE's CODATA 2018 constants by ~1.5e-6 relative)
    assert first.temperature == pytest.approx(atoms.get_temperature() * 3 * n / (3 * n - 3), rel=1e-5)


def test_langevin_keeps_the_target_temperature(vacancy_run):
    target, _, _, seen = vacancy_run
    last = np.mean([s.temperature for s in seen[-3:]])  # steps 60-100, 249 atoms; measured ~320 K
    assert abs(last - target.temperature) < 0.4 * target.temperature, [s.temperature for s in seen]
    assert np.all(np.isfinite([s.energy for s in seen]))


def test_an_interstitial_breaks_the_run_at_step_zero(setup):
    _, model, basis, active_set = setup
    cell = _dumbbell_cell()
    _, gamma = grade_atoms(basis, active_set, cell)
    assert gamma.max() > 10.0  # measured 13.7 against the bulk-only training set
    run, collected = run_graded_snap(MDTarget(cell, 300.0, 100, name="dumbbell", timestep=2.0), model, basis,
                                     active_set, gamma_select=2.0, gamma_break=10.0, check_every=20)
    assert run.stopped == "gamma_break" and not run.completed
    assert run.steps_done == 0 and run.snapshot_steps == [0]
    assert run.gamma_max[0] == pytest.approx(gamma.max(), rel=1e-9)
    assert len(collected) == 1 and collected[0][0].info["source"] == "otf:dumbbell:step-0"
    assert run.n_candidates == int((gamma > 2.0).sum())
    # a gamma_break above it lets the same run go on
    run, _ = run_graded_snap(MDTarget(cell, 300.0, 20, name="dumbbell", timestep=2.0), model, basis, active_set,
                             gamma_select=2.0, gamma_break=1e6, check_every=20)
    assert run.stopped == "completed" and run.steps_done == 20


def test_a_blown_up_run_stops_as_unstable(setup):
    _, model, basis, active_set = setup
    cell = bulk("W", "bcc", a=A0, cubic=True).repeat((4, 4, 4))
    cell.positions[1] = cell.positions[0] + [0.6, 0.0, 0.0]  # 0.6 A apart, 10^6 K, 20 fs steps: LAMMPS loses atoms
    run, _ = run_graded_snap(MDTarget(cell, 1e6, 100, timestep=20.0, name="boom"), model, basis, active_set,
                             gamma_select=2.0, gamma_break=1e300, check_every=10)
    assert run.stopped == "unstable" and run.snapshot_steps == [0] and run.steps_done <= 10


def test_reference_model_longer_basis_cutoff_triclinic_berendsen(tmp_path):
    train = _labelled(seed=1)
    model = train_snap(train, workdir=tmp_path, twojmax=4, rcutfac=4.6, reference=SnapReference.zbl(["W"], 4.0, 4.8))
    assert model.pair_style == "hybrid/overlay zbl 4.0 4.8 snap"
    basis = SnapBasis("W", twojmax=4, rcutfac=5.2)  # 5.2 A > the model's 4.6 A: a zero sub-style is overlaid
    active_set = training_active_set(basis, train)
    cell = bulk("W", "bcc", a=A0).repeat((6, 6, 6))  # primitive cell: triclinic in LAMMPS
    del cell[5]
    cell.rattle(0.02, seed=3)
    seen: list[GradedSnapshot] = []
    run, _ = run_graded_snap(MDTarget(cell, 600.0, 40, name="tri", thermostat="berendsen", taut=50.0, seed=4,
                                      timestep=2.0),
                             model, basis, active_set, gamma_select=2.0, gamma_break=1e6, check_every=20,
                             on_snapshot=seen.append)
    assert run.stopped == "completed" and run.snapshot_steps == [0, 20, 40]
    energies, forces = evaluate_snap(model, [s.atoms for s in seen])
    for snap, energy, force in zip(seen, energies, forces):
        assert abs(energy * len(cell) - snap.energy) < 1e-8
        assert np.abs(force - snap.forces).max() < 1e-8  # Berendsen leaves LAMMPS's forces alone
        _, gamma = grade_atoms(basis, active_set, snap.atoms)
        assert np.allclose(snap.gamma, gamma, rtol=1e-6, atol=0)


def test_plain_snap_with_a_longer_basis_cutoff(setup):
    train, model, _, _ = setup
    basis = SnapBasis("W", twojmax=4, rcutfac=5.2)  # 5.2 A > 4.73 A: pair_style hybrid/overlay snap zero 5.3
    active_set = training_active_set(basis, train)
    seen: list[GradedSnapshot] = []
    run, _ = run_graded_snap(MDTarget(_vacancy_cell(), 300.0, 20, timestep=2.0), model, basis, active_set,
                             gamma_break=1e6, check_every=20, on_snapshot=seen.append)
    assert run.completed and len(seen) == 2
    energies, forces = evaluate_snap(model, [seen[0].atoms])
    assert abs(energies[0] * len(seen[0].atoms) - seen[0].energy) < 1e-8
    assert np.abs(forces[0] - seen[0].forces).max() < 1e-8
    for snap in seen:
        assert np.allclose(snap.gamma, grade_atoms(basis, active_set, snap.atoms)[1], rtol=1e-6, atol=0)


def test_quadratic_model_is_run_and_graded_on_its_linear_basis(setup, tmp_path):
    train, _, _, _ = setup
    model = train_snap(train, workdir=tmp_path, twojmax=4, quadratic=True, ridge=1e-6)
    assert model.files().quadratic
    basis = snap_basis(model)  # linear rows (SnapBasis has no quadratic columns)
    active_set = training_active_set(basis, train)
    seen: list[GradedSnapshot] = []
    run, _ = run_graded_snap(MDTarget(_vacancy_cell(), 300.0, 20, name="quadratic", timestep=2.0), model, basis,
                             active_set, gamma_break=1e6, check_every=20, on_snapshot=seen.append)
    assert run.completed and run.snapshot_steps == [0, 20]
    energies, forces = evaluate_snap(model, [seen[0].atoms])
    assert abs(energies[0] * len(seen[0].atoms) - seen[0].energy) < 1e-8
    assert np.abs(forces[0] - seen[0].forces).max() < 1e-8
    for snap in seen:
        assert np.allclose(snap.gamma, grade_atoms(basis, active_set, snap.atoms)[1], rtol=1e-6, atol=0)


def test_bad_input_names_the_mismatch(setup, tmp_path):
    _, model, basis, active_set = setup
    target = MDTarget(_vacancy_cell(), 300.0, 10, timestep=2.0)
    wider = SnapBasis("W", twojmax=6)
    with pytest.raises(ValueError, match=r"active set has m = 15 columns but the basis has 31"):
        run_graded_snap(target, model, wider, active_set)
    mixed = _vacancy_cell()
    mixed[1].symbol = "Mo"
    with pytest.raises(ValueError, match=r"has Mo, not in the model's elements \['W'\]"):
        run_graded_snap(MDTarget(mixed, 300.0, 10, timestep=2.0), model, basis, active_set)
    with pytest.raises(ValueError, match="check_every must be a positive integer"):
        run_graded_snap(target, model, basis, active_set, check_every=0)
    with pytest.raises(ValueError, match=r"basis must be a selection\.bases\.SnapBasis"):
        run_graded_snap(target, model, "snap", active_set)
    stop = tmp_path / "stop"
    stop.touch()
    with pytest.raises(Stopped):
        run_graded_snap(target, model, basis, active_set, stop_file=stop)


def test_benchmark_runs_with_tiny_arguments(tmp_path):
    figures = tmp_path / "otf_md.json"
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "otf_md.py"), "--size", "3", "--steps", "40",
                           "--ase-steps", "10", "--check-every", "10", "--repeats", "1", "--json", str(figures)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "ratio lammps graded / ase graded:" in done.stdout, done.stdout
    report = json.loads(figures.read_text())
    assert report["n_atoms"] == 53
    assert [row["steps"] for row in report["rows"]] == [40, 40, 10]
    assert all(row["steps_per_s"] > 0 for row in report["rows"]) and report["ratio"] > 0
