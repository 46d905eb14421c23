"""The B vs B+C vs B+P study (``mlip.study.run_study``): its parameters and its typed report.

The paper (Shuang et al. 2025, Fig. 3e and Fig. 6) trains one potential per dataset combination with the same
settings and validates each on the same scenarios. Here the potentials are SNAP (``mlip.train_snap``), the
labels and the validation labels come from one reference ("teacher") potential outside the SNAP family
(DESIGN.md section 5), and the suite is :mod:`mlip.validation`'s.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from schemas.base import Strict
from schemas.names import Dataset
from schemas.training import SnapTrainingParams
from schemas.validation import PropertyComparison, ScenarioErrors, ValidationReport

__all__ = ["DATASETS", "FIG6_SCENARIOS", "StudyModel", "StudyParams", "StudyRatio", "StudyReport", "StudySettings"]

# the five scenarios of the paper's Fig. 6 (its central comparison); the suite adds Fig. 4's loops and nanoindentation
FIG6_SCENARIOS = ("gb", "compression", "polycrystal_2d", "polycrystal_3d", "crack")

# dataset keys of run_study: B basic, C vacuum clusters, P periodic PCC-GCMC cells, OTF on-the-fly additions
DATASETS = tuple(Dataset)


def _default_snap() -> SnapTrainingParams:
    # ridge chosen on a held-out 10 % of each combination's training configurations (never the test part)
    return SnapTrainingParams(ridge="auto", seed=0)


class StudySettings(Strict):
    """Settings shared by every model of the study (same hyperparameters, same seeds for every combination); the
    ``study`` section of a campaign spec (the campaign gives element, lattice and sampling potential, and its
    labelling settings are the reference).

    Default SNAP 2J = 8 (55 bispectrum components; quadratic: 1540 more), the DFT-fitted W SNAP's settings: on
    2 cores a quadratic 2J = 8 fit of a few thousand atoms takes seconds (Gram matrix 1596^2 doubles, 20 MB;
    W-all quadratic 2J = 8 in about a minute), while 2J = 10 (91 / 4277 columns, 146 MB Gram, ~3x slower
    compute snap) buys nothing a B of ~25 cells could fit.
    """

    kinds: list[Literal["linear", "quadratic"]] = Field(
        ["linear", "quadratic"], min_length=1, max_length=2, description="SNAP variants trained per combination")
    snap: SnapTrainingParams = Field(
        default_factory=_default_snap, description="SNAP settings of every model (``quadratic`` is set per kind); "
        "ridge 'auto' picks the ridge on a held-out part of the training configurations only")
    test_fraction: float = Field(
        0.1, ge=0.0, lt=0.5, description="share of each dataset (floor, seeded) held out as its test part; a "
        "combination's test set is the union of its datasets' test parts, never trained on")
    split_seed: int = Field(0, ge=0, description="seed of the train/test split of each dataset")
    suite: Literal["smoke", "paper"] = Field("paper", description="validation suite preset (smoke: for tests)")
    suite_seed: int | None = Field(None, ge=1, description="seed of the suite (default: the preset's, disjoint "
                                                           "from the campaigns' 12345)")
    scenarios: list[Literal["gb", "compression", "polycrystal_2d", "polycrystal_3d", "crack", "loops",
                            "nanoindent"]] | None = Field(
        None, min_length=1, description="subset of the suite's scenarios (default: all of the preset)")
    allow_same_family: bool = Field(False, description="allow a SNAP reference for the SNAP models (the errors "
                                                       "then do not measure transfer)")
    processes: int = Field(1, ge=1, le=64, description="LAMMPS row workers of train_snap (1: bit-reproducible)")
    properties: bool = Field(
        True, description="relaxed defect properties of every model against the reference (vacancy and <111> "
        "dumbbell formation energies, (100) and (110) surface energies, the Sigma5 (310)[001] GB energy, C11/C12/C44, "
        "the energy-volume curve; mlip.validation.defect_properties): about 10-40 s per model; only with a LAMMPS "
        "reference")


class StudyParams(StudySettings):
    """:class:`StudySettings` and what a campaign would give: the element, lattice and sampling potential."""

    element: str = Field("W", description="chemical symbol of the (single-element) study")
    lattice: Literal["bcc", "fcc"] = "bcc"
    sampling_potential: str = Field("W_zhou.eam.alloy", description="potential the suite's MD runs with")


class StudyModel(Strict):
    """One trained model: its combination, training set, files, LAMMPS lines and errors."""

    combination: str = Field(description="e.g. 'B+P'")
    kind: Literal["linear", "quadratic"]
    name: str
    model_path: str = Field(description=".snapcoeff, absolute")
    param_path: str = Field(description=".snapparam, absolute")
    record_path: str = Field(description=".snapcoeff.json (the SnapModel record), absolute")
    lammps: list[str] = Field(description="pair_style and pair_coeff commands that evaluate the model, absolute "
                                          "paths")
    n_train_configurations: int
    n_train_atoms: int
    n_test_configurations: int
    n_test_atoms: int
    ridge: float = Field(description="relative ridge used (chosen on held-out training data)")
    train_rmse: dict[str, float] = Field(description="energy_mev_per_atom, forces_mev_per_A on the training set")
    test_rmse: dict[str, float] | None = Field(description="the same on the held-out test set (None: none)")
    energy_offset_mev_per_atom: float = Field(description="mean model - reference energy per atom over the suite")
    scenarios: list[ScenarioErrors]
    properties: list[PropertyComparison] = Field(
        default_factory=list, description="defect properties, model against reference (empty: not computed)")
    energy_volume: dict[str, list[float]] | None = Field(
        None, description="volume per atom (A^3), model and reference energy per atom (eV)")
    wall_time_s: float


class StudyRatio(Strict):
    """Defect-atom force RMSE of a combination over that of B, per scenario, for one SNAP kind."""

    kind: Literal["linear", "quadratic"]
    numerator: str = Field(description="combination, e.g. 'B+P'")
    denominator: str = Field("B")
    per_scenario: dict[str, float | None] = Field(description="None: the scenario has no defect atom")
    mean: float | None = Field(description="arithmetic mean over the scenarios with a ratio")
    mean_fig6: float | None = Field(
        None, description="arithmetic mean over the paper's five Fig. 6 scenarios (FIG6_SCENARIOS); None unless "
        "all five have a ratio")


class StudyReport(Strict):
    """Everything the study measured; ``mlip.study.write_study_json`` writes it as study.json."""

    element: str
    lattice: str
    reference: str = Field(description="the reference's name")
    reference_lammps: list[str] = Field(description="its pair_style / pair_coeff commands, absolute paths")
    reference_family_allowed: bool = Field(description="True when a same-family reference was explicitly allowed")
    params: StudyParams
    datasets: dict[str, dict[str, int]] = Field(
        description="per dataset: configurations, atoms, train and test configurations, labelled here")
    suite: str
    suite_seed: int
    suite_path: str | None = Field(None, description="the labelled suite (extxyz, absolute), when written")
    suite_sizes: dict[str, dict[str, int]] = Field(description="per scenario: configurations, atoms, defect atoms")
    lattice_constant: float = Field(description="A, the sampling potential's, the suite is built with")
    models: list[StudyModel]
    ratios: list[StudyRatio]
    held_out_choice: dict[str, Literal["linear", "quadratic"]] = Field(
        default_factory=dict, description="per combination, the kind with the lower force RMSE on the combination's "
        "held-out test part: the capacity a user would pick from the training data alone, never from the suite")
    campaign_model: ValidationReport | None = Field(
        None, description="the campaign's own MTP (refinement: OTF's last model, else the training stage's) on the "
        "same labelled suite; None without a refinement section")
    campaign_model_stage: Literal["otf", "mtp_training"] | None = Field(
        None, description="the stage that left that MTP")
    notes: list[str] = Field(default_factory=list)
    timings: dict[str, float] = Field(default_factory=dict, description="wall time per step, s")
