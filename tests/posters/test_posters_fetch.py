"""Fetching and verifying posters against a real HTTP server on 127.0.0.1."""
from __future__ import annotations

import json

import numpy as np
import pytest

from posters_helpers import bomb_png, jpeg
from reelworks.errors import ReelworksError
from reelworks.posters import fetch
from reelworks.posters.images import PosterRejected, decode_poster, size_for_ratio


def test_download_success_404_timeout_and_retry(poster_server):
    assert fetch.download(f"{poster_server.url}/ok/a.jpg", timeout=2) == jpeg()
    with pytest.raises(fetch.FetchError) as err:
        fetch.download(f"{poster_server.url}/missing/a.jpg", timeout=2, retries=2, backoff=0.01)
    assert err.value.reason == "http_404"
    assert poster_server.hits["/missing/a.jpg"] == 1  # a 404 is final: no retry
    poster_server.slow_seconds = 1.5
    with pytest.raises(fetch.FetchError) as err:
        fetch.download(f"{poster_server.url}/slow/a.jpg", timeout=0.3, retries=1, backoff=0.01)
    assert err.value.reason == "timeout"
    assert poster_server.hits["/slow/a.jpg"] == 2  # timeouts are retried
    # A 500 is retried and the second answer is used.
    assert fetch.download(f"{poster_server.url}/flaky/a.jpg", timeout=2, retries=2, backoff=0.01) == jpeg((30, 200, 30))


def test_decode_rejects_bad_images_and_bombs():
    size = size_for_ratio(30)
    assert size == (55, 80)
    pixels = decode_poster(jpeg(size=(182, 268)), size)
    assert pixels.shape == (80, 55, 3) and pixels.dtype == np.uint8
    assert decode_poster(jpeg(), size, channels=1).shape == (80, 55, 1)
    for data, reason in [(b"", "empty"), (b"<html>nope</html>", "not_image"),
                         (jpeg()[:200], "corrupt"), (bomb_png(), "too_large")]:
        with pytest.raises(PosterRejected) as err:
            decode_poster(data, size)
        assert err.value.reason == reason


def _movie_genre_csv(path, server_url):
    """The MovieGenre.csv shape, ISO-8859-1, with URL posters of every kind."""
    rows = [(7, "Amélie (2001)", "Comedy|Romance", "ok/7.jpg"), (8, "Alien (1979)", "Horror|Sci-Fi", "ok/8.jpg"),
            (9, "Heat (1995)", "Action|Crime", "missing/9.jpg"), (10, "Slow (1990)", "Drama", "slow/10.jpg"),
            (11, "Broken (1985)", "Drama", "corrupt/11.jpg"), (12, "Page (1999)", "Comedy", "html/12.jpg"),
            (13, "Flaky (2004)", "Action", "flaky/13.jpg"), (14, "Bomb (2010)", "Horror", "bomb/14.jpg"),
            (15, "Matrix (1999)", "Action|Sci-Fi", "ok/15.jpg"), (16, "Up (2009)", "Animation|Comedy", "ok/16.jpg"),
            (21, "Old (1920)", "Drama", "ok/21.jpg")]
    lines = ["imdbId,Imdb Link,Title,IMDB Score,Genre,Poster"]
    lines += [f'{i},http://www.imdb.com/title/tt{i:07d},{t},7.0,{g},"{server_url}/{p}"' for i, t, g, p in rows]
    path.write_bytes(("\n".join(lines) + "\n").encode("ISO-8859-1"))
    return str(path)


def test_prep_from_urls_counts_failures_and_resumes(poster_server, tmp_path):
    from reelworks.posters.prep import prep

    poster_server.slow_seconds = 1.5
    labels = _movie_genre_csv(tmp_path / "MovieGenre.csv", poster_server.url)
    cache = str(tmp_path / "fetched")
    manifest = prep(labels, str(tmp_path / "data"), images=cache, ratio=20, timeout=0.4, retries=1, workers=4)
    # 6 good posters (ok x5 incl. 1920, flaky after a retry); each failure counted by its reason.
    assert manifest["kept"] == 6
    assert manifest["rejected"] == {"http_404": 1, "timeout": 1, "corrupt": 1, "not_image": 1, "too_large": 1}
    assert manifest["fetched"] == 8  # 6 good + the truncated JPEG and the bomb (images, rejected when decoded)
    assert manifest["years"] == [1920, 2009]
    assert {s: v["count"] for s, v in manifest["splits"].items()} == {"train": 2, "validation": 2, "test": 2}  # 7,21 | 8,15 | 13,16
    table = (tmp_path / "data" / "posters.csv").read_text(encoding="utf-8")
    assert "Amélie" in table  # ISO-8859-1 read correctly

    # Resume: what was fetched is not fetched again; failures are retried.
    hits_before = dict(poster_server.hits)
    again = prep(labels, str(tmp_path / "data2"), images=cache, ratio=20, timeout=0.4, retries=0, workers=4)
    assert again["kept"] == 6 and again["fetched"] == 0 and again["reused"] == 8
    assert poster_server.hits["/ok/7.jpg"] == hits_before["/ok/7.jpg"] == 1
    assert poster_server.hits["/missing/9.jpg"] == hits_before["/missing/9.jpg"] + 1

    # Year filter and an unknown genre in a custom list: reported, not fatal.
    filtered = prep(labels, str(tmp_path / "data3"), images=cache, ratio=20, min_year=1990, max_year=2009,
                    genres="Action,Comedy,Western", retries=0, timeout=0.4)
    assert filtered["classes"] == ["Action", "Comedy"] and filtered["unknown_genres"] == ["Western"]
    assert filtered["skipped_rows"]["outside_years"] == 4  # 1920, 1979, 1985, 2010
    manifest_file = json.loads((tmp_path / "data3" / "dataset.json").read_text())
    assert manifest_file["kept"] == filtered["kept"] == 4  # Amélie, Matrix, Up, Flaky


def test_prep_fails_only_when_nothing_is_usable(poster_server, tmp_path):
    from reelworks.posters.prep import prep

    labels = tmp_path / "bad.csv"
    labels.write_text("imdbId,Title,Genre,Poster\n"
                      f"1,A (2000),Drama,{poster_server.url}/missing/1.jpg\n"
                      f"2,B (2000),Comedy,{poster_server.url}/corrupt/2.jpg\n")
    with pytest.raises(ReelworksError, match="no usable poster among 2"):
        prep(str(labels), str(tmp_path / "out"), images=str(tmp_path / "cache"), retries=0)
    assert not (tmp_path / "out").exists()  # nothing half-written
    with pytest.raises(ReelworksError, match="fewer than 2 genres"):
        prep(str(labels), str(tmp_path / "out"), genres="Western,Musical")


# ------------------------------------------------------------------ hardening: where, how long, how much


class ScriptedServer:
    """A real HTTP server on 127.0.0.1 whose answer the test writes: `answer(handler)` gets the
    request handler and writes the raw response. Records each request's path and arrival time
    (monotonic) and the body bytes `drip`/`stream` got out before the client hung up."""

    def __init__(self, answer):
        import http.server
        import threading
        import time

        self.paths: list[str] = []
        self.arrivals: list[float] = []
        self.sent = 0
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                server.paths.append(self.path)
                server.arrivals.append(time.monotonic())
                try:
                    answer(self)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client hung up: what the deadline and size tests want

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def send(self, handler, status, body=b"", headers=()):
        handler.send_response(status)
        for name, value in headers:
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    def stream(self, handler, chunks, pause=0.0):
        """Write `chunks` one by one (a body without Content-Length, ended by closing)."""
        import time

        handler.close_connection = True
        for chunk in chunks:
            handler.wfile.write(chunk)
            handler.wfile.flush()
            self.sent += len(chunk)
            time.sleep(pause)

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def serve():
    """Start ScriptedServers; `trusted=True` (the default) lets downloads reach it as a test server."""
    import contextlib

    with contextlib.ExitStack() as stack:
        def start(answer, trusted=True):
            server = ScriptedServer(answer)
            stack.callback(server.close)
            if trusted:
                stack.enter_context(fetch.allow_test_server(server.url))
            return server

        yield start


@pytest.mark.parametrize("address, public", [
    ("8.8.8.8", True), ("2001:4860:4860::8888", True), ("::ffff:8.8.8.8", True),
    ("127.0.0.1", False), ("10.1.2.3", False), ("172.16.0.1", False), ("192.168.1.1", False),
    ("169.254.169.254", False), ("100.64.0.1", False), ("100.127.255.254", False), ("0.0.0.0", False),
    ("224.0.0.1", False), ("255.255.255.255", False), ("198.18.0.1", False),
    ("::1", False), ("::", False), ("fe80::1%eth0", False), ("fc00::1", False), ("fd00:ec2::254", False),
    ("ff02::1", False),
    # IPv4 inside IPv6: mapped, NAT64, 6to4, the old IPv4-compatible form
    ("::ffff:127.0.0.1", False), ("::ffff:169.254.169.254", False), ("64:ff9b::7f00:1", False),
    ("64:ff9b::a9fe:a9fe", False), ("2002:7f00:1::", False), ("2002:a00:1::", False), ("::127.0.0.1", False),
])
def test_public_addresses(address, public):
    assert fetch.is_public_address(address) is public


def test_only_https_outside_tests(tmp_path):
    path = tmp_path / "poster.jpg"
    with pytest.raises(fetch.FetchError) as err:
        fetch.download_to("http://posters.example.org/a.jpg", path)
    assert err.value.reason == "not_https" and not path.exists()
    with pytest.raises(fetch.FetchError) as err:
        fetch.download_to("https:///a.jpg", path)
    assert err.value.reason == "bad_url"


def test_test_server_allowance_is_off_by_default_and_per_origin(poster_server, serve):
    assert fetch._TEST_SERVERS == {fetch._origin(poster_server.url)}  # only what the fixture allowed
    other = serve(lambda h: None, trusted=False)
    for url in (f"{other.url}/ok/a.jpg", f"https://127.0.0.1:{other.url.rsplit(':', 1)[1]}/ok/a.jpg"):
        with pytest.raises(fetch.FetchError) as err:
            fetch.download(url, retries=0)
        assert err.value.reason in ("not_https", "blocked_address")
    assert other.paths == []


@pytest.mark.parametrize("target, reason", [
    ("http://127.0.0.1:{meta}/latest/meta-data/iam", "not_https"),         # the reported case
    ("https://127.0.0.1:{meta}/latest/meta-data/iam", "blocked_address"),
    ("https://localhost:{meta}/latest/meta-data/iam", "blocked_address"),  # a name resolving to loopback
    ("https://[::ffff:127.0.0.1]:{meta}/latest/meta-data/iam", "blocked_address"),
    ("https://[::1]:{meta}/latest/meta-data/iam", "blocked_address"),
    ("https://169.254.169.254/latest/meta-data/iam", "blocked_address"),
    ("https://10.0.0.7/poster.jpg", "blocked_address"),
    ("https://192.168.1.20/poster.jpg", "blocked_address"),
    ("https://100.64.0.1/poster.jpg", "blocked_address"),
    ("https://[fd00:ec2::254]/latest/meta-data/", "blocked_address"),
])
def test_redirect_to_loopback_or_private_is_refused(serve, tmp_path, target, reason):
    """Each redirect hop is checked like the first URL; the metadata service (a real server on
    loopback, answering with a valid JPEG) is never reached and nothing is stored."""
    from posters_helpers import jpeg

    metadata = serve(lambda h: metadata.send(h, 200, jpeg(), [("Content-Type", "image/jpeg")]), trusted=False)
    location = target.format(meta=metadata.url.rsplit(":", 1)[1])
    poster = serve(lambda h: poster.send(h, 302, headers=[("Location", location)]))

    with pytest.raises(fetch.FetchError) as err:
        fetch.download_to(f"{poster.url}/p/1.jpg", tmp_path / "p.jpg", retries=2)
    assert err.value.reason == reason
    message = str(err.value)
    assert "\n" not in message and "refused" in message
    assert metadata.paths == [] and poster.paths == ["/p/1.jpg"]  # refused, not retried
    assert not (tmp_path / "p.jpg").exists()

    # Through fetch_all (what prep runs): counted by reason, nothing stored as a poster.
    result = fetch.fetch_all([fetch.FetchItem("1.jpg", f"{poster.url}/p/1.jpg")], str(tmp_path / "cache"))
    assert result.failures == {"1.jpg": reason} and dict(result.data) == {}
    assert not (tmp_path / "cache" / "1.jpg").exists() and metadata.paths == []


def test_redirects_are_followed_and_bounded(serve, tmp_path):
    from posters_helpers import jpeg

    def answer(h):
        hop = int(h.path.rsplit("/", 1)[1])
        if hop < 3:
            return server.send(h, 301, headers=[("Location", f"/hop/{hop + 1}")])
        server.send(h, 200, jpeg(), [("Content-Type", "image/jpeg")])

    server = serve(answer)
    assert fetch.download_to(f"{server.url}/hop/0", tmp_path / "p.jpg") == len(jpeg())
    assert server.paths == ["/hop/0", "/hop/1", "/hop/2", "/hop/3"]
    loop = serve(lambda h: loop.send(h, 302, headers=[("Location", h.path)]))
    with pytest.raises(fetch.FetchError) as err:
        fetch.download(f"{loop.url}/again")
    assert err.value.reason == "too_many_redirects" and len(loop.paths) == fetch.MAX_REDIRECTS + 1


@pytest.mark.parametrize("phase", ["headers", "body"])
def test_slow_drip_is_stopped_at_the_deadline(serve, tmp_path, phase):
    """One byte every 0.1 s never trips a per-read timeout of 1 s; the deadline covers the whole
    request, so the client hangs up long before the server has sent its 60 bytes."""
    total = 60

    def answer(h):
        h.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\n")
        if phase == "headers":
            h.wfile.write(b"X-Drip: ")
            server.stream(h, [b"x"] * total, pause=0.1)
        else:
            h.wfile.write(f"Content-Length: {total}\r\n\r\n".encode())
            server.stream(h, [b"x"] * total, pause=0.1)

    server = serve(answer)
    with pytest.raises(fetch.FetchError) as err:
        fetch.download_to(f"{server.url}/drip.jpg", tmp_path / "p.jpg", timeout=1.0, retries=0)
    assert err.value.reason == "timeout"
    assert not (tmp_path / "p.jpg").exists()
    # The server learns the client left at its next write or so; it never got to the end.
    assert server.sent < total / 2


def test_oversized_download_is_refused(serve, tmp_path):
    cap = 256 * 1024
    declared = serve(lambda h: declared.send(h, 200, b"\xff" * (cap + 1)))
    with pytest.raises(fetch.FetchError) as err:
        fetch.download_to(f"{declared.url}/big.jpg", tmp_path / "p.jpg", max_bytes=cap)
    assert err.value.reason == "too_large" and "\n" not in str(err.value)
    assert len(declared.paths) == 1  # final: not retried

    # No Content-Length: refused while streaming, the rest never read.
    chunk = b"\xff" * 65536
    undeclared = serve(lambda h: (h.send_response(200), h.end_headers(), undeclared.stream(h, [chunk] * 1024)))
    with pytest.raises(fetch.FetchError) as err:
        fetch.download_to(f"{undeclared.url}/big.jpg", tmp_path / "p.jpg", max_bytes=cap)
    assert err.value.reason == "too_large" and not (tmp_path / "p.jpg").exists()
    assert undeclared.sent < 1024 * len(chunk)


def test_download_streams_to_disk(serve, tmp_path):
    """An 8 MiB body goes to the file chunk by chunk: Python's peak allocation stays far below it."""
    import hashlib
    import tracemalloc

    chunk = bytes(range(256)) * 256  # 64 KiB
    body_size = 128 * len(chunk)
    server = serve(lambda h: (h.send_response(200), h.send_header("Content-Length", str(body_size)), h.end_headers(),
                              server.stream(h, [chunk] * 128)))
    tracemalloc.start()
    try:
        size = fetch.download_to(f"{server.url}/big.bin", tmp_path / "big.bin", max_bytes=16 * 2**20)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert size == body_size == (tmp_path / "big.bin").stat().st_size
    assert hashlib.sha256((tmp_path / "big.bin").read_bytes()).digest() == hashlib.sha256(chunk * 128).digest()
    assert peak < body_size / 8, peak  # measured 0.18 MiB against the 8 MiB body


def test_retry_after_is_honoured(serve, caplog):
    """429 with Retry-After: 1 and a backoff of 10 ms: the retry comes after the wait the server
    asked for (a lower bound, guaranteed by the sleep itself, not a timing threshold)."""
    import logging

    from posters_helpers import jpeg

    def answer(h):
        if len(server.paths) == 1:
            return server.send(h, 429, b"slow down", [("Retry-After", "1")])
        server.send(h, 200, jpeg(), [("Content-Type", "image/jpeg")])

    server = serve(answer)
    caplog.set_level(logging.DEBUG, logger="reelworks.posters.fetch")
    assert fetch.download(f"{server.url}/p.jpg", retries=2, backoff=0.01) == jpeg()
    assert len(server.paths) == 2
    assert "HTTP 429, retrying in 1 s (Retry-After)" in caplog.text
    assert server.arrivals[1] - server.arrivals[0] >= 1.0

    # A wait past MAX_RETRY_AFTER is not waited for: one request, then the failure.
    later = serve(lambda h: later.send(h, 503, b"maintenance", [("Retry-After", "3600")]))
    with pytest.raises(fetch.FetchError) as err:
        fetch.download(f"{later.url}/p.jpg", retries=2, backoff=0.01)
    assert err.value.reason == "http_503" and len(later.paths) == 1

    # Without Retry-After, 5xx are retried `retries` times, then reported.
    down = serve(lambda h: down.send(h, 502, b"bad gateway"))
    with pytest.raises(fetch.FetchError) as err:
        fetch.download(f"{down.url}/p.jpg", retries=2, backoff=0.01)
    assert err.value.reason == "http_502" and len(down.paths) == 3
    assert "gave up after 2 retries" in str(err.value)
