"""Parameters of a PCC-GCMC reconstruction (defaults: the authors' published LAMMPS protocol)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal, Mapping

__all__ = ["GCMCParams", "AUTHORS_OFFSETS", "WIDE_OFFSETS"]

# The authors' grid: 3 x 3 x 3 boxes, each length the starting length plus -1.0, -0.5 or 0.0 A.
AUTHORS_OFFSETS: tuple[float, ...] = (-1.0, -0.5, 0.0)
# The paper's wider search (Fig. 3b): box = core extent + 1..10 A per axis.
WIDE_OFFSETS: tuple[float, ...] = tuple(float(d) for d in range(1, 11))

BOX_RELAX = ("aniso", "iso", "tri", "none")
CORE_WALL = ("retry", "always", "never")


@dataclass(frozen=True)
class GCMCParams:
    """Everything that defines one reconstruction; JSON-ready through :meth:`to_dict`/:meth:`from_dict`.

    Units: K, eV, A, ps (LAMMPS metal units); ``steps`` are MD/GCMC steps of ``timestep`` ps.
    The names shared with ``schemas.campaign.ReconstructionParams`` (core_radius, max_atoms, grid,
    temperature, mu, steps) mean the same thing, so ``GCMCParams.from_dict(spec.reconstruction.model_dump())``
    works.
    """

    # --- the authors' GCMC protocol
    temperature: float = 100.0  # K, reservoir and MD thermostat temperature
    mu: float = 0.1  # eV, chemical potential of the reservoir
    steps: int = 2000  # steps per candidate box
    timestep: float = 0.001  # ps (1 fs)
    gcmc_every: int = 10  # fix gcmc invoked every N steps ...
    exchanges: int = 10  # ... with X insertion/deletion attempts ...
    mc_moves: int = 100  # ... and M translation attempts
    max_displacement: float = 0.1  # A, largest MC translation
    md: bool = True  # NVT dynamics of the non-core atoms between GCMC invocations
    # --- relaxation after insertion (CG, inserted atoms and box; core fixed)
    min_etol: float = 1e-12
    min_ftol: float = 1e-12
    min_maxiter: int = 10000
    min_maxeval: int = 100000
    box_relax: Literal["aniso", "iso", "tri", "none"] = "aniso"
    # --- geometry
    core_radius: float = 5.0  # A, fixed core around the centre (the MLIP cutoff)
    max_atoms: int = 140  # cap on atoms of an admissible candidate
    grid: Literal["authors", "wide"] = "authors"
    offsets: tuple[float, ...] | None = None  # per-axis offsets; default from ``grid``
    margin: float | None = None  # A added to the core extent for the starting box; None: fill max_atoms
    wide_prune: float = 1.15  # wide grid: skip boxes expected to hold > wide_prune * max_atoms atoms
    seed_shell: bool = True  # start from the cluster's atoms outside the core (mobile) where they fit
    seed_min_distance: float | None = None  # A; None: 0.85 x the core's nearest-neighbour distance
    overlap_cutoff: float | None = None  # fix gcmc overlap_cutoff (A): reject moves closer than this
    protect_centre: bool = True  # no GCMC insertion/move within core_radius of the centre atom
    # A repulsive spherical wall (LAMMPS fix indent, K (R - r)^2 for r < R = core_radius + wall_width) keeps
    # mobile atoms out of the core during MD and CG: without it a vacancy in the core fills (issue 5).
    # Insertions and seeded atoms then start beyond R. A box runs with the wall only when its run without
    # it let an atom into the core (the wall raises other cores' best energy): core_wall "retry"; "always":
    # every box with the wall; "never": no wall (the centre's environment is still checked after CG).
    core_wall: Literal["retry", "always", "never"] = "retry"
    wall_width: float = 0.05  # A
    # --- run
    element: str | None = None  # inserted element; None: the centre atom's element
    seed: int | None = None  # base random seed; None: derived from the cluster (reproducible)
    threads: int = 1  # OpenMP threads per LAMMPS instance
    # --- speed-ups (issue 5; the defaults keep the authors' protocol: one run of ``steps``, every box)
    check_every: int | None = None  # run GCMC in chunks of this many steps (a trace row after each); None: one run
    early_stop: bool = False  # stop GCMC once no insertion/deletion was accepted for ``plateau_steps`` steps
    plateau_steps: int = 500  # steps without an accepted insertion or deletion that count as a plateau
    min_steps: int = 0  # early_stop never stops before this many steps
    stop_over_cap: bool = False  # stop GCMC (and skip the relaxation) once the box holds > max_atoms atoms
    prune: float | None = None  # skip boxes expected to hold > prune x max_atoms atoms (any grid); None: wide_prune
    #                             for the wide grid, no pruning for the authors' grid

    def __post_init__(self) -> None:
        def positive(name: str) -> None:
            value = getattr(self, name)
            if not value > 0:
                raise ValueError(f"{name}: must be positive, got {value!r}")

        for name in ("temperature", "timestep", "max_displacement", "core_radius", "min_ftol", "wide_prune"):
            positive(name)
        for name in ("steps", "gcmc_every", "min_maxiter", "min_maxeval", "threads", "plateau_steps"):
            value = getattr(self, name)
            if int(value) != value or value < 1:
                raise ValueError(f"{name}: must be a positive integer, got {value!r}")
        for name in ("exchanges", "mc_moves"):
            value = getattr(self, name)
            if int(value) != value or value < 0:
                raise ValueError(f"{name}: must be a non-negative integer, got {value!r}")
        if self.exchanges == 0 and self.mc_moves == 0:
            raise ValueError("exchanges and mc_moves are both 0: fix gcmc would do nothing")
        if int(self.max_atoms) != self.max_atoms or self.max_atoms < 2:
            raise ValueError(f"max_atoms: must be an integer >= 2, got {self.max_atoms!r}")
        if self.grid not in ("authors", "wide"):
            raise ValueError(f"grid: must be 'authors' or 'wide', got {self.grid!r}")
        if self.box_relax not in BOX_RELAX:
            raise ValueError(f"box_relax: must be one of {', '.join(BOX_RELAX)}, got {self.box_relax!r}")
        if self.min_etol < 0:
            raise ValueError(f"min_etol: must be >= 0, got {self.min_etol!r}")
        if self.core_wall not in CORE_WALL:
            raise ValueError(f"core_wall: must be one of {', '.join(CORE_WALL)}, got {self.core_wall!r}")
        if not 0 < self.wall_width < self.core_radius:
            raise ValueError(f"wall_width: must be > 0 and below core_radius (core_wall 'never' turns the wall off), "
                             f"got {self.wall_width!r}")
        if self.offsets is not None:
            if len(self.offsets) == 0:
                raise ValueError("offsets: give at least one offset (A)")
            object.__setattr__(self, "offsets", tuple(float(v) for v in self.offsets))
        for name in ("margin", "seed_min_distance", "overlap_cutoff"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ValueError(f"{name}: must be positive or None, got {value!r}")
        if self.check_every is not None and (int(self.check_every) != self.check_every or self.check_every < 1):
            raise ValueError(f"check_every: must be a positive integer or None, got {self.check_every!r}")
        if int(self.min_steps) != self.min_steps or self.min_steps < 0:
            raise ValueError(f"min_steps: must be a non-negative integer, got {self.min_steps!r}")
        if self.prune is not None and not self.prune > 0:
            raise ValueError(f"prune: must be positive or None, got {self.prune!r}")
        if self.seed is not None and (int(self.seed) != self.seed or self.seed < 0):
            raise ValueError(f"seed: must be a non-negative integer or None, got {self.seed!r}")

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
            return 100
        return None

    @property
    def prune_factor(self) -> float | None:
        """Skip boxes expected to hold more than this x max_atoms atoms (None: keep every box)."""
        if self.prune is not None:
            return float(self.prune)
        return float(self.wide_prune) if self.grid == "wide" else None

    @classmethod
    def fast(cls, **changes: Any) -> "GCMCParams":
        """The measured fast variant of the authors' protocol (issue 5; benchmarks/pcc_gcmc.py).

        Same T, mu, steps and insertion/deletion attempts; 10 instead of 100 MC translations per
        invocation (translations are ~90% of the GCMC cost with full_energy; the NVT dynamics between
        invocations moves the atoms too); GCMC in 100-step chunks, stopped once no insertion/deletion
        was accepted for steps/4 steps (early_stop) or once the box holds more than max_atoms atoms
        (stop_over_cap). ``changes`` override any field (``mc_moves=100`` keeps the authors' moves).
        """
        steps = int(changes.get("steps", cls.steps))
        values: dict[str, Any] = {"mc_moves": 10, "check_every": 100, "early_stop": True,
                                  "plateau_steps": max(steps // 4, 1), "stop_over_cap": True}
        values.update(changes)
        return cls(**values)

    def replace(self, **changes: Any) -> "GCMCParams":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        if data["offsets"] is not None:
            data["offsets"] = list(data["offsets"])
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | "GCMCParams" | None) -> "GCMCParams":
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
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names - {"protocol"})
        if unknown:
            raise ValueError(f"unknown PCC-GCMC parameters {', '.join(unknown)}; known: {', '.join(sorted(names))}")
        values = dict(data)
        protocol = values.pop("protocol", None) or "authors"
        if protocol not in ("authors", "fast"):
            raise ValueError(f"protocol: must be 'authors' or 'fast', got {protocol!r}")
        defaults = {f.name: f.default for f in dataclasses.fields(cls)}
        for name in [k for k, v in values.items() if v is None and defaults[k] is not None]:
            del values[name]
        if values.get("offsets") is not None:
            values["offsets"] = tuple(values["offsets"])
        return cls.fast(**values) if protocol == "fast" else cls(**values)
