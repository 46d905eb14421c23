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
    assert [p.md_steps() for p in spec.sampling.protocols] == [4000, 4000]
    # Paper defaults (DESIGN.md section 1)
    assert spec.selection.gamma_select == 2.0 and spec.selection.gamma_break == 10.0
    assert spec.selection.cluster_radius == 8.0
    assert spec.reconstruction.temperature == 100.0 and spec.reconstruction.mu == 0.1
    # the spec's defaults are the paper's cells; the quick start shrinks them on purpose so that its GPAW
    # labels fit a laptop (README, "What the quick start is sized to")
    from schemas.campaign import ReconstructionParams

    assert ReconstructionParams().core_radius == 5.0 and ReconstructionParams().max_atoms == 140
    assert (spec.reconstruction.core_radius, spec.reconstruction.max_atoms) == (3.2, 40)
    assert (spec.labelling.engine, spec.labelling.profile) == ("gpaw", "quick")


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
    # 2 protocols: 250 atoms x (200 MD steps + 1,000 iterations of the starting minimisation) = 600,000 atom-steps
    assert "6e+05 atom-steps" in _errors(data)["budget.max_md_atom_steps"]


def test_protocol_names_must_be_unique():
    data = copy.deepcopy(TINY_SPEC)
    data["sampling"]["protocols"][1]["name"] = "bulk"
    assert "repeated: ['bulk']" in _errors(data)["sampling.protocols"]


def test_repeats_must_be_positive_and_structures_known():
    data = copy.deepcopy(TINY_SPEC)
    data["sampling"]["protocols"][0]["structure"]["supercell"] = [4, 0, 4]
    assert "sampling.protocols.0.structure.supercell.1" in _errors(data)
    data = copy.deepcopy(TINY_SPEC)
    data["sampling"]["protocols"][0]["structure"] = {"kind": "quasicrystal"}
    assert "sampling.protocols.0.structure" in _errors(data)


def test_every_protocol_kind_parses_with_paper_defaults():
    kinds = ["minimize", "anneal", "uniaxial", "shear", "nanoindent", "crack_opening"]
    data = copy.deepcopy(TINY_SPEC)
    data["sampling"]["protocols"] = [{"kind": kind} for kind in kinds]
    spec = parse_spec(data | {"budget": {"max_md_atom_steps": 10**12}})
    by_kind = {p.kind: p for p in spec.sampling.protocols}
    assert by_kind["uniaxial"].temperature == 300.0 and by_kind["uniaxial"].strain_rate == 1e9
    # 5 % at 1e9 1/s with 1 fs steps: 50,000 steps after 2,000 of equilibration
    assert by_kind["uniaxial"].md_steps() == 52_000
    assert by_kind["nanoindent"].structure.kind == "slab"
    # 10 A at 20 m/s (2e-4 A/fs) = 50 ps
    assert by_kind["nanoindent"].md_steps() == 2_000 + 50_000


def test_nanoindentation_needs_a_slab():
    data = copy.deepcopy(TINY_SPEC)
    data["sampling"]["protocols"] = [{"kind": "nanoindent", "structure": {"kind": "bulk"}}]
    assert "nanoindentation needs a slab" in _errors(data)["sampling.protocols.0"]


def test_labelling_engine_needs_are_named():
    eam_in_production = copy.deepcopy(TINY_SPEC) | {"production": True, "labelling": {"engine": "eam"}}
    assert "refused for production" in _errors(eam_in_production)["labelling.engine"]
    vasp = copy.deepcopy(TINY_SPEC) | {"labelling": {"engine": "vasp"}}
    assert "POTCAR" in _errors(vasp)["labelling.pseudo_dir"]
    unknown = copy.deepcopy(TINY_SPEC) | {"labelling": {"engine": "castep"}}
    assert "gpaw" in _errors(unknown)["labelling.engine"]
    walltime = copy.deepcopy(TINY_SPEC) | {"labelling": {"launcher": "slurm", "slurm": {"time": "two hours"}}}
    assert "labelling.slurm.time" in _errors(walltime)


def test_paper_labelling_defaults():
    from workers.stages.labelling import dft_settings

    spec = parse_spec(copy.deepcopy(TINY_SPEC) | {"labelling": {"profile": "production"}})
    settings = dft_settings(spec)
    assert (settings.engine, settings.ecut, settings.scf_energy_tol) == ("gpaw", 520.0, 1e-6)
    assert settings.kspacing == pytest.approx(2 * 3.141592653589793 * 0.03)
    assert settings.smearing == "fermi-dirac"
