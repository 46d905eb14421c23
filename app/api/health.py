"""Liveness of the database and the broker."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from core.access import ping
from core.session import get_engine
from core.settings import get_settings
from schemas.api import Health

router = APIRouter(tags=["health"])


def _check_database() -> str:
    try:
        with get_engine().connect() as connection:
            ping(connection)
        return "ok"
    except Exception as exc:  # the point is to report, not to raise
        return f"error: {type(exc).__name__}: {exc}"


def _check_broker() -> str:
    settings = get_settings()
    if settings.in_process:
        return "in-process"
    from workers.celery_app import celery_for

    try:
        with celery_for(settings.broker_url).connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, timeout=2)
        return "ok"
    except Exception as exc:
        return f"error: {type(exc).__name__}: {exc}"


@router.get("/health", response_model=Health)
def health() -> JSONResponse:
    report = Health(database=_check_database(), broker=_check_broker())
    healthy = not report.database.startswith("error") and not report.broker.startswith("error")
    return JSONResponse(report.model_dump(), status_code=200 if healthy else 503)
