"""Upload of a user's classical potential file (eam, eam/alloy, eam/fs, meam)."""

from __future__ import annotations

import hashlib
import re
import shutil
import tempfile
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, File, HTTPException, UploadFile, status

from app.api.deps import CurrentUser
from sampling.potentials import PotentialError, load_potential
from schemas.api import PotentialUploaded
from workers.stages.common import UPLOAD_PREFIX, uploaded_potential_dir

router = APIRouter(prefix="/api/v1", tags=["potentials"])
MAX_BYTES = 200 * 1024 * 1024


@router.post("/potentials", response_model=PotentialUploaded, status_code=status.HTTP_201_CREATED)
def upload_potential(file: Annotated[UploadFile, File(description="a LAMMPS potential file")], user: CurrentUser):
    name = Path(file.filename or "").name
    if not re.fullmatch(r"[A-Za-z0-9._-]+", name):
        raise HTTPException(422, [{"field": "file", "message": "file name must be letters, digits, '.', '_' or '-'"}])
    payload = file.file.read(MAX_BYTES + 1)
    if len(payload) > MAX_BYTES:
        raise HTTPException(413, f"potential files above {MAX_BYTES // 2**20} MiB are not accepted")
    sha256 = hashlib.sha256(payload).hexdigest()
    with tempfile.TemporaryDirectory() as scratch:
        candidate = Path(scratch) / name
        candidate.write_bytes(payload)
        try:
            potential = load_potential(candidate)  # rejects what LAMMPS could not read
        except PotentialError as exc:
            raise HTTPException(422, [{"field": "file", "message": str(exc)}]) from None
        target = uploaded_potential_dir(sha256)
        target.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(candidate, target / name)
    return PotentialUploaded(
        reference=f"{UPLOAD_PREFIX}{sha256}",
        filename=name,
        elements=list(potential.elements),
        pair_style=potential.pair_style,
    )
