"""Helpers shared by the stage runners."""

from __future__ import annotations

from pathlib import Path

from app.settings import get_settings
from sampling.potentials import Potential, PotentialError, load_potential

UPLOAD_PREFIX = "uploaded:"


def upload_dir(sha256: str) -> Path:
    """Where a file sent to the API is kept, under its content hash."""
    return get_settings().data_dir / "uploads" / sha256


def resolve_data_file(reference: str, field: str) -> Path:
    """A path, or 'uploaded:<sha256>' of a file sent to the API; ValueError names the spec field."""
    if reference.startswith(UPLOAD_PREFIX):
        sha256 = reference.removeprefix(UPLOAD_PREFIX)
        directory = upload_dir(sha256)
        files = sorted(directory.glob("*")) if directory.is_dir() else []
        if not files:
            raise ValueError(f"{field}: no uploaded file {sha256!r}; upload it with POST /api/v1/files first")
        return files[0]
    path = Path(reference).expanduser()
    if not path.is_file():
        raise ValueError(f"{field}: no file at {reference}; give an existing path or upload the file")
    return path


def resolve_potential(reference: str) -> Potential:
    """A bundled name, a path, or 'uploaded:<sha256>' of a file sent to the API."""
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
