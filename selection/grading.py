"""D-optimality selection over configurations: grade every atom, select diverse environments.

Plain functions on ase.Atoms and numpy arrays, shared by the `grade` / `select` commands
and the campaign's selection stages.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, overload

import numpy as np
from ase import Atoms

from selection.bases import Basis
from selection.maxvol import (
    ActiveSet,
    SpeciesActiveSets,
    _shares,
    build_active_set,
    build_species_active_sets,
    grades,
    log_histogram,
    merge_histograms,
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
    return rows, grade_rows(active_set, rows, atoms.get_chemical_symbols())


def grade_rows(active_set: ActiveSet | SpeciesActiveSets, rows: np.ndarray,
               species: Sequence[str] | np.ndarray | None = None) -> np.ndarray:
    """gamma of basis rows; with per-species sets ``species[i]`` names the set row i is graded against."""
    if isinstance(active_set, SpeciesActiveSets):
        if species is None:
            raise ValueError("species: per-species active sets need the species of every row")
        return active_set.grades(rows, species)
    return grades(active_set, rows)


def gamma_summary(gamma: np.ndarray) -> dict[str, float]:
    """gamma_max and the fractions of atoms above the MLIP-3 levels 1, 2 and 10."""
    gamma = np.asarray(gamma, dtype=float)
    summary = {"n_atoms": int(gamma.size), "gamma_max": float(gamma.max()) if gamma.size else 0.0}
    for level in GAMMA_LEVELS:
        summary[f"fraction_above_{level:g}"] = float(np.mean(gamma > level)) if gamma.size else 0.0
    return summary


@dataclass(frozen=True)
class Chunk:
    """Graded rows of one part of the data (e.g. one snapshot): what :func:`select_streaming` reads at a time.

    ``rows`` (n x m) and ``gamma`` (n, against the active set the selection starts from) of n environments;
    ``owners`` (n x 2 integers) names each row in the result, e.g. (snapshot index, atom index); ``species`` (n
    symbols) is needed with per-species active sets.
    """

    rows: np.ndarray
    gamma: np.ndarray
    owners: np.ndarray
    species: np.ndarray | None = None


@dataclass(frozen=True)
class Selection:
    active_set: ActiveSet | SpeciesActiveSets
    chosen: list[tuple[int, int]]  # owners of the chosen rows ((configuration, atom) index), in the order they entered
    rows: np.ndarray | None = None  # the chosen rows, in the order of chosen (None: nothing chosen)
    species: np.ndarray | None = None  # their species, with per-species active sets
    candidates: int = 0  # rows above gamma_select among all chunks
    largest_pool: int = 0  # most candidate rows held at once (at most pool_size plus one chunk)
    reductions: int = 0  # times the pool was reduced (0: the result is that of all candidates at once)


# A pool keeps this many rows per row the selection can return, so that a row made redundant by a later chunk's
# rows has alternatives; at least POOL_MIN rows, which keeps campaigns of a few thousand candidates exact.
POOL_PER_PICK = 10
POOL_MIN = 2000


def default_pool_size(active_set: ActiveSet | SpeciesActiveSets, max_new: int | None) -> int:
    """max(POOL_PER_PICK x the most rows a selection can return, POOL_MIN): a greedy selection returns at most
    ``max_new`` rows, and at most m per active set (the members it leaves in each m x m set)."""
    sets = active_set.sets.values() if isinstance(active_set, SpeciesActiveSets) else [active_set]
    picks = sum(aset.size for aset in sets)
    if max_new is not None:
        picks = min(picks, max_new)
    return max(POOL_PER_PICK * picks, POOL_MIN)


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
    """Greedy MaxVol selection among candidate atoms of several configurations held in memory.

    ``rows[k]``/``gamma[k]``: per-atom rows and grades of configuration k; ``candidates[k]``
    a boolean mask of atoms that may be selected (default all). Only candidates above
    ``gamma_select`` are handed to select_add, which keeps the selection diverse. ``gamma_select`` has no
    default here: the campaign's is ``schemas.campaign.SelectionParams.gamma_select``. Per-species active
    sets need ``species[k]``, the symbol of each row of configuration k: each species' candidates enter
    its own set (:func:`selection.maxvol.select_add_species`, max_new shared over the species).
    ``chosen`` holds (configuration, atom) pairs. :func:`select_streaming` with one chunk per configuration
    and no bound on the pool.
    """
    if isinstance(active_set, SpeciesActiveSets) and species is None:
        raise ValueError("species: per-species active sets need the species of every row")

    def chunks() -> Iterable[Chunk]:
        for k, (config_rows, config_gamma) in enumerate(zip(rows, gamma, strict=True)):
            config_gamma = np.asarray(config_gamma, dtype=float)
            where = np.arange(config_gamma.size) if candidates is None else np.flatnonzero(candidates[k])
            yield Chunk(np.asarray(config_rows, dtype=float)[where], config_gamma[where], _owners(k, where),
                        None if species is None else np.asarray(species[k], dtype=str)[where])

    return _select_pool(active_set, chunks(), gamma_select=gamma_select, max_new=max_new, pool_size=None)


def select_streaming(
    active_set: ActiveSet | SpeciesActiveSets,
    chunks: Iterable[Chunk],
    *,
    gamma_select: float,
    max_new: int | None = None,
    pool_size: int | None = None,
) -> Selection:
    """Greedy MaxVol selection over chunks read one at a time (e.g. one snapshot each): the rows held stay below
    ``pool_size`` plus one chunk, whatever the number of chunks.

    The rows of a chunk above ``gamma_select`` join a pool. When the pool holds more than ``pool_size`` rows it is
    reduced to half of that: the greedy MaxVol picks of the pool against the start set (select_add, at most m rows),
    then the rows of largest gamma against the set with those picks, the alternatives the picks span least
    (near-duplicates of a pick go first). Halving, not trimming to ``pool_size``, lets a reduction happen once per
    ``pool_size / 2`` new rows rather than at every chunk. Per-species sets reduce each species' rows against its
    own set, the pool shared out in proportion to the candidates of each species seen so far (and once more at the
    end), so max_new is shared over the species as among all candidates. The final greedy selection (select_add /
    select_add_species) runs on the pool.

    While the pool never overflows (``reductions == 0``) the result is that of :func:`select_environments` on all
    chunks at once: the same rows in the same order. After an overflow it is a greedy selection among the rows the
    reductions kept: each chosen row above gamma_select against the start set, at most ``max_new`` of them.
    ``pool_size`` defaults to :func:`default_pool_size`.
    """
    if pool_size is None:
        pool_size = default_pool_size(active_set, max_new)
    if pool_size < 1:
        raise ValueError(f"pool_size must be positive, got {pool_size}")
    return _select_pool(active_set, chunks, gamma_select=gamma_select, max_new=max_new, pool_size=pool_size)


def _select_pool(active_set: ActiveSet | SpeciesActiveSets, chunks: Iterable[Chunk], *, gamma_select: float,
                 max_new: int | None, pool_size: int | None) -> Selection:
    per_species = isinstance(active_set, SpeciesActiveSets)
    held: list[Chunk] = []
    n_held = candidates = largest = reductions = 0
    seen: dict[str, int] = {}  # candidates per species over every chunk: how the pool and max_new are shared out
    for chunk in chunks:
        part = _above(chunk, gamma_select, per_species)
        if part is None:
            continue
        held.append(part)
        n_held += part.gamma.size
        candidates += part.gamma.size
        largest = max(largest, n_held)
        if part.species is not None:
            for name, count in zip(*np.unique(part.species, return_counts=True)):
                seen[str(name)] = seen.get(str(name), 0) + int(count)
        if pool_size is not None and n_held > pool_size:
            pool = _joined(held)
            held.clear()  # the parts are in pool now; let them go before the reduction works
            held.append(_reduce(active_set, pool, max(pool_size // 2, 1), seen, gamma_select))
            n_held = held[0].gamma.size
            reductions += 1
    if not held:
        return Selection(active_set, [], candidates=candidates, largest_pool=largest, reductions=reductions)
    pool = _joined(held)
    held.clear()
    if per_species and pool_size is not None and reductions:
        # the chunks read since the last reduction went in whole: bring each species back to its share of all the
        # candidates seen (it has at least that many rows), which select_add_species then shares max_new by
        pool = _reduce(active_set, pool, max(pool_size // 2, 1), seen, gamma_select)
    labels = [f"config-{k}:atom-{a}" for k, a in pool.owners]
    updated: ActiveSet | SpeciesActiveSets
    if isinstance(active_set, SpeciesActiveSets):
        assert pool.species is not None  # _above refused chunks without species
        updated, picked = select_add_species(active_set, pool.rows, pool.species, gamma_select=gamma_select,
                                             max_new=max_new, labels=labels)
    else:
        updated, picked = select_add(active_set, pool.rows, gamma_select=gamma_select, max_new=max_new,
                                     labels=labels)
    return Selection(
        updated, [(int(k), int(a)) for k, a in pool.owners[picked]], rows=pool.rows[picked],
        species=None if pool.species is None else pool.species[picked], candidates=candidates,
        largest_pool=largest, reductions=reductions,
    )


def save_candidates(path: str | os.PathLike, atoms: Atoms, rows: np.ndarray, gamma: np.ndarray,
                    chosen: np.ndarray) -> None:
    """The ``.npz`` of one snapshot's candidates that :func:`saved_chunks` reads: the atom indices ``chosen``, their
    rows, gamma and species."""
    np.savez(path, atoms=chosen, rows=rows[chosen], gamma=gamma[chosen],
             species=np.array(atoms.get_chemical_symbols())[chosen])


# chunks_of(indices) yields the chunks of the snapshots with those indices, read one at a time
ChunksOf = Callable[[Sequence[int]], Iterable[Chunk]]


def saved_chunks(files: Sequence[str | os.PathLike], default_species: str | None = None) -> ChunksOf:
    """Snapshots' candidates read from their files when asked for: ``chunks_of(indices)`` yields, one file at a time,
    the :class:`Chunk` of ``files[k]`` for each k in indices, its owners (k, atom index).

    A file is the ``.npz`` of one snapshot's candidates the grading stage writes: ``atoms`` (their atom indices),
    ``rows``, ``gamma`` and ``species`` (a file without species gets ``default_species``).
    """
    def chunks_of(indices: Sequence[int]) -> Iterator[Chunk]:
        for k in indices:
            with np.load(files[k], allow_pickle=False) as saved:
                atoms = saved["atoms"]
                species = saved["species"] if "species" in saved.files else (
                    None if default_species is None else np.full(atoms.size, default_species))
                chunk = Chunk(saved["rows"], saved["gamma"], _owners(k, atoms), species)
            yield chunk

    return chunks_of


def _owners(k: int, atoms: np.ndarray) -> np.ndarray:
    """(k, atom) for every atom index: the owners of one configuration's rows."""
    atoms = np.asarray(atoms, dtype=np.int64).reshape(-1)
    return np.column_stack([np.full(atoms.size, k, dtype=np.int64), atoms])


def _above(chunk: Chunk, gamma_select: float, per_species: bool) -> Chunk | None:
    """The rows of a chunk above gamma_select (None if there are none)."""
    gamma = np.asarray(chunk.gamma, dtype=float).reshape(-1)
    owners = np.asarray(chunk.owners, dtype=np.int64).reshape(-1, 2)
    if per_species and chunk.species is None:
        raise ValueError("species: per-species active sets need the species of every row")
    if len(chunk.rows) != gamma.size or owners.shape[0] != gamma.size:
        raise ValueError(f"a chunk has {len(chunk.rows)} rows, {gamma.size} gammas and {owners.shape[0]} owners")
    where = np.flatnonzero(gamma > gamma_select)
    if not where.size:
        return None
    species = np.asarray(chunk.species, dtype=str).reshape(-1)[where] if per_species else None
    return Chunk(np.asarray(chunk.rows, dtype=float)[where], gamma[where], owners[where], species)


def _joined(parts: Sequence[Chunk]) -> Chunk:
    if len(parts) == 1:
        return parts[0]
    species = [p.species for p in parts if p.species is not None]
    return Chunk(np.vstack([p.rows for p in parts]), np.concatenate([p.gamma for p in parts]),
                 np.vstack([p.owners for p in parts]), np.concatenate(species) if len(species) == len(parts) else None)


def _take(chunk: Chunk, index: np.ndarray) -> Chunk:
    return Chunk(chunk.rows[index], chunk.gamma[index], chunk.owners[index],
                 None if chunk.species is None else chunk.species[index])


def _reduce(active_set: ActiveSet | SpeciesActiveSets, pool: Chunk, keep: int, seen: Mapping[str, int],
            gamma_select: float) -> Chunk:
    """At most ``keep`` rows of the pool, in pool order: per active set the greedy picks and the rows they span
    least."""
    if not isinstance(active_set, SpeciesActiveSets):
        return _take(pool, _kept(active_set, pool.rows, None, keep, gamma_select))
    assert pool.species is not None  # _above refused chunks without species
    kept = []
    for name, share in _shares(dict(seen), keep).items():
        where = np.flatnonzero(pool.species == name)
        if where.size and share:
            kept.append(where[_kept(active_set, pool.rows[where], pool.species[where], share, gamma_select)])
    return _take(pool, np.sort(np.concatenate(kept)) if kept else np.zeros(0, dtype=np.int64))


def _kept(active_set: ActiveSet | SpeciesActiveSets, rows: np.ndarray, species: np.ndarray | None, keep: int,
          gamma_select: float) -> np.ndarray:
    """Indices (increasing) of at most ``keep`` rows: the greedy picks against the start set, then the rows of largest
    gamma against the active set with those picks.

    One select_add keeps at most m rows (the members it leaves in the m x m set); the others are ranked by how far
    the picks leave them out, so near-duplicates of a pick (gamma ~ 1 once it entered) go first and rows of
    directions the picks do not span stay as alternatives for later chunks. One selection and one grading: a
    reduction costs about what the final selection on the pool does. (Picking layer after layer instead, each among
    the rows the earlier ones left, costs a selection per at most m rows kept: measured 15-70 times slower at a
    2000-row pool, for selections as good.)
    """
    if rows.shape[0] <= keep:
        return np.arange(rows.shape[0])
    updated: ActiveSet | SpeciesActiveSets
    if isinstance(active_set, SpeciesActiveSets):
        assert species is not None  # _above refused chunks without species
        updated, picked = select_add_species(active_set, rows, species, gamma_select, keep)
    else:
        updated, picked = select_add(active_set, rows, gamma_select, keep)
    gamma = grade_rows(updated, rows, species)
    gamma[picked] = np.inf
    return np.sort(np.argsort(-gamma, kind="stable")[:keep])


def training_sets_active_sets(
    basis: Basis,
    training_sets: Mapping[str, Sequence[Atoms]],
    tolerance: float = 1.001,
    per_species: bool = False,
) -> dict[str, ActiveSet | SpeciesActiveSets]:
    """The MaxVol active set of each named training set, e.g. ``{"B": basic, "B+C": basic + clusters,
    "B+P": basic + periodic cells}`` (the paper's Fig. 4e-f comparison); one per species with ``per_species``.

    One fixed basis for every set (MLIP-3's ``calc-grade`` with one potential), so the sets differ only
    in the environments they hold, not in refitted radial functions. Rows of a configuration shared by
    several sets are computed once.
    """
    cache: dict[int, np.ndarray] = {}

    def rows_of(atoms: Atoms) -> np.ndarray:
        if id(atoms) not in cache:
            cache[id(atoms)] = basis.rows(atoms)
        return cache[id(atoms)]

    out: dict[str, ActiveSet | SpeciesActiveSets] = {}
    for name, images in training_sets.items():
        if not images:
            raise ValueError(f"training set {name!r} is empty")
        rows = np.vstack([rows_of(atoms) for atoms in images])
        if not per_species:
            out[name] = build_active_set(rows, tolerance=tolerance)
            continue
        symbols = [symbol for atoms in images for symbol in atoms.get_chemical_symbols()]
        out[name] = build_species_active_sets(rows, symbols, tolerance=tolerance)
    return out


def gamma_against_training_sets(
    basis: Basis,
    training_sets: Mapping[str, Sequence[Atoms]],
    graded_rows: np.ndarray,
    tolerance: float = 1.001,
    graded_species: Sequence[str] | np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """gamma of the ``graded_rows`` (n x m, e.g. a campaign's candidate environments) against the
    active set of each named training set (:func:`training_sets_active_sets`). With ``graded_species`` (the symbol
    of each graded row) every set is one active set per species and each row is graded against its own species' set.
    """
    graded_rows = np.asarray(graded_rows, dtype=float)
    sets = training_sets_active_sets(basis, training_sets, tolerance, per_species=graded_species is not None)
    return {name: grade_rows(aset, graded_rows, graded_species) if len(graded_rows) else np.zeros(0)
            for name, aset in sets.items()}


def gamma_histograms_against_training_sets(
    basis: Basis,
    training_sets: Mapping[str, Sequence[Atoms]],
    graded: Iterable[tuple[np.ndarray, np.ndarray | None]],
    tolerance: float = 1.001,
    per_species: bool = False,
) -> dict[str, dict]:
    """:func:`gamma_against_training_sets` as log histograms (:func:`selection.maxvol.log_histogram`), reading
    the graded rows chunk by chunk: ``graded`` yields (rows, species of each row or None), e.g. one snapshot's
    candidates each, so memory does not grow with the number of chunks. The histograms equal those of all rows
    at once."""
    sets = training_sets_active_sets(basis, training_sets, tolerance, per_species=per_species)
    histograms = {name: log_histogram(np.zeros(0)) for name in sets}
    for rows, species in graded:
        if not len(rows):
            continue
        rows = np.asarray(rows, dtype=float)
        for name, aset in sets.items():
            histograms[name] = merge_histograms([histograms[name],
                                                 log_histogram(grade_rows(aset, rows, species))])
    return histograms
