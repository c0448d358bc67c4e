"""One error hierarchy, mapped to one JSON error shape: {"error": {"code", "message", "details"}}."""

from __future__ import annotations

from typing import Any


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details}}


class AppError(Exception):
    status_code = 400
    code = "bad_request"

    def __init__(self, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class Unauthenticated(AppError):
    status_code = 401
    code = "unauthenticated"


class Forbidden(AppError):
    status_code = 403
    code = "forbidden"


class NotFound(AppError):
    status_code = 404
    code = "not_found"


class Conflict(AppError):
    status_code = 409
    code = "conflict"


class PayloadTooLarge(AppError):
    status_code = 413
    code = "payload_too_large"


class QuotaExceeded(PayloadTooLarge):
    """The upload fits the size limit but not the storage left to the student or the course."""

    code = "quota_exceeded"


class UnprocessableAnswer(AppError):
    status_code = 422
    code = "invalid_answer"


class TooManyRequests(AppError):
    status_code = 429
    code = "rate_limited"

    def __init__(self, message: str, retry_after_seconds: int, details: Any = None) -> None:
        super().__init__(message, details)
        self.retry_after_seconds = retry_after_seconds


class ServiceUnavailable(AppError):
    status_code = 503
    code = "not_ready"


class MaterialError(Exception):
    """Assignment material that cannot be loaded; the message says what and where."""


class NotOpen(Forbidden):
    """A submission before the assignment's opens_at."""

    code = "not_open"


class DeadlinePassed(Forbidden):
    """A submission after the due time without a late rule, or after the late rule's cutoff."""

    code = "deadline_passed"


class AttemptLimitReached(Conflict):
    """A question (or the assignment) has used all its attempts; details name which."""

    code = "attempt_limit_reached"


class WebhookRejected(Unauthenticated):
    """An inbound LMS event whose Standard Webhooks signature does not verify against any live
    secret of its course (or whose signature headers are missing)."""

    code = "invalid_signature"


class StaleWebhook(WebhookRejected):
    """An inbound LMS event signed more than the tolerance (5 minutes) away from now."""

    code = "stale_timestamp"


class UnprocessableEvent(AppError):
    """An inbound LMS event that is not one we can act on: malformed, of an unknown type, or naming
    an LMS user or assignment nobody mapped."""

    status_code = 422
    code = "invalid_event"
