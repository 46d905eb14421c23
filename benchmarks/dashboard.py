"""Dashboard page load times with 10,000 structures, against a 100-structure campaign in the same run.

Seeds (bulk inserts, no MD) a temporary SQLite database, or with --postgres a fresh database on the test
PostgreSQL server, with two finished campaigns owned by one user:

- baseline: 100 sampling snapshots, 14 graded environments each, a per-snapshot gamma histogram each
  and the merged one, 10 label rows, 1 PCC-GCMC cluster table, a SOAP map;
- large: 10,000 snapshots (140,000 environments, 10,000 histogram artifacts), 1,000 label rows (a third
  failed), 100 cluster tables of 27 boxes, a SOAP map of 3 x 2,000 points;

plus 60 one-snapshot campaigns so that the campaign list has pages. Then serves the real app with uvicorn
and times GET (median of --repeat requests, after one warm-up) of the list, each campaign page (first and
last label/structure pages), the histogram and progress JSON, and one structure page.

    .venv/bin/python benchmarks/dashboard.py [--repeat 7] [--postgres] [--structures 10000]

``--structures N`` sizes the large campaign (default 10,000; N/10 label rows, N/100 cluster tables, at least
one): a small N is a smoke run of the same requests, not the benchmark.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import socket
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

POSTGRES_URL = os.environ.get("DG_TEST_POSTGRES_URL", "postgresql://postgres:postgres@127.0.0.1:5432/postgres")
STAGES = ("sampling", "training_set", "grading", "selection", "gcmc_boxes", "reconstruction", "labelling")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _seed_campaign(session, owner_id: int, name: str, n: int, n_labels: int, n_clusters: int,
                   structure_path: str, rng: random.Random) -> int:
    import numpy as np
    from sqlalchemy import insert, select

    from core.models import Artifact, Campaign, Environment, Label, StageRun, Status, Structure, WorkItem, utcnow
    from selection.maxvol import log_histogram, merge_histograms

    now = utcnow()
    campaign = Campaign(owner_id=owner_id, name=name, element="W", spec={"name": name}, status=Status.succeeded,
                        finished_at=now)
    campaign.stages = [StageRun(stage=s, position=i, status=Status.succeeded, progress_done=n, progress_total=n,
                                attempts=1, started_at=now, finished_at=now) for i, s in enumerate(STAGES)]
    session.add(campaign)
    session.flush()
    grading = campaign.stages[2].id
    session.execute(insert(WorkItem), [
        {"stage_run_id": grading, "campaign_id": campaign.id, "key": f"s{k}",
         "task_name": "dg.selection.grade_snapshot",
         "queue": "select", "params": {}, "status": Status.succeeded, "attempts": 1, "progress_done": 1,
         "progress_total": 1, "started_at": now, "finished_at": now} for k in range(n)])
    session.execute(insert(Structure), [
        {"campaign_id": campaign.id, "sha256": f"{k:064x}", "path": structure_path, "stage": "sampling",
         "source": f"anneal/frame-{k}", "formula": "W249", "n_atoms": 249, "pbc": [True] * 3,
         "cell": [[15.8, 0, 0], [0, 15.8, 0], [0, 0, 15.8]], "energy": -2170.0, "n_candidates": 14,
         "info": {"gamma_max": 1.0 + 20 * rng.random()}} for k in range(n)])
    ids = session.scalars(select(Structure.id).where(Structure.campaign_id == campaign.id).order_by(Structure.id)).all()
    histograms = []
    batch = []
    for structure_id in ids:
        gammas = np.exp(np.array([rng.gauss(1.5, 0.6) for _ in range(14)]))
        batch += [{"structure_id": structure_id, "atom_index": i, "structure_type": "other", "gamma": float(g),
                   "selected": i == 0 and rng.random() < 0.02} for i, g in enumerate(gammas)]
        all_atoms = np.concatenate([gammas, np.exp(np.array([rng.gauss(-1.0, 0.3) for _ in range(235)]))])
        histograms.append(log_histogram(all_atoms))
        if len(batch) >= 20000:
            session.execute(insert(Environment), batch)
            batch = []
    if batch:
        session.execute(insert(Environment), batch)
    session.execute(insert(Artifact), [
        {"campaign_id": campaign.id, "kind": "gamma_histogram", "name": f"anneal/frame-{k}", "data": h}
        for k, h in enumerate(histograms)])
    session.add(Artifact(campaign_id=campaign.id, kind="gamma_histogram", name="campaign",
                         data=merge_histograms(histograms)))
    candidates = [{"index": i, "box": [12.0 + i % 3, 12.0 + (i // 3) % 3, 12.0 + i // 9], "admissible": i % 4 != 0,
                   "n_atoms": 120 + i, "energy_per_atom": -8.7 + 0.005 * i, "status": "ok",
                   "box_final": [12.0, 12.0, 12.0]} for i in range(27)]
    if n_clusters:
        session.execute(insert(Artifact), [
            {"campaign_id": campaign.id, "kind": "pcc_gcmc_candidates", "name": f"anneal/frame-{k}/cluster-0",
             "data": {"cluster_id": ids[0], "core_extent": [10.0, 10.0, 10.0], "n_core": 57, "base_seed": 7,
                      "candidates": candidates, "best_index": 1,
                      "structure_id": ids[0], "energy_per_atom": -8.695}} for k in range(n_clusters)])
    points = {name: [[rng.gauss(0, 1), rng.gauss(0, 1)] for _ in range(min(2000, 20 * n))] for name in "BCP"}
    session.add(Artifact(campaign_id=campaign.id, kind="soap_pca", name="campaign",
                         data={"components": 2, "explained_variance_ratio": [0.9, 0.05], "points": points}))
    session.flush()
    label_rows = [
        {"structure_hash": uuid.uuid4().hex * 2, "settings_sha256": "0" * 64, "structure_id": ids[k], "engine": "vasp",
         "settings": {}, "state": "failed" if k % 3 == 0 else "succeeded", "attempts": 1,
         "failure": "scf_unconverged" if k % 3 == 0 else None, "failures": ["scf_unconverged"] if k % 3 == 0 else [],
         "energy": None if k % 3 == 0 else -1000.0, "n_atoms": 128,
         "error": "SCF did not converge in 100 steps" if k % 3 == 0 else None} for k in range(n_labels)]
    if label_rows:
        session.execute(insert(Label), label_rows)
    session.flush()
    return campaign.id


def seed(database_url: str, data_dir: Path, large: bool, structures: int = 10_000) -> dict:
    """The 60 small campaigns and the 100-structure baseline (large False), or the large one of ``structures``."""
    from ase.build import bulk
    from sqlalchemy import select

    from app.auth import create_token, get_or_create_user
    from core.migrate import upgrade
    from core.models import Structure
    from core.session import session_scope
    from core.storage import StructureStore

    rng = random.Random(1 if large else 0)
    atoms = bulk("W", "bcc", a=3.165, cubic=True).repeat((5, 5, 5))
    del atoms[0]
    out: dict = {}
    if not large:
        upgrade(database_url)
    _sha, path = StructureStore(data_dir).put(atoms)
    with session_scope() as session:
        owner = get_or_create_user(session, "bench").id
        if large:
            out["campaign"] = _seed_campaign(session, owner, f"large-{structures}", structures, structures // 10,
                                             max(1, structures // 100), path, rng)
        else:
            out["token"] = create_token(session, "bench")
            for k in range(60):
                _seed_campaign(session, owner, f"small-{k}", 1, 0, 0, path, rng)
            out["campaign"] = _seed_campaign(session, owner, "baseline-100", 100, 10, 1, path, rng)
    with session_scope() as session:
        out["structure"] = session.scalar(select(Structure.id).where(Structure.campaign_id == out["campaign"])
                                          .order_by(Structure.id.desc()).limit(1))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--postgres", action="store_true", help="use a fresh database on DG_TEST_POSTGRES_URL")
    parser.add_argument("--structures", type=int, default=10_000, help="snapshots of the large campaign")
    args = parser.parse_args()
    if args.structures < 1:
        parser.error("--structures must be positive")
    n = args.structures

    tmp = Path(tempfile.mkdtemp(prefix="dg-dashboard-bench-"))
    database = None
    if args.postgres:
        import psycopg
        from sqlalchemy.engine import make_url

        admin = make_url(POSTGRES_URL)
        database = f"dg_bench_{uuid.uuid4().hex[:8]}"
        conninfo = (f"host={admin.host} port={admin.port or 5432} user={admin.username} "
                    f"password={admin.password or ''} dbname={admin.database}")
        with psycopg.connect(conninfo, autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{database}"')
        url = admin.set(drivername="postgresql+psycopg", database=database).render_as_string(hide_password=False)
    else:
        url = f"sqlite:///{tmp / 'bench.sqlite'}"
    os.environ.update(DG_DATA_DIR=str(tmp / "data"), DG_DATABASE_URL=url)
    os.environ.pop("DG_BROKER_URL", None)

    import httpx
    import uvicorn

    from app.main import create_app

    started = time.perf_counter()
    base = seed(url, tmp / "data", large=False)
    print(f"database: {'PostgreSQL' if args.postgres else 'SQLite'}; baseline seeded (60 one-snapshot campaigns and "
          f"one of 100 snapshots) in {time.perf_counter() - started:.1f} s")

    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {base['token']}"},
                          timeout=60)

    def timed(path: str) -> tuple[float, int, float]:
        t0 = time.perf_counter()
        response = client.get(path)
        first = time.perf_counter() - t0
        assert response.status_code == 200, (path, response.status_code, response.text[:300])
        times = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            response = client.get(path)
            times.append(time.perf_counter() - t0)
        return 1000 * statistics.median(times), len(response.content), 1000 * first

    # the list is timed before and after the large campaign is stored; the other rows compare the campaigns
    before = {path: timed(path) for path in ("/ui/campaigns", "/ui/campaigns?page=4")}
    started = time.perf_counter()
    large = seed(url, tmp / "data", large=True, structures=n)
    print(f"large campaign seeded ({n:,} snapshots, {14 * n:,} environments, {n + 1:,} histogram artifacts, "
          f"{n // 10:,} labels, {max(1, n // 100)} cluster tables) in {time.perf_counter() - started:.1f} s")
    rows = [
        ("campaign list, page 1 of 4", "/ui/campaigns", "/ui/campaigns"),
        ("campaign list, page 4 of 4", "/ui/campaigns?page=4", "/ui/campaigns?page=4"),
        ("campaign page", "/ui/campaigns/{b}", "/ui/campaigns/{l}"),
        ("campaign page, last label and structure pages", "/ui/campaigns/{b}?structures_page=4",
         f"/ui/campaigns/{{l}}?labels_page={max(1, math.ceil(n // 10 / 25))}&structures_page={n // 25 + 1}"),
        ("histograms.json (binned in SQL)", "/ui/campaigns/{b}/histograms.json", "/ui/campaigns/{l}/histograms.json"),
        ("progress.json (live refresh)", "/ui/campaigns/{b}/progress.json", "/ui/campaigns/{l}/progress.json"),
        ("structure page (249 atoms)", "/ui/structures/{sb}", "/ui/structures/{sl}"),
    ]
    names = {"b": base["campaign"], "l": large["campaign"], "sb": base["structure"], "sl": large["structure"]}
    print(f"\nmedian of {args.repeat} GETs in ms (response size in kB); 'first' is the first GET of the large "
          "campaign (the gamma aggregates are computed in SQL, then cached until the grading stages re-run); "
          "the list's baseline is before the large campaign was stored")
    print(f"{'request':48s} {'100 structures':>16s} {f'{n:,} structures':>18s} {'ratio':>6s} {'first':>8s}")
    for label, small, big in rows:
        t_small, size_small, _ = before.get(small) or timed(small.format(**names))
        t_large, size_large, first = timed(big.format(**names))
        print(f"{label:48s} {t_small:8.1f} ({size_small / 1024:4.0f}) {t_large:9.1f} ({size_large / 1024:4.0f})"
              f" {t_large / t_small:6.2f} {first:8.1f}")
    server.should_exit = True
    thread.join(10)
    if database:
        import psycopg

        from core.session import engine_for

        engine_for(url).dispose()
        with psycopg.connect(conninfo, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


if __name__ == "__main__":
    main()
