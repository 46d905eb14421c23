"""Helpers shared by the stage runners."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ase import Atoms
from sqlalchemy.exc import IntegrityError

from core import access
from core.models import Status, utcnow
from core.session import session_scope
from core.settings import LaunchProfile, get_settings
from labelling.reference import UPLOAD_PREFIX
from md.potentials import Potential, PotentialError, load_potential
from sampling.material import Material, relax_material
from schemas import CampaignSpec
from schemas.artifacts import MaterialRecord
from workers.lease import held_owner

_SHA256 = re.compile(r"[0-9a-f]{64}")


def uploads_root() -> Path:
    return get_settings().data_dir / "uploads"


def upload_dir(sha256: str) -> Path:
    """Where a file sent to the API is kept, under its content hash."""
    return uploads_root() / sha256


def resolve_upload(reference: str, field: str) -> Path:
    """The stored file of 'uploaded:<sha256>'; ValueError names the field, never a server path.

    Only 64 lower-case hex digits are a reference (no '..', no path), and the file must still lie
    inside the uploads directory once links are resolved.
    """
    sha256 = reference.removeprefix(UPLOAD_PREFIX)
    if not _SHA256.fullmatch(sha256):
        raise ValueError(f"{field}: 'uploaded:' must be followed by the 64 lower-case hex digits that POST "
                         "/api/v1/files (or /potentials) returned")
    root = uploads_root().resolve()
    directory = root / sha256
    files = sorted(p for p in directory.iterdir() if p.is_file()) if directory.is_dir() else []
    if not files:
        raise ValueError(f"{field}: no uploaded file {sha256}; upload it with POST /api/v1/files first")
    path = files[0].resolve()
    if not path.is_relative_to(root):
        raise ValueError(f"{field}: uploaded:{sha256} does not resolve inside the uploads")
    return path


def resolve_data_file(reference: str, field: str) -> Path:
    """A path (command line), or 'uploaded:<sha256>' of a file sent to the API; ValueError names the field.

    Specs from the API are checked by app.policy before they are stored: their paths lie inside the
    operator's DG_ALLOWED_SERVER_DIRS.
    """
    if reference.startswith(UPLOAD_PREFIX):
        return resolve_upload(reference, field)
    path = Path(reference).expanduser()
    if not path.is_file():
        raise ValueError(f"{field}: no file at {reference}; give an existing path or upload the file")
    return path


def read_training_set(reference: str, field: str = "selection.training_set") -> list[Atoms]:
    """Dataset B of a spec. Uploaded files are never unpickled (a pickle can run code): pacemaker
    pickles are read only from paths, i.e. from the command line or the operator's allowed dirs."""
    from formats import DatasetError, read

    path = resolve_data_file(reference, field)
    try:
        return read(path, allow_pickle=not reference.startswith(UPLOAD_PREFIX))
    except DatasetError as exc:
        raise ValueError(f"{field}: {exc}") from None


def campaign_material(spec: CampaignSpec, potential: Potential, campaign_id: int | None = None,
                      threads: int = 1) -> Material:
    """The campaign's species on its lattice with the constants every stage builds with: the spec's
    lattice_constant (and c_over_a, else the ideal, for hcp) when given, else relaxed with ``potential``
    (sampling.material.relax_material; one element on bcc or fcc from the same start as before alloys, so its
    constant is unchanged). With ``campaign_id`` the first stage to ask stores it (artifact ``material``) and the
    others read it: a SNAP's relaxation of an alloy takes minutes, not the 50 ms of an EAM."""
    if campaign_id is not None:
        with session_scope() as session:
            stored = access.load_artifact(session, campaign_id, MaterialRecord, "campaign")
        if stored is not None:
            return Material(tuple(stored.species), stored.lattice, stored.a, stored.c_over_a,
                            None if stored.composition is None else tuple(stored.composition), stored.prototype)
    material = _material(spec, potential, threads)
    if campaign_id is not None:
        composition = None if material.composition is None else list(material.composition)
        try:
            with session_scope() as session:
                access.store_artifact(session, campaign_id, "campaign", MaterialRecord(
                    species=list(material.species), lattice=material.lattice, a=material.a,
                    c_over_a=material.c_over_a, composition=composition, prototype=material.prototype))
        except IntegrityError:
            pass  # another item stored the same numbers first
    return material


def _material(spec: CampaignSpec, potential: Potential, threads: int) -> Material:
    composition = spec.fractions if spec.composition is not None else None
    if spec.lattice_constant is not None:
        ratio = spec.estimated_c_over_a() if spec.lattice == "hcp" else None
        return Material(spec.species, spec.lattice, spec.lattice_constant, ratio, composition, spec.prototype)
    single_cubic = len(spec.species) == 1 and spec.lattice != "hcp"
    return relax_material(potential, spec.species, spec.lattice, composition=composition, prototype=spec.prototype,
                          a_guess=None if single_cubic else spec.estimated_lattice_constant(),
                          c_over_a_guess=spec.c_over_a, threads=threads)[0]


# potentials given as LAMMPS include lines (labelling.reference reads them): a SNAP's .snap include (its ZBL overlay
# with it) or its .snapcoeff with the .snapparam beside it
SNAP_SUFFIXES = (".snap", ".snapcoeff")


def resolve_potential(reference: str) -> Potential:
    """A bundled name, a path, or 'uploaded:<sha256>' of a file sent to the API; a SNAP (.snap, .snapcoeff) as a
    GeneralPotential."""
    if reference.endswith(SNAP_SUFFIXES):
        from labelling.reference import resolve_reference

        return resolve_reference(reference, field="potential", resolve_upload=resolve_upload).potential()
    if reference.startswith(UPLOAD_PREFIX):
        try:
            return load_potential(resolve_data_file(reference, "potential"))
        except ValueError as exc:
            raise PotentialError(str(exc)) from None
    return load_potential(reference)


def check_potential_file(path: Path) -> Potential:
    """An uploaded potential as LAMMPS reads it; PotentialError (a ValueError) says what is wrong."""
    return load_potential(path)


class Cancelled(Exception):
    """The campaign was cancelled while this item ran."""


@dataclass(frozen=True)
class PlannedItem:
    """One work item a stage's plan asks for: a unique key, its task parameters, its progress units."""

    key: str
    params: dict[str, Any]
    progress_total: int


def report_progress(item_id: int, campaign_id: int, done: int) -> None:
    """Progress and heartbeat; raises Cancelled when the user cancelled the campaign, or when another
    process took the item over after this one's lease lapsed (workers/lease.py)."""
    owner = held_owner(item_id)  # None when a stage body runs outside execute_item
    with session_scope() as session:
        item = access.find_work_item(session, item_id)
        campaign = access.find_campaign(session, campaign_id)
        if item is None or campaign is None or campaign.status == Status.cancelled or item.status == Status.cancelled:
            raise Cancelled
        if owner is not None and item.lease_owner != owner:
            raise Cancelled
        item.progress_done = done
        item.heartbeat_at = utcnow()
        stage_run = item.stage_run
        stage_run.progress_done = sum(i.progress_done for i in stage_run.items)


def named_launch_profile(name: str | None, field: str) -> LaunchProfile:
    """The operator's launch profile ``name`` (an empty one for None); an unknown name is an error naming
    ``field``."""
    if name is None:
        return LaunchProfile()
    profiles = get_settings().launch_profiles
    if name not in profiles:
        known = ", ".join(sorted(profiles)) or "none defined"
        raise ValueError(f"{field}: no launch profile {name!r} on this server (known: {known}); the operator "
                         "defines them in DG_LAUNCH_PROFILES")
    return profiles[name]


def report_note(item_id: int, note: str) -> None:
    """What the item is doing between progress steps (shown by the CLI and the dashboard); also a heartbeat.
    Never raises for a cancelled campaign: it may run in a watcher thread."""
    with session_scope() as session:
        item = access.find_work_item(session, item_id)
        if item is not None:
            item.progress_note = note[:200]
            item.heartbeat_at = utcnow()


def load_item(item_id: int) -> tuple[int, CampaignSpec, dict]:
    """(campaign id, spec, item params) of a work item, re-fetched from the database."""
    with session_scope() as session:
        item = access.find_work_item(session, item_id)
        assert item is not None
        campaign = access.get_campaign(session, item.campaign_id)
        return item.campaign_id, CampaignSpec.model_validate(campaign.spec), dict(item.params)


def campaign_dir(campaign_id: int) -> Path:
    """Per-campaign files that are not structures (active sets, gamma rows, DFT work directories)."""
    path = get_settings().data_dir / "campaigns" / str(campaign_id)
    path.mkdir(parents=True, exist_ok=True)
    return path


