"""Refinement as campaign stages: training -> otf -> ensemble on the embedded default, with real LAMMPS,
motep and the EAM reference labeller, and what the campaign shows of it (REST, dashboard, OTF export).

The campaign: a vacancy anneal graded against bulk B (3 x 128 atoms, bare geometries, so the campaign
labels them), one PCC-GCMC cell of a vacancy neighbour, a level-8 MTP on B + P (one configuration held
out), then OTF-AL under MD of a 251-atom cell with a <111> dumbbell, which B + P never saw: measured, the
first run breaks at step 0 (gamma ~4e7, the dumbbell closer than the MTP's min_dist), iterations add 2,
2, 1 cells and the fourth is below gamma_select everywhere (converged); then two MTPs for sigma_F.
"""

from __future__ import annotations

import copy
import io
import json
import math
import time
from pathlib import Path

import pytest
from support import TINY_SPEC, wait_for_campaign, write_bulk_training_set

from app.auth import get_or_create_user
from app.services import submit_campaign
from core.models import Artifact, Campaign, Environment, Label, StageRun, Structure, WorkItem
from core.session import session_scope
from schemas import SpecError, parse_spec

REFINEMENT = {
    "training": {"level": 8, "max_iter": 10, "test_fraction": 0.25, "stress_weight": 0.0},
    "otf": {
        "targets": [{"name": "dumbbell", "structure": {"kind": "bulk", "supercell": [5, 5, 5], "interstitials": 1,
                                                       "seed": 5}, "temperature": 300, "steps": 60}],
        "max_iterations": 4, "check_every": 20, "max_new": 2,
    },
    "ensemble": {"k": 2, "max_snapshots": 2},
}


def _spec_data(tmp_path: Path, **overrides) -> dict:
    write_bulk_training_set(tmp_path / "bulk.extxyz", n_rattled=2)
    return copy.deepcopy(TINY_SPEC) | {
        "stop_after": None,
        "sampling": {"protocols": TINY_SPEC["sampling"]["protocols"][1:]},  # the vacancy run, 3 snapshots
        "selection": {"training_set": str(tmp_path / "bulk.extxyz"), "max_new": 1},
        "reconstruction": {"protocol": "fast", "steps": 200, "exchanges": 100, "offsets": [-0.5]},
        "labelling": {"engine": "eam"},
        "refinement": copy.deepcopy(REFINEMENT),
    } | overrides


def _errors(data) -> dict[str, str]:
    with pytest.raises(SpecError) as info:
        parse_spec(data)
    return {e.field: e.message for e in info.value.errors}


def test_refinement_spec_is_optional_and_bad_input_names_the_field(tmp_path):
    from workers.pipeline import stages_for

    without = parse_spec(copy.deepcopy(TINY_SPEC) | {"stop_after": None})
    assert without.refinement is None and [s.name for s in stages_for(without)][-1] == "labelling"
    spec = parse_spec(_spec_data(tmp_path))
    assert [s.name for s in stages_for(spec)][-8:] == [
        "training", "otf_md", "otf_selection", "otf_boxes", "otf_cells", "otf_labelling", "otf_training", "ensemble"]
    assert spec.refinement.otf.target_names() == ["dumbbell"]
    no_ensemble = _spec_data(tmp_path)
    no_ensemble["refinement"].pop("ensemble")
    assert [s.name for s in stages_for(parse_spec(no_ensemble))][-1] == "otf_training"

    bad = _spec_data(tmp_path)
    bad["refinement"]["ensemble"]["k"] = 1
    assert "greater than or equal to 2" in _errors(bad)["refinement.ensemble.k"]
    bad = _spec_data(tmp_path)
    bad["refinement"]["training"] |= {"min_dist": 5.5}
    assert "min_dist: 5.5 A must be below max_dist" in _errors(bad)["refinement.training"]
    bad = _spec_data(tmp_path)
    bad["refinement"]["training"]["level"] = 7
    assert "multiple of 2" in _errors(bad)["refinement.training.level"]
    bad = _spec_data(tmp_path)
    bad["refinement"]["training"] |= {"forces_weight": -0.01, "stress_weight": "nan"}
    errors = _errors(bad)
    assert "greater than or equal to 0" in errors["refinement.training.forces_weight"]
    assert "finite number" in errors["refinement.training.stress_weight"]
    bad = _spec_data(tmp_path)
    bad["refinement"]["otf"]["targets"][0]["temperature"] = 0
    assert "greater than 0" in _errors(bad)["refinement.otf.targets.0.temperature"]
    assert "refinement section" in _errors(copy.deepcopy(TINY_SPEC) | {"stop_after": "otf"})["stop_after"]
    bad = _spec_data(tmp_path, selection={"gamma_select": 12.0})
    assert "exceed gamma_select" in _errors(bad)["selection.gamma_break"]
    # checked at submission with the potential, as the sampling structures: a box below twice its cutoff
    from workers.pipeline import check_spec

    small = _spec_data(tmp_path)
    small["refinement"]["otf"]["targets"][0]["structure"]["supercell"] = [4, 4, 4]
    with pytest.raises(SpecError) as info:
        check_spec(parse_spec(small))
    assert [e.field for e in info.value.errors] == ["refinement.otf.targets.0.structure"]


def _finished(campaign_id: int, timeout: float) -> Campaign:
    return wait_for_campaign(campaign_id, timeout, interval=0.5)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_training_otf_and_ensemble_stages_and_what_the_campaign_shows(env, tokens, client, tmp_path):
    import numpy as np

    from core.settings import get_settings
    from mlip import TrainedModel, evaluate
    from sampling.datasets import read_dataset
    from workers.stages.labelling import read_label
    from workers.stages.otf import retrain_and_record

    started = time.monotonic()
    spec = parse_spec(_spec_data(tmp_path))
    with session_scope() as session:
        campaign_id = submit_campaign(session, get_or_create_user(session, "alice"), spec).id
    campaign = _finished(campaign_id, timeout=600)
    assert campaign.status.value == "succeeded", campaign.error
    data_dir = Path(get_settings().data_dir)
    with session_scope() as session:
        took = {s.stage: round((s.finished_at - s.started_at).total_seconds(), 1)
                for s in session.query(StageRun).filter_by(campaign_id=campaign_id)}
        artifacts = {(a.kind, a.name): a.data for a in session.query(Artifact).filter_by(campaign_id=campaign_id)}
        otf_cells = (session.query(Structure).filter_by(campaign_id=campaign_id, stage="otf")
                     .order_by(Structure.id).all())
        otf_cells = [(c.id, c.info["iteration"], c.energy, session.get(Label, c.label_id)) for c in otf_cells]
        defect_atoms: dict[int, int] = {}  # per sampling snapshot
        for environment in session.query(Environment).join(Structure).filter(
                Structure.campaign_id == campaign_id, Structure.stage == "sampling"):
            defect_atoms[environment.structure_id] = defect_atoms.get(environment.structure_id, 0) + 1
        basic_labels = [s.label_id for s in session.query(Structure).filter_by(campaign_id=campaign_id, stage="basic")]
        md_items = (session.query(WorkItem).join(StageRun)
                    .filter(StageRun.campaign_id == campaign_id, StageRun.stage.startswith("otf_md.")).all())
        md_progress = [(item.progress_done, item.progress_total) for item in md_items]
        training_items = (session.query(WorkItem).join(StageRun).order_by(StageRun.position)
                          .filter(StageRun.campaign_id == campaign_id, StageRun.stage.startswith("otf_training."))
                          .all())
        first_training = training_items[0].id
    print(f"\ncampaign ran in {time.monotonic() - started:.1f} s {took}")
    print("OTF:", json.dumps(artifacts[("otf", "campaign")]["added_per_iteration"]),
          [round(g, 3) for g in artifacts[("otf", "campaign")]["gamma_max_per_iteration"]])

    # B (bare geometries in the user's file) was labelled by the campaign for training
    assert len(basic_labels) == 3 and all(basic_labels)
    # training: an MTP on B + P with one of the 4 configurations held out; the stored test RMSE is the model's
    training = artifacts[("mtp_training", "campaign")]
    assert (training["level"], training["n_train"], training["n_test"]) == (8, 3, 1)
    weights = TrainedModel.load(data_dir / training["path"]).settings
    assert (weights["energy_weight"], weights["forces_weight"], weights["stress_weight"]) == (1.0, 0.01, 0.0)
    for part in ("train", "test"):
        for key in ("energy_mev_per_atom", "forces_mev_per_A"):
            assert math.isfinite(training["rmse"][part][key]) and training["rmse"][part][key] > 0
    with session_scope() as session:
        from workers.stages.refinement import training_sets

        _train, test = training_sets(session, campaign_id, spec)
    energies, _forces = evaluate(data_dir / training["path"], test, ["W"])
    recomputed = abs(energies[0] - test[0].get_potential_energy() / len(test[0])) * 1000
    assert training["rmse"]["test"]["energy_mev_per_atom"] == pytest.approx(recomputed, rel=1e-6, abs=1e-6)

    # otf: one artifact per iteration; every iteration but the last added cells, stored as otf structures
    iterations = [artifacts[("otf_iteration", f"{i:03d}")] for i in range(1, len(
        [k for k in artifacts if k[0] == "otf_iteration"]) + 1)]
    summary = artifacts[("otf", "campaign")]
    added = [it["n_added"] for it in iterations]
    assert summary["added_per_iteration"] == added and summary["n_iterations"] == len(iterations) >= 2
    assert all(n >= 1 for n in added[:-1]) and added[-1] == 0 and summary["stopped"] == "converged"
    # the DFT budget: what the labelling stage's jobs left of it caps the OTF labels, every one counted
    with session_scope() as session:
        label_jobs = session.query(WorkItem).join(StageRun).filter(
            StageRun.campaign_id == campaign_id, StageRun.stage == "labelling").count()
        cells = session.query(Structure).filter_by(campaign_id=campaign_id, stage="periodic").count()
    assert label_jobs == len(basic_labels) + cells  # B and P, within the budget
    assert summary["max_labels"] == spec.budget.max_dft_jobs - label_jobs
    assert summary["n_labels"] == sum(it["n_labels"] for it in iterations) == len(otf_cells)
    assert all(it["n_added"] <= it["n_selected"] <= min(it["n_candidates"], 2) for it in iterations)
    assert [sum(1 for _, i, _, _ in otf_cells if i == it["index"]) for it in iterations] == added
    assert [cid for it in iterations for cid in it["structure_ids"]] == [cid for cid, _, _, _ in otf_cells]
    for it in iterations:  # the loop's own record in the campaign's directory says the same
        record = json.loads((data_dir / "campaigns" / str(campaign_id) / "otf" /
                             f"iteration-{it['index']:03d}.json").read_text())
        assert record["n_added"] == it["n_added"] and [r["gamma_max"] for r in record["runs"]] == [
            r["gamma_max"] for r in it["runs"]]
        assert it["gamma_max"] == pytest.approx(max(max(r["gamma_max"]) for r in it["runs"]))
        if it["n_added"]:
            assert it["retrained"] and all(math.isfinite(it["rmse"][p]["forces_mev_per_A"]) for p in ("train", "test"))
        else:
            assert not it["retrained"] and it["rmse"] is None
    first, last = iterations[0], iterations[-1]
    assert first["gamma_max"] > 10.0 and first["runs"][0]["stopped"] == "gamma_break"
    for run in last["runs"]:  # production: every snapshot below gamma_break, the run completed
        assert run["stopped"] == "completed" and run["steps_done"] == 60 and run["snapshot_steps"] == [0, 20, 40, 60]
        assert max(run["gamma_max"]) < 10.0
    assert last["gamma_max"] <= 2.0 and last["n_candidates"] == 0
    # one MD item per iteration (one target), its progress counted in MD steps
    assert md_progress == [(60, 60)] * len(iterations)
    # the added cells carry succeeded ledger labels; their energies are the labels'
    for _cid, _iteration, energy, label in otf_cells:
        assert label.state == "succeeded" and label.engine == "eam" and label.energy == pytest.approx(energy)
        assert len(read_label(label.path)["forces"]) == label.n_atoms

    # ensemble: sigma_F of every defect atom of max_snapshots = 2 of the 3 sampling snapshots (the first
    # and the last), and nothing else
    ensemble = artifacts[("ensemble", "campaign")]
    histogram = ensemble["histogram"]
    assert ensemble["k"] == 2 and ensemble["n_train"] == 3 + len(otf_cells)
    assert (ensemble["snapshots"], ensemble["snapshots_with_defects"], len(defect_atoms)) == (2, 3, 3)
    evaluated = [row["structure_id"] for row in ensemble["per_snapshot"]]
    assert evaluated == [min(defect_atoms), max(defect_atoms)]
    assert [row["n"] for row in ensemble["per_snapshot"]] == [defect_atoms[sid] for sid in evaluated]
    counted = sum(defect_atoms[sid] for sid in evaluated)
    assert histogram["n"] == sum(histogram["counts"]) == counted > 0
    assert 0 < histogram["sigma_mean"] <= histogram["sigma_max"] < 1.0  # eV/A

    # a re-delivered task of an iteration's end after a crash: the same record, nothing new is stored
    retrain_and_record(first_training)
    with session_scope() as session:
        assert session.query(Structure).filter_by(campaign_id=campaign_id, stage="otf").count() == len(otf_cells)
        again = session.query(Artifact).filter_by(campaign_id=campaign_id, kind="otf_iteration", name="001").one()
        assert again.data["structure_ids"] == first["structure_ids"]

    # REST: iterations as {data, count}, the ensemble histogram, the first model; another user's is a 404
    headers = {"Authorization": f"Bearer {tokens['alice']}"}
    body = client.get(f"/api/v1/campaigns/{campaign_id}/otf", headers=headers).json()
    assert body["count"] == len(iterations) and [it["n_added"] for it in body["data"]] == added
    assert [it["n_labels"] for it in body["data"]] == [it["n_labels"] for it in iterations]
    assert body["data"][-1]["runs"][0]["gamma_max"] == last["runs"][0]["gamma_max"]
    assert client.get(f"/api/v1/campaigns/{campaign_id}/otf", params={"offset": 1, "limit": 1},
                      headers=headers).json()["data"][0]["index"] == 2
    body = client.get(f"/api/v1/campaigns/{campaign_id}/ensemble", headers=headers).json()
    assert body["histogram"]["counts"] == histogram["counts"] and body["histogram"]["n"] == counted
    body = client.get(f"/api/v1/campaigns/{campaign_id}/training", headers=headers).json()
    assert body["rmse"]["test"]["energy_mev_per_atom"] == training["rmse"]["test"]["energy_mev_per_atom"]
    bob = {"Authorization": f"Bearer {tokens['bob']}"}
    assert client.get(f"/api/v1/campaigns/{campaign_id}/otf", headers=bob).status_code == 404

    # export OTF: the added cells with their labels' energies
    response = client.get(f"/api/v1/campaigns/{campaign_id}/export", params={"format": "extxyz", "datasets": "OTF"},
                          headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["x-configurations"] == str(len(otf_cells))
    images = read_dataset(io.BytesIO(response.content), format="extxyz")
    assert [a.get_potential_energy() for a in images] == pytest.approx([e for _, _, e, _ in otf_cells], abs=1e-9)
    assert all(np.isfinite(a.get_forces()).all() for a in images)
    # B + P + OTF: the ensemble's training set plus the held-out configuration
    response = client.get(f"/api/v1/campaigns/{campaign_id}/export", params={"format": "mtp", "datasets": "B,P,OTF"},
                          headers=headers)
    assert response.status_code == 200 and response.headers["x-configurations"] == str(4 + len(otf_cells))

    # dashboard: the iteration table's numbers, the chart data, the sigma_F table and its total
    page = client.get(f"/ui/campaigns/{campaign_id}", headers=headers)
    assert page.status_code == 200
    html = page.text
    import re

    rows = dict(re.findall(r'<tr data-iteration="(\d+)">(.*?)</tr>', html, re.S))
    assert set(rows) == {str(i) for i in range(len(iterations) + 1)}  # the initial model and every iteration
    for it in iterations:
        row = rows[str(it["index"])]
        assert re.search(rf'class="num n-added">{it["n_added"]}\b', row)
        assert f'class="num gamma-max">{it["gamma_max"]:.3g}<' in row
        if it["rmse"]:
            assert f'{it["rmse"]["test"]["energy_mev_per_atom"]:.2f} meV/atom' in row
    assert f'{training["rmse"]["train"]["energy_mev_per_atom"]:.2f} meV/atom' in rows["0"]
    chart = json.loads(re.search(r'id="dg-refinement-data">(.*?)</script>', html, re.S).group(1))
    assert chart["otf"]["steps"] == [0, 20, 40, 60] and len(chart["otf"]["series"]) == len(iterations)
    assert chart["otf"]["series"][-1]["gamma_max"] == last["runs"][0]["gamma_max"]
    assert chart["sigma"]["counts"] == histogram["counts"] and chart["gamma_break"] == 10.0
    counts = [int(c) for c in re.findall(r'<td class="num count">(\d+)</td>',
                                         html.split('id="sigma-table"')[1].split("</table>")[0])]
    assert counts == histogram["counts"] and f'id="sigma-total">{counted}<' in html
    csv_lines = client.get(f"/ui/campaigns/{campaign_id}/otf-gamma-max.csv", headers=headers).text.splitlines()
    assert csv_lines[0] == "iteration,target,step,gamma_max"
    assert len(csv_lines) == 1 + sum(len(r["snapshot_steps"]) for it in iterations for r in it["runs"])
    print(f"test took {time.monotonic() - started:.1f} s")
