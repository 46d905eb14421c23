"""What the dashboard shows, read from the database: paged lists and server-side aggregates.

Every function takes a session and returns plain data (dicts, lists) for the Jinja2 templates and the
dashboard's JSON endpoints. The pages stay flat with campaign size: lists are paged in SQL, histograms
are summed in SQL (one pass with a conditional count per bin edge), long series are reduced to at most
``MAX_POINTS`` points (the maximum of each bucket) before they leave the server.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import numpy as np
from ase import Atoms
from sqlalchemy.orm import Session

from app.policy import public_text
from core import access
from core.access import load_artifact, load_artifacts, store_artifact
from core.models import Campaign, Structure
from schemas.artifacts import (
    CandidateTable,
    DashboardCache,
    EnsembleRecord,
    GammaByDataset,
    GammaHistogram,
    OTFIterationRecord,
    OTFSummary,
    SoapPCA,
    SpeciesGammaHistograms,
    TrainingRecord,
    ValidationTable,
)
from schemas.names import StructureKind

T = TypeVar("T")

CAMPAIGNS_PER_PAGE = 20
LABELS_PER_PAGE = 25
ATOMS_PER_PAGE = 200
MAX_POINTS = 2000  # points of a series (gamma_max per snapshot) sent to the browser

GAMMA_BY_DATASET = GammaByDataset.KIND
SOAP_PCA = SoapPCA.KIND
CAMPAIGN_ARTIFACT = "campaign"
LABEL_TASK = "dg.labelling.label_structure"


@dataclass
class Paging:
    page: int
    per_page: int
    count: int

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.count / self.per_page))

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.per_page


def paging(page: int, per_page: int, count: int) -> Paging:
    """Page numbers start at 1; a page past the end shows the last one."""
    pages = max(1, math.ceil(count / per_page))
    return Paging(page=min(max(1, page), pages), per_page=per_page, count=count)


# --------------------------------------------------------------------------- campaign list


def campaign_page(session: Session, owner_id: int, page: int = 1,
                  per_page: int = CAMPAIGNS_PER_PAGE) -> tuple[list[dict[str, Any]], Paging]:
    """One page of the owner's campaigns (newest first) with status, current stage, counts, last activity."""
    pager = paging(page, per_page, access.count_campaigns(session, owner_id))
    campaigns = access.campaigns_of(session, owner_id, pager.offset, per_page)
    ids = [c.id for c in campaigns]
    if not ids:
        return [], pager
    structures: dict[int, dict[str, int]] = {}
    for campaign_id, stage, count in access.structure_counts_by_campaign(session, ids):
        structures.setdefault(campaign_id, {})[stage] = int(count)
    labels: dict[int, dict[str, int]] = {}
    for campaign_id, state, count in access.label_states_by_campaign(session, ids):
        labels.setdefault(campaign_id, {})[state] = int(count)
    item_activity = access.last_item_activity(session, ids)
    current: dict[int, str] = {}
    for campaign_id, stage, status in access.stage_statuses(session, ids):
        if campaign_id not in current and status.value != "succeeded":
            current[campaign_id] = stage
    rows = []
    for campaign in campaigns:
        counts = structures.get(campaign.id, {})
        activity = [t for t in (campaign.updated_at, _aware(item_activity.get(campaign.id))) if t is not None]
        rows.append({
            "id": campaign.id, "name": campaign.name, "element": campaign.element, "status": campaign.status.value,
            "stage": current.get(campaign.id, "-" if campaign.status.value != "succeeded" else "done"),
            "structures": sum(counts.values()), "snapshots": counts.get("sampling", 0),
            "clusters": counts.get("cluster", 0), "periodic": counts.get("periodic", 0),
            "labels": labels.get(campaign.id, {}), "created_at": campaign.created_at,
            "last_activity": max(activity) if activity else campaign.created_at,
        })
    return rows, pager


def _aware(value: datetime | None) -> datetime | None:
    from datetime import UTC

    if value is not None and value.tzinfo is None:  # SQLite returns aggregates without the column type
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        value = value.replace(tzinfo=UTC)
    return value


# --------------------------------------------------------------------------- progress


def progress(session: Session, campaign: Campaign) -> dict[str, Any]:
    """Status of the campaign and of each stage (work items summed), for the live refresh."""
    stages = access.stage_runs(session, campaign.id)
    items = {
        stage_id: dict(counts) for stage_id, counts in _item_counts(session, campaign.id).items()
    }
    notes = access.running_notes(session, campaign.id)
    return {
        "id": campaign.id,
        "status": campaign.status.value,
        "finished": campaign.status.finished,
        "error": public_text(campaign.error),
        "updated_at": campaign.updated_at.isoformat() if campaign.updated_at else None,
        "stages": [
            {
                "stage": s.stage, "status": s.status.value, "progress_done": s.progress_done,
                "progress_total": s.progress_total, "attempts": s.attempts, "error": public_text(s.error),
                "items": items.get(s.id, {}),
                "items_text": item_summary(items.get(s.id, {})) + (f" - {notes[s.id]}" if s.id in notes else ""),
                "started_at": s.started_at.isoformat(timespec="seconds") if s.started_at else None,
                "finished_at": s.finished_at.isoformat(timespec="seconds") if s.finished_at else None,
            }
            for s in stages
        ],
    }


def _item_counts(session: Session, campaign_id: int) -> dict[int, dict[str, int]]:
    """Work items per stage and status; a running item whose lease lapsed (its process is gone, the
    sweeper will queue it again) counts as "stale", not "running"."""
    from workers.lease import lapsed_before

    counts: dict[int, dict[str, int]] = {}
    for stage_id, status, count in access.work_item_counts(session, campaign_id, lapsed_before()):
        counts.setdefault(stage_id, {})[str(status)] = int(count)
    return counts


def item_summary(counts: dict[str, int]) -> str:
    """e.g. "3 succeeded, 1 running, 1 stale" in the order work moves."""
    order = ["stale", "running", "pending", "failed", "cancelled", "succeeded"]
    return ", ".join(f"{counts[name]} {name}" for name in order if counts.get(name))


# --------------------------------------------------------------------------- gamma


def default_gamma_edges() -> list[float]:
    from selection.maxvol import DEFAULT_GAMMA_EDGES

    return [float(e) for e in DEFAULT_GAMMA_EDGES]


def _environment_histogram(session: Session, campaign_id: int, selected_only: bool) -> dict[str, Any] | None:
    """gamma of the graded candidate environments, binned in SQL on the shared log edges.

    One pass over the rows, grouped by bin number floor(10 (log10 gamma + 2)) (the default edges: 10 per
    decade from 1e-2); as in selection.maxvol.log_histogram, values below the first edge count in the first
    bin and values above the last edge in the last. A database without log10 gets one conditional count
    per edge instead (same numbers, slower).
    """
    from sqlalchemy.exc import OperationalError

    edges = default_gamma_edges()
    n_bins = len(edges) - 1
    per_decade = round(n_bins / math.log10(edges[-1] / edges[0]))
    counts = [0] * n_bins
    try:
        rows = access.environment_gamma_bins(session, campaign_id, selected_only, edges[0], per_decade)
        gamma_max = max((float(r[2]) for r in rows), default=None)
        for number_value, count, _ in rows:
            counts[min(max(int(number_value), 0), n_bins - 1)] += int(count)
    except OperationalError:  # no log10 in this SQLite build
        session.rollback()
        row = access.environment_gamma_below(session, campaign_id, selected_only, edges)
        gamma_max, below_edge = row[1], [int(v or 0) for v in row[2:]]
        counts = [below_edge[i + 1] - below_edge[i] for i in range(n_bins)]
        counts[0] += below_edge[0]
        counts[-1] += int(row[0] or 0) - below_edge[-1]
    n = sum(counts)
    if n == 0:
        return None
    assert gamma_max is not None, "graded atoms were counted: the largest gamma is known"
    return {"edges": edges, "counts": counts, "n": n, "gamma_max": float(gamma_max)}


# ---- cache of the aggregates over a campaign's rows: valid while the stages that write them stay as they were

CACHE_KIND = DashboardCache.KIND
_CACHE_STAGES = ("sampling", "grading", "selection")


def _cache_key(session: Session, campaign_id: int) -> str | None:
    """Finish times of the stages that write gamma (None while any of them is unfinished: no caching)."""
    rows = access.stage_run_states(session, campaign_id, _CACHE_STAGES)
    if len(rows) < len(_CACHE_STAGES):
        return None
    finished: list[str] = []
    for stage, status, finished_at in rows:
        if status.value != "succeeded" or finished_at is None:
            return None
        finished.append(f"{stage}@{finished_at.isoformat()}")
    return ";".join(finished)


def cached(session: Session, campaign_id: int, name: str, compute: Callable[[], T]) -> T:
    """``compute()``, kept as a campaign artifact once the gamma-writing stages have finished; a re-run of
    any of them (resume) changes the key and the value is computed again."""
    from sqlalchemy.exc import IntegrityError

    from core.session import session_factory

    key = _cache_key(session, campaign_id)
    if key is not None:
        stored = load_artifact(session, campaign_id, DashboardCache, name)
        if stored is not None and stored.key == key:
            return stored.value
    value = compute()
    if key is not None:
        with session_factory()() as writer:
            try:
                store_artifact(writer, campaign_id, name, DashboardCache(key=key, value=value))
                writer.commit()
            except IntegrityError:  # another request stored it first
                writer.rollback()
    return value


HISTOGRAM_DATASETS = {
    "sampled": "every atom of the sampling snapshots",
    "candidates": "candidate environments (atoms not in the perfect lattice)",
    "selected": "environments selected by D-optimality",
}


def gamma_histograms(session: Session, campaign_id: int) -> dict[str, dict[str, Any]]:
    """Histograms of gamma per dataset on the shared log-spaced edges, aggregated on the server (and cached)."""
    return cached(session, campaign_id, "gamma_histograms", lambda: _gamma_histograms(session, campaign_id))


def _gamma_histograms(session: Session, campaign_id: int) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    stored = load_artifact(session, campaign_id, GammaHistogram, CAMPAIGN_ARTIFACT)
    merged = stored.model_dump() if stored else None
    if merged is None:  # selection not run yet: sum the per-snapshot artifacts stored so far
        parts = [h.model_dump() for _name, h in load_artifacts(session, campaign_id, GammaHistogram)]
        if parts:
            from selection.maxvol import merge_histograms

            merged = merge_histograms(parts)
    if merged is not None:
        out["sampled"] = merged
    for name, selected in (("candidates", False), ("selected", True)):
        histogram = _environment_histogram(session, campaign_id, selected)
        if histogram is not None:
            out[name] = histogram
    for name, histogram in out.items():
        histogram["label"] = HISTOGRAM_DATASETS[name]
    return out


TRAINING_SET_LABELS = {
    "B": "the basic training set B",
    "B+C": "B plus the cut clusters with vacuum (C)",
    "B+P": "B plus the PCC-GCMC periodic cells (P)",
}


def training_set_histograms(session: Session, campaign_id: int) -> dict[str, Any]:
    """gamma of the candidate environments against the active sets of B, B+C and B+P (paper Fig. 4e-f).

    Stored by the reconstruction stage (one pass, binned on the shared edges): ``{"histograms": {name:
    histogram}, "error": None}``; ``error`` says why the basis could not grade them; both empty before.
    """
    stored = load_artifact(session, campaign_id, GammaByDataset, CAMPAIGN_ARTIFACT)
    graded = stored.histograms() if stored else {}
    histograms = {name: {**graded[name].model_dump(), "label": f"candidates vs. {TRAINING_SET_LABELS[name]}"}
                  for name in TRAINING_SET_LABELS if name in graded}
    return {"histograms": histograms, "error": public_text(stored.error if stored else None)}


def species_histograms(session: Session, campaign_id: int) -> dict[str, dict[str, Any]]:
    """gamma of every sampled atom per species, each against its own species' active set (a campaign of several
    elements; empty for one): the selection stage's sum, or the per-snapshot ones summed before it has run."""
    stored = load_artifact(session, campaign_id, SpeciesGammaHistograms, CAMPAIGN_ARTIFACT)
    if stored is not None:
        merged = {name: histogram.model_dump() for name, histogram in stored.histograms.items()}
    else:
        parts = [h for _name, h in load_artifacts(session, campaign_id, SpeciesGammaHistograms)]
        if not parts:
            return {}
        from selection.maxvol import merge_histograms

        names = list(dict.fromkeys(name for part in parts for name in part.histograms))
        merged = {name: merge_histograms([p.histograms[name].model_dump() for p in parts if name in p.histograms])
                  for name in names}
    return {name: {**histogram, "label": f"{name} atoms of the sampling snapshots"}
            for name, histogram in merged.items()}


def snapshot_histogram(session: Session, campaign_id: int, source: str) -> dict[str, Any] | None:
    stored = load_artifact(session, campaign_id, GammaHistogram, source)
    return stored.model_dump() if stored else None


def gamma_max_series(session: Session, campaign_id: int, max_points: int = MAX_POINTS) -> dict[str, Any]:
    """gamma_max of every graded sampling snapshot in the order they were stored (paper Fig. 4i).

    Longer series are reduced to ``max_points`` buckets of consecutive snapshots, each shown by its
    largest gamma_max (a peak is never hidden). The page's series is cached, the CSV's (all points) not.
    """
    if max_points == MAX_POINTS:
        return cached(session, campaign_id, "gamma_max", lambda: _gamma_max_series(session, campaign_id, max_points))
    return _gamma_max_series(session, campaign_id, max_points)


def _gamma_max_series(session: Session, campaign_id: int, max_points: int) -> dict[str, Any]:
    rows = access.structure_gamma_max(session, campaign_id, StructureKind.SAMPLING)
    n = len(rows)
    if n <= max_points:
        return {"n": n, "reduced": False, "index": list(range(n)), "gamma_max": [float(r[2]) for r in rows],
                "source": [r[1] for r in rows], "structure_id": [r[0] for r in rows]}
    values = np.array([r[2] for r in rows], dtype=float)
    bounds = np.linspace(0, n, max_points + 1).astype(int)
    index, maxima, sources, ids = [], [], [], []
    for lo, hi in itertools.pairwise(bounds):
        if hi <= lo:
            continue
        k = int(lo) + int(np.argmax(values[lo:hi]))
        index.append(k)
        maxima.append(float(values[k]))
        sources.append(rows[k][1])
        ids.append(rows[k][0])
    return {"n": n, "reduced": True, "index": index, "gamma_max": maxima, "source": sources, "structure_id": ids}


# --------------------------------------------------------------------------- PCC-GCMC and SOAP


def cluster_names(session: Session, campaign_id: int) -> list[str]:
    return access.artifact_names(session, campaign_id, CandidateTable.KIND)


def box_grid(session: Session, campaign_id: int, cluster: str) -> dict[str, Any] | None:
    """The candidate table of one cluster: box lengths, atoms, energy per atom, admissible, best."""
    stored = load_artifact(session, campaign_id, CandidateTable, cluster)
    if stored is None:
        return None
    table = stored.model_dump()
    rows = []
    for position, c in enumerate(table.get("candidates", [])):
        index = c.get("index", position)
        rows.append({
            "index": index, "box": [round(float(v), 3) for v in c.get("box") or []],
            "box_final": [round(float(v), 3) for v in c.get("box_final") or []],
            "n_atoms": c.get("n_atoms"), "n_inserted": c.get("n_inserted"), "status": c.get("status"),
            "energy_per_atom": c.get("energy_per_atom"), "admissible": bool(c.get("admissible")),
            "best": index == table.get("best_index"), "message": c.get("message") or c.get("stop_reason") or "",
        })
    xs = sorted({r["box"][0] for r in rows if r["box"]})
    ys = sorted({r["box"][1] for r in rows if r["box"]})
    zs = sorted({r["box"][2] for r in rows if r["box"]})
    energies = [r["energy_per_atom"] for r in rows if r["energy_per_atom"] is not None]
    return {
        "cluster": cluster, "rows": rows, "best_index": table.get("best_index"),
        "structure_id": table.get("structure_id"), "energy_per_atom": table.get("energy_per_atom"),
        "error": public_text(table.get("error")), "n_core": table.get("n_core"), "lx": xs, "ly": ys, "lz": zs,
        "e_min": min(energies) if energies else None, "e_max": max(energies) if energies else None,
        "by_box": {"|".join(str(v) for v in r["box"]): r for r in rows if r["box"]},
    }


def soap_pca(session: Session, campaign_id: int) -> dict[str, Any] | None:
    """The SOAP PCA map of datasets B, C, P and a per-dataset summary (the chart's text alternative)."""
    data = load_artifact(session, campaign_id, SoapPCA, CAMPAIGN_ARTIFACT)
    if data is None:
        return None
    summary = []
    for name, points in data.points.items():
        array = np.asarray(points, dtype=float).reshape(-1, 2) if points else np.zeros((0, 2))
        summary.append({
            "dataset": name, "n": len(array),
            "pc1_mean": float(array[:, 0].mean()) if len(array) else None,
            "pc2_mean": float(array[:, 1].mean()) if len(array) else None,
            "pc1_min": float(array[:, 0].min()) if len(array) else None,
            "pc1_max": float(array[:, 0].max()) if len(array) else None,
        })
    return {"points": data.points, "explained_variance_ratio": data.explained_variance_ratio, "summary": summary}


# --------------------------------------------------------------------------- labels


def label_page(session: Session, campaign_id: int, page: int = 1,
               per_page: int = LABELS_PER_PAGE) -> tuple[list[dict[str, Any]], Paging, dict[str, int]]:
    """One page of the campaign's ledger rows (linked to one of its structures, or first asked for by one)
    and the count per state."""
    pager = paging(page, per_page, access.count_labels_of(session, campaign_id))
    rows = access.labels_of(session, campaign_id, pager.offset, per_page)
    states = access.label_states_of(session, campaign_id)
    return [
        {"id": r.id, "structure_id": r.structure_id, "engine": r.engine, "state": r.state, "attempts": r.attempts,
         "failure": r.failure, "failures": list(r.failures or []), "error": public_text(r.error), "energy": r.energy,
         "n_atoms": r.n_atoms, "wall_time": r.wall_time, "updated_at": r.updated_at}
        for r in rows
    ], pager, {k: int(v) for k, v in states.items()}


# --------------------------------------------------------------------------- structures


def structure_colours(session: Session, structure: Structure, atoms: Atoms) -> dict[str, Any]:
    """Per-atom values the viewer colours by: core/inserted of a reconstructed cell, else gamma.

    gamma comes from the file's ``gamma`` array when present, else from the structure's environment rows
    (the graded candidate atoms; the others are perfect lattice and left uncoloured).
    """
    n = len(atoms)
    if "core" in atoms.arrays or "inserted" in atoms.arrays:
        core = atoms.arrays.get("core", np.zeros(n, bool)).astype(bool)
        inserted = atoms.arrays.get("inserted", np.zeros(n, bool)).astype(bool)
        kind = np.where(core, "core", np.where(inserted, "inserted", "other"))
        return {"mode": "core", "category": kind.tolist(),
                "counts": {k: int((kind == k).sum()) for k in ("core", "inserted", "other")}}
    gamma: list[float | None] = [None] * n
    if "gamma" in atoms.arrays:
        gamma = [float(g) for g in atoms.arrays["gamma"]]
        source = "file"
    else:
        source = "environments"
        for atom_index, value in access.environment_gammas(session, structure.id):
            if 0 <= atom_index < n:
                assert value is not None, "the query keeps graded environments only"
                gamma[atom_index] = float(value)
    graded = [g for g in gamma if g is not None]
    return {"mode": "gamma", "gamma": gamma, "source": source, "graded": len(graded),
            "gamma_max": max(graded) if graded else None}


STRUCTURES_PER_PAGE = 25


def structure_page(session: Session, campaign_id: int, page: int = 1, stage: str | None = None,
                   per_page: int = STRUCTURES_PER_PAGE) -> tuple[list[dict[str, Any]], Paging, dict[str, int]]:
    """One page of a campaign's structures (optionally of one stage) and the count per stage."""
    stages = access.structure_counts_by_stage(session, campaign_id)
    pager = paging(page, per_page, int(stages.get(stage, 0)) if stage else sum(stages.values()))
    rows = access.structure_rows(session, campaign_id, stage, pager.offset, per_page)
    return [
        {"id": r[0], "stage": r[1], "source": r[2], "n_atoms": r[3], "n_candidates": r[4], "gamma_max": r[5],
         "label_id": r[6], "formula": r[7]}
        for r in rows
    ], pager, {k: int(v) for k, v in stages.items()}


# --------------------------------------------------------------------------- refinement (OTF, ensemble)


def refinement_results(session: Session, campaign_id: int) -> dict[str, Any] | None:
    """What the refinement stages stored: the first MTP's errors, one record per finished OTF iteration,
    the loop's summary, gamma_max of every OTF run per graded snapshot (:func:`otf_gamma_series`) and the
    ensemble's sigma_F histogram; None when there is none of them (no refinement section, or not run yet)."""
    training = load_artifact(session, campaign_id, TrainingRecord, CAMPAIGN_ARTIFACT)
    iterations = [it.model_dump() for _name, it in load_artifacts(session, campaign_id, OTFIterationRecord)]
    ensemble = load_artifact(session, campaign_id, EnsembleRecord, CAMPAIGN_ARTIFACT)
    if training is None and not iterations and ensemble is None:
        return None
    summary = load_artifact(session, campaign_id, OTFSummary, CAMPAIGN_ARTIFACT)
    return {"training": training.model_dump() if training else None, "iterations": iterations,
            "summary": summary.model_dump() if summary else None,
            "series": otf_gamma_series(iterations), "ensemble": ensemble.model_dump() if ensemble else None}


def otf_gamma_series(iterations: list[dict[str, Any]]) -> dict[str, Any]:
    """gamma_max per graded snapshot of every OTF run (the paper's Fig. 4i) on one axis of MD steps: a
    series per (iteration, target), None at steps the run did not reach (it stopped at gamma_break)."""
    steps = sorted({step for it in iterations for run in it["runs"] for step in run["snapshot_steps"]})
    position = {step: i for i, step in enumerate(steps)}
    series = []
    for it in iterations:
        for run in it["runs"]:
            values: list[float | None] = [None] * len(steps)
            for step, gamma_max in zip(run["snapshot_steps"], run["gamma_max"], strict=True):
                values[position[step]] = gamma_max
            series.append({"label": f"iteration {it['index']}: {run['target']}", "iteration": it["index"],
                           "target": run["target"], "gamma_max": values})
    return {"steps": steps, "series": series}


# --------------------------------------------------------------------------- validation study (B, B+C, B+P)


def validation_results(session: Session, campaign_id: int, scenario: str | None = None) -> dict[str, Any] | None:
    """The study report as the API shows it (files by name, no server directory), the defect-atom force RMSE per
    scenario and model for the grouped bar chart, and the parity samples of one ``scenario`` (default the first;
    one scenario only: 300 points x 2 per model and scenario would make the page heavy); None before the stage."""
    from schemas.api import ValidationPublic

    stored = load_artifact(session, campaign_id, ValidationTable, CAMPAIGN_ARTIFACT)
    if stored is None:
        return None
    report = ValidationPublic.model_validate(stored.model_dump()).model_dump(mode="json")
    scenarios = list(dict.fromkeys([*report["suite_sizes"], *(s["scenario"] for m in validated_models(report)
                                                                for s in m["scenarios"])]))
    chosen = scenario if scenario in scenarios else scenarios[0] if scenarios else None
    bars, parity = [], []
    for model in validated_models(report):
        label = f"{model['combination']} {model['kind']}"
        errors = {s["scenario"]: s for s in model["scenarios"]}
        bars.append({"label": label, "combination": model["combination"], "kind": model["kind"],
                     "values": [errors[name]["force_rmse_defect_mev_per_A"] if name in errors else None
                                for name in scenarios]})
        sample = errors.get(chosen, {}).get("parity")
        if sample:
            parity.append({"label": label, "combination": model["combination"], "kind": model["kind"], **sample})
    return {"report": report, "scenarios": scenarios, "scenario": chosen, "rows": validation_rows(report, scenarios),
            "chart": {"scenarios": scenarios, "bars": bars, "parity": parity, "scenario": chosen}}


VALIDATION_COLUMNS = ["scenario", "combination", "kind", "model", "configurations", "atoms", "defect_atoms",
                      "energy_rmse_mev_per_atom", "energy_rmse_centred_mev_per_atom", "force_rmse_mev_per_A",
                      "force_rmse_defect_mev_per_A", "max_force_error_mev_per_A", "gamma_max", "fraction_gamma_above_2"]


def validated_models(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The study's SNAP models, then the campaign's own MTP when the campaign refined one: combination, kind,
    name and scenarios of each."""
    models = list(report["models"])
    own = report.get("campaign_model")
    if own:
        models.append({"combination": "campaign", "kind": "MTP", "name": own["model"], "scenarios": own["scenarios"]})
    return models


def validation_rows(report: dict[str, Any], scenarios: list[str]) -> list[dict[str, Any]]:
    """One row per scenario and model (keys VALIDATION_COLUMNS), in the order of ``scenarios``, then models."""
    rows = []
    for name in scenarios:
        for model in validated_models(report):
            for s in model["scenarios"]:
                if s["scenario"] == name:
                    rows.append({"scenario": name, "combination": model["combination"], "kind": model["kind"],
                                 "model": model["name"], "configurations": s["n_configurations"],
                                 "atoms": s["n_atoms"], "defect_atoms": s["n_defect_atoms"],
                                 **{c: s[c] for c in VALIDATION_COLUMNS[7:12]},
                                 "gamma_max": (s.get("gamma") or {}).get("gamma_max"),
                                 "fraction_gamma_above_2": (s.get("gamma") or {}).get("fraction_above_2")})
    return rows
