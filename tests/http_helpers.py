"""A JSON API server on 127.0.0.1 for tests that speak to a real HTTP endpoint (imported by name:
tests/ is on sys.path). The test supplies the API as one function; this module does the HTTP."""
from __future__ import annotations

import json
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Iterator
from urllib.parse import parse_qs, urlparse

# handle(method, path, query, body) -> (status, answer); a str answer goes out as text/plain.
Handle = Callable[[str, str, dict, object], tuple[int, object]]


@contextmanager
def json_api(handle: Handle) -> Iterator[str]:
    """Serve `handle` on a free port; yields the base URL."""

    class Handler(BaseHTTPRequestHandler):
        def _serve(self):
            url = urlparse(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length)) if length else None
            status, answer = handle(self.command, url.path, parse_qs(url.query), body)
            data = answer.encode() if isinstance(answer, str) else json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain" if isinstance(answer, str) else "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
