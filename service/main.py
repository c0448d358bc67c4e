"""create_app(): routers, middleware, error handlers and the executor's lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from service.assignments.endpoints import router as assignments_router
from service.auth.endpoints import router as auth_router
from service.body_size import BodySizeLimit
from service.config import Settings, get_settings
from service.dashboard.endpoints import router as dashboard_router
from service.dashboard.gradebook import router as dashboard_gradebook_router
from service.dashboard.grading import router as dashboard_grading_router
from service.dashboard.integrations import router as dashboard_integrations_router
from service.dashboard.overview import router as dashboard_overview_router
from service.dashboard.policy import router as dashboard_policy_router
from service.db import make_engine, make_session_factory
from service.error_handlers import install_error_handlers
from service.grades.endpoints import router as grades_router
from service.health.endpoints import router as health_router
from service.lms.endpoints import router as webhooks_router
from service.lms_inbound.endpoints import router as lms_inbound_router
from service.lti.endpoints import router as lti_router
from service.lti.platform_keys import PlatformKeys
from service.marking.endpoints import router as marking_router
from service.openapi import operation_id, with_request_body_components
from service.path_guard import NulFreePaths
from service.policies.endpoints import router as policies_router
from service.regrades.endpoints import router as regrades_router
from service.submissions.endpoints import router as submissions_router
from service.worker.executor import Executor
from service.worker.factory import create_executor


def create_app(settings: Settings | None = None, executor: Executor | None = None) -> FastAPI:
    settings = settings or get_settings()
    engine = make_engine(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.executor.start()
        try:
            yield
        finally:
            app.state.executor.stop()
            engine.dispose()

    app = FastAPI(
        title="autograde",
        version="0.1.0",
        summary="Autograding for deep-learning courses",
        description=(
            "Students submit answers; the service grades them off the request path against the "
            "instructor's reference and stores the scores. "
            "Authenticate with `Authorization: Bearer <token>`. "
            'Every error has the shape `{"error": {"code", "message", "details"}}`.'
        ),
        lifespan=lifespan,
        generate_unique_id_function=operation_id,
    )
    app.state.settings = settings
    app.state.session_factory = make_session_factory(engine)
    # The LMS platforms' public keys, fetched for launches and cached per platform.
    app.state.platform_keys = PlatformKeys(settings)
    app.state.executor = executor or create_executor(settings, app.state.session_factory)

    app.include_router(health_router)
    app.include_router(assignments_router)
    app.include_router(submissions_router)
    app.include_router(policies_router)
    app.include_router(grades_router)
    app.include_router(auth_router)
    app.include_router(regrades_router)
    app.include_router(marking_router)
    app.include_router(webhooks_router)
    app.include_router(lms_inbound_router)
    app.include_router(lti_router)
    app.include_router(dashboard_router)
    app.include_router(dashboard_overview_router)
    app.include_router(dashboard_policy_router)
    app.include_router(dashboard_gradebook_router)
    app.include_router(dashboard_grading_router)
    app.include_router(dashboard_integrations_router)
    app.openapi = with_request_body_components(app)  # type: ignore[method-assign]
    install_error_handlers(app)
    app.add_middleware(
        BodySizeLimit,
        max_bytes=settings.max_body_bytes,
        # Room for the JSON answers and two files of the upload limit.
        max_multipart_bytes=settings.max_body_bytes + 2 * settings.max_upload_bytes,
        # An LMS event carries its notebook in base64 (a third larger) in the JSON body.
        upload_paths=frozenset({"/api/v1/lms/events"}),
    )
    app.add_middleware(NulFreePaths)
    return app
