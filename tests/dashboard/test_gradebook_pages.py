"""The gradebook page, its CSV, a question's statistics and a student's history, in-process on
SQLite and PostgreSQL: the page contract's ids, labels and links, and the numbers in them."""

from __future__ import annotations

import csv
import io
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from graders import Verdict
from service.dashboard.pages import SESSION_COOKIE
from service.models import Role
from tests.conftest import Api
from tests.dashboard.html_tree import Element, parse
from tests.factories import add_user
from tests.test_gradebook import Answer, Seeder

HW5 = "/dashboard/courses/demo/assignments/hw5"
API_HW5 = "/api/v1/courses/demo/assignments/hw5"
GRADEBOOK = f"{HW5}/gradebook"
QUESTIONS = ["q1_1", "q1_2", "q1_3", "q2_1", "q2_2", "q2_3", "q2_4", "q3_1", "q3_1b", "q3_3", "q3_2", "q4"]


@dataclass
class Class:
    """hw5 graded for four students: two through the real path, two seeded."""

    browser: TestClient
    api: Api
    submissions: dict[str, uuid.UUID]


@pytest.fixture
def graded(api: Api, browser: TestClient, session_factory: sessionmaker[Session]) -> Class:
    submissions = {}
    for who, choices, expression in (
        ("student", [2, 3], "y[t] - yhat[t]"),  # q1_1 right, q2_1 the wrong sign
        ("student2", [1], "yhat[t] - y[t]"),  # q1_1 wrong, q2_1 right
    ):
        response = api.submit(who, {"q1_1": {"choices": choices}, "q2_1": {"expression": expression}})
        assert response.status_code == 202, response.text
        submissions[who] = uuid.UUID(response.headers["location"].rsplit("/", 1)[1])
    api.grade_pending()
    with session_factory() as session:
        seeder = Seeder(session)
        add_user(session, "late_larry", "demo", Role.STUDENT)
        add_user(session, "pending_pat", "demo", Role.STUDENT)
        submissions["late_larry"] = seeder.answer(
            "late_larry", Answer(Verdict.CORRECT, 1, 1, penalty=0.5, question="q1_1")
        )
        submissions["pending_pat"] = seeder.answer("pending_pat", Answer(Verdict.PENDING_MANUAL, 0, 2))
        session.commit()
    response = browser.post("/dashboard/sign-in", data={"token": api.accounts.tokens["ta"]})
    assert response.status_code == 303, response.text
    return Class(browser, api, submissions)


def page(browser: TestClient, path: str, status: int = 200) -> Element:
    response = browser.get(path)
    assert response.status_code == status, (path, response.status_code, response.text[:2000])
    assert response.headers["content-type"].startswith("text/html")
    return parse(response.text)


def students(tree: Element) -> list[str]:
    return [row.find("th").text for row in tree.by_id("gradebook").find("tbody").find_all("tr")]


def cells(tree: Element) -> dict[str, dict[str, Element]]:
    """Each student's cells by column (`total` and the questions shown)."""
    table = tree.by_id("gradebook")
    header = table.find("thead").find_all("th")
    keys = ["student", "total"] + [th.find("button").attrs["value"] for th in header[2:]]
    return {
        row.find("th").text: dict(zip(keys[1:], row.find_all("td"), strict=True))
        for row in table.find("tbody").find_all("tr")
    }


def header(tree: Element, key: str) -> Element:
    for th in tree.by_id("gradebook").find("thead").find_all("th"):
        if th.find("button").attrs["value"] == key:
            return th
    raise AssertionError(f"no column {key}")


# --- the gradebook --------------------------------------------------------------------------------


def test_the_gradebook_follows_the_page_contract(graded: Class) -> None:
    tree = page(graded.browser, GRADEBOOK)
    table = tree.by_id("gradebook")
    assert tree.find("h1").text.startswith("Gradebook")
    assert students(tree) == ["late_larry", "pending_pat", "student", "student2"]

    # A header per question, each with a sort button and a link to its statistics.
    assert [th.find("button").attrs["value"] for th in table.find("thead").find_all("th")] == [
        "student",
        "total",
        *QUESTIONS,
    ]
    for key in QUESTIONS:
        link = header(tree, key).find("a")
        assert link.attrs["href"] == f"{HW5}/questions/{key}/statistics"
    assert header(tree, "student").attrs["aria-sort"] == "ascending"
    assert {header(tree, key).attrs["aria-sort"] for key in ["total", *QUESTIONS]} == {"none"}

    # Names link to the history, cells to the submission view, with the score that counts.
    by_student = cells(tree)
    names = {row.find("th").text: row.find("th").find("a").attrs["href"] for row in table.find_all("tr")[1:]}
    assert names["student2"] == f"{HW5}/students/student2"
    student = by_student["student"]
    assert student["total"].text == "1 / 27"
    assert (
        student["q1_1"].find("a").attrs["href"] == f"/dashboard/submissions/{graded.submissions['student']}"
    )
    assert student["q1_1"].find("a").text.startswith("1, correct")
    assert student["q2_1"].find("a").text.startswith("0, incorrect")
    assert student["q3_2"].text.startswith("—")
    assert by_student["student2"]["q2_1"].find("a").text.startswith("2, correct")
    assert by_student["pending_pat"]["q3_2"].find("a").text.startswith("pending")
    larry = by_student["late_larry"]["q1_1"]
    assert larry.find("a").text.startswith("0.5, correct, late, −50%")
    assert "late" in larry.attrs["class"].split()

    # The filter form, labelled as the contract says.
    question = tree.label_for("Question")
    assert (question.tag, question.attrs["name"]) == ("select", "question")
    assert [option.attrs["value"] for option in question.find_all("option")] == ["", *QUESTIONS]
    verdict = tree.label_for("Verdict")
    assert (verdict.tag, verdict.attrs["name"]) == ("select", "verdict")
    assert "pending_manual" in [option.attrs["value"] for option in verdict.find_all("option")]
    for label, name in (("Late only", "late"), ("Needs grading only", "needs_grading")):
        box = tree.label_for(label)
        assert (box.tag, box.attrs["type"], box.attrs["name"]) == ("input", "checkbox", name)
    form = next(form for form in tree.find_all("form") if form.find_all("select"))
    assert [button.text for button in form.find_all("button")] == ["Apply"]

    assert tree.find("a", href=f"{HW5}/gradebook.csv").text == "Download CSV"
    # One page: no pagination links.
    assert not [a for a in tree.find_all("a") if a.text in ("Next page", "First page")]


def test_the_sticky_header_and_the_keyboard_navigation_are_served(graded: Class) -> None:
    tree = page(graded.browser, GRADEBOOK)
    stylesheets = [link.attrs["href"] for link in tree.find_all("link", rel="stylesheet")]
    scripts = [script.attrs["src"] for script in tree.find_all("script") if "src" in script.attrs]
    assert "/dashboard/static/gradebook.css" in stylesheets
    assert "/dashboard/static/gradebook.js" in scripts
    css = graded.browser.get("/dashboard/static/gradebook.css").text
    assert re.search(r"#gradebook thead th \{[^}]*position: sticky", css)
    script = graded.browser.get("/dashboard/static/gradebook.js")
    assert script.status_code == 200
    assert "javascript" in script.headers["content-type"]
    for needed in ("ArrowDown", "ArrowLeft", "tabIndex = 0", "tabIndex = -1", 'getElementById("gradebook")'):
        assert needed in script.text


def test_header_buttons_sort_and_say_so(graded: Class) -> None:
    tree = page(graded.browser, f"{GRADEBOOK}?sort=total&order=desc")
    assert students(tree) == ["student2", "student", "late_larry", "pending_pat"]
    total = header(tree, "total")
    assert total.attrs["aria-sort"] == "descending"
    assert header(tree, "student").attrs["aria-sort"] == "none"
    # Pressed again, the sorted column turns round; another column starts ascending.
    form = total.find("form")
    assert form.find("input", name="order").attrs["value"] == "asc"
    assert form.find("button").attrs["name"] == "sort"
    assert header(tree, "q2_1").find("input", name="order").attrs["value"] == "asc"

    by_question = page(graded.browser, f"{GRADEBOOK}?sort=q2_1&order=desc")
    assert students(by_question)[:2] == ["student2", "student"]
    assert header(by_question, "q2_1").attrs["aria-sort"] == "descending"


def test_the_filters_keep_matching_students_and_stay_set(graded: Class) -> None:
    browser = graded.browser
    needs = page(browser, f"{GRADEBOOK}?needs_grading=1")
    assert students(needs) == ["pending_pat"]
    assert "checked" in needs.label_for("Needs grading only").attrs
    assert "checked" not in needs.label_for("Late only").attrs
    assert students(page(browser, f"{GRADEBOOK}?late=1")) == ["late_larry"]
    assert students(page(browser, f"{GRADEBOOK}?verdict=correct")) == ["late_larry", "student", "student2"]

    # One question: only its column, and the verdict is that question's.
    one = page(browser, f"{GRADEBOOK}?question=q1_1&verdict=incorrect&sort=total&order=desc")
    assert students(one) == ["student2"]
    assert list(cells(one)["student2"]) == ["total", "q1_1"]
    selected = [
        o.attrs["value"] for o in one.label_for("Question").find_all("option") if "selected" in o.attrs
    ]
    assert selected == ["q1_1"]
    # The sort buttons and the CSV link keep the filters.
    sort_form = header(one, "student").find("form")
    kept = {i.attrs["name"]: i.attrs["value"] for i in sort_form.find_all("input")}
    assert kept == {"question": "q1_1", "verdict": "incorrect", "order": "asc"}
    csv_link = one.find("a", download="").attrs["href"]
    assert csv_link == f"{HW5}/gradebook.csv?question=q1_1&verdict=incorrect&sort=total&order=desc"
    # An empty result says so.
    none = page(browser, f"{GRADEBOOK}?question=q1_1&verdict=error")
    assert "No student matches these filters." in none.by_id("gradebook").text


def test_keyset_pages_link_onwards_and_back_to_the_first(graded: Class) -> None:
    browser = graded.browser
    first = page(browser, f"{GRADEBOOK}?limit=2&sort=total&order=desc")
    assert students(first) == ["student2", "student"]
    links = {
        a.text: a.attrs["href"] for a in first.find("nav", **{"aria-label": "Gradebook pages"}).find_all("a")
    }
    assert set(links) == {"Next page"}
    second = page(browser, links["Next page"])
    assert students(second) == ["late_larry", "pending_pat"]
    links = {
        a.text: a.attrs["href"] for a in second.find("nav", **{"aria-label": "Gradebook pages"}).find_all("a")
    }
    assert set(links) == {"First page"}
    assert links["First page"] == f"{GRADEBOOK}?limit=2&sort=total&order=desc"
    assert students(page(browser, links["First page"])) == ["student2", "student"]


def test_the_csv_download_is_the_apis_csv(graded: Class) -> None:
    response = graded.browser.get(f"{HW5}/gradebook.csv?sort=total&order=desc&limit=1")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert response.headers["content-disposition"] == 'attachment; filename="hw5-gradebook.csv"'
    api = graded.api.get("ta", f"{API_HW5}/gradebook?format=csv&sort=total&order=desc")
    assert response.text == api.text
    rows = list(csv.reader(io.StringIO(response.text)))
    assert rows[0] == ["student", "total", "max_score", *QUESTIONS]
    assert [row[0] for row in rows[1:]] == ["student2", "student", "late_larry", "pending_pat"]
    by_student = {row[0]: dict(zip(rows[0], row, strict=True)) for row in rows[1:]}
    assert (by_student["student2"]["q2_1"], by_student["pending_pat"]["q3_2"]) == ("2", "pending")


def test_student_names_are_escaped_and_their_links_quoted(
    graded: Class, session_factory: sessionmaker[Session]
) -> None:
    name = '<b id="x">bold</b>&/..'
    with session_factory() as session:
        add_user(session, name, "demo", Role.STUDENT)
        Seeder(session).answer(name, Answer(Verdict.CORRECT, 1, 3, question="q1_1"))
        session.commit()
    response = graded.browser.get(GRADEBOOK)
    assert '<b id="x">' not in response.text
    assert "&lt;b id=&#34;x&#34;&gt;bold&lt;/b&gt;&amp;/.." in response.text
    link = parse(response.text).find("a", href=f"{HW5}/students/%3Cb%20id%3D%22x%22%3Ebold%3C%2Fb%3E%26%2F..")
    assert link.text == name
    history = page(graded.browser, link.attrs["href"])
    assert history.find("h1").text.startswith(name)


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ("sort=nope", 422),
        ("question=nope", 422),
        ("question=%00", 422),
        ("verdict=great", 422),
        ("order=sideways", 422),
        ("late=maybe", 422),
        ("limit=0", 422),
        ("limit=501", 422),
        ("after=!!!", 422),
        ("after=" + "A" * 600, 422),
        ("question=" + "q" * 65, 422),
    ],
)
def test_hostile_addresses_are_error_pages(graded: Class, query: str, status: int) -> None:
    # The CSV is the whole gradebook: it takes no cursor.
    paths = [GRADEBOOK] if query.startswith("after=") else [GRADEBOOK, f"{HW5}/gradebook.csv"]
    for path in paths:
        tree = page(graded.browser, f"{path}?{query}", status)
        assert tree.find("p", role="alert").text


def test_a_cursor_from_another_sort_is_refused_with_a_message(graded: Class) -> None:
    first = page(graded.browser, f"{GRADEBOOK}?limit=1&sort=total")
    cursor = first.find("a", rel="next").attrs["href"].split("after=")[1]
    refused = page(graded.browser, f"{GRADEBOOK}?limit=1&after={cursor}", 422)
    assert "another sort order" in refused.find("p", role="alert").text


def test_students_and_other_courses_staff_get_no_gradebook(api: Api, browser: TestClient) -> None:
    paths = [
        GRADEBOOK,
        f"{HW5}/gradebook.csv",
        f"{HW5}/questions/q1_1/statistics",
        f"{HW5}/students/student2",
    ]
    for path in paths:
        response = browser.get(path)
        assert (response.status_code, response.headers["location"]) == (303, "/dashboard/sign-in"), path
    for who, status in (("student", 403), ("other_ta", 404)):
        cookie = {"Cookie": f"{SESSION_COOKIE}={api.accounts.tokens[who]}"}
        for path in paths:
            response = browser.get(path, headers=cookie)
            assert response.status_code == status, (who, path)
            assert response.headers["content-type"].startswith("text/html")
            assert parse(response.text).find("p", role="alert").text


# --- a question's statistics ----------------------------------------------------------------------


def test_statistics_show_the_numbers_the_histogram_and_the_mistakes(graded: Class) -> None:
    tree = page(graded.browser, f"{HW5}/questions/q2_1/statistics")
    assert tree.find("h1").text == "Statistics: q2_1"
    assert [tree.by_id(f"stat-{name}").text for name in ("count", "mean", "median", "needs-grading")] == [
        "2",
        "1",
        "1",
        "0",
    ]
    verdicts = {
        row.find("th").text: row.find("td").text
        for row in tree.by_id("verdicts").find("tbody").find_all("tr")
    }
    assert verdicts == {"correct": "1", "incorrect": "1"}

    svg = tree.by_id("histogram")
    assert (svg.tag, svg.attrs["role"]) == ("svg", "img")
    label = svg.attrs["aria-label"]
    assert label.startswith("Score histogram of q2_1: ")
    assert "0 to 0.2: 1; 0.2 to 0.4: 0;" in label
    assert label.endswith("; 1.8 to 2 inclusive: 1")
    assert [text.text for text in svg.find_all("text", **{"class": "bin-label"})][:2] == ["0–0.2", "0.2–0.4"]
    bins = svg.find_all("g")
    assert len(bins) == 10
    titles = [group.find("title").text for group in bins]
    assert titles[0] == "0 to 0.2 points: 1 answer"
    assert titles[1] == "0.2 to 0.4 points: 0 answers"
    assert titles[-1] == "1.8 to 2 inclusive points: 1 answer"
    heights = [float(group.find("rect").attrs["height"]) for group in bins]
    assert heights[0] == heights[-1] > 0
    assert not any(heights[1:-1])

    mistakes = tree.by_id("mistakes")
    assert [th.text for th in mistakes.find("thead").find_all("th")] == ["Mistake", "Count"]
    rows = [[td.text for td in row.find_all("td")] for row in mistakes.find("tbody").find_all("tr")]
    assert len(rows) == 1
    assert rows[0][0].startswith("sign ")
    assert rows[0][1] == "1"

    links = {a.attrs["href"] for a in tree.find_all("a")}
    assert f"{GRADEBOOK}?question=q2_1" in links
    assert f"{HW5}/questions/q2_1/grading" not in links  # not a question for people


def test_statistics_of_a_manual_question_and_of_other_bins(graded: Class) -> None:
    tree = page(graded.browser, f"{HW5}/questions/q3_2/statistics?bins=4")
    assert tree.by_id("stat-needs-grading").text == "1"
    assert tree.by_id("stat-mean").text == "—"
    assert len(tree.by_id("histogram").find_all("title")) == 4
    assert tree.by_id("mistakes-none").text
    assert tree.find("a", href=f"{HW5}/questions/q3_2/grading").text == "Grade q3_2"
    for path, status in (
        (f"{HW5}/questions/nope/statistics", 404),
        (f"{HW5}/questions/q2_1/statistics?bins=0", 422),
        (f"{HW5}/questions/q2_1/statistics?bins=101", 422),
        ("/dashboard/courses/demo/assignments/nope/questions/q2_1/statistics", 404),
    ):
        assert page(graded.browser, path, status).find("p", role="alert").text


# --- a student's history --------------------------------------------------------------------------


def test_a_students_history_lists_each_answers_raw_and_effective_score(graded: Class) -> None:
    tree = page(graded.browser, f"{HW5}/students/student")
    assert tree.find("h1").text.startswith("student")
    rows = tree.by_id("history").find("tbody").find_all("tr")
    assert len(rows) == 1
    submission = f"/dashboard/submissions/{graded.submissions['student']}"
    assert rows[0].find("a").attrs["href"] == submission
    assert [td.text for td in rows[0].find_all("td")] == ["graded", "1", "on time", "1 / 27", "1 / 27"]
    answers = {
        row.find("th").text: [td.text for td in row.find_all("td")]
        for row in tree.find("table", **{"class": "answers"}).find("tbody").find_all("tr")
    }
    assert answers["q1_1"] == ["correct", "1", "1", "1", ""]
    assert answers["q2_1"] == ["incorrect", "0", "0", "2", ""]

    # Due 30 hours ago, 10 % a day started: both of student2's submissions are now late (a moved
    # due time applies to what was sent before it).
    policy = {
        "due_at": (datetime.now(UTC) - timedelta(hours=30)).isoformat(),
        "late": {"penalty_percent": 10},
    }
    api = graded.api
    response = api.client.put(f"{API_HW5}/policy", json=policy, headers=api.accounts.header("ta"))
    assert response.status_code == 200, response.text
    assert api.submit("student2", {"q1_1": {"choices": [2, 3]}}).status_code == 202
    api.grade_pending()
    late = page(graded.browser, f"{HW5}/students/student2")
    rows = late.by_id("history").find("tbody").find_all("tr")
    assert len(rows) == 2
    assert [td.text for td in rows[0].find_all("td")][2:] == ["1 d 6 h late (−20%)", "1 / 27", "0.8 / 27"]
    assert [td.text for td in rows[1].find_all("td")][2:] == ["1 d 6 h late (−20%)", "2 / 27", "1.6 / 27"]

    nobody = page(graded.browser, f"{HW5}/students/nobody", 404)
    assert "nobody" in nobody.find("p", role="alert").text
    assert page(graded.browser, f"{HW5}/students/a%00b", 404).find("p", role="alert").text
    assert page(graded.browser, f"{HW5}/students/{'x' * 65}", 422).find("p", role="alert").text
