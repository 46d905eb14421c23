"""The physics and dashboard benchmarks run with tiny arguments, so they cannot rot: exit code 0, figures finite.

No timing is asserted (a figure is only checked to be finite and positive where it is a time or a rate, and a
printed ratio or total to be the one of the figures it is made of); the figures of a full run are in the
benchmarks' docstrings. Each script runs as a subprocess, as a user runs it, with its own data and temporary
directories and no database or broker from the environment. The last tests check that every script in
benchmarks/ is run so by a test of the default suite (here, in test_benchmarks_api.py for the ones that need
PostgreSQL and Redis, or next to the code it measures).
"""

from __future__ import annotations

import ast
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

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
    for _threads, every, snaps, *figures in rows:
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


def _close(printed: float, value: float, decimals: int) -> bool:
    """``printed`` is ``value`` rounded to ``decimals`` places (with a last-digit margin for the rounding)."""
    return abs(printed - value) <= 0.6 * 10.0**-decimals


def test_mtp_training_benchmark_runs(tmp_path):
    figures = tmp_path / "mtp.json"
    out = _run(tmp_path, "mtp_training.py", "--sizes", "4", "8", "--level", "2", "--iters", "2",
               "--workdir", str(tmp_path / "models"), "--json", str(figures))
    assert "read W-all.pckl.gzip: 1026 configurations, 94516 atoms" in out, out  # the paper's set
    number = r"([0-9.]+)"
    rows = re.findall(rf"^ +(\d+) +(\d+) +{number} +{number} +{number} +{number}  E +{number} meV/atom  F +{number} "
                      rf"meV/A \(\|dF\| +{number}\)$", out, re.M)
    report = json.loads(figures.read_text())["sizes"]
    assert [int(row[0]) for row in rows] == [r["configurations"] for r in report] == [4, 8], out
    for (_, atoms, train, fit, ef_pass, ratio, energy, forces, norm), row in zip(rows, report):
        # atoms counted by the benchmark, and by the training's own evaluation of the same configurations
        assert int(atoms) == row["atoms"] == row["rmse_train"]["n_atoms"], (out, row)
        assert row["rmse_train"]["n_configurations"] == row["configurations"], row
        assert 2 * row["configurations"] <= row["atoms"] <= 140 * row["configurations"], row  # 2-140 atoms each
        assert _positive(row["train_wall_s"], row["fit_wall_s"], row["ef_pass_s"], row["ratio"]), row
        assert row["fit_wall_s"] <= row["train_wall_s"], row  # the fit is part of the training call
        assert math.isclose(row["ratio"], row["train_wall_s"] / row["ef_pass_s"], rel_tol=1e-9), row
        assert _close(float(ratio), row["ratio"], 1) and _close(float(train), row["train_wall_s"], 1), (out, row)
        assert _close(float(ef_pass), row["ef_pass_s"], 2) and _close(float(fit), row["fit_wall_s"], 1), (out, row)
        assert 1 <= row["iterations"] <= 2, row
        errors = row["rmse_train"]
        assert _positive(errors["energy_mev_per_atom"], errors["forces_mev_per_A"]), row
        assert _close(float(energy), errors["energy_mev_per_atom"], 2), (out, row)
        assert _close(float(forces), errors["forces_mev_per_A"], 1) and float(norm) >= float(forces), (out, row)
        assert (tmp_path / "models" / f"size{row['configurations']}").is_dir()
    small, large = report
    assert small["atoms"] < large["atoms"], report  # the 8 configurations hold the first 4
    exponent = math.log(large["train_wall_s"] / small["train_wall_s"]) / math.log(large["atoms"] / small["atoms"])
    printed = re.search(r"^scaling: train time ~ atoms\^([-0-9.]+)$", out, re.M)
    assert printed and _close(float(printed.group(1)), exponent, 2), out


def test_snap_training_benchmark_runs(tmp_path):
    figures = tmp_path / "snap.json"
    out = _run(tmp_path, "snap_training.py", "--max-configs", "6", "--twojmax", "4", "--processes", "1",
               "--json", str(figures))
    header = re.search(r"^W-all\.pckl\.gzip: 6 configurations, (\d+) atoms \(read in [0-9.]+ s\); 5 train / 1 test "
                       r"\(seed 0\)$", out, re.M)
    assert header, out
    report = json.loads(figures.read_text())
    assert (report["n_train"], report["n_test"]) == (5, 1), report
    fits = {fit["kind"]: fit for fit in report["fits"]}
    assert list(fits) == ["linear", "quadratic"], report
    # 2J = 4: 14 bispectrum components; quadratic adds their 14 x 15 / 2 products; each + 1 constant
    assert "SNAP 2J=4: 14 bispectrum components (+1 constant); quadratic 119 (+1)" in out, out
    assert (fits["linear"]["columns"], fits["quadratic"]["columns"]) == (15, 120), report
    assert re.search(r"^linear    2J=4    15 columns  ridge 0  cond ", out, re.M), out
    scan = fits["quadratic"]["ridge_scan"]
    assert scan and fits["quadratic"]["ridge"] == min(scan, key=lambda r: r["validation_loss"])["ridge"], scan
    for fit in fits.values():
        assert fit["train"]["n_configurations"] == 5 and fit["test"]["n_configurations"] == 1, fit
        # every atom of the 6 configurations is in the training or the test set
        assert fit["train"]["n_atoms"] + fit["test"]["n_atoms"] == int(header.group(1)), (out, fit)
        for part in ("train", "test"):
            assert _positive(fit[part]["energy_mev_per_atom"], fit[part]["forces_mev_per_A"]), fit
        assert _positive(fit["fit_s"], fit["rows_s"], fit["lammps_cpu_s"], fit["total_s"], fit["condition_number"])
        assert math.isclose(fit["fit_s"], fit["rows_s"] + fit["solve_s"], rel_tol=1e-9), fit
        assert Path(fit["model"]).suffix == ".snapcoeff", fit
        # the summary table repeats this run's test RMSE and fit time beside the references
        row = re.search(rf"^{fit['kind']} SNAP 2J=4 \(this run\) +([0-9.]+) +([0-9.]+) +([0-9.]+)$", out, re.M)
        assert row, out
        energy, forces, seconds = map(float, row.groups())
        assert _close(energy, fit["test"]["energy_mev_per_atom"], 2), (out, fit)
        assert _close(forces, fit["test"]["forces_mev_per_A"], 1) and _close(seconds, fit["fit_s"], 1), (out, fit)
    assert re.search(r"^ACE \(paper, 924/102\) +4\.24 +160\.7", out, re.M), out


def test_stop_latency_benchmark_runs(tmp_path):
    figures = tmp_path / "stop.json"
    out = _run(tmp_path, "stop_latency.py", "--sizes", "3", "--atom-steps", "2e4", "--repeats", "1",
               "--halt-size", "3", "--halt-steps", "50", "--start-delay", "0.05", "--json", str(figures))
    report = json.loads(figures.read_text())
    halt = re.search(r"^fix halt on is_file\(\) every step \((\d+) atoms\): ([-+0-9.]+) % per step; "
                     r"thermo every step: ([-+0-9.]+) %$", out, re.M)
    assert halt and int(halt.group(1)) == 2 * 3**3 == report["fix_halt_alternative"]["atoms"], out
    alternative = report["fix_halt_alternative"]
    assert alternative["steps"] == 50 and math.isfinite(alternative["thermo_every_step"]), report
    assert _close(float(halt.group(2)), 100 * alternative["fix_halt_is_file_every_step"], 1), (out, report)
    assert f"watch: the file is looked for every {report['poll_interval_s']} s" in out and report["poll_interval_s"] > 0
    row = re.search(r"^ +(\d+) atoms  step +([0-9.]+) ms  stop latency MD +(\d+) ms  minimize +(\d+) ms  "
                    r"watch overhead +([-+0-9.]+) % \(([0-9.]+) s vs ([0-9.]+) s CPU, (\d+) steps\)$", out, re.M)
    assert row, out  # the minimisation was stopped (a number, not "-"): it runs ~0.5 s, the file comes at ~0.05 s
    (figures_row,) = report["rows"]
    assert int(row.group(1)) == figures_row["atoms"] == 54, out
    assert int(row.group(8)) == figures_row["overhead_steps"] == int(2e4 // 54), out
    assert _positive(figures_row["step_s"], figures_row["md_latency_s"], figures_row["min_latency_s"],
                     figures_row["overhead_bare_s"], figures_row["overhead_watched_s"]), report
    assert figures_row["min_iterations"] > 0, report  # iterations done before the stop
    assert math.isclose(figures_row["overhead_overhead"],
                        figures_row["overhead_watched_s"] / figures_row["overhead_bare_s"] - 1.0, rel_tol=1e-9)
    assert _close(float(row.group(2)), figures_row["step_s"] * 1e3, 2), (out, report)
    assert _close(float(row.group(3)), figures_row["md_latency_s"] * 1e3, 0), (out, report)
    assert _close(float(row.group(4)), figures_row["min_latency_s"] * 1e3, 0), (out, report)
    assert _close(float(row.group(5)), figures_row["overhead_overhead"] * 100, 2), (out, report)


def test_grading_memory_benchmark_runs(tmp_path):
    figures = tmp_path / "memory.json"
    out = _run(tmp_path, "grading_memory.py", "--atoms", "54", "--snapshots", "2", "4", "--pool-size", "20",
               "--twojmax", "2", "--json", str(figures))
    report = json.loads(figures.read_text())
    assert "W bcc: 53 atoms per snapshot, SNAP 2J=2 (6 columns), gamma_select 2, max_new 200, pool 20 rows" in out, out
    number = r"([0-9.]+)"
    rows = re.findall(rf"^ +(\d+) +{number} +{number} +{number} +{number} +{number} +(\d+) +(\d+) +(\d+) +(\d+) \| "
                      rf"+{number} +{number} +{number} \| +{number} +{number}$", out, re.M)
    assert [int(row[0]) for row in rows] == [r["snapshots"] for r in report["rows"]] == [2, 4], out
    for printed, row in zip(rows, report["rows"]):
        assert _positive(row["wall_s"], row["grade_s"], row["select_s"], row["snapshots_per_s"], row["atoms_per_s"],
                         row["max_rss_mib"], row["tracemalloc_mib"], row["in_memory"]["tracemalloc_mib"]), row
        # an RSS increase can be 0: the work may fit in pages the process already has
        assert row["rss_increase_mib"] >= 0 and row["in_memory"]["rss_increase_mib"] >= 0, row
        assert math.isclose(row["snapshots_per_s"], row["snapshots"] / row["wall_s"], rel_tol=1e-9), row
        assert math.isclose(row["atoms_per_s"], row["snapshots"] * 53 / row["grade_s"], rel_tol=1e-9), row
        assert row["grade_s"] + row["select_s"] <= row["wall_s"], row
        assert 0 < row["chosen"] <= row["candidates"] and row["reductions"] >= 1, row  # the pool of 20 overflowed
        assert row["largest_pool"] <= 20 + 53, row  # the pool and one snapshot
        wall, grade, select, rate, atoms_rate = map(float, printed[1:6])
        assert _close(wall, row["wall_s"], 2) and _close(grade, row["grade_s"], 2), (out, row)
        assert _close(select, row["select_s"], 2) and _close(rate, row["snapshots_per_s"], 2), (out, row)
        assert _close(atoms_rate, row["atoms_per_s"], 0), (out, row)
        assert [int(x) for x in printed[6:10]] == [row["candidates"], row["chosen"], row["reductions"],
                                                   row["largest_pool"]], (out, row)
        rss, max_rss, traced, in_memory_rss, in_memory_traced = map(float, printed[10:])
        assert _close(rss, row["rss_increase_mib"], 1) and _close(max_rss, row["max_rss_mib"], 1), (out, row)
        assert _close(traced, row["tracemalloc_mib"], 2), (out, row)
        assert _close(in_memory_rss, row["in_memory"]["rss_increase_mib"], 1), (out, row)
        assert _close(in_memory_traced, row["in_memory"]["tracemalloc_mib"], 2), (out, row)
    small, large = report["rows"]
    ratios = report["ratios"]
    for key, figure, of in (("max_rss", "max_rss_mib", None), ("tracemalloc", "tracemalloc_mib", None),
                            ("rss_increase", "rss_increase_mib", None),
                            ("in_memory_rss_increase", "rss_increase_mib", "in_memory"),
                            ("in_memory_tracemalloc", "tracemalloc_mib", "in_memory")):
        a, b = (large[of], small[of]) if of else (large, small)
        if b[figure] > 0:
            assert math.isclose(ratios[key], a[figure] / b[figure], rel_tol=1e-9), (key, report)
        else:
            assert math.isnan(ratios[key]), (key, report)
    printed = re.search(r"^ratio 4/2: peak RSS increase ([0-9.na]+), peak RSS ([0-9.]+), tracemalloc peak ([0-9.]+); "
                        r"in-memory selection: RSS increase ([0-9.na]+), tracemalloc ([0-9.]+)$", out, re.M)
    assert printed, out
    for value, key in zip(printed.groups(), ("rss_increase", "max_rss", "tracemalloc", "in_memory_rss_increase",
                                             "in_memory_tracemalloc")):
        assert value == "nan" if math.isnan(ratios[key]) else _close(float(value), ratios[key], 2), (out, key)


# --------------------------------------------------------------------------- every benchmark has its tiny run

_DESELECTING_MARKS = ("mark.slow", "mark.skip", "mark.xfail")  # mark.skip also matches mark.skipif


def _deselected(decorators: list[ast.expr]) -> bool:
    return any(mark in ast.unparse(decorator) for decorator in decorators for mark in _DESELECTING_MARKS)


# the calls that run a script: as a subprocess, or its module loaded from the file (then its main called)
_RUNNERS = ("subprocess.run", "subprocess.Popen", "subprocess.check_output", "spec_from_file_location", "run_path")


def _strings(function: ast.FunctionDef, functions: dict[str, ast.FunctionDef],
             seen: set[str]) -> tuple[set[str], bool]:
    """String constants of a function (its docstring left out) and of the module functions it calls, transitively,
    and whether any of them calls a runner."""
    seen.add(function.name)
    body = function.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]  # a docstring naming a benchmark does not run it
    strings: set[str] = set()
    runs = False
    for node in [*function.decorator_list, *body]:
        for child in ast.walk(node):
            if isinstance(child, ast.Constant) and isinstance(child.value, str):
                strings.add(child.value)
            elif isinstance(child, ast.Call):
                runs |= ast.unparse(child.func).endswith(_RUNNERS)
                if isinstance(child.func, ast.Name) and child.func.id in functions and child.func.id not in seen:
                    more, calls = _strings(functions[child.func.id], functions, seen)
                    strings |= more
                    runs |= calls
    return strings, runs


def benchmark_tests(root: Path = ROOT) -> dict[str, list[str]]:
    """Each benchmarks/*.py -> the tests of the default suite that run it (node ids).

    A test runs a benchmark when its code, or the module-level helpers it calls, names the file (``"study.py"``
    or ``"benchmarks/study.py"``) and the benchmarks directory (``ROOT / "benchmarks" / script``) and runs a
    script (subprocess.run or Popen, importlib's spec_from_file_location, runpy.run_path); a test marked slow
    (deselected by default), skip, skipif or xfail, or in a module so marked, does not count.
    """
    scripts = sorted(path.name for path in (root / "benchmarks").glob("*.py"))
    covered: dict[str, list[str]] = {script: [] for script in scripts}
    for path in sorted((root / "tests").rglob("test_*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        module_marks = [node.value for node in tree.body if isinstance(node, ast.Assign)
                        and any(isinstance(t, ast.Name) and t.id == "pytestmark" for t in node.targets)]
        if _deselected(module_marks):
            continue
        functions = {node.name: node for node in tree.body if isinstance(node, ast.FunctionDef)}
        for name, function in functions.items():
            if not name.startswith("test") or _deselected(function.decorator_list):
                continue
            strings, runs = _strings(function, functions, set())
            in_benchmarks = any(s == "benchmarks" or "benchmarks/" in s for s in strings)
            if not runs or not in_benchmarks:
                continue
            for script in scripts:
                if any(s == script or s.endswith(f"/{script}") for s in strings):
                    covered[script].append(f"{path.relative_to(root)}::{name}")
    return covered


def test_every_benchmark_runs_with_tiny_arguments_in_the_default_suite():
    """A script added to benchmarks/ without a tiny-argument test of the default suite fails here."""
    covered = benchmark_tests()
    assert len(covered) >= 11 and "api_latency.py" in covered, covered  # the directory was read
    missing = sorted(script for script, tests in covered.items() if not tests)
    assert not missing, (
        f"benchmarks without a test of the default suite that runs them with tiny arguments: {missing}; "
        f"add one (tests/test_benchmarks_tiny.py, or tests/test_benchmarks_api.py for the ones that need "
        f"PostgreSQL and Redis)")
    # the discovery finds the tests it should, and not the skipped W-all SNAP test of tests/mlip
    assert covered["dashboard.py"] == ["tests/test_benchmarks_tiny.py::test_dashboard_benchmark_runs"], covered
    assert covered["api_latency.py"] == ["tests/test_benchmarks_api.py::test_api_latency_benchmark_runs"], covered
    assert covered["snap_training.py"] == ["tests/test_benchmarks_tiny.py::test_snap_training_benchmark_runs"], covered
    assert "tests/test_study_campaign.py::test_study_benchmark_runs_the_one_command_at_tiny_size" in covered["study.py"]


def test_a_benchmark_counts_as_run_only_by_a_default_test_that_runs_it(tmp_path):
    """The discovery on a made-up tree: naming a script in a docstring, or a slow or skipped test, is not a run."""
    (tmp_path / "benchmarks").mkdir()
    for name in ("run.py", "loaded.py", "docstring.py", "slow.py", "skipped.py", "named.py", "module_skip.py"):
        (tmp_path / "benchmarks" / name).write_text("")
    (tmp_path / "tests" / "deep").mkdir(parents=True)
    (tmp_path / "tests" / "test_a.py").write_text("""
import importlib.util, subprocess, pytest
def _run(script):
    return subprocess.run(["python", str(ROOT / "benchmarks" / script)])
def _load():
    return importlib.util.spec_from_file_location("b", ROOT / "benchmarks" / "loaded.py")
def test_run():
    _run("run.py")
def test_loaded():
    _load()
def test_docstring():
    \"\"\"benchmarks/docstring.py is measured elsewhere.\"\"\"
    _run("x.py")
@pytest.mark.slow
def test_slow():
    _run("slow.py")
@pytest.mark.skipif(True, reason="")
def test_skipped():
    _run("skipped.py")
def test_named():
    assert ["benchmarks", "named.py"]
""")
    (tmp_path / "tests" / "deep" / "test_b.py").write_text("""
import subprocess, pytest
pytestmark = pytest.mark.skip
def test_module_skip():
    subprocess.run(["python", "benchmarks/module_skip.py"])
""")
    assert benchmark_tests(tmp_path) == {
        "docstring.py": [], "loaded.py": ["tests/test_a.py::test_loaded"], "module_skip.py": [], "named.py": [],
        "run.py": ["tests/test_a.py::test_run"], "skipped.py": [], "slow.py": []}
