"""Validation suites of a trained potential (``mlip.validation``): the scenarios of the paper's Fig. 6 and Fig. 4,
one parameter model with units in the descriptions, and the typed report.

Scenarios (``mlip.validation.SCENARIOS``), each built with the project's builders and loading protocols and the
*sampling* potential, seeds disjoint from a campaign's (campaign default 12345):

- ``gb``: symmetric tilt bicrystals (``gb.boundaries``), MD at ``gb.temperatures`` (paper: 300, 900, 2000 K).
- ``compression``: uniaxial compression of a bcc single crystal along [001] to ``max_strain`` (Bain path
  bcc -> fcc/hcp, then disorder).
- ``polycrystal_2d``: columnar polycrystal (grains share the [001] axis along z), MD at ``temperature``.
- ``polycrystal_3d``: periodic Voronoi polycrystal, MD at ``temperatures`` (paper: 300 and 2000 K).
- ``crack``: a slit crack opened in mode I in strain increments (propagation at the last ones).
- ``loops``: prismatic dislocation loops (<100> interstitial, <111> interstitial = glide loop), relaxed + MD.
- ``nanoindent``: spherical indentation of a (001) slab, the snapshot at the deepest point.

Two presets: ``paper`` (the scenarios above at a size a DFT user can label: 100-400 atoms per configuration)
and ``smoke`` (the same kinds, fewer and shorter, for tests).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from schemas.base import Strict

__all__ = [
    "SUITES",
    "CompressionScenario",
    "CrackScenario",
    "GammaSummary",
    "GbScenario",
    "LoopScenario",
    "NanoindentScenario",
    "ParitySample",
    "Polycrystal2DScenario",
    "Polycrystal3DScenario",
    "PropertyComparison",
    "PropertySettings",
    "ScenarioErrors",
    "ValidationReport",
    "ValidationSuiteParams",
    "suite_params",
]

SUITES = ("paper", "smoke")
Kelvin = float
Miller = tuple[int, int, int]


class GbScenario(Strict):
    """Symmetric tilt grain boundaries (periodic bicrystals, two boundaries normal to z) annealed by MD."""

    boundaries: list[tuple[Miller, Miller]] = Field(
        [((0, 0, 1), (3, 1, 0)), ((0, 0, 1), (2, 1, 0)), ((1, -1, 0), (1, 1, 2))], min_length=1, max_length=20,
        description="(tilt axis, boundary plane) pairs, Miller indices: default Sigma5 (310)[001], "
        "Sigma5 (210)[001], Sigma3 (112)[1-10]")
    min_lengths: tuple[float, float, float] = Field(
        (8.0, 9.0, 28.0), description="smallest box edges (x along the tilt axis, y, z = 2 grains), A")
    temperatures: list[Kelvin] = Field([300.0, 900.0, 2000.0], min_length=1, max_length=10,
                                       description="MD temperatures, K; one snapshot at the end of each")
    steps_per_temperature: int = Field(1000, ge=1, le=10**7, description="NVT MD steps per temperature (1 fs)")


class CompressionScenario(Strict):
    """Uniaxial compression of a bcc/fcc single crystal along z (lateral axes at zero pressure)."""

    supercell: tuple[int, int, int] = Field((4, 4, 5), description="repeats of the cubic cell along x, y, z")
    temperature: Kelvin = Field(300.0, gt=0, description="K")
    max_strain: float = Field(0.3, gt=0, lt=0.9, description="final engineering compressive strain")
    strain_rate: float = Field(1e10, gt=0, description="engineering strain rate, 1/s")
    snapshots: int = Field(4, ge=1, le=100, description="snapshots over the loading (the first at zero strain)")
    equilibration_steps: int = Field(500, ge=0, description="NPT steps at temperature before loading (1 fs)")


class Polycrystal2DScenario(Strict):
    """Columnar polycrystal: grains rotated about the common [001] axis (z), Voronoi in the xy plane."""

    box_xy: tuple[float, float] = Field((24.0, 24.0), description="box edges x, y, A")
    z_periods: int = Field(2, ge=1, le=100, description="lattice periods along z (the column axis)")
    n_grains: int = Field(3, ge=2, le=100, description="grains")
    temperature: Kelvin = Field(300.0, gt=0, description="K")
    steps: int = Field(1000, ge=1, description="NVT MD steps (1 fs) after minimisation")
    snapshots: int = Field(2, ge=1, le=100, description="snapshots over the MD (the first after minimisation)")


class Polycrystal3DScenario(Strict):
    """Periodic Voronoi polycrystal with random orientations annealed at each temperature."""

    box: tuple[float, float, float] = Field((15.0, 15.0, 15.0), description="box edges, A")
    n_grains: int = Field(2, ge=2, le=100, description="grains")
    temperatures: list[Kelvin] = Field([300.0, 2000.0], min_length=1, max_length=10,
                                       description="MD temperatures, K; one snapshot at the end of each")
    steps_per_temperature: int = Field(1000, ge=1, description="NVT MD steps per temperature (1 fs)")


class CrackScenario(Strict):
    """A through-thickness slit crack (normal y, front z) opened by stepwise strain along y."""

    min_lengths: tuple[float, float, float] = Field((25.0, 22.0, 6.4), description="smallest box edges, A")
    crack_length: float = Field(10.0, gt=0, description="slit length along x, A")
    max_strain: float = Field(0.16, gt=0, lt=0.5, description="final strain normal to the crack (W EAM-Zhou at "
                              "0 K: the slit runs through the 25 A cell between 0.10 and 0.12)")
    increments: int = Field(8, ge=1, le=100, description="strain increments (minimised at 0 K, or MD)")
    temperature: Kelvin = Field(0.0, ge=0, description="K; 0 = quasi-static minimisation per increment")
    snapshots: int = Field(3, ge=1, le=100, description="the last this many increments are kept")


class LoopScenario(Strict):
    """Prismatic dislocation loops in a cubic supercell: relaxed, then MD."""

    loops: list[Literal["<100>", "<111>"]] = Field(["<100>", "<111>"], min_length=1, max_length=4,
                                                  description="Burgers vector families (interstitial loops; "
                                                  "the <111> loop is the glissile one)")
    supercell: tuple[int, int, int] = Field((5, 5, 5), description="repeats of the cubic cell")
    radius: float = Field(4.5, gt=0, description="loop radius, A")
    temperature: Kelvin = Field(300.0, gt=0, description="K")
    steps: int = Field(500, ge=1, description="NVT MD steps (1 fs) after relaxation")


class NanoindentScenario(Strict):
    """Spherical indentation of a (001) slab; the configuration at the deepest point."""

    lateral: tuple[float, float] = Field((18.9, 18.9), description="smallest slab edges x, y, A")
    thickness: float = Field(14.0, gt=0, description="slab thickness, A")
    radius: float = Field(8.0, gt=0, description="indenter radius, A")
    depth: float = Field(3.0, gt=0, description="indentation depth, A")
    speed: float = Field(50.0, gt=0, description="indenter speed, m/s")
    temperature: Kelvin = Field(300.0, gt=0, description="K")
    equilibration_steps: int = Field(200, ge=0, description="NVT steps before indenting (1 fs)")


class PropertySettings(Strict):
    """Defect properties of model and reference (``mlip.validation.defect_properties``)."""

    enabled: bool = Field(True, description="compute them (LAMMPS-evaluable models only: SNAP, EAM, MEAM)")
    bulk_size: int = Field(4, ge=2, le=10, description="cubic cells per edge of the vacancy / interstitial cells")
    slab_thickness: float = Field(16.0, gt=0, description="crystal thickness of the surface slabs, A")
    gb_min_lengths: tuple[float, float, float] = Field(
        (6.0, 10.0, 30.0), description="smallest box edges of the Sigma5 (310)[001] bicrystal, A")
    gb_expansions: list[float] = Field([0.0, 0.01, 0.02, 0.03], min_length=1, max_length=20,
                                       description="cell stretches along z tried for the GB energy (fractions)")
    ev_points: int = Field(9, ge=3, le=101, description="points of the energy-volume curve")
    ev_range: float = Field(0.08, gt=0, lt=0.3, description="lattice constant scaled by 1 +/- this (fraction)")


class ValidationSuiteParams(Strict):
    """A validation suite: the scenarios, their sizes, temperatures and steps, and the seed."""

    suite: Literal["paper", "smoke", "custom"] = Field("paper", description="preset name (custom: edited)")
    seed: int = Field(20250118, ge=1, description="seed of grains, velocities and loops (campaigns use 12345)")
    timestep_fs: float = Field(1.0, gt=0, le=5, description="MD time step, fs")
    detection: Literal["acna", "cna"] = Field("acna", description="defect detection of the snapshots")
    scenarios: list[Literal["gb", "compression", "polycrystal_2d", "polycrystal_3d", "crack", "loops",
                            "nanoindent"]] = Field(
        ["gb", "compression", "polycrystal_2d", "polycrystal_3d", "crack", "loops", "nanoindent"],
        min_length=1, description="scenarios to build, in this order")
    gb: GbScenario = Field(default_factory=GbScenario)
    compression: CompressionScenario = Field(default_factory=CompressionScenario)
    polycrystal_2d: Polycrystal2DScenario = Field(default_factory=Polycrystal2DScenario)
    polycrystal_3d: Polycrystal3DScenario = Field(default_factory=Polycrystal3DScenario)
    crack: CrackScenario = Field(default_factory=CrackScenario)
    loops: LoopScenario = Field(default_factory=LoopScenario)
    nanoindent: NanoindentScenario = Field(default_factory=NanoindentScenario)
    properties: PropertySettings = Field(default_factory=PropertySettings)


def suite_params(name: str, **overrides: Any) -> ValidationSuiteParams:
    """The ``paper`` or ``smoke`` preset; ``overrides`` replace top-level fields (e.g. ``seed=7``)."""
    if name == "paper":
        return ValidationSuiteParams(suite="paper", **overrides)
    if name == "smoke":
        smoke = dict(
            suite="smoke",
            gb=GbScenario(boundaries=[((0, 0, 1), (3, 1, 0)), ((0, 0, 1), (2, 1, 0)), ((1, -1, 0), (1, 1, 2))],
                          min_lengths=(6.0, 9.0, 24.0), temperatures=[300.0, 900.0, 2000.0],
                          steps_per_temperature=100),
            compression=CompressionScenario(supercell=(3, 3, 4), max_strain=0.4, strain_rate=1e11, snapshots=3,
                                            equilibration_steps=100),
            polycrystal_2d=Polycrystal2DScenario(box_xy=(18.0, 18.0), z_periods=2, n_grains=3, steps=100,
                                                 snapshots=1),
            polycrystal_3d=Polycrystal3DScenario(box=(13.0, 13.0, 13.0), n_grains=2, temperatures=[300.0, 2000.0],
                                                 steps_per_temperature=100),
            crack=CrackScenario(min_lengths=(19.0, 16.0, 6.4), crack_length=8.0, max_strain=0.16, increments=4,
                                snapshots=1),
            loops=LoopScenario(loops=["<100>", "<111>"], supercell=(4, 4, 4), radius=3.0, steps=100),
            nanoindent=NanoindentScenario(lateral=(13.0, 13.0), thickness=10.0, radius=6.0, depth=2.0, speed=200.0,
                                          equilibration_steps=50),
            properties=PropertySettings(bulk_size=3, slab_thickness=12.0, gb_min_lengths=(6.0, 10.0, 20.0),
                                          gb_expansions=[0.0], ev_points=5),
        )
        smoke.update(overrides)
        return ValidationSuiteParams(**smoke)
    raise ValueError(f"suite: unknown suite {name!r}; choose one of {', '.join(SUITES)}")


# --------------------------------------------------------------------------- the report


class GammaSummary(Strict):
    """Extrapolation grade of every atom of a scenario against an active set (MLIP-3 semantics)."""

    n_atoms: int
    gamma_max: float = Field(description="largest gamma, dimensionless")
    fraction_above_1: float
    fraction_above_2: float
    fraction_above_10: float


class ParitySample(Strict):
    """Model against reference for a parity plot: force components of the defect atoms (all atoms when the
    scenario has none), at most ``PARITY_POINTS`` evenly spaced in storage order, and the energy per atom of every
    configuration."""

    defect_atoms: bool = Field(description="True: the forces are of defect atoms only")
    n_components: int = Field(description="force components the sample was taken from")
    force_reference: list[float] = Field(description="eV/A")
    force_model: list[float] = Field(description="eV/A")
    energy_reference: list[float] = Field(description="eV/atom, one per configuration")
    energy_model: list[float] = Field(description="eV/atom, one per configuration (offset not removed)")


PARITY_POINTS = 300


class ScenarioErrors(Strict):
    """Errors of the model against the reference labels over one scenario's configurations."""

    scenario: str
    n_configurations: int
    n_atoms: int = Field(description="atoms summed over the configurations")
    n_defect_atoms: int = Field(description="atoms not in the perfect lattice, summed over the configurations")
    atoms_per_configuration: list[int]
    energy_rmse_mev_per_atom: float = Field(description="RMSE of the energy per atom, meV/atom")
    energy_rmse_centred_mev_per_atom: float = Field(
        description="the same after removing the suite-wide mean energy offset (model and reference zeros differ), "
        "meV/atom")
    force_rmse_mev_per_A: float = Field(description="RMSE per Cartesian force component, all atoms, meV/A")
    force_rmse_defect_mev_per_A: float | None = Field(
        description="RMSE per force component over the defect atoms only (None: no defect atom), meV/A")
    max_force_error_mev_per_A: float = Field(description="largest |F_model - F_ref| of one atom, meV/A")
    gamma: GammaSummary | None = Field(None, description="grades of every atom (with a basis and active set)")
    parity: ParitySample | None = Field(None, description="model against reference, for parity plots")


class PropertyComparison(Strict):
    name: str
    unit: str
    model: float | None
    reference: float | None
    difference: float | None = Field(description="model - reference, in unit")


class ValidationReport(Strict):
    """A model validated on a suite against a reference; JSON via ``model_dump_json``."""

    model: str
    reference: str
    suite: str
    element: str
    lattice: str
    lattice_constant: float = Field(description="A, the one the scenarios were built with")
    seed: int
    energy_offset_mev_per_atom: float = Field(description="mean (model - reference) energy per atom, meV/atom")
    scenarios: list[ScenarioErrors]
    properties: list[PropertyComparison] = Field(default_factory=list)
    energy_volume: dict[str, list[float]] | None = Field(
        None, description="volume per atom (A^3), model and reference energy per atom (eV)")
    notes: list[str] = Field(default_factory=list)
    timings: dict[str, float] = Field(default_factory=dict, description="wall time per step, s (not reproducible)")

    def table(self) -> str:
        """A plain-text table of the scenario errors and the properties."""
        lines = [f"model {self.model} vs reference {self.reference}: suite {self.suite}, {self.element} "
                 f"{self.lattice} a={self.lattice_constant:.4f} A, seed {self.seed}; mean energy offset "
                 f"{self.energy_offset_mev_per_atom:.1f} meV/atom"]
        header = (f"{'scenario':<16}{'configs':>8}{'atoms':>8}{'defect':>8}{'E rmse':>10}{'E cent.':>10}"
                  f"{'F rmse':>10}{'F defect':>10}{'F max':>10}{'g max':>9}{'g>2':>7}{'g>10':>7}")
        lines += [header, f"{'':<16}{'':>8}{'':>8}{'':>8}{'meV/at':>10}{'meV/at':>10}{'meV/A':>10}{'meV/A':>10}"
                          f"{'meV/A':>10}", "-" * len(header)]
        for s in self.scenarios:
            defect = "-" if s.force_rmse_defect_mev_per_A is None else f"{s.force_rmse_defect_mev_per_A:.1f}"
            gamma = (f"{s.gamma.gamma_max:>9.3g}{s.gamma.fraction_above_2:>7.2f}{s.gamma.fraction_above_10:>7.2f}"
                     if s.gamma else f"{'-':>9}{'-':>7}{'-':>7}")
            lines.append(f"{s.scenario:<16}{s.n_configurations:>8}{s.n_atoms:>8}{s.n_defect_atoms:>8}"
                         f"{s.energy_rmse_mev_per_atom:>10.2f}{s.energy_rmse_centred_mev_per_atom:>10.2f}"
                         f"{s.force_rmse_mev_per_A:>10.1f}{defect:>10}{s.max_force_error_mev_per_A:>10.1f}{gamma}")
        if self.properties:
            lines += ["", f"{'property':<28}{'unit':<10}{'model':>12}{'reference':>12}{'difference':>12}"]
            for p in self.properties:
                fmt = lambda v: "-" if v is None else f"{v:.4g}"  # noqa: E731
                lines.append(f"{p.name:<28}{p.unit:<10}{fmt(p.model):>12}{fmt(p.reference):>12}"
                             f"{fmt(p.difference):>12}")
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)
