"""The web dashboard (/ui) on a real campaign: headless Chromium (Debian's) driven by Playwright against a
real uvicorn server, and the pages' numbers checked against what the pipeline stored."""

from __future__ import annotations

import copy
import re
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from support import TINY_SPEC, open_page, wait_for, wait_for_campaign, write_bulk_training_set

from app.auth import get_or_create_user
from app.services import submit_campaign
from core.models import Artifact, Campaign, Environment, Label, Structure
from core.session import session_scope
from schemas import parse_spec


def _submit(spec) -> int:
    with session_scope() as session:
        return submit_campaign(session, get_or_create_user(session, "alice"), spec).id


def _finished(campaign_id: int, timeout: float = 240) -> Campaign:
    return wait_for_campaign(campaign_id, timeout)


def _small_spec(tmp_path: Path, **overrides):
    """One vacancy anneal (2 snapshots of 249 atoms) graded against bulk B, one cluster, one PCC-GCMC box,
    labelled by VASP with a POTCAR directory that is not there: a real failed ledger row (input_error)."""
    write_bulk_training_set(tmp_path / "bulk.extxyz", n_rattled=1)
    vacancy = dict(TINY_SPEC["sampling"]["protocols"][1], steps_per_temperature=100)
    return parse_spec(copy.deepcopy(TINY_SPEC) | {
        "stop_after": None,
        "sampling": {"protocols": [vacancy]},
        "selection": {"training_set": str(tmp_path / "bulk.extxyz"), "max_new": 1},
        "reconstruction": {"steps": 100, "exchanges": 100, "mc_moves": 20, "offsets": [-0.5]},
        "labelling": {"engine": "vasp", "pseudo_dir": str(tmp_path / "no-potcars")},
    } | overrides)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(env):
    """The real app under uvicorn in a thread of this process (same settings, same in-process executor)."""
    import uvicorn

    from app.main import create_app

    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started, 30, interval=0.05, what="uvicorn to start")
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


def _stored(campaign_id: int) -> dict:
    with session_scope() as session:
        artifacts = {(a.kind, a.name): a.data for a in session.query(Artifact).filter_by(campaign_id=campaign_id)}
        gammas = np.array([g for (g,) in session.query(Environment.gamma).join(Structure).filter(
            Structure.campaign_id == campaign_id, Environment.gamma.is_not(None))])
        selected = np.array([g for (g,) in session.query(Environment.gamma).join(Structure).filter(
            Structure.campaign_id == campaign_id, Environment.selected.is_(True))])
        snapshots = session.query(Structure).filter_by(campaign_id=campaign_id, stage="sampling").order_by(
            Structure.id).all()
        cell = session.query(Structure).filter_by(campaign_id=campaign_id, stage="periodic").one()
        label = session.get(Label, cell.label_id)
        return {
            "artifacts": artifacts, "gammas": gammas, "selected": selected,
            "gamma_max": [s.info["gamma_max"] for s in snapshots], "snapshot_ids": [s.id for s in snapshots],
            "structures": session.query(Structure).filter_by(campaign_id=campaign_id).count(),
            "cell": {"id": cell.id, "path": cell.path, "n_atoms": cell.n_atoms, "source": cell.source},
            "label": {"id": label.id, "state": label.state, "attempts": label.attempts, "failure": label.failure},
        }


def _chart_series(page, chart: str) -> dict[str, list]:
    """The data arrays a uPlot chart of the page draws, by series label."""
    return page.evaluate(
        """(name) => { const u = window.dgCharts[name];
             return Object.fromEntries(u.series.slice(1).map((s, i) => [s.label, u.data[i + 1]])); }""",
        chart,
    )


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_dashboard_in_headless_chromium_on_a_real_campaign(env, tokens, server, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    from core.settings import get_settings
    from core.storage import StructureStore
    from selection.maxvol import log_histogram

    started = time.monotonic()
    clock = [time.monotonic()]

    def lap(what: str) -> None:  # where the time goes, printed with -s
        now = time.monotonic()
        print(f"  {what}: {now - clock[0]:.1f} s")
        clock[0] = now

    campaign = _finished(_submit(_small_spec(tmp_path)))
    assert campaign.status.value == "succeeded", campaign.error
    stored = _stored(campaign.id)
    assert stored["label"]["state"] == "failed" and stored["label"]["failure"] == "input_error"
    lap("campaign")
    shots = tmp_path / "screenshots"
    shots.mkdir()
    with session_scope() as session:
        from core.models import StageRun

        took = {s.stage: round((s.finished_at - s.started_at).total_seconds(), 1)
                for s in session.query(StageRun).filter_by(campaign_id=campaign.id)}
    print(f"\ncampaign ran in {time.monotonic() - started:.1f} s {took}; screenshots in {shots}")

    with sync_playwright() as playwright:
        browser, page, errors = open_page(playwright)

        lap("launch")
        # --- sign-in: the pages redirect to the login form; a wrong token is refused, the right one kept
        page.goto(f"{server}/ui/campaigns")
        expect(page).to_have_url(re.compile(r"/ui/login\?next="))
        page.get_by_label("API token").fill("dg_wrong")
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("alert")).to_contain_text("unknown token")
        page.get_by_label("API token").fill(tokens["alice"])
        page.get_by_role("button", name="Sign in").click()
        expect(page).to_have_url(f"{server}/ui/campaigns")
        cookie = next(c for c in page.context.cookies() if c["name"] == "dg_session")
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/ui"

        lap("sign-in")
        # --- campaign list
        row = page.locator(f"#campaigns tr[data-campaign-id='{campaign.id}']")
        expect(row).to_contain_text("succeeded")
        cells = row.locator("td").all_inner_texts()
        assert cells[5] == str(stored["structures"]) and cells[6] == str(len(stored["snapshot_ids"]))
        assert cells[9] == "failed 1"
        page.screenshot(path=shots / "campaigns.png", full_page=True)

        lap("list")
        # --- campaign page: stages, histograms, gamma_max, box grid, SOAP map, labels
        row.get_by_role("link", name="tiny-w").click()
        expect(page.locator("#campaign-status")).to_have_text("succeeded")
        stages = page.locator("#stages tbody tr")
        assert stages.count() == 7
        assert set(page.locator("#stages .stage-status").all_inner_texts()) == {"succeeded"}

        histograms = {
            "sampled": stored["artifacts"][("gamma_histogram", "campaign")]["counts"],
            "candidates": log_histogram(stored["gammas"])["counts"],  # numpy on the rows vs the server's SQL
            "selected": log_histogram(stored["selected"])["counts"],
        }
        assert sum(histograms["sampled"]) == 2 * 249 and sum(histograms["selected"]) == 1
        drawn = _chart_series(page, "histogram")
        for name, counts in histograms.items():
            assert drawn[name][:-1] == counts, name  # the chart's steps (last bin repeated to its right edge)
            table = page.locator(f"#histogram-table td.count[data-dataset='{name}']").all_text_contents()
            assert [int(v) for v in table] == counts, name  # the text alternative
        page.get_by_label("Logarithmic count axis", exact=True).check()
        assert page.evaluate("window.dgCharts.histogram.scales.y.distr") == 3
        # the candidates against B, B+C and B+P (Fig. 4e-f): against B they are the grading stage's gammas
        # (the same active set, rebuilt from the stored B); the selected environment is in C and P
        by_set = stored["artifacts"][("gamma_by_dataset", "campaign")]
        assert set(by_set) == {"B", "B+C", "B+P"}
        assert by_set["B"]["counts"] == histograms["candidates"]
        assert by_set["B+P"]["n"] == by_set["B+C"]["n"] == len(stored["gammas"])
        assert by_set["B+P"]["gamma_max"] < by_set["B"]["gamma_max"]
        assert by_set["B+C"]["gamma_max"] < by_set["B"]["gamma_max"]
        drawn = _chart_series(page, "training-sets")
        for name in ("B", "B+C", "B+P"):
            assert drawn[name][:-1] == by_set[name]["counts"], name
            table = page.locator(f"#training-sets-table td.count[data-dataset='{name}']").all_text_contents()
            assert [int(v) for v in table] == by_set[name]["counts"], name
        gamma_max = _chart_series(page, "gammaMax")["γmax"]
        assert gamma_max == pytest.approx(stored["gamma_max"])

        (cluster_name,) = [name for kind, name in stored["artifacts"] if kind == "pcc_gcmc_candidates"]
        table = stored["artifacts"][("pcc_gcmc_candidates", cluster_name)]
        (candidate,) = table["candidates"]
        box = page.locator(f"#box-grid td[data-candidate='{candidate['index']}']")
        expect(box).to_contain_text(f"{candidate['energy_per_atom']:.4f}")
        expect(box).to_contain_text(f"{candidate['n_atoms']} atoms")
        assert page.get_by_label("Cluster", exact=True).input_value() == cluster_name

        soap = stored["artifacts"][("soap_pca", "campaign")]["points"]
        drawn = page.evaluate("Object.fromEntries(window.dgCharts.soap.series.slice(1).map("
                              "(s, i) => [s.label, window.dgCharts.soap.data[i + 1]]))")
        assert set(drawn) == set(soap) == {"B", "C", "P"}
        for name, points in soap.items():
            assert drawn[name][0] == pytest.approx([p[0] for p in points])
            assert drawn[name][1] == pytest.approx([p[1] for p in points])
            expect(page.locator(f"#soap-table tr[data-dataset='{name}'] td").first).to_have_text(str(len(points)))

        lap("charts")
        label_row = page.locator(f"#label-table tr[data-label-id='{stored['label']['id']}']")
        expect(label_row.locator(".label-state")).to_have_text("failed")
        expect(label_row.locator(".label-failure")).to_contain_text("input_error")
        expect(label_row.locator(".label-error")).to_contain_text("POTCAR")
        for name in ("Export as MTP .cfg", "Export as pacemaker .pckl.gzip", "Export as extended XYZ"):
            expect(page.get_by_role("button", name=name)).to_be_visible()
        assert not errors, errors
        page.screenshot(path=shots / "campaign.png", full_page=True)

        lap("labels")
        # --- every control has an accessible name
        unnamed = page.evaluate("""() => [...document.querySelectorAll('button, select, input:not([type=hidden])')]
            .filter((el) => !(el.getAttribute('aria-label') || (el.labels && el.labels.length)
                              || (el.tagName === 'BUTTON' && el.textContent.trim())))
            .map((el) => el.outerHTML)""")
        assert unnamed == []

        lap("a11y")
        # --- export without labels: a clear 422 naming the reason, not a traceback
        page.get_by_role("button", name="Export as MTP .cfg").click()
        expect(page.locator("#error-detail")).to_contain_text("no energy and forces")
        page.go_back()

        lap("export")
        # --- retry the failed label: the ledger row is queued again and the labelling item runs again
        label_row = page.locator(f"#label-table tr[data-label-id='{stored['label']['id']}']")
        polls: list[str] = []
        page.on("request", lambda request: polls.append(request.url) if "progress.json" in request.url else None)
        label_row.get_by_role("button", name=f"Retry label {stored['label']['id']}").click()
        expect(page.locator("#message")).to_contain_text(f"label {stored['label']['id']} queued again")
        status_after_retry = page.locator("#campaign-status").text_content()
        # live refresh: a page that opened on the running campaign polls progress.json until it has finished
        expect(page.locator("#campaign-status")).to_have_text("succeeded", timeout=60_000)
        assert status_after_retry == "succeeded" or polls, status_after_retry

        def retried():
            with session_scope() as session:
                label = session.get(Label, stored["label"]["id"])
                campaign_now = session.get(Campaign, campaign.id)
                return (label.attempts, label.state, campaign_now.status.value) if label.attempts == 2 and \
                    label.state == "failed" and campaign_now.status.finished else None

        _attempts, _state, status = wait_for(retried, 60, what="the retried label to run")
        assert status == "succeeded"
        lap("retry ran")
        page.reload()
        label_row = page.locator(f"#label-table tr[data-label-id='{stored['label']['id']}']")
        expect(label_row.locator(".label-attempts")).to_have_text("2")
        expect(label_row.locator(".label-failure")).to_contain_text("history: input_error, input_error")
        page.screenshot(path=shots / "campaign-after-retry.png", full_page=True)

        lap("after retry")
        # --- a retry of a label that is not in the campaign, an unknown campaign: clear 404 pages
        csrf = page.locator("input[name=csrf]").first.input_value()
        response = page.request.post(f"{server}/ui/campaigns/{campaign.id}/labels/999999/retry", form={"csrf": csrf})
        assert response.status == 404 and "label 999999 not found in campaign" in response.text()
        response = page.goto(f"{server}/ui/campaigns/999999")
        assert response.status == 404
        expect(page.locator("#error-detail")).to_have_text("campaign 999999 not found")

        lap("404s")
        # --- structure pages: a reconstructed cell coloured core/inserted, a snapshot coloured by gamma
        atoms = StructureStore(get_settings().data_dir).read(stored["cell"]["path"])
        page.goto(f"{server}/ui/structures/{stored['cell']['id']}")
        expect(page.locator("#viewer-status")).to_contain_text(f"{len(atoms)} atoms shown")
        expected = ["#d62728" if c else "#1f77b4" if i else "#bbbbbb"
                    for c, i in zip(atoms.arrays["core"], atoms.arrays["inserted"], strict=True)]
        assert page.evaluate("window.dgCharts.atomColours") == expected
        assert page.evaluate("window.dgCharts.viewerAtoms") == len(atoms)
        values = page.locator("#atom-table .atom-value").all_text_contents()
        assert values.count("core") == int(atoms.arrays["core"].sum())
        assert values.count("inserted") == int(atoms.arrays["inserted"].sum())
        page.screenshot(path=shots / "structure-periodic.png")  # the viewport: a full page re-renders WebGL in software

        lap("periodic cell page")
        snapshot_id = stored["snapshot_ids"][0]
        page.goto(f"{server}/ui/structures/{snapshot_id}")
        expect(page.locator("#viewer-status")).to_contain_text("249 atoms shown")
        with session_scope() as session:
            rows = dict(session.query(Environment.atom_index, Environment.gamma).filter(
                Environment.structure_id == snapshot_id, Environment.gamma.is_not(None)).all())
        shown = page.locator("#atom-table tbody tr")
        assert shown.count() == len(rows) == 14  # the vacancy's 8 + 6 neighbours
        for tr in shown.all():
            index, value = int(tr.get_attribute("data-atom")), float(tr.locator(".atom-value").text_content())
            assert value == pytest.approx(rows[index], rel=1e-3)
        colours = page.evaluate("window.dgCharts.atomColours")
        assert sum(c != "#dddddd" for c in colours) == 14
        page.screenshot(path=shots / "structure-snapshot.png")
        assert not errors, errors
        lap("snapshot page")
        browser.close()
    assert len(list(shots.glob("*.png"))) == 5
    print(f"test took {time.monotonic() - started:.1f} s")


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_dashboard_pages_and_refusals_on_postgresql(client, tokens, tmp_path):
    """The same aggregates on PostgreSQL (TestClient, a bearer header), paging, and the refusals."""
    from labelling import DFTSettings
    from labelling.ledger import new_record, on_submitted, on_success
    from selection.maxvol import log_histogram

    spec = _small_spec(tmp_path, stop_after="selection")
    campaign = _finished(_submit(spec))
    assert campaign.status.value == "succeeded", campaign.error
    headers = {"Authorization": f"Bearer {tokens['alice']}"}

    # no token: HTML pages redirect to the sign-in, JSON answers 401
    response = client.get(f"/ui/campaigns/{campaign.id}", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"].startswith("/ui/login?next=")
    assert client.get(f"/ui/campaigns/{campaign.id}/progress.json").status_code == 401

    body = client.get(f"/ui/campaigns/{campaign.id}/histograms.json", headers=headers).json()
    with session_scope() as session:
        gammas = [g for (g,) in session.query(Environment.gamma).join(Structure).filter(
            Structure.campaign_id == campaign.id, Environment.gamma.is_not(None))]
        merged = session.query(Artifact).filter_by(campaign_id=campaign.id, kind="gamma_histogram",
                                                   name="campaign").one().data
        cluster = session.query(Structure).filter_by(campaign_id=campaign.id, stage="cluster").first()
    assert body["sampled"]["counts"] == merged["counts"]
    assert body["candidates"]["counts"] == log_histogram(np.array(gammas))["counts"]
    assert body["candidates"]["n"] == len(gammas) and body["candidates"]["gamma_max"] == pytest.approx(max(gammas))
    progress = client.get(f"/ui/campaigns/{campaign.id}/progress.json", headers=headers).json()
    assert [s["stage"] for s in progress["stages"]] == ["sampling", "training_set", "grading", "selection"]
    csv_text = client.get(f"/ui/campaigns/{campaign.id}/gamma-max.csv", headers=headers).text
    assert csv_text.splitlines()[0] == "snapshot,structure_id,source,gamma_max" and len(csv_text.splitlines()) == 3

    response = client.get(f"/ui/campaigns/{campaign.id}/export", params={"format": "pdf"}, headers=headers)
    assert response.status_code == 422 and "format: Input should be" in response.text and "extxyz" in response.text
    assert client.get("/api/v1/campaigns?limit=0", headers=headers).json()["detail"][0]["loc"] == ["query", "limit"]
    listing = client.get("/ui/campaigns", headers=headers)
    assert listing.status_code == 200 and f'data-campaign-id="{campaign.id}"' in listing.text

    # structures are paged: 25 a page
    page = client.get(f"/ui/campaigns/{campaign.id}", params={"stage": "basic"}, headers=headers)
    assert page.status_code == 200 and page.text.count('data-structure-id="') == 2

    # someone else's campaign and an unknown one are the same 404
    bob = {"Authorization": f"Bearer {tokens['bob']}"}
    response = client.get(f"/ui/campaigns/{campaign.id}", headers=bob)
    assert response.status_code == 404 and f"campaign {campaign.id} not found" in response.text
    assert "Traceback" not in response.text

    # the ledger's rows: a succeeded label cannot be retried (409); a failed one without a labelling item
    # in this campaign (stop_after selection) cannot either
    from ase.io import read

    from core.settings import get_settings

    atoms = read(get_settings().data_dir / cluster.path)
    settings = DFTSettings(engine="eam")
    record = on_success(on_submitted(new_record(atoms, settings)), "0" * 64)
    with session_scope() as session:
        label = Label(structure_hash=record.structure_hash, settings_sha256=record.settings_hash,
                      structure_id=cluster.id, engine="eam", settings=record.settings, state=record.state.value,
                      attempts=record.attempts)
        session.add(label)
        session.flush()
        label_id = label.id
    url = f"/ui/campaigns/{campaign.id}/labels/{label_id}/retry"
    response = client.post(url, headers=headers)
    assert response.status_code == 409
    assert f"label {label_id} is succeeded; only a failed label can be retried" in response.text
    with session_scope() as session:
        session.get(Label, label_id).state = "failed"
    response = client.post(url, headers=headers)
    assert response.status_code == 409 and "no labelling work item" in response.text
    # a browser form without its CSRF token is refused
    client.cookies.set("dg_session", tokens["alice"], path="/ui")
    response = client.post(url)
    assert response.status_code == 403 and "CSRF" in response.text
    client.cookies.clear()
