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
from schemas.reconstruction import GCMCParams
from schemas.sampling import (
    AnnealProtocol,
    CrackOpeningProtocol,
    MinimizeProtocol,
    NanoindentProtocol,
    SamplingParams,
    ShearProtocol,
    UniaxialProtocol,
)
from schemas.study import StudyParams, StudyReport
from schemas.training import SnapReference, SnapTrainingParams
from schemas.validation import ValidationReport, ValidationSuiteParams, suite_params

__all__ = [
    "AnnealProtocol",
    "Budget",
    "CampaignSpec",
    "CrackOpeningProtocol",
    "FieldError",
    "GCMCParams",
    "LabellingParams",
    "MinimizeProtocol",
    "NanoindentProtocol",
    "ReconstructionParams",
    "RefinementParams",
    "SamplingParams",
    "SelectionParams",
    "ShearProtocol",
    "SnapReference",
    "SnapTrainingParams",
    "SpecError",
    "StudyParams",
    "StudyReport",
    "UniaxialProtocol",
    "ValidationReport",
    "ValidationSuiteParams",
    "load_spec_text",
    "parse_spec",
    "suite_params",
]
