"""Classification of atoms by common neighbour analysis.

Two flavours, with the integer codes of LAMMPS ``compute cna/atom``
(:data:`STRUCTURE_TYPES`):

* conventional CNA (Faken & Jonsson 1994; LAMMPS ``cna/atom``): one fixed
  cutoff between neighbour shells, :func:`cna_cutoff`; needs the lattice
  constant and loses atoms whose first shell crosses the cutoff (thermal
  vibrations, strain, thermal expansion).
* adaptive CNA (Stukowski, Modelling Simul. Mater. Sci. Eng. 20, 045021
  (2012)): every atom gets its own cutoff from its own nearest neighbours,
  (1 + sqrt 2)/2 times the mean distance of its 12 nearest (fcc, hcp, ico
  test), 1.207 times the lattice constant estimated from its 8 + 6 nearest
  (bcc test). No lattice constant is needed.

Both are implemented here in numpy (:func:`classify`, :func:`adaptive_cna`,
:func:`conventional_cna`), for orthogonal or triclinic cells, each direction
periodic or not (free surfaces, clusters). The bond-signature rules are
LAMMPS's: a neighbour pair counts as 421 (fcc), 422 (hcp), 555 (ico), 444 or
666 (bcc) from its number of common neighbours, of bonds between them and the
largest/smallest number of those bonds per common neighbour.
"""

from __future__ import annotations

import itertools
import math
from typing import TYPE_CHECKING

import numpy as np
from scipy.spatial import cKDTree

if TYPE_CHECKING:
    from ase import Atoms

__all__ = [
    "CNA_METHODS",
    "STRUCTURE_TYPES",
    "adaptive_cna",
    "classify",
    "classify_atoms",
    "cna_cutoff",
    "conventional_cna",
    "count_structure_types",
    "defect_mask",
    "estimate_lattice_constant",
]

# Values of LAMMPS compute cna/atom. LAMMPS gives 5 ("other") both when an atom has neither 12 nor
# 14 neighbours within the cutoff (e.g. the 14 neighbours of a vacancy in bcc, which keep 13) and
# when the count fits but the bond signatures match no pattern; 0 ("unknown") only to atoms outside
# the compute group. The numpy classifiers here give 0 to atoms with too few atoms around them to
# be classified at all (fewer than 12 other atoms in reach, e.g. in a tiny cluster).
STRUCTURE_TYPES: dict[int, str] = {0: "unknown", 1: "fcc", 2: "hcp", 3: "bcc", 4: "ico", 5: "other"}

UNKNOWN, FCC, HCP, BCC, ICO, OTHER = 0, 1, 2, 3, 4, 5
CNA_METHODS = ("acna", "cna")

_PERFECT_TYPE = {"fcc": FCC, "hcp": HCP, "bcc": BCC}
_HALF_ONE_PLUS_SQRT2 = 0.5 * (1.0 + math.sqrt(2.0))  # 1.2071: midway between 1st and 2nd fcc shells / a
_CHUNK = 4096  # atoms per vectorised block (memory: ~14x14x3 doubles per atom)


def cna_cutoff(lattice: str, a: float) -> float:
    """Cutoff for conventional CNA: midway between the shells that define the lattice and the next one.

    fcc: between 1st (a/sqrt 2) and 2nd (a) neighbours, 0.854 a.
    bcc: between 2nd (a) and 3rd (a sqrt 2) neighbours, 1.207 a (8 + 6 neighbours).
    hcp (``a`` the basal lattice constant): the 12 nearest neighbours are at a (6 in the basal
    plane, 6 at sqrt(a^2/3 + c^2/4), = a for the ideal c/a); the next shell is at a sqrt 2 (6),
    so the cutoff is 1.207 a, as for adaptive CNA. Valid while the out-of-plane neighbours stay
    inside it, c/a below about 1.9 (Zn 1.86 and Cd 1.89 are close to that limit).
    """
    if not a > 0:
        raise ValueError(f"lattice constant a must be positive (A), got {a!r}")
    if lattice == "fcc":
        return 0.5 * (1.0 + math.sqrt(0.5)) * a
    if lattice in ("bcc", "hcp"):
        return 0.5 * (1.0 + math.sqrt(2.0)) * a
    raise ValueError(f"lattice must be 'bcc', 'fcc' or 'hcp' for a CNA cutoff, got {lattice!r}")


def defect_mask(structure_type: np.ndarray, lattice: str) -> np.ndarray:
    """True for atoms whose CNA type is not the perfect ``lattice`` (bcc, fcc or hcp)."""
    if lattice not in _PERFECT_TYPE:
        raise ValueError(f"lattice must be one of {', '.join(_PERFECT_TYPE)}, got {lattice!r}")
    return np.asarray(structure_type).astype(int) != _PERFECT_TYPE[lattice]


def count_structure_types(structure_type: np.ndarray) -> dict[str, int]:
    """Number of atoms of each CNA type, every name of STRUCTURE_TYPES present (zeros included)."""
    values = np.asarray(structure_type).astype(int)
    unknown = set(np.unique(values).tolist()) - set(STRUCTURE_TYPES)
    if unknown:
        raise ValueError(f"structure types {sorted(unknown)} are not CNA values {sorted(STRUCTURE_TYPES)}")
    return {name: int(np.count_nonzero(values == value)) for value, name in STRUCTURE_TYPES.items()}


# ---------------------------------------------------------------------------- public entry points


def classify(
    positions: np.ndarray,
    cell: np.ndarray | None = None,
    pbc: bool | tuple[bool, bool, bool] | np.ndarray = False,
    lattice: str | None = None,
    method: str = "acna",
    a: float | None = None,
) -> np.ndarray:
    """Structure type per atom (int32, codes of :data:`STRUCTURE_TYPES`, input order).

    ``positions`` (N x 3, A); ``cell`` rows are the cell vectors (needed along
    periodic directions only; any cell, orthogonal or not); ``pbc`` one bool or
    three. ``method``: ``"acna"`` (adaptive CNA, needs neither ``lattice`` nor
    ``a``) or ``"cna"`` (conventional CNA with the cutoff
    ``cna_cutoff(lattice, a)``, the same as LAMMPS ``compute cna/atom``; ``a``
    defaults to :func:`estimate_lattice_constant`).
    """
    if method == "acna":
        return adaptive_cna(positions, cell, pbc)
    if method == "cna":
        if lattice not in ("bcc", "fcc", "hcp"):
            raise ValueError(f"method 'cna' needs lattice 'bcc', 'fcc' or 'hcp' for its cutoff, got {lattice!r}")
        if a is None:
            a = estimate_lattice_constant(positions, cell, pbc, lattice)
        return conventional_cna(positions, cell, pbc, cna_cutoff(lattice, a))
    raise ValueError(f"method must be one of {', '.join(CNA_METHODS)}, got {method!r}")


def classify_atoms(atoms: Atoms, lattice: str | None = None, method: str = "acna",
                   a: float | None = None) -> np.ndarray:
    """:func:`classify` for an ``ase.Atoms``."""
    return classify(atoms.positions, atoms.cell[:], atoms.pbc, lattice=lattice, method=method, a=a)


def adaptive_cna(
    positions: np.ndarray,
    cell: np.ndarray | None = None,
    pbc: bool | tuple[bool, bool, bool] | np.ndarray = False,
) -> np.ndarray:
    """Adaptive CNA (Stukowski 2012): per-atom cutoffs from each atom's own 12 or 8 + 6 nearest neighbours.

    fcc/hcp/ico are tested on the 12 nearest neighbours with cutoff
    1.2071 x their mean distance; atoms that are none of these are tested for
    bcc on the 14 nearest with cutoff 1.2071 x a_local, a_local the mean of
    the 8 nearest distances / (sqrt 3 / 2) and the next 6 distances. Returns
    int32 codes (:data:`STRUCTURE_TYPES`): 5 for atoms matching no pattern,
    0 for atoms with fewer than 12 neighbours in reach.
    """
    _, distances, vectors = _nearest_neighbours(positions, cell, pbc, k=14)
    n = len(distances)
    types = np.full(n, OTHER, dtype=np.int32)
    available = np.isfinite(distances).sum(axis=1)
    types[available < 12] = UNKNOWN
    for start in range(0, n, _CHUNK):
        block = slice(start, min(start + _CHUNK, n))
        d, v, have = distances[block], vectors[block], available[block]
        t = types[block]
        # Each atom gets the test its shell looks like first and the other one only if that fails
        # (halves the work). In bcc the 13th neighbour is as close as the 12th (second shell); in
        # fcc/hcp it is sqrt 2 further. Stukowski tests fcc/hcp/ico first; an atom passing both
        # tests would need a shell that is fcc-like on 12 and bcc-like on 14 neighbours at once.
        bcc_first = np.zeros(len(d), dtype=bool)
        bcc_first[have >= 14] = d[have >= 14, 12] < 1.2 * d[have >= 14, 11]

        def test_bcc(rows: np.ndarray) -> None:
            if len(rows):
                dd = d[rows]  # noqa: B023  (called in this iteration only)
                a_local = (dd[:, :8].sum(axis=1) / (math.sqrt(3.0) / 2.0) + dd[:, 8:14].sum(axis=1)) / 14.0
                t[rows[_signature_14(v[rows, :14], _HALF_ONE_PLUS_SQRT2 * a_local)]] = BCC  # noqa: B023  (called in this iteration)

        test_bcc(np.flatnonzero(bcc_first))
        rows = np.flatnonzero((have >= 12) & (t == OTHER))
        if len(rows):
            t[rows] = _signature_12(v[rows, :12], _HALF_ONE_PLUS_SQRT2 * d[rows, :12].mean(axis=1))
        test_bcc(np.flatnonzero((have >= 14) & (t == OTHER) & ~bcc_first))
        types[block] = t
    return types


def conventional_cna(
    positions: np.ndarray,
    cell: np.ndarray | None,
    pbc: bool | tuple[bool, bool, bool] | np.ndarray,
    cutoff: float,
) -> np.ndarray:
    """Conventional CNA with one fixed ``cutoff`` (A), the rules and codes of LAMMPS ``compute cna/atom``.

    Atoms with exactly 12 neighbours within the cutoff are tested for fcc, hcp
    and ico, with exactly 14 for bcc; every other atom is 5 ("other").
    """
    if not cutoff > 0:
        raise ValueError(f"cutoff must be positive (A), got {cutoff!r}")
    _points, distances, vectors = _nearest_neighbours(positions, cell, pbc, k=15, min_radius=cutoff)
    n = len(distances)
    types = np.full(n, OTHER, dtype=np.int32)
    count = (distances < cutoff).sum(axis=1)
    for start in range(0, n, _CHUNK):
        block = slice(start, min(start + _CHUNK, n))
        v, c, t = vectors[block], count[block], types[block]
        twelve = np.flatnonzero(c == 12)
        if len(twelve):
            t[twelve] = _signature_12(v[twelve, :12], np.full(len(twelve), float(cutoff)))
        fourteen = np.flatnonzero(c == 14)
        if len(fourteen):
            bcc = _signature_14(v[fourteen, :14], np.full(len(fourteen), float(cutoff)))
            t[fourteen[bcc]] = BCC
        types[block] = t
    return types


def estimate_lattice_constant(
    positions: np.ndarray,
    cell: np.ndarray | None,
    pbc: bool | tuple[bool, bool, bool] | np.ndarray,
    lattice: str,
) -> float:
    """Lattice constant (A) from the median nearest-neighbour distance (bcc: a sqrt3/2, fcc: a/sqrt2, hcp: a)."""
    factor = {"bcc": math.sqrt(3.0) / 2.0, "fcc": math.sqrt(0.5), "hcp": 1.0}
    if lattice not in factor:
        raise ValueError(f"lattice must be 'bcc', 'fcc' or 'hcp', got {lattice!r}")
    _, distances, _ = _nearest_neighbours(positions, cell, pbc, k=1)
    nearest = distances[:, 0][np.isfinite(distances[:, 0])]
    if len(nearest) == 0:
        raise ValueError("cannot estimate a lattice constant: no atom has a neighbour")
    return float(np.median(nearest) / factor[lattice])


# ---------------------------------------------------------------------------- bond signatures


def _bond_statistics(vectors: np.ndarray, cutoff: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per (atom, neighbour j): common neighbours, bonds among them, largest number of bonds of one of them.

    ``vectors`` (M, k, 3) from the atom to its k neighbours; ``cutoff`` (M,).
    Neighbours are bonded when closer than the cutoff (strictly, as LAMMPS).
    LAMMPS also tests the smallest number of bonds per common neighbour; for
    the signatures tested here it follows from the other three (421: all 1;
    422: 2, 1, 1, 0; 444, 555, 666: all 2, since the bonds sum to 2 x nbonds).
    """
    k = vectors.shape[1]
    gram = np.matmul(vectors, vectors.transpose(0, 2, 1))
    norms = np.einsum("mii->mi", gram)
    distance2 = norms[:, :, None] + norms[:, None, :] - 2.0 * gram
    bonded = distance2 < (cutoff * cutoff)[:, None, None]
    bonded[:, np.arange(k), np.arange(k)] = False
    b = bonded.astype(np.float32)
    # (B B)[j, l] = number of neighbours bonded to both j and l; for l a common neighbour of the pair
    # (atom, j) it is the number of bonds l has to the other common neighbours of that pair.
    degree = np.matmul(b, b)
    degree *= b
    common = b.sum(axis=2)
    nbonds = degree.sum(axis=2) * 0.5
    maxbond = degree.max(axis=2)
    return common, nbonds, maxbond


def _signature_12(vectors: np.ndarray, cutoff: np.ndarray) -> np.ndarray:
    """fcc (12 x 421), hcp (6 x 421 + 6 x 422), ico (12 x 555) or other, for 12-neighbour shells."""
    common, nbonds, maxbond = _bond_statistics(vectors, cutoff)
    four_two = (common == 4) & (nbonds == 2)
    n421 = (four_two & (maxbond == 1)).sum(axis=1)
    n422 = (four_two & (maxbond == 2)).sum(axis=1)
    n555 = ((common == 5) & (nbonds == 5) & (maxbond == 2)).sum(axis=1)
    types = np.full(len(vectors), OTHER, dtype=np.int32)
    types[n555 == 12] = ICO
    types[(n421 == 6) & (n422 == 6)] = HCP
    types[n421 == 12] = FCC
    return types


def _signature_14(vectors: np.ndarray, cutoff: np.ndarray) -> np.ndarray:
    """True where a 14-neighbour shell is bcc (6 x 444 + 8 x 666)."""
    common, nbonds, maxbond = _bond_statistics(vectors, cutoff)
    ring = (maxbond == 2) & (common == nbonds)
    n444 = (ring & (common == 4)).sum(axis=1)
    n666 = (ring & (common == 6)).sum(axis=1)
    return (n444 == 6) & (n666 == 8)


# ---------------------------------------------------------------------------- neighbour search


def _complete_cell(cell: np.ndarray | None, pbc: np.ndarray) -> np.ndarray:
    """A non-singular cell whose periodic rows are the given ones (others replaced if degenerate)."""
    full = np.zeros((3, 3)) if cell is None else np.array(cell, dtype=float).reshape(3, 3)
    periodic = np.flatnonzero(pbc)
    if any(np.linalg.norm(full[i]) < 1e-12 for i in periodic):
        raise ValueError("a periodic direction has a zero cell vector; give the cell of the periodic system")
    if abs(np.linalg.det(full)) > 1e-9 * max(np.prod(np.linalg.norm(full, axis=1)), 1e-30):
        return full
    # Replace the non-periodic rows by unit vectors orthogonal to the periodic ones.
    basis = [full[i] for i in periodic]
    for i in np.flatnonzero(~pbc):
        if len(basis) == 2:
            new = np.cross(basis[0], basis[1])
        elif len(basis) == 1:
            trial = np.eye(3)[np.argmin(np.abs(basis[0]))]
            new = np.cross(basis[0], trial)
        else:
            new = np.eye(3)[i]
        full[i] = new / np.linalg.norm(new)
        basis.append(full[i])
    if abs(np.linalg.det(full)) < 1e-12:
        raise ValueError("the periodic cell vectors are linearly dependent")
    return full


def _with_images(wrapped: np.ndarray, frac: np.ndarray, full: np.ndarray, pbc: np.ndarray, skin: float) -> np.ndarray:
    """Real points followed by the periodic images within ``skin`` (A) of the cell."""
    # Distance between the two faces normal to reciprocal vector i is 1/|recip_i|.
    reach = skin * np.linalg.norm(np.linalg.inv(full), axis=0)  # in fractional units, per direction
    repeats = [math.ceil(reach[i]) if pbc[i] else 0 for i in range(3)]
    blocks = [wrapped]
    for shift in itertools.product(*(range(-r, r + 1) for r in repeats)):
        if shift == (0, 0, 0):
            continue
        shifted = frac + np.array(shift, dtype=float)
        inside = np.ones(len(frac), dtype=bool)
        for i in np.flatnonzero(pbc):
            inside &= (shifted[:, i] >= -reach[i]) & (shifted[:, i] < 1.0 + reach[i])
        if inside.any():
            blocks.append(wrapped[inside] + np.array(shift, dtype=float) @ full)
    return np.concatenate(blocks)


def _nearest_neighbours(
    positions: np.ndarray,
    cell: np.ndarray | None,
    pbc: bool | tuple[bool, bool, bool] | np.ndarray,
    k: int,
    min_radius: float = 0.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distances (N, k, ascending; inf where fewer exist) and vectors (N, k, 3) to the k nearest neighbours.

    Periodic images are explicit ghost points, so the result is exact for any
    cell shape and size (several images of one atom can be neighbours). Also
    returns the point array (real atoms first, wrapped into the cell).
    """
    pos = np.asarray(positions, dtype=float)
    if pos.ndim != 2 or pos.shape[1] != 3:
        raise ValueError(f"positions must be an (N, 3) array, got shape {pos.shape}")
    n = len(pos)
    flags = np.broadcast_to(np.asarray(pbc, dtype=bool), (3,)).copy()
    if not np.all(np.isfinite(pos)):
        raise ValueError("positions contain NaN or infinity")
    if n == 0:
        return pos, np.zeros((0, k)), np.zeros((0, k, 3))
    if flags.any():
        full = _complete_cell(cell, flags)
        frac = np.linalg.solve(full.T, pos.T).T
        frac[:, flags] -= np.floor(frac[:, flags])
        frac[:, flags] = np.where(frac[:, flags] >= 1.0, 0.0, frac[:, flags])
        wrapped = frac @ full
        # first guess of the reach: the k-th neighbour distance of a sample, without images
        sample = wrapped[:: max(1, n // 2000)]
        count = min(k + 1, n)
        guess, _ = cKDTree(wrapped).query(sample, k=count)
        guess = np.asarray(guess).reshape(len(sample), count)
        skin = max(float(min_radius), 1.3 * float(np.median(guess[:, -1])) + 0.5)
    else:
        wrapped, frac, full, skin = pos, None, None, 0.0

    for _ in range(64):
        # frac and full are set exactly when some direction is periodic
        points = _with_images(wrapped, frac, full, flags, skin) if frac is not None and full is not None else wrapped
        count = min(k + 1, len(points))
        distances, indices = cKDTree(points).query(wrapped, k=count)
        distances = distances.reshape(n, count)[:, 1:]
        indices = indices.reshape(n, count)[:, 1:]
        if count - 1 < k:  # fewer points than neighbours asked for: pad
            pad = k - (count - 1)
            distances = np.hstack([distances, np.full((n, pad), np.inf)])
            indices = np.hstack([indices, np.full((n, pad), len(points))])
        if not flags.any():
            break
        # Exact when every atom's k-th neighbour lies within the skin: all images closer are present.
        # Otherwise one more pass with the largest k-th distance found (which bounds the true one),
        # or, when some atom found fewer than k (small cell), with a doubled skin.
        if not np.all(np.isfinite(distances[:, -1])):
            skin *= 2.0
            continue
        largest = float(distances[:, -1].max())
        if largest <= skin:
            break
        skin = largest * (1.0 + 1e-9)
    else:
        raise ValueError("cannot find the periodic neighbours: the cell is degenerate or far too large for its atoms")
    padded = np.vstack([points, np.full((1, 3), np.nan)])
    vectors = padded[indices] - wrapped[:, None, :]
    return points, distances, vectors
