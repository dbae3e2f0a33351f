"""The accounts that can call the emulator."""

from __future__ import annotations

import hashlib
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ._model import User

__all__ = ["DEFAULT_USERS", "parse_user"]


def _account_id(email: str) -> str:
    # Atlassian account ids look like "5b10ac8d82e05b22cc7d4ef5" (24 hex) or "712020:<uuid>".
    return hashlib.sha256(email.encode()).hexdigest()[:24]


def make_user(email: str, token: str, time_zone: str = "UTC") -> User:
    """A user whose display name and account id derive from the email."""
    try:
        ZoneInfo(time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {time_zone!r} for user {email}") from None
    local = email.split("@", 1)[0]
    display = " ".join(part.capitalize() for part in local.replace("_", ".").split("."))
    return User(
        email=email,
        api_token=token,
        account_id=_account_id(email),
        display_name=display,
        time_zone=time_zone,
    )


def parse_user(spec: str, *, index: int = 0) -> User:
    """A user from ``email:token`` or ``email:token:time zone`` (e.g. ``Europe/Berlin``)."""
    parts = spec.split(":", 2)
    if len(parts) < 2 or "@" not in parts[0] or not parts[1]:
        raise ValueError(
            f"user #{index + 1} {spec!r} is not EMAIL:TOKEN[:TIME_ZONE], "
            "e.g. alice@example.com:secret:Europe/Berlin"
        )
    return make_user(parts[0], parts[1], parts[2] if len(parts) == 3 else "UTC")


# Two users so "changed by someone else" is testable; neither in UTC, so a client that reads
# JQL dates in the wrong zone fails visibly.
DEFAULT_USERS: tuple[User, ...] = (
    make_user("alice@example.com", "alice-token", "Europe/Berlin"),
    make_user("bob@example.com", "bob-token", "America/New_York"),
)
