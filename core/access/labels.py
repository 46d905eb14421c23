"""Labels: the ledger rows and what the campaigns' structures made of them."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Row, Select, func, or_, select
from sqlalchemy.orm import Session

from core.access.base import count_rows
from core.models import Label, Structure


def find_label(session: Session, label_id: int, *, for_update: bool = False) -> Label | None:
    """The ledger row (under a row lock when ``for_update``)."""
    if for_update:
        return session.get(Label, label_id, with_for_update=True)
    return session.get(Label, label_id)


def get_label(session: Session, label_id: int, *, for_update: bool = False) -> Label:
    """The ledger row (under a row lock when ``for_update``); NoResultFound when there is none."""
    if for_update:
        return session.get_one(Label, label_id, with_for_update=True)
    return session.get_one(Label, label_id)


def _ledger_lookup(structure_hash: str, settings_hash: str) -> Select[int]:
    return select(Label.id).where(Label.structure_hash == structure_hash, Label.settings_sha256 == settings_hash)


def find_ledger_row(session: Session, structure_hash: str, settings_hash: str) -> int | None:
    """The id of the ledger row of this (structure, settings); None when there is none."""
    return session.scalars(_ledger_lookup(structure_hash, settings_hash)).one_or_none()


def get_ledger_row(session: Session, structure_hash: str, settings_hash: str) -> int:
    """The id of the ledger row of this (structure, settings); NoResultFound when there is none."""
    return session.scalars(_ledger_lookup(structure_hash, settings_hash)).one()


def cells_using_label(session: Session, campaign_id: int, label_id: int) -> set[int]:
    """The campaign's structures linked to the ledger row."""
    return set(session.scalars(
        select(Structure.id).where(Structure.campaign_id == campaign_id, Structure.label_id == label_id)
    ))


def _campaign_labels(campaign_id: int) -> Select[Label]:
    """Ledger rows of a campaign: linked to one of its structures, or first asked for by one."""
    structures = select(Structure.id).where(Structure.campaign_id == campaign_id)
    linked = select(Structure.label_id).where(Structure.campaign_id == campaign_id, Structure.label_id.is_not(None))
    return select(Label).where(or_(Label.id.in_(linked), Label.structure_id.in_(structures)))


def count_labels_of(session: Session, campaign_id: int) -> int:
    return count_rows(session, _campaign_labels(campaign_id))


def labels_of(session: Session, campaign_id: int, offset: int, limit: int) -> Sequence[Label]:
    """A page, by id, of the campaign's ledger rows (linked to one of its structures, or first asked for by one)."""
    return session.scalars(_campaign_labels(campaign_id).order_by(Label.id).offset(offset).limit(limit)).all()


def label_states_of(session: Session, campaign_id: int) -> dict[str, int]:
    """state -> ledger rows of the campaign (as ``labels_of``)."""
    query = _campaign_labels(campaign_id)
    return dict(session.execute(
        select(Label.state, func.count()).where(Label.id.in_(query.with_only_columns(Label.id)))
        .group_by(Label.state)
    ).all())


def label_states_by_campaign(session: Session, campaign_ids: Sequence[int]) -> Sequence[Row[int, str, int]]:
    """(campaign id, label state, structures) over the campaigns' structures that have a label."""
    return session.execute(
        select(Structure.campaign_id, Label.state, func.count(Label.id))
        .join(Label, Structure.label_id == Label.id)
        .where(Structure.campaign_id.in_(campaign_ids)).group_by(Structure.campaign_id, Label.state)
    ).all()


def label_states_of_stage(session: Session, campaign_id: int, stage: str) -> dict[str, int]:
    """label state -> structures of one stage of the campaign with a label in that state."""
    return dict(session.execute(
        select(Label.state, func.count(Structure.id)).join(Label, Structure.label_id == Label.id)
        .where(Structure.campaign_id == campaign_id, Structure.stage == stage).group_by(Label.state)
    ).all())


def labelled_structure_rows(session: Session, campaign_id: int, stage: str,
                            source_prefix: str = "") -> Sequence[Row[str, str, str | None, str, str]]:
    """(structure path, source, label path, engine, engine version) of the structures of one stage (source
    starting with ``source_prefix``) whose label succeeded, by id."""
    return session.execute(
        select(Structure.path, Structure.source, Label.path, Label.engine, Label.engine_version)
        .join(Label, Structure.label_id == Label.id)
        .where(Structure.campaign_id == campaign_id, Structure.stage == stage, Label.state == "succeeded",
               Structure.source.startswith(source_prefix))
        .order_by(Structure.id)
    ).all()


def label_outcomes(session: Session, campaign_id: int, stage: str,
                   source_prefix: str) -> Sequence[Row[str, str, int, str | None]]:
    """(source, label state, attempts, error) of the labelled structures of one stage (source starting with
    ``source_prefix``)."""
    return session.execute(
        select(Structure.source, Label.state, Label.attempts, Label.error)
        .join(Label, Structure.label_id == Label.id)
        .where(Structure.campaign_id == campaign_id, Structure.stage == stage,
               Structure.source.startswith(source_prefix))
    ).all()


def succeeded_structure_ids(session: Session, campaign_id: int, stage: str, source_prefix: str) -> list[int]:
    """Ids, in order, of the structures of one stage (source starting with ``source_prefix``) whose label
    succeeded."""
    return [sid for sid, in session.execute(
        select(Structure.id).join(Label, Structure.label_id == Label.id)
        .where(Structure.campaign_id == campaign_id, Structure.stage == stage,
               Label.state == "succeeded", Structure.source.startswith(source_prefix))
        .order_by(Structure.id))]
