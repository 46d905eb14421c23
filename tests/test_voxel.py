"""Voxel grids of labelled configurations (formats/voxel.py, issue #20)."""

from __future__ import annotations

import io
import json

import h5py
import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.calculators.singlepoint import SinglePointCalculator

from formats.voxel import VoxelError, read_voxel_dataset, voxelize


def _w_vacancies() -> Atoms:
    atoms = bulk("W", "bcc", a=3.165, cubic=True).repeat(4)
    del atoms[[0, 17, 77]]
    return atoms


def _nial() -> Atoms:
    return bulk("NiAl", "cesiumchloride", a=2.86).repeat(3)


def _triclinic() -> Atoms:
    atoms = bulk("Cu", "fcc", a=3.6).repeat((3, 2, 2))  # primitive fcc: a triclinic cell
    atoms.rattle(0.1, seed=3)
    atoms.symbols[[1, 5, 9]] = "Ni"
    return atoms


CASES = [(_w_vacancies, ["W"]), (_nial, ["Ni", "Al"]), (_triclinic, ["Cu", "Ni"])]


def _counts(atoms: Atoms, species: list[str]) -> list[int]:
    symbols = atoms.get_chemical_symbols()
    return [symbols.count(s) for s in species]


@pytest.mark.parametrize(("build", "species"), CASES)
@pytest.mark.parametrize("region", ["cell", "inner", "outer"])
def test_occupancy_sums_are_atom_counts(build, species, region):
    atoms = build()
    grid, frame = voxelize(atoms, resolution=0.4, species=species, region=region)
    assert grid.dtype == np.float32 and grid.shape == (len(species), *frame.shape)
    assert [int(grid[c].sum(dtype=np.float64)) for c in range(len(species))] == _counts(atoms, species)
    assert np.all(grid == np.round(grid))


def test_cell_grid_shape_and_frame():
    atoms = _triclinic()
    _, frame = voxelize(atoms, resolution=0.5, species=["Cu", "Ni"])
    lengths = atoms.cell.lengths()
    assert frame.shape == tuple(int(np.ceil(length / 0.5)) for length in lengths)
    assert np.allclose(np.array(frame.shape)[:, None] * frame.voxel_vectors, atoms.cell[:])
    assert np.all(np.linalg.norm(frame.voxel_vectors, axis=1) <= 0.5 + 1e-12)


@pytest.mark.parametrize(("build", "species"), CASES)
@pytest.mark.parametrize("mode", ["occupancy", "gaussian"])
def test_lattice_translation_leaves_cell_grid_unchanged(build, species, mode):
    atoms = build()
    sigma = 0.5 if mode == "gaussian" else None
    ref, _ = voxelize(atoms, resolution=0.4, species=species, mode=mode, sigma=sigma)
    cell = atoms.cell[:]
    for shift in (cell[0], cell[1] - 2 * cell[2], 3 * cell[0] + cell[1] - cell[2]):
        moved = atoms.copy()
        moved.positions += shift
        grid, _ = voxelize(moved, resolution=0.4, species=species, mode=mode, sigma=sigma)
        if mode == "occupancy":
            assert np.array_equal(grid, ref)
        else:
            assert np.allclose(grid, ref, atol=1e-6)


@pytest.mark.parametrize(("build", "species"), CASES)
@pytest.mark.parametrize("region", ["cell", "inner", "outer"])
def test_gaussian_channels_sum_to_atom_counts(build, species, region):
    atoms = build()
    grid, _ = voxelize(atoms, resolution=0.5, species=species, mode="gaussian", sigma=0.6, region=region)
    sums = grid.astype(np.float64).sum(axis=(1, 2, 3))
    assert np.allclose(sums, _counts(atoms, species), atol=1e-5, rtol=0)


def test_gaussian_single_atom_centroid():
    atoms = Atoms("Fe", positions=[[4.3, 5.1, 3.7]], cell=[10.0, 11.0, 9.0], pbc=True)
    for region in ("cell", "outer"):
        grid, frame = voxelize(atoms, resolution=0.25, species=["Fe"], mode="gaussian", sigma=0.5, region=region)
        weights = grid[0].astype(np.float64)
        centroid = np.einsum("ijk,ijkl->l", weights, frame.centres()) / weights.sum()
        assert np.linalg.norm(centroid - atoms.positions[0]) < 0.02
    # wider than a voxel: spread over many voxels, none holds the whole atom
    assert grid.max() < 0.2 and (grid > 0).sum() > 100


def test_gaussian_spreads_over_periodic_images():
    atoms = Atoms("Fe", positions=[[0.05, 0.05, 0.05]], cell=[6.0, 6.0, 6.0], pbc=True)
    grid, _ = voxelize(atoms, resolution=0.5, species=["Fe"], mode="gaussian", sigma=0.5)
    assert grid[0, -1, -1, -1] > 0.01 and grid[0, 0, 0, 0] > grid[0, -1, -1, -1]
    assert abs(grid.astype(np.float64).sum() - 1) < 1e-6


@pytest.mark.parametrize("region", ["inner", "outer"])
@pytest.mark.parametrize("mode", ["occupancy", "gaussian"])
def test_bounding_boxes_contain_every_atom(region, mode):
    atoms = _triclinic()
    atoms.positions += [[-20.0, 3.0, 7.0]]
    _, frame = voxelize(atoms, resolution=0.3, species=["Cu", "Ni"], mode=mode, region=region)
    index = np.floor(frame.voxel_coordinates(atoms.positions)).astype(int)
    index = np.minimum(index, np.array(frame.shape) - 1)  # inner: atoms on the upper faces go in the edge voxels
    assert np.all(index >= 0) and np.all(index < np.array(frame.shape))
    lo, hi = atoms.positions.min(axis=0), atoms.positions.max(axis=0)
    top = frame.origin + np.array(frame.shape) @ frame.voxel_vectors
    pad = 0.0 if region == "inner" else (0.3 if mode == "occupancy" else 3 * 0.3)
    assert frame.padding == pytest.approx(pad)
    assert np.allclose(frame.origin, lo - pad) and np.allclose(top, hi + pad)
    assert np.all(np.diag(frame.voxel_vectors) <= 0.3 + 1e-12)
    if region == "outer" and mode == "occupancy":
        inner = np.floor(frame.voxel_coordinates(atoms.positions)).astype(int)
        assert np.all(inner >= 1) and np.all(inner <= np.array(frame.shape) - 2)  # a padding voxel each side


def test_outer_explicit_padding_and_flat_direction():
    atoms = Atoms("W2", positions=[[0, 0, 0], [3.0, 0, 0]])
    _, frame = voxelize(atoms, resolution=0.5, species=["W"], region="outer", padding=1.0)
    assert np.allclose(frame.origin, [-1.0, -1.0, -1.0]) and frame.shape == (10, 4, 4)
    grid, frame = voxelize(atoms, resolution=0.5, species=["W"], region="inner")
    assert frame.shape == (6, 1, 1) and grid.sum() == 2


def _labelled(atoms: Atoms, seed: int, **info) -> Atoms:
    rng = np.random.default_rng(seed)
    atoms = atoms.copy()
    atoms.calc = SinglePointCalculator(atoms, energy=-8.1 * len(atoms) + rng.normal(),
                                       forces=rng.normal(size=(len(atoms), 3)), stress=rng.normal(size=6) * 1e-3)
    atoms.info.update(info)
    return atoms


def test_hdf5_round_trip_with_h5py_alone(tmp_path):
    cij = np.array([[523, 204, 204, 0, 0, 0], [204, 523, 204, 0, 0, 0], [204, 204, 523, 0, 0, 0],
                    [0, 0, 0, 161, 0, 0], [0, 0, 0, 0, 161, 0], [0, 0, 0, 0, 0, 161]], dtype=float)
    images = [_labelled(_w_vacancies(), 1, source="w.extxyz#0", elastic_constants=cij),
              _labelled(_w_vacancies(), 2, source="w.extxyz#1", dataset="C")]
    path = tmp_path / "voxels.h5"
    from formats.voxel import write_voxel_dataset

    assert write_voxel_dataset(path, images, resolution=0.5, species=["W"], mode="gaussian", sigma=0.5,
                               dataset_names=["B", None]) == 2
    with h5py.File(path, "r") as f:
        assert f.attrs["format"] == "defect-genome-voxels-1" and int(f.attrs["count"]) == 2
        settings = json.loads(f.attrs["settings"])
        assert settings["resolution"] == 0.5 and settings["mode"] == "gaussian" and settings["sigma"] == 0.5
        assert settings["region"] == "cell" and json.loads(f.attrs["channels"]) == ["W"]
        units = json.loads(f.attrs["units"])
        assert units["energy"] == "eV" and units["forces"] == "eV/A" and units["elastic_constants"] == "GPa"
        g = f["configurations/0"]
        assert g["grid"].dtype == np.float32 and g["grid"].shape == (1, 26, 26, 26)
        assert g["grid"].compression == "gzip" and g["grid"].chunks is not None
        assert g["energy"].attrs["units"] == "eV" and g["stress"].shape == (6,)
        assert g["forces"].shape == (125, 3) and g["voxel_vectors"].shape == (3, 3)
        assert g.attrs["source"] == "w.extxyz#0" and g.attrs["dataset"] == "B"
        assert np.array_equal(g["elastic_constants"][()], cij)
        assert f["configurations/1"].attrs["dataset"] == "C" and "elastic_constants" not in f["configurations/1"]
    back = read_voxel_dataset(path)
    for atoms, entry in zip(images, back):
        labels = entry["labels"]
        assert labels["energy"] == atoms.get_potential_energy()
        assert labels["energy_per_atom"] == pytest.approx(atoms.get_potential_energy() / len(atoms))
        assert np.array_equal(labels["forces"], atoms.get_forces())
        assert np.array_equal(labels["stress"], atoms.get_stress())
        grid, frame = voxelize(atoms, resolution=0.5, species=["W"], mode="gaussian", sigma=0.5)
        assert np.array_equal(entry["grid"], grid) and entry["frame"].shape == frame.shape
        assert np.array_equal(entry["frame"].voxel_vectors, frame.voxel_vectors)
        assert np.array_equal(entry["positions"], atoms.positions)
    assert np.array_equal(back[0]["labels"]["elastic_constants"], cij)


def test_outer_dataset_shares_one_frame_and_file_object():
    images = [_labelled(_nial(), 3), _labelled(_nial(), 4)]
    images[1].rattle(0.2, seed=1)
    from formats.voxel import write_voxel_dataset

    buffer = io.BytesIO()
    write_voxel_dataset(buffer, images, resolution=0.5, species=["Ni", "Al"], region="outer")
    buffer.seek(0)
    back = read_voxel_dataset(buffer)
    assert back[0]["grid"].shape == back[1]["grid"].shape
    assert np.array_equal(back[0]["frame"].origin, back[1]["frame"].origin)
    assert [float(e["grid"].sum()) for e in back] == [54.0, 54.0]


def test_geometry_only_when_labels_not_required(tmp_path):
    from formats.voxel import write_voxel_dataset

    path = tmp_path / "geometry.h5"
    write_voxel_dataset(path, [_nial()], resolution=0.5, species=["Ni", "Al"], require_labels=False)
    (entry,) = read_voxel_dataset(path)
    assert entry["labels"] == {} and entry["grid"].sum() == 54


@pytest.mark.parametrize("resolution", [0, -1, float("nan"), float("inf"), "fine"])
def test_bad_resolution_names_it(resolution):
    with pytest.raises(VoxelError, match="resolution"):
        voxelize(_nial(), resolution=resolution, species=["Ni", "Al"])


def test_grid_over_cap_names_resolution_and_max_voxels():
    with pytest.raises(VoxelError, match="resolution") as error:
        voxelize(_w_vacancies(), resolution=0.01, species=["W"])
    assert "max_voxels" in str(error.value)
    with pytest.raises(VoxelError, match="max_voxels"):
        voxelize(_w_vacancies(), resolution=0.5, species=["W"], max_voxels=1000)
    with pytest.raises(VoxelError, match="max_voxels"):
        voxelize(_w_vacancies(), resolution=1e-300, species=["W"], region="outer")


def test_unknown_species_names_species():
    with pytest.raises(VoxelError, match="species") as error:
        voxelize(_nial(), resolution=0.5, species=["Ni"])
    assert "Al" in str(error.value)


def test_missing_energy_names_the_configuration(tmp_path):
    from formats.voxel import write_voxel_dataset

    images = [_labelled(_nial(), 5), _nial()]
    images[1].info["source"] = "upload.xyz#7"
    with pytest.raises(VoxelError, match="configuration 1") as error:
        write_voxel_dataset(tmp_path / "x.h5", images, resolution=0.5, species=["Ni", "Al"])
    assert "upload.xyz#7" in str(error.value) and "energy" in str(error.value)


def test_energy_from_info_and_bad_elastic_constants(tmp_path):
    from formats.voxel import write_voxel_dataset

    atoms = _nial()
    atoms.info["energy"] = -12.5
    write_voxel_dataset(tmp_path / "a.h5", [atoms], resolution=0.5, species=["Ni", "Al"])
    assert read_voxel_dataset(tmp_path / "a.h5")[0]["labels"]["energy"] == -12.5
    atoms.info["elastic_constants"] = np.zeros((3, 3))
    with pytest.raises(VoxelError, match="elastic_constants"):
        write_voxel_dataset(tmp_path / "b.h5", [atoms], resolution=0.5, species=["Ni", "Al"])
