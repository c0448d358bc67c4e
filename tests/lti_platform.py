"""An LTI 1.3 platform (the LMS side) built from `lti1p3platform`, an implementation nobody here
wrote, serving over HTTP on loopback its JWKS, its OAuth 2 token endpoint (lti1p3platform checks
the tool's signed client assertion against the tool's JWKS) and Assignment and Grade Services
(lti1p3platform's AssignmentsGradesService checks the access token and scope; line items and scores
kept in memory here), for the tool's tests. The test plays the browser: it carries the platform's
login initiation to the tool, the tool's redirect back to the platform, and the platform's
auto-submitted launch form to the tool."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from lti1p3platform.exceptions import LineItemNotFoundException
from lti1p3platform.lineitem import TLineItem
from lti1p3platform.ltiplatform import LTI1P3PlatformConfAbstract
from lti1p3platform.message_launch import LTIAdvantageMessageLaunchAbstract
from lti1p3platform.oidc_login import OIDCLoginAbstract
from lti1p3platform.registration import Registration
from lti1p3platform.request import Request, TRequest
from lti1p3platform.score import TScore, UpdateScoreStatus
from lti1p3platform.service_connector import AssignmentsGradesService, TPage

ISSUER = "https://lms.example.edu"
CLIENT_ID = "autograde-client-1"
DEPLOYMENT_ID = "deployment-1"
LEARNER = "http://purl.imsglobal.org/vocab/lis/v2/membership#Learner"
INSTRUCTOR = "http://purl.imsglobal.org/vocab/lis/v2/membership#Instructor"
TEACHING_ASSISTANT = "http://purl.imsglobal.org/vocab/lis/v2/membership/Instructor#TeachingAssistant"


def new_private_key_pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def public_pem(private_pem: str) -> str:
    key = serialization.load_pem_private_key(private_pem.encode(), password=None)
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


class PlatformConf(LTI1P3PlatformConfAbstract):
    def init_platform_config(self, **kwargs: Any) -> None:
        self.registration: Registration = kwargs["registration"]

    def get_registration_by_params(self, **kwargs: Any) -> Registration:
        return self.registration


class Login(OIDCLoginAbstract):
    def set_lti_message_hint(self, **kwargs: Any) -> None:
        self._lti_message_hint = kwargs["hint"]

    def get_redirect(self, url: str) -> str:
        return url


class Launch(LTIAdvantageMessageLaunchAbstract):
    """The platform's answer to the tool's authentication request: the launch form's fields."""

    def __init__(self, authentication_request: dict[str, str], conf: PlatformConf) -> None:
        super().__init__(request=None, platform_config=conf)  # type: ignore[arg-type]
        self._authentication_request = authentication_request

    def get_preflight_response(self) -> dict[str, Any]:
        return self._authentication_request

    def render_launch_form(self, launch_data: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        return launch_data


@dataclass
class Platform:
    base_url: str
    tool_launch_url: str
    private_key: str = field(default_factory=new_private_key_pem)
    # Assignment and Grade Services, as the LMS's gradebook holds them.
    line_items: dict[str, dict[str, Any]] = field(default_factory=dict)
    scores: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    tokens_issued: int = 0
    # How often a tool fetched the platform's public keys (its JWKS URL).
    jwks_fetches: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    # A status code every AGS and token request gets instead of an answer (the LMS is failing).
    failing_with: int | None = None

    def __post_init__(self) -> None:
        self.registration = (
            Registration()
            .set_iss(ISSUER)
            .set_client_id(CLIENT_ID)
            .set_deployment_id(DEPLOYMENT_ID)
            .set_launch_url(self.tool_launch_url)
            # The tool takes deep linking launches at its one launch URL too.
            .set_deeplink_launch_url(self.tool_launch_url)
            .set_platform_private_key(self.private_key)
            .set_platform_public_key(public_pem(self.private_key))
        )
        self.conf = PlatformConf(registration=self.registration)
        self.conf.get_registration()

    def registration_body(self) -> dict[str, Any]:
        """What an instructor enters into PUT /api/v1/courses/{course}/lti/platform."""
        return {
            "issuer": ISSUER,
            "client_id": CLIENT_ID,
            "deployment_ids": [DEPLOYMENT_ID],
            "auth_login_url": f"{self.base_url}/auth",
            "token_url": f"{self.base_url}/token",
            "jwks_url": f"{self.base_url}/jwks",
        }

    def login_initiation(self, tool_login_url: str, user_id: str) -> str:
        """The URL the platform sends the browser to: the tool's login with iss, login_hint ..."""
        self.registration.set_oidc_login_url(tool_login_url)
        login = Login(request=None, platform_config=self.conf)
        login.set_lti_message_hint(hint="resource-link-1")
        url: str = login.initiate_login(user_id)
        return url

    def rotate_key(self) -> None:
        """A new platform key pair signs from now on; the JWKS publishes only the new one."""
        self.private_key = new_private_key_pem()
        self.registration.set_platform_private_key(self.private_key).set_platform_public_key(
            public_pem(self.private_key)
        )

    def trust_tool_keys(self, jwks: dict[str, Any]) -> None:
        """The tool's public keys, as the LMS fetched them from its JWKS URL at registration."""
        self.registration.set_tool_key_set(jwks)  # type: ignore[arg-type]

    @property
    def lineitems_url(self) -> str:
        return f"{self.base_url}/lineitems"

    def launch_form(
        self,
        authentication_request_url: str,
        user_id: str,
        roles: list[str],
        custom: dict[str, str] | None = None,
        name: str = "Ada Lovelace",
        ags: bool = False,
    ) -> dict[str, Any]:
        """The platform's answer to the tool's redirect: the id_token and state to post back."""
        parts = urlsplit(authentication_request_url)
        assert f"{parts.scheme}://{parts.netloc}{parts.path}" == f"{self.base_url}/auth"
        launch = Launch(dict(parse_qsl(parts.query)), self.conf)
        launch.set_user_data(user_id, roles, full_name=name)
        launch.set_resource_link_claim("resource-link-1", title="Homework 5")
        launch.set_launch_context_claim("course-ctx-1", context_title="Deep learning")
        if custom is not None:
            launch.set_custom_parameters_claim(custom)
        if ags:
            launch.set_ags(lineitems_url=self.lineitems_url)
        form: dict[str, Any] = launch.lti_launch()
        return form

    def deep_linking_form(
        self,
        authentication_request_url: str,
        user_id: str,
        roles: list[str],
        accept_types: set[str] | None = None,
        data: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The platform's LtiDeepLinkingRequest (its picker placement) for the tool's redirect."""
        parts = urlsplit(authentication_request_url)
        assert f"{parts.scheme}://{parts.netloc}{parts.path}" == f"{self.base_url}/auth"
        launch = Launch(dict(parse_qsl(parts.query)), self.conf)
        launch.set_user_data(user_id, roles, full_name="Grace Hopper")
        launch.set_launch_context_claim("course-ctx-1", context_title="Deep learning")
        launch.set_dl(
            self.deep_link_return_url,
            title="Place an assignment",
            accept_types=accept_types or {"ltiResourceLink"},
            extra_data=data,
        )
        form: dict[str, Any] = launch.lti_launch()
        return form

    @property
    def deep_link_return_url(self) -> str:
        return f"{self.base_url}/deep-link-return"

    def take_deep_linking_response(self, jwt_field: str) -> list[dict[str, Any]]:
        """What the LMS does with the tool's answer: lti1p3platform checks its signature against
        the tool's JWKS and its message type, and hands back the content items."""
        items: list[dict[str, Any]] = self.conf.validate_deeplinking_resp({"JWT": jwt_field})
        return items


class _HandlerRequest(Request):
    """lti1p3platform's view of a request our HTTP handler received."""

    def build_metadata(self, request: Any) -> TRequest:
        method, path, query, headers, body = request
        return {
            "method": method,
            "form_data": {},
            "get_data": dict(parse_qsl(query)),
            "headers": headers,
            "content_type": headers.get("Content-Type"),
            "path": path,
            "json": json.loads(body) if body else None,
        }


class GradeService(AssignmentsGradesService):
    """lti1p3platform's AGS endpoints over the platform's in-memory gradebook."""

    def __init__(self, request: Request, platform: Platform) -> None:
        super().__init__(request, platform.conf, platform.lineitems_url)
        self.platform = platform

    def find_lineitems(
        self,
        page: int = 1,
        limit: int | None = None,
        line_item_id: str | None = None,
        resource_link_id: str | None = None,
        resource_id: str | None = None,
        tag: str | None = None,
    ) -> TPage:
        items = [
            item
            for item in self.platform.line_items.values()
            if resource_id is None or item.get("resourceId") == resource_id
        ]
        return {"content": items, "has_next": False, "next": None}

    def find_lineitem(self, line_item_id: str) -> TLineItem:
        if line_item_id not in self.platform.line_items:
            raise LineItemNotFoundException()
        return self.platform.line_items[line_item_id]  # type: ignore[return-value]

    def create_lineitem(self, creation_data: TLineItem) -> TLineItem:
        with self.platform.lock:
            number = str(len(self.platform.line_items) + 1)
            item = dict(creation_data) | {"id": f"{self.platform.lineitems_url}/{number}"}
            self.platform.line_items[number] = item
        return item  # type: ignore[return-value]

    def update_lineitem(self, update_data: TLineItem) -> TLineItem:
        raise NotImplementedError

    def delete_lineitem(self, line_item_id: str) -> None:
        raise NotImplementedError

    def update_score(self, line_item_id: str, score: TScore) -> UpdateScoreStatus:
        if line_item_id not in self.platform.line_items:
            raise LineItemNotFoundException()
        with self.platform.lock:
            # AGS 2.0 section 3.4.5: a score not newer than the last one taken is refused.
            stamp = datetime.fromisoformat(str(score["timestamp"]))
            for earlier_item, earlier in self.platform.scores:
                if (
                    earlier_item == line_item_id
                    and earlier["userId"] == score["userId"]
                    and datetime.fromisoformat(earlier["timestamp"]) >= stamp
                ):
                    return UpdateScoreStatus.OLD_TIMESTAMP
            self.platform.scores.append((line_item_id, dict(score)))
        return UpdateScoreStatus.SUCCESS

    def get_results(
        self, line_item_id: str, page: int = 1, limit: int | None = None, user_id: str | None = None
    ) -> TPage:
        raise NotImplementedError


class _PlatformHandler(BaseHTTPRequestHandler):
    platform: Platform

    def _answer(self, status: int, body: Any = None, content_type: str = "application/json") -> None:
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _service(self, method: str) -> GradeService:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        request = _HandlerRequest((method, parts.path, parts.query, self.headers, body))
        return GradeService(request, self.platform)

    def _ags(self, method: str) -> None:
        if self.platform.failing_with is not None:
            self._answer(self.platform.failing_with)
            return
        path = urlsplit(self.path).path.strip("/").split("/")
        service = self._service(method)
        if path == ["lineitems"] and method == "GET":
            response = service.handle_resp(service.handle_get_lineitems)
            result = response.result["content"] if response.code == 200 else None
        elif path == ["lineitems"] and method == "POST":
            response = service.handle_resp(service.handle_create_lineitem)
            result = response.result
        elif len(path) == 3 and path[0] == "lineitems" and path[2] == "scores" and method == "POST":
            response = service.handle_resp(service.handle_update_score, line_item_id=path[1])
            result = None
        else:
            self._answer(404)
            return
        self._answer(response.code, result, response.media_type)

    def do_GET(self) -> None:
        if self.path == "/jwks":
            with self.platform.lock:
                self.platform.jwks_fetches += 1
            self._answer(200, self.platform.conf.get_jwks())
            return
        self._ags("GET")

    def do_POST(self) -> None:
        if self.path != "/token":
            self._ags("POST")
            return
        if self.platform.failing_with is not None:
            self._answer(self.platform.failing_with)
            return
        length = int(self.headers.get("Content-Length") or 0)
        form = dict(parse_qsl(self.rfile.read(length).decode()))
        try:
            token = self.platform.conf.get_access_token(form)
        except Exception as error:  # lti1p3platform refused the assertion
            self._answer(400, {"error": "invalid_client", "error_description": str(error)})
            return
        with self.platform.lock:
            self.platform.tokens_issued += 1
        self._answer(200, dict(token))

    def log_message(self, format: str, *args: Any) -> None:
        return None


@contextmanager
def running_platform(tool_launch_url: str) -> Iterator[Platform]:
    """The platform with its JWKS served on a free loopback port, for the length of the block."""
    handler = type("Handler", (_PlatformHandler,), {})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    platform = Platform(f"http://127.0.0.1:{server.server_address[1]}", tool_launch_url)
    handler.platform = platform
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield platform
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
