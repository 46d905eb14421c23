"""Labelling stage: every reconstructed periodic cell gets a DFT label through the job ledger.

The ledger is the ``labels`` table, one row per (structure hash, settings hash) shared by all
campaigns: a label that succeeded is never computed again, whichever campaign or delivery asks.
A job that fails is retried as its failure class allows (labelling.failures); when it fails for
good its row says why and the campaign goes on: the work item itself succeeds, since its job
(bringing the ledger row to a final state) is done.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from sqlalchemy import Row
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core import access
from core.access import store_artifact
from core.models import Label
from core.session import session_scope
from core.settings import LaunchProfile, get_settings
from core.storage import StructureStore
from labelling import (
    DFTSettings,
    JobRecord,
    JobState,
    LabelError,
    SlurmLauncher,
    job_key,
    label,
    profile,
    reference_options,
    resolve_reference,
)
from labelling.ledger import on_failure, on_resume, on_submitted, on_success
from labelling.reference import ReferencePotential
from labelling.result import write_json_atomic
from labelling.settings import REFERENCE_ENGINES
from mlip import ExportError, check_labelled
from schemas import CampaignSpec
from schemas.artifacts import LabellingPlan
from schemas.names import StructureKind
from workers.stages.common import PlannedItem, load_item, named_launch_profile, read_training_set, resolve_upload

log = logging.getLogger(__name__)

LABEL_FILE = "label.json"  # the stored label (energy, forces, stress) inside the job directory
INPUT_ERROR = "input_error"  # the job's inputs cannot be written (missing POTCAR, pseudopotential): no retry


def launch_profile(spec: CampaignSpec) -> LaunchProfile:
    """The operator's launch profile the spec's labelling names (an empty one when it names none)."""
    return named_launch_profile(spec.labelling.launch_profile, "labelling.launch_profile")


def dft_settings(spec: CampaignSpec) -> DFTSettings:
    """The campaign's labelling settings: the profile, the launch profile's command and pseudo_dir, then the
    spec's own overrides (the command line may set command and pseudo_dir; the API refuses them)."""
    params = spec.labelling
    launch = launch_profile(spec)
    changes: dict = {}
    if params.cutoff_ev is not None:
        changes["ecut"] = params.cutoff_ev
    if params.kpoint_density is not None:
        changes["kspacing"] = params.kpoint_density
    pseudo_dir = params.pseudo_dir or launch.pseudo_dir
    if pseudo_dir is not None:
        changes["pseudo_dir"] = pseudo_dir
    command = params.command or launch.command
    if command is not None:
        changes["command"] = tuple(command)
    if params.save_density:
        changes.update(save_density=True, density_kind=params.density_kind)
    if params.engine in REFERENCE_ENGINES:
        # its lines, files and SHA-256 go into the hashed settings, the files' paths on this machine into the
        # unhashed reference_paths
        changes.update(reference_options(labelling_reference(spec)))
    return profile(params.profile, params.engine, **changes)


def labelling_reference(spec: CampaignSpec) -> ReferencePotential:
    """The potential engine lammps labels with: labelling.reference, else the campaign's own potential (also for
    eam, the deprecated alias); a ReferencePotentialError names the field."""
    if spec.labelling.reference is not None:
        return resolve_reference(spec.labelling.reference, list(spec.species), field="labelling.reference",
                                 resolve_upload=resolve_upload)
    return resolve_reference(spec.potential, list(spec.species), field="potential", resolve_upload=resolve_upload)


def launcher_for(spec: CampaignSpec) -> SlurmLauncher | None:
    """None runs jobs as local subprocesses (the backend's default launcher)."""
    if spec.labelling.launcher == "slurm":
        launch = launch_profile(spec)
        slurm = spec.labelling.slurm.model_dump()
        slurm["modules"] = [*launch.modules, *slurm["modules"]]
        slurm["extra_lines"] = [*launch.extra_lines, *slurm["extra_lines"]]
        return SlurmLauncher(**slurm)
    return None


def _users_basic_set(spec: CampaignSpec) -> list[Atoms] | None:
    """The user's dataset B file as it is (None when B is generated)."""
    if not spec.selection.training_set:
        return None
    return read_training_set(spec.selection.training_set)


def _campaign_labels(spec: CampaignSpec, users_set: list[Atoms] | None) -> bool:
    """Whether the campaign labels dataset B itself: refinement or the study trains on B, and B has no labels
    of its own (generated, or a file of bare geometries); a labelled file of the user's is used as it is."""
    if spec.refinement is None and spec.study is None:
        return False
    if users_set is None:
        return True
    try:
        check_labelled(users_set)
    except ExportError:
        return True
    return False


def basic_set_labelled_by_campaign(spec: CampaignSpec) -> bool:
    return (spec.refinement is not None or spec.study is not None) and _campaign_labels(spec, _users_basic_set(spec))


def plan_labels(session: Session, campaign_id: int, spec: CampaignSpec) -> list[PlannedItem]:
    """One item per periodic cell (and per B structure when the campaign labels B; with a study, per vacuum
    cluster of C and per validation configuration), at most budget.max_dft_jobs in that order (the rest are
    reported, not run)."""
    def stored(stage: str) -> list[Row[int, str]]:
        return list(access.structure_sources(session, campaign_id, stage))

    cells = stored(StructureKind.PERIODIC)
    basic = stored(StructureKind.BASIC) if basic_set_labelled_by_campaign(spec) else []
    clusters = stored(StructureKind.CLUSTER_VACUUM) if spec.study is not None else []
    validation = stored(StructureKind.VALIDATION) if spec.study is not None else []
    jobs = cells + basic + clusters + validation
    cap = spec.budget.max_dft_jobs
    plan = {"cells": len(cells), "basic": len(basic), "clusters": len(clusters), "validation": len(validation),
            "planned": min(len(jobs), cap),
            "over_budget": max(0, len(jobs) - cap), "engine": spec.labelling.engine, "dft": True}
    if spec.labelling.engine in REFERENCE_ENGINES:  # recorded: these labels come from a potential, not DFT
        record = dft_settings(spec).engine_options["reference"]
        plan.update(dft=False, reference=record["name"], reference_files=record["files"])
    store_artifact(session, campaign_id, "plan", LabellingPlan.model_validate(plan))
    return [
        PlannedItem(key=f"{source}/label", params={"structure_id": structure_id}, progress_total=1)
        for structure_id, source in jobs[:cap]
    ]


def job_directory(structure_hash: str, settings_hash: str) -> Path:
    """Where a label's job runs and its result stays (shared by campaigns, like the ledger row)."""
    return get_settings().data_dir / "labels" / f"{structure_hash[:16]}-{settings_hash[:12]}"


def _record(row: Label) -> JobRecord:
    return JobRecord(
        structure_hash=row.structure_hash, settings_hash=row.settings_sha256, settings=dict(row.settings),
        state=JobState(row.state), attempts=row.attempts, failure=row.failure, failures=tuple(row.failures),
        job_id=row.job_id, result_hash=row.result_settings_sha256, message=row.error,
    )


def _save(label_id: int, record: JobRecord, **fields: object) -> None:
    with session_scope() as session:
        row = access.get_label(session, label_id, for_update=True)
        row.state, row.attempts, row.settings = record.state.value, record.attempts, record.settings
        row.failure, row.failures, row.job_id = record.failure, list(record.failures), record.job_id
        row.result_settings_sha256, row.error = record.result_hash, record.message
        for name, value in fields.items():
            setattr(row, name, value)


def _ledger_row(atoms: Atoms, settings: DFTSettings, structure_id: int) -> int:
    """The ledger row of this (structure, settings), created queued if new; its id."""
    structure_hash, settings_hash = job_key(atoms, settings)
    with session_scope() as session:
        existing = access.find_ledger_row(session, structure_hash, settings_hash)
        if existing is not None:
            return existing
    try:
        with session_scope() as session:
            row = Label(structure_hash=structure_hash, settings_sha256=settings_hash, structure_id=structure_id,
                        engine=settings.engine, settings=settings.to_dict(), state=JobState.QUEUED.value,
                        n_atoms=len(atoms))
            session.add(row)
            session.flush()
            return row.id
    except IntegrityError:  # another worker created it between our look and our insert
        with session_scope() as session:
            return access.get_ledger_row(session, structure_hash, settings_hash)


def _slurm_job_alive(launcher: SlurmLauncher | None, workdir: Path) -> bool:
    """A job a killed worker submitted may still run on the cluster: then wait for it, never resubmit."""
    marker = workdir / "slurm_job_id"
    if launcher is None or not marker.is_file():
        return False
    status = launcher.status(marker.read_text().strip())
    return status.ledger_state != "finished" and status.state != "UNKNOWN"


def label_structure(item_id: int) -> None:
    """Bring the ledger row of one periodic cell to succeeded or failed; link it to the structure."""
    _campaign_id, spec, params = load_item(item_id)
    structure_id = int(params["structure_id"])
    store = StructureStore(get_settings().data_dir)
    with session_scope() as session:
        atoms = store.read(access.get_structure(session, structure_id).path)
    settings = dft_settings(spec)
    launcher = launcher_for(spec)
    label_id = _ledger_row(atoms, settings, structure_id)
    with session_scope() as session:
        record = _record(access.get_label(session, label_id))
    workdir = job_directory(record.structure_hash, record.settings_hash)
    if (launcher is not None and record.state in (JobState.SUBMITTED, JobState.RUNNING)
            and _slurm_job_alive(launcher, workdir)):
        launcher.wait((workdir / "slurm_job_id").read_text().strip())  # then label() below reuses its result
        record = dataclasses.replace(record, state=JobState.QUEUED)
    record = on_resume(record)  # a job left submitted by a dead worker is queued again; finished ones stay
    while record.state == JobState.QUEUED:
        record = on_submitted(record)
        _save(label_id, record)
        attempt = DFTSettings.from_dict(record.settings)
        try:
            # reuse: a result a dead worker's job left in the directory is parsed, not recomputed
            result = label(atoms, attempt, workdir, launcher, reuse=True)
        except LabelError as error:
            record = on_failure(record, error.failure, str(error))
            log.warning("label %s attempt %d: %s", label_id, record.attempts, error)
            _save(label_id, record)
            continue
        except (ValueError, OSError) as error:  # inputs cannot be written (e.g. POTCAR missing): no retry
            record = dataclasses.replace(
                record, state=JobState.FAILED, failure=INPUT_ERROR, failures=(*record.failures, INPUT_ERROR),
                message=f"{type(error).__name__}: {error}", job_id=None,
            )
            _save(label_id, record)
            continue
        write_json_atomic(workdir / LABEL_FILE, result.to_dict())
        record = on_success(record, result.settings_hash)
        _save(label_id, record, energy=result.energy, engine_version=result.engine_version,
              wall_time=result.wall_time, path=str((workdir / LABEL_FILE).relative_to(get_settings().data_dir)))
    with session_scope() as session:
        structure = access.get_structure(session, structure_id)
        structure.label_id = label_id
        row = access.get_label(session, label_id)
        if row.state == JobState.SUCCEEDED.value:
            structure.energy = row.energy


def read_label(relative_path: str) -> dict:
    """A stored label (energy eV, forces eV/A, stress eV/A^3 Voigt) from its path in the data directory."""
    return json.loads((get_settings().data_dir / relative_path).read_text())


def labelled_structures(session: Session, campaign_id: int, stage: str, source_prefix: str = "") -> list[Atoms]:
    """The structures of one stage (whose source starts with ``source_prefix``) whose label succeeded, in
    storage order, each carrying its label (SinglePointCalculator: energy, forces, stress) and ``info``
    source and label_engine."""
    store = StructureStore(get_settings().data_dir)
    rows = access.labelled_structure_rows(session, campaign_id, stage, source_prefix)
    images = []
    for structure_path, source, label_path, engine, version in rows:
        atoms = store.read(structure_path)
        assert label_path is not None, "a succeeded label has its result file"
        stored = read_label(label_path)
        results = {"energy": stored["energy"], "free_energy": stored["energy"], "forces": np.array(stored["forces"])}
        if stored.get("stress") is not None:
            results["stress"] = np.array(stored["stress"])
        atoms.calc = SinglePointCalculator(atoms, **results)
        efs_by = (stored.get("extra") or {}).get("efs_by")  # reference potentials: lammps:<name>
        atoms.info.update(source=source, label_engine=efs_by or f"{engine} {version}".strip())
        images.append(atoms)
    return images


def label_directories(session: Session, campaign_id: int, stage: str) -> list[tuple[str, Path]]:
    """(source, the label's directory: result.json, density.npz when saved) of the structures of one stage whose
    label succeeded, in storage order (labelled_structures' order)."""
    data_dir = get_settings().data_dir
    return [(source, (data_dir / label_path).parent)
            for _path, source, label_path, _engine, _version in access.labelled_structure_rows(session, campaign_id,
                                                                                             stage)
            if label_path is not None]


def labelled_basic_set(session: Session, campaign_id: int, spec: CampaignSpec) -> list[Atoms]:
    """Dataset B with labels: as the campaign labelled it (basic_set_labelled_by_campaign), else the
    user's file as it is (which may lack labels: the training and export checks say so); the file is
    read once."""
    users_set = _users_basic_set(spec)
    if _campaign_labels(spec, users_set):
        return labelled_structures(session, campaign_id, StructureKind.BASIC)
    if users_set is None:
        raise ValueError("selection.training_set: dataset B was generated and has no labels")
    return users_set
