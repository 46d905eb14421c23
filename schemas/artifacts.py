"""One typed model per artifact kind (the names of structure kinds and datasets are in :mod:`schemas.names`).

An artifact is a campaign's (kind, name) -> JSON document. Each kind has one model here, registered by its
``KIND``; :mod:`core.access` stores and loads them by type (``store_artifact(session, id, name, model)``,
``load_artifact(session, id, GammaHistogram, name)``), so a reader gets fields, not ``.get()`` on a dict.
Units are in the field descriptions.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from schemas.names import CAMPAIGN, Dataset, StructureKind  # noqa: F401 (re-exported for readers of artifacts)
from schemas.study import StudyReport


class ArtifactModel(BaseModel):
    """One artifact kind. Keys a model does not name are kept (older documents stay readable and whole)."""

    model_config = ConfigDict(extra="allow")
    KIND: ClassVar[str]


ARTIFACTS: dict[str, type[ArtifactModel]] = {}


def artifact(cls: type[ArtifactModel]) -> type[ArtifactModel]:
    """Register an artifact model under its KIND; a KIND is defined once."""
    if cls.KIND in ARTIFACTS:
        raise ValueError(f"artifact kind {cls.KIND!r} is defined twice")
    ARTIFACTS[cls.KIND] = cls
    return cls


@artifact
class GammaHistogram(ArtifactModel):
    """Extrapolation grades gamma on shared log-spaced bins: one per sampling snapshot (named by its source)
    and the campaign's sum (named ``campaign``)."""

    KIND: ClassVar[str] = "gamma_histogram"
    edges: list[float] = Field(description="bin edges, dimensionless gamma")
    counts: list[int] = Field(
        description="atoms per bin; below the first edge in the first, above the last in the last"
    )
    n: int = Field(description="atoms graded")
    gamma_max: float | None
    below: int = 0
    above: int = 0


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
