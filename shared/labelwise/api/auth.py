"""API keys on every route: ``Authorization: Bearer <key>``.

Keys are looked up by their sha256 (the key store never holds plaintext). A missing, malformed,
unknown or revoked key is a 401; authorisation of a classifier (owner / public) is the few-shot
logic's job, which answers 404 to anyone who may not see a classifier.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

from labelwise.errors import InvalidApiKey, InvalidAuthFormat, MissingApiKey
from labelwise.storage.ports import ApiKeyRecord, KeyStore

#: The caller when ``Settings.require_auth`` is off (local experiments only).
ANONYMOUS = ApiKeyRecord(
    key_id="anonymous", tenant_id="local", name="anonymous", created_at=datetime(2026, 1, 1, tzinfo=UTC)
)


def bearer_token(headers: Mapping[str, str]) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header (case-insensitive).

    ``None`` when there is no such header; :class:`InvalidAuthFormat` when it is not ``Bearer <token>``.
    """
    value = next((v for k, v in headers.items() if k.lower() == "authorization"), None)
    if value is None or not value.strip():
        return None
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise InvalidAuthFormat("The Authorization header must be `Bearer <key>`.")
    return token.strip()


def authenticate(keys: KeyStore, headers: Mapping[str, str], require_auth: bool = True) -> ApiKeyRecord:
    """The caller's key record; raises an :class:`Unauthenticated` subclass (401)."""
    token = bearer_token(headers)
    if token is None:
        if not require_auth:
            return ANONYMOUS
        raise MissingApiKey("Missing API key: send `Authorization: Bearer <key>`.")
    record = keys.authenticate(token)
    if record is None:
        raise InvalidApiKey("Invalid or revoked API key.")
    return record
