"""mlip.study: the B vs B+C vs B+P study as a pure function (tiny datasets, smoke suite, WL.meam labels)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk

from mlip.study import combinations_of, has_labels, read_study_json, run_study, study_table, write_study_json
from schemas.study import StudyParams
from selection.clusters import pad_vacuum

A = 3.1652  # EAM-Zhou W


def _cube(n: int, seed: int, sigma: float = 0.08, vacancy: bool = False) -> Atoms:
    atoms = bulk("W", "bcc", a=A, cubic=True).repeat((n, n, n))
    if vacancy:
        del atoms[len(atoms) // 2]
    atoms.positions += np.random.default_rng(seed).normal(0.0, sigma, atoms.positions.shape)
    return atoms


def _cluster(seed: int) -> Atoms:
    atoms = _cube(4, seed, vacancy=True)
    centre = atoms.cell.sum(axis=0) / 2.0
    ball = atoms[[i for i, p in enumerate(atoms.positions) if np.linalg.norm(p - centre) < 5.5]]
    ball.pbc = False
    return pad_vacuum(ball, 6.0)


@pytest.fixture(scope="module")
def datasets() -> dict[str, list[Atoms]]:
    basic = [_cube(2, s, sigma) for s, sigma in ((1, 0.03), (2, 0.06), (3, 0.1), (4, 0.12))]
    strained = _cube(2, 5, 0.05)
    strained.set_cell(strained.cell[:] * 1.02, scale_atoms=True)
    basic.append(strained)
    bare = _cluster(13)  # a cluster as cut: no cell, not periodic (labelled in a vacuum box)
    bare = Atoms(bare.numbers, positions=bare.positions, pbc=False)
    return {"B": basic, "C": [_cluster(11), _cluster(12), bare],
            "P": [_cube(2, s, 0.15, vacancy=True) for s in (21, 22, 23)]}


PARAMS = StudyParams(kinds=["linear", "quadratic"], snap={"twojmax": 4, "ridge": "auto", "seed": 0},
                     test_fraction=0.34, suite="smoke", scenarios=["gb", "crack", "loops"],
                     properties=False)  # tests/test_validation_api.py computes them


@pytest.fixture(scope="module")
def study(tmp_path_factory, datasets):
    first = run_study(datasets, "WL.meam", PARAMS, workdir=tmp_path_factory.mktemp("study-a"))
    second = run_study(datasets, "WL.meam", PARAMS, workdir=tmp_path_factory.mktemp("study-b"), write_suite=False)
    return first, second


def test_study_numbers_finite_and_reproducible(study, datasets):
    report, again = study
    assert [(m.combination, m.kind) for m in report.models] == [
        (c, k) for c in ("B", "B+C", "B+P") for k in ("linear", "quadratic")]
    assert report.datasets["B"] == {"configurations": 5, "atoms": 80, "labelled_here": 5,
                                    "train_configurations": 4, "test_configurations": 1}
    b, bp = report.models[0], report.models[4]
    assert bp.n_train_configurations == b.n_train_configurations + 2
    assert bp.n_train_atoms == b.n_train_atoms + 2 * 15
    assert bp.n_test_configurations == 2
    for model in report.models:
        assert Path(model.model_path).is_file() and Path(model.param_path).is_file()
        numbers = [*model.train_rmse.values(), *(model.test_rmse or {}).values(), model.ridge]
        for s in model.scenarios:
            numbers += [s.energy_rmse_mev_per_atom, s.force_rmse_mev_per_A, s.force_rmse_defect_mev_per_A]
        assert all(np.isfinite(v) for v in numbers)
        assert [s.scenario for s in model.scenarios] == ["gb", "crack", "loops"]
    assert {(r.kind, r.numerator) for r in report.ratios} == {
        (k, n) for k in ("linear", "quadratic") for n in ("B+P", "B+C")}
    for ratio in report.ratios:
        assert set(ratio.per_scenario) == {"gb", "crack", "loops"}
        assert ratio.mean == pytest.approx(np.mean(list(ratio.per_scenario.values())))
        assert ratio.mean_fig6 is None  # two of the paper's five Fig. 6 scenarios are not in this suite
    # capacity from the training data alone: per combination the kind with the lower held-out force RMSE
    for combination, kind in report.held_out_choice.items():
        tested = {m.kind: m.test_rmse["forces_mev_per_A"] for m in report.models if m.combination == combination}
        assert kind == min(tested, key=tested.get)
    assert list(report.held_out_choice) == ["B", "B+C", "B+P"]
    # same inputs, same seeds: the same numbers (timings and paths aside)
    machine = {"wall_time_s", "model_path", "param_path", "record_path", "lammps"}
    strip = lambda r: [m.model_dump(exclude=machine) for m in r.models]  # noqa: E731
    assert strip(report) == strip(again)
    assert [r.model_dump() for r in report.ratios] == [r.model_dump() for r in again.ratios]
    table = study_table(report)
    assert "B+P/B linear" in table and "defect atoms" in table
    # the caller's configurations are not labelled in place
    assert not any(has_labels(a) for a in datasets["B"])


def test_same_family_reference_refused(datasets, tmp_path):
    with pytest.raises(ValueError, match=r"^reference: .*SNAP family"):
        run_study(datasets, "W_2940_2017_2.snap", PARAMS, workdir=tmp_path)
    with pytest.raises(ValueError, match="reference"):
        run_study(datasets, "no-such-potential.meam", PARAMS, workdir=tmp_path)
    with pytest.raises(ValueError, match="'B'"):
        run_study({"P": datasets["P"]}, "WL.meam", PARAMS, workdir=tmp_path)
    assert [c for c, _ in combinations_of({"B": [1], "P": [1], "OTF": [1]})] == ["B", "B+P", "B+P+OTF"]


def test_study_json_round_trip_and_lammps_lines(study, tmp_path):
    """study.json: every path exists; its LAMMPS lines, run by ASE's LAMMPSlib (not the project's code), give the
    report's RMSEs on one scenario of the written suite."""
    from ase.calculators.lammpslib import LAMMPSlib
    from ase.io import read

    report, _ = study
    path = write_study_json(report, tmp_path / "study.json")
    data = json.loads(path.read_text())
    assert read_study_json(path) == report
    files = [data["suite_path"], *(m[k] for m in data["models"] for k in ("model_path", "param_path", "record_path"))]
    files += [w for line in data["reference_lammps"] for w in line.split() if "/" in w]
    assert len(files) > 3 and all(Path(f).is_absolute() and Path(f).is_file() for f in files)
    for m in data["models"]:
        assert m["model_path"] in " ".join(m["lammps"]) and m["param_path"] in " ".join(m["lammps"])

    model = next(m for m in data["models"] if m["combination"] == "B+P" and m["kind"] == "quadratic")
    expected = next(s for s in model["scenarios"] if s["scenario"] == "crack")
    suite = [a for a in read(data["suite_path"], ":") if a.info["scenario"] == "crack"]
    assert len(suite) == expected["n_configurations"]
    de, df, mask = [], [], []
    for atoms in suite:
        work = Atoms(atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
        work.calc = LAMMPSlib(lmpcmds=model["lammps"], atom_types={"W": 1}, keep_alive=False,
                              log_file=str(tmp_path / "lammps.log"))
        de.append((work.get_potential_energy() - atoms.get_potential_energy()) / len(atoms))
        df.append(work.get_forces() - atoms.get_forces())
        mask.append(np.asarray(atoms.arrays["defect"], dtype=bool))
    df, mask = np.concatenate(df), np.concatenate(mask)
    assert np.sqrt(np.mean(np.square(de))) * 1e3 == pytest.approx(expected["energy_rmse_mev_per_atom"], rel=1e-5,
                                                                   abs=1e-3)
    assert np.sqrt(np.mean(df**2)) * 1e3 == pytest.approx(expected["force_rmse_mev_per_A"], rel=1e-6)
    assert np.sqrt(np.mean(df[mask] ** 2)) * 1e3 == pytest.approx(expected["force_rmse_defect_mev_per_A"], rel=1e-6)


def test_same_family_reference_when_allowed(datasets, tmp_path):
    params = PARAMS.model_copy(update={"allow_same_family": True, "kinds": ["linear"], "scenarios": ["crack"]})
    report = run_study({"B": datasets["B"]}, "W_2940_2017_2.snap", params, workdir=tmp_path, write_suite=False)
    assert report.reference_family_allowed and report.notes[0].startswith("WARNING")
    assert [m.combination for m in report.models] == ["B"] and report.ratios == []
    assert any("snap" in line for line in report.reference_lammps)
    assert np.isfinite(report.models[0].scenarios[0].force_rmse_defect_mev_per_A)


def test_defect_force_ratios_and_the_fig6_mean():
    from types import SimpleNamespace

    from mlip.study import defect_force_ratios

    def model(combination, errors):
        return SimpleNamespace(combination=combination, kind="quadratic", scenarios=[
            SimpleNamespace(scenario=name, force_rmse_defect_mev_per_A=value) for name, value in errors.items()])

    names = ("gb", "compression", "polycrystal_2d", "polycrystal_3d", "crack", "loops")
    base = model("B", dict(zip(names, (200.0, 300.0, 400.0, 500.0, 250.0, 100.0))))
    with_p = model("B+P", dict(zip(names, (150.0, 240.0, 400.0, 350.0, 300.0, 50.0))))
    (ratio,) = defect_force_ratios([base, with_p], ["quadratic"])
    assert ratio.per_scenario == pytest.approx(dict(zip(names, (0.75, 0.8, 1.0, 0.7, 1.2, 0.5))))
    assert ratio.mean_fig6 == pytest.approx((0.75 + 0.8 + 1.0 + 0.7 + 1.2) / 5)  # loops is not one of Fig. 6's
    assert ratio.mean == pytest.approx((0.75 + 0.8 + 1.0 + 0.7 + 1.2 + 0.5) / 6)
    # a scenario without defect atoms has no ratio: the Fig. 6 mean needs all five
    base.scenarios[4].force_rmse_defect_mev_per_A = None
    (ratio,) = defect_force_ratios([base, with_p], ["quadratic"])
    assert ratio.per_scenario["crack"] is None and ratio.mean_fig6 is None
    assert defect_force_ratios([with_p], ["quadratic"]) == []  # no B, no ratio
