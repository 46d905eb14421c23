"""What a spec sent over the network may name: checked before anything is built or stored.

The CLI runs specs with full control (paths, commands); the REST API runs them for any token holder,
so files are named only by reference (bundled names, ``uploaded:<sha256>``, or paths inside the
operator's ``DG_ALLOWED_SERVER_DIRS``), uploaded files are never unpickled, and DFT commands,
module lines and batch-script lines come only from the operator's launch profiles. Messages name
the field and what is allowed, never a server path.
"""

from __future__ import annotations

import sys
import zlib
from collections.abc import Callable
from pathlib import Path

from app.services import check_supported
from core.settings import get_settings
from md.potentials import PotentialError, bundled_potentials_dir
from sampling.datasets import DatasetError, detect_format
from schemas import CampaignSpec, FieldError, SpecError
from schemas.launch import SlurmParams
from workers.stages.common import UPLOAD_PREFIX, resolve_upload

_NOT_FROM_THE_API = (
    "is not accepted from the API: commands, module lines and batch-script lines come from the operator's "
    "launch profiles; name one with labelling.launch_profile (sampling.lammps.launch_profile for sampling)"
)
PICKLE_REFUSED = (
    "pacemaker pickles are not accepted over the network (unpickling a file runs the code it names); convert "
    "it with `defect-genome convert FILE.pckl.gzip FILE.extxyz` and send the extxyz (or an MTP .cfg), or run "
    "the spec from the command line"
)


def looks_like_pickle(head: bytes) -> bool:
    """A Python pickle (protocol 2 and up starts with PROTO, 0x80), raw or gzip-compressed."""
    if head[:2] == b"\x1f\x8b":
        try:
            head = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(head, 16)
        except zlib.error:
            return False
    return head[:1] == b"\x80"


def is_pickle_file(path: Path) -> bool:
    try:
        if detect_format(path.name) == "pacemaker":
            return True
    except DatasetError:
        pass
    with path.open("rb") as handle:
        return looks_like_pickle(handle.read(4096))


def _allowed_path(reference: str) -> Path | None:
    """The resolved path when it lies inside one of the operator's allowed server directories."""
    path = Path(reference)
    if not path.is_absolute():
        return None
    resolved = path.resolve()
    for directory in get_settings().allowed_server_dirs:
        if resolved.is_relative_to(directory.resolve()):
            return resolved
    return None


def _file_reference(reference: str, field: str, what: str, bundled: bool = False) -> tuple[Path | None, str | None]:
    """(the file, None) or (None, the error message) for a file named in a spec from the network."""
    if reference.startswith(UPLOAD_PREFIX):
        try:
            return resolve_upload(reference, field), None
        except ValueError as exc:
            return None, str(exc).removeprefix(f"{field}: ")
    if bundled and "/" not in reference and not reference.startswith("."):
        try:
            candidate = bundled_potentials_dir() / reference
        except PotentialError:
            candidate = None
        if candidate is not None and candidate.is_file():
            return candidate, None
    path = _allowed_path(reference)
    if path is not None and path.is_file():
        return path, None
    allowed = "a bundled potential name (e.g. W_zhou.eam.alloy), " if bundled else ""
    return None, (f"{what} must be {allowed}'uploaded:<sha256>' of a file sent to POST /api/v1/files (or "
                  "/potentials), or a path inside a directory the operator allows (DG_ALLOWED_SERVER_DIRS); "
                  "this reference is none of these")


def _inside_known_places(path: Path) -> bool:
    """A file LAMMPS may read for a spec from the network: bundled, uploaded, or in an allowed directory."""
    from workers.stages.common import uploads_root

    resolved = path.resolve()
    places = [uploads_root().resolve(), *(d.resolve() for d in get_settings().allowed_server_dirs)]
    try:
        places.append(bundled_potentials_dir().resolve())
    except PotentialError:
        pass
    return any(resolved.is_relative_to(place) for place in places)


def _check_reference(spec: CampaignSpec, reference: Callable[..., Path | None], errors: list[FieldError]) -> None:
    """labelling.reference: its file(s) by reference only (bundled, uploaded, allowed dirs), and every file it
    pulls in (a .snap include's coefficient files, a MEAM library) from those places too. Its pair_style and
    pair_coeff words were checked by the schema (allow-listed styles, plain tokens: nothing LAMMPS would expand
    or run)."""
    from labelling.reference import ReferencePotentialError, resolve_reference

    value = spec.labelling.reference
    if value is None:
        return
    before = len(errors)
    if isinstance(value, str):
        reference(value, "labelling.reference", "the reference potential", bundled=True)
    else:
        for index, name in enumerate(value.files):
            reference(name, f"labelling.reference.files.{index}", "a reference potential file", bundled=True)
    if len(errors) > before:
        return
    try:
        resolved = resolve_reference(value, list(spec.species), resolve_upload=resolve_upload)
    except ReferencePotentialError as exc:
        errors.append(FieldError(exc.field, exc.reason))
        return
    outside = [name for name, path in resolved.paths if not _inside_known_places(Path(path))]
    if outside:
        errors.append(FieldError("labelling.reference", f"the reference reads {', '.join(outside)} from outside the "
                                 "bundled potentials, the uploads and DG_ALLOWED_SERVER_DIRS"))


def check_network_spec(spec: CampaignSpec) -> None:
    """Raise SpecError (one entry per field) for anything a spec from the network may not use; first, a spec the
    stages cannot run yet (app.services.check_supported: alloys, hcp)."""
    check_supported(spec)
    errors: list[FieldError] = []

    def reference(value: str | None, field: str, what: str, bundled: bool = False) -> Path | None:
        if value is None:
            return None
        path, message = _file_reference(value, field, what, bundled)
        if message:
            errors.append(FieldError(field, message))
        return path

    reference(spec.potential, "potential", "the potential", bundled=True)
    training = reference(spec.selection.training_set, "selection.training_set", "the training set")
    if training is not None and is_pickle_file(training):
        errors.append(FieldError("selection.training_set", PICKLE_REFUSED))
    reference(spec.selection.basis_potential, "selection.basis_potential", "the basis potential")

    labelling = spec.labelling
    _check_reference(spec, reference, errors)
    if labelling.command is not None:
        errors.append(FieldError("labelling.command", f"a command {_NOT_FROM_THE_API}"))
    if labelling.pseudo_dir is not None:
        path = _allowed_path(labelling.pseudo_dir)
        if path is None or not path.is_dir():
            errors.append(FieldError(
                "labelling.pseudo_dir",
                "a directory on the server is accepted from the API only inside DG_ALLOWED_SERVER_DIRS; name a "
                "launch profile that sets pseudo_dir (labelling.launch_profile) instead",
            ))
    _check_launch(errors, "labelling", labelling.launch_profile, labelling.slurm)
    lammps = spec.sampling.lammps
    if lammps is not None:
        if lammps.command is not None:
            errors.append(FieldError("sampling.lammps.command", f"a command {_NOT_FROM_THE_API}"))
        _check_launch(errors, "sampling.lammps", lammps.launch_profile, lammps.slurm)
    if errors:
        raise SpecError(errors)


def _check_launch(errors: list[FieldError], section: str, profile: str | None, slurm: SlurmParams) -> None:
    """Module and batch-script lines come only from the operator's launch profiles, which must exist."""
    if slurm.modules:
        errors.append(FieldError(f"{section}.slurm.modules", f"module lines {_NOT_FROM_THE_API}"))
    if slurm.extra_lines:
        errors.append(FieldError(f"{section}.slurm.extra_lines", f"batch-script lines {_NOT_FROM_THE_API}"))
    if profile is not None and profile not in get_settings().launch_profiles:
        known = ", ".join(sorted(get_settings().launch_profiles)) or "none defined"
        errors.append(FieldError(f"{section}.launch_profile",
                                 f"no launch profile {profile!r} on this server (known: {known})"))


def public_text(message: str | None) -> str | None:
    """A message for a user of the API: server directories replaced by names of what they are."""
    if not message:
        return message
    settings = get_settings()
    replacements = {
        str(settings.data_dir.resolve()): "<data dir>",
        str(settings.data_dir): "<data dir>",
        str(Path(sys.prefix).resolve()): "<install>",
        sys.prefix: "<install>",
        str(Path(__file__).resolve().parents[1]): "<app>",
        str(Path.home()): "<home>",
    }
    for path, name in sorted(replacements.items(), key=lambda item: -len(item[0])):
        if len(path) > 1:
            message = message.replace(path, name)
    return message
