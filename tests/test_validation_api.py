"""The validation study (stage validation) as the campaign shows it: GET /api/v1/campaigns/{id}/validation, the
dashboard's Validation section (grouped bars, parity plot, tables, CSV) in headless Chromium.

The report is a real one (``mlip.study.run_study``: B, B+C, B+P linear SNAPs at 2J = 4 on tiny datasets labelled
by WL.meam, smoke-suite gb and crack; ~3 s), stored the way the stage stores it: the ``validation`` artifact named
``campaign``, its files in the campaign's directory.
"""

from __future__ import annotations

import csv
import io
import json
import re
import time
from pathlib import Path

import numpy as np
import pytest
from support import TINY_SPEC, open_page
from test_dashboard import _chart_series, server  # noqa: F401 (server: a fixture)

from app.auth import get_or_create_user
from core.session import session_scope
from schemas import parse_spec

A = 3.1652  # EAM-Zhou W
SCENARIOS = ["gb", "crack"]


def _cube(seed: int, sigma: float, vacancy: bool = False):
    from ase.build import bulk

    atoms = bulk("W", "bcc", a=A, cubic=True).repeat((2, 2, 2))
    if vacancy:
        del atoms[len(atoms) // 2]
    atoms.positions += np.random.default_rng(seed).normal(0.0, sigma, atoms.positions.shape)
    return atoms


def _cluster(seed: int):
    from ase.build import bulk

    from selection.clusters import pad_vacuum

    atoms = bulk("W", "bcc", a=A, cubic=True).repeat((4, 4, 4))
    del atoms[len(atoms) // 2]
    atoms.positions += np.random.default_rng(seed).normal(0.0, 0.08, atoms.positions.shape)
    centre = atoms.cell.sum(axis=0) / 2.0
    ball = atoms[[i for i, p in enumerate(atoms.positions) if np.linalg.norm(p - centre) < 5.5]]
    ball.pbc = False
    return pad_vacuum(ball, 6.0)


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> tuple[dict, Path, float]:
    """(the report as the stage stores it, the directory its files are in, seconds the study took)."""
    from mlip.study import run_study
    from schemas.study import StudyParams

    started = time.monotonic()
    datasets = {"B": [_cube(s, sigma) for s, sigma in ((1, 0.03), (2, 0.06), (3, 0.1), (4, 0.12))],
                "C": [_cluster(11), _cluster(12)], "P": [_cube(s, 0.15, vacancy=True) for s in (21, 22)]}
    params = StudyParams(kinds=["linear"], snap={"twojmax": 4, "ridge": "auto", "seed": 0}, test_fraction=0.34,
                         suite="smoke", scenarios=SCENARIOS)
    workdir = tmp_path_factory.mktemp("study")
    report = run_study(datasets, "WL.meam", params, workdir=workdir)
    return report.model_dump(mode="json"), workdir, time.monotonic() - started


def _store(study, owner: str = "alice", with_artifact: bool = True) -> tuple[int, dict]:
    """A campaign with a study section (created, not started) and, with_artifact, the report as its validation
    artifact, its paths moved into the campaign's directory as the stage's are."""
    from core.access import store_artifact
    from core.settings import get_settings
    from schemas.artifacts import ValidationTable
    from workers.pipeline import create_campaign

    data, workdir, _ = study
    spec = parse_spec(TINY_SPEC | {"stop_after": None, "study": {"kinds": ["linear"], "suite": "smoke"}})
    with session_scope() as session:
        campaign = create_campaign(session, get_or_create_user(session, owner), spec)
        session.flush()
        stored = json.loads(json.dumps(data).replace(
            str(workdir), str(get_settings().data_dir / "campaigns" / str(campaign.id) / "study")))
        if with_artifact:
            store_artifact(session, campaign.id, "campaign", ValidationTable.model_validate(stored))
        return campaign.id, stored


def _strings(value):
    if isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
    elif isinstance(value, str):
        yield value


def test_validation_endpoint_numbers_without_server_paths(study, tokens, client):
    from core.settings import get_settings

    campaign_id, stored = _store(study)
    data_dir = str(get_settings().data_dir)
    assert any(data_dir in text for text in _strings(stored))  # the stored report does name them
    headers = {"Authorization": f"Bearer {tokens['alice']}"}
    response = client.get(f"/api/v1/campaigns/{campaign_id}/validation", headers=headers)
    assert response.status_code == 200, response.text
    body = response.json()

    # every number is the artifact's
    assert [(m["combination"], m["kind"]) for m in body["models"]] == [
        ("B", "linear"), ("B+C", "linear"), ("B+P", "linear")]
    for got, want in zip(body["models"], stored["models"], strict=True):
        assert got["train_rmse"] == want["train_rmse"] and got["test_rmse"] == want["test_rmse"]
        assert got["n_train_configurations"] == want["n_train_configurations"]
        for s_got, s_want in zip(got["scenarios"], want["scenarios"], strict=True):
            assert s_got["force_rmse_defect_mev_per_A"] == s_want["force_rmse_defect_mev_per_A"]
            assert s_got["energy_rmse_centred_mev_per_atom"] == s_want["energy_rmse_centred_mev_per_atom"]
            assert s_got["parity"] == s_want["parity"] and len(s_got["parity"]["force_model"]) <= 300
    assert body["ratios"] == stored["ratios"] and body["datasets"] == stored["datasets"]
    assert [s["scenario"] for s in body["models"][0]["scenarios"]] == SCENARIOS

    # defect properties of every model against the reference, the MEAM of Lee et al. (2001): a0 3.164 A,
    # E_coh -8.66 eV/atom and the relaxed vacancy formation energy of their fit, 3.95 eV
    names = ["a", "E_coh", "C11", "C12", "C44", "E_vac", "E_sia_111", "gamma_surface_100", "gamma_surface_110",
             "gamma_gb_sigma5_310", "E-V rmse", "E-V rmse, offset removed"]
    for got, want in zip(body["models"], stored["models"], strict=True):
        assert got["properties"] == want["properties"] and [p["name"] for p in got["properties"]] == names
        rows = {p["name"]: p for p in got["properties"]}
        assert rows["a"]["reference"] == pytest.approx(3.164, abs=0.001)
        assert rows["E_coh"]["reference"] == pytest.approx(-8.66, abs=0.001)
        assert rows["E_vac"]["reference"] == pytest.approx(3.95, abs=0.02)
        assert 3.0 < rows["gamma_surface_110"]["reference"] < rows["gamma_surface_100"]["reference"] < 4.5  # J/m^2
        for row in got["properties"][:10]:
            if row["model"] is not None:
                assert row["difference"] == pytest.approx(row["model"] - row["reference"])
        assert len(got["energy_volume"]["model_eV_per_atom"]) == len(got["energy_volume"]["reference_eV_per_atom"])

    # files by name only: no directory of the server anywhere, LAMMPS lines name the same files
    for model in body["models"]:
        assert model["model_path"] == f"{model['name']}.snapcoeff"
        for key in ("model_path", "param_path", "record_path"):
            assert "/" not in model[key]
        assert model["lammps"][-1].split()[3:5] == [model["model_path"], model["param_path"]]
    assert body["suite_path"] == "suite.extxyz"
    assert body["reference_lammps"][-1].split()[3] == "library.meam"
    texts = list(_strings(body))
    assert not [t for t in texts if data_dir in t or "/tmp" in t or re.search(r"(^|\s)/\w", t)]

    # the other refusals: a campaign without the stage's artifact, another user's campaign, no token
    bare_id, _ = _store(study, with_artifact=False)
    response = client.get(f"/api/v1/campaigns/{bare_id}/validation", headers=headers)
    assert response.status_code == 404
    assert response.json()["detail"] == (f"campaign {bare_id} has no validation study yet (it needs a study section "
                                          "in its spec and the stage to finish)")
    bob = {"Authorization": f"Bearer {tokens['bob']}"}
    response = client.get(f"/api/v1/campaigns/{campaign_id}/validation", headers=bob)
    assert response.status_code == 404 and response.json()["detail"] == f"campaign {campaign_id} not found"
    assert client.get(f"/api/v1/campaigns/{campaign_id}/validation").status_code == 401

    # the dashboard's CSV: one row per scenario and model, the artifact's numbers; owned as the API
    response = client.get(f"/ui/campaigns/{campaign_id}/validation.csv", headers=headers)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [(r["scenario"], r["combination"]) for r in rows] == [
        (s, c) for s in SCENARIOS for c in ("B", "B+C", "B+P")]
    for row in rows:
        model = next(m for m in stored["models"] if m["combination"] == row["combination"])
        errors = next(s for s in model["scenarios"] if s["scenario"] == row["scenario"])
        for key in ("force_rmse_defect_mev_per_A", "max_force_error_mev_per_A", "energy_rmse_mev_per_atom"):
            assert float(row[key]) == errors[key]
        assert int(row["defect_atoms"]) == errors["n_defect_atoms"]
        assert float(row["gamma_max"]) == errors["gamma"]["gamma_max"] > 1.0  # the study grades every suite atom
    assert client.get(f"/ui/campaigns/{campaign_id}/validation.csv", headers=bob).status_code == 404
    assert client.get(f"/ui/campaigns/{bare_id}/validation.csv", headers=headers).status_code == 404
    page = client.get(f"/ui/campaigns/{bare_id}", headers=headers)
    assert page.status_code == 200 and "No validation study yet" in page.text


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_validation_section_in_headless_chromium(study, tokens, server, tmp_path):  # noqa: F811
    from playwright.sync_api import expect, sync_playwright

    campaign_id, stored = _store(study)
    labels = {f"{m['combination']} {m['kind']}": m for m in stored["models"]}
    with sync_playwright() as playwright:
        browser, page, errors = open_page(playwright)
        page.goto(f"{server}/ui/login?next=/ui/campaigns/{campaign_id}")
        page.get_by_label("API token").fill(tokens["alice"])
        page.get_by_role("button", name="Sign in").click()
        expect(page.locator("#validation-summary")).to_contain_text("3 SNAP models")

        # grouped bars: one series per model, one value per scenario, the artifact's defect-atom force RMSE
        drawn = _chart_series(page, "validationForces")
        assert set(drawn) == set(labels) == {"B linear", "B+C linear", "B+P linear"}
        for label, model in labels.items():
            assert drawn[label] == [s["force_rmse_defect_mev_per_A"] for s in model["scenarios"]], label
        # parity of the first scenario by default; the select shows another
        parity = _chart_series(page, "parity")
        for label, model in labels.items():
            sample = model["scenarios"][0]["parity"]
            assert parity[label] == [sample["force_reference"], sample["force_model"]], label
        page.get_by_label("Scenario", exact=True).select_option("crack")
        page.get_by_role("button", name="Show the parity plot of the chosen scenario").click()
        expect(page.locator("#parity-note")).to_contain_text("crack:")
        parity = _chart_series(page, "parity")
        sample = labels["B+P linear"]["scenarios"][1]["parity"]
        assert parity["B+P linear"] == [sample["force_reference"], sample["force_model"]]

        # the tables: every model, every (scenario, model), the ratios; no server directory on the page
        for model in stored["models"]:
            row = page.locator(f"#validation-models tr[data-model='{model['name']}']")
            expect(row.locator(".n-train")).to_have_text(str(model["n_train_configurations"]))
            for s in model["scenarios"]:
                cell = page.locator(f"#validation-errors tr[data-scenario='{s['scenario']}']"
                                    f"[data-model='{model['name']}'] .f-defect")
                expect(cell).to_have_text(f"{s['force_rmse_defect_mev_per_A']:.1f}")
        for ratio in stored["ratios"]:
            row = page.locator(f"#validation-ratios tr[data-ratio='{ratio['numerator']}/B {ratio['kind']}']")
            expect(row.locator(".ratio-mean")).to_have_text(f"{ratio['mean']:.3f}")
        for model in stored["models"]:  # defect properties, one row per model (None: LAMMPS could not relax it)
            for prop in model["properties"]:
                cell = page.locator(f"#validation-properties tr[data-model='{model['name']}'] "
                                    f"td[data-property='{prop['name']}']")
                expect(cell).to_have_text("-" if prop["model"] is None else f"{prop['model']:.4g}")
        reference_a = page.locator("#validation-properties tr[data-model='reference'] td[data-property='a']")
        expect(reference_a).to_have_text(f"{stored['models'][0]['properties'][0]['reference']:.4g}")
        html = page.locator("#validation").inner_html()  # the folded details and the chart's JSON included
        assert "/tmp" not in html and "B_P-linear.snapcoeff" in html
        assert not errors, errors
        page.locator("#validation").screenshot(path=tmp_path / "validation.png")
        print(f"\nscreenshot {tmp_path / 'validation.png'}")
        browser.close()
