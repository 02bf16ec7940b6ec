"""The X account the tweeter posts as: tweepy's v2 `Client` with OAuth 1.0a user context.

Credentials are X_API_KEY, X_API_SECRET, X_ACCESS_TOKEN, X_ACCESS_TOKEN_SECRET: on the cluster,
files of those names in the directory REELWORKS_X_CREDENTIALS_DIR names (the chart mounts the
Secret there read-only, so they are not in the environment every child process and crash dump
inherits); elsewhere, env vars of those names. They never appear in logs or error messages: errors are built from status codes and X's own messages, passed through
`Credentials.redact`, and the OAuth libraries' debug logging (which prints the signed
Authorization header) is silenced.

Every failure becomes one of a few errors the publisher acts on:
`Duplicate` (X already has this exact text: counts as posted), `RateLimited` (429, with the
reset time), `AuthFailed` (401, or a 403 about the app or account), `Rejected` (other 4xx,
and a 403 about this tweet's content: X will never take this request), `Transient` (5xx, timeouts, connection errors: the tweet
may or may not exist, so retry only after looking).
"""
from __future__ import annotations

import contextlib
import html
import logging
import mimetypes
import os
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Iterator, Protocol

from reelworks import redaction, settings
from reelworks.errors import ReelworksError
from reelworks.redaction import RedactSecrets  # noqa: F401  (re-exported: it lived here)

log = logging.getLogger(__name__)

CREDENTIAL_ENV = ("X_API_KEY", "X_API_SECRET", "X_ACCESS_TOKEN", "X_ACCESS_TOKEN_SECRET")
# Loggers that print the signed OAuth header (consumer key, token) at DEBUG.
_LEAKY_LOGGERS = ("oauthlib", "requests_oauthlib")
# X API v2 media upload (the v1.1 upload.twitter.com endpoint is retired).
MEDIA_UPLOAD_PATH = "/2/media/upload"
MEDIA_UPLOAD_URL = f"https://api.x.com{MEDIA_UPLOAD_PATH}"
# An uploaded image's alt text: {"id": media_id, "metadata": {"alt_text": {"text": ...}}}.
MEDIA_METADATA_PATH = "/2/media/metadata"
MEDIA_METADATA_URL = f"https://api.x.com{MEDIA_METADATA_PATH}"
RECENT_PAGES = 3  # up to 300 recent posts are searched when reconciling


class XError(Exception):
    """A failed call to X; `reason` is the metric label."""

    reason = "x_error"


class Duplicate(XError):
    reason = "duplicate"


class RateLimited(XError):
    reason = "rate_limited"

    def __init__(self, message: str, reset_at: float | None):
        super().__init__(message)
        self.reset_at = reset_at


class AuthFailed(XError):
    reason = "auth"


class Rejected(XError):
    reason = "rejected"


class Transient(XError):
    reason = "network"


class Account(Protocol):
    """Where tweets go: X itself, or the dry-run outbox."""

    def verify(self) -> str: ...

    def post(self, text: str, *, reply_to: str | None = None, media_ids: list[str] | None = None,
             plot_id: str = "", part: int = 0) -> str: ...

    def find_posted(self, texts: list[str], since: float) -> dict[str, str]: ...

    def upload_image(self, data: bytes, source: str, *, name: str | None = None,
                     alt_text: str | None = None) -> str: ...


def same_text(a: str, b: str) -> bool:
    """X returns `&amp;`-escaped, NFC text; compare what a reader would see."""
    def norm(s: str) -> str:
        return " ".join(unicodedata.normalize("NFC", html.unescape(s)).split())

    return norm(a) == norm(b)


@dataclass(frozen=True)
class Credentials:
    api_key: str
    api_secret: str
    access_token: str
    access_token_secret: str

    @classmethod
    def load(cls, environ=None) -> "Credentials":
        """From the files in REELWORKS_X_CREDENTIALS_DIR when it is set, else from the environment."""
        directory = settings.x_credentials_dir(environ)
        return cls.from_dir(directory) if directory else cls.from_env(environ)

    @classmethod
    def from_env(cls, environ=None) -> "Credentials":
        environ = os.environ if environ is None else environ
        missing = [name for name in CREDENTIAL_ENV if not environ.get(name, "").strip()]
        if missing:
            raise ReelworksError(f"X credentials missing: set {', '.join(missing)} (or point "
                                 f"{settings.X_CREDENTIALS_DIR_ENV} at a directory of files named after them); "
                                 "nothing was claimed or posted")
        return cls(*(environ[name].strip() for name in CREDENTIAL_ENV))

    @classmethod
    def from_dir(cls, directory: str | Path) -> "Credentials":
        """One file per key, named after it (a mounted Secret); surrounding whitespace is dropped.
        A set directory is the only source: a broken mount fails here rather than falling back."""
        root = Path(directory)
        if not root.is_dir():
            raise ReelworksError(f"X credentials directory {root} ({settings.X_CREDENTIALS_DIR_ENV}) does not "
                                 "exist; nothing was claimed or posted")
        values = {}
        for name in CREDENTIAL_ENV:
            try:
                values[name] = (root / name).read_text().strip()
            except FileNotFoundError:
                values[name] = ""
            except OSError as exc:
                raise ReelworksError(f"cannot read X credential {root / name}: {exc.strerror}; "
                                     "nothing was claimed or posted") from None
        missing = [name for name, value in values.items() if not value]
        if missing:
            raise ReelworksError(f"X credentials missing: no {', '.join(missing)} in {root} (the "
                                 "twitter.credentialsSecret Secret mounted there); nothing was claimed or posted")
        credentials = cls(*values.values())
        # Not in the environment, so redaction.install() did not register them: do it here.
        redaction.add_secrets(credentials.values())
        return credentials

    def __repr__(self) -> str:  # never print the values, even by accident
        return "Credentials(<redacted>)"

    def values(self) -> tuple[str, ...]:
        return (self.api_key, self.api_secret, self.access_token, self.access_token_secret)

    def redact(self, text: str) -> str:
        return redaction.redact(text, self.values())


def guarded_logging(credentials: Credentials):
    """Silence the OAuth debug loggers and redact credentials from every handler's output."""
    return redaction.guarded_logging(credentials.values(), _LEAKY_LOGGERS)


def _timeout_adapter(timeout: float):
    """tweepy's v2 Client sets no timeout: without one a stuck connection hangs the job."""
    from requests.adapters import HTTPAdapter

    class TimeoutAdapter(HTTPAdapter):
        def send(self, request, **kwargs):
            if kwargs.get("timeout") is None:
                kwargs["timeout"] = timeout
            return super().send(request, **kwargs)

    return TimeoutAdapter()


# X's problem types for a 403 about the app or account (permissions, project enrolment,
# authentication): every tweet would fail. Any other 403 is about this tweet's content.
_ACCOUNT_PROBLEMS = ("client-forbidden", "unsupported-authentication", "oauth1-permissions")


def _is_account_problem(exc) -> bool:
    try:
        body = exc.response.json()
    except Exception:  # not JSON: assume the worst (the account), as before
        return True
    text = f"{body.get('type', '')} {body.get('reason', '')} {body.get('detail', '')}".lower()
    return any(p in text for p in _ACCOUNT_PROBLEMS) or "permission" in text or "authenticat" in text


def _is_duplicate(exc) -> bool:
    # v2: 403 "You are not allowed to create a Tweet with duplicate content."; v1.1: code 187.
    return 187 in getattr(exc, "api_codes", []) or any(
        "duplicate" in str(m).lower() for m in getattr(exc, "api_messages", []))


class XAccount:
    """Posts through tweepy (v2 tweets; v2 media upload through its session); failures as `XError`s."""

    def __init__(self, credentials: Credentials, timeout: float = 30):
        import tweepy

        self.credentials = credentials
        self.client = tweepy.Client(consumer_key=credentials.api_key, consumer_secret=credentials.api_secret,
                                    access_token=credentials.access_token,
                                    access_token_secret=credentials.access_token_secret)
        self.client.session.mount("https://", _timeout_adapter(timeout))
        self.user_id: str | None = None
        self.username = ""

    @classmethod
    def from_env(cls, timeout: float = 30) -> "XAccount":
        """The account of the configured credentials (files or env, see `Credentials.load`)."""
        return cls(Credentials.load(), timeout=timeout)

    @contextlib.contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        """tweepy's and requests' exceptions as `XError`s with redacted one-line messages."""
        import requests
        import tweepy

        def message(exc) -> str:
            text = " ".join(str(exc).split())
            return self.credentials.redact(f"{what}: {text}")[:300]

        try:
            yield
        except tweepy.TooManyRequests as exc:
            reset = getattr(exc, "reset_time", None)
            if reset is None:
                header = exc.response.headers.get("x-rate-limit-reset")
                reset = int(header) if header and header.isdigit() else None
            raise RateLimited(message(exc), float(reset) if reset is not None else None) from None
        except tweepy.Unauthorized as exc:
            raise AuthFailed(message(exc) + " (check X_API_KEY, X_API_SECRET, X_ACCESS_TOKEN, "
                                            "X_ACCESS_TOKEN_SECRET)") from None
        except tweepy.Forbidden as exc:
            if _is_duplicate(exc):
                raise Duplicate(message(exc)) from None
            if not _is_account_problem(exc):  # content policy: this plot, not the account
                raise Rejected(message(exc)) from None
            raise AuthFailed(message(exc) + " (the app needs Read and Write permission and "
                                            "user-context access to this endpoint)") from None
        except tweepy.TwitterServerError as exc:
            error = Transient(message(exc))
            error.reason = "server_error"
            raise error from None
        except tweepy.HTTPException as exc:
            raise Rejected(message(exc)) from None
        except requests.Timeout as exc:
            error = Transient(self.credentials.redact(f"{what}: timed out ({type(exc).__name__})"))
            error.reason = "timeout"
            raise error from None
        except (requests.RequestException, tweepy.TweepyException) as exc:
            # v1.1 wraps network errors as TweepyException("Failed to send request: ...").
            raise Transient(self.credentials.redact(f"{what}: {type(exc).__name__}: {exc}")[:300]) from None

    def verify(self) -> str:
        """Check the credentials (GET /2/users/me) and learn the account's id."""
        with self._errors("X GET /2/users/me"):
            me = self.client.get_me(user_auth=True).data
        self.user_id, self.username = str(me.id), me.username
        return f"@{me.username}"

    def post(self, text: str, *, reply_to: str | None = None, media_ids: list[str] | None = None,
             plot_id: str = "", part: int = 0) -> str:
        with self._errors("X POST /2/tweets"):
            response = self.client.create_tweet(text=text, in_reply_to_tweet_id=reply_to,
                                                media_ids=media_ids or None, user_auth=True)
        return str(response.data["id"])

    def find_posted(self, texts: list[str], since: float) -> dict[str, str]:
        """Which of `texts` the account posted since `since` (GET /2/users/:id/tweets)."""
        if self.user_id is None:
            self.verify()
        start = datetime.fromtimestamp(since, timezone.utc).replace(microsecond=0)
        found: dict[str, str] = {}
        token = None
        for _ in range(RECENT_PAGES):
            with self._errors("X GET /2/users/:id/tweets"):
                response = self.client.get_users_tweets(self.user_id, start_time=start, max_results=100,
                                                        pagination_token=token, user_auth=True)
            for tweet in response.data or []:
                for text in texts:
                    if text not in found and same_text(tweet.text, text):
                        found[text] = str(tweet.id)
            token = (response.meta or {}).get("next_token")
            if not token or len(found) == len(texts):
                break
        return found

    def upload_image(self, data: bytes, source: str, *, name: str | None = None,
                     alt_text: str | None = None) -> str:
        """Upload an image through X's v2 media endpoint, with its alt text; `source` is its URI,
        `name` (default: the URI's) gives the type.

        X retired the v1.1 upload (upload.twitter.com) and tweepy has no v2 one, so this is a
        one-shot multipart POST /2/media/upload (`media` + `media_category=tweet_image`, OAuth 1.0a
        user context) through the tweepy client's own session: same timeouts, same errors. The
        alt text goes in POST /2/media/metadata before the tweet; X refusing it (a 4xx) costs
        the text, not the image (one warning)."""
        import tweepy
        from requests_oauthlib import OAuth1

        name = name or PurePosixPath(source).name or "image.png"
        mime = mimetypes.guess_type(name)[0] or "application/octet-stream"
        auth = OAuth1(*self.credentials.values())
        with self._errors(f"X POST {MEDIA_UPLOAD_PATH}"):
            response = self.client.session.post(MEDIA_UPLOAD_URL, auth=auth, files={"media": (name, data, mime)},
                                                data={"media_category": "tweet_image"})
            if response.status_code >= 400:
                raise _http_error(tweepy, response)
            try:
                media = response.json()
                media = media.get("data", media)
                media_id = media.get("id") or media.get("media_id_string") or media.get("media_id")
            except (ValueError, AttributeError):
                media_id = None
            if not media_id:
                raise tweepy.TwitterServerError(response)  # a 2xx without an id: treat as a server fault
        if alt_text:
            self._set_alt_text(str(media_id), alt_text, auth)
        return str(media_id)

    def _set_alt_text(self, media_id: str, text: str, auth) -> None:
        import tweepy

        body = {"id": media_id, "metadata": {"alt_text": {"text": text}}}
        try:
            with self._errors(f"X POST {MEDIA_METADATA_PATH}"):
                response = self.client.session.post(MEDIA_METADATA_URL, auth=auth, json=body)
                if response.status_code >= 400:
                    raise _http_error(tweepy, response)
        except Rejected as exc:
            log.warning("X refused the alt text of image %s (%s): it goes without one", media_id, exc)


def _http_error(tweepy, response):
    """The tweepy exception a tweepy call would raise for this HTTP error response."""
    return {400: tweepy.BadRequest, 401: tweepy.Unauthorized, 403: tweepy.Forbidden, 404: tweepy.NotFound,
            429: tweepy.TooManyRequests}.get(response.status_code,
                                             tweepy.TwitterServerError if response.status_code >= 500
                                             else tweepy.HTTPException)(response)
