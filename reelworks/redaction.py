"""Keeping secrets (API keys, OAuth tokens) out of logs and error messages.

Errors and logs are built so that they never hold a secret; this is the belt and braces:
`redact` scrubs known values from a text, and `guarded_logging` silences the libraries'
debug loggers that print signed headers and rewrites any log record that would show a
secret, on every handler of the root logger, for the duration of a call.
"""
from __future__ import annotations

import contextlib
import logging
from typing import Iterable, Iterator

REDACTED = "<redacted>"


def redact(text: str, secrets: Iterable[str]) -> str:
    """`text` with every non-empty secret replaced by `<redacted>`."""
    for value in secrets:
        if value:
            text = text.replace(value, REDACTED)
    return text


class RedactSecrets(logging.Filter):
    """Rewrites any record that would print one of `secrets` (belt and braces: none should)."""

    def __init__(self, secrets: Iterable[str]):
        super().__init__()
        self.secrets = tuple(s for s in secrets if s)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact(message, self.secrets)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


@contextlib.contextmanager
def guarded_logging(secrets: Iterable[str], leaky_loggers: Iterable[str] = ()) -> Iterator[None]:
    """Silence `leaky_loggers` below WARNING and redact `secrets` from every root handler's output."""
    for name in leaky_loggers:
        logging.getLogger(name).setLevel(logging.WARNING)
    guard = RedactSecrets(secrets)
    handlers = list(logging.getLogger().handlers)
    for handler in handlers:
        handler.addFilter(guard)
    try:
        yield
    finally:
        for handler in handlers:
            handler.removeFilter(guard)
