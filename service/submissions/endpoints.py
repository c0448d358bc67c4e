from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request, Response, status
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.datastructures import UploadFile

from service.api import Scope, error_responses
from service.config import Settings
from service.errors import PayloadTooLarge, UnprocessableAnswer
from service.openapi import request_body_schema
from service.submissions import service
from service.submissions.schemas import (
    SubmissionAccepted,
    SubmissionCreate,
    SubmissionList,
    SubmissionView,
    UploadedFile,
)
from service.submissions.untrusted_json import (
    MAX_ANSWER_DEPTH,
    UnacceptableJSON,
    has_control_characters,
    load_strict,
)

router = APIRouter(prefix="/api/v1", tags=["submissions"])

MAX_FILE_PARTS = 20


@dataclass(frozen=True)
class SubmissionRequest:
    body: SubmissionCreate
    files: list[UploadedFile]


async def read_submission_request(request: Request) -> SubmissionRequest:
    """The answers as JSON (`{"answers": ...}`), or as multipart/form-data: a field `answers` holding
    the JSON answers object, plus one file field per notebook question, named by its question id."""
    settings: Settings = request.app.state.settings
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
        try:
            raw: Any = load_strict(await request.body(), MAX_ANSWER_DEPTH)
        except ValueError as error:
            problem = str(error) if isinstance(error, UnacceptableJSON) else "JSON decode error"
            raise RequestValidationError(
                [{"type": "json_invalid", "loc": ("body",), "msg": problem}]
            ) from None
        return SubmissionRequest(_validated_body(raw), [])
    async with request.form(max_files=MAX_FILE_PARTS, max_fields=MAX_FILE_PARTS) as form:
        answers_field = form.get("answers", "{}")
        if not isinstance(answers_field, str):
            raise UnprocessableAnswer("The field `answers` must be a JSON object, not a file.")
        try:
            answers = load_strict(answers_field, MAX_ANSWER_DEPTH)
        except UnacceptableJSON as error:
            raise UnprocessableAnswer(f"The field `answers` cannot be accepted: {error}.") from None
        except ValueError:
            raise UnprocessableAnswer("The field `answers` is not valid JSON.") from None
        files = []
        for key, value in form.multi_items():
            if key == "answers":
                continue
            if not isinstance(value, UploadFile):
                raise UnprocessableAnswer(
                    f"Unexpected form field {key!r}: answers go in the `answers` field."
                )
            content = await value.read(settings.max_upload_bytes + 1)
            if len(content) > settings.max_upload_bytes:
                raise PayloadTooLarge(f"The file for {key} exceeds {settings.max_upload_bytes} bytes.")
            files.append(UploadedFile(key, _file_name(key, value.filename), content))
    return SubmissionRequest(_validated_body({"answers": answers}), files)


def _file_name(key: str, filename: str | None) -> str:
    """The upload's name as stored and shown to staff; a name PostgreSQL or a terminal cannot
    take (a NUL, control characters) is refused rather than silently changed."""
    name = (filename or key)[:255]
    if has_control_characters(name):
        raise UnprocessableAnswer(
            "Some answers cannot be accepted.",
            details={key: "the file name holds control characters (or a NUL); rename the file"},
        )
    return name


def _validated_body(raw: Any) -> SubmissionCreate:
    try:
        return SubmissionCreate.model_validate(raw)
    except ValidationError as error:
        raise RequestValidationError(error.errors(include_url=False)) from None


_SUBMISSION_REQUEST_BODY = {
    "required": True,
    "content": {
        "application/json": {"schema": request_body_schema(SubmissionCreate)},
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "properties": {
                    "answers": {
                        "type": "string",
                        "description": "The JSON answers object (may be {}), as in a JSON body's `answers`.",
                    }
                },
                "additionalProperties": {
                    "type": "string",
                    "format": "binary",
                    "description": "One file per notebook question, the field named by the question id "
                    "(e.g. q4=@hw5.ipynb).",
                },
            }
        },
    },
}


@router.post(
    "/courses/{course}/assignments/{assignment}/submissions",
    operation_id="submissions-create",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=SubmissionAccepted,
    responses=error_responses(400, 401, 403, 404, 409, 413, 422, 429),
    openapi_extra={"requestBody": _SUBMISSION_REQUEST_BODY},
)
async def create_submission(
    course: str,
    assignment: str,
    submission_request: Annotated[SubmissionRequest, Depends(read_submission_request)],
    response: Response,
    scope: Scope,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> SubmissionAccepted:
    """Accept answers for grading. The submission is stored before the 202 is sent and graded
    off the request path; poll the URL in `Location`. A retried POST with the same
    `Idempotency-Key` returns the first submission. Notebooks are uploaded as
    multipart/form-data: `-F answers='{...}' -F q4=@hw5.ipynb`. The assignment's policy may refuse it:
    403 `not_open` / `deadline_passed`, 409 `attempt_limit_reached` (docs/grading-policy.md)."""
    accepted = await scope.run(
        lambda session, principal: service.accept_submission(
            session,
            scope.settings,
            service.NewSubmission(
                principal,
                course,
                assignment,
                submission_request.body,
                idempotency_key,
                submission_request.files,
            ),
        )
    )
    response.headers["Location"] = accepted.url
    return accepted


@router.get(
    "/courses/{course}/assignments/{assignment}/submissions",
    operation_id="submissions-list",
    response_model=SubmissionList,
    responses=error_responses(401, 404),
)
async def list_submissions(
    course: str,
    assignment: str,
    scope: Scope,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    # Bounded: a number past a 64-bit integer fails in the database (a 500), not a 422.
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> SubmissionList:
    """A student's own submissions; the whole course's for its TAs and instructors."""
    return await scope.run(
        lambda session, principal: service.list_submissions(
            session, principal, course, assignment, limit, offset
        )
    )


@router.get(
    "/submissions/{submission_id}",
    operation_id="submissions-get",
    response_model=SubmissionView,
    responses=error_responses(401, 403, 404),
)
async def get_submission(submission_id: uuid.UUID, scope: Scope) -> SubmissionView:
    """Status, score and per-question verdicts with feedback."""
    return await scope.run(
        lambda session, principal: service.get_submission(session, principal, submission_id)
    )
