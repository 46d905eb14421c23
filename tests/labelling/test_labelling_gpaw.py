"""GPAW backend against GPAW itself: same numbers as a direct calculation, forces = -dE/dx."""

from __future__ import annotations

import time

import gpaw  # built from source by scripts/setup.sh (scripts/install_gpaw.sh)
import numpy as np
import pytest
from ase.build import bulk

from labelling import LabelError, classify_failure, label, quick
from labelling.backends import GpawBackend


def w2():
    return bulk("W", "bcc", a=3.165, cubic=True)


def test_gpaw_label_equals_direct_gpaw(tmp_path):
    """The label of 2-atom bcc W (PW 300 eV, 4x4x4 MP, FD 0.1 eV, SCF 1e-6 eV) = direct GPAW to 1e-6 eV.

    The quick profile's setups are the fewest-valence ones: W.6 (5d4 6s2), given to GPAW directly here."""
    from gpaw import GPAW, PW, FermiDirac

    settings = quick("gpaw", ecut=300.0, kpts=(4, 4, 4), scf_energy_tol=1e-6, sigma=0.1)
    start = time.perf_counter()
    result = label(w2(), settings, tmp_path / "job")
    label_time = time.perf_counter() - start

    atoms = w2()
    atoms.calc = GPAW(
        mode=PW(300.0), xc="PBE", kpts={"size": (4, 4, 4), "gamma": False}, occupations=FermiDirac(0.1),
        convergence={"energy": {"name": "energy", "tol": 1e-6, "relative": False}}, txt=str(tmp_path / "direct.txt"),
        setups={"W": "6"},
    )
    energy_zero = atoms.get_potential_energy()
    free_energy = atoms.calc.get_property("free_energy", atoms)
    forces = atoms.get_forces()
    stress = atoms.get_stress()

    assert result.engine == "gpaw" and result.engine_version == gpaw.__version__
    assert result.converged and result.kpts == (4, 4, 4)
    assert abs(result.energy - free_energy) < 1e-6, (result.energy, free_energy)
    assert abs(result.energy_zero - energy_zero) < 1e-6
    np.testing.assert_allclose(result.forces, forces, atol=1e-4)
    np.testing.assert_allclose(result.stress, stress, atol=1e-5)
    assert result.energy / 2 == pytest.approx(-11.5, abs=0.5)  # GPAW's reference energies: ~ -11.5 eV/atom
    print(f"label {result.energy:.6f} eV (zero-width {result.energy_zero:.6f}), direct {free_energy:.6f} eV, "
          f"label wall {label_time:.1f} s")


def _fd_check(atoms, settings, tmp_path, coords, h=0.01):
    result = label(atoms, settings, tmp_path / "ref")
    rows = []
    for index, axis in coords:
        energies = []
        for sign in (+1, -1):
            moved = atoms.copy()
            moved.positions[index, axis] += sign * h
            energies.append(label(moved, settings, tmp_path / f"fd{index}{axis}{sign:+d}").energy)
        fd = -(energies[0] - energies[1]) / (2 * h)
        rows.append((result.forces[index, axis], fd))
    return result, rows


def test_gpaw_forces_match_finite_differences_small(tmp_path):
    """Default-size check: displaced 2-atom bcc W (250 eV, 3x3x3 k), one coordinate, within 2 %."""
    atoms = w2()
    atoms.positions[0] += (0.08, -0.05, 0.03)
    settings = quick("gpaw", ecut=250.0, kpts=(3, 3, 3), scf_energy_tol=1e-7)
    start = time.perf_counter()
    result, rows = _fd_check(atoms, settings, tmp_path, [(0, 0)])
    print("analytic vs FD:", rows, f"{time.perf_counter() - start:.1f} s")
    for analytic, fd in rows:
        assert abs(analytic) > 0.1
        assert abs(analytic - fd) <= 0.02 * abs(fd), (analytic, fd)
    np.testing.assert_allclose(result.forces.sum(axis=0), 0.0, atol=2e-3)


@pytest.mark.slow
def test_gpaw_forces_match_finite_differences_16_atoms(tmp_path):
    """The issue's check: displaced 16-atom W (2x2x2 conventional, 300 eV, 2x2x2 k) vs central FD, 2 %."""
    atoms = w2() * (2, 2, 2)
    rng = np.random.default_rng(7)
    atoms.positions += rng.normal(0.0, 0.05, atoms.positions.shape)
    settings = quick("gpaw", ecut=300.0, kpts=(2, 2, 2), scf_energy_tol=1e-7)
    start = time.perf_counter()
    _result, rows = _fd_check(atoms, settings, tmp_path, [(0, 0), (5, 1), (11, 2)])
    print("analytic vs FD:", rows, f"{time.perf_counter() - start:.1f} s")
    for analytic, fd in rows:
        assert abs(analytic - fd) <= 0.02 * abs(fd) + 2e-3, (analytic, fd)


def test_gpaw_scf_failure_is_classified_from_real_output(tmp_path):
    """GPAW stopped after 3 SCF steps: KohnShamConvergenceError -> scf_not_converged, no result."""
    settings = quick("gpaw", ecut=250.0, kpts=(2, 2, 2), max_scf_steps=3)
    with pytest.raises(LabelError) as info:
        label(w2(), settings, tmp_path / "job")
    assert info.value.failure == "scf_not_converged"
    assert info.value.outcome.returncode == 3
    assert classify_failure(tmp_path / "job") == "scf_not_converged"
    assert "KohnShamConvergenceError" in (tmp_path / "job" / "run.log").read_text()
    assert not (tmp_path / "job" / "result.json").exists()


def test_gpaw_result_reused_not_rerun(tmp_path):
    settings = quick("gpaw", ecut=250.0, kpts=(2, 2, 2))
    first = label(w2(), settings, tmp_path / "job")

    class Refuse:
        def run(self, *args, **kwargs):
            raise AssertionError("must not run again")

    again = label(w2(), settings, tmp_path / "job", launcher=Refuse())
    assert again.energy == first.energy
    backend = GpawBackend()
    assert backend.parse(tmp_path / "job").settings_hash == first.settings_hash
