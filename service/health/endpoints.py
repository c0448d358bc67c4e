from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.orm import Session

from service.api import Scope

router = APIRouter(tags=["health"])


class HealthStatus(BaseModel):
    status: str


@router.get("/healthz", response_model=HealthStatus)
async def healthz() -> HealthStatus:
    """The process is alive."""
    return HealthStatus(status="ok")


@router.get("/readyz", response_model=HealthStatus)
async def readyz(scope: Scope) -> HealthStatus:
    """The database answers."""

    def ping(session: Session) -> HealthStatus:
        session.execute(text("SELECT 1"))
        return HealthStatus(status="ready")

    return await scope.run_anonymous(ping)
