"""reelworks.storage against local paths and a real S3-compatible server over HTTP."""
from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from reelworks import storage
from reelworks.errors import NotFoundError, ReelworksError


@pytest.fixture(params=["local", "s3"])
def root(request, tmp_path) -> str:
    """Each test runs once on a local folder and once on a fresh S3 bucket."""
    if request.param == "local":
        return str(tmp_path / "root")
    return request.getfixturevalue("s3_bucket") + "/root"


def test_write_read_list_roundtrip(root):
    storage.write_text(storage.join(root, "a.txt"), "héllo")
    storage.write_bytes(storage.join(root, "sub/b.bin"), b"\x00\x01")
    assert storage.read_text(storage.join(root, "a.txt")) == "héllo"
    assert storage.read_bytes(storage.join(root, "sub/b.bin")) == b"\x00\x01"
    assert storage.list_keys(root) == ["a.txt", "sub/b.bin"]
    assert storage.exists(storage.join(root, "a.txt"))
    assert not storage.exists(storage.join(root, "nope.txt"))
    storage.delete(storage.join(root, "a.txt"))
    assert storage.list_keys(root) == ["sub/b.bin"]


def test_missing_object_is_a_clear_error(root):
    with pytest.raises(NotFoundError, match="not found"):
        storage.read_bytes(storage.join(root, "missing.csv"))
    assert storage.list_keys(storage.join(root, "no-such-prefix")) == []


@pytest.mark.parametrize("key", ["../escape", "a/../../b", "/etc/passwd"])
def test_keys_cannot_escape_their_root(key):
    with pytest.raises(ReelworksError, match="refusing key"):
        storage.join("s3://bucket/root", key)
    with pytest.raises(ReelworksError, match="refusing key"):
        storage.join("/tmp/root", key)


def test_s3_uri_with_dotdot_is_refused():
    with pytest.raises(ReelworksError, match="escape"):
        storage.parse("s3://bucket/a/../../b")


def test_unsupported_scheme():
    with pytest.raises(ReelworksError, match="unsupported URI scheme"):
        storage.parse("gs://bucket/key")


def test_create_if_absent_has_exactly_one_winner(root):
    uri = storage.join(root, "ledger/lock.json")
    barrier = threading.Barrier(8)

    def attempt(i: int) -> bool:
        barrier.wait()
        return storage.create_if_absent(uri, f"owner-{i}")

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(attempt, range(8)))
    assert results.count(True) == 1
    winner = results.index(True)
    assert storage.read_text(uri) == f"owner-{winner}"


def test_output_file_publishes_only_on_success(root):
    uri = storage.join(root, "out/model.bin")
    with pytest.raises(RuntimeError):
        with storage.output_file(uri) as path:
            path.write_bytes(b"half")
            raise RuntimeError("crash mid-write")
    assert not storage.exists(uri)
    with storage.output_file(uri) as path:
        path.write_bytes(b"whole")
    assert storage.read_bytes(uri) == b"whole"


def test_output_dir_publishes_only_on_success(root):
    prefix = storage.join(root, "frames")
    with pytest.raises(RuntimeError):
        with storage.output_dir(prefix) as folder:
            (folder / "0.jpg").write_bytes(b"x")
            raise RuntimeError("crash")
    assert storage.list_keys(prefix) == []
    with storage.output_dir(prefix) as folder:
        (folder / "0.jpg").write_bytes(b"x")
        (folder / "manifest.jsonl").write_text("{}\n")
    assert storage.list_keys(prefix) == ["0.jpg", "manifest.jsonl"]


def test_copy_prefix_and_sync(root, tmp_path):
    src = tmp_path / "src"
    (src / "nested").mkdir(parents=True)
    (src / "config.json").write_text("{}")
    (src / "nested" / "weights.safetensors").write_bytes(os.urandom(1000))
    keys = storage.sync_up(src, storage.join(root, "model"))
    assert keys == ["config.json", "nested/weights.safetensors"]
    storage.copy_prefix(storage.join(root, "model"), storage.join(root, "copy"))
    assert storage.list_keys(storage.join(root, "copy")) == keys
    down = storage.sync_down(storage.join(root, "copy"), tmp_path / "down")
    assert (down / "nested" / "weights.safetensors").read_bytes() == (src / "nested" / "weights.safetensors").read_bytes()


def test_large_upload_goes_multipart_and_roundtrips(s3_bucket, tmp_path, monkeypatch):
    monkeypatch.setattr(storage, "MULTIPART_THRESHOLD", 5 * 2**20)
    monkeypatch.setattr(storage, "MULTIPART_CHUNKSIZE", 5 * 2**20)
    data = os.urandom(12 * 2**20)
    big = tmp_path / "film.mp4"
    big.write_bytes(data)
    uri = f"{s3_bucket}/films/film.mp4"
    storage.upload_file(big, uri)
    loc = storage.parse(uri)
    etag = storage.s3_client().head_object(Bucket=loc.bucket, Key=loc.key)["ETag"]
    assert etag.strip('"').endswith("-3"), f"expected a 3-part multipart upload, ETag {etag}"
    assert storage.read_bytes(uri) == data
    with storage.local_file(uri) as path:
        assert path.stat().st_size == len(data)


def test_sync_down_refuses_keys_escaping_the_cache(lenient_s3, tmp_path):
    loc = storage.parse(lenient_s3)
    # S3 keys are free-form (AWS stores this one; SeaweedFS refuses it, hence moto): a hostile one
    # must not be written outside the target folder.
    storage.s3_client().put_object(Bucket=loc.bucket, Key="model/../../evil.txt", Body=b"x")
    with pytest.raises(ReelworksError, match="escape"):
        storage.sync_down(f"{lenient_s3}/model", tmp_path / "cache")
    assert not (tmp_path / "evil.txt").exists()


def test_missing_bucket_and_credentials_are_clear(s3_server, monkeypatch):
    with pytest.raises(NotFoundError, match="no such bucket"):
        storage.read_bytes("s3://no-such-bucket-xyz/key")
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    storage.reset_clients()
    try:
        with pytest.raises(ReelworksError, match="no S3 credentials"):
            storage.read_bytes("s3://any-bucket/key")
    finally:
        storage.reset_clients()


def test_unreachable_endpoint_is_clear(monkeypatch):
    from tests.conftest import free_port

    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "y")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    storage.reset_clients()
    try:
        with pytest.raises(ReelworksError, match="cannot reach the S3 endpoint"):
            storage.read_bytes("s3://bucket/key")
    finally:
        storage.reset_clients()


def test_local_write_is_atomic_under_concurrent_readers(tmp_path):
    """Readers racing a writer see an old or a new whole file, never a torn one."""
    path = tmp_path / "queue.jsonl"
    versions = [("x" * 200_000 + str(i)).encode() for i in range(30)]
    storage.write_bytes(str(path), versions[0])
    seen, stop = set(), threading.Event()

    def reader():
        while not stop.is_set():
            seen.add(Path(path).read_bytes())

    thread = threading.Thread(target=reader)
    thread.start()
    for data in versions[1:]:
        storage.write_bytes(str(path), data)
    stop.set()
    thread.join()
    assert seen <= set(versions)


def test_cached_prefix_is_reused(s3_bucket, tmp_path, monkeypatch):
    monkeypatch.setenv("REELWORKS_CACHE_DIR", str(tmp_path / "cache"))
    storage.write_text(f"{s3_bucket}/m/config.json", "{}")
    first = storage.cached(f"{s3_bucket}/m")
    assert (first / "config.json").read_text() == "{}"
    fetched_at = (first / "config.json").stat().st_mtime_ns
    assert storage.cached(f"{s3_bucket}/m") == first
    assert (first / "config.json").stat().st_mtime_ns == fetched_at  # reused, not downloaded again
    storage.write_text(f"{s3_bucket}/m/config.json", '{"v": 2}')  # a newer model at the prefix
    storage.write_text(f"{s3_bucket}/m/extra.json", "[]")
    assert (storage.cached(f"{s3_bucket}/m") / "config.json").read_text() == '{"v": 2}'
    assert (first / "extra.json").read_text() == "[]"


# --------------------------------------------------------------------------- cache, temp names, If-None-Match


def test_cache_refetches_a_changed_object_of_the_same_size_and_drops_deleted_ones(s3_bucket, tmp_path, monkeypatch):
    """A retrained model of the same shape has the same file sizes: the cache must notice."""
    monkeypatch.setenv("REELWORKS_CACHE_DIR", str(tmp_path / "cache"))
    storage.write_bytes(f"{s3_bucket}/m/model.safetensors", b"weights-v1")
    storage.write_text(f"{s3_bucket}/m/old-shard.bin", "x")
    local = storage.cached(f"{s3_bucket}/m")
    assert (local / "model.safetensors").read_bytes() == b"weights-v1"
    storage.write_bytes(f"{s3_bucket}/m/model.safetensors", b"weights-v2")  # same size, new ETag
    storage.delete(f"{s3_bucket}/m/old-shard.bin")
    assert storage.cached(f"{s3_bucket}/m") == local
    assert (local / "model.safetensors").read_bytes() == b"weights-v2"
    assert not (local / "old-shard.bin").exists()
    assert sorted(p.name for p in local.iterdir()) == ["model.safetensors"]  # no bookkeeping in the copy


def test_concurrent_writers_of_one_path_never_share_a_temporary_file(s3_bucket, tmp_path):
    data = {i: os.urandom(64 * 1024) for i in range(8)}
    for i, blob in data.items():
        storage.write_bytes(f"{s3_bucket}/v{i}.bin", blob)
    target = tmp_path / "same.bin"
    barrier = threading.Barrier(8)

    def fetch(i):
        barrier.wait()
        storage.download_file(f"{s3_bucket}/v{i}.bin", target)
        storage.upload_file(target, str(tmp_path / "published.bin"))

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(fetch, data))  # with one shared ".same.bin.part" these raced and failed
    assert target.read_bytes() in data.values()
    assert (tmp_path / "published.bin").read_bytes() in data.values()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["published.bin", "same.bin"], "temporary files left"


@pytest.fixture
def store_ignoring_if_none_match(s3_server, monkeypatch):
    """An S3 endpoint that drops the If-None-Match header on its way to the real S3 server, as
    stores without conditional writes do; yields its bucket. The header is signed, so the proxy
    signs the request again (the server checks signatures)."""
    import http.client
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from urllib.parse import urlparse

    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    upstream = urlparse(s3_server)
    signer = S3SigV4Auth(Credentials(os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"]), "s3",
                         os.environ["AWS_REGION"])

    class Proxy(BaseHTTPRequestHandler):
        def _forward(self):
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            dropped = ("if-none-match", "host", "authorization", "x-amz-date")
            request = AWSRequest(self.command, s3_server + self.path, data=body,
                                 headers={k: v for k, v in self.headers.items() if k.lower() not in dropped})
            signer.add_auth(request)
            conn = http.client.HTTPConnection(upstream.hostname, upstream.port, timeout=30)
            conn.request(self.command, self.path, body=body or None, headers=dict(request.headers.items()))
            answer = conn.getresponse()
            data = answer.read()
            self.send_response(answer.status)
            for key, value in answer.getheaders():
                if key.lower() not in ("content-length", "transfer-encoding", "connection", "server", "date"):
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)
            conn.close()

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    bucket = f"ignoring-{os.urandom(4).hex()}"
    storage.s3_client().create_bucket(Bucket=bucket)
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{server.server_address[1]}")
    storage.reset_clients()
    yield f"s3://{bucket}"
    server.shutdown()
    storage.reset_clients()


def test_create_if_absent_refuses_a_store_without_conditional_writes(store_ignoring_if_none_match):
    uri = f"{store_ignoring_if_none_match}/ledger/claim.json"
    with pytest.raises(ReelworksError, match="does not honour If-None-Match"):
        storage.create_if_absent(uri, "a")
    assert not storage.exists(uri)
    assert storage.list_keys(store_ignoring_if_none_match) == [], "the probe object is cleaned up"


def test_create_if_absent_checks_the_store_once_per_process(s3_bucket, monkeypatch):
    probes = []
    real = storage._put_if_absent
    monkeypatch.setattr(storage, "_put_if_absent", lambda loc, data, uri: probes.append(loc.key) or real(loc, data, uri))
    assert storage.create_if_absent(f"{s3_bucket}/a.json", "1")
    assert storage.create_if_absent(f"{s3_bucket}/b.json", "1")
    assert not storage.create_if_absent(f"{s3_bucket}/b.json", "2")
    checks = [k for k in probes if k.startswith(".reelworks/")]
    assert len(checks) == 2 and len(set(checks)) == 1, "one probe: written once, refused once"


def test_tweeter_refuses_its_ledger_on_such_a_store(store_ignoring_if_none_match, tmp_path, capsys):
    from reelworks.cli import main
    from reelworks.tweeter.queue import QueueItem, append_to_queue

    queue = f"{store_ignoring_if_none_match}/plotbot/queue.jsonl"
    append_to_queue(queue, [QueueItem("The Last Lighthouse", "A lonely robot keeps a lighthouse lit for ships "
                                      "that never come, until one does.", genres=["Sci-Fi"])])
    with pytest.raises(SystemExit) as exit_:
        main(["tweeter", "publish", "--queue", queue, "--dry-run"])
    assert exit_.value.code == 2
    assert "does not honour If-None-Match" in capsys.readouterr().err


# --------------------------------------------------------------------------- file modes, batched deletes


@pytest.mark.parametrize("umask, file_mode, dir_mode", [(0o022, 0o644, 0o755), (0o027, 0o640, 0o750)],
                         ids=["umask-022", "umask-027"])
def test_local_outputs_honour_the_umask(s3_bucket, tmp_path, umask, file_mode, dir_mode):
    """Atomic writes go through temporary files (mkstemp: 0600, mkdtemp: 0700); what lands has the
    mode any new file gets, so other readers of a shared volume can open it."""
    storage.write_bytes(f"{s3_bucket}/remote.bin", b"remote")
    source = tmp_path / "source.bin"
    source.write_bytes(b"local")
    out = tmp_path / "out"
    previous = os.umask(umask)
    try:
        storage.write_text(str(out / "report.html"), "<p>hi</p>")
        assert storage.create_if_absent(str(out / "ledger/claim.json"), "{}")
        storage.upload_file(source, str(out / "uploaded.bin"))
        storage.download_file(f"{s3_bucket}/remote.bin", out / "downloaded.bin")
        storage.copy(f"{s3_bucket}/remote.bin", str(out / "copied.bin"))
        with storage.output_file(str(out / "video.mp4")) as path:
            path.write_bytes(b"frames")
        with storage.output_dir(str(out / "frames")) as folder:
            (folder / "0.jpg").write_bytes(b"x")
        storage.update_text(str(out / "queue.jsonl"), lambda text: text + "{}\n")
    finally:
        os.umask(previous)
    files = [p for p in out.rglob("*") if p.is_file()]
    assert sorted(p.name for p in files) == ["0.jpg", "claim.json", "copied.bin", "downloaded.bin", "queue.jsonl",
                                       "report.html", "uploaded.bin", "video.mp4"]
    assert {p.relative_to(out).as_posix(): oct(p.stat().st_mode & 0o777) for p in files} == \
        {p.relative_to(out).as_posix(): oct(file_mode) for p in files}
    assert oct((out / "frames").stat().st_mode & 0o777) == oct(dir_mode)


def test_delete_prefix_sends_one_request_per_batch_of_keys(s3_bucket, monkeypatch):
    """One DeleteObjects request per batch (S3 takes 1000 keys; 2 here, so 5 objects make 3
    requests), no per-key DELETE; objects beside the prefix (a folder whose name starts the same)
    stay."""
    monkeypatch.setattr(storage, "DELETE_BATCH", 2)
    client = storage.s3_client()
    for i in range(5):
        storage.write_bytes(f"{s3_bucket}/run/ckpt/step-{i}.bin", b"x")
    storage.write_text(f"{s3_bucket}/run/ckpt-old/keep.bin", "kept")
    storage.write_text(f"{s3_bucket}/run/keep.json", "kept")
    calls: list[str] = []
    handler = lambda event_name, **_: calls.append(event_name.rsplit(".", 1)[-1])  # noqa: E731
    client.meta.events.register("before-call.s3", handler)
    try:
        storage.delete_prefix(f"{s3_bucket}/run/ckpt")
    finally:
        client.meta.events.unregister("before-call.s3", handler)
    assert calls.count("DeleteObjects") == 3 and "DeleteObject" not in calls
    assert storage.list_keys(f"{s3_bucket}/run") == ["ckpt-old/keep.bin", "keep.json"]
