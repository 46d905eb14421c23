"""Training sets out, models in (stage 6): dataset exports and checks (:mod:`.export`), MTP training
through motep and the MLIP-3 / pacemaker command lines (:mod:`.train`), linear and quadratic SNAP by
least squares on LAMMPS ``compute snap`` rows (:mod:`.snap`), on-the-fly active learning
(:mod:`.otf`; MD with a SNAP model inside LAMMPS, graded there: :mod:`.snap_md`), ensemble force uncertainty (:mod:`.ensemble`), validation suites (:mod:`.validation`) and the
B vs B+C vs B+P study (:mod:`.study`).

Pure functions on ``ase.Atoms`` with single-point labels: no database, no queue.
"""

from schemas.training import SnapReference, SnapTrainingParams

from .ensemble import (DEFAULT_SIGMA_EDGES, ensemble_report, force_spread, predict_forces, sigma_histogram,
                       train_ensemble)
from .export import EXPORT_FORMATS, ExportError, check_labelled, write_dataset, write_pacemaker
from .otf import MDTarget, OTFError, OTFIteration, OTFResult, OTFRun, OTFSettings, grade_run, run_otf
from .snap_md import GradedSnapshot, run_graded_snap, snap_basis
from .snap import SnapCalculator, SnapFiles, SnapModel, SnapRows, evaluate_snap, read_snap, snap_rows, train_snap
from .train import (
    MTP_LEVELS,
    TrainedModel,
    TrainingFailed,
    TrainingInputError,
    TrainingUnavailable,
    evaluate,
    mtp_template,
    rmse,
    split,
    train_ace,
    train_mlip3,
    train_mtp,
)
from .study import read_study_json, run_study, study_table, train_and_validate, write_study_json
from .validation import (SCENARIOS, build_suite, defect_properties, label_configurations, load_model, load_reference,
                         run_validation, validate)

__all__ = [
    "EXPORT_FORMATS", "ExportError", "MTP_LEVELS", "TrainedModel", "TrainingFailed", "TrainingInputError",
    "TrainingUnavailable", "check_labelled", "evaluate", "mtp_template", "rmse", "split", "train_ace",
    "train_mlip3", "train_mtp", "write_dataset", "write_pacemaker",
    "DEFAULT_SIGMA_EDGES", "MDTarget", "OTFError", "OTFIteration", "OTFResult", "OTFRun", "OTFSettings",
    "ensemble_report", "force_spread", "grade_run", "predict_forces", "run_otf", "sigma_histogram", "train_ensemble",
    "SnapCalculator", "SnapFiles", "SnapModel", "SnapReference", "SnapRows", "SnapTrainingParams", "evaluate_snap",
    "read_snap", "snap_rows", "train_snap", "GradedSnapshot", "run_graded_snap", "snap_basis",
    "SCENARIOS", "build_suite", "defect_properties", "label_configurations", "load_model", "load_reference",
    "run_validation", "validate",
    "read_study_json", "run_study", "study_table", "train_and_validate", "write_study_json",
]
