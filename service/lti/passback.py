"""LTI Assignment and Grade Services: sends one claimed score to the platform. The outbox
(service/lms) queues the score with the event that changed it and its delivery loop claims,
retries and dead-letters it; this is the ScoreSender the workers hand that loop.

One attempt: an access token (OAuth 2 client credentials, the client authenticated by a JWT
assertion signed with the tool's key, RFC 7523; cached until shortly before it expires), the
assignment's line item (the stored one, else found in the line items container by resourceId,
else created there, and stored), then the score POSTed to the line item's /scores. Every JWT goes
through PyJWT."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import jwt
from sqlalchemy.orm import Session, sessionmaker

from service.config import Environment, Settings
from service.db import transaction
from service.lms.delivery import ClaimedPassback, one_line
from service.lti import service

logger = logging.getLogger(__name__)

SCOPES = (
    "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem",
    "https://purl.imsglobal.org/spec/lti-ags/scope/score",
)
CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
LINE_ITEM_TYPE = "application/vnd.ims.lis.v2.lineitem+json"
CONTAINER_TYPE = "application/vnd.ims.lis.v2.lineitemcontainer+json"
SCORE_TYPE = "application/vnd.ims.lis.v1.score+json"
ASSERTION_SECONDS = 300
# A token is renewed this long before the platform says it expires (clock skew, a slow attempt).
TOKEN_MARGIN_SECONDS = 60
MAX_TOKEN_SECONDS = 24 * 3600
MAX_URL = 2000
USER_AGENT = "autograde-lti/1"


class PassbackError(Exception):
    def __init__(self, message: str, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


class LtiScoreSender:
    def __init__(self, session_factory: sessionmaker[Session], settings: Settings) -> None:
        self._session_factory = session_factory
        self._settings = settings
        # No redirects: a platform's answer is taken as given, never followed elsewhere.
        self._client = httpx.Client(
            timeout=httpx.Timeout(settings.lti_http_timeout_seconds),
            follow_redirects=False,
            headers={"user-agent": USER_AGENT},
        )
        # (token URL, client id) -> (access token, monotonic time it stops being used)
        self._tokens: dict[tuple[str, str], tuple[str, float]] = {}
        self._lock = threading.Lock()

    def close(self) -> None:
        self._client.close()

    def send(self, passback: ClaimedPassback) -> tuple[int | None, str | None]:
        try:
            token = self._token(passback)
            url = passback.lineitem_url or self._line_item(passback, token)
            response = self._client.post(
                _scores_url(url),
                json=_score(passback),
                headers={"authorization": f"Bearer {token}", "content-type": SCORE_TYPE},
            )
            if response.status_code == 401:
                self._forget_token(passback)  # revoked or expired early: a fresh one next attempt
            if not 200 <= response.status_code < 300:
                raise PassbackError(
                    f"the platform answered {response.status_code} to the score", response.status_code
                )
            return response.status_code, None
        except PassbackError as error:
            return error.status_code, one_line(str(error))
        except httpx.HTTPError as error:
            return None, one_line(f"{type(error).__name__}: {error}")

    # ---- the access token --------------------------------------------------------------------

    def _token(self, passback: ClaimedPassback) -> str:
        key = (passback.token_url, passback.client_id)
        with self._lock:
            cached = self._tokens.get(key)
        if cached is not None and cached[1] > time.monotonic():
            return cached[0]
        with transaction(self._session_factory) as session:
            kid, private_key = service.signing_key(session, self._settings)
        now = int(time.time())
        assertion = jwt.encode(
            {
                "iss": passback.client_id,
                "sub": passback.client_id,
                "aud": passback.token_url,
                "iat": now,
                "exp": now + ASSERTION_SECONDS,
                "jti": uuid.uuid4().hex,
            },
            private_key,
            algorithm="RS256",
            headers={"kid": kid},
        )
        response = self._client.post(
            passback.token_url,
            data={
                "grant_type": "client_credentials",
                "client_assertion_type": CLIENT_ASSERTION_TYPE,
                "client_assertion": assertion,
                "scope": " ".join(SCOPES),
            },
            headers={"accept": "application/json"},
        )
        if response.status_code != 200:
            raise PassbackError(
                f"the platform answered {response.status_code} to the token request", response.status_code
            )
        body = _json(response)
        token, expires_in = body.get("access_token"), body.get("expires_in", 3600)
        if not isinstance(token, str) or not token or len(token) > 8192:
            raise PassbackError("the platform's token answer has no access_token", response.status_code)
        if not isinstance(expires_in, int | float) or isinstance(expires_in, bool):
            expires_in = 3600
        lifetime = min(float(expires_in), MAX_TOKEN_SECONDS) - TOKEN_MARGIN_SECONDS
        if lifetime > 0:
            with self._lock:
                self._tokens[key] = (token, time.monotonic() + lifetime)
        return token

    def _forget_token(self, passback: ClaimedPassback) -> None:
        with self._lock:
            self._tokens.pop((passback.token_url, passback.client_id), None)

    # ---- the line item -----------------------------------------------------------------------

    def _line_item(self, passback: ClaimedPassback, token: str) -> str:
        """The assignment's line item in the container: found by resourceId, else created. Stored,
        so later scores skip this."""
        if passback.lineitems_url is None:
            raise PassbackError("no line item and no line items URL: launch the assignment from the LMS")
        authorization = {"authorization": f"Bearer {token}"}
        found = self._client.get(
            passback.lineitems_url,
            params={"resource_id": passback.assignment},
            headers=authorization | {"accept": CONTAINER_TYPE},
        )
        if found.status_code != 200:
            raise PassbackError(
                f"the platform answered {found.status_code} to the line items query", found.status_code
            )
        items = _json(found)
        url = None
        if isinstance(items, list):
            # A platform may ignore the filter: the resourceId is checked here.
            url = next(
                (
                    item["id"]
                    for item in items
                    if isinstance(item, dict)
                    and item.get("resourceId") == passback.assignment
                    and isinstance(item.get("id"), str)
                ),
                None,
            )
        if url is None:
            line_item: dict[str, Any] = {
                "label": passback.assignment,
                "scoreMaximum": passback.score_maximum,
                "resourceId": passback.assignment,
            }
            if passback.resource_link_id is not None:
                line_item["resourceLinkId"] = passback.resource_link_id
            created = self._client.post(
                passback.lineitems_url,
                json=line_item,
                headers=authorization | {"content-type": LINE_ITEM_TYPE, "accept": LINE_ITEM_TYPE},
            )
            if created.status_code not in (200, 201):
                raise PassbackError(
                    f"the platform answered {created.status_code} to the new line item", created.status_code
                )
            body = _json(created)
            url = body.get("id") if isinstance(body, dict) else None
        if not isinstance(url, str) or not self._usable(url):
            raise PassbackError("the platform's line item has no usable id (an http(s) URL)")
        with transaction(self._session_factory) as session:
            service.store_line_item_url(session, passback.line_item_id, url)
        return url

    def _usable(self, url: str) -> bool:
        parts = urlsplit(url)
        schemes = {"https"} if self._settings.env is Environment.PRODUCTION else {"https", "http"}
        return len(url) <= MAX_URL and parts.scheme in schemes and bool(parts.hostname)


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        raise PassbackError("the platform's answer is not JSON", response.status_code) from None


def _scores_url(line_item_url: str) -> str:
    # LTI AGS 2.0 section 3.4: the score service is the line item's URL with /scores appended to
    # its path (the query string, if any, kept).
    parts = urlsplit(line_item_url)
    return urlunsplit(parts._replace(path=parts.path.rstrip("/") + "/scores"))


def _score(passback: ClaimedPassback) -> dict[str, Any]:
    score: dict[str, Any] = {
        "userId": passback.lms_user_id,
        "scoreMaximum": passback.score_maximum,
        "activityProgress": "Completed",
        # A TA still has to grade an answer: the LMS shows the score as provisional.
        "gradingProgress": "PendingManual" if passback.pending_manual else "FullyGraded",
        "timestamp": passback.timestamp.isoformat(timespec="milliseconds"),
    }
    if passback.score_given is not None:
        score["scoreGiven"] = passback.score_given
    return score
