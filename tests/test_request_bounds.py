"""No single request stalls the API or exhausts its memory; every malformed input answers 4xx naming the field.

On each backend, as an API node in production runs: a Redis broker and no worker, so an accepted spec only
enqueues (nothing runs).
"""

from __future__ import annotations

import copy
import json
import time

import pytest
from support import TINY_SPEC

from core.models import Campaign
from core.session import session_scope

MAX_ID = 2**31 - 1


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _count() -> int:
    with session_scope() as session:
        return session.query(Campaign).count()


def _fields(response) -> dict[str, str]:
    """field -> message of a 4xx answer: our {field, message} entries or FastAPI's {loc, msg}."""
    detail = response.json()["detail"]
    assert isinstance(detail, list), detail
    return {entry.get("field") or ".".join(str(p) for p in entry["loc"]): entry.get("message") or entry["msg"]
            for entry in detail}


def _post(client, token, body, content_type="application/json"):
    before = _count()
    response = client.post("/api/v1/campaigns", content=body, headers=_auth(token) | {"Content-Type": content_type})
    assert _count() == before
    return response


SIXTEEN_MILLION = {"kind": "minimize", "structure": {"kind": "bulk", "supercell": [200, 200, 200]}}


def test_sixteen_million_atom_spec_is_refused_in_under_a_second(broker, client, tokens):
    spec = copy.deepcopy(TINY_SPEC)
    for budget in ({}, {"max_md_atom_steps": 10**18, "max_structure_atoms": 10**12, "max_snapshots": 10**9}):
        spec["sampling"]["protocols"] = [SIXTEEN_MILLION]
        spec["budget"] = budget
        start = time.perf_counter()
        response = _post(client, tokens["alice"], json.dumps(spec))
        elapsed = time.perf_counter() - start
        assert response.status_code == 422, response.text
        assert elapsed < 1.0, f"refused in {elapsed:.2f} s"
        message = _fields(response)["sampling.protocols.0.structure"]
        assert "16,000,000 atoms" in message and "DG_MAX_STRUCTURE_ATOMS" in message and "GiB" in message
    # 1000^3 cells (2e9 atoms; a MemoryError at 14.9 GiB before): the same, as fast
    spec["sampling"]["protocols"] = [{"kind": "anneal", "structure": {"kind": "bulk", "supercell": [1000] * 3}}]
    start = time.perf_counter()
    response = _post(client, tokens["alice"], json.dumps(spec))
    assert response.status_code == 422 and time.perf_counter() - start < 1.0
    assert "2,000,000,000 atoms" in _fields(response)["sampling.protocols.0.structure"]


def test_the_spec_budget_cannot_raise_a_server_limit(broker, client, tokens, monkeypatch):
    from core.settings import get_settings

    def limited(**settings):
        for name, value in settings.items():
            monkeypatch.setenv(name, str(value))
        get_settings.cache_clear()

    token = tokens["alice"]
    generous = {"max_structure_atoms": 10**9, "max_md_atom_steps": 10**15, "max_snapshots": 10**6,
                "max_dft_jobs": 10**6}
    spec = copy.deepcopy(TINY_SPEC) | {"budget": generous}  # 2 x 250 atoms, 6e5 atom-steps, 6 snapshots
    limited(DG_MAX_STRUCTURE_ATOMS=200)
    assert "DG_MAX_STRUCTURE_ATOMS = 200" in _fields(_post(client, token, json.dumps(spec)))[
        "sampling.protocols.0.structure"]
    limited(DG_MAX_STRUCTURE_ATOMS=1000, DG_MAX_MD_ATOM_STEPS=500_000)
    assert "DG_MAX_MD_ATOM_STEPS = 5e+05" in _fields(_post(client, token, json.dumps(spec)))["sampling.protocols"]
    limited(DG_MAX_MD_ATOM_STEPS=10**6, DG_MAX_SNAPSHOTS=5)
    assert "DG_MAX_SNAPSHOTS = 5" in _fields(_post(client, token, json.dumps(spec)))["sampling.protocols"]

    # within every limit: accepted, and stored with the effective budget the stages read (the labelling
    # stage plans at most budget.max_dft_jobs jobs)
    limited(DG_MAX_SNAPSHOTS=6, DG_MAX_DFT_JOBS=7)
    response = client.post("/api/v1/campaigns", json=spec, headers=_auth(token))
    assert response.status_code == 202, response.text
    stored = client.get(f"/api/v1/campaigns/{response.json()['id']}", headers=_auth(token)).json()["spec"]["budget"]
    assert stored == {"max_structure_atoms": 1000, "max_md_atom_steps": 10**6, "max_snapshots": 6, "max_dft_jobs": 7}
    spec["budget"] = {"max_dft_jobs": 3}  # a lower budget stays
    response = client.post("/api/v1/campaigns", json=spec, headers=_auth(token))
    assert client.get(f"/api/v1/campaigns/{response.json()['id']}", headers=_auth(token)).json()["spec"][
        "budget"]["max_dft_jobs"] == 3


def _deep_yaml(depth: int) -> str:
    return "name: " + "[" * depth + "]" * depth


def _alias_bomb() -> str:
    """9^9 (387 million) strings by reference, a few hundred bytes of YAML."""
    lines = ['a: &a ["x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    for level in "bcdefghi":
        previous = chr(ord(level) - 1)
        lines.append(f"{level}: &{level} [" + ", ".join([f"*{previous}"] * 9) + "]")
    return "\n".join([*lines, "name: *i", "element: *i", "sampling: {protocols: *i}"]) + "\n"


def test_malformed_specs_answer_422_naming_the_field(broker, client, tokens):
    token = tokens["alice"]

    def invalid(body, content_type="application/json") -> dict[str, str]:
        start = time.perf_counter()
        response = _post(client, token, body, content_type)
        assert response.status_code == 422, response.text
        assert time.perf_counter() - start < 5
        return _fields(response)

    def spec_with(**changes) -> str:
        return json.dumps(copy.deepcopy(TINY_SPEC) | changes)

    assert "nested too deeply" in invalid("[" * 5000 + "]" * 5000)["spec"]
    assert "nested too deeply" in invalid(_deep_yaml(5000), "application/yaml")["spec"]
    assert "digits" in invalid('{"name": ' + "1" * 5000 + "}")["spec"]
    assert "digits" in invalid("name: " + "1" * 5000, "application/yaml")["spec"]
    assert "malformed JSON" in invalid(b"\xff\xfe{\x00")["spec"]
    assert "name" in invalid(_alias_bomb(), "application/yaml")
    assert "U+0000" in invalid(spec_with(name="w\x00defects"))["name"]
    assert "U+0000" in invalid(spec_with(potential="W_zhou.eam.alloy\x00"))["potential"]
    bad_name = copy.deepcopy(TINY_SPEC)
    bad_name["sampling"]["protocols"][0]["name"] = "bulk\r\n"
    assert "U+000D" in invalid(json.dumps(bad_name))["sampling.protocols.0.name"]
    slurm = {"launcher": "slurm", "slurm": {"modules": ["gcc\x00"]}}
    assert "U+0000" in invalid(spec_with(labelling=slurm))["labelling.slurm.modules"]
    assert "finite" in invalid(spec_with(lattice_constant=float("nan")))["lattice_constant"]
    long_name = copy.deepcopy(TINY_SPEC)
    long_name["sampling"]["protocols"][0]["name"] = "p" * 300  # a work-item key is at most 200 characters
    assert "sampling.protocols.0.name" in invalid(json.dumps(long_name))
    assert "spec" in invalid("[1, 2]")
    assert "spec" in invalid("just text", "application/yaml")


def test_a_spec_above_1_mib_or_yaml_above_128_kib_answers_413(broker, client, tokens):
    padded = json.dumps(copy.deepcopy(TINY_SPEC) | {"name": "x" * (2**20)})
    response = _post(client, tokens["alice"], padded)
    assert response.status_code == 413 and _fields(response)["spec"].startswith("the spec is larger than 1 MiB")

    def chunks():  # no Content-Length: read up to the cap, not to the end
        for _ in range(40):
            yield b" " * 2**16

    response = client.post("/api/v1/campaigns", content=chunks(), headers=_auth(tokens["alice"]))
    assert response.status_code == 413
    # YAML parses in pure Python (1 MiB: 3.6 s holding the GIL): 128 KiB
    response = _post(client, tokens["alice"], "name: " + "x" * (128 * 2**10), "application/yaml")
    assert response.status_code == 413 and "larger than 128 KiB" in _fields(response)["spec"]


@pytest.mark.parametrize("route", ["/api/v1/files", "/api/v1/potentials"])
def test_upload_names_of_dots_answer_422(client, tokens, route):
    for name in ("..", ".", "...", "x" * 300, ""):
        response = client.post(route, files={"file": (name, b"W 1\n")}, headers=_auth(tokens["alice"]))
        assert response.status_code == 422, (name, response.text)
        if name:
            assert "not only dots" in _fields(response)["file"]


def _stored_campaign(owner: str) -> int:
    """A campaign row of ``owner`` (nothing planned or run)."""
    from app.auth import get_or_create_user
    from schemas import parse_spec
    from workers import pipeline

    with session_scope() as session:
        return pipeline.create_campaign(session, get_or_create_user(session, owner), parse_spec(TINY_SPEC)).id


def test_ids_offsets_and_names_out_of_range_answer_422(client, tokens):
    headers = _auth(tokens["alice"])
    too_large = MAX_ID + 1
    own = _stored_campaign("alice")  # query parameters are checked once the campaign is found
    api = [
        ("get", f"/api/v1/campaigns/{too_large}", "path.campaign_id"),
        ("get", f"/api/v1/campaigns/{2**63}", "path.campaign_id"),
        ("get", "/api/v1/campaigns/0", "path.campaign_id"),
        ("post", f"/api/v1/campaigns/{too_large}/resume", "path.campaign_id"),
        ("post", f"/api/v1/campaigns/{too_large}/cancel", "path.campaign_id"),
        ("get", f"/api/v1/campaigns/{too_large}/structures", "path.campaign_id"),
        ("get", f"/api/v1/campaigns/{too_large}/export?format=mtp", "path.campaign_id"),
        ("get", f"/api/v1/campaigns/{too_large}/otf", "path.campaign_id"),
        ("get", f"/api/v1/structures/{too_large}/file", "path.structure_id"),
        ("get", f"/api/v1/campaigns?offset={2**63}", "query.offset"),
        ("get", f"/api/v1/campaigns?offset={too_large}", "query.offset"),
        ("get", f"/api/v1/campaigns?limit={2**64}", "query.limit"),
        ("get", f"/api/v1/campaigns/{own}/structures?offset={2**63}", "query.offset"),
        ("get", f"/api/v1/campaigns/{own}/structures?stage=sampling%00", "query.stage"),
        ("get", f"/api/v1/campaigns/{own}/otf?offset={2**63}", "query.offset"),
        ("get", f"/api/v1/campaigns/{own}/export?format=mtp&datasets=B,%0AP", "datasets"),
    ]
    for method, path, field in api:
        response = client.request(method, path, headers=headers)
        assert response.status_code == 422, (path, response.text)
        assert field in _fields(response), (path, response.text)
    # the largest id is a plain 404 on every backend
    assert client.get(f"/api/v1/campaigns/{MAX_ID}", headers=headers).status_code == 404
    assert client.get(f"/api/v1/structures/{MAX_ID}/file", headers=headers).status_code == 404

    dashboard = [
        ("get", f"/ui/campaigns/{too_large}", "campaign_id"),
        ("get", f"/ui/campaigns/{too_large}/progress.json", "path.campaign_id"),
        ("get", f"/ui/campaigns/{too_large}/gamma-max.csv", "path.campaign_id"),
        ("get", f"/ui/structures/{too_large}", "structure_id"),
        ("get", f"/ui/campaigns?page={2**63}", "page"),
        ("get", f"/ui/campaigns/{own}?structures_page={2**63}", "structures_page"),
        ("get", f"/ui/campaigns/{own}?stage=%00", "stage"),
        ("get", f"/ui/campaigns/{own}/histograms.json?snapshot=%00", "query.snapshot"),
        ("get", f"/ui/campaigns/{own}/box-grid.csv?cluster=%00", "query.cluster"),
        ("post", f"/ui/campaigns/{own}/labels/{too_large}/retry", "label_id"),
    ]
    for method, path, field in dashboard:
        response = client.request(method, path, headers=headers)
        assert response.status_code == 422, (path, response.text[:300])
        text = response.text if response.headers["content-type"].startswith("text/html") else None
        assert field in (text or _fields(response)), (path, response.text[:300])


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_spec_check_longer_than_the_time_bound_is_refused_and_its_process_replaced(broker, client, tokens,
                                                                                     monkeypatch):
    from core.settings import get_settings

    monkeypatch.setenv("DG_SPEC_CHECK_TIMEOUT", "0.5")
    get_settings.cache_clear()
    slow = copy.deepcopy(TINY_SPEC)  # ~1.5 s of Voronoi grains to build (150,000 atoms)
    slow["sampling"]["protocols"] = [{"kind": "minimize", "structure": {"kind": "polycrystal", "box": [133] * 3}}]
    start = time.perf_counter()
    response = _post(client, tokens["alice"], json.dumps(slow))
    elapsed = time.perf_counter() - start
    assert response.status_code == 422, response.text
    assert "DG_SPEC_CHECK_TIMEOUT = 0.5 s" in _fields(response)["spec"]
    assert elapsed < 3.0, f"answered after {elapsed:.1f} s"
    while client.get("/health").status_code != 200:  # the server goes on
        time.sleep(0.1)
    monkeypatch.setenv("DG_SPEC_CHECK_TIMEOUT", "60")
    get_settings.cache_clear()
    response = client.post("/api/v1/campaigns", json=TINY_SPEC, headers=_auth(tokens["alice"]))
    assert response.status_code == 202, response.text
