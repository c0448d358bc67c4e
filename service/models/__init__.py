"""The SQLAlchemy models, one module per aggregate; importing this package registers them all."""

from service.models.assignment import Assignment, AssignmentVersion, Question
from service.models.base import Base, utcnow
from service.models.course import ApiToken, Course, Enrollment, Role, User
from service.models.lms import (
    DeliveryStatus,
    LmsInboundSecret,
    LmsMapping,
    LmsMappingKind,
    LmsReceivedWebhook,
    OutboxEvent,
    WebhookDelivery,
    WebhookSubscription,
)
from service.models.lti import (
    LtiLaunchSession,
    LtiLineItem,
    LtiNonce,
    LtiPlatform,
    LtiScoreDelivery,
    LtiToolKey,
)
from service.models.queue import Queue
from service.models.rate_limit import RateLimitEvent
from service.models.staff import (
    AssignmentPolicy,
    Extension,
    GradeAuditEntry,
    ManualGrade,
    ManualGradeKind,
    Regrade,
)
from service.models.submission import GradingJob, JobStatus, QuestionResult, Submission, SubmissionFile

__all__ = [
    "ApiToken",
    "Assignment",
    "AssignmentPolicy",
    "AssignmentVersion",
    "Base",
    "Course",
    "DeliveryStatus",
    "Enrollment",
    "Extension",
    "GradeAuditEntry",
    "GradingJob",
    "JobStatus",
    "LmsInboundSecret",
    "LmsMapping",
    "LmsMappingKind",
    "LmsReceivedWebhook",
    "LtiLaunchSession",
    "LtiLineItem",
    "LtiNonce",
    "LtiPlatform",
    "LtiScoreDelivery",
    "LtiToolKey",
    "ManualGrade",
    "ManualGradeKind",
    "OutboxEvent",
    "Question",
    "QuestionResult",
    "Queue",
    "RateLimitEvent",
    "Regrade",
    "Role",
    "Submission",
    "SubmissionFile",
    "User",
    "WebhookDelivery",
    "WebhookSubscription",
    "utcnow",
]
