"""Every artifact kind the stages write has one typed model (schemas.artifacts.ARTIFACTS): a model stored and loaded
again is the same model, its document is what the stages wrote (optional keys left out, not null), and no stage
runner, API route or dashboard function writes a document of a kind without a model."""

from __future__ import annotations

import ast
from pathlib import Path

from schemas.artifacts import (
    ARTIFACTS,
    ActiveSetRecord,
    ArtifactModel,
    CandidateTable,
    DashboardCache,
    EnsembleRecord,
    GammaByDataset,
    GammaHistogram,
    LabellingPlan,
    MaterialRecord,
    OTFCells,
    OTFIterationRecord,
    OTFRunArtifact,
    OTFSelection,
    OTFSummary,
    PccGcmcCandidate,
    PccGcmcPlan,
    ReconstructionSummary,
    SelectionSummary,
    SoapPCA,
    SpeciesGammaHistograms,
    StructureTypeCounts,
    TrainingRecord,
    ValidationSuite,
    ValidationTable,
)

ROOT = Path(__file__).resolve().parents[1]
HISTOGRAM = {"edges": [0.01, 0.1, 1.0], "counts": [3, 1], "n": 4, "gamma_max": 0.5, "below": 0, "above": 0}
RMSE = {"energy_mev_per_atom": 1.5, "forces_mev_per_A": 40.0, "forces_norm_mev_per_A": 70.0, "n_configurations": 4,
        "n_atoms": 64}
RUN = {"target": "vacancy", "steps_requested": 20, "steps_done": 20, "stopped": "completed", "snapshot_steps": [0, 20],
       "gamma_max": [1.1, 1.3], "n_candidates": 0, "wall_time_s": 0.5, "gamma_histogram": HISTOGRAM, "md_engine": "ase"}


SAMPLES: dict[str, ArtifactModel] = {
    "gamma_histogram": GammaHistogram(**HISTOGRAM),
    "species_gamma_histograms": SpeciesGammaHistograms(histograms={"Ni": HISTOGRAM, "Al": HISTOGRAM}),
    "material": MaterialRecord(species=["Ni", "Al"], lattice="bcc", a=2.863, prototype="B2"),
    "pcc_gcmc_candidates": CandidateTable(cluster_id=3, core_extent=[5.0, 5.0, 5.0], n_core=20, base_seed=7,
                                          candidates=[{"index": 0, "box": [9.5, 9.5, 9.5], "n_atoms": 54}],
                                          best_index=0, structure_id=9, energy_per_atom=-8.9),
    "selection": SelectionSummary(candidates=12, selected=2, scope="campaign", clusters=2, gamma_select=2.0,
                                  max_new=8),
    "otf_run": OTFRunArtifact(**RUN, target_index=0, model="current.almtp"),
    "otf_selection": OTFSelection(n_candidates=3, selected=[{"run": "vacancy", "snapshot_step": 20, "atom": 4,
                                                             "gamma": 2.5}],
                                  clusters=["otf/iteration-001/cluster-0"], origins=[{"iteration": 1, "gamma": 2.5}],
                                  labels_left=4, last=False, wall_time_s=1.0),
    "otf_iteration": OTFIterationRecord(index=1, n_train_before=10, runs=[RUN], n_candidates=0, n_selected=0,
                                        selected=[], n_added=0, added=[], failures=[], retrained=False, rmse=None,
                                        gamma_max=1.3, wall_time_s=2.0, stopped="converged"),
    "active_set": ActiveSetRecord(basis={"name": "snap", "n_features": 31}, m=31, training_configurations=5,
                                  training_atoms=160, tolerance=1.001, log_abs_det=12.5),
    "soap_pca": SoapPCA(components=2, explained_variance_ratio=[0.6, 0.2],
                        soap={"r_cut": 5.0, "n_max": 4, "l_max": 4, "species": ["W"], "n_features": 50},
                        points={"B": [[0.1, 0.2], [0.3, -0.1]]}, owners={"B": [[0, 1], [0, 2]]}),
    "gamma_by_dataset": GammaByDataset.model_validate(
        {"B": HISTOGRAM | {"training_configurations": 5, "graded": "defects"},
         "B+P": HISTOGRAM | {"training_configurations": 7, "graded": "defects"}}),
    "pcc_gcmc_plan": PccGcmcPlan(cluster_id=3, params={"core_radius": 5.0}, payload={"core": [True, False]},
                                 grid=[{"box": [9.5, 9.5, 9.5], "run": True, "reason": "", "seed": 11}], base_seed=7),
    "pcc_gcmc_candidate": PccGcmcCandidate.model_validate({"box": [9.5, 9.5, 9.5], "seed": 11, "status": "ok",
                                                          "index": 0, "n_atoms": 54, "energy_per_atom": -8.9,
                                                          "positions": [[0.0, 0.0, 0.0]], "symbols": ["W"]}),
    "reconstruction": ReconstructionSummary(clusters=2, reconstructed=1, not_reconstructed={"a/cluster-1": "core"},
                                            energy_per_atom={"a/cluster-0": -8.9}),
    "otf_cells": OTFCells(clusters=1, reconstructed=1, energy_per_atom={"otf/iteration-001/cluster-0": -8.9},
                          structure_ids={"otf/iteration-001/cluster-0": 12}),
    "labelling": LabellingPlan(cells=2, basic=5, clusters=0, validation=0, planned=7, over_budget=0, engine="eam",
                               dft=False, reference="W_zhou", reference_files={"W_zhou.eam.alloy": "ab12"}),
    "structure_type_counts": StructureTypeCounts.model_validate({"bcc": 120, "other": 8}),
    "mtp_training": TrainingRecord.model_validate({
        "path": "campaigns/1/training/current.almtp", "model": "mtp", "level": 8, "n_train": 10, "n_test": 2,
        "rmse": {"train": RMSE, "test": None}, "engine": "motep", "wall_time_s": 3.0, "iterations": 100,
        "units": {"rmse": "energy meV/atom, forces meV/A per component"}}),
    "otf": OTFSummary(stopped="converged", n_iterations=1, max_labels=4, model_path="campaigns/1/training/m.almtp",
                      n_labels=0, added_per_iteration=[0], gamma_max_per_iteration=[1.3], n_training=10,
                      initial_rmse={"train": RMSE, "test": RMSE}, gamma_select=2.0, gamma_break=10.0),
    "ensemble": EnsembleRecord.model_validate({
        "k": 2, "seeds": [0, 1], "ddof": 1, "counted": "defect atoms", "snapshots": 1, "snapshots_with_defects": 1,
        "n_train": 10, "n_test": 2,
        "histogram": {"edges": [1e-3, 1e-2], "counts": [4], "n": 4, "below": 0, "above": 0, "sigma_max": 0.005,
                      "sigma_mean": 0.004, "units": "eV/A"},
        "per_snapshot": [{"structure_id": 1, "source": "anneal-0/0", "n": 4}],
        "members": [{"seed": 0, "rmse": {"train": RMSE, "test": None}}]}),
    "validation_suite": ValidationSuite.model_validate({
        "lattice_constant": 3.165, "seed": 0, "suite": "smoke",
        "scenarios": {"bulk": {"configurations": 2, "atoms": 108, "defect_atoms": 0}},
        "wall_time_s": {"build_s": 1.0}, "units": {"lattice_constant": "A", "wall_time_s": "s"}}),
    "dashboard_cache": DashboardCache(key="sampling@2025-01-01T00:00:00", value={"sampled": HISTOGRAM}),
}


def _validation_table() -> ValidationTable:
    from schemas.study import StudyParams

    return ValidationTable(element="W", lattice="bcc", reference="W_zhou", reference_lammps=["pair_style eam/alloy"],
                           reference_family_allowed=False, params=StudyParams(suite="smoke"),
                           datasets={"B": {"configurations": 5}}, suite="smoke", suite_seed=0,
                           suite_sizes={"bulk": {"configurations": 2}}, lattice_constant=3.165, models=[], ratios=[])


def test_every_kind_has_a_sample():
    assert set(SAMPLES) | {"validation"} == set(ARTIFACTS)
    for kind, sample in SAMPLES.items():
        assert type(sample) is ARTIFACTS[kind] and kind == sample.KIND


def test_store_then_load_gives_the_same_model(env):
    from support import TINY_SPEC

    from app.auth import get_or_create_user
    from core.access import load_artifact, load_artifacts, store_artifact
    from core.session import session_scope
    from schemas import parse_spec
    from workers.pipeline import create_campaign

    samples = dict(SAMPLES) | {"validation": _validation_table()}
    with session_scope() as session:
        campaign_id = create_campaign(session, get_or_create_user(session, "alice"), parse_spec(TINY_SPEC)).id
        session.flush()
        for sample in samples.values():
            store_artifact(session, campaign_id, "campaign", sample)
    with session_scope() as session:
        for kind, sample in samples.items():
            loaded = load_artifact(session, campaign_id, type(sample), "campaign")
            assert loaded == sample, kind
            assert load_artifacts(session, campaign_id, type(sample)) == [("campaign", sample)]


def test_optional_keys_are_left_out_not_null():
    error_plan = PccGcmcPlan(cluster_id=1, params={}, error="core too large").model_dump(mode="json")
    assert error_plan == {"cluster_id": 1, "params": {}, "error": "core too large"}
    assert "error" not in SAMPLES["pcc_gcmc_plan"].model_dump(mode="json")
    assert GammaByDataset(error="no basis").model_dump(mode="json") == {"error": "no basis"}
    assert "error" not in SAMPLES["gamma_by_dataset"].model_dump(mode="json")
    plan = LabellingPlan(cells=1, basic=0, clusters=0, validation=0, planned=1, over_budget=0, engine="vasp", dft=True)
    assert set(plan.model_dump(mode="json")) == {"cells", "basic", "clusters", "validation", "planned",
                                                 "over_budget", "engine", "dft"}
    # the stored sigma histogram keeps its units; the API model (EnsemblePublic) does not show them
    assert SAMPLES["ensemble"].model_dump(mode="json")["histogram"]["units"] == "eV/A"
    assert StructureTypeCounts.model_validate({"bcc": 3}).model_dump(mode="json") == {"bcc": 3}


def _calls(path: Path) -> list[ast.Call]:
    return [node for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.Call)]


def _name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def test_stage_runners_use_only_typed_artifacts():
    """Every artifact the stage runners, the API and the dashboard store or load goes through a model registered in
    ARTIFACTS; no module outside core/access writes a plain document (put_artifact)."""
    models = {cls.__name__ for cls in ARTIFACTS.values()}
    files = [p for folder in ("workers", "app") for p in (ROOT / folder).rglob("*.py")]
    used = set()
    for path in files:
        for call in _calls(path):
            function = _name(call.func)
            assert function not in ("put_artifact", "_put_artifact"), f"{path}: a plain artifact document"
            if function in ("load_artifact", "load_artifacts") and len(call.args) >= 3:
                model = _name(call.args[2])
                if model is None or not model[0].isupper():
                    continue  # a helper's parameter (campaigns._campaign_artifact)
                assert model in models, f"{path}:{call.lineno}: {model} is not an artifact model"
                used.add(model)
            if function == "store_artifact" and len(call.args) >= 4:
                model = _name(call.args[3].func) if isinstance(call.args[3], ast.Call) else None
                if model in ("model_validate", None):
                    inner = call.args[3]
                    model = _name(inner.func.value) if isinstance(inner, ast.Call) and isinstance(
                        inner.func, ast.Attribute) else model
                if model is not None and model[0].isupper():
                    assert model in models, f"{path}:{call.lineno}: {model} is not an artifact model"
                    used.add(model)
    stored_by_stages = {"GammaHistogram", "CandidateTable", "SelectionSummary", "OTFRunArtifact", "OTFSelection",
                        "OTFIterationRecord", "ValidationTable", "TrainingRecord", "OTFSummary", "OTFCells",
                        "EnsembleRecord", "SoapPCA", "GammaByDataset", "PccGcmcPlan", "PccGcmcCandidate",
                        "ReconstructionSummary", "ActiveSetRecord", "LabellingPlan", "ValidationSuite",
                        "DashboardCache", "StructureTypeCounts", "SpeciesGammaHistograms", "MaterialRecord"}
    assert stored_by_stages <= used | {"ValidationTable"}
    assert stored_by_stages == models


def test_kind_constants_of_the_stages_are_registered():
    from app import dashboard
    from workers.stages import otf, reconstruction, refinement, sampling, study

    kinds = [refinement.TRAINING, refinement.OTF, refinement.ENSEMBLE, otf.CELLS, reconstruction.PLAN,
             reconstruction.CANDIDATE, reconstruction.GAMMA_BY_DATASET, study.SUITE, study.VALIDATION,
             sampling.TYPE_COUNTS, dashboard.CACHE_KIND, dashboard.SOAP_PCA, dashboard.GAMMA_BY_DATASET]
    assert set(kinds) <= set(ARTIFACTS)
    assert (refinement.TRAINING, refinement.OTF, refinement.ENSEMBLE) == ("mtp_training", "otf", "ensemble")
