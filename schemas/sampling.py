"""Sampling stage spec: the starting structures and the loading protocols (EIP-GS).

Each protocol model is the one definition of its parameters (default, bounds, unit in the description):
the function of the same `kind` in `sampling.protocols` takes it as its `params` argument
(`uniaxial(atoms, potential, spec.sampling.protocols[i], element=..., ...)`); each structure's fields
are those of the builder in `sampling.builders`. Defaults follow the paper: 300 K, strain rates 1e8-1e9 1/s.
"""

from __future__ import annotations

import itertools
import math
from functools import reduce
from typing import Annotated, Literal, get_args

from pydantic import Field, model_validator

from schemas.alloys import IDEAL_C_OVER_A
from schemas.base import Strict
from schemas.launch import SlurmParams

Repeat = Annotated[int, Field(ge=1, le=1000)]
# |index| <= 20: the builders enumerate lattice sites and directions over a span of the indices, and the
# smallest periodic cell of a [20 19 17] crystal already holds tens of thousands of atoms.
MILLER_MAX = 20
MillerIndex = Annotated[int, Field(ge=-MILLER_MAX, le=MILLER_MAX)]
Miller = tuple[MillerIndex, MillerIndex, MillerIndex]
Length = Annotated[float, Field(gt=0, le=1e5, description="A")]
PositiveKelvin = Annotated[float, Field(gt=0, description="temperature, K")]
# Atoms per A^3 is lattice-dependent; used only for the budget estimate before anything is built.
ATOMS_PER_CUBIC_CELL = {"bcc": 2, "fcc": 4}
# hcp: the orthohexagonal cell a x a sqrt(3) x c holds 4 atoms (sampling.builders.bulk_crystal's hcp cell)
ATOMS_PER_ORTHOHEXAGONAL_CELL = 4
# Default most iterations of one LAMMPS `minimize` of the protocols (MinimizationParams.max_iterations); a
# minimisation counts against the MD budget as this many steps (each iteration is at least one force call).
MINIMIZE_MAX_ITERATIONS = 1000
# Sentinel step count for runs that would never end (a rate of 1e-300 1/s): above every limit.
ENDLESS = 10**18


def _steps(value: float) -> int:
    """MD steps of a run as an int; a run too long to count is ENDLESS."""
    return round(value) if value < ENDLESS else ENDLESS


def _reduced(direction: tuple[int, ...]) -> tuple[int, ...]:
    divisor = reduce(math.gcd, (abs(int(v)) for v in direction))
    return tuple(int(v) // divisor for v in direction) if divisor else tuple(direction)


def _cross(u: tuple[int, ...], v: tuple[int, ...]) -> tuple[int, int, int]:
    return (u[1] * v[2] - u[2] * v[1], u[2] * v[0] - u[0] * v[2], u[0] * v[1] - u[1] * v[0])


def lattice_period(direction: tuple[int, ...], lattice: str) -> float:
    """Shortest lattice vector along a Miller direction, in units of a (as sampling.builders._period_vector)."""
    d = _reduced(direction)
    length = math.sqrt(sum(v * v for v in d))
    half = all(v % 2 == 1 for v in d) if lattice == "bcc" else sum(d) % 2 == 0
    return length / 2.0 if half else length


def _in_plane_direction(normal: tuple[int, ...]) -> tuple[int, int, int]:
    """Shortest integer direction perpendicular to ``normal`` (sampling.builders._in_plane_direction)."""
    span = max(abs(v) for v in normal) + 1
    best: tuple[tuple[int, ...], tuple[int, int, int]] | None = None
    for v in itertools.product(range(-span, span + 1), repeat=3):
        if any(v) and v[0] * normal[0] + v[1] * normal[1] + v[2] * normal[2] == 0:
            key = (v[0] ** 2 + v[1] ** 2 + v[2] ** 2, abs(v[2]), -v[0], -v[1], -v[2])
            if best is None or key < best[0]:
                best = (key, (v[0], v[1], v[2]))
    return best[1] if best else (1, 0, 0)


def _whole_periods(length: float, period: float) -> float:
    """``length`` rounded up to whole periods (at least one), in the unit of both."""
    if period <= 0:  # a zero direction: the builder refuses it; estimate with the length
        return length
    count = length / period
    return (math.ceil(count - 1e-9) if count < 1e15 else count) * period if count > 1 else period


def _oriented_atoms(rows: tuple[tuple[int, ...], ...], lattice: str, a: float,
                    min_lengths: tuple[float, float, float]) -> float:
    """Atoms of an orthogonal crystal along ``rows`` whose edges are ``min_lengths`` rounded up to whole periods."""
    edges = [_whole_periods(length, lattice_period(row, lattice) * a) for row, length in zip(rows, min_lengths)]
    return edges[0] * edges[1] * edges[2] * ATOMS_PER_CUBIC_CELL[lattice] / a**3


class _PointDefects(Strict):
    vacancies: int = Field(0, ge=0, description="atoms removed at random before the run")
    interstitials: int = Field(0, ge=0, description="<111> dumbbell self-interstitials added at random")
    seed: int = Field(12345, ge=1, description="random seed for grains and point defects")

    def estimated_atoms(self, lattice: str, a: float, c_over_a: float = IDEAL_C_OVER_A) -> float:
        """Atoms of the built structure, from its geometry alone (no structure is built): exact for
        crystals cut along lattice periods, within a few per cent for grains, cylinders and loops.
        hcp (``a`` the basal constant, ``c_over_a``): the structure's volume at hcp density."""
        if lattice == "hcp":
            return self._hcp_atoms(a, c_over_a) + self.interstitials
        return self._lattice_atoms(lattice, a) + self.interstitials

    def _hcp_atoms(self, a: float, c_over_a: float) -> float:
        return self.volume(a) * ATOMS_PER_ORTHOHEXAGONAL_CELL / (a**3 * 3**0.5 * c_over_a)

    def _lattice_atoms(self, lattice: str, a: float) -> float:
        return self.volume(a) * ATOMS_PER_CUBIC_CELL[lattice] / a**3

    def volume(self, a: float) -> float:  # overridden per structure
        raise NotImplementedError


class BulkStructure(_PointDefects):
    """A cubic supercell of the perfect crystal."""

    kind: Literal["bulk"] = "bulk"
    supercell: tuple[Repeat, Repeat, Repeat] = Field((8, 8, 8), description="repeats of the cubic cell")

    def volume(self, a: float) -> float:
        return a**3 * self.supercell[0] * self.supercell[1] * self.supercell[2]

    def _hcp_atoms(self, a: float, c_over_a: float) -> float:
        # hcp supercell: repeats of the orthohexagonal cell
        return ATOMS_PER_ORTHOHEXAGONAL_CELL * self.supercell[0] * self.supercell[1] * self.supercell[2]


class SingleCrystalStructure(_PointDefects):
    """A single crystal with x, y, z along the given (orthogonal, right-handed) directions."""

    kind: Literal["single_crystal"] = "single_crystal"
    orientation: tuple[Miller, Miller, Miller] = Field(
        ((1, 0, 0), (0, 1, 0), (0, 0, 1)), description="crystal directions along x, y, z"
    )
    min_lengths: tuple[Length, Length, Length] = Field((40.0, 40.0, 40.0), description="smallest box edges, A")

    def volume(self, a: float) -> float:
        return self.min_lengths[0] * self.min_lengths[1] * self.min_lengths[2]

    def _lattice_atoms(self, lattice: str, a: float) -> float:
        return _oriented_atoms(self.orientation, lattice, a, self.min_lengths)


class PolycrystalStructure(_PointDefects):
    """Periodic Voronoi polycrystal with random grain orientations."""

    kind: Literal["polycrystal"] = "polycrystal"
    box: tuple[Length, Length, Length] = Field((60.0, 60.0, 60.0), description="box edges, A")
    n_grains: int = Field(4, ge=2, le=1000, description="number of grains")

    def volume(self, a: float) -> float:
        return self.box[0] * self.box[1] * self.box[2]


class SlabStructure(_PointDefects):
    """A slab with free surfaces normal to z (the indentation geometry)."""

    kind: Literal["slab"] = "slab"
    normal: Miller = Field((0, 0, 1), description="surface normal (Miller direction; bcc and fcc)")
    surface: Literal["basal", "prismatic"] | None = Field(
        None, description="hcp only: the free surface, basal (0001, the default) or prismatic (10-10)")
    thickness: Length = Field(30.0, description="crystal thickness along z, A")
    lateral_min_lengths: tuple[Length, Length] = Field((50.0, 50.0), description="smallest x, y edges, A")
    vacuum: float = Field(10.0, ge=0, le=1000, description="vacuum on each side, A")

    def volume(self, a: float) -> float:
        return self.thickness * self.lateral_min_lengths[0] * self.lateral_min_lengths[1]

    def _hcp_atoms(self, a: float, c_over_a: float) -> float:
        # sampling.hcp.hcp_slab: whole periods of the orthohexagonal cell (basal x, y, z = a, a sqrt 3, c;
        # prismatic a, c, a sqrt 3), at least the asked lengths
        c, b = c_over_a * a, 3**0.5 * a
        periods = (a, c, b) if self.surface == "prismatic" else (a, b, c)
        edges = [_whole_periods(length, period)
                 for length, period in zip((*self.lateral_min_lengths, self.thickness), periods)]
        return edges[0] * edges[1] * edges[2] * ATOMS_PER_ORTHOHEXAGONAL_CELL / (a * b * c)

    def _lattice_atoms(self, lattice: str, a: float) -> float:
        normal = _reduced(self.normal)
        if not any(normal):
            return super()._lattice_atoms(lattice, a)
        x = _in_plane_direction(normal)
        rows = (x, _reduced(_cross(normal, x)), normal)
        return _oriented_atoms(rows, lattice, a, (*self.lateral_min_lengths, self.thickness))


class BicrystalStructure(_PointDefects):
    """Periodic bicrystal with two grain boundaries (symmetric tilt or twin)."""

    kind: Literal["bicrystal"] = "bicrystal"
    boundary: Literal["symmetric_tilt", "twin"] = Field("symmetric_tilt", description="grain-boundary type")
    tilt_axis: Miller | None = Field(None, description="default [001] (tilt) or [1-10] (twin)")
    boundary_plane: Miller | None = Field(None, description="default (310) (tilt) or (112) (bcc twin)")
    min_lengths: tuple[Length, Length, Length] = Field((20.0, 20.0, 60.0), description="smallest box edges, A")

    def volume(self, a: float) -> float:
        return self.min_lengths[0] * self.min_lengths[1] * self.min_lengths[2]

    def _hcp_atoms(self, a: float, c_over_a: float) -> float:
        # sampling.hcp.hcp_twin_bicrystal: x period a, y period sqrt(3 a^2 + c^2), each grain whole (10-12) plane
        # spacings d = sqrt3 a c / (2 sqrt(3 a^2 + c^2))
        c = c_over_a * a
        y = (3 * a * a + c * c) ** 0.5
        d = 3**0.5 * a * c / (2 * y)
        lx, ly, lz = self.min_lengths
        volume = _whole_periods(lx, a) * _whole_periods(ly, y) * 2 * _whole_periods(lz / 2, d)
        return volume * ATOMS_PER_ORTHOHEXAGONAL_CELL / (a**3 * 3**0.5 * c_over_a)

    def _lattice_atoms(self, lattice: str, a: float) -> float:
        # sampling.builders._BICRYSTAL_DEFAULTS
        twin_plane = (1, 1, 2) if lattice == "bcc" else (1, 1, 1)
        axis, plane = ((0, 0, 1), (3, 1, 0)) if self.boundary == "symmetric_tilt" else ((1, -1, 0), twin_plane)
        t, n = _reduced(self.tilt_axis or axis), _reduced(self.boundary_plane or plane)
        if not any(t) or not any(n) or not any(_cross(n, t)):
            return super()._lattice_atoms(lattice, a)
        lx, ly, lz = self.min_lengths
        # two grains of whole periods along the boundary normal
        grain = _whole_periods(lz / 2.0, lattice_period(n, lattice) * a)
        return 2 * _oriented_atoms((t, _reduced(_cross(n, t)), n), lattice, a, (lx, ly, grain))


class DislocationStructure(_PointDefects):
    """A straight dislocation in a cylinder (anisotropic elasticity, constants from the potential)."""

    kind: Literal["dislocation"] = "dislocation"
    character: Literal["screw", "edge"] = Field(
        "screw", description="screw or edge: 1/2<111> (bcc), 1/2<110> (fcc), basal a/3<2-1-10> (hcp)")
    radius: Length = Field(40.0, description="cylinder radius, A")
    line_repeats: int = Field(4, ge=1, le=1000, description="periods along the dislocation line")

    def volume(self, a: float) -> float:
        return 3.1416 * self.radius**2 * self.line_repeats * a * 3**0.5 / 2

    def _hcp_atoms(self, a: float, c_over_a: float) -> float:
        # sampling.hcp basal dislocations: the line along [2-1-10], period a
        return math.pi * self.radius**2 * self.line_repeats * a * ATOMS_PER_ORTHOHEXAGONAL_CELL / (
            a**3 * 3**0.5 * c_over_a)

    def _lattice_atoms(self, lattice: str, a: float) -> float:
        # the line of matscipy's BCCScrew111 / BCCEdge111 / FCCScrew110 / FCCEdge110 cylinders
        line = {("bcc", "screw"): (1, 1, 1), ("bcc", "edge"): (1, 1, -2),
                ("fcc", "screw"): (1, -1, 0), ("fcc", "edge"): (-1, -1, 2)}[(lattice, self.character)]
        length = self.line_repeats * lattice_period(line, lattice) * a
        return math.pi * self.radius**2 * length * ATOMS_PER_CUBIC_CELL[lattice] / a**3


class DislocationLoopStructure(_PointDefects):
    """A prismatic dislocation loop in a cubic supercell."""

    kind: Literal["dislocation_loop"] = "dislocation_loop"
    burgers: Literal["<100>", "<111>", "<110>"] = Field("<111>", description="Burgers vector family")
    nature: Literal["interstitial", "vacancy"] = Field("interstitial", description="loop nature")
    loop_radius: Length = Field(10.0, description="loop radius, A")
    supercell: tuple[Repeat, Repeat, Repeat] = Field((16, 16, 16), description="repeats of the cubic cell")

    def volume(self, a: float) -> float:
        return a**3 * self.supercell[0] * self.supercell[1] * self.supercell[2]

    def _lattice_atoms(self, lattice: str, a: float) -> float:
        # an interstitial loop adds a disc of lattice one Burgers vector (at most a) thick
        disc = math.pi * self.loop_radius**2 * a if self.nature == "interstitial" else 0.0
        return (self.volume(a) + disc) * ATOMS_PER_CUBIC_CELL[lattice] / a**3


Structure = Annotated[
    BulkStructure
    | SingleCrystalStructure
    | PolycrystalStructure
    | SlabStructure
    | BicrystalStructure
    | DislocationStructure
    | DislocationLoopStructure,
    Field(discriminator="kind"),
]


class _Protocol(Strict):
    name: str | None = Field(None, max_length=100, description="label of this run; default '<kind>-<index>'")
    structure: Structure = Field(default_factory=BulkStructure, description="the starting structure")
    seed: int = Field(12345, ge=1, description="random seed of velocities")

    def md_steps(self) -> int:  # the MD steps of the run, for the budget; overridden per protocol
        return 0

    def minimization_steps(self, max_iterations: int = MINIMIZE_MAX_ITERATIONS) -> int:
        """Most minimisation iterations of the run: its `minimize` commands x ``max_iterations`` (the spec's
        ``sampling.minimization.max_iterations``)."""
        return max_iterations  # the starting minimisation; overridden where there are more

    def snapshots(self) -> int:
        """Snapshots the run stores (sampling.protocols.snapshot_count, without building anything)."""
        return 1

    def protocol_params(self) -> dict:
        """The protocol's parameters as keywords (``sampling.protocols.program_for(kind, ..., **these)`` and
        ``snapshot_count(kind, **these)``); the protocol functions take the model itself."""
        return self.model_dump(exclude={"kind", "name", "structure"})


class _Timed(_Protocol):
    snapshot_every: int = Field(500, gt=0, description="MD steps between stored snapshots")
    timestep_fs: float = Field(1.0, gt=0, le=10, description="MD time step, fs")


class MinimizeProtocol(_Protocol):
    """Conjugate-gradient minimisation (optionally with box relaxation): one snapshot."""

    kind: Literal["minimize"] = "minimize"
    box_relax: bool = Field(True, description="relax the periodic box to zero stress too")

    def minimization_steps(self, max_iterations: int = MINIMIZE_MAX_ITERATIONS) -> int:
        # box/relax minimisation, then positions alone at that box: two `minimize` commands
        return (2 if self.box_relax else 1) * max_iterations


class AnnealProtocol(_Timed):
    """Equilibrium MD (Nose-Hoover) at a list of temperatures, one after another."""

    kind: Literal["anneal"] = "anneal"
    temperatures: list[PositiveKelvin] = Field([300.0], min_length=1, max_length=1000, description="temperatures, K")
    steps_per_temperature: int = Field(2000, gt=0, description="MD steps at each temperature")
    ensemble: Literal["nvt", "npt"] = Field("nvt", description="NVT, or NPT at zero pressure")

    def md_steps(self) -> int:
        return self.steps_per_temperature * len(self.temperatures)

    def snapshots(self) -> int:
        return 1 + self.md_steps() // self.snapshot_every


class _Loading(_Timed):
    temperature: PositiveKelvin = Field(300.0, description="temperature, K")
    equilibration_steps: int = Field(2000, ge=0, description="MD steps at temperature before loading")

    def loading_steps(self) -> int:  # MD steps of the loading itself, after the equilibration
        raise NotImplementedError

    def md_steps(self) -> int:
        return min(self.equilibration_steps + self.loading_steps(), ENDLESS)

    def minimization_steps(self, max_iterations: int = MINIMIZE_MAX_ITERATIONS) -> int:
        # uniaxial and shear relax the box first (box/relax, then positions); nanoindent overrides
        return 2 * max_iterations

    def snapshots(self) -> int:
        # the start, then every snapshot_every loading steps and the last one (sampling.protocols._snapshot_steps)
        return 1 + max(1, -(-self.loading_steps() // self.snapshot_every))


class UniaxialProtocol(_Loading):
    """Uniaxial tension or compression at a constant engineering strain rate."""

    kind: Literal["uniaxial"] = "uniaxial"
    axis: Literal["x", "y", "z"] = Field("x", description="loading axis")
    mode: Literal["tension", "compression"] = Field("tension", description="sign of the load")
    strain_rate: float = Field(1e9, gt=0, description="engineering strain rate, 1/s (paper: 1e8 to 1e9)")
    max_strain: float = Field(0.05, gt=0, lt=1, description="final engineering strain")
    lateral: Literal["npt", "fixed"] = Field("npt", description="lateral axes at zero pressure, or fixed")

    def loading_steps(self) -> int:
        return _steps(self.max_strain / (self.strain_rate * self.timestep_fs * 1e-15))


class ShearProtocol(_Loading):
    """Simple shear at a constant engineering shear rate."""

    kind: Literal["shear"] = "shear"
    plane: Literal["xy", "xz", "yz"] = Field("xy", description="LAMMPS tilt factor that grows")
    shear_rate: float = Field(1e9, gt=0, description="engineering shear rate, 1/s")
    max_shear: float = Field(0.1, gt=0, lt=1, description="final engineering shear strain")

    def loading_steps(self) -> int:
        return _steps(self.max_shear / (self.shear_rate * self.timestep_fs * 1e-15))


class NanoindentProtocol(_Loading):
    """Spherical nanoindentation of the top surface of a slab at constant speed."""

    kind: Literal["nanoindent"] = "nanoindent"
    structure: Structure = Field(default_factory=SlabStructure, description="a slab (free surface normal to z)")
    radius: Length = Field(25.0, description="indenter radius, A")
    depth: Length = Field(10.0, description="indentation depth, A")
    speed: float = Field(20.0, gt=0, description="indenter speed, m/s")
    fixed_bottom: float = Field(5.0, gt=0, description="bottom layer held fixed, A")
    force_constant: float = Field(10.0, gt=0, description="indenter force constant, eV/A^3")

    @model_validator(mode="after")
    def _slab_only(self) -> NanoindentProtocol:
        if self.structure.kind != "slab":
            raise ValueError("structure: nanoindentation needs a slab (kind: slab) with a free top surface")
        return self

    def loading_steps(self) -> int:
        # 1 m/s = 1e-5 A/fs
        return _steps(self.depth / (self.speed * 1e-5 * self.timestep_fs))

    def minimization_steps(self, max_iterations: int = MINIMIZE_MAX_ITERATIONS) -> int:
        return max_iterations  # positions only, the bottom layer held


class CrackOpeningProtocol(_Protocol):
    """Mode-I opening of a through-thickness slit crack by stepwise tensile strain."""

    kind: Literal["crack_opening"] = "crack_opening"
    structure: Structure = Field(
        default_factory=lambda: SingleCrystalStructure(min_lengths=(80.0, 80.0, 10.0)),
        description="the cracked crystal (periodic)",
    )
    crack_length: Length = Field(30.0, description="slit length along the crack direction, A")
    normal: Literal["x", "y", "z"] = Field("y", description="crack-plane normal (loading axis)")
    front: Literal["x", "y", "z"] = Field("z", description="crack-front direction (differs from normal)")
    slit_width: Length | None = Field(
        None, description="thickness of the cut slit along the normal, default one lattice constant, A"
    )
    max_strain: float = Field(0.05, gt=0, lt=1, description="final strain normal to the crack")
    increments: int = Field(10, ge=1, le=10_000, description="strain increments, one snapshot each")
    temperature: float = Field(0.0, ge=0, description="K; 0 minimises each increment instead of MD")
    steps_per_increment: int = Field(1000, ge=0, description="MD steps per increment (T > 0)")
    equilibration_steps: int = Field(1000, ge=0, description="MD steps before loading (T > 0)")
    timestep_fs: float = Field(1.0, gt=0, le=10, description="MD time step, fs")

    @model_validator(mode="after")
    def _crack_geometry(self) -> CrackOpeningProtocol:
        if self.front == self.normal:
            raise ValueError(f"front must differ from normal (both {self.normal!r}): the crack front lies in the "
                             "crack plane")
        if self.temperature > 0 and self.steps_per_increment == 0:
            raise ValueError("steps_per_increment must be > 0 at temperature > 0 (each increment runs MD)")
        return self

    def md_steps(self) -> int:
        return 0 if self.temperature == 0 else self.equilibration_steps + self.increments * self.steps_per_increment

    def minimization_steps(self, max_iterations: int = MINIMIZE_MAX_ITERATIONS) -> int:
        # the cracked crystal, then (at 0 K) every strain increment
        return (1 + (self.increments if self.temperature == 0 else 0)) * max_iterations

    def snapshots(self) -> int:
        return 1 + self.increments


Protocol = Annotated[
    MinimizeProtocol | AnnealProtocol | UniaxialProtocol | ShearProtocol | NanoindentProtocol | CrackOpeningProtocol,
    Field(discriminator="kind"),
]


class MinimizationParams(Strict):
    """Every `minimize` of the protocols (the starting relaxation; each increment of a 0 K crack opening):
    LAMMPS ``min_style cg`` with ``minimize etol ftol maxiter maxeval``. A start for MD, not a converged
    property: the cap keeps a large polycrystal, whose box/relax CG zigzags for thousands of iterations, to
    seconds per 10^4 atoms."""

    energy_tolerance: float = Field(
        0.0, ge=0, lt=1, description="stop when the energy changes by less than this fraction between iterations "
        "(LAMMPS etol); 0: the force criterion alone"
    )
    force_tolerance: float = Field(
        1e-4, gt=0, le=10, description="stop when the 2-norm of the whole force vector is below this (LAMMPS ftol), "
        "eV/A"
    )
    max_iterations: int = Field(MINIMIZE_MAX_ITERATIONS, ge=1, le=10**6,
                                description="most CG iterations per minimisation (LAMMPS maxiter)")
    max_evaluations: int = Field(10_000, ge=1, le=10**7,
                                 description="most force evaluations per minimisation (LAMMPS maxeval)")

    def command(self) -> str:
        return (f"minimize {self.energy_tolerance!r} {self.force_tolerance!r} {self.max_iterations} "
                f"{self.max_evaluations}")


class LammpsRunParams(Strict):
    """An external LAMMPS for sampling: the user's executable (MPI, GPU/KOKKOS, built by their centre) runs each
    protocol as a standalone input the project writes, through the local or Slurm launcher; the stage streams
    its snapshots into the store as they appear and resumes a killed run from the last stored snapshot."""

    command: list[str] | None = Field(
        None, min_length=1, max_length=64, examples=[["mpirun", "-np", "64", "lmp"]],
        description="the LAMMPS run command as argv (the project adds -in, -log, -screen); default: the launch "
        "profile's command, else this environment's `mpirun -np 2 lmp`. Refused from the API: name a "
        "launch_profile instead",
    )
    launcher: Literal["local", "slurm"] = Field("local", description="where the LAMMPS runs: a subprocess of the "
                                                "worker, or a Slurm batch job")
    launch_profile: str | None = Field(
        None, min_length=1, max_length=100,
        description="name of an operator-defined launch profile (server setting DG_LAUNCH_PROFILES) whose command, "
        "modules and extra batch lines run LAMMPS",
    )
    slurm: SlurmParams = Field(default_factory=SlurmParams, description="the batch job (launcher: slurm)")
    poll_interval: float = Field(1.0, gt=0, le=600, description="s between looks for new snapshots of the run")


class SamplingParams(Strict):
    protocols: list[Protocol] = Field(
        ..., min_length=1, max_length=1000, description="loading protocols, run in parallel"
    )
    threads: int = Field(1, ge=1, le=256, description="OpenMP threads per LAMMPS run")
    detection: Literal["acna", "cna"] = Field(
        "acna", description="defect detection: adaptive CNA (no cutoff) or conventional CNA (lattice cutoff)"
    )
    minimization: MinimizationParams = Field(default_factory=MinimizationParams,
                                             description="tolerances and caps of the protocols' minimisations")
    lammps: LammpsRunParams | None = Field(
        None, description="run the protocols with an external LAMMPS (MPI, Slurm); omit for LAMMPS in the "
        "worker's process (the embedded default)"
    )


# The `kind` values: pydantic puts them in error locations, where users did not write them.
KIND_TAGS = frozenset(
    model.model_fields["kind"].default
    for annotated in (Structure, Protocol)
    for model in get_args(get_args(annotated)[0])
)
