"""Work-item semantics on both backends: idempotent re-runs, retries, failures that name the cause."""

from __future__ import annotations

import copy
import itertools
from pathlib import Path

import numpy as np
import pytest
from support import TINY_SPEC, wait_for_campaign, write_bulk_training_set

from app.auth import get_or_create_user
from app.services import resume_campaign, submit_campaign
from core.models import Campaign, Status, Structure, WorkItem
from core.session import session_scope
from schemas import parse_spec
from workers import execute
from workers.dispatch import in_process
from workers.stages.labelling import read_label
from workers.stages.sampling import run_protocol


def _one_protocol_spec(**overrides):
    spec = copy.deepcopy(TINY_SPEC) | overrides
    spec["sampling"]["protocols"] = spec["sampling"]["protocols"][1:]  # the vacancy run, 3 snapshots
    return parse_spec(spec)


def _submit(spec) -> int:
    with session_scope() as session:
        return submit_campaign(session, get_or_create_user(session, "alice"), spec).id


def _finished(campaign_id: int) -> Campaign:
    return wait_for_campaign(campaign_id, 120)


def _structures(campaign_id: int) -> list[tuple[str, str]]:
    with session_scope() as session:
        rows = session.query(Structure).filter_by(campaign_id=campaign_id, stage="sampling").order_by(Structure.id)
        return [(s.source, s.sha256) for s in rows]


def test_running_a_finished_item_again_changes_nothing(env):
    campaign_id = _finished(_submit(_one_protocol_spec())).id
    before = _structures(campaign_id)
    assert len(before) == 3
    with session_scope() as session:
        item = session.query(WorkItem).filter_by(campaign_id=campaign_id, key="vacancy").one()
        item_id, attempts = item.id, item.attempts

    assert execute.execute_item(item_id, final_attempt=True) == []  # a re-delivered message
    run_protocol(item_id)  # even the stage body itself stores nothing new
    assert _structures(campaign_id) == before
    with session_scope() as session:
        item = session.get(WorkItem, item_id)
        assert (item.status, item.attempts) == (Status.succeeded, attempts)


def test_transient_failure_is_retried_then_succeeds(env, monkeypatch):
    calls = []

    def flaky_then_real(item_id: int) -> None:
        calls.append(item_id)
        if len(calls) == 1:
            raise ConnectionError("file system hiccup")
        run_protocol(item_id)

    monkeypatch.setitem(execute.RUNNERS, "dg.sampling.run_protocol", flaky_then_real)
    campaign = _finished(_submit(_one_protocol_spec()))
    assert campaign.status == Status.succeeded
    with session_scope() as session:
        item = session.query(WorkItem).filter_by(campaign_id=campaign.id, key="vacancy").one()
        assert item.attempts == 2 and item.error is None
    assert len(_structures(campaign.id)) == 3


def test_truncated_potential_is_refused_at_submission(env, tmp_path):
    from md.potentials import bundled_potentials_dir
    from schemas import SpecError

    original = (bundled_potentials_dir() / "W_zhou.eam.alloy").read_text()
    private = tmp_path / "W_copy.eam.alloy"
    private.write_text(original[: len(original) // 3])  # a truncated download: the header reads fine
    try:
        _submit(_one_protocol_spec(potential=str(private)))
    except SpecError as exc:
        (error,) = exc.errors
        assert error.field == "potential" and "Incorrect format in eam/alloy potential file" in error.message
    else:
        raise AssertionError("a truncated potential was accepted")
    with session_scope() as session:
        assert session.query(Campaign).count() == 0


def test_potential_broken_after_submission_fails_the_stage_and_resume_recovers(env, tmp_path):
    from md.potentials import bundled_potentials_dir

    original = (bundled_potentials_dir() / "W_zhou.eam.alloy").read_text()
    private = tmp_path / "W_copy.eam.alloy"
    private.write_text(original)
    queued = []
    with session_scope() as session:
        owner = get_or_create_user(session, "alice")
        campaign_id = submit_campaign(session, owner, _one_protocol_spec(potential=str(private)), queued.extend).id
    private.write_text(original[: len(original) // 3])  # overwritten while the task waited in its queue
    in_process.submit(queued)

    campaign = _finished(campaign_id)
    assert campaign.status == Status.failed
    assert campaign.error.startswith("stage sampling failed: vacancy: PotentialError: LAMMPS rejected potential")
    with session_scope() as session:
        item = session.query(WorkItem).filter_by(campaign_id=campaign_id, key="vacancy").one()
        assert item.status == Status.failed and item.attempts == 1  # a bad file is not retried
        assert session.get(Campaign, campaign_id).stages[0].status == Status.failed
    assert _structures(campaign_id) == []

    private.write_text(original)
    with session_scope() as session:
        resume_campaign(session, session.get(Campaign, campaign_id))
    assert _finished(campaign_id).status == Status.succeeded
    assert len(_structures(campaign_id)) == 3


def test_server_start_resumes_work_of_a_dead_in_process_server(env):
    from fastapi.testclient import TestClient

    from app.main import create_app

    lost = []  # the tasks were queued in a process that died before running them
    with session_scope() as session:
        campaign_id = submit_campaign(session, get_or_create_user(session, "alice"), _one_protocol_spec(),
                                      lost.extend).id
    assert len(lost) == 1
    with TestClient(create_app()):
        campaign = _finished(campaign_id)
    assert campaign.status == Status.succeeded
    assert len(_structures(campaign_id)) == 3


def test_selection_against_bulk_training_picks_vacancy_environments(env, tmp_path):
    """B = perfect + rattled bulk W: the vacancy's neighbours extrapolate, get selected and cut into clusters."""
    import numpy as np

    from core.models import Artifact, Environment

    write_bulk_training_set(tmp_path / "bulk.extxyz", n_rattled=4)
    spec = _one_protocol_spec(stop_after="selection")
    spec = spec.model_copy(update={"selection": spec.selection.model_copy(
        update={"training_set": str(tmp_path / "bulk.extxyz"), "max_new": 5})})
    campaign = _finished(_submit(spec))
    assert campaign.status == Status.succeeded, campaign.error

    with session_scope() as session:
        frame0 = session.query(Structure).filter_by(campaign_id=campaign.id, source="vacancy/frame-0").one()
        environments = session.query(Environment).filter_by(structure_id=frame0.id).all()
        gammas = np.array([e.gamma for e in environments])
        assert len(environments) == 14 and np.all(gammas > 2.0)  # every vacancy neighbour extrapolates
        assert frame0.info["gamma_max"] == pytest.approx(gammas.max())
        # Bulk atoms of the minimised frame interpolate: only the 14 candidates are above 1
        assert frame0.info["fraction_above_1"] == pytest.approx(14 / 249)

        selected = session.query(Environment).join(Structure).filter(
            Structure.campaign_id == campaign.id, Environment.selected.is_(True)).count()
        assert 1 <= selected <= 5  # diverse: not every one of the 3 x 14 high-gamma neighbours
        clusters = session.query(Structure).filter_by(campaign_id=campaign.id, stage="cluster").all()
        assert clusters and all(c.parent_id is not None and not any(c.pbc) for c in clusters)
        # An 8 A sphere of bcc W holds 137 sites (less the vacancy); nearby centres merge into one union
        assert all(130 <= c.n_atoms <= 137 * len(c.info["centres"]) for c in clusters)
        assert sum(len(c.info["centres"]) for c in clusters) == selected
        padded = session.query(Structure).filter_by(campaign_id=campaign.id, stage="cluster_vacuum").all()
        assert len(padded) == len(clusters) and all(all(p.pbc) for p in padded)

        histogram = session.query(Artifact).filter_by(campaign_id=campaign.id, kind="gamma_histogram",
                                                      name="campaign").one().data
        assert histogram["n"] == 3 * 249 and sum(histogram["counts"]) == 3 * 249
        soap = session.query(Artifact).filter_by(campaign_id=campaign.id, kind="soap_pca").one().data
        assert set(soap["points"]) == {"B", "C"} and len(soap["points"]["B"]) == 5 * 128


# The process pool is the embedded default's (SQLite); with PostgreSQL the boxes go to Celery workers.
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_reconstruction_stage_makes_periodic_cells_with_the_cluster_core(env, tmp_path):
    """Selected vacancy-neighbour clusters -> PCC-GCMC boxes in parallel processes -> periodic cells."""
    import numpy as np

    from core.models import Artifact
    from core.settings import get_settings
    from core.storage import StructureStore
    from workers.stages.reconstruction import cluster_core

    write_bulk_training_set(tmp_path / "bulk.extxyz", n_rattled=4)
    spec = parse_spec(copy.deepcopy(TINY_SPEC) | {
        "stop_after": "reconstruction",
        "sampling": {"protocols": TINY_SPEC["sampling"]["protocols"][1:]},
        "selection": {"training_set": str(tmp_path / "bulk.extxyz"), "max_new": 1},
        # 2 x 2 x 2 boxes of the authors' grid, a short GCMC with more insertions per call
        "reconstruction": {"steps": 200, "exchanges": 100, "mc_moves": 20, "offsets": [-0.5, 0.0]},
    })
    campaign = _finished(_submit(spec))
    assert campaign.status == Status.succeeded, campaign.error
    store = StructureStore(get_settings().data_dir)
    with session_scope() as session:
        boxes = session.query(WorkItem).filter(WorkItem.campaign_id == campaign.id,
                                               WorkItem.task_name == "dg.reconstruction.run_box").all()
        assert len(boxes) == 8 and {b.queue for b in boxes} == {"gcmc"}
        # the embedded default runs the boxes of a cluster side by side in its process pool
        intervals = sorted((b.started_at, b.finished_at) for b in boxes)
        assert any(later[0] < earlier[1] for earlier, later in itertools.pairwise(intervals))

        (cluster,) = session.query(Structure).filter_by(campaign_id=campaign.id, stage="cluster").all()
        (cell,) = session.query(Structure).filter_by(campaign_id=campaign.id, stage="periodic").all()
        assert cell.parent_id == cluster.id and all(cell.pbc) and cell.n_atoms <= 140
        cluster_atoms, periodic = store.read(cluster.path), store.read(cell.path)
        core = cluster_core(cluster_atoms, 5.0)
        assert int(periodic.arrays["core"].sum()) == int(core.sum()) == cell.info["n_core"]
        assert not np.any(periodic.arrays["core"] & periodic.arrays["inserted"])
        # the core is the cluster's, unchanged: same interatomic vectors to 1e-6 A
        original = cluster_atoms.positions[core]
        kept = periodic.positions[periodic.arrays["core"]]
        assert np.abs((kept - kept[0]) - (original - original[0])).max() < 1e-6
        # a vacancy-neighbour cell of EAM-Zhou W: a little above the crystal's -8.760 eV/atom, atoms apart
        print(f"\nvacancy cluster -> {cell.n_atoms} atoms, {cell.info['energy_per_atom_potential']:.4f} eV/atom")
        assert -8.760 <= cell.info["energy_per_atom_potential"] <= -8.60
        assert cell.info["min_distance"] >= 2.2

        table = session.query(Artifact).filter_by(campaign_id=campaign.id, kind="pcc_gcmc_candidates",
                                                  name=cluster.source).one().data
        assert len(table["candidates"]) == 8 and table["structure_id"] == cell.id
        energies = [c["energy_per_atom"] for c in table["candidates"] if c["admissible"]]
        assert table["energy_per_atom"] == pytest.approx(min(energies))
        assert session.query(Artifact).filter_by(campaign_id=campaign.id, kind="pcc_gcmc_candidate").count() == 0
        soap = session.query(Artifact).filter_by(campaign_id=campaign.id, kind="soap_pca").one().data
        assert set(soap["points"]) == {"B", "C", "P"} and len(soap["points"]["P"]) == cell.n_atoms


def _labelling_spec(tmp_path, labelling: dict, **overrides):
    """Vacancy anneal -> selection against bulk B -> one PCC-GCMC box per cluster -> labels."""
    write_bulk_training_set(tmp_path / "bulk.extxyz", n_rattled=4)
    return parse_spec(copy.deepcopy(TINY_SPEC) | {
        "stop_after": None,
        "sampling": {"protocols": TINY_SPEC["sampling"]["protocols"][1:]},
        "selection": {"training_set": str(tmp_path / "bulk.extxyz"), "max_new": 3},
        "reconstruction": {"steps": 200, "exchanges": 100, "mc_moves": 20, "offsets": [-0.5]},
        "labelling": labelling,
    } | overrides)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_labelling_stage_fills_the_ledger_and_a_failed_job_does_not_stop_the_campaign(env, tmp_path, local_slurm,
                                                                                    client, tokens):
    from core.models import Label, StageRun

    # VASP with a POTCAR directory that is not there: every job fails with its reason, the campaign ends
    missing = tmp_path / "no-potcars"
    campaign = _finished(_submit(_labelling_spec(tmp_path, {"engine": "vasp", "pseudo_dir": str(missing)})))
    assert campaign.status == Status.succeeded, campaign.error
    with session_scope() as session:
        cells = session.query(Structure).filter_by(campaign_id=campaign.id, stage="periodic").all()
        assert cells and all(cell.label_id is not None and cell.energy is None for cell in cells)
        labels = session.query(Label).filter(Label.id.in_([c.label_id for c in cells])).all()
        assert {(row.state, row.failure, row.attempts) for row in labels} == {("failed", "input_error", 1)}
        assert all(str(missing) in row.error and "POTCAR" in row.error for row in labels)
        stage = session.query(StageRun).filter_by(campaign_id=campaign.id, stage="labelling").one()
        assert stage.status == Status.succeeded and stage.progress_done == len(cells)

    # The classical reference labeller through the same ledger, as batch jobs of a real (local) Slurm:
    # E equals PCC-GCMC's LAMMPS energy
    slurm = {"partition": local_slurm, "time": "00:05:00", "poll_interval": 0.5}
    campaign = _finished(_submit(_labelling_spec(tmp_path, {"engine": "eam", "launcher": "slurm", "slurm": slurm},
                                                 name="eam-labels")))
    assert campaign.status == Status.succeeded, campaign.error
    with session_scope() as session:
        cells = session.query(Structure).filter_by(campaign_id=campaign.id, stage="periodic").all()
        labels = {row.id: row for row in session.query(Label).filter(Label.id.in_([c.label_id for c in cells]))}
        assert len(labels) == len(cells) >= 1
        for cell in cells:
            row = labels[cell.label_id]
            assert (row.state, row.attempts, row.engine, row.n_atoms) == ("succeeded", 1, "eam", cell.n_atoms)
            assert row.energy / cell.n_atoms == pytest.approx(cell.info["energy_per_atom_potential"], abs=1e-6)
            assert cell.energy == row.energy
            stored = read_label(row.path)
            assert len(stored["forces"]) == cell.n_atoms and len(stored["stress"]) == 6
            job = (Path(env["DG_DATA_DIR"]) / row.path).parent
            assert (job / "job.sbatch").is_file() and (job / "slurm_job_id").read_text().strip().isdigit()
        energies = sorted(labels[c.label_id].energy for c in cells)

    # the REST export streams the labelled cells; a dataset without labels is a 422 naming the reason
    import io

    from sampling.datasets import read_dataset

    headers = {"Authorization": f"Bearer {tokens['alice']}"}
    response = client.get(f"/api/v1/campaigns/{campaign.id}/export", params={"format": "ace", "datasets": "P"},
                          headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["x-configurations"] == str(len(cells))
    assert 'filename="campaign-' in response.headers["content-disposition"]
    images = read_dataset(io.BytesIO(response.content), format="pacemaker")
    assert sorted(a.get_potential_energy() for a in images) == pytest.approx(energies, abs=1e-9)
    response = client.get(f"/api/v1/campaigns/{campaign.id}/export", params={"format": "mtp", "datasets": "B,P"},
                          headers=headers)
    assert response.status_code == 422 and "no energy and forces" in response.text
    response = client.get(f"/api/v1/campaigns/{campaign.id}/export", params={"format": "mtp", "datasets": "P,X"},
                          headers=headers)
    assert response.status_code == 422 and "B, C, P, OTF" in response.text

    # voxel grids (3D-CNN surrogates): one occupancy channel per species sums to the cell's atom count, labels kept
    import h5py

    response = client.get(f"/api/v1/campaigns/{campaign.id}/export/voxel",
                          params={"datasets": "P", "resolution": 0.8}, headers=headers)
    assert response.status_code == 200, response.text
    with h5py.File(io.BytesIO(response.content), "r") as file:
        assert file.attrs["format"] == "defect-genome-voxels-1" and int(file.attrs["count"]) == len(cells)
        groups = [file["configurations"][key] for key in sorted(file["configurations"], key=int)]
        assert [int(g["grid"][()].sum()) for g in groups] == [len(g["numbers"]) for g in groups]
        assert sorted(float(g["energy"][()]) for g in groups) == pytest.approx(energies, abs=1e-9)
        assert all(g["grid"].dtype == np.float32 and g["grid"].shape[0] == 1 for g in groups)
    for params, field in (({"resolution": -1}, "resolution"), ({"resolution": 0.01}, "max_voxels")):
        response = client.get(f"/api/v1/campaigns/{campaign.id}/export/voxel", params={"datasets": "P", **params},
                              headers=headers)
        assert response.status_code == 422 and field in response.text, response.text
    # densities: these labels are EAM's, with none stored: refused naming a configuration and save_density
    response = client.get(f"/api/v1/campaigns/{campaign.id}/export/density", params={"datasets": "P"},
                          headers=headers)
    assert response.status_code == 422 and "save_density" in response.text, response.text
    assert env["DG_DATA_DIR"] not in response.text
