"""Run one GPAW job from a work directory: ``python -m labelling.gpaw_run WORKDIR``.

Reads ``WORKDIR/job.json`` (settings, k-points, hashes) and ``WORKDIR/atoms.json`` (ASE JSON),
writes the GPAW log to ``WORKDIR/gpaw.txt`` and the label to ``WORKDIR/result.json`` (atomically,
last). On an SCF failure it writes ``error.json`` ({"class": "scf_not_converged", ...}) and exits 3;
on any other exception it writes ``error.json`` with the traceback and exits 1.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

from .result import LabelResult, run_job_main
from .settings import DFTSettings

EXIT_SCF = 3


def gpaw_version() -> str:
    import gpaw

    return gpaw.__version__


def ensure_gpaw_setups(symbols) -> list[str]:
    """Make sure GPAW finds PAW setups for ``symbols``; return the search path.

    GPAW >= 24 finds the ``gpaw-data`` package by itself; GPAW_SETUP_PATH, when set, comes first.
    If neither is there, raise with the install hint instead of GPAW's long message.
    """
    import gpaw

    paths = [str(p) for p in gpaw.setup_paths]
    if not paths:
        try:
            import gpaw_data

            gpaw.setup_paths.append(gpaw_data.datapath())
            paths = [str(gpaw_data.datapath())]
        except ModuleNotFoundError:
            raise RuntimeError(
                "GPAW finds no PAW setups: install gpaw-data (scripts/install_gpaw.sh) or set GPAW_SETUP_PATH"
            ) from None
    missing = []
    for symbol in sorted(set(symbols)):
        if not any(list(Path(p).glob(f"{symbol}.*PBE*")) or list(Path(p).glob(f"{symbol}.PBE*")) for p in paths):
            missing.append(symbol)
    if missing:
        raise RuntimeError(f"no GPAW PAW setup for {', '.join(missing)} in {os.pathsep.join(paths)}")
    return paths


FEWEST_VALENCE = "fewest-valence"


def fewest_valence_setups(symbols, xc: str = "PBE") -> dict[str, str]:
    """Per element, the installed PAW setup with the fewest valence electrons (``W.6.PBE``: 5d4 6s2,
    against the default ``W.PBE`` with the 5s5p semicore, 14 electrons). Elements with only the
    default setup are left out (GPAW then uses its default)."""
    import re

    import gpaw

    ensure_gpaw_setups(symbols)
    chosen: dict[str, str] = {}
    for symbol in sorted(set(symbols)):
        counts = []
        for path in gpaw.setup_paths:
            for file in Path(path).glob(f"{symbol}.*.{xc}*"):
                match = re.fullmatch(rf"{symbol}\.(\d+)\.{re.escape(xc)}(\.gz)?", file.name)
                if match:
                    counts.append(int(match.group(1)))
        if counts:
            chosen[symbol] = str(min(counts))
    return chosen


def gpaw_parameters(settings: DFTSettings, kpts, txt: str | Path | None, symbols=()) -> dict[str, Any]:
    """GPAW keyword arguments for ``settings`` (plane waves; the k-point grid given).

    ``engine_options["setups"]`` is passed to GPAW as is, except ``"fewest-valence"`` (the quick
    profile), which picks per element of ``symbols`` the installed setup with the fewest electrons.
    """
    from gpaw import PW, FermiDirac, MethfesselPaxton

    if settings.xc.upper() not in ("PBE", "LDA", "PBESOL", "RPBE"):
        raise ValueError(f"gpaw backend: xc {settings.xc!r} not supported here (PBE, LDA, PBEsol, RPBE)")
    if settings.smearing == "fermi-dirac":
        occupations = FermiDirac(settings.sigma)
    elif settings.smearing == "methfessel-paxton":
        occupations = MethfesselPaxton(settings.sigma, order=1)
    else:
        occupations = {"name": "gaussian", "width": settings.sigma}
    params: dict[str, Any] = {
        "mode": PW(settings.ecut),
        "xc": settings.xc,
        "kpts": {"size": tuple(int(k) for k in kpts), "gamma": bool(settings.gamma_centered)},
        "occupations": occupations,
        # absolute total-energy change (eV) over the last 3 SCF steps, as VASP's EDIFF
        "convergence": {"energy": {"name": "energy", "tol": settings.scf_energy_tol, "relative": False}},
        "spinpol": bool(settings.spin_polarized),
        "txt": None if txt is None else str(txt),
    }
    if settings.max_scf_steps is not None:
        params["maxiter"] = int(settings.max_scf_steps)
    if settings.mixing_beta is not None or settings.mixing_history is not None:
        params["mixer"] = {
            "name": "pulay",
            "beta": settings.mixing_beta if settings.mixing_beta is not None else 0.05,
            "nmaxold": settings.mixing_history if settings.mixing_history is not None else 16,
            "weight": 50.0,
        }
    setups = settings.engine_options.get("setups")
    if setups == FEWEST_VALENCE:
        setups = fewest_valence_setups(symbols, settings.xc.upper())
    if setups:
        params["setups"] = setups
    return params


def calculate(atoms, settings: DFTSettings, kpts, settings_hash: str, txt: str | Path | None) -> LabelResult:
    """Run GPAW in this process on a copy of ``atoms`` and return the label."""
    from gpaw import GPAW

    ensure_gpaw_setups(atoms.get_chemical_symbols())
    atoms = atoms.copy()
    calc = GPAW(**gpaw_parameters(settings, kpts, txt, atoms.get_chemical_symbols()))
    atoms.calc = calc
    start = time.perf_counter()
    energy_zero = float(atoms.get_potential_energy())  # GPAW: extrapolated to sigma -> 0
    free_energy = float(calc.get_property("free_energy", atoms))
    forces = atoms.get_forces()
    stress = atoms.get_stress(voigt=True) if settings.compute_stress and all(atoms.pbc) else None
    wall = time.perf_counter() - start
    n_scf = None
    try:
        n_scf = int(calc.get_number_of_iterations())
    except Exception:  # optional information
        pass
    return LabelResult(
        energy=free_energy,
        forces=forces,
        stress=stress,
        engine="gpaw",
        engine_version=gpaw_version(),
        settings_hash=settings_hash,
        converged=True,
        wall_time=wall,
        n_scf=n_scf,
        energy_zero=energy_zero,
        kpts=tuple(kpts),
    )


def _classify(error: Exception) -> tuple[str, int]:
    from gpaw import KohnShamConvergenceError

    return ("scf_not_converged", EXIT_SCF) if isinstance(error, KohnShamConvergenceError) else ("unknown", 1)


def main(argv: list[str] | None = None) -> int:
    return run_job_main(
        sys.argv[1:] if argv is None else argv, "gpaw",
        lambda atoms, settings, job, workdir: calculate(atoms, settings, job["kpts"], job["settings_hash"],
                                                        workdir / "gpaw.txt"),
        _classify,
    )


if __name__ == "__main__":
    sys.exit(main())
