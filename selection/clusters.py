"""Cluster cut: spheres around selected atoms of a snapshot, periodic images unwrapped.

A sphere of radius r (default 8 A, the authors' cut: 100-200 atoms in bcc W)
around each selected atom; every periodic image inside the sphere is taken,
so a sphere larger than the cell contains several images of a source atom.
:func:`pad_vacuum` puts a cluster in a periodic box with vacuum on every side
(default 8 A): the paper's "C" dataset (MLIP-3 style).

Merging rule: by default (``merge_distance`` 0) every centre gets its own
cluster, the paper's cut. With ``merge_distance`` > 0 two centres are *linked*
when the (minimum-image) distance between them is below it (the radius: each
centre lies inside the other's sphere). Linked centres form groups by
transitivity (single linkage); each group gives one cluster, the union of its
members' spheres, with every sphere unwrapped in the frame of the group's
first centre (the first in the order given). Atoms present in several spheres
appear once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from ase import Atoms

__all__ = ["Cluster", "cut_clusters", "pad_vacuum", "sphere"]


@dataclass
class Cluster:
    """One cut cluster.

    ``atoms``: non-periodic, positions relative to ``centre_position`` (the
    first centre at the origin); ``atoms.arrays["source_index"]`` and
    ``atoms.arrays["centre"]`` (bool, the selected atoms) are set too.
    ``centre_indices``: indices of the selected atoms in the source snapshot
    (the first one is the frame's origin). ``source_indices``: source index of
    every cluster atom; ``image_shifts``: its periodic image (integer cell
    vector multiples), so source position + shift @ cell - centre_position is
    the cluster position. ``centre_position``: source position of the first
    centre. ``source``: the snapshot's label (``atoms.info["source"]`` or the
    ``source`` argument).
    """

    atoms: Atoms
    centre_indices: list[int]
    source_indices: np.ndarray
    image_shifts: np.ndarray
    centre_position: np.ndarray
    radius: float
    source: str | None = None
    info: dict = field(default_factory=dict)

    @property
    def centre_cluster_indices(self) -> list[int]:
        """Positions of the selected centres among the cluster's atoms, in ``centre_indices`` order."""
        flagged = np.flatnonzero(self.atoms.arrays["centre"])
        by_source = {int(self.source_indices[k]): int(k) for k in flagged}
        return [by_source[int(c)] for c in self.centre_indices]


def _full_cell(atoms: Atoms) -> tuple[np.ndarray, np.ndarray]:
    """A non-singular cell: periodic vectors as given; missing non-periodic vectors filled with unit normals."""
    cell = np.array(atoms.cell[:], dtype=float)
    pbc = np.asarray(atoms.pbc, dtype=bool)
    for k in range(3):
        if pbc[k] and np.linalg.norm(cell[k]) == 0.0:
            raise ValueError(f"atoms are periodic along axis {k} but the cell vector {k} is zero")
    if abs(np.linalg.det(cell)) < 1e-9:
        # replace zero (non-periodic) vectors by unit vectors orthogonal to the others
        for k in range(3):
            if np.linalg.norm(cell[k]) < 1e-12:
                others = [cell[j] for j in range(3) if j != k and np.linalg.norm(cell[j]) > 1e-12]
                if len(others) == 2:
                    normal = np.cross(others[0], others[1])
                    cell[k] = normal / np.linalg.norm(normal)
                else:
                    cell[k] = np.eye(3)[k]
        if abs(np.linalg.det(cell)) < 1e-9:  # degenerate (e.g. several zero vectors)
            for k in range(3):
                if not pbc[k]:
                    cell[k] = np.eye(3)[k]
        if abs(np.linalg.det(cell)) < 1e-9:
            raise ValueError("cannot build a 3D frame from the cell; give non-periodic directions a cell vector")
    return cell, pbc


def sphere(atoms: Atoms, centre: np.ndarray, radius: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All atoms (every periodic image) within ``radius`` of the point ``centre``.

    Returns source indices, integer image shifts (n x 3) and displacement
    vectors from ``centre`` (n x 3). Exact for any cell shape: an image within
    r has |fractional offset along k| <= r / h_k (h_k the spacing of the
    lattice planes), which bounds the images to visit.
    """
    if radius <= 0:
        raise ValueError(f"radius must be positive, got {radius}")
    cell, pbc = _full_cell(atoms)
    inverse = np.linalg.inv(cell)
    fractional = (np.asarray(atoms.positions) - np.asarray(centre, dtype=float)) @ inverse
    base = np.zeros_like(fractional)
    base[:, pbc] = -np.floor(fractional[:, pbc] + 0.5)  # wrap periodic offsets into [-0.5, 0.5)
    wrapped = fractional + base
    spacing = 1.0 / np.linalg.norm(inverse, axis=0)  # h_k
    reach = radius / spacing  # max |fractional offset| of an image within the radius
    keep = np.ones(len(atoms), dtype=bool)
    ranges = []
    for k in range(3):
        if pbc[k]:
            n = int(np.floor(reach[k] + 0.5))
            ranges.append(range(-n, n + 1))
            if n == 0:
                keep &= np.abs(wrapped[:, k]) <= reach[k] + 1e-12
        else:
            ranges.append(range(0, 1))
            keep &= np.abs(wrapped[:, k]) <= reach[k] + 1e-12
    candidates = np.flatnonzero(keep)
    indices, shifts, vectors = [], [], []
    limit = radius * (1.0 + 1e-12)
    for nx in ranges[0]:
        for ny in ranges[1]:
            for nz in ranges[2]:
                shift = np.array([nx, ny, nz], dtype=float)
                offset = wrapped[candidates] + shift
                displacement = offset @ cell
                inside = np.einsum("ij,ij->i", displacement, displacement) <= limit * limit
                if np.any(inside):
                    chosen = candidates[inside]
                    indices.append(chosen)
                    shifts.append(base[chosen] + shift)
                    vectors.append(displacement[inside])
    if not indices:
        return np.zeros(0, dtype=int), np.zeros((0, 3), dtype=int), np.zeros((0, 3))
    all_indices = np.concatenate(indices)
    all_shifts = np.rint(np.vstack(shifts)).astype(int)
    all_vectors = np.vstack(vectors)
    order = np.lexsort((all_shifts[:, 2], all_shifts[:, 1], all_shifts[:, 0], all_indices))
    return all_indices[order], all_shifts[order], all_vectors[order]


def _min_image(atoms: Atoms, i: int, j: int) -> tuple[np.ndarray, np.ndarray]:
    """Shortest vector from atom i to an image of atom j, and that image's shift."""
    cell, pbc = _full_cell(atoms)
    inverse = np.linalg.inv(cell)
    d = (atoms.positions[j] - atoms.positions[i]) @ inverse
    base = np.where(pbc, -np.floor(d + 0.5), 0.0)
    best, best_shift = None, None
    for nx in (-1, 0, 1) if pbc[0] else (0,):
        for ny in (-1, 0, 1) if pbc[1] else (0,):
            for nz in (-1, 0, 1) if pbc[2] else (0,):
                shift = base + np.array([nx, ny, nz])
                vector = (d + shift) @ cell
                if best is None or vector @ vector < best @ best:
                    best, best_shift = vector, shift
    assert best is not None and best_shift is not None  # the loops run at least once (shift 0)
    return best, np.rint(best_shift).astype(int)


def _groups(atoms: Atoms, centres: list[int], merge_distance: float) -> list[list[int]]:
    parent = list(range(len(centres)))

    def find(k: int) -> int:
        while parent[k] != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k

    for a in range(len(centres)):
        for b in range(a + 1, len(centres)):
            vector, _ = _min_image(atoms, centres[a], centres[b])
            if np.linalg.norm(vector) < merge_distance:
                ra, rb = find(a), find(b)
                if ra != rb:
                    parent[max(ra, rb)] = min(ra, rb)
    groups: dict[int, list[int]] = {}
    for k in range(len(centres)):
        groups.setdefault(find(k), []).append(centres[k])
    return [groups[root] for root in sorted(groups)]


def cut_clusters(
    atoms: Atoms,
    centres: Sequence[int],
    radius: float = 8.0,
    merge_distance: float = 0.0,
    source: str | None = None,
) -> list[Cluster]:
    """Clusters of radius ``radius`` around the atoms ``centres`` of ``atoms`` (see the module's merging rule).

    ``merge_distance`` 0 gives one cluster per centre. Per-atom arrays of the
    snapshot (e.g. ``gamma``) are carried over to the cluster atoms.
    """
    centres = [int(c) for c in centres]
    n = len(atoms)
    bad = [c for c in centres if not 0 <= c < n]
    if bad:
        raise ValueError(f"centre indices {bad} outside 0..{n - 1}")
    if len(set(centres)) != len(centres):
        raise ValueError("centre indices repeat")
    if radius <= 0:
        raise ValueError(f"radius must be positive, got {radius}")
    if not merge_distance >= 0:
        raise ValueError(f"merge_distance must be >= 0, got {merge_distance}")
    groups = _groups(atoms, centres, float(merge_distance)) if merge_distance > 0 else [[c] for c in centres]
    label = source if source is not None else atoms.info.get("source")
    _full_cell(atoms)  # raises for a periodic axis whose cell vector is zero
    clusters = []
    for group in groups:
        first = group[0]
        origin = atoms.positions[first].copy()
        members: dict[tuple[int, int, int, int], np.ndarray] = {}
        offsets = {}
        for centre in group:
            centre_vector = np.zeros(3) if centre == first else _min_image(atoms, first, centre)[0]
            offsets[centre] = centre_vector
            indices, shifts, vectors = sphere(atoms, origin + centre_vector, radius)
            # sphere()'s shifts are absolute image shifts of each atom, whatever the centre point
            for index, shift, vector in zip(indices, shifts, vectors + centre_vector):
                members.setdefault((int(index), int(shift[0]), int(shift[1]), int(shift[2])), vector)
        keys = sorted(members)
        source_indices = np.array([k[0] for k in keys], dtype=int)
        image_shifts = np.array([k[1:] for k in keys], dtype=int).reshape(-1, 3)
        positions = np.array([members[k] for k in keys]).reshape(-1, 3)
        cluster_atoms = Atoms(
            symbols=[atoms.get_chemical_symbols()[i] for i in source_indices],
            positions=positions,
            pbc=False,
        )
        for name, values in atoms.arrays.items():
            if name in ("numbers", "positions"):
                continue
            cluster_atoms.arrays[name] = np.asarray(values)[source_indices].copy()
        cluster_atoms.arrays["source_index"] = source_indices.copy()
        is_centre = np.zeros(len(source_indices), dtype=bool)
        for centre in group:
            hits = np.flatnonzero(source_indices == centre)
            own = hits[np.argmin(np.linalg.norm(positions[hits] - offsets[centre], axis=1))]
            is_centre[own] = True
        cluster_atoms.arrays["centre"] = is_centre
        cluster_atoms.info["centre_indices"] = list(group)
        cluster_atoms.info["cut_radius"] = float(radius)
        if label is not None:
            cluster_atoms.info["source"] = f"{label}:cluster:{'+'.join(map(str, group))}"
        clusters.append(
            Cluster(
                atoms=cluster_atoms,
                centre_indices=list(group),
                source_indices=source_indices,
                image_shifts=image_shifts,
                centre_position=origin,
                radius=float(radius),
                source=label,
                info={"centre_offsets": {int(c): offsets[c].tolist() for c in group}},
            )
        )
    return clusters


def pad_vacuum(cluster_atoms: Atoms, vacuum: float = 8.0) -> Atoms:
    """The cluster in an orthorhombic periodic box with ``vacuum`` A on every side (the paper's C dataset).

    Periodic (pbc True) because plane-wave DFT needs a periodic cell; the
    vacuum separates the images.
    """
    if vacuum < 0:
        raise ValueError(f"vacuum must be >= 0, got {vacuum}")
    if len(cluster_atoms) == 0:
        raise ValueError("the cluster has no atoms")
    padded = cluster_atoms.copy()
    padded.set_cell(np.zeros((3, 3)))
    padded.center(vacuum=vacuum)
    padded.pbc = True
    padded.info["vacuum"] = float(vacuum)
    return padded
