"""Artifacts: the typed store and load (:mod:`schemas.artifacts`) and the plain-document reads of the kinds
that have no model."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from core.access.base import count_rows
from core.models import Artifact
from schemas.artifacts import ArtifactModel

A = TypeVar("A", bound=ArtifactModel)


def _put_artifact(session: Session, campaign_id: int, kind: str, name: str, data: dict) -> None:
    """Create or replace the (kind, name) artifact of a campaign from a plain document."""
    artifact = session.scalars(
        select(Artifact).where(Artifact.campaign_id == campaign_id, Artifact.kind == kind, Artifact.name == name)
    ).one_or_none()
    if artifact is None:
        session.add(Artifact(campaign_id=campaign_id, kind=kind, name=name, data=data))
    else:
        artifact.data = data


def store_artifact(session: Session, campaign_id: int, name: str, model: ArtifactModel) -> None:
    """Create or replace the artifact ``name`` of the model's kind."""
    _put_artifact(session, campaign_id, model.KIND, name, model.model_dump(mode="json"))


def load_artifact(session: Session, campaign_id: int, model: type[A], name: str) -> A | None:
    """The artifact ``name`` of ``model``'s kind, validated; None when there is none."""
    data = session.scalars(select(Artifact.data).where(
        Artifact.campaign_id == campaign_id, Artifact.kind == model.KIND, Artifact.name == name)).one_or_none()
    return None if data is None else model.model_validate(data)


def load_artifacts(session: Session, campaign_id: int, model: type[A], prefix: str = "") -> list[tuple[str, A]]:
    """(name, artifact) of every artifact of ``model``'s kind whose name starts with ``prefix``, by name."""
    rows = session.execute(select(Artifact.name, Artifact.data).where(
        Artifact.campaign_id == campaign_id, Artifact.kind == model.KIND, Artifact.name.startswith(prefix))
        .order_by(Artifact.name)).all()
    return [(name, model.model_validate(data)) for name, data in rows]


def get_artifact_data(session: Session, campaign_id: int, kind: str, name: str) -> dict[str, Any]:
    """The plain document of the (kind, name) artifact; NoResultFound when there is none."""
    return session.scalars(select(Artifact.data).where(
        Artifact.campaign_id == campaign_id, Artifact.kind == kind, Artifact.name == name)).one()


def artifact_names(session: Session, campaign_id: int, kind: str) -> list[str]:
    """The names of the artifacts of ``kind``, in the order they were stored."""
    return list(session.scalars(
        select(Artifact.name).where(Artifact.campaign_id == campaign_id, Artifact.kind == kind).order_by(Artifact.id)
    ))


def delete_artifacts(session: Session, campaign_id: int, kind: str, names: Sequence[str]) -> None:
    """Delete the artifacts of ``kind`` among ``names``."""
    session.execute(delete(Artifact).where(Artifact.campaign_id == campaign_id, Artifact.kind == kind,
                                           Artifact.name.in_(names)))


def list_artifacts(session: Session, campaign_id: int, kind: str, offset: int,
                   limit: int) -> tuple[Sequence[Artifact], int]:
    """(a page of the artifacts of ``kind`` by name, how many there are)."""
    query = select(Artifact).where(Artifact.campaign_id == campaign_id, Artifact.kind == kind)
    count = count_rows(session, query)
    return session.scalars(query.order_by(Artifact.name).offset(offset).limit(limit)).all(), count
