"""Production shape: PostgreSQL, Redis and a separate `defect-genome worker` process that is killed mid-stage."""

from __future__ import annotations

import copy
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import redis
from support import REDIS_URL, TINY_SPEC, reset_postgres, wait_for

from app.db.models import Structure, WorkItem
from app.db.session import session_scope

VISIBILITY_TIMEOUT = 8  # s; a dead worker's task is delivered again after this


@pytest.fixture
def broker_env(monkeypatch, tmp_path, postgres_server_url):
    from app.db.migrate import upgrade
    from app.settings import get_settings

    reset_postgres(postgres_server_url)
    redis.Redis.from_url(REDIS_URL).flushdb()
    values = {
        "DG_DATA_DIR": str(tmp_path / "data"),
        "DG_DATABASE_URL": postgres_server_url,
        "DG_BROKER_URL": REDIS_URL,
        "DG_BROKER_VISIBILITY_TIMEOUT": str(VISIBILITY_TIMEOUT),
        "DG_TASK_RETRY_BACKOFF": "1",
    }
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    upgrade(postgres_server_url)
    yield values
    get_settings.cache_clear()


def _start_worker(env: dict[str, str], log: Path, queues: str = "md,select", concurrency: int = 1) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "app.cli", "worker", "--queues", queues, "--concurrency", str(concurrency)],
        env=os.environ | env,
        stdout=log.open("a"),
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group, so the kill takes the pool children too
    )


def _kill(worker: subprocess.Popen) -> None:
    os.killpg(worker.pid, signal.SIGKILL)
    worker.wait(timeout=30)


def test_killed_worker_resumes_and_stores_no_snapshot_twice(broker_env, tmp_path):
    from fastapi.testclient import TestClient

    from app.auth import create_token
    from app.main import create_app

    with session_scope() as session:
        token = create_token(session, "alice")
    headers = {"Authorization": f"Bearer {token}"}
    spec = copy.deepcopy(TINY_SPEC)
    spec["sampling"]["protocols"][0].update(steps_per_temperature=6000, snapshot_every=300)
    spec["sampling"]["protocols"][0]["structure"]["supercell"] = [6, 6, 6]
    expected_frames = 1 + 20 + 3  # bulk: 1 + 6000/300, vacancy: 1 + 200/100

    log = tmp_path / "worker.log"
    worker = _start_worker(broker_env, log)
    try:
        with TestClient(create_app()) as client:
            assert client.get("/health").json() == {"database": "ok", "broker": "ok"}
            response = client.post("/api/v1/campaigns", json=spec, headers=headers)
            assert response.status_code == 202, response.text
            campaign_id = response.json()["id"]

            def bulk_half_way():
                with session_scope() as session:
                    item = session.query(WorkItem).filter_by(campaign_id=campaign_id, key="bulk").one()
                    return 3 <= item.progress_done < 15

            wait_for(bulk_half_way, 120, interval=0.1, what=f"the worker to store snapshots ({log})")
            _kill(worker)
            with session_scope() as session:
                stored_before = session.query(Structure).filter_by(campaign_id=campaign_id).count()
            assert 3 <= stored_before < expected_frames

            worker = _start_worker(broker_env, log)

            def finished():
                body = client.get(f"/api/v1/campaigns/{campaign_id}", headers=headers).json()
                return body if body["status"] in ("succeeded", "failed", "cancelled") else None

            body = wait_for(finished, 240, interval=0.5, what=f"the campaign to finish ({log})")
            assert body["status"] == "succeeded", body
            items = {i["key"]: i for i in body["stages"][0]["items"]}
            assert items["bulk"]["attempts"] == 2  # delivered again after the kill
            assert items["vacancy"]["attempts"] == 1

            structures = client.get(
                f"/api/v1/campaigns/{campaign_id}/structures", params={"limit": 1000}, headers=headers
            ).json()
            sources = [s["source"] for s in structures["data"]]
            assert structures["count"] == len(sources) == len(set(sources)) == expected_frames
    finally:
        if worker.poll() is None:
            _kill(worker)


def test_boxes_fan_out_over_gcmc_workers_and_labels_run_on_the_dft_worker(broker_env, tmp_path):
    """The production shape of stages 4 and 5: PCC-GCMC boxes on two `gcmc` worker processes at once,
    labels only on a worker that consumes `dft` (as on an HPC node)."""
    from support import write_bulk_training_set

    from app.auth import get_or_create_user
    from app.db.models import Campaign, Label, Status
    from app.services import submit_campaign
    from schemas import parse_spec

    write_bulk_training_set(tmp_path / "bulk.extxyz", n_rattled=4)
    spec = parse_spec(copy.deepcopy(TINY_SPEC) | {
        "stop_after": None,
        "sampling": {"protocols": TINY_SPEC["sampling"]["protocols"][1:]},
        "selection": {"training_set": str(tmp_path / "bulk.extxyz"), "max_new": 1},
        "reconstruction": {"steps": 100, "exchanges": 50, "mc_moves": 20, "offsets": [-0.5, 0.0]},
        "labelling": {"engine": "eam"},
    })
    env = broker_env | {"DG_BROKER_VISIBILITY_TIMEOUT": "600"}  # longer than any task here: no redelivery
    science = _start_worker(env, tmp_path / "science.log", queues="md,select,gcmc", concurrency=2)
    dft = _start_worker(env, tmp_path / "dft.log", queues="dft")
    try:
        with session_scope() as session:
            campaign_id = submit_campaign(session, get_or_create_user(session, "alice"), spec).id

        def finished():
            with session_scope() as session:
                campaign = session.get(Campaign, campaign_id)
                return campaign if campaign.status.finished else None

        campaign = wait_for(finished, 300, interval=0.5, what=f"the campaign ({tmp_path}/*.log)")
        assert campaign.status == Status.succeeded, campaign.error
        with session_scope() as session:
            boxes = session.query(WorkItem).filter_by(campaign_id=campaign_id, queue="gcmc",
                                                      task_name="dg.reconstruction.run_box").all()
            assert len(boxes) == 8
            intervals = sorted((b.started_at, b.finished_at) for b in boxes)
            assert any(later[0] < earlier[1] for earlier, later in zip(intervals, intervals[1:]))
            (cell,) = session.query(Structure).filter_by(campaign_id=campaign_id, stage="periodic").all()
            label = session.get(Label, cell.label_id)
            assert (label.state, label.attempts) == ("succeeded", 1)
            assert label.energy / cell.n_atoms == pytest.approx(cell.info["energy_per_atom_potential"], abs=1e-6)
        received = "Task dg.labelling.label_structure["  # the worker's log line of a received task
        assert received in (tmp_path / "dft.log").read_text()
        assert received not in (tmp_path / "science.log").read_text()
    finally:
        for worker in (science, dft):
            if worker.poll() is None:
                _kill(worker)
