"""GET latency under load: users submitting small specs and polling, with and without 5 large specs being checked.

Starts `defect-genome serve` (uvicorn) on 127.0.0.1 with a fresh PostgreSQL database and a Redis broker with
no worker (the production shape of an API node: POST validates, checks, inserts and enqueues; nothing runs).
Each of --users users (its own token) has two threads: one submits small specs (250-atom W anneals, one
every --submit-interval s), one polls GET /api/v1/campaigns/{id} of its campaign and GET /health (every
--poll-interval s). Two phases, in this run:

1. baseline: --duration seconds of that workload alone;
2. load: the same workload while --large large (but allowed) specs are submitted at once (polycrystals of
   --large-atoms atoms: their check_spec builds the structure, seconds of CPU each, in the spec checker
   processes of app.spec_checks); the phase lasts until every large spec is answered.

Prints p50/p99 of GET /health, GET campaign and POST (small spec) in both phases and the ratio load/baseline,
and how the large specs were answered.

    .venv/bin/python benchmarks/api_load.py [--users 4] [--duration 20] [--large 5] [--large-atoms 1000000]

Measured with the defaults on this 2-core machine (shared, 1-min load average ~3 before the run), four runs:
GET /health p50/p99 8.3-10.2 / 40.6-48.5 ms while the 5 large specs were checked (answered 202 in 9-10, 18-19
and 22-23 s: two checked at a time), 10.7-12.3 / 32.4-37.5 ms without them in the same runs (p99 ratio
1.08-1.40); GET campaign p99 61-79 ms with, 56-62 ms without. The same run with check_spec in a thread of the
server instead of the checker processes: GET /health p50/p99 25.8 / 100.2 ms with the large specs (11.8 / 44.1
without), GET campaign 66.7 / 173.3 ms.

Needs PostgreSQL and Redis on 127.0.0.1 (scripts/services.sh starts them); uses and flushes the Redis database
of DG_TEST_REDIS_URL.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
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
BCC_W_ATOMS_PER_A3 = 2 / 3.165**3


def small_spec(name: str) -> dict:
    """250 atoms of bcc W (5 cells, just above twice the EAM cutoff), 200 MD steps: checked in ~0.1 s."""
    return {
        "name": name, "element": "W", "lattice": "bcc", "lattice_constant": 3.165, "potential": "W_zhou.eam.alloy",
        "stop_after": "sampling",
        "sampling": {"protocols": [{"kind": "anneal", "structure": {"kind": "bulk", "supercell": [5, 5, 5]},
                                    "temperatures": [300], "steps_per_temperature": 200, "snapshot_every": 100}]},
    }


def large_spec(name: str, atoms: int) -> dict:
    """A polycrystal of about ``atoms`` atoms, minimised: allowed by the default limits (2,000,000 atoms,
    1e10 atom-steps) and expensive to check (Voronoi grains, overlap removal: ~9 us per atom)."""
    edge = round((atoms / BCC_W_ATOMS_PER_A3) ** (1 / 3), 1)
    return {
        "name": name, "element": "W", "lattice": "bcc", "lattice_constant": 3.165, "potential": "W_zhou.eam.alloy",
        "stop_after": "sampling",
        "sampling": {"protocols": [{"kind": "minimize",
                                    "structure": {"kind": "polycrystal", "box": [edge, edge, edge], "n_grains": 8}}]},
    }


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def percentiles(samples: list[float]) -> tuple[float, float]:
    """p50 and p99 in ms (nan when there are no samples)."""
    if not samples:
        return math.nan, math.nan
    ordered = sorted(samples)
    return statistics.median(ordered) * 1e3, ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] * 1e3


class Recorder:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.samples: dict[str, list[float]] = {"health": [], "campaign": [], "post": []}
        self.errors: list[str] = []

    def add(self, what: str, seconds: float) -> None:
        with self.lock:
            self.samples[what].append(seconds)

    def error(self, message: str) -> None:
        with self.lock:
            self.errors.append(message)


def _timed(recorder: Recorder, what: str, send) -> httpx.Response | None:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    try:
        response = send()
    except httpx.HTTPError as exc:
        recorder.error(f"{what}: {type(exc).__name__}: {exc}")
        return None
    recorder.add(what, time.perf_counter() - start)
    if response.status_code >= 400:
        recorder.error(f"{what}: {response.status_code} {response.text[:200]}")
    return response


def _user(base_url: str, token: str, campaign_id: int, stop: threading.Event, recorder: Recorder,
          poll_interval: float, submit_interval: float, max_requests: int) -> list[threading.Thread]:
    headers = {"Authorization": f"Bearer {token}"}

    def submit() -> None:
        with httpx.Client(base_url=base_url, timeout=120, headers=headers) as client:
            for i in range(max_requests):
                if stop.is_set():
                    return
                spec = small_spec(f"small-{i}")
                _timed(recorder, "post", lambda spec=spec: client.post("/api/v1/campaigns", json=spec))
                stop.wait(submit_interval)

    def poll() -> None:
        with httpx.Client(base_url=base_url, timeout=120, headers=headers) as client:
            for _ in range(max_requests):
                if stop.is_set():
                    return
                _timed(recorder, "campaign", lambda: client.get(f"/api/v1/campaigns/{campaign_id}"))
                _timed(recorder, "health", lambda: client.get("/health"))
                stop.wait(poll_interval)

    return [threading.Thread(target=submit, daemon=True), threading.Thread(target=poll, daemon=True)]


def run_phase(base_url: str, users: list[tuple[str, int]], seconds: float | None, poll_interval: float,
              submit_interval: float, max_requests: int,
              large: list[dict] | None = None) -> tuple[Recorder, list[tuple[int, float, str]]]:
    """The users' workload for ``seconds``, or (with ``large``) until every large spec is answered."""
    recorder, stop = Recorder(), threading.Event()
    threads = [t for token, cid in users for t in _user(base_url, token, cid, stop, recorder, poll_interval,
                                                        submit_interval, max_requests)]
    for thread in threads:
        thread.start()
    answers: list[tuple[int, float, str]] = []
    if large:
        time.sleep(min(1.0, seconds or 1.0))  # the workload is running before the large specs arrive

        def submit_large(spec: dict) -> None:
            with httpx.Client(base_url=base_url, timeout=600, headers={"Authorization": f"Bearer {users[0][0]}"}) as c:
                start = time.perf_counter()
                response = c.post("/api/v1/campaigns", json=spec)
                answers.append((response.status_code, time.perf_counter() - start, response.text[:160]))

        senders = [threading.Thread(target=submit_large, args=(spec,)) for spec in large]
        for sender in senders:
            sender.start()
        for sender in senders:
            sender.join()
    else:
        time.sleep(seconds or 0)
    stop.set()
    for thread in threads:
        thread.join(timeout=150)
    return recorder, answers


def _seed_users(n: int) -> list[str]:
    from app.auth import create_token
    from core.session import session_scope

    with session_scope() as session:
        return [create_token(session, f"load-{i}") for i in range(n)]


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=4, help="users, each submitting and polling")
    parser.add_argument("--duration", type=float, default=20.0, help="s of the baseline phase")
    parser.add_argument("--poll-interval", type=float, default=0.1, help="s between a user's polls")
    parser.add_argument("--submit-interval", type=float, default=0.5, help="s between a user's submissions")
    parser.add_argument("--large", type=int, default=5, help="large specs submitted at once in the load phase")
    parser.add_argument("--large-atoms", type=int, default=1_000_000, help="atoms of each large spec's structure")
    parser.add_argument("--max-requests", type=int, default=100_000, help="bound on each thread's requests")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures to this file")
    args = parser.parse_args(argv)

    admin = make_url(POSTGRES_URL)
    conninfo = (f"host={admin.host} port={admin.port or 5432} user={admin.username} "
                f"password={admin.password or ''} dbname={admin.database}")
    name = f"dg_load_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(conninfo, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    url = admin.set(drivername="postgresql+psycopg", database=name).render_as_string(hide_password=False)
    redis.Redis.from_url(REDIS_URL).flushdb()
    data_dir = tempfile.mkdtemp(prefix="dg-load-")
    env = {"DG_DATABASE_URL": url, "DG_BROKER_URL": REDIS_URL, "DG_DATA_DIR": data_dir}
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    from core.settings import get_settings

    get_settings.cache_clear()
    server = None
    try:
        from core.migrate import upgrade

        upgrade(url)
        tokens = _seed_users(args.users)
        port = _free_port()
        server = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve", "--port", str(port)],
            env=os.environ | env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        base_url = f"http://127.0.0.1:{port}"
        users = []
        with httpx.Client(base_url=base_url, timeout=120) as client:
            for _ in range(300):
                try:
                    if client.get("/health").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.2)
            else:
                raise SystemExit("server did not start")
            for token in tokens:  # one campaign per user to poll (also warms the spec checkers)
                response = client.post("/api/v1/campaigns", json=small_spec("polled"),
                                       headers={"Authorization": f"Bearer {token}"})
                response.raise_for_status()
                users.append((token, response.json()["id"]))

        gc.collect()
        gc.freeze()  # the client's own pauses (its imports: SQLAlchemy, the app) stay out of the figures
        load_before = os.getloadavg()[0]
        baseline, _ = run_phase(base_url, users, args.duration, args.poll_interval, args.submit_interval,
                                args.max_requests)
        large = [large_spec(f"large-{i}", args.large_atoms) for i in range(args.large)]
        start = time.perf_counter()
        loaded, answers = run_phase(base_url, users, args.duration, args.poll_interval, args.submit_interval,
                                    args.max_requests, large)
        load_seconds = time.perf_counter() - start

        results: dict[str, float] = {}
        print(f"PostgreSQL + Redis broker (no worker), {args.users} users (each: a small spec every "
              f"{args.submit_interval:g} s, GET campaign + GET /health every {args.poll_interval:g} s), "
              f"{get_settings().local_processes + 1} spec checker processes")
        print(f"machine: {os.cpu_count()} cores, 1-min load average {load_before:.2f} before the phases, "
              f"{os.getloadavg()[0]:.2f} after (this benchmark's own processes included)")
        print(f"load phase: {args.large} large specs ({args.large_atoms:,} atoms each) submitted at once, "
              f"answered in {load_seconds:.1f} s: " + ", ".join(f"{status} in {t:.1f} s" for status, t, _ in answers))
        for status, _, text in answers:
            if status >= 400:
                print(f"  large spec answer {status}: {text}")
        loaded_label = f"{args.large} large p50"
        print(f"{'':28s} {'baseline p50':>12s} {'p99':>8s}   {loaded_label:>12s} {'p99':>8s}   ratio p50, p99  (ms)")
        for what, label in (("health", "GET /health"), ("campaign", "GET /api/v1/campaigns/{id}"),
                            ("post", "POST small spec")):
            b50, b99 = percentiles(baseline.samples[what])
            l50, l99 = percentiles(loaded.samples[what])
            results.update({f"{what}_baseline_p50": b50, f"{what}_baseline_p99": b99,
                            f"{what}_load_p50": l50, f"{what}_load_p99": l99})
            print(f"{label:28s} {b50:12.2f} {b99:8.2f}   {l50:12.2f} {l99:8.2f}   {l50 / b50:5.2f}x, {l99 / b99:5.2f}x"
                  f"  (n = {len(baseline.samples[what])}, {len(loaded.samples[what])})")
        errors = baseline.errors + loaded.errors
        print(f"request errors: {len(errors)}" + (f" (first: {errors[0]})" if errors else ""))
        results["errors"] = float(len(errors))
        results["large_answered"] = float(len(answers))
        results["load_seconds"] = load_seconds
        if args.json is not None:
            args.json.write_text(json.dumps(results, indent=1))
        return results
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=60)
        from core.session import engine_for

        engine_for(url).dispose()
        with psycopg.connect(conninfo, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        redis.Redis.from_url(REDIS_URL).flushdb()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        get_settings.cache_clear()


if __name__ == "__main__":
    main()
