"""DFT labelling: energies, forces and stresses of periodic configurations (stage 5).

Pure science and engine plumbing (no DB, no Celery): settings and hashes (:mod:`.settings`),
backends gpaw / vasp / espresso / lammps (reference potentials, :mod:`.reference`; eam its deprecated alias)
(:mod:`.backends`), failure classes and the retry policy (:mod:`.failures`), local and Slurm launchers
(:mod:`.submit`), ledger transitions (:mod:`.ledger`).
"""

from .backends import (
    BACKENDS,
    Backend,
    EamBackend,
    EspressoBackend,
    GpawBackend,
    LabelError,
    LammpsBackend,
    Launcher,
    ParseError,
    VaspBackend,
    existing_result,
    get_backend,
    label,
)
from .failures import FAILURE_CLASSES, RetryPolicy, classify_failure, next_settings
from .ledger import JobRecord, JobState, JsonLedger, job_key, run_stage
from .reference import (
    ReferencePotential,
    ReferencePotentialError,
    default_reference,
    reference_in_model_family,
    reference_options,
    resolve_reference,
)
from .result import LabelResult, RunOutcome
from .settings import (
    PAPER_KSPACING,
    DFTSettings,
    kpoints_for,
    production,
    profile,
    quick,
    settings_hash,
    structure_hash,
)
from .submit import LocalLauncher, SlurmLauncher, SlurmStatus

__all__ = [
    "BACKENDS",
    "FAILURE_CLASSES",
    "PAPER_KSPACING",
    "Backend",
    "DFTSettings",
    "EamBackend",
    "EspressoBackend",
    "GpawBackend",
    "JobRecord",
    "JobState",
    "JsonLedger",
    "LabelError",
    "LabelResult",
    "LammpsBackend",
    "Launcher",
    "LocalLauncher",
    "ParseError",
    "ReferencePotential",
    "ReferencePotentialError",
    "RetryPolicy",
    "RunOutcome",
    "SlurmLauncher",
    "SlurmStatus",
    "VaspBackend",
    "classify_failure",
    "default_reference",
    "existing_result",
    "get_backend",
    "job_key",
    "kpoints_for",
    "label",
    "next_settings",
    "production",
    "profile",
    "quick",
    "reference_in_model_family",
    "reference_options",
    "resolve_reference",
    "run_stage",
    "settings_hash",
    "structure_hash",
]
