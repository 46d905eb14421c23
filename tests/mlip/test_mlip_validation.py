"""Validation suites (mlip.validation): the smoke suite builds every scenario with sensible defect masks, the
reference validated against itself gives exactly zero, a SNAP fitted on MEAM labels gives finite errors that are
identical run to run (one force RMSE recomputed through ASE's LAMMPSlib from the written files), the gamma
summary, the CLI round trip and its refusals (exit 2 naming the option). The paper suite is marked slow."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from ase.calculators.singlepoint import SinglePointCalculator
from click.testing import CliRunner

from md.potentials import bundled_potentials_dir, load_potential
from mlip import train_snap
from mlip.validation import (
    SCENARIOS,
    build_suite,
    label_configurations,
    load_model,
    load_reference,
    run_validation,
    validate,
)
from sampling.builders import bulk_crystal
from sampling.properties import relax_lattice_constant
from schemas.validation import ValidationReport, suite_params

POTENTIALS = bundled_potentials_dir()


@pytest.fixture(scope="module")
def sampler():
    potential = load_potential("W_zhou.eam.alloy")
    a, _ = relax_lattice_constant(potential, "W", "bcc")
    return potential, a


@pytest.fixture(scope="module")
def meam():
    return load_reference("WL.meam")


@pytest.fixture(scope="module")
def smoke(sampler):
    potential, a = sampler
    return build_suite(suite_params("smoke"), potential, "W", "bcc", a)


@pytest.fixture(scope="module")
def labelled(smoke, meam):
    return label_configurations(smoke, meam)


def _training_cells(meam):
    """Rattled, strained bulk W cells (some with a vacancy) labelled by the MEAM: the SNAP's training set."""
    rng = np.random.default_rng(5)
    cells = []
    for k in range(12):
        atoms = bulk_crystal("W", "bcc", 3.165, (3, 3, 3) if k % 2 else (2, 2, 3))
        if k % 3 == 1:
            del atoms[k]
        atoms.set_cell(atoms.cell[:] @ (np.eye(3) + rng.normal(0.0, 0.02, (3, 3))), scale_atoms=True)
        atoms.rattle(0.05 + 0.02 * (k % 4), seed=k)
        energy, forces = meam.energy_forces(atoms)
        atoms.calc = SinglePointCalculator(atoms, energy=energy, forces=forces)
        cells.append(atoms)
    return cells


@pytest.fixture(scope="module")
def snap_model(meam, tmp_path_factory):
    train = _training_cells(meam)
    model = train_snap(train, workdir=tmp_path_factory.mktemp("snap"), twojmax=6, name="W")
    return model, train


def _periodic_distance(z, planes, length):
    d = np.abs(np.asarray(z)[:, None] - np.asarray(planes)[None, :])
    d = np.minimum(d, length - d)
    return d.min(axis=1)


# --------------------------------------------------------------------------- the suite


def test_smoke_suite_builds_every_scenario_with_sensible_defect_masks(smoke):
    assert list(smoke) == list(SCENARIOS)
    for scenario, configs in smoke.items():
        assert configs, scenario
        for atoms in configs:
            assert 60 <= len(atoms) <= 300, (scenario, len(atoms))
            mask = atoms.arrays["defect"]
            assert mask.dtype == bool and mask.shape == (len(atoms),)
            assert atoms.info["scenario"] == scenario and atoms.info["validation_seed"] == 20250118
    # three symmetric tilt GBs at 300, 900, 2000 K
    labels = [a.info["label"] for a in smoke["gb"]]
    assert len(labels) == 9 and {label.split(")")[0] for label in labels} == {"(310[001]", "(210[001]", "(112[1-10]"}
    # a perfect crystal (the compression cell at zero strain, 300 K) has no defect atoms
    start = smoke["compression"][0]
    assert start.info["strain"] == 0.0 and not start.arrays["defect"].any()
    assert smoke["compression"][-1].info["strain"] == pytest.approx(-0.4)
    # severe compression leaves the bcc lattice (Bain path to fcc/hcp, then disorder)
    assert max(a.arrays["defect"].sum() for a in smoke["compression"][1:]) > 0.3 * len(start)
    # a GB cell: defect atoms, all near the two boundary planes (z = 0 and Lz/2), none in the grain interiors
    for atoms in smoke["gb"]:
        if not atoms.info["label"].endswith(" 300 K"):
            continue
        length = float(atoms.cell[2, 2])
        distance = _periodic_distance(atoms.positions[:, 2] % length, atoms.info["boundary_z"], length)
        mask = atoms.arrays["defect"]
        assert 10 <= mask.sum() <= 0.6 * len(atoms)
        assert distance[mask].max() < 4.0, atoms.info["label"]
        assert distance.max() > 4.5 and not mask[distance > 4.5].any()
    # polycrystals are mostly boundary at this size; loops, crack and indent have some defect atoms
    for scenario in ("polycrystal_2d", "polycrystal_3d", "loops", "crack", "nanoindent"):
        assert all(a.arrays["defect"].sum() > 10 for a in smoke[scenario]), scenario
    indent = smoke["nanoindent"][0]
    assert indent.info["indenter_depth"] == pytest.approx(2.0) and list(indent.pbc) == [True, True, False]
    # the loops keep their inserted atoms: 4x4x4 bcc has 128 sites
    assert all(len(a) > 128 for a in smoke["loops"])


def test_reference_validated_against_itself_gives_exactly_zero(labelled, meam):
    report = validate(meam, labelled)
    assert [s.scenario for s in report.scenarios] == list(SCENARIOS)
    assert report.reference == "WL.meam" and report.suite == "smoke"
    for s in report.scenarios:
        assert s.energy_rmse_mev_per_atom == 0.0 and s.force_rmse_mev_per_A == 0.0
        assert s.max_force_error_mev_per_A == 0.0 and s.energy_rmse_centred_mev_per_atom == 0.0
        assert s.force_rmse_defect_mev_per_A in (0.0, None)
    assert report.scenarios[SCENARIOS.index("gb")].force_rmse_defect_mev_per_A == 0.0


# --------------------------------------------------------------------------- a SNAP fitted on MEAM labels


def test_snap_validation_is_finite_and_identical_run_to_run(snap_model, meam, sampler):
    model, _ = snap_model
    potential, a = sampler
    params = suite_params("smoke")
    first = run_validation(model, meam, params, potential, "W", "bcc", a=a)
    second = run_validation(model, meam, suite_params("smoke"), potential, "W", "bcc", a=a)
    assert first.model_dump(exclude={"timings"}) == second.model_dump(exclude={"timings"})
    for s in first.scenarios:
        assert 0 < s.force_rmse_mev_per_A < 2000 and np.isfinite(s.energy_rmse_mev_per_atom)
        assert s.max_force_error_mev_per_A >= s.force_rmse_mev_per_A
    names = {p.name: p for p in first.properties}
    for key in ("a", "C11", "C12", "C44", "E_vac", "E_sia_111", "gamma_surface_100", "gamma_surface_110",
                "gamma_gb_sigma5_310", "E-V rmse"):
        assert names[key].model is not None and np.isfinite(names[key].difference), key
    assert names["a"].reference == pytest.approx(3.164, abs=2e-3)  # WL.meam (DESIGN.md section 5)
    assert abs(names["a"].difference) < 0.05
    assert len(first.energy_volume["model_eV_per_atom"]) == params.properties.ev_points
    # JSON round trip
    again = ValidationReport.model_validate_json(first.model_dump_json())
    assert again == first
    assert "gb" in first.table() and "gamma_surface_100" in first.table()


def test_force_rmse_recomputed_with_ase_lammpslib(snap_model, labelled):
    """One scenario's force RMSE from the written .snapcoeff/.snapparam through ASE's LAMMPSlib (not the
    project's LAMMPS wrapper), by hand."""
    from ase.calculators.lammpslib import LAMMPSlib

    from md.engine import ensure_mpi_loaded

    model, _ = snap_model
    report = validate(model, labelled)
    ensure_mpi_loaded()
    commands = ["pair_style snap", f"pair_coeff * * {model.path.resolve()} {Path(model.param_path).resolve()} W"]
    for scenario in ("gb", "loops"):
        diffs, defect = [], []
        for atoms in labelled[scenario]:
            work = atoms.copy()
            work.calc = LAMMPSlib(lmpcmds=commands, atom_types={"W": 1}, keep_alive=False, log_file=None)
            diffs.append(work.get_forces() - atoms.get_forces())
            defect.append(atoms.arrays["defect"])
        diffs, defect = np.concatenate(diffs), np.concatenate(defect)
        row = report.scenarios[SCENARIOS.index(scenario)]
        assert 1000 * np.sqrt(np.mean(diffs**2)) == pytest.approx(row.force_rmse_mev_per_A, rel=1e-8)
        assert 1000 * np.sqrt(np.mean(diffs[defect] ** 2)) == pytest.approx(row.force_rmse_defect_mev_per_A, rel=1e-8)


def test_gamma_summary_with_a_snap_basis(snap_model, labelled):
    from selection.bases import SnapBasis

    model, train = snap_model
    report = validate(model, {k: labelled[k] for k in ("compression", "gb")}, basis=SnapBasis("W", twojmax=6),
                      training=train)
    compression, gb = report.scenarios
    for row in (compression, gb):
        assert row.gamma is not None and row.gamma.n_atoms == row.n_atoms
        assert 0 <= row.gamma.fraction_above_10 <= row.gamma.fraction_above_2 <= row.gamma.fraction_above_1 <= 1
    assert gb.gamma.gamma_max > 1.0  # GB environments are not in a rattled-bulk training set
    with pytest.raises(ValueError, match="active_set"):
        validate(model, labelled, basis=SnapBasis("W", twojmax=6))


# --------------------------------------------------------------------------- the command line


def test_cli_round_trip_prints_the_table_and_writes_json(snap_model, tmp_path):
    from ase.io import write

    from app.cli import main

    model, train = snap_model
    out = tmp_path / "report.json"
    record = model.metadata_path
    write(tmp_path / "train.extxyz", train, format="extxyz")
    result = CliRunner().invoke(main, ["validate", str(record), "--suite", "smoke", "--out", str(out),
                                       "--train", str(tmp_path / "train.extxyz")])
    assert result.exit_code == 0, result.output
    assert "scenario" in result.output and "nanoindent" in result.output and "gamma_gb_sigma5_310" in result.output
    report = ValidationReport.model_validate(json.loads(out.read_text()))
    assert report.reference == "WL.meam" and report.suite == "smoke" and len(report.scenarios) == len(SCENARIOS)
    assert report.model == "W"
    assert all(s.gamma is not None and s.gamma.n_atoms == s.n_atoms for s in report.scenarios)
    assert report.scenarios[SCENARIOS.index("polycrystal_3d")].gamma.fraction_above_2 > 0
    # the .snap include file names the same model
    assert load_model(model.include_path).potential.pair_commands(["W"]) == \
        load_model(record).potential.pair_commands(["W"])


def _bad_inputs(tmp_path: Path, model) -> dict[str, tuple[list[str], str]]:
    mo = tmp_path / "mo"
    mo.mkdir()
    for suffix in (".snapcoeff", ".snapparam"):
        shutil.copy(POTENTIALS / f"Mo_Zuo_JPCA2020{suffix}", mo / f"Mo{suffix}")
    lonely = tmp_path / "lonely"
    lonely.mkdir()
    shutil.copy(model.path, lonely / "W.snapcoeff")
    broken = tmp_path / "broken.eam.alloy"
    lines = (POTENTIALS / "W_zhou.eam.alloy").read_text().splitlines()
    broken.write_text("\n".join(lines[:7]) + "\n")  # the header, then the tables cut off
    record = str(model.metadata_path)
    return {
        "other element": ([str(mo / "Mo.snapcoeff")], "--reference"),
        "missing snapparam": ([str(lonely / "W.snapcoeff")], "MODEL: param_path"),
        "unknown suite": ([record, "--suite", "huge"], "--suite"),
        "refused reference": ([record, "--reference", str(broken)], "--reference"),
        "same family": ([record, "--reference", "W_2940_2017_2.snap"], "--reference"),
        "missing model": ([str(tmp_path / "nothing.snapcoeff")], "MODEL"),
        "foreign training set": ([record, "--train", str(mo / "Mo.snapcoeff")], "--train"),
    }


@pytest.mark.parametrize("case", ["other element", "missing snapparam", "unknown suite", "refused reference",
                                  "same family", "missing model", "foreign training set"])
def test_cli_bad_input_exits_2_naming_the_option(snap_model, tmp_path, case):
    from app.cli import main

    model, _ = snap_model
    arguments, option = _bad_inputs(tmp_path, model)[case]
    result = CliRunner().invoke(main, ["validate", *arguments, "--no-properties"])
    assert result.exit_code == 2, result.output
    assert option in result.output, result.output
    assert "Traceback" not in result.output and not isinstance(result.exception, (KeyError, TypeError, AttributeError))


def test_same_family_is_accepted_with_a_loud_warning(snap_model, tmp_path):
    """--allow-same-family: the shipped W SNAP as the teacher of a SNAP, with the warning in the report."""
    from mlip.validation import validate_command

    model, _ = snap_model
    warnings = []
    params_file = tmp_path / "r.json"
    report = validate_command(model.metadata_path, "W_2940_2017_2.snap", "smoke", params_file, properties=False,
                              allow_same_family=True, warn=warnings.append)
    assert warnings and "WARNING" in report.notes[0] and "SNAP" in report.notes[0]
    assert report.reference == "W_2940_2017_2.snap"
    assert all(np.isfinite(s.force_rmse_mev_per_A) for s in report.scenarios)


# --------------------------------------------------------------------------- the paper suite


@pytest.mark.slow
def test_paper_suite_scenarios_and_sizes(sampler, meam, snap_model):
    potential, a = sampler
    model, _ = snap_model
    started = time.perf_counter()
    params = suite_params("paper")
    report = run_validation(model, meam, params, potential, "W", "bcc", a=a)
    assert [s.scenario for s in report.scenarios] == list(SCENARIOS)
    for s in report.scenarios:
        assert all(100 <= n <= 500 for n in s.atoms_per_configuration), (s.scenario, s.atoms_per_configuration)
        assert np.isfinite(s.force_rmse_mev_per_A)
    assert report.scenarios[0].n_configurations == 9  # three GBs x 300, 900, 2000 K
    print(report.table(), report.timings, time.perf_counter() - started)


def test_cli_validates_an_mtp_against_the_w_snap(tmp_path):
    """MODEL = .mtp (motep's calculator) with the default reference for MTPs, the shipped W SNAP."""
    from app.cli import main
    from mlip import train_mtp

    teacher = load_reference("W_2940_2017_2.snap")
    rng = np.random.default_rng(5)
    cells = []
    for k in range(8):
        atoms = bulk_crystal("W", "bcc", 3.18, (2, 2, 2))
        if k % 3 == 1:
            del atoms[k]
        atoms.set_cell(atoms.cell[:] @ (np.eye(3) + rng.normal(0.0, 0.02, (3, 3))), scale_atoms=True)
        atoms.rattle(0.05, seed=k)
        energy, forces = teacher.energy_forces(atoms)
        atoms.calc = SinglePointCalculator(atoms, energy=energy, forces=forces)
        cells.append(atoms)
    model = train_mtp(cells, level=4, max_iter=3, workdir=tmp_path, seed=3, stress_weight=0.0)
    out = tmp_path / "mtp.json"
    result = CliRunner().invoke(main, ["validate", str(model.path), "--suite", "smoke", "--out", str(out),
                                       "--no-properties"])
    assert result.exit_code == 0, result.output
    report = ValidationReport.model_validate_json(out.read_text())
    assert report.reference == "W_2940_2017_2.snap" and report.model == "pot"
    assert all(np.isfinite(s.force_rmse_mev_per_A) and s.force_rmse_mev_per_A > 0 for s in report.scenarios)
    assert report.properties == [] and load_model(model.path).family == "mtp"


def test_properties_from_energies_and_forces_match_lammps(meam):
    """The property path of models LAMMPS cannot run (MTP: ASE BFGS, energy second differences) gives the
    MEAM's LAMMPS values (sampling.properties, CG) when fed the MEAM as a plain function."""
    from mlip.validation import Evaluator, defect_properties, evaluator_properties

    settings = suite_params("smoke").properties
    lammps = defect_properties(meam.potential, "W", "bcc", settings)
    as_function = Evaluator("meam-function", "function", ("W",), function=meam.energy_forces)
    generic = evaluator_properties(as_function, "W", "bcc", settings, a_guess=3.16, ev_constants=lammps["ev_constants"])
    assert generic["notes"] == []
    assert generic["a"] == pytest.approx(lammps["a"], abs=1e-4)
    assert generic["E_coh"] == pytest.approx(lammps["E_coh"], abs=1e-6)
    for key in ("C11", "C12", "C44"):
        assert generic[key] == pytest.approx(lammps[key], abs=0.5), key
    for key in ("E_vac", "E_sia_111"):
        assert generic[key] == pytest.approx(lammps[key], abs=2e-3), key
    for key in ("gamma_surface_100", "gamma_surface_110", "gamma_gb_sigma5_310"):
        assert generic[key] == pytest.approx(lammps[key], abs=2e-3), key
    assert generic["ev_energy"] == lammps["ev_energy"]
