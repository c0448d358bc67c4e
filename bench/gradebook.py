"""The gradebook on Postgres: 1,000 students x 20 questions, timed over HTTP.

One command:  .venv/bin/python bench/gradebook.py [--students 1000] [--questions 20] [--repeats 7]

It creates a fresh Postgres database (`autograde_bench_gb_<random>`), migrates it, loads a
generated assignment of N choice questions into course `bench`, enrolls the students and a TA, and
inserts in bulk (one executemany per table) what a term leaves behind: every student submits once,
half of them twice, a fifth three times; each submission answers every question with a mix of
verdicts (correct, partial, incorrect, some invalid, some waiting for a person), a tenth of the
submissions late with a penalty, a few manual grades and overrides. Then, through the service's
own app (in-process TestClient, so routing, auth, the query and the JSON or CSV encoding are all
timed, the network is not), it times: the first page (100 students), a full page (500), a page
sorted by total, a filtered page, the whole CSV and one question's statistics. Each is run once to
warm up, then --repeats times; the table shows the median and the slowest. The database is dropped
at the end, also on errors.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
from fastapi.testclient import TestClient
from sqlalchemy import insert, select

from service.assignments.material import read_material
from service.assignments.service import load_assignment
from service.auth.service import issue_token
from service.config import Settings
from service.db import make_engine, make_session_factory
from service.main import create_app
from service.migrations import upgrade_database
from service.models import (
    Assignment,
    AssignmentVersion,
    Course,
    Enrollment,
    ManualGrade,
    Question,
    QuestionResult,
    Role,
    Submission,
    User,
)
from service.worker.executor import NullExecutor

ADMIN_DSN = os.environ.get("AUTOGRADE_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
COURSE = "bench"
SLUG = "gb"
START = datetime(2026, 3, 1, tzinfo=UTC)


def material(folder: Path, questions: int) -> Path:
    lines = [f'slug = "{SLUG}"', 'title = "Gradebook benchmark"']
    for n in range(1, questions + 1):
        lines += [
            "[[questions]]",
            f'id = "q{n:02d}"',
            'kind = "choice"',
            f"points = {1 + n % 3}",
            "[questions.config]",
            'options = ["a", "b", "c", "d"]',
            "correct = [1]",
        ]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "assignment.toml").write_text("\n".join(lines) + "\n")
    return folder


@dataclass(frozen=True)
class Seeded:
    ta_token: str
    submissions: int
    results: int
    manual_grades: int


def seed(settings: Settings, folder: Path, students: int, questions: int) -> Seeded:
    rng = random.Random(11)
    engine = make_engine(settings)
    upgrade_database(engine)
    factory = make_session_factory(engine)
    with factory() as session:
        load_assignment(session, COURSE, read_material(material(folder, questions)))
        course_id = session.scalars(select(Course.id).where(Course.slug == COURSE)).one()
        version = session.scalars(
            select(AssignmentVersion)
            .join(Assignment, Assignment.id == AssignmentVersion.assignment_id)
            .where(Assignment.course_id == course_id)
        ).one()
        question_rows = session.scalars(
            select(Question).where(Question.assignment_version_id == version.id).order_by(Question.position)
        ).all()
        names = [f"student{n:04d}" for n in range(students)] + ["ta"]
        user_ids = list(
            session.scalars(
                insert(User).returning(User.id, sort_by_parameter_order=True),
                [{"username": name, "display_name": name, "created_at": START} for name in names],
            )
        )
        session.execute(
            insert(Enrollment),
            [
                {
                    "course_id": course_id,
                    "user_id": user_id,
                    "role": Role.TA if name == "ta" else Role.STUDENT,
                    "created_at": START,
                }
                for name, user_id in zip(names, user_ids, strict=True)
            ],
        )
        ta_id = user_ids[-1]
        token = issue_token(session, ta_id, "bench")
        submissions: list[dict[str, object]] = []
        results: list[dict[str, object]] = []
        grades: list[dict[str, object]] = []
        for user_id in user_ids[:-1]:
            attempts = 1 + (rng.random() < 0.5) + (rng.random() < 0.2)
            for attempt in range(attempts):
                submission_id = uuid.uuid4()
                late = rng.random() < 0.1
                submissions.append(
                    {
                        "id": submission_id,
                        "assignment_version_id": version.id,
                        "user_id": user_id,
                        "answers": {},
                        "request_hash": submission_id.hex,
                        "score": 0.0,
                        "max_score": sum(q.points for q in question_rows),
                        "late_seconds": 7200 if late else 0,
                        "late_penalty": 0.1 if late else 0.0,
                        "created_at": START + timedelta(hours=attempt, seconds=user_id),
                    }
                )
                for question in question_rows:
                    verdict, fraction = rng.choices(
                        [
                            ("correct", 1.0),
                            ("partial", 0.5),
                            ("incorrect", 0.0),
                            ("invalid", 0.0),
                            ("pending_manual", 0.0),
                        ],
                        weights=[50, 15, 25, 5, 5],
                    )[0]
                    results.append(
                        {
                            "submission_id": submission_id,
                            "question_id": question.id,
                            "question_key": question.key,
                            "verdict": verdict,
                            "score": question.points * fraction,
                            "max_score": question.points,
                            "feedback": "",
                            "details": {"picked": [rng.randint(1, 4)], "correct": [1]},
                            "grader_kind": "choice",
                            "grader_version": "1",
                            "reference_version": "bench",
                            "job_attempt": 1,
                            "graded_at": START,
                        }
                    )
                    if (verdict == "pending_manual" and rng.random() < 0.5) or rng.random() < 0.005:
                        grades.append(
                            {
                                "submission_id": submission_id,
                                "question_key": question.key,
                                "kind": "manual" if verdict == "pending_manual" else "override",
                                "score": question.points * rng.random(),
                                "feedback": "",
                                "rubric": [],
                                "reason": "bench",
                                "version": 1,
                                "graded_by_user_id": ta_id,
                                "graded_at": START,
                            }
                        )
        session.execute(insert(Submission), submissions)
        session.execute(insert(QuestionResult), results)
        session.execute(insert(ManualGrade), grades)
        session.commit()
    with engine.connect() as connection:
        connection.exec_driver_sql("ANALYZE")
        connection.commit()
    engine.dispose()
    return Seeded(token, len(submissions), len(results), len(grades))


def timed(call: Callable[[], object], repeats: int) -> list[float]:
    call()  # warm-up: plans cached, pool filled
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=1000)
    parser.add_argument("--questions", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=7)
    arguments = parser.parse_args()

    name = f"autograde_bench_gb_{uuid.uuid4().hex[:10]}"
    base = ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        settings = Settings(database_url=f"{base}/{name}", local_workers=0)
        with tempfile.TemporaryDirectory() as scratch:
            started = time.perf_counter()
            seeded = seed(settings, Path(scratch) / SLUG, arguments.students, arguments.questions)
            seeding = time.perf_counter() - started
        print(
            f"seeded {arguments.students} students x {arguments.questions} questions: "
            f"{seeded.submissions} submissions, {seeded.results} results, {seeded.manual_grades} manual "
            f"grades in {seeding:.1f} s"
        )
        url = f"/api/v1/courses/{COURSE}/assignments/{SLUG}"
        headers = {"Authorization": f"Bearer {seeded.ta_token}"}
        with TestClient(create_app(settings, executor=NullExecutor())) as client:

            def get(path: str) -> Callable[[], object]:
                def call() -> object:
                    response = client.get(path, headers=headers)
                    assert response.status_code == 200, response.text
                    return response

                return call

            key = f"q{min(7, arguments.questions):02d}"
            cases = {
                "first page (100 students)": f"{url}/gradebook",
                "full page (500 students)": f"{url}/gradebook?limit=500",
                "sorted by total, desc (100)": f"{url}/gradebook?sort=total&order=desc",
                f"filtered: {key} needs grading": f"{url}/gradebook?question={key}&needs_grading=true",
                "CSV, every student": f"{url}/gradebook?format=csv",
                f"statistics of {key}": f"{url}/questions/{key}/statistics",
            }
            rows = [(label, timed(get(path), arguments.repeats)) for label, path in cases.items()]
    finally:
        with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    machine = platform.processor() or platform.machine()
    print(f"\n{machine}, {os.cpu_count()} CPUs, Python {sys.version.split()[0]}")
    print(f"median and slowest of {arguments.repeats} runs after one warm-up\n")
    print(f"| {'request':<30} | median ms | max ms |")
    print(f"|{'-' * 32}|-----------|--------|")
    for label, times in rows:
        print(f"| {label:<30} | {statistics.median(times) * 1000:9.1f} | {max(times) * 1000:6.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
