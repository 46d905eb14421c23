"""Engine inputs for a reconstructed defect cell: what VASP and pw.x would be asked to compute.

The cell is what stage 5 receives: a periodic bcc W box that is not a cube (4 x 3 x 2
conventional cells, 12.66 x 9.50 x 6.33 A), with a vacancy, a Re solute and three displaced
atoms. Every expected value is computed here from the atoms and the paper's settings (k-point
grid from the reciprocal cell, cutoff in Ry from eV), not taken from the code under test.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from ase.build import bulk
from ase.io import read

from labelling import production
from labelling.backends import EspressoBackend, VaspBackend, read_job

RY_EV = 13.605693122994  # CODATA 2018


def reconstructed_w():
    """47 atoms: 4x3x2 bcc W (a = 3.165 A) minus atom 17, atom 5 -> Re, atoms 0, 9, 30 displaced."""
    atoms = bulk("W", "bcc", a=3.165, cubic=True) * (4, 3, 2)
    del atoms[17]
    atoms[5].symbol = "Re"
    atoms.positions[0] += (-0.21, 0.05, -0.12)  # goes outside the box: writers must keep it periodic-consistent
    atoms.positions[9] += (0.13, -0.08, 0.02)
    atoms.positions[30] += (0.0, 0.17, -0.09)
    return atoms


def expected_kpts(cell, spacing_without_2pi=0.03):
    """N_i = ceil(|b_i| / 0.03) with b_i . a_j = delta_ij (the paper's 2*pi*0.03 1/A spacing)."""
    reciprocal = np.linalg.inv(np.asarray(cell)).T
    return tuple(max(1, math.ceil(np.linalg.norm(b) / spacing_without_2pi - 1e-9)) for b in reciprocal)


def _potcars(tmp_path):
    root = tmp_path / "potpaw_PBE"
    for name in ("W_pv", "Re"):
        (root / name).mkdir(parents=True)
        (root / name / "POTCAR").write_text(f"  PAW_PBE {name} 06Sep2000\n stand-in: VASP never runs here\n")
    return root


def test_vasp_inputs_for_reconstructed_cell(tmp_path):
    atoms = reconstructed_w()
    assert len(atoms) == 47 and atoms.cell.orthorhombic and len(set(np.round(atoms.cell.lengths(), 3))) == 3
    settings = production("vasp", pseudo_dir=str(_potcars(tmp_path)), engine_options={"potcar": {"W": "W_pv"}})
    job_dir = VaspBackend().write_inputs(atoms, settings, tmp_path / "job")

    incar = dict(line.split(" = ", 1) for line in (job_dir / "INCAR").read_text().splitlines())
    assert float(incar["ENCUT"]) == 520.0 and float(incar["EDIFF"]) == 1e-6
    assert incar["ISMEAR"] == "-1" and float(incar["SIGMA"]) == 0.1  # Fermi-Dirac 0.1 eV
    assert (incar["PREC"], incar["IBRION"], incar["NSW"], incar["ISIF"], incar["LREAL"]) == (
        "Accurate", "-1", "0", "2", ".FALSE.")
    assert incar["ISPIN"] == "1" and "GGA" not in incar  # PBE is the POTCAR default

    mesh = expected_kpts(atoms.cell)
    assert mesh == (3, 4, 6)  # 12.66, 9.495, 6.33 A
    kpoints = (job_dir / "KPOINTS").read_text().splitlines()
    assert kpoints[1:5] == ["0", "Monkhorst-Pack", "3 4 6", "0 0 0"]
    assert tuple(read_job(job_dir)["kpts"]) == mesh

    poscar_lines = (job_dir / "POSCAR").read_text().splitlines()
    assert poscar_lines[5].split() == ["W", "Re"] and poscar_lines[6].split() == ["46", "1"]
    poscar = read(job_dir / "POSCAR", format="vasp")
    order = [i for i in range(len(atoms)) if atoms[i].symbol == "W"] + [5]
    assert read_job(job_dir)["sort"] == order
    assert poscar.get_chemical_symbols() == [atoms[i].symbol for i in order]
    np.testing.assert_allclose(poscar.cell[:], atoms.cell[:], atol=1e-10)
    delta = poscar.get_scaled_positions(wrap=False) - atoms.get_scaled_positions(wrap=False)[order]
    np.testing.assert_allclose(delta - np.round(delta), 0.0, atol=1e-10)  # same points modulo the lattice
    potcar = (job_dir / "POTCAR").read_text()
    assert potcar.index("W_pv") < potcar.index("PAW_PBE Re")


def test_espresso_inputs_for_reconstructed_cell(tmp_path):
    atoms = reconstructed_w()
    (tmp_path / "pp").mkdir()
    for name in ("W.pbe-spn-kjpaw_psl.1.0.0.UPF", "Re.pbe-spn-kjpaw_psl.1.0.0.UPF"):
        (tmp_path / "pp" / name).write_text("<UPF/>")  # names only: pw.x does not run here
    settings = production("espresso", pseudo_dir=str(tmp_path / "pp"))
    job_dir = EspressoBackend().write_inputs(atoms, settings, tmp_path / "job")
    text = (job_dir / "espresso.pwi").read_text()

    def value(key):
        return re.search(rf"^\s*{key}\s*=\s*(\S+)", text, re.M).group(1).strip("'")

    assert float(value("ecutwfc")) == pytest.approx(520.0 / RY_EV, rel=1e-12)  # 38.219 Ry
    assert float(value("ecutrho")) == pytest.approx(8 * 520.0 / RY_EV, rel=1e-12)
    assert value("occupations") == "smearing" and value("smearing") == "fd"
    assert float(value("degauss")) == pytest.approx(0.1 / RY_EV, rel=1e-12)
    assert float(value("conv_thr")) == pytest.approx(1e-6 / RY_EV, rel=1e-12)
    assert (value("calculation"), value("tprnfor"), value("tstress")) == ("scf", ".true.", ".true.")
    assert (int(value("nat")), int(value("ntyp")), int(value("ibrav"))) == (47, 2, 0)

    # Monkhorst-Pack in pw.x terms: shift 1 for even N (no Gamma point), 0 for odd N
    assert expected_kpts(atoms.cell) == (3, 4, 6)
    assert re.search(r"K_POINTS automatic\n3 4 6  0 1 1\n", text)

    species = re.search(r"ATOMIC_SPECIES\n(.*?)\n\n", text, re.S).group(1).splitlines()
    assert [line.split()[0] for line in species] == ["W", "Re"]
    assert [line.split()[2] for line in species] == ["W.pbe-spn-kjpaw_psl.1.0.0.UPF", "Re.pbe-spn-kjpaw_psl.1.0.0.UPF"]
    cell_rows = re.search(r"CELL_PARAMETERS angstrom\n(.*?)\n\n", text, re.S).group(1).splitlines()
    np.testing.assert_allclose([[float(x) for x in row.split()] for row in cell_rows], atoms.cell[:], atol=1e-10)
    rows = re.search(r"ATOMIC_POSITIONS angstrom\n(.*?)(\n\n|\Z)", text, re.S).group(1).strip().splitlines()
    assert [row.split()[0] for row in rows] == atoms.get_chemical_symbols()  # pw.x keeps the input order
    np.testing.assert_allclose([[float(x) for x in row.split()[1:4]] for row in rows], atoms.positions, atol=1e-9)
