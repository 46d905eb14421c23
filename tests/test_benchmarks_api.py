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
    assert "request errors: 0" in out, out
    answered = re.search(r"^load phase: 2 large specs \(20,000 atoms each\) submitted at once, "
                         r"answered in ([0-9.]+) s: (\d+) in ([0-9.]+) s, (\d+) in ([0-9.]+) s$", out, re.M)
    assert answered, out
    assert answered.group(2) == answered.group(4) == "202", out  # large but allowed specs: accepted
    phase = float(answered.group(1))
    assert 0 < float(answered.group(3)) <= phase + 0.05 and 0 < float(answered.group(5)) <= phase + 0.05, out
    for what, label in (("health", "GET /health"), ("campaign", "GET /api/v1/campaigns/{id}"),
                        ("post", "POST small spec")):
        row = re.search(rf"^{re.escape(label)} +([0-9.]+) +([0-9.]+) +([0-9.]+) +([0-9.]+) +([0-9.]+)x, +([0-9.]+)x"
                        rf"  \(n = (\d+), (\d+)\)$", out, re.M)
        assert row, out
        b50, b99, l50, l99, r50, r99 = map(float, row.groups()[:6])
        assert int(row.group(7)) > 0 and int(row.group(8)) > 0, out  # samples in both phases
        assert b50 <= b99 and l50 <= l99, out
        assert abs(b50 - results[f"{what}_baseline_p50"]) <= 0.006 and abs(l99 - results[f"{what}_load_p99"]) <= 0.006
        # the ratio load / baseline is printed from the same figures
        assert abs(r50 - results[f"{what}_load_p50"] / results[f"{what}_baseline_p50"]) <= 0.006, out
        assert abs(r99 - results[f"{what}_load_p99"] / results[f"{what}_baseline_p99"]) <= 0.006, out


def test_api_latency_benchmark_runs():
    """The benchmark's spec is a valid campaign spec (POST answers 2xx), and each printed ratio is its figures'."""
    out = _run("api_latency.py", "--structures", "10", "--requests", "10", "--posts", "2")
    assert "PostgreSQL + Redis, 10 structures in the campaign, 10 sequential requests" in out, out
    rows = re.findall(r"^GET (.+?) +p50 +([0-9.]+) ms  p99 +([0-9.]+) ms(?:  \(([0-9.]+)x baseline p50\))?$", out, re.M)
    assert [row[0] for row in rows] == ["/health (baseline)", "/api/v1/campaigns/{id}", ".../structures?limit=100"]
    health_p50 = float(rows[0][1])
    for _what, p50, p99, ratio in rows:
        assert math.isfinite(float(p50)) and 0 < float(p50) <= float(p99), out
        if ratio:  # p50 / the baseline's p50, printed to 0.1 from the unrounded figures
            assert abs(float(ratio) - float(p50) / health_p50) <= 0.06 + 0.01 * float(ratio), out
    post = re.search(r"^POST /api/v1/campaigns +([0-9.]+) campaigns/s  \(([0-9.]+) ms each, ([0-9.]+)x baseline p50\)$",
                     out, re.M)
    assert post, out
    rate, each, ratio = map(float, post.groups())
    # rate and ms each are printed to 0.1 from one unrounded rate r: each = 1e3 / r with r within rate +- 0.05
    assert rate > 0 and 1e3 / (rate + 0.05) - 0.06 <= each <= 1e3 / max(rate - 0.05, 1e-9) + 0.06, out
    assert abs(ratio - each / health_p50) <= 0.06 + 0.01 * ratio, out


def test_sampling_scale_benchmark_runs(tmp_path):
    """benchmarks/sampling_scale.py at 2,000 atoms: the stage against the same input bare, and the insert rates."""
    figures = tmp_path / "scale.json"
    out = _run("sampling_scale.py", "--atoms", "2000", "--steps", "40", "--every", "20", "--max-iterations", "50",
               "--rows", "20000", "--postgres", POSTGRES_URL, "--workdir", str(tmp_path / "work"),
               "--json", str(figures))
    report = json.loads(figures.read_text())
    assert report["snapshots"] == 3 and 1800 < report["atoms"] < 2200, out
    assert report["snapshot_format"] == [".dgh5"] and 0 < report["bytes_per_atom_snapshot"] <= 20, out
    assert report["overhead"] == report["stage_s"] / report["bare_s"] - 1.0 and report["bare_s"] > 0, out
    assert set(report["rows_per_s"]) == {"SQLite", "PostgreSQL"}, out
    assert all(rows >= 20000 for rows in report["rows_inserted"].values()), out
    assert all(math.isfinite(v) and v > 0 for v in [*report["rows_per_s"].values(), report["peak_rss_mb"],
                                                    report["grading_atoms_per_s"]]), out
    assert f"{100 * report['overhead']:.1f} %" in out, out
