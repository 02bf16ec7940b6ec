"""Posters fixtures: a synthetic poster set (made by the project itself), its prepared
dataset, and a real HTTP server on 127.0.0.1 serving posters, 404s, slow and corrupt replies."""
from __future__ import annotations

import http.server
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from posters_helpers import bomb_png, jpeg  # noqa: E402


@pytest.fixture(scope="session")
def synthetic_posters(tmp_path_factory) -> str:
    """150 synthetic posters (6 genres) with titles carrying years; returns the CSV path."""
    from reelworks.posters.synthetic import make_posters

    return make_posters(str(tmp_path_factory.mktemp("synthetic")), n=150, seed=1)


@pytest.fixture(scope="session")
def synthetic_data(synthetic_posters, tmp_path_factory) -> str:
    """`posters prep` of the synthetic set at ratio 20 (36x54)."""
    from reelworks.posters.prep import prep

    out = str(tmp_path_factory.mktemp("prepared") / "data")
    prep(synthetic_posters, out, ratio=20, shards=2)
    return out


@pytest.fixture(scope="session")
def synthetic_model(synthetic_data, tmp_path_factory) -> str:
    """A small classifier trained from scratch on the synthetic set (a few seconds)."""
    from reelworks.posters.train import train

    out = str(tmp_path_factory.mktemp("model") / "model")
    train(synthetic_data, out, arch="posters_cnn", epochs=6, dense_units=64, batch_size=16, augment="none")
    return out


class PosterServer:
    """Routes: /ok/<name>.jpg (a poster), /missing/* (404), /slow/* (sleeps past timeouts),
    /corrupt/* (a truncated JPEG), /html/* (an error page with 200),
    /flaky/* (500 on the first request, then the poster), /bomb/* (a decompression bomb)."""

    def __init__(self):
        self.hits: Counter = Counter()
        self.slow_seconds = 3.0
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                server.hits[self.path] += 1
                kind = self.path.split("/")[1]
                if kind == "ok":
                    return self._send(200, jpeg(), "image/jpeg")
                if kind == "slow":
                    time.sleep(server.slow_seconds)
                    return self._send(200, jpeg(), "image/jpeg")
                if kind == "corrupt":
                    whole = jpeg(size=(182, 268))  # a real header, then the data stops half way
                    return self._send(200, whole[: len(whole) // 2], "image/jpeg")
                if kind == "html":
                    return self._send(200, b"<html>rate limited</html>", "text/html")
                if kind == "flaky":
                    if server.hits[self.path] == 1:
                        return self._send(500, b"try again", "text/plain")
                    return self._send(200, jpeg((30, 200, 30)), "image/jpeg")
                if kind == "bomb":
                    return self._send(200, bomb_png(), "image/png")
                return self._send(404, b"not found", "text/plain")

            def _send(self, status, body, content_type):
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", content_type)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def poster_server():
    """The server, which downloads may reach over plain http on 127.0.0.1 (test-only allowance)."""
    from reelworks.posters.fetch import allow_test_server

    with PosterServer() as server, allow_test_server(server.url):
        yield server


@pytest.fixture
def rng():
    return np.random.default_rng(0)
