"""Sampling stage spec: the starting structures and the loading protocols (EIP-GS).

Each protocol's fields are the keyword arguments of the function of the same `kind` in
`sampling.protocols`; each structure's fields those of the builder in `sampling.builders`.
Defaults follow the paper: 300 K, strain rates 1e8-1e9 1/s.
"""

from __future__ import annotations

from typing import Annotated, Literal, get_args

from pydantic import Field, model_validator

from schemas.base import Strict

Repeat = Annotated[int, Field(ge=1, le=1000)]
Miller = tuple[int, int, int]
Length = Annotated[float, Field(gt=0, description="A")]
PositiveKelvin = Annotated[float, Field(gt=0, description="temperature, K")]
# Atoms per A^3 is lattice-dependent; used only for the budget estimate before anything is built.
ATOMS_PER_CUBIC_CELL = {"bcc": 2, "fcc": 4}


class _PointDefects(Strict):
    vacancies: int = Field(0, ge=0, description="atoms removed at random before the run")
    interstitials: int = Field(0, ge=0, description="<111> dumbbell self-interstitials added at random")
    seed: int = Field(12345, ge=1, description="random seed for grains and point defects")


class BulkStructure(_PointDefects):
    """A cubic supercell of the perfect crystal."""

    kind: Literal["bulk"] = "bulk"
    supercell: tuple[Repeat, Repeat, Repeat] = Field((8, 8, 8), description="repeats of the cubic cell")

    def volume(self, a: float) -> float:
        return a**3 * self.supercell[0] * self.supercell[1] * self.supercell[2]


class SingleCrystalStructure(_PointDefects):
    """A single crystal with x, y, z along the given (orthogonal, right-handed) directions."""

    kind: Literal["single_crystal"] = "single_crystal"
    orientation: tuple[Miller, Miller, Miller] = Field(
        ((1, 0, 0), (0, 1, 0), (0, 0, 1)), description="crystal directions along x, y, z"
    )
    min_lengths: tuple[Length, Length, Length] = Field((40.0, 40.0, 40.0), description="smallest box edges, A")

    def volume(self, a: float) -> float:
        return self.min_lengths[0] * self.min_lengths[1] * self.min_lengths[2]


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
    normal: Miller = Field((0, 0, 1), description="surface normal (Miller direction)")
    thickness: Length = Field(30.0, description="crystal thickness along z, A")
    lateral_min_lengths: tuple[Length, Length] = Field((50.0, 50.0), description="smallest x, y edges, A")
    vacuum: float = Field(10.0, ge=0, description="vacuum on each side, A")

    def volume(self, a: float) -> float:
        return self.thickness * self.lateral_min_lengths[0] * self.lateral_min_lengths[1]


class BicrystalStructure(_PointDefects):
    """Periodic bicrystal with two grain boundaries (symmetric tilt or twin)."""

    kind: Literal["bicrystal"] = "bicrystal"
    boundary: Literal["symmetric_tilt", "twin"] = Field("symmetric_tilt", description="grain-boundary type")
    tilt_axis: Miller | None = Field(None, description="default [001] (tilt) or [1-10] (twin)")
    boundary_plane: Miller | None = Field(None, description="default (310) (tilt) or (112) (bcc twin)")
    min_lengths: tuple[Length, Length, Length] = Field((20.0, 20.0, 60.0), description="smallest box edges, A")

    def volume(self, a: float) -> float:
        return self.min_lengths[0] * self.min_lengths[1] * self.min_lengths[2]


class DislocationStructure(_PointDefects):
    """A straight dislocation in a cylinder (anisotropic elasticity, constants from the potential)."""

    kind: Literal["dislocation"] = "dislocation"
    character: Literal["screw", "edge"] = Field("screw", description="1/2<111> screw or edge (bcc)")
    radius: Length = Field(40.0, description="cylinder radius, A")
    line_repeats: int = Field(4, ge=1, le=1000, description="periods along the dislocation line")

    def volume(self, a: float) -> float:
        return 3.1416 * self.radius**2 * self.line_repeats * a * 3**0.5 / 2


class DislocationLoopStructure(_PointDefects):
    """A prismatic dislocation loop in a cubic supercell."""

    kind: Literal["dislocation_loop"] = "dislocation_loop"
    burgers: Literal["<100>", "<111>", "<110>"] = Field("<111>", description="Burgers vector family")
    nature: Literal["interstitial", "vacancy"] = Field("interstitial", description="loop nature")
    loop_radius: Length = Field(10.0, description="loop radius, A")
    supercell: tuple[Repeat, Repeat, Repeat] = Field((16, 16, 16), description="repeats of the cubic cell")

    def volume(self, a: float) -> float:
        return a**3 * self.supercell[0] * self.supercell[1] * self.supercell[2]


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
    name: str | None = Field(None, description="label of this run; default '<kind>-<index>'")
    structure: Structure = Field(default_factory=BulkStructure, description="the starting structure")
    seed: int = Field(12345, ge=1, description="random seed of velocities")

    def md_steps(self) -> int:  # the MD steps of the run, for the budget; overridden per protocol
        return 0

    def protocol_params(self) -> dict:
        """Keyword arguments of the sampling.protocols function of this kind."""
        return self.model_dump(exclude={"kind", "name", "structure"})


class _Timed(_Protocol):
    snapshot_every: int = Field(500, gt=0, description="MD steps between stored snapshots")
    timestep_fs: float = Field(1.0, gt=0, le=10, description="MD time step, fs")


class MinimizeProtocol(_Protocol):
    """Conjugate-gradient minimisation (optionally with box relaxation): one snapshot."""

    kind: Literal["minimize"] = "minimize"
    box_relax: bool = Field(True, description="relax the periodic box to zero stress too")


class AnnealProtocol(_Timed):
    """Equilibrium MD (Nose-Hoover) at a list of temperatures, one after another."""

    kind: Literal["anneal"] = "anneal"
    temperatures: list[PositiveKelvin] = Field([300.0], min_length=1, description="temperatures, K")
    steps_per_temperature: int = Field(2000, gt=0, description="MD steps at each temperature")
    ensemble: Literal["nvt", "npt"] = Field("nvt", description="NVT, or NPT at zero pressure")

    def md_steps(self) -> int:
        return self.steps_per_temperature * len(self.temperatures)


class _Loading(_Timed):
    temperature: PositiveKelvin = Field(300.0, description="temperature, K")
    equilibration_steps: int = Field(2000, ge=0, description="MD steps at temperature before loading")


class UniaxialProtocol(_Loading):
    """Uniaxial tension or compression at a constant engineering strain rate."""

    kind: Literal["uniaxial"] = "uniaxial"
    axis: Literal["x", "y", "z"] = Field("x", description="loading axis")
    mode: Literal["tension", "compression"] = Field("tension", description="sign of the load")
    strain_rate: float = Field(1e9, gt=0, description="engineering strain rate, 1/s (paper: 1e8 to 1e9)")
    max_strain: float = Field(0.05, gt=0, lt=1, description="final engineering strain")
    lateral: Literal["npt", "fixed"] = Field("npt", description="lateral axes at zero pressure, or fixed")

    def md_steps(self) -> int:
        return self.equilibration_steps + round(self.max_strain / (self.strain_rate * self.timestep_fs * 1e-15))


class ShearProtocol(_Loading):
    """Simple shear at a constant engineering shear rate."""

    kind: Literal["shear"] = "shear"
    plane: Literal["xy", "xz", "yz"] = Field("xy", description="LAMMPS tilt factor that grows")
    shear_rate: float = Field(1e9, gt=0, description="engineering shear rate, 1/s")
    max_shear: float = Field(0.1, gt=0, lt=1, description="final engineering shear strain")

    def md_steps(self) -> int:
        return self.equilibration_steps + round(self.max_shear / (self.shear_rate * self.timestep_fs * 1e-15))


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

    def md_steps(self) -> int:
        # 1 m/s = 1e-5 A/fs
        return self.equilibration_steps + round(self.depth / (self.speed * 1e-5 * self.timestep_fs))


class CrackOpeningProtocol(_Protocol):
    """Mode-I opening of a through-thickness slit crack by stepwise tensile strain."""

    kind: Literal["crack_opening"] = "crack_opening"
    structure: Structure = Field(
        default_factory=lambda: SingleCrystalStructure(min_lengths=(80.0, 80.0, 10.0)),
        description="the cracked crystal (periodic)",
    )
    crack_length: Length = Field(30.0, description="slit length along the crack direction, A")
    normal: Literal["x", "y", "z"] = Field("y", description="crack-plane normal (loading axis)")
    front: Literal["x", "y", "z"] = Field("z", description="crack-front direction")
    max_strain: float = Field(0.05, gt=0, lt=1, description="final strain normal to the crack")
    increments: int = Field(10, ge=1, le=10_000, description="strain increments, one snapshot each")
    temperature: float = Field(0.0, ge=0, description="K; 0 minimises each increment instead of MD")
    steps_per_increment: int = Field(1000, ge=0, description="MD steps per increment (T > 0)")
    equilibration_steps: int = Field(1000, ge=0, description="MD steps before loading (T > 0)")
    timestep_fs: float = Field(1.0, gt=0, le=10, description="MD time step, fs")

    def md_steps(self) -> int:
        return 0 if self.temperature == 0 else self.equilibration_steps + self.increments * self.steps_per_increment


Protocol = Annotated[
    MinimizeProtocol | AnnealProtocol | UniaxialProtocol | ShearProtocol | NanoindentProtocol | CrackOpeningProtocol,
    Field(discriminator="kind"),
]


class SamplingParams(Strict):
    protocols: list[Protocol] = Field(..., min_length=1, description="loading protocols, run in parallel")
    threads: int = Field(1, ge=1, le=256, description="OpenMP threads per LAMMPS run")
    detection: Literal["acna", "cna"] = Field(
        "acna", description="defect detection: adaptive CNA (no cutoff) or conventional CNA (lattice cutoff)"
    )


# The `kind` values: pydantic puts them in error locations, where users did not write them.
KIND_TAGS = frozenset(
    model.model_fields["kind"].default
    for annotated in (Structure, Protocol)
    for model in get_args(get_args(annotated)[0])
)
