"""Run one GPAW job from a work directory: ``python -m labelling.gpaw_run WORKDIR``.

Reads ``WORKDIR/job.json`` (settings, k-points, hashes) and ``WORKDIR/atoms.json`` (ASE JSON),
writes the GPAW log to ``WORKDIR/gpaw.txt``, with ``save_density`` the electron density to
``WORKDIR/density.npz`` (:func:`save_density`), and the label to ``WORKDIR/result.json`` (atomically,
last). On an SCF failure it writes ``error.json`` ({"class": "scf_not_converged", ...}) and exits 3;
on any other exception it writes ``error.json`` with the traceback and exits 1.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

from .result import DENSITY_FILE, LabelResult, run_job_main
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


def save_density(calc, atoms, kind: str, path: str | Path) -> Path:
    """Write the converged electron density of ``calc`` to ``path`` (np.savez_compressed, atomically).

    Arrays: ``density`` (float64, electrons/A^3, on GPAW's real-space grid: point (i, j, k) at
    (i/N0, j/N1, k/N2) in fractional coordinates), ``cell`` (3x3, A), ``pbc``, ``kind``, ``grid_shape``,
    ``n_valence`` (the setups' valence electrons) and ``n_core`` (their core electrons).

    ``kind`` "pseudo": ``calc.get_pseudo_density()``, GPAW's smooth valence density; it integrates
    (sum * cell volume / number of points) to the number of valence electrons (2-atom bcc W, W.6 setups,
    250 eV: 12.000004 for 12). "all_electron": ``calc.get_all_electron_density(gridrefinement=2)`` (PAW
    reconstruction on the twice finer grid), which integrates to *all* electrons, core included (same W:
    148.000004 = 12 valence + 2 x 68 core).
    """
    import numpy as np

    if kind == "pseudo":
        density = calc.get_pseudo_density()
    elif kind == "all_electron":
        density = calc.get_all_electron_density(gridrefinement=2)
    else:
        raise ValueError(f"density_kind must be 'pseudo' or 'all_electron', not {kind!r}")
    density = np.asarray(density, dtype=np.float64)
    setups = calc.setups
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as handle:
        np.savez_compressed(
            handle,
            density=density,
            cell=np.asarray(atoms.cell[:], dtype=np.float64),
            pbc=np.asarray(atoms.pbc, dtype=bool),
            kind=np.array(kind),
            grid_shape=np.asarray(density.shape, dtype=np.int64),
            n_valence=np.array(float(setups.nvalence)),
            n_core=np.array(float(sum(setup.Nc for setup in setups))),
        )
    os.replace(tmp, path)
    return path


def calculate(atoms, settings: DFTSettings, kpts, settings_hash: str, txt: str | Path | None,
              workdir: str | Path | None = None) -> LabelResult:
    """Run GPAW in this process on a copy of ``atoms`` and return the label.

    With ``settings.save_density`` the density is written to ``workdir/density.npz`` (``workdir`` defaults
    to the directory of ``txt``) and the label records ``density_file="density.npz"`` (relative to it).
    """
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
    density_file = None
    if settings.save_density:
        if workdir is not None:
            folder = Path(workdir)
        elif txt is not None:
            folder = Path(txt).parent
        else:
            raise ValueError("save_density needs a work directory (workdir or a txt log path) for density.npz")
        save_density(calc, atoms, settings.density_kind, folder / DENSITY_FILE)
        density_file = DENSITY_FILE
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
        density_file=density_file,
    )


def _classify(error: Exception) -> tuple[str, int]:
    from gpaw import KohnShamConvergenceError

    return ("scf_not_converged", EXIT_SCF) if isinstance(error, KohnShamConvergenceError) else ("unknown", 1)


def main(argv: list[str] | None = None) -> int:
    return run_job_main(
        sys.argv[1:] if argv is None else argv, "gpaw",
        lambda atoms, settings, job, workdir: calculate(atoms, settings, job["kpts"], job["settings_hash"],
                                                        workdir / "gpaw.txt", workdir),
        _classify,
    )


if __name__ == "__main__":
    sys.exit(main())
