"""Reference-potential label through LAMMPS: ``python -m labelling.lammps_run WORKDIR``.

The potential: ``settings.engine_options["reference"]`` (a :meth:`labelling.reference.ReferencePotential.record`,
its files at ``settings.reference_paths``; their SHA-256 are checked before the run), else the legacy
``engine_options["potential"]`` (a bundled name or path of an eam/meam file), else ``W_zhou.eam.alloy``.
Same files as the GPAW runner: job.json + atoms.json in, result.json out. Energy eV, forces eV/A (input
order and frame), stress eV/A^3 (6 Voigt, ASE sign) for periodic cells.
"""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING

from .result import LabelResult, run_job_main
from .settings import DFTSettings

if TYPE_CHECKING:
    from .reference import ReferencePotential

DEFAULT_POTENTIAL = "W_zhou.eam.alloy"


def settings_reference(settings: DFTSettings) -> ReferencePotential:
    """The :class:`labelling.reference.ReferencePotential` the settings label with."""
    from .reference import ReferencePotential, resolve_reference

    record = settings.engine_options.get("reference")
    if record is not None:
        return ReferencePotential.from_record(record, settings.reference_paths or {})
    return resolve_reference(str(settings.engine_options.get("potential", DEFAULT_POTENTIAL)))


def calculate(atoms, settings: DFTSettings, settings_hash: str) -> LabelResult:
    from md.engine import LammpsSystem, lammps_version

    reference = settings_reference(settings)
    missing = sorted(set(atoms.get_chemical_symbols()) - set(reference.elements))
    if missing:
        raise ValueError(f"reference {reference.name} describes {', '.join(reference.elements)}, not "
                         f"{', '.join(missing)}")
    start = time.perf_counter()
    with LammpsSystem(atoms, reference.potential(), species=reference.elements) as system:
        energy = system.potential_energy()
        forces = system.forces()
        stress = system.stress() if all(atoms.pbc) else None
    return LabelResult(
        energy=energy,
        forces=forces,
        stress=stress,
        engine=settings.engine,
        engine_version=f"LAMMPS {lammps_version()} {reference.name}",
        settings_hash=settings_hash,
        converged=True,
        wall_time=time.perf_counter() - start,
        energy_zero=energy,
        extra={"efs_by": reference.efs_by, "reference": reference.name,
               "reference_files": dict(reference.sha256)},
    )


def main(argv: list[str] | None = None) -> int:
    return run_job_main(sys.argv[1:] if argv is None else argv, "lammps",
                        lambda atoms, settings, job, _workdir: calculate(atoms, settings, job["settings_hash"]))


if __name__ == "__main__":
    sys.exit(main())
