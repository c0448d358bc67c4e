from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel

from service.api import DbSession, SettingsDep, error_responses
from service.errors import ServiceUnavailable
from service.health import service

router = APIRouter(tags=["health"])

PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class HealthStatus(BaseModel):
    status: str


@router.get("/healthz", response_model=HealthStatus)
def healthz() -> HealthStatus:
    """The process is alive."""
    return HealthStatus(status="ok")


@router.get("/readyz", response_model=HealthStatus, responses=error_responses(503))
def readyz(session: DbSession, settings: SettingsDep) -> HealthStatus:
    """The database answers, and the broker too when grading goes through Celery."""
    problems = service.readiness_problems(session, settings)
    if problems:
        raise ServiceUnavailable("Not ready: " + "; ".join(problems) + ".", details=problems)
    return HealthStatus(status="ready")


@router.get(
    "/metrics",
    response_class=PlainTextResponse,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
def metrics(session: DbSession) -> PlainTextResponse:
    """Prometheus metrics: queue depth, jobs per status, attempts, failures, latency per grader kind."""
    return PlainTextResponse(service.prometheus_text(session), media_type=PROMETHEUS_CONTENT_TYPE)
