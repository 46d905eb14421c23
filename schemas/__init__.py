"""Pydantic models shared by every layer: the campaign spec and its stage parameters."""

from schemas.campaign import (
    Budget,
    CampaignSpec,
    FieldError,
    LabellingParams,
    ReconstructionParams,
    RefinementParams,
    SelectionParams,
    SpecError,
    load_spec_text,
    parse_spec,
)

from schemas.sampling import AnnealProtocol, SamplingParams
from schemas.study import StudyParams, StudyReport
from schemas.training import SnapReference, SnapTrainingParams
from schemas.validation import ValidationReport, ValidationSuiteParams, suite_params

__all__ = [
    "AnnealProtocol",
    "Budget",
    "CampaignSpec",
    "FieldError",
    "LabellingParams",
    "ReconstructionParams",
    "RefinementParams",
    "SamplingParams",
    "SelectionParams",
    "SnapReference",
    "SnapTrainingParams",
    "SpecError",
    "StudyParams",
    "StudyReport",
    "ValidationReport",
    "ValidationSuiteParams",
    "load_spec_text",
    "parse_spec",
    "suite_params",
]
