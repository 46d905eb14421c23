"""Public (response) models of the REST API; the create model is CampaignSpec."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

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
