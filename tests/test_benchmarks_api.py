"""The API benchmarks run (tiny arguments) against a real server, PostgreSQL and Redis: figures are finite.

No timing is asserted here; the figures of a full run are in the benchmarks' docstrings and the README.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

from support import POSTGRES_URL, REDIS_URL

ROOT = Path(__file__).resolve().parents[1]


def _run(script: str, *args: str) -> str:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("DG_")}
    environment |= {"DG_TEST_POSTGRES_URL": POSTGRES_URL, "DG_TEST_REDIS_URL": REDIS_URL}
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), *args], cwd=ROOT, env=environment,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_api_load_benchmark_runs(tmp_path):
    figures = tmp_path / "load.json"
    out = _run("api_load.py", "--users", "2", "--duration", "1.5", "--large", "2", "--large-atoms", "20000",
               "--json", str(figures))
    results = json.loads(figures.read_text())
    for what in ("health", "campaign", "post"):
        for phase in ("baseline", "load"):
            for p in ("p50", "p99"):
                assert math.isfinite(results[f"{what}_{phase}_{p}"]) and results[f"{what}_{phase}_{p}"] > 0, out
    assert results["errors"] == 0 and results["large_answered"] == 2, out
    assert "GET /health" in out and "ratio" in out


def test_api_latency_benchmark_runs():
    out = _run("api_latency.py", "--structures", "10", "--requests", "10", "--posts", "2")
    figures = [float(x) for x in re.findall(r"p(?:50|99)\s+([0-9.]+) ms", out)]
    assert len(figures) == 6 and all(math.isfinite(x) and x > 0 for x in figures), out
    rate = re.search(r"POST /api/v1/campaigns\s+([0-9.]+) campaigns/s", out)
    assert rate and float(rate.group(1)) > 0, out
