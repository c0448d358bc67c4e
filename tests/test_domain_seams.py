"""The seams between submissions, grading and assignments: a job is announced only once it is
committed, an idempotent retry that loses the insert race gets the first submission without a
rollback of the request's transaction, and uploads are checked by the grader that takes them."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy.orm import Session, sessionmaker

from graders import get_grader, known_kinds
from service.auth.service import authenticate
from service.config import Settings
from service.db import transaction
from service.models import GradingJob, Submission, utcnow
from service.submissions import repository
from service.submissions.schemas import SubmissionCreate
from service.submissions.service import NewSubmission, create_submission
from tests.conftest import Api

ANSWERS = {"q1_1": {"choices": [2, 3]}}


class Boom(Exception):
    pass


def test_a_job_is_announced_after_its_commit_and_never_after_a_rollback(
    api: Api, session_factory: sessionmaker[Session], settings: Settings
) -> None:
    heard: list[int] = []

    def submit_then_fail() -> None:
        with transaction(session_factory, notify_jobs=heard.extend) as session:
            principal = authenticate(session, api.accounts.tokens["student"])
            command = NewSubmission(principal, "demo", "hw5", SubmissionCreate(answers=ANSWERS))
            create_submission(session, settings, command)
            assert heard == []  # stored, not committed: no worker may look for it yet
            raise Boom

    with pytest.raises(Boom):
        submit_then_fail()
    assert heard == []
    with transaction(session_factory, notify_jobs=heard.extend) as session:
        principal = authenticate(session, api.accounts.tokens["student"])
        stored = create_submission(
            session, settings, NewSubmission(principal, "demo", "hw5", SubmissionCreate(answers=ANSWERS))
        )
        assert heard == []
    assert heard == [stored.job_id]
    with transaction(session_factory, read_only=True) as session:
        assert session.get(GradingJob, stored.job_id) is not None


def test_an_idempotent_retry_that_loses_the_insert_race_gets_the_first_submission(
    api: Api, session_factory: sessionmaker[Session]
) -> None:
    with transaction(session_factory) as session:
        accepted = api.submit("student", ANSWERS, **{"Idempotency-Key": "race-1"})
        assert accepted.status_code == 202, accepted.text
        stored = session.get(Submission, uuid.UUID(accepted.json()["id"]))
        assert stored is not None
        # A second request that checked for the key before the first one committed, then inserts.
        loser = {
            "id": uuid.uuid4(),
            "assignment_version_id": stored.assignment_version_id,
            "user_id": stored.user_id,
            "answers": stored.answers,
            "idempotency_key": "race-1",
            "request_hash": stored.request_hash,
            "max_score": stored.max_score,
            "created_at": utcnow(),
        }
        winner = repository.insert_submission(session, loser)
        assert winner is not None
        assert winner.id == stored.id
        # The transaction is still usable: the insert was undone in its savepoint only.
        assert repository.job_of(session, stored.id).submission_id == stored.id
        assert session.get(Submission, loser["id"]) is None


def test_only_the_notebook_grader_takes_uploads_and_it_checks_them() -> None:
    takes_uploads = {kind.value for kind in known_kinds() if get_grader(kind.value).accepts_upload}
    assert takes_uploads == {"notebook"}
    notebook = get_grader("notebook")
    assert notebook.check_upload(b'{"cells": [], "nbformat": 4, "metadata": {}}') is None
    assert "not UTF-8" in (notebook.check_upload(b"\xff\xfe") or "")
    # Measured before parsing: 100,000 levels would exhaust the decoder's stack.
    deep = notebook.check_upload(b"[" * 100_000 + b"]" * 100_000)
    assert deep is not None
    assert "nested 100000 levels" in deep
    with pytest.raises(NotImplementedError):
        get_grader("choice").check_upload(b"{}")
