"""Secrets the operator binds to hosts, and keeping their values out of logs and messages.

A `Secret` never shows its value when printed; `resolve_secret` reads one from the environment
or a file; the process-wide `REDACTOR` replaces every registered value (and the Basic-auth token
built from it) with ``***`` wherever text leaves the host: audit lines, log records, errors.
"""

from __future__ import annotations

import base64
import logging
import os
import re
import threading
from pathlib import Path

from ..._errors import ConfigError

__all__ = [
    "REDACTOR",
    "RedactingFilter",
    "Redactor",
    "Secret",
    "basic_token",
    "install_redaction",
    "resolve_secret",
    "split_secret_ref",
]

MASK = "***"


class Secret:
    """A credential value that does not show itself in reprs, f-strings or tracebacks."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The value itself; call this only where it goes on the wire."""
        return self._value

    def __repr__(self) -> str:
        return f"Secret('{MASK}')"

    __str__ = __repr__


def basic_token(username: str, secret: Secret) -> str:
    """The credentials part of ``Authorization: Basic <token>``."""
    return base64.b64encode(f"{username}:{secret.reveal()}".encode()).decode("ascii")


class Redactor:
    """Replaces registered secret values in text with ``***``."""

    def __init__(self) -> None:
        self._values: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self._lock = threading.Lock()

    def register(self, secret: Secret, *, username: str | None = None) -> None:
        """Redact `secret` from now on, and its Basic-auth token when bound with `username`."""
        values = {secret.reveal()}
        if username is not None:
            values.add(basic_token(username, secret))
        with self._lock:
            self._values |= {value for value in values if value}
            # Longest first, so a secret that contains another is masked whole.
            ordered = sorted(self._values, key=len, reverse=True)
            self._pattern = re.compile("|".join(map(re.escape, ordered)))

    def redact(self, text: str) -> str:
        """`text` with every registered value replaced by ``***``."""
        pattern = self._pattern
        return text if pattern is None else pattern.sub(MASK, text)


REDACTOR = Redactor()
"""The process-wide redactor: `resolve_secret` registers every secret it reads here."""


def split_secret_ref(ref: str) -> tuple[str, str]:
    """``"env:NAME"`` → ``("env", "NAME")``, likewise ``file:PATH``; else `ValueError`."""
    kind, _, name = ref.partition(":")
    if kind not in ("env", "file") or not name:
        raise ValueError(f'"{ref}" is not a reference like "env:NAME" or "file:PATH"')
    return kind, name


def resolve_secret(ref: str) -> Secret:
    """Read the secret `ref` names: ``env:NAME`` or ``file:PATH`` (one trailing newline dropped).

    Raises `ConfigError` naming `ref` (never the value) when it is missing or empty.
    """
    try:
        kind, name = split_secret_ref(ref)
    except ValueError as exc:
        raise ConfigError(f"secret {exc}") from None
    if kind == "env":
        value = os.environ.get(name)
        if value is None:
            raise ConfigError(f"secret {ref}: environment variable {name} is not set")
    else:
        try:
            value = Path(name).expanduser().read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError(f"secret {ref}: file not found") from None
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            raise ConfigError(f"secret {ref}: cannot read: {reason}") from None
        # Editors and `echo` end files with a newline that is not part of the secret.
        value = value.removesuffix("\n").removesuffix("\r")
    if not value:
        raise ConfigError(f"secret {ref} is empty")
    secret = Secret(value)
    REDACTOR.register(secret)
    return secret


class RedactingFilter(logging.Filter):
    """Masks registered secrets in a record's message, arguments and traceback text."""

    def __init__(self, redactor: Redactor = REDACTOR) -> None:
        super().__init__()
        self._redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        # Render first: an argument's str() (an exception, a URL object) may hold the secret.
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            # Arguments that do not fit the format: keep both, as logging would show them,
            # rather than raise into the code that logged (this also runs at record creation).
            message = f"{record.msg} % {record.args!r}"
        record.msg = self._redactor.redact(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self._redactor.redact(record.exc_text)
        return True


_installed: frozenset[str] = frozenset()
_install_lock = threading.Lock()


def install_redaction(logger_name: str = "corral") -> None:
    """Redact every record logged under `logger_name`: that logger and all its descendants.

    A filter added to a logger only sees records created on that very logger, not those of
    children such as ``corral.audit``, and a filter on handlers misses handlers added later; so
    the filter runs from the log-record factory, which every record passes through. Idempotent.
    """
    global _installed
    with _install_lock:
        if not _installed:
            redacting = RedactingFilter()
            make_record = logging.getLogRecordFactory()

            def factory(*args: object, **kwargs: object) -> logging.LogRecord:
                record = make_record(*args, **kwargs)
                if any(_under(record.name, name) for name in _installed):
                    redacting.filter(record)
                return record

            logging.setLogRecordFactory(factory)
        # Replaced, never mutated: the factory reads it from any thread without the lock.
        _installed = _installed | {logger_name}


def _under(name: str, ancestor: str) -> bool:
    return name == ancestor or name.startswith(ancestor + ".")
