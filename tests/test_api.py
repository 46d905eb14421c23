"""REST API v1 on each backend, tasks in-process: a real campaign of LAMMPS MD of W."""

from __future__ import annotations

import copy

import pytest
import yaml
from support import TINY_SPEC, wait_for

from core.models import Campaign, Structure
from core.session import session_scope


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _wait_finished(client, token, campaign_id, timeout=180):
    def finished():
        body = client.get(f"/api/v1/campaigns/{campaign_id}", headers=_auth(token)).json()
        return body if body["status"] in ("succeeded", "failed", "cancelled") else None

    return wait_for(finished, timeout, what=f"campaign {campaign_id} to finish")


def _count(model) -> int:
    with session_scope() as session:
        return session.query(model).count()


def test_health_reports_database_and_in_process_broker(client):
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"database": "ok", "broker": "in-process"}


def test_requests_without_a_valid_token_get_401(client, tokens):
    assert client.get("/api/v1/campaigns").status_code == 401
    assert client.get("/api/v1/campaigns", headers=_auth("dg_wrong")).status_code == 401
    assert client.post("/api/v1/campaigns", json=TINY_SPEC).status_code == 401


def test_campaign_runs_lammps_and_stores_snapshots(client, tokens):
    alice = tokens["alice"]
    response = client.post("/api/v1/campaigns", json=TINY_SPEC | {"stop_after": "selection"}, headers=_auth(alice))
    assert response.status_code == 202, response.text
    campaign_id = response.json()["id"]

    body = _wait_finished(client, alice, campaign_id)
    assert body["status"] == "succeeded", body
    stages = {stage["stage"]: stage for stage in body["stages"]}
    assert list(stages) == ["sampling", "training_set", "grading", "selection"]
    assert all(stage["status"] == "succeeded" for stage in stages.values())
    sampling = stages["sampling"]
    assert stages["grading"]["progress_done"] == stages["grading"]["progress_total"] == 6  # one item per snapshot
    # 2 protocols x (1 minimised + 200/100 MD) snapshots
    assert sampling["progress_done"] == sampling["progress_total"] == 6
    assert [item["key"] for item in sampling["items"]] == ["bulk", "vacancy"]
    summary = body["summary"]
    assert summary["snapshots"] == 6
    assert summary["atoms"] == 3 * 250 + 3 * 249
    assert sum(summary["structure_types"].values()) == summary["atoms"]
    assert summary["structure_types"]["other"] >= 14  # at least the vacancy's neighbours in frame 0

    structures = client.get(
        f"/api/v1/campaigns/{campaign_id}/structures", params={"stage": "sampling"}, headers=_auth(alice)
    ).json()
    assert structures["count"] == 6 and len(structures["data"]) == 6
    by_source = {s["source"]: s for s in structures["data"]}
    # Perfect crystal: every atom bcc after minimisation. The vacancy's 8 first and
    # 6 second neighbours lose their bcc signature (conventional CNA).
    assert by_source["bulk/frame-0"]["n_candidates"] == 0
    assert by_source["vacancy/frame-0"]["n_candidates"] == 14
    # EAM-Zhou W as shipped gives -8.760 eV/atom for perfect bcc (not the -8.90 of its parameter table)
    assert by_source["bulk/frame-0"]["energy"] / 250 == pytest.approx(-8.760, abs=0.001)
    assert by_source["vacancy/frame-0"]["info"]["structure_types"]["bcc"] == 249 - 14

    paged = client.get(
        f"/api/v1/campaigns/{campaign_id}/structures", params={"stage": "sampling", "limit": 4, "offset": 4},
        headers=_auth(alice),
    ).json()
    assert paged["count"] == 6 and len(paged["data"]) == 2

    extxyz = client.get(f"/api/v1/structures/{by_source['vacancy/frame-2']['id']}/file", headers=_auth(alice))
    assert extxyz.status_code == 200 and extxyz.text.splitlines()[0].strip() == "249"

    listing = client.get("/api/v1/campaigns", headers=_auth(alice)).json()
    assert listing["count"] == 1 and listing["data"][0]["id"] == campaign_id


def test_another_users_campaign_is_404(client, tokens):
    spec = copy.deepcopy(TINY_SPEC)
    spec["sampling"]["protocols"] = spec["sampling"]["protocols"][:1]
    campaign_id = client.post("/api/v1/campaigns", json=spec, headers=_auth(tokens["alice"])).json()["id"]
    assert client.get(f"/api/v1/campaigns/{campaign_id}", headers=_auth(tokens["bob"])).status_code == 404
    assert client.post(f"/api/v1/campaigns/{campaign_id}/cancel", headers=_auth(tokens["bob"])).status_code == 404
    assert client.get("/api/v1/campaigns/999999", headers=_auth(tokens["alice"])).status_code == 404
    assert client.get("/api/v1/campaigns", headers=_auth(tokens["bob"])).json() == {"data": [], "count": 0}
    _wait_finished(client, tokens["alice"], campaign_id)


def _post_invalid(client, token, data=None, text=None):
    before = (_count(Campaign), _count(Structure))
    if text is not None:
        response = client.post(
            "/api/v1/campaigns", content=text, headers=_auth(token) | {"Content-Type": "application/yaml"}
        )
    else:
        response = client.post("/api/v1/campaigns", json=data, headers=_auth(token))
    assert response.status_code == 422, response.text
    assert (_count(Campaign), _count(Structure)) == before  # nothing stored is touched
    return {e["field"]: e["message"] for e in response.json()["detail"]}


def test_invalid_specs_give_422_naming_the_field(client, tokens):
    token = tokens["alice"]
    assert "unknown element" in _post_invalid(client, token, copy.deepcopy(TINY_SPEC) | {"element": "Qq"})["element"]

    wrong_potential = copy.deepcopy(TINY_SPEC) | {"element": "Fe"}
    message = _post_invalid(client, token, wrong_potential)["potential"]
    assert "W_zhou.eam.alloy" in message and "Fe" in message

    cold = copy.deepcopy(TINY_SPEC)
    cold["sampling"]["protocols"][0]["temperatures"] = [-300]
    assert "sampling.protocols.0.temperatures.0" in _post_invalid(client, token, cold)

    unknown = copy.deepcopy(TINY_SPEC)
    unknown["sampling"]["protocols"][0]["kind"] = "explode"
    assert "sampling.protocols.0" in _post_invalid(client, token, unknown)

    assert "malformed YAML" in _post_invalid(client, token, text="name: [unclosed\n")["spec"]


def test_yaml_body_is_accepted(client, tokens):
    spec = copy.deepcopy(TINY_SPEC)
    spec["sampling"]["protocols"] = spec["sampling"]["protocols"][:1]
    response = client.post(
        "/api/v1/campaigns",
        content=yaml.safe_dump(spec),
        headers=_auth(tokens["alice"]) | {"Content-Type": "application/yaml"},
    )
    assert response.status_code == 202
    assert _wait_finished(client, tokens["alice"], response.json()["id"])["status"] == "succeeded"


def test_cancel_then_resume_runs_only_unfinished_work(client, tokens):
    token = tokens["alice"]
    spec = copy.deepcopy(TINY_SPEC)
    spec["sampling"]["protocols"][1]["steps_per_temperature"] = 3000
    spec["sampling"]["protocols"][1]["snapshot_every"] = 100
    campaign_id = client.post("/api/v1/campaigns", json=spec, headers=_auth(token)).json()["id"]

    def some_vacancy_frames():
        body = client.get(f"/api/v1/campaigns/{campaign_id}", headers=_auth(token)).json()
        items = {i["key"]: i for i in body["stages"][0]["items"]}
        return items["bulk"]["status"] == "succeeded" and items["vacancy"]["progress_done"] >= 3

    wait_for(some_vacancy_frames, 120, what="the second protocol to be under way")
    cancelled = client.post(f"/api/v1/campaigns/{campaign_id}/cancel", headers=_auth(token))
    assert cancelled.status_code == 202 and cancelled.json()["status"] == "cancelled"
    from workers.dispatch import in_process

    assert in_process.wait(timeout=60)
    with session_scope() as session:
        bulk_rows = {s.source: s.id for s in session.query(Structure).filter(Structure.source.like("bulk/%"))}
        partial = session.query(Structure).filter(Structure.source.like("vacancy/%")).count()
    assert len(bulk_rows) == 3 and 3 <= partial < 31

    resumed = client.post(f"/api/v1/campaigns/{campaign_id}/resume", headers=_auth(token))
    assert resumed.status_code == 202
    body = _wait_finished(client, token, campaign_id)
    assert body["status"] == "succeeded"
    items = {i["key"]: i for i in body["stages"][0]["items"]}
    assert items["bulk"]["attempts"] == 1  # the succeeded protocol did not run again
    assert items["vacancy"]["attempts"] == 2
    with session_scope() as session:
        assert {s.source: s.id for s in session.query(Structure).filter(Structure.source.like("bulk/%"))} == bulk_rows
        sources = [s.source for s in session.query(Structure).filter_by(campaign_id=campaign_id, stage="sampling")]
    assert len(sources) == len(set(sources)) == 3 + 31


def test_structure_errors_name_the_protocol_structure(client, tokens):
    small = copy.deepcopy(TINY_SPEC)
    small["sampling"]["protocols"][0]["structure"]["supercell"] = [4, 5, 5]
    errors = _post_invalid(client, tokens["alice"], small)
    assert "box length along x is 12.66 A, smaller than twice the potential cutoff" in (
        errors["sampling.protocols.0.structure"]
    )

    emptied = copy.deepcopy(TINY_SPEC)
    emptied["sampling"]["protocols"][1]["structure"]["vacancies"] = 250
    assert "sampling.protocols.1.structure" in _post_invalid(client, tokens["alice"], emptied)

    unknown_orientation = copy.deepcopy(TINY_SPEC)
    unknown_orientation["sampling"]["protocols"][0]["structure"] = {
        "kind": "single_crystal", "orientation": [[1, 1, 0], [1, 0, 0], [0, 0, 1]]}
    assert "not orthogonal" in _post_invalid(client, tokens["alice"], unknown_orientation)[
        "sampling.protocols.0.structure"]

    no_rate = copy.deepcopy(TINY_SPEC)
    no_rate["sampling"]["protocols"][0] = {"kind": "uniaxial", "strain_rate": 0}
    assert "greater than 0" in _post_invalid(client, tokens["alice"], no_rate)["sampling.protocols.0.strain_rate"]

    # a path from the network is refused by app.policy (naming the field, never a server path)
    missing = copy.deepcopy(TINY_SPEC) | {"potential": "/nonexistent/W.eam.alloy"}
    assert _post_invalid(client, tokens["alice"], missing)["potential"]
