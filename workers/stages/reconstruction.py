"""Reconstruction stages: every selected cluster becomes a periodic cell by PCC-GCMC.

Stage ``gcmc_boxes`` fans out one work item per (cluster, box) of the grid on the ``gcmc``
queue, so the candidates of one cluster run in parallel on as many workers as there are (the
embedded default runs them in a process pool); each item stores its candidate as an artifact.
Stage ``reconstruction`` picks the best admissible candidate of every cluster, stores it as a
``periodic`` structure with per-atom ``core`` and ``inserted`` arrays, keeps the candidate table
of each cluster for the dashboard (the paper's Fig. 3b), adds P to the SOAP map and grades the
candidate environments against the active sets of B, B+C and B+P (the paper's Fig. 4e-f).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
from ase import Atoms
from sqlalchemy.orm import Session

from core import access
from core.access import load_artifact, load_artifacts, put_structure, store_artifact, stored_structures
from core.session import session_scope
from core.settings import get_settings
from core.storage import StructureStore
from md.engine import Stopped
from md.potentials import Potential, PotentialError
from pcc_gcmc import (
    CandidateResult,
    GCMCParams,
    NoAdmissibleCandidateError,
    ReconstructionError,
    assemble,
    plan,
    run_candidate,
)
from sampling.datasets import soap_pca_map
from schemas import CampaignSpec
from schemas.artifacts import (
    CandidateTable,
    GammaByDataset,
    PccGcmcCandidate,
    PccGcmcPlan,
    ReconstructionSummary,
    SoapPCA,
)
from schemas.names import Dataset, StructureKind
from selection.bases import BasisError
from selection.clusters import Cluster
from selection.grading import gamma_histograms_against_training_sets
from workers.lease import stop_file
from workers.stages.common import Cancelled, PlannedItem, campaign_dir, load_item, resolve_potential
from workers.stages.selection import campaign_basis

log = logging.getLogger(__name__)

PLAN = PccGcmcPlan.KIND  # per cluster: payload, grid, seeds (what the box items need)
CANDIDATE = PccGcmcCandidate.KIND  # per box: the finished candidate with its structure (dropped after assembly)
CAMPAIGN = "campaign"
OTF_PREFIX = "otf/"  # the sources of clusters the OTF iterations cut (workers/stages/otf.py)
GAMMA_BY_DATASET = GammaByDataset.KIND  # the candidates' gamma against B, B+C and B+P (dashboard)


def gcmc_params(spec: CampaignSpec) -> GCMCParams:
    values = spec.reconstruction.model_dump(exclude_none=True)
    if values.pop("protocol") == "fast":
        return GCMCParams.fast(**values)
    return GCMCParams.from_dict(values)


def cluster_core(atoms: Atoms, core_radius: float) -> np.ndarray:
    """Atoms within ``core_radius`` of any selected centre (a merged cluster has several)."""
    centres = np.flatnonzero(np.asarray(atoms.arrays.get("centre", np.zeros(len(atoms))), dtype=bool))
    if len(centres) == 0:
        centres = np.array([int(np.argmin(np.linalg.norm(atoms.positions - atoms.positions.mean(axis=0), axis=1)))])
    distances = np.linalg.norm(atoms.positions[:, None, :] - atoms.positions[None, centres, :], axis=2)
    return (distances <= core_radius * (1 + 1e-12)).any(axis=1)


def plan_cluster(session: Session, campaign_id: int, source: str, cluster_id: int, cluster: Atoms | Cluster,
                 core_mask: np.ndarray | None, potential: Potential | str, params: GCMCParams) -> list[PlannedItem]:
    """The PCC-GCMC plan of one cluster stored as an artifact named ``source``; one item per box that can run.

    A cluster that cannot be set up (e.g. its core holds more than max_atoms atoms) is recorded with the
    reason and gives no item. ``core_mask`` None: the atoms within core_radius of the centre atom.
    """
    record = {"cluster_id": cluster_id, "params": params.to_dict()}
    try:
        payload, grid, base_seed = plan(cluster, core_mask, potential, params)
    except (ReconstructionError, PotentialError, ValueError) as exc:
        store_artifact(session, campaign_id, source, PccGcmcPlan(**record, error=str(exc)))
        log.warning("cluster %s cannot be reconstructed: %s", source, exc)
        return []
    store_artifact(session, campaign_id, source,
                   PccGcmcPlan(**record, payload=payload, grid=grid, base_seed=base_seed))
    return box_items(source, grid)


def box_items(source: str, grid: list[dict]) -> list[PlannedItem]:
    return [PlannedItem(key=f"{source}/box-{index}", params={"cluster": source, "index": index}, progress_total=1)
            for index, entry in enumerate(grid) if entry["run"]]


def plans(session: Session, campaign_id: int, prefix: str = "") -> list[tuple[str, PccGcmcPlan]]:
    """(cluster source, plan) of the campaign's clusters whose source starts with ``prefix``, in cluster order
    (the clusters' structure ids: the order they were cut and planned in)."""
    return sorted(load_artifacts(session, campaign_id, PccGcmcPlan, prefix), key=lambda pair: pair[1].cluster_id)


def plan_boxes(session: Session, campaign_id: int, spec: CampaignSpec) -> list[PlannedItem]:
    """One item per box that can run, for every stored cluster of the selection stage."""
    store = StructureStore(get_settings().data_dir)
    params = gcmc_params(spec)
    potential = resolve_potential(spec.potential)
    clusters = access.structure_files(session, campaign_id, StructureKind.CLUSTER)
    items: list[PlannedItem] = []
    for cluster_id, path, source in clusters:
        atoms = store.read(path)
        items += plan_cluster(session, campaign_id, source, cluster_id, atoms,
                              cluster_core(atoms, params.core_radius), potential, params)
    return items


def _plan_of(session: Session, campaign_id: int, cluster_source: str) -> PccGcmcPlan:
    recorded = load_artifact(session, campaign_id, PccGcmcPlan, cluster_source)
    if recorded is None or recorded.grid is None or recorded.payload is None:
        raise RuntimeError(f"cluster {cluster_source}: no PCC-GCMC plan with boxes is stored")
    return recorded


def run_box(item_id: int) -> None:
    """One candidate box: GCMC insertion and relaxation with the core fixed (LAMMPS, this process)."""
    campaign_id, _spec, params = load_item(item_id)
    source, index = params["cluster"], int(params["index"])
    name = f"{source}/{index}"
    with session_scope() as session:
        if load_artifact(session, campaign_id, PccGcmcCandidate, name) is not None:
            return  # a re-delivered task: the candidate is stored
        recorded = _plan_of(session, campaign_id, source)
    assert recorded.grid is not None and recorded.payload is not None, "_plan_of checks them"
    entry = recorded.grid[index]
    try:  # the item's stop file (the campaign was cancelled) halts LAMMPS within a GCMC invocation
        result = run_candidate(recorded.payload, entry["box"], recorded.params, entry["seed"],
                               stop_file=stop_file(item_id))
    except Stopped as stopped:
        log.info("work item %s (campaign %s, box %s) cancelled: %s", item_id, campaign_id, name, stopped)
        raise Cancelled from None
    result.index = index
    with session_scope() as session:
        store_artifact(session, campaign_id, name, PccGcmcCandidate.model_validate(result.to_dict(structure=True)))


def _cluster_table(candidates: Sequence[CandidateResult], plan_record: PccGcmcPlan) -> dict:
    assert plan_record.payload is not None, "a plan with candidates has its payload"
    return {
        "cluster_id": plan_record.cluster_id,
        "core_extent": plan_record.payload["core_extent"],
        "n_core": int(sum(plan_record.payload["core"])),
        "base_seed": plan_record.base_seed,
        "candidates": [c.to_dict() for c in candidates],
    }


def assemble_plans(session: Session, store: StructureStore, campaign_id: int,
                   planned: list[tuple[str, PccGcmcPlan]], *, stage: str,
                   info: dict[str, dict] | None = None) -> dict:
    """Best candidate of every planned cluster -> a structure of ``stage`` named ``<cluster>/periodic`` with
    per-atom ``core`` and ``inserted``; the candidate table of each cluster is kept, the per-box candidates
    are dropped. ``info``: extra structure info per cluster source. Returns the summary."""
    names = [f"{source}/{index}" for source, record in planned if record.grid is not None
             for index, entry in enumerate(record.grid) if entry["run"]]
    candidates: dict[str, dict[str, Any]] = {
        name: candidate.model_dump() for source, record in planned if record.grid is not None
        for name, candidate in load_artifacts(session, campaign_id, PccGcmcCandidate, f"{source}/")
    }
    summary: dict = {"clusters": len(planned), "reconstructed": 0, "not_reconstructed": {}, "energy_per_atom": {},
                     "structure_ids": {}}
    for source, record in planned:
        if record.error is not None or record.grid is None or record.payload is None or record.base_seed is None:
            summary["not_reconstructed"][source] = record.error or "no PCC-GCMC plan"
            continue
        grid = record.grid
        results = [candidates[f"{source}/{index}"] for index, entry in enumerate(grid) if entry["run"]]
        try:
            reconstruction = assemble(record.payload, grid, results, record.params, record.base_seed)
        except NoAdmissibleCandidateError as exc:
            summary["not_reconstructed"][source] = str(exc)
            store_artifact(session, campaign_id, source,
                           CandidateTable(**_cluster_table(exc.candidates, record), best_index=None, error=str(exc)))
            continue
        atoms = reconstruction.atoms
        best = reconstruction.best
        structure_info = {
            "energy_per_atom_potential": best.energy_per_atom,
            "potential": atoms.info.get("potential"),
            "min_distance": best.min_distance,
            "box": best.box_final,
            "candidate": best.index,
            "n_core": best.n_core,
            "n_inserted": best.n_inserted,
            "n_seeded": best.n_seeded,
            "seed": best.seed,
        } | (info or {}).get(source, {})
        structure_id = put_structure(session, store, campaign_id, atoms, stage=stage, source=f"{source}/periodic",
                                     parent_id=record.cluster_id, info=structure_info)
        store_artifact(session, campaign_id, source, CandidateTable(
            **_cluster_table(reconstruction.candidates, record), best_index=reconstruction.best_index,
            structure_id=structure_id, energy_per_atom=best.energy_per_atom,
        ))
        summary["reconstructed"] += 1
        summary["energy_per_atom"][source] = best.energy_per_atom
        summary["structure_ids"][source] = structure_id
    # the per-box structures live on only in the chosen cells; the tables keep every candidate's numbers
    if names:
        access.delete_artifacts(session, campaign_id, CANDIDATE, names)
    return summary


def assemble_cells(item_id: int) -> None:
    """Best candidate of every selected cluster -> a ``periodic`` structure; tables, summary and the SOAP map."""
    campaign_id, spec, _ = load_item(item_id)
    store = StructureStore(get_settings().data_dir)
    with session_scope() as session:
        planned = [(source, record) for source, record in plans(session, campaign_id)
                   if not source.startswith(OTF_PREFIX)]
        summary = assemble_plans(session, store, campaign_id, planned, stage=StructureKind.PERIODIC)
        summary.pop("structure_ids")
        store_artifact(session, campaign_id, CAMPAIGN, ReconstructionSummary.model_validate(summary))
        maps = {name: stored_structures(session, store, campaign_id, stage)
                for name, stage in ((d.value, d.structures) for d in (Dataset.B, Dataset.C, Dataset.P))}
        store_artifact(session, campaign_id, CAMPAIGN, SoapPCA.model_validate(
            soap_pca_map({k: v for k, v in maps.items() if v}, max_atoms_per_dataset=2000)))
        store_artifact(session, campaign_id, CAMPAIGN,
                       GammaByDataset.model_validate(_gamma_by_dataset(campaign_id, spec, maps)))


def _gamma_by_dataset(campaign_id: int, spec: CampaignSpec, maps: dict[str, list[Atoms]]) -> dict:
    """The candidate environments graded against the active sets of B, B+C and B+P (paper Fig. 4e-f).

    Histograms per set on the shared log edges, the candidates read one snapshot at a time (memory does not grow
    with the number of snapshots); ``{"error": ...}`` when the basis cannot grade them (the campaign goes on: this
    is a view of the data, not a step of it).
    """
    files = sorted((campaign_dir(campaign_id) / "rows").glob("*.candidates.npy"))
    per_species = len(spec.species) > 1  # each candidate against its own species' set, as it was selected

    def graded() -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
        for f in files:
            species = f.with_name(f.name.replace(".candidates.npy", ".candidate_species.npy"))
            yield np.load(f), np.load(species) if per_species else None

    sets = {"B": maps["B"]}
    for name in ("C", "P"):
        if maps[name]:
            sets[f"B+{name}"] = maps["B"] + maps[name]
    try:
        histograms = gamma_histograms_against_training_sets(campaign_basis(spec, list(spec.species)), sets, graded(),
                                                            per_species=per_species)
    except (ValueError, BasisError, RuntimeError) as exc:
        log.warning("campaign %s: grading against B, B+C, B+P failed: %s", campaign_id, exc)
        return {"error": f"{type(exc).__name__}: {exc}"}
    return {
        name: {**histogram, "training_configurations": len(sets[name]), "graded": spec.selection.candidates}
        for name, histogram in histograms.items()
    }
