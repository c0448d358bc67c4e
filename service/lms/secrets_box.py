"""Secrets at rest (webhook signing secrets, inbound secrets, later the LTI tool's private keys):
encrypted with Fernet (AES-128-CBC + HMAC-SHA256, from the `cryptography` package) under
AUTOGRADE_ENCRYPTION_KEY, or, when that is unset, under a key derived from AUTOGRADE_SECRET_KEY
with HKDF. A leaked database dump then holds no usable secret; the API never returns one after
the response that created it."""

from __future__ import annotations

import base64

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from service.config import Settings

_DERIVATION_INFO = b"autograde secrets at rest v1"


class UnreadableSecret(Exception):
    """A stored secret the current key cannot decrypt (the key changed, or the row was altered)."""


def _fernet(settings: Settings) -> Fernet:
    if settings.encryption_key:
        return Fernet(settings.encryption_key.encode())
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_DERIVATION_INFO).derive(
        settings.secret_key.encode()
    )
    return Fernet(base64.urlsafe_b64encode(derived))


def encrypt(settings: Settings, plaintext: str) -> str:
    return _fernet(settings).encrypt(plaintext.encode()).decode()


def decrypt(settings: Settings, token: str) -> str:
    try:
        return _fernet(settings).decrypt(token.encode()).decode()
    except InvalidToken:
        raise UnreadableSecret("a stored secret cannot be decrypted with the current key") from None
