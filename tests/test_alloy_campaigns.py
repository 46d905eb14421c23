"""Campaigns of alloys and hcp metals end to end on the embedded default (issue #18): sampling, per-species
active sets and selection, PCC-GCMC cells of several species, labels by engine lammps, exports.

The default suite runs a small B2 NiAl and a small hcp Mg campaign; the four campaigns of examples/alloys
(Cu-Ni random fcc, CoCrFeNi with the 2NN MEAM, B2 NiAl, hcp Mg) run under ``-m slow``.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import yaml
from support import wait_for_campaign

from app.auth import get_or_create_user
from app.services import submit_campaign
from core import access
from core.models import Campaign, Label, Structure
from core.session import session_scope
from schemas import parse_spec
from schemas.artifacts import ActiveSetRecord, MaterialRecord, SpeciesGammaHistograms

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "alloys"

# PCC-GCMC cut short (one box per cluster, a few hundred steps): the tests check species, not cell energies
TINY_RECONSTRUCTION = {"steps": 200, "exchanges": 100, "mc_moves": 20, "offsets": [-0.5], "core_radius": 3.2,
                       "max_atoms": 60}
NIAL_B2 = {
    "name": "tiny-nial-b2", "elements": ["Ni", "Al"], "prototype": "B2", "potential": "NiAlH_jea.eam.alloy",
    "sampling": {"threads": 1, "protocols": [
        {"kind": "anneal", "name": "vacancies", "structure": {"kind": "bulk", "supercell": [5, 5, 5], "vacancies": 2,
                                                              "seed": 3},
         "temperatures": [600], "steps_per_temperature": 200, "snapshot_every": 100, "seed": 3}]},
    "selection": {"max_new": 3},
    "reconstruction": TINY_RECONSTRUCTION,
    "labelling": {"engine": "lammps"},
    # an MTP of Ni and Al on B + P, then one on-the-fly iteration graded against one active set per species
    "refinement": {
        "training": {"level": 2, "max_iter": 20, "test_fraction": 0.0},
        "otf": {"targets": [{"structure": {"kind": "bulk", "supercell": [5, 5, 5], "vacancies": 1, "seed": 2},
                             "temperature": 900, "steps": 40, "seed": 1}],
                "max_iterations": 1, "check_every": 10, "max_new": 1}},
}
MG_HCP = {
    "name": "tiny-mg", "element": "Mg", "lattice": "hcp", "potential": "Mg_mm.eam.fs",
    "sampling": {"threads": 1, "protocols": [
        {"kind": "anneal", "name": "vacancies", "structure": {"kind": "bulk", "supercell": [5, 3, 3], "vacancies": 2,
                                                              "seed": 3},
         "temperatures": [300], "steps_per_temperature": 200, "snapshot_every": 100, "seed": 3}]},
    "selection": {"max_new": 3},
    "reconstruction": TINY_RECONSTRUCTION,
    "labelling": {"engine": "lammps"},
}


def _run(data: dict, timeout: float) -> int:
    spec = parse_spec(data)
    with session_scope() as session:
        campaign_id = submit_campaign(session, get_or_create_user(session, "alice"), spec).id
    campaign = wait_for_campaign(campaign_id, timeout)
    assert campaign.status.value == "succeeded", campaign.error
    return campaign_id


def _cells(campaign_id: int) -> list[Structure]:
    with session_scope() as session:
        cells = session.query(Structure).filter_by(campaign_id=campaign_id, stage="periodic").all()
        for cell in cells:
            row = session.get(Label, cell.label_id)
            assert (row.state, row.engine) == ("succeeded", "lammps")
        session.expunge_all()
    return cells


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_b2_nial_campaign_selects_per_species_keeps_the_ordering_and_learns_on_the_fly(env):
    from ase.io import read as ase_read

    from app.exports import export_campaign
    from core.settings import get_settings
    from core.storage import StructureStore
    from sampling.datasets import read_dataset
    from sampling.defects import classify_atoms
    from selection import maxvol
    from workers.stages.common import campaign_dir

    campaign_id = _run(NIAL_B2, 600)
    store = StructureStore(get_settings().data_dir)
    with session_scope() as session:  # relaxed once, in the occupied B2 crystal, and read by every stage
        material = access.load_artifact(session, campaign_id, MaterialRecord, "campaign")
    assert material is not None and (material.species, material.lattice, material.prototype) == (["Ni", "Al"],
                                                                                                  "bcc", "B2")
    assert material.a == pytest.approx(2.8630, abs=1e-4)

    # one active set per species over set B, and B graded against them: gamma <= 1.001 for every species
    sets = maxvol.load(campaign_dir(campaign_id) / "active_set.npz")
    assert isinstance(sets, maxvol.SpeciesActiveSets) and sets.species == ("Ni", "Al")
    from workers.stages.selection import campaign_basis

    spec = parse_spec(NIAL_B2)
    basis = campaign_basis(spec, ["Ni", "Al"])
    with session_scope() as session:
        basic = [store.read(s.path) for s in session.query(Structure).filter_by(campaign_id=campaign_id,
                                                                                 stage="basic")]
    for atoms in basic:
        gamma = sets.grades(basis.rows(atoms), atoms.get_chemical_symbols())
        assert gamma.max() <= 1.001
    # the perfect B2 set B: Ni and Al in equal numbers on their sublattices, no candidate in the crystal
    bulk = basic[0]
    assert bulk.get_chemical_formula() == "Al27Ni27"
    assert not np.any(classify_atoms(bulk, lattice="bcc") != 3)

    with session_scope() as session:
        histograms = dict(access.load_artifacts(session, campaign_id, SpeciesGammaHistograms))
        snapshots = session.query(Structure).filter_by(campaign_id=campaign_id, stage="sampling").all()
        atoms_of = {"Ni": 0, "Al": 0}
        for snapshot in snapshots:
            symbols = store.read(snapshot.path).get_chemical_symbols()
            for name in atoms_of:
                atoms_of[name] += symbols.count(name)
        from app.dashboard import species_histograms

        shown = species_histograms(session, campaign_id)
    # the campaign's per-species histograms count every sampled atom of each species once
    assert {name: h.n for name, h in histograms["campaign"].histograms.items()} == atoms_of
    assert {name: h["n"] for name, h in shown.items()} == atoms_of
    assert atoms_of["Ni"] - atoms_of["Al"] in range(-2 * len(snapshots), 2 * len(snapshots) + 1)  # 2 vacancies

    cells = _cells(campaign_id)
    assert 1 <= len(cells) <= 3
    for cell in cells:
        atoms = store.read(cell.path)
        assert set(atoms.get_chemical_symbols()) <= {"Ni", "Al"} and len(atoms) <= 60
        fraction_ni = atoms.get_chemical_symbols().count("Ni") / len(atoms)
        assert 0.35 < fraction_ni < 0.65  # the shell brought to the cluster's B2 chemistry

    with session_scope() as session:
        campaign = session.get(Campaign, campaign_id)
        text = io.StringIO()
        assert export_campaign(session, campaign, "mtp", text, datasets=("P",)) == len(cells)
        cfg = text.getvalue()
        xyz = io.StringIO()
        export_campaign(session, campaign, "extxyz", xyz, datasets=("P",))
    back = read_dataset(io.StringIO(cfg), format="cfg", species=["Ni", "Al"])
    direct = ase_read(io.StringIO(xyz.getvalue()), ":", format="extxyz")
    assert [a.get_chemical_symbols() for a in back] == [a.get_chemical_symbols() for a in direct]
    assert all(set(a.get_chemical_symbols()) == {"Ni", "Al"} for a in back)

    # the refinement: a two-species MTP, and the on-the-fly MD graded against one active set per species of its
    # basis
    from mlip.trainers import MtpTrainer
    from schemas.artifacts import OTFIterationRecord, TrainingRecord
    from workers.stages.otf import iteration_dir

    with session_scope() as session:
        training = access.load_artifact(session, campaign_id, TrainingRecord, "campaign")
        record = access.load_artifact(session, campaign_id, OTFIterationRecord, "001")
    assert training is not None and record is not None
    mtp = MtpTrainer().basis(get_settings().data_dir / training.path, ["Ni", "Al"])
    otf_sets = maxvol.load(iteration_dir(campaign_id, 1) / "active_set.npz")
    assert isinstance(otf_sets, maxvol.SpeciesActiveSets) and set(otf_sets.species) == {"Ni", "Al"}
    assert otf_sets.size == mtp.rows(bulk).shape[1]
    assert record.runs[0].steps_done > 0 and record.runs[0].stopped in ("completed", "gamma_break")


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_hcp_mg_campaign_finds_only_the_vacancies_and_builds_hcp_cells(env):
    from core.settings import get_settings
    from core.storage import StructureStore
    from workers.pipeline import summarize

    campaign_id = _run(MG_HCP, 300)
    store = StructureStore(get_settings().data_dir)
    with session_scope() as session:
        summary = summarize(session, campaign_id)
        basic = session.query(Structure).filter_by(campaign_id=campaign_id, stage="basic").all()
        record = access.load_artifact(session, campaign_id, ActiveSetRecord, "campaign")
        material = access.load_artifact(session, campaign_id, MaterialRecord, "campaign")
    from sampling.builders import relax_hcp
    from workers.stages.common import resolve_potential

    a, c_over_a, _ = relax_hcp(resolve_potential("Mg_mm.eam.fs"), "Mg", 3.2)
    # the campaign's a and c/a: Mg_mm's own minimum (relax_hcp from its guess 3.2 A and the ideal c/a)
    assert material is not None and (material.a, material.c_over_a) == pytest.approx((a, c_over_a), rel=1e-6)
    # hcp CNA at 300 K: every atom is hcp but the 12 neighbours of each of the two vacancies (24 per snapshot,
    # fewer only where the vacancies share neighbours): the perfect lattice gives no candidates
    n = summary.snapshots
    assert summary.structure_types["hcp"] + summary.structure_types["other"] == summary.atoms == n * 178
    assert 20 * n <= summary.defect_atoms <= 26 * n
    assert record is not None and record.training_configurations == len(basic)
    assert {store.read(s.path).get_chemical_formula() for s in basic} >= {"Mg48"}  # 3x2x2 orthohexagonal cells
    cells = _cells(campaign_id)
    assert 1 <= len(cells) <= 3
    for cell in cells:
        atoms = store.read(cell.path)
        assert set(atoms.get_chemical_symbols()) == {"Mg"} and len(atoms) <= 60
    assert sum(summary.cell_formulas.values()) == len(cells)


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("example", ["cuni-random", "cocrfeni", "nial-b2", "mg-hcp"])
def test_the_alloy_examples_run_through_reconstruction(env, example):
    """The four campaigns of issue #18 as the examples define them: every stage succeeds, every cell is labelled,
    the cells hold the campaign's species only."""
    from workers.pipeline import summarize

    data = yaml.safe_load((EXAMPLES / f"{example}.yaml").read_text())
    campaign_id = _run(data, 3600)
    species = set(parse_spec(data).species)
    cells = _cells(campaign_id)
    assert cells
    with session_scope() as session:
        summary = summarize(session, campaign_id)
    assert sum(summary.environments[kind][1] for kind in summary.environments) > 0  # selected environments
    for formula in summary.cell_formulas:
        from ase.formula import Formula

        assert set(Formula(formula).count()) <= species
