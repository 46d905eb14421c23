"""A campaign labelled by engine lammps with the MEAM of Lee et al. as its reference: sampling with EAM-Zhou,
PCC-GCMC cells, MEAM labels through the ledger, exports that say who labelled them."""

from __future__ import annotations

import copy
import io

import pytest
from support import TINY_SPEC, wait_for_campaign, write_bulk_training_set

from app.auth import get_or_create_user
from app.services import submit_campaign
from core.models import Artifact, Campaign, Label, Structure
from core.session import session_scope
from schemas import parse_spec


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_campaign_labels_with_the_meam_reference_and_exports_say_so(env, tmp_path):
    from app.exports import export_campaign
    from labelling import label, quick, reference_options, resolve_reference
    from workers.stages.labelling import read_label

    write_bulk_training_set(tmp_path / "bulk.extxyz", n_rattled=4)
    spec = parse_spec(copy.deepcopy(TINY_SPEC) | {
        "name": "meam-labels",
        "stop_after": None,
        "sampling": {"protocols": TINY_SPEC["sampling"]["protocols"][1:]},
        "selection": {"training_set": str(tmp_path / "bulk.extxyz"), "max_new": 2},
        "reconstruction": {"steps": 200, "exchanges": 100, "mc_moves": 20, "offsets": [-0.5]},
        "labelling": {"engine": "lammps", "reference": "WL.meam"},
    })
    with session_scope() as session:
        campaign_id = submit_campaign(session, get_or_create_user(session, "alice"), spec).id

    campaign = wait_for_campaign(campaign_id, 180)
    assert campaign.status.value == "succeeded", campaign.error
    settings = quick("lammps", **reference_options(resolve_reference("WL.meam", "W")))
    with session_scope() as session:
        cells = session.query(Structure).filter_by(campaign_id=campaign_id, stage="periodic").all()
        assert cells
        for cell in cells:
            row = session.get(Label, cell.label_id)
            assert (row.state, row.engine) == ("succeeded", "lammps")
            assert row.settings["engine_options"]["reference"]["files"].keys() == {"library.meam", "WL.meam"}
            stored = read_label(row.path)
            assert stored["extra"]["efs_by"] == "lammps:WL.meam"
        # the MEAM label, not the sampling EAM's energy: the same as labelling the cell by hand
        from core.settings import get_settings
        from core.storage import StructureStore

        atoms = StructureStore(get_settings().data_dir).read(cells[0].path)
        by_hand = label(atoms, settings, tmp_path / "by-hand")
        assert session.get(Label, cells[0].label_id).energy == pytest.approx(by_hand.energy, abs=1e-9)
        assert by_hand.energy / len(atoms) > -8.66 - 1e-6  # MEAM crystal: -8.66 eV/atom; EAM-Zhou: -8.760
        plan = session.query(Artifact).filter_by(campaign_id=campaign_id, kind="labelling", name="plan").one().data
        assert plan["dft"] is False and plan["reference"] == "WL.meam"

        campaign = session.get(Campaign, campaign_id)
        text = io.StringIO()
        assert export_campaign(session, campaign, "mtp", text, datasets=("P",)) == len(cells)
        assert text.getvalue().count("Feature   EFS_by  lammps:WL.meam") == len(cells)
        xyz = io.StringIO()
        export_campaign(session, campaign, "extxyz", xyz, datasets=("P",))
        assert "label_engine=lammps:WL.meam" in xyz.getvalue()
        packed = io.BytesIO()
        export_campaign(session, campaign, "ace", packed, datasets=("P",))
    from sampling.datasets import read_dataset

    assert len(read_dataset(io.BytesIO(packed.getvalue()), format="pacemaker")) == len(cells)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_network_specs_name_reference_files_only_by_reference(env, tmp_path, monkeypatch):
    """From the API a reference is a bundled name, an upload or a file in DG_ALLOWED_SERVER_DIRS, and so is
    every file it pulls in (a .snap include's coefficient files)."""
    import shutil

    from app.policy import check_network_spec
    from core.settings import get_settings
    from md.potentials import bundled_potentials_dir
    from schemas import SpecError

    allowed, elsewhere = tmp_path / "allowed", tmp_path / "elsewhere"
    allowed.mkdir()
    elsewhere.mkdir()
    monkeypatch.setenv("DG_ALLOWED_SERVER_DIRS", f'["{allowed}"]')
    get_settings.cache_clear()
    for name in ("W_2940_2017_2.snap", "W_2940_2017_2.snapcoeff", "W_2940_2017_2.snapparam"):
        shutil.copy(bundled_potentials_dir() / name, elsewhere / name)
    shutil.copy(bundled_potentials_dir() / "W_2940_2017_2.snap", allowed / "W_2940_2017_2.snap")
    for name in ("W_2940_2017_2.snapcoeff", "W_2940_2017_2.snapparam"):  # the include's files lie elsewhere
        (allowed / name).symlink_to(elsewhere / name)

    def errors(reference) -> dict[str, str]:
        spec = parse_spec(copy.deepcopy(TINY_SPEC) | {"labelling": {"engine": "lammps", "reference": reference}})
        try:
            check_network_spec(spec)
        except SpecError as exc:
            return {e.field: e.message for e in exc.errors}
        return {}

    assert errors("WL.meam") == {} and errors("W_2940_2017_2.snap") == {}
    assert errors({"pair_style": "eam/alloy", "pair_coeff": ["* * W_zhou.eam.alloy W"],
                   "files": ["W_zhou.eam.alloy"]}) == {}
    assert "DG_ALLOWED_SERVER_DIRS" in errors(str(elsewhere / "W_2940_2017_2.snap"))["labelling.reference"]
    general = {"pair_style": "snap", "files": [str(elsewhere / "W_2940_2017_2.snapcoeff"), "W_2940_2017_2.snapparam"],
               "pair_coeff": ["* * W_2940_2017_2.snapcoeff W_2940_2017_2.snapparam W"]}
    assert "labelling.reference.files.0" in errors(general)
    assert "outside" in errors(str(allowed / "W_2940_2017_2.snap"))["labelling.reference"]
    assert errors("Ta06A.snap")["labelling.reference"].startswith("the reference Ta06A.snap describes Ta")


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_uploaded_reference_in_a_spec_sent_to_the_api(client, tokens, env):
    """A reference potential sent to POST /api/v1/potentials and named 'uploaded:<sha256>' is accepted by the API
    and labels through the server's resolver (labelling itself knows no upload storage): the same bytes under
    the same name are the same label settings as the bundled file."""
    from pathlib import Path

    from labelling import quick, reference_options, resolve_reference, settings_hash
    from md.potentials import bundled_potentials_dir
    from workers.stages.labelling import dft_settings

    headers = {"Authorization": f"Bearer {tokens['alice']}"}
    payload = (bundled_potentials_dir() / "W_zhou.eam.alloy").read_bytes()
    response = client.post("/api/v1/potentials", headers=headers, files={"file": ("W_zhou.eam.alloy", payload)})
    assert response.status_code == 201, response.text
    reference = response.json()["reference"]
    assert reference.startswith("uploaded:")

    body = copy.deepcopy(TINY_SPEC) | {"labelling": {"engine": "lammps", "reference": reference}}
    response = client.post("/api/v1/campaigns", json=body, headers=headers)
    assert response.status_code == 202, response.text
    settings = dft_settings(parse_spec(body))
    bundled = quick("lammps", **reference_options(resolve_reference("W_zhou.eam.alloy", "W")))
    assert settings_hash(settings) == settings_hash(bundled)
    stored = Path(settings.reference_paths["W_zhou.eam.alloy"])
    assert stored.is_relative_to((Path(env["DG_DATA_DIR"]) / "uploads").resolve())

    missing = copy.deepcopy(TINY_SPEC) | {"labelling": {"engine": "lammps", "reference": "uploaded:" + "0" * 64}}
    response = client.post("/api/v1/campaigns", json=missing, headers=headers)
    assert response.status_code == 422, response.text
    assert {e["field"] for e in response.json()["detail"]} == {"labelling.reference"}
