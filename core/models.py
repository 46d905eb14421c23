"""SQLAlchemy 2 models. PostgreSQL in production, SQLite for the embedded default."""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware timestamps on both backends (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime; use timezone-aware UTC timestamps")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime, dict[str, Any]: JSON, list[Any]: JSON}


class Status(enum.StrEnum):
    pending = "pending"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"

    @property
    def finished(self) -> bool:
        return self in (Status.succeeded, Status.failed, Status.cancelled)


StatusColumn = Enum(Status, name="status", native_enum=False, length=16, validate_strings=True)


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ApiToken(Base):
    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    # Only the SHA-256 of the token is kept; the token itself is shown once.
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    label: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    user: Mapped[User] = relationship()


class Campaign(Base):
    __tablename__ = "campaigns"

    id: Mapped[int] = mapped_column(primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    element: Mapped[str] = mapped_column(String(3))
    spec: Mapped[dict[str, Any]]
    status: Mapped[Status] = mapped_column(StatusColumn, default=Status.pending)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    finished_at: Mapped[datetime | None]

    stages: Mapped[list[StageRun]] = relationship(
        back_populates="campaign", order_by="StageRun.position", cascade="all, delete-orphan"
    )


class StageRun(Base):
    """One stage of one campaign; its progress is the sum over its work items."""

    __tablename__ = "stage_runs"
    __table_args__ = (UniqueConstraint("campaign_id", "stage"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"), index=True)
    stage: Mapped[str] = mapped_column(String(32))
    position: Mapped[int] = mapped_column(Integer)
    status: Mapped[Status] = mapped_column(StatusColumn, default=Status.pending)
    attempts: Mapped[int] = mapped_column(default=0)
    error: Mapped[str | None] = mapped_column(Text)
    progress_done: Mapped[int] = mapped_column(default=0)
    progress_total: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]

    campaign: Mapped[Campaign] = relationship(back_populates="stages")
    items: Mapped[list[WorkItem]] = relationship(
        back_populates="stage_run", order_by="WorkItem.id", cascade="all, delete-orphan"
    )


class WorkItem(Base):
    """A unit a stage fans out to (one protocol, snapshot, cluster or DFT job): one task."""

    __tablename__ = "work_items"
    __table_args__ = (UniqueConstraint("stage_run_id", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    stage_run_id: Mapped[int] = mapped_column(ForeignKey("stage_runs.id", ondelete="CASCADE"), index=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"), index=True)
    key: Mapped[str] = mapped_column(String(200))
    task_name: Mapped[str] = mapped_column(String(100))
    queue: Mapped[str] = mapped_column(String(16))
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # indexed: the lease sweeper looks for running and pending items every few seconds
    status: Mapped[Status] = mapped_column(StatusColumn, default=Status.pending, index=True)
    attempts: Mapped[int] = mapped_column(default=0)
    error: Mapped[str | None] = mapped_column(Text)
    progress_done: Mapped[int] = mapped_column(default=0)
    progress_total: Mapped[int] = mapped_column(default=0)
    # what the item is doing between progress steps, e.g. "minimising: step 350, E = -70123.4 eV"
    progress_note: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    # The lease (workers/lease.py): the process that runs the item ("host:pid:token") renews heartbeat_at
    # every DG_LEASE_TIMEOUT/4 s; a lease older than DG_LEASE_TIMEOUT is lapsed and the item may be taken
    # over. For a pending item heartbeat_at is when it was last queued.
    lease_owner: Mapped[str | None] = mapped_column(String(200))
    heartbeat_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]

    stage_run: Mapped[StageRun] = relationship(back_populates="items")


class Structure(Base):
    """A configuration; its file is content-addressed by the SHA-256 of its bytes: canonical extxyz, or for a
    sampling snapshot the compact dg-snapshot file (formats.snapshot)."""

    __tablename__ = "structures"
    # `source` names the producer (e.g. "anneal-0/frame-3"): storing it twice is impossible,
    # which makes a re-delivered task harmless.
    __table_args__ = (
        UniqueConstraint("campaign_id", "source"),
        Index("ix_structures_campaign_id_stage", "campaign_id", "stage"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    path: Mapped[str] = mapped_column(String(300), doc="relative to the data directory")
    stage: Mapped[str] = mapped_column(String(32))
    source: Mapped[str] = mapped_column(String(300))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("structures.id", ondelete="SET NULL"))
    formula: Mapped[str] = mapped_column(String(100))
    n_atoms: Mapped[int]
    pbc: Mapped[list[Any]]
    cell: Mapped[list[Any]] = mapped_column(doc="3x3, A")
    energy: Mapped[float | None] = mapped_column(Float, doc="eV, from the producing engine")
    n_candidates: Mapped[int] = mapped_column(default=0, doc="atoms not in the perfect lattice")
    label_id: Mapped[int | None] = mapped_column(
        ForeignKey("labels.id", ondelete="SET NULL", use_alter=True), doc="the label under the campaign's settings"
    )
    info: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Environment(Base):
    """A local atomic environment: one atom of one structure."""

    __tablename__ = "environments"
    __table_args__ = (UniqueConstraint("structure_id", "atom_index"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    structure_id: Mapped[int] = mapped_column(ForeignKey("structures.id", ondelete="CASCADE"))
    atom_index: Mapped[int]
    structure_type: Mapped[str] = mapped_column(String(16), default="other")
    gamma: Mapped[float | None] = mapped_column(Float)
    selected: Mapped[bool] = mapped_column(Boolean, default=False)


class Label(Base):
    """The DFT (or reference) job ledger: one row per (structure hash, settings hash), shared by all
    campaigns, so the same calculation is never paid for twice.

    ``state``: queued -> submitted -> running -> succeeded | failed (labelling.ledger.JobState).
    ``settings`` are those of the next (or last) attempt, which a retry may change (stronger mixing,
    more smearing); ``settings_sha256`` is the key's hash of the settings first asked for.
    """

    __tablename__ = "labels"
    __table_args__ = (UniqueConstraint("structure_hash", "settings_sha256"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    structure_hash: Mapped[str] = mapped_column(String(64), doc="labelling.structure_hash of the geometry")
    settings_sha256: Mapped[str] = mapped_column(String(64))
    structure_id: Mapped[int | None] = mapped_column(
        ForeignKey("structures.id", ondelete="SET NULL"), doc="the structure that first asked for this label"
    )
    engine: Mapped[str] = mapped_column(String(32))
    engine_version: Mapped[str] = mapped_column(String(64), default="")
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    state: Mapped[str] = mapped_column(String(16), default="queued")
    attempts: Mapped[int] = mapped_column(default=0)
    failure: Mapped[str | None] = mapped_column(String(32), doc="failure class of the last failed attempt")
    failures: Mapped[list[Any]] = mapped_column(default=list)
    job_id: Mapped[str | None] = mapped_column(String(64), doc="Slurm job id or local process id")
    result_settings_sha256: Mapped[str | None] = mapped_column(String(64))
    energy: Mapped[float | None] = mapped_column(Float, doc="eV")
    n_atoms: Mapped[int] = mapped_column(default=0)
    wall_time: Mapped[float | None] = mapped_column(Float, doc="s")
    path: Mapped[str | None] = mapped_column(String(300),
                                             doc="result.json (energy, forces, stress), relative to the data directory")
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Artifact(Base):
    """Aggregated data for the dashboard (histograms, tables), stored as JSON."""

    __tablename__ = "artifacts"
    __table_args__ = (UniqueConstraint("campaign_id", "kind", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    data: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
