"""Sampling stage runner: one loading protocol of one campaign, snapshots streamed into the store."""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core import access
from core.access import load_artifact, store_artifact
from core.models import Structure
from core.session import session_scope
from core.settings import get_settings
from core.storage import StructureStore
from labelling.submit import SlurmLauncher
from sampling.defects import STRUCTURE_TYPES
from sampling.lammps_script import stream_run
from sampling.protocols import Snapshot, Stopped, execute, program_for, snapshot_count
from sampling.structures import build_structure
from schemas import CampaignSpec
from schemas.artifacts import StructureTypeCounts
from schemas.names import StructureKind
from schemas.sampling import LammpsRunParams
from workers.lease import stop_file
from workers.stages.common import (
    Cancelled,
    campaign_dir,
    campaign_material,
    named_launch_profile,
    report_note,
    report_progress,
    resolve_potential,
)

log = logging.getLogger(__name__)


def run_protocol(item_id: int) -> None:
    settings = get_settings()
    with session_scope() as session:
        item = access.find_work_item(session, item_id)
        assert item is not None
        campaign_id, key = item.campaign_id, item.key
        index = int(item.params["protocol_index"])
        spec = CampaignSpec.model_validate(access.get_campaign(session, campaign_id).spec)
        stored = access.source_names(session, campaign_id, StructureKind.SAMPLING)
    protocol = spec.sampling.protocols[index]  # the schema model: the protocol's parameters
    sources = [f"{key}/frame-{frame}" for frame in range(snapshot_count(protocol))]
    if all(source in stored for source in sources):
        return  # finished by an earlier delivery that died before marking the item

    potential = resolve_potential(spec.potential)
    material = campaign_material(spec, potential, campaign_id)
    atoms = build_structure(protocol.structure, material, potential)
    threads = settings.lammps_threads or spec.sampling.threads
    store = StructureStore(settings.data_dir)

    program = program_for(protocol, atoms, potential, element=material.element, lattice=material.lattice,
                          lattice_constant=material.a, minimization=spec.sampling.minimization)
    program = dataclasses.replace(program, detection=spec.sampling.detection)
    # The item's stop file appears when the campaign is cancelled: LAMMPS halts within a second or two,
    # mid-run or mid-minimisation, instead of at the next snapshot.
    stop = stop_file(item_id)

    def note(text: str) -> None:
        report_note(item_id, text)

    external = spec.sampling.lammps
    if external is None:
        snapshots = execute(program, potential, threads=threads, stop_file=stop, progress=note)
    else:
        # the run's own directory: a later attempt finds the run still going, or resumes it from its restart files
        command, slurm = external_lammps(external)
        snapshots = stream_run(program, potential, campaign_dir(campaign_id) / "sampling" / f"protocol-{index}",
                               command=command, threads=threads, slurm=slurm,
                               done={k for k, source in enumerate(sources) if source in stored},
                               poll_seconds=external.poll_interval, progress=note, stop_file=stop)
    try:
        for snapshot in snapshots:
            if stop.exists():  # cancelled while the snapshot was taken: do not store it
                raise Cancelled
            source = sources[snapshot.index]
            if source not in stored:
                _store_snapshot(store, campaign_id, source, snapshot)
            report_progress(item_id, campaign_id, done=snapshot.index + 1)
    except Stopped as stopped:
        log.info("work item %s (campaign %s, %s) cancelled: %s", item_id, campaign_id, key, stopped)
        raise Cancelled from None
    finally:
        snapshots.close()  # frees LAMMPS at once when cancelled


def external_lammps(params: LammpsRunParams) -> tuple[list[str] | None, SlurmLauncher | None]:
    """The command (None: this environment's ``mpirun -np 2 lmp``) and Slurm launcher (None: a local subprocess)
    of an external LAMMPS: the spec's own, else its launch profile's."""
    profile = named_launch_profile(params.launch_profile, "sampling.lammps.launch_profile")
    command = params.command or profile.command
    if params.launcher != "slurm":
        return command, None
    slurm = params.slurm.model_dump()
    slurm["modules"] = [*profile.modules, *slurm["modules"]]
    slurm["extra_lines"] = [*profile.extra_lines, *slurm["extra_lines"]]
    return command, SlurmLauncher(**slurm, job_name="dg-sample")


def _store_snapshot(store: StructureStore, campaign_id: int, source: str, snapshot: Snapshot) -> None:
    atoms = snapshot.atoms
    # compact (formats.snapshot, about 10 bytes per atom instead of extxyz's 63): snapshots are the bulk of the store
    sha256, path = store.put(atoms, compact=True)
    info = {
        "step": snapshot.step,
        "time_ps": snapshot.time_ps,
        "temperature": float(atoms.info.get("temperature", 0.0)),
        "structure_types": snapshot.counts,
    }
    defects = np.asarray(snapshot.defect_indices, dtype=int)
    kinds = [STRUCTURE_TYPES.get(int(value), "other") for value in atoms.arrays["structure_type"][defects]]
    try:
        with session_scope() as session:
            structure = Structure(
                campaign_id=campaign_id,
                sha256=sha256,
                path=path,
                stage=StructureKind.SAMPLING,
                source=source,
                formula=atoms.get_chemical_formula(),
                n_atoms=len(atoms),
                pbc=[bool(p) for p in atoms.pbc],
                cell=atoms.cell.array.tolist(),
                energy=float(atoms.info["energy"]),
                n_candidates=len(snapshot.defect_indices),
                info=info,
            )
            session.add(structure)
            session.flush()
            _add_type_counts(session, campaign_id, source.split("/")[0], snapshot.counts)
            # one COPY (PostgreSQL) / executemany (SQLite) in the same transaction as the structure row
            access.insert_environments(session, structure.id, defects, kinds)
    except IntegrityError:
        # A concurrent delivery of the same item stored this frame first.
        log.info("snapshot %s of campaign %s already stored", source, campaign_id)


TYPE_COUNTS = StructureTypeCounts.KIND


def _add_type_counts(session: Session, campaign_id: int, protocol: str, counts: dict[str, int]) -> None:
    """Running per-protocol totals, in the snapshot's own transaction so a re-run cannot count twice."""
    stored = load_artifact(session, campaign_id, StructureTypeCounts, protocol)
    totals = stored.counts() if stored else {}
    for name, count in counts.items():
        totals[name] = totals.get(name, 0) + int(count)
    store_artifact(session, campaign_id, protocol, StructureTypeCounts.model_validate(totals))

