"""DFT settings per engine, the ``production`` and ``quick`` profiles, hashes and k-point grids.

Units: energies eV, lengths A, k-point spacing 1/A *including* the factor 2*pi.

K-point convention. The paper (Shuang et al. 2025, Methods) uses Monkhorst-Pack grids with a
"density" of 2*pi*0.03 1/A made by VASPKIT. That number is a *spacing* between k-points: with
reciprocal vectors b_i (b_i . a_j = delta_ij, no 2*pi) the grid is

    N_i = max(1, ceil(2*pi*|b_i| / spacing))        (VASP's KSPACING rule)

so spacing = 2*pi*0.03 1/A gives N_i = ceil(|b_i| / 0.03). It is the same as ASE's
``kptdensity2monkhorstpack(atoms, kptdensity=1/spacing, even=False)`` and GPAW's
``kpts={'density': 1/spacing}`` (points per 1/A). Examples: 2-atom bcc W cube (a = 3.165 A):
|b| = 0.316 1/A -> 10.53 -> 11 x 11 x 11; the 16-atom 2x2x2 cube (6.33 A) -> 6 x 6 x 6;
a 13 A PCC-GCMC box -> 3 x 3 x 3. Non-periodic directions get 1 (clusters with vacuum: Gamma only).

Smearing. The paper does not state its smearing. Defaults here: Fermi-Dirac, 0.1 eV, in every
engine (VASP ISMEAR = -1, SIGMA = 0.1; QE occupations='smearing', smearing='fd', degauss in Ry),
so that numbers from different engines mean the same thing. Labels carry the free energy (the one
consistent with the forces) as ``energy`` and the sigma -> 0 estimate as ``energy_zero``.

Hash. :func:`settings_hash` covers the fields that change the converged numbers (engine, xc,
cutoff, k-points, smearing, SCF tolerance, pseudopotential choice, spin); SCF *algorithm* knobs
(mixing, maximum iterations) and how to run (commands, paths to pseudopotential directories)
are left out, so a retry with stronger mixing keeps its job's hash, while a retry with a larger
smearing (other numbers) gets a new one. Reference-potential labels (engine ``lammps``, alias ``eam``): the hash
covers the LAMMPS pair lines (file names) and every file's SHA-256 in ``engine_options["reference"]``, not where
the files lie (``reference_paths``), so the same bytes anywhere are the same label and changed bytes a new one.
Saving the charge density (``save_density``, ``density_kind``; GPAW only) is hashed *only when switched on*: see
:data:`_HASHED_WHEN_SET`.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
from typing import Annotated, Any, Literal, get_args

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidatorFunctionWrapHandler, field_validator, model_validator

Engine = Literal["gpaw", "vasp", "espresso", "lammps", "eam"]
ENGINES: tuple[str, ...] = get_args(Engine)
#: Engines that label with a classical or ML reference potential through LAMMPS, not DFT ("eam" is the
#: deprecated alias of "lammps" with the campaign's own potential).
REFERENCE_ENGINES = ("lammps", "eam")

#: The paper's k-point spacing, 2*pi*0.03 1/A.
PAPER_KSPACING = 2.0 * math.pi * 0.03
#: Hartree-free conversions used by writers.
RY_IN_EV = 13.605693122994

# Fields outside the hash: SCF algorithm knobs and run-time plumbing.
_NOT_HASHED = frozenset(
    {"profile", "mixing_beta", "mixing_history", "max_scf_steps", "command", "pseudo_dir", "walltime",
     "reference_paths"}
)

# Output options hashed only when switched on. ``save_density`` does not change the converged numbers, but a label
# that carries a density file is a different product from one that does not: with the flag in the hash, a ledger that
# deduplicates by settings hash never hands back an old density-less label to a request for densities. Left out of
# the hash at their defaults (False / "pseudo") so that every existing settings hash -- and the ledger's stored
# keys -- stay exactly as they were; ``density_kind`` only counts together with ``save_density``.
_HASHED_WHEN_SET = ("save_density", "density_kind")

_KPOINTS = Annotated[int, Field(ge=1)]
#: Slurm time limits as :func:`labelling.failures._hours` reads them: MM, MM:SS, HH:MM:SS, with an optional "D-".
_WALLTIME = r"^(\d+-)?\d+(:\d+){0,2}$"


class DFTSettings(BaseModel):
    """Settings of one DFT (or reference-potential) labelling job.

    ``engine_options`` holds engine-specific extras, hashed (e.g. VASP ``{"potcar": {"W": "W_pv"}}``,
    QE ``{"pseudopotentials": {"Al": "Al.pbe-n-kjpaw_psl.1.0.0.UPF"}}``, GPAW ``{"setups": "paw"}``; lammps / eam
    ``{"reference": ReferencePotential.record()}``: the pair_style / pair_coeff lines with file names, the
    elements and every file's SHA-256, so a changed potential file is a new settings hash; the legacy eam
    ``{"potential": "W_zhou.eam.alloy"}`` is still read). ``reference_paths`` (not hashed) maps the reference's
    file names to the files on this machine.

    Production: DFT engines, and ``lammps`` (distilling a trusted potential is a real use: its labels say so,
    ``EFS_by lammps:<name>``); the deprecated alias ``eam`` (the campaign's own potential, for tests and demos)
    is refused for production settings.

    The field defaults are the paper's settings (:func:`production` without the production flag). A frozen value:
    change it with :meth:`replace` (validated, like the constructor); ``model_copy(update=...)`` skips validation.

    Numbers keep the type they were given: an integer cutoff (``ecut=400``) stays an int, as in the dataclass this
    model replaced, because :func:`settings_hash` and :meth:`to_dict` write ``400`` and ``400.0`` differently and the
    ledger's stored keys must not change.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    engine: Engine = Field(
        "gpaw", description="labelling engine: gpaw, vasp, espresso (DFT), lammps (a reference potential, "
        "engine_options['reference']) or eam (deprecated alias of lammps; refused when production)")
    profile: str = Field("custom", description="the profile these settings come from (production, quick, custom); "
                         "not hashed")
    production: bool = Field(False, description="settings of a production training set (eam is refused then)")
    xc: str = Field("PBE", description="exchange-correlation functional")
    ecut: float = Field(520.0, gt=0, description="plane-wave cutoff, eV (the paper: 520)")
    kspacing: float = Field(
        PAPER_KSPACING, gt=0,
        description="largest spacing between k-points, 1/A *including* the factor 2*pi (VASP's KSPACING; the "
        "paper: 2*pi*0.03 = 0.1885); used when kpts is None")
    kpts: tuple[_KPOINTS, _KPOINTS, _KPOINTS] | None = Field(
        None, description="explicit k-point grid (three integers >= 1); overrides kspacing")
    gamma_centered: bool = Field(False, description="Gamma-centred (true) or Monkhorst-Pack (false) grid")
    smearing: Literal["fermi-dirac", "gaussian", "methfessel-paxton"] = Field(
        "fermi-dirac", description="occupation smearing, the same in every engine")
    sigma: float = Field(0.1, ge=0, description="smearing width, eV")
    scf_energy_tol: float = Field(
        1e-6, gt=0, description="SCF convergence: change of the total energy between SCF steps, eV (the paper: 1e-6)")
    spin_polarized: bool = Field(False, description="spin-polarised calculation")
    compute_stress: bool = Field(True, description="compute the stress tensor (eV/A^3)")
    engine_options: dict[str, Any] = Field(
        default_factory=dict, description="engine-specific extras, hashed (POTCARs, pseudopotentials, GPAW setups, "
        "the reference potential's record)")
    # --- output options: hashed only when save_density is on (see _HASHED_WHEN_SET) ---
    save_density: bool = Field(
        False, description="GPAW: store the converged electron density (electrons/A^3, GPAW's real-space grid) as "
        "density.npz next to the label (LabelResult.density_file); hashed only when true")
    density_kind: Literal["pseudo", "all_electron"] = Field(
        "pseudo", description="which density save_density stores: 'pseudo' (calc.get_pseudo_density(), integrates "
        "to the valence electrons) or 'all_electron' (calc.get_all_electron_density(gridrefinement=2), twice as fine "
        "a grid, integrates to all electrons, core included)")
    # --- not hashed: SCF algorithm knobs and run plumbing ---
    mixing_beta: float | None = Field(
        None, gt=0, le=1, description="density mixing weight; None: the engine's default (GPAW 0.05 for PW "
        "metals, VASP 0.4, QE 0.7); not hashed")
    mixing_history: int | None = Field(None, ge=1, description="densities kept by the mixer; not hashed")
    max_scf_steps: int | None = Field(None, ge=1, description="SCF step limit; None: the engine's default; "
                                      "not hashed")
    command: tuple[str, ...] | None = Field(
        None, description="VASP/QE run command (argv), e.g. ('mpirun', '-np', '64', 'vasp_std'); not hashed")
    pseudo_dir: str | None = Field(None, description="VASP POTCAR root / QE pseudo_dir; not hashed")
    walltime: str | None = Field(
        None, pattern=_WALLTIME, description="Slurm time limit of the job, HH:MM:SS (or D-HH:MM:SS); not hashed")
    reference_paths: dict[str, str] | None = Field(
        None, description="lammps/eam: the reference's file names -> paths on this machine; not hashed")

    @field_validator("engine", mode="before")
    @classmethod
    def _known_engine(cls, value: Any) -> Any:
        if value not in ENGINES:
            raise ValueError(f"labelling.engine must be one of {', '.join(ENGINES)}, not {value!r}")
        return value

    @field_validator("ecut", "kspacing", "sigma", "scf_energy_tol", "mixing_beta", mode="wrap")
    @classmethod
    def _integers_stay_integers(cls, value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        """Checked as a float (bounds, no inf/nan); an integer stays an int (see the class docstring)."""
        checked = handler(value)
        if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
            return int(value)
        return checked

    @field_validator("command", mode="before")
    @classmethod
    def _command_words(cls, value: Any) -> Any:
        """Each word of the command as text (``("mpirun", "-np", 64)`` -> ``"64"``)."""
        if isinstance(value, (list, tuple)):
            return tuple(str(word) for word in value)
        return value

    @model_validator(mode="after")
    def _eam_not_in_production(self) -> DFTSettings:
        if self.production and self.engine == "eam":
            raise ValueError(
                "labelling.engine 'eam' is a classical reference labeller for tests and demos; "
                "it is refused for specs marked production (labelling.production = true): use gpaw, vasp or "
                "espresso, or engine 'lammps' with an explicit labelling.reference"
            )
        return self

    @model_validator(mode="after")
    def _density_only_with_gpaw(self) -> DFTSettings:
        if self.save_density and self.engine != "gpaw":
            raise ValueError(
                f"labelling.save_density is implemented for engine 'gpaw' only, not {self.engine!r}"
            )
        return self

    # ------------------------------------------------------------------ helpers

    def replace(self, **changes: Any) -> DFTSettings:
        """A copy with ``changes``, validated like the constructor (``model_copy(update=...)`` does not check)."""
        values = {name: getattr(self, name) for name in type(self).model_fields}
        return type(self).model_validate({**values, **changes})

    def kpoints(self, atoms) -> tuple[int, int, int]:
        """The Monkhorst-Pack grid for ``atoms`` (explicit ``kpts`` or from ``kspacing``)."""
        if self.kpts is not None:
            return self.kpts
        return kpoints_for(atoms.cell[:], self.kspacing, pbc=atoms.pbc)

    def to_dict(self) -> dict[str, Any]:
        """Every field in declaration order, values as given (deep copies), kpts and command as lists: the ledger's
        stored settings and the input of :func:`settings_hash`."""
        data = {name: copy.deepcopy(getattr(self, name)) for name in type(self).model_fields}
        data["kpts"] = list(self.kpts) if self.kpts is not None else None
        data["command"] = list(self.command) if self.command is not None else None
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DFTSettings:
        unknown = sorted(set(data) - set(cls.model_fields))
        if unknown:
            raise ValueError(f"unknown DFT settings: {', '.join(unknown)}")
        return cls.model_validate(data)


def _canonical(value: Any) -> Any:
    if isinstance(value, float):
        # 12 significant digits: 2*pi*0.03 computed in different ways hashes the same
        return float(f"{value:.12g}")
    if isinstance(value, dict):
        return {str(k): _canonical(v) for k, v in sorted(value.items())}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    if isinstance(value, np.generic):
        return _canonical(value.item())
    return value


def hashed_fields(settings: DFTSettings) -> dict[str, Any]:
    """The fields :func:`settings_hash` covers, canonicalised."""
    data = {k: v for k, v in settings.to_dict().items() if k not in _NOT_HASHED}
    if not settings.save_density:  # at their defaults the output options leave the hash as it always was
        for name in _HASHED_WHEN_SET:
            data.pop(name, None)
    return _canonical(data)


def settings_hash(settings: DFTSettings) -> str:
    """sha256 (hex) of the canonical JSON of the physics fields; stable across runs and machines."""
    text = json.dumps(hashed_fields(settings), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def structure_hash(atoms, decimals: int = 6) -> str:
    """sha256 of numbers, positions, cell (rounded to ``decimals`` A) and pbc: the ledger's structure key."""
    positions = np.round(np.asarray(atoms.positions, dtype=float), decimals) + 0.0  # -0.0 -> 0.0
    cell = np.round(np.asarray(atoms.cell[:], dtype=float), decimals) + 0.0
    payload = {
        "numbers": [int(z) for z in atoms.numbers],
        "positions": [[f"{x:.{decimals}f}" for x in row] for row in positions],
        "cell": [[f"{x:.{decimals}f}" for x in row] for row in cell],
        "pbc": [bool(p) for p in atoms.pbc],
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def kpoints_for(cell, spacing: float = PAPER_KSPACING, pbc=(True, True, True)) -> tuple[int, int, int]:
    """Monkhorst-Pack grid with at most ``spacing`` (1/A, incl. 2*pi) between k-points.

    N_i = max(1, ceil(2*pi*|b_i| / spacing)) for periodic directions, 1 otherwise.
    """
    cell = np.asarray(cell, dtype=float)
    if spacing <= 0:
        raise ValueError("k-point spacing must be > 0")
    if abs(np.linalg.det(cell)) < 1e-12:
        raise ValueError("cell has zero volume; k-points need a 3D cell")
    reciprocal = np.linalg.inv(cell).T  # rows b_i, b_i . a_j = delta_ij
    grid = []
    for i in range(3):
        if not pbc[i]:
            grid.append(1)
            continue
        n = 2.0 * math.pi * float(np.linalg.norm(reciprocal[i])) / spacing
        grid.append(max(1, math.ceil(n - 1e-9)))
    return grid[0], grid[1], grid[2]


# --------------------------------------------------------------------------- profiles


def production(engine: Engine = "gpaw", **changes: Any) -> DFTSettings:
    """The paper's settings: PBE, 520 eV, SCF 1e-6 eV, k spacing 2*pi*0.03 1/A, FD 0.1 eV."""
    base = DFTSettings(engine=engine, profile="production", production=True)  # the field defaults are the paper's
    return base.replace(**changes) if changes else base


def quick(engine: Engine = "gpaw", **changes: Any) -> DFTSettings:
    """Laptop settings: 300 eV, SCF 1e-4 eV (VASP's default EDIFF), k spacing 2*pi*0.1 1/A (bcc W: 2 atoms
    4x4x4, 16 atoms 2x2x2, 128 atoms Gamma), FD 0.1 eV; GPAW uses the setups with the fewest valence electrons (W: 6,
    not 14).

    Measured on 2 cores (benchmarks/gpaw_quick.py): the 2*pi*0.05 mesh with the 14-electron W setup took
    10 min for 16 atoms even with the 6-electron setup (32 IBZ k-points); this profile is for demos and
    tests, never for a training set (labelling.profile: production)."""
    base = DFTSettings(
        engine=engine,
        profile="quick",
        production=False,
        ecut=300.0,
        kspacing=2.0 * math.pi * 0.1,
        scf_energy_tol=1e-4,
        smearing="fermi-dirac",
        sigma=0.1,
        engine_options={"setups": "fewest-valence"} if engine == "gpaw" else {},
    )
    return base.replace(**changes) if changes else base


PROFILES = {"production": production, "quick": quick}


def profile(name: str, engine: Engine = "gpaw", **changes: Any) -> DFTSettings:
    """Settings of the named profile for ``engine``; ValueError naming the known profiles / engines."""
    try:
        make = PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown labelling profile {name!r}; known: {', '.join(PROFILES)}") from None
    return make(engine, **changes)
