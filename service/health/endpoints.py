from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import PlainTextResponse
from fastapi.security import HTTPAuthorizationCredentials
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from pydantic import BaseModel
from sqlalchemy.orm import Session

from service.api import Scope, bearer_scheme, error_responses
from service.errors import ServiceUnavailable
from service.health import service

router = APIRouter(tags=["health"])

# The format generate_latest writes (the library's CONTENT_TYPE_LATEST names a newer one).
PROMETHEUS_CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4


class HealthStatus(BaseModel):
    status: str


@router.get("/healthz", operation_id="health-check-liveness", response_model=HealthStatus)
async def healthz() -> HealthStatus:
    """The process is alive."""
    return HealthStatus(status="ok")


@router.get(
    "/readyz",
    operation_id="health-check-readiness",
    response_model=HealthStatus,
    responses=error_responses(503),
)
async def readyz(scope: Scope) -> HealthStatus:
    """The database answers, the executor's broker too (Celery), and, where this process runs the
    grading processes itself, a sandboxed run works."""

    def check(session: Session) -> HealthStatus:
        problems = service.readiness_problems(session, scope.settings, scope.executor)
        if problems:
            raise ServiceUnavailable("Not ready: " + "; ".join(problems) + ".", details=problems)
        return HealthStatus(status="ready")

    return await scope.run_anonymous(check)


@router.get(
    "/metrics",
    operation_id="health-get-metrics",
    response_class=PlainTextResponse,
    responses={
        200: {"content": {"text/plain": {"schema": {"type": "string"}}}},
        **error_responses(401, 404),
    },
)
async def metrics(
    scope: Scope, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)]
) -> PlainTextResponse:
    """Prometheus metrics: queue depth, jobs per status, attempts, failures, latency per grader kind.
    With AUTOGRADE_METRICS_TOKEN set, send it as the bearer token; unset, production answers 404."""
    service.check_metrics_access(scope.settings, credentials.credentials.strip() if credentials else None)
    text = await scope.run_anonymous(service.prometheus_text)
    return PlainTextResponse(text, media_type=PROMETHEUS_CONTENT_TYPE)
