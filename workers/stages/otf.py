"""On-the-fly active learning as campaign stages (paper stage 6): one iteration is six stages on the queues.

Iteration K (stage runs named ``<step>.K``; the pipeline adds iteration K+1 when K's training says go on):

1. ``otf_md.K`` (queue ``md``): one item per MD target: MD with the current MTP, graded every
   ``check_every`` steps against the active set of the current training set (:func:`mlip.otf.grade_run`);
   the graded snapshots with atoms above gamma_select are kept with their rows.
2. ``otf_selection.K`` (``select``): greedy D-optimal selection over every run's snapshots
   (:func:`mlip.otf.select_new`), one cluster cut per selected atom (:func:`mlip.otf.cut_cluster`) and its
   PCC-GCMC plan; the last iteration (``max_iterations``, or no label budget left) is a production check and
   cuts nothing.
3. ``otf_boxes.K`` (``gcmc``): one item per PCC-GCMC box, as the reconstruction stage's boxes.
4. ``otf_cells.K`` (``gcmc``): the best box of every cluster becomes an ``otf`` structure.
5. ``otf_labelling.K`` (``dft``): one ledger label per cell, local or Slurm, at most what the DFT budget
   leaves; a label that succeeded before (any campaign, any delivery) is never computed again.
6. ``otf_training.K`` (``select``): the MTP retrained on B + P + every OTF cell so far, the iteration record
   (``otf_iteration`` artifact), the stop rule (:func:`mlip.otf.stop_reason`) and, when the loop ends, the
   ``otf`` summary with the final model.

Every item re-reads what earlier items stored (artifacts, structures, files under ``<campaign>/otf``), so a
killed worker's item runs again from its inputs and a finished one is not repeated. The snapshots of the MD
items are kept in binary (``.npz``) so the selection sees the MD's own coordinates.
"""

from __future__ import annotations

import io
import os
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from sqlalchemy.orm import Session

from core import access
from core.access import load_artifact, load_artifacts, put_structure, store_artifact
from core.session import session_scope
from core.settings import get_settings
from core.storage import StructureStore
from mlip.otf import (
    Chosen,
    OTFIteration,
    OTFRun,
    active_set_of,
    added_record,
    cut_cluster,
    retrain,
    select_new,
    stop_reason,
    write_json,
)
from mlip.trainers import LearningTrainer
from schemas import CampaignSpec
from schemas.artifacts import (
    OTFCells,
    OTFIterationRecord,
    OTFRunArtifact,
    OTFRunRecord,
    OTFSelection,
    OTFSummary,
    TrainingRecord,
)
from schemas.names import StructureKind
from selection import maxvol
from selection.bases import Basis
from selection.maxvol import ActiveSet, SpeciesActiveSets
from workers.stages.common import PlannedItem, campaign_dir, load_item, report_progress
from workers.stages.labelling import labelled_structures
from workers.stages.reconstruction import assemble_plans, box_items, gcmc_params, plan_cluster, plans
from workers.stages.refinement import (
    CAMPAIGN,
    initial_model,
    labels_left,
    otf_target,
    potential_reference,
    refinement_of,
    trainer_for,
    training_sets,
)

STEPS = ("otf_md", "otf_selection", "otf_boxes", "otf_cells", "otf_labelling", "otf_training")
CELLS = OTFCells.KIND  # per iteration: the PCC-GCMC summary of its clusters


def stage_name(step: str, iteration: int) -> str:
    """The stage run of one step of one iteration, e.g. ``otf_md.2``."""
    return f"{step}.{iteration}"


def split_stage_name(name: str) -> tuple[str, int | None]:
    """(step, iteration) of a stage run's name; iteration None for a stage outside the loop."""
    step, _, iteration = name.partition(".")
    return (step, int(iteration)) if iteration.isdigit() else (name, None)


def _tag(iteration: int) -> str:
    return f"{iteration:03d}"


def _prefix(iteration: int) -> str:
    """Sources of this iteration's clusters and cells."""
    return f"otf/iteration-{_tag(iteration)}/"


def iteration_dir(campaign_id: int, iteration: int) -> Path:
    path = campaign_dir(campaign_id) / "otf" / f"iteration-{_tag(iteration)}"
    path.mkdir(parents=True, exist_ok=True)
    return path


def iteration_records(session: Session, campaign_id: int) -> list[OTFIterationRecord]:
    """The finished iterations' records in iteration order."""
    return [record for _name, record in load_artifacts(session, campaign_id, OTFIterationRecord)]


def model_path(session: Session, campaign_id: int, spec: CampaignSpec, iteration: int) -> Path:
    """The model the MD of ``iteration`` runs: the training stage's, or the last retrained one before it."""
    path = initial_model(campaign_id, spec)
    for record in iteration_records(session, campaign_id):
        if record.index < iteration and record.retrained:
            path = iteration_dir(campaign_id, record.index) / "model" / trainer_for(spec).model_file
    return path


def training_set(session: Session, campaign_id: int, spec: CampaignSpec, iteration: int
                 ) -> tuple[list[Atoms], list[Atoms]]:
    """(train, test) of ``iteration``'s model: B + P (a seeded share held out) and the OTF cells labelled
    by the iterations before it, in the order they were stored."""
    train, test = training_sets(session, campaign_id, spec)
    for earlier in range(1, iteration):
        train += labelled_structures(session, campaign_id, StructureKind.OTF, source_prefix=_prefix(earlier))
    return train, test


def _active_set(session_data: tuple[Path, list[Atoms]], campaign_id: int, iteration: int, species: list[str],
                trainer: LearningTrainer) -> tuple[Basis, ActiveSet | SpeciesActiveSets]:
    """(basis, active set) of the iteration's model over its training set, computed once and kept on disk
    (several MD items may ask at once: each writes the same bytes, the last rename wins)."""
    model, train = session_data
    target = iteration_dir(campaign_id, iteration) / "active_set.npz"
    if target.is_file():
        return trainer.basis(model, species), maxvol.load(target)
    basis, active_set = active_set_of(model, train, species, trainer)
    buffer = io.BytesIO()
    maxvol.save(active_set, buffer)
    partial = target.with_suffix(f".{os.getpid()}.partial")
    partial.write_bytes(buffer.getvalue())
    partial.replace(target)
    return basis, active_set


# --------------------------------------------------------------------------- plans


def plan_md(_session: Session, _campaign_id: int, spec: CampaignSpec, iteration: int) -> list[PlannedItem]:
    otf = refinement_of(spec).otf
    return [PlannedItem(key=name, params={"iteration": iteration, "target": index}, progress_total=target.steps)
            for index, (name, target) in enumerate(zip(otf.target_names(), otf.targets, strict=True))]


def plan_one(_session: Session, _campaign_id: int, _spec: CampaignSpec, iteration: int) -> list[PlannedItem]:
    return [PlannedItem(key="iteration", params={"iteration": iteration}, progress_total=1)]


def plan_boxes(session: Session, campaign_id: int, _spec: CampaignSpec, iteration: int) -> list[PlannedItem]:
    return [item for source, record in plans(session, campaign_id, _prefix(iteration)) if record.grid is not None
            for item in box_items(source, record.grid)]


def plan_cells(session: Session, campaign_id: int, spec: CampaignSpec, iteration: int) -> list[PlannedItem]:
    return plan_one(session, campaign_id, spec, iteration) if plans(session, campaign_id, _prefix(iteration)) else []


def plan_labels(session: Session, campaign_id: int, _spec: CampaignSpec, iteration: int) -> list[PlannedItem]:
    """One label per cell of the iteration, in selection order, at most what the budget leaves."""
    cells = access.structure_sources(session, campaign_id, StructureKind.OTF, prefix=_prefix(iteration))
    selection = load_artifact(session, campaign_id, OTFSelection, _tag(iteration))
    cells = cells if selection is None else cells[:selection.labels_left]
    return [PlannedItem(key=f"{source}/label", params={"structure_id": structure_id, "iteration": iteration},
                        progress_total=1) for structure_id, source in cells]


def otf_labels_planned(session: Session, campaign_id: int) -> int:
    """Label jobs the OTF iterations have planned so far."""
    return access.count_stage_items(session, campaign_id, stage_prefix="otf_labelling.")


# --------------------------------------------------------------------------- runners


def _save_snapshots(path: Path, collected: list[tuple[Atoms, np.ndarray, np.ndarray]]) -> None:
    arrays: dict[str, np.ndarray] = {"n": np.array(len(collected))}
    for k, (snapshot, rows, gamma) in enumerate(collected):
        arrays |= {f"numbers_{k}": snapshot.numbers, f"positions_{k}": snapshot.positions,
                   f"cell_{k}": snapshot.cell.array, f"pbc_{k}": snapshot.pbc,
                   f"step_{k}": np.array(snapshot.info["step"]), f"rows_{k}": rows, f"gamma_{k}": gamma}
    partial = path.with_suffix(f".{os.getpid()}.partial.npz")
    np.savez(partial, allow_pickle=False, **arrays)  # numbers only (np.load below reads without pickle)
    partial.replace(path)


def _load_snapshots(path: Path, run: str) -> list[tuple[Atoms, np.ndarray, np.ndarray]]:
    collected = []
    with np.load(path, allow_pickle=False) as data:
        for k in range(int(data["n"])):
            snapshot = Atoms(data[f"numbers_{k}"], positions=data[f"positions_{k}"], cell=data[f"cell_{k}"],
                             pbc=data[f"pbc_{k}"])
            gamma = data[f"gamma_{k}"]
            snapshot.arrays["gamma"] = gamma.copy()
            step = int(data[f"step_{k}"])
            snapshot.info.update(step=step, source=f"otf:{run}:step-{step}")
            collected.append((snapshot, data[f"rows_{k}"], gamma))
    return collected


def run_md(item_id: int) -> None:
    """One MD target of one iteration with the current MTP, graded; its snapshots and record stored."""
    campaign_id, spec, params = load_item(item_id)
    iteration, index = int(params["iteration"]), int(params["target"])
    target = otf_target(spec, index, campaign_id)
    with session_scope() as session:
        if load_artifact(session, campaign_id, OTFRunArtifact, f"{_tag(iteration)}/{target.name}") is not None:
            return  # a re-delivered task: the run is stored
        model = model_path(session, campaign_id, spec, iteration)
        train, _test = training_set(session, campaign_id, spec, iteration)
    trainer = trainer_for(spec)
    basis, active_set = _active_set((model, train), campaign_id, iteration, list(spec.species), trainer)
    run, collected = trainer.md(target, model, basis, active_set, gamma_select=spec.selection.gamma_select,
                                gamma_break=spec.selection.gamma_break,
                                check_every=refinement_of(spec).otf.check_every,
                                on_check=lambda step: report_progress(item_id, campaign_id, done=step))
    _save_snapshots(iteration_dir(campaign_id, iteration) / f"md-{index}.npz", collected)
    with session_scope() as session:
        store_artifact(session, campaign_id, f"{_tag(iteration)}/{target.name}",
                       OTFRunArtifact(**asdict(run), target_index=index, model=Path(model).name))


def _runs(session: Session, campaign_id: int, spec: CampaignSpec, iteration: int) -> list[OTFRun]:
    records = []
    for name in refinement_of(spec).otf.target_names():
        stored = load_artifact(session, campaign_id, OTFRunArtifact, f"{_tag(iteration)}/{name}")
        if stored is None:
            raise RuntimeError(f"otf iteration {iteration}: the MD run of target {name} is not stored")
        records.append(OTFRun(**stored.model_dump(include=set(OTFRunRecord.model_fields))))
    return records


def select_and_cut(item_id: int) -> None:
    """D-optimal selection over the iteration's graded snapshots; a cluster and a PCC-GCMC plan per choice."""
    campaign_id, spec, params = load_item(item_id)
    iteration = int(params["iteration"])
    started = time.perf_counter()
    otf = refinement_of(spec).otf
    with session_scope() as session:
        runs = _runs(session, campaign_id, spec, iteration)
        model = model_path(session, campaign_id, spec, iteration)
        train, _test = training_set(session, campaign_id, spec, iteration)
        budget = labels_left(session, campaign_id, spec) - otf_labels_planned(session, campaign_id)
    collected = [(name, _load_snapshots(iteration_dir(campaign_id, iteration) / f"md-{index}.npz", name))
                 for index, name in enumerate(otf.target_names())]
    _basis, active_set = _active_set((model, train), campaign_id, iteration, list(spec.species), trainer_for(spec))
    n_candidates = sum(run.n_candidates for run in runs)
    last = iteration == otf.max_iterations or budget <= 0
    chosen = select_new(active_set, collected, gamma_select=spec.selection.gamma_select,
                        max_new=otf.max_new) if n_candidates else []
    store = StructureStore(get_settings().data_dir)
    params_gcmc = gcmc_params(spec)
    potential = potential_reference(spec)
    clusters = []
    with session_scope() as session:
        if chosen and not last:
            for number, environment in enumerate(chosen):
                cluster = cut_cluster(environment, spec.selection.cluster_radius)
                source = f"{_prefix(iteration)}cluster-{number}"
                cluster_id = put_structure(session, store, campaign_id, cluster.atoms, stage=StructureKind.OTF_CLUSTER,
                                           source=source, info=_origin(environment, iteration))
                plan_cluster(session, campaign_id, source, cluster_id, cluster, None, potential, params_gcmc)
                clusters.append(source)
        store_artifact(session, campaign_id, _tag(iteration), OTFSelection(
            n_candidates=n_candidates, selected=[c.record() for c in chosen], clusters=clusters,
            origins=[_origin(c, iteration) for c in chosen] if clusters else [], labels_left=max(0, budget), last=last,
            wall_time_s=time.perf_counter() - started,
        ))


def _origin(environment: Chosen, iteration: int) -> dict[str, Any]:
    return {"iteration": iteration, "origin": environment.origin, "gamma": environment.gamma}


def assemble_cells(item_id: int) -> None:
    """The best PCC-GCMC box of every cluster of the iteration becomes an ``otf`` structure."""
    campaign_id, _spec, params = load_item(item_id)
    iteration = int(params["iteration"])
    store = StructureStore(get_settings().data_dir)
    with session_scope() as session:
        selection = load_artifact(session, campaign_id, OTFSelection, _tag(iteration))
        info = dict(zip(selection.clusters, selection.origins, strict=True)) if selection else {}
        summary = assemble_plans(session, store, campaign_id, plans(session, campaign_id, _prefix(iteration)),
                                 stage=StructureKind.OTF, info=info)
        store_artifact(session, campaign_id, _tag(iteration), OTFCells.model_validate(summary))


def retrain_and_record(item_id: int) -> None:
    """The iteration's end: the MTP retrained on the new labelled cells, its record, the stop rule."""
    campaign_id, spec, params = load_item(item_id)
    iteration = int(params["iteration"])
    otf = refinement_of(spec).otf
    started = time.perf_counter()
    with session_scope() as session:
        runs = _runs(session, campaign_id, spec, iteration)
        selection = load_artifact(session, campaign_id, OTFSelection, _tag(iteration))
        if selection is None:
            raise RuntimeError(f"otf iteration {iteration}: its selection is not stored")
        cells = load_artifact(session, campaign_id, OTFCells, _tag(iteration))
        model = model_path(session, campaign_id, spec, iteration)
        train, test = training_set(session, campaign_id, spec, iteration)
        added = labelled_structures(session, campaign_id, StructureKind.OTF, source_prefix=_prefix(iteration))
        labels = {source: {"state": state, "attempts": attempts, "error": error}
                  for source, state, attempts, error in access.label_outcomes(
                      session, campaign_id, StructureKind.OTF, _prefix(iteration))}
        added_ids = access.succeeded_structure_ids(session, campaign_id, StructureKind.OTF, _prefix(iteration))
        n_labels = access.count_stage_items(session, campaign_id, stage=f"otf_labelling.{iteration}")
        budget_after = labels_left(session, campaign_id, spec) - otf_labels_planned(session, campaign_id)
        earlier = iteration_records(session, campaign_id)
    failures = _failures(selection, cells.not_reconstructed if cells else {}, labels)
    gammas = dict(zip(selection.clusters, selection.origins, strict=True))
    for cell in added:  # what the iteration record keeps of each cell: its origin and gamma
        origin = gammas[cell.info["source"].removesuffix("/periodic")]
        cell.info.update(source=origin["origin"], otf_gamma=origin["gamma"])
    retrained, rmse = None, None
    timing = {"md_s": sum(run.wall_time_s for run in runs)}
    if added:
        tick = time.perf_counter()
        model_record = retrain(trainer_for(spec), train + added, test, iteration_dir(campaign_id, iteration) / "model")
        timing["train_s"] = time.perf_counter() - tick
        retrained, rmse = str(model_record.path), model_record.rmse
    record = OTFIteration(
        index=iteration, model=str(model), n_train_before=len(train), runs=runs,
        n_candidates=selection.n_candidates, n_selected=len(selection.selected),
        selected=selection.selected, n_added=len(added), added=[added_record(a) for a in added],
        failures=failures, retrained=retrained, rmse=rmse, gamma_max=max(max(run.gamma_max) for run in runs),
        wall_time_s=selection.wall_time_s + timing["md_s"] + time.perf_counter() - started, timing=timing,
        n_labels=n_labels,
    )
    reason = stop_reason(record, iteration == otf.max_iterations, max(0, budget_after))
    write_json(campaign_dir(campaign_id) / "otf" / f"iteration-{_tag(iteration)}.json", record.to_dict())
    data = record.to_dict()
    del data["model"], data["retrained"]
    stored = OTFIterationRecord(**data, retrained=retrained is not None, structure_ids=added_ids, stopped=reason)
    with session_scope() as session:
        store_artifact(session, campaign_id, _tag(iteration), stored)
        if reason is not None:
            final = Path(retrained) if retrained else model
            history = [it for it in earlier if it.index < iteration] + [stored]
            training = load_artifact(session, campaign_id, TrainingRecord, CAMPAIGN)
            store_artifact(session, campaign_id, CAMPAIGN, OTFSummary(
                stopped=reason, n_iterations=len(history), max_labels=labels_left(session, campaign_id, spec),
                model_path=str(final.relative_to(get_settings().data_dir)),
                n_labels=sum(it.n_labels for it in history), added_per_iteration=[it.n_added for it in history],
                gamma_max_per_iteration=[it.gamma_max for it in history], n_training=len(train) + len(added),
                initial_rmse=training.rmse if training else None,
                gamma_select=spec.selection.gamma_select, gamma_break=spec.selection.gamma_break,
            ))


def _failures(selection: OTFSelection, not_reconstructed: dict[str, str],
              labels: dict[str, dict]) -> list[dict[str, Any]]:
    """Selected environments that did not become labelled cells: not reconstructed, over the label budget,
    or their label failed."""
    failures = []
    for source, record in zip(selection.clusters, selection.selected, strict=False):
        where = {k: v for k, v in record.items() if k != "gamma"}
        cell = f"{source}/periodic"
        if source in not_reconstructed:
            failures.append({**where, "stage": "reconstruction", "reason": not_reconstructed[source][:500]})
        elif cell not in labels:
            failures.append({**where, "stage": "budget", "reason": "the DFT budget (budget.max_dft_jobs) is spent"})
        elif labels[cell]["state"] != "succeeded":
            failures.append({**where, "stage": "labelling", "attempts": labels[cell]["attempts"],
                             "reason": str(labels[cell]["error"])[:500]})
    return failures
