"""Training sets out, models in (stage 6): dataset exports and checks (:mod:`.export`), MTP training
through motep and the MLIP-3 / pacemaker command lines (:mod:`.train`).

Pure functions on ``ase.Atoms`` with single-point labels: no database, no queue.
"""

from .export import EXPORT_FORMATS, ExportError, check_labelled, write_dataset, write_pacemaker
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

__all__ = [
    "EXPORT_FORMATS", "ExportError", "MTP_LEVELS", "TrainedModel", "TrainingFailed", "TrainingInputError",
    "TrainingUnavailable", "check_labelled", "evaluate", "mtp_template", "rmse", "split", "train_ace",
    "train_mlip3", "train_mtp", "write_dataset", "write_pacemaker",
]
