"""LTI 1.3 request and response bodies."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

Url = Annotated[str, StringConstraints(strip_whitespace=True, min_length=8, max_length=2000)]
Identifier = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255)]


class PlatformRegistration(BaseModel):
    """What the LMS shows once the tool is registered there (docs/lms.md, Canvas and Moodle)."""

    model_config = ConfigDict(extra="forbid")

    issuer: Url = Field(description="The platform's issuer (`iss`), e.g. https://canvas.instructure.com")
    client_id: Identifier = Field(description="The client id the LMS gave this tool")
    deployment_ids: list[Identifier] = Field(min_length=1, max_length=50)
    auth_login_url: Url = Field(description="The platform's OIDC authorization endpoint")
    token_url: Url = Field(description="The platform's OAuth 2 token endpoint (for grade passback)")
    jwks_url: Url = Field(description="The platform's public keys (JWKS)")


class ToolEndpoints(BaseModel):
    """The URLs to enter into the LMS for this tool."""

    login_url: str
    launch_url: str
    jwks_url: str


class PlatformView(BaseModel):
    course: str
    issuer: str
    client_id: str
    deployment_ids: list[str]
    auth_login_url: str
    token_url: str
    jwks_url: str
    updated_at: datetime
    tool: ToolEndpoints


class Jwks(BaseModel):
    """A JSON Web Key Set (RFC 7517): the tool's public keys, by `kid`."""

    keys: list[dict[str, Any]]
