"""Settings from the environment (prefix AUTOGRADE_), failing fast on unsafe production values."""

from __future__ import annotations

import math
import zlib
from collections import Counter
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEVELOPMENT_SECRET = "dev-only-secret-change-me"  # noqa: S105  (refused outside development)
REPOSITORY_ROOT = Path(__file__).resolve().parent.parent
# A production key must be long and random. Its estimated entropy is the smaller of two cheap
# bounds: its length times the entropy of its own characters (32 x "a" carries 0 bits) and the size
# of its zlib compression (repeated patterns compress). secrets.token_urlsafe(48) estimates at ~350
# bits; a 32-character hex key (~113) is refused. No estimate spots every weak key: generate it.
MIN_SECRET_KEY_LENGTH = 32
MIN_SECRET_KEY_BITS = 128.0
ZLIB_FRAMING_BYTES = 6  # header and checksum


class Environment(StrEnum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"


class ExecutorKind(StrEnum):
    LOCAL = "local"
    CELERY = "celery"


class LogFormat(StrEnum):
    TEXT = "text"
    JSON = "json"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AUTOGRADE_", extra="ignore")

    env: Environment = Environment.DEVELOPMENT
    database_url: str = "sqlite:///var/autograde.db"
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    # Keys the per-student variant seeds: students must not be able to compute each other's.
    secret_key: str = DEVELOPMENT_SECRET
    demo_student_token: str | None = None
    demo_ta_token: str | None = None

    executor: ExecutorKind = ExecutorKind.LOCAL
    # Grading processes that `autograde serve` starts beside the API (0: grading runs elsewhere).
    local_workers: int = Field(default=1, ge=0, le=64)
    lease_seconds: float = Field(default=120.0, gt=0)
    heartbeat_seconds: float = Field(default=20.0, gt=0)
    max_attempts: int = Field(default=3, ge=1, le=20)
    poll_seconds: float = Field(default=0.5, gt=0)
    claim_batch: int = Field(default=32, ge=1, le=1000)

    # The Celery executor (AUTOGRADE_EXECUTOR=celery): job ids travel through this broker.
    broker_url: str = "redis://127.0.0.1:6379/0"
    # Redis re-delivers an unacknowledged message after this long; it must exceed the longest job,
    # or a long job is delivered twice while it runs (harmless under the lease, but wasted work).
    visibility_timeout_seconds: float = Field(default=3600.0, gt=0)
    # The sweeper (in each API process, one at a time): how often it looks, and how long a job may
    # stay `queued` before its message counts as possibly lost.
    sweep_seconds: float = Field(default=10.0, gt=0)
    sweep_queued_after_seconds: float = Field(default=30.0, gt=0)
    # What a worker grades on (`autograde worker --device cuda` for the gpu queue).
    device: str = Field(default="cpu", pattern=r"^(cpu|cuda(:\d+)?)$")

    # Submissions a student may make per window, counted in the database so that every API process
    # sees the same count. 0 (the default, for development, tests and benchmarks) turns the limit off;
    # docker-compose.yml sets 30 per minute.
    rate_limit_submissions: int = Field(default=0, ge=0)
    rate_limit_window_seconds: float = Field(default=60.0, gt=0)
    # Formula previews a user may ask for per window (counted in the database the same way); on by
    # default: a preview parses on the request path, and twelve clients of one student once raised
    # everyone's latency 50x. 0 turns it off.
    rate_limit_previews: int = Field(default=60, ge=0)
    rate_limit_previews_window_seconds: float = Field(default=60.0, gt=0)

    # The bearer token Prometheus sends to GET /metrics. Unset: /metrics is open in development and
    # answers 404 in production (the figures describe the course's activity).
    metrics_token: str | None = Field(default=None, min_length=16, max_length=256)
    # The Fernet key (base64, 32 bytes) that encrypts the secrets the LMS integration stores; unset:
    # one derived from SECRET_KEY (service/lms/secrets_box.py).
    encryption_key: str | None = Field(default=None, min_length=44, max_length=44)
    # Outbound webhooks (service/lms/delivery.py): one attempt's time limit (connect, send, wait
    # for the answer), so that a slow receiver costs only its own deliveries; the retry schedule
    # (10 s, 1 min, 5 min, 30 min, 2 h, 8 h, then dead) times this scale (tests use a tiny one);
    # and the deliveries one worker claims at a time, sent concurrently.
    webhook_timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    webhook_retry_scale: float = Field(default=1.0, gt=0, le=100)
    webhook_batch: int = Field(default=16, ge=1, le=256)
    # After an instructor sets a new inbound LMS secret, the previous ones still verify events for
    # this long, so the LMS can switch over without losing a call (0: they stop at once).
    lms_inbound_secret_grace_seconds: int = Field(default=24 * 3600, ge=0, le=30 * 24 * 3600)
    # An inbound event's webhook-id is remembered this long (a replay within it is acknowledged and
    # ignored), then pruned. At least the signature's 5-minute tolerance plus a minute of clock skew:
    # an older replay is refused as stale anyway, its timestamp being signed.
    lms_inbound_webhook_id_seconds: int = Field(default=3600, ge=360, le=30 * 24 * 3600)
    # How long the TA dashboard's sign-in cookie lives (the token itself may be revoked sooner).
    dashboard_session_seconds: int = Field(default=8 * 3600, ge=60, le=30 * 24 * 3600)

    # LTI 1.3 (docs/lms.md). The address browsers and LMSs reach this service at: the tool's launch,
    # login and JWKS URLs are built on it.
    public_url: str = Field(default="http://127.0.0.1:8000", pattern=r"^https?://[^/?#\s]+$")
    # How long an OIDC login may take before its launch is refused (its state and nonce expire).
    lti_login_seconds: int = Field(default=600, ge=10, le=3600)
    # A retired tool key stays in the published JWKS this long (platforms cache JWKS for hours).
    lti_key_grace_seconds: int = Field(default=7 * 24 * 3600, ge=0)
    # Fetching a platform's JWKS: one slow LMS must not hold a request thread for long.
    lti_http_timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    # A platform's JWKS is kept this long per platform (launches within it fetch nothing) ...
    lti_jwks_cache_seconds: int = Field(default=300, ge=0, le=24 * 3600)
    # ... and fetched again at once for an id_token whose `kid` it lacks (the platform rotated),
    # at most once per this many seconds per platform: unknown kids cannot make us flood the LMS.
    lti_jwks_refetch_seconds: float = Field(default=5.0, ge=0, le=3600)

    # `json`: one JSON object per log line (with submission and job ids), for log collectors.
    log_format: LogFormat = LogFormat.TEXT

    max_body_bytes: int = Field(default=1_000_000, ge=1024)
    # Uploaded files (notebooks, multipart/form-data): the largest file; a multipart request may be
    # this much larger than max_body_bytes.
    max_upload_bytes: int = Field(default=5_000_000, ge=1024)
    # Uploaded bytes kept in the database per student per course, and per course (0: no quota).
    # Superseded uploads stop counting once pruned (below); docs/operations.md has the figures.
    upload_quota_student_bytes: int = Field(default=100_000_000, ge=0)
    upload_quota_course_bytes: int = Field(default=10_000_000_000, ge=0)
    # Per student and question, the newest N graded uploads keep their bytes; older graded ones
    # keep their row (name, size, SHA-256) and lose the bytes, at the student's next upload.
    upload_retain_per_question: int = Field(default=2, ge=1)

    # How notebooks run: "bwrap" (the sandbox; bubblewrap must be installed) or "unsafe-dev" (no
    # isolation at all, for development machines without bubblewrap; every run logs a warning).
    sandbox: Literal["bwrap", "unsafe-dev"] = "bwrap"
    # Jobs of gpu questions on a worker without CUDA: "cpu" grades them there on the CPU; "wait"
    # leaves them queued for a GPU worker (such a worker then claims only the cpu queue).
    gpu_fallback: Literal["cpu", "wait"] = "cpu"
    db_pool_size: int = Field(default=10, ge=1)

    @model_validator(mode="after")
    def _refuse_unsafe_values_in_production(self) -> Settings:
        if self.env is Environment.PRODUCTION:
            problems = []
            if self.secret_key == DEVELOPMENT_SECRET or not secret_key_is_strong(self.secret_key):
                problems.append(
                    f"AUTOGRADE_SECRET_KEY must be a random value of {MIN_SECRET_KEY_LENGTH}+ characters "
                    f"carrying {MIN_SECRET_KEY_BITS:.0f}+ bits (e.g. secrets.token_urlsafe(48))"
                )
            if self.demo_student_token or self.demo_ta_token:
                problems.append("demo tokens (AUTOGRADE_DEMO_*_TOKEN) are for development only")
            if self.sandbox != "bwrap":
                # Without the sandbox a notebook reads this process's environment: the secret key,
                # the database URL, the reference code.
                problems.append("AUTOGRADE_SANDBOX=unsafe-dev runs students' code unconfined")
            if problems:
                raise ValueError("refusing to start in production: " + "; ".join(problems))
        return self

    @model_validator(mode="after")
    def _visibility_timeout_above_the_lease(self) -> Settings:
        if self.visibility_timeout_seconds <= self.lease_seconds:
            raise ValueError("AUTOGRADE_VISIBILITY_TIMEOUT_SECONDS must exceed AUTOGRADE_LEASE_SECONDS")
        return self

    def startup_warnings(self) -> list[str]:
        """What is allowed but wrong for production; the commands log these when they start."""
        if self.env is Environment.PRODUCTION and self.database_url.startswith("sqlite"):
            return [
                "AUTOGRADE_DATABASE_URL is SQLite in production: one machine, one writer at a time, "
                "and no backups unless you make them; use PostgreSQL"
            ]
        return []


def secret_key_is_strong(key: str) -> bool:
    """More than MIN_SECRET_KEY_BITS by three estimates, the lowest deciding: the characters'
    frequencies, how far zlib compresses the key, and the alphabet it is drawn from."""
    if len(key) < MIN_SECRET_KEY_LENGTH:
        return False
    counts = Counter(key)
    plug_in = -sum(n / len(key) * math.log2(n / len(key)) for n in counts.values())
    # The frequencies of a short key understate its entropy (the plug-in estimate is biased low:
    # 1 in 7,000 keys of secrets.token_urlsafe(24) fell under 128 bits); Miller and Madow's
    # correction adds (distinct characters - 1) / (2 n ln 2) bits per character.
    frequency_bits = len(key) * plug_in + (len(counts) - 1) / (2 * math.log(2))
    compressed_bits = 8 * (len(zlib.compress(key.encode(), 9)) - ZLIB_FRAMING_BYTES)
    alphabet_bits = len(key) * math.log2(_alphabet_size(key))
    return min(frequency_bits, compressed_bits, alphabet_bits) > MIN_SECRET_KEY_BITS


def _alphabet_size(key: str) -> int:
    """How many characters a key like this one is drawn from: 16 for hexadecimal, else the
    classes it uses (lower case, upper case, digits, anything else printable)."""
    if all(character in "0123456789abcdef" for character in key) or all(
        character in "0123456789ABCDEF" for character in key
    ):
        return 16
    classes = (str.islower, str.isupper, str.isdigit)
    size = sum(26 if test is not str.isdigit else 10 for test in classes if any(test(c) for c in key))
    if any(not (c.islower() or c.isupper() or c.isdigit()) for c in key):
        size += 33
    return max(size, 2)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
