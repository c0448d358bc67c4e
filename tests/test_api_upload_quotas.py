"""Storage quotas for uploads, per student and per course, and the retention rule that releases
superseded uploads once a newer one is graded. Runs on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx2
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.config import Settings
from service.models import SubmissionFile
from tests.conftest import Api

SUBMISSIONS = "/api/v1/courses/demo/assignments/hw5/submissions"
# JSON with `cells` and `nbformat` (accepted at upload) that nbformat refuses: graded `invalid` at
# once, without a sandbox run.
NOTEBOOK_SIZE = 10_000


def notebook(tag: str) -> bytes:
    document = {"cells": [{"cell_type": "code", "source": 5}], "metadata": {}, "nbformat": 4, "tag": tag}
    text = json.dumps(document)
    return (text[:-1] + ', "pad": "' + "x" * (NOTEBOOK_SIZE - len(text) - 11) + '"}').encode()


def upload(api: Api, who: str, tag: str) -> httpx2.Response:
    return api.client.post(
        SUBMISSIONS,
        data={"answers": "{}"},
        files={"q4": ("hw5.ipynb", notebook(tag))},
        headers=api.accounts.header(who),
    )


def configure(api: Api, **update: int) -> None:
    settings: Settings = api.client.app.state.settings  # type: ignore[attr-defined]
    api.client.app.state.settings = settings.model_copy(update=update)  # type: ignore[attr-defined]


@pytest.fixture
def quota_api(api: Api) -> Iterator[Api]:
    original: Settings = api.client.app.state.settings  # type: ignore[attr-defined]
    yield api
    api.client.app.state.settings = original  # type: ignore[attr-defined]


def stored_bytes(session: Session) -> int:
    return int(session.scalar(select(func.coalesce(func.sum(func.length(SubmissionFile.content)), 0))) or 0)


def test_a_student_over_the_quota_gets_413_quota_exceeded(quota_api: Api, session: Session) -> None:
    assert len(notebook("a")) == NOTEBOOK_SIZE
    configure(quota_api, upload_quota_student_bytes=25_000)
    assert upload(quota_api, "student", "a").status_code == 202
    assert upload(quota_api, "student", "b").status_code == 202
    refused = upload(quota_api, "student", "c")
    assert refused.status_code == 413, refused.text
    error = refused.json()["error"]
    assert error["code"] == "quota_exceeded"
    assert "20,000 of 25,000 bytes" in error["message"]
    assert error["details"] == {
        "scope": "student",
        "used_bytes": 20_000,
        "incoming_bytes": 10_000,
        "allowed_bytes": 25_000,
    }
    # Ungraded uploads are never released (the worker needs them); other students are not affected.
    assert upload(quota_api, "student2", "d").status_code == 202
    # JSON answers without files take no upload quota.
    assert quota_api.submit("student", {"q1_2": {"choices": [3]}}).status_code == 202
    assert stored_bytes(session) == 30_000


def test_the_course_quota_counts_every_student(quota_api: Api) -> None:
    configure(quota_api, upload_quota_course_bytes=15_000)
    assert upload(quota_api, "student", "a").status_code == 202
    refused = upload(quota_api, "student2", "b")
    assert refused.status_code == 413
    assert refused.json()["error"]["details"]["scope"] == "course"
    assert "This course's uploads use 10,000 of 15,000 bytes" in refused.json()["error"]["message"]


def test_graded_superseded_uploads_release_their_bytes(quota_api: Api, session: Session) -> None:
    configure(quota_api, upload_quota_student_bytes=25_000, upload_retain_per_question=1)
    first = upload(quota_api, "student", "first").json()
    assert quota_api.grade_pending() == 1
    assert upload(quota_api, "student", "second").status_code == 202
    assert quota_api.grade_pending() == 1
    # 20,000 stored + 10,000 would exceed 25,000, but `first` is superseded by a graded upload.
    third = upload(quota_api, "student", "third")
    assert third.status_code == 202, third.text
    assert stored_bytes(session) == 20_000
    rows = session.execute(
        select(SubmissionFile.submission_id, SubmissionFile.size, func.length(SubmissionFile.content))
    ).all()
    kept = {str(submission_id): (size, length) for submission_id, size, length in rows}
    assert kept[first["id"]] == (10_000, 0)  # the row and its size stay, the bytes go
    assert sorted(kept.values()) == [(10_000, 0), (10_000, 10_000), (10_000, 10_000)]
    # Staff still see what was uploaded, and the grade stands.
    staff_view = quota_api.get("ta", first["url"]).json()
    assert staff_view["answers"]["q4"]["size"] == 10_000
    assert staff_view["questions"]["q4"]["verdict"] == "invalid"
