"""The campaign spec: what is accepted, and the message for what is not."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
from support import TINY_SPEC

from schemas import SpecError, load_spec_text, parse_spec

ROOT = Path(__file__).resolve().parents[1]


def _errors(data) -> dict[str, str]:
    with pytest.raises(SpecError) as info:
        parse_spec(data)
    return {e.field: e.message for e in info.value.errors}


def test_example_spec_parses_with_paper_defaults():
    spec = load_spec_text((ROOT / "examples" / "w-quickstart.yaml").read_text())
    assert spec.element == "W" and spec.potential == "W_zhou.eam.alloy"
    assert [p.snapshot_count() for p in spec.sampling.protocols] == [9, 9]
    # Paper defaults (DESIGN.md section 1)
    assert spec.selection.gamma_select == 2.0 and spec.selection.gamma_break == 10.0
    assert spec.selection.cluster_radius == 8.0
    assert spec.reconstruction.core_radius == 5.0 and spec.reconstruction.max_atoms == 140
    assert spec.reconstruction.temperature == 100.0 and spec.reconstruction.mu == 0.1


def test_json_and_yaml_give_the_same_spec():
    import json

    import yaml

    assert load_spec_text(json.dumps(TINY_SPEC), "json") == load_spec_text(yaml.safe_dump(TINY_SPEC), "yaml")


def test_unknown_element_names_the_field():
    data = copy.deepcopy(TINY_SPEC) | {"element": "Xx"}
    assert "unknown element 'Xx'" in _errors(data)["element"]


def test_negative_temperature_names_the_list_entry():
    data = copy.deepcopy(TINY_SPEC)
    data["sampling"]["protocols"][1]["temperatures"] = [300, -5]
    assert "greater than 0" in _errors(data)["sampling.protocols.1.temperatures.1"]


def test_unknown_protocol_names_the_protocol():
    data = copy.deepcopy(TINY_SPEC)
    data["sampling"]["protocols"][0]["kind"] = "teleport"
    errors = _errors(data)
    assert "sampling.protocols.0" in errors and "anneal" in errors["sampling.protocols.0"]


def test_misspelled_key_is_rejected():
    data = copy.deepcopy(TINY_SPEC)
    data["sampling"]["protocols"][0]["temperature"] = [300]
    assert "sampling.protocols.0.temperature" in _errors(data)


def test_malformed_yaml_names_the_line():
    with pytest.raises(SpecError) as info:
        load_spec_text("name: x\nelement: [W\npotential: a\n")
    (error,) = info.value.errors
    assert error.field == "spec" and "malformed YAML at line" in error.message


def test_budget_cap_counts_atom_steps():
    data = copy.deepcopy(TINY_SPEC) | {"budget": {"max_md_atom_steps": 1000}}
    # 2 protocols: 128 and 127 atoms x 200 steps = 51,000 atom-steps
    assert "5.1e+04 atom-steps" in _errors(data)["budget.max_md_atom_steps"]


def test_protocol_names_must_be_unique():
    data = copy.deepcopy(TINY_SPEC)
    data["sampling"]["protocols"][1]["name"] = "bulk"
    assert "repeated: ['bulk']" in _errors(data)["sampling.protocols"]


def test_vacancies_must_fit_the_cell_and_repeats_be_positive():
    data = copy.deepcopy(TINY_SPEC)
    data["sampling"]["protocols"][1]["vacancies"] = 128
    assert "128 vacancies in a cell of 128 atoms" in _errors(data)["sampling.protocols.1.vacancies"]
    data = copy.deepcopy(TINY_SPEC)
    data["sampling"]["protocols"][0]["supercell"] = [4, 0, 4]
    assert "sampling.protocols.0.supercell.1" in _errors(data)
