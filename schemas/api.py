"""Public (response) models of the REST API; the create model is CampaignSpec."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import PurePath
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from schemas.study import StudyModel, StudyReport

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    data: list[T]
    count: int = Field(description="total number of rows matching the query, not only this page")


class CampaignCreated(BaseModel):
    id: int
    status: str


class WorkItemPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    key: str
    queue: str
    status: str
    attempts: int
    error: str | None
    progress_done: int
    progress_total: int
    started_at: datetime | None
    heartbeat_at: datetime | None
    finished_at: datetime | None


class StagePublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    stage: str
    status: str
    attempts: int
    error: str | None
    progress_done: int
    progress_total: int
    started_at: datetime | None
    finished_at: datetime | None
    items: list[WorkItemPublic]


class CampaignSummaryPublic(BaseModel):
    snapshots: int = Field(description="stored sampling snapshots")
    atoms: int = Field(description="atoms summed over the snapshots")
    defect_atoms: int = Field(description="atoms not in the perfect lattice, summed over the snapshots")
    structure_types: dict[str, int] = Field(description="atoms per CNA structure type, summed over the snapshots")
    periodic_cells: int = Field(description="clusters reconstructed into periodic cells by PCC-GCMC")
    labels: dict[str, int] = Field(description="periodic cells per label state (queued ... succeeded, failed)")


class CampaignListItem(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    element: str
    status: str
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None


class CampaignPublic(CampaignListItem):
    error: str | None
    spec: dict[str, Any]
    stages: list[StagePublic]
    summary: CampaignSummaryPublic


class StructurePublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    sha256: str
    stage: str
    source: str
    parent_id: int | None
    formula: str
    n_atoms: int
    pbc: list[bool]
    cell: list[list[float]] = Field(description="3x3 cell, A")
    energy: float | None = Field(description="eV, from the producing engine")
    n_candidates: int = Field(description="atoms not in the perfect lattice")
    info: dict[str, Any]
    created_at: datetime


class RmsePublic(BaseModel):
    energy_mev_per_atom: float = Field(description="energy RMSE, meV/atom")
    forces_mev_per_A: float = Field(description="force RMSE per Cartesian component, meV/A")
    forces_norm_mev_per_A: float = Field(description="force RMSE per atom (|dF|), meV/A")
    n_configurations: int
    n_atoms: int


class ModelErrors(BaseModel):
    train: RmsePublic
    test: RmsePublic | None = Field(description="None when no configuration was held out")


class TrainingPublic(BaseModel):
    model: str = Field("mtp", description="mtp or snap (refinement.training.model)")
    level: int | None = Field(description="MTP level (None for a SNAP)")
    n_train: int
    n_test: int
    rmse: ModelErrors
    engine: str
    wall_time_s: float
    iterations: int | None = Field(description="iterations of the nonlinear optimiser")


class OTFRunPublic(BaseModel):
    target: str
    steps_requested: int
    steps_done: int
    stopped: str = Field(description="completed, gamma_break or unstable")
    snapshot_steps: list[int] = Field(description="MD steps of the graded snapshots")
    gamma_max: list[float] = Field(description="largest extrapolation grade of each graded snapshot")
    n_candidates: int = Field(description="atoms above gamma_select, summed over the snapshots")
    md_engine: str = Field("ase", description="where the MD ran: ase (an MTP through motep's calculator) or lammps "
                                              "(a SNAP, graded inside LAMMPS)")


class OTFIterationPublic(BaseModel):
    index: int
    runs: list[OTFRunPublic]
    n_candidates: int = Field(description="atoms above gamma_select over every run")
    n_selected: int = Field(description="environments chosen by D-optimality")
    n_added: int = Field(description="labelled periodic cells added to the training set")
    added: list[dict[str, Any]] = Field(description="per added cell: source, n_atoms, energy_per_atom (the "
                                                    "label's, eV/atom), gamma of its centre atom")
    structure_ids: list[int] = Field(description="the added cells (stage otf), in the order of added")
    n_labels: int = Field(0, description="label (DFT) jobs started, counted against budget.max_dft_jobs")
    failures: list[dict[str, Any]] = Field(description="reconstructions or labels that failed, with the reason")
    retrained: bool
    rmse: ModelErrors | None = Field(description="the retrained model's errors; None when nothing was added")
    gamma_max: float = Field(description="largest gamma_max over the iteration's snapshots")
    wall_time_s: float
    stopped: str | None = Field(None, description="why the loop stopped after this iteration (converged, "
                                "nothing_added, max_iterations, budget); None: the next iteration followed")


class SigmaHistogram(BaseModel):
    edges: list[float] = Field(description="log-spaced bin edges, eV/A")
    counts: list[int] = Field(description="atoms per bin; below the first edge in the first, above the last in the "
                                          "last")
    n: int = Field(description="atoms counted")
    below: int
    above: int
    sigma_max: float | None = Field(description="eV/A")
    sigma_mean: float | None = Field(description="eV/A")


class EnsemblePublic(BaseModel):
    k: int = Field(description="MTPs in the committee")
    seeds: list[int]
    counted: str = Field(description="which atoms the histogram counts")
    n_train: int
    n_test: int
    histogram: SigmaHistogram = Field(description="sigma_F (paper Eq. 1) of the counted atoms")
    per_snapshot: list[dict[str, Any]] = Field(description="per sampling snapshot: structure_id, source, n, "
                                                           "sigma_max, sigma_mean (eV/A)")
    members: list[dict[str, Any]] = Field(description="seed and train/test RMSE of every member")


class PotentialUploaded(BaseModel):
    reference: str = Field(description="value for the spec's `potential` field")
    filename: str
    elements: list[str]
    pair_style: str


class FileUploaded(BaseModel):
    reference: str = Field(description="value for a spec field that takes a file, e.g. selection.training_set")
    filename: str


class Health(BaseModel):
    database: str
    broker: str


# --------------------------------------------------------------------------- the validation study

# an absolute path as a word of a text (a LAMMPS line, a note): "/" at a word's start, not inside "B+P/B" or "meV/A"
_ABSOLUTE_PATH = re.compile(r"(?<![\w.:/~-])/(?:[^\s/'\"]+/)*([^\s/'\"]+)")
_FILE_FIELDS = ("model_path", "param_path", "record_path", "suite_path")


def file_names(text: str) -> str:
    """``text`` with every absolute path replaced by its file name: the server's directories are its own."""
    return _ABSOLUTE_PATH.sub(lambda match: match.group(1), text)


def _without_server_paths(value: Any, key: str | None = None) -> Any:
    """Every string of a JSON value through :func:`file_names`; the file fields reduced to their name even when
    stored relative (to the data directory)."""
    if isinstance(value, dict):
        return {k: _without_server_paths(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_server_paths(v) for v in value]
    if isinstance(value, str):
        return PurePath(value).name if key in _FILE_FIELDS else file_names(value)
    return value


class StudyModelPublic(StudyModel):
    model_path: str = Field(description=".snapcoeff file name (the server's directory is not shown)")
    param_path: str = Field(description=".snapparam file name")
    record_path: str = Field(description=".snapcoeff.json file name (the SnapModel record)")
    lammps: list[str] = Field(description="pair_style and pair_coeff commands that evaluate the model; files by "
                                          "name, next to the model file")


class ValidationPublic(StudyReport):
    """The campaign's B / B+C / B+P (/ +OTF) study (stage validation): every model's train/test RMSE and its errors
    on each scenario of the validation suite (energies meV/atom, forces meV/A), the defect-atom force RMSE ratios
    against B, and parity samples. Files are named, never located: no server directory appears."""

    reference_lammps: list[str] = Field(description="the reference's pair_style / pair_coeff commands, files by "
                                                    "name")
    suite_path: str | None = Field(None, description="file name of the labelled suite (extxyz), when written")
    models: list[StudyModelPublic]  # type: ignore[assignment]  # narrows StudyReport.models (pydantic validates it)

    @model_validator(mode="before")
    @classmethod
    def _names_only(cls, data: Any) -> Any:
        return _without_server_paths(data) if isinstance(data, dict) else data
