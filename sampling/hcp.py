"""hcp structures with extended defects (issue #18): slabs, {10-12} twin bicrystal, basal <a> dislocations.

Frames. The orthohexagonal crystal frame of :func:`sampling.builders.bulk_crystal` is
x = [2-1-10] (a), y = [01-10] (a sqrt 3), z = [0001] (c), with the AB stacking of
``_HCP_ORTHO_BASIS``. Every builder here maps that frame onto its cell frame with a
rotation (rows: the cell axes in the crystal frame, ``info["crystal_axes"]`` as
Miller-Bravais indices) and fills an orthogonal cell with the lattice sites.

The generic builders (:func:`sampling.builders.slab`, :func:`~sampling.builders.bicrystal`,
:func:`~sampling.builders.polycrystal`) call these for ``lattice="hcp"``; the
dislocations have their own entry points, :func:`basal_screw_dislocation` and
:func:`basal_edge_dislocation` (the cubic ones take cubic elastic constants).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from ase import Atoms

from schemas.alloys import IDEAL_C_OVER_A

__all__ = [
    "HCP_SURFACES",
    "basal_edge_dislocation",
    "basal_screw_dislocation",
    "hcp_nearest_neighbour",
    "hcp_slab",
    "hcp_twin_bicrystal",
]

HCP_SURFACES = ("basal", "prismatic")
_SQRT3 = math.sqrt(3.0)


def _ratio(c_over_a: float | None) -> float:
    ratio = IDEAL_C_OVER_A if c_over_a is None else c_over_a
    if not (isinstance(ratio, (int, float, np.floating)) and math.isfinite(ratio) and ratio > 0):
        raise ValueError(f"c_over_a: must be a positive number (c/a of hcp), got {c_over_a!r}")
    return float(ratio)


def hcp_nearest_neighbour(a: float, c_over_a: float | None = None) -> float:
    """Nearest-neighbour distance (A) of hcp: min(a, sqrt(a^2/3 + c^2/4))."""
    c = _ratio(c_over_a) * a
    return float(min(a, math.sqrt(a * a / 3.0 + c * c / 4.0)))


def _edges(a: float, ratio: float) -> np.ndarray:
    return np.array([1.0, _SQRT3, ratio]) * float(a)


def hcp_sites(a: float, c_over_a: float | None, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """All hcp sites (A, orthohexagonal crystal frame, a site at the origin) inside the box [low, high]."""
    from sampling.builders import _HCP_ORTHO_BASIS

    edges = _edges(a, _ratio(c_over_a))
    first = np.floor(np.asarray(low, dtype=float) / edges) - 1
    last = np.ceil(np.asarray(high, dtype=float) / edges) + 1
    cells = np.stack(np.meshgrid(*(np.arange(lo, hi + 1) for lo, hi in zip(first, last)), indexing="ij"), -1)
    sites = ((cells.reshape(-1, 1, 3) + _HCP_ORTHO_BASIS[None]) * edges).reshape(-1, 3)
    inside = np.all((sites >= low - 1e-9) & (sites <= high + 1e-9), axis=1)
    return sites[inside]


def hcp_ball(a: float, c_over_a: float | None, radius: float) -> np.ndarray:
    """hcp sites (A, crystal frame, origin on a site) within ``radius`` of the origin."""
    sites = hcp_sites(a, c_over_a, np.full(3, -radius), np.full(3, radius))
    return sites[np.einsum("ij,ij->i", sites, sites) <= radius * radius]


def _fill(a: float, ratio: float, rotation: np.ndarray, lengths: np.ndarray, origin: np.ndarray) -> np.ndarray:
    """Sites (cell frame) with 0 <= X, Y < Lx, Ly and 0 <= Z <= Lz (both Z faces included).

    ``rotation`` rows are the cell axes in the crystal frame; the crystal point ``origin``
    (crystal frame, A) goes to the cell origin. X and Y periods must be lattice periods.
    """
    corners = np.array([[i, j, k] for i in (0, 1) for j in (0, 1) for k in (0, 1)], dtype=float) * lengths
    crystal = corners @ rotation + origin
    sites = hcp_sites(a, ratio, crystal.min(axis=0) - 1.0, crystal.max(axis=0) + 1.0)
    cell = (sites - origin) @ rotation.T
    tol = 1e-6
    keep = (
        (cell[:, 0] > -tol) & (cell[:, 0] < lengths[0] - tol)
        & (cell[:, 1] > -tol) & (cell[:, 1] < lengths[1] - tol)
        & (cell[:, 2] > -tol) & (cell[:, 2] < lengths[2] + tol)
    )
    result = cell[keep]
    result[:, :2] = np.clip(result[:, :2], 0.0, None)
    order = np.lexsort((result[:, 0], result[:, 1], result[:, 2]))
    return result[order]


def _count(name: str, value: object) -> int:
    if not (isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= 1):
        raise ValueError(f"{name}: must be a positive integer, got {value!r}")
    return int(value)


# --------------------------------------------------------------------------- slabs

# cell axes (rows) in the orthohexagonal crystal frame, and their Miller-Bravais names
_SLAB_AXES = {
    "basal": (np.eye(3), ("[2-1-10]", "[01-10]", "[0001]")),
    # z along the prismatic normal [01-10], x = [2-1-10], y = z cross x = [000-1] (right-handed)
    "prismatic": (np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]]), ("[2-1-10]", "[000-1]", "[01-10]")),
}
_SURFACE_NORMALS = {"basal": ("(0001)", (0, 0, 0, 1)), "prismatic": ("(10-10)", (1, 0, -1, 0))}


def _surface_from_normal(normal: Sequence[int]) -> str:
    """``basal`` or ``prismatic`` from Miller-Bravais (hkil) plane indices; ValueError naming ``normal`` otherwise."""
    values = np.asarray(normal, dtype=float)
    if values.shape != (4,) or not np.allclose(values, np.rint(values)) or not values.any():
        raise ValueError(f"normal: for hcp give Miller-Bravais plane indices (h, k, i, l), e.g. (0, 0, 0, 1) "
                         f"or (1, 0, -1, 0), or surface='basal'/'prismatic'; got {normal!r}")
    h, k, i, ell = (int(v) for v in np.rint(values))
    if h + k + i != 0:
        raise ValueError(f"normal: Miller-Bravais indices need h + k + i = 0, got {normal!r}")
    if (h, k, i) == (0, 0, 0):
        return "basal"
    if ell == 0 and sorted(abs(v) for v in (h, k, i)) == [0, 1, 1]:
        return "prismatic"
    raise ValueError(f"normal: hcp slabs are built for the basal (0001) and prismatic {{10-10}} planes only, "
                     f"got {normal!r}")


def hcp_slab(
    element: str,
    a: float,
    surface: str = "basal",
    c_over_a: float | None = None,
    thickness: float = 20.0,
    lateral_size: tuple[int, int] | None = None,
    lateral_min_lengths: tuple[float, float] | None = None,
    vacuum: float = 10.0,
) -> Atoms:
    """hcp slab with free ``surface`` ("basal" (0001) or "prismatic" (10-10)) normal to z.

    Orthogonal cell: basal x=[2-1-10] (a), y=[01-10] (a sqrt 3), z=[0001] (c);
    prismatic x=[2-1-10] (a), y=[000-1] (c), z=[01-10] (a sqrt 3). 4 atoms per
    period cell; whole periods along the normal (at least ``thickness`` A), ``vacuum``
    A each side, pbc (True, True, False). The prismatic slab is cut in the wide gap
    between {10-10} double layers (the low-energy "type A" termination, layer spacing
    a/(2 sqrt 3) inside a pair, a/sqrt 3 between pairs). ``info``: surface,
    surface_normal, crystal_axes, surface_area (A^2, one face).
    """
    from sampling.builders import _check_material, slab_from_period

    _check_material(element, "hcp", a, kind="slab")
    if surface not in HCP_SURFACES:
        raise ValueError(f"surface: must be one of {', '.join(HCP_SURFACES)} for hcp, got {surface!r}")
    ratio = _ratio(c_over_a)
    if not (isinstance(thickness, (int, float, np.floating)) and thickness > 0):
        raise ValueError(f"thickness: must be positive (A), got {thickness!r}")
    if not (isinstance(vacuum, (int, float, np.floating)) and vacuum >= 0):
        raise ValueError(f"vacuum: must be non-negative (A, on each side), got {vacuum!r}")
    rotation, names = _SLAB_AXES[surface]
    edges = _edges(float(a), ratio)
    periods = np.abs(rotation) @ edges
    # one period cell, cut so that the cell faces lie in the widest gap between atomic planes
    origin = np.zeros(3)
    trial = _fill(float(a), ratio, rotation, periods, origin)
    trial = trial[trial[:, 2] < periods[2] - 1e-6]
    planes = np.unique(np.round(trial[:, 2], 6))
    gaps = np.diff(np.concatenate([planes, [planes[0] + periods[2]]]))
    widest = int(np.argmax(gaps))
    cut = planes[widest] + 0.5 * gaps[widest]  # new cell face, cell frame
    origin = rotation[2] * cut
    positions = _fill(float(a), ratio, rotation, periods, origin)
    positions = positions[positions[:, 2] < periods[2] - 1e-6]
    if len(positions) != 4:  # guards the kernel: 4 atoms per orthohexagonal period
        raise RuntimeError(f"hcp {surface} period cell has {len(positions)} sites, expected 4")
    atoms = slab_from_period(element, positions, periods, thickness, vacuum, lateral_size, lateral_min_lengths)
    atoms.info.update({
        "surface": surface,
        "surface_normal": _SURFACE_NORMALS[surface][0],
        "crystal_axes": list(names),
        "c_over_a": ratio,
        "surface_area": float(atoms.cell[0, 0] * atoms.cell[1, 1]),
    })
    return atoms


# --------------------------------------------------------------------------- {10-12} twin


def _twin_frame(a: float, ratio: float) -> tuple[np.ndarray, float, float]:
    """Rotation (rows x, y, z in the crystal frame), Y period and (10-12) Bravais plane spacing d."""
    c = ratio * a
    in_plane = np.array([0.0, _SQRT3 * a, c])  # [-1011]-type lattice vector in the (10-12)-type plane K1
    length = float(np.linalg.norm(in_plane))
    y = in_plane / length
    x = np.array([1.0, 0.0, 0.0])
    z = np.cross(x, y)  # (0, -c, sqrt3 a)/|v|: the K1 normal
    spacing = _SQRT3 * a * c / (2.0 * length)
    return np.array([x, y, z]), length, spacing


def hcp_twin_bicrystal(
    element: str,
    a: float,
    c_over_a: float | None = None,
    size: tuple[int, int, int] | None = None,
    min_lengths: tuple[float, float, float] | None = None,
    overlap_fraction: float = 0.6,
) -> Atoms:
    """Periodic bicrystal with two coherent {10-12} twin boundaries normal to z.

    The common hcp twin (K1 = (01-12), eta1 along [0-111]; rotation 2 atan(c/(sqrt3 a))
    about [2-1-10], 86.3 deg for Mg). Cell: x = [2-1-10] (period a, the twinning
    rotation axis), y along the [0-111]-type lattice vector in K1 (period
    sqrt(3a^2 + c^2)), z along the K1 normal (no lattice period; the (10-12) Bravais
    planes are d = sqrt3 a c / (2 sqrt(3a^2 + c^2)) apart, each with a second atom
    layer d/3 above it: corrugated double layers). Grain 0 fills 0 <= z <= h = n d, the
    cell faces z = 0 and h lying midway inside a double layer (d/6 above a Bravais plane);
    grain 1 is its mirror image through the plane z = h (the twin relation of the
    lattice), occupying h < z < 2h = Lz, glided by half the y period along y (the
    [0-111]-type direction eta1). A pure mirror of the atoms is not the low-energy
    boundary; with this glide the boundary relaxes by at most ~0.25 A into the coherent
    twin (Mg_mm: 0.119 J/m^2, the lowest of a 24 x 24 scan of mirror-plane position and
    glide, and the literature value ~0.12 J/m^2 for Mg). Two mirrors one h apart
    compose to the translation by Lz, so the structure is periodic and the boundary at
    z = 0 is the same twin as the one at z = h; no atom is removed (then of every pair
    closer than ``overlap_fraction`` times the nearest-neighbour distance the grain-1
    atom would be removed: a guard).
    ``size`` = (nx, ny, n planes per grain), default (1, 1, 12); or ``min_lengths``
    (Lx, Ly, total Lz) in A. ``arrays["grain_id"]`` 0/1, ``info["boundary_area"]`` (A^2),
    ``info["boundary_positions"]`` (z of both planes, A).
    """
    from sampling.builders import _check_material, _drop_close_pairs, _numbers, _positive_lengths, _wrap_into_box

    _check_material(element, "hcp", a, kind="bicrystal (twin)")
    ratio = _ratio(c_over_a)
    if not 0 < overlap_fraction < 1:
        raise ValueError("overlap_fraction: must be between 0 and 1 (of the nearest-neighbour distance), "
                         f"got {overlap_fraction!r}")
    rotation, y_period, spacing = _twin_frame(float(a), ratio)
    if size is not None and min_lengths is not None:
        raise ValueError("size and min_lengths: give one of them, not both")
    if min_lengths is not None:
        wanted = _positive_lengths("min_lengths", min_lengths, 3)
        nx = max(math.ceil(wanted[0] / a - 1e-9), 1)
        ny = max(math.ceil(wanted[1] / y_period - 1e-9), 1)
        planes = max(math.ceil(wanted[2] / (2.0 * spacing) - 1e-9), 2)
    else:
        nx, ny, planes = (1, 1, 12) if size is None else size
        nx, ny, planes = _count("size", nx), _count("size", ny), _count("size", planes)
        if planes < 2:
            raise ValueError(f"size: need at least 2 planes per grain, got {size!r}")
    lengths = np.array([nx * float(a), ny * y_period, planes * spacing])
    grain0 = _fill(float(a), ratio, rotation, lengths, rotation[2] * spacing / 6.0)
    height = lengths[2]
    inner = grain0[(grain0[:, 2] > 1e-6) & (grain0[:, 2] < height - 1e-6)]
    grain1 = inner * np.array([1.0, 1.0, -1.0]) + np.array([0.0, 0.5 * y_period, 2.0 * height])
    cell = np.array([lengths[0], lengths[1], 2.0 * height])
    combined = _wrap_into_box(np.concatenate([grain0, grain1]), cell)
    grain_id = np.concatenate([np.zeros(len(grain0), dtype=int), np.ones(len(grain1), dtype=int)])
    keep = _drop_close_pairs(combined, cell, overlap_fraction * hcp_nearest_neighbour(float(a), ratio))
    atoms = Atoms(numbers=_numbers(element, int(keep.sum())), positions=combined[keep], cell=cell, pbc=True)
    atoms.arrays["grain_id"] = grain_id[keep]
    atoms.info.update({
        "boundary": "{10-12} twin",
        "crystal_axes": ["[2-1-10]", "[0-111] (in K1)", "K1 = (01-12) normal"],
        "c_over_a": ratio,
        "boundary_area": float(cell[0] * cell[1]),
        "boundary_positions": [0.0, float(height)],
        "twin_plane_spacing": float(spacing),
    })
    return atoms


# --------------------------------------------------------------------------- basal <a> dislocations

# cell axes (rows, crystal frame): x, y = [0001] (glide-plane normal), z = line
_DISLOCATION_AXES = {
    # screw: line and b along [2-1-10]; x = [01-10]
    "screw": (np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]), ("[01-10]", "[0001]", "[2-1-10]")),
    # edge: b along x = [2-1-10], line along z = [0-110] (a <1-100> direction)
    "edge": (np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]]), ("[2-1-10]", "[0001]", "[0-110]")),
}


def _basal_dislocation(
    character: str,
    element: str,
    a: float,
    c_over_a: float | None,
    radius: float,
    fixed_width: float,
    line_repeats: int,
    vacuum: float,
    poisson_ratio: float,
) -> Atoms:
    from sampling.builders import _check_material, _numbers

    _check_material(element, "hcp", a, kind=f"basal {character} dislocation")
    ratio = _ratio(c_over_a)
    if not (isinstance(radius, (int, float, np.floating)) and radius > 2 * a):
        raise ValueError(f"radius: must exceed two lattice constants (2*{a} A), got {radius!r}")
    if not (isinstance(fixed_width, (int, float, np.floating)) and 0 <= fixed_width < radius):
        raise ValueError(f"fixed_width: must be between 0 and radius ({radius} A), got {fixed_width!r}")
    line_repeats = _count("line_repeats", line_repeats)
    if not (isinstance(vacuum, (int, float, np.floating)) and vacuum >= 0):
        raise ValueError(f"vacuum: must be non-negative (A), got {vacuum!r}")
    if not (isinstance(poisson_ratio, (int, float, np.floating)) and -1.0 < poisson_ratio < 0.5):
        raise ValueError(f"poisson_ratio: must be between -1 and 0.5, got {poisson_ratio!r}")
    a = float(a)
    rotation, names = _DISLOCATION_AXES[character]
    edges = _edges(a, ratio)
    periods = np.abs(rotation) @ edges
    line = periods[2] * line_repeats
    half = math.ceil((radius + a) / a) * a
    lengths = np.array([2 * half, 2 * half, line])
    # crystal point at the cell origin: a lattice site; the cell is filled around it
    origin = -(rotation[0] + rotation[1]) * half
    positions = _fill(a, ratio, rotation, lengths, origin)
    positions = positions[positions[:, 2] < line - 1e-6]
    # core: midway between two basal planes (c/4 above a plane) and between atomic columns
    column = periods[0] / 2.0  # projected spacing of the columns along x within one basal plane pair
    core = np.array([half + 0.25 * column, half + 0.25 * ratio * a])
    relative = positions[:, :2] - core
    r = np.linalg.norm(relative, axis=1)
    inside = r < radius
    positions, relative, r = positions[inside], relative[inside], r[inside]
    fixed = r > radius - fixed_width
    b = a  # |b| = a/3 <11-20>, the hcp lattice constant
    x, y = relative[:, 0], relative[:, 1]
    theta = np.arctan2(y, x)
    displacement = np.zeros_like(positions)
    if character == "screw":
        displacement[:, 2] = b * theta / (2.0 * math.pi)
    else:  # isotropic Volterra edge (Hirth & Lothe eq. 3-45), b along +x, extra half plane at y > 0
        nu = float(poisson_ratio)
        r2 = np.maximum(x * x + y * y, 1e-12)
        displacement[:, 0] = b / (2.0 * math.pi) * (theta + x * y / (2.0 * (1.0 - nu) * r2))
        displacement[:, 1] = -b / (2.0 * math.pi) * ((1.0 - 2.0 * nu) / (4.0 * (1.0 - nu)) * np.log(r2 / b**2)
                                                    + (x * x - y * y) / (4.0 * (1.0 - nu) * r2))
    positions = positions + displacement
    atoms = Atoms(numbers=_numbers(element, len(positions)), positions=positions,
                  cell=[2 * half, 2 * half, line], pbc=(False, False, True))
    atoms.arrays["fixed"] = fixed
    before = atoms.positions[0].copy()
    atoms.center(vacuum=float(vacuum), axis=(0, 1))
    core_position = np.array([core[0], core[1], 0.0]) + (atoms.positions[0] - before)
    burgers = np.zeros(3)
    burgers[2 if character == "screw" else 0] = b
    atoms.info.update({
        "dislocation": f"hcp basal {character} a/3<11-20>",
        "core_position": core_position.tolist(),
        "burgers_vector": burgers.tolist(),
        "crystal_axes": list(names),
        "c_over_a": ratio,
        "elasticity": "isotropic" + ("" if character == "screw" else f", poisson_ratio={poisson_ratio}"),
    })
    return atoms


def basal_screw_dislocation(
    element: str,
    a: float,
    c_over_a: float | None = None,
    radius: float = 25.0,
    fixed_width: float = 8.0,
    line_repeats: int = 1,
    vacuum: float = 5.0,
) -> Atoms:
    """Cylinder of ``radius`` (A) around a basal screw dislocation, b = a/3[2-1-10] along the line z.

    x = [01-10], y = [0001] (the basal glide plane is y = const), z = [2-1-10] (period
    a, ``line_repeats`` periods). Displacement: the isotropic (and, for a screw along
    <11-20> with a basal cut, also the hexagonal-anisotropic) field u_z = b theta/(2 pi),
    the core between two basal planes and between atom columns. Free surfaces with
    ``vacuum`` A around, pbc (False, False, True); ``arrays["fixed"]`` marks the outer
    shell of ``fixed_width`` A. ``info``: core_position, burgers_vector (A), crystal_axes.
    """
    return _basal_dislocation("screw", element, a, c_over_a, radius, fixed_width, line_repeats, vacuum, 0.3)


def basal_edge_dislocation(
    element: str,
    a: float,
    c_over_a: float | None = None,
    radius: float = 25.0,
    fixed_width: float = 8.0,
    line_repeats: int = 1,
    vacuum: float = 5.0,
    poisson_ratio: float = 0.3,
) -> Atoms:
    """Cylinder of ``radius`` (A) around a basal edge dislocation, b = a/3[2-1-10] along x.

    x = [2-1-10] (b), y = [0001] (basal glide-plane normal), z = [0-110] (line, period
    a sqrt 3). Displacement: the isotropic Volterra edge field with ``poisson_ratio``
    (Mg 0.29, Ti 0.32, Zr 0.34), not the anisotropic Stroh solution; the fixed shell
    holds the far field and minimisation relaxes the core. Otherwise as
    :func:`basal_screw_dislocation`.
    """
    return _basal_dislocation("edge", element, a, c_over_a, radius, fixed_width, line_repeats, vacuum,
                              poisson_ratio)
