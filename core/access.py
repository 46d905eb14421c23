"""Data access shared by the API, the dashboard and the stage runners: structures and typed artifacts.

Artifacts are stored and loaded by their model (:mod:`schemas.artifacts`): ``store_artifact`` takes the
model, ``load_artifact`` / ``load_artifacts`` return it validated, so no caller spells a kind or reads a
document with ``.get()``. The functions take the caller's session and never commit.
"""

from __future__ import annotations

from typing import TypeVar

from ase import Atoms
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.models import Artifact, Structure
from core.storage import StructureStore
from schemas.artifacts import ArtifactModel

A = TypeVar("A", bound=ArtifactModel)


def put_artifact(session: Session, campaign_id: int, kind: str, name: str, data: dict) -> None:
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
    put_artifact(session, campaign_id, model.KIND, name, model.model_dump(mode="json"))


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


def put_structure(session: Session, store: StructureStore, campaign_id: int, atoms: Atoms, *, stage: str,
                  source: str, parent_id: int | None = None, info: dict | None = None,
                  energy: float | None = None) -> int:
    """Insert a structure unless this source is stored already (a re-delivered task); return its id."""
    existing = session.scalars(
        select(Structure.id).where(Structure.campaign_id == campaign_id, Structure.source == source)
    ).one_or_none()
    if existing is not None:
        return existing
    sha256, path = store.put(atoms)
    structure = Structure(
        campaign_id=campaign_id, sha256=sha256, path=path, stage=stage, source=source, parent_id=parent_id,
        formula=atoms.get_chemical_formula(), n_atoms=len(atoms), pbc=[bool(p) for p in atoms.pbc],
        cell=atoms.cell.array.tolist(), energy=energy, info=info or {},
    )
    session.add(structure)
    session.flush()
    return structure.id


def stored_structures(session: Session, store: StructureStore, campaign_id: int, stage: str) -> list[Atoms]:
    """Every structure of one stage of a campaign, in insertion order."""
    paths = session.scalars(
        select(Structure.path).where(Structure.campaign_id == campaign_id, Structure.stage == stage)
        .order_by(Structure.id)
    )
    return [store.read(path) for path in paths]
