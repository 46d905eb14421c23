"""The study inside a campaign (spec section ``study``): the validation suite is built by its own stage, labelled
through the job ledger with the cells, B and the vacuum clusters C, and the ``validation`` stage trains one SNAP
per dataset combination and validates each on it."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
from support import TINY_SPEC, wait_for_campaign, write_bulk_training_set

from app.auth import get_or_create_user
from app.services import submit_campaign
from core.models import Artifact, Campaign, Label, Structure
from core.session import session_scope
from schemas import SpecError, StudyReport, parse_spec


def _spec(tmp_path, **changes) -> dict:
    write_bulk_training_set(tmp_path / "bulk.extxyz", n_rattled=4)  # bare geometries: the campaign labels B
    return copy.deepcopy(TINY_SPEC) | {
        "name": "study",
        "stop_after": None,
        "sampling": {"protocols": TINY_SPEC["sampling"]["protocols"][1:]},
        "selection": {"training_set": str(tmp_path / "bulk.extxyz"), "max_new": 3},
        "reconstruction": {"steps": 200, "exchanges": 100, "mc_moves": 20, "offsets": [-0.5]},
        "labelling": {"engine": "lammps", "reference": "WL.meam"},
        "study": {"suite": "smoke", "scenarios": ["gb", "loops"], "kinds": ["linear"], "test_fraction": 0.2,
                  "snap": {"twojmax": 4, "ridge": "auto", "seed": 0}, "properties": False},
    } | changes


# a small MTP and one OTF target: the validation stage then also trains B+P+OTF and validates the campaign's MTP
REFINEMENT = {
    "training": {"level": 8, "max_iter": 10, "test_fraction": 0.25, "stress_weight": 0.0},
    "otf": {"targets": [{"name": "dumbbell", "structure": {"kind": "bulk", "supercell": [5, 5, 5], "interstitials": 1,
                                                           "seed": 5}, "temperature": 300, "steps": 40}],
            "max_iterations": 2, "check_every": 20, "max_new": 2},
}


# slow (about 45 s): the default suite runs the study end to end through the ledger smaller, without the OTF
# refinement (test_study_benchmark_runs_the_one_command_at_tiny_size, test_validation_api.py), and the refinement
# stages on their own (test_refinement.py)
@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_campaign_study_labels_through_the_ledger_and_validates_each_combination(env, tmp_path):

    from mlip.validation import load_model
    from workers.stages.labelling import read_label

    spec = parse_spec(_spec(tmp_path, refinement=copy.deepcopy(REFINEMENT)))
    with session_scope() as session:
        campaign_id = submit_campaign(session, get_or_create_user(session, "alice"), spec).id
        stages = [s.stage for s in session.get(Campaign, campaign_id).stages]
    assert stages[-1] == "validation" and stages.index("validation_suite") < stages.index("labelling")

    campaign = wait_for_campaign(campaign_id, 300)
    assert campaign.status.value == "succeeded", campaign.error
    with session_scope() as session:
        counts = {stage: session.query(Structure).filter_by(campaign_id=campaign_id, stage=stage).count()
                  for stage in ("basic", "cluster_vacuum", "periodic", "validation")}
        # every configuration the study uses has a ledger label by the reference, MEAM (not the sampling EAM)
        for stage in ("basic", "cluster_vacuum", "periodic", "validation", "otf"):
            for structure in session.query(Structure).filter_by(campaign_id=campaign_id, stage=stage):
                row = session.get(Label, structure.label_id)
                assert row.state == "succeeded", (stage, row.error)
                assert read_label(row.path)["extra"]["efs_by"] == "lammps:WL.meam"
        plan = session.query(Artifact).filter_by(campaign_id=campaign_id, kind="labelling", name="plan").one().data
        # one cluster per selected atom (selection.merge_distance 0): every selected environment reaches C and P
        selected = session.query(Artifact).filter_by(campaign_id=campaign_id, kind="selection",
                                                     name="campaign").one().data["selected"]
        centres = [len(s.info["centres"]) for s in session.query(Structure).filter_by(campaign_id=campaign_id,
                                                                                       stage="cluster")]
        data = session.query(Artifact).filter_by(campaign_id=campaign_id, kind="validation",
                                                 name="campaign").one().data
        validation = session.query(Structure).filter_by(campaign_id=campaign_id, stage="validation").all()
        session_data = {"otf": session.query(Artifact).filter_by(campaign_id=campaign_id, kind="otf",
                                                                 name="campaign").one().data}
        from core.settings import get_settings
        from core.storage import StructureStore

        store = StructureStore(get_settings().data_dir)
        suite = [(store.read(s.path), read_label(session.get(Label, s.label_id).path)) for s in validation]
    assert counts["basic"] == 5 and counts["cluster_vacuum"] >= 1 and counts["periodic"] >= 1
    assert plan["clusters"] == counts["cluster_vacuum"] and plan["validation"] == counts["validation"]
    assert centres == [1] * selected and selected == counts["cluster_vacuum"]
    # smoke suite: three GBs at three temperatures, two loops relaxed and after MD
    assert counts["validation"] == 9 + 4

    report = StudyReport.model_validate(data)
    assert report.reference == "WL.meam" and any("meam" in line for line in report.reference_lammps)
    assert [m.combination for m in report.models] == ["B", "B+C", "B+P", "B+P+OTF"]
    otf = session_data["otf"]
    assert report.datasets["OTF"]["configurations"] == otf["n_labels"] >= 1
    assert report.datasets["B"]["configurations"] == 5 and report.datasets["B"]["test_configurations"] == 1
    assert report.datasets["C"]["configurations"] == counts["cluster_vacuum"]
    assert report.datasets["P"]["configurations"] == counts["periodic"]
    by_name = {m.combination: m for m in report.models}
    assert by_name["B+P"].n_train_configurations == 4 + report.datasets["P"]["train_configurations"]
    assert {r.numerator for r in report.ratios} == {"B+C", "B+P", "B+P+OTF"}
    study_json = json.loads((Path(get_settings().data_dir) / "campaigns" / str(campaign_id) / "study" /
                             "study.json").read_text())
    assert study_json["models"][2]["model_path"] == by_name["B+P"].model_path

    # an independent recomputation of one number: the written B+P model in LAMMPS on the stored suite
    model = load_model(by_name["B+P"].model_path)
    gb = [(atoms, label) for atoms, label in suite if atoms.info["scenario"] == "gb"]
    errors = np.concatenate([model.energy_forces(atoms)[1] - np.array(label["forces"]) for atoms, label in gb])
    mask = np.concatenate([atoms.arrays["defect"] for atoms, _ in gb])
    expected = float(np.sqrt(np.mean(errors[mask] ** 2)) * 1000.0)
    scenario = next(s for s in by_name["B+P"].scenarios if s.scenario == "gb")
    assert scenario.force_rmse_defect_mev_per_A == pytest.approx(expected, rel=1e-9)
    assert 1.0 < expected < 5000.0  # a fitted potential, not a copy of the reference and not a broken one
    assert scenario.parity is not None and scenario.parity.defect_atoms
    # gamma of every suite atom in the models' own linear bispectrum basis against their training set
    assert scenario.gamma.n_atoms == sum(len(atoms) for atoms, _ in gb) and scenario.gamma.gamma_max > 1.0
    assert len(scenario.parity.energy_reference) == 9

    # the campaign's own MTP (OTF's last model) on the same suite, recomputed independently with motep
    assert report.campaign_model_stage == "otf" and report.campaign_model.model == "MTP (OTF)"
    mtp = load_model(Path(get_settings().data_dir) / otf["model_path"], "W")
    errors = np.concatenate([mtp.energy_forces(atoms)[1] - np.array(label["forces"]) for atoms, label in gb])
    own = next(s for s in report.campaign_model.scenarios if s.scenario == "gb")
    assert own.force_rmse_defect_mev_per_A == pytest.approx(float(np.sqrt(np.mean(errors[mask] ** 2)) * 1000.0),
                                                            rel=1e-9)
    assert [s.scenario for s in report.campaign_model.scenarios] == [s.scenario for s in by_name["B"].scenarios]
    from app import dashboard

    with session_scope() as session:
        shown = dashboard.validation_results(session, campaign_id, "gb")
    rows = [r for r in shown["rows"] if r["combination"] == "campaign"]
    assert [(r["scenario"], r["kind"]) for r in rows] == [("gb", "MTP"), ("loops", "MTP")]
    assert rows[0]["force_rmse_defect_mev_per_A"] == own.force_rmse_defect_mev_per_A
    assert shown["chart"]["bars"][-1]["label"] == "campaign MTP"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_study_refuses_a_reference_in_the_snap_family(env, tmp_path):
    from workers.pipeline import check_spec

    spec = parse_spec(_spec(tmp_path, labelling={"engine": "lammps", "reference": "W_2940_2017_2.snap"}))
    with pytest.raises(SpecError) as caught:
        check_spec(spec)
    assert [e.field for e in caught.value.errors] == ["labelling.reference"]
    assert "study.allow_same_family" in str(caught.value)
    with pytest.raises(SpecError) as caught:
        parse_spec(_spec(tmp_path, study=None, stop_after="validation"))
    assert caught.value.errors[0].field == "stop_after"


def _benchmark():
    import importlib.util

    root = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location("study_benchmark", root / "benchmarks" / "study.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_study_benchmark_runs_the_one_command_at_tiny_size(tmp_path):
    """benchmarks/study.py --tiny: `defect-genome study` end to end; its ratios are the models' own numbers."""
    report = _benchmark().main(["--tiny", "--workdir", str(tmp_path), "--json", str(tmp_path / "bench.json")])
    assert list(report["stages"])[-1] == "validation" and "labelling" in report["stages"]
    assert 0 < sum(report["stages"].values()) <= report["wall_s"] * 1.01
    assert [(m["combination"], m["kind"]) for m in report["models"]] == [("B", "linear"), ("B+C", "linear"),
                                                                          ("B+P", "linear")]
    assert report["datasets"]["B"]["configurations"] == 25  # the generated basic set
    study = json.loads(Path(report["study_json"]).read_text())
    defect = {m["combination"]: {s["scenario"]: s["force_rmse_defect_mev_per_A"] for s in m["scenarios"]}
              for m in study["models"]}
    ratio = next(r for r in study["ratios"] if r["numerator"] == "B+P")
    for scenario in ("gb", "loops"):
        assert ratio["per_scenario"][scenario] == pytest.approx(defect["B+P"][scenario] / defect["B"][scenario])
        assert 10.0 < defect["B"][scenario] < 5000.0
    assert all(Path(m["model_path"]).is_file() for m in study["models"])


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_study_command_names_the_field_of_a_bad_spec(env, tmp_path):
    import yaml
    from click.testing import CliRunner

    from app.cli import main

    spec = _spec(tmp_path, labelling={"engine": "lammps", "reference": "W_2940_2017_2.snap"})
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(spec))
    result = CliRunner().invoke(main, ["study", str(tmp_path / "bad.yaml"), "--no-progress"])
    assert result.exit_code == 2
    assert "labelling.reference" in result.output and "Traceback" not in result.output
    spec = _spec(tmp_path, study={"suite": "nope"})
    (tmp_path / "bad2.yaml").write_text(yaml.safe_dump(spec))
    result = CliRunner().invoke(main, ["study", str(tmp_path / "bad2.yaml"), "--no-progress"])
    assert result.exit_code == 2 and "study.suite" in result.output
    spec = _spec(tmp_path, stop_after="labelling")
    (tmp_path / "bad3.yaml").write_text(yaml.safe_dump(spec))
    result = CliRunner().invoke(main, ["study", str(tmp_path / "bad3.yaml"), "--no-progress"])
    assert result.exit_code == 2 and "stop_after" in result.output and "Traceback" not in result.output


def test_selection_scope_protocol_keeps_a_loading_the_extreme_one_spans():
    """Campaign-wide D-optimality lets the most extreme loading's environments span a milder one's (their
    grades drop below gamma_select once those entered); scope protocol selects per loading against B."""
    from selection import maxvol
    from selection.grading import Chunk
    from workers.stages.selection import _select_chunks

    def _select(spec, active_set, rows, gammas, sources):
        """The stage's selection over rows held in memory, one chunk per snapshot (owners: snapshot, row)."""
        def chunks(members):
            for k in members:
                positions = np.arange(len(rows[k]))
                yield Chunk(rows[k], gammas[k], np.column_stack([np.full(positions.size, k), positions]))

        chosen, updated, _candidates = _select_chunks(spec, active_set, chunks, sources)
        return chosen, updated

    rng = np.random.default_rng(0)
    m = 6
    basic = maxvol.build_active_set(rng.normal(0.0, 1.0, (40, m)))
    direction = rng.normal(0.0, 1.0, m)
    mild = [8.0 * direction + rng.normal(0.0, 0.05, (5, m))]  # one loading, beyond B along one direction
    extreme = [40.0 * direction + rng.normal(0.0, 0.05, (5, m))]  # another one far along the same direction
    rows = extreme + mild
    gammas = [maxvol.grades(basic, r) for r in rows]
    assert all((g > 2.0).all() for g in gammas)
    sources = ["polycrystal/frame-0", "crack/frame-0"]

    def spec(scope):
        return parse_spec(copy.deepcopy(TINY_SPEC) | {"selection": {"scope": scope, "max_new": 3}})

    chosen, _ = _select(spec("campaign"), basic, rows, gammas, sources)
    assert {k for k, _ in chosen} == {0}
    chosen, updated = _select(spec("protocol"), basic, rows, gammas, sources)
    assert {k for k, _ in chosen} == {0, 1}
    assert updated.log_abs_det > basic.log_abs_det
