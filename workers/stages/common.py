"""Helpers shared by the stage runners."""

from __future__ import annotations

from pathlib import Path

from app.settings import get_settings
from sampling.potentials import Potential, PotentialError, load_potential

UPLOAD_PREFIX = "uploaded:"


def uploaded_potential_dir(sha256: str) -> Path:
    return get_settings().data_dir / "potentials" / sha256


def resolve_potential(reference: str) -> Potential:
    """A bundled name, a path, or 'uploaded:<sha256>' of a file sent to the API."""
    if reference.startswith(UPLOAD_PREFIX):
        sha256 = reference.removeprefix(UPLOAD_PREFIX)
        directory = uploaded_potential_dir(sha256)
        files = sorted(directory.glob("*")) if directory.is_dir() else []
        if not files:
            raise PotentialError(
                f"no uploaded potential {sha256!r}; upload the file with POST /api/v1/potentials first"
            )
        return load_potential(files[0])
    return load_potential(reference)


class Cancelled(Exception):
    """The campaign was cancelled while this item ran."""
