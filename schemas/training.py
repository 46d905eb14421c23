"""Parameters of the SNAP trainer (``mlip.train_snap``): one definition, units in the descriptions.

A SNAP model is fixed by the bispectrum settings (``twojmax``, ``rcutfac``, ``rfac0``, ``rmin0``, per-element
``radii`` and ``weights``; the files get ``bzeroflag 0`` and ``switchflag 1``), ``quadratic`` and the optional
reference pair style; the fit by the loss weights and ``ridge``. The defaults are the paper's loss weights
(energy 1 per atom-normalised energy, forces 0.01, stress 0) and the settings of the DFT-fitted W SNAP shipped
with LAMMPS (``W_2940_2017_2``: 2J = 8, rcutfac 4.73442, rfac0 0.99363, rmin0 0).
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, ValidationInfo, field_validator

from schemas.base import Strict

__all__ = ["DEFAULT_RIDGE_GRID", "SNAP_TWOJMAX_RANGE", "SnapReference", "SnapTrainingParams"]

# 2J = 2 (5 bispectrum components) to 12 (204; quadratic: 21,114 columns per element): beyond, compute snap's
# cost (~2J^5 to 2J^7 per atom) and the quadratic Gram matrix (n^2 doubles) leave this machine's reach.
SNAP_TWOJMAX_RANGE = (2, 12)
# Relative ridge values tried by ridge="auto" (0 = plain least squares), see SnapTrainingParams.ridge.
DEFAULT_RIDGE_GRID = (0.0, 1e-14, 1e-13, 1e-12, 1e-11, 1e-10, 1e-9, 1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0)
_SYMBOL = re.compile(r"^[A-Z][a-z]?$")
_PAIR_WORD = re.compile(r"^[A-Za-z0-9_./+:=-]+$")


class SnapReference(Strict):
    """A reference pair style added to SNAP (``pair_style hybrid/overlay <reference> snap``), e.g. ZBL.

    The fit subtracts its energy, forces and virial from the labels (as ``compute snap``'s last column does),
    so the SNAP part learns the difference and the written model evaluates reference + SNAP.
    """

    pair_style: str = Field(
        ..., min_length=1, max_length=500, examples=["zbl 4.0 4.8"],
        description="the reference sub-style and its arguments as in a pair_style line (distances in A), "
        "e.g. 'zbl 4.0 4.8' (ZBL switched off between 4.0 and 4.8 A)",
    )
    pair_coeff: list[str] = Field(
        ..., min_length=1, max_length=1000, examples=[["1 1 zbl 74 74"]],
        description="its pair_coeff lines without the word pair_coeff, in hybrid/overlay form: "
        "'I J <sub-style> args', e.g. '1 1 zbl 74 74' (types are the model's species in order, from 1)",
    )

    @field_validator("pair_style")
    @classmethod
    def _style(cls, value: str) -> str:
        words = value.split()
        if not words or any(not _PAIR_WORD.match(w) for w in words):
            raise ValueError(f"needs a sub-style name and plain arguments, got {value!r}")
        if words[0] in ("snap", "hybrid", "hybrid/overlay", "hybrid/scaled", "zero"):
            raise ValueError(f"the reference cannot be pair style {words[0]!r}; "
                             "give one sub-style such as 'zbl 4.0 4.8'")
        return " ".join(words)

    @field_validator("pair_coeff")
    @classmethod
    def _coeffs(cls, lines: list[str], info: ValidationInfo) -> list[str]:
        style = info.data["pair_style"].split()[0] if "pair_style" in info.data else None
        cleaned = []
        for line in lines:
            words = line.split()
            if len(words) < 3 or any(not _PAIR_WORD.match(w) for w in words):
                raise ValueError(f"each line needs 'I J <sub-style> args' in plain words, got {line!r}")
            if style is not None and words[2] != style:
                raise ValueError(f"each line must name the sub-style {style!r} after the two types "
                                 f"(hybrid/overlay form), got {line!r}")
            cleaned.append(" ".join(words))
        return cleaned

    @property
    def style(self) -> str:
        return self.pair_style.split()[0]

    @classmethod
    def zbl(cls, species: list[str] | tuple[str, ...], inner: float = 4.0, outer: float = 4.8) -> SnapReference:
        """ZBL between every pair of ``species`` (LAMMPS types 1..n in that order), switched off from
        ``inner`` to ``outer`` A: the shipped W SNAP's overlay is ``zbl(["W"], 4.0, 4.8)``."""
        from ase.data import atomic_numbers

        numbers = [atomic_numbers[s] for s in species]
        lines = [f"{i + 1} {j + 1} zbl {numbers[i]} {numbers[j]}"
                 for i in range(len(numbers)) for j in range(i, len(numbers))]
        return cls(pair_style=f"zbl {inner!r} {outer!r}", pair_coeff=lines)


class SnapTrainingParams(Strict):
    """Settings of a SNAP fit (``mlip.train_snap``); the loss and the ridge are defined in ``mlip.snap``."""

    twojmax: int = Field(
        8, ge=SNAP_TWOJMAX_RANGE[0], le=SNAP_TWOJMAX_RANGE[1],
        description="2 j_max of the bispectrum (8: 55 components, the shipped W SNAP; 6: 30)",
    )
    rcutfac: float = Field(
        4.73442, gt=0, le=20.0,
        description="cutoff scale, A: a pair i-j interacts within rcutfac * (R_i + R_j); with the default "
        "radius 0.5 this is the cutoff itself",
    )
    rfac0: float = Field(0.99363, gt=0, le=1.0, description="angle mapping parameter of SNAP, dimensionless")
    rmin0: float = Field(0.0, ge=0, description="inner distance of the radial mapping, A")
    radii: dict[str, float] | None = Field(
        None, description="element -> radius R (dimensionless, scales rcutfac); default 0.5 for every element",
    )
    weights: dict[str, float] | None = Field(
        None, description="element -> neighbour weight w (dimensionless); default 1.0 for every element",
    )
    quadratic: bool = Field(
        False, description="quadratic SNAP (quadraticflag 1): K + K(K+1)/2 descriptor columns per element",
    )
    ridge: float | Literal["auto"] = Field(
        0.0,
        description="relative ridge lambda >= 0 (dimensionless): the penalty is lambda * sum_k G_kk beta_k^2 over "
        "the descriptor coefficients, G the weighted Gram matrix of the training rows (constant terms are not "
        "penalised); 'auto' picks lambda from ridge_grid by the loss on a held-out part of the training set",
    )
    ridge_grid: list[float] = Field(
        list(DEFAULT_RIDGE_GRID), min_length=1, max_length=100,
        description="relative ridge values tried by ridge='auto' (dimensionless, each >= 0)",
    )
    validation_fraction: float = Field(
        0.1, gt=0, le=0.5,
        description="share of the training configurations held out to choose the ridge (ridge='auto' only)",
    )
    energy_weight: float = Field(
        1.0, gt=0, description="loss weight of the energy per atom (eV/atom)^-2; must be > 0 (it fixes the constant)",
    )
    forces_weight: float = Field(
        0.01, ge=0, description="loss weight of the forces, per component, summed over atoms / N, (eV/A)^-2",
    )
    stress_weight: float = Field(
        0.0, ge=0, description="loss weight of the virial per atom (stress x volume / N, eV)^-2; the paper's W "
        "potentials use 0 (and W-all has no stress labels)",
    )
    reference: SnapReference | None = Field(
        None, description="reference pair style overlaid on SNAP (e.g. ZBL), subtracted from the labels in the fit",
    )
    seed: int = Field(0, ge=0, description="seed of the held-out split of ridge='auto'")

    @field_validator("ridge")
    @classmethod
    def _ridge(cls, value: float | str) -> float | str:
        # not >= 0 (rather than < 0) also rejects NaN
        valid = value == "auto" if isinstance(value, str) else value >= 0
        if not valid:
            raise ValueError(f"needs a number >= 0 or 'auto', got {value!r}")
        return value

    @field_validator("ridge_grid")
    @classmethod
    def _grid(cls, values: list[float]) -> list[float]:
        bad = [v for v in values if not v >= 0]
        if bad:
            raise ValueError(f"ridge values must be >= 0, got {bad[0]!r}")
        return sorted(set(float(v) for v in values))

    @field_validator("radii", "weights")
    @classmethod
    def _per_element(cls, values: dict[str, float] | None) -> dict[str, float] | None:
        if values is None:
            return None
        for symbol, value in values.items():
            if not _SYMBOL.match(symbol):
                raise ValueError(f"keys are chemical symbols, got {symbol!r}")
            if not value > 0:
                raise ValueError(f"{symbol}: needs a value > 0, got {value!r}")
        return values

    @field_validator("rmin0")
    @classmethod
    def _rmin0_below_cutoff(cls, value: float, info: ValidationInfo) -> float:
        rcutfac = info.data.get("rcutfac")
        if rcutfac is not None and value >= rcutfac:
            raise ValueError(f"rmin0 ({value} A) must be below rcutfac ({rcutfac} A)")
        return value

    def radius(self, element: str) -> float:
        return float((self.radii or {}).get(element, 0.5))

    def weight(self, element: str) -> float:
        return float((self.weights or {}).get(element, 1.0))
