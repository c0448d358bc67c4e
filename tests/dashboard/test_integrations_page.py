"""The integrations page: the course's webhook subscriptions with their delivery log (status,
attempts, last error, next try) and Redeliver (a CSRF-checked POST), whether an inbound secret is
set, the LTI registration; never a secret. Students get nothing. SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from service.dashboard.pages import CSRF_FIELD, SESSION_COOKIE, csrf_token
from tests.conftest import Api
from tests.dashboard.html_tree import parse
from tests.test_authorization_matrix import pass_scores_back
from tests.test_webhooks import Receiver, _deliverer

PAGE = "/dashboard/courses/demo/integrations"
REGISTRATION = {
    "issuer": "https://canvas.example.edu",
    "client_id": "10000000000042",
    "deployment_ids": ["1:abc", "2:def"],
    "auth_login_url": "https://canvas.example.edu/api/lti/authorize_redirect",
    "token_url": "https://canvas.example.edu/login/oauth2/token",
    "jwks_url": "https://canvas.example.edu/api/lti/security/jwks",
}


@pytest.fixture
def csrf(api: Api, browser: TestClient) -> str:
    token = api.accounts.tokens["ta"]
    assert browser.post("/dashboard/sign-in", data={"token": token}).status_code == 303
    return csrf_token(api.client.app.state.settings, token)  # type: ignore[attr-defined]


def _failed_delivery(api: Api) -> tuple[str, str, dict[str, object]]:
    """A subscription to a receiver that is down, and one failed attempt of its first delivery:
    (subscription id, its secret, the delivery as the API logs it)."""
    receiver = Receiver()
    receiver.start()
    receiver.stop()  # connections to its port are refused
    created = api.client.post(
        "/api/v1/courses/demo/webhooks",
        json={"url": receiver.url, "events": ["submission.graded"]},
        headers=api.accounts.header("instructor"),
    )
    assert created.status_code == 201, created.text
    assert api.submit("student", {"q1_1": {"choices": [2, 3]}}).status_code == 202
    api.grade_pending()
    deliverer = _deliverer(api)
    try:
        assert deliverer.run_once() == 1
    finally:
        deliverer.close()
    webhook = created.json()["id"]
    (delivery,) = api.get("ta", f"/api/v1/courses/demo/webhooks/{webhook}/deliveries").json()["items"]
    return webhook, created.json()["secret"], delivery


def test_the_page_shows_webhooks_their_log_the_inbound_secret_and_lti(
    api: Api, browser: TestClient, csrf: str
) -> None:
    empty = parse(browser.get(PAGE).text)
    assert "No webhook subscription" in empty.by_id("no-webhooks").text
    assert "No inbound secret" in empty.by_id("inbound-secret").text
    assert "No LTI platform" in empty.by_id("no-lti").text

    webhook, secret, delivery = _failed_delivery(api)
    inbound = api.client.put(
        "/api/v1/courses/demo/lms/inbound-secret", headers=api.accounts.header("instructor")
    )
    assert inbound.status_code == 200, inbound.text
    registered = api.client.put(
        "/api/v1/courses/demo/lti/platform", json=REGISTRATION, headers=api.accounts.header("instructor")
    )
    assert registered.status_code == 200, registered.text

    page = browser.get(PAGE)
    assert page.status_code == 200
    for hidden in (secret, inbound.json()["secret"]):
        assert hidden not in page.text
    tree = parse(page.text)
    row = tree.by_id(f"delivery-{delivery['id']}")
    cells = [cell.text for cell in row.find_all("td")]
    assert cells[0] == "submission.graded"
    assert (cells[2], cells[3]) == ("pending", "1")
    assert "ConnectError" in cells[5]
    assert cells[6].endswith("UTC")  # the next try
    assert row.find("form").attrs["action"] == (
        f"{PAGE}/webhooks/{webhook}/deliveries/{delivery['id']}/redeliver"
    )
    assert "An inbound secret is set" in tree.by_id("inbound-secret").text
    platform = tree.by_id("lti-platform").text
    for value in ("https://canvas.example.edu", "10000000000042", "1:abc, 2:def"):
        assert value in platform
    assert "PRIVATE" not in page.text

    # Linked from the home page and the assignment's overview.
    assert f'href="{PAGE}"' in browser.get("/dashboard").text
    assert f'href="{PAGE}"' in browser.get("/dashboard/courses/demo/assignments/hw5").text


def test_redeliver_queues_the_delivery_again(api: Api, browser: TestClient, csrf: str) -> None:
    webhook, _secret, delivery = _failed_delivery(api)
    action = f"{PAGE}/webhooks/{webhook}/deliveries/{delivery['id']}/redeliver"

    assert browser.post(action, data={CSRF_FIELD: "0" * 64}).status_code == 403
    assert browser.post(action).status_code == 403
    log = f"/api/v1/courses/demo/webhooks/{webhook}/deliveries"
    assert api.get("ta", log).json()["items"][0]["attempts"] == 1

    done = browser.post(action, data={CSRF_FIELD: csrf})
    assert (done.status_code, done.headers["location"]) == (303, f"{PAGE}?done=redelivered")
    (again,) = api.get("ta", log).json()["items"]
    assert (again["status"], again["attempts"], again["last_error"]) == ("pending", 0, delivery["last_error"])
    assert "queued again" in browser.get(done.headers["location"]).text

    missing = browser.post(
        f"{PAGE}/webhooks/{webhook}/deliveries/2147483647/redeliver", data={CSRF_FIELD: csrf}
    )
    assert missing.status_code == 404
    assert "No such delivery" in missing.text


def test_students_and_other_courses_get_nothing(api: Api, browser: TestClient) -> None:
    as_student = {"Cookie": f"{SESSION_COOKIE}={api.accounts.tokens['student']}"}
    refused = browser.get(PAGE, headers=as_student)
    assert refused.status_code == 403
    assert refused.headers["content-type"].startswith("text/html")
    as_ta = {"Cookie": f"{SESSION_COOKIE}={api.accounts.tokens['ta']}"}
    assert browser.get("/dashboard/courses/nowhere/integrations", headers=as_ta).status_code == 404
    assert "<script>" not in browser.get(f"{PAGE}?done=<script>", headers=as_ta).text
    assert browser.get(PAGE).status_code == 303  # not signed in: to the sign-in form


def test_the_scores_sent_to_the_lms_are_listed_and_redelivered(
    api: Api, browser: TestClient, csrf: str
) -> None:
    pass_scores_back(api)
    assert "No score sent yet" in parse(browser.get(PAGE).text).by_id("no-scores").text
    assert api.submit("student", {"q1_1": {"choices": [2, 3]}}).status_code == 202
    api.grade_pending()
    (score,) = api.get("ta", "/api/v1/courses/demo/lti/score-deliveries").json()["items"]

    row = parse(browser.get(PAGE).text).by_id(f"score-delivery-{score['id']}")
    cells = [cell.text for cell in row.find_all("td")]
    assert cells[:3] == ["hw5", "student", "lms-1"]
    assert (cells[4], cells[5]) == ("pending", "0")
    action = f"{PAGE}/lti/score-deliveries/{score['id']}/redeliver"
    assert row.find("form").attrs["action"] == action

    assert browser.post(action, data={CSRF_FIELD: "0" * 64}).status_code == 403
    done = browser.post(action, data={CSRF_FIELD: csrf})
    assert (done.status_code, done.headers["location"]) == (303, f"{PAGE}?done=score-redelivered")
    assert "sends it to the LMS shortly" in browser.get(done.headers["location"]).text
    missing = browser.post(f"{PAGE}/lti/score-deliveries/2147483647/redeliver", data={CSRF_FIELD: csrf})
    assert missing.status_code == 404
    assert "No such score delivery" in missing.text
