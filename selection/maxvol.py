"""D-optimality (MaxVol) active sets and extrapolation grades.

Every local atomic environment is a row ``b`` (length m) of a linear basis
(SNAP bispectrum, MTP moments, ACE B projections; see :mod:`selection.bases`).
The active set is the m x m submatrix ``A`` of the training rows with (locally)
maximal ``|det A|``; the extrapolation grade of a row is

    gamma(b) = max_j |(b A^-1)_j|

(Podryabinkin & Shapeev, Comput. Mater. Sci. 140, 171 (2017); Lysogorskiy et
al., Phys. Rev. Mater. 7, 043801 (2023)). gamma <= 1 means interpolation.

Numerics: gamma is invariant under a rescaling of the basis columns
(``b -> b D``, ``A -> A D``), so the linear algebra runs on columns divided by
their largest magnitude in the training rows (``ActiveSet.scale``), which keeps
``A`` well conditioned when bispectrum components differ by orders of
magnitude. The initial active set is the first m pivots of a column-pivoted QR
of the rows (the same start motep uses); MaxVol swaps then replace a member
by the row with the largest ``|c_ij|`` until no entry exceeds the tolerance.
Each swap multiplies ``|det A|`` by ``|c_ij| > tolerance``, so the loop
terminates.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import BinaryIO

import numpy as np
from scipy.linalg import qr

__all__ = [
    "DEFAULT_GAMMA_EDGES",
    "ActiveSet",
    "MaxVolNotConvergedError",
    "RankDeficientError",
    "SpeciesActiveSets",
    "UnknownSpeciesError",
    "build_active_set",
    "build_species_active_sets",
    "grades",
    "load",
    "log_histogram",
    "merge_histograms",
    "save",
    "select_add",
]

DEFAULT_TOLERANCE = 1.001
_DEFAULT_CHUNK = 65_536
# Entries of the dense coefficient matrix c = B A^-1 kept in memory at once during the swaps;
# larger training sets switch to a chunked scan (same result, slower).
_DENSE_LIMIT = 20_000_000
# Relative size of a QR pivot (times max(n, m)) below which the rows are declared rank deficient
# (the numpy matrix_rank convention, with a safety factor of 10).
_RANK_RTOL = 10.0 * np.finfo(float).eps

# Log-spaced gamma bins: 1e-2 .. 1e4, 10 bins per decade (values outside go to the end bins).
DEFAULT_GAMMA_EDGES = np.logspace(-2.0, 4.0, 61)


class RankDeficientError(ValueError):
    """The training rows do not span the basis: no non-singular m x m active set exists."""


class UnknownSpeciesError(ValueError):
    """Rows of a species that has no active set (the training set holds no atom of it)."""


class MaxVolNotConvergedError(RuntimeError):
    """MaxVol swaps did not bring every training grade below the tolerance within max_iterations."""


@dataclass
class ActiveSet:
    """An m x m active set of basis rows.

    ``rows``: the active rows A (m x m), in the basis's own units.
    ``indices``: index of each member in the row array it came from (the
    training rows for :func:`build_active_set`, the candidate rows for members
    added by :func:`select_add`).
    ``labels``: provenance of each member (``"train:<i>"``, ``"added:<i>"`` by
    default, or the labels passed in, e.g. ``"snapshot-12:atom-345"``).
    ``scale``: per-column scale used for the linear algebra (gamma does not
    depend on it). ``tolerance``: the MaxVol tolerance the set satisfies on its
    training rows.
    """

    rows: np.ndarray
    indices: np.ndarray
    labels: np.ndarray
    scale: np.ndarray
    tolerance: float = DEFAULT_TOLERANCE
    iterations: int = 0
    _inverse: np.ndarray | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.rows = np.asarray(self.rows, dtype=float)
        m = self.rows.shape[0]
        if self.rows.ndim != 2 or self.rows.shape[1] != m:
            raise ValueError(f"active-set rows must be square (m x m), got shape {self.rows.shape}")
        self.indices = np.asarray(self.indices, dtype=np.int64).reshape(m)
        self.labels = np.asarray(self.labels, dtype=str).reshape(m)
        self.scale = np.asarray(self.scale, dtype=float).reshape(m)

    @property
    def size(self) -> int:
        """m, the number of basis functions (= members)."""
        return int(self.rows.shape[0])

    @property
    def scaled_rows(self) -> np.ndarray:
        return self.rows / self.scale

    @property
    def inverse(self) -> np.ndarray:
        """(A / scale)^-1, cached; gamma(b) = max |(b / scale) @ inverse|."""
        if self._inverse is None:
            self._inverse = np.linalg.inv(self.scaled_rows)
        return self._inverse

    @property
    def log_abs_det(self) -> float:
        """ln |det A| (in the basis's own units)."""
        sign, logdet = np.linalg.slogdet(self.rows)
        return float(logdet) if sign != 0 else float("-inf")


@dataclass
class SpeciesActiveSets:
    """One active set per chemical species, as MLIP-3 and pacemaker keep them.

    The rows of the atoms of each species form their own MaxVol problem, and an
    atom is graded against its own species' set only (:meth:`grades`, which
    calls :func:`grades`: the one gamma definition). ``sets[species]`` is an
    :class:`ActiveSet` whose ``indices`` point into the full row array the sets
    were built from (all species), ``labels`` name the members. ``owners``
    (optional, filled by :func:`selection.grading.training_active_set`):
    per species the (configuration, atom) of each member, in member order.

    ``columns`` (optional): per species the basis columns its set works on;
    ``width`` the row length of the basis. A column that is zero in every row
    of a species but not of another (MTP's species coefficient of another
    species) cannot enter that species' set; :func:`build_species_active_sets`
    leaves it out. A graded row of that species with a non-zero value in a left
    out column lies outside every training row's span: gamma = inf.
    """

    sets: dict[str, ActiveSet]
    owners: dict[str, np.ndarray] | None = None
    columns: dict[str, np.ndarray] | None = None
    width: int | None = None

    def __post_init__(self) -> None:
        if not self.sets:
            raise ValueError("SpeciesActiveSets needs at least one species")
        if self.columns is None:
            sizes = {aset.size for aset in self.sets.values()}
            if len(sizes) != 1:
                raise ValueError(f"the species' active sets have different sizes {sorted(sizes)}; use one basis")
            self.width = sizes.pop()
            return
        if set(self.columns) != set(self.sets) or self.width is None:
            raise ValueError("columns needs an entry for every species, and width the basis row length")
        for name, aset in self.sets.items():
            cols = np.asarray(self.columns[name], dtype=np.int64)
            if cols.size != aset.size or (cols.size and (cols.min() < 0 or cols.max() >= self.width)):
                raise ValueError(f"species {name}: {cols.size} columns for an active set of size {aset.size} "
                                 f"(row length {self.width})")
            self.columns[name] = cols

    @property
    def species(self) -> tuple[str, ...]:
        return tuple(self.sets)

    @property
    def size(self) -> int:
        """m, the row length of the basis (the number of columns the graded rows must have)."""
        assert self.width is not None  # set by __post_init__
        return self.width

    @property
    def tolerance(self) -> float:
        return max(aset.tolerance for aset in self.sets.values())

    @property
    def log_abs_det(self) -> float:
        """log |det| of the block-diagonal set of all species (the sum of theirs)."""
        return float(sum(aset.log_abs_det for aset in self.sets.values()))

    def __getitem__(self, species: str) -> ActiveSet:
        if species not in self.sets:
            raise UnknownSpeciesError(
                f"no active set for species {species} (the active sets hold {', '.join(self.sets)}); "
                f"add configurations with {species} to the training set"
            )
        return self.sets[species]

    def __len__(self) -> int:
        return len(self.sets)

    def grades(self, rows: np.ndarray, species: Sequence[str] | np.ndarray, chunk: int = _DEFAULT_CHUNK) -> np.ndarray:
        """gamma of every row against the active set of its own species (``species[i]`` of row i)."""
        rows = _as_rows(rows)
        symbols = np.asarray(species, dtype=str).reshape(-1)
        if symbols.size != rows.shape[0]:
            raise ValueError(f"{symbols.size} species for {rows.shape[0]} rows")
        unknown = sorted(set(symbols.tolist()) - set(self.sets))
        if unknown:
            raise UnknownSpeciesError(
                f"no active set for species {', '.join(unknown)} (the active sets hold {', '.join(self.sets)}); "
                "add configurations with them to the training set"
            )
        if rows.shape[1] != self.size:
            raise ValueError(
                f"rows have {rows.shape[1]} columns but the active sets have m = {self.size}; "
                "use the same basis (and settings) as for the training rows"
            )
        out = np.empty(rows.shape[0])
        for name, aset in self.sets.items():
            mask = symbols == name
            if not mask.any():
                continue
            block = rows[mask]
            if self.columns is None or self.columns[name].size == self.size:
                out[mask] = grades(aset, block, chunk=chunk)
                continue
            left_out = np.ones(self.size, dtype=bool)
            left_out[self.columns[name]] = False
            gamma = grades(aset, block[:, self.columns[name]], chunk=chunk)
            gamma[np.any(block[:, left_out] != 0.0, axis=1)] = np.inf
            out[mask] = gamma
        return out


# --------------------------------------------------------------------------- helpers


def _as_rows(rows: np.ndarray, name: str = "rows") -> np.ndarray:
    rows = np.asarray(rows, dtype=float)
    if rows.ndim != 2:
        raise ValueError(f"{name} must be a 2D array (n_rows x m), got shape {rows.shape}")
    if not np.all(np.isfinite(rows)):
        bad = np.argwhere(~np.isfinite(rows))[0]
        raise ValueError(f"{name} contain non-finite values (first at row {bad[0]}, column {bad[1]})")
    return rows


def _rank_message(rank: int, m: int, n: int, detail: str = "") -> str:
    return (
        f"the training rows have numerical rank {rank} but the basis has m = {m} functions "
        f"({n} rows){detail}: no non-singular active set exists. Add more diverse training "
        "environments (e.g. rattled, strained, defected structures) or use a smaller basis "
        "(e.g. a lower twojmax / MTP level)"
    )


def _column_scale(rows: np.ndarray) -> np.ndarray:
    scale = np.max(np.abs(rows), axis=0)
    zero = np.flatnonzero(scale == 0.0)
    if zero.size:
        n, m = rows.shape
        rank = int(np.linalg.matrix_rank(rows)) if n * m <= 10_000_000 else m - zero.size
        columns = ", ".join(map(str, zero[:10])) + (" ..." if zero.size > 10 else "")
        raise RankDeficientError(_rank_message(rank, m, n, f"; columns {columns} are zero in every row"))
    return scale


def _pivoted_rank_and_pivots(matrix_t: np.ndarray) -> tuple[int, np.ndarray]:
    """Numerical rank and column pivots of a column-pivoted QR of ``matrix_t`` (m x n)."""
    r, pivots = qr(matrix_t, mode="r", pivoting=True)
    diag = np.abs(np.diag(r))
    if diag.size == 0 or diag[0] == 0.0:
        return 0, pivots
    rank = int(np.sum(diag > _RANK_RTOL * max(matrix_t.shape) * diag[0]))
    return rank, pivots


def _initial_indices(rows: np.ndarray, scaled: np.ndarray) -> np.ndarray:
    """First m pivots of a column-pivoted QR of rows.T (motep's 'qr' start); raises if rank < m."""
    n, m = rows.shape
    rank, _ = _pivoted_rank_and_pivots(scaled.T)
    if rank < m:
        raise RankDeficientError(_rank_message(rank, m, n))
    # The pivots of the raw rows reproduce motep's starting set; fall back to the scaled ones
    # when the raw columns are so unevenly scaled that those pivots give a singular start.
    _, pivots = _pivoted_rank_and_pivots(rows.T)
    start = np.sort(pivots[:m])
    if np.linalg.cond(scaled[start]) < 1e12:
        return start
    _, pivots = _pivoted_rank_and_pivots(scaled.T)
    return np.sort(pivots[:m])


def _sherman_morrison_replace(inverse: np.ndarray, c_row: np.ndarray, j: int) -> None:
    """In place: inverse of A with row j replaced by b, given c_row = b A^-1 (c_row[j] != 0)."""
    delta = c_row.copy()
    delta[j] -= 1.0
    column = inverse[:, j].copy()
    inverse -= np.outer(column, delta) / c_row[j]


def _update_c(c: np.ndarray, i: int, j: int) -> None:
    """In place: c = B A^-1 after row j of A is replaced by row i of B (rank-1 update)."""
    delta = c[i].copy()
    delta[j] -= 1.0
    column = c[:, j].copy()
    c -= np.outer(column / c[i, j], delta)


# --------------------------------------------------------------------------- public API


def build_active_set(
    rows: np.ndarray,
    tolerance: float = DEFAULT_TOLERANCE,
    max_iterations: int | None = None,
    labels: Sequence[str] | None = None,
) -> ActiveSet:
    """Active set of the training ``rows`` (n x m, n >= m) such that every row has gamma <= tolerance.

    Raises :class:`RankDeficientError` when the rows do not span the m basis
    functions, :class:`MaxVolNotConvergedError` after ``max_iterations`` swaps
    (default 100 m + 1000).
    """
    rows = _as_rows(rows)
    n, m = rows.shape
    if tolerance < 1.0:
        raise ValueError(f"tolerance must be >= 1 (gamma <= 1 is interpolation), got {tolerance}")
    if m == 0:
        raise ValueError("rows have no columns (m = 0)")
    if n < m:
        rank = int(np.linalg.matrix_rank(rows))
        raise RankDeficientError(_rank_message(rank, m, n, f"; there are fewer rows ({n}) than functions"))
    if labels is not None and len(labels) != n:
        raise ValueError(f"labels has {len(labels)} entries for {n} rows")
    max_iterations = 100 * m + 1000 if max_iterations is None else int(max_iterations)

    scale = _column_scale(rows)
    scaled = rows / scale
    selected = _initial_indices(rows, scaled)
    inverse = np.linalg.inv(scaled[selected])

    iterations = 0
    if n * m <= _DENSE_LIMIT:
        c = scaled @ inverse
        in_set = np.zeros(n, dtype=bool)
        in_set[selected] = True
        while True:
            flat = int(np.argmax(np.abs(c)))
            i, j = divmod(flat, m)
            if abs(c[i, j]) <= tolerance or in_set[i]:
                break
            if iterations >= max_iterations:
                raise MaxVolNotConvergedError(
                    f"MaxVol did not converge in {max_iterations} swaps (largest training gamma "
                    f"{abs(c[i, j]):.4g} > tolerance {tolerance}); raise max_iterations or the tolerance"
                )
            in_set[selected[j]] = False
            in_set[i] = True
            selected[j] = i
            _sherman_morrison_replace(inverse, c[i], j)
            _update_c(c, i, j)
            iterations += 1
            if iterations % 64 == 0:  # refresh against round-off drift
                inverse = np.linalg.inv(scaled[selected])
                c = scaled @ inverse
    else:
        while True:
            best, bi, bj = -1.0, -1, -1
            for start in range(0, n, _DEFAULT_CHUNK):
                block = np.abs(scaled[start : start + _DEFAULT_CHUNK] @ inverse)
                flat = int(np.argmax(block))
                value = block.flat[flat]
                if value > best:
                    best, (bi, bj) = value, divmod(flat, m)
                    bi += start
            if best <= tolerance or bi in set(selected.tolist()):
                break
            if iterations >= max_iterations:
                raise MaxVolNotConvergedError(
                    f"MaxVol did not converge in {max_iterations} swaps (largest training gamma "
                    f"{best:.4g} > tolerance {tolerance}); raise max_iterations or the tolerance"
                )
            c_row = scaled[bi] @ inverse
            _sherman_morrison_replace(inverse, c_row, bj)
            selected[bj] = bi
            iterations += 1
            if iterations % 64 == 0:
                inverse = np.linalg.inv(scaled[selected])

    order = np.argsort(selected, kind="stable")
    selected = selected[order]
    member_labels = [f"train:{k}" for k in selected] if labels is None else [str(labels[k]) for k in selected]
    return ActiveSet(
        rows=rows[selected].copy(),
        indices=selected,
        labels=np.array(member_labels, dtype=str),
        scale=scale,
        tolerance=float(tolerance),
        iterations=iterations,
    )


def build_species_active_sets(
    rows: np.ndarray,
    species: Sequence[str] | np.ndarray,
    tolerance: float = DEFAULT_TOLERANCE,
    max_iterations: int | None = None,
    labels: Sequence[str] | None = None,
) -> SpeciesActiveSets:
    """One :func:`build_active_set` per species over the rows of that species' atoms (``species[i]`` of row i).

    Species appear in the order of their first row. Each set's ``indices`` point into ``rows``; its
    default labels are ``"train:<row>"`` as for a single set. With one species the set is exactly
    ``build_active_set(rows, ...)``. A species with fewer rows than m (or rows that do not span the
    basis) raises :class:`RankDeficientError` naming the species.
    """
    rows = _as_rows(rows)
    symbols = np.asarray(species, dtype=str).reshape(-1)
    if symbols.size != rows.shape[0]:
        raise ValueError(f"{symbols.size} species for {rows.shape[0]} rows")
    if labels is not None and len(labels) != rows.shape[0]:
        raise ValueError(f"labels has {len(labels)} entries for {rows.shape[0]} rows")
    names = list(dict.fromkeys(symbols.tolist()))
    if not names:
        raise ValueError("no rows: an active set needs training rows")
    used = np.any(rows != 0.0, axis=0)
    sets: dict[str, ActiveSet] = {}
    columns: dict[str, np.ndarray] = {}
    for name in names:
        where = np.flatnonzero(symbols == name)
        # columns zero for this species but not for another (a species coefficient) cannot enter its set;
        # columns zero for every species stay, and raise RankDeficientError as for a single set
        keep = np.flatnonzero(np.any(rows[where] != 0.0, axis=0) | ~used)
        member_labels = [f"train:{k}" for k in where] if labels is None else [str(labels[int(k)]) for k in where]
        try:
            aset = build_active_set(rows[np.ix_(where, keep)] if keep.size < rows.shape[1] else rows[where],
                                    tolerance=tolerance, max_iterations=max_iterations, labels=member_labels)
        except RankDeficientError as error:
            raise RankDeficientError(f"species {name}: {error}") from error
        aset.indices = where[aset.indices]
        sets[name] = aset
        columns[name] = keep
    return SpeciesActiveSets(sets, columns=columns, width=rows.shape[1])


def grades(active_set: ActiveSet, rows: np.ndarray, chunk: int = _DEFAULT_CHUNK) -> np.ndarray:
    """gamma = max_j |(b A^-1)_j| for every row b of ``rows`` (n x m), computed in chunks of ``chunk`` rows."""
    rows = _as_rows(rows)
    if rows.shape[1] != active_set.size:
        raise ValueError(
            f"rows have {rows.shape[1]} columns but the active set has m = {active_set.size}; "
            "use the same basis (and settings) as for the training rows"
        )
    if chunk < 1:
        raise ValueError(f"chunk must be positive, got {chunk}")
    inverse = active_set.inverse
    scale = active_set.scale
    out = np.empty(rows.shape[0])
    for start in range(0, rows.shape[0], chunk):
        block = rows[start : start + chunk] / scale
        out[start : start + chunk] = np.max(np.abs(block @ inverse), axis=1)
    return out


def select_add(
    active_set: ActiveSet,
    candidate_rows: np.ndarray,
    gamma_select: float,
    max_new: int | None = None,
    labels: Sequence[str] | None = None,
) -> tuple[ActiveSet, np.ndarray]:
    """Greedy D-optimal selection of candidate rows with gamma > ``gamma_select``.

    One candidate at a time: the largest ``|c_ij|`` (c = B A^-1) above
    ``gamma_select`` swaps candidate i into position j of the active set (|det|
    grows by that factor), and the grades of the other candidates are updated
    (Sherman-Morrison), so near-duplicates of an added environment drop to
    gamma ~ 1 and are not picked again. Stops when no candidate exceeds
    ``gamma_select`` or ``max_new`` candidates are in the active set.

    Returns the new active set and the indices (into ``candidate_rows``) of the
    candidates in it, in the order they entered. A candidate swapped in and
    later swapped out again by a more extreme one is not returned.
    """
    candidate_rows = _as_rows(candidate_rows, "candidate_rows")
    n, m = candidate_rows.shape
    if m != active_set.size:
        raise ValueError(f"candidate_rows have {m} columns but the active set has m = {active_set.size}")
    if gamma_select < 1.0:
        raise ValueError(f"gamma_select must be >= 1, got {gamma_select}")
    if labels is not None and len(labels) != n:
        raise ValueError(f"labels has {len(labels)} entries for {n} candidate rows")
    if max_new is not None and max_new < 0:
        raise ValueError(f"max_new must be >= 0, got {max_new}")

    # Swaps change the grades of the other candidates (one at gamma <= 1 can rise above
    # gamma_select once another one entered), so all candidates stay in the pool; beyond
    # _DENSE_LIMIT entries only those already above 1 are kept (memory).
    if n * m <= _DENSE_LIMIT:
        pool = np.arange(n)
    else:
        pool = np.flatnonzero(grades(active_set, candidate_rows) > 1.0)
    inverse = active_set.inverse.copy()
    scale = active_set.scale
    members = list(active_set.indices)
    member_labels = list(active_set.labels)
    member_rows = active_set.rows.copy()
    source = [-1] * m  # candidate index occupying each position, -1 for the original members
    entered: list[int] = []
    limit = n if max_new is None else int(max_new)

    if pool.size and limit > 0:
        c = (candidate_rows[pool] / scale) @ inverse
        steps = 0
        while True:
            if sum(1 for s in source if s >= 0) >= limit:
                break
            flat = int(np.argmax(np.abs(c)))
            i, j = divmod(flat, m)
            if abs(c[i, j]) <= gamma_select:
                break
            k = int(pool[i])
            if k in source:  # already a member (|c| = 1 there, cannot happen above gamma_select)
                break
            _sherman_morrison_replace(inverse, c[i], j)
            _update_c(c, i, j)
            source[j] = k
            members[j] = k
            member_labels[j] = f"added:{k}" if labels is None else str(labels[k])
            member_rows[j] = candidate_rows[k]
            if k not in entered:
                entered.append(k)
            steps += 1
            if steps % 64 == 0:
                inverse = np.linalg.inv(member_rows / scale)
                c = (candidate_rows[pool] / scale) @ inverse

    new_set = ActiveSet(
        rows=member_rows,
        indices=np.array(members, dtype=np.int64),
        labels=np.array(member_labels, dtype=str),
        scale=scale.copy(),
        tolerance=active_set.tolerance,
        iterations=active_set.iterations,
    )
    in_set = {s for s in source if s >= 0}
    selected = np.array([k for k in entered if k in in_set], dtype=np.int64)
    return new_set, selected


def select_add_species(
    active_sets: SpeciesActiveSets,
    candidate_rows: np.ndarray,
    species: Sequence[str] | np.ndarray,
    gamma_select: float,
    max_new: int | None = None,
    labels: Sequence[str] | None = None,
) -> tuple[SpeciesActiveSets, np.ndarray]:
    """:func:`select_add` per species: each species' candidates (``species[i]`` of row i) enter that species'
    active set only (on its columns). ``max_new`` is shared out over the species in proportion to their
    candidates above ``gamma_select`` (largest remainder, every such species at least one while any is left).
    Returns the new sets and the selected candidate indices (species in set order, each in entry order)."""
    candidate_rows = _as_rows(candidate_rows, "candidate_rows")
    symbols = np.asarray(species, dtype=str).reshape(-1)
    if symbols.size != candidate_rows.shape[0]:
        raise ValueError(f"{symbols.size} species for {candidate_rows.shape[0]} candidate rows")
    unknown = sorted(set(symbols.tolist()) - set(active_sets.sets))
    if unknown:
        raise UnknownSpeciesError(f"no active set for species {', '.join(unknown)} (the active sets hold "
                                  f"{', '.join(active_sets.sets)}); add configurations with them to the training set")
    gamma = active_sets.grades(candidate_rows, symbols) if candidate_rows.shape[0] else np.zeros(0)
    above = {name: int(np.count_nonzero((symbols == name) & (gamma > gamma_select))) for name in active_sets.sets}
    quota = _shares(above, max_new)
    sets = dict(active_sets.sets)
    selected: list[np.ndarray] = []
    for name, aset in active_sets.sets.items():
        where = np.flatnonzero(symbols == name)
        if not where.size or not quota[name]:
            continue
        block = candidate_rows[where]
        if active_sets.columns is not None and active_sets.columns[name].size != active_sets.size:
            block = block[:, active_sets.columns[name]]
        names = None if labels is None else [str(labels[int(k)]) for k in where]
        sets[name], picked = select_add(aset, block, gamma_select, quota[name], labels=names)
        selected.append(where[picked])
    updated = SpeciesActiveSets(sets, columns=active_sets.columns, width=active_sets.width)
    return updated, np.concatenate(selected) if selected else np.zeros(0, dtype=np.int64)


def _shares(counts: dict[str, int], total: int | None) -> dict[str, int | None]:
    """``total`` split over ``counts`` in proportion (largest remainder); None (no limit) stays None."""
    if total is None:
        return dict.fromkeys(counts)
    weight = sum(counts.values())
    if weight == 0:
        return dict.fromkeys(counts, 0)
    exact = {name: total * count / weight for name, count in counts.items()}
    shares = {name: int(value) for name, value in exact.items()}
    for name in sorted(counts, key=lambda n: exact[n] - shares[n], reverse=True)[: total - sum(shares.values())]:
        shares[name] += 1
    return shares  # type: ignore[return-value]


_SPECIES_FORMAT = "defect-genome-species-active-sets-1"


def save(active_set: ActiveSet | SpeciesActiveSets, file: str | os.PathLike | BinaryIO) -> None:
    """Write the active set as ``.npz`` (rows, indices, labels, scale, tolerance, iterations); per-species sets
    as the same arrays of each species under ``<species>.<name>`` with its columns, and the species order."""
    if isinstance(active_set, SpeciesActiveSets):
        arrays: dict[str, np.ndarray] = {"format": np.array(_SPECIES_FORMAT),
                                         "species": np.array(active_set.species, dtype=str),
                                         "width": np.array(active_set.size)}
        for name, aset in active_set.sets.items():
            arrays.update({f"{name}.{key}": value for key, value in _arrays(aset).items()})
            if active_set.columns is not None:
                arrays[f"{name}.columns"] = active_set.columns[name]
        np.savez(file, **arrays)  # type: ignore[arg-type]
        return
    np.savez(file, format=np.array("defect-genome-active-set-1"), **_arrays(active_set))  # type: ignore[arg-type]


def _arrays(active_set: ActiveSet) -> dict[str, np.ndarray]:
    return {"rows": active_set.rows, "indices": active_set.indices, "labels": active_set.labels.astype(str),
            "scale": active_set.scale, "tolerance": np.array(active_set.tolerance),
            "iterations": np.array(active_set.iterations)}


def load(file: str | os.PathLike | BinaryIO) -> ActiveSet | SpeciesActiveSets:
    """Read an active set (or per-species sets) written by :func:`save`."""
    name = getattr(file, "name", file)
    with np.load(file, allow_pickle=False) as data:
        if "format" in data.files and str(data["format"]) == _SPECIES_FORMAT:
            species = [str(s) for s in data["species"]]
            sets = {s: _active_set({key.split(".", 1)[1]: data[key] for key in data.files
                                    if key.startswith(f"{s}.")}, name) for s in species}
            has_columns = all(f"{s}.columns" in data.files for s in species)
            columns = {s: data[f"{s}.columns"] for s in species} if has_columns else None
            return SpeciesActiveSets(sets, columns=columns, width=int(data["width"]) if has_columns else None)
        return _active_set({key: data[key] for key in data.files}, name)


def _active_set(data: dict[str, np.ndarray], name: object) -> ActiveSet:
    missing = {"rows", "indices", "labels", "scale"} - set(data)
    if missing:
        raise ValueError(f"{name} is not an active-set file (missing {', '.join(sorted(missing))})")
    return ActiveSet(
        rows=data["rows"],
        indices=data["indices"],
        labels=data["labels"],
        scale=data["scale"],
        tolerance=float(data["tolerance"]) if "tolerance" in data else DEFAULT_TOLERANCE,
        iterations=int(data["iterations"]) if "iterations" in data else 0,
    )


# --------------------------------------------------------------------------- histograms


def log_histogram(gammas: np.ndarray, bins: np.ndarray | int | None = None) -> dict:
    """Histogram of gamma on log-spaced bins, for the dashboard.

    ``bins``: edges (increasing, positive) or a number of bins per decade over
    1e-2..1e4; default :data:`DEFAULT_GAMMA_EDGES` (10 per decade), so
    histograms of different snapshots share edges and add up
    (:func:`merge_histograms`). Values below the first edge count in the first
    bin, values above the last edge in the last bin (also reported as
    ``below``/``above``). Returns ``{"edges", "counts", "n", "gamma_max",
    "below", "above"}`` with plain lists/numbers (JSON-ready).
    """
    gammas = np.asarray(gammas, dtype=float).ravel()
    if bins is None:
        edges = DEFAULT_GAMMA_EDGES
    elif np.ndim(bins) == 0 and not isinstance(bins, np.ndarray):
        per_decade = int(bins)
        if per_decade < 1:
            raise ValueError(f"bins per decade must be >= 1, got {bins}")
        edges = np.logspace(-2.0, 4.0, 6 * per_decade + 1)
    else:
        edges = np.asarray(bins, dtype=float)
        if edges.ndim != 1 or edges.size < 2 or np.any(edges <= 0) or np.any(np.diff(edges) <= 0):
            raise ValueError("bins must be increasing positive edges (at least two)")
    finite = gammas[np.isfinite(gammas)]
    below = int(np.sum(finite < edges[0]))
    above = int(np.sum(finite > edges[-1]))
    counts, _ = np.histogram(np.clip(finite, edges[0], edges[-1]), bins=edges)
    return {
        "edges": edges.tolist(),
        "counts": counts.astype(int).tolist(),
        "n": int(finite.size),
        "gamma_max": float(finite.max()) if finite.size else None,
        "below": below,
        "above": above,
    }


def merge_histograms(histograms: Sequence[dict]) -> dict:
    """Sum histograms with identical edges (e.g. all snapshots of a campaign)."""
    if not histograms:
        raise ValueError("no histograms to merge")
    edges = histograms[0]["edges"]
    for h in histograms[1:]:
        if len(h["edges"]) != len(edges) or not np.allclose(h["edges"], edges):
            raise ValueError("histograms have different edges; compute them with the same bins")
    maxima = [h["gamma_max"] for h in histograms if h.get("gamma_max") is not None]
    return {
        "edges": list(edges),
        "counts": np.sum([h["counts"] for h in histograms], axis=0).astype(int).tolist(),
        "n": int(sum(h["n"] for h in histograms)),
        "gamma_max": float(max(maxima)) if maxima else None,
        "below": int(sum(h.get("below", 0) for h in histograms)),
        "above": int(sum(h.get("above", 0) for h in histograms)),
    }
