"""A campaign's labelled datasets, assembled from the database for export (REST and CLI share this).

Datasets in the paper's words: B (the basic training set: the user's labelled file, or B as a campaign
with refinement labelled it), P (PCC-GCMC periodic cells with their labels), C (clusters with vacuum:
not labelled by a campaign, so not exportable as training data), OTF (the cells the on-the-fly
refinement added, with their labels).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import IO

import numpy as np
from ase import Atoms
from sqlalchemy.orm import Session

from core.models import Campaign
from formats import FORMATS, format_for
from formats.density import DensityError, entry_from_label, write_density_dataset
from formats.voxel import write_voxel_dataset
from labelling.result import DENSITY_FILE
from mlip import ExportError, write_dataset
from schemas import CampaignSpec
from schemas.exports import DensityExport, VoxelExport
from schemas.names import Dataset, StructureKind
from workers.stages.labelling import label_directories, labelled_basic_set, labelled_structures

DATASETS = tuple(Dataset)
# by export name (mtp, ace, extxyz: formats.EXPORT_NAMES), from the registry of the formats
MEDIA_TYPES = {fmt.export_name: fmt.media_type for fmt in FORMATS.values()}
SUFFIXES = {fmt.export_name: fmt.suffix for fmt in FORMATS.values()}


@dataclass(frozen=True)
class ExportFilters:
    """Configurations dropped from an export: more atoms than ``max_atoms``, a force above ``max_force`` eV/A."""

    max_atoms: int | None = None
    max_force: float | None = None

    def keep(self, atoms: Atoms) -> bool:
        if self.max_atoms is not None and len(atoms) > self.max_atoms:
            return False
        return self.max_force is None or not np.linalg.norm(atoms.get_forces(), axis=1).max() > self.max_force


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
        start = len(images)
        if name == Dataset.B:
            images += _basic(session, campaign.id, spec)
        elif name == Dataset.P:
            images += labelled_structures(session, campaign.id, StructureKind.PERIODIC)
        elif name == Dataset.C:
            raise ExportError("dataset C (clusters with vacuum) is not labelled by a campaign; export B and P")
        elif name == Dataset.OTF:
            if spec.refinement is None:
                raise ExportError("dataset OTF: this campaign has no on-the-fly refinement (no refinement "
                                  "section in its spec); export B and P")
            images += labelled_structures(session, campaign.id, StructureKind.OTF)
        for atoms in images[start:]:
            atoms.info["dataset"] = str(name)  # named in the voxel export
    kept = [atoms for atoms in images if filters.keep(atoms)]
    if not kept:
        raise ExportError(
            f"no labelled configuration in {'+'.join(datasets)}"
            + (" after the filters" if images else "")
            + " (has the labelling stage run? see GET /api/v1/campaigns/{id})"
        )
    return kept


def export_campaign(session: Session, campaign: Campaign, fmt: str, file: IO[str] | IO[bytes],
                    datasets: Sequence[str] = ("B", "P"), filters: ExportFilters = ExportFilters(),
                    reference_energies: dict[str, float] | None = None) -> int:
    """Write the campaign's dataset as ``fmt`` (a name of :data:`formats.FORMATS`: an export name or the
    format's own) into ``file``; the number of configurations written."""
    format_for(fmt, "format", what="export format")  # an unknown format fails before the database is read
    images = campaign_dataset(session, campaign, datasets, filters)
    species = list(CampaignSpec.model_validate(campaign.spec).species)  # the .cfg type map: the spec's order
    return write_dataset(file, images, fmt, species=species, reference_energies=reference_energies)


def export_voxels(session: Session, campaign: Campaign, file: IO[bytes], datasets: Sequence[str] = ("B", "P"),
                  filters: ExportFilters = ExportFilters(), settings: VoxelExport | None = None) -> int:
    """The campaign's labelled configurations as voxel grids with their labels, one HDF5 file (formats.voxel);
    the number of configurations written. A bad setting is a VoxelError (a ValueError) naming its field."""
    images = campaign_dataset(session, campaign, datasets, filters)
    species = list(CampaignSpec.model_validate(campaign.spec).species)
    return write_voxel_dataset(file, images, species=species, **(settings or VoxelExport()).model_dump())


def export_densities(session: Session, campaign: Campaign, file: IO[bytes], datasets: Sequence[str] = ("P",),
                     settings: DensityExport | None = None) -> int:
    """The electron densities stored with the campaign's GPAW labels (labelling.save_density), resampled, with their
    2-point autocorrelations, one HDF5 file (formats.density); the number of configurations written. A label without
    a stored density is a DensityError naming the configuration."""
    entries = []
    for name in datasets:
        if name == Dataset.C:
            raise ExportError("dataset C (clusters with vacuum) is not labelled by a campaign; export B, P and OTF")
        for source, directory in label_directories(session, campaign.id, Dataset(name).structures):
            if not (directory / DENSITY_FILE).is_file():
                raise DensityError(f"configuration {source} (dataset {name}): its label has no stored density; "
                                   "label with labelling.save_density: true (engine gpaw)")
            entries.append(entry_from_label(directory, name=source, source=source))
    if not entries:
        raise ExportError(f"no labelled configuration in {'+'.join(datasets)} (has the labelling stage run?)")
    return write_density_dataset(file, entries, **(settings or DensityExport()).model_dump())
