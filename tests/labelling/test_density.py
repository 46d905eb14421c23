"""Charge densities stored with GPAW labels (``save_density``) and their 2-point statistics (formats.density).

One real GPAW label of 2-atom bcc W (W.6 setups, PW 250 eV, 2x2x2 k-points, ~2 s) with the pseudo density, one
with the all-electron density."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
from ase.build import bulk

from formats.density import (
    FORMAT_VERSION,
    DensityEntry,
    DensityError,
    autocorrelation,
    entry_from_label,
    load_density,
    resample_density,
    write_density_dataset,
)
from labelling import label, profile, quick, settings_hash
from labelling.result import DENSITY_FILE, LabelResult
from labelling.settings import hashed_fields

N_VALENCE = 12  # 2 x W.6 (5d4 6s2)
N_CORE = 2 * 68  # W: Z = 74


def w2():
    return bulk("W", "bcc", a=3.165, cubic=True)


def _settings(**changes):
    return quick("gpaw", ecut=250.0, kpts=(2, 2, 2), scf_energy_tol=1e-4, save_density=True, **changes)


@pytest.fixture(scope="module")
def pseudo_label(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("density") / "job"
    result = label(w2(), _settings(), workdir)
    return workdir, result


def _integral(data) -> float:
    volume = abs(np.linalg.det(data["cell"]))
    return float(data["density"].sum() * volume / data["density"].size)


def test_settings_hash_unchanged_unless_density_saved():
    base = profile("quick")
    assert settings_hash(base) == settings_hash(profile("quick", density_kind="all_electron"))
    assert "save_density" not in hashed_fields(base) and "density_kind" not in hashed_fields(base)
    saved = profile("quick", save_density=True)
    assert settings_hash(saved) != settings_hash(base)
    assert settings_hash(saved) != settings_hash(saved.replace(density_kind="all_electron"))
    with pytest.raises(ValueError, match="save_density"):
        profile("quick", "vasp", save_density=True)
    plain = LabelResult(energy=1.0, forces=np.zeros((1, 3)), stress=None, engine="gpaw", engine_version="x",
                        settings_hash="h")
    assert "density_file" not in plain.to_dict()


def test_pseudo_density_integrates_to_valence_electrons(pseudo_label):
    workdir, result = pseudo_label
    assert result.density_file == DENSITY_FILE
    assert json.loads((workdir / "result.json").read_text())["density_file"] == DENSITY_FILE
    data = load_density(workdir / result.density_file)
    assert data["kind"] == "pseudo" and data["pbc"] == (True, True, True)
    assert data["density"].ndim == 3 and tuple(data["grid_shape"]) == data["density"].shape
    assert data["density"].dtype in (np.float32, np.float64)
    np.testing.assert_allclose(data["cell"], w2().cell[:])
    assert float(data["n_valence"]) == N_VALENCE and float(data["n_core"]) == N_CORE
    total = _integral(data)
    print(f"pseudo density on {data['density'].shape}: {total:.8f} electrons")
    assert abs(total - N_VALENCE) < 1e-3


def test_all_electron_density_integrates_to_all_electrons(tmp_path):
    result = label(w2(), _settings(density_kind="all_electron"), tmp_path / "ae")
    data = load_density(tmp_path / "ae" / result.density_file)
    assert data["kind"] == "all_electron"
    total = _integral(data)
    print(f"all-electron density on {data['density'].shape}: {total:.8f} electrons")
    assert abs((total - N_CORE) - N_VALENCE) < 1e-3  # core included: valence = total - core


@pytest.mark.parametrize("method", ["fourier", "linear"])
def test_resampling_keeps_the_integral(pseudo_label, method):
    workdir, _ = pseudo_label
    data = load_density(workdir / DENSITY_FILE)
    grid, voxels = resample_density(data["density"], data["cell"], 0.2, method=method)
    assert grid.shape == (16, 16, 16)  # 3.165 / 0.2 = 15.8
    np.testing.assert_allclose(voxels, data["cell"] / 16)
    resampled = grid.sum() * abs(np.linalg.det(voxels))
    assert abs(resampled - _integral(data)) <= 1e-6 * _integral(data)


def test_fourier_resampling_is_exact_for_band_limited_fields():
    cell = np.diag([3.0, 2.4, 2.0])
    x = np.arange(12) / 12
    y = np.arange(10) / 10
    z = np.arange(9) / 9
    fx, fy, fz = np.meshgrid(x, y, z, indexing="ij")
    field = 1.5 + np.cos(2 * np.pi * fx) + 0.3 * np.sin(2 * np.pi * (fy + 2 * fz))
    grid, _ = resample_density(field, cell, 0.15)
    assert grid.shape == (20, 16, 13)
    gx, gy, gz = np.meshgrid(*(np.arange(n) / n for n in grid.shape), indexing="ij")
    np.testing.assert_allclose(grid, 1.5 + np.cos(2 * np.pi * gx) + 0.3 * np.sin(2 * np.pi * (gy + 2 * gz)),
                               atol=1e-12)


def test_autocorrelation_at_zero_shift_and_flat_for_constant(pseudo_label):
    workdir, _ = pseudo_label
    data = load_density(workdir / DENSITY_FILE)
    grid, _ = resample_density(data["density"], data["cell"], 0.2)
    plain = autocorrelation(grid, size=15, normalise=False)
    assert plain.shape == (15, 15, 15)
    centre = plain[7, 7, 7]
    assert abs(centre - np.mean(grid**2)) <= 1e-10 * np.mean(grid**2)
    assert centre == pytest.approx(plain.max())
    # symmetric: f(r) = f(-r); one voxel along x = <rho(x) rho(x + a/16)>
    np.testing.assert_allclose(plain, plain[::-1, ::-1, ::-1], rtol=1e-12)
    np.testing.assert_allclose(plain[8, 7, 7], np.mean(grid * np.roll(grid, -1, axis=0)), rtol=1e-12)
    # the paper's normalisation: f(0) = mean density
    paper = autocorrelation(grid, size=15)
    assert paper[7, 7, 7] == pytest.approx(grid.mean(), rel=1e-12)
    assert (paper <= paper[7, 7, 7] + 1e-12).all()
    # periodic repetition for cells smaller than the block (as the paper: +-5 A of a 3.2 A cell)
    wide = autocorrelation(grid, size=51, wrap=True)
    assert wide.shape == (51, 51, 51) and wide[25 + 16, 25, 25] == pytest.approx(wide[25, 25, 25])
    constant = np.full((20, 20, 20), 0.37)
    flat = autocorrelation(constant, size=11)
    np.testing.assert_allclose(flat, 0.37, rtol=1e-12)


def test_dataset_file_opens_with_h5py(pseudo_label, tmp_path):
    workdir, result = pseudo_label
    entry = entry_from_label(workdir, name="w2-bcc", source="test:w2")
    assert entry.energy == pytest.approx(result.energy)
    path = tmp_path / "densities.h5"
    assert write_density_dataset(path, [entry, entry], voxel_width=0.2, size=11) == 2
    with h5py.File(path, "r") as data:
        assert data.attrs["format"] == FORMAT_VERSION
        assert data.attrs["voxel_width"] == 0.2 and data.attrs["size"] == 11 and bool(data.attrs["normalise"])
        assert "sqrt" in str(data.attrs["normalisation"])
        units = json.loads(data.attrs["units"])
        assert units["density"] == "electrons/A^3" and units["energy"] == "eV"
        group = data["configurations/00000"]
        assert group["density"].shape == (16, 16, 16) and group["density"].dtype == np.float64
        assert group["autocorrelation"].shape == (11, 11, 11) and group["autocorrelation"].dtype == np.float64
        assert group["cell"].shape == (3, 3) and group["voxel_vectors"].shape == (3, 3)
        assert group["density"].attrs["units"] == "electrons/A^3" and group["cell"].attrs["units"] == "A"
        assert group.attrs["name"] == "w2-bcc" and group.attrs["source"] == "test:w2"
        assert group.attrs["energy"] == pytest.approx(result.energy) and group.attrs["kind"] == "pseudo"
        assert group.attrs["integral"] == pytest.approx(N_VALENCE, abs=1e-3)
        np.testing.assert_allclose(group["autocorrelation"][5, 5, 5], np.mean(group["density"][()]), rtol=1e-12)
        assert len(data["configurations"]) == 2


def test_errors_name_the_argument_or_configuration(pseudo_label, tmp_path):
    workdir, _ = pseudo_label
    data = load_density(workdir / DENSITY_FILE)
    for width in (0.0, -0.2):
        with pytest.raises(DensityError, match="voxel_width"):
            resample_density(data["density"], data["cell"], width)
    with pytest.raises(DensityError, match="voxel_width"):
        write_density_dataset(tmp_path / "x.h5", [], voxel_width=0)
    grid, _ = resample_density(data["density"], data["cell"], 0.2)
    with pytest.raises(DensityError, match="size"):
        autocorrelation(grid, size=51)
    with pytest.raises(DensityError, match="size"):
        write_density_dataset(tmp_path / "x.h5", [entry_from_label(workdir, name="w2")], size=51)
    # a label stored without a density
    bare = tmp_path / "bare"
    bare.mkdir()
    stored = json.loads((workdir / "result.json").read_text())
    del stored["density_file"]
    (bare / "result.json").write_text(json.dumps(stored))
    entry = entry_from_label(bare, name="vacancy-17")
    assert isinstance(entry, DensityEntry) and entry.density is None
    with pytest.raises(DensityError, match=r"vacancy-17.*save_density"):
        write_density_dataset(tmp_path / "y.h5", [entry], size=11)
    with pytest.raises(DensityError, match=r"dislocation-3.*save_density"):
        write_density_dataset(tmp_path / "z.h5", [{"name": "dislocation-3", "energy": -1.0}], size=11)
    assert not (tmp_path / "y.h5").exists() and not (tmp_path / "z.h5").exists()
    assert issubclass(DensityError, ValueError)
