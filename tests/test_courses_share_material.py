"""An assignment belongs to a course: the same material (hw5) loaded into two courses makes two
assignments, and each course's students and staff see only their own."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.config import Config
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from service.assignments.material import read_material
from service.assignments.service import load_assignment
from service.config import Settings
from service.db import make_engine
from service.grades.service import export_csv
from service.migrations import alembic_config, downgrade_database, upgrade_database
from service.models import Role
from tests.conftest import HW5_FOLDER, Api, create_scratch_database
from tests.factories import add_user
from tests.test_e2e_serve import cli, free_port, service_env

NEXT_COURSE = "dl-next"
DEMO_HW5 = "/api/v1/courses/demo/assignments/hw5"
NEXT_HW5 = f"/api/v1/courses/{NEXT_COURSE}/assignments/hw5"
ANSWERS = {"q1_1": {"choices": [2, 3]}}


@pytest.fixture
def next_course(api: Api, session_factory: sessionmaker[Session]) -> Api:
    """hw5 loaded a second time, into course `dl-next`, with its own student and TA."""
    with session_factory() as session:
        outcome = load_assignment(session, NEXT_COURSE, read_material(HW5_FOLDER))
        assert (outcome.slug, outcome.version, outcome.changed) == ("hw5", 1, True)
        api.accounts.tokens["next_student"] = add_user(session, "next_student", NEXT_COURSE, Role.STUDENT)
        api.accounts.tokens["next_ta"] = add_user(session, "next_ta", NEXT_COURSE, Role.TA)
        session.commit()
    return api


def listed_students(api: Api, who: str, url: str) -> set[str]:
    response = api.get(who, f"{url}/submissions")
    assert response.status_code == 200, response.text
    return {item["student"] for item in response.json()["items"]}


def test_each_course_sees_only_its_own_hw5(next_course: Api) -> None:
    api = next_course
    assert api.submit("student", ANSWERS).status_code == 202
    assert api.submit("next_student", ANSWERS, course=NEXT_COURSE).status_code == 202
    assert api.grade_pending() == 2

    assert listed_students(api, "ta", DEMO_HW5) == {"student"}
    assert listed_students(api, "next_ta", NEXT_HW5) == {"next_student"}
    assert listed_students(api, "next_student", NEXT_HW5) == {"next_student"}
    for who, course in (("ta", "demo"), ("next_ta", NEXT_COURSE)):
        assert api.get(who, f"/api/v1/courses/{course}/assignments/hw5").json()["your_role"] == "ta"


@pytest.mark.parametrize(
    ("who", "url"),
    [("student", NEXT_HW5), ("ta", NEXT_HW5), ("next_student", DEMO_HW5), ("next_ta", DEMO_HW5)],
)
def test_another_courses_hw5_does_not_exist_for_you(next_course: Api, who: str, url: str) -> None:
    api = next_course
    course = url.split("/")[4]
    responses = {
        "get": api.get(who, url),
        "variant": api.get(who, f"{url}/questions/q3_3/variant"),
        "list": api.get(who, f"{url}/submissions"),
        "submit": api.submit(who, ANSWERS, course=course),
    }
    assert {name: response.status_code for name, response in responses.items()} == dict.fromkeys(
        responses, 404
    )
    assert responses["get"].json()["error"]["code"] == "not_found"


def test_a_submission_is_visible_only_in_its_own_course(next_course: Api) -> None:
    api = next_course
    theirs = api.submit("student", ANSWERS).headers["location"]
    assert api.get("ta", theirs).status_code == 200
    assert api.get("next_ta", theirs).status_code == 404


def test_a_submission_names_its_course_as_well_as_its_assignment(next_course: Api) -> None:
    """With hw5 in two courses, the slug alone does not say which hw5 a submission belongs to."""
    api = next_course
    accepted = api.submit("next_student", ANSWERS, course=NEXT_COURSE).json()
    assert (accepted["course"], accepted["assignment"]) == (NEXT_COURSE, "hw5")
    view = api.get("next_student", accepted["url"]).json()
    assert (view["course"], view["assignment"]) == (NEXT_COURSE, "hw5")
    listing = api.get("next_ta", f"{NEXT_HW5}/submissions").json()
    assert (listing["course"], listing["assignment"]) == (NEXT_COURSE, "hw5")


def test_an_idempotency_key_reused_in_another_course_is_not_a_replay(
    next_course: Api, session_factory: sessionmaker[Session]
) -> None:
    api = next_course
    with session_factory() as session:
        add_user(session, "student", NEXT_COURSE, Role.STUDENT)
        session.commit()
    first = api.submit("student", ANSWERS, **{"Idempotency-Key": "k1"})
    assert first.status_code == 202
    again = api.submit("student", ANSWERS, course=NEXT_COURSE, **{"Idempotency-Key": "k1"})
    assert again.status_code == 409, again.text
    assert listed_students(api, "next_ta", NEXT_HW5) == set()


def test_grade_books_are_per_course(next_course: Api, session_factory: sessionmaker[Session]) -> None:
    api = next_course
    api.submit("student", ANSWERS)
    api.submit("next_student", ANSWERS, course=NEXT_COURSE)
    api.grade_pending()
    with session_factory() as session:
        demo_rows = export_csv(session, "demo", "hw5").splitlines()[1:]
        next_rows = export_csv(session, NEXT_COURSE, "hw5").splitlines()[1:]
    # Every student of each course has a row (student2 never submitted); none of the other's.
    # Columns: student, total, max_score, q1_1, ...: each answer is scored in its own course only.
    assert [row.split(",")[:4:3] for row in demo_rows] == [["student", "1"], ["student2", ""]]
    assert [row.split(",")[:4:3] for row in next_rows] == [["next_student", "1"]]


def test_the_cli_loads_hw5_into_two_courses(tmp_path: Path) -> None:
    env = service_env(f"sqlite:///{tmp_path / 'cli.db'}", free_port())
    cli("db", "upgrade", env=env)
    for course in ("dl-2025", "dl-2026"):
        output = cli("assignments", "load", "reference/hw5", "--course", course, env=env)
        assert "hw5: stored as version 1" in output
    csv_text = cli("grades", "export", "--course", "dl-2026", "--assignment", "hw5", env=env)
    assert csv_text.startswith("student,total,max_score,q1_1,")
    assert len(csv_text.splitlines()) == 1


def test_the_migration_keeps_assignments_and_lets_a_slug_into_two_courses(
    backend: str, tmp_path: Path
) -> None:
    url, drop = create_scratch_database(backend, tmp_path)
    engine = make_engine(Settings(database_url=url))
    config = alembic_config()
    try:
        _migrate(engine, config, "upgrade", "0004_enums")
        with engine.begin() as connection:
            for course_id, slug in ((1, "a"), (2, "b")):
                connection.execute(
                    text("INSERT INTO courses (id, slug, title, created_at) VALUES (:id, :slug, :slug, :t)"),
                    {"id": course_id, "slug": slug, "t": CREATED},
                )
            _insert_hw5(connection, 7, course_id=1)
        upgrade_database(engine)
        with engine.begin() as connection:
            kept = connection.execute(text("SELECT course_id, slug FROM assignments WHERE id = 7")).one()
            assert tuple(kept) == (1, "hw5")
            _insert_hw5(connection, 8, course_id=2)
        with pytest.raises(IntegrityError), engine.begin() as connection:
            _insert_hw5(connection, 9, course_id=2)
        with engine.begin() as connection:
            connection.execute(text("DELETE FROM assignments WHERE id = 8"))
        # With slugs globally unique again, the old schema can take the rows back.
        _migrate(engine, config, "downgrade", "0004_enums")
        with engine.connect() as connection:
            assert connection.execute(text("SELECT slug FROM assignments")).scalars().all() == ["hw5"]
    finally:
        engine.dispose()
        drop()


CREATED = "2026-01-01 00:00:00+00:00"


def _insert_hw5(connection: Connection, assignment_id: int, course_id: int) -> None:
    connection.execute(
        text("INSERT INTO assignments (id, course_id, slug, created_at) VALUES (:id, :course, 'hw5', :t)"),
        {"id": assignment_id, "course": course_id, "t": CREATED},
    )


def _migrate(engine: Engine, config: Config, direction: str, revision: str) -> None:
    (upgrade_database if direction == "upgrade" else downgrade_database)(engine, revision)
