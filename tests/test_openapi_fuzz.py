"""schemathesis over the whole OpenAPI document: generated requests (valid and malformed) to every
operation must never get a 5xx, an undocumented status code or content type, or a body that breaks
the documented schema. The number of examples is bounded so that this runs in about a minute."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import checks as schemathesis_checks
from schemathesis.specs.openapi import checks as openapi_checks
from sqlalchemy.orm import Session

from service.config import Settings
from service.db import make_engine, make_session_factory
from service.main import create_app
from service.migrations import upgrade_database
from service.worker.executor import NullExecutor
from tests.factories import seed_courses

EXAMPLES_PER_OPERATION = 100
CHECKS = (
    schemathesis_checks.not_a_server_error,
    openapi_checks.status_code_conformance,
    openapi_checks.content_type_conformance,
    openapi_checks.response_schema_conformance,
    openapi_checks.response_headers_conformance,
)


@pytest.fixture(scope="module")
def fuzzed_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, dict[str, str]]]:
    folder = tmp_path_factory.mktemp("fuzz")
    app_settings = Settings(database_url=f"sqlite:///{folder / 'fuzz.db'}", local_workers=0)
    engine = make_engine(app_settings)
    upgrade_database(engine)
    with make_session_factory(engine)() as session:
        session: Session
        tokens = seed_courses(session, app_settings, folder).tokens
    app = create_app(app_settings, executor=NullExecutor())
    yield app, tokens
    engine.dispose()


@pytest.fixture(scope="module")
def openapi_schema(fuzzed_api: tuple[Any, dict[str, str]]) -> Any:
    app, _tokens = fuzzed_api
    return schemathesis.openapi.from_asgi("/openapi.json", app)


schema = schemathesis.pytest.from_fixture("openapi_schema")


@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_no_operation_breaks_its_contract(
    case: Any, fuzzed_api: tuple[Any, dict[str, str]], request: Any
) -> None:
    _app, tokens = fuzzed_api
    # The TA sees and may do the most; generated paths mostly name things that do not exist (404).
    case.call_and_validate(headers={"Authorization": f"Bearer {tokens['ta']}"}, checks=CHECKS)


def test_the_fuzzed_document_covers_the_routes(openapi_schema: Any) -> None:
    operations = [result.ok() for result in openapi_schema.get_all_operations()]
    assert len(operations) >= 10
