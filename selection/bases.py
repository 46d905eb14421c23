"""Linear bases of local atomic environments: configurations -> per-atom rows (n_atoms x m).

A row is what D-optimality (:mod:`selection.maxvol`) works on. Rows are always
in the input atom order.

- :class:`SnapBasis` (default): SNAP bispectrum components from LAMMPS
  ``compute sna/atom`` plus a constant column (the linear SNAP energy model),
  any element (a ``pair_style zero`` supplies the neighbour list).
- :class:`MtpBasis`: motep's per-atom ("neighborhood") rows for a given
  ``.mtp`` potential, computed by the same code path as motep's grader.
- :class:`AceBasis`: pyace B projections for a pacemaker ``.yaml`` potential
  (optional extra ``python-ace``).
- :class:`Mlip3Basis`: the user's external MLIP-3 ``mlp`` binary; it grades and
  selects by itself (``calc-grade`` / ``select-add``), so it has no rows.
"""

from __future__ import annotations

import abc
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from copy import copy
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.data import atomic_numbers

from md.engine import LammpsSystem
from md.potentials import Potential

__all__ = [
    "AceBasis",
    "Basis",
    "BasisError",
    "Mlip3Basis",
    "Mlip3Error",
    "MtpBasis",
    "SnapBasis",
    "bispectrum_count",
    "make_basis",
    "rows_for",
]


class BasisError(ValueError):
    """A basis cannot be built or evaluated (bad settings, missing package, foreign element)."""


class Basis(abc.ABC):
    """Configurations -> per-atom rows. ``rows(atoms)`` is (len(atoms), n_features), input atom order."""

    name: str = "basis"

    @property
    @abc.abstractmethod
    def n_features(self) -> int:
        """m, the number of basis functions (row length)."""

    @abc.abstractmethod
    def rows(self, atoms: Atoms) -> np.ndarray:
        """Per-atom rows of one configuration."""

    def describe(self) -> dict:
        """Settings that define the basis (stored with an active set)."""
        return {"name": self.name, "n_features": self.n_features}


def rows_for(basis: Basis, images: Sequence[Atoms]) -> tuple[np.ndarray, np.ndarray]:
    """Stacked rows of several configurations and, per row, (image index, atom index)."""
    blocks, owners = [], []
    for k, atoms in enumerate(images):
        block = basis.rows(atoms)
        blocks.append(block)
        owners.append(np.column_stack([np.full(len(atoms), k), np.arange(len(atoms))]))
    if not blocks:
        return np.zeros((0, basis.n_features)), np.zeros((0, 2), dtype=int)
    return np.vstack(blocks), np.vstack(owners).astype(int)


def _check_symbols(atoms: Atoms, elements: Sequence[str], basis: str) -> None:
    foreign = sorted(set(atoms.get_chemical_symbols()) - set(elements))
    if foreign:
        raise BasisError(f"{basis} basis is set up for {', '.join(elements)}; atoms contain {', '.join(foreign)}")


# --------------------------------------------------------------------------- SNAP


def bispectrum_count(twojmax: int) -> int:
    """Number of bispectrum components of ``compute sna/atom`` for ``twojmax`` (LAMMPS's index rule)."""
    count = 0
    for j1 in range(twojmax + 1):
        for j2 in range(j1 + 1):
            for j in range(j1 - j2, min(twojmax, j1 + j2) + 1, 2):
                if j >= j1:
                    count += 1
    return count


@dataclass(frozen=True)
class _ZeroPair(Potential):
    """``pair_style zero``: no forces, only the neighbour list that ``compute sna/atom`` needs."""

    cutoff: float = 5.0

    def pair_commands(self, species: Sequence[str]) -> list[str]:
        return [f"pair_style zero {self.cutoff!r}", "pair_coeff * *"]


def _default_weights(elements: Sequence[str]) -> tuple[float, ...]:
    """1.0 for one element; for n, by atomic number (heaviest first) 1, 1 - 1/n, ..., 1/n."""
    n = len(elements)
    rank = {e: k for k, e in enumerate(sorted(elements, key=lambda e: -atomic_numbers[e]))}
    return tuple(1.0 - rank[e] / n for e in elements)


class SnapBasis(Basis):
    """SNAP bispectrum rows from LAMMPS ``compute sna/atom``, plus a constant column 1.0.

    Defaults reproduce ``compute sna/atom 4.7 0.99363 6 0.5 1.0`` (30
    components + constant = 31 columns for twojmax 6). The pair cutoff of an
    atom pair is ``rcutfac * (R_i + R_j)`` = 4.7 A with ``radius`` 0.5;
    ``cutoff`` overrides it (sets ``rcutfac = cutoff / (2 radius)``).
    ``elements``: one symbol or several (one LAMMPS type each).

    Several elements: the species enter through the per-element neighbour
    weights (and, optionally, ``radii``) of ``compute sna/atom``, not its
    ``chem`` flag. The weights make the neighbour density, hence every
    bispectrum component, depend on the species of the neighbours while the
    row length stays that of one element (m = components + 1); ``chem``
    multiplies m by n_elements^3 (241 columns for two elements at twojmax 6),
    more than the atoms of one species in a small training set can span.
    The species of the central atom does not enter the row (its self weight
    is 1 for every element): grade alloys with one active set per species
    (``training_active_set(..., per_species=True)``), as MLIP-3 and pacemaker
    do. Default weights (``weights`` None): 1.0 for one element; for several,
    the elements ordered by atomic number, heaviest first, get 1, 1 - 1/n,
    ..., 1/n (Ni 1.0, Al 0.5; Cu 1.0, Ni 0.5) so that no two
    species look alike. ``radii``: per-element radius R (default ``radius``
    for all); the pair cutoff is ``rcutfac * (R_i + R_j)``.
    ``potential``: use a real LAMMPS
    potential instead of ``pair_style zero`` (its cutoff must cover the SNAP
    cutoff). Works for periodic cells and clusters (non-periodic atoms get a
    vacuum box). ``threads`` > 1 uses OpenMP.
    """

    name = "snap"

    def __init__(
        self,
        elements: str | Sequence[str],
        twojmax: int = 6,
        rcutfac: float = 4.7,
        rfac0: float = 0.99363,
        rmin0: float = 0.0,
        radius: float = 0.5,
        cutoff: float | None = None,
        weights: Sequence[float] | None = None,
        constant: bool = True,
        potential: Potential | None = None,
        threads: int = 1,
        radii: Sequence[float] | None = None,
    ) -> None:
        self.elements = (elements,) if isinstance(elements, str) else tuple(elements)
        if not self.elements:
            raise BasisError("SnapBasis needs at least one element")
        unknown = [e for e in self.elements if e not in atomic_numbers]
        if unknown:
            raise BasisError(f"{', '.join(unknown)} is not a chemical symbol")
        if int(twojmax) != twojmax or twojmax < 0:
            raise BasisError(f"twojmax must be a non-negative integer, got {twojmax!r}")
        if radius <= 0:
            raise BasisError(f"radius must be positive, got {radius}")
        if cutoff is not None:
            if cutoff <= 0:
                raise BasisError(f"cutoff must be positive, got {cutoff}")
            rcutfac = cutoff / (2.0 * radius)
        if rcutfac <= 0:
            raise BasisError(f"rcutfac must be positive, got {rcutfac}")
        if not 0.0 < rfac0 <= 1.0:
            raise BasisError(f"rfac0 must be in (0, 1], got {rfac0}")
        self.twojmax = int(twojmax)
        self.rcutfac = float(rcutfac)
        self.rfac0 = float(rfac0)
        self.rmin0 = float(rmin0)
        self.radius = float(radius)
        if len(set(self.elements)) != len(self.elements):
            raise BasisError(f"elements repeat a species: {', '.join(self.elements)}")
        if weights is None:
            weights = _default_weights(self.elements)
        self.weights = tuple(float(w) for w in weights)
        if len(self.weights) != len(self.elements):
            raise BasisError(f"{len(self.weights)} weights for {len(self.elements)} elements")
        self.radii = tuple(float(r) for r in radii) if radii is not None else (self.radius,) * len(self.elements)
        if len(self.radii) != len(self.elements):
            raise BasisError(f"{len(self.radii)} radii for {len(self.elements)} elements")
        if any(r <= 0 for r in self.radii):
            raise BasisError(f"radii must be positive, got {list(self.radii)}")
        self.constant = bool(constant)
        self.threads = int(threads)
        self.cutoff = 2.0 * self.rcutfac * max(self.radii)
        self.potential = potential or _ZeroPair("zero", "zero", (), self.elements, (), self.cutoff + 0.1)
        self.n_bispectrum = bispectrum_count(self.twojmax)

    @property
    def n_features(self) -> int:
        return self.n_bispectrum + (1 if self.constant else 0)

    def compute_command(self, compute_id: str = "dg_sna") -> str:
        radii = " ".join(repr(r) for r in self.radii)
        weights = " ".join(repr(w) for w in self.weights)
        return (
            f"compute {compute_id} all sna/atom {self.rcutfac!r} {self.rfac0!r} {self.twojmax} {radii} {weights} "
            f"rmin0 {self.rmin0!r}"
        )

    def describe(self) -> dict:
        return {
            "name": self.name,
            "n_features": self.n_features,
            "elements": list(self.elements),
            "twojmax": self.twojmax,
            "rcutfac": self.rcutfac,
            "rfac0": self.rfac0,
            "rmin0": self.rmin0,
            "radius": self.radius,
            "weights": list(self.weights),
            "constant": self.constant,
            **({"radii": list(self.radii)} if len(set(self.radii)) > 1 else {}),
        }

    def rows(self, atoms: Atoms) -> np.ndarray:
        _check_symbols(atoms, self.elements, "snap")
        if len(atoms) == 0:
            return np.zeros((0, self.n_features))
        work = atoms.copy()
        work.calc = None
        if not np.any(work.pbc) and abs(np.linalg.det(np.asarray(work.cell[:]))) < 1e-9:
            work.center(vacuum=self.cutoff + 1.0)
        elif not np.all(work.pbc):
            # the non-periodic directions need room inside the (shrink-wrapped) box
            positions = work.get_scaled_positions(wrap=False)
            if np.any((positions[:, ~work.pbc] < 0) | (positions[:, ~work.pbc] > 1)):
                raise BasisError("atoms lie outside the cell along a non-periodic direction; center them first")
        with LammpsSystem(work, self.potential, threads=self.threads, species=self.elements) as system:
            system.command(self.compute_command("dg_sna"))
            values = system.per_atom_compute("dg_sna", self.n_bispectrum)
        if self.constant:
            values = np.column_stack([values, np.ones(len(values))])
        return values


# --------------------------------------------------------------------------- MTP (motep)

_MTP_LINEAR = ("species_coeffs", "moment_coeffs")


class MtpBasis(Basis):
    """motep per-atom ("neighborhood") rows for an ``.mtp`` potential.

    The rows are motep's Jacobian of the site energies with respect to the
    MTP parameters listed in ``parameters`` (motep's ``optimized``), computed
    exactly as ``motep.grade.Grader`` does in neighborhood mode (calculator
    from ``motep.calculator.make_calculator``, then
    ``engine.jac_energies(atoms).parameters.T``), so grades agree with motep's
    grader given the same ``optimized`` list and active set.

    Default ``parameters`` = species + moment coefficients: the linear MTP
    basis (the moments, one column per scalar moment, plus the species
    column). With ``"radial_coeffs"`` added (motep's default for a file read
    from disk) the rows are structurally rank deficient: a moment is a
    homogeneous polynomial of the radial coefficients, so sum_c c dV/dc is a
    combination of the moment columns (one null direction per radial
    function); MaxVol then raises RankDeficientError.

    ``species``: the chemical symbols of MTP types 0, 1, ... (``.mtp`` files
    do not name their elements).
    """

    name = "mtp"

    def __init__(
        self,
        mtp_file: str | os.PathLike,
        species: Sequence[str] | str = ("W",),
        parameters: Sequence[str] = _MTP_LINEAR,
        engine: str = "cext",
    ) -> None:
        try:
            from motep.io.mlip.mtp import read_mtp
        except ImportError as error:  # pragma: no cover - motep is a dependency of this basis
            raise BasisError("the 'mtp' basis needs motep: pip install motep==0.2.0") from error
        path = Path(mtp_file)
        if not path.is_file():
            raise BasisError(f"no .mtp file at {path}")
        try:
            data = read_mtp(path)
        except Exception as error:  # motep raises bare KeyError/ValueError on malformed files
            raise BasisError(
                f"motep cannot read {path}: {type(error).__name__}: {error}. MLIP-3 .almtp files are not "
                "readable by motep (use the 'mlip3' basis); potentials written by motep's train must use "
                "the legacy layout (motep.io.mlip.mtp.write_mtp(..., legacy=True))"
            ) from error
        self.species = (species,) if isinstance(species, str) else tuple(species)
        unknown = [s for s in self.species if s not in atomic_numbers]
        if unknown:
            raise BasisError(f"{', '.join(unknown)} is not a chemical symbol")
        if data.species_count and data.species_count != len(self.species):
            raise BasisError(
                f"{path.name} describes {data.species_count} species but species lists {len(self.species)}"
            )
        allowed = {"scaling", "species_coeffs", "moment_coeffs", "radial_coeffs"}
        bad = [p for p in parameters if p not in allowed]
        if bad or not parameters:
            raise BasisError(f"parameters must be a non-empty subset of {sorted(allowed)}, got {list(parameters)}")
        if "radial_coeffs" in parameters and data.radial_coeffs is None:
            raise BasisError(f"{path.name} has no radial_coeffs (an untrained .mtp); leave them out of parameters")
        if data.radial_coeffs is None or data.moment_coeffs is None or data.species_coeffs is None:
            raise BasisError(
                f"{path.name} has no fitted coefficients (species/moment/radial); the moments depend on the "
                "radial coefficients: give a trained potential (or initialise one with MTPData.initialize)"
            )
        data.species = [atomic_numbers[s] for s in self.species]
        data.optimized = list(parameters)
        self.mtp_data = data
        self.path = path
        self.parameters = tuple(parameters)
        self.engine = engine
        self.mode = "train" if "radial_coeffs" in self.parameters else "run"
        self._n = int(data.number_of_parameters_optimized)

    @property
    def n_features(self) -> int:
        return self._n

    def describe(self) -> dict:
        return {
            "name": self.name,
            "n_features": self.n_features,
            "mtp_file": str(self.path),
            "species": list(self.species),
            "parameters": list(self.parameters),
        }

    def rows(self, atoms: Atoms) -> np.ndarray:
        from motep.calculator import make_calculator

        _check_symbols(atoms, self.species, "mtp")
        work = copy(atoms)  # shallow, as motep's grader does; only the calculator is replaced
        work.calc = make_calculator(self.mtp_data, engine=self.engine, mode=self.mode, relax_magmoms=False)
        work.get_potential_energy()
        values = np.asarray(work.calc.engine.jac_energies(work).parameters, dtype=float).T
        return np.ascontiguousarray(values.reshape(len(atoms), -1))


# --------------------------------------------------------------------------- ACE (pyace)


class AceBasis(Basis):
    """pyace B projections (linear, per atom) of a pacemaker ``.yaml`` potential; single element.

    ``asi``: the potential's active-set inverse file (``.asi``, from
    ``pace_activeset``); :meth:`reference_active_set` turns it into an
    :class:`~selection.maxvol.ActiveSet` for grading. ``full=True`` uses the
    non-linear projections (dE/dc, ``is_full``) instead.
    """

    name = "ace"

    def __init__(self, yaml: str | os.PathLike, asi: str | os.PathLike | None = None, full: bool = False) -> None:
        try:
            from pyace.activelearning import compute_number_of_functions
            from pyace.basis import ACEBBasisSet
        except ImportError as error:
            raise BasisError(
                "the 'ace' basis needs the optional extra python-ace: pip install python-ace==0.4.0rc1 "
                "(pre-release; 0.2.8 has no Python 3.11 wheel)"
            ) from error
        path = Path(yaml)
        if not path.is_file():
            raise BasisError(f"no ACE potential file at {path}")
        try:
            self.bbasis = ACEBBasisSet(str(path))
        except Exception as error:
            raise BasisError(f"pyace cannot read {path}: {error}") from error
        self.elements = tuple(self.bbasis.elements_name)
        if len(self.elements) != 1:
            raise BasisError(
                f"{path.name} has {len(self.elements)} elements {self.elements}; the ace basis gives one row "
                "length per element and supports single-element potentials only"
            )
        counts = compute_number_of_functions(self.bbasis)
        if full:
            counts = [c * self.bbasis.map_embedding_specifications[st].ndensity for st, c in enumerate(counts)]
        self._n = int(counts[0])
        self.full = bool(full)
        self.path = path
        self.asi = Path(asi) if asi is not None else None

    @property
    def n_features(self) -> int:
        return self._n

    def describe(self) -> dict:
        return {"name": self.name, "n_features": self.n_features, "yaml": str(self.path), "full": self.full}

    def rows(self, atoms: Atoms) -> np.ndarray:
        from pyace.activelearning import compute_B_projections

        _check_symbols(atoms, self.elements, "ace")
        if len(atoms) == 0:
            return np.zeros((0, self.n_features))
        work = atoms.copy()
        work.calc = None
        projections = compute_B_projections(self.bbasis, [work], is_full=self.full)
        # one species: pyace keeps the atoms of type 0 in input order
        return np.asarray(projections[0], dtype=float).reshape(len(atoms), self.n_features)

    def reference_active_set(self):
        """The active set stored in the ``.asi`` file (A = inverse of the stored inverse)."""
        from selection.maxvol import ActiveSet

        if self.asi is None:
            raise BasisError("no .asi file given; AceBasis(yaml, asi='potential.asi')")
        with np.load(self.asi) as data:
            keys = sorted(data.files)
            if len(keys) != 1:
                raise BasisError(f"{self.asi} holds {len(keys)} species ({keys}); expected one")
            inverse = np.array(data[keys[0]], dtype=float)
        if inverse.shape != (self.n_features, self.n_features):
            raise BasisError(
                f"{self.asi} is {inverse.shape[0]} x {inverse.shape[1]} but the basis has m = {self.n_features}"
                + (" (was it made with full projections? pass full=True)" if not self.full else "")
            )
        m = self.n_features
        return ActiveSet(
            rows=np.linalg.inv(inverse),
            indices=np.full(m, -1),
            labels=np.array([f"asi:{self.asi.name}:{j}" for j in range(m)]),
            scale=np.ones(m),
        )


# --------------------------------------------------------------------------- MLIP-3 (external binary)


class Mlip3Error(RuntimeError):
    """The external MLIP-3 ``mlp`` binary failed or is not configured."""


class Mlip3Basis:
    """The user's MLIP-3 ``mlp`` binary with an ``.almtp`` potential (active set inside).

    MLIP-3 computes its own basis, grades and selection, so this has no
    ``rows``; it writes ``.cfg`` files, runs ``mlp`` by subprocess and parses
    the output (per-atom ``nbh_grades`` column -> ``atoms.arrays["gamma"]``,
    ``Feature MV_grade`` -> ``atoms.info["gamma_max"]``). The command lines
    are templates with ``{mlp} {potential} {train} {input} {output}`` so a
    different MLIP-3 version's syntax can be given.
    """

    name = "mlip3"
    CALC_GRADE = ("{mlp}", "calc-grade", "{potential}", "{train}", "{input}", "{output}")
    SELECT_ADD = ("{mlp}", "select-add", "{potential}", "{train}", "{input}", "{output}")

    def __init__(
        self,
        mlp: str | os.PathLike,
        potential: str | os.PathLike,
        species: Sequence[str] | str,
        timeout: float | None = None,
        calc_grade_command: Sequence[str] = CALC_GRADE,
        select_add_command: Sequence[str] = SELECT_ADD,
    ) -> None:
        resolved = shutil.which(str(mlp)) if not Path(mlp).is_file() else str(mlp)
        if resolved is None:
            raise Mlip3Error(
                f"MLIP-3 binary {mlp!r} not found; MLIP-3 is not in any package registry: build it from "
                "https://gitlab.com/ashapeev/mlip-3 and configure the path of its 'mlp' executable"
            )
        self.mlp = resolved
        self.potential = Path(potential)
        if not self.potential.is_file():
            raise Mlip3Error(f"no MLIP-3 potential file at {self.potential}")
        self.species = (species,) if isinstance(species, str) else tuple(species)
        self.timeout = timeout
        self.calc_grade_command = tuple(calc_grade_command)
        self.select_add_command = tuple(select_add_command)

    def _run(self, template: Sequence[str], train: Sequence[Atoms], images: Sequence[Atoms]) -> list[Atoms]:
        from formats.mtp import read_cfg, write_cfg

        with tempfile.TemporaryDirectory(prefix="dg-mlip3-") as tmp:
            paths = {k: os.path.join(tmp, f"{k}.cfg") for k in ("train", "input", "output")}
            with open(paths["train"], "w") as handle:
                write_cfg(handle, train, self.species)
            with open(paths["input"], "w") as handle:
                write_cfg(handle, images, self.species)
            command = [
                part.format(mlp=self.mlp, potential=str(self.potential.resolve()), **paths) for part in template
            ]
            try:
                done = subprocess.run(command, cwd=tmp, capture_output=True, text=True, timeout=self.timeout)
            except subprocess.TimeoutExpired as error:
                raise Mlip3Error(f"{' '.join(command)} timed out after {self.timeout} s") from error
            if done.returncode != 0:
                tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
                raise Mlip3Error(f"{' '.join(command)} exited with {done.returncode}: " + " | ".join(tail))
            if not os.path.exists(paths["output"]):
                return []
            with open(paths["output"]) as handle:
                return read_cfg(handle, self.species)

    def calc_grade(self, train: Sequence[Atoms], images: Sequence[Atoms]) -> list[Atoms]:
        """``mlp calc-grade``: the images with ``arrays["gamma"]`` and ``info["gamma_max"]``."""
        return self._run(self.calc_grade_command, train, images)

    def select_add(self, train: Sequence[Atoms], candidates: Sequence[Atoms]) -> list[Atoms]:
        """``mlp select-add``: the candidate configurations MLIP-3 selects to add to the training set."""
        return self._run(self.select_add_command, train, candidates)


# --------------------------------------------------------------------------- factory


def make_basis(name: str = "snap", **settings) -> Basis:
    """A basis by name: ``snap`` (default; elements=...), ``mtp`` (mtp_file=...), ``ace`` (yaml=...)."""
    classes = {"snap": SnapBasis, "mtp": MtpBasis, "ace": AceBasis}
    if name == "mlip3":
        raise BasisError("the mlip3 basis has no rows; use Mlip3Basis(mlp, potential, species) to grade/select")
    if name not in classes:
        raise BasisError(f"unknown basis {name!r}; choose one of snap, mtp, ace, mlip3")
    return classes[name](**settings)
