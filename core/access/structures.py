"""Structures and their environment rows (the graded candidate atoms)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any, cast

import numpy as np
import psycopg
from ase import Atoms
from psycopg import sql
from sqlalchemy import ARRAY, Float, Integer, Row, Select, Table, bindparam, case, func, insert, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from core.access.base import count_rows
from core.models import Campaign, Environment, Structure
from core.storage import StructureStore


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


def get_structure(session: Session, structure_id: int) -> Structure:
    """The structure; NoResultFound when there is none."""
    return session.get_one(Structure, structure_id)


def get_structure_for_owner(session: Session, structure_id: int,
                            owner_id: int) -> tuple[Structure, Campaign] | None:
    """(the structure, its campaign) if the campaign belongs to ``owner_id``; another user's structure is None,
    as a missing one."""
    structure = session.get(Structure, structure_id)
    campaign = session.get(Campaign, structure.campaign_id) if structure else None
    if structure is None or campaign is None or campaign.owner_id != owner_id:
        return None
    return structure, campaign


def list_structures(session: Session, campaign_id: int, stage: str | None, offset: int,
                    limit: int) -> tuple[Sequence[Structure], int]:
    """(a page of the campaign's structures, of one stage when given, by id; how many there are)."""
    query = select(Structure).where(Structure.campaign_id == campaign_id)
    if stage is not None:
        query = query.where(Structure.stage == stage)
    count = count_rows(session, query)
    return session.scalars(query.order_by(Structure.id).offset(offset).limit(limit)).all(), count


def structure_sources(session: Session, campaign_id: int, stage: str,
                      prefix: str | None = None) -> Sequence[Row[int, str]]:
    """(id, source) of the structures of one stage (whose source starts with ``prefix``), by id."""
    query = select(Structure.id, Structure.source).where(Structure.campaign_id == campaign_id, Structure.stage == stage)
    if prefix is not None:
        query = query.where(Structure.source.startswith(prefix))
    return session.execute(query.order_by(Structure.id)).all()


def structure_files(session: Session, campaign_id: int, stage: str) -> Sequence[Row[int, str, str]]:
    """(id, path, source) of the structures of one stage, by id."""
    return session.execute(
        select(Structure.id, Structure.path, Structure.source)
        .where(Structure.campaign_id == campaign_id, Structure.stage == stage).order_by(Structure.id)
    ).all()


def source_names(session: Session, campaign_id: int, stage: str) -> set[str]:
    """The sources of the structures of one stage."""
    return set(session.scalars(
        select(Structure.source).where(Structure.campaign_id == campaign_id, Structure.stage == stage)
    ))


def structure_counts_by_stage(session: Session, campaign_id: int) -> dict[str, int]:
    """stage -> structures of the campaign."""
    return dict(session.execute(
        select(Structure.stage, func.count(Structure.id)).where(Structure.campaign_id == campaign_id)
        .group_by(Structure.stage)
    ).all())


def environment_counts_by_type(session: Session, campaign_id: int, stage: str) -> dict[str, tuple[int, int]]:
    """structure type -> (candidate environments, selected ones) of one stage's structures."""
    selected = func.sum(case((Environment.selected, 1), else_=0))
    rows = session.execute(
        select(Environment.structure_type, func.count(Environment.id), func.coalesce(selected, 0)).join(Structure)
        .where(Structure.campaign_id == campaign_id, Structure.stage == stage).group_by(Environment.structure_type)
    ).all()
    return {str(kind): (int(total), int(chosen)) for kind, total, chosen in rows}


def formula_counts(session: Session, campaign_id: int, stage: str) -> dict[str, int]:
    """chemical formula -> structures of one stage (the compositions of the reconstructed cells)."""
    return {str(formula): int(count) for formula, count in session.execute(
        select(Structure.formula, func.count(Structure.id))
        .where(Structure.campaign_id == campaign_id, Structure.stage == stage).group_by(Structure.formula)
    ).all()}


def structure_counts_by_campaign(session: Session, campaign_ids: Sequence[int]) -> Sequence[Row[int, str, int]]:
    """(campaign id, stage, structures) of the campaigns."""
    return session.execute(
        select(Structure.campaign_id, Structure.stage, func.count(Structure.id))
        .where(Structure.campaign_id.in_(campaign_ids)).group_by(Structure.campaign_id, Structure.stage)
    ).all()


def count_structures(session: Session, campaign_id: int, stage: str) -> int:
    return session.scalar(
        select(func.count(Structure.id)).where(Structure.campaign_id == campaign_id, Structure.stage == stage)
    ) or 0


def stage_totals(session: Session, campaign_id: int, stage: str) -> Row[int, int, int]:
    """(structures, atoms summed, candidate atoms summed) of one stage of the campaign."""
    return session.execute(
        select(
            func.count(Structure.id),
            func.coalesce(func.sum(Structure.n_atoms), 0),
            func.coalesce(func.sum(Structure.n_candidates), 0),
        ).where(Structure.campaign_id == campaign_id, Structure.stage == stage)
    ).one()


def structure_gamma_max(session: Session, campaign_id: int, stage: str) -> Sequence[Row[int, str, float]]:
    """(id, source, info gamma_max) of the structures of one stage that have one, by id."""
    value = Structure.info["gamma_max"].as_float()
    return session.execute(
        select(Structure.id, Structure.source, value)
        .where(Structure.campaign_id == campaign_id, Structure.stage == stage, value.is_not(None))
        .order_by(Structure.id)
    ).all()


def structure_rows(session: Session, campaign_id: int, stage: str | None, offset: int,
                   limit: int) -> Sequence[Row[int, str, str, int, int, float, int | None, str]]:
    """A page, by id, of (id, stage, source, n_atoms, n_candidates, info gamma_max, label id, formula) of the
    campaign's structures, of one stage when given."""
    query = select(Structure.id, Structure.stage, Structure.source, Structure.n_atoms, Structure.n_candidates,
                   Structure.info["gamma_max"].as_float(), Structure.label_id, Structure.formula,
                   ).where(Structure.campaign_id == campaign_id)
    if stage:
        query = query.where(Structure.stage == stage)
    return session.execute(query.order_by(Structure.id).offset(offset).limit(limit)).all()


def campaign_of_structure(session: Session, structure_id: int) -> int | None:
    return session.scalar(select(Structure.campaign_id).where(Structure.id == structure_id))


# ---- environments (the graded candidate atoms of a structure)


def candidate_atoms(session: Session, structure_id: int) -> Sequence[int]:
    """Atom indices of the structure's environment rows."""
    return session.scalars(select(Environment.atom_index).where(Environment.structure_id == structure_id)).all()


def environment_gammas(session: Session, structure_id: int) -> Sequence[Row[int, float | None]]:
    """(atom index, gamma) of the structure's graded environments."""
    return session.execute(
        select(Environment.atom_index, Environment.gamma)
        .where(Environment.structure_id == structure_id, Environment.gamma.is_not(None))
    ).all()


def insert_environments(session: Session, structure_id: int, atom_indices: Iterable[int] | np.ndarray,
                        structure_types: Iterable[str]) -> None:
    """One environment row per (atom index, structure type name) of the structure, in one statement: COPY on
    PostgreSQL (an 82,000-atom snapshot has some 25,000 candidates), one executemany on SQLite. Inside the
    session's transaction; a row already there raises IntegrityError (and the transaction must roll back)."""
    indices = np.asarray(atom_indices, dtype=np.int64).reshape(-1).tolist()
    types = [str(name) for name in structure_types]
    if len(indices) != len(types):
        raise ValueError(f"insert_environments: {len(indices)} atom indices but {len(types)} structure types")
    if not indices:
        return
    if session.get_bind().dialect.name == "postgresql":
        _copy_environments(session, structure_id, indices, types)
        return
    table = cast(Table, Environment.__table__)  # Core: sqlite3's executemany, no ORM bookkeeping per row
    session.execute(insert(table), [{"structure_id": structure_id, "atom_index": index, "structure_type": kind,
                                     "selected": False} for index, kind in zip(indices, types)])


def _copy_environments(session: Session, structure_id: int, indices: list[int], types: list[str]) -> None:
    columns = ("structure_id", "atom_index", "structure_type", "selected")
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(Environment.__tablename__), sql.SQL(", ").join(map(sql.Identifier, columns)))
    # the psycopg connection under the session's own connection: the COPY is part of the session's transaction
    driver = session.connection().connection.driver_connection
    assert isinstance(driver, psycopg.Connection)
    try:
        with driver.cursor() as cursor, cursor.copy(statement) as copy:
            for index, kind in zip(indices, types):
                copy.write_row((structure_id, index, kind, False))
    except psycopg.Error as error:
        # as SQLAlchemy wraps driver errors: UniqueViolation -> sqlalchemy.exc.IntegrityError, and so on
        raise DBAPIError.instance(statement.as_string(driver), None, error, psycopg.Error) from error


def set_environment_gammas(session: Session, structure_id: int, atom_indices: Iterable[int] | np.ndarray,
                           gammas: Iterable[float] | np.ndarray) -> None:
    """gamma of the structure's environment rows of ``atom_indices``, in one statement (PostgreSQL: an UPDATE
    from unnest() of two arrays; SQLite: one executemany). Indices without a row change nothing."""
    indices = np.asarray(atom_indices, dtype=np.int64).reshape(-1).tolist()
    values = np.asarray(gammas, dtype=np.float64).reshape(-1).tolist()
    if len(indices) != len(values):
        raise ValueError(f"set_environment_gammas: {len(indices)} atom indices but {len(values)} gammas")
    if not indices:
        return
    if session.get_bind().dialect.name == "postgresql":
        pairs = func.unnest(bindparam("atom_indices", indices, type_=ARRAY(Integer)),
                            bindparam("gammas", values, type_=ARRAY(Float))
                            ).table_valued("atom_index", "gamma").render_derived()
        session.execute(
            update(Environment)
            .where(Environment.structure_id == structure_id, Environment.atom_index == pairs.c.atom_index)
            .values(gamma=pairs.c.gamma).execution_options(synchronize_session=False)
        )
        return
    table = cast(Table, Environment.__table__)  # Core executemany, not the ORM's bulk by primary key
    session.execute(
        update(table).where(table.c.structure_id == structure_id, table.c.atom_index == bindparam("b_atom_index"))
        .values(gamma=bindparam("b_gamma")),
        [{"b_atom_index": index, "b_gamma": gamma} for index, gamma in zip(indices, values)],
    )


def mark_environments_selected(session: Session, structure_id: int, atom_indices: Sequence[int]) -> None:
    session.execute(
        update(Environment)
        .where(Environment.structure_id == structure_id, Environment.atom_index.in_(atom_indices))
        .values(selected=True)
    )


def environments_of_stage(session: Session, campaign_id: int, stage: str) -> Sequence[Row[int, int]]:
    """(structure id, atom index) of the environment rows of one stage's structures."""
    return session.execute(
        select(Environment.structure_id, Environment.atom_index).join(Structure)
        .where(Structure.campaign_id == campaign_id, Structure.stage == stage)
    ).all()


def _graded_environments(campaign_id: int, selected_only: bool) -> Select[*tuple[Any, ...]]:
    where = [Structure.campaign_id == campaign_id, Environment.gamma.is_not(None)]
    if selected_only:
        where.append(Environment.selected.is_(True))
    return select().select_from(Environment).join(Structure, Environment.structure_id == Structure.id).where(*where)


def environment_gamma_bins(session: Session, campaign_id: int, selected_only: bool, first_edge: float,
                           per_decade: int) -> Sequence[Row[*tuple[Any, ...]]]:
    """(bin number, count, largest gamma) of the campaign's graded environments (the selected ones only when
    ``selected_only``) per bin floor(per_decade (log10 gamma - log10 first_edge)); gamma below ``first_edge``
    counts in bin 0. Needs log10 in the database (OperationalError without)."""
    gamma = Environment.gamma
    floored = case((gamma < first_edge, first_edge), else_=gamma)  # below the first edge: the first bin
    number = func.floor((func.log10(floored) - math.log10(first_edge)) * per_decade)
    return session.execute(_graded_environments(campaign_id, selected_only)
                           .add_columns(number.label("bin"), func.count(), func.max(gamma)).group_by(number)).all()


def environment_gamma_below(session: Session, campaign_id: int, selected_only: bool,
                            edges: Sequence[float]) -> Row[*tuple[Any, ...]]:
    """(count, largest gamma, then per edge the count below it) of the campaign's graded environments."""
    gamma = Environment.gamma
    below_edges = [func.sum(case((gamma < e, 1), else_=0)) for e in edges]
    return session.execute(_graded_environments(campaign_id, selected_only)
                           .add_columns(func.count(gamma), func.max(gamma), *below_edges)).one()
