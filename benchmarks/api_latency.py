"""GET campaign latency with 1,000 stored structures, and POST throughput, against real PostgreSQL.

Starts `defect-genome serve` (uvicorn) on a fresh PostgreSQL database with a Redis broker and no
worker, so POST measures validation + insert + commit + enqueue, not MD. The baseline, measured in
the same run, is GET /health (one `SELECT 1` round trip through the same stack).

    .venv/bin/python benchmarks/api_latency.py [--requests 500] [--posts 100]

Needs PostgreSQL and Redis on 127.0.0.1 (scripts/services.sh starts them).
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import psycopg
import redis
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

POSTGRES_URL = os.environ.get("DG_TEST_POSTGRES_URL", "postgresql://postgres:postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("DG_TEST_REDIS_URL", "redis://127.0.0.1:6379/9")
SPEC = {
    "name": "bench",
    "element": "W",
    "lattice_constant": 3.165,
    "potential": "W_zhou.eam.alloy",
    "stop_after": "sampling",
    # 5 cells (15.8 A): just above twice the 7.89 A cutoff of EAM-Zhou W, as POST's check_spec requires
    "sampling": {"protocols": [{"kind": "anneal", "structure": {"kind": "bulk", "supercell": [5, 5, 5]},
                                "steps_per_temperature": 100, "snapshot_every": 50}]},
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _seed(n_structures: int) -> tuple[int, str]:
    """A campaign with n sampling structures (rows and environments), and a token."""
    from app.auth import create_token
    from core.models import Artifact, Environment, Structure
    from core.session import session_scope
    from schemas import parse_spec
    from workers import pipeline
    from workers.stages.sampling import TYPE_COUNTS

    with session_scope() as session:
        token = create_token(session, "bench")
        from app.auth import get_or_create_user

        campaign = pipeline.create_campaign(session, get_or_create_user(session, "bench"), parse_spec(SPEC))
        pipeline.start(session, campaign)  # plans the work items; nothing is enqueued
        for i in range(n_structures):
            structure = Structure(
                campaign_id=campaign.id, sha256=f"{i:064x}", path=f"structures/{i}.extxyz", stage="sampling",
                source=f"anneal-0/frame-{i}", formula="W128", n_atoms=128, pbc=[True] * 3,
                cell=[[12.66, 0, 0], [0, 12.66, 0], [0, 0, 12.66]], energy=-1139.2, n_candidates=5,
                info={"step": i, "structure_types": {"bcc": 123, "other": 5}},
            )
            session.add(structure)
            session.flush()
            session.add_all(Environment(structure_id=structure.id, atom_index=j, structure_type="other")
                            for j in range(5))
        session.add(Artifact(campaign_id=campaign.id, kind=TYPE_COUNTS, name="anneal-0",
                             data={"bcc": 123 * n_structures, "other": 5 * n_structures}))
        return campaign.id, token


def _timed_gets(client: httpx.Client, path: str, n: int, headers: dict[str, str]) -> list[float]:
    times = []
    for _ in range(n):
        start = time.perf_counter()
        response = client.get(path, headers=headers)
        times.append(time.perf_counter() - start)
        response.raise_for_status()
    return times


def _percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered) * 1e3, ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--structures", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--posts", type=int, default=100)
    args = parser.parse_args()

    admin = make_url(POSTGRES_URL)
    conninfo = (f"host={admin.host} port={admin.port or 5432} user={admin.username} "
                f"password={admin.password or ''} dbname={admin.database}")
    name = f"dg_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(conninfo, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    url = admin.set(drivername="postgresql+psycopg", database=name).render_as_string(hide_password=False)
    redis.Redis.from_url(REDIS_URL).flushdb()
    data_dir = tempfile.mkdtemp(prefix="dg-bench-")
    env = {"DG_DATABASE_URL": url, "DG_BROKER_URL": REDIS_URL, "DG_DATA_DIR": data_dir}
    os.environ.update(env)
    server = None
    try:
        from core.migrate import upgrade

        upgrade(url)
        campaign_id, token = _seed(args.structures)
        port = _free_port()
        server = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve", "--port", str(port)],
            env=os.environ | env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            for _ in range(100):
                try:
                    if client.get("/health").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.2)
            else:
                raise SystemExit("server did not start")
            client.post("/api/v1/campaigns", json=SPEC, headers=headers).raise_for_status()  # warm spec checkers
            _timed_gets(client, "/health", 20, headers)  # warm-up
            health = _timed_gets(client, "/health", args.requests, headers)
            campaign = _timed_gets(client, f"/api/v1/campaigns/{campaign_id}", args.requests, headers)
            structures = _timed_gets(client, f"/api/v1/campaigns/{campaign_id}/structures?limit=100",
                                     args.requests, headers)

            start = time.perf_counter()
            for _ in range(args.posts):
                client.post("/api/v1/campaigns", json=SPEC, headers=headers).raise_for_status()
            post_seconds = time.perf_counter() - start

        h50, h99 = _percentiles(health)
        c50, c99 = _percentiles(campaign)
        s50, s99 = _percentiles(structures)
        print(f"PostgreSQL + Redis, {args.structures} structures in the campaign, {args.requests} sequential requests")
        print(f"GET /health (baseline)                 p50 {h50:7.2f} ms  p99 {h99:7.2f} ms")
        print(f"GET /api/v1/campaigns/{{id}}             p50 {c50:7.2f} ms  p99 {c99:7.2f} ms"
              f"  ({c50 / h50:.1f}x baseline p50)")
        print(f"GET .../structures?limit=100           p50 {s50:7.2f} ms  p99 {s99:7.2f} ms"
              f"  ({s50 / h50:.1f}x baseline p50)")
        print(f"POST /api/v1/campaigns                 {args.posts / post_seconds:7.1f} campaigns/s"
              f"  ({post_seconds / args.posts * 1e3:.1f} ms each,"
              f" {post_seconds / args.posts * 1e3 / h50:.1f}x baseline p50)")
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
        from core.session import engine_for

        engine_for(url).dispose()
        with psycopg.connect(conninfo, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        redis.Redis.from_url(REDIS_URL).flushdb()


if __name__ == "__main__":
    main()
