"""Voxel grids of labelled configurations, for 3D-CNN surrogates (issue #20).

:func:`voxelize` turns one ``ase.Atoms`` into a float32 grid ``(n_species, nx, ny, nz)``, one channel per
species in the order of ``species``, and a :class:`VoxelFrame` that maps voxels back to space (voxel ``(i, j, k)``
spans ``origin + (i, j, k) @ voxel_vectors`` to ``origin + (i+1, j+1, k+1) @ voxel_vectors``; its centre is at
index + 0.5). ``resolution`` (A) is the target voxel width; a grid is never coarser than it.

Regions:

- ``"cell"``: the periodic cell, ``n_i = ceil(|a_i| / resolution)`` bins along each cell vector (fractional
  coordinates, so triclinic cells work); atoms are wrapped, and translating them by lattice vectors leaves the
  grid unchanged (bit for bit in occupancy mode: indices are taken from fractional coordinates snapped to the
  bin edges within 1e-8 of a bin, then wrapped as integers).
- ``"inner"`` (the TaNbMo paper's *inner bounding box*, ibb): the axis-aligned bounding box of this
  configuration's atoms, no padding, positions as stored (not wrapped); atoms on its faces go in the edge voxels.
  A flat direction (all atoms at one coordinate) gets one voxel of width ``resolution`` centred on them.
- ``"outer"`` (the paper's *outer bounding box*, obb, one box for the whole data set): the bounding box plus
  ``padding`` A on each side (default: ``resolution``, or ``3 * sigma`` in gaussian mode), or the explicit
  ``bounds=(lo, hi)``. :func:`write_voxel_dataset` passes the bounds of *all* its images (plus padding), so
  every outer grid of a file has the same frame and shape, as a CNN needs; ``voxelize`` alone uses the
  configuration's own box.

Box widths are ``extent_i / ceil(extent_i / resolution)`` (<= resolution) so the grid fits the box exactly.

Modes:

- ``"occupancy"``: each atom adds 1 to the voxel containing it; a channel sums to its atom count exactly.
- ``"gaussian"``: each atom adds a 3D Gaussian of width ``sigma`` (A, default ``resolution``) sampled at voxel
  centres on a local stencil (the voxels within 4 sigma of the atom, periodic images folded in for ``"cell"``,
  clipped to the box otherwise), divided by its own sum over those voxels, so each atom contributes exactly 1.

Grid size is capped: ``max_voxels`` bounds the number of grid values (channels x voxels, default
:data:`DEFAULT_MAX_VOXELS` = 20,000,000, 80 MB of float32); a larger grid is a :class:`VoxelError` naming
``resolution`` and ``max_voxels``.

HDF5 layout (:func:`write_voxel_dataset`, read back by :func:`read_voxel_dataset` or by h5py alone):

- root attributes: ``format`` = ``"defect-genome-voxels-1"``, ``count``, ``resolution``, ``mode``,
  ``sigma`` (NaN when unused), ``region``, ``padding`` (NaN when unused), ``species`` and ``channels``
  (JSON lists: channel c is species[c]), ``settings`` (all of these as one JSON object) and ``units``
  (JSON object: quantity -> unit);
- group ``configurations/<k>`` (k = 0, 1, ...; sort numerically): datasets ``grid`` (float32, gzip, chunked),
  ``positions`` (n x 3, A), ``numbers`` (n), ``cell`` (3 x 3, A), ``pbc`` (3), ``origin`` (3, A),
  ``voxel_vectors`` (3 x 3, rows = voxel edges, A) and, when labelled, ``energy`` (eV), ``energy_per_atom``
  (eV/atom), ``forces`` (n x 3, eV/A), ``stress`` (6, eV/A^3, ASE Voigt order xx yy zz yz xz xy, ASE sign),
  ``elastic_constants`` (6 x 6, GPa); every dataset has a ``units`` attribute; group attributes ``source``,
  ``dataset`` (e.g. "B", "C", "P"; absent when unknown) and ``shape``.

Reading with h5py only::

    import h5py, json
    with h5py.File("voxels.h5", "r") as f:
        species = json.loads(f.attrs["species"])
        for k in range(int(f.attrs["count"])):
            g = f[f"configurations/{k}"]
            grid, energy = g["grid"][()], g["energy"][()] if "energy" in g else None

Pure functions on ``ase.Atoms`` and numpy (h5py imported on use); this package imports nothing of the project.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import IO, Any

import numpy as np
from ase import Atoms

__all__ = [
    "DEFAULT_MAX_VOXELS",
    "FORMAT_VERSION",
    "UNITS",
    "VoxelError",
    "VoxelFrame",
    "read_voxel_dataset",
    "voxelize",
    "write_voxel_dataset",
]

FORMAT_VERSION = "defect-genome-voxels-1"
# grid values (channels x voxels): 80 MB of float32, a 128^3 grid of 9 species; a 8,192-atom bcc cell at
# 0.5 A is 92^3 = 0.8 M voxels per channel
DEFAULT_MAX_VOXELS = 20_000_000
# gaussian stencils reach this many sigma; beyond it a Gaussian is < 3.4e-4 of its peak
STENCIL_SIGMAS = 4.0
# fractional bin coordinates this close to a bin edge are put on it, so round-off from a lattice translation
# cannot move an atom sitting on an edge (bcc sites at 1/2) into the neighbouring bin
_SNAP = 1e-8
# a stencil batch holds at most this many (atom, voxel) pairs: bounds the temporary arrays (~100 MB)
_BATCH_PAIRS = 1_000_000
GZIP_LEVEL = 4

UNITS = {
    "grid": "atoms per voxel (occupancy counts or Gaussian weights, each atom sums to 1)",
    "positions": "A",
    "numbers": "1 (atomic number)",
    "cell": "A",
    "pbc": "1 (bool)",
    "origin": "A",
    "voxel_vectors": "A",
    "energy": "eV",
    "energy_per_atom": "eV/atom",
    "forces": "eV/A",
    "stress": "eV/A^3 (Voigt xx yy zz yz xz xy, ASE sign)",
    "elastic_constants": "GPa",
    "resolution": "A",
    "sigma": "A",
    "padding": "A",
}

PathOrFile = str | os.PathLike[str] | IO[bytes]


class VoxelError(ValueError):
    """Settings or configurations that cannot be voxelised or written; the message names the field."""


@dataclass(frozen=True)
class VoxelFrame:
    """Where a grid sits in space: voxel (i, j, k) starts at ``origin + (i, j, k) @ voxel_vectors``."""

    origin: np.ndarray  # (3,), A
    voxel_vectors: np.ndarray  # (3, 3), rows are the voxel edges, A
    shape: tuple[int, int, int]
    region: str
    mode: str
    sigma: float | None
    resolution: float
    padding: float | None
    species: tuple[str, ...]

    def voxel_coordinates(self, positions: Any) -> np.ndarray:
        """Continuous voxel coordinates of positions (n x 3, A): voxel (i, j, k) holds [i, i+1) x ..."""
        pos = np.asarray(positions, dtype=float).reshape(-1, 3)
        return np.linalg.solve(self.voxel_vectors.T, (pos - self.origin).T).T

    def centres(self) -> np.ndarray:
        """Voxel centres, (nx, ny, nz, 3), A."""
        idx = np.stack(np.meshgrid(*(np.arange(n) + 0.5 for n in self.shape), indexing="ij"), axis=-1)
        return self.origin + idx @ self.voxel_vectors


def _positive(name: str, value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise VoxelError(f"{name} must be a positive number of A, got {value!r}") from None
    if not math.isfinite(number) or number <= 0:
        raise VoxelError(f"{name} must be a positive finite number of A, got {value!r}")
    return number


def _bins(length: float, resolution: float) -> int:
    # the tolerance keeps 2.0 / 0.5 at 4 bins despite round-off; an infinite ratio is caught by the cap
    ratio = length / resolution
    if not math.isfinite(ratio):
        return 2**62
    return max(1, math.ceil(ratio - 1e-9))


def _check_cap(shape: tuple[int, int, int], channels: int, max_voxels: int, resolution: float) -> None:
    total = channels * shape[0] * shape[1] * shape[2]
    if total > max_voxels:
        raise VoxelError(
            f"resolution {resolution} A gives a grid of {channels} x {shape[0]} x {shape[1]} x {shape[2]} = {total} "
            f"values, above max_voxels = {max_voxels}: use a coarser resolution or raise max_voxels")


def _channels(atoms: Atoms, species: Sequence[str]) -> tuple[tuple[str, ...], np.ndarray]:
    names = (species,) if isinstance(species, str) else tuple(species)
    if not names or not all(isinstance(s, str) for s in names) or len(set(names)) != len(names):
        raise VoxelError(f"species must be a non-empty list of distinct chemical symbols, got {species!r}")
    symbols = atoms.get_chemical_symbols()
    unknown = sorted(set(symbols) - set(names))
    if unknown:
        raise VoxelError(f"species {list(names)} does not list {unknown}, present in the configuration")
    lookup = {s: c for c, s in enumerate(names)}
    return names, np.array([lookup[s] for s in symbols], dtype=np.intp)


def voxelize(atoms: Atoms, *, resolution: float, species: Sequence[str], mode: str = "occupancy",
             sigma: float | None = None, region: str = "cell", padding: float | None = None,
             bounds: tuple[Any, Any] | None = None,
             max_voxels: int = DEFAULT_MAX_VOXELS) -> tuple[np.ndarray, VoxelFrame]:
    """One configuration -> (grid float32 (n_species, nx, ny, nz), frame); see the module docstring."""
    resolution = _positive("resolution", resolution)
    if mode not in ("occupancy", "gaussian"):
        raise VoxelError(f"mode must be 'occupancy' or 'gaussian', got {mode!r}")
    if region not in ("cell", "inner", "outer"):
        raise VoxelError(f"region must be 'cell', 'inner' or 'outer', got {region!r}")
    if mode == "gaussian":
        sigma = resolution if sigma is None else _positive("sigma", sigma)
    elif sigma is not None:
        raise VoxelError("sigma is for mode='gaussian' only")
    names, channel = _channels(atoms, species)
    positions = np.asarray(atoms.positions, dtype=float)

    if region == "cell":
        cell = np.asarray(atoms.cell[:], dtype=float)
        if abs(np.linalg.det(cell)) < 1e-9:
            raise VoxelError("region 'cell' needs a cell of non-zero volume; use region 'inner' or 'outer'")
        shape = tuple(_bins(float(np.linalg.norm(a)), resolution) for a in cell)
        origin = np.zeros(3)
        vectors = cell / np.array(shape, dtype=float)[:, None]
        pad_used = None
    else:
        if len(atoms) == 0 and bounds is None:
            raise VoxelError(f"region {region!r} needs atoms (or bounds) to define its box")
        if region == "inner":
            if bounds is not None or padding is not None:
                raise VoxelError("region 'inner' is the atoms' own box: no padding or bounds")
            pad_used = 0.0
        else:
            default = 3.0 * sigma if sigma is not None else resolution
            pad_used = default if padding is None else float(padding)
            if not math.isfinite(pad_used) or pad_used < 0:
                raise VoxelError(f"padding must be a finite number of A >= 0, got {padding!r}")
        if bounds is None:
            lo = positions.min(axis=0) - pad_used
            hi = positions.max(axis=0) + pad_used
        else:
            lo, hi = (np.asarray(b, dtype=float).reshape(3) for b in bounds)
            if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi)) and np.all(hi >= lo)):
                raise VoxelError(f"bounds must be (lo, hi) with lo <= hi, got {bounds!r}")
            if len(atoms) and (np.any(positions < lo - 1e-9) or np.any(positions > hi + 1e-9)):
                raise VoxelError("bounds do not contain every atom")
        extent = hi - lo
        # a flat direction: one voxel of width resolution centred on the atoms
        flat = extent <= 1e-12
        lo = np.where(flat, lo - resolution / 2, lo)
        extent = np.where(flat, resolution, extent)
        shape = tuple(_bins(float(e), resolution) for e in extent)
        origin = lo
        vectors = np.diag(extent / np.array(shape, dtype=float))

    shape3: tuple[int, int, int] = (int(shape[0]), int(shape[1]), int(shape[2]))
    _check_cap(shape3, len(names), max_voxels, resolution)
    frame = VoxelFrame(origin=origin, voxel_vectors=vectors, shape=shape3, region=region, mode=mode,
                       sigma=sigma, resolution=resolution, padding=pad_used, species=names)
    grid = np.zeros((len(names), *shape3), dtype=np.float32)
    if len(atoms) == 0:
        return grid, frame

    u = frame.voxel_coordinates(positions)
    n = np.array(shape3)
    periodic = region == "cell"
    if periodic:
        nearest = np.rint(u)
        u = np.where(np.abs(u - nearest) < _SNAP, nearest, u)
    base = np.floor(u).astype(np.int64)
    base = np.mod(base, n) if periodic else np.clip(base, 0, n - 1)

    if mode == "occupancy":
        flat_index = np.ravel_multi_index(base.T, shape3)
        for c in range(len(names)):
            counts = np.bincount(flat_index[channel == c], minlength=int(np.prod(n)))
            grid[c] = counts.reshape(shape3)
        return grid, frame

    assert sigma is not None
    if periodic:
        # stencils are placed relative to the atom's own (unwrapped) voxel; the integer wrap comes later
        u = u - (np.floor(u).astype(np.int64) - base)
    _gaussian(grid, u, base, channel, frame, sigma, periodic, max_voxels)
    return grid, frame


def _gaussian(grid: np.ndarray, u: np.ndarray, base: np.ndarray, channel: np.ndarray, frame: VoxelFrame,
              sigma: float, periodic: bool, max_voxels: int) -> None:
    vectors = frame.voxel_vectors
    n = np.array(frame.shape)
    # half-width in voxels of the box holding a sphere of STENCIL_SIGMAS sigma: r * |column i of V^-1|
    inverse = np.linalg.inv(vectors)
    reach = np.ceil(STENCIL_SIGMAS * sigma * np.linalg.norm(inverse, axis=0)).astype(np.int64) + 1
    if not periodic:
        reach = np.minimum(reach, n)  # a box never needs more than its own size
    axes = [np.arange(-r, r + 1) for r in reach]
    offsets = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
    if len(offsets) > max_voxels:
        raise VoxelError(f"sigma {sigma} A spans a stencil of {len(offsets)} voxels, above max_voxels = "
                         f"{max_voxels}: use a smaller sigma or a coarser resolution")
    batch = max(1, _BATCH_PAIRS // len(offsets))
    accumulators = np.zeros((grid.shape[0], int(np.prod(n))), dtype=np.float64)
    for start in range(0, len(u), batch):
        stop = min(start + batch, len(u))
        idx = base[start:stop, None, :] + offsets[None, :, :]
        d = (idx + 0.5 - u[start:stop, None, :]) @ vectors
        d2 = np.einsum("bmk,bmk->bm", d, d)
        if periodic:
            idx = np.mod(idx, n)
        else:
            outside = np.any((idx < 0) | (idx >= n), axis=-1)
            d2[outside] = np.inf
            idx = np.clip(idx, 0, n - 1)
        # relative to the nearest voxel centre: no underflow to an all-zero stencil for a tiny sigma
        w = np.exp(-(d2 - d2.min(axis=1, keepdims=True)) / (2.0 * sigma * sigma))
        w /= w.sum(axis=1, keepdims=True)
        flat = np.ravel_multi_index((idx[..., 0], idx[..., 1], idx[..., 2]), frame.shape)
        rows = np.broadcast_to(channel[start:stop, None], flat.shape)
        np.add.at(accumulators, (rows.ravel(), flat.ravel()), w.ravel())
    grid[...] = accumulators.reshape(grid.shape).astype(np.float32)


# ---------------------------------------------------------------------------------------------------------------
# HDF5 data sets


def _labels(atoms: Atoms) -> dict[str, np.ndarray | float]:
    # the calculator's stored results (a SinglePointCalculator's), never a new calculation; then info/arrays
    results = dict(getattr(atoms.calc, "results", None) or {}) if atoms.calc is not None else {}
    labels: dict[str, np.ndarray | float] = {}
    energy = results.get("energy", atoms.info.get("energy"))
    if energy is not None:
        labels["energy"] = float(energy)
    forces = results.get("forces", atoms.arrays.get("forces"))
    if forces is not None:
        labels["forces"] = np.asarray(forces, dtype=float).reshape(len(atoms), 3)
    stress = results.get("stress", atoms.info.get("stress"))
    if stress is not None:
        s = np.asarray(stress, dtype=float)
        if s.shape == (3, 3):
            s = np.array([s[0, 0], s[1, 1], s[2, 2], s[1, 2], s[0, 2], s[0, 1]])
        labels["stress"] = s.reshape(6)
    return labels


def _describe(k: int, atoms: Atoms) -> str:
    source = atoms.info.get("source")
    return f"configuration {k}" + (f" (source {source!r})" if source is not None else "")


def write_voxel_dataset(file: PathOrFile, images: Iterable[Atoms], *, resolution: float, species: Sequence[str],
                        mode: str = "occupancy", sigma: float | None = None, region: str = "cell",
                        padding: float | None = None, max_voxels: int = DEFAULT_MAX_VOXELS,
                        dataset_names: Sequence[str | None] | None = None, require_labels: bool = True) -> int:
    """Voxelise images into one HDF5 file (layout in the module docstring); returns the count written.

    A configuration without an energy is a VoxelError naming its index and source, unless
    ``require_labels=False`` (then what labels there are, possibly none, are stored with the geometry).
    The dataset name is ``dataset_names[k]``, or ``atoms.info["dataset"]`` where that is None or not given.
    """
    import h5py  # on use: reading the grids back never needs this module

    images = list(images)
    if dataset_names is not None and len(dataset_names) != len(images):
        raise VoxelError(f"dataset_names has {len(dataset_names)} entries for {len(images)} configurations")
    labels = [_labels(atoms) for atoms in images]
    if require_labels:
        for k, (atoms, found) in enumerate(zip(images, labels)):
            if "energy" not in found:
                raise VoxelError(f"{_describe(k, atoms)} has no energy (no calculator result, no info['energy']); "
                                 "pass require_labels=False to store geometry only")
    # checked before the file is opened: an error leaves no half-written file behind
    elastic: list[np.ndarray | None] = []
    for k, atoms in enumerate(images):
        value = atoms.info.get("elastic_constants")
        matrix = None if value is None else np.asarray(value, dtype=float)
        if matrix is not None and matrix.shape != (6, 6):
            raise VoxelError(f"{_describe(k, atoms)}: info['elastic_constants'] must be 6 x 6 (GPa), "
                             f"got shape {matrix.shape}")
        elastic.append(matrix)
    bounds = None
    if region == "outer" and images:
        # the paper's obb: one box over every configuration, so all grids share frame and shape
        resolution_ = _positive("resolution", resolution)
        pad = padding if padding is not None else (3.0 * _positive("sigma", sigma if sigma is not None
                                                                       else resolution_)
                                                   if mode == "gaussian" else resolution_)
        pad = float(pad)
        if not math.isfinite(pad) or pad < 0:
            raise VoxelError(f"padding must be a finite number of A >= 0, got {padding!r}")
        present = [np.asarray(a.positions, dtype=float) for a in images if len(a)]
        if present:
            stacked = np.concatenate(present)
            bounds = (stacked.min(axis=0) - pad, stacked.max(axis=0) + pad)
        padding = pad

    voxelised = []
    for k, atoms in enumerate(images):
        try:
            voxelised.append(voxelize(atoms, resolution=resolution, species=species, mode=mode, sigma=sigma,
                                      region=region, padding=padding, bounds=bounds, max_voxels=max_voxels))
        except VoxelError as error:
            raise VoxelError(f"{_describe(k, atoms)}: {error}") from None
    names = tuple(species) if not isinstance(species, str) else (species,)
    first = voxelised[0][1] if voxelised else None
    settings: dict[str, Any] = {
        "resolution": float(resolution), "mode": mode,
        "sigma": first.sigma if first else sigma, "region": region,
        "padding": first.padding if first else padding,
        "species": list(names), "channels": list(names), "max_voxels": int(max_voxels),
    }

    def dataset(group: Any, name: str, data: Any, unit: str, **options: Any) -> None:
        ds = group.create_dataset(name, data=data, track_times=False, **options)
        ds.attrs["units"] = unit

    with h5py.File(file, "w", libver="earliest") as handle:
        handle.attrs["format"] = FORMAT_VERSION
        handle.attrs["count"] = len(images)
        for key in ("resolution", "mode", "region"):
            handle.attrs[key] = settings[key]
        for key in ("sigma", "padding"):
            handle.attrs[key] = float("nan") if settings[key] is None else float(settings[key])
        handle.attrs["species"] = json.dumps(list(names))
        handle.attrs["channels"] = json.dumps(list(names))
        handle.attrs["settings"] = json.dumps(settings, sort_keys=True)
        handle.attrs["units"] = json.dumps(UNITS, sort_keys=True)
        root = handle.create_group("configurations", track_order=True)
        for k, (atoms, found, (grid, frame)) in enumerate(zip(images, labels, voxelised)):
            group = root.create_group(str(k))
            chunks = (1, *(min(s, 64) for s in frame.shape))
            dataset(group, "grid", grid, UNITS["grid"], chunks=chunks, compression="gzip",
                    compression_opts=GZIP_LEVEL, shuffle=True)
            dataset(group, "positions", np.asarray(atoms.positions, dtype=float), "A")
            dataset(group, "numbers", np.asarray(atoms.numbers, dtype=np.int32), UNITS["numbers"])
            dataset(group, "cell", np.asarray(atoms.cell[:], dtype=float), "A")
            dataset(group, "pbc", np.asarray(atoms.pbc, dtype=bool), UNITS["pbc"])
            dataset(group, "origin", frame.origin, "A")
            dataset(group, "voxel_vectors", frame.voxel_vectors, "A")
            if "energy" in found:
                energy = float(found["energy"])
                dataset(group, "energy", energy, "eV")
                if len(atoms):
                    dataset(group, "energy_per_atom", energy / len(atoms), "eV/atom")
            for key in ("forces", "stress"):
                if key in found:
                    dataset(group, key, found[key], UNITS[key])
            if elastic[k] is not None:
                dataset(group, "elastic_constants", elastic[k], "GPa")
            group.attrs["shape"] = np.array(frame.shape, dtype=np.int64)
            source = atoms.info.get("source")
            if source is not None:
                group.attrs["source"] = str(source)
            name = dataset_names[k] if dataset_names is not None else None
            name = atoms.info.get("dataset") if name is None else name
            if name is not None:
                group.attrs["dataset"] = str(name)
    return len(images)


_LABELS = ("energy", "energy_per_atom", "forces", "stress", "elastic_constants")


def read_voxel_dataset(file: PathOrFile) -> list[dict[str, Any]]:
    """A file of :func:`write_voxel_dataset` -> one dict per configuration, in order: ``grid``, ``frame``
    (:class:`VoxelFrame`), ``labels`` (the label datasets present), ``positions``, ``numbers``, ``cell``,
    ``pbc``, ``source`` and ``dataset`` (None when absent)."""
    import h5py

    def text(value: Any) -> str:
        return value.decode() if isinstance(value, bytes) else str(value)

    def optional(value: Any) -> float | None:
        number = float(value)
        return None if math.isnan(number) else number

    out: list[dict[str, Any]] = []
    with h5py.File(file, "r") as handle:
        if text(handle.attrs.get("format", "")) != FORMAT_VERSION:
            raise VoxelError(f"not a {FORMAT_VERSION} file (format attribute {handle.attrs.get('format')!r})")
        species = tuple(json.loads(text(handle.attrs["species"])))
        common: dict[str, Any] = {"region": text(handle.attrs["region"]), "mode": text(handle.attrs["mode"]),
                  "sigma": optional(handle.attrs["sigma"]), "resolution": float(handle.attrs["resolution"]),
                  "padding": optional(handle.attrs["padding"]), "species": species}
        for k in range(int(handle.attrs["count"])):
            group = handle[f"configurations/{k}"]
            shape = tuple(int(s) for s in group.attrs["shape"])
            frame = VoxelFrame(origin=group["origin"][()], voxel_vectors=group["voxel_vectors"][()],
                               shape=(shape[0], shape[1], shape[2]), **common)
            out.append({
                "grid": group["grid"][()],
                "frame": frame,
                "labels": {key: group[key][()] for key in _LABELS if key in group},
                "positions": group["positions"][()],
                "numbers": group["numbers"][()],
                "cell": group["cell"][()],
                "pbc": group["pbc"][()],
                "source": text(group.attrs["source"]) if "source" in group.attrs else None,
                "dataset": text(group.attrs["dataset"]) if "dataset" in group.attrs else None,
            })
    return out
