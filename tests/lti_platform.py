"""An LTI 1.3 platform (the LMS side) built from `lti1p3platform`, an implementation nobody here
wrote, serving its JWKS over HTTP on loopback, for the tool's tests. The test plays the browser:
it carries the platform's login initiation to the tool, the tool's redirect back to the platform,
and the platform's auto-submitted launch form to the tool."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from lti1p3platform.ltiplatform import LTI1P3PlatformConfAbstract
from lti1p3platform.message_launch import LTIAdvantageMessageLaunchAbstract
from lti1p3platform.oidc_login import OIDCLoginAbstract
from lti1p3platform.registration import Registration

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

    def __post_init__(self) -> None:
        self.registration = (
            Registration()
            .set_iss(ISSUER)
            .set_client_id(CLIENT_ID)
            .set_deployment_id(DEPLOYMENT_ID)
            .set_launch_url(self.tool_launch_url)
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

    def launch_form(
        self,
        authentication_request_url: str,
        user_id: str,
        roles: list[str],
        custom: dict[str, str] | None = None,
        name: str = "Ada Lovelace",
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
        form: dict[str, Any] = launch.lti_launch()
        return form


class _JwksHandler(BaseHTTPRequestHandler):
    platform: Platform

    def do_GET(self) -> None:
        if self.path != "/jwks":
            self.send_error(404)
            return
        body = json.dumps(self.platform.conf.get_jwks()).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return None


@contextmanager
def running_platform(tool_launch_url: str) -> Iterator[Platform]:
    """The platform with its JWKS served on a free loopback port, for the length of the block."""
    handler = type("Handler", (_JwksHandler,), {})
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
