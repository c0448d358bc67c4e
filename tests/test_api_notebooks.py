"""Notebooks over HTTP: multipart uploads stored with the submission, graded in the sandbox."""

from __future__ import annotations

import json
from typing import Any

import httpx2
import pytest

from graders.sandbox import bwrap_path
from tests.conftest import Api
from tests.graders.notebooks import SOLUTION, notebook_text, solution_cells, with_function

UNSCALED_ATTENTION = "def attention(q, K, V):\n    return torch.softmax(q @ K.transpose(-2, -1), dim=-1) @ V"


def upload(
    api: Api, who: str, answers: dict[str, Any], files: dict[str, tuple[str, bytes]], **headers: str
) -> httpx2.Response:
    return api.client.post(
        "/api/v1/courses/demo/assignments/hw5/submissions",
        data={"answers": json.dumps(answers)},
        files=files,
        headers=api.accounts.header(who) | headers,
    )


@pytest.mark.skipif(bwrap_path() is None, reason="needs bubblewrap (make system-deps)")
def test_a_notebook_uploaded_over_http_is_graded_per_check(api: Api) -> None:
    notebook = notebook_text(with_function(solution_cells(), "attention", UNSCALED_ATTENTION)).encode()
    response = upload(api, "student", {"q1_2": {"choices": [3]}}, {"q4": ("hw5.ipynb", notebook)})
    assert response.status_code == 202, response.text
    location = response.headers["location"]
    staff_view = api.get("ta", location).json()
    assert staff_view["answers"]["q4"] == {
        "name": "hw5.ipynb",
        "sha256": __import__("hashlib").sha256(notebook).hexdigest(),
        "size": len(notebook),
    }

    assert api.grade_pending() == 1
    result = api.get("student", location).json()
    assert result["status"] == "graded"
    q4 = result["questions"]["q4"]
    assert (q4["verdict"], q4["score"], q4["max_score"]) == ("partial", 8.0, 10.0)
    lines = q4["feedback"].splitlines()
    assert [line.split(":")[0] for line in lines] == ["rnn_forward", "attention", "bptt_grad_w_hh", "model"]
    assert lines[1].startswith("attention: 0/2 - wrong values")
    assert "sqrt(d)" in lines[1]
    assert q4["details"] is None  # staff only
    assert result["score"] == 9.0  # q1_2 (1) + q4 (8)

    details = api.get("ta", location).json()["questions"]["q4"]["details"]
    points = {name: check["points"] for name, check in details["checks"].items()}
    assert points == {"rnn_forward": 2.0, "attention": 0.0, "bptt_grad_w_hh": 2.0, "model": 4.0}


def test_a_notebook_that_fails_nbformat_is_accepted_and_graded_invalid(api: Api) -> None:
    broken = json.dumps(
        {"cells": [{"cell_type": "code", "source": 5}], "metadata": {}, "nbformat": 4}
    ).encode()
    response = upload(api, "student", {}, {"q4": ("hw5.ipynb", broken)})
    assert response.status_code == 202, response.text
    api.grade_pending()
    q4 = api.get("student", response.headers["location"]).json()["questions"]["q4"]
    assert q4["verdict"] == "invalid"
    assert "missing an expected key: metadata" in q4["feedback"]


def test_a_replayed_upload_returns_the_first_submission(api: Api) -> None:
    files = {"q4": ("hw5.ipynb", SOLUTION.read_bytes())}
    first = upload(api, "student", {}, files, **{"Idempotency-Key": "nb-1"})
    again = upload(api, "student", {}, files, **{"Idempotency-Key": "nb-1"})
    assert first.status_code == again.status_code == 202
    assert first.json()["id"] == again.json()["id"]
    other = upload(
        api, "student", {}, {"q4": ("hw5.ipynb", SOLUTION.read_bytes() + b" ")}, **{"Idempotency-Key": "nb-1"}
    )
    assert other.status_code == 409


def test_bad_uploads_are_refused_before_anything_is_stored(api: Api) -> None:
    notebook = SOLUTION.read_bytes()
    cases: list[tuple[dict[str, Any], dict[str, tuple[str, bytes]], int, str]] = [
        ({"q4": {"name": "x", "sha256": "0" * 64, "size": 1}}, {}, 422, "upload the notebook as a file"),
        ({}, {"q4": ("hw5.ipynb", b"print('not a notebook')")}, 422, "not JSON"),
        ({}, {"q4": ("hw5.ipynb", b"\xff\xfe")}, 422, "not UTF-8"),
        ({}, {"q4": ("hw5.ipynb", b'{"a": 1}')}, 422, "`cells` and `nbformat`"),
        ({}, {"q1_2": ("hw5.ipynb", notebook)}, 422, "not as a file"),
        ({}, {"q9": ("hw5.ipynb", notebook)}, 422, "no such question"),
        ({}, {"q4": ("big.ipynb", b" " * 5_000_001)}, 413, "exceeds 5000000 bytes"),
    ]
    for answers, files, status, message in cases:
        response = upload(api, "student", answers, files)
        assert response.status_code == status, (message, response.text)
        assert message in response.text, response.text
    not_json = api.client.post(
        "/api/v1/courses/demo/assignments/hw5/submissions",
        data={"answers": "{nope"},
        files={"q4": ("hw5.ipynb", notebook)},
        headers=api.accounts.header("student"),
    )
    assert not_json.status_code == 422
    deep = api.client.post(
        "/api/v1/courses/demo/assignments/hw5/submissions",
        data={"answers": "[" * 100_000 + "]" * 100_000},
        headers=api.accounts.header("student"),
    )
    assert deep.status_code == 422
    assert api.get("student", "/api/v1/courses/demo/assignments/hw5/submissions").json()["items"] == []
    assert api.executor.notified == []


def test_openapi_documents_both_request_bodies(api: Api) -> None:
    post = api.client.get("/openapi.json").json()["paths"][
        "/api/v1/courses/{course}/assignments/{assignment}/submissions"
    ]["post"]
    assert set(post["requestBody"]["content"]) == {"application/json", "multipart/form-data"}
