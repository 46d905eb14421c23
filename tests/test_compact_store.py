"""Compact snapshots in the structure store, their bulk environment rows, and their download as extxyz, on each
backend (SQLite file, real PostgreSQL)."""

from __future__ import annotations

import hashlib
import io
import time

import ase.io
import numpy as np
import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from test_snapshot_format import FLOAT32_RELATIVE, assert_same_atoms, thermal_crystal

from core import access
from core.models import Campaign, Environment, Structure, User
from core.session import session_scope
from core.settings import get_settings
from core.storage import StructureStore, canonical_extxyz
from sampling.protocols import Snapshot
from schemas.artifacts import StructureTypeCounts
from workers.stages.sampling import _store_snapshot


def test_compact_and_extxyz_files_side_by_side(tmp_path):
    store = StructureStore(tmp_path)
    atoms = thermal_crystal((4, 4, 4))
    sha256, relative = store.put(atoms, compact=True)
    assert relative == f"structures/{sha256[:2]}/{sha256}.dgh5"
    assert hashlib.sha256(store.path(relative).read_bytes()).hexdigest() == sha256
    assert store.put(atoms.copy(), compact=True) == (sha256, relative)  # content-addressed: stored once
    assert_same_atoms(store.read(relative), atoms)

    # files stored before the compact format (and every non-snapshot structure) stay extxyz, read as before
    legacy_sha, legacy = store.put(atoms)
    assert legacy == f"structures/{legacy_sha[:2]}/{legacy_sha}.extxyz"
    assert store.path(legacy).read_bytes() == canonical_extxyz(atoms)
    from_extxyz = store.read(legacy)
    assert np.allclose(from_extxyz.positions, atoms.positions, rtol=0, atol=5e-9)  # extxyz: 8 decimals
    assert from_extxyz.get_potential_energy() == atoms.info["energy"]

    # either as extxyz bytes, chunk by chunk: a compact file is converted, an extxyz file copied
    out = io.BytesIO()
    assert store.write_extxyz(relative, out) == len(out.getvalue())
    assert out.getvalue() == canonical_extxyz(store.read(relative))
    assert b"".join(store.extxyz_chunks(legacy)) == store.path(legacy).read_bytes()
    with pytest.raises(FileNotFoundError):
        store.extxyz_chunks("structures/00/missing.dgh5")  # at the call, before any byte is sent


def _campaign(owner: str = "carol") -> int:
    with session_scope() as session:
        user = session.scalars(select(User).where(User.name == owner)).one_or_none()
        if user is None:
            user = User(name=owner)
            session.add(user)
            session.flush()
        campaign = Campaign(owner_id=user.id, name="compact", element="W", spec={})
        session.add(campaign)
        session.flush()
        return campaign.id


def _structure(campaign_id: int, store: StructureStore, atoms, source: str) -> int:
    sha256, path = store.put(atoms, compact=True)
    with session_scope() as session:
        structure = Structure(campaign_id=campaign_id, sha256=sha256, path=path, stage="sampling", source=source,
                              formula=atoms.get_chemical_formula(), n_atoms=len(atoms), pbc=[True] * 3,
                              cell=atoms.cell.array.tolist())
        session.add(structure)
        session.flush()
        return structure.id


def _environments(structure_id: int) -> dict[int, tuple[str, float | None, bool]]:
    with session_scope() as session:
        rows = session.execute(select(Environment.atom_index, Environment.structure_type, Environment.gamma,
                                      Environment.selected).where(Environment.structure_id == structure_id)).all()
    return {index: (kind, gamma, selected) for index, kind, gamma, selected in rows}


def test_bulk_environment_rows(env):
    store = StructureStore(get_settings().data_dir)
    structure_id = _structure(_campaign(), store, thermal_crystal((2, 2, 2)), "bulk/frame-0")
    n = 50_000
    indices = np.arange(n) * 3
    kinds = ["other" if i % 7 else "bcc" for i in range(n)]
    backend = env["DG_DATABASE_URL"].split(":")[0]

    started = time.perf_counter()
    with session_scope() as session:
        access.insert_environments(session, structure_id, indices, kinds)
    inserted = time.perf_counter() - started
    rows = _environments(structure_id)
    assert len(rows) == n
    assert rows[0] == ("bcc", None, False) and rows[3] == ("other", None, False)
    assert rows[3 * (n - 1)] == (kinds[-1], None, False) and rows[3 * 7 * 1000] == ("bcc", None, False)

    gammas = np.linspace(0.5, 20.0, n)
    started = time.perf_counter()
    with session_scope() as session:
        access.set_environment_gammas(session, structure_id, indices, gammas)
    updated = time.perf_counter() - started
    print(f"{backend}: {n} environment rows inserted in {inserted:.3f} s ({n / inserted:,.0f} rows/s), "
          f"gammas set in {updated:.3f} s ({n / updated:,.0f} rows/s)")
    rows = _environments(structure_id)
    assert [rows[int(i)][1] for i in indices] == pytest.approx(gammas.tolist(), rel=1e-15)
    assert rows[3 * 12345] == (kinds[12345], pytest.approx(gammas[12345]), False)

    # the unique (structure, atom) constraint: a second delivery of the same rows fails, the first stay
    with pytest.raises(IntegrityError), session_scope() as session:
        access.insert_environments(session, structure_id, indices[:10], kinds[:10])
    assert _environments(structure_id) == rows

    # nothing to do is no statement; unequal lengths are a caller's error
    with session_scope() as session:
        access.insert_environments(session, structure_id, [], [])
        access.set_environment_gammas(session, structure_id, np.array([], dtype=int), np.array([]))
        with pytest.raises(ValueError, match="2 atom indices but 1 gammas"):
            access.set_environment_gammas(session, structure_id, [1, 2], [1.0])


def test_environment_rows_roll_back_with_their_structure(env):
    """The rows are written in the caller's transaction: a failure after them leaves neither structure nor rows."""
    store = StructureStore(get_settings().data_dir)
    atoms = thermal_crystal((2, 2, 2))
    sha256, path = store.put(atoms, compact=True)
    campaign_id = _campaign()
    with pytest.raises(RuntimeError, match="worker killed"), session_scope() as session:
        structure = Structure(campaign_id=campaign_id, sha256=sha256, path=path, stage="sampling", source="x/frame-0",
                              formula="W16", n_atoms=16, pbc=[True] * 3, cell=atoms.cell.array.tolist())
        session.add(structure)
        session.flush()
        access.insert_environments(session, structure.id, range(16), ["bcc"] * 16)
        raise RuntimeError("worker killed")
    with session_scope() as session:
        assert session.scalar(select(func.count(Structure.id))) == 0
        assert session.scalar(select(func.count(Environment.id))) == 0


def test_store_snapshot_writes_compact_file_and_rows_once(env):
    """The sampling stage's own storing: compact file, structure row, type counts and environment rows in one
    transaction; a second delivery of the same frame (the IntegrityError branch) changes nothing."""
    store = StructureStore(get_settings().data_dir)
    campaign_id = _campaign()
    atoms = thermal_crystal((10, 10, 10))  # 2000 atoms, a twentieth of them type 5 ("other")
    defects = np.flatnonzero(atoms.arrays["structure_type"] != 3)
    snapshot = Snapshot(index=0, step=2000, time_ps=2.0, atoms=atoms, defect_indices=defects,
                        counts={"bcc": len(atoms) - len(defects), "other": len(defects)})
    _store_snapshot(store, campaign_id, "tension-x/frame-0", snapshot)
    _store_snapshot(store, campaign_id, "tension-x/frame-0", snapshot)
    with session_scope() as session:
        (structure,) = session.scalars(select(Structure).where(Structure.campaign_id == campaign_id)).all()
        structure_id, path, n_candidates = structure.id, structure.path, structure.n_candidates
        counts = access.load_artifact(session, campaign_id, StructureTypeCounts, "tension-x")
    assert path.endswith(".dgh5") and n_candidates == len(defects)
    assert_same_atoms(store.read(path), atoms)
    rows = _environments(structure_id)
    assert sorted(rows) == defects.tolist() and {kind for kind, _, _ in rows.values()} == {"other"}
    assert counts is not None and counts.counts() == snapshot.counts  # counted once


def test_compact_snapshot_downloads_as_extxyz(client, tokens):
    store = StructureStore(get_settings().data_dir)
    campaign_id = _campaign("alice")
    atoms = thermal_crystal((33, 33, 33))  # 71,874 atoms: more than one HDF5 chunk, converted in two ranges
    structure_id = _structure(campaign_id, store, atoms, "bulk/frame-0")
    with session_scope() as session:
        sha256 = session.get_one(Structure, structure_id).sha256

    response = client.get(f"/api/v1/structures/{structure_id}/file",
                          headers={"Authorization": f"Bearer {tokens['alice']}"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("chemical/x-extxyz")
    assert response.headers["content-disposition"] == f'attachment; filename="{sha256}.extxyz"'
    downloaded = ase.io.read(io.StringIO(response.text), format="extxyz")
    assert downloaded.get_chemical_symbols() == atoms.get_chemical_symbols()
    assert np.array_equal(downloaded.cell.array, atoms.cell.array)
    assert np.all(np.abs(downloaded.positions - atoms.positions) <= FLOAT32_RELATIVE * np.abs(atoms.positions) + 5e-9)
    assert np.array_equal(downloaded.arrays["structure_type"], atoms.arrays["structure_type"])
    assert downloaded.get_potential_energy() == pytest.approx(atoms.info["energy"], abs=1e-6)
    assert downloaded.info["strain"] == atoms.info["strain"]

    other = client.get(f"/api/v1/structures/{structure_id}/file", headers={"Authorization": f"Bearer {tokens['bob']}"})
    assert other.status_code == 404
