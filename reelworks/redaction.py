"""Keeping secrets (API keys, OAuth tokens, passwords in URLs) out of logs, tracebacks,
warnings, error messages and saved transcripts.

Errors and logs are built so that they never hold a secret; this is the belt and braces.
`redact` replaces known secret values, and the credentials in any URL (`user:password@`,
`?api-key=...`, `&X-Amz-Signature=...`), with `<redacted>`. Known values are the ones given
to the call plus every one registered with `add_secrets` (process-wide, for good: a secret
does not stop being one) and, once `install` has run, the environment's secret-looking
variables (`*_KEY`, `*_SECRET`, `*_TOKEN`, `*_PASSWORD`).

`install` (run by `progress.setup_logging` and `guarded_logging`) applies `redact` to
everything the process prints about itself:

- every log record, whichever logger made it and whichever handler shows it, handlers added
  later included: the scrubbing happens where records are made (`logging.setLogRecordFactory`),
  message, formatted traceback and stack alike;
- warnings, which it routes through logging (the "py.warnings" logger, as
  `logging.captureWarnings` does);
- uncaught exceptions, in the main thread and in others (`sys.excepthook`, `threading.excepthook`).
"""
from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import threading
import traceback
import warnings
from typing import Iterable, Iterator

REDACTED = "<redacted>"

# Environment variables whose values are secrets (X_API_KEY, AWS_SECRET_ACCESS_KEY,
# REELWORKS_LLM_API_KEY, HF_TOKEN, X_ACCESS_TOKEN_SECRET, ...).
_SECRET_ENV_NAME = re.compile(r"(KEY|SECRET|TOKEN|PASSWORD|PASSWD|CREDENTIALS?)$", re.IGNORECASE)
# ...but not the settings that name Kubernetes objects (REELWORKS_K8S_S3_SECRET=reelworks-s3 is
# the Secret's name, which logs may show).
_NAMES_K8S_OBJECT = re.compile(r"^REELWORKS_K8S_", re.IGNORECASE)
# Shorter values are left alone: replacing "dev" or "1234" everywhere would garble every log
# line, and no real secret is that short.
MIN_SECRET_LENGTH = 8

# user:password@ (or a lone token@) after a URL's scheme.
_URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^\s/?#@\"'<>]+@")
# Query (or fragment) parameters that carry credentials.
_SECRET_PARAMS = ("api-key", "api_key", "apikey", "key", "token", "access_token", "refresh_token", "id_token",
                  "auth", "password", "secret", "client_secret", "signature", "sig", "x-amz-signature",
                  "x-amz-credential", "x-amz-security-token", "x-goog-signature", "x-goog-credential")
_URL_SECRET_PARAM = re.compile(r"(?i)([?&;#](?:%s)=)[^&#;\s\"'<>]+" % "|".join(map(re.escape, _SECRET_PARAMS)))

_lock = threading.Lock()
_registered: tuple[str, ...] = ()  # longest first, so that a secret containing another goes whole


def add_secrets(values: Iterable[str | None]) -> None:
    """Redact these values from everything `redact` sees, from now on."""
    global _registered
    new = {v for v in values if v}
    with _lock:
        if not new.issubset(_registered):
            _registered = tuple(sorted(new.union(_registered), key=len, reverse=True))


def secrets_from_env(environ=None) -> list[str]:
    """The values of the environment's secret-looking variables (see `_SECRET_ENV_NAME`)."""
    environ = os.environ if environ is None else environ
    return [value.strip() for name, value in environ.items()
            if _SECRET_ENV_NAME.search(name) and not _NAMES_K8S_OBJECT.match(name)
            and len(value.strip()) >= MIN_SECRET_LENGTH]


def redact_urls(text: str) -> str:
    """`text` with the credentials of every URL in it (user:password@, ?api-key=...) replaced."""
    if "://" in text:
        text = _URL_USERINFO.sub(rf"\1{REDACTED}@", text)
    if "=" in text:
        text = _URL_SECRET_PARAM.sub(rf"\1{REDACTED}", text)
    return text


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """`text` with every non-empty value of `secrets`, every registered secret and every URL
    credential replaced by `<redacted>`."""
    text = redact_urls(text)
    for value in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(value, REDACTED)
    for value in _registered:
        if value in text:
            text = text.replace(value, REDACTED)
    return text


def _redact_record(record: logging.LogRecord, secrets: Iterable[str] = ()) -> None:
    """Scrub one log record in place: its message, its formatted traceback and its stack."""
    try:
        message = record.getMessage()
    except Exception:
        # A broken format string: logging would print the raw arguments to stderr. Show them
        # scrubbed, as the message, instead.
        try:
            message = f"{record.msg} {record.args!r}"
        except Exception:
            message = str(record.msg)
        record.msg, record.args = redact(message, secrets), None
    else:
        redacted = redact(message, secrets)
        if redacted != message:
            record.msg, record.args = redacted, None
    if record.exc_info and not record.exc_text:
        text = logging.Formatter().formatException(record.exc_info)
        redacted = redact(text, secrets)
        if redacted != text:
            # Handlers print exc_text when it is set; dropping exc_info keeps any that would
            # render the exception itself (rich, JSON formatters) from printing the secret.
            record.exc_text, record.exc_info = redacted, None
    elif record.exc_text:
        record.exc_text = redact(record.exc_text, secrets)
    if record.stack_info:
        record.stack_info = redact(record.stack_info, secrets)


class RedactSecrets(logging.Filter):
    """A filter that scrubs `secrets` (and URL credentials) from the records passing through it.
    `install` covers every handler already; this is for handlers of processes that don't run it."""

    def __init__(self, secrets: Iterable[str]):
        super().__init__()
        self.secrets = tuple(s for s in secrets if s)

    def filter(self, record: logging.LogRecord) -> bool:
        _redact_record(record, self.secrets)
        return True


def _showwarning(message, category, filename, lineno, file=None, line=None) -> None:
    """`warnings.showwarning` through logging, where records are redacted."""
    text = warnings.formatwarning(message, category, filename, lineno, line)
    logging.getLogger("py.warnings").warning("%s", text.rstrip("\n"))


def _excepthook(exc_type, exc, tb) -> None:
    sys.stderr.write(redact("".join(traceback.format_exception(exc_type, exc, tb))))


def _thread_excepthook(args) -> None:
    if args.exc_type is SystemExit:
        return
    name = args.thread.name if args.thread is not None else "?"
    text = "".join(traceback.format_exception(args.exc_type, args.exc_value, args.exc_traceback))
    sys.stderr.write(redact(f"Exception in thread {name}:\n{text}"))


def install() -> None:
    """Redact every log record, warning and uncaught exception of this process from now on
    (see the module docstring), and register the environment's secrets. Safe to call again:
    a second call only picks up secrets the environment has gained since."""
    add_secrets(secrets_from_env())
    with _lock:
        factory = logging.getLogRecordFactory()
        if not getattr(factory, "redacts", False):
            def redacting_factory(*args, **kwargs) -> logging.LogRecord:
                record = factory(*args, **kwargs)
                _redact_record(record)
                return record

            redacting_factory.redacts = True
            logging.setLogRecordFactory(redacting_factory)
    warnings.showwarning = _showwarning
    sys.excepthook = _excepthook
    threading.excepthook = _thread_excepthook


@contextlib.contextmanager
def guarded_logging(secrets: Iterable[str], leaky_loggers: Iterable[str] = ()) -> Iterator[None]:
    """Silence `leaky_loggers` below WARNING and keep `secrets` out of everything this process
    prints (`install`; the secrets stay registered after the call)."""
    for name in leaky_loggers:
        logging.getLogger(name).setLevel(logging.WARNING)
    add_secrets(secrets)
    install()
    yield
