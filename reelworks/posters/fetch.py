"""Fetching posters: HTTP(S) URLs with bounded concurrency, timeouts, retries and resume,
or files from a local/S3 folder. Every failure is counted by reason, never fatal here."""
from __future__ import annotations

import logging
import random
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Sequence

from reelworks import storage
from reelworks.errors import NotFoundError, ReelworksError
from reelworks.progress import track

log = logging.getLogger(__name__)

# A poster file is tens of kilobytes; stop reading a response past this.
MAX_DOWNLOAD_BYTES = 20 * 2**20


@dataclass
class FetchItem:
    key: str        # where the bytes are kept below the cache/images folder, e.g. "89869.jpg"
    source: str     # an http(s) URL or a file name below the images folder


@dataclass
class FetchResult:
    data: dict[str, bytes] = field(default_factory=dict)      # key -> bytes
    failures: dict[str, str] = field(default_factory=dict)    # key -> reason
    fetched: int = 0        # downloaded in this run
    reused: int = 0         # already in the cache (resume)

    @property
    def reasons(self) -> Counter:
        return Counter(self.failures.values())


def is_url(source: str) -> bool:
    return source.startswith(("http://", "https://"))


def _session():
    import requests

    session = requests.Session()
    session.headers["User-Agent"] = "reelworks-posters/1 (+https://github.com/reelworks/reelworks)"
    return session


_local = threading.local()


def download(url: str, *, timeout: float = 10.0, retries: int = 2, backoff: float = 0.5) -> bytes:
    """One URL's bytes. Retries timeouts, connection errors, 429 and 5xx; a 4xx is final.

    Raises `FetchError` with a short reason ("http_404", "timeout", "connection", "too_large").
    """
    import requests

    session = getattr(_local, "session", None) or _session()
    _local.session = session
    last = "connection"
    for attempt in range(retries + 1):
        if attempt:
            time.sleep(backoff * 2 ** (attempt - 1) * (1 + random.random() / 4))
        try:
            with session.get(url, timeout=timeout, stream=True) as response:
                if response.status_code >= 400:
                    last = f"http_{response.status_code}"
                    if response.status_code < 500 and response.status_code != 429:
                        raise FetchError(last)
                    continue
                chunks, size = [], 0
                for chunk in response.iter_content(64 * 1024):
                    size += len(chunk)
                    if size > MAX_DOWNLOAD_BYTES:
                        raise FetchError("too_large")
                    chunks.append(chunk)
                return b"".join(chunks)
        except FetchError:
            raise
        except requests.Timeout:
            last = "timeout"
        except requests.ConnectionError as exc:
            # requests wraps read timeouts on a stream in ConnectionError
            last = "timeout" if "timed out" in str(exc).lower() else "connection"
        except requests.RequestException:
            last = "http_error"
    raise FetchError(last)


class FetchError(Exception):
    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def fetch_all(items: Sequence[FetchItem], folder: str, *, workers: int = 8, timeout: float = 10.0,
              retries: int = 2, on_item: Callable[[], None] | None = None) -> FetchResult:
    """Bytes of every item. URLs are downloaded into `folder` (skipping keys already there,
    so an interrupted run resumes); file names are read from `folder`."""
    if workers < 1:
        raise ReelworksError("workers must be >= 1")
    result = FetchResult()
    existing = set(storage.list_keys(folder))
    lock = threading.Lock()

    def one(item: FetchItem) -> None:
        uri = storage.join(folder, item.key)
        try:
            if is_url(item.source) and item.key not in existing:
                data = download(item.source, timeout=timeout, retries=retries)
                # Keep only what looks like an image, so a resume never trusts an error page.
                if not _looks_like_image(data):
                    raise FetchError("not_image")
                storage.write_bytes(uri, data)
                counter = "fetched"
            else:
                data = storage.read_bytes(uri)
                counter = "reused" if is_url(item.source) else None
            with lock:
                result.data[item.key] = data
                if counter:
                    setattr(result, counter, getattr(result, counter) + 1)
        except FetchError as exc:
            with lock:
                result.failures[item.key] = exc.reason
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
        log.warning("%d poster(s) not fetched: %s", count, reason)
    return result


def _looks_like_image(data: bytes) -> bool:
    """Identifies as an image (its size and integrity are `decode_poster`'s business)."""
    import io

    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)):
            return True
    except Image.DecompressionBombError:
        return True  # an image all right; decode_poster counts it as too_large
    except (UnidentifiedImageError, OSError):
        return False
