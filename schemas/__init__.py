"""Pydantic models shared by every layer: the campaign spec and its stage parameters."""

from schemas.campaign import (
    AnnealProtocol,
    Budget,
    CampaignSpec,
    FieldError,
    LabellingParams,
    ReconstructionParams,
    SamplingParams,
    SelectionParams,
    SpecError,
    load_spec_text,
    parse_spec,
)

__all__ = [
    "AnnealProtocol",
    "Budget",
    "CampaignSpec",
    "FieldError",
    "LabellingParams",
    "ReconstructionParams",
    "SamplingParams",
    "SelectionParams",
    "SpecError",
    "load_spec_text",
    "parse_spec",
]
