"""The campaign spec: one schema for YAML (CLI) and JSON (REST).

Units are in the field descriptions. Defaults follow Shuang et al. (2025), see
DESIGN.md section 1.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import yaml
from ase.data import chemical_symbols, reference_states
from pydantic import AfterValidator, ConfigDict, Field, ValidationError, field_validator, model_validator

from schemas.alloys import IDEAL_C_OVER_A, PROTOTYPES, Lattice, Prototype
from schemas.base import Strict
from schemas.launch import SlurmParams
from schemas.limits import Limits, limit_errors
from schemas.reconstruction import FAST_MC_MOVES, GCMCParams, spec_field
from schemas.reference import REFERENCE_DESCRIPTION, REFERENCE_TAGS, ReferenceSpec
from schemas.sampling import KIND_TAGS, SamplingParams, Structure
from schemas.study import StudySettings
from schemas.training import SnapTrainingParams


def _chemical_symbol(value: str) -> str:
    if value not in chemical_symbols[1:]:
        raise ValueError(f"unknown element {value!r}; use a chemical symbol such as W, Mo or Fe")
    return value


Symbol = Annotated[str, Field(max_length=3), AfterValidator(_chemical_symbol)]
MAX_ELEMENTS = 8

# Volume per atom of a lattice with constant a (hcp: basal a, c = c_over_a * a), for converting ASE's reference
# lattice constants to the campaign's lattice (estimates before the run).
_ATOMIC_VOLUME = {
    "bcc": lambda a, c_over_a: a**3 / 2,
    "fcc": lambda a, c_over_a: a**3 / 4,
    "hcp": lambda a, c_over_a: math.sqrt(3) / 4 * a**3 * c_over_a,
    "diamond": lambda a, c_over_a: a**3 / 8,
    "sc": lambda a, c_over_a: a**3,
}


def _lattice_constant_of_volume(volume: float, lattice: str, c_over_a: float) -> float:
    return (volume / _ATOMIC_VOLUME[lattice](1.0, c_over_a)) ** (1 / 3)


def _element_or_elements(schema: dict[str, Any]) -> None:
    # ``element`` may be left out when ``elements`` is given (CampaignSpec._element_from_elements fills it in)
    schema["required"] = [name for name in schema.get("required", []) if name != "element"]


class SelectionParams(Strict):
    basis: Literal["snap", "mtp", "ace"] = Field(
        "snap", description="linear basis for D-optimality (MLIP-3's own binary: `defect-genome grade --basis mlip3`)"
    )
    basis_potential: str | None = Field(
        None, description="the .mtp (mtp basis) or pacemaker .yaml (ace basis) potential file"
    )
    twojmax: int = Field(6, ge=0, le=12, description="SNAP basis: 2 j_max (6 gives 30 bispectrum components)")
    snap_cutoff: float = Field(4.7, gt=0, description="SNAP basis: pair cutoff, A")
    training_set: str | None = Field(
        None,
        description="basic dataset B: extxyz, MTP .cfg or pacemaker .pckl.gzip path, or 'uploaded:<sha256>'; "
        "default a generated domain-knowledge set (strained, rattled bulk, vacancy, interstitial, surfaces, GB)",
    )
    candidates: Literal["defects", "all"] = Field(
        "defects", description="atoms that may be selected: not in the perfect lattice, or every atom"
    )
    gamma_select: float = Field(2.0, gt=1.0, description="extrapolation grade above which an environment is selected")
    gamma_break: float = Field(10.0, gt=1.0, description="extrapolation grade that stops an OTF run")
    max_new: int = Field(200, ge=1, description="most environments added per selection (per protocol with scope "
                                                "protocol); one D-optimal selection adds at most the basis size")
    scope: Literal["campaign", "protocol"] = Field(
        "campaign", description="campaign: one D-optimal selection over every candidate; protocol: one per loading "
        "protocol against B, so each loading that reaches beyond B contributes (the campaign-wide one lets the most "
        "extreme loading span the others)")
    cluster_radius: float = Field(8.0, gt=0, description="radius of the spherical cluster cut, A")
    merge_distance: float = Field(
        0.0, ge=0, description="selected atoms of one snapshot closer than this (A) share one cluster, the union of "
        "their spheres; 0: one cluster per selected atom, the paper's cut. PCC-GCMC keeps the core of every centre of "
        "a cluster, and the cores of two centres rarely fit one cell of max_atoms atoms: such a cluster is lost to P")
    vacuum: float = Field(8.0, ge=0, description="vacuum padding of the C (cluster) variant, A")

    @model_validator(mode="after")
    def _potential_for_basis(self) -> SelectionParams:
        if self.basis in ("mtp", "ace") and not self.basis_potential:
            raise ValueError(f"basis_potential: the {self.basis} basis needs its potential file (.mtp or .yaml)")
        return self


class ReconstructionParams(Strict):
    """The campaign's PCC-GCMC parameters: fields of schemas.reconstruction.GCMCParams (same defaults and bounds),
    plus ``protocol``; ``mc_moves`` None means the protocol's (GCMCParams.fast() for fast)."""

    core_radius: float = spec_field("core_radius")
    max_atoms: int = spec_field("max_atoms")
    grid: Literal["authors", "wide"] = spec_field("grid")
    temperature: float = spec_field("temperature")
    mu: float = spec_field("mu")
    steps: int = spec_field("steps", description="MD/GCMC steps per box, 1 fs each")
    exchanges: int = spec_field("exchanges")
    mc_moves: int | None = spec_field(
        "mc_moves", default=None, description="GCMC translation attempts per invocation (every 10 steps); default "
        f"{GCMCParams.model_fields['mc_moves'].default} (authors), {FAST_MC_MOVES} (fast)"
    )
    protocol: Literal["authors", "fast"] = Field(
        "authors",
        description=f"authors: their published GCMC protocol on every box; fast: {FAST_MC_MOVES} MC translations per "
        "call, GCMC stopped on a plateau of insertions or above max_atoms (measured 4x faster, best energy within "
        "0.01 eV/atom)",
    )
    offsets: list[float] | None = spec_field(
        "offsets", max_length=20,
        description="per-axis box offsets, A, overriding the grid's (e.g. [0.0] for one box per cluster); "
        "at most 20 (8,000 boxes per cluster)",
    )


class LabellingParams(Strict):
    engine: Literal["gpaw", "vasp", "espresso", "lammps", "eam"] = Field(
        "gpaw", description="DFT engine (gpaw, vasp, espresso), or lammps: labels from a reference potential "
        "(`reference`; not DFT, recorded as such: ledger engine lammps, the potential's files and SHA-256 in the "
        "label settings, exports EFS_by lammps:<name>). eam: deprecated alias of lammps with the campaign's own "
        "potential (tests, demos; refused when production: true)"
    )
    reference: ReferenceSpec | None = Field(
        None, examples=["WL.meam", "W_2940_2017_2.snap"], description=REFERENCE_DESCRIPTION,
    )
    profile: Literal["production", "quick"] = Field(
        "quick", description="production: the paper's 520 eV, k spacing 2*pi*0.03 1/A, SCF 1e-6 eV; quick (demos, "
        "tests): 300 eV, 2*pi*0.1 1/A, SCF 1e-4 eV, GPAW setups with the fewest valence electrons"
    )
    cutoff_ev: float | None = Field(None, gt=0, description="plane-wave cutoff, eV; default from the profile")
    kpoint_density: float | None = Field(
        None, gt=0,
        description="Monkhorst-Pack k spacing incl. 2*pi, 1/A (paper: 2*pi*0.03 = 0.1885); default the profile's",
    )
    pseudo_dir: str | None = Field(None, description="VASP: the POTCAR root (PBE); espresso: the pseudo_dir")
    command: list[str] | None = Field(
        None, description="VASP/QE run command as argv, e.g. [mpirun, -np, '64', vasp_std]; default vasp_std / pw.x"
    )
    save_density: bool = Field(
        False, description="gpaw: store each label's electron density on its real-space grid (compressed), for "
        "`export --format density` (charge-density CNNs); other engines: refused"
    )
    density_kind: Literal["pseudo", "all_electron"] = Field(
        "pseudo", description="save_density: the pseudo density (integrates to the valence electrons) or the "
        "all-electron density (grid refinement 2, core electrons included)"
    )
    launcher: Literal["local", "slurm"] = Field("local", description="where DFT jobs run")
    launch_profile: str | None = Field(
        None, min_length=1, max_length=100,
        description="name of an operator-defined launch profile (server setting DG_LAUNCH_PROFILES): the command, "
        "pseudo_dir, modules and extra batch lines of the DFT jobs; specs sent over the API must use one instead of "
        "command / pseudo_dir / slurm.modules / slurm.extra_lines",
    )
    slurm: SlurmParams = SlurmParams()


class TrainingParams(Strict):
    model: Literal["mtp", "snap"] = Field(
        "mtp", description="the campaign's model: mtp (motep; OTF MD in ASE with motep's calculator) or snap (the "
        "settings in `snap`; OTF MD inside LAMMPS, graded there with compute sna/atom)"
    )
    snap: SnapTrainingParams = Field(
        default_factory=SnapTrainingParams, description="the SNAP's settings (model: snap); seed and test_fraction "
        "below apply to both"
    )
    level: int = Field(8, ge=2, le=28, multiple_of=2, description="MTP level (MLIP's 02.mtp ... 28.mtp)")
    max_iter: int = Field(100, ge=0, description="iterations of the nonlinear optimiser (Levenberg-Marquardt)")
    min_dist: float = Field(2.0, gt=0, description="radial basis: smallest interatomic distance, A")
    max_dist: float = Field(5.0, gt=0, description="radial basis: cutoff, A (the paper's W MTPs: 5 A)")
    seed: int = Field(0, ge=0, description="random start of the fit; the test split uses it too")
    forces_weight: float = Field(
        0.01, ge=0, allow_inf_nan=False,
        description="loss weight of forces against energy per atom (MLIP, the paper: 0.01)",
    )
    stress_weight: float = Field(
        0.001, ge=0, allow_inf_nan=False,
        description="loss weight of stress (MLIP's default 0.001; the paper's W MTPs: 0)",
    )
    test_fraction: float = Field(
        0.1, ge=0, lt=1, description="share of the labelled configurations held out for the test RMSE"
    )

    @model_validator(mode="after")
    def _radial_range(self) -> TrainingParams:
        if self.min_dist >= self.max_dist:
            raise ValueError(f"min_dist: {self.min_dist} A must be below max_dist ({self.max_dist} A)")
        return self


class OTFTarget(Strict):
    name: str | None = Field(
        None, min_length=1, max_length=100, description="label of this run; default '<kind>-<index>'"
    )
    structure: Structure = Field(..., description="the starting structure, as in sampling.protocols")
    temperature: float = Field(300.0, gt=0, description="MD temperature (Langevin), K")
    steps: int = Field(..., ge=1, description="MD steps with the MTP per iteration")
    timestep_fs: float = Field(1.0, gt=0, le=10, description="MD time step, fs")
    seed: int = Field(0, ge=0, description="random seed of the velocities and the thermostat")


class OTFParams(Strict):
    targets: list[OTFTarget] = Field(
        ..., min_length=1, max_length=100, description="production conditions: MD with the MTP, graded with gamma "
        "(gamma_select and gamma_break of the selection section)"
    )
    max_iterations: int = Field(5, ge=1, description="most MD -> select -> label -> retrain iterations")
    check_every: int = Field(10, ge=1, description="MD steps between extrapolation-grade checks")
    max_new: int = Field(8, ge=1, description="most environments added per iteration")

    def target_names(self) -> list[str]:
        return [t.name or f"{t.structure.kind}-{i}" for i, t in enumerate(self.targets)]


class EnsembleParams(Strict):
    k: int = Field(3, ge=2, description="MTPs trained from different seeds; sigma_F is their force spread")
    max_snapshots: int = Field(
        50, ge=1, description="most sampling snapshots evaluated by the k models, spread evenly over them "
                              "(each is a full MTP evaluation per model)"
    )


class RefinementParams(Strict):
    training: TrainingParams = TrainingParams()
    otf: OTFParams = Field(..., description="on-the-fly active learning from the trained MTP")
    ensemble: EnsembleParams | None = Field(
        None, description="force spread sigma_F of k MTPs over the sampling snapshots' defect atoms; omit to skip"
    )


class Budget(Strict):
    """The campaign's own caps. The server's limits (DG_MAX_*) bound them: the smaller one applies, and the
    campaign is stored with the effective values."""

    max_md_atom_steps: int = Field(
        10**10, gt=0, description="cap on atoms x MD steps over all protocols and OTF runs (minimisation "
        "iterations counted as steps); at most the server's DG_MAX_MD_ATOM_STEPS"
    )
    max_snapshots: int = Field(10_000, gt=0, description="cap on stored snapshots over all protocols; at most "
                                                         "the server's DG_MAX_SNAPSHOTS")
    max_dft_jobs: int = Field(1000, gt=0, description="cap on DFT calculations; at most the server's DG_MAX_DFT_JOBS")
    max_structure_atoms: int | None = Field(
        None, gt=0, description="cap on the atoms of one structure; default the server's DG_MAX_STRUCTURE_ATOMS, "
        "which it cannot exceed"
    )


class CampaignSpec(Strict):
    """A campaign of one metal (``element``) or of an alloy (``elements`` with ``composition`` for a random solid
    solution or ``prototype`` for an ordered one). ``species`` is the tuple of elements of either form."""

    model_config = ConfigDict(json_schema_extra=_element_or_elements)

    name: str = Field(..., min_length=1, max_length=200, description="human-readable campaign name")
    element: str = Field(
        ..., max_length=3, examples=["W"], description="chemical symbol of the metal, e.g. W; for an alloy give "
        "`elements` instead (element may then be omitted: it is the first of elements, and must be when given)",
    )
    elements: list[Symbol] | None = Field(
        None, min_length=1, max_length=MAX_ELEMENTS, examples=[["Cu", "Ni"]],
        description="chemical symbols of an alloy's elements, each once (1-8), in the order the prototype's "
        "sublattices take them; with several elements, `composition` or `prototype` says how they are arranged",
    )
    composition: dict[str, Annotated[float, Field(gt=0, le=1)]] | None = Field(
        None, examples=[{"Cu": 0.5, "Ni": 0.5}],
        description="random solid solution: the atomic fraction of each of `elements` (keys: the elements, each "
        "above 0, summing to 1)",
    )
    prototype: Prototype | None = Field(
        None, description="ordered alloy of `elements` on its parent lattice: B2 (bcc, 1:1), L1_2 (fcc, 3:1), L1_0 "
        "(fcc, 1:1), D0_19 (hcp, 3:1); the first element takes the first sublattice (the 3 of 3:1)",
    )
    lattice: Lattice = Field(
        "bcc", description="ground-state lattice of the element (bcc, fcc, hcp); with a prototype, its parent "
        "lattice (the default then)",
    )
    lattice_constant: float | None = Field(
        None, ge=1.0, le=10.0, description="lattice constant a, A (cubic edge; hcp: basal a); when omitted, a "
        "(and c/a for hcp) are relaxed with the potential, an alloy's in its occupied crystal",
    )
    c_over_a: float | None = Field(
        None, ge=1.4, le=2.0, description="hcp only: c/a used with a given lattice_constant (default the ideal "
        f"{IDEAL_C_OVER_A:.4f}); without lattice_constant it is relaxed too, from this start",
    )
    potential: str = Field(
        ...,
        min_length=1,
        max_length=4096,
        examples=["W_zhou.eam.alloy"],
        description="bundled LAMMPS potential file name (e.g. W_zhou.eam.alloy), a path, "
        "or 'uploaded:<sha256>' for a file sent to POST /api/v1/potentials",
    )
    production: bool = Field(
        False, description="a campaign for a training set: refuses the demo labeller eam; engine lammps (distilling "
        "a trusted potential) needs an explicit labelling.reference, and its labels stay marked as non-DFT"
    )
    sampling: SamplingParams
    selection: SelectionParams = SelectionParams()
    reconstruction: ReconstructionParams = ReconstructionParams()
    labelling: LabellingParams = LabellingParams()
    refinement: RefinementParams | None = Field(
        None, description="stage 6: train an MTP on B + P, refine it on the fly, ensemble sigma_F; "
        "omit to stop after labelling"
    )
    study: StudySettings | None = Field(
        None, description="the paper's B / B+C / B+P (/ +OTF) study after the other stages: a validation suite "
        "built apart from the sampling and labelled like the cells, one SNAP per dataset combination, every model "
        "validated on the suite (stage validation); omit to skip"
    )
    budget: Budget = Budget()
    stop_after: Literal[
        "sampling", "selection", "reconstruction", "labelling", "training", "otf", "ensemble", "validation"
    ] | None = Field(
        None, description="last stage to run (e.g. 'sampling' to inspect the defects first); default all"
    )

    @model_validator(mode="before")
    @classmethod
    def _element_from_elements(cls, data: Any) -> Any:
        """``element`` omitted with ``elements`` given: the first of elements (so ``element`` is always a str)."""
        if isinstance(data, dict) and "element" not in data:
            elements = data.get("elements")
            if isinstance(elements, list) and elements and elements[0] in chemical_symbols[1:]:
                data = {**data, "element": elements[0]}
        return data

    @field_validator("element")
    @classmethod
    def _known_element(cls, value: str) -> str:
        return _chemical_symbol(value)

    @model_validator(mode="after")
    def _lattice_of_prototype(self) -> CampaignSpec:
        # an ordered alloy without a lattice takes its prototype's parent lattice (a mismatch is species_errors')
        if self.prototype is not None and "lattice" not in self.model_fields_set:
            self.lattice = PROTOTYPES[self.prototype][0]  # type: ignore[assignment]
        return self

    @property
    def species(self) -> tuple[str, ...]:
        """The campaign's elements: ``elements`` when given, else ``(element,)``."""
        return tuple(self.elements) if self.elements else (self.element,)

    @property
    def fractions(self) -> tuple[float, ...]:
        """Atomic fraction of each of ``species`` (composition, or the prototype's; (1.0,) for one element)."""
        if self.prototype is not None:
            return PROTOTYPES[self.prototype][1]
        if self.composition is not None:
            return tuple(self.composition.get(element, 0.0) for element in self.species)
        return tuple(1.0 / len(self.species) for _ in self.species)

    def estimated_c_over_a(self) -> float:
        """hcp: the given c/a, else the ideal sqrt(8/3) (only for estimates before the run)."""
        return self.c_over_a if self.c_over_a is not None else IDEAL_C_OVER_A

    def estimated_lattice_constant(self) -> float:
        """The given constant, else one from ASE's experimental reference states (only for estimates before the
        run). One element on its reference lattice: its constant (W, bcc: 3.16 A). Otherwise each element's
        reference constant is converted to the campaign's lattice at the same volume per atom (bcc a^3/2, fcc
        a^3/4, hcp sqrt(3)/4 a^3 c/a with estimated_c_over_a(); reference states of other symmetries but diamond
        and sc are taken as they are), and an alloy takes the composition-weighted mean of the converted constants
        (Vegard's law; an ordered alloy weighted by its prototype's fractions)."""
        if self.lattice_constant is not None:
            return self.lattice_constant
        return sum(f * self._reference_constant(e) for e, f in zip(self.species, self.fractions)) / sum(self.fractions)

    def _reference_constant(self, element: str) -> float:
        state = reference_states[chemical_symbols.index(element)] or {}
        a = state.get("a", 3.5)
        assert isinstance(a, float), f"ase's reference lattice constant of {element} is not a number: {a!r}"
        symmetry = state.get("symmetry")
        if symmetry == self.lattice and (symmetry != "hcp" or self.c_over_a is None):
            return a
        if symmetry not in _ATOMIC_VOLUME:
            return a
        volume = _ATOMIC_VOLUME[symmetry](a, state.get("c/a", IDEAL_C_OVER_A))
        return _lattice_constant_of_volume(volume, self.lattice, self.estimated_c_over_a())

    def protocol_names(self) -> list[str]:
        return [p.name or f"{p.kind}-{i}" for i, p in enumerate(self.sampling.protocols)]


@dataclass(frozen=True)
class FieldError:
    field: str  # dotted path, e.g. "sampling.protocols.0.temperatures.0"
    message: str


class SpecError(ValueError):
    """A campaign spec that cannot run; every entry names the field and the fix."""

    def __init__(self, errors: list[FieldError]):
        self.errors = errors
        super().__init__("; ".join(f"{e.field}: {e.message}" for e in errors))


def _dotted(loc: tuple[Any, ...]) -> str:
    # Drop pydantic's discriminator tags ("anneal", "bulk") from the path: users did not write them.
    return ".".join(str(part) for part in loc if part not in KIND_TAGS and part not in REFERENCE_TAGS) or "spec"


MISSING_ELEMENT = "give element (one metal, e.g. W) or elements (an alloy, e.g. [Cu, Ni])"

# Errors listed per spec: a spec with half a million bad list entries gets the first ones, not a 40 MB answer.
MAX_ERRORS = 100


def _capped(errors: list[FieldError]) -> list[FieldError]:
    if len(errors) <= MAX_ERRORS:
        return errors
    return [*errors[:MAX_ERRORS], FieldError("spec", f"... and {len(errors) - MAX_ERRORS} more errors")]


def parse_spec(data: Any, limits: Limits | None = None) -> CampaignSpec:
    """Validate a decoded spec (dict), raising SpecError with one entry per bad field.

    ``limits``: the server's (schemas.limits); the spec's own budget is checked in any case. Only arithmetic
    runs here (nothing is built), so any spec is answered in milliseconds.
    """
    if not isinstance(data, dict):
        raise SpecError([FieldError("spec", "the spec must be a mapping of fields (name, element, ...)")])
    try:
        spec = CampaignSpec.model_validate(data)
    except ValidationError as exc:
        errors = [FieldError(_dotted(tuple(e["loc"])), e["msg"]) for e in exc.errors(include_url=False)
                  if not (tuple(e["loc"]) == ("element",) and e["type"] == "missing" and "elements" in data)]
        if any(error.field == "element" and error.message == "Field required" for error in errors):
            errors = [FieldError("element", MISSING_ELEMENT) if error.field == "element" else error
                      for error in errors]
        raise SpecError(_capped(errors)) from None
    except RecursionError:
        raise SpecError([FieldError("spec", "the spec is nested too deeply")]) from None
    _check_consistency(spec, limits)
    return spec


def load_spec_text(
    text: str | bytes, fmt: Literal["yaml", "json"] = "yaml", limits: Limits | None = None
) -> CampaignSpec:
    """Decode YAML or JSON text and validate it (``limits``: the server's, see parse_spec)."""
    try:
        data = json.loads(text) if fmt == "json" else yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise SpecError([FieldError("spec", f"malformed YAML{where}: {problem}")]) from None
    except json.JSONDecodeError as exc:
        raise SpecError(
            [FieldError("spec", f"malformed JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}")]
        ) from None
    except RecursionError:
        raise SpecError([FieldError("spec", f"malformed {fmt.upper()}: nested too deeply")]) from None
    except ValueError as exc:  # not UTF-8 text, an integer of thousands of digits
        raise SpecError([FieldError("spec", f"malformed {fmt.upper()}: {exc}")]) from None
    return parse_spec(data, limits)


def _check_consistency(spec: CampaignSpec, limits: Limits | None = None) -> None:
    """Checks across fields: the elements (species_errors; alone when any, the estimates need them), the limits
    (atoms, atom-steps, snapshots; the spec's budget and the server's ``limits``), unique protocol names, the
    labelling engine's needs."""
    species = species_errors(spec)
    if species:
        raise SpecError(species)
    errors = [FieldError(field, message) for field, message in limit_errors(estimable(spec), limits)]
    names = spec.protocol_names()
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        errors.append(FieldError("sampling.protocols", f"protocol names must be unique; repeated: {duplicated}"))
    labelling = spec.labelling
    if spec.production and labelling.engine == "eam":
        errors.append(FieldError(
            "labelling.engine",
            "eam is a classical reference labeller for tests and demos, refused for production campaigns; "
            "use gpaw, vasp or espresso, or engine lammps with an explicit labelling.reference (or set production: "
            "false)",
        ))
    errors += _reference_errors(spec)
    if labelling.engine in ("vasp", "espresso") and not labelling.pseudo_dir and not labelling.launch_profile:
        what = "the POTCAR root (holding W_pv/POTCAR or W/POTCAR)" if labelling.engine == "vasp" else "the pseudo_dir"
        errors.append(FieldError("labelling.pseudo_dir", f"the {labelling.engine} engine needs {what} (or a "
                                 "labelling.launch_profile that sets it)"))
    if labelling.save_density and labelling.engine != "gpaw":
        errors.append(FieldError("labelling.save_density", f"densities are stored by the gpaw engine only, not "
                                 f"{labelling.engine}; set engine: gpaw or drop save_density"))
    errors += _refinement_errors(spec)
    if errors:
        raise SpecError(_capped(errors))


def _names(elements: tuple[str, ...] | list[str]) -> str:
    return f"[{', '.join(elements)}]"


def species_errors(spec: CampaignSpec) -> list[FieldError]:
    """The elements and their arrangement: element the first of elements, each element once, composition
    (fractions of exactly the elements, summing to 1) or prototype (its parent lattice, its number of elements)
    with several elements and neither with one, c_over_a only on hcp."""
    errors = []
    elements = spec.species
    if spec.elements is not None:
        repeated = sorted({e for e in spec.elements if spec.elements.count(e) > 1})
        if repeated:
            errors.append(FieldError("elements", f"{', '.join(repeated)} repeated; list each element once"))
        if spec.element != spec.elements[0]:
            errors.append(FieldError("element", f"element {spec.element} must be the first of elements "
                                                f"{_names(elements)}; omit element for an alloy (elements names it)"))
    if len(elements) == 1:
        for field in ("composition", "prototype"):
            if getattr(spec, field) is not None:
                errors.append(FieldError(field, f"a campaign of one element ({elements[0]}) has no {field}; remove "
                                                f"it, or list the alloy's elements in elements"))
    elif spec.composition is None and spec.prototype is None:
        errors.append(FieldError("composition", f"an alloy of {_names(elements)} needs composition (a random solid "
                                                f"solution, e.g. {{{elements[0]}: 0.5, {elements[1]}: 0.5}}) or "
                                                f"prototype (ordered: {', '.join(PROTOTYPES)})"))
    elif spec.composition is not None and spec.prototype is not None:
        errors.append(FieldError("prototype", "give composition (a random solid solution) or prototype (an ordered "
                                              "alloy), not both"))
    if spec.composition is not None and len(elements) > 1:
        for key in spec.composition:
            if key not in elements:
                errors.append(FieldError(f"composition.{key}", f"{key} is not one of elements {_names(elements)}; "
                                                               "add it to elements or remove it here"))
        missing = [e for e in elements if e not in spec.composition]
        if missing:
            errors.append(FieldError("composition", f"no fraction for {', '.join(missing)}; give one for every "
                                                    "element of elements"))
        total = sum(spec.composition.values())
        if abs(total - 1.0) > 1e-6:
            errors.append(FieldError("composition", f"fractions sum to {total:.6g}; they must sum to 1"))
    if spec.prototype is not None and len(elements) > 1:
        parent, fractions = PROTOTYPES[spec.prototype]
        if len(fractions) != len(elements):
            errors.append(FieldError("prototype", f"{spec.prototype} orders {len(fractions)} elements (fractions "
                                                  f"{', '.join(f'{f:g}' for f in fractions)}, in the order of "
                                                  f"elements), not {len(elements)}; list {len(fractions)} elements"))
        if spec.lattice != parent:
            fitting = [name for name, (lattice, _) in PROTOTYPES.items() if lattice == spec.lattice]
            errors.append(FieldError("prototype", f"{spec.prototype} is an ordering of the {parent} lattice, not "
                                                  f"{spec.lattice}; set lattice: {parent} (or omit lattice), or "
                                                  f"choose a prototype of {spec.lattice} "
                                                  f"({', '.join(fitting) or 'none'})"))
    if spec.c_over_a is not None and spec.lattice != "hcp":
        errors.append(FieldError("c_over_a", f"c/a is a parameter of the hcp lattice, not {spec.lattice}; remove "
                                             "c_over_a (or set lattice: hcp)"))
    return errors


def estimable(spec: CampaignSpec) -> CampaignSpec:
    """``spec`` for the atom-count estimates of schemas.limits, which count cubic cells: an hcp campaign as the
    fcc crystal of the same volume per atom (both close-packed; the estimates are within a few per cent anyway)."""
    if spec.lattice != "hcp":
        return spec
    a = spec.estimated_lattice_constant()
    a_fcc = _lattice_constant_of_volume(_ATOMIC_VOLUME["hcp"](a, spec.estimated_c_over_a()), "fcc", 1.0)
    return spec.model_copy(update={"lattice": "fcc", "lattice_constant": a_fcc, "c_over_a": None})


def _reference_errors(spec: CampaignSpec) -> list[FieldError]:
    """labelling.reference: only with engine lammps; production lammps names its reference (words are checked by
    GeneralReference; files, elements and the .snapparam when the campaign is built, labelling.reference)."""
    labelling = spec.labelling
    if labelling.reference is not None and labelling.engine != "lammps":
        return [FieldError("labelling.reference", f"a reference potential is used by engine lammps, not "
                                                  f"{labelling.engine}; set labelling.engine: lammps")]
    if labelling.engine == "lammps" and spec.production and labelling.reference is None:
        return [FieldError("labelling.reference", "a production campaign labelled by engine lammps must name its "
                                                  "reference potential (the campaign's own potential is not a "
                                                  "teacher); e.g. WL.meam or W_2940_2017_2.snap")]
    return []


def _refinement_errors(spec: CampaignSpec) -> list[FieldError]:
    if spec.stop_after == "validation" and spec.study is None:
        return [FieldError("stop_after", "'validation' is the study's stage; add a study section (e.g. "
                                         "{suite: paper})")]
    refinement = spec.refinement
    if refinement is None:
        if spec.stop_after in ("training", "otf", "ensemble"):
            return [FieldError("stop_after", f"{spec.stop_after!r} is a refinement stage; add a refinement "
                                             "section (training, otf) or stop after labelling")]
        return []
    errors = []
    if refinement.ensemble is not None and refinement.training.model != "mtp":
        errors.append(FieldError("refinement.ensemble", "the ensemble's force spread is of k MTPs; it needs "
                                 "refinement.training.model: mtp (omit ensemble for a snap campaign)"))
    if spec.stop_after == "ensemble" and refinement.ensemble is None:
        errors.append(FieldError("stop_after", "'ensemble' needs refinement.ensemble (e.g. {k: 3})"))
    if spec.selection.gamma_break <= spec.selection.gamma_select:
        errors.append(FieldError(
            "selection.gamma_break",
            f"the OTF runs stop above gamma_break, so it must exceed gamma_select ({spec.selection.gamma_select})",
        ))
    names = refinement.otf.target_names()
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        errors.append(FieldError("refinement.otf.targets", f"target names must be unique; repeated: {duplicated}"))
    return errors
