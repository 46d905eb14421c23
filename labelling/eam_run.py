"""Classical reference label (EAM/MEAM via LAMMPS): ``python -m labelling.eam_run WORKDIR``.

For tests and quick demos only (refused for production specs by :class:`DFTSettings`).
Potential: ``settings.engine_options["potential"]`` (bundled name or path; default
``W_zhou.eam.alloy``). Same files as the GPAW runner: job.json + atoms.json in, result.json out.
"""

from __future__ import annotations

import json
import sys
import time
import traceback
from pathlib import Path

import numpy as np

from .result import ERROR_FILE, JOB_FILE, RESULT_FILE, LabelResult, write_json_atomic
from .settings import DFTSettings

DEFAULT_POTENTIAL = "W_zhou.eam.alloy"


def calculate(atoms, settings: DFTSettings, settings_hash: str) -> LabelResult:
    from sampling.lammps_engine import LammpsSystem, lammps_version
    from sampling.potentials import load_potential

    potential = load_potential(settings.engine_options.get("potential", DEFAULT_POTENTIAL))
    start = time.perf_counter()
    with LammpsSystem(atoms, potential) as system:
        system.command("compute dg_force all property/atom fx fy fz")
        energy = system.potential_energy()
        forces = system.per_atom_compute("dg_force", ncols=3)
        rotation = system.frame.rotation
        if not np.array_equal(rotation, np.eye(3)):
            forces = forces @ rotation.T  # back to the input frame (v_lammps = v_input @ R)
        stress = system.stress() if all(atoms.pbc) else None
    return LabelResult(
        energy=energy,
        forces=forces,
        stress=stress,
        engine="eam",
        engine_version=f"LAMMPS {lammps_version()} {potential.name}",
        settings_hash=settings_hash,
        converged=True,
        wall_time=time.perf_counter() - start,
        energy_zero=energy,
    )


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m labelling.eam_run WORKDIR", file=sys.stderr)
        return 2
    workdir = Path(argv[0]).resolve()
    from ase.io import read

    job = json.loads((workdir / JOB_FILE).read_text())
    settings = DFTSettings.from_dict(job["settings"])
    atoms = read(workdir / "atoms.json")
    try:
        result = calculate(atoms, settings, job["settings_hash"])
    except Exception as error:  # noqa: BLE001
        write_json_atomic(
            workdir / ERROR_FILE,
            {"class": "unknown", "exception": type(error).__name__, "message": str(error),
             "traceback": traceback.format_exc()},
        )
        print(f"eam_run: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    write_json_atomic(workdir / RESULT_FILE, result.to_dict())
    return 0


if __name__ == "__main__":
    sys.exit(main())
