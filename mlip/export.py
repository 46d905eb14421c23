"""Labelled configurations -> the files users train on: MTP ``.cfg``, pacemaker ``.pckl.gzip``, extxyz.

The formats themselves (readers, writers, suffixes, media types) are the registry :data:`formats.FORMATS`;
this module is the export's contract on top of it: :func:`write_dataset` refuses what a fitting code would
choke on (:func:`check_labelled`, naming the configuration) before the registry's writer runs.
The labeller is ``atoms.info["label_engine"]``: ``<engine> <version>`` for DFT (``gpaw 26.7.0``),
``lammps:<potential name>`` for a reference potential (``lammps:WL.meam``); MTP writes it as
``Feature EFS_by``, extxyz as the info key ``label_engine``, pacemaker in the ``label_engine`` column.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import IO, Any

from ase import Atoms

from formats import EXPORT_NAMES, FORMATS, ExportError, check_labelled, corrected_energy, format_for, write

__all__ = ["EXPORT_FORMATS", "FILE_SUFFIX", "ExportError", "check_labelled", "corrected_energy", "write_dataset",
           "write_pacemaker"]

#: the export names (mtp, ace, extxyz): :data:`formats.EXPORT_NAMES`
EXPORT_FORMATS = EXPORT_NAMES
FILE_SUFFIX = {fmt.export_name: fmt.suffix for fmt in FORMATS.values()}


def write_pacemaker(file: IO[bytes], images: Sequence[Atoms],
                    reference_energies: Mapping[str, float] | None = None) -> None:
    """The pacemaker dataset (gzip-compressed pickle of a DataFrame, protocol 4) into a binary file."""
    write(file, images, "pacemaker", reference_energies=reference_energies)


def write_dataset(file: IO[str] | IO[bytes] | IO[Any], images: Iterable[Atoms], format: str, *,
                  species: Sequence[str] | None = None,
                  reference_energies: Mapping[str, float] | None = None) -> int:
    """Write labelled ``images`` as ``format`` (mtp, ace, extxyz, or a registry name); returns the number written.

    ``species``: element of each MTP type (default: the elements present, sorted). A binary file
    object is needed for ``ace``, a text one (or a binary one, wrapped) for the others.
    """
    images = list(images)
    fmt = format_for(format, "format", what="export format")
    check_labelled(images)
    return write(file, images, fmt, species=species, reference_energies=reference_energies)
