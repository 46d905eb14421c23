"""Classical reference label (EAM/MEAM via LAMMPS): ``python -m labelling.eam_run WORKDIR``.

For tests and quick demos only (refused for production specs by :class:`DFTSettings`).
Potential: ``settings.engine_options["potential"]`` (bundled name or path; default
``W_zhou.eam.alloy``). Same files as the GPAW runner: job.json + atoms.json in, result.json out.
"""

from __future__ import annotations

import sys
import time

import numpy as np

from .result import LabelResult, run_job_main
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
    return run_job_main(sys.argv[1:] if argv is None else argv, "eam",
                        lambda atoms, settings, job, _workdir: calculate(atoms, settings, job["settings_hash"]))


if __name__ == "__main__":
    sys.exit(main())
