"""The physics and dashboard benchmarks run with tiny arguments, so they cannot rot: exit code 0, figures finite.

No timing is asserted (a figure is only checked to be finite and positive where it is a time or a rate); the
figures of a full run are in the benchmarks' docstrings. Each script runs as a subprocess, as a user runs it,
with its own data and temporary directories and no database or broker from the environment.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(tmp_path: Path, script: str, *args: str, timeout: float = 300) -> str:
    environment = dict(os.environ)
    for key in ("DG_DATABASE_URL", "DG_BROKER_URL"):
        environment.pop(key, None)
    scratch = tmp_path / "tmp"
    scratch.mkdir(exist_ok=True)
    environment |= {"DG_DATA_DIR": str(tmp_path / "data"), "TMPDIR": str(scratch)}
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), *args], cwd=ROOT, env=environment,
                          capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def _positive(*values: float) -> bool:
    return all(math.isfinite(v) and v > 0 for v in values)


def test_dashboard_benchmark_runs(tmp_path):
    out = _run(tmp_path, "dashboard.py", "--structures", "200", "--repeat", "2")
    assert "database: SQLite" in out and "large campaign seeded (200 snapshots" in out, out
    rows = re.findall(r"^(.{48}) +([0-9.]+) \( *(\d+)\) +([0-9.]+) \( *(\d+)\) +([0-9.]+) +([0-9.]+)$", out, re.M)
    assert [row[0].strip() for row in rows] == [
        "campaign list, page 1 of 4", "campaign list, page 4 of 4", "campaign page",
        "campaign page, last label and structure pages", "histograms.json (binned in SQL)",
        "progress.json (live refresh)", "structure page (249 atoms)"], out
    for _label, small, _, large, _, ratio, first in rows:
        assert _positive(float(small), float(large), float(ratio), float(first)), out


def test_export_time_benchmark_runs(tmp_path):
    figures, workdir = tmp_path / "export.json", tmp_path / "out"
    out = _run(tmp_path, "export_time.py", "--source", "eam", "--count", "40", "--baseline", "20", "--unique", "4",
               "--workdir", str(workdir), "--json", str(figures))
    report = json.loads(figures.read_text())
    assert report["source"] == "eam", out
    assert [(row["format"], row["configurations"]) for row in report["rows"]] == [
        (fmt, n) for fmt in ("mtp", "ace", "extxyz") for n in (20, 40)], out
    for row in report["rows"]:
        assert row["atoms"] > 0 and row["bytes"] > 0, row
        assert _positive(row["seconds"], row["cpu_seconds"], row["configurations_per_s"], row["atoms_per_s"],
                         row["ratio_to_baseline"], row["cpu_ratio_to_baseline"]), row
    assert sorted(p.name for p in workdir.iterdir()) == sorted(
        f"{which}.{suffix}" for which in ("baseline", "full") for suffix in ("cfg", "pckl.gzip", "extxyz"))
    assert "ratio = time / time of the 20-configuration baseline" in out, out


def test_gpaw_quick_benchmark_runs(tmp_path):
    out = _run(tmp_path, "gpaw_quick.py", "--sizes", "1", "--parallel", "1", "--max-minutes", "3",
               "--workdir", str(tmp_path / "jobs"))
    assert "2 atoms: stopped" not in out, out
    # atoms k-mesh IBZ-k bands PW SCF-it time/s s/iter to-it1/s F+S/s x-base x-base/atom load
    row = re.search(r"^\s+2\s+(\d+)x(\d+)x(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+([0-9.]+)\s+([0-9.]+)"
                    r"\s+([0-9.]+)\s+([0-9.]+)\s+([0-9.]+)\s", out, re.M)
    assert row, out
    kpts, (ibz, bands, plane_waves, n_scf, wall) = row.groups()[:3], map(int, row.groups()[3:8])
    assert all(int(k) > 0 for k in kpts) and min(ibz, bands, plane_waves, n_scf, wall) > 0, out
    per_iter, to_first, forces_stress, ratio, per_atom = map(float, row.groups()[8:])
    assert all(math.isfinite(x) and x >= 0 for x in (per_iter, to_first, forces_stress)), out
    assert ratio == 1.0 and per_atom == 1.0, out  # the 2-atom cell is its own baseline
    assert (tmp_path / "jobs" / "w2-0" / "gpaw.txt").is_file()


def test_md_throughput_benchmark_runs(tmp_path):
    out = _run(tmp_path, "md_throughput.py", "--size", "4", "--steps", "200", "--every", "100",
               "--threads", "1", "2", "--repeats", "1")
    assert "128 atoms, 200 NVT steps" in out, out
    number = r"([-+0-9.e]+|inf|nan)"
    rows = re.findall(rf"^\s+(\d+)\s+(\d+)\s+(\d+) \|\s+{number}s\s+{number}s\s+{number}s \|\s+{number}\s+{number} \|"
                      rf"\s+{number}%\s+{number}%\s+{number}% \|\s+{number}\s+{number}%$", out, re.M)
    assert [(int(r[0]), int(r[1])) for r in rows] == [(1, 100), (2, 100)], out
    for threads, every, snaps, *figures in rows:
        protocol, bare, continuous, rate, rate_bare, overhead, vs_continuous, share, ms_snap, estimate = map(
            float, figures)
        assert int(snaps) >= 200 // int(every), out
        assert _positive(protocol, rate, rate_bare), out
        assert all(math.isfinite(x) and x >= 0 for x in (bare, continuous, share, ms_snap, estimate)), out
        assert math.isfinite(overhead) and math.isfinite(vs_continuous), out
    assert re.search(r"largest estimate .*: [0-9.]+% -> (OK|OVER)", out), out


def test_pcc_gcmc_benchmark_runs(tmp_path):
    figures = tmp_path / "pcc.json"
    out = _run(tmp_path, "pcc_gcmc.py", "--steps", "100", "--offsets", "0.0", "--workers", "1", "2",
               "--json", str(figures))
    report = json.loads(figures.read_text())
    assert report["steps"] == 100 and report["full_params"]["offsets"] == [0.0], out
    assert math.isfinite(report["e_coh"]) and report["e_coh"] < 0, out
    runs = report["clusters"]["sphere"]
    assert sorted(runs) == ["authors:1", "authors:2", "fast:1", "fast:2"], out
    for row in runs.values():
        assert row["boxes"] == row["boxes_run"] == 1 and row["n_admissible"] == 1, row
        assert _positive(row["wall_s"], row["per_box_s"], row["timing"]["cpu_s"], row["timing"]["gcmc_s"]), row
        assert math.isfinite(row["best_energy_per_atom"]) and row["best_energy_per_atom"] < 0, row
        assert 0 < row["steps_run"] <= row["steps_full"] == 100, row
    assert "which options matter" in out and "every fast best is at most" in out, out
