"""Training MLIPs on labelled sets (stage 6): MTP with motep, MLIP-3 ``mlp train``, ACE with pacemaker.

Units: energies eV, forces eV/A, distances A. Errors are stored in meV: ``energy_mev_per_atom``
(RMS of (E_model - E_ref) / N over configurations), ``forces_mev_per_A`` (RMS over every Cartesian
force component, the convention of motep and pacemaker) and ``forces_norm_mev_per_A`` (RMS over
atoms of |F_model - F_ref|, the convention of MLIP's error report; sqrt(3) times the former when
the error is isotropic).

MTP (:func:`train_mtp`)
    motep 0.2.0 ships no untrained potentials, so :func:`mtp_template` generates MLIP's level-N
    basis: every contraction graph of at most four moment tensors M_mu,nu (level 2 + 4 mu + nu)
    with total level <= N, the definition behind MLIP's ``untrained_mtps`` (same number of basis
    functions: 9 at level 8, 29 at 12, 92 at 16; the same basic moments). Training runs motep in a
    subprocess (its trainer writes ``intermediate_*.mtp`` into the working directory and may use
    MPI): motep's ``Level2MTP`` and ``LLS`` steps initialise the potential, then either
    Levenberg-Marquardt on motep's analytic Jacobians (``optimizer="lm"``, default: a Gauss-Newton
    method for this least-squares loss, far fewer passes over the data than BFGS) or motep's own
    BFGS step refines all coefficients; a final ``LLS`` refits the linear (moment, species)
    coefficients on the whole training set (the nonlinear part may use ``fit_subset``
    configurations only). The loss is motep's (MLIP's): energy per atom, forces, stress x volume
    per atom, each per configuration, with weights 1, 0.01, 0.001.

    The potential is written with ``motep.io.mlip.mtp.write_mtp(..., legacy=True)``: motep 0.2.0's
    default writer puts ``radial_funcs_count`` after the ``radial_coeffs`` block, where its own
    reader (which needs the count to parse the block) fails with ``KeyError: 'radial_funcs_count'``;
    the legacy layout (flat ``min_dist``/``max_dist``/``radial_basis_size``/``radial_funcs_count``
    before the coefficients) is the MLIP-2/MLIP-3 layout, which motep's reader, MLIP-3 and
    :class:`selection.bases.MtpBasis` read. Every trained file is read back before it is reported.

MLIP-3 (:func:`train_mlip3`)
    The user's ``mlp`` binary (``mlp=`` or ``DG_MLP_BINARY``): the command lines are templates
    (:data:`MLIP3_TRAIN_COMMAND`, :data:`MLIP3_EFS_COMMAND`) so another MLIP version's syntax can be
    given; :func:`parse_mlip_errors` reads MLIP's "Errors report".

ACE (:func:`train_ace`)
    pacemaker's CLI with a generated ``input.yaml``; fitting needs pacemaker's TensorFlow backend
    (``tensorpotential``): without it :class:`TrainingUnavailable` is raised before anything runs.

Every model is stored with a JSON sidecar (``<model>.json``: level, species, set sizes, RMSEs,
engine and version, wall time, settings); :meth:`TrainedModel.load` reads it.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.data import atomic_numbers

__all__ = [
    "MLIP3_EFS_COMMAND",
    "MLIP3_TRAIN_COMMAND",
    "MTP_LEVELS",
    "TrainedModel",
    "TrainingFailed",
    "TrainingInputError",
    "TrainingUnavailable",
    "evaluate",
    "mlip3_command",
    "mtp_basis_counts",
    "mtp_template",
    "pacemaker_input",
    "parse_mlip_errors",
    "rmse",
    "split",
    "train_ace",
    "train_mlip3",
    "train_mtp",
    "write_mtp_template",
]

MTP_LEVELS = tuple(range(2, 29, 2))  # MLIP's untrained_mtps: 02.mtp ... 28.mtp
MAX_FACTORS = 4  # MLIP's basis functions are contractions of at most four moment tensors
OPTIMIZERS = ("lm", "bfgs")
SIDE_CAR = ".json"


class TrainingInputError(ValueError):
    """Bad training input; ``field`` names the argument (``train``, ``test``, ``level``, ...)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class TrainingUnavailable(RuntimeError):
    """The training engine is not installed or not configured on this machine."""


class TrainingFailed(RuntimeError):
    """The training engine ran and failed (its log tail is in the message)."""


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


# --------------------------------------------------------------------------- data helpers


def _species_of(images: Sequence[Atoms], species: Sequence[str] | str | None) -> tuple[str, ...]:
    if species is None:
        return tuple(sorted({s for atoms in images for s in atoms.get_chemical_symbols()}))
    species = (species,) if isinstance(species, str) else tuple(species)
    bad = [s for s in species if s not in atomic_numbers]
    if bad or not species or len(set(species)) != len(species):
        raise TrainingInputError("species", f"needs distinct chemical symbols, got {list(species)}")
    return species


def _check_set(images: Sequence[Atoms] | None, name: str, species: Sequence[str], *, allow_empty: bool) -> list[Atoms]:
    from .export import ExportError, check_labelled

    images = [] if images is None else list(images)
    if not images:
        if allow_empty:
            return images
        raise TrainingInputError(name, "the set is empty: give at least one labelled configuration")
    for number, atoms in enumerate(images):
        if not isinstance(atoms, Atoms):
            raise TrainingInputError(name, f"{name}[{number}] is a {type(atoms).__name__}, not ase.Atoms")
    try:
        check_labelled(images)
    except ExportError as error:
        raise TrainingInputError(name, str(error)) from None
    for number, atoms in enumerate(images):
        unknown = sorted(set(atoms.get_chemical_symbols()) - set(species))
        if unknown:
            raise TrainingInputError(name, f"configuration {number} has {', '.join(unknown)}, not in species "
                                           f"{list(species)}")
        pbc = np.asarray(atoms.pbc, dtype=bool)
        if pbc.any() and not pbc.all():
            raise TrainingInputError(name, f"configuration {number} is periodic along some directions only "
                                           f"({pbc.tolist()}); use fully periodic cells or clusters")
    return images


def split(images: Sequence[Atoms], test_fraction: float = 0.1, seed: int = 0) -> tuple[list[Atoms], list[Atoms]]:
    """(train, test): a seeded random ``test_fraction`` of the configurations (rounded) is the test set.

    Deterministic for a given seed and set order; both parts keep the input order.
    """
    images = list(images)
    if not images:
        raise TrainingInputError("images", "the set is empty")
    if not (isinstance(test_fraction, (int, float)) and 0.0 <= test_fraction < 1.0):
        raise TrainingInputError("test_fraction", f"must be in [0, 1), got {test_fraction!r}")
    n_test = round(test_fraction * len(images))
    if n_test >= len(images):
        n_test = len(images) - 1
    chosen = set(np.random.default_rng(seed).permutation(len(images))[:n_test].tolist())
    train = [atoms for i, atoms in enumerate(images) if i not in chosen]
    test = [atoms for i, atoms in enumerate(images) if i in chosen]
    return train, test


def rmse(images: Sequence[Atoms], energies_per_atom: Sequence[float] | np.ndarray,
         forces: Sequence[np.ndarray]) -> dict[str, float]:
    """Errors of model predictions against the labels of ``images`` (meV/atom, meV/A).

    ``energies_per_atom`` (eV/atom) and ``forces`` (eV/A, one (n, 3) array per configuration) are the
    model's, as :func:`evaluate` returns them. Keys: ``energy_mev_per_atom``, ``forces_mev_per_A``
    (per Cartesian component), ``forces_norm_mev_per_A`` (per atom, |dF|), ``n_configurations``,
    ``n_atoms``.
    """
    images = list(images)
    if len(images) != len(energies_per_atom) or len(images) != len(forces):
        raise TrainingInputError("images", f"{len(images)} configurations but {len(energies_per_atom)} energies "
                                           f"and {len(forces)} force arrays")
    if not images:
        raise TrainingInputError("images", "the set is empty")
    de = np.array([float(e) - atoms.get_potential_energy() / len(atoms)
                   for e, atoms in zip(energies_per_atom, images)])
    df = np.concatenate([np.asarray(f, dtype=float).reshape(-1, 3) - atoms.get_forces()
                         for f, atoms in zip(forces, images)])
    return {
        "energy_mev_per_atom": float(np.sqrt(np.mean(de**2)) * 1000.0),
        "forces_mev_per_A": float(np.sqrt(np.mean(df**2)) * 1000.0),
        "forces_norm_mev_per_A": float(np.sqrt(np.mean(np.sum(df**2, axis=1))) * 1000.0),
        "n_configurations": len(images),
        "n_atoms": int(df.shape[0]),
    }


# --------------------------------------------------------------------------- the model record


@dataclass
class TrainedModel:
    """A trained potential and how good it is. ``rmse`` = {"train": {...}, "test": {...} or None}."""

    path: Path
    kind: str  # "mtp", "mlip3", "ace"
    species: tuple[str, ...]
    n_train: int
    n_test: int
    rmse: dict[str, dict[str, float] | None]
    engine: str
    wall_time_s: float
    level: int | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    log: Path | None = None

    @property
    def metadata_path(self) -> Path:
        return self.path.with_name(self.path.name + SIDE_CAR)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["path"] = self.path.name  # the sidecar sits next to the model
        data["log"] = str(self.log) if self.log else None
        data["species"] = list(self.species)
        data["units"] = {"energy_mev_per_atom": "meV/atom", "forces_mev_per_A": "meV/A per component",
                         "forces_norm_mev_per_A": "meV/A per atom (|dF|)", "wall_time_s": "s"}
        return data

    def save(self) -> Path:
        self.metadata_path.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")
        return self.metadata_path

    @classmethod
    def load(cls, path: str | os.PathLike) -> TrainedModel:
        """From the model file (``pot.mtp``) or its sidecar (``pot.mtp.json``)."""
        path = Path(path)
        meta = path if path.name.endswith(SIDE_CAR) else path.with_name(path.name + SIDE_CAR)
        data = json.loads(meta.read_text())
        data.pop("units", None)
        data["path"] = meta.with_name(data["path"])
        data["species"] = tuple(data["species"])
        data["log"] = Path(data["log"]) if data.get("log") else None
        return cls(**data)


def _engine_version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"{package} {version(package)}"
    except PackageNotFoundError:  # pragma: no cover
        return package


# --------------------------------------------------------------------------- MTP: evaluation


def _read_mtp(model_path: str | os.PathLike, species: Sequence[str]):
    from motep.io.mlip.mtp import read_mtp

    path = Path(model_path)
    if not path.is_file():
        raise TrainingInputError("model_path", f"no .mtp file at {path}")
    try:
        data = read_mtp(path)
    except Exception as error:  # motep raises bare KeyError/ValueError on files it cannot parse
        raise TrainingInputError(
            "model_path", f"motep cannot read {path}: {type(error).__name__}: {error} (MTP files must be in the "
                          "MLIP layout, write_mtp(..., legacy=True); MLIP-3 .almtp files are not readable)") from None
    if data.species_count != len(species):
        raise TrainingInputError("species", f"{path.name} has {data.species_count} species, species lists "
                                            f"{len(species)} ({list(species)})")
    data.species = [atomic_numbers[s] for s in species]
    return data


def evaluate(model_path: str | os.PathLike, images: Sequence[Atoms], species: Sequence[str] | str = ("W",),
             engine: str = "cext") -> tuple[np.ndarray, list[np.ndarray]]:
    """Energies per atom (eV/atom, array of n) and forces (eV/A, list of (n_i, 3)) of an ``.mtp`` potential.

    motep's ASE calculator in run mode; ``species`` are the elements of MTP types 0, 1, ...
    """
    from motep.calculator import make_calculator

    species = _species_of([], species)
    data = _read_mtp(model_path, species)
    energies, forces = [], []
    for number, atoms in enumerate(images):
        unknown = sorted(set(atoms.get_chemical_symbols()) - set(species))
        if unknown:
            raise TrainingInputError("images", f"configuration {number} has {', '.join(unknown)}, not in species "
                                               f"{list(species)}")
        work = Atoms(atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
        work.calc = make_calculator(data, engine=engine, mode="run")
        energies.append(work.get_potential_energy() / len(work))
        forces.append(np.array(work.get_forces(), dtype=float))
    return np.array(energies, dtype=float), forces


# --------------------------------------------------------------------------- MTP: training (motep)


def _write_cfg_file(path: Path, images: Sequence[Atoms], species: Sequence[str]) -> None:
    from formats.mtp import write_cfg

    with open(path, "w") as handle:
        write_cfg(handle, images, species)


def _run_logged(command: Sequence[str], cwd: Path, log: Path, timeout: float | None, env=None) -> None:
    with open(log, "ab") as handle:
        try:
            done = subprocess.run(list(command), cwd=cwd, stdout=handle, stderr=subprocess.STDOUT,
                                  timeout=timeout, env=env)
        except subprocess.TimeoutExpired:
            raise TrainingFailed(f"{' '.join(command)} timed out after {timeout} s (log: {log})") from None
    if done.returncode != 0:
        tail = log.read_text(errors="replace").strip().splitlines()[-8:]
        raise TrainingFailed(f"{' '.join(command)} exited with {done.returncode} (log: {log}): " + " | ".join(tail))


def _subset_indices(images: Sequence[Atoms], size: int | None) -> list[int]:
    """``size`` configurations spread evenly over the energy-per-atom ranking (all when None)."""
    if size is None or size >= len(images):
        return list(range(len(images)))
    order = np.argsort([atoms.get_potential_energy() / len(atoms) for atoms in images], kind="stable")
    picks = np.unique(np.round(np.linspace(0, len(images) - 1, size)).astype(int))
    return sorted(int(order[p]) for p in picks)


def train_mtp(
    train: Sequence[Atoms],
    *,
    workdir: str | os.PathLike,
    level: int = 8,
    species: Sequence[str] | str | None = None,
    min_dist: float = 2.0,
    max_dist: float = 5.0,
    radial_basis_size: int = 8,
    max_iter: int = 100,
    optimizer: str = "lm",
    fit_subset: int | None = None,
    energy_weight: float = 1.0,
    forces_weight: float = 0.01,
    stress_weight: float = 0.001,
    seed: int = 0,
    test: Sequence[Atoms] | None = None,
    name: str = "pot.mtp",
    timeout: float | None = None,
    engine: str = "cext",
) -> TrainedModel:
    """Train a level-``level`` MTP with motep on labelled ``train`` configurations; test on ``test``.

    ``min_dist``/``max_dist`` (A): the radial basis range (the paper's W MTPs: about 2.1 and 5.0;
    MLIP's default min_dist is the smallest distance in the set); ``max_iter``: iterations of the
    nonlinear optimiser (Levenberg-Marquardt steps or BFGS iterations); ``fit_subset``: number of
    configurations (spread over the energy range) used by the nonlinear optimiser, the final
    linear refit uses all of ``train``; weights as MLIP's (per atom, per configuration).
    Writes ``workdir/name`` (MLIP layout), ``name.json`` (this record) and ``train.log``.
    """
    started = time.perf_counter()
    level = _check_level(level)
    _check_radial(min_dist, max_dist, radial_basis_size)
    if optimizer not in OPTIMIZERS:
        raise TrainingInputError("optimizer", f"unknown optimizer {optimizer!r}; use one of {', '.join(OPTIMIZERS)}")
    if isinstance(max_iter, bool) or not isinstance(max_iter, (int, np.integer)) or max_iter < 0:
        raise TrainingInputError("max_iter", f"needs an integer >= 0, got {max_iter!r}")
    if fit_subset is not None and (not isinstance(fit_subset, (int, np.integer)) or fit_subset < 1):
        raise TrainingInputError("fit_subset", f"needs an integer >= 1 or None, got {fit_subset!r}")
    for label, weight in (("energy_weight", energy_weight), ("forces_weight", forces_weight),
                          ("stress_weight", stress_weight)):
        if not (np.isfinite(weight) and weight >= 0):
            raise TrainingInputError(label, f"needs a finite weight >= 0, got {weight!r}")
    species = _species_of(list(train or []) + list(test or []), species)
    train = _check_set(train, "train", species, allow_empty=False)
    test = _check_set(test, "test", species, allow_empty=True)
    if not name.endswith(".mtp") or "/" in name:
        raise TrainingInputError("name", f"a file name ending in .mtp, got {name!r}")

    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    model_path = workdir / name
    log = workdir / "train.log"
    log.write_text("")
    _write_cfg_file(workdir / "train.cfg", train, species)
    settings = {
        "level": level, "species": list(species), "min_dist": float(min_dist), "max_dist": float(max_dist),
        "radial_basis_size": int(radial_basis_size), "max_iter": int(max_iter), "optimizer": optimizer,
        "fit_subset": None if fit_subset is None else int(fit_subset),
        "subset": _subset_indices(train, fit_subset) if fit_subset is not None else None,
        "energy_weight": float(energy_weight), "forces_weight": float(forces_weight),
        "stress_weight": float(stress_weight), "seed": int(seed), "engine": engine, "output": name,
    }
    (workdir / "job.json").write_text(json.dumps(settings, indent=1) + "\n")
    root = str(Path(__file__).resolve().parents[1])
    env = dict(os.environ)
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    _run_logged([sys.executable, "-m", "mlip.train", "mtp-worker", "job.json"], workdir, log, timeout, env=env)
    if not model_path.is_file():
        raise TrainingFailed(f"motep finished without writing {model_path} (log: {log})")
    worker = json.loads((workdir / "result.json").read_text())

    # read back (motep's reader) and measure on the in-memory labels
    errors: dict[str, dict[str, float] | None] = {}
    for label, images in (("train", train), ("test", test)):
        errors[label] = rmse(images, *evaluate(model_path, images, species, engine=engine)) if images else None
    settings.pop("subset")
    settings.update({"iterations": worker["iterations"], "final_loss": worker["loss"],
                     "fit_wall_time_s": worker["wall_time_s"]})
    model = TrainedModel(path=model_path, kind="mtp", species=species, n_train=len(train), n_test=len(test),
                         rmse=errors, engine=_engine_version("motep"),
                         wall_time_s=time.perf_counter() - started, level=level, settings=settings, log=log)
    model.save()
    return model


def _residual_system(loss, setting) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Newton normal equations (J^T J, J^T r) of motep's loss at its current parameters.

    r matches motep's ``LossFunction`` term by term (energy per atom, forces per atom, stress x
    volume per atom, each averaged over configurations), so |r|^2 is its loss value.
    """
    from ase.stress import voigt_6_to_full_3x3_stress

    images = loss.images
    n = len(images)
    p = loss.mtp_data.number_of_parameters_optimized
    a, g = np.zeros((p, p)), np.zeros(p)
    for atoms in images:
        engine, results, targets = atoms.calc.engine, atoms.calc.results, atoms.calc.targets
        count = len(atoms)
        c = math.sqrt(setting.energy_weight / n) / count
        row = c * np.asarray(engine.jac_energy(atoms).parameters, dtype=float)
        a += np.outer(row, row)
        g += row * c * (results["energy"] - targets["energy"])
        if "forces" in targets and setting.forces_weight:
            c = math.sqrt(setting.forces_weight / n / count)
            jac = c * np.asarray(engine.jac_forces(atoms).parameters, dtype=float).reshape(p, -1)
            a += jac @ jac.T
            g += jac @ (c * (results["forces"] - targets["forces"]).ravel())
        if "stress" in targets and setting.stress_weight and atoms.cell.rank == 3:
            c = math.sqrt(setting.stress_weight / n) * atoms.cell.volume / count
            jac = c * np.asarray(engine.jac_stress(atoms).parameters, dtype=float).reshape(p, -1)
            diff = voigt_6_to_full_3x3_stress(results["stress"]) - voigt_6_to_full_3x3_stress(targets["stress"])
            a += jac @ jac.T
            g += jac @ (c * diff.ravel())
    return a, g


def _levenberg_marquardt(loss, setting, max_iter: int, report: Callable[[str], None]) -> tuple[int, float]:
    """Minimise motep's loss over ``loss.mtp_data.optimized`` by damped Gauss-Newton steps."""
    x = np.array(loss.mtp_data.parameters, dtype=float)
    value = float(loss(x))
    a, g = _residual_system(loss, setting)
    damping, iterations, stalled = 1e-3, 0, 0
    report(f"LM start: loss {value:.8e}")
    while iterations < max_iter:
        iterations += 1
        accepted = False
        while damping < 1e10:
            diagonal = np.diag(a).copy()
            diagonal[diagonal <= 0] = 1e-12
            try:
                step = np.linalg.solve(a + damping * np.diag(diagonal), -g)
            except np.linalg.LinAlgError:
                damping *= 10
                continue
            trial = float(loss(x + step))
            if np.isfinite(trial) and trial < value:
                improvement = (value - trial) / value if value > 0 else 0.0
                x, value = x + step, trial
                a, g = _residual_system(loss, setting)
                damping = max(damping / 3, 1e-12)
                accepted = True
                stalled = stalled + 1 if improvement < 1e-6 else 0
                break
            damping *= 4
        report(f"LM {iterations}: loss {value:.8e} damping {damping:.2e}")
        if not accepted or stalled >= 3 or value == 0:
            break
    loss.mtp_data.parameters = x  # the best parameters (the loss may sit at a rejected trial)
    return iterations, value


def _mtp_worker(job_file: str) -> None:
    """Subprocess entry: train as ``job.json`` says, write the potential (legacy layout) and result.json."""
    import logging

    from motep.io.mlip.mtp import read_mtp, write_mtp
    from motep.loss import LossFunction, LossSetting
    from motep.train.trainer import Trainer

    from formats.mtp import read_cfg

    started = time.perf_counter()
    job = json.loads(Path(job_file).read_text())
    logger = logging.getLogger("motep")
    logger.setLevel(logging.INFO)
    handler = logging.StreamHandler(sys.stdout)
    handler.setLevel(logging.INFO)
    logger.addHandler(handler)

    def report(text: str) -> None:
        print(f"[{time.perf_counter() - started:9.1f} s] {text}", flush=True)

    species = job["species"]
    with open("train.cfg") as handle:
        images = read_cfg(handle, species)
    subset = [images[i] for i in job["subset"]] if job.get("subset") else images
    data = mtp_template(job["level"], len(species), min_dist=job["min_dist"], max_dist=job["max_dist"],
                       radial_basis_size=job["radial_basis_size"])
    data.species = [atomic_numbers[s] for s in species]
    setting = LossSetting(energy_weight=job["energy_weight"], forces_weight=job["forces_weight"],
                          stress_weight=job["stress_weight"])
    rng = np.random.default_rng(job["seed"])
    everything = ["species_coeffs", "moment_coeffs", "radial_coeffs"]
    linear = [{"method": "LLS", "optimized": ["species_coeffs", "moment_coeffs"]}]
    steps: list[dict[str, Any]] = [{"method": "Level2MTP", "optimized": ["species_coeffs", "radial_coeffs"]}, *linear]
    if job["optimizer"] == "bfgs" and job["max_iter"] > 0:
        steps.append({"method": "minimize", "optimized": everything,
                      "kwargs": {"method": "BFGS", "jac": True, "options": {"maxiter": job["max_iter"]}}})
    report(f"level {job['level']}: {data.alpha_scalar_moments} basis functions, "
           f"{len(subset)} of {len(images)} configurations in the nonlinear fit")
    Trainer(data, rng=rng, engine=job["engine"], loss=setting, steps=steps).train(subset)
    iterations = job["max_iter"] if job["optimizer"] == "bfgs" else 0
    if job["optimizer"] == "lm" and job["max_iter"] > 0:
        data.optimized = everything
        loss = LossFunction(subset, data, setting, engine=job["engine"])
        iterations, _ = _levenberg_marquardt(loss, setting, job["max_iter"], report)
        del loss
    report(f"linear refit on all {len(images)} configurations")
    final = Trainer(data, rng=rng, engine=job["engine"], loss=setting, steps=linear).train(images)
    value = float(final.calc_loss_function())
    output = Path(job["output"])
    write_mtp(output, data, legacy=True)  # motep 0.2.0 cannot read back its default layout
    read_mtp(output)  # fail here, not later, if the file does not read back
    Path("result.json").write_text(json.dumps({"iterations": int(iterations), "loss": value,
                                               "wall_time_s": time.perf_counter() - started}) + "\n")
    report(f"done: loss {value:.8e}, written {output}")


# --------------------------------------------------------------------------- MLIP-3 (external binary)

MLIP3_TRAIN_COMMAND = ("{mlp}", "train", "{potential}", "{train}", "--save_to={output}",
                       "--iteration_limit={max_iter}", "--al_mode=nbh")
MLIP3_EFS_COMMAND = ("{mlp}", "calculate_efs", "{potential}", "{input}", "--output_filename={output}")


def mlip3_command(template: Sequence[str], **values: Any) -> list[str]:
    """A command line from a template; every ``{name}`` must be given."""
    try:
        return [part.format(**{k: str(v) for k, v in values.items()}) for part in template]
    except KeyError as error:
        raise TrainingInputError("command", f"the template {list(template)} needs {error.args[0]!r}") from None


_ERROR_SECTIONS = {"Energy": "energy", "Energy per atom": "energy_per_atom", "Forces": "forces"}


def parse_mlip_errors(text: str) -> dict[str, float]:
    """The last "Errors report" of MLIP's output -> RMSEs in meV (``energy_mev_per_atom``,
    ``forces_norm_mev_per_A``: MLIP's force error is per atom, |dF|), counts and maxima.
    """
    start = text.rfind("Errors report")
    if start < 0:
        raise TrainingFailed("no 'Errors report' in MLIP's output")
    section = None
    values: dict[str, float] = {}
    for line in text[start:].splitlines()[1:]:
        stripped = line.strip()
        if stripped.endswith(":") and stripped[:-1] in _ERROR_SECTIONS:
            section = _ERROR_SECTIONS[stripped[:-1]]
            continue
        if stripped.endswith(":") or stripped.startswith("Stresses"):
            section = None
            continue
        if section is None or ("=" not in stripped and not stripped.startswith("Errors checked")):
            continue
        if stripped.startswith("Errors checked for"):
            match = re.search(r"for\s+(\d+)", stripped)
            if match:
                values[f"{section}_count"] = int(match.group(1))
            continue
        key, _, number = stripped.partition("=")
        try:
            value = float(number.split()[0])
        except (ValueError, IndexError):
            continue
        key = " ".join(key.split())
        if key.startswith("RMS absolute"):
            values[f"{section}_rms"] = value
        elif key.startswith("Maximal absolute"):
            values[f"{section}_max"] = value
    if "energy_per_atom_rms" not in values or "forces_rms" not in values:
        raise TrainingFailed("MLIP's errors report has no energy-per-atom or force RMS line")
    return {
        "energy_mev_per_atom": values["energy_per_atom_rms"] * 1000.0,
        "forces_norm_mev_per_A": values["forces_rms"] * 1000.0,
        "n_configurations": values.get("energy_per_atom_count", values.get("energy_count", 0)),
        "n_atoms": values.get("forces_count", 0),
        "energy_max_mev_per_atom": values.get("energy_per_atom_max", float("nan")) * 1000.0,
        "forces_max_mev_per_A": values.get("forces_max", float("nan")) * 1000.0,
    }


def _mlp_binary(mlp: str | os.PathLike | None) -> str:
    mlp = mlp if mlp is not None else os.environ.get("DG_MLP_BINARY")
    if not mlp:
        raise TrainingUnavailable("MLIP-3 is not configured: set DG_MLP_BINARY (or pass mlp=) to the path of its "
                                  "`mlp` executable; MLIP-3 is in no package registry (https://gitlab.com/ashapeev/mlip-3)")
    resolved = str(mlp) if Path(mlp).is_file() else shutil.which(str(mlp))
    if resolved is None:
        raise TrainingUnavailable(f"MLIP-3 binary {str(mlp)!r} not found")
    return resolved


def train_mlip3(
    train: Sequence[Atoms],
    *,
    workdir: str | os.PathLike,
    level: int = 8,
    species: Sequence[str] | str | None = None,
    min_dist: float = 2.0,
    max_dist: float = 5.0,
    radial_basis_size: int = 8,
    max_iter: int = 1000,
    test: Sequence[Atoms] | None = None,
    mlp: str | os.PathLike | None = None,
    train_command: Sequence[str] = MLIP3_TRAIN_COMMAND,
    efs_command: Sequence[str] = MLIP3_EFS_COMMAND,
    name: str = "pot.almtp",
    timeout: float | None = None,
) -> TrainedModel:
    """Train with MLIP-3's ``mlp train`` from a generated level-``level`` template.

    Train errors come from MLIP's report (``parse_mlip_errors``); test errors from ``efs_command``
    (energies and forces of the test set written to a ``.cfg``, compared here with :func:`rmse`).
    """
    started = time.perf_counter()
    binary = _mlp_binary(mlp)
    level = _check_level(level)
    _check_radial(min_dist, max_dist, radial_basis_size)
    if isinstance(max_iter, bool) or not isinstance(max_iter, (int, np.integer)) or max_iter < 0:
        raise TrainingInputError("max_iter", f"needs an integer >= 0, got {max_iter!r}")
    species = _species_of(list(train or []) + list(test or []), species)
    train = _check_set(train, "train", species, allow_empty=False)
    test = _check_set(test, "test", species, allow_empty=True)
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / "train.log"
    log.write_text("")
    write_mtp_template(workdir / "init.almtp", level, len(species), min_dist=min_dist, max_dist=max_dist,
                       radial_basis_size=radial_basis_size)
    _write_cfg_file(workdir / "train.cfg", train, species)
    output = workdir / name
    command = mlip3_command(train_command, mlp=binary, potential="init.almtp", train="train.cfg", output=name,
                            max_iter=max_iter)
    _run_logged(command, workdir, log, timeout)
    if not output.is_file():
        raise TrainingFailed(f"{' '.join(command)} wrote no {output} (log: {log})")
    errors: dict[str, dict[str, float] | None] = {"train": parse_mlip_errors(log.read_text(errors="replace")),
                                                  "test": None}
    if test:
        from formats.mtp import read_cfg

        _write_cfg_file(workdir / "test.cfg", test, species)
        command = mlip3_command(efs_command, mlp=binary, potential=name, input="test.cfg", output="test_efs.cfg")
        _run_logged(command, workdir, log, timeout)
        with open(workdir / "test_efs.cfg") as handle:
            predicted = read_cfg(handle, species)
        if len(predicted) != len(test):
            raise TrainingFailed(f"{' '.join(command)} returned {len(predicted)} of {len(test)} configurations")
        errors["test"] = rmse(test, [a.get_potential_energy() / len(a) for a in predicted],
                              [a.get_forces() for a in predicted])
    model = TrainedModel(path=output, kind="mlip3", species=species, n_train=len(train), n_test=len(test),
                         rmse=errors, engine=f"MLIP-3 ({binary})", wall_time_s=time.perf_counter() - started,
                         level=level, settings={"min_dist": min_dist, "max_dist": max_dist,
                                                "radial_basis_size": radial_basis_size, "max_iter": max_iter,
                                                "train_command": list(train_command)}, log=log)
    model.save()
    return model


# --------------------------------------------------------------------------- ACE (pacemaker)


def pacemaker_input(species: Sequence[str], *, cutoff: float = 5.0, n_functions: int = 72, max_iter: int = 2000,
                    kappa: float = 0.01, test_size: float = 0.0, seed: int = 0,
                    dataset: str = "train.pckl.gzip", test_dataset: str | None = None) -> dict[str, Any]:
    """pacemaker's ``input.yaml`` as a dict (the paper's W settings: cutoff 5 A, 72 functions, kappa 0.01)."""
    if not (np.isfinite(cutoff) and cutoff > 0):
        raise TrainingInputError("cutoff", f"needs a positive distance in A, got {cutoff}")
    data: dict[str, Any] = {"filename": dataset}
    if test_dataset:
        data["test_filename"] = test_dataset
    elif test_size:
        data["test_size"] = float(test_size)
    return {
        "cutoff": float(cutoff),
        "seed": int(seed),
        "metadata": {"origin": "defect-genome mlip.train"},
        "potential": {
            "deltaSplineBins": 0.001,
            "elements": list(species),
            "embeddings": {"ALL": {
                "npot": "FinnisSinclairShiftedScaled",
                "fs_parameters": [1, 1, 1, 0.5, 1, 0.75, 1, 0.25, 1, 0.125, 1, 0.375, 1, 0.875, 1, 2],
                "ndensity": 8}},
            "bonds": {"ALL": {"radbase": "SBessel", "radparameters": [5.25], "rcut": float(cutoff), "dcut": 0.01,
                              "NameOfCutoffFunction": "cos"}},
            "functions": {"number_of_functions_per_element": int(n_functions),
                          "ALL": {"nradmax_by_orders": [15, 3, 2, 1], "lmax_by_orders": [0, 4, 2, 0]}},
        },
        "data": data,
        "fit": {"loss": {"kappa": float(kappa), "L1_coeffs": 1e-8, "L2_coeffs": 1e-8},
                "optimizer": "BFGS", "maxiter": int(max_iter), "repulsion": "auto"},
        "backend": {"evaluator": "tensorpot", "batch_size": 100, "display_step": 50},
    }


def _pacemaker_available(pacemaker: str | None) -> str:
    binary = shutil.which(pacemaker or "pacemaker") or (
        str(Path(sys.executable).with_name("pacemaker")) if Path(sys.executable).with_name("pacemaker").is_file()
        else None)
    if binary is None:
        raise TrainingUnavailable("pacemaker is not installed: pip install python-ace (and tensorpotential)")
    import importlib.util

    if importlib.util.find_spec("tensorpotential") is None:
        raise TrainingUnavailable("pacemaker is installed but cannot fit: its TensorFlow backend (tensorpotential, "
                                  "tensorflow) is not installed")
    return binary


def train_ace(
    train: Sequence[Atoms],
    *,
    workdir: str | os.PathLike,
    species: Sequence[str] | str | None = None,
    cutoff: float = 5.0,
    n_functions: int = 72,
    max_iter: int = 2000,
    test: Sequence[Atoms] | None = None,
    seed: int = 0,
    pacemaker: str | None = None,
    timeout: float | None = None,
) -> TrainedModel:
    """Fit an ACE potential with pacemaker's CLI; errors computed with pyace's calculator."""
    import yaml

    from .export import write_pacemaker

    started = time.perf_counter()
    binary = _pacemaker_available(pacemaker)
    species = _species_of(list(train or []) + list(test or []), species)
    train = _check_set(train, "train", species, allow_empty=False)
    test = _check_set(test, "test", species, allow_empty=True)
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / "train.log"
    log.write_text("")
    with open(workdir / "train.pckl.gzip", "wb") as handle:
        write_pacemaker(handle, train)
    settings = pacemaker_input(species, cutoff=cutoff, n_functions=n_functions, max_iter=max_iter, seed=seed)
    (workdir / "input.yaml").write_text(yaml.safe_dump(settings, sort_keys=False))
    _run_logged([binary, "input.yaml", "--no-predict"], workdir, log, timeout)
    output = workdir / "output_potential.yaml"
    if not output.is_file():
        raise TrainingFailed(f"pacemaker wrote no {output} (log: {log})")
    from pyace import PyACECalculator

    errors: dict[str, dict[str, float] | None] = {}
    for label, images in (("train", train), ("test", test)):
        if not images:
            errors[label] = None
            continue
        energies, forces = [], []
        for atoms in images:
            work = Atoms(atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
            work.calc = PyACECalculator(str(output))
            energies.append(work.get_potential_energy() / len(work))
            forces.append(work.get_forces())
        errors[label] = rmse(images, energies, forces)
    model = TrainedModel(path=output, kind="ace", species=species, n_train=len(train), n_test=len(test),
                         rmse=errors, engine=_engine_version("python-ace"), wall_time_s=time.perf_counter() - started,
                         settings={"cutoff": cutoff, "n_functions": n_functions, "max_iter": max_iter}, log=log)
    model.save()
    return model


if __name__ == "__main__":  # the training subprocess: python -m mlip.train mtp-worker job.json
    if len(sys.argv) != 3 or sys.argv[1] != "mtp-worker":
        sys.exit("usage: python -m mlip.train mtp-worker job.json")
    _mtp_worker(sys.argv[2])
