"""One typed model per artifact kind (the names of structure kinds and datasets are in :mod:`schemas.names`).

An artifact is a campaign's (kind, name) -> JSON document. Each kind has one model here, registered by its
``KIND``; :mod:`core.access` stores and loads them by type (``store_artifact(session, id, name, model)``,
``load_artifact(session, id, GammaHistogram, name)``), so a reader gets fields, not ``.get()`` on a dict.
Units are in the field descriptions.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, model_serializer

from schemas.api import EnsemblePublic, ModelErrors, SigmaHistogram, TrainingPublic
from schemas.names import CAMPAIGN, Dataset, StructureKind  # noqa: F401 (re-exported for readers of artifacts)
from schemas.study import StudyReport


class ArtifactModel(BaseModel):
    """One artifact kind. Keys a model does not name are kept (older documents stay readable and whole).

    ``OMIT_NONE``: optional keys a stage writes only when they have a value; a None there is left out of the
    stored document (as the stages always wrote it), not stored as null. inf and nan stay what they are (a
    candidate's min_distance is inf when no pair is close), as the JSON column always stored them."""

    model_config = ConfigDict(extra="allow", ser_json_inf_nan="constants")
    KIND: ClassVar[str]
    OMIT_NONE: ClassVar[frozenset[str]] = frozenset()

    @model_serializer(mode="wrap")
    def _omit_none(self, handler: SerializerFunctionWrapHandler) -> Any:
        data = handler(self)
        if not self.OMIT_NONE or not isinstance(data, dict):
            return data
        return {key: value for key, value in data.items() if value is not None or key not in self.OMIT_NONE}


ARTIFACTS: dict[str, type[ArtifactModel]] = {}


def artifact(cls: type[ArtifactModel]) -> type[ArtifactModel]:
    """Register an artifact model under its KIND; a KIND is defined once."""
    if cls.KIND in ARTIFACTS:
        raise ValueError(f"artifact kind {cls.KIND!r} is defined twice")
    ARTIFACTS[cls.KIND] = cls
    return cls


class LogHistogram(BaseModel):
    """Extrapolation grades gamma on the shared log-spaced bins (:func:`selection.maxvol.log_histogram`)."""

    model_config = ConfigDict(extra="allow", ser_json_inf_nan="constants")
    edges: list[float] = Field(description="bin edges, dimensionless gamma")
    counts: list[int] = Field(
        description="atoms per bin; below the first edge in the first, above the last in the last"
    )
    n: int = Field(description="atoms graded")
    gamma_max: float | None
    below: int = 0
    above: int = 0


@artifact
class GammaHistogram(LogHistogram, ArtifactModel):
    """Extrapolation grades gamma on shared log-spaced bins: one per sampling snapshot (named by its source)
    and the campaign's sum (named ``campaign``)."""

    KIND: ClassVar[str] = "gamma_histogram"


@artifact
class MaterialRecord(ArtifactModel):
    """The campaign's species on its lattice with the constants every stage builds with (named ``campaign``):
    relaxed once with the potential (sampling.material.relax_material) by the first stage that needs them."""

    KIND: ClassVar[str] = "material"
    species: list[str]
    lattice: str
    a: float = Field(description="lattice constant, A (hcp: the basal a)")
    c_over_a: float | None = Field(None, description="hcp: c/a")
    composition: list[float] | None = Field(None, description="random solid solution: fraction of each species")
    prototype: str | None = None


@artifact
class SpeciesGammaHistograms(ArtifactModel):
    """gamma per species of a campaign of several elements, each atom graded against its own species' active
    set: one per sampling snapshot (named by its source) and the campaign's sum (named ``campaign``)."""

    KIND: ClassVar[str] = "species_gamma_histograms"
    histograms: dict[str, LogHistogram] = Field(description="species -> its atoms' gamma histogram")


@artifact
class CandidateTable(ArtifactModel):
    """The PCC-GCMC candidates (boxes) of one cluster and the chosen one (the paper's Fig. 3b), named by the
    cluster's source."""

    KIND: ClassVar[str] = "pcc_gcmc_candidates"
    cluster_id: int
    core_extent: list[float] = Field(description="extent of the fixed core along x, y, z, A")
    n_core: int
    base_seed: int
    candidates: list[dict[str, Any]] = Field(description="per box: size, atoms, energy per atom (eV/atom), ...")
    best_index: int | None = Field(description="the chosen candidate; None when none has at most max_atoms atoms")
    structure_id: int | None = None
    energy_per_atom: float | None = Field(None, description="the chosen cell's, eV/atom (classical potential)")
    error: str | None = None


@artifact
class SelectionSummary(ArtifactModel):
    """What the selection stage chose (named ``campaign``)."""

    KIND: ClassVar[str] = "selection"
    candidates: int = Field(description="environments above gamma_select")
    selected: int = Field(description="environments chosen by D-optimality")
    scope: str
    clusters: int
    gamma_select: float
    max_new: int


class OTFRunRecord(BaseModel):
    """One MD run of an on-the-fly iteration (as :class:`mlip.otf.OTFRun`)."""

    model_config = ConfigDict(extra="allow")
    target: str
    steps_requested: int
    steps_done: int
    stopped: str = Field(description="completed, gamma_break or unstable")
    snapshot_steps: list[int]
    gamma_max: list[float] = Field(description="largest gamma of each graded snapshot")
    n_candidates: int
    wall_time_s: float
    gamma_histogram: dict[str, Any] | None = None
    md_engine: str = "ase"


@artifact
class OTFRunArtifact(OTFRunRecord, ArtifactModel):
    """An MD item's run, named ``<iteration>/<target>`` (read by the iteration's selection and training)."""

    KIND: ClassVar[str] = "otf_run"
    target_index: int
    model: str = Field(description="the model file's name")


@artifact
class OTFSelection(ArtifactModel):
    """An iteration's D-optimal selection and the clusters it cut (named by the zero-padded iteration)."""

    KIND: ClassVar[str] = "otf_selection"
    n_candidates: int
    selected: list[dict[str, Any]] = Field(description="run, snapshot_step, atom, gamma per selected environment")
    clusters: list[str] = Field(description="sources of the clusters cut, in selection order")
    origins: list[dict[str, Any]]
    labels_left: int = Field(description="label jobs the DFT budget leaves for this iteration")
    last: bool = Field(description="a production check: nothing is cut")
    wall_time_s: float


@artifact
class OTFIterationRecord(ArtifactModel):
    """One finished on-the-fly iteration (named by the zero-padded iteration)."""

    KIND: ClassVar[str] = "otf_iteration"
    index: int
    n_train_before: int
    runs: list[OTFRunRecord]
    n_candidates: int
    n_selected: int
    selected: list[dict[str, Any]]
    n_added: int
    added: list[dict[str, Any]] = Field(description="per added cell: source, n_atoms, energy_per_atom (eV/atom), gamma")
    failures: list[dict[str, Any]]
    retrained: bool
    rmse: dict[str, Any] | None = Field(description="the retrained model's errors (meV/atom, meV/A)")
    gamma_max: float
    wall_time_s: float
    timing: dict[str, float] = {}
    n_labels: int = 0
    structure_ids: list[int] = []
    stopped: str | None = Field(None, description="why the loop stopped after it; None: it went on")


@artifact
class ValidationTable(StudyReport, ArtifactModel):
    """The B / B+C / B+P study's report (named ``campaign``)."""

    KIND: ClassVar[str] = "validation"


# --------------------------------------------------------------------------- selection, reconstruction


@artifact
class ActiveSetRecord(ArtifactModel):
    """The training active set the selection grades against (named ``campaign``; the matrix is the campaign
    directory's ``active_set.npz``)."""

    KIND: ClassVar[str] = "active_set"
    basis: dict[str, Any] = Field(description="the basis's settings (selection.bases.Basis.describe)")
    m: int = Field(description="rows of the active set (= basis features)")
    training_configurations: int
    training_atoms: int
    tolerance: float = Field(description="MaxVol tolerance, dimensionless")
    log_abs_det: float = Field(description="log |det| of the active set")


@artifact
class SoapPCA(ArtifactModel):
    """The SOAP PCA map of datasets B, C (selection) and P (reconstruction) (:func:`sampling.datasets.soap_pca_map`,
    named ``campaign``)."""

    KIND: ClassVar[str] = "soap_pca"
    components: int = Field(description="principal components kept")
    explained_variance_ratio: list[float] = Field(default_factory=list)
    soap: dict[str, Any] = Field(default_factory=dict,
                                 description="r_cut (A), n_max, l_max, species, n_features of the descriptor")
    points: dict[str, list[list[float]]] = Field(description="per dataset: [pc1, pc2] of each mapped atom")
    owners: dict[str, list[list[int]]] = Field(default_factory=dict,
                                               description="per dataset: [structure index, atom index] of each point")


class DatasetGamma(LogHistogram):
    """The candidate environments' gamma against the active set of one training set."""

    training_configurations: int = Field(description="configurations of the training set")
    graded: str = Field(description="which atoms were graded (selection.candidates)")


@artifact
class GammaByDataset(ArtifactModel):
    """The candidates graded against the active sets of B, B+C and B+P (paper Fig. 4e-f; named ``campaign``):
    one histogram per training set name ("B", "B+C", "B+P"), or only ``error`` when the basis could not grade."""

    KIND: ClassVar[str] = "gamma_by_dataset"
    OMIT_NONE: ClassVar[frozenset[str]] = frozenset({"error"})
    __pydantic_extra__: dict[str, DatasetGamma] = Field(init=False)  # the histograms, by training set name
    error: str | None = Field(None, description="why the candidates could not be graded")

    def histograms(self) -> dict[str, DatasetGamma]:
        return dict(self.__pydantic_extra__ or {})


@artifact
class PccGcmcPlan(ArtifactModel):
    """The PCC-GCMC plan of one cluster (named by the cluster's source): what its box items need, or why the
    cluster cannot be reconstructed (``error``, no grid)."""

    KIND: ClassVar[str] = "pcc_gcmc_plan"
    OMIT_NONE: ClassVar[frozenset[str]] = frozenset({"payload", "grid", "base_seed", "error"})
    cluster_id: int = Field(description="the cluster's structure id")
    params: dict[str, Any] = Field(description="pcc_gcmc.GCMCParams.to_dict (A, K, eV)")
    payload: dict[str, Any] | None = Field(None, description="pcc_gcmc.plan's payload: core, core_extent (A), ...")
    grid: list[dict[str, Any]] | None = Field(None, description="per box: box (A), run, reason, seed")
    base_seed: int | None = None
    error: str | None = None


@artifact
class PccGcmcCandidate(ArtifactModel):
    """One finished PCC-GCMC box (named ``<cluster source>/<index>``), every field of
    :class:`pcc_gcmc.CandidateResult` with its structure (``to_dict(structure=True)``); dropped after assembly."""

    KIND: ClassVar[str] = "pcc_gcmc_candidate"
    box: list[float] = Field(description="box lengths, A")
    seed: int
    status: str = "ok"
    index: int = -1


@artifact
class ReconstructionSummary(ArtifactModel):
    """What the reconstruction stage made of the selected clusters (named ``campaign``)."""

    KIND: ClassVar[str] = "reconstruction"
    clusters: int = Field(description="clusters planned")
    reconstructed: int = Field(description="clusters that became periodic cells")
    not_reconstructed: dict[str, str] = Field(default_factory=dict, description="cluster source -> reason")
    energy_per_atom: dict[str, float] = Field(default_factory=dict,
                                              description="cluster source -> the cell's energy, eV/atom (classical)")


@artifact
class OTFCells(ReconstructionSummary):
    """The PCC-GCMC cells of one OTF iteration's clusters (named by the zero-padded iteration)."""

    KIND: ClassVar[str] = "otf_cells"
    structure_ids: dict[str, int] = Field(default_factory=dict, description="cluster source -> the cell's structure")


# --------------------------------------------------------------------------- labelling, sampling


@artifact
class LabellingPlan(ArtifactModel):
    """The labelling stage's jobs per structure kind and the budget's cut (kind ``labelling``, named ``plan``)."""

    KIND: ClassVar[str] = "labelling"
    OMIT_NONE: ClassVar[frozenset[str]] = frozenset({"reference", "reference_files"})
    cells: int
    basic: int
    clusters: int
    validation: int
    planned: int = Field(description="label jobs started (at most budget.max_dft_jobs)")
    over_budget: int = Field(description="structures left unlabelled by the budget")
    engine: str
    dft: bool = Field(description="False: the labels come from a reference potential")
    reference: str | None = Field(None, description="the reference potential's name (dft False)")
    reference_files: dict[str, str] | None = Field(None, description="file name -> sha256 of the reference's files")


@artifact
class StructureTypeCounts(ArtifactModel):
    """Atoms per CNA structure type summed over one protocol's stored snapshots (named by the protocol)."""

    KIND: ClassVar[str] = "structure_type_counts"
    __pydantic_extra__: dict[str, int] = Field(init=False)  # structure type -> atoms

    def counts(self) -> dict[str, int]:
        return dict(self.__pydantic_extra__ or {})


# --------------------------------------------------------------------------- refinement


@artifact
class TrainingRecord(TrainingPublic, ArtifactModel):
    """The campaign's first MTP (or SNAP) as the training stage fitted it (kind ``mtp_training``, named
    ``campaign``); the API shows it as :class:`schemas.api.TrainingPublic`."""

    KIND: ClassVar[str] = "mtp_training"
    path: str = Field(description="the model file, relative to the data directory")
    units: dict[str, str] = Field(default_factory=dict)


@artifact
class OTFSummary(ArtifactModel):
    """The on-the-fly loop once it stopped (kind ``otf``, named ``campaign``)."""

    KIND: ClassVar[str] = "otf"
    stopped: str = Field(description="converged, nothing_added, max_iterations or budget")
    n_iterations: int
    max_labels: int = Field(description="label jobs the DFT budget left for the loop")
    model_path: str = Field(description="the final model, relative to the data directory")
    n_labels: int = Field(description="label jobs started over every iteration")
    added_per_iteration: list[int]
    gamma_max_per_iteration: list[float]
    n_training: int = Field(description="configurations of the final training set")
    initial_rmse: ModelErrors | None = Field(description="the first model's errors (meV/atom, meV/A)")
    gamma_select: float
    gamma_break: float


class SigmaHistogramRecord(SigmaHistogram):
    """The stored sigma_F histogram: also its units."""

    model_config = ConfigDict(extra="allow")
    units: str = "eV/A"


@artifact
class EnsembleRecord(EnsemblePublic, ArtifactModel):
    """The ensemble's force spread sigma_F over the sampling snapshots' defect atoms (named ``campaign``); the API
    shows it as :class:`schemas.api.EnsemblePublic`."""

    KIND: ClassVar[str] = "ensemble"
    ddof: int = Field(description="delta degrees of freedom of the spread")
    snapshots: int = Field(description="sampling snapshots evaluated")
    snapshots_with_defects: int
    histogram: SigmaHistogramRecord = Field(description="sigma_F (paper Eq. 1) of the counted atoms, eV/A")


# --------------------------------------------------------------------------- study, dashboard


class SuiteScenario(BaseModel):
    model_config = ConfigDict(extra="allow")
    configurations: int
    atoms: int
    defect_atoms: int


@artifact
class ValidationSuite(ArtifactModel):
    """The study's validation suite as built (named ``campaign``)."""

    KIND: ClassVar[str] = "validation_suite"
    lattice_constant: float = Field(description="A")
    seed: int
    suite: str = Field(description="the preset (smoke, paper)")
    scenarios: dict[str, SuiteScenario]
    wall_time_s: dict[str, float] = Field(description="per building step, s")
    units: dict[str, str] = Field(default_factory=dict)


@artifact
class DashboardCache(ArtifactModel):
    """One cached dashboard aggregate (named by the aggregate), valid while ``key`` matches."""

    KIND: ClassVar[str] = "dashboard_cache"
    key: str = Field(description="finish times of the stages that write gamma")
    value: Any = Field(description="the aggregate, as the dashboard shows it")
