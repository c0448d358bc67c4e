"""Who may do what: every endpoint by every kind of caller, each cell asserted.

Callers: the owning student, another student of the course, a TA of another course, the course's TA
and instructor, no token, a bad token. Outside a course its things do not exist (404); inside, another
student's submission is forbidden (403); staff-only actions are forbidden to students (403).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx2
import pytest
from sqlalchemy import select

from service.config import Settings
from service.models import Assignment, LtiLineItem, LtiPlatform
from tests.conftest import Api

CALLERS = ("student", "student2", "other_ta", "ta", "instructor", "no_token", "bad_token")
ANSWERS = {"q1_1": {"choices": [2, 3]}, "q3_2": {"text": "Vanishing gradients: the products shrink."}}


@dataclass(frozen=True)
class Cell:
    method: str
    path: str
    body: dict[str, Any] | None
    expected: dict[str, int]


def _headers(api: Api, caller: str) -> dict[str, str]:
    if caller == "no_token":
        return {}
    if caller == "bad_token":
        return {"Authorization": "Bearer ag_not-a-real-token"}
    return api.accounts.header(caller)


ENROLLED = {"student": 200, "student2": 200, "other_ta": 404, "ta": 200, "instructor": 200}
UNAUTHENTICATED = {"no_token": 401, "bad_token": 401}
STAFF = {"student": 403, "student2": 403, "other_ta": 404, "ta": 200, "instructor": 200}
PUBLIC = dict.fromkeys(CALLERS, 200)
STAFF_ONLY = STAFF | UNAUTHENTICATED
LTI_REGISTRATION = {
    "issuer": "https://lms.example",
    "client_id": "client-1",
    "deployment_ids": ["deployment-1"],
    "auth_login_url": "https://lms.example/auth",
    "token_url": "https://lms.example/token",
    "jwks_url": "https://lms.example/jwks",
}


def _endpoints(
    submission: str,
    regrade: str = "r",
    webhook: str = "{webhook_id}",
    delivery: str = "{delivery_id}",
    score: str = "{delivery_id}",
) -> dict[str, Cell]:
    hooks = "/api/v1/courses/demo/webhooks"
    scores = "/api/v1/courses/demo/lti/score-deliveries"
    return {
        "assignment": Cell("GET", "/api/v1/courses/demo/assignments/hw5", None, ENROLLED | UNAUTHENTICATED),
        "variant": Cell(
            "GET",
            "/api/v1/courses/demo/assignments/hw5/questions/q3_3/variant",
            None,
            ENROLLED | UNAUTHENTICATED,
        ),
        "preview": Cell(
            "POST",
            "/api/v1/courses/demo/assignments/hw5/questions/q2_4/preview",
            {"expression": r"\sum_{t=1}^3 gw_{hh,t}"},
            ENROLLED | UNAUTHENTICATED,
        ),
        "submit": Cell(
            "POST",
            "/api/v1/courses/demo/assignments/hw5/submissions",
            {"answers": {"q1_2": {"choices": [3]}}},
            {k: 202 if v == 200 else v for k, v in ENROLLED.items()} | UNAUTHENTICATED,
        ),
        "list": Cell(
            "GET", "/api/v1/courses/demo/assignments/hw5/submissions", None, ENROLLED | UNAUTHENTICATED
        ),
        "read": Cell(
            "GET",
            f"/api/v1/submissions/{submission}",
            None,
            {"student": 200, "student2": 403, "other_ta": 404, "ta": 200, "instructor": 200}
            | UNAUTHENTICATED,
        ),
        # The TA grades first; the instructor then changes that grade (version 1 -> 2).
        "grade": Cell(
            "PUT",
            f"/api/v1/submissions/{submission}/questions/q3_2/grade",
            {"score": 1.5, "feedback": "Right idea."},
            {"student": 403, "student2": 403, "other_ta": 404, "ta": 200, "instructor": 409}
            | UNAUTHENTICATED,
        ),
        # The matrix overrides q1_1 first; the TA deletes that override, the instructor then finds
        # none left.
        "delete_grade": Cell(
            "DELETE",
            f"/api/v1/submissions/{submission}/questions/q1_1/grade?reason=misgraded",
            None,
            STAFF_ONLY | {"instructor": 404},
        ),
        "manual_queue": Cell(
            "GET",
            "/api/v1/courses/demo/assignments/hw5/questions/q3_2/manual-queue",
            None,
            STAFF_ONLY,
        ),
        "submission_audit": Cell("GET", f"/api/v1/submissions/{submission}/audit", None, STAFF_ONLY),
        "course_audit": Cell("GET", "/api/v1/courses/demo/audit", None, STAFF_ONLY),
        "results_json": Cell(
            "GET",
            f"/api/v1/submissions/{submission}/results.json",
            None,
            {"student": 200, "student2": 403, "other_ta": 404, "ta": 200, "instructor": 200}
            | UNAUTHENTICATED,
        ),
        "student_history": Cell(
            "GET",
            "/api/v1/courses/demo/assignments/hw5/students/student",
            None,
            {"student": 200, "student2": 403, "other_ta": 404, "ta": 200, "instructor": 200}
            | UNAUTHENTICATED,
        ),
        "gradebook": Cell("GET", "/api/v1/courses/demo/assignments/hw5/gradebook", None, STAFF_ONLY),
        "statistics": Cell(
            "GET", "/api/v1/courses/demo/assignments/hw5/questions/q2_1/statistics", None, STAFF_ONLY
        ),
        # Each caller in turn, in the order of CALLERS: the owner revoking their own first still
        # leaves the later callers' answers meaningful (they revoke what is left: nothing).
        "revoke_student": Cell(
            "DELETE",
            "/api/v1/users/student2/tokens",
            None,
            {"student": 403, "student2": 200, "other_ta": 404, "ta": 200, "instructor": 200}
            | UNAUTHENTICATED,
        ),
        "revoke_ta": Cell(
            "DELETE",
            "/api/v1/users/ta/tokens",
            None,
            {"student": 403, "student2": 403, "other_ta": 404, "ta": 200, "instructor": 200}
            | UNAUTHENTICATED,
        ),
        "revoke_instructor": Cell(
            "DELETE",
            "/api/v1/users/instructor/tokens",
            None,
            {"student": 403, "student2": 403, "other_ta": 404, "ta": 403, "instructor": 200}
            | UNAUTHENTICATED,
        ),
        "policy": Cell(
            "GET", "/api/v1/courses/demo/assignments/hw5/policy", None, ENROLLED | UNAUTHENTICATED
        ),
        "set_policy": Cell(
            "PUT", "/api/v1/courses/demo/assignments/hw5/policy", {"counts": "best"}, STAFF | UNAUTHENTICATED
        ),
        "reset_policy": Cell(
            "DELETE", "/api/v1/courses/demo/assignments/hw5/policy", None, STAFF | UNAUTHENTICATED
        ),
        "extensions": Cell(
            "GET", "/api/v1/courses/demo/assignments/hw5/extensions", None, STAFF | UNAUTHENTICATED
        ),
        "set_extension": Cell(
            "PUT",
            "/api/v1/courses/demo/assignments/hw5/extensions/student2",
            {"due_at": "2030-01-01T00:00:00"},
            STAFF | UNAUTHENTICATED,
        ),
        # Each staff caller in turn: the TA deletes it, the instructor finds none left.
        "delete_extension": Cell(
            "DELETE",
            "/api/v1/courses/demo/assignments/hw5/extensions/student2",
            None,
            STAFF | {"ta": 204, "instructor": 404} | UNAUTHENTICATED,
        ),
        "release": Cell(
            "POST", "/api/v1/courses/demo/assignments/hw5/release", None, STAFF | UNAUTHENTICATED
        ),
        "withhold": Cell(
            "DELETE", "/api/v1/courses/demo/assignments/hw5/release", None, STAFF | UNAUTHENTICATED
        ),
        "start_regrade": Cell(
            "POST",
            "/api/v1/courses/demo/assignments/hw5/regrades",
            {"question": "q1_1"},
            {k: 202 if v == 200 else v for k, v in STAFF.items()} | UNAUTHENTICATED,
        ),
        "list_regrades": Cell(
            "GET", "/api/v1/courses/demo/assignments/hw5/regrades", None, STAFF | UNAUTHENTICATED
        ),
        "read_regrade": Cell("GET", f"/api/v1/regrades/{regrade}", None, STAFF | UNAUTHENTICATED),
        "webhooks_create": Cell(
            "POST",
            hooks,
            {"url": "https://lms.example.edu/hook", "events": ["grade.changed"]},
            {k: 201 if v == 200 else v for k, v in STAFF.items()} | UNAUTHENTICATED,
        ),
        "webhooks_list": Cell("GET", hooks, None, STAFF_ONLY),
        "webhooks_deliveries": Cell("GET", f"{hooks}/{webhook}/deliveries", None, STAFF_ONLY),
        "webhooks_redeliver": Cell(
            "POST",
            f"{hooks}/{webhook}/deliveries/{delivery}/redeliver",
            None,
            {k: 202 if v == 200 else v for k, v in STAFF.items()} | UNAUTHENTICATED,
        ),
        # Deleting is idempotent: the instructor deletes what the TA already deleted.
        "webhooks_delete": Cell(
            "DELETE",
            f"{hooks}/{webhook}",
            None,
            {k: 204 if v == 200 else v for k, v in STAFF.items()} | UNAUTHENTICATED,
        ),
        "set_inbound_secret": Cell(
            "PUT",
            "/api/v1/courses/demo/lms/inbound-secret",
            None,
            {"student": 403, "student2": 403, "other_ta": 404, "ta": 403, "instructor": 200}
            | UNAUTHENTICATED,
        ),
        "set_lms_user": Cell(
            "PUT", "/api/v1/courses/demo/lms/users/lms-1", {"username": "student"}, STAFF_ONLY
        ),
        "set_lms_assignment": Cell(
            "PUT", "/api/v1/courses/demo/lms/assignments/lms-hw5", {"assignment": "hw5"}, STAFF_ONLY
        ),
        # No bearer token opens it, only a Standard Webhooks signature (tests/test_lms_inbound.py).
        "lms_event": Cell(
            "POST",
            "/api/v1/lms/events",
            {"type": "enrollment.deleted", "data": {"course": "demo", "user": "lms-1"}},
            dict.fromkeys(CALLERS, 401),
        ),
        # LTI: the course's instructor registers the LMS; the JWKS, the login and the launch answer
        # the LMS and the browser, for whom a bearer token means nothing (docs/lms.md).
        "lti_platform": Cell(
            "PUT",
            "/api/v1/courses/demo/lti/platform",
            LTI_REGISTRATION,
            {"student": 403, "student2": 403, "other_ta": 404, "ta": 403, "instructor": 200}
            | UNAUTHENTICATED,
        ),
        # The LMS grade passback's log and redeliver: the course's staff, TAs included, as for
        # the webhooks' log (a redeliver sends the stored score again; it changes no grade).
        "lti_score_deliveries": Cell("GET", scores, None, STAFF_ONLY),
        "lti_redeliver_score": Cell(
            "POST",
            f"{scores}/{score}/redeliver",
            None,
            {k: 202 if v == 200 else v for k, v in STAFF.items()} | UNAUTHENTICATED,
        ),
        "lti_jwks": Cell("GET", "/.well-known/jwks.json", None, PUBLIC),
        # No course is registered for this issuer: 404 whoever asks.
        "lti_login": Cell(
            "GET",
            "/lti/login?iss=https%3A%2F%2Flms.example&login_hint=u"
            "&target_link_uri=http%3A%2F%2F127.0.0.1%3A8000%2Flti%2Flaunch",
            None,
            dict.fromkeys(CALLERS, 404),
        ),
        # Without the platform's id_token and the login's state: 422 whoever asks.
        "lti_launch": Cell("POST", "/lti/launch", None, dict.fromkeys(CALLERS, 422)),
        # Without the picker's signed ticket and a choice: 422 whoever asks (tests/test_lti_deep_linking.py).
        "lti_deep_link": Cell("POST", "/lti/deep-link", None, dict.fromkeys(CALLERS, 422)),
        "healthz": Cell("GET", "/healthz", None, PUBLIC),
        "readyz": Cell("GET", "/readyz", None, PUBLIC),
        # The matrix runs with AUTOGRADE_METRICS_TOKEN set: no user's API token opens /metrics.
        "metrics": Cell("GET", "/metrics", None, dict.fromkeys(CALLERS, 401)),
    }


ENDPOINTS = list(_endpoints("x"))


def test_the_matrix_names_every_route(api: Api) -> None:
    """A new route must get its row here: the matrix lists every path of the OpenAPI document."""
    paths = set(api.client.get("/openapi.json").json()["paths"])
    covered = {
        re.sub(r"^/api/v1/users/[^/]+/", "/api/v1/users/{username}/", cell.path)
        .replace("/submissions/x", "/submissions/{submission_id}", 1)
        .replace("/extensions/student2", "/extensions/{username}", 1)
        .replace("/regrades/r", "/regrades/{regrade_id}", 1)
        .split("?")[0]
        .replace("/questions/q1_1/grade", "/questions/q3_2/grade")
        for cell in _endpoints("x").values()
    }
    normalised = {
        path.replace("{course}", "demo")
        .replace("{assignment}", "hw5")
        .replace("/questions/{question}/variant", "/questions/q3_3/variant")
        .replace("/questions/{question}/preview", "/questions/q2_4/preview")
        .replace("/questions/{question}/grade", "/questions/q3_2/grade")
        .replace("/questions/{question}/manual-queue", "/questions/q3_2/manual-queue")
        .replace("/students/{username}", "/students/student")
        .replace("/questions/{question}/statistics", "/questions/q2_1/statistics")
        .replace("/lms/users/{external_id}", "/lms/users/lms-1")
        .replace("/lms/assignments/{external_id}", "/lms/assignments/lms-hw5")
        for path in paths
    }
    assert normalised == covered


def pass_scores_back(api: Api) -> None:
    """The course's LMS, a line item of hw5 there (as a launch's AGS claim leaves it) and the
    student's LMS id: grading then queues a score delivery to the LMS."""
    registered = api.client.put(
        "/api/v1/courses/demo/lti/platform", json=LTI_REGISTRATION, headers=api.accounts.header("instructor")
    )
    assert registered.status_code == 200
    mapped = api.client.put(
        "/api/v1/courses/demo/lms/users/lms-1",
        json={"username": "student"},
        headers=api.accounts.header("ta"),
    )
    assert mapped.status_code == 200
    factory = api.client.app.state.session_factory  # type: ignore[attr-defined]
    with factory() as session:
        platform = session.scalars(select(LtiPlatform)).one()
        assignment = session.scalars(
            select(Assignment.id).where(Assignment.course_id == platform.course_id, Assignment.slug == "hw5")
        ).one()
        session.add(
            LtiLineItem(
                platform_id=platform.id, assignment_id=assignment, lineitems_url="https://lms.example/items"
            )
        )
        session.commit()


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_authorization_matrix(api: Api, endpoint: str) -> None:
    settings: Settings = api.client.app.state.settings  # type: ignore[attr-defined]
    api.client.app.state.settings = settings.model_copy(  # type: ignore[attr-defined]
        update={"metrics_token": "the-prometheus-scrape-token"}
    )
    # A webhook subscription of the course, so that grading leaves a delivery in its log.
    hook = api.client.post(
        "/api/v1/courses/demo/webhooks",
        json={"url": "http://127.0.0.1:9/hook", "events": ["submission.graded"]},
        headers=api.accounts.header("instructor"),
    )
    assert hook.status_code == 201
    if endpoint in ("lti_score_deliveries", "lti_redeliver_score"):
        pass_scores_back(api)
    created = api.submit("student", ANSWERS)
    assert created.status_code == 202
    submission = created.json()["id"]
    api.grade_pending()
    scores = api.get("ta", "/api/v1/courses/demo/lti/score-deliveries").json()["items"]
    deliveries = api.get("ta", f"/api/v1/courses/demo/webhooks/{hook.json()['id']}/deliveries").json()[
        "items"
    ]
    if endpoint == "delete_extension":
        granted = api.client.put(
            "/api/v1/courses/demo/assignments/hw5/extensions/student2",
            json={"due_at": "2030-01-01T00:00:00"},
            headers=api.accounts.header("ta"),
        )
        assert granted.status_code == 200
    # A regrade of the course's assignment, started by its TA (none of the callers' business else).
    regrade = api.client.post(
        "/api/v1/courses/demo/assignments/hw5/regrades", json={}, headers=api.accounts.header("ta")
    )
    assert regrade.status_code == 202
    if endpoint == "delete_grade":
        override = {"score": 0, "reason": "copied answer"}
        path = f"/api/v1/submissions/{submission}/questions/q1_1/grade"
        assert api.client.put(path, json=override, headers=api.accounts.header("ta")).status_code == 200
    cell = _endpoints(
        submission,
        regrade.json()["id"],
        hook.json()["id"],
        str(deliveries[0]["id"]),
        str(scores[0]["id"]) if scores else "1",
    )[endpoint]
    assert set(cell.expected) == set(CALLERS)

    send: Callable[..., httpx2.Response] = getattr(api.client, cell.method.lower())
    observed: dict[str, int] = {}
    for caller in CALLERS:
        kwargs: dict[str, Any] = {"headers": _headers(api, caller)}
        if cell.body is not None:
            kwargs["json"] = cell.body
        response = send(cell.path, **kwargs)
        observed[caller] = response.status_code
        if response.status_code >= 400:
            error = response.json()["error"]
            assert set(error) == {"code", "message", "details"}, (caller, error)
        if response.status_code == 401:
            assert response.headers["www-authenticate"] == "Bearer"
        if endpoint == "read" and response.status_code == 200:
            # Staff see the answers and grader details; the student sees neither.
            assert (response.json()["answers"] is not None) == (caller != "student")
        if endpoint == "list" and response.status_code == 200:
            students = {item["student"] for item in response.json()["items"]}
            # Students see only their own; staff see the whole course.
            assert students == ({caller} & {"student"} if caller.startswith("student") else {"student"})
    assert observed == cell.expected
