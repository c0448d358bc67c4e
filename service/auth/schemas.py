from __future__ import annotations

from pydantic import BaseModel


class TokensRevoked(BaseModel):
    username: str
    # Tokens that were live until this request (0 when all were revoked already).
    revoked: int
