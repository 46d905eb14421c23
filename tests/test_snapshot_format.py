"""The compact snapshot format (formats/snapshot.py): round trips, determinism, size, range reads, ASE's plugin,
and the errors a damaged or foreign file gives."""

from __future__ import annotations

import io

import ase.io
import h5py
import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk

from formats.snapshot import (
    CHUNK_ATOMS,
    FORMAT_VERSION,
    SnapshotFormatError,
    iter_snapshot,
    read_snapshot,
    read_snapshot_range,
    snapshot_extxyz_chunks,
    write_snapshot,
)

# float32 keeps 24 significant bits: a coordinate x comes back within |x| 2**-24 (1.8e-5 A at 300 A)
FLOAT32_RELATIVE = 2.0**-24


def thermal_crystal(repeat: tuple[int, int, int], element: str = "W", seed: int = 0) -> Atoms:
    """A crystal with thermal-like displacements (0.05 A normal noise, W near 1000 K), CNA types, and the info a
    sampling snapshot carries."""
    rng = np.random.default_rng(seed)
    if element == "W":
        atoms = bulk("W", "bcc", a=3.165, cubic=True).repeat(repeat)
    else:
        atoms = bulk(element, "fcc", a=3.615, cubic=True).repeat(repeat)
    atoms.positions += rng.normal(0.0, 0.05, atoms.positions.shape)
    types = np.full(len(atoms), 3 if element == "W" else 1, dtype=np.int32)
    types[rng.choice(len(atoms), size=len(atoms) // 20, replace=False)] = 5  # "other": the defect atoms
    atoms.arrays["structure_type"] = types
    atoms.info.update(energy=-8.76 * len(atoms) + 0.123456789, stress=rng.normal(0.0, 1e-3, 6), temperature=1000.0,
                      step=2000, protocol="tension-x", strain=0.0125, orientation=[[1, 0, 0], [0, 1, 0], [0, 0, 1]],
                      grain_seeds=np.array([[1.5, 2.5, 3.5]]))
    return atoms


def assert_same_atoms(read: Atoms, written: Atoms) -> None:
    assert read.get_chemical_symbols() == written.get_chemical_symbols()
    assert np.array_equal(read.pbc, written.pbc)
    assert np.array_equal(read.cell.array, written.cell.array)
    assert read.positions.dtype == np.float64
    bound = FLOAT32_RELATIVE * np.abs(written.positions)
    assert np.all(np.abs(read.positions - written.positions) <= bound)
    assert read.arrays["structure_type"].dtype == np.int32
    assert np.array_equal(read.arrays["structure_type"], written.arrays["structure_type"])
    assert set(read.info) == set(written.info)
    assert read.info["energy"] == written.info["energy"]
    assert np.array_equal(read.info["stress"], written.info["stress"])
    for key in set(written.info) - {"energy", "stress"}:
        assert np.array_equal(read.info[key], written.info[key]), key
        assert isinstance(read.info[key], type(written.info[key])), key


def snapshot_bytes(atoms: Atoms) -> bytes:
    buffer = io.BytesIO()
    write_snapshot(buffer, atoms)
    return buffer.getvalue()


def test_round_trip_through_file_objects_and_paths(tmp_path):
    atoms = thermal_crystal((4, 4, 4), "Cu")
    payload = snapshot_bytes(atoms)
    assert_same_atoms(read_snapshot(io.BytesIO(payload)), atoms)

    path = tmp_path / "frame.dgh5"
    write_snapshot(path, atoms)
    assert path.read_bytes() == payload  # a path and a file object give the same bytes
    assert_same_atoms(read_snapshot(path), atoms)
    assert_same_atoms(read_snapshot(str(path)), atoms)
    with open(path, "rb") as handle:
        assert_same_atoms(read_snapshot(handle), atoms)
    with h5py.File(path, "r") as handle:  # the documented layout
        assert handle.attrs["format"] == FORMAT_VERSION
        assert handle["positions"].dtype == np.float32 and handle["positions"].compression == "gzip"
        assert handle["positions"].shuffle and handle["numbers"].dtype == np.uint8
        assert handle["structure_type"].dtype == np.uint8


def test_the_same_atoms_give_the_same_bytes():
    atoms = thermal_crystal((3, 3, 3))
    first = snapshot_bytes(atoms)
    copy = atoms.copy()
    copy.info = dict(reversed(list(atoms.info.items())))  # info order is not part of the content
    assert snapshot_bytes(copy) == first
    moved = atoms.copy()
    moved.positions[0, 0] += 0.01
    assert snapshot_bytes(moved) != first


def test_ase_reads_and_writes_the_format_by_its_suffix(tmp_path):
    atoms = thermal_crystal((3, 3, 3))
    path = tmp_path / "frame.dgh5"
    write_snapshot(path, atoms)
    assert_same_atoms(ase.io.read(path), atoms)
    assert_same_atoms(ase.io.read(str(path), index=-1), atoms)
    ase.io.write(tmp_path / "by-ase.dgh5", atoms)
    assert (tmp_path / "by-ase.dgh5").read_bytes() == path.read_bytes()


def test_a_range_read_equals_the_slice(tmp_path):
    atoms = thermal_crystal((30, 30, 30))  # 54,000 atoms
    path = tmp_path / "big.dgh5"
    write_snapshot(path, atoms)
    whole = read_snapshot(path)
    for start, stop in ((0, 10), (1000, 1100), (53990, 54000), (53995, 60000), (-5, None)):
        part = read_snapshot_range(path, start, stop)
        expected = whole[slice(start, stop)]
        assert np.array_equal(part.positions, expected.positions)
        assert np.array_equal(part.numbers, expected.numbers)
        assert np.array_equal(part.arrays["structure_type"], expected.arrays["structure_type"])
        assert np.array_equal(part.cell.array, whole.cell.array) and part.info["energy"] == whole.info["energy"]
    assert len(read_snapshot_range(path, 10, 5)) == 0
    parts = list(iter_snapshot(path, atoms_per_range=10000))
    assert [len(p) for p in parts] == [10000] * 5 + [4000]
    assert np.array_equal(np.vstack([p.positions for p in parts]), whole.positions)


def test_extxyz_chunks_are_ases_extxyz_of_the_snapshot():
    atoms = thermal_crystal((6, 6, 6))
    payload = snapshot_bytes(atoms)
    text = io.StringIO()
    ase.io.write(text, read_snapshot(io.BytesIO(payload)), format="extxyz")
    chunks = list(snapshot_extxyz_chunks(io.BytesIO(payload), atoms_per_range=100))
    assert len(chunks) == 5  # 432 atoms
    assert b"".join(chunks) == text.getvalue().encode()
    parsed = ase.io.read(io.StringIO(b"".join(chunks).decode()), format="extxyz")
    assert np.allclose(parsed.positions, atoms.positions, rtol=0, atol=1e-5)
    assert parsed.get_potential_energy() == pytest.approx(atoms.info["energy"])


def test_a_thermal_crystal_takes_at_most_20_bytes_per_atom():
    atoms = thermal_crystal((20, 20, 20))  # 16,000 atoms of bcc W, 63 A box
    assert len(atoms) >= 10000
    size = len(snapshot_bytes(atoms))
    print(f"dg-snapshot: {size / len(atoms):.2f} bytes per atom ({len(atoms)} atoms of rattled bcc W, "
          f"extxyz {63} bytes per atom)")
    assert size / len(atoms) <= 20


def test_more_atoms_than_one_chunk():
    atoms = thermal_crystal((33, 33, 33))  # 71,874 atoms: two HDF5 chunks
    assert len(atoms) > CHUNK_ATOMS
    payload = snapshot_bytes(atoms)
    assert_same_atoms(read_snapshot(io.BytesIO(payload)), atoms)
    part = read_snapshot_range(io.BytesIO(payload), CHUNK_ATOMS - 5, CHUNK_ATOMS + 5)
    assert np.allclose(part.positions, atoms.positions[CHUNK_ATOMS - 5:CHUNK_ATOMS + 5], rtol=FLOAT32_RELATIVE, atol=0)


def test_snapshot_without_structure_types_or_atoms():
    atoms = bulk("W", "bcc", a=3.165, cubic=True)
    assert "structure_type" not in read_snapshot(io.BytesIO(snapshot_bytes(atoms))).arrays
    empty = Atoms(cell=[10, 10, 10], pbc=True)
    read = read_snapshot(io.BytesIO(snapshot_bytes(empty)))
    assert len(read) == 0 and np.array_equal(read.cell.array, empty.cell.array)
    assert b"".join(snapshot_extxyz_chunks(io.BytesIO(snapshot_bytes(empty)))).startswith(b"0\n")


def test_a_truncated_file_names_the_file_and_says_so(tmp_path):
    path = tmp_path / "cut.dgh5"
    payload = snapshot_bytes(thermal_crystal((4, 4, 4)))
    path.write_bytes(payload[: len(payload) // 2])
    with pytest.raises(SnapshotFormatError, match=rf"^{path}: not a readable dg-snapshot file \(the file is "
                                                  "truncated") as caught:
        read_snapshot(path)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_a_foreign_file_names_the_file_and_what_it_is(tmp_path):
    text = tmp_path / "frame.dgh5"
    text.write_text("2\nnot HDF5\nW 0 0 0\nW 1 1 1\n")
    with pytest.raises(SnapshotFormatError, match=rf"^{text}: not a readable dg-snapshot file \(it is not an HDF5"):
        read_snapshot(text)
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as handle:
        handle["positions"] = np.zeros((2, 3))
    with pytest.raises(SnapshotFormatError, match=rf"^{other}: an HDF5 file with no 'format' attribute, not "
                                                  "'defect-genome-snapshot-1'"):
        read_snapshot(other)
    with pytest.raises(SnapshotFormatError, match=r"^<BytesIO>: not a readable dg-snapshot file"):
        read_snapshot(io.BytesIO(b"\0" * 4096))
    with pytest.raises(FileNotFoundError):
        read_snapshot(tmp_path / "missing.dgh5")


def test_damaged_data_names_the_atoms_it_cannot_read():
    payload = bytearray(snapshot_bytes(thermal_crystal((10, 10, 10))))
    middle = len(payload) // 2  # inside the compressed positions
    payload[middle:middle + 64] = b"\xff" * 64
    with pytest.raises(SnapshotFormatError, match=r"^<BytesIO>: cannot read atoms 0\.\.2000 of the dg-snapshot file, "
                                                  "it is damaged"):
        read_snapshot(io.BytesIO(bytes(payload)))


def test_what_the_format_cannot_hold_is_refused_by_name():
    atoms = bulk("W", "bcc", a=3.165, cubic=True)
    atoms.set_momenta(np.ones((len(atoms), 3)))
    with pytest.raises(SnapshotFormatError, match=r"atoms.arrays has 'momenta': .* write extxyz to keep the others"):
        snapshot_bytes(atoms)
    atoms = bulk("W", "bcc", a=3.165, cubic=True)
    atoms.info["calculator"] = object()
    with pytest.raises(SnapshotFormatError, match=r"atoms.info\['calculator'\] is a object"):
        snapshot_bytes(atoms)
    atoms.info = {"stress": [1.0, 2.0]}
    with pytest.raises(SnapshotFormatError, match=r"atoms.info\['stress'\] must be 6 Voigt values or 3 x 3"):
        snapshot_bytes(atoms)
