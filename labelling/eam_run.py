"""Deprecated: ``python -m labelling.eam_run WORKDIR`` is :mod:`labelling.lammps_run` (engine ``eam`` is the
alias of ``lammps`` with the campaign's own potential; default ``W_zhou.eam.alloy``)."""

from __future__ import annotations

import sys

from .lammps_run import DEFAULT_POTENTIAL, calculate
from .result import run_job_main

__all__ = ["DEFAULT_POTENTIAL", "calculate", "main"]


def main(argv: list[str] | None = None) -> int:
    return run_job_main(sys.argv[1:] if argv is None else argv, "eam",
                        lambda atoms, settings, job, _workdir: calculate(atoms, settings, job["settings_hash"]))


if __name__ == "__main__":
    sys.exit(main())
