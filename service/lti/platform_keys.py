"""The platforms' public keys (their JWKS), cached per platform for the launches: fetched once per
AUTOGRADE_LTI_JWKS_CACHE_SECONDS, and again when an id_token names a `kid` the cached set lacks
(the platform rotated its key), at most once per AUTOGRADE_LTI_JWKS_REFETCH_SECONDS. PyJWT's
PyJWKClient does the fetching, the caching and the refetch; this keeps one client per platform,
on the application (app.state), not per launch."""

from __future__ import annotations

import threading

import jwt
from jwt import PyJWK

from service.config import Settings


class PlatformKeys:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        # By platform id: the client of its JWKS URL (a new URL, a new client and an empty cache).
        self._clients: dict[int, jwt.PyJWKClient] = {}
        self._lock = threading.Lock()

    def _client(self, platform_id: int, jwks_url: str) -> jwt.PyJWKClient:
        with self._lock:
            client = self._clients.get(platform_id)
            if client is None or client.uri != jwks_url:
                cached = self._settings.lti_jwks_cache_seconds > 0
                client = jwt.PyJWKClient(
                    jwks_url,
                    cache_keys=False,
                    cache_jwk_set=cached,
                    lifespan=self._settings.lti_jwks_cache_seconds if cached else 1,
                    timeout=self._settings.lti_http_timeout_seconds,
                    cooldown_duration=self._settings.lti_jwks_refetch_seconds,
                )
                self._clients[platform_id] = client
            return client

    def signing_key(self, platform_id: int, jwks_url: str, id_token: str) -> PyJWK:
        """The platform's key the id_token's `kid` names (its signature is checked by the caller).
        Raises PyJWKClientConnectionError when the set cannot be fetched, PyJWTError otherwise."""
        return self._client(platform_id, jwks_url).get_signing_key_from_jwt(id_token)
