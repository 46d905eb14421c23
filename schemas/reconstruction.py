"""PCC-GCMC parameters: the one definition of every reconstruction parameter, its default, bounds and units.

:class:`GCMCParams` is everything that defines one reconstruction (``pcc_gcmc`` re-exports it); the
campaign spec's ``reconstruction`` section (:class:`schemas.campaign.ReconstructionParams`) takes the
fields it exposes from here (:func:`spec_field`), so both have the same defaults and bounds.

Units: K, eV, A, ps (LAMMPS metal units); ``steps`` are MD/GCMC steps of ``timestep`` ps.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.fields import FieldInfo

__all__ = [
    "AUTHORS_OFFSETS",
    "BOX_RELAX",
    "CORE_WALL",
    "FAST_CHECK_EVERY",
    "FAST_MC_MOVES",
    "WIDE_OFFSETS",
    "GCMCParams",
    "spec_field",
]

# The authors' grid: 3 x 3 x 3 boxes, each length the starting length plus -1.0, -0.5 or 0.0 A.
AUTHORS_OFFSETS: tuple[float, ...] = (-1.0, -0.5, 0.0)
# The paper's wider search (Fig. 3b): box = core extent + 1..10 A per axis.
WIDE_OFFSETS: tuple[float, ...] = tuple(float(d) for d in range(1, 11))

BOX_RELAX = ("aniso", "iso", "tri", "none")
CORE_WALL = ("retry", "always", "never")
# GCMCParams.fast(): MC translations per fix gcmc invocation (the authors': the mc_moves default)
FAST_MC_MOVES = 10
# GCMCParams.fast(): steps per GCMC chunk
FAST_CHECK_EVERY = 100


class GCMCParams(BaseModel):
    """Everything that defines one reconstruction; JSON-ready through :meth:`to_dict`/:meth:`from_dict`.

    Defaults: the authors' published LAMMPS protocol. The names shared with
    ``schemas.campaign.ReconstructionParams`` (core_radius, max_atoms, grid, temperature, mu, steps,
    exchanges, mc_moves, offsets) are the same fields, so
    ``GCMCParams.from_dict(spec.reconstruction)`` works. Immutable: :meth:`replace` makes a changed copy.
    The field order is that of :meth:`to_dict` (hashed into stored plans and the OTF fingerprint).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    # --- the authors' GCMC protocol
    temperature: float = Field(100.0, gt=0, description="GCMC temperature (reservoir and MD thermostat), K")
    mu: float = Field(0.1, description="GCMC chemical potential of the reservoir, eV")
    steps: int = Field(2000, gt=0, description="MD/GCMC steps per box, `timestep` each (1 fs)")
    timestep: float = Field(0.001, gt=0, description="MD time step, ps")
    gcmc_every: int = Field(10, ge=1, description="fix gcmc invoked every N steps")
    exchanges: int = Field(10, ge=0, description="GCMC insertion/deletion attempts per invocation (every 10 steps)")
    mc_moves: int = Field(100, ge=0, description="GCMC translation attempts per invocation (every 10 steps)")
    max_displacement: float = Field(0.1, gt=0, description="largest MC translation, A")
    md: bool = Field(True, description="NVT dynamics of the non-core atoms between GCMC invocations")
    # --- relaxation after insertion (CG, inserted atoms and box; core fixed)
    min_etol: float = Field(1e-12, ge=0, description="CG energy tolerance")
    min_ftol: float = Field(1e-12, gt=0, description="CG force tolerance, eV/A")
    min_maxiter: int = Field(10000, ge=1, description="CG iterations")
    min_maxeval: int = Field(100000, ge=1, description="CG force evaluations")
    box_relax: Literal["aniso", "iso", "tri", "none"] = Field("aniso", description="box relaxation of the CG")
    # --- geometry
    core_radius: float = Field(5.0, gt=0, description="radius of the fixed core (the MLIP cutoff), A")
    max_atoms: int = Field(140, ge=2, description="most atoms in a reconstructed periodic cell")
    grid: Literal["authors", "wide"] = Field("authors", description="box-size grid: 3x3x3 offsets or 1..10 A")
    offsets: tuple[float, ...] | None = Field(
        None, min_length=1, description="per-axis box offsets, A, overriding the grid's (e.g. [0.0] for one box "
        "per cluster)")
    margin: float | None = Field(
        None, gt=0, description="A added to the core extent for the starting box; None: fill max_atoms")
    wide_prune: float = Field(
        1.15, gt=0, description="wide grid: skip boxes expected to hold > wide_prune * max_atoms atoms")
    seed_shell: bool = Field(
        True, description="start from the cluster's atoms outside the core (mobile) where they fit")
    seed_min_distance: float | None = Field(
        None, gt=0, description="A; None: 0.85 x the core's nearest-neighbour distance")
    overlap_cutoff: float | None = Field(
        None, gt=0, description="fix gcmc overlap_cutoff, A: reject moves closer than this")
    protect_centre: bool = Field(
        True, description="no GCMC insertion/move within core_radius of the centre atom")
    # A repulsive spherical wall (LAMMPS fix indent, K (R - r)^2 for r < R = core_radius + wall_width) keeps
    # mobile atoms out of the core during MD and CG: without it a vacancy in the core fills (issue 5).
    # Insertions and seeded atoms then start beyond R. A box runs with the wall only when its run without
    # it let an atom into the core (the wall raises other cores' best energy): core_wall "retry"; "always":
    # every box with the wall; "never": no wall (the centre's environment is still checked after CG).
    core_wall: Literal["retry", "always", "never"] = Field(
        "retry", description="wall around the core: retry (a box whose run let an atom in), always, never")
    wall_width: float = Field(0.05, description="A beyond core_radius; > 0 and below core_radius")
    # --- run
    element: str | None = Field(None, description="inserted element; None: the centre atom's element")
    seed: int | None = Field(None, ge=0, description="base random seed; None: derived from the cluster")
    threads: int = Field(1, ge=1, description="OpenMP threads per LAMMPS instance")
    # --- speed-ups (issue 5; the defaults keep the authors' protocol: one run of ``steps``, every box)
    check_every: int | None = Field(
        None, ge=1, description="run GCMC in chunks of this many steps (a trace row after each); None: one run")
    early_stop: bool = Field(
        False, description="stop GCMC once no insertion/deletion was accepted for plateau_steps steps")
    plateau_steps: int = Field(
        500, ge=1, description="steps without an accepted insertion or deletion that count as a plateau")
    min_steps: int = Field(0, ge=0, description="early_stop never stops before this many steps")
    stop_over_cap: bool = Field(
        False, description="stop GCMC (and skip the relaxation) once the box holds > max_atoms atoms")
    prune: float | None = Field(
        None, gt=0, description="skip boxes expected to hold > prune x max_atoms atoms (any grid); None: "
        "wide_prune for the wide grid, no pruning for the authors' grid")

    @field_validator("core_wall", mode="before")
    @classmethod
    def _core_wall(cls, value: Any) -> Any:
        if value not in CORE_WALL:
            raise ValueError(f"core_wall: must be one of {', '.join(CORE_WALL)}, got {value!r}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> GCMCParams:
        if self.exchanges == 0 and self.mc_moves == 0:
            raise ValueError("exchanges and mc_moves are both 0: fix gcmc would do nothing")
        if not 0 < self.wall_width < self.core_radius:
            raise ValueError(f"wall_width: must be > 0 and below core_radius (core_wall 'never' turns the wall off), "
                             f"got {self.wall_width!r}")
        return self

    @property
    def grid_offsets(self) -> tuple[float, ...]:
        """Per-axis offsets (A) of the box grid."""
        if self.offsets is not None:
            return self.offsets
        return AUTHORS_OFFSETS if self.grid == "authors" else WIDE_OFFSETS

    @property
    def gcmc_chunk(self) -> int | None:
        """Steps per GCMC chunk: ``check_every``, or 100 when early_stop/stop_over_cap need checks; None: one run."""
        if self.check_every is not None:
            return int(self.check_every)
        if self.early_stop or self.stop_over_cap:
            return FAST_CHECK_EVERY
        return None

    @property
    def prune_factor(self) -> float | None:
        """Skip boxes expected to hold more than this x max_atoms atoms (None: keep every box)."""
        if self.prune is not None:
            return float(self.prune)
        return float(self.wide_prune) if self.grid == "wide" else None

    @classmethod
    def fast(cls, **changes: Any) -> GCMCParams:
        """The measured fast variant of the authors' protocol (issue 5; benchmarks/pcc_gcmc.py).

        Same T, mu, steps and insertion/deletion attempts; 10 instead of 100 MC translations per
        invocation (translations are ~90% of the GCMC cost with full_energy; the NVT dynamics between
        invocations moves the atoms too); GCMC in 100-step chunks, stopped once no insertion/deletion
        was accepted for steps/4 steps (early_stop) or once the box holds more than max_atoms atoms
        (stop_over_cap). ``changes`` override any field (``mc_moves=100`` keeps the authors' moves).
        """
        steps = int(changes.get("steps", cls.model_fields["steps"].default))
        values: dict[str, Any] = {"mc_moves": FAST_MC_MOVES, "check_every": FAST_CHECK_EVERY, "early_stop": True,
                                  "plateau_steps": max(steps // 4, 1), "stop_over_cap": True}
        values.update(changes)
        return cls(**values)

    def replace(self, **changes: Any) -> GCMCParams:
        """A copy with ``changes``, validated like a new instance."""
        return type(self)(**{**{name: getattr(self, name) for name in type(self).model_fields}, **changes})

    def to_dict(self) -> dict[str, Any]:
        """Every field in definition order, JSON-ready (offsets as a list)."""
        data = {name: getattr(self, name) for name in type(self).model_fields}
        if data["offsets"] is not None:
            data["offsets"] = list(data["offsets"])
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | GCMCParams | Any | None) -> GCMCParams:
        """From a mapping of field names (unknown keys are an error); None gives the defaults.

        Also reads the campaign schema's ``reconstruction`` (schemas.campaign.ReconstructionParams):
        ``protocol`` "authors" (the fields as given) or "fast" (:meth:`fast` with the given fields), and
        None for a field whose default is not None means that default (e.g. ``mc_moves``: 100 authors,
        10 fast).
        """
        if data is None:
            return cls()
        if isinstance(data, GCMCParams):
            return data
        if hasattr(data, "model_dump"):  # a pydantic model such as ReconstructionParams
            data = data.model_dump()
        names = set(cls.model_fields)
        unknown = sorted(set(data) - names - {"protocol"})
        if unknown:
            raise ValueError(f"unknown PCC-GCMC parameters {', '.join(unknown)}; known: {', '.join(sorted(names))}")
        values = dict(data)
        protocol = values.pop("protocol", None) or "authors"
        if protocol not in ("authors", "fast"):
            raise ValueError(f"protocol: must be 'authors' or 'fast', got {protocol!r}")
        for name in [k for k, v in values.items() if v is None and cls.model_fields[k].default is not None]:
            del values[name]
        if values.get("offsets") is not None:
            values["offsets"] = tuple(values["offsets"])
        return cls.fast(**values) if protocol == "fast" else cls(**values)


def spec_field(name: str, **changes: Any) -> Any:
    """GCMCParams' field ``name`` (default, bounds, description) for another model, e.g. the campaign spec's
    ``reconstruction`` section; ``changes`` are Field() arguments that differ there (e.g. default=None)."""
    return FieldInfo.merge_field_infos(GCMCParams.model_fields[name], Field(**changes))
