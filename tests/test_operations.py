"""Operations: rate limits on submissions, Prometheus metrics, JSON logs, what failed SQL reveals."""

from __future__ import annotations

import json
import logging
import re
import time
import traceback
import uuid
from collections.abc import Callable, Iterator

import httpx2
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from service.config import Environment, LogFormat, Settings
from service.logs import JsonFormatter
from service.models import GradingJob, QuestionResult, Submission
from tests.conftest import Api

ANSWERS = {"q1_2": {"choices": [3]}}
METRIC_LINE = re.compile(r'^[a-z_]+(\{([a-z_]+="[^"]*",?)*\})? -?[0-9.e+]+$')


@pytest.fixture
def limited(api: Api) -> Iterator[Api]:
    original: Settings = api.client.app.state.settings  # type: ignore[attr-defined]
    api.client.app.state.settings = original.model_copy(  # type: ignore[attr-defined]
        update={"rate_limit_submissions": 3, "rate_limit_window_seconds": 60.0}
    )
    yield api
    api.client.app.state.settings = original  # type: ignore[attr-defined]


def test_submissions_over_the_limit_get_429_with_retry_after(limited: Api) -> None:
    first = limited.submit("student", ANSWERS, **{"Idempotency-Key": "first"})
    assert first.status_code == 202
    for _ in range(2):
        assert limited.submit("student", ANSWERS).status_code == 202
    refused = limited.submit("student", ANSWERS)
    assert refused.status_code == 429
    error = refused.json()["error"]
    assert error["code"] == "rate_limited"
    assert error["details"] == {"limit": 3, "window_seconds": 60.0}
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    # A retry of an accepted submission is not a new one: it is answered, not limited.
    replay = limited.submit("student", ANSWERS, **{"Idempotency-Key": "first"})
    assert replay.status_code == 202
    assert replay.json()["id"] == first.json()["id"]
    # The limit is per student.
    assert limited.submit("student2", ANSWERS).status_code == 202
    # Nothing refused was stored.
    listed = limited.get("student", "/api/v1/courses/demo/assignments/hw5/submissions").json()["items"]
    assert len(listed) == 3


def test_the_window_slides(limited: Api) -> None:
    app_settings: Settings = limited.client.app.state.settings  # type: ignore[attr-defined]
    limited.client.app.state.settings = app_settings.model_copy(  # type: ignore[attr-defined]
        update={"rate_limit_submissions": 1, "rate_limit_window_seconds": 0.5}
    )
    assert limited.submit("student", ANSWERS).status_code == 202
    assert limited.submit("student", ANSWERS).status_code == 429
    time.sleep(0.6)
    assert limited.submit("student", ANSWERS).status_code == 202


def _metrics(api: Api) -> dict[str, float]:
    response = api.client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    values = {}
    for line in response.text.splitlines():
        if line.startswith("#"):
            continue
        assert METRIC_LINE.match(line), line
        name, value = line.rsplit(" ", 1)
        values[name] = float(value)
    return values


def test_metrics_count_queues_attempts_and_latency_per_grader_kind(api: Api) -> None:
    api.submit("student", ANSWERS)
    api.submit("student2", {"q1_1": {"choices": [2]}, "q3_1": {"value": [6, 1, 2]}})
    before = _metrics(api)
    assert before['autograde_queue_depth{queue="cpu"}'] == 2
    assert before['autograde_queue_depth{queue="gpu"}'] == 0
    assert api.grade_pending() == 2
    after = _metrics(api)
    assert after['autograde_queue_depth{queue="cpu"}'] == 0
    assert after['autograde_jobs{queue="cpu",status="done"}'] == 2
    assert after['autograde_job_attempts_total{queue="cpu"}'] == 2
    assert after['autograde_job_latency_seconds_count{kind="choice"}'] == 2
    assert after['autograde_job_latency_seconds_count{kind="tensor"}'] == 1
    assert after['autograde_job_latency_seconds_bucket{kind="tensor",le="+Inf"}'] == 1


# Every family /metrics exposes: (type, label names of its samples). Counters are named without
# `_total` by the parser, as in OpenMetrics; their samples keep it.
METRIC_FAMILIES = {
    "autograde_queue_depth": ("gauge", {"queue"}),
    "autograde_jobs": ("gauge", {"queue", "status"}),
    "autograde_job_attempts": ("counter", {"queue"}),
    "autograde_job_failures": ("counter", {"queue"}),
    "autograde_grader_errors": ("counter", {"kind"}),
    "autograde_job_latency_seconds": ("histogram", {"kind"}),
}


def test_metrics_parse_as_prometheus_text_and_match_the_job_table(
    api: Api, session_factory: sessionmaker[Session]
) -> None:
    api.submit("student", ANSWERS)
    api.submit("student2", {"q1_1": {"choices": [2]}, "q3_1": {"value": [6, 1, 2]}})
    assert api.grade_pending() == 2
    response = api.client.get("/metrics")
    assert response.status_code == 200
    families = {family.name: family for family in text_string_to_metric_families(response.text)}
    assert {name: family.type for name, family in families.items()} == {
        name: kind for name, (kind, _labels) in METRIC_FAMILIES.items()
    }
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for name, family in families.items():
        assert family.documentation
        for sample in family.samples:
            expected = METRIC_FAMILIES[name][1] | ({"le"} if sample.name.endswith("_bucket") else set())
            assert set(sample.labels) == expected, sample
            samples[sample.name, frozenset(sample.labels.items())] = sample.value

    def value(name: str, **labels: str) -> float:
        return samples[name, frozenset(labels.items())]

    with session_factory() as session:
        jobs = session.execute(select(GradingJob.status, GradingJob.attempt)).all()
    assert value("autograde_jobs", queue="cpu", status="done") == len(jobs) == 2
    assert value("autograde_job_attempts_total", queue="cpu") == sum(attempt for _s, attempt in jobs)
    assert families["autograde_job_failures"].samples == []  # a queue shows once one of its jobs failed
    assert families["autograde_grader_errors"].samples == []
    assert value("autograde_queue_depth", queue="cpu") == value("autograde_queue_depth", queue="gpu") == 0
    (latency,) = (family for family in families.values() if family.type == "histogram")
    for kind, count in (("choice", 2), ("tensor", 1)):
        buckets = sorted(
            (float(sample.labels["le"]), sample.value)
            for sample in latency.samples
            if sample.name.endswith("_bucket") and sample.labels["kind"] == kind
        )
        assert [le for le, _count in buckets][-1] == float("inf")
        cumulative = [bucket_count for _le, bucket_count in buckets]
        assert cumulative == sorted(cumulative)
        assert cumulative[-1] == value("autograde_job_latency_seconds_count", kind=kind) == count
        assert value("autograde_job_latency_seconds_sum", kind=kind) >= 0


METRICS_TOKEN = "prometheus-scrape-token-0123456789"


@pytest.fixture
def settings_of(api: Api) -> Iterator[Callable[..., None]]:
    """Change the running app's settings for one test."""
    original: Settings = api.client.app.state.settings  # type: ignore[attr-defined]

    def change(**update: object) -> None:
        api.client.app.state.settings = original.model_copy(update=update)  # type: ignore[attr-defined]

    yield change
    api.client.app.state.settings = original  # type: ignore[attr-defined]


def _error(response: httpx2.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert set(response.json()["error"]) == {"code", "message", "details"}
    assert response.json()["error"]["code"] == code


def test_with_a_metrics_token_only_its_bearer_reads_metrics(
    api: Api, settings_of: Callable[..., None]
) -> None:
    settings_of(metrics_token=METRICS_TOKEN)
    for headers in (
        {},
        {"Authorization": "Bearer wrong-token"},
        {"Authorization": f"Bearer {METRICS_TOKEN}x"},
        {"Authorization": f"Bearer {METRICS_TOKEN[:-1]}"},
        api.accounts.header("instructor"),  # a user's API token is not the metrics token
    ):
        refused = api.client.get("/metrics", headers=headers)
        _error(refused, 401, "unauthenticated")
        assert refused.headers["www-authenticate"] == "Bearer"
    scraped = api.client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert scraped.status_code == 200
    assert "autograde_queue_depth" in scraped.text


def test_production_serves_metrics_only_with_a_token(api: Api, settings_of: Callable[..., None]) -> None:
    settings_of(env=Environment.PRODUCTION, metrics_token=None)
    _error(api.client.get("/metrics"), 404, "not_found")
    _error(api.client.get("/metrics", headers=api.accounts.header("instructor")), 404, "not_found")
    settings_of(env=Environment.PRODUCTION, metrics_token=METRICS_TOKEN)
    _error(api.client.get("/metrics"), 401, "unauthenticated")
    headers = {"Authorization": f"Bearer {METRICS_TOKEN}"}
    assert api.client.get("/metrics", headers=headers).status_code == 200


def test_a_short_metrics_token_is_refused() -> None:
    with pytest.raises(ValueError, match="metrics_token"):
        Settings(metrics_token="short")


def test_json_logs_carry_the_submission_and_job_ids() -> None:
    record = logging.LogRecord("service.grading.runner", logging.INFO, __file__, 1, "job graded", None, None)
    record.__dict__.update({"job_id": 7, "submission_id": "0b4c", "attempt": 2})
    entry = json.loads(JsonFormatter().format(record))
    assert entry["message"] == "job graded"
    assert (entry["job_id"], entry["submission_id"], entry["attempt"]) == (7, "0b4c", 2)
    assert entry["level"] == "INFO"
    assert LogFormat("json") is LogFormat.JSON


def test_a_database_outage_is_a_503_to_retry_not_a_500() -> None:
    from fastapi.testclient import TestClient

    from service.main import create_app
    from service.worker.executor import NullExecutor
    from tests.worker.cluster import free_port

    away = Settings(database_url=f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/autograde")
    with TestClient(create_app(away, executor=NullExecutor())) as client:
        response = client.post(
            "/api/v1/courses/demo/assignments/hw5/submissions",
            json={"answers": ANSWERS},
            headers={"Authorization": "Bearer ag_some-token", "Idempotency-Key": "k1"},
        )
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "database_unavailable"
        assert response.headers["retry-after"] == "5"
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["error"]["details"] == ["the database does not answer"]


SECRET = "sk_live_student-answer-7f3a9c"
NOWHERE = 2_000_000_000  # no such row: the insert fails on its foreign key


def _rows_quoting_the_secret() -> dict[str, Submission | QuestionResult]:
    return {
        "answers": Submission(
            assignment_version_id=NOWHERE,
            user_id=NOWHERE,
            answers={"q2_1": {"expression": SECRET}},
            request_hash="0" * 64,
            max_score=1.0,
        ),
        "result": QuestionResult(
            submission_id=uuid.uuid4(),
            question_id=NOWHERE,
            question_key="q2_1",
            verdict="incorrect",
            score=0.0,
            max_score=1.0,
            feedback=f"the answer is {SECRET}",
            details={"read_as": SECRET},
            grader_kind="expression",
            grader_version="1",
            reference_version="x",
            job_attempt=1,
        ),
    }


@pytest.mark.parametrize("row", ["answers", "result"])
def test_a_failed_statement_does_not_quote_students_answers_or_results(
    session: Session, row: str, caplog: pytest.LogCaptureFixture
) -> None:
    session.add(_rows_quoting_the_secret()[row])
    with pytest.raises(IntegrityError) as raised:
        session.flush()
    session.rollback()
    # What the API's and the workers' error logs print: the message and the whole chained traceback.
    logging.getLogger("service.main").error("unhandled error", exc_info=raised.value)
    printed = "".join(traceback.format_exception(raised.value)) + caplog.text
    assert "foreign key" in printed.lower()
    assert SECRET not in printed
    assert "SQL parameters hidden" in str(raised.value)
