"""MLIP's level-N moment tensor potential basis, generated (motep 0.2.0 ships no untrained potentials).

:func:`mtp_template` builds the untrained level-N MTP: every contraction graph of at most four moment tensors
M_mu,nu (level 2 + 4 mu + nu) with total level <= N, the definition behind MLIP's ``untrained_mtps`` (same
number of basis functions: 9 at level 8, 29 at 12, 92 at 16; the same basic moments).
:func:`write_mtp_template` writes it in the MLIP layout (``untrained_mtps/NN.mtp``, which MLIP-3 trains from);
:func:`mtp_basis_counts` gives the sizes of a level's basis. Distances in A.
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Sequence
from fractions import Fraction
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from .train import TrainingInputError

__all__ = ["MTP_LEVELS", "mtp_basis_counts", "mtp_template", "write_mtp_template"]

MTP_LEVELS = tuple(range(2, 29, 2))  # MLIP's untrained_mtps: 02.mtp ... 28.mtp
MAX_FACTORS = 4  # MLIP's basis functions are contractions of at most four moment tensors


# --------------------------------------------------------------------------- MTP basis (MLIP levels)


def _moment_level(mu: int, nu: int) -> int:
    return 2 + 4 * mu + nu


def _compositions(n: int) -> list[tuple[int, int, int]]:
    """Powers (a, b, c) of x, y, z with a + b + c = n, in MLIP's order ((2,0,0), (1,1,0), (1,0,1), ...)."""
    return [(a, b, n - a - b) for a in range(n, -1, -1) for b in range(n - a, -1, -1)]


def _orbit(m: tuple[int, int, int]) -> int:
    """Number of index sequences with the powers m (multinomial coefficient)."""
    a, b, c = m
    return math.factorial(a + b + c) // (math.factorial(a) * math.factorial(b) * math.factorial(c))


def _add(m1: tuple[int, int, int], m2: tuple[int, int, int]) -> tuple[int, int, int]:
    return (m1[0] + m2[0], m1[1] + m2[1], m1[2] + m2[2])


def _multisets(level: int) -> list[tuple[tuple[int, int], ...]]:
    """Multisets of at most MAX_FACTORS moments (mu, nu) with total level <= ``level``."""
    moments = [(mu, nu) for mu in range(level) for nu in range(level + 1) if _moment_level(mu, nu) <= level]
    found: list[tuple[tuple[int, int], ...]] = []

    def grow(start: int, current: list[tuple[int, int]], total: int) -> None:
        if current:
            found.append(tuple(current))
        if len(current) == MAX_FACTORS:
            return
        for i in range(start, len(moments)):
            extra = _moment_level(*moments[i])
            if total + extra <= level:
                current.append(moments[i])
                grow(i, current, total + extra)
                current.pop()

    grow(0, [], 0)
    return found


def _canonical(vertices: Sequence[tuple[int, int]],
               edges: dict[tuple[int, int], int]) -> tuple[tuple[int, int, int], ...]:
    """Smallest edge list over relabellings of identical moments (graph isomorphism, <= 4 vertices)."""
    groups: dict[tuple[int, int], list[int]] = {}
    for i, vertex in enumerate(vertices):
        groups.setdefault(vertex, []).append(i)
    keys = sorted(groups)
    best: tuple[tuple[int, int, int], ...] | None = None
    for perms in itertools.product(*[itertools.permutations(groups[k]) for k in keys]):
        mapping = {old: new for new, old in enumerate(itertools.chain.from_iterable(perms))}
        edge_list = tuple(sorted((min(mapping[a], mapping[b]), max(mapping[a], mapping[b]), count)
                                 for (a, b), count in edges.items()))
        if best is None or edge_list < best:
            best = edge_list
    assert best is not None  # itertools.product yields at least one (possibly empty) permutation tuple
    return best


def _contraction_graphs(vertices: Sequence[tuple[int, int]]) -> list[tuple]:
    """All full contractions (loop-free multigraphs with degree nu) of the moments, up to isomorphism."""
    remaining = [nu for _, nu in vertices]
    if sum(remaining) % 2:
        return []
    found: set = set()
    edges: dict[tuple[int, int], int] = {}

    def connect(i: int) -> None:
        if i == len(vertices):
            found.add(_canonical(vertices, edges))
            return
        if remaining[i] == 0:
            connect(i + 1)
            return
        for j in range(i + 1, len(vertices)):
            if remaining[j] > 0:
                remaining[i] -= 1
                remaining[j] -= 1
                edges[(i, j)] = edges.get((i, j), 0) + 1
                connect(i)
                edges[(i, j)] -= 1
                if not edges[(i, j)]:
                    del edges[(i, j)]
                remaining[i] += 1
                remaining[j] += 1

    connect(0)
    return sorted(found)


def _connected_parts(n: int, edges: Sequence[tuple[int, int, int]]) -> list[list[int]]:
    parent = list(range(n))

    def root(x: int) -> int:
        while parent[x] != x:
            x = parent[x]
        return x

    for a, b, _ in edges:
        parent[root(a)] = root(b)
    parts: dict[int, list[int]] = {}
    for i in range(n):
        parts.setdefault(root(i), []).append(i)
    return list(parts.values())


class _TimesBuilder:
    """Builds MLIP's ``alpha_index_times`` ({i, j, mult, k}: moment k += mult * moment i * moment j).

    A handle (index, scale) stands for a stored moment whose value is ``scale`` times the true
    (symmetrised) tensor component; scales keep every multiplicity an integer. Identical
    combinations are stored once (shared by several basis functions).
    """

    def __init__(self, basic: Sequence[tuple[int, int, int, int]]) -> None:
        self.index = {key: i for i, key in enumerate(basic)}
        self.count = len(basic)
        self.times: list[tuple[int, int, int, int]] = []
        self.known: dict[tuple, int] = {}

    def basic(self, mu: int, m: tuple[int, int, int]) -> tuple[int, Fraction]:
        return self.index[(mu, *m)], Fraction(1)

    def combine(self, terms: Sequence[tuple[tuple[int, Fraction], tuple[int, Fraction], Fraction]],
                ) -> tuple[int, Fraction]:
        weights: dict[tuple[int, int], Fraction] = {}
        for (i, scale_i), (j, scale_j), weight in terms:
            key = (min(i, j), max(i, j))
            weights[key] = weights.get(key, Fraction(0)) + Fraction(weight) / (scale_i * scale_j)
        lcm = 1
        for w in weights.values():
            lcm = lcm * w.denominator // math.gcd(lcm, w.denominator)
        gcd = 0
        for w in weights.values():
            gcd = math.gcd(gcd, int(w * lcm))
        scale = Fraction(lcm, gcd)
        mults = tuple(sorted((i, j, int(w * scale)) for (i, j), w in weights.items()))
        if mults not in self.known:
            k = self.count
            self.count += 1
            self.times.extend((i, j, mult, k) for i, j, mult in mults)
            self.known[mults] = k
        return self.known[mults], scale


def _fold_cost(vertices, edges, order) -> int | None:
    count = {}
    for a, b, c in edges:
        count[(a, b)] = count[(b, a)] = c
    cost = 0
    sizes: dict[Any, int] = {}
    for pos, v in enumerate(order):
        if pos and not any(count.get((v, w), 0) for w in order[:pos]):
            return None  # fold only along edges: no outer products
        sizes = {u: sizes.get(u, 0) + count.get((v, u), 0) for u in order[pos + 1:]}
        cost += math.prod((s + 1) * (s + 2) // 2 for s in sizes.values())
    return cost


def _realize(builder: _TimesBuilder, vertices, edges, order) -> tuple[int, Fraction]:
    """The scalar of one connected contraction graph, folding vertices in ``order``.

    The running tensor has one index group per later vertex; within a group it is symmetrised
    (exact: that group is contracted with a symmetric moment tensor).
    """
    count = {}
    for a, b, c in edges:
        count[(a, b)] = count[(b, a)] = c
    first = order[0]
    groups = [u for u in order[1:] if count.get((first, u), 0)]
    sizes = {u: count[(first, u)] for u in groups}
    comp = {}
    for ms in itertools.product(*[_compositions(sizes[u]) for u in groups]):
        total = (0, 0, 0)
        for m in ms:
            total = _add(total, m)
        comp[ms] = builder.basic(vertices[first][0], total)
    for pos in range(1, len(order)):
        v = order[pos]
        later = order[pos + 1:]
        inner = sizes.get(v, 0)
        new_groups = [u for u in later if sizes.get(u, 0) + count.get((v, u), 0) > 0]
        new_sizes = {u: sizes.get(u, 0) + count.get((v, u), 0) for u in new_groups}
        new = {}
        for targets in itertools.product(*[_compositions(new_sizes[u]) for u in new_groups]):
            options = []
            for u, target in zip(new_groups, targets):
                choices = []
                for old in _compositions(sizes.get(u, 0)):
                    rest = (target[0] - old[0], target[1] - old[1], target[2] - old[2])
                    if min(rest) >= 0:
                        choices.append((old, rest, Fraction(_orbit(old) * _orbit(rest), _orbit(target))))
                options.append(choices)
            terms = []
            for shared in _compositions(inner):
                for choice in itertools.product(*options):
                    weight = Fraction(_orbit(shared))
                    v_powers = shared
                    old_part = {}
                    for u, (old, rest, factor) in zip(new_groups, choice):
                        weight *= factor
                        v_powers = _add(v_powers, rest)
                        old_part[u] = old
                    key = tuple(shared if u == v else old_part[u] for u in groups)
                    terms.append((comp[key], builder.basic(vertices[v][0], v_powers), weight))
            new[targets] = builder.combine(terms)
        groups, sizes, comp = new_groups, new_sizes, new
    return comp[()]


@cache
def _mtp_basis(level: int) -> tuple[tuple, tuple, tuple, int]:
    """(alpha_index_basic, alpha_index_times, alpha_moment_mapping, alpha_moments_count) of a level."""
    graphs = [(ms, g) for ms in _multisets(level) for g in _contraction_graphs(ms)]
    used = {moment for ms, _ in graphs for moment in ms}
    basic = [(mu, *m) for mu in range(level) for nu in range(level + 1) if (mu, nu) in used
             for m in _compositions(nu)]
    builder = _TimesBuilder(basic)
    scalars = []
    for ms, g in sorted(graphs, key=lambda x: (sum(_moment_level(*v) for v in x[0]), len(x[0]), x)):
        handles = []
        for part in _connected_parts(len(ms), g):
            sub = [(a, b, c) for a, b, c in g if a in part]
            best = min((cost, order) for order in itertools.permutations(part)
                       if (cost := _fold_cost(ms, sub, order)) is not None)
            handles.append(_realize(builder, ms, sub, best[1]))
        handles.sort()
        handle = handles[0]
        for other in handles[1:]:
            handle = builder.combine([(handle, other, Fraction(1))])
        scalars.append(handle[0])
    return tuple(basic), tuple(builder.times), tuple(scalars), builder.count


def _check_level(level: Any) -> int:
    if isinstance(level, bool) or not isinstance(level, (int, np.integer)) or int(level) not in MTP_LEVELS:
        raise TrainingInputError(
            "level", f"MTP level {level!r} is not available; allowed levels: {', '.join(map(str, MTP_LEVELS))}")
    return int(level)


def mtp_basis_counts(level: int) -> dict[str, int]:
    """Sizes of the level's basis: basic moments, all moments, contraction steps, scalar basis functions."""
    basic, times, scalars, count = _mtp_basis(_check_level(level))
    return {"alpha_index_basic_count": len(basic), "alpha_moments_count": count,
            "alpha_index_times_count": len(times), "alpha_scalar_moments": len(scalars),
            "radial_funcs_count": 1 + max(b[0] for b in basic)}


def _check_radial(min_dist: float, max_dist: float, radial_basis_size: int) -> None:
    if not (np.isfinite(min_dist) and min_dist >= 0):
        raise TrainingInputError("min_dist", f"must be a finite distance >= 0 A, got {min_dist}")
    if not (np.isfinite(max_dist) and max_dist > min_dist):
        raise TrainingInputError("max_dist", f"the cutoff must be larger than min_dist ({min_dist} A), got {max_dist}")
    if isinstance(radial_basis_size, bool) or not isinstance(radial_basis_size, (int, np.integer)) \
            or radial_basis_size < 2:
        raise TrainingInputError("radial_basis_size", f"needs an integer >= 2, got {radial_basis_size!r}")


def mtp_template(level: int = 8, species_count: int = 1, *, min_dist: float = 2.0, max_dist: float = 5.0,
                 radial_basis_size: int = 8):
    """An untrained level-``level`` MTP (motep ``MTPData``, Chebyshev radial basis on [min_dist, max_dist] A)."""
    from motep.potentials.mtp.data import MTPData

    level = _check_level(level)
    _check_radial(min_dist, max_dist, radial_basis_size)
    if species_count < 1:
        raise TrainingInputError("species", "at least one species is needed")
    basic, times, scalars, count = _mtp_basis(level)
    return MTPData(
        version="1.1.0",
        potential_name="MTP1m",
        species_count=int(species_count),
        potential_tag="",
        radial_basis={"type": "RBChebyshev", "min": np.float64(min_dist), "max": np.float64(max_dist),
                      "size": int(radial_basis_size)},
        radial_funcs_count=1 + max(b[0] for b in basic),
        alpha_moments_count=count,
        alpha_index_basic_count=len(basic),
        alpha_index_basic=np.array(basic, dtype=np.int32).reshape(-1, 4),
        alpha_index_times_count=len(times),
        alpha_index_times=np.array(times, dtype=np.int32).reshape(-1, 4),
        alpha_scalar_moments=len(scalars),
        alpha_moment_mapping=np.array(scalars, dtype=np.int32),
    )


def write_mtp_template(path: str | os.PathLike, level: int = 8, species_count: int = 1, **radial) -> Path:
    """Write an untrained MTP in the MLIP layout (``untrained_mtps/NN.mtp``; MLIP-3 trains from it)."""
    from motep.io.mlip.mtp import write_mtp

    data = mtp_template(level, species_count, **radial)
    data.scaling = None  # untrained files carry no scaling line
    path = Path(path)
    write_mtp(path, data, legacy=True)
    return path
