from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel
from sqlalchemy import text

from service.api import DbSession

router = APIRouter(tags=["health"])


class HealthStatus(BaseModel):
    status: str


@router.get("/healthz", response_model=HealthStatus)
def healthz() -> HealthStatus:
    """The process is alive."""
    return HealthStatus(status="ok")


@router.get("/readyz", response_model=HealthStatus)
def readyz(session: DbSession) -> HealthStatus:
    """The database answers."""
    session.execute(text("SELECT 1"))
    return HealthStatus(status="ready")
