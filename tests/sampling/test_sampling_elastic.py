"""Elastic constants and point-defect energies of bundled potentials (sampling.properties)."""

import numpy as np
import pytest
from ase.calculators.eam import EAM

from md.potentials import load_potential
from sampling.builders import bulk_crystal
from sampling.properties import (
    EV_PER_A3_TO_GPA,
    characterize,
    dumbbell_111,
    elastic_constants,
    interstitial_formation_energy,
    vacancy_formation_energy,
)

A0_W = 3.1648494554  # relax_lattice_constant(W_zhou.eam.alloy, W, bcc)


def test_w_zhou_elastic_constants_match_the_issue(w_zhou):
    c = elastic_constants(w_zhou, "W", "bcc")
    assert c["a"] == pytest.approx(A0_W, abs=1e-6)
    # what this file gives (LAMMPS here, ase.calculators.eam below): 522.5, 204.2, 160.8 GPa
    assert c["C11"] == pytest.approx(522.5, abs=0.5)
    assert c["C12"] == pytest.approx(204.2, abs=0.5)
    assert c["C44"] == pytest.approx(160.8, abs=0.5)
    # the issue's expectation (Zhou et al. 2004, W): within 5 % of 523, 204, 161 GPa
    for key, expected in (("C11", 523.0), ("C12", 204.0), ("C44", 161.0)):
        assert c[key] == pytest.approx(expected, rel=0.05)
    assert c["bulk_modulus"] == pytest.approx((c["C11"] + 2 * c["C12"]) / 3)
    assert c["bulk_modulus"] == pytest.approx(310.3, abs=0.5)
    assert c["C_prime"] == pytest.approx((c["C11"] - c["C12"]) / 2)


def test_w_zhou_elastic_constants_agree_with_ase_eam(w_zhou):
    """Independent check: ASE's own EAM code on the same file, unrelaxed 2x2x2 cell, same strains."""
    calc = EAM(potential=str(w_zhou.files[0]))
    reference = bulk_crystal("W", "bcc", A0_W, (2, 2, 2))
    strain = 1e-3

    def stress(epsilon):
        atoms = reference.copy()
        atoms.set_cell(reference.cell[:] @ (np.eye(3) + epsilon), scale_atoms=True)
        atoms.calc = calc
        return atoms.get_stress()

    e_xx, e_xy = np.zeros((3, 3)), np.zeros((3, 3))
    e_xx[0, 0] = strain
    e_xy[0, 1] = e_xy[1, 0] = strain / 2
    d_normal = (stress(e_xx) - stress(-e_xx)) / (2 * strain) * EV_PER_A3_TO_GPA
    d_shear = (stress(e_xy) - stress(-e_xy)) / (2 * strain) * EV_PER_A3_TO_GPA
    lammps = elastic_constants(w_zhou, "W", "bcc", a=A0_W)
    assert d_normal[0] == pytest.approx(lammps["C11"], abs=0.2)
    assert d_normal[1] == pytest.approx(lammps["C12"], abs=0.2)
    assert d_shear[5] == pytest.approx(lammps["C44"], abs=0.2)


def test_fcc_elastic_constants_are_cubic_and_stable():
    cu = load_potential("Cu_zhou.eam.alloy")
    c = elastic_constants(cu, "Cu", "fcc", strain=5e-4)
    assert c["C11"] == pytest.approx(180.4, abs=0.5)
    assert c["C12"] == pytest.approx(117.1, abs=0.5)
    assert c["C44"] == pytest.approx(70.7, abs=0.5)
    assert c["C11"] > c["C12"] > 0 and c["C44"] > 0  # Born stability of a cubic crystal


def test_w_zhou_vacancy_formation_energy(w_zhou):
    e_vac = vacancy_formation_energy(w_zhou, "W", "bcc", a=A0_W, size=5)
    # 250-atom cell, constant volume, relaxed; 3.575 eV at 686 atoms (size 7)
    assert e_vac == pytest.approx(3.576, abs=0.005)


def test_w_zhou_111_dumbbell_formation_energy(w_zhou):
    perfect = bulk_crystal("W", "bcc", A0_W, (3, 3, 3))
    dumbbell = dumbbell_111(perfect, 0, A0_W)
    assert len(dumbbell) == len(perfect) + 1
    pair = dumbbell.positions[-1] - dumbbell.positions[0]
    assert np.allclose(pair / np.linalg.norm(pair), np.ones(3) / np.sqrt(3))
    e_sia = interstitial_formation_energy(w_zhou, "W", "bcc", a=A0_W, size=5)
    # 251 atoms; 10.58 eV at size 7. Note: with this file the <110> dumbbell is lower (9.77 eV at
    # size 5), unlike DFT where <111> is the ground state.
    assert e_sia == pytest.approx(10.642, abs=0.01)


def test_characterize_w_zhou(w_zhou):
    report = characterize(w_zhou, "W", "bcc")
    assert set(report) == {"potential", "element", "lattice", "a", "E_coh", "C11", "C12", "C44",
                           "bulk_modulus", "E_vac"}
    assert report["potential"] == "W_zhou.eam.alloy"
    assert report["a"] == pytest.approx(3.1648, abs=1e-3)
    assert report["E_coh"] == pytest.approx(-8.760, abs=1e-3)  # this file; Zhou's table says -8.90
    assert report["C11"] == pytest.approx(522.5, abs=0.5)
    assert report["E_vac"] == pytest.approx(3.576, abs=0.005)
    assert all(isinstance(v, (str, float)) for v in report.values())


def test_property_arguments_are_checked(w_zhou):
    with pytest.raises(ValueError, match="strain"):
        elastic_constants(w_zhou, "W", "bcc", a=A0_W, strain=0.2)
    with pytest.raises(ValueError, match="lattice"):
        elastic_constants(w_zhou, "W", "hcp")
    with pytest.raises(ValueError, match="bcc"):
        interstitial_formation_energy(w_zhou, "W", "fcc", a=4.0)
    with pytest.raises(ValueError, match="size"):
        vacancy_formation_energy(w_zhou, "W", "bcc", a=A0_W, size=1)
