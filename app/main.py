"""The FastAPI application: REST API v1 (OpenAPI at /docs), health and the web dashboard (/ui)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from app import ui
from app.api import campaigns, health, uploads
from app.settings import get_settings
from schemas import CampaignSpec, SpecError

log = logging.getLogger(__name__)


@asynccontextmanager
async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
    if get_settings().in_process:
        from app.db.session import session_scope
        from app.services import recover_interrupted

        with session_scope() as session:
            resumed = recover_interrupted(session)
        if resumed:
            log.info("resumed interrupted campaigns %s in this process", resumed)
    yield


def create_app() -> FastAPI:
    app = FastAPI(
        lifespan=lifespan,
        title="defect-genome",
        version="0.1.0",
        description="Training sets for MLIPs of metals with extended defects.",
    )
    app.include_router(health.router)
    app.include_router(campaigns.router)
    app.include_router(uploads.router)
    ui.install(app)  # the web dashboard under /ui

    @app.exception_handler(SpecError)
    async def _spec_error(_request: Request, exc: SpecError) -> JSONResponse:
        # The same entries the CLI prints: one per bad field, each naming the fix.
        return JSONResponse(
            status_code=422, content={"detail": [{"field": e.field, "message": e.message} for e in exc.errors]}
        )

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            from fastapi.openapi.utils import get_openapi

            schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            spec_schema = CampaignSpec.model_json_schema(ref_template="#/components/schemas/{model}")
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            components.update(spec_schema.pop("$defs", {}))
            components["CampaignSpec"] = spec_schema
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
