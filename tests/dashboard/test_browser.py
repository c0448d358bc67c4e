"""The issue's scenario in a real browser: Debian's Chromium (headless, driven by Playwright for
Python, never a downloaded browser) against the real service (`autograde serve` with its grading
processes, on a database of its own) seeded with hw5 graded for several students.

A TA signs in, reads the overview, the gradebook, a question's statistics with its histogram,
grades q3_2 by rubric ("Save and next"), overrides a score with a reason and sees the total and
the audit log change, starts a regrade and watches it finish, downloads the CSV and checks its
rows; a student's token is refused. Every page is checked by axe-core (no serious or critical
violation) and photographed at 1366x768 and 375x667 (var/test-artifacts/browser/, git-ignored),
with no page-wide horizontal scroll on the phone.
"""

from __future__ import annotations

import csv
import io
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import pytest

from tests.conftest import HW5_FOLDER, REPOSITORY_ROOT, REQUIRE_SERVICES
from tests.test_e2e_serve import CLI, cli, free_port, running, service_env, wait_until_graded
from tests.test_regrades import Q3_1_TOLERANCE

playwright_api = pytest.importorskip("playwright.sync_api")

CHROMIUM = Path(os.environ.get("AUTOGRADE_TEST_CHROMIUM", "/usr/bin/chromium"))
AXE = REPOSITORY_ROOT / "service" / "dashboard" / "assets" / "node_modules" / "axe-core" / "axe.min.js"
ARTIFACTS = REPOSITORY_ROOT / "var" / "test-artifacts" / "browser"
VIEWPORTS = {"laptop": {"width": 1366, "height": 768}, "phone": {"width": 375, "height": 667}}
HW5 = "/dashboard/courses/demo/assignments/hw5"
STUDENTS = ("alice", "bob", "carol", "dave")
# The pages of the two other slices of issue 12 (gradebook, statistics, CSV; submission view,
# override, grading). Their steps below follow the page contract of the brief; the lead
# sets this to True when the three branches are merged.
PEER_PAGES_MERGED = True

# What each student submits: q3_2 free text from three of them, expression answers (text and
# LaTeX) from three, q3_1 right or 0.5 off (which version 2 of hw5 accepts: the regrade's change).
SUBMISSIONS: dict[str, dict[str, Any]] = {
    "alice": {
        "q3_2": {"text": "Argmax is not differentiable, so no gradient reaches the keys. <script>x</script>"},
        "q2_1": {"expression": "yhat[t] - y[t]", "format": "text"},
        "q3_1": {"value": [6, 1, 2.5]},
        "q1_1": {"choices": [2, 3]},
    },
    "bob": {
        "q3_2": {"text": "It is cheap: one lookup instead of a weighted sum."},
        "q2_1": {"expression": "y[t] - yhat[t]", "format": "text"},
        "q3_1": {"value": [6, 1, 2]},
    },
    "carol": {
        "q3_2": {"text": "Hard attention picks one value."},
        "q2_1": {"expression": r"\hat{y}_t - y_t", "format": "latex"},
        "q1_2": {"choices": [3]},
    },
    "dave": {"q1_1": {"choices": [2]}, "q3_1": {"value": [6, 1, 2]}},
}


@dataclass
class Served:
    url: str
    tokens: dict[str, str]
    submissions: dict[str, str]


def _chromium_or_skip() -> None:
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is not installed; `make system-deps` installs Debian's chromium"
        if REQUIRE_SERVICES:
            pytest.fail(message)
        pytest.skip(message)
    assert AXE.is_file(), "axe-core is missing: `make venv` installs the dashboard's npm packages"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """The service with one grading process on a SQLite database of its own: hw5 loaded into
    course demo, a TA and four students, their submissions graded; then a version 2 of hw5 whose
    q3_1 accepts an answer 0.5 off (so a regrade changes a score)."""
    _chromium_or_skip()
    folder = tmp_path_factory.mktemp("browser")
    port = free_port()
    env = service_env(f"sqlite:///{folder / 'dashboard.db'}", port, AUTOGRADE_LOCAL_WORKERS="1")
    cli("db", "upgrade", env=env)
    cli("assignments", "load", str(HW5_FOLDER), "--course", "demo", env=env)
    tokens = {"ta": cli("users", "add", "ta", "--course", "demo", "--role", "ta", env=env).strip()}
    for student in STUDENTS:
        tokens[student] = cli(
            "users", "add", student, "--course", "demo", "--role", "student", env=env
        ).strip()
    url = f"http://localhost:{port}"
    with running([*CLI, "serve"], env, port, folder / "serve.log"):
        submissions = {}
        for student, answers in SUBMISSIONS.items():
            response = httpx2.post(
                f"{url}/api/v1/courses/demo/assignments/hw5/submissions",
                json={"answers": answers},
                headers={"Authorization": f"Bearer {tokens[student]}"},
                timeout=10,
            )
            assert response.status_code == 202, response.text
            submissions[student] = response.json()["id"]
        for student, submission in submissions.items():
            result = wait_until_graded(f"{url}/api/v1/submissions/{submission}", tokens[student], timeout=60)
            assert result["status"] == "graded", result
        version2 = folder / "hw5-v2"
        shutil.copytree(HW5_FOLDER, version2)
        toml = (version2 / "assignment.toml").read_text()
        (version2 / "assignment.toml").write_text(
            toml.replace(Q3_1_TOLERANCE, "[6, 1, 2]] }\nrtol = 0.0\natol = 0.6")
        )
        assert "version 2" in cli("assignments", "load", str(version2), "--course", "demo", env=env)
        yield Served(url, tokens, submissions)


@pytest.fixture(scope="module")
def chromium(served: Served) -> Iterator[Any]:
    with playwright_api.sync_playwright() as playwright:
        # --no-sandbox: CI runs as root, where Chromium's own sandbox cannot start.
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"]
        )
        yield browser
        browser.close()


def check_page(page: Any, name: str) -> None:
    """axe-core on the page as it is (no serious or critical violation), then screenshots at both
    sizes, and on the phone no page-wide horizontal scroll (wide tables scroll in their box)."""
    page.add_script_tag(path=str(AXE))
    violations = page.evaluate(
        """async () => {
            const results = await axe.run(document, {resultTypes: ["violations"]});
            return results.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                nodes: v.nodes.slice(0, 5).map(n => n.target.join(" "))}));
        }"""
    )
    serious = [v for v in violations if v["impact"] in ("serious", "critical")]
    assert not serious, f"axe on {name}: {serious}"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for size, viewport in VIEWPORTS.items():
        page.set_viewport_size(viewport)
        page.screenshot(path=str(ARTIFACTS / f"{name}-{size}.png"), full_page=True)
        if size == "phone":
            overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 1, f"{name} scrolls sideways on a phone by {overflow}px"
    page.set_viewport_size(VIEWPORTS["laptop"])


def sign_in(page: Any, served: Served, who: str) -> None:
    page.goto(f"{served.url}/dashboard/sign-in")
    page.get_by_label("API token").fill(served.tokens[who])
    page.get_by_role("button", name="Sign in").click()


def test_a_ta_works_through_the_dashboard(served: Served, chromium: Any) -> None:
    context = chromium.new_context(viewport=VIEWPORTS["laptop"], accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(15_000)
    expect = playwright_api.expect

    # Sign in: the cookie holds the token, the home page lists hw5.
    sign_in(page, served, "ta")
    expect(page).to_have_url(f"{served.url}/dashboard")
    check_page(page, "home")
    page.get_by_role("link", name="HW5: Recurrent networks and attention").click()

    # The overview: counts, the chart, the links.
    expect(page).to_have_url(f"{served.url}{HW5}")
    expect(page.locator("#counts")).to_contain_text("Submissions")
    assert page.locator("#counts dd").first.inner_text() == "4"
    expect(page.locator("svg#submissions-chart[role=img]")).to_have_attribute(
        "aria-label", re.compile("4 in all")
    )
    check_page(page, "overview")

    if PEER_PAGES_MERGED:
        gradebook_statistics_grading_and_override(page, served)

    # A regrade of q3_1 against version 2: the progress bar, then the report of changed scores.
    page.goto(f"{served.url}{HW5}")
    form = page.locator("#regrade-form")
    form.get_by_label("Question").select_option("q3_1")
    expect(form.get_by_label("Keep manual grades")).to_be_checked()
    form.get_by_role("button", name="Start regrade").click()
    expect(page.locator("progress#regrade-progress")).to_be_visible()
    changes = page.locator("#regrade-changes")
    expect(changes).to_be_visible(timeout=60_000)
    expect(changes.locator("tbody tr")).to_have_count(1)
    expect(changes.locator("tbody tr").first).to_contain_text("alice")
    expect(changes.locator("tbody tr").first).to_contain_text("2.0 (correct)")
    check_page(page, "regrade-done")

    # The policy page: an extension granted through its form is listed.
    page.get_by_role("link", name="Policy and extensions").click()
    page.get_by_label("username").fill("bob")
    page.get_by_label("New due time").fill("2030-05-08T12:00")
    page.get_by_label("Reason").fill("ill for a week")
    page.get_by_role("button", name="Grant extension").click()
    expect(page.get_by_role("status")).to_contain_text("The extension is saved")
    expect(page.locator("#extensions tbody tr")).to_contain_text("ill for a week")
    check_page(page, "policy")

    if PEER_PAGES_MERGED:
        download_the_csv(page, served)

    # An error is a page with its message, not a blank page or a stack trace.
    response = page.goto(f"{served.url}/dashboard/courses/demo/assignments/nope")
    assert response is not None
    assert response.status == 404
    expect(page.get_by_role("alert")).to_contain_text("No assignment")
    context.close()


def test_a_student_token_is_refused(served: Served, chromium: Any) -> None:
    context = chromium.new_context(viewport=VIEWPORTS["laptop"])
    page = context.new_page()
    sign_in(page, served, "alice")
    playwright_api.expect(page.get_by_role("alert")).to_contain_text("teaching staff")
    assert page.url == f"{served.url}/dashboard/sign-in"
    check_page(page, "student-refused")
    assert page.goto(f"{served.url}{HW5}").url.endswith("/dashboard/sign-in")
    context.close()


# ---- the steps on the other slices' pages, enabled by PEER_PAGES_MERGED ---------------------------


def gradebook_statistics_grading_and_override(page: Any, served: Served) -> None:
    expect = playwright_api.expect
    # The gradebook: several students, sortable, with a statistics link per question.
    page.goto(f"{served.url}{HW5}")
    page.get_by_role("link", name="Gradebook").click()
    gradebook = page.locator("table#gradebook")
    expect(gradebook).to_be_visible()
    for student in STUDENTS:
        expect(gradebook).to_contain_text(student)
    check_page(page, "gradebook")

    # q2_1's statistics: the histogram the server drew.
    page.goto(f"{served.url}{HW5}/questions/q2_1/statistics")
    histogram = page.locator("svg#histogram[role=img]")
    expect(histogram).to_have_attribute("aria-label", re.compile("^Score histogram of q2_1"))
    assert histogram.locator("title").count() >= 1
    check_page(page, "statistics")

    # Grading q3_2 by rubric: three answers wait; "Save and next" moves to the next one.
    page.goto(f"{served.url}{HW5}/questions/q3_2/grading")
    check_page(page, "grading")
    page.get_by_label("Non-differentiable", exact=False).check()
    page.get_by_label("Comment").fill("Right: no gradient through argmax.")
    page.get_by_role("button", name="Save and next").click()
    expect(page.get_by_role("button", name="Save and next")).to_be_visible()
    for _ in range(2):
        page.get_by_role("button", name="Save and next").click()
    expect(page.get_by_text("Nothing left to grade")).to_be_visible()

    # An override with its reason: the total and the audit log change.
    page.goto(f"{served.url}/dashboard/submissions/{served.submissions['dave']}")
    total_before = page.locator("#total").inner_text()
    page.get_by_role("button", name="Override").first.click()
    dialog = page.locator("dialog#override-dialog")
    expect(dialog).to_be_visible()
    dialog.get_by_label("Score").fill("0.25")
    dialog.get_by_label("Reason").fill("Partly right on paper")
    dialog.get_by_role("button", name="Save override").click()
    expect(page.locator("table#audit tbody tr", has_text="Partly right on paper")).to_have_count(1)
    expect(page.locator("#total")).not_to_have_text(total_before)
    expect(page.locator("#total")).to_contain_text("of 27")
    check_page(page, "submission")


def download_the_csv(page: Any, served: Served) -> None:
    page.goto(f"{served.url}{HW5}/gradebook")
    with page.expect_download() as download_info:
        page.get_by_role("link", name="Download CSV").click()
    path = download_info.value.path()
    rows = list(csv.DictReader(io.StringIO(Path(path).read_text())))
    assert sorted(row["student"] for row in rows) == sorted(STUDENTS)
    by_student = {row["student"]: row for row in rows}
    assert by_student["alice"]["q3_1"] == "2"  # the regrade's new score
