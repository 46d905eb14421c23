"""Elastic-constant labels of arbitrary periodic configurations (issue #20): sampling.properties.elastic_tensor,
elastic_summary and the ``defect-genome elastic`` command."""

import ase.io
import numpy as np
import pytest
from ase import Atoms
from click.testing import CliRunner

from app.cli import main
from sampling.builders import add_vacancies, bulk_crystal
from sampling.properties import elastic_constants, elastic_summary, elastic_tensor

A0_W = 3.1648494554  # relax_lattice_constant(W_zhou.eam.alloy, W, bcc)


@pytest.fixture(scope="module")
def perfect_w_tensor(w_zhou) -> np.ndarray:
    return elastic_tensor(bulk_crystal("W", "bcc", A0_W, (3, 3, 3)), w_zhou)


def test_perfect_w_tensor_matches_elastic_constants_and_is_cubic(w_zhou, perfect_w_tensor):
    c = perfect_w_tensor
    assert c.shape == (6, 6)
    reference = elastic_constants(w_zhou, "W", "bcc", A0_W)
    summary = elastic_summary(c)
    for key in ("C11", "C12", "C44"):
        assert summary[key] == pytest.approx(reference[key], abs=0.1)
    print(f"\nperfect W (Zhou EAM): C11 {summary['C11']:.2f}, C12 {summary['C12']:.2f}, C44 {summary['C44']:.2f} GPa")
    # cubic: equal diagonal blocks, equal C12s, no normal-shear or shear-shear coupling
    assert np.allclose(np.diag(c)[:3], summary["C11"], atol=0.1)
    assert np.allclose(np.diag(c)[3:], summary["C44"], atol=0.1)
    assert np.allclose([c[0, 1], c[0, 2], c[1, 2], c[1, 0], c[2, 0], c[2, 1]], summary["C12"], atol=0.1)
    assert np.abs(c[:3, 3:]).max() < 0.05 and np.abs(c[3:, :3]).max() < 0.05
    off_shear = c[3:, 3:] - np.diag(np.diag(c)[3:])
    assert np.abs(off_shear).max() < 0.05
    # Voigt moduli of a cubic crystal
    assert summary["bulk_modulus"] == pytest.approx((summary["C11"] + 2 * summary["C12"]) / 3, abs=0.05)
    expected_shear = (summary["C11"] - summary["C12"] + 3 * summary["C44"]) / 5
    assert summary["shear_modulus"] == pytest.approx(expected_shear, abs=0.05)


def test_vacancies_soften_w(w_zhou, perfect_w_tensor):
    perfect = bulk_crystal("W", "bcc", A0_W, (4, 4, 4))
    defective = add_vacancies(perfect, 6, seed=20)  # 6 of 128 sites, 4.7 %
    assert len(defective) == 122
    c = elastic_tensor(defective, w_zhou)
    s, p = elastic_summary(c), elastic_summary(perfect_w_tensor)
    print(f"\n4x4x4 W, 6 vacancies: C11 {s['C11']:.2f}, C12 {s['C12']:.2f}, C44 {s['C44']:.2f}, "
          f"B {s['bulk_modulus']:.2f} GPa (perfect: C11 {p['C11']:.2f}, C12 {p['C12']:.2f}, C44 {p['C44']:.2f})")
    assert s["C11"] < p["C11"] - 10.0
    assert s["C44"] < p["C44"] and s["bulk_modulus"] < p["bulk_modulus"]
    assert np.abs(c - c.T).max() < 2.0  # a relaxed reference gives a nearly symmetric matrix


def test_elastic_tensor_errors(w_zhou):
    cell = bulk_crystal("W", "bcc", A0_W, (2, 2, 2))
    slab = cell.copy()
    slab.pbc = (True, True, False)
    with pytest.raises(ValueError, match=r"atoms\.pbc"):
        elastic_tensor(slab, w_zhou)
    for strain in (0.0, 0.05, -1e-3):
        with pytest.raises(ValueError, match="strain"):
            elastic_tensor(cell, w_zhou, strain=strain)
    with pytest.raises(ValueError, match="Cu"):
        elastic_tensor(Atoms("Cu2", positions=[[0, 0, 0], [1.8, 1.8, 1.8]], cell=[3.6] * 3, pbc=True), w_zhou)
    with pytest.raises(ValueError, match="6 x 6"):
        elastic_summary(np.zeros((3, 3)))


@pytest.fixture()
def two_cells(tmp_path):
    perfect = bulk_crystal("W", "bcc", A0_W, (3, 3, 3))
    path = tmp_path / "cells.extxyz"
    ase.io.write(path, [perfect, add_vacancies(perfect, 1, seed=3)], format="extxyz")
    return path


def test_cli_labels_and_round_trips(two_cells, tmp_path, perfect_w_tensor):
    out = tmp_path / "labelled.extxyz"
    result = CliRunner().invoke(main, ["elastic", str(two_cells), "--potential", "W_zhou.eam.alloy",
                                       "--output", str(out)])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split()[:7] == ["index", "source", "atoms", "C11", "C12", "C44", "B"]
    rows = [line.split() for line in lines[1:3]]
    assert [r[0] for r in rows] == ["0", "1"]
    assert rows[0][1] == f"{two_cells}:0" and rows[1][1] == f"{two_cells}:1"
    assert [r[2] for r in rows] == ["54", "53"]
    perfect = elastic_summary(perfect_w_tensor)
    assert float(rows[0][3]) == pytest.approx(perfect["C11"], abs=0.01)
    assert float(rows[0][6]) == pytest.approx(perfect["bulk_modulus"], abs=0.01)
    assert float(rows[1][3]) < float(rows[0][3])

    images = ase.io.read(out, index=":")
    assert len(images) == 2
    for image, row in zip(images, rows):
        assert image.info["elastic_constants_units"] == "GPa"
        c = np.reshape(image.info["elastic_constants"], (6, 6))
        assert elastic_summary(c)["C11"] == pytest.approx(float(row[3]), abs=0.006)
    assert np.allclose(np.reshape(images[0].info["elastic_constants"], (6, 6)), perfect_w_tensor, atol=1e-6)
    assert len(images[1]) == 53


def test_cli_bad_inputs_exit_2(two_cells, tmp_path):
    runner = CliRunner()

    def run(*args: str):
        return runner.invoke(main, ["elastic", *args])

    missing = run(str(tmp_path / "nope.extxyz"), "--potential", "W_zhou.eam.alloy")
    assert missing.exit_code == 2 and "INPUT" in missing.output and "nope.extxyz" in missing.output

    unknown = run(str(two_cells), "--potential", "W_nonexistent.eam.alloy")
    assert unknown.exit_code == 2 and "--potential" in unknown.output

    cluster = tmp_path / "cluster.extxyz"
    ase.io.write(cluster, Atoms("W2", positions=[[0, 0, 0], [1.4, 1.4, 1.4]]), format="extxyz")
    open_cell = run(str(cluster), "--potential", "W_zhou.eam.alloy")
    assert open_cell.exit_code == 2 and "INPUT" in open_cell.output and "pbc" in open_cell.output

    foreign = tmp_path / "cu.extxyz"
    ase.io.write(foreign, bulk_crystal("Cu", "fcc", 3.6, (2, 2, 2)), format="extxyz")
    wrong_species = run(str(foreign), "--potential", "W_zhou.eam.alloy")
    assert wrong_species.exit_code == 2 and "--potential" in wrong_species.output

    bad_strain = run(str(two_cells), "--potential", "W_zhou.eam.alloy", "--strain", "0.2")
    assert bad_strain.exit_code == 2 and "--strain" in bad_strain.output
    for result in (missing, unknown, open_cell, wrong_species, bad_strain):
        assert "Traceback" not in result.output
        assert len([line for line in result.output.splitlines() if "error" in line]) == 1


def test_alloy_b2_nial_is_cubic_and_stable(nial):
    from ase.build import bulk

    cell = bulk("NiAl", "cesiumchloride", a=2.87).repeat((3, 3, 3))
    c = elastic_tensor(cell, nial)
    s = elastic_summary(c)
    assert np.abs(c - c.T).max() < 0.5
    assert np.all(np.linalg.eigvalsh(0.5 * (c + c.T)) > 0)  # mechanically stable
    assert np.allclose(np.diag(c)[:3], s["C11"], atol=0.5) and np.allclose(np.diag(c)[3:], s["C44"], atol=0.5)
    assert s["C11"] > s["C12"] > 0 and s["C44"] > 0
