"""Training sets out, models in (stage 6): dataset exports and checks (:mod:`.export`).

Pure functions on ``ase.Atoms`` with single-point labels: no database, no queue.
"""

from .export import EXPORT_FORMATS, ExportError, check_labelled, write_dataset, write_pacemaker

__all__ = ["EXPORT_FORMATS", "ExportError", "check_labelled", "write_dataset", "write_pacemaker"]
