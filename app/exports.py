"""A campaign's labelled datasets, assembled from the database for export (REST and CLI share this).

Datasets in the paper's words: B (the basic training set: the user's labelled file, or B as a campaign
with refinement labelled it), P (PCC-GCMC periodic cells with their labels), C (clusters with vacuum:
not labelled by a campaign, so not exportable as training data), OTF (the cells the on-the-fly
refinement added, with their labels).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import BinaryIO, TextIO

import numpy as np
from ase import Atoms
from sqlalchemy.orm import Session

from core.models import Campaign
from mlip import EXPORT_FORMATS, ExportError, write_dataset
from schemas import CampaignSpec
from workers.stages.labelling import labelled_basic_set, labelled_structures

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


def _basic(session: Session, campaign_id: int, spec: CampaignSpec) -> list[Atoms]:
    if not spec.selection.training_set and spec.refinement is None:
        raise ExportError(
            "dataset B of this campaign was generated (no selection.training_set) and has no DFT labels; "
            "export P only, give a labelled training set in the spec, or add a refinement section (which "
            "labels B)"
        )
    return labelled_basic_set(session, campaign_id, spec)


def campaign_dataset(session: Session, campaign: Campaign, datasets: Sequence[str],
                     filters: ExportFilters = ExportFilters()) -> list[Atoms]:
    """The labelled configurations of ``datasets`` (in that order) that pass ``filters``."""
    spec = CampaignSpec.model_validate(campaign.spec)
    images: list[Atoms] = []
    for name in datasets:
        if name == "B":
            images += _basic(session, campaign.id, spec)
        elif name == "P":
            images += labelled_structures(session, campaign.id, "periodic")
        elif name == "C":
            raise ExportError("dataset C (clusters with vacuum) is not labelled by a campaign; export B and P")
        elif name == "OTF":
            if spec.refinement is None:
                raise ExportError("dataset OTF: this campaign has no on-the-fly refinement (no refinement "
                                  "section in its spec); export B and P")
            images += labelled_structures(session, campaign.id, "otf")
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
