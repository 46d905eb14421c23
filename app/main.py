"""The FastAPI application: REST API v1 (OpenAPI at /docs), health and the web dashboard (/ui)."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from app import spec_checks, ui
from app.api import campaigns, health, uploads
from app.api.deps import responses
from core.settings import get_settings
from schemas import CampaignSpec, SpecError
from schemas.api import Health

log = logging.getLogger(__name__)
_startup_frozen = False


def _freeze_startup_objects() -> None:
    """Move what the imports made (SQLAlchemy, pydantic, the science packages: ~140,000 objects) out of the
    garbage collector's reach, once per process: a full collection over them took 35-43 ms here, a pause of
    every request in flight (it was the p99 of GET /health under load)."""
    global _startup_frozen
    if not _startup_frozen:
        gc.collect()
        gc.freeze()
        _startup_frozen = True


@asynccontextmanager
async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
    from workers.sweeper import Sweeper

    in_process = get_settings().in_process
    if in_process:
        from app.services import recover_interrupted
        from core.session import session_scope

        with session_scope() as session:
            resumed = recover_interrupted(session)
        if resumed:
            log.info("resumed interrupted campaigns %s in this process", resumed)
    # the spec checkers (app.spec_checks) started now, so that the first POSTs find them warm; process-wide,
    # shared by every app of this process, ended with it
    spec_checks.pool().start()
    # Requeue work whose process died (workers/sweeper.py). With a broker, also messages lost with a
    # worker. Without one this process is the executor: an item a dead server left running under a lease
    # that had not lapsed at start-up (recover_interrupted leaves it) runs here once the lease lapses.
    sweeper = Sweeper(resend_pending=not in_process).start()
    _freeze_startup_objects()
    try:
        yield
    finally:
        sweeper.stop()


def create_app() -> FastAPI:
    app = FastAPI(
        lifespan=lifespan,
        title="defect-genome",
        version="0.1.0",
        description="Training sets for MLIPs of metals with extended defects.",
    )
    app.include_router(health.router, responses={503: {"model": Health, "description": "database or broker down"}})
    app.include_router(campaigns.router)
    app.include_router(uploads.router, responses=responses(400, 401, 413, 422))
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

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way to extend the schema
    return app
