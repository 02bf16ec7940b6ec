"""Fetching posters: HTTPS URLs with bounded concurrency, deadlines, retries and resume, or
files from a local/S3 folder. Every failure is counted by reason, never fatal here.

Poster URLs come from a CSV anyone can edit, so a download trusts neither the URL nor the server:

- https only, to public addresses only: every connection (the first, each redirect hop, each
  retry) resolves the host name and is refused when any address it resolves to is loopback,
  private, link-local, CGNAT (100.64/10), multicast or reserved (IPv4, IPv6, and the IPv4
  address inside an IPv6 one); the address actually connected to is checked again, because
  DNS may answer differently the second time;
- one deadline per request, from connecting to the last byte (socket timeouts are per read,
  so a server dripping a byte a second would hold them for ever);
- a size cap, checked while the body streams into a temporary file (never whole in memory);
- 429 and 5xx are retried by urllib3's `Retry`: exponential backoff, or the wait the server
  asks for in Retry-After.
"""
from __future__ import annotations

import contextlib
import ipaddress
import logging
import socket
import tempfile
import threading
from collections import Counter
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence
from urllib.parse import urljoin

import certifi
import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.exceptions import (ConnectTimeoutError, HTTPError, InvalidHeader, MaxRetryError, NameResolutionError,
                                NewConnectionError, ReadTimeoutError)
from urllib3.util import Retry, parse_url

from reelworks import redaction, storage
from reelworks.errors import NotFoundError, ReelworksError
from reelworks.progress import track

log = logging.getLogger(__name__)

# A poster file is tens of kilobytes; stop reading a response past this.
MAX_DOWNLOAD_BYTES = 20 * 2**20
MAX_REDIRECTS = 5
# A server asking to come back later than this is given up on (the poster counts as failed)
# rather than holding a worker.
MAX_RETRY_AFTER = 30.0
RETRY_STATUSES = frozenset([429, *range(500, 600)])
_HEADERS = {"User-Agent": "reelworks-posters/1 (+https://github.com/reelworks/reelworks)",
            # Images gain nothing from compression, and the size cap then counts what is stored.
            "Accept-Encoding": "identity"}
_CHUNK = 64 * 1024


@dataclass
class FetchItem:
    key: str        # where the bytes are kept below the cache/images folder, e.g. "89869.jpg"
    source: str     # an http(s) URL or a file name below the images folder


class _StoredBytes(Mapping):
    """key -> bytes, read from storage when asked for: thousands of posters never sit in memory at once."""

    def __init__(self, uris: dict[str, str]):
        self._uris = uris

    def __getitem__(self, key: str) -> bytes:
        return storage.read_bytes(self._uris[key])

    def __iter__(self):
        return iter(self._uris)

    def __len__(self) -> int:
        return len(self._uris)


@dataclass
class FetchResult:
    stored: dict[str, str] = field(default_factory=dict)      # key -> URI of its bytes
    failures: dict[str, str] = field(default_factory=dict)    # key -> reason
    fetched: int = 0        # downloaded in this run
    reused: int = 0         # already in the cache (resume)

    @property
    def data(self) -> Mapping[str, bytes]:
        """key -> bytes of every item fetched or found (read on access)."""
        return _StoredBytes(self.stored)

    @property
    def reasons(self) -> Counter:
        return Counter(self.failures.values())


def is_url(source: str) -> bool:
    return source.startswith(("http://", "https://"))


class FetchError(Exception):
    """A download that failed. `reason` is the label failures are counted by ("http_404",
    "timeout", "connection", "too_large", "not_https", "blocked_address", ...); the message is
    one line saying why."""

    def __init__(self, reason: str, message: str | None = None):
        super().__init__(message or reason)
        self.reason = reason


# ------------------------------------------------------------------ where a download may go

# TESTS ONLY: origins (scheme, host, port) of test servers that downloads may reach over plain
# http on loopback. Empty unless a test enters `allow_test_server`; nothing else adds to it.
_TEST_SERVERS: set[tuple[str, str, int]] = set()


def _origin(url: str) -> tuple[str, str, int]:
    parsed = parse_url(url)
    scheme = (parsed.scheme or "").lower()
    return scheme, (parsed.host or "").lower(), parsed.port or (443 if scheme == "https" else 80)


@contextlib.contextmanager
def allow_test_server(url: str) -> Iterator[None]:
    """TESTS ONLY: let downloads reach the server at `url` (e.g. http://127.0.0.1:8123) over
    plain http on loopback. Any other origin, on the same host included, stays refused."""
    origin = _origin(url)
    _TEST_SERVERS.add(origin)
    try:
        yield
    finally:
        _TEST_SERVERS.discard(origin)


# IPv6 ranges that carry an IPv4 address in their last 32 bits (NAT64, the old IPv4-compatible form).
_IPV4_INSIDE = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("::/96"))


def is_public_address(address: str) -> bool:
    """Whether a download may connect to `address`: a global unicast address, and for IPv6 one
    whose IPv4 address inside (mapped, NAT64, 6to4, Teredo) is public too."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # without an IPv6 zone ("fe80::1%eth0")
    if ip.version == 6:
        inside = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if inside is None and any(ip in network for network in _IPV4_INSIDE):
            inside = ipaddress.IPv4Address(int(ip) & 0xFFFF_FFFF)
        if inside is not None and not is_public_address(str(inside)):
            return False
    return ip.is_global and not ip.is_multicast


def _check_url(url: str) -> None:
    """Refuse a URL (the first or a redirect's) that is not https, unless it is a test server."""
    try:
        scheme, host, _ = origin = _origin(url)
    except ValueError:  # urllib3's LocationParseError
        host = ""
    if not host:
        raise FetchError("bad_url", f"refused {redaction.redact(url)}: no host")
    if scheme != "https" and origin not in _TEST_SERVERS:
        raise FetchError("not_https", f"refused {redaction.redact(url)}: only https is fetched")


def _refuse_address(host: str, address: str) -> FetchError:
    where = host if host == address else f"{host} ({address})"
    return FetchError("blocked_address", f"refused {where}: {address} is not a public address")


# ------------------------------------------------------------------ one request, one deadline

_current = threading.local()  # the deadline of the request this thread is making


class _Deadline:
    """Ends a request at a fixed time whatever the server does: a timer shuts down the sockets
    the request opened, which ends any read blocked on them."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.expired = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def watch(self, sock: socket.socket) -> None:
        with self._lock:
            if self.expired:
                raise TimeoutError("deadline passed")
            # A duplicate, because TLS takes over (detaches) the original socket object; a
            # shutdown through either ends the one connection.
            self._sockets.append(sock.dup())

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def __enter__(self) -> "_Deadline":
        self._timer.start()
        return self

    def __exit__(self, *exc) -> None:
        self._timer.cancel()
        with self._lock:
            for sock in self._sockets:
                sock.close()
            self._sockets.clear()


class _CheckedConnection:
    """A urllib3 connection that reaches public addresses only (checked on every connection:
    the first, each redirect hop, each retry) and is watched by the request's deadline."""

    origin_scheme = ""

    def _new_conn(self):
        trusted = (self.origin_scheme, self.host.lower(), self.port) in _TEST_SERVERS
        if not trusted:
            for address in self._addresses():
                if not is_public_address(address):
                    raise _refuse_address(self.host, address)
        sock = super()._new_conn()
        try:
            peer = sock.getpeername()[0]
            if not trusted and not is_public_address(peer):
                raise _refuse_address(self.host, peer)
            _current.deadline.watch(sock)
        except BaseException:
            sock.close()
            raise
        return sock

    def _addresses(self) -> list[str]:
        """The host's addresses: itself when it is one, else every address DNS gives for it
        (one private answer is enough to refuse: DNS may hand out either)."""
        try:
            return [str(ipaddress.ip_address(self.host))]
        except ValueError:
            pass
        try:
            infos = socket.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise NameResolutionError(self.host, self, exc) from exc
        return sorted({info[4][0] for info in infos})


class _CheckedHTTPConnection(_CheckedConnection, HTTPConnection):
    origin_scheme = "http"


class _CheckedHTTPSConnection(_CheckedConnection, HTTPSConnection):
    origin_scheme = "https"


class _HTTPPool(urllib3.HTTPConnectionPool):
    ConnectionCls = _CheckedHTTPConnection


class _HTTPSPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _CheckedHTTPSConnection


@contextlib.contextmanager
def _request(url: str, deadline: _Deadline):
    """The response to one GET of `url` (redirects not followed, no retries), on a connection of
    its own so that the deadline watches all of it, from connecting to the last byte."""
    scheme, host, port = _origin(url)  # the port always given: without it, "[::1]" would read as host ":" port 1
    timeout = urllib3.Timeout(connect=deadline.seconds, read=deadline.seconds)  # a backstop: the deadline rules
    if scheme == "https":
        pool = _HTTPSPool(host, port, maxsize=1, retries=False, headers=_HEADERS, timeout=timeout,
                          ca_certs=certifi.where())
    else:
        pool = _HTTPPool(host, port, maxsize=1, retries=False, headers=_HEADERS, timeout=timeout)
    _current.deadline = deadline
    try:
        response = pool.urlopen("GET", parse_url(url).request_uri, redirect=False, preload_content=False,
                                assert_same_host=False)
        try:
            yield response
        finally:
            response.close()
    finally:
        _current.deadline = None
        pool.close()


def _save_body(response, path: Path, max_bytes: int, shown_url: str) -> int:
    too_large = FetchError("too_large", f"refused {shown_url}: larger than {max_bytes} bytes")
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise too_large
    size = 0
    with open(path, "wb") as out:
        for chunk in response.stream(_CHUNK):
            size += len(chunk)
            if size > max_bytes:
                raise too_large
            out.write(chunk)
    return size


def _failure_reason(exc: Exception, deadline: _Deadline) -> str:
    # urllib3's NewConnectionError (refused, unreachable, no such host) is a ConnectTimeoutError too.
    timed_out = isinstance(exc, (ReadTimeoutError, TimeoutError)) or (
        isinstance(exc, ConnectTimeoutError) and not isinstance(exc, NewConnectionError))
    return "timeout" if deadline.expired or timed_out else "connection"


def _retry_after(retry, response) -> float | None:
    """The server's Retry-After in seconds, as urllib3 reads it (seconds or an HTTP date); None
    when it sent none or an unreadable one."""
    try:
        return retry.get_retry_after(response)
    except InvalidHeader:
        return None


def download_to(url: str, path: str | Path, *, timeout: float = 10.0, retries: int = 2, backoff: float = 0.5,
                max_bytes: int = MAX_DOWNLOAD_BYTES) -> int:
    """Stream `url` into the file `path`; returns its size in bytes.

    `timeout`: seconds one request may take, from connecting to the last byte. Timeouts,
    connection errors, 429 and 5xx are retried up to `retries` times (urllib3's `Retry`:
    exponential backoff from `backoff` seconds, or the server's Retry-After up to
    MAX_RETRY_AFTER); any other 4xx is final. Raises `FetchError` ("http_404", "timeout",
    "connection", "too_large", "not_https", "blocked_address", "too_many_redirects"); on failure
    nothing is left at `path`.
    """
    path = Path(path)
    retry = Retry(total=retries, backoff_factor=backoff, backoff_jitter=backoff / 4, status_forcelist=RETRY_STATUSES,
                  allowed_methods={"GET"}, respect_retry_after_header=True)
    hops = 0
    last = "connection"  # the reason of the latest failure, reported when the retries are spent
    try:
        while True:
            _check_url(url)  # the first URL and every redirect's (the addresses: on connecting)
            shown = redaction.redact(url)
            deadline = _Deadline(timeout)
            try:
                with deadline, _request(url, deadline) as response:
                    location = response.get_redirect_location()
                    if not location and response.status < 300:
                        size = _save_body(response, path, max_bytes, shown)
                        if deadline.expired:  # a socket shut down at the deadline looks like the end of the body
                            raise TimeoutError("deadline passed")
                        return size
            except (HTTPError, OSError) as exc:
                last = _failure_reason(exc, deadline)
                retry = retry.increment("GET", url, error=exc)  # MaxRetryError once the retries are spent
                retry.sleep()
                continue
            if location:
                hops += 1
                if hops > MAX_REDIRECTS:
                    raise FetchError("too_many_redirects", f"refused {shown}: more than {MAX_REDIRECTS} redirects")
                url = urljoin(url, location)
                continue
            last = f"http_{response.status}"
            if not retry.is_retry("GET", response.status, "Retry-After" in response.headers):
                raise FetchError(last, f"{shown}: HTTP {response.status}")
            wait = _retry_after(retry, response)
            if wait is not None and wait > MAX_RETRY_AFTER:
                raise FetchError(last, f"{shown}: HTTP {response.status}, retry after {wait:.0f} s")
            retry = retry.increment("GET", url, response=response)
            log.debug("%s: HTTP %d, retrying in %s", shown, response.status,
                      f"{wait:g} s (Retry-After)" if wait is not None else "the backoff")
            retry.sleep(response if wait is not None else None)  # the wait asked for, else the backoff
    except MaxRetryError:
        path.unlink(missing_ok=True)
        message = f"{redaction.redact(url)}: {last.replace('_', ' ')}, gave up after {retries} retries"
        raise FetchError(last, message) from None
    except BaseException:
        path.unlink(missing_ok=True)
        raise


def download(url: str, *, timeout: float = 10.0, retries: int = 2, backoff: float = 0.5,
             max_bytes: int = MAX_DOWNLOAD_BYTES) -> bytes:
    """One URL's bytes (through a temporary file: see `download_to`)."""
    with tempfile.TemporaryDirectory(prefix="reelworks-fetch-") as tmp:
        path = Path(tmp) / "body"
        download_to(url, path, timeout=timeout, retries=retries, backoff=backoff, max_bytes=max_bytes)
        return path.read_bytes()


def fetch_all(items: Sequence[FetchItem], folder: str, *, workers: int = 8, timeout: float = 10.0,
              retries: int = 2, on_item: Callable[[], None] | None = None) -> FetchResult:
    """Every item, stored in `folder`: URLs are downloaded there (skipping keys already there,
    so an interrupted run resumes); file names must be there already. The bytes stay in
    storage (`result.data` reads them when asked)."""
    if workers < 1:
        raise ReelworksError("workers must be >= 1")
    result = FetchResult()
    existing = set(storage.list_keys(folder))
    examples: dict[str, str] = {}  # reason -> one failure's message, for the summary
    lock = threading.Lock()

    def one(item: FetchItem) -> None:
        # A CSV row's file name must not read `../../etc/passwd` (or follow a link) out of the folder.
        uri = storage.inside(folder, item.key, "poster file")
        try:
            if is_url(item.source) and item.key not in existing:
                with tempfile.TemporaryDirectory(prefix="reelworks-poster-") as tmp:
                    path = Path(tmp) / "poster"
                    download_to(item.source, path, timeout=timeout, retries=retries)
                    # Keep only what looks like an image, so a resume never trusts an error page.
                    if not _looks_like_image(path):
                        raise FetchError("not_image")
                    storage.upload_file(path, uri)
                counter = "fetched"
            elif is_url(item.source):
                counter = "reused"
            elif storage.exists(uri):
                counter = None
            else:
                raise NotFoundError(f"not found: {uri}")
            with lock:
                result.stored[item.key] = uri
                if counter:
                    setattr(result, counter, getattr(result, counter) + 1)
        except FetchError as exc:
            with lock:
                result.failures[item.key] = exc.reason
                examples.setdefault(exc.reason, str(exc))
        except NotFoundError:
            with lock:
                result.failures[item.key] = "missing"
        finally:
            if on_item:
                on_item()

    with ThreadPoolExecutor(max_workers=workers) as pool:
        for _ in track(pool.map(one, items), "fetching posters", total=len(items), unit="poster"):
            pass
    for reason, count in result.reasons.most_common():
        example = examples.get(reason, reason)
        log.warning("%d poster(s) not fetched: %s%s", count, reason, f" (e.g. {example})" if example != reason else "")
    return result


def _looks_like_image(path: Path) -> bool:
    """Identifies as an image (its size and integrity are `decode_poster`'s business); only the
    header is read."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path):
            return True
    except Image.DecompressionBombError:
        return True  # an image all right; decode_poster counts it as too_large
    except (UnidentifiedImageError, OSError):
        return False
