"""The spec of alloy and hcp campaigns (issue #18): elements, composition, prototype, c_over_a; the potential's
elements; the entry points refuse them until the stages run several elements and hcp."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import pytest
from support import TINY_SPEC

from md.potentials import load_potential
from schemas import CampaignSpec, SpecError, load_spec_text, parse_spec
from schemas.alloys import IDEAL_C_OVER_A, PROTOTYPES

ROOT = Path(__file__).resolve().parents[1]


def _spec(**changes) -> dict:
    """TINY_SPEC with ``changes``; a change to None drops the field."""
    data = copy.deepcopy(TINY_SPEC)
    data.pop("lattice_constant")
    data.update(changes)
    return {key: value for key, value in data.items() if value is not None}


def _alloy(**changes) -> dict:
    return _spec(**({"element": None, "lattice": None, "potential": "CuNi.eam.alloy"} | changes))


CU_NI = {"elements": ["Cu", "Ni"], "composition": {"Cu": 0.5, "Ni": 0.5}, "lattice": "fcc"}


def _errors(data) -> dict[str, str]:
    with pytest.raises(SpecError) as info:
        parse_spec(data)
    return {e.field: e.message for e in info.value.errors}


# --------------------------------------------------------------------------- valid specs


def test_a_random_solid_solution_parses_with_its_species_in_order():
    spec = parse_spec(_alloy(**CU_NI))
    assert spec.species == ("Cu", "Ni") and spec.element == "Cu" and spec.lattice == "fcc"
    assert spec.fractions == (0.5, 0.5) and spec.prototype is None
    reversed_order = parse_spec(_alloy(elements=["Ni", "Cu"], composition={"Cu": 0.25, "Ni": 0.75}, lattice="fcc"))
    assert reversed_order.species == ("Ni", "Cu") and reversed_order.fractions == (0.75, 0.25)
    # Vegard: the mean of ASE's fcc constants of Cu (3.61 A) and Ni (3.52 A)
    assert spec.estimated_lattice_constant() == pytest.approx((3.61 + 3.52) / 2)
    # element given too: allowed as the first of elements
    assert parse_spec(_alloy(element="Cu", **CU_NI)).species == ("Cu", "Ni")


def test_an_alloy_spec_survives_the_round_trip_of_the_stored_spec():
    spec = parse_spec(_alloy(**CU_NI))
    again = CampaignSpec.model_validate(spec.model_dump(mode="json"))
    assert again == spec and parse_spec(spec.model_dump(mode="json")) == spec


def test_b2_takes_its_lattice_from_the_prototype():
    spec = parse_spec(_alloy(elements=["Ni", "Al"], prototype="B2", potential="NiAlH_jea.eam.alloy"))
    assert spec.lattice == "bcc" and spec.species == ("Ni", "Al") and spec.fractions == (0.5, 0.5)
    # fcc Ni (3.52 A) and Al (4.05 A) at their volume per atom on bcc: a_bcc = a_fcc / 2**(1/3)
    assert spec.estimated_lattice_constant() == pytest.approx((3.52 + 4.05) / 2 / 2 ** (1 / 3))
    assert parse_spec(_alloy(elements=["Ni", "Al"], prototype="L1_2", lattice="fcc")).lattice == "fcc"


def test_d0_19_on_hcp_with_the_ideal_c_over_a_by_default():
    spec = parse_spec(_alloy(elements=["Ti", "Al"], prototype="D0_19"))
    assert spec.lattice == "hcp" and spec.fractions == PROTOTYPES["D0_19"][1]
    assert spec.c_over_a is None and spec.estimated_c_over_a() == IDEAL_C_OVER_A
    explicit = parse_spec(_alloy(elements=["Ti", "Al"], prototype="D0_19", lattice="hcp", c_over_a=1.6))
    assert explicit.estimated_c_over_a() == 1.6


def test_one_hcp_metal_parses_with_its_reference_constant():
    spec = parse_spec(_spec(element="Mg", lattice="hcp", potential="Mg_mm.eam.fs"))
    assert spec.species == ("Mg",) and spec.estimated_lattice_constant() == 3.21  # ASE's hcp Mg
    # a given c/a: the reference volume per atom kept
    fixed = parse_spec(_spec(element="Mg", lattice="hcp", c_over_a=1.5))
    volume = math.sqrt(3) / 4 * 3.21**3 * 1.624
    assert math.sqrt(3) / 4 * fixed.estimated_lattice_constant() ** 3 * 1.5 == pytest.approx(volume)


def test_single_element_specs_are_unchanged():
    for path in sorted((ROOT / "examples").glob("w-*.yaml")):
        spec = load_spec_text(path.read_text())
        assert spec.species == (spec.element,) and spec.elements is None, path
        assert (spec.composition, spec.prototype, spec.c_over_a) == (None, None, None), path
        assert spec.lattice in ("bcc", "fcc"), path
    spec = parse_spec(_spec())
    assert spec.species == ("W",) and spec.lattice == "bcc" and spec.fractions == (1.0,)
    alloys = {path.name: load_spec_text(path.read_text()) for path in sorted(ROOT.glob("examples/**/*.yaml"))
              if not path.name.startswith("w-")}
    assert {name: spec.species for name, spec in alloys.items()} == {
        "cuni-quickstart.yaml": ("Cu", "Ni"), "cocrfeni.yaml": ("Co", "Cr", "Fe", "Ni"),
        "cuni-random.yaml": ("Cu", "Ni"), "mg-hcp.yaml": ("Mg",), "nial-b2.yaml": ("Ni", "Al")}
    assert spec.estimated_lattice_constant() == 3.16  # ASE's W, as before
    assert parse_spec(copy.deepcopy(TINY_SPEC)).estimated_lattice_constant() == 3.165
    # elements of one: the same campaign as element
    assert parse_spec(_spec(element=None, elements=["W"])).species == ("W",)


def test_the_json_schema_has_the_new_fields_and_does_not_require_element():
    schema = CampaignSpec.model_json_schema()
    assert {"elements", "composition", "prototype", "c_over_a"} <= set(schema["properties"])
    assert "element" not in schema["required"] and "name" in schema["required"]
    assert set(schema["properties"]["lattice"]["enum"]) == {"bcc", "fcc", "hcp"}


# --------------------------------------------------------------------------- errors, each naming its field


def test_composition_must_sum_to_one():
    errors = _errors(_alloy(elements=["Cu", "Ni"], composition={"Cu": 0.5, "Ni": 0.4}, lattice="fcc"))
    assert errors == {"composition": "fractions sum to 0.9; they must sum to 1"}


def test_composition_keys_are_the_elements():
    errors = _errors(_alloy(elements=["Cu", "Ni"], composition={"Cu": 0.5, "Fe": 0.5}, lattice="fcc"))
    assert "Fe is not one of elements [Cu, Ni]" in errors["composition.Fe"]
    assert "no fraction for Ni" in errors["composition"]
    assert "greater than 0" in _errors(_alloy(elements=["Cu", "Ni"], composition={"Cu": 0.0, "Ni": 1.0},
                                              lattice="fcc"))["composition.Cu"]


def test_a_prototype_must_fit_the_lattice():
    errors = _errors(_alloy(elements=["Ni", "Al"], prototype="B2", lattice="fcc"))
    assert errors["prototype"].startswith("B2 is an ordering of the bcc lattice, not fcc; set lattice: bcc")
    assert "L1_2, L1_0" in errors["prototype"]


def test_a_prototype_needs_its_number_of_elements():
    errors = _errors(_alloy(elements=["Ni", "Al", "Cu"], prototype="L1_2"))
    assert "L1_2 orders 2 elements" in errors["prototype"] and "not 3" in errors["prototype"]


def test_c_over_a_only_on_hcp():
    assert "remove c_over_a (or set lattice: hcp)" in _errors(_spec(c_over_a=1.6))["c_over_a"]
    assert "less than or equal to 2" in _errors(_spec(element="Mg", lattice="hcp", c_over_a=2.5))["c_over_a"]


def test_unknown_symbols_name_their_entry():
    assert "unknown element 'Xx'" in _errors(_alloy(elements=["Cu", "Xx"], composition={"Cu": 0.5, "Xx": 0.5},
                                                    lattice="fcc"))["elements.1"]
    assert "unknown element 'Qq'" in _errors(_spec(element="Qq"))["element"]


def test_element_and_elements_agree_and_one_is_given():
    assert "must be the first of elements [Cu, Ni]" in _errors(_alloy(element="Ni", **CU_NI))["element"]
    assert _errors(_spec(element=None)) == {"element": "give element (one metal, e.g. W) or elements (an alloy, "
                                                       "e.g. [Cu, Ni])"}
    assert "Cu repeated" in _errors(_alloy(elements=["Cu", "Cu"], composition={"Cu": 1.0}, lattice="fcc"))["elements"]
    assert "at most 8" in _errors(_alloy(elements=["Cu", "Ni", "Fe", "Cr", "Co", "Mn", "Al", "Ti", "V"],
                                         composition={"Cu": 1.0}, lattice="fcc"))["elements"]


def test_several_elements_need_exactly_one_arrangement_and_one_element_none():
    neither = _errors(_alloy(elements=["Cu", "Ni"], lattice="fcc"))
    assert "needs composition" in neither["composition"] and "prototype" in neither["composition"]
    both = _errors(_alloy(prototype="L1_0", **CU_NI))
    assert "not both" in both["prototype"]
    assert "has no composition" in _errors(_spec(composition={"W": 1.0}))["composition"]
    assert "has no prototype" in _errors(_spec(prototype="B2"))["prototype"]


# --------------------------------------------------------------------------- the potential's elements


def test_the_potential_must_describe_every_element():
    from workers.pipeline import potential_species_errors

    cu_fe = parse_spec(_alloy(elements=["Cu", "Fe"], composition={"Cu": 0.5, "Fe": 0.5}, lattice="fcc"))
    (error,) = potential_species_errors(cu_fe, load_potential("CuNi.eam.alloy"))
    assert error.field == "elements"
    assert "describes Ni, Cu, not Fe" in error.message and "remove Fe from elements" in error.message

    assert potential_species_errors(parse_spec(_alloy(**CU_NI)), load_potential("CuNi.eam.alloy")) == []
    nial = parse_spec(_alloy(elements=["Ni", "Al"], prototype="B2"))
    assert potential_species_errors(nial, load_potential("NiAlH_jea.eam.alloy")) == []

    meam = load_potential("MoCoNiVFeAlCr_2nn.meam")
    hea = parse_spec(_alloy(elements=["Fe", "Cr", "Ni", "Co"], lattice="fcc",
                            composition={"Fe": 0.25, "Cr": 0.25, "Ni": 0.25, "Co": 0.25}))
    assert potential_species_errors(hea, meam) == []
    with_w = parse_spec(_alloy(elements=["Fe", "W"], composition={"Fe": 0.9, "W": 0.1}))
    (error,) = potential_species_errors(with_w, meam)
    assert error.field == "elements" and "not W" in error.message and "Mo, Co, Ni, V, Fe, Al, Cr" in error.message

    mg_al = parse_spec(_alloy(elements=["Mg", "Al"], prototype="D0_19"))
    (error,) = potential_species_errors(mg_al, load_potential("Mg_mm.eam.fs"))
    assert error.field == "elements" and "describes Mg, not Al" in error.message
    # one element named by element: check_element's error on the field potential, as before
    assert potential_species_errors(parse_spec(_spec()), load_potential("CuNi.eam.alloy")) == []


# --------------------------------------------------------------------------- what the entry points accept

MG = {"element": "Mg", "lattice": "hcp", "potential": "Mg_mm.eam.fs"}
REFINEMENT = {"otf": {"targets": [{"structure": {"kind": "bulk", "supercell": [3, 3, 3]}, "temperature": 300,
                                   "steps": 100}]}}


def test_the_entry_check_accepts_alloys_and_hcp_and_refuses_their_study():
    from app.services import check_supported

    check_supported(parse_spec(_alloy(**CU_NI)))  # every stage but the study runs for alloys and hcp
    check_supported(parse_spec(_spec(**MG) | {"refinement": REFINEMENT}))
    check_supported(parse_spec(_alloy(**CU_NI) | {"refinement": REFINEMENT}))
    check_supported(parse_spec(_spec() | {"study": {"suite": "paper"}}))  # one cubic metal: the study runs
    for data, what in ((_alloy(**CU_NI), "an alloy (Cu, Ni)"), (_spec(**MG), "hcp Mg")):
        with pytest.raises(SpecError) as info:
            check_supported(parse_spec(data | {"study": {"suite": "paper"}}))
        ((field, message),) = [(e.field, e.message) for e in info.value.errors]
        assert field == "study" and what in message and "not supported yet" in message
        assert "remove study" in message


def test_submit_refuses_the_study_of_an_alloy_and_stores_nothing(env):
    """The CLI's path: submit_campaign on the embedded database."""
    from app.auth import get_or_create_user
    from app.services import submit_campaign
    from core import access
    from core.session import session_scope

    with session_scope() as session:
        owner = get_or_create_user(session, "alice")
        with pytest.raises(SpecError) as info:
            submit_campaign(session, owner, parse_spec(_alloy(**CU_NI) | {"study": {"suite": "paper"}}))
        assert [e.field for e in info.value.errors] == ["study"]
        assert access.campaigns_in_progress(session) == []


def test_the_api_refuses_an_alloy_study_with_422_and_nothing_stored(client, tokens):
    headers = {"Authorization": f"Bearer {tokens['alice']}"}
    data = _alloy(elements=["Ni", "Al"], prototype="B2", potential="NiAlH_jea.eam.alloy")
    data["study"] = {"suite": "paper"}
    response = client.post("/api/v1/campaigns", json=data, headers=headers)
    assert response.status_code == 422, response.text
    detail = {e["field"]: e["message"] for e in response.json()["detail"]}
    assert set(detail) == {"study"} and "an alloy (Ni, Al)" in detail["study"]
    assert client.get("/api/v1/campaigns", headers=headers).json()["count"] == 0
