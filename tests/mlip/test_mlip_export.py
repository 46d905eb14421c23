"""Exports: round trips of every format, real readers (motep, pyace's data preparation), bad input."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.eam import EAM
from ase.calculators.singlepoint import SinglePointCalculator

from md.potentials import load_potential
from mlip import ExportError, write_dataset
from sampling.datasets import read_dataset

REFERENCE = Path(__file__).resolve().parents[3] / "shared" / "reference" / "ml-defect-modeling"
if not REFERENCE.is_dir():
    REFERENCE = Path("/work/shared/reference/ml-defect-modeling")


@pytest.fixture(scope="module")
def labelled():
    """Rattled and strained W cells with real EAM-Zhou labels (ASE's EAM calculator), frozen as single points."""
    calculator = EAM(potential=str(load_potential("W_zhou.eam.alloy").files[0]))
    images = []
    for k, (repeat, strain) in enumerate([((2, 2, 2), 0.0), ((3, 2, 2), 0.01), ((2, 2, 3), -0.02)]):
        atoms = bulk("W", "bcc", a=3.165, cubic=True).repeat(repeat)
        atoms.set_cell(atoms.cell * (1 + strain), scale_atoms=True)
        atoms.rattle(0.05, seed=k)
        atoms.calc = calculator
        results = {"energy": atoms.get_potential_energy(), "forces": atoms.get_forces(),
                   "stress": atoms.get_stress()}
        atoms.calc = SinglePointCalculator(atoms, **results)
        atoms.info["source"] = f"test/{k}"
        atoms.info["label_engine"] = "eam LAMMPS"
        images.append(atoms)
    assert np.abs(images[0].get_forces()).max() > 0.05  # the rattle gives real forces to compare
    return images


def _write(images, fmt, **options) -> io.BytesIO | io.StringIO:
    handle = io.BytesIO() if fmt == "ace" else io.StringIO()
    assert write_dataset(handle, images, fmt, **options) == len(images)
    handle.seek(0)
    return handle


# file precision of each writer: cfg positions %14.8f, forces %11.6f, PlusStress %11.5f eV (x volume)
TOLERANCE = {"mtp": (1e-8, 1e-6, 1e-5), "ace": (0.0, 0.0, 0.0), "extxyz": (1e-8, 1e-8, 1e-8)}


@pytest.mark.parametrize("fmt", ["mtp", "ace", "extxyz"])
def test_round_trip_keeps_positions_cell_energy_forces_stress(labelled, fmt):
    reader_format = {"mtp": "cfg", "ace": "pacemaker", "extxyz": "extxyz"}[fmt]
    back = read_dataset(_write(labelled, fmt), format=reader_format, species=["W"])
    position_tol, force_tol, plus_stress_tol = TOLERANCE[fmt]
    assert len(back) == len(labelled)
    for original, read in zip(labelled, back):
        assert read.get_chemical_symbols() == original.get_chemical_symbols()
        np.testing.assert_allclose(read.positions, original.positions, atol=position_tol + 1e-12)
        np.testing.assert_allclose(read.cell[:], original.cell[:], atol=position_tol + 1e-12)
        assert read.get_potential_energy() == pytest.approx(original.get_potential_energy(), abs=1e-9)
        np.testing.assert_allclose(read.get_forces(), original.get_forces(), atol=force_tol + 1e-12)
        if fmt != "ace":  # pacemaker fits energies and forces; the stress column is extra
            volume = original.get_volume()
            np.testing.assert_allclose(read.get_stress() * volume, original.get_stress() * volume,
                                       atol=plus_stress_tol + 1e-12)


def test_a_label_result_cell_exports_to_extxyz(tmp_path):
    """LabelResult.to_atoms keeps energy/stress in info and the calculator (DESIGN section 3); ASE's
    writer refuses such duplicates, so the export writes the calculator's values once."""
    from labelling import label, quick

    atoms = bulk("W", "bcc", a=3.165, cubic=True).repeat((2, 2, 2))
    atoms.rattle(0.05, seed=4)
    cell = label(atoms, quick("eam"), tmp_path / "job").to_atoms(atoms)
    assert "energy" in cell.info and "stress" in cell.info
    (back,) = read_dataset(_write([cell], "extxyz"), format="extxyz")
    assert back.get_potential_energy() == pytest.approx(cell.get_potential_energy(), abs=1e-8)
    np.testing.assert_allclose(back.get_forces(), cell.get_forces(), atol=1e-8)
    np.testing.assert_allclose(back.get_stress(), cell.get_stress(), atol=1e-8)
    assert cell.info["energy"] == cell.get_potential_energy()  # the caller's cell is not changed


def test_motep_reads_our_cfg(labelled, tmp_path):
    from motep.io import read

    path = tmp_path / "train.cfg"
    path.write_text(_write(labelled, "mtp").getvalue())
    images = read(str(path), species=[74])
    assert len(images) == len(labelled)
    for original, read_back in zip(labelled, images):
        assert read_back.get_potential_energy() == pytest.approx(original.get_potential_energy(), abs=1e-9)
        np.testing.assert_allclose(read_back.get_forces(), original.get_forces(), atol=1e-6)
        np.testing.assert_allclose(read_back.positions, original.positions, atol=1e-8)
    assert "Feature   EFS_by  eam LAMMPS" in path.read_text()


def test_pyace_data_preparation_accepts_our_pickle(labelled, tmp_path):
    from pyace.preparedata import ACEDataset

    reference = {"W": -8.0}
    path = tmp_path / "train.pckl.gzip"
    path.write_bytes(_write(labelled, "ace", reference_energies=reference).getvalue())
    dataset = ACEDataset({"filename": str(path)}, cutoff=5.0, elements=["W"], evaluator_name="pyace")
    frame = dataset.fitting_data
    assert len(frame) == len(labelled) and "atomic_env" in frame.columns
    for (_, row), original in zip(frame.iterrows(), labelled):
        expected = original.get_potential_energy() + 8.0 * len(original)
        assert row["energy_corrected"] == pytest.approx(expected, abs=1e-9)
        np.testing.assert_allclose(row["forces"], original.get_forces())


def test_bad_input_is_named(labelled):
    with pytest.raises(ExportError, match="empty"):
        write_dataset(io.StringIO(), [], "mtp")
    broken = labelled[0].copy()
    forces = labelled[0].get_forces().copy()
    forces[3, 1] = np.nan
    broken.calc = SinglePointCalculator(broken, energy=labelled[0].get_potential_energy(), forces=forces)
    broken.info["source"] = "p/7"
    with pytest.raises(ExportError, match=r"configuration 1 \(p/7\).*not finite.*\[3\]"):
        write_dataset(io.StringIO(), [labelled[1], broken], "extxyz")
    unlabelled = labelled[0].copy()
    with pytest.raises(ExportError, match="no energy and forces"):
        write_dataset(io.BytesIO(), [unlabelled], "ace")
    with pytest.raises(ExportError, match="unknown export format 'npz'"):
        write_dataset(io.StringIO(), labelled, "npz")
    with pytest.raises(ExportError, match="no reference energy for W"):
        write_dataset(io.BytesIO(), labelled, "ace", reference_energies={"Mo": -10.9})


def test_cfg_with_a_type_beyond_the_species_is_refused(labelled):
    from formats.mtp import CfgFormatError

    text = _write(labelled[:1], "mtp").getvalue().replace("\n          1    0 ", "\n          1    3 ", 1)
    text = text.replace("       1    0 ", "       1    3 ", 1)
    with pytest.raises(CfgFormatError, match="type 3"):
        read_dataset(io.StringIO(text), format="cfg", species=["W"])


def test_reference_w_set_imports_and_exports_to_cfg():
    images = read_dataset(REFERENCE / "W-all.pckl.gzip")
    assert len(images) == 1026
    subset = images[::50]
    back = read_dataset(_write(subset, "mtp"), format="cfg", species=["W"])
    assert [len(a) for a in back] == [len(a) for a in subset]
    for original, read in zip(subset, back):
        assert read.get_potential_energy() == pytest.approx(original.get_potential_energy(), abs=1e-9)
        np.testing.assert_allclose(read.get_forces(), original.get_forces(), atol=1e-6)
