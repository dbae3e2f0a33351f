"""Who is calling: Basic ``email:api_token`` (Jira Cloud) or ``Bearer token`` (Data Center PAT)."""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Sequence

from ._model import User

__all__ = ["authenticate"]


def authenticate(header: str | None, users: Sequence[User]) -> User | None:
    """The user these credentials belong to, or None (missing, malformed or wrong)."""
    if not header:
        return None
    scheme, _, credentials = header.strip().partition(" ")
    scheme = scheme.lower()
    credentials = credentials.strip()
    if scheme == "basic":
        try:
            decoded = base64.b64decode(credentials, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        email, colon, token = decoded.partition(":")
        if not colon:
            return None
        for user in users:
            # Emails compare case-insensitively, like Atlassian accounts; tokens in constant time.
            if user.email.lower() == email.lower() and hmac.compare_digest(
                user.api_token.encode(), token.encode()
            ):
                return user
        return None
    if scheme == "bearer":
        for user in users:
            if hmac.compare_digest(user.api_token.encode(), credentials.encode()):
                return user
    return None
