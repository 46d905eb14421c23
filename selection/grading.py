"""D-optimality selection over configurations: grade every atom, select diverse environments.

Plain functions on ase.Atoms and numpy arrays, shared by the `grade` / `select` commands
and the campaign's selection stages.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, overload

import numpy as np
from ase import Atoms

from selection.bases import Basis
from selection.maxvol import (
    ActiveSet,
    SpeciesActiveSets,
    build_active_set,
    build_species_active_sets,
    grades,
    select_add,
    select_add_species,
)

GAMMA_LEVELS = (1.0, 2.0, 10.0)  # MLIP-3: interpolation, reliable extrapolation, risky


@overload
def training_active_set(basis: Basis, training: Sequence[Atoms], tolerance: float = 1.001, *,
                        per_species: Literal[False] = False) -> ActiveSet: ...


@overload
def training_active_set(basis: Basis, training: Sequence[Atoms], tolerance: float = 1.001, *,
                        per_species: Literal[True]) -> SpeciesActiveSets: ...


@overload
def training_active_set(basis: Basis, training: Sequence[Atoms], tolerance: float = 1.001, *,
                        per_species: bool) -> ActiveSet | SpeciesActiveSets: ...


def training_active_set(basis: Basis, training: Sequence[Atoms], tolerance: float = 1.001, *,
                        per_species: bool = False) -> ActiveSet | SpeciesActiveSets:
    """The MaxVol active set of every atom of the training configurations.

    ``per_species=True``: one active set per chemical species (MLIP-3 / pacemaker), the rows of each
    species' atoms forming their own MaxVol problem (:func:`selection.maxvol.build_species_active_sets`);
    ``owners[species]`` gives the (configuration, atom) of each member. With one species its set is
    identical to the single set of ``per_species=False``.
    """
    rows: list[np.ndarray] = []
    labels: list[str] = []
    symbols: list[str] = []
    owners: list[tuple[int, int]] = []
    for index, atoms in enumerate(training):
        rows.append(basis.rows(atoms))
        labels.extend(f"train-{index}:atom-{atom}" for atom in range(len(atoms)))
        if per_species:
            symbols.extend(atoms.get_chemical_symbols())
            owners.extend((index, atom) for atom in range(len(atoms)))
    if not per_species:
        return build_active_set(np.vstack(rows), tolerance=tolerance, labels=labels)
    sets = build_species_active_sets(np.vstack(rows), symbols, tolerance=tolerance, labels=labels)
    where = np.asarray(owners, dtype=np.int64).reshape(-1, 2)
    sets.owners = {name: where[aset.indices] for name, aset in sets.sets.items()}
    return sets


def grade_atoms(basis: Basis, active_set: ActiveSet | SpeciesActiveSets, atoms: Atoms) -> tuple[np.ndarray, np.ndarray]:
    """(rows, gamma) of every atom of one configuration; with per-species sets each atom is graded
    against the set of its own species."""
    rows = basis.rows(atoms)
    if isinstance(active_set, SpeciesActiveSets):
        return rows, active_set.grades(rows, atoms.get_chemical_symbols())
    return rows, grades(active_set, rows)


def gamma_summary(gamma: np.ndarray) -> dict[str, float]:
    """gamma_max and the fractions of atoms above the MLIP-3 levels 1, 2 and 10."""
    gamma = np.asarray(gamma, dtype=float)
    summary = {"n_atoms": int(gamma.size), "gamma_max": float(gamma.max()) if gamma.size else 0.0}
    for level in GAMMA_LEVELS:
        summary[f"fraction_above_{level:g}"] = float(np.mean(gamma > level)) if gamma.size else 0.0
    return summary


@dataclass(frozen=True)
class Selection:
    active_set: ActiveSet | SpeciesActiveSets
    chosen: list[tuple[int, int]]  # (configuration index, atom index), in the order they entered


def select_environments(
    active_set: ActiveSet | SpeciesActiveSets,
    rows: Sequence[np.ndarray],
    gamma: Sequence[np.ndarray],
    candidates: Sequence[np.ndarray] | None = None,
    *,
    gamma_select: float,
    max_new: int | None = None,
    species: Sequence[Sequence[str] | np.ndarray] | None = None,
) -> Selection:
    """Greedy MaxVol selection among candidate atoms of several configurations.

    ``rows[k]``/``gamma[k]``: per-atom rows and grades of configuration k; ``candidates[k]``
    a boolean mask of atoms that may be selected (default all). Only candidates above
    ``gamma_select`` are handed to select_add, which keeps the selection diverse. ``gamma_select`` has no
    default here: the campaign's is ``schemas.campaign.SelectionParams.gamma_select``. Per-species active
    sets need ``species[k]``, the symbol of each row of configuration k: each species' candidates enter
    its own set (:func:`selection.maxvol.select_add_species`, max_new shared over the species).
    """
    if isinstance(active_set, SpeciesActiveSets) and species is None:
        raise ValueError("species: per-species active sets need the species of every row")
    pool_rows, owners, pool_species = [], [], []
    for k, (config_rows, config_gamma) in enumerate(zip(rows, gamma, strict=True)):
        mask = config_gamma > gamma_select
        if candidates is not None:
            mask &= np.asarray(candidates[k], dtype=bool)
        for atom in np.flatnonzero(mask):
            owners.append((k, int(atom)))
        pool_rows.append(config_rows[mask])
        if species is not None:
            pool_species.append(np.asarray(species[k], dtype=str)[mask])
    if not owners:
        return Selection(active_set, [])
    if isinstance(active_set, SpeciesActiveSets):
        updated_sets, picked = select_add_species(
            active_set, np.vstack(pool_rows), np.concatenate(pool_species), gamma_select=gamma_select,
            max_new=max_new, labels=[f"config-{k}:atom-{a}" for k, a in owners])
        return Selection(updated_sets, [owners[int(i)] for i in picked])
    updated, picked = select_add(
        active_set,
        np.vstack(pool_rows),
        gamma_select=gamma_select,
        max_new=max_new,
        labels=[f"config-{k}:atom-{a}" for k, a in owners],
    )
    return Selection(updated, [owners[int(i)] for i in picked])


def gamma_against_training_sets(
    basis: Basis,
    training_sets: Mapping[str, Sequence[Atoms]],
    graded_rows: np.ndarray,
    tolerance: float = 1.001,
    graded_species: Sequence[str] | np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """gamma of the ``graded_rows`` (n x m, e.g. a campaign's candidate environments) against the
    MaxVol active set of each named training set, e.g. ``{"B": basic, "B+C": basic + clusters,
    "B+P": basic + periodic cells}`` (the paper's Fig. 4e-f comparison).

    One fixed basis for every set (MLIP-3's ``calc-grade`` with one potential), so the sets differ only
    in the environments they hold, not in refitted radial functions. Rows of a configuration shared by
    several sets are computed once. With ``graded_species`` (the symbol of each graded row) every set is
    one active set per species and each row is graded against its own species' set.
    """
    cache: dict[int, np.ndarray] = {}

    def rows_of(atoms: Atoms) -> np.ndarray:
        if id(atoms) not in cache:
            cache[id(atoms)] = basis.rows(atoms)
        return cache[id(atoms)]

    graded_rows = np.asarray(graded_rows, dtype=float)
    out = {}
    for name, images in training_sets.items():
        if not images:
            raise ValueError(f"training set {name!r} is empty")
        rows = np.vstack([rows_of(atoms) for atoms in images])
        if graded_species is None:
            out[name] = grades(build_active_set(rows, tolerance=tolerance), graded_rows) if len(graded_rows) \
                else np.zeros(0)
            continue
        symbols = [symbol for atoms in images for symbol in atoms.get_chemical_symbols()]
        species_sets = build_species_active_sets(rows, symbols, tolerance=tolerance)
        out[name] = species_sets.grades(graded_rows, graded_species) if len(graded_rows) else np.zeros(0)
    return out
