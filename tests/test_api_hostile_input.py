"""Hostile input to the submission routes: each case is a 4xx in the one error shape, never a 500,
and nothing is stored. Runs on SQLite and PostgreSQL (PostgreSQL text and JSONB cannot hold a NUL
byte or NaN, which is where these used to fail)."""

from __future__ import annotations

import json

import httpx2
import pytest

from tests.conftest import Api
from tests.graders.notebooks import SOLUTION

SUBMISSIONS = "/api/v1/courses/demo/assignments/hw5/submissions"

# One tensor element as its JSON text; `10**400` is an integer no float can hold, so it becomes inf
# as soon as a grader reads it.
NON_FINITE_NUMBERS = {
    "nan": "NaN",
    "inf": "Infinity",
    "-inf": "-Infinity",
    "1e999": "1e999",
    "-1e999": "-1e999",
    "10**400": "1" + "0" * 400,
}


def tensor_answers(number: str) -> str:
    return '{"q3_1": {"value": [' + number + ", 1, 2]}}"


NUL_ANSWERS = [
    {"q3_2": {"text": "attention\u0000 is all"}},
    {"q2_1": {"expression": "y_t\u0000 - 1", "format": "text"}},
    {"q1_2": {"choices": [3], "note\u0000": 1}},
    {"q3_2": {"text": "a lone surrogate \ud800 cannot be stored as UTF-8"}},
]


def assert_refused(response: httpx2.Response, status: int = 422) -> dict[str, object]:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"code", "message", "details"}
    return dict(error)


def assert_nothing_stored(api: Api) -> None:
    assert api.get("student", SUBMISSIONS).json()["items"] == []
    assert api.executor.notified == []


def post_json(api: Api, content: bytes) -> httpx2.Response:
    return api.client.post(
        SUBMISSIONS,
        content=content,
        headers=api.accounts.header("student") | {"Content-Type": "application/json"},
    )


def post_form(
    api: Api, answers_field: str, files: dict[str, tuple[str, bytes]] | None = None
) -> httpx2.Response:
    return api.client.post(
        SUBMISSIONS,
        data={"answers": answers_field},
        files=files or {},
        headers=api.accounts.header("student"),
    )


@pytest.mark.parametrize("number", NON_FINITE_NUMBERS.values(), ids=NON_FINITE_NUMBERS.keys())
def test_non_finite_numbers_in_a_json_body_are_422(api: Api, number: str) -> None:
    error = assert_refused(post_json(api, ('{"answers": ' + tensor_answers(number) + "}").encode()))
    assert error["code"] == "invalid_request"
    assert "finite" in json.dumps(error["details"])
    assert_nothing_stored(api)


@pytest.mark.parametrize("number", NON_FINITE_NUMBERS.values(), ids=NON_FINITE_NUMBERS.keys())
def test_non_finite_numbers_in_the_multipart_answers_field_are_422(api: Api, number: str) -> None:
    notebook = {"q4": ("hw5.ipynb", SOLUTION.read_bytes())}
    error = assert_refused(post_form(api, tensor_answers(number), notebook))
    assert "finite" in str(error["message"]) + json.dumps(error["details"])
    assert_nothing_stored(api)


@pytest.mark.parametrize("answers", NUL_ANSWERS, ids=["text", "formula", "key", "surrogate"])
def test_nul_bytes_and_lone_surrogates_in_answers_are_422(api: Api, answers: dict[str, object]) -> None:
    # json.dumps escapes both (\u0000, \ud800), as a client's JSON encoder would.
    error = assert_refused(post_json(api, json.dumps({"answers": answers}).encode()))
    assert error["code"] == "invalid_request"
    as_form = assert_refused(post_form(api, json.dumps(answers)))
    assert "cannot be stored" in str(as_form["message"])
    assert_nothing_stored(api)


# The reader walks the decoded strings only when the raw bytes show a way for a NUL or a lone
# surrogate to be there; these bodies are the ways a search for `\u` alone would miss.
UNSTORABLE_ENCODINGS = {
    "utf-8 surrogate bytes": b'{"answers": {"q3_2": {"text": "a lone \xed\xa0\x80 surrogate"}}}',
    "utf-16": json.dumps({"answers": {"q3_2": {"text": "attention\u0000"}}}).encode("utf-16"),
    "utf-32": json.dumps({"answers": {"q3_2": {"text": "a lone \ud800"}}}).encode("utf-32"),
}


@pytest.mark.parametrize("body", UNSTORABLE_ENCODINGS.values(), ids=UNSTORABLE_ENCODINGS.keys())
def test_nul_bytes_and_lone_surrogates_are_422_in_every_encoding_the_reader_takes(
    api: Api, body: bytes
) -> None:
    error = assert_refused(post_json(api, body))
    assert "cannot be stored" in json.dumps(error["details"]), error
    assert_nothing_stored(api)


def test_an_answer_nested_past_the_limit_is_422_and_brackets_in_its_strings_count_for_nothing(
    api: Api,
) -> None:
    deep = b'{"answers": {"q3_1": {"value": ' + b"[" * 14 + b"1" + b"]" * 14 + b"}}}"
    error = assert_refused(post_json(api, deep))
    assert "nested 17 levels" in json.dumps(error["details"]), error
    # Past the limit in opening brackets, not in depth: read, and refused only as a wrong answer.
    text = json.dumps({"answers": {"q3_2": {"text": "[{" * 20}}}).encode()
    assert post_json(api, text).status_code == 202
    assert api.executor.notified != []


def multipart_with_raw_file_name(file_name: bytes, content: bytes) -> tuple[bytes, str]:
    """A multipart body written by hand: HTTP clients percent-encode a NUL in a file name, a hostile
    client need not."""
    boundary = "hostile-boundary"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="answers"\r\n\r\n{{}}\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="q4"; filename="'.encode()
        + file_name
        + b'"\r\nContent-Type: application/octet-stream\r\n\r\n'
        + content
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={boundary}"


@pytest.mark.parametrize("file_name", [b"hw5\x00.ipynb", b"\x1b[2Jhw5.ipynb"], ids=["nul", "escape"])
def test_control_characters_in_an_upload_file_name_are_422(api: Api, file_name: bytes) -> None:
    body, content_type = multipart_with_raw_file_name(file_name, SOLUTION.read_bytes())
    response = api.client.post(
        SUBMISSIONS, content=body, headers=api.accounts.header("student") | {"Content-Type": content_type}
    )
    error = assert_refused(response)
    assert "file name" in json.dumps(error["details"])
    assert_nothing_stored(api)
    fine, content_type = multipart_with_raw_file_name(b"hw5 (final).ipynb", SOLUTION.read_bytes())
    accepted = api.client.post(
        SUBMISSIONS, content=fine, headers=api.accounts.header("student") | {"Content-Type": content_type}
    )
    assert accepted.status_code == 202, accepted.text


def test_a_deeply_nested_notebook_is_422(api: Api) -> None:
    for depth in (5_000, 200):
        nested = b'{"cells": [], "nbformat": 4, "metadata": {"x": ' + b"[" * depth + b"]" * depth + b"}}"
        error = assert_refused(post_form(api, "{}", {"q4": ("hw5.ipynb", nested)}))
        assert "nested" in json.dumps(error["details"]), error
    # Brackets inside strings are text, not nesting.
    text_brackets = json.loads(SOLUTION.read_text())
    text_brackets["metadata"]["note"] = "[" * 5_000
    accepted = post_form(api, "{}", {"q4": ("hw5.ipynb", json.dumps(text_brackets).encode())})
    assert accepted.status_code == 202, accepted.text


def test_a_nul_byte_in_a_manual_grade_feedback_is_422(api: Api) -> None:
    submitted = api.submit("student", {"q3_2": {"text": "an answer"}}).json()
    api.grade_pending()
    response = api.client.put(
        f"/api/v1/submissions/{submitted['id']}/questions/q3_2/grade",
        json={"score": 1, "feedback": "good\u0000"},
        headers=api.accounts.header("ta"),
    )
    assert_refused(response)
