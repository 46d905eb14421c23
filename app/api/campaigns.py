"""Campaign routes: thin; the work is in app.services and workers.pipeline."""

from __future__ import annotations

import io
import tempfile
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, HTTPException, Query, Request, status
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ValidationError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from app import spec_checks
from app.api.deps import (
    PRINTABLE,
    CurrentUser,
    Limit,
    Offset,
    OwnedCampaign,
    SessionDep,
    StructureId,
    responses,
)
from app.exports import (
    MEDIA_TYPES,
    SUFFIXES,
    ExportFilters,
    export_campaign,
    export_densities,
    export_voxels,
    parse_datasets,
)
from app.policy import check_network_spec, public_text
from app.services import cancel_campaign, resume_campaign, server_limits, submit_campaign
from core import access
from core.access import load_artifact
from core.models import Campaign, User
from core.settings import get_settings
from core.storage import StructureStore
from formats import ExportName, format_for
from mlip import ExportError
from schemas import CampaignSpec, load_spec_text
from schemas.api import (
    CampaignCreated,
    CampaignListItem,
    CampaignPublic,
    CampaignSummaryPublic,
    EnsemblePublic,
    OTFIterationPublic,
    Page,
    StructurePublic,
    TrainingPublic,
    ValidationPublic,
)
from schemas.artifacts import (
    CAMPAIGN,
    ArtifactModel,
    EnsembleRecord,
    OTFIterationRecord,
    TrainingRecord,
    ValidationTable,
)
from schemas.exports import DensityExport, VoxelExport
from workers.pipeline import summarize

router = APIRouter(prefix="/api/v1", tags=["campaigns"])
A = TypeVar("A", bound=ArtifactModel)
SettingsT = TypeVar("SettingsT", bound=BaseModel)

YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml")

# A spec is a few kB. JSON parses in C (1 MiB: 11 ms); YAML in pure Python, holding the GIL (1 MiB: 3.6 s, 128 KiB:
# 0.45 s). PyYAML's C loader is not used: it recurses in C and ends the process (SIGSEGV) on deep nesting.
MAX_SPEC_BYTES = {"json": 2**20, "yaml": 128 * 2**10}
# the answers of every route that reads a campaign of the user
OWNED = responses(401, 404, 422)
_spec_body = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/CampaignSpec"}},
            "application/yaml": {"schema": {"$ref": "#/components/schemas/CampaignSpec"}},
        },
    }
}


def campaign_public(session: SessionDep, campaign: Campaign) -> CampaignPublic:
    summary = summarize(session, campaign.id)
    public = CampaignPublic.model_validate(
        {
            **CampaignListItem.model_validate(campaign).model_dump(),
            "error": campaign.error,
            "spec": campaign.spec,
            "stages": campaign.stages,
            "summary": CampaignSummaryPublic(**vars(summary)),
        },
        from_attributes=True,
    )
    # error messages of failed work (an exception's text) may name server directories: never show them
    public.error = public_text(public.error)
    for stage in public.stages:
        stage.error = public_text(stage.error)
        for item in stage.items:
            item.error = public_text(item.error)
    return public


@router.post(
    "/campaigns",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=CampaignCreated,
    openapi_extra=_spec_body,
    responses=responses(401, 413, 422, 503),
    summary="Start a campaign from a spec (JSON, or YAML with Content-Type application/yaml)",
)
async def create_campaign(request: Request, session: SessionDep, user: CurrentUser) -> CampaignCreated:
    """Nothing slow runs on the event loop: the body is read up to MAX_SPEC_BYTES (413); parsing and the cheap
    limit checks (arithmetic, no structure built) and the database run in the thread pool; the checks that
    build structures (pipeline.check_spec) in a process of app.spec_checks, under DG_SPEC_CHECK_TIMEOUT."""
    content_type = request.headers.get("content-type", "application/json").split(";")[0].strip()
    fmt: Literal["yaml", "json"] = "yaml" if content_type in YAML_TYPES else "json"
    body = await _read_spec(request, MAX_SPEC_BYTES[fmt])
    spec = await run_in_threadpool(load_spec_text, body, fmt, server_limits())
    await run_in_threadpool(check_network_spec, spec)
    try:
        await spec_checks.check(spec)
    except spec_checks.SpecCheckBusy as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, f"{exc}; retry later",
                            headers={"Retry-After": "10"}) from None
    return await run_in_threadpool(_submit, session, user, spec)


def _too_large(limit: int) -> HTTPException:
    size = f"{limit // 2**20} MiB" if limit >= 2**20 else f"{limit // 2**10} KiB"
    return HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, [
        {"field": "spec", "message": f"the spec is larger than {size} (JSON 1 MiB, YAML 128 KiB); a spec names its "
                                     "files (potential, training set) by reference, it does not contain them"}])


async def _read_spec(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise _too_large(limit)
    return bytes(body)


def _submit(session: Session, user: User, spec: CampaignSpec) -> CampaignCreated:
    campaign = submit_campaign(session, user, spec, checked=True)
    return CampaignCreated(id=campaign.id, status=campaign.status)


@router.get("/campaigns", response_model=Page[CampaignListItem], responses=responses(401, 422))
def list_campaigns(session: SessionDep, user: CurrentUser, offset: Offset = 0, limit: Limit = 100) -> Page:
    rows, count = access.list_campaigns(session, user.id, offset, limit)
    return Page(data=[CampaignListItem.model_validate(c) for c in rows], count=count)


@router.get("/campaigns/{campaign_id}", response_model=CampaignPublic, responses=OWNED)
def get_campaign(campaign: OwnedCampaign, session: SessionDep) -> CampaignPublic:
    return campaign_public(session, campaign)


@router.post("/campaigns/{campaign_id}/cancel", response_model=CampaignPublic, status_code=status.HTTP_202_ACCEPTED,
             responses=OWNED)
def cancel(campaign: OwnedCampaign, session: SessionDep) -> CampaignPublic:
    cancel_campaign(session, campaign)
    return campaign_public(session, campaign)


@router.post("/campaigns/{campaign_id}/resume", response_model=CampaignPublic, status_code=status.HTTP_202_ACCEPTED,
             responses=OWNED)
def resume(campaign: OwnedCampaign, session: SessionDep) -> CampaignPublic:
    resume_campaign(session, campaign)
    return campaign_public(session, campaign)


@router.get("/campaigns/{campaign_id}/structures", response_model=Page[StructurePublic], responses=OWNED)
def list_structures(
    campaign: OwnedCampaign,
    session: SessionDep,
    stage: Annotated[str | None, Query(max_length=32, pattern=PRINTABLE,
                                       description="stage of origin, e.g. sampling")] = None,
    offset: Offset = 0,
    limit: Limit = 100,
) -> Page:
    rows, count = access.list_structures(session, campaign.id, stage, offset, limit)
    return Page(data=[StructurePublic.model_validate(s) for s in rows], count=count)


def _campaign_artifact(session: SessionDep, campaign: Campaign, model: type[A], what: str,
                       section: str = "refinement") -> dict[str, Any]:
    """The campaign-wide artifact of ``model``'s kind of an optional stage, as its document; a 404 names the spec
    ``section`` it needs."""
    stored = load_artifact(session, campaign.id, model, CAMPAIGN)
    if stored is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"campaign {campaign.id} has no {what} yet (it needs a "
                                                       f"{section} section in its spec and the stage to finish)")
    return stored.model_dump()


@router.get("/campaigns/{campaign_id}/training", response_model=TrainingPublic, responses=OWNED,
            summary="The first MTP of the refinement: train/test RMSE")
def training(campaign: OwnedCampaign, session: SessionDep) -> TrainingPublic:
    return TrainingPublic.model_validate(_campaign_artifact(session, campaign, TrainingRecord, "trained MTP"))


@router.get("/campaigns/{campaign_id}/otf", response_model=Page[OTFIterationPublic], responses=OWNED,
            summary="On-the-fly refinement: one entry per finished iteration")
def otf_iterations(campaign: OwnedCampaign, session: SessionDep, offset: Offset = 0, limit: Limit = 100) -> Page:
    rows, count = access.list_artifacts(session, campaign.id, OTFIterationRecord.KIND, offset, limit)
    return Page(data=[OTFIterationPublic.model_validate(OTFIterationRecord.model_validate(row.data).model_dump())
                      for row in rows], count=count)


@router.get("/campaigns/{campaign_id}/ensemble", response_model=EnsemblePublic, responses=OWNED,
            summary="Ensemble force spread sigma_F over the sampling snapshots' defect atoms (histogram)")
def ensemble(campaign: OwnedCampaign, session: SessionDep) -> EnsemblePublic:
    return EnsemblePublic.model_validate(_campaign_artifact(session, campaign, EnsembleRecord, "ensemble"))


@router.get("/campaigns/{campaign_id}/validation", response_model=ValidationPublic, responses=OWNED,
            summary="The B / B+C / B+P study: each SNAP's errors per validation scenario and the ratios against B")
def validation(campaign: OwnedCampaign, session: SessionDep) -> ValidationPublic:
    return ValidationPublic.model_validate(
        _campaign_artifact(session, campaign, ValidationTable, "validation study", section="study"))


@router.get("/structures/{structure_id}/file", response_class=StreamingResponse, summary="The structure as extxyz",
            responses=OWNED)
def structure_file(structure_id: StructureId, session: SessionDep, user: CurrentUser) -> StreamingResponse:
    owned = access.get_structure_for_owner(session, structure_id, user.id)
    if owned is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"structure {structure_id} not found")
    structure, _campaign = owned
    # extxyz whatever the stored format: a compact snapshot (.dgh5) is converted range by range as it is sent,
    # never held whole; the file is opened (and its first chunk read) here, so a missing one fails before any byte
    chunks = StructureStore(get_settings().data_dir).extxyz_chunks(structure.path)
    return StreamingResponse(chunks, media_type="chemical/x-extxyz",
                             headers={"Content-Disposition": f'attachment; filename="{structure.sha256}.extxyz"'})


@router.get(
    "/campaigns/{campaign_id}/export",
    response_class=StreamingResponse,
    summary="The labelled training set as MTP .cfg, pacemaker .pckl.gzip or extxyz",
    responses=OWNED,
)
def export(
    campaign: OwnedCampaign,
    session: SessionDep,
    format: Annotated[ExportName, Query(description="mtp (.cfg), ace (.pckl.gzip), extxyz")],
    datasets: Annotated[str, Query(max_length=200, description="comma-separated subset of B, C, P, OTF")] = "B,P",
    max_atoms: Annotated[int | None, Query(ge=1, description="drop configurations with more atoms")] = None,
    max_force: Annotated[float | None, Query(gt=0, description="drop configurations with a larger force, eV/A")] = None,
) -> StreamingResponse:
    # written to a spooled file first: a bad dataset is a 422 before any byte is sent
    # no `with`: the spool outlives this function, the response streams it
    spool = tempfile.SpooledTemporaryFile(max_size=64 * 2**20)  # noqa: SIM115
    handle = spool if format_for(format).binary else io.TextIOWrapper(spool, encoding="utf-8", write_through=True)
    try:
        names = parse_datasets(datasets)
        count = export_campaign(session, campaign, format, handle, names,
                                ExportFilters(max_atoms=max_atoms, max_force=max_force))
    except ExportError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                            [{"field": "datasets", "message": str(exc)}]) from None
    if handle is not spool:
        handle.detach()
    spool.seek(0)
    name = f"campaign-{campaign.id}-{''.join(names)}{SUFFIXES[format]}"  # the parsed names: no stray characters
    return StreamingResponse(
        iter(lambda: spool.read(2**20), b""), media_type=MEDIA_TYPES[format],
        headers={"Content-Disposition": f'attachment; filename="{name}"', "X-Configurations": str(count)},
    )


def _datasets(text: str) -> tuple[str, ...]:
    """The ``datasets`` query parameter parsed; a 422 naming it when it is not a subset of B, C, P, OTF."""
    try:
        return parse_datasets(text)
    except ExportError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                            [{"field": "datasets", "message": str(exc)}]) from None


def _settings(model: type[SettingsT], fields: dict[str, Any]) -> SettingsT:
    """The export settings from the query (the schema's defaults for what is not given); a bad one is a 422 naming
    the field."""
    try:
        return model.model_validate({name: value for name, value in fields.items() if value is not None})
    except ValidationError as error:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, [
            {"field": ".".join(str(part) for part in item["loc"]), "message": str(item["msg"])}
            for item in error.errors()]) from None


def _hdf5_response(campaign: Campaign, kind: str, names: tuple[str, ...], write: Any) -> StreamingResponse:
    """``write(handle)`` into a spooled file (a bad input is a 422 before any byte is sent), then streamed."""
    spool = tempfile.SpooledTemporaryFile(max_size=64 * 2**20)  # noqa: SIM115 - the response streams it
    try:
        count = write(spool)
    except (ExportError, ValueError) as exc:  # VoxelError, DensityError: the message names the field
        spool.close()
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                            [{"field": kind, "message": public_text(str(exc))}]) from None
    spool.seek(0)
    name = f"campaign-{campaign.id}-{''.join(names)}-{kind}.h5"
    return StreamingResponse(
        iter(lambda: spool.read(2**20), b""), media_type="application/x-hdf5",
        headers={"Content-Disposition": f'attachment; filename="{name}"', "X-Configurations": str(count)},
    )


@router.get("/campaigns/{campaign_id}/export/voxel", response_class=StreamingResponse, responses=OWNED,
            summary="The labelled configurations as voxel grids with their labels, one HDF5 file (3D-CNN surrogates)")
def export_voxel(
    campaign: OwnedCampaign,
    session: SessionDep,
    datasets: Annotated[str, Query(max_length=200, description="comma-separated subset of B, P, OTF")] = "B,P",
    max_atoms: Annotated[int | None, Query(ge=1, description="drop configurations with more atoms")] = None,
    max_force: Annotated[float | None, Query(gt=0, description="drop configurations with a larger force, eV/A")] = None,
    resolution: Annotated[float | None, Query(description=VoxelExport.model_fields["resolution"].description)] = None,
    mode: Annotated[Literal["occupancy", "gaussian"] | None, Query()] = None,
    sigma: Annotated[float | None, Query(description=VoxelExport.model_fields["sigma"].description)] = None,
    region: Annotated[Literal["cell", "inner", "outer"] | None, Query()] = None,
    padding: Annotated[float | None, Query(description=VoxelExport.model_fields["padding"].description)] = None,
    max_voxels: Annotated[int | None, Query(description=VoxelExport.model_fields["max_voxels"].description)] = None,
) -> StreamingResponse:
    settings = _settings(VoxelExport, {"resolution": resolution, "mode": mode, "sigma": sigma, "region": region,
                                       "padding": padding, "max_voxels": max_voxels})
    names = _datasets(datasets)
    filters = ExportFilters(max_atoms=max_atoms, max_force=max_force)
    return _hdf5_response(campaign, "voxel", names,
                          lambda handle: export_voxels(session, campaign, handle, names, filters, settings))


@router.get("/campaigns/{campaign_id}/export/density", response_class=StreamingResponse, responses=OWNED,
            summary="The GPAW labels' stored electron densities, resampled, with their 2-point autocorrelations")
def export_density(
    campaign: OwnedCampaign,
    session: SessionDep,
    datasets: Annotated[str, Query(max_length=200, description="comma-separated subset of B, P, OTF")] = "P",
    voxel_width: Annotated[float | None, Query(description=DensityExport.model_fields["voxel_width"].description)
                           ] = None,
    size: Annotated[int | None, Query(description=DensityExport.model_fields["size"].description)] = None,
    normalise: Annotated[bool | None, Query(description=DensityExport.model_fields["normalise"].description)] = None,
    wrap: Annotated[bool | None, Query(description=DensityExport.model_fields["wrap"].description)] = None,
) -> StreamingResponse:
    settings = _settings(DensityExport, {"voxel_width": voxel_width, "size": size, "normalise": normalise,
                                         "wrap": wrap})
    names = _datasets(datasets)
    return _hdf5_response(campaign, "density", names,
                          lambda handle: export_densities(session, campaign, handle, names, settings))
