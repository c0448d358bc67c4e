"""The inbound half of the LMS integration as the API shows it: the course's inbound secret, the LMS's
ids mapped to ours, and the events the LMS sends (Standard Webhooks: {"type", "timestamp", "data"})."""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel, field_validator

from service.submissions.schemas import Answer, SubmissionAccepted

# Standard Webhooks secrets are 24 to 64 random bytes, base64 after the `whsec_` prefix.
SECRET_PREFIX = "whsec_"  # noqa: S105  (a prefix, not a secret)
MIN_SECRET_BYTES = 24
MAX_SECRET_BYTES = 64

# An LMS's id for a user or an assignment (Canvas and Moodle use numbers, others opaque strings).
ExternalId = Annotated[str, Field(min_length=1, max_length=255)]
CourseSlug = Annotated[str, Field(min_length=1, max_length=64)]
# The usernames an LMS may create: what a terminal, a URL path and a log line take without quoting.
Username = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._@+-]*$")]
LmsRole = Literal["student", "ta", "instructor"]


class InboundSecretSet(BaseModel):
    """Give the secret the LMS signs with (e.g. the one the LMS generated), or send no body and
    the service generates one and answers with it once."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"secret": "whsec_" + "A" * 43 + "="}]}
    )

    secret: str | None = Field(default=None, max_length=len(SECRET_PREFIX) + 4 * MAX_SECRET_BYTES // 3 + 4)

    @field_validator("secret")
    @classmethod
    def _is_a_standard_webhooks_secret(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.startswith(SECRET_PREFIX):
            raise ValueError(f"a Standard Webhooks secret starts with {SECRET_PREFIX}")
        try:
            key = base64.b64decode(value.removeprefix(SECRET_PREFIX), validate=True)
        except (binascii.Error, ValueError):
            raise ValueError(f"the secret after {SECRET_PREFIX} must be base64") from None
        if not MIN_SECRET_BYTES <= len(key) <= MAX_SECRET_BYTES:
            raise ValueError(f"the secret must hold {MIN_SECRET_BYTES} to {MAX_SECRET_BYTES} bytes")
        return value


class InboundSecretView(BaseModel):
    course: str
    # The generated secret, in this response only (never again); null when the caller gave it.
    secret: str | None
    created_at: datetime
    # The secrets it replaced verify events until then (AUTOGRADE_LMS_INBOUND_SECRET_GRACE_SECONDS).
    previous_valid_until: datetime | None
    # How many secrets verify events now, this one included.
    live_secrets: int


class InboundSecretStatus(BaseModel):
    """Whether the course's inbound events can be verified; never the secrets themselves."""

    course: str
    live_secrets: int
    # When the newest live secret was set; null when none is.
    set_at: datetime | None


class UserMappingSet(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str = Field(min_length=1, max_length=64)


class UserMappingView(BaseModel):
    course: str
    external_id: str
    username: str


class AssignmentMappingSet(BaseModel):
    model_config = ConfigDict(extra="forbid")

    assignment: str = Field(min_length=1, max_length=64)


class AssignmentMappingView(BaseModel):
    course: str
    external_id: str
    assignment: str


class EventFile(BaseModel):
    """A file answering one question (a notebook), its bytes in base64."""

    model_config = ConfigDict(extra="forbid")

    question: str = Field(min_length=1, max_length=64)
    name: str | None = Field(default=None, min_length=1, max_length=255)
    # The route's body limit bounds it; the decoded size is checked against the upload limit.
    content_base64: str


class SubmissionCreatedData(BaseModel):
    model_config = ConfigDict(extra="forbid")

    course: CourseSlug
    # The LMS's ids, mapped with PUT .../lms/users/{external_id} and .../lms/assignments/{external_id}.
    user: ExternalId
    assignment: ExternalId
    answers: dict[str, Answer] = Field(default_factory=dict, max_length=200)
    files: list[EventFile] = Field(default_factory=list, max_length=20)


class EnrollmentCreatedData(BaseModel):
    model_config = ConfigDict(extra="forbid")

    course: CourseSlug
    user: ExternalId
    username: Username
    role: LmsRole = "student"


class EnrollmentDeletedData(BaseModel):
    model_config = ConfigDict(extra="forbid")

    course: CourseSlug
    user: ExternalId


class _Event(BaseModel):
    model_config = ConfigDict(extra="forbid")

    timestamp: datetime | None = None


class SubmissionCreatedEvent(_Event):
    type: Literal["submission.created"]
    data: SubmissionCreatedData


class EnrollmentCreatedEvent(_Event):
    type: Literal["enrollment.created"]
    data: EnrollmentCreatedData


class EnrollmentDeletedEvent(_Event):
    type: Literal["enrollment.deleted"]
    data: EnrollmentDeletedData


class LmsEvent(
    RootModel[
        Annotated[
            SubmissionCreatedEvent | EnrollmentCreatedEvent | EnrollmentDeletedEvent,
            Field(discriminator="type"),
        ]
    ]
):
    """An event from the LMS, signed per Standard Webhooks (headers `webhook-id`,
    `webhook-timestamp`, `webhook-signature`) with an inbound secret of the course in `data.course`."""


class LmsEventResult(BaseModel):
    # `duplicate`: this webhook-id was acted on before; nothing was done this time.
    status: Literal["processed", "duplicate"]
    type: str | None = None
    # For submission.created: the submission, as POST .../submissions answers.
    submission: SubmissionAccepted | None = None
