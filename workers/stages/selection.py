"""Selection stages: the training active set, per-snapshot grades, the D-optimal selection and cluster cut."""

from __future__ import annotations

import io
import logging
from collections.abc import Sequence

import numpy as np
from ase import Atoms

from core import access
from core.access import load_artifacts, put_structure, store_artifact, stored_structures
from core.session import session_scope
from core.settings import get_settings
from core.storage import StructureStore
from sampling.datasets import generated_dataset, soap_pca_map
from schemas import CampaignSpec
from schemas.artifacts import ActiveSetRecord, GammaHistogram, SelectionSummary, SoapPCA, SpeciesGammaHistograms
from schemas.names import StructureKind
from selection import maxvol
from selection.bases import Basis, make_basis
from selection.clusters import cut_clusters, pad_vacuum
from selection.grading import (
    ChunksOf,
    gamma_summary,
    grade_atoms,
    save_candidates,
    saved_chunks,
    select_streaming,
    training_active_set,
)
from workers.stages.common import (
    campaign_dir,
    campaign_material,
    load_item,
    read_training_set,
    resolve_data_file,
    resolve_potential,
)

log = logging.getLogger(__name__)

CAMPAIGN = "campaign"


def campaign_basis(spec: CampaignSpec, species: list[str]) -> Basis:
    selection = spec.selection
    if selection.basis == "snap":
        return make_basis("snap", elements=species, twojmax=selection.twojmax, cutoff=selection.snap_cutoff,
                          threads=get_settings().lammps_threads or spec.sampling.threads)
    if selection.basis_potential is None:  # the schema requires it for mtp and ace
        raise ValueError(f"selection.basis_potential: the {selection.basis} basis needs its potential file")
    path = resolve_data_file(selection.basis_potential, "selection.basis_potential")
    if selection.basis == "mtp":
        return make_basis("mtp", mtp_file=path, species=tuple(species))
    return make_basis("ace", yaml=path)


def _species(spec: CampaignSpec) -> list[str]:
    return list(spec.species)


def _per_species(spec: CampaignSpec) -> bool:
    """An alloy keeps one active set per species (MLIP-3, pacemaker); one element keeps its single set."""
    return len(spec.species) > 1


def build_active_set(item_id: int) -> None:
    """Dataset B (the user's or generated) stored as stage 'basic', and its MaxVol active set."""
    campaign_id, spec, _ = load_item(item_id)
    store = StructureStore(get_settings().data_dir)
    if spec.selection.training_set:
        training = read_training_set(spec.selection.training_set)
    else:
        potential = resolve_potential(spec.potential)
        training = generated_dataset(campaign_material(spec, potential, campaign_id), potential=potential)
    basis = campaign_basis(spec, _species(spec))
    active_set = training_active_set(basis, training, per_species=_per_species(spec))
    buffer = io.BytesIO()
    maxvol.save(active_set, buffer)
    (campaign_dir(campaign_id) / "active_set.npz").write_bytes(buffer.getvalue())
    with session_scope() as session:
        for index, atoms in enumerate(training):
            atoms.calc = None  # labels of a user's set stay in its own file; B is stored as geometry
            put_structure(session, store, campaign_id, atoms, stage=StructureKind.BASIC, source=f"basic/{index}",
                           info={"origin": str(atoms.info.get("source", ""))})
        store_artifact(session, campaign_id, CAMPAIGN, ActiveSetRecord(
            basis=basis.describe(), m=active_set.size, training_configurations=len(training),
            training_atoms=int(sum(len(a) for a in training)), tolerance=active_set.tolerance,
            log_abs_det=active_set.log_abs_det,
        ))


def grade_snapshot(item_id: int) -> None:
    """gamma of every atom of one sampling snapshot; candidates above gamma_select keep their rows."""
    campaign_id, spec, params = load_item(item_id)
    structure_id = int(params["structure_id"])
    settings = get_settings()
    store = StructureStore(settings.data_dir)
    with session_scope() as session:
        structure = access.get_structure(session, structure_id)
        atoms = store.read(structure.path)
        source = structure.source
        candidates = np.array(access.candidate_atoms(session, structure_id), dtype=int)
    active_set = maxvol.load(campaign_dir(campaign_id) / "active_set.npz")
    rows, gamma = grade_atoms(campaign_basis(spec, _species(spec)), active_set, atoms)
    mask = np.zeros(len(atoms), bool)
    if spec.selection.candidates == "all":
        mask[:] = True
    else:
        mask[candidates] = True
    chosen = np.flatnonzero(mask & (gamma > spec.selection.gamma_select))
    rows_dir = campaign_dir(campaign_id) / "rows"
    rows_dir.mkdir(exist_ok=True)
    symbols = np.array(atoms.get_chemical_symbols())
    save_candidates(rows_dir / f"{structure_id}.npz", atoms, rows, gamma, chosen)
    np.save(rows_dir / f"{structure_id}.gamma.npy", gamma)
    # every candidate's rows, for grading against B, B+C and B+P once the cells exist (reconstruction)
    np.save(rows_dir / f"{structure_id}.candidates.npy", rows[mask])
    np.save(rows_dir / f"{structure_id}.candidate_species.npy", symbols[mask])
    with session_scope() as session:
        access.set_environment_gammas(session, structure_id, candidates, gamma[candidates])
        structure = access.get_structure(session, structure_id)
        structure.info = {**structure.info, **gamma_summary(gamma)}
        store_artifact(session, campaign_id, source, GammaHistogram(**maxvol.log_histogram(gamma)))
        if _per_species(spec):
            store_artifact(session, campaign_id, source, SpeciesGammaHistograms(histograms={
                name: maxvol.log_histogram(gamma[symbols == name]) for name in _species(spec)}))


def _select_chunks(spec: CampaignSpec, active_set: maxvol.ActiveSet | maxvol.SpeciesActiveSets, chunks_of: ChunksOf,
                   sources: Sequence[str]) -> tuple[list[tuple[int, int]], maxvol.ActiveSet | maxvol.SpeciesActiveSets,
                                                    int]:
    """The owners of the chosen environments' rows, the active set with them, and the number of candidates read.

    ``chunks_of(indices)`` reads the graded rows of those snapshots (``sources[k]`` of snapshot k) one at a time;
    :func:`selection.grading.select_streaming` holds a bounded pool of them, so memory does not grow with the
    number of snapshots. scope ``campaign``: one greedy MaxVol over every candidate. scope ``protocol``: one per
    loading protocol, each against B's active set with up to max_new environments, so a loading whose environments
    the most extreme one would span (a crack beside a 2000 K polycrystal) still contributes its own; the active set
    then takes every chosen row that still raises its volume."""
    params = spec.selection
    if params.scope == "campaign":
        selection = select_streaming(active_set, chunks_of(range(len(sources))), gamma_select=params.gamma_select,
                                     max_new=params.max_new)
        return selection.chosen, selection.active_set, selection.candidates
    groups: dict[str, list[int]] = {}
    for k, source in enumerate(sources):
        groups.setdefault(source.split("/")[0], []).append(k)
    chosen: list[tuple[int, int]] = []
    picked_rows, picked_species = [], []
    candidates = 0
    for members in groups.values():
        selection = select_streaming(active_set, chunks_of(members), gamma_select=params.gamma_select,
                                     max_new=params.max_new)
        chosen += selection.chosen
        candidates += selection.candidates
        if selection.rows is not None:
            picked_rows.append(selection.rows)
        if selection.species is not None:
            picked_species.append(selection.species)
    if not chosen:
        return chosen, active_set, candidates
    picked = np.vstack(picked_rows)
    if isinstance(active_set, maxvol.SpeciesActiveSets):
        return chosen, maxvol.select_add_species(active_set, picked, np.concatenate(picked_species),
                                                 gamma_select=1.0)[0], candidates
    updated, _ = maxvol.select_add(active_set, picked, gamma_select=1.0)
    return chosen, updated, candidates


def select_and_cut(item_id: int) -> None:
    """Greedy MaxVol over every candidate of the campaign, then clusters (and their vacuum C variant)."""
    campaign_id, spec, _ = load_item(item_id)
    settings = get_settings()
    store = StructureStore(settings.data_dir)
    directory = campaign_dir(campaign_id)
    active_set = maxvol.load(directory / "active_set.npz")
    with session_scope() as session:
        snapshots = access.structure_files(session, campaign_id, StructureKind.SAMPLING)
    chunks_of = saved_chunks([directory / "rows" / f"{structure_id}.npz" for structure_id, _path, _source in snapshots],
                             spec.element)
    chosen, updated, candidates = _select_chunks(spec, active_set, chunks_of,
                                                 [source for _id, _path, source in snapshots])
    buffer = io.BytesIO()
    maxvol.save(updated, buffer)
    (directory / "active_set_selected.npz").write_bytes(buffer.getvalue())
    chosen_by_snapshot: dict[int, list[int]] = {}
    for k, atom in chosen:
        chosen_by_snapshot.setdefault(k, []).append(atom)

    # Snapshots are read and clusters cut before the one write transaction: on SQLite a transaction that writes
    # locks the whole database (the heartbeats too) for as long as it lasts, and a 10^6-atom snapshot takes seconds
    cut: list[tuple[int, list[int], str, list[tuple[Atoms, dict, Atoms]]]] = []
    for k, centres in sorted(chosen_by_snapshot.items()):
        structure_id, path, source = snapshots[k]
        atoms = store.read(path)
        atoms.arrays["gamma"] = np.load(directory / "rows" / f"{structure_id}.gamma.npy")
        clusters = []
        for cluster in cut_clusters(atoms, centres, radius=spec.selection.cluster_radius,
                                    merge_distance=spec.selection.merge_distance, source=source):
            info = {"centres": cluster.centre_indices, "radius": cluster.radius,
                    "gamma_centres": [float(atoms.arrays["gamma"][c]) for c in cluster.centre_indices]}
            clusters.append((cluster.atoms, info, pad_vacuum(cluster.atoms, spec.selection.vacuum)))
        cut.append((structure_id, centres, source, clusters))
        del atoms
    clusters_b = [padded for *_, clusters in cut for _, _, padded in clusters]
    with session_scope() as session:
        histograms = [h.model_dump() for name, h in load_artifacts(session, campaign_id, GammaHistogram)
                      if name != CAMPAIGN]
        by_species = [h for name, h in load_artifacts(session, campaign_id, SpeciesGammaHistograms) if name != CAMPAIGN]
        basic = stored_structures(session, store, campaign_id, "basic")
    maps = {"B": basic, "C": clusters_b} if clusters_b else {"B": basic}
    soap_map = soap_pca_map(maps, max_atoms_per_dataset=2000)

    with session_scope() as session:
        if histograms:
            store_artifact(session, campaign_id, CAMPAIGN, GammaHistogram(**maxvol.merge_histograms(histograms)))
        if by_species:
            store_artifact(session, campaign_id, CAMPAIGN, SpeciesGammaHistograms(histograms={
                name: maxvol.merge_histograms([h.histograms[name].model_dump() for h in by_species
                                               if name in h.histograms])
                for name in _species(spec)}))
        for structure_id, centres, source, clusters in cut:
            access.mark_environments_selected(session, structure_id, centres)
            for number, (cluster_atoms, info, padded) in enumerate(clusters):
                cluster_source = f"{source}/cluster-{number}"
                cluster_id = put_structure(session, store, campaign_id, cluster_atoms, stage=StructureKind.CLUSTER,
                                            source=cluster_source, parent_id=structure_id, info=info)
                put_structure(session, store, campaign_id, padded, stage=StructureKind.CLUSTER_VACUUM,
                               source=f"{cluster_source}/vacuum", parent_id=cluster_id, info=info)
        store_artifact(session, campaign_id, CAMPAIGN, SoapPCA.model_validate(soap_map))
        store_artifact(session, campaign_id, CAMPAIGN, SelectionSummary(
            candidates=candidates, selected=len(chosen), scope=spec.selection.scope,
            clusters=len(clusters_b), gamma_select=spec.selection.gamma_select, max_new=spec.selection.max_new,
        ))
