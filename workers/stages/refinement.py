"""Refinement stages (stage 6): an MTP trained on B + P, on-the-fly active learning from it, ensemble sigma_F.

Stage ``training`` fits one MTP (motep) on the campaign's labelled configurations, dataset B (the user's
labelled file, else B as the labelling stage labelled it) and the PCC-GCMC cells P, with a seeded share
held out for the test RMSE; the model stays in the campaign's directory. On-the-fly learning from that
model runs as stages of its own, one set per iteration (:mod:`workers.stages.otf`); its labelled new cells
are ``otf`` structures with ledger rows (dataset OTF of the exports). Stage ``ensemble`` trains k MTPs on the
final set (B + P + OTF) and stores the histogram of their force spread sigma_F over the defect atoms of the
sampling snapshots.

Units: RMSE in meV/atom and meV/A (:func:`mlip.train.rmse`), sigma_F in eV/A.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final, Literal

import numpy as np
from ase import Atoms
from sqlalchemy.orm import Session

from core import access
from core.access import load_artifact, store_artifact
from core.session import session_scope
from core.settings import get_settings
from core.storage import StructureStore
from mlip import MDTarget, TrainedModel, ensemble_report, split, train_ensemble
from mlip.trainers import LearningTrainer, MtpTrainer, SnapTrainer
from sampling.structures import build_structure
from schemas import CampaignSpec
from schemas.artifacts import EnsembleRecord, OTFSummary, TrainingRecord
from schemas.campaign import EnsembleParams, RefinementParams
from schemas.names import StructureKind
from workers.stages.common import (
    UPLOAD_PREFIX,
    campaign_dir,
    campaign_material,
    load_item,
    resolve_data_file,
    resolve_potential,
)
from workers.stages.labelling import labelled_basic_set, labelled_structures

TRAINING: Final = TrainingRecord.KIND  # artifact kinds; the name of the campaign-wide ones is CAMPAIGN
OTF: Final = OTFSummary.KIND
ENSEMBLE = EnsembleRecord.KIND
CAMPAIGN = "campaign"


def refinement_of(spec: CampaignSpec) -> RefinementParams:
    """The spec's refinement section: the refinement stages are planned only for a spec that has one
    (workers.pipeline.stages_for)."""
    if spec.refinement is None:
        raise ValueError("the campaign spec has no refinement section: no training, OTF or ensemble stage runs")
    return spec.refinement


def trainer_for(spec: CampaignSpec) -> LearningTrainer:
    """The trainer of the campaign's model (refinement.training.model), shared by the first model and every
    OTF retraining."""
    training = refinement_of(spec).training
    if training.model == "snap":
        return SnapTrainer(training.snap, species=list(spec.species))
    return MtpTrainer(training_settings(spec) | {"species": list(spec.species)})


def training_settings(spec: CampaignSpec) -> dict[str, Any]:
    """Keyword arguments of mlip.train_mtp shared by the first model, every OTF retraining and the ensemble."""
    training = refinement_of(spec).training
    return {"level": training.level, "max_iter": training.max_iter, "min_dist": training.min_dist,
            "max_dist": training.max_dist, "seed": training.seed, "forces_weight": training.forces_weight,
            "stress_weight": training.stress_weight}


def training_sets(session: Session, campaign_id: int, spec: CampaignSpec) -> tuple[list[Atoms], list[Atoms]]:
    """(train, test): the labelled configurations of B and P, a seeded test_fraction held out."""
    images = (labelled_basic_set(session, campaign_id, spec)
              + labelled_structures(session, campaign_id, StructureKind.PERIODIC))
    if not images:
        raise ValueError("refinement.training: no labelled configuration to train on (no label of B or P "
                         "succeeded; see the campaign's label table)")
    training = refinement_of(spec).training
    return split(images, training.test_fraction, training.seed)


def final_model(session: Session, campaign_id: int) -> tuple[Literal["otf", "mtp_training"], Path] | None:
    """The campaign's own MTP as refinement left it: (stage, absolute path), OTF's last model when OTF ran."""
    otf = load_artifact(session, campaign_id, OTFSummary, CAMPAIGN)
    if otf is not None and otf.model_path:
        return "otf", Path(get_settings().data_dir) / otf.model_path
    training = load_artifact(session, campaign_id, TrainingRecord, CAMPAIGN)
    if training is not None and training.path:
        return "mtp_training", Path(get_settings().data_dir) / training.path
    return None


def initial_model(campaign_id: int, spec: CampaignSpec) -> Path:
    """The training stage's model file."""
    return _model_dir(campaign_id) / trainer_for(spec).model_file


def _model_dir(campaign_id: int) -> Path:
    return campaign_dir(campaign_id) / "training"


def _model_record(model: TrainedModel) -> TrainingRecord:
    return TrainingRecord.model_validate({
        "path": str(model.path.relative_to(get_settings().data_dir)), "model": model.kind, "level": model.level,
        "n_train": model.n_train, "n_test": model.n_test, "rmse": model.rmse, "engine": model.engine,
        "wall_time_s": model.wall_time_s, "iterations": model.settings.get("iterations"),
        "units": {"rmse": "energy meV/atom, forces meV/A per component"},
    })


def train_model(item_id: int) -> None:
    """The first MTP of the campaign, on B + P; its file under the campaign directory, its RMSE an artifact."""
    campaign_id, spec, _ = load_item(item_id)
    with session_scope() as session:
        train, test = training_sets(session, campaign_id, spec)
    model = trainer_for(spec).train(train, test or None, _model_dir(campaign_id))
    with session_scope() as session:
        store_artifact(session, campaign_id, CAMPAIGN, _model_record(model))


def potential_reference(spec: CampaignSpec) -> str:
    """The classical potential as a name or path that PCC-GCMC can load (an upload's stored file)."""
    if spec.potential.startswith(UPLOAD_PREFIX):
        return str(resolve_data_file(spec.potential, "potential"))
    return spec.potential


def otf_target(spec: CampaignSpec, index: int, campaign_id: int | None = None) -> MDTarget:
    """MD target ``index`` of the spec with its structure built as the sampling stage builds it."""
    potential = resolve_potential(spec.potential)
    otf = refinement_of(spec).otf
    target = otf.targets[index]
    return MDTarget(build_structure(target.structure, campaign_material(spec, potential, campaign_id), potential),
                    temperature=target.temperature, steps=target.steps, name=otf.target_names()[index],
                    timestep=target.timestep_fs, seed=target.seed)


def labels_left(session: Session, campaign_id: int, spec: CampaignSpec) -> int:
    """What budget.max_dft_jobs leaves for OTF labels after the labelling stage's jobs (one per work item)."""
    planned = access.count_stage_items(session, campaign_id, stage="labelling")
    return max(0, spec.budget.max_dft_jobs - planned)


def _snapshots_with_defects(session: Session, campaign_id: int) -> list[tuple[int, str, str, list[int]]]:
    """(id, path, source, defect atom indices) of every sampling snapshot with defect atoms."""
    snapshots = access.structure_files(session, campaign_id, StructureKind.SAMPLING)
    defects: dict[int, list[int]] = {}
    for structure_id, atom_index in access.environments_of_stage(session, campaign_id, StructureKind.SAMPLING):
        defects.setdefault(structure_id, []).append(int(atom_index))
    return [(sid, path, source, sorted(defects[sid])) for sid, path, source in snapshots if sid in defects]


def ensemble_spread(item_id: int) -> None:
    """k MTPs on B + P + OTF; the histogram of their sigma_F over the sampling snapshots' defect atoms."""
    campaign_id, spec, _ = load_item(item_id)
    store = StructureStore(get_settings().data_dir)
    ensemble: EnsembleParams | None = refinement_of(spec).ensemble
    if ensemble is None:
        raise ValueError("the spec has no refinement.ensemble: the ensemble stage does not run")
    k = ensemble.k
    settings = training_settings(spec)
    seed = settings.pop("seed")
    with session_scope() as session:
        train, test = training_sets(session, campaign_id, spec)
        train += labelled_structures(session, campaign_id, StructureKind.OTF)
        with_defects = _snapshots_with_defects(session, campaign_id)
    spread: np.ndarray | list[float] = (np.linspace(0, len(with_defects) - 1, ensemble.max_snapshots)
                                        if with_defects else [])
    snapshots = [with_defects[i] for i in np.unique(np.round(spread).astype(int))]
    models = train_ensemble(train, k, campaign_dir(campaign_id) / "ensemble", seeds=[seed + n for n in range(k)],
                            test=test or None, species=list(spec.species), **settings)
    images, masks = [], []
    for _structure_id, path, _source, atoms_indices in snapshots:
        atoms = store.read(path)
        mask = np.zeros(len(atoms), bool)
        mask[atoms_indices] = True
        images.append(atoms)
        masks.append(mask)
    report = ensemble_report(models, images, species=list(spec.species), masks=masks)
    per_snapshot = [row | {"structure_id": structure_id, "source": source}
                    for row, (structure_id, _path, source, _atoms) in zip(report["per_configuration"], snapshots,
                                                                           strict=True)]
    with session_scope() as session:
        store_artifact(session, campaign_id, CAMPAIGN, EnsembleRecord.model_validate({
            "k": k, "seeds": [seed + n for n in range(k)], "ddof": report["ddof"],
            "counted": "defect atoms (not in the perfect lattice) of the sampling snapshots",
            "snapshots": len(snapshots), "snapshots_with_defects": len(with_defects),
            "n_train": len(train), "n_test": len(test), "histogram": report["histogram"],
            "per_snapshot": per_snapshot, "members": [{"seed": seed + n, "rmse": m.rmse} for n, m in enumerate(models)],
        }))
