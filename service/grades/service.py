from __future__ import annotations

import csv
import io

from sqlalchemy.orm import Session

from graders import Verdict
from service.assignments.service import latest_snapshot
from service.grades import repository


def export_csv(session: Session, course_slug: str, slug: str) -> str:
    """One row per student of the course: their newest graded submission to its assignment, its
    total and each question's score.

    A pending manual answer shows as "pending" so a TA sees what is left to grade.
    """
    snapshot = latest_snapshot(session, course_slug, slug)
    question_keys = [question.key for question in snapshot.questions]
    rows = repository.latest_graded_per_student(session, snapshot.course_id, slug)
    scores: dict[object, dict[str, str]] = {}
    for result_of, key, points, verdict in repository.question_scores(session, [row[0] for row in rows]):
        scores.setdefault(result_of, {})[key] = (
            "pending" if verdict == Verdict.PENDING_MANUAL else f"{points:g}"
        )
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["student", "submission_id", "submitted_at", "score", "max_score", *question_keys])
    for submission_id, username, score, max_score, created_at in rows:
        per_question = scores.get(submission_id, {})
        writer.writerow(
            [
                username,
                str(submission_id),
                created_at.isoformat(),
                "" if score is None else f"{score:g}",
                f"{max_score:g}",
                *(per_question.get(key, "") for key in question_keys),
            ]
        )
    return buffer.getvalue()
