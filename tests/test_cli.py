"""The command line as a user runs it: a subprocess on the embedded default."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from support import TINY_SPEC, write_bulk_training_set

from app.db.migrate import is_at_head


def _cli(*args: str, data_dir: Path, extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DG_")}
    env |= {"DG_DATA_DIR": str(data_dir)} | (extra_env or {})
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args], env=env, capture_output=True, text=True, timeout=300
    )


def test_run_prints_summary_and_stores_campaign(tmp_path):
    spec = copy.deepcopy(TINY_SPEC)
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(yaml.safe_dump(spec))
    result = _cli("run", str(spec_file), "--no-progress", data_dir=tmp_path / "data")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "campaign 1 'tiny-w': succeeded" in out
    assert "sampling: succeeded (6/6)" in out
    assert "snapshots: 6" in out
    assert f"atoms (summed over snapshots): {3 * 250 + 3 * 249}" in out
    assert str(tmp_path / "data" / "defect-genome.sqlite") in out
    assert is_at_head(f"sqlite:///{tmp_path / 'data' / 'defect-genome.sqlite'}")
    # Content-addressed files, one per distinct structure (snapshots, dataset B, clusters)
    from sqlalchemy import create_engine, text

    engine = create_engine(f"sqlite:///{tmp_path / 'data' / 'defect-genome.sqlite'}")
    with engine.connect() as connection:
        n_distinct = connection.execute(text("SELECT COUNT(DISTINCT sha256) FROM structures")).scalar()
        n_sampling = connection.execute(text("SELECT COUNT(*) FROM structures WHERE stage = 'sampling'")).scalar()
    assert n_sampling == 6
    assert len(list((tmp_path / "data" / "structures").glob("*/*.extxyz"))) == n_distinct


def test_invalid_spec_exits_2_with_the_api_message(tmp_path):
    spec = copy.deepcopy(TINY_SPEC)
    spec["sampling"]["protocols"][0]["temperatures"] = [-10]
    spec_file = tmp_path / "bad.yaml"
    spec_file.write_text(yaml.safe_dump(spec))
    result = _cli("run", str(spec_file), data_dir=tmp_path / "data")
    assert result.returncode == 2
    assert "error: sampling.protocols.0.temperatures.0: Input should be greater than 0" in result.stderr
    assert not (tmp_path / "data" / "defect-genome.sqlite").exists()  # refused before anything is stored

    spec_file.write_text("name: x\nelement: [W\n")
    result = _cli("run", str(spec_file), data_dir=tmp_path / "data")
    assert result.returncode == 2 and "error: spec: malformed YAML at line" in result.stderr

    spec = copy.deepcopy(TINY_SPEC) | {"element": "Mo"}
    spec_file.write_text(yaml.safe_dump(spec))
    result = _cli("run", str(spec_file), data_dir=tmp_path / "data")
    assert result.returncode == 2 and "error: potential: " in result.stderr and "Mo" in result.stderr


def test_token_create_prints_a_working_token(tmp_path, monkeypatch):
    result = _cli("token", "create", "--user", "erin", data_dir=tmp_path / "data")
    assert result.returncode == 0
    token = result.stdout.strip()
    assert token.startswith("dg_") and len(token) > 30

    from fastapi.testclient import TestClient

    from app.main import create_app
    from app.settings import get_settings

    monkeypatch.setenv("DG_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("DG_DATABASE_URL", raising=False)
    get_settings.cache_clear()
    with TestClient(create_app()) as client:
        response = client.get("/api/v1/campaigns", headers={"Authorization": f"Bearer {token}"})
    get_settings.cache_clear()
    assert response.status_code == 200 and response.json() == {"data": [], "count": 0}


def _bulk_and_vacancy(tmp_path):
    import ase.io

    perfect = write_bulk_training_set(tmp_path / "train.extxyz")
    vacancy = perfect.copy()
    del vacancy[10]
    ase.io.write(tmp_path / "vacancy.extxyz", vacancy)
    return tmp_path / "train.extxyz", tmp_path / "vacancy.extxyz"


def test_grade_writes_gamma_and_prints_fractions(tmp_path):
    import json

    import ase.io

    train, vacancy = _bulk_and_vacancy(tmp_path)
    out = tmp_path / "graded.extxyz"
    result = _cli("grade", "--train", str(train), "--out", str(out), str(vacancy), data_dir=tmp_path / "data")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    # The 8 + 6 neighbours of the vacancy extrapolate strongly; the other 113 atoms interpolate
    assert summary["fraction_above_10"] == pytest.approx(14 / 127)
    assert summary["fraction_above_1"] == pytest.approx(14 / 127)
    graded = ase.io.read(out)
    assert graded.arrays["gamma"].max() == pytest.approx(summary["gamma_max"])
    assert (graded.arrays["gamma"] > 10).sum() == 14


def test_select_writes_diverse_clusters(tmp_path):
    import json

    import ase.io

    train, vacancy = _bulk_and_vacancy(tmp_path)
    out = tmp_path / "clusters.extxyz"
    result = _cli("select", "--train", str(train), "--out", str(out), "--vacuum", "8", str(vacancy),
                  data_dir=tmp_path / "data")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["candidates"] == 14
    # one environment per neighbour shell, not all 14: the selection is D-optimal, not just high-gamma
    assert 1 <= summary["selected"] < 14
    clusters = ase.io.read(out, ":")
    assert len(clusters) == summary["clusters"] and all(len(c) >= 130 for c in clusters)
    assert all(c.cell.lengths().min() >= 16.0 for c in clusters)  # 8 A of vacuum on every side


def test_grade_with_mlip3_needs_the_binary(tmp_path):
    train, vacancy = _bulk_and_vacancy(tmp_path)
    result = _cli("grade", "--basis", "mlip3", "--train", str(train), "--out", str(tmp_path / "o.extxyz"),
                  str(vacancy), data_dir=tmp_path / "data")
    assert result.returncode == 2 and "DG_MLP_BINARY" in result.stderr
