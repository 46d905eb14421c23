"""Training datasets: reading user files, the generated basic dataset B, and a SOAP/PCA map.

- :func:`read_dataset`: extended XYZ, MTP ``.cfg`` and pacemaker ``.pckl.gzip`` -> ``list[ase.Atoms]``
  with energies and forces (and stress when present) on a SinglePointCalculator and ``info["source"]``
  naming the file and entry: a thin use of :func:`formats.read` (the registry of the formats), which
  new code calls directly.
- :func:`basic_dataset`: the paper's "B" dataset from domain knowledge for one
  element (bulk under +-2 % strains, rattled bulk, vacancy, self-interstitial,
  low-index surfaces, a Sigma5 grain boundary), small cells (<= ~130 atoms),
  unlabelled (DFT labels them later).
- :func:`soap_pca_map`: SOAP vectors (dscribe; paper's r_cut 5, n_max 12,
  l_max 10) of the atoms of several datasets (B, C, P) projected on their
  first principal components, as JSON-ready data for the dashboard.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping, Sequence
from typing import IO, TYPE_CHECKING, Any

import numpy as np
from ase import Atoms
from ase.build import bcc100, bcc110, bcc111, bulk, fcc100, fcc110, fcc111
from ase.data import atomic_numbers

from formats import DatasetError, format_for, read

if TYPE_CHECKING:
    from md.potentials import Potential

    from .material import Material

__all__ = [
    "DatasetError",
    "alloy_dataset",
    "basic_dataset",
    "detect_format",
    "generated_dataset",
    "read_dataset",
    "soap_pca_map",
]

# DatasetError (a dataset file cannot be read, or generation settings are invalid) is formats.DatasetError


# --------------------------------------------------------------------------- reading


def detect_format(name: str) -> str:
    """Dataset format from a file name, as :func:`read_dataset` names it: ``.xyz``/``.extxyz`` -> extxyz,
    ``.cfg`` -> cfg, ``.pckl.gzip``/``.pkl.gz``/``.pckl`` -> pacemaker (:func:`formats.format_for` gives
    the registry's :class:`formats.Format`, ``mtp`` for ``.cfg``)."""
    fmt = format_for(name, None, what="dataset format")
    return "cfg" if fmt.name == "mtp" else fmt.name


def read_dataset(
    path_or_file: str | os.PathLike | IO[Any],
    format: str | None = None,
    species: Sequence[str] | None = None,
    allow_pickle: bool = True,
) -> list[Atoms]:
    """Configurations of a dataset file (path or open file object): :func:`formats.read`.

    ``format``: ``extxyz``, ``cfg`` (or ``mtp``) or ``pacemaker``; by default from the file
    name. ``species``: element of each MTP type (``.cfg`` only; types are
    0-based). Text formats accept text or binary file objects; pacemaker
    pickles need a binary one. ``allow_pickle=False`` refuses pacemaker pickles (unpickling a file
    runs whatever code it names: never do it for a file from someone else); unlike :func:`formats.read`,
    pickles are allowed by default here.
    """
    return read(path_or_file, format, allow_pickle=allow_pickle, species=species)


# --------------------------------------------------------------------------- basic dataset B

_CUBIC = ("bcc", "fcc")


def _cubic_cell(element: str, lattice: str, a: float, repeat: int) -> Atoms:
    return bulk(element, lattice, a=a, cubic=True).repeat((repeat, repeat, repeat))


def _strained(atoms: Atoms, strain: np.ndarray) -> Atoms:
    out = atoms.copy()
    out.set_cell(np.asarray(atoms.cell[:]) @ (np.eye(3) + strain), scale_atoms=True)
    return out


def _add_image(images: list[Atoms], atoms: Atoms, source: str, max_atoms: int) -> None:
    """Append a set-B cell named ``basic:<source>``; DatasetError above ``max_atoms``."""
    if len(atoms) > max_atoms:
        raise DatasetError(f"{source} has {len(atoms)} atoms > max_atoms {max_atoms}")
    atoms.info["source"] = f"basic:{source}"
    images.append(atoms)


def _strained_set(perfect: Atoms, strains: Sequence[float]) -> list[tuple[Atoms, str]]:
    """Set B's strained crystals: hydrostatic, uniaxial xx and shear xy of each strain, with their sources."""
    out = []
    for eps in strains:
        out.append((_strained(perfect, eps * np.eye(3)), f"bulk-hydrostatic{eps:+.3f}"))
        out.append((_strained(perfect, np.diag([eps, 0.0, 0.0])), f"bulk-uniaxial-xx{eps:+.3f}"))
        shear = np.zeros((3, 3))
        shear[0, 1] = shear[1, 0] = eps / 2.0
        out.append((_strained(perfect, shear), f"bulk-shear-xy{eps:+.3f}"))
    return out


def _interstitial(element: str, lattice: str, a: float, repeat: int) -> Atoms:
    """Self-interstitial: a <111> crowdion in bcc (the stable SIA of bcc transition metals), a <100> dumbbell in fcc.

    bcc: one atom is added to a periodic <111> row of the cubic cell and the
    row's atoms are spaced evenly (the crowdion's compression spread along the
    row), which keeps every distance physical without a potential.
    """
    atoms = _cubic_cell(element, lattice, a, repeat)
    centre = np.full(3, repeat * a / 2.0)
    site = int(np.argmin(np.linalg.norm(atoms.positions - centre, axis=1)))
    origin = atoms.positions[site].copy()
    if lattice == "fcc":
        direction = np.array([1.0, 0.0, 0.0])
        half = 0.3 * a
        atoms.positions[site] = origin - half * direction
        atoms += Atoms(element, positions=[origin + half * direction])
        return atoms
    direction = np.ones(3) / np.sqrt(3.0)
    period = repeat * a * np.sqrt(3.0)  # the <111> row repeats after one body diagonal of the cell
    vectors = atoms.get_distances(site, range(len(atoms)), mic=True, vector=True)
    along = vectors @ direction
    off = np.linalg.norm(vectors - np.outer(along, direction), axis=1)
    row = np.flatnonzero(off < 1e-3 * a)
    row = row[np.argsort(along[row])]
    count = len(row) + 1
    spacing = period / count
    start = along[row][0]
    for j, index in enumerate(row):
        atoms.positions[index] = origin + (start + j * spacing) * direction
    atoms += Atoms(element, positions=[origin + (start + len(row) * spacing) * direction])
    atoms.wrap()
    return atoms


def _surface(element: str, lattice: str, a: float, facet: str, vacuum: float, max_atoms: int) -> Atoms:
    builders = {
        ("bcc", "100"): bcc100,
        ("bcc", "110"): bcc110,
        ("bcc", "111"): bcc111,
        ("fcc", "100"): fcc100,
        ("fcc", "110"): fcc110,
        ("fcc", "111"): fcc111,
    }
    build = builders[(lattice, facet)]
    best = None
    # the largest slab within max_atoms: ~8-12 layers, 2-4 surface cells laterally (ase needs an
    # even second repeat for some orthogonal cells, hence the try)
    for layers in (12, 10, 8, 7, 6, 5):
        for nx, ny in ((3, 4), (4, 4), (3, 3), (2, 4), (3, 2), (2, 2), (2, 1), (1, 2), (1, 1)):
            try:
                candidate = build(element, size=(nx, ny, layers), a=a, vacuum=vacuum / 2.0, orthogonal=True)
            except ValueError:
                continue
            if len(candidate) > max_atoms:
                continue
            lengths = candidate.cell.lengths()[:2]
            # lateral width >= ~2 nearest-neighbour shells; prefer more atoms
            score = (min(lengths) >= 2.0 * a, len(candidate))
            if best is None or score > best[0]:
                best = (score, candidate)
    if best is None:
        raise DatasetError(f"cannot build a ({facet}) {lattice} slab with at most {max_atoms} atoms")
    slab = best[1]
    slab.pbc = True  # periodic slab with a vacuum gap, as DFT sees it
    slab.info.pop("adsorbate_info", None)  # ase.build bookkeeping, not a property of the cell
    return slab


def sigma5_grain_boundary(element: str, lattice: str, a: float, min_width: float = 6.0) -> Atoms:
    """Periodic bicrystal with two Sigma5 (310)[001] symmetric tilt boundaries (normal along x).

    Grain 1 has x = [310], y = [-130], z = [001]; grain 2 is its mirror image
    through the boundary plane. Of two atoms closer than 0.75 nearest-neighbour
    distances across a boundary one is removed. The cell is repeated along
    y and z until both are at least ``min_width`` A wide.
    """
    from ase.lattice.cubic import BodyCenteredCubic, FaceCenteredCubic

    factory = BodyCenteredCubic if lattice == "bcc" else FaceCenteredCubic
    grain = factory(
        symbol=element,
        directions=[[3, 1, 0], [-1, 3, 0], [0, 0, 1]],
        size=(1, 1, 1),
        latticeconstant=a,
        pbc=True,
    )
    lengths = grain.cell.lengths()
    grain = grain.repeat((1, int(np.ceil(min_width / lengths[1])), int(np.ceil(min_width / lengths[2]))))
    lx, ly, lz = np.diag(grain.cell[:])
    first = grain.positions.copy()
    second = grain.positions.copy()
    second[:, 0] = 2.0 * lx - second[:, 0]
    positions = np.vstack([first, second])
    cell = np.diag([2.0 * lx, ly, lz])
    atoms = Atoms(element * len(positions), positions=positions, cell=cell, pbc=True)
    atoms.wrap()
    nearest = a * (np.sqrt(3.0) / 2.0 if lattice == "bcc" else 1.0 / np.sqrt(2.0))
    distances = atoms.get_all_distances(mic=True)
    np.fill_diagonal(distances, np.inf)
    drop: set[int] = set()
    for i, j in zip(*np.nonzero(np.triu(distances < 0.75 * nearest))):
        if i not in drop and j not in drop:
            drop.add(int(j))
    if drop:
        del atoms[sorted(drop)]
    return atoms


def _relax(atoms: Atoms, potential: Potential, fix_cell: bool = True) -> Atoms:
    from md.engine import LammpsSystem

    with LammpsSystem(atoms, potential) as system:
        system.commands(["min_style cg", "minimize 1.0e-10 1.0e-6 2000 20000"])
        relaxed = atoms.copy()
        relaxed.positions = system.positions()
    return relaxed


def basic_dataset(
    element: str,
    lattice: str,
    a: float,
    potential: Potential | None = None,
    seed: int = 0,
    strains: Sequence[float] = (-0.02, -0.01, 0.01, 0.02),
    rattle: Sequence[float] = (0.05, 0.1),
    vacuum: float = 10.0,
    max_atoms: int = 130,
) -> list[Atoms]:
    """The domain-knowledge dataset B for one element (bcc or fcc), a few tens of small cells.

    Contents (``info["source"]`` = ``"basic:<kind>..."``): perfect bulk;
    bulk under hydrostatic, uniaxial (xx) and shear (xy) strains of
    ``strains`` (+-2 % by default); rattled bulk (Gaussian displacements of
    standard deviation ``rattle`` A, two seeds each); a vacancy; a
    self-interstitial dumbbell (<111> bcc, <100> fcc); (100), (110), (111)
    slabs with ``vacuum`` A of vacuum; a Sigma5 (310)[001] tilt boundary
    bicrystal. With ``potential`` (an EAM/MEAM :class:`~md.potentials.Potential`)
    the defect cells (vacancy, interstitial, surfaces, GB) are relaxed at fixed
    cell; without it they are unrelaxed and rattled by 0.02 A. ``seed`` fixes
    all random displacements.
    """
    if element not in atomic_numbers:
        raise DatasetError(f"{element!r} is not a chemical symbol")
    if lattice not in _CUBIC:
        raise DatasetError(
            f"basic_dataset builds bcc and fcc metals, not {lattice!r}; pass your own dataset for other lattices"
        )
    if not a > 0:
        raise DatasetError(f"lattice constant must be positive, got {a}")
    if potential is not None:
        from md.potentials import check_element

        check_element(potential, element)
    rng = np.random.default_rng(seed)
    repeat = 3 if lattice == "bcc" else 2  # 54 / 32 atoms
    images: list[Atoms] = []
    add = functools.partial(_add_image, images, max_atoms=max_atoms)

    perfect = _cubic_cell(element, lattice, a, 2)
    add(perfect.copy(), "bulk")
    for strained, source in _strained_set(perfect, strains):
        add(strained, source)
    for sigma in rattle:
        for _ in range(2):
            cell = _cubic_cell(element, lattice, a, repeat)
            cell.positions += rng.normal(0.0, sigma, cell.positions.shape)
            add(cell, f"bulk-rattled-{sigma:.3f}")

    defects: list[tuple[Atoms, str]] = []
    vacancy = _cubic_cell(element, lattice, a, 3)
    del vacancy[int(np.argmin(np.linalg.norm(vacancy.positions - vacancy.cell.sum(axis=0) / 2.0, axis=1)))]
    defects.append((vacancy, "vacancy"))
    defects.append((_interstitial(element, lattice, a, 3), "interstitial"))
    for facet in ("100", "110", "111"):
        defects.append((_surface(element, lattice, a, facet, vacuum, max_atoms), f"surface-{facet}"))
    defects.append((sigma5_grain_boundary(element, lattice, a), "gb-sigma5-310"))
    for atoms, source in defects:
        if potential is not None:
            atoms = _relax(atoms, potential)
        else:
            atoms.positions += rng.normal(0.0, 0.02, atoms.positions.shape)
        add(atoms, source)
        if source in ("vacancy", "interstitial"):
            rattled = atoms.copy()
            rattled.positions += rng.normal(0.0, rattle[0] if rattle else 0.05, rattled.positions.shape)
            add(rattled, f"{source}-rattled")
    return images


def generated_dataset(material: Material, potential: Potential | None = None, seed: int = 0) -> list[Atoms]:
    """Set B of a campaign's material: :func:`basic_dataset` for one element on bcc or fcc (unchanged, so
    single-element campaigns keep their set), :func:`alloy_dataset` for an alloy or an hcp metal."""
    if not material.is_alloy and material.lattice in _CUBIC:
        return basic_dataset(material.element, material.lattice, material.a, potential=potential, seed=seed)
    return alloy_dataset(material, potential, seed=seed)


# perfect-crystal cells of set B for alloys and hcp, in cells of bulk_crystal (orthohexagonal for hcp)
_ALLOY_CELLS = {"bcc": (3, 3, 3), "fcc": (2, 2, 2), "hcp": (3, 2, 2)}
_ALLOY_SURFACES = {"bcc": ((0, 0, 1), (1, 1, 0)), "fcc": ((0, 0, 1), (1, 1, 1)), "hcp": ("basal", "prismatic")}


def alloy_dataset(
    material: Material,
    potential: Potential | None = None,
    seed: int = 0,
    strains: Sequence[float] = (-0.02, -0.01, 0.01, 0.02),
    rattle: Sequence[float] = (0.05, 0.1),
    max_atoms: int = 130,
) -> list[Atoms]:
    """Set B of an alloy or an hcp metal (sampling.material.Material), small cells (<= ``max_atoms``).

    Contents (``info["source"]`` = ``"basic:<kind>..."``): the perfect crystal (a random solid solution in
    two occupations); hydrostatic, uniaxial (xx) and shear (xy) strains of ``strains``; rattled crystals
    (``rattle`` A, two seeds each); a vacancy on a site of each species; for an alloy an antisite pair (two
    neighbours of different species swapped); two low-index surfaces (bcc (001), (110); fcc (001), (111);
    hcp basal and prismatic; not for the D0_19 prototype, whose slabs are not built yet). With ``potential``
    the defect cells are relaxed at fixed cell. Every occupation and displacement comes from ``seed``.
    Grain boundaries are left to the sampling (a random alloy's boundary cell is too large for B).
    """
    from .builders import slab

    rng = np.random.default_rng(seed)
    if material.prototype is not None:
        from .alloys import conventional_size

        per_axis = {"B2": (3, 3, 3), "L1_2": (2, 2, 2), "L1_0": (2, 2, 2), "D0_19": (2, 1, 2)}[material.prototype]
        size = conventional_size(material.prototype, per_axis)
    else:
        size = _ALLOY_CELLS[material.lattice]
    images: list[Atoms] = []
    add = functools.partial(_add_image, images, max_atoms=max_atoms)

    def occupied(occupation: int) -> Atoms:
        return material.crystal(size, seed=seed * 1000 + occupation)

    perfect = occupied(0)
    add(perfect.copy(), "bulk")
    if material.is_alloy and material.prototype is None:
        add(occupied(1), "bulk-occupation-1")
    for strained, source in _strained_set(perfect, strains):
        add(strained, source)
    for sigma in rattle:
        for k in range(2):
            cell = occupied(2 + k)
            cell.positions += rng.normal(0.0, sigma, cell.positions.shape)
            add(cell, f"bulk-rattled-{sigma:.3f}")

    defects: list[tuple[Atoms, str]] = []
    centre = perfect.cell.sum(axis=0) / 2.0
    by_distance = np.argsort(np.linalg.norm(perfect.positions - centre, axis=1))
    symbols = np.array(perfect.get_chemical_symbols())
    for element in material.species:
        site = int(next(i for i in by_distance if symbols[i] == element))
        vacancy = perfect.copy()
        del vacancy[site]
        defects.append((vacancy, f"vacancy-{element}"))
    if material.is_alloy:
        first = int(by_distance[0])
        distances = perfect.get_distances(first, list(range(len(perfect))), mic=True)
        partner = int(min((i for i in range(len(perfect)) if symbols[i] != symbols[first]),
                          key=lambda i: distances[i]))
        antisite = perfect.copy()
        numbers = antisite.numbers.copy()
        numbers[[first, partner]] = numbers[[partner, first]]
        antisite.numbers = numbers
        defects.append((antisite, "antisite"))
    if material.prototype != "D0_19":
        for surface in _ALLOY_SURFACES[material.lattice]:
            if material.lattice == "hcp":
                built = slab(material.element, "hcp", material.a, surface=str(surface), thickness=8.0,
                             lateral_size=(2, 1), vacuum=5.0, c_over_a=material.c_over_a)
                name = str(surface)
            else:
                built = slab(material.element, material.lattice, material.a, normal=surface, thickness=6.0,  # type: ignore[arg-type]
                             lateral_size=(2, 2), vacuum=5.0)
                name = "".join(str(v) for v in surface)
            surface_cell = material.occupy(built, seed=seed * 1000 + 4, kind="slab")
            surface_cell.pbc = True  # a periodic cell with a 10 A vacuum gap, as DFT and the MLIPs see it
            defects.append((surface_cell, f"surface-{name}"))
    for atoms, source in defects:
        if potential is not None:
            atoms = _relax(atoms, potential)
        else:
            atoms.positions += rng.normal(0.0, 0.02, atoms.positions.shape)
        add(atoms, source)
    return images


# --------------------------------------------------------------------------- SOAP + PCA map


def soap_pca_map(
    datasets: Mapping[str, Sequence[Atoms]],
    r_cut: float = 5.0,
    n_max: int = 12,
    l_max: int = 10,
    species: Sequence[str] | None = None,
    n_components: int = 2,
    max_atoms_per_dataset: int | None = 5000,
    seed: int = 0,
) -> dict:
    """SOAP vectors of every atom of each dataset, projected on their joint principal components.

    The PCA is fitted on the atoms of all datasets together (as in the
    paper's Fig. 3d). ``max_atoms_per_dataset`` subsamples atoms at random
    (fixed ``seed``) to bound the cost. Returns JSON-ready data::

        {"components": n, "explained_variance_ratio": [...],
         "soap": {"r_cut", "n_max", "l_max", "species", "n_features"},
         "points": {name: [[pc1, pc2], ...]},
         "owners": {name: [[structure index, atom index], ...]}}
    """
    try:
        from dscribe.descriptors import SOAP
    except ImportError as error:
        raise ImportError("soap_pca_map needs dscribe: pip install dscribe==2.1.2") from error
    if not datasets:
        raise DatasetError("no datasets to map")
    if species is None:
        species = sorted({s for images in datasets.values() for atoms in images for s in atoms.get_chemical_symbols()})
    species = list(species)
    if not species:
        raise DatasetError("the datasets hold no atoms")
    makers = {
        periodic: SOAP(species=species, r_cut=r_cut, n_max=n_max, l_max=l_max, periodic=periodic)
        for periodic in (False, True)
    }
    rng = np.random.default_rng(seed)
    blocks: dict[str, np.ndarray] = {}
    owners: dict[str, np.ndarray] = {}
    for name, images in datasets.items():
        pairs = np.array([(k, i) for k, atoms in enumerate(images) for i in range(len(atoms))], dtype=int)
        pairs = pairs.reshape(-1, 2)
        if max_atoms_per_dataset is not None and len(pairs) > max_atoms_per_dataset:
            keep = np.sort(rng.choice(len(pairs), max_atoms_per_dataset, replace=False))
            pairs = pairs[keep]
        vectors = []
        for k in np.unique(pairs[:, 0]) if len(pairs) else []:
            atoms = images[int(k)]
            centres = pairs[pairs[:, 0] == k, 1].tolist()
            periodic = bool(np.all(atoms.pbc))
            work = atoms.copy()
            work.calc = None
            if not periodic:
                work.pbc = False
            vectors.append(np.atleast_2d(makers[periodic].create(work, centers=centres)))
        blocks[name] = np.vstack(vectors) if vectors else np.zeros((0, makers[True].get_number_of_features()))
        owners[name] = pairs
    stacked = np.vstack(list(blocks.values()))
    if stacked.shape[0] < 2:
        raise DatasetError("need at least two atoms in total for a PCA map")
    mean = stacked.mean(axis=0)
    _, singular, vt = np.linalg.svd(stacked - mean, full_matrices=False)
    k = min(n_components, vt.shape[0])
    axes = vt[:k]
    # deterministic orientation: the largest loading of each axis positive
    signs = np.sign(axes[np.arange(k), np.argmax(np.abs(axes), axis=1)])
    axes = axes * signs[:, None]
    variance = singular**2
    ratio = (variance[:k] / variance.sum()).tolist() if variance.sum() > 0 else [0.0] * k
    return {
        "components": k,
        "explained_variance_ratio": ratio,
        "soap": {
            "r_cut": r_cut,
            "n_max": n_max,
            "l_max": l_max,
            "species": species,
            "n_features": int(stacked.shape[1]),
        },
        "points": {name: ((block - mean) @ axes.T).tolist() for name, block in blocks.items()},
        "owners": {name: pairs.tolist() for name, pairs in owners.items()},
    }
