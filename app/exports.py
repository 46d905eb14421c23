"""A campaign's labelled datasets, assembled from the database for export (REST and CLI share this).

Datasets in the paper's words: B (the basic training set: the user's labelled file), P (PCC-GCMC
periodic cells with their labels), C (clusters with vacuum: not labelled by a campaign, so not
exportable as training data), OTF (on-the-fly additions, once refinement runs).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import BinaryIO, TextIO

import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db.models import Campaign, Label, Structure
from app.db.storage import StructureStore
from app.settings import get_settings
from mlip import EXPORT_FORMATS, ExportError, write_dataset
from sampling.datasets import read_dataset
from schemas import CampaignSpec
from workers.stages.common import resolve_data_file
from workers.stages.labelling import read_label

DATASETS = ("B", "C", "P", "OTF")
MEDIA_TYPES = {"mtp": "text/plain", "ace": "application/gzip", "extxyz": "text/plain"}
SUFFIXES = {"mtp": ".cfg", "ace": ".pckl.gzip", "extxyz": ".extxyz"}


@dataclass(frozen=True)
class ExportFilters:
    """Configurations dropped from an export: more atoms than ``max_atoms``, a force above ``max_force`` eV/A."""

    max_atoms: int | None = None
    max_force: float | None = None

    def keep(self, atoms: Atoms) -> bool:
        if self.max_atoms is not None and len(atoms) > self.max_atoms:
            return False
        if self.max_force is not None and np.linalg.norm(atoms.get_forces(), axis=1).max() > self.max_force:
            return False
        return True


def parse_datasets(text: str) -> tuple[str, ...]:
    """'B,P' -> ('B', 'P'); unknown names are an ExportError naming the choices."""
    names = tuple(dict.fromkeys(part.strip().upper() for part in text.split(",") if part.strip()))
    unknown = [name for name in names if name not in DATASETS]
    if not names or unknown:
        raise ExportError(f"datasets: {text!r}; choose a comma-separated subset of {', '.join(DATASETS)}")
    return names


def _basic(spec: CampaignSpec) -> list[Atoms]:
    if not spec.selection.training_set:
        raise ExportError(
            "dataset B of this campaign was generated (no selection.training_set) and has no DFT labels; "
            "export P only, or give a labelled training set in the spec"
        )
    return read_dataset(resolve_data_file(spec.selection.training_set, "selection.training_set"))


def _periodic(session: Session, campaign_id: int) -> list[Atoms]:
    store = StructureStore(get_settings().data_dir)
    rows = session.execute(
        select(Structure.path, Structure.source, Label.path, Label.engine, Label.engine_version)
        .join(Label, Structure.label_id == Label.id)
        .where(Structure.campaign_id == campaign_id, Structure.stage == "periodic", Label.state == "succeeded")
        .order_by(Structure.id)
    ).all()
    images = []
    for structure_path, source, label_path, engine, version in rows:
        atoms = store.read(structure_path)
        stored = read_label(label_path)
        results = {"energy": stored["energy"], "free_energy": stored["energy"], "forces": np.array(stored["forces"])}
        if stored.get("stress") is not None:
            results["stress"] = np.array(stored["stress"])
        atoms.calc = SinglePointCalculator(atoms, **results)
        atoms.info.update(source=source, label_engine=f"{engine} {version}".strip())
        images.append(atoms)
    return images


def campaign_dataset(session: Session, campaign: Campaign, datasets: Sequence[str],
                     filters: ExportFilters = ExportFilters()) -> list[Atoms]:
    """The labelled configurations of ``datasets`` (in that order) that pass ``filters``."""
    spec = CampaignSpec.model_validate(campaign.spec)
    images: list[Atoms] = []
    for name in datasets:
        if name == "B":
            images += _basic(spec)
        elif name == "P":
            images += _periodic(session, campaign.id)
        elif name == "C":
            raise ExportError("dataset C (clusters with vacuum) is not labelled by a campaign; export B and P")
        elif name == "OTF":
            raise ExportError("dataset OTF: this campaign has no on-the-fly refinement yet; export B and P")
    kept = [atoms for atoms in images if filters.keep(atoms)]
    if not kept:
        raise ExportError(
            f"no labelled configuration in {'+'.join(datasets)}"
            + (" after the filters" if images else "")
            + " (has the labelling stage run? see GET /api/v1/campaigns/{id})"
        )
    return kept


def export_campaign(session: Session, campaign: Campaign, fmt: str, file: TextIO | BinaryIO,
                    datasets: Sequence[str] = ("B", "P"), filters: ExportFilters = ExportFilters(),
                    reference_energies: dict[str, float] | None = None) -> int:
    """Write the campaign's dataset as ``fmt`` into ``file``; the number of configurations written."""
    if fmt not in EXPORT_FORMATS:
        raise ExportError(f"format: {fmt!r}; use one of {', '.join(EXPORT_FORMATS)}")
    images = campaign_dataset(session, campaign, datasets, filters)
    return write_dataset(file, images, fmt, species=[campaign.element], reference_energies=reference_energies)
