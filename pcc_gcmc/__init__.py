"""PCC-GCMC: periodic reconstruction of defect clusters by grand canonical Monte Carlo (issue 5).

``reconstruct(cluster, core_mask, potential, params)`` keeps the cluster's core fixed, fills small
periodic boxes around it with ``fix gcmc`` (EAM/MEAM, full_energy), relaxes the inserted atoms and the
box, and keeps the lowest energy per atom among the candidates with at most ``max_atoms`` atoms.
``plan`` / ``run_candidate`` / ``assemble`` split the same work for a task queue.
"""

from .params import AUTHORS_OFFSETS, WIDE_OFFSETS, GCMCParams
from .reconstruction import (
    CandidateResult,
    NoAdmissibleCandidateError,
    Reconstruction,
    ReconstructionError,
    assemble,
    candidate_boxes,
    candidate_seed,
    default_core_mask,
    min_distance,
    plan,
    prepare_payload,
    reconstruct,
    run_candidate,
    select_best,
    time_breakdown,
)

__all__ = [
    "AUTHORS_OFFSETS",
    "WIDE_OFFSETS",
    "CandidateResult",
    "GCMCParams",
    "NoAdmissibleCandidateError",
    "Reconstruction",
    "ReconstructionError",
    "assemble",
    "candidate_boxes",
    "candidate_seed",
    "default_core_mask",
    "min_distance",
    "plan",
    "prepare_payload",
    "reconstruct",
    "run_candidate",
    "select_best",
    "time_breakdown",
]
