"""Training sets out, models in (stage 6): dataset exports and checks (:mod:`.export`), the model record,
errors and set splits (:mod:`.train`), MTP training through motep (:mod:`.motep_trainer`) on MLIP's generated
basis (:mod:`.mtp_basis`), the MLIP-3 and pacemaker command lines (:mod:`.mlip3`, :mod:`.pacemaker`), linear
and quadratic SNAP by least squares on LAMMPS ``compute snap`` rows (:mod:`.snap`), the trainers behind one
contract (:mod:`.trainers`), on-the-fly active learning
(:mod:`.otf`; MD with a SNAP model inside LAMMPS, graded there: :mod:`.snap_md`), ensemble force
uncertainty (:mod:`.ensemble`), validation suites (:mod:`.validation`) and the B vs B+C vs B+P study
(:mod:`.study`).

Pure functions on ``ase.Atoms`` with single-point labels: no database, no queue.
"""

from schemas.training import SnapReference, SnapTrainingParams

from .ensemble import (
                       DEFAULT_SIGMA_EDGES,
                       ensemble_report,
                       force_spread,
                       predict_forces,
                       sigma_histogram,
                       train_ensemble,
)
from .export import EXPORT_FORMATS, ExportError, check_labelled, write_dataset, write_pacemaker
from .mlip3 import train_mlip3
from .motep_trainer import train_mtp
from .mtp_basis import MTP_LEVELS, mtp_template
from .otf import MDTarget, OTFError, OTFIteration, OTFResult, OTFRun, OTFSettings, grade_run, run_otf
from .pacemaker import train_ace
from .snap import SnapCalculator, SnapFiles, SnapModel, SnapRows, evaluate_snap, read_snap, snap_rows, train_snap
from .snap_md import GradedSnapshot, run_graded_snap, snap_basis
from .study import read_study_json, run_study, study_table, train_and_validate, write_study_json
from .train import TrainedModel, TrainingFailed, TrainingInputError, TrainingUnavailable, evaluate, rmse, split
from .validation import (
                       SCENARIOS,
                       build_suite,
                       defect_properties,
                       label_configurations,
                       load_model,
                       load_reference,
                       run_validation,
                       validate,
)

__all__ = [
                       "DEFAULT_SIGMA_EDGES",
                       "EXPORT_FORMATS",
                       "MTP_LEVELS",
                       "SCENARIOS",
                       "ExportError",
                       "GradedSnapshot",
                       "MDTarget",
                       "OTFError",
                       "OTFIteration",
                       "OTFResult",
                       "OTFRun",
                       "OTFSettings",
                       "SnapCalculator",
                       "SnapFiles",
                       "SnapModel",
                       "SnapReference",
                       "SnapRows",
                       "SnapTrainingParams",
                       "TrainedModel",
                       "TrainingFailed",
                       "TrainingInputError",
                       "TrainingUnavailable",
                       "build_suite",
                       "check_labelled",
                       "defect_properties",
                       "ensemble_report",
                       "evaluate",
                       "evaluate_snap",
                       "force_spread",
                       "grade_run",
                       "label_configurations",
                       "load_model",
                       "load_reference",
                       "mtp_template",
                       "predict_forces",
                       "read_snap",
                       "read_study_json",
                       "rmse",
                       "run_graded_snap",
                       "run_otf",
                       "run_study",
                       "run_validation",
                       "sigma_histogram",
                       "snap_basis",
                       "snap_rows",
                       "split",
                       "study_table",
                       "train_ace",
                       "train_and_validate",
                       "train_ensemble",
                       "train_mlip3",
                       "train_mtp",
                       "train_snap",
                       "validate",
                       "write_dataset",
                       "write_pacemaker",
                       "write_study_json",
]
