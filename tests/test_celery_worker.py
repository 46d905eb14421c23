"""Production shape: PostgreSQL, Redis and separate `defect-genome worker` processes, one killed mid-stage."""

from __future__ import annotations

import copy
import itertools
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import redis
from sqlalchemy import func, select
from support import REDIS_URL, TINY_SPEC, reset_postgres, wait_for, wait_for_campaign

from core.models import Status, Structure, WorkItem
from core.session import session_scope

LEASE_TIMEOUT = 5  # s; a dead worker's item is sent again this long after its last heartbeat


@pytest.fixture
def broker_env(monkeypatch, tmp_path, postgres_server_url):
    from core.migrate import upgrade
    from core.settings import get_settings

    reset_postgres(postgres_server_url)
    redis.Redis.from_url(REDIS_URL).flushdb()
    values = {
        "DG_DATA_DIR": str(tmp_path / "data"),
        "DG_DATABASE_URL": postgres_server_url,
        "DG_BROKER_URL": REDIS_URL,
        "DG_LEASE_TIMEOUT": str(LEASE_TIMEOUT),  # the broker's visibility timeout stays at its default (6 h)
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
    try:
        os.killpg(worker.pid, signal.SIGKILL)
    except ProcessLookupError:  # the whole group is gone already
        pass
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
            assert items["bulk"]["attempts"] == 2  # sent again by the lease sweeper after the kill
            assert items["vacancy"]["attempts"] == 1

            structures = client.get(
                f"/api/v1/campaigns/{campaign_id}/structures", params={"limit": 1000}, headers=headers
            ).json()
            sources = [s["source"] for s in structures["data"]]
            assert structures["count"] == len(sources) == len(set(sources)) == expected_frames
    finally:
        if worker.poll() is None:
            _kill(worker)


# 1.5 min; in the default suite tests/test_otf_stages.py checks the same queues (gcmc boxes side by side,
# labels on dft only)
@pytest.mark.slow
def test_boxes_fan_out_over_gcmc_workers_and_labels_run_on_the_dft_worker(broker_env, tmp_path):
    """The production shape of stages 4 and 5: PCC-GCMC boxes on two `gcmc` worker processes at once,
    labels only on a worker that consumes `dft` (as on an HPC node)."""
    from support import write_bulk_training_set

    from app.auth import get_or_create_user
    from app.services import submit_campaign
    from core.models import Label, Status
    from schemas import parse_spec

    write_bulk_training_set(tmp_path / "bulk.extxyz", n_rattled=4)
    spec = parse_spec(copy.deepcopy(TINY_SPEC) | {
        "stop_after": None,
        "sampling": {"protocols": TINY_SPEC["sampling"]["protocols"][1:]},
        "selection": {"training_set": str(tmp_path / "bulk.extxyz"), "max_new": 1},
        "reconstruction": {"steps": 100, "exchanges": 50, "mc_moves": 20, "offsets": [-0.5, 0.0]},
        "labelling": {"engine": "eam"},
    })
    science = _start_worker(broker_env, tmp_path / "science.log", queues="md,select,gcmc", concurrency=2)
    dft = _start_worker(broker_env, tmp_path / "dft.log", queues="dft")
    try:
        with session_scope() as session:
            campaign_id = submit_campaign(session, get_or_create_user(session, "alice"), spec).id

        campaign = wait_for_campaign(campaign_id, 300, interval=0.5, what=f"the campaign ({tmp_path}/*.log)")
        assert campaign.status == Status.succeeded, campaign.error
        with session_scope() as session:
            boxes = session.query(WorkItem).filter_by(campaign_id=campaign_id, queue="gcmc",
                                                      task_name="dg.reconstruction.run_box").all()
            assert len(boxes) == 8
            intervals = sorted((b.started_at, b.finished_at) for b in boxes)
            assert any(later[0] < earlier[1] for earlier, later in itertools.pairwise(intervals))
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


def test_workers_with_two_pool_processes_on_every_queue_run_a_campaign(broker_env, tmp_path):
    """`--concurrency 2` (docker-compose's select and gcmc workers): the two pool processes of each worker
    never share the database connections their parent opened before forking them (that gave
    psycopg.InterfaceError: unexpected result EMPTY_QUERY from command 'BEGIN')."""
    from support import write_bulk_training_set

    from app.auth import get_or_create_user
    from app.services import submit_campaign
    from core.models import Label, Status
    from schemas import parse_spec

    write_bulk_training_set(tmp_path / "bulk.extxyz", n_rattled=4)
    # two clusters of one box each: items on every queue, side by side in both pool processes
    spec = parse_spec(copy.deepcopy(TINY_SPEC) | {
        "stop_after": "labelling",
        "selection": {"training_set": str(tmp_path / "bulk.extxyz"), "max_new": 2},
        "reconstruction": {"steps": 100, "exchanges": 50, "mc_moves": 20, "offsets": [-0.5]},
        "labelling": {"engine": "eam"},
    })
    logs = [tmp_path / "worker-a.log", tmp_path / "worker-b.log"]
    workers = [_start_worker(broker_env, log, queues="md,select,gcmc,dft", concurrency=2) for log in logs]
    try:
        with session_scope() as session:
            campaign_id = submit_campaign(session, get_or_create_user(session, "alice"), spec).id

        campaign = wait_for_campaign(campaign_id, 240, interval=0.5, what=f"the campaign ({tmp_path}/*.log)")
        assert campaign.status == Status.succeeded, campaign.error
        with session_scope() as session:
            items = session.query(WorkItem).filter_by(campaign_id=campaign_id).all()
            assert {item.status for item in items} == {Status.succeeded}
            assert all(item.attempts == 1 for item in items), [(i.key, i.attempts) for i in items]
            cells = session.query(Structure).filter_by(campaign_id=campaign_id, stage="periodic").all()
            assert cells and all(session.get(Label, cell.label_id).state == "succeeded" for cell in cells)
        text = "".join(log.read_text() for log in logs)
        for symptom in ("EMPTY_QUERY", "InterfaceError", "OperationalError", "ProgrammingError", "retry:"):
            assert symptom not in text, f"{symptom} in the worker logs {logs}"
    finally:
        for worker in workers:
            if worker.poll() is None:
                _kill(worker)


def test_resume_of_a_live_campaign_and_a_duplicate_message_run_nothing_twice(broker_env, tmp_path):
    """While a worker runs an item: `POST .../resume` leaves it to that worker, and a second message for it,
    taken by an idle worker, does nothing (its lease is held)."""
    from fastapi.testclient import TestClient

    from app.auth import create_token
    from app.main import create_app
    from workers.celery_app import celery_for

    with session_scope() as session:
        token = create_token(session, "alice")
    headers = {"Authorization": f"Bearer {token}"}
    spec = copy.deepcopy(TINY_SPEC)
    spec["sampling"]["protocols"] = spec["sampling"]["protocols"][:1]
    # about 20 s: the item must still run when the second worker is up (it takes ~4 s to start under load)
    spec["sampling"]["protocols"][0].update(steps_per_temperature=30000, snapshot_every=5000)
    busy_log, idle_log = tmp_path / "busy.log", tmp_path / "idle.log"
    workers = [_start_worker(broker_env, busy_log, queues="md")]
    try:
        with TestClient(create_app()) as client:
            response = client.post("/api/v1/campaigns", json=spec, headers=headers)
            assert response.status_code == 202, response.text
            campaign_id = response.json()["id"]

            def running_item():
                with session_scope() as session:
                    item = session.query(WorkItem).filter_by(campaign_id=campaign_id, key="bulk").one()
                    return item if item.status == Status.running and item.progress_done >= 1 else None

            item = wait_for(running_item, 120, interval=0.05, what=f"the item to run ({busy_log})")
            workers.append(_start_worker(broker_env, idle_log, queues="md"))
            wait_for(lambda: " ready." in idle_log.read_text(), 60, interval=0.1,
                     what=f"the second worker to start ({idle_log})")
            assert running_item() is not None, "the item ended before the second worker was up"

            response = client.post(f"/api/v1/campaigns/{campaign_id}/resume", headers=headers)
            assert response.status_code == 202, response.text
            duplicate = celery_for(broker_env["DG_BROKER_URL"]).send_task(
                "dg.sampling.run_protocol", args=[item.id], queue="md")
            wait_for(lambda: f"[{duplicate.id}] succeeded" in idle_log.read_text(), 60, interval=0.1,
                     what=f"the idle worker to take the duplicate ({idle_log})")
            with session_scope() as session:
                now = session.get(WorkItem, item.id)
                assert (now.status, now.lease_owner, now.attempts) == (Status.running, item.lease_owner, 1)

            def finished():
                body = client.get(f"/api/v1/campaigns/{campaign_id}", headers=headers).json()
                return body if body["status"] in ("succeeded", "failed", "cancelled") else None

            body = wait_for(finished, 120, interval=0.2, what=f"the campaign ({busy_log})")
            assert body["status"] == "succeeded", body
            (only,) = body["stages"][0]["items"]
            assert only["attempts"] == 1
        with session_scope() as session:
            sources = [s.source for s in session.query(Structure).filter_by(campaign_id=campaign_id)]
        assert len(sources) == len(set(sources)) == 7
    finally:
        for worker in workers:
            if worker.poll() is None:
                _kill(worker)


def _group_pids(pgid: int) -> set[int]:
    """Live processes of one process group (a worker, its pool processes and what they started)."""
    pids = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            pids.add(int(stat.parent.name))
    return pids


CHAOS_LEASE_TIMEOUT = 10  # s


# 2 min; the default suite kills workers in test_killed_worker_resumes_... and tests/test_otf_stages.py
@pytest.mark.slow
def test_campaign_survives_workers_killed_at_random(broker_env, tmp_path):
    """Three workers on every queue (one with two pool processes), five SIGKILLs chosen by a seeded RNG:
    a pool process running an item, or the main process of the worker running one (then the whole worker
    is gone and restarted, as a container would be). The broker's visibility timeout stays at 6 h: the
    lease sweeper of the surviving workers sends the lost work again. The campaign ends without help,
    every snapshot, cell and label is stored once, and only interrupted work runs again."""
    import random
    import time

    from support import write_bulk_training_set

    from app.auth import get_or_create_user
    from app.services import submit_campaign
    from core.models import Artifact, Campaign, Label
    from schemas import parse_spec

    rng = random.Random(15)
    write_bulk_training_set(tmp_path / "bulk.extxyz", n_rattled=4)
    spec = copy.deepcopy(TINY_SPEC) | {
        "stop_after": "labelling",
        "selection": {"training_set": str(tmp_path / "bulk.extxyz"), "max_new": 2},
        "reconstruction": {"protocol": "fast", "offsets": [0.0], "steps": 200, "max_atoms": 40, "core_radius": 3.2},
        "labelling": {"engine": "eam"},
    }
    for protocol in spec["sampling"]["protocols"]:  # 2 x 11 snapshots, about 2 s each run
        protocol.update(steps_per_temperature=3000, snapshot_every=300)
    expected_frames = 2 * 11
    env = broker_env | {"DG_LEASE_TIMEOUT": str(CHAOS_LEASE_TIMEOUT)}
    slots = [("a", 2), ("b", 1), ("c", 1)]  # name, pool processes
    logs = {name: tmp_path / f"worker-{name}.log" for name, _ in slots}
    workers = {name: _start_worker(env, logs[name], queues="md,select,gcmc,dft", concurrency=n) for name, n in slots}
    interrupted: dict[int, int] = {}  # work item -> kills that hit a process running it
    labels_in_flight: set[int] = set()  # ledger rows submitted or running at a kill
    try:
        with session_scope() as session:
            campaign_id = submit_campaign(session, get_or_create_user(session, "alice"), parse_spec(spec)).id

        def campaign_status() -> Status:
            with session_scope() as session:
                return session.get(Campaign, campaign_id).status

        def running() -> list[tuple[int, str, int]]:
            """(item, task, pid) of items running under a lease of a live process of our workers."""
            mains = {worker.pid for worker in workers.values()}
            with session_scope() as session:
                rows = session.query(WorkItem.id, WorkItem.task_name, WorkItem.lease_owner).filter_by(
                    campaign_id=campaign_id, status=Status.running).order_by(WorkItem.id).all()
            found = []
            for item_id, task, owner in rows:
                pid = int(owner.split(":")[1])
                try:
                    if os.getpgid(pid) in mains:
                        found.append((item_id, task, pid))
                except ProcessLookupError:
                    pass
            return found

        # the kills spread over five stages: PCC-GCMC boxes, labels and three more drawn by the RNG
        others = ["dg.sampling.run_protocol", "dg.selection.build_active_set", "dg.selection.grade_snapshot",
                  "dg.selection.select_and_cut", "dg.reconstruction.assemble"]
        to_hit = {"dg.reconstruction.run_box", "dg.labelling.label_structure", *rng.sample(others, 3)}

        def targets(since: float) -> list[tuple[int, str, int]]:
            """Running items not hit before, of a stage still to hit (any stage after 20 s without one)."""
            fresh = [target for target in running() if target[0] not in interrupted]
            wanted = [target for target in fresh if target[1] in to_hit]
            return wanted or (fresh if time.monotonic() - since > 20 else [])

        last_kill = time.monotonic()
        kills: list[str] = []
        while len(kills) < 5:
            assert campaign_status() == Status.running, f"the campaign ended after {len(kills)} kills"
            time.sleep(rng.uniform(0.5, 2.0))
            since = time.monotonic()
            while not (choices := targets(since)):
                assert time.monotonic() < since + 60, f"no item ran for 60 s after kill {len(kills)} ({tmp_path})"
                time.sleep(0.02)
            item_id, task, pid = rng.choice(choices)
            to_hit.discard(task)
            name = next(name for name, worker in workers.items() if os.getpgid(pid) == worker.pid)
            if rng.random() < 0.5:  # a pool process: its worker forks a new one
                killed = {pid}
                os.kill(pid, signal.SIGKILL)
                kills.append(f"pool process {pid} of worker {name} running item {item_id} ({task})")
            else:  # the worker's main process, then the rest of it; restarted as a container would be
                main = workers[name].pid
                killed = _group_pids(main)
                os.kill(main, signal.SIGKILL)
                _kill(workers[name])
                workers[name] = _start_worker(env, logs[name], queues="md,select,gcmc,dft",
                                              concurrency=dict(slots)[name])
                kills.append(f"main process {main} of worker {name} (running item {item_id}, {task})")
            last_kill = time.monotonic()
            time.sleep(0.2)
            with session_scope() as session:
                for hit, owner in session.query(WorkItem.id, WorkItem.lease_owner).filter_by(
                        campaign_id=campaign_id, status=Status.running):
                    if int(owner.split(":")[1]) in killed:
                        interrupted[hit] = interrupted.get(hit, 0) + 1
                labels_in_flight |= set(session.scalars(
                    select(Label.id).where(Label.state.in_(("submitted", "running")))))

        def finished():
            status = campaign_status()
            return status if status.finished else None

        status = wait_for(finished, CHAOS_LEASE_TIMEOUT + 120, interval=0.5,
                          what=f"the campaign after the last kill ({tmp_path}/*.log; kills: {kills})")
        took = time.monotonic() - last_kill
        assert status == Status.succeeded, kills
        assert interrupted, kills

        with session_scope() as session:
            items = session.query(WorkItem).filter_by(campaign_id=campaign_id).all()
            assert {item.status for item in items} == {Status.succeeded}
            over = {item.key: (item.attempts, interrupted.get(item.id, 0)) for item in items
                    if item.attempts > 1 + interrupted.get(item.id, 0)}
            assert not over, f"items run more often than they were interrupted: {over}; kills: {kills}"
            per_stage = dict(session.query(Structure.stage, func.count()).filter_by(campaign_id=campaign_id)
                             .group_by(Structure.stage).all())
            sources = session.scalars(select(Structure.source).where(Structure.campaign_id == campaign_id)).all()
            assert len(sources) == len(set(sources))
            summary = session.query(Artifact.data).filter_by(
                campaign_id=campaign_id, kind="reconstruction", name="campaign").scalar()
            assert per_stage["sampling"] == expected_frames
            assert per_stage["cluster"] == per_stage["cluster_vacuum"] == summary["clusters"] >= 1
            assert per_stage["periodic"] == summary["reconstructed"] >= 1
            grading = [item for item in items if item.task_name == "dg.selection.grade_snapshot"]
            boxes = [item for item in items if item.task_name == "dg.reconstruction.run_box"]
            labelling = [item for item in items if item.task_name == "dg.labelling.label_structure"]
            assert len(grading) == expected_frames and len(boxes) == summary["clusters"]
            assert len(labelling) == per_stage["periodic"]
            cells = session.query(Structure).filter_by(campaign_id=campaign_id, stage="periodic").all()
            rows = [session.get(Label, cell.label_id) for cell in cells]
            assert len({row.id for row in rows}) == len(cells)
            assert all(row.state == "succeeded" for row in rows)
            twice = [(row.id, row.attempts) for row in rows if row.attempts > (2 if row.id in labels_in_flight else 1)]
            assert not twice, f"labels computed again without an interruption: {twice}"
        swept = "".join(log.read_text() for log in logs.values())
        assert "lease sweeper: sending again work items" in swept
        for symptom in ("EMPTY_QUERY", "InterfaceError", "INTRANS"):  # pool processes never share connections
            assert symptom not in swept, f"{symptom} in the worker logs ({tmp_path})"
        print(f"chaos: {kills}; the campaign ended {took:.0f} s after the last kill")
        print("\n".join(line for line in swept.splitlines() if "lease sweeper" in line))
    finally:
        for worker in workers.values():
            if worker.poll() is None:
                _kill(worker)


def test_a_message_lost_with_a_killed_worker_is_sent_again(broker_env, tmp_path):
    """A worker's main process dies with a message it had reserved (here a task waiting for its countdown):
    Redis would give it back only after the 6 h visibility timeout. The item waits pending behind an empty
    queue for longer than the lease timeout, so another worker's sweeper sends it again."""
    from app.auth import get_or_create_user
    from app.services import submit_campaign
    from schemas import parse_spec
    from workers.celery_app import celery_for

    spec = copy.deepcopy(TINY_SPEC)
    spec["sampling"]["protocols"] = spec["sampling"]["protocols"][1:]
    queued = []
    with session_scope() as session:
        campaign_id = submit_campaign(session, get_or_create_user(session, "alice"), parse_spec(spec), queued.extend).id
    (ref,) = queued
    first_log, second_log = tmp_path / "first.log", tmp_path / "second.log"
    first = _start_worker(broker_env, first_log, queues="md")
    second = None
    try:
        wait_for(lambda: "ready." in first_log.read_text(), 60, what=f"the worker ({first_log})")
        message = celery_for(broker_env["DG_BROKER_URL"]).send_task(
            ref.task_name, args=[ref.item_id], queue=ref.queue, countdown=3600)
        wait_for(lambda: f"[{message.id}] received" in first_log.read_text(), 30, what=f"the reservation ({first_log})")
        _kill(first)
        broker = redis.Redis.from_url(broker_env["DG_BROKER_URL"])
        assert broker.llen("md") == 0 and broker.hlen("unacked") == 1  # gone with the worker for 6 h

        second = _start_worker(broker_env, second_log, queues="md")

        campaign = wait_for_campaign(campaign_id, LEASE_TIMEOUT + 60, interval=0.2, what=f"the campaign ({second_log})")
        assert campaign.status == Status.succeeded, campaign.error
        with session_scope() as session:
            assert session.get(WorkItem, ref.item_id).attempts == 1
            assert session.query(Structure).filter_by(campaign_id=campaign_id).count() == 3
        assert f"lease sweeper: sending again work items [{ref.item_id}]" in second_log.read_text()
    finally:
        for worker in (first, second):
            if worker is not None and worker.poll() is None:
                _kill(worker)
