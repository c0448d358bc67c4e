"""Signing in to the dashboard, its cookie, CSRF, sign-out, and errors shown as pages."""

from __future__ import annotations

from fastapi.testclient import TestClient

from service.dashboard.pages import CSRF_FIELD, SESSION_COOKIE, csrf_token
from tests.conftest import Api


def sign_in(browser: TestClient, api: Api, who: str) -> str:
    token = api.accounts.tokens[who]
    response = browser.post("/dashboard/sign-in", data={"token": token})
    assert response.status_code == 303, response.text
    return token


def test_a_ta_signs_in_and_the_token_lives_only_in_a_strict_http_only_cookie(
    api: Api, browser: TestClient
) -> None:
    form = browser.get("/dashboard/sign-in")
    assert form.status_code == 200
    assert 'type="password"' in form.text

    response = browser.post("/dashboard/sign-in", data={"token": api.accounts.tokens["ta"]})
    assert response.status_code == 303
    assert response.headers["location"] == "/dashboard"
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}=")
    for flag in ("HttpOnly", "Secure", "SameSite=strict", "Path=/dashboard"):
        assert flag.lower() in cookie.lower(), (flag, cookie)

    home = browser.get("/dashboard")
    assert home.status_code == 200
    assert "/dashboard/courses/demo/assignments/hw5" in home.text
    assert api.accounts.tokens["ta"] not in home.text


def test_wrong_tokens_and_students_are_refused(api: Api, browser: TestClient) -> None:
    wrong = browser.post("/dashboard/sign-in", data={"token": "ag_nope"})
    assert wrong.status_code == 401
    assert "not valid" in wrong.text
    student = browser.post("/dashboard/sign-in", data={"token": api.accounts.tokens["student"]})
    assert student.status_code == 403
    assert "teaching staff" in student.text
    assert SESSION_COOKIE not in student.headers.get("set-cookie", "")
    # A student's token set by hand gets no page either.
    by_hand = {"Cookie": f"{SESSION_COOKIE}={api.accounts.tokens['student']}"}
    assert browser.get("/dashboard", headers=by_hand).status_code == 403


def test_without_a_cookie_every_page_sends_the_browser_to_sign_in(browser: TestClient) -> None:
    response = browser.get("/dashboard")
    assert (response.status_code, response.headers["location"]) == (303, "/dashboard/sign-in")


def test_sign_out_needs_the_csrf_token(api: Api, browser: TestClient) -> None:
    token = sign_in(browser, api, "ta")
    forged = browser.post("/dashboard/sign-out", data={CSRF_FIELD: "0" * 64})
    assert forged.status_code == 403
    assert "text/html" in forged.headers["content-type"]
    cross_site = browser.post(
        "/dashboard/sign-out",
        data={CSRF_FIELD: csrf_token(api.client.app.state.settings, token)},  # type: ignore[attr-defined]
        headers={"Origin": "https://evil.example"},
    )
    assert cross_site.status_code == 403
    assert browser.get("/dashboard").status_code == 200

    signed_out = browser.post(
        "/dashboard/sign-out",
        data={CSRF_FIELD: csrf_token(api.client.app.state.settings, token)},  # type: ignore[attr-defined]
    )
    assert signed_out.status_code == 303
    assert (
        "max-age=0" in signed_out.headers["set-cookie"].lower()
        or "expires" in signed_out.headers["set-cookie"].lower()
    )
    browser.cookies.clear()
    assert browser.get("/dashboard").status_code == 303


def test_errors_are_pages_not_json(api: Api, browser: TestClient) -> None:
    sign_in(browser, api, "ta")
    missing = browser.get("/dashboard/no-such-page")
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("text/html")
    assert "<h1>Not found</h1>" in missing.text


def test_the_service_serves_htmx_itself(browser: TestClient) -> None:
    script = browser.get("/dashboard/vendor/htmx.min.js")
    assert script.status_code == 200
    assert "htmx" in script.text[:2000]
    assert browser.get("/dashboard/vendor/..%2Fpackage.json").status_code == 404
    assert browser.get("/dashboard/static/dashboard.css").status_code == 200
