"""Uploads: classical potentials (checked by LAMMPS' reader) and data files (training sets, MLIPs)."""

from __future__ import annotations

import hashlib
import re
import shutil
import tempfile
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, File, HTTPException, UploadFile, status

from app.api.deps import CurrentUser
from app.policy import PICKLE_REFUSED, is_pickle_file
from schemas.api import FileUploaded, PotentialUploaded
from workers.stages.common import UPLOAD_PREFIX, check_potential_file, upload_dir

router = APIRouter(prefix="/api/v1", tags=["uploads"])
MAX_BYTES = 500 * 1024 * 1024


def _receive(file: UploadFile, scratch: Path) -> tuple[Path, str]:
    name = Path(file.filename or "").name
    # '.', '..' (all dots) name a directory, not a file; 255 bytes is the longest file name
    if not re.fullmatch(r"[A-Za-z0-9._-]{1,255}", name) or not name.strip("."):
        raise HTTPException(422, [{"field": "file", "message": "file name must be 1 to 255 letters, digits, '.', '_' "
                                                               "or '-', not only dots"}])
    payload = file.file.read(MAX_BYTES + 1)
    if len(payload) > MAX_BYTES:
        raise HTTPException(413, f"files above {MAX_BYTES // 2**20} MiB are not accepted")
    candidate = scratch / name
    candidate.write_bytes(payload)
    return candidate, hashlib.sha256(payload).hexdigest()


def _keep(candidate: Path, sha256: str) -> None:
    target = upload_dir(sha256)
    target.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(candidate, target / candidate.name)


@router.post("/potentials", response_model=PotentialUploaded, status_code=status.HTTP_201_CREATED)
def upload_potential(file: Annotated[UploadFile, File(description="eam, eam/alloy, eam/fs or meam file")],
                     user: CurrentUser) -> PotentialUploaded:
    with tempfile.TemporaryDirectory() as scratch:
        candidate, sha256 = _receive(file, Path(scratch))
        try:
            potential = check_potential_file(candidate)
        except ValueError as exc:  # LAMMPS' message names the scratch copy: keep only the file name
            message = str(exc).replace(f"{candidate.parent}/", "").replace(str(candidate.parent), "")
            raise HTTPException(422, [{"field": "file", "message": message}]) from None
        _keep(candidate, sha256)
    return PotentialUploaded(reference=f"{UPLOAD_PREFIX}{sha256}", filename=candidate.name,
                             elements=list(potential.elements), pair_style=potential.pair_style)


@router.post("/files", response_model=FileUploaded, status_code=status.HTTP_201_CREATED)
def upload_file(file: Annotated[UploadFile, File(description="training set (extxyz, .cfg, .pckl.gzip) or MLIP")],
                user: CurrentUser) -> FileUploaded:
    with tempfile.TemporaryDirectory() as scratch:
        candidate, sha256 = _receive(file, Path(scratch))
        if is_pickle_file(candidate):
            raise HTTPException(422, [{"field": "file", "message": PICKLE_REFUSED}])
        _keep(candidate, sha256)
    return FileUploaded(reference=f"{UPLOAD_PREFIX}{sha256}", filename=candidate.name)
