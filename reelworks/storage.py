"""Every input and output is a URI: a local path, `file:///path`, or `s3://bucket/key`.

One small module over boto3 so that every job reads and writes the same way on a laptop,
in `kfp.local` and on the cluster. S3 endpoint and credentials come from the standard AWS
environment (`AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
`AWS_REGION`), so AWS, MinIO and any S3-compatible store work unchanged.

Guarantees:
- Writes are atomic: a reader sees the old object, the new one, or none; never half of one
  (S3 objects appear whole on PUT/complete; local files are renamed into place).
- `create_if_absent` is a real compare-and-set (S3 `If-None-Match: *`, a hard link locally),
  for ledgers and locks.
- Keys are relative: `..` or an absolute part is refused, so no key escapes its root.
- Problems the user can fix (missing object, no credentials, unreachable endpoint) raise
  `ReelworksError` with one clear line.
"""
from __future__ import annotations

import contextlib
import functools
import logging
import os
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Callable, Iterator
from urllib.parse import urlparse

from reelworks.errors import NotFoundError, ReelworksError
from reelworks.settings import cache_dir

log = logging.getLogger(__name__)

# Multipart kicks in above 64 MiB, 16 MiB parts, 8 parts in flight: large model
# checkpoints and films upload at link speed, small objects stay single PUTs.
MULTIPART_THRESHOLD = int(os.environ.get("REELWORKS_MULTIPART_THRESHOLD", 64 * 2**20))
MULTIPART_CHUNKSIZE = int(os.environ.get("REELWORKS_MULTIPART_CHUNKSIZE", 16 * 2**20))
MAX_CONCURRENCY = 8


@dataclass(frozen=True)
class Location:
    """A parsed URI: `s3` with bucket and key, or `file` with a local path in `key`."""

    scheme: str
    bucket: str
    key: str

    @property
    def is_s3(self) -> bool:
        return self.scheme == "s3"

    @property
    def path(self) -> Path:
        if self.is_s3:
            raise ValueError(f"{self} is not a local path")
        return Path(self.key)

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.key}" if self.is_s3 else self.key


def parse(uri: str | os.PathLike) -> Location:
    uri = os.fspath(uri)
    if not uri:
        raise ReelworksError("empty URI: expected a local path, file:///path or s3://bucket/key")
    if uri.startswith("s3://"):
        parsed = urlparse(uri)
        if not parsed.netloc:
            raise ReelworksError(f"malformed S3 URI {uri!r}: expected s3://bucket/key")
        key = parsed.path.lstrip("/")
        _check_relative(key, uri)
        return Location("s3", parsed.netloc, key)
    if uri.startswith("file://"):
        return Location("file", "", urlparse(uri).path)
    if "://" in uri:
        raise ReelworksError(f"unsupported URI scheme in {uri!r}: use a local path, file:// or s3://")
    return Location("file", "", uri)


def is_s3(uri: str) -> bool:
    return os.fspath(uri).startswith("s3://")


def absolute(uri: str | os.PathLike) -> str:
    """`uri` as it reads from any working directory: a relative local path made absolute
    (s3:// and file:// URIs are left as they are). For URIs written down for another process."""
    uri = os.fspath(uri)
    parse(uri)  # refuses what is not a URI at all
    return uri if "://" in uri else os.path.abspath(uri)


def _check_relative(key: str, context: str) -> None:
    parts = PurePosixPath(key).parts
    if ".." in parts:
        raise ReelworksError(f"refusing key {context!r}: '..' would escape its root")


def safe_key(key: str) -> str:
    """A relative key, checked: no absolute path, no '..', no empty name."""
    if not key or key.startswith("/") or (len(key) > 1 and key[1] == ":"):
        raise ReelworksError(f"refusing key {key!r}: keys must be relative")
    _check_relative(key, key)
    return key


def join(base: str, *parts: str) -> str:
    """`base` + relative parts, refusing any part that would escape `base`."""
    out = os.fspath(base).rstrip("/")
    for part in parts:
        out = f"{out}/{safe_key(str(part).rstrip('/'))}"
    return out


def is_inside(uri: str, root: str) -> bool:
    """`uri` names something strictly below the folder or prefix `root`: on S3 the same bucket
    and a key under root's (`parse` refuses `..`); locally once both are resolved, so `..` and
    symlinks pointing out of `root` do not count as inside."""
    loc, base = parse(uri), parse(root)
    if loc.is_s3 or base.is_s3:
        prefix = base.key.rstrip("/")
        return (loc.is_s3 and base.is_s3 and loc.bucket == base.bucket
                and loc.key.startswith(f"{prefix}/" if prefix else "") and loc.key.rstrip("/") != prefix)
    path, folder = loc.path.resolve(), base.path.resolve()
    return path != folder and path.is_relative_to(folder)


def inside(root: str, relative: str, what: str = "path") -> str:
    """`root`/`relative` (as `join`), or one clear error when it would leave `root`: an absolute
    path, `..`, or a symlink pointing out. For paths read from data files (CSV rows, manifests)."""
    try:
        uri = join(root, relative)
    except ReelworksError:
        uri = None
    if uri is None or not is_inside(uri, root):
        raise ReelworksError(f"{what} {str(relative)[:200]!r} is outside {root}: paths must stay inside their folder")
    return uri


# --------------------------------------------------------------------------- S3 client


@functools.lru_cache(maxsize=None)
def _client_for_thread(_thread: int):
    import boto3
    from botocore.config import Config

    # A fresh session reads AWS_ENDPOINT_URL, AWS_REGION and the credentials from the
    # environment as it is now (boto3's default session would keep the first ones forever).
    config = Config(retries={"max_attempts": 5, "mode": "standard"}, connect_timeout=5, read_timeout=60)
    return boto3.session.Session().client("s3", config=config)


def s3_client():
    """A boto3 S3 client (one per thread: clients are thread-safe, sessions are not)."""
    return _client_for_thread(threading.get_ident())


def reset_clients() -> None:
    """Forget cached clients, e.g. after the test suite changes AWS_* variables."""
    _client_for_thread.cache_clear()


def _transfer_config():
    from boto3.s3.transfer import TransferConfig

    return TransferConfig(multipart_threshold=MULTIPART_THRESHOLD, multipart_chunksize=MULTIPART_CHUNKSIZE,
                          max_concurrency=MAX_CONCURRENCY)


@contextlib.contextmanager
def _s3_errors(uri: str) -> Iterator[None]:
    """Turn boto's failures into one line a user can act on."""
    from botocore.exceptions import (BotoCoreError, ClientError, EndpointConnectionError,
                                     NoCredentialsError, PartialCredentialsError)

    try:
        yield
    except NoCredentialsError:
        raise ReelworksError(f"no S3 credentials for {uri}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY") from None
    except PartialCredentialsError as exc:
        raise ReelworksError(f"incomplete S3 credentials for {uri}: {exc}") from None
    except EndpointConnectionError as exc:
        raise ReelworksError(f"cannot reach the S3 endpoint {exc.kwargs.get('endpoint_url', '')} for {uri}") from None
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code in ("404", "NoSuchKey", "NotFound"):
            raise NotFoundError(f"not found: {uri}") from None
        if code == "NoSuchBucket":
            raise NotFoundError(f"no such bucket in {uri}") from None
        if code in ("403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
            raise ReelworksError(f"access denied to {uri} ({code}): check the S3 credentials") from None
        raise ReelworksError(f"S3 error on {uri}: {code or exc}") from None
    except BotoCoreError as exc:
        raise ReelworksError(f"S3 error on {uri}: {exc}") from None


# --------------------------------------------------------------------------- reading


def exists(uri: str) -> bool:
    loc = parse(uri)
    if not loc.is_s3:
        return loc.path.exists()
    from botocore.exceptions import ClientError

    with _s3_errors(uri):
        try:
            s3_client().head_object(Bucket=loc.bucket, Key=loc.key)
            return True
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise


def read_bytes(uri: str) -> bytes:
    loc = parse(uri)
    if not loc.is_s3:
        try:
            return loc.path.read_bytes()
        except FileNotFoundError:
            raise NotFoundError(f"not found: {uri}") from None
        except IsADirectoryError:
            raise ReelworksError(f"{uri} is a directory, expected a file") from None
        except PermissionError:
            raise ReelworksError(f"cannot read {uri}: permission denied") from None
    with _s3_errors(uri):
        return s3_client().get_object(Bucket=loc.bucket, Key=loc.key)["Body"].read()


def read_text(uri: str, encoding: str = "utf-8") -> str:
    try:
        return read_bytes(uri).decode(encoding)
    except UnicodeDecodeError as exc:
        raise ReelworksError(f"{uri} is not valid {encoding} text (byte {exc.start})") from None


def read_json(uri: str):
    """A JSON document; one clear line when it is not JSON."""
    import json

    try:
        return json.loads(read_text(uri))
    except ValueError as exc:
        raise ReelworksError(f"{uri} is not valid JSON ({exc})") from None


UPDATE_ATTEMPTS = 20  # compare-and-swap retries before giving up


def update_text(uri: str, change: Callable[[str], str | None]) -> bool:
    """Replace the text at `uri` with `change(text)` ("" when absent; None: leave it as is) as a
    compare-and-swap: on S3 a conditional PUT (If-Match on the ETag read, If-None-Match when
    the object did not exist) retried on a lost race; locally under an exclusive lock on the
    file's folder (the file itself is replaced by a rename, so it cannot hold the lock; the
    folder adds no file beside it), with the new text renamed into place. True when it
    wrote."""
    if is_s3(uri):
        return _update_text_s3(uri, change)
    import fcntl
    import os

    path = parse(uri).path
    path.parent.mkdir(parents=True, exist_ok=True)
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        fcntl.flock(folder, fcntl.LOCK_EX)
        existing = path.read_text(encoding="utf-8") if path.exists() else ""
        new = change(existing)
        if new is None:
            return False
        write_text(uri, new)
        return True
    finally:
        os.close(folder)  # releases the lock


def _update_text_s3(uri: str, change: Callable[[str], str | None]) -> bool:
    import random
    import time

    from botocore.exceptions import ClientError

    loc = parse(uri)
    client = s3_client()
    for attempt in range(UPDATE_ATTEMPTS):
        with _s3_errors(uri):
            try:
                got = client.get_object(Bucket=loc.bucket, Key=loc.key)
                existing, etag = got["Body"].read().decode("utf-8"), got["ETag"]
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchKey", "NotFound"):
                    raise
                existing, etag = "", None
        new = change(existing)
        if new is None:
            return False
        condition = {"IfMatch": etag} if etag else {"IfNoneMatch": "*"}
        with _s3_errors(uri):
            try:
                client.put_object(Bucket=loc.bucket, Key=loc.key, Body=new.encode("utf-8"), **condition)
                return True
            except ClientError as exc:
                status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
                code = exc.response.get("Error", {}).get("Code")
                if status not in (409, 412) and code not in ("PreconditionFailed", "ConditionalRequestConflict"):
                    raise
        log.info("%s changed while being updated: retrying (%d)", uri, attempt + 1)
        time.sleep(random.uniform(0.01, 0.05) * (attempt + 1))
    raise ReelworksError(f"{uri} kept changing: gave up updating it after {UPDATE_ATTEMPTS} attempts")


def list_keys(prefix: str) -> list[str]:
    """Keys below a folder-like prefix, relative to it, sorted. Missing prefix: []."""
    loc = parse(prefix)
    if not loc.is_s3:
        root = loc.path
        if root.is_file():
            return [""]
        if not root.is_dir():
            return []
        return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
    base = loc.key.rstrip("/") + "/" if loc.key else ""
    keys: list[str] = []
    with _s3_errors(prefix):
        for page in s3_client().get_paginator("list_objects_v2").paginate(Bucket=loc.bucket, Prefix=base):
            keys.extend(obj["Key"][len(base):] for obj in page.get("Contents", []))
    return sorted(keys)


@contextlib.contextmanager
def local_file(uri: str) -> Iterator[Path]:
    """A local path holding the object, for tools that want a file (FFmpeg, OpenCV)."""
    loc = parse(uri)
    if not loc.is_s3:
        if not loc.path.is_file():
            raise NotFoundError(f"not found: {uri}")
        yield loc.path
        return
    with tempfile.TemporaryDirectory(prefix="reelworks-") as tmp:
        path = Path(tmp) / (PurePosixPath(loc.key).name or "object")
        download_file(uri, path)
        yield path


def _umask() -> int:
    """The process's umask. Linux shows it in /proc; elsewhere it can only be read by setting it
    and back, and another thread's files created in between would get 022."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _mkstemp_beside(path: Path, suffix: str = ".part") -> tuple[int, str]:
    """A new, unique, open temporary file beside `path` (same filesystem, so it renames or links
    into place; concurrent writers of one path never share one), with the mode any new file gets
    (0o666 less the umask: 0644 under 022). mkstemp makes it 0600 and the rename would keep that,
    so readers of a shared volume (a web server, a teammate) could not open the output."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    with contextlib.suppress(OSError):  # a filesystem without modes (some FUSE mounts) keeps its own
        os.fchmod(fd, 0o666 & ~_umask())
    return fd, tmp


def mkdtemp_beside(path: Path) -> Path:
    """A new, unique folder beside `path`, with the mode any new folder gets (0o777 less the
    umask), not mkdtemp's 0700, for the same reason as `_mkstemp_beside`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}."))
    with contextlib.suppress(OSError):
        tmp.chmod(0o777 & ~_umask())
    return tmp


def _temp_beside(path: Path) -> Path:
    """A new, unique temporary name beside `path` (see `_mkstemp_beside`), closed."""
    fd, tmp = _mkstemp_beside(path)
    os.close(fd)
    return Path(tmp)


def download_file(uri: str, path: str | Path) -> Path:
    path = Path(path)
    loc = parse(uri)
    if not loc.is_s3 and not loc.path.is_file():
        raise NotFoundError(f"not found: {uri}")
    tmp = _temp_beside(path)
    try:
        if not loc.is_s3:
            shutil.copyfile(loc.path, tmp)
        else:
            with _s3_errors(uri):
                s3_client().download_file(loc.bucket, loc.key, str(tmp), Config=_transfer_config())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    return path


# --------------------------------------------------------------------------- writing


def _write_temp(path: Path, data: bytes) -> str:
    """`data` in a synced temporary file beside `path` (same filesystem, so it can be renamed
    or linked into place atomically). The caller moves or removes it."""
    fd, tmp = _mkstemp_beside(path)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        os.unlink(tmp)
        raise
    return tmp


def _atomic_local_write(path: Path, data: bytes) -> None:
    tmp = _write_temp(path, data)
    try:
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_bytes(uri: str, data: bytes) -> None:
    loc = parse(uri)
    if not loc.is_s3:
        _atomic_local_write(loc.path, data)
        return
    with _s3_errors(uri):
        s3_client().put_object(Bucket=loc.bucket, Key=loc.key, Body=data)


def write_text(uri: str, text: str, encoding: str = "utf-8") -> None:
    write_bytes(uri, text.encode(encoding))


def create_if_absent(uri: str, data: bytes | str) -> bool:
    """Write `data` only if nothing is at `uri` yet. True when this call created it.

    Exactly one of several concurrent callers wins, on S3 (`If-None-Match: *`) and locally
    (a hard link, which fails if the name exists). The object appears whole either way.
    """
    if isinstance(data, str):
        data = data.encode()
    loc = parse(uri)
    if not loc.is_s3:
        tmp = _write_temp(loc.path, data)
        try:
            os.link(tmp, loc.path)
            return True
        except FileExistsError:
            return False
        finally:
            os.unlink(tmp)
    check_conditional_writes(uri)
    return _put_if_absent(loc, data, uri)


def _put_if_absent(loc: Location, data: bytes, uri: str) -> bool:
    from botocore.exceptions import ClientError

    with _s3_errors(uri):
        try:
            s3_client().put_object(Bucket=loc.bucket, Key=loc.key, Body=data, IfNoneMatch="*")
            return True
        except ClientError as exc:
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            code = exc.response.get("Error", {}).get("Code")
            if status in (409, 412) or code in ("PreconditionFailed", "ConditionalRequestConflict"):
                return False
            raise


_CONDITIONAL_WRITES_OK: set[tuple[str, str]] = set()
_CONDITIONAL_WRITES_LOCK = threading.Lock()


def check_conditional_writes(uri: str) -> None:
    """Refuse a store that ignores `If-None-Match: *` (older MinIO, Ceph, some gateways): there
    `create_if_absent` would let two writers both "win". Checked once per process and bucket:
    a probe object is written twice and the second write must be refused (412)."""
    import uuid

    loc = parse(uri)
    if not loc.is_s3:
        return
    store = (os.environ.get("AWS_ENDPOINT_URL", ""), loc.bucket)
    with _CONDITIONAL_WRITES_LOCK:
        if store in _CONDITIONAL_WRITES_OK:
            return
        probe = Location("s3", loc.bucket, f".reelworks/if-none-match-probe/{uuid.uuid4().hex}")
        try:
            first = _put_if_absent(probe, b"probe", str(probe))
            second = _put_if_absent(probe, b"probe", str(probe))
        finally:
            with contextlib.suppress(ReelworksError):
                delete(str(probe))
        if not (first and not second):
            raise ReelworksError(f"the S3 store {store[0] or 'AWS'} (bucket {loc.bucket}) does not honour "
                                 f"If-None-Match: create-if-absent writes (ledgers, locks) are not safe there")
        _CONDITIONAL_WRITES_OK.add(store)


def upload_file(path: str | Path, uri: str) -> None:
    """Copy a local file to `uri`; large files go up in concurrent multipart chunks."""
    path = Path(path)
    if not path.is_file():
        raise NotFoundError(f"not found: {path}")
    loc = parse(uri)
    if not loc.is_s3:
        tmp = _temp_beside(loc.path)
        try:
            shutil.copyfile(path, tmp)
            os.replace(tmp, loc.path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        return
    with _s3_errors(uri):
        s3_client().upload_file(str(path), loc.bucket, loc.key, Config=_transfer_config())


@contextlib.contextmanager
def output_file(uri: str, suffix: str = "") -> Iterator[Path]:
    """Write to a local path; on success it lands at `uri` whole, on failure nothing does.

        with storage.output_file("s3://bucket/film/frames.mp4") as path:
            render(path)
    """
    loc = parse(uri)
    if not loc.is_s3:
        fd, tmp = _mkstemp_beside(loc.path, suffix or ".part")
        os.close(fd)
        try:
            yield Path(tmp)
            os.replace(tmp, loc.path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        return
    with tempfile.TemporaryDirectory(prefix="reelworks-") as tmp:
        path = Path(tmp) / ("object" + (suffix or PurePosixPath(loc.key).suffix))
        yield path
        upload_file(path, uri)


def delete(uri: str) -> None:
    loc = parse(uri)
    if not loc.is_s3:
        with contextlib.suppress(FileNotFoundError):
            if loc.path.is_dir():
                shutil.rmtree(loc.path)
            else:
                loc.path.unlink()
        return
    with _s3_errors(uri):
        s3_client().delete_object(Bucket=loc.bucket, Key=loc.key)


DELETE_BATCH = 1000  # the most keys one S3 DeleteObjects request takes


def delete_prefix(prefix: str) -> None:
    """Delete every object below `prefix`: on S3 with one DeleteObjects request per 1000 keys."""
    loc = parse(prefix)
    keys = list_keys(prefix)
    if not loc.is_s3:
        for key in keys:
            delete(join(prefix, key) if key else prefix)
        return
    base = loc.key.rstrip("/") + "/" if loc.key else ""  # as `list_keys` strips it
    full_keys = [base + key for key in keys]
    for start in range(0, len(full_keys), DELETE_BATCH):
        batch = full_keys[start:start + DELETE_BATCH]
        with _s3_errors(prefix):
            answer = s3_client().delete_objects(Bucket=loc.bucket, Delete={
                "Objects": [{"Key": key} for key in batch], "Quiet": True})
        if answer.get("Errors"):
            first = answer["Errors"][0]
            raise ReelworksError(f"could not delete {len(answer['Errors'])} object(s) below {prefix}, e.g. "
                                 f"{first.get('Key')}: {first.get('Code')} {first.get('Message', '')}".rstrip())


def copy(src: str, dst: str) -> None:
    """Copy one object between any two URIs (server-side within S3)."""
    s, d = parse(src), parse(dst)
    if s.is_s3 and d.is_s3:
        with _s3_errors(src):
            s3_client().copy({"Bucket": s.bucket, "Key": s.key}, d.bucket, d.key, Config=_transfer_config())
    elif s.is_s3:
        download_file(src, d.path)
    else:
        upload_file(s.path, dst)


def copy_prefix(src: str, dst: str) -> list[str]:
    """Copy every object below `src` to the same relative key below `dst`."""
    keys = list_keys(src)
    for key in keys:
        copy(join(src, key), join(dst, key))
    return keys


# --------------------------------------------------------------------------- sync


def _sync_manifest(local_dir: Path) -> Path:
    """Where `sync_down` records what it fetched into `local_dir` ({key: {"etag", "size"}}), so
    the next sync can tell a changed object (a retrained model of the same shape has the same
    sizes) and a deleted one. Kept in the cache, not in the folder, which stays a clean copy."""
    import hashlib

    digest = hashlib.sha256(str(local_dir.resolve()).encode()).hexdigest()[:32]
    return cache_dir() / "sync" / f"{digest}.json"


def sync_down(prefix: str, local_dir: str | Path) -> Path:
    """Mirror `prefix` into `local_dir`: fetch objects whose ETag (or size) differs from what the
    last sync fetched, and remove files that sync fetched and the prefix no longer has."""
    import json

    local_dir = Path(local_dir)
    loc = parse(prefix)
    if not loc.is_s3:
        if not loc.path.exists():
            raise NotFoundError(f"not found: {prefix}")
        shutil.copytree(loc.path, local_dir, dirs_exist_ok=True)
        return local_dir
    base = loc.key.rstrip("/") + "/" if loc.key else ""
    remote: dict[str, dict] = {}
    with _s3_errors(prefix):
        for page in s3_client().get_paginator("list_objects_v2").paginate(Bucket=loc.bucket, Prefix=base):
            for obj in page.get("Contents", []):
                remote[safe_key(obj["Key"][len(base):])] = {"etag": obj.get("ETag", ""), "size": obj["Size"]}
    if not remote:
        raise NotFoundError(f"nothing at {prefix}")
    manifest_path = _sync_manifest(local_dir)
    try:
        fetched = json.loads(manifest_path.read_text())
    except (FileNotFoundError, ValueError):
        fetched = {}
    for key, info in remote.items():
        target = local_dir / key
        if fetched.get(key) == info and target.is_file() and target.stat().st_size == info["size"]:
            continue
        download_file(join(prefix, key), target)
    for key in set(fetched) - set(remote):  # gone from the prefix: gone from the mirror
        with contextlib.suppress(FileNotFoundError):
            (local_dir / safe_key(key)).unlink()
    _atomic_local_write(manifest_path, json.dumps(remote, sort_keys=True).encode())
    return local_dir


def sync_up(local_dir: str | Path, prefix: str) -> list[str]:
    """Upload every file below `local_dir` to `prefix`; returns the relative keys."""
    local_dir = Path(local_dir)
    if not local_dir.is_dir():
        raise NotFoundError(f"not found: {local_dir}")
    keys = sorted(p.relative_to(local_dir).as_posix() for p in local_dir.rglob("*") if p.is_file())
    loc = parse(prefix)
    if not loc.is_s3:
        if loc.path.resolve() != local_dir.resolve():
            shutil.copytree(local_dir, loc.path, dirs_exist_ok=True)
        return keys
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(MAX_CONCURRENCY) as pool:
        list(pool.map(lambda key: upload_file(local_dir / key, join(prefix, key)), keys))
    return keys


def cached(prefix: str) -> Path:
    """A local directory holding `prefix`: itself when local, else a synced cache copy."""
    loc = parse(prefix)
    if not loc.is_s3:
        if not loc.path.exists():
            raise NotFoundError(f"not found: {prefix}")
        return loc.path
    return sync_down(prefix, cache_dir() / "s3" / loc.bucket / loc.key)


@contextlib.contextmanager
def output_dir(prefix: str) -> Iterator[Path]:
    """Build a folder locally; on success it is published to `prefix`.

    Locally the finished folder replaces `prefix` by rename, so a crashed job never
    leaves a half-written folder behind. On S3 the files are uploaded after the work is
    done; write a completion marker (e.g. a manifest) last if readers need one.
    """
    loc = parse(prefix)
    if not loc.is_s3:
        target = loc.path
        tmp = mkdtemp_beside(target)
        try:
            yield tmp
            if target.exists():
                # A unique name for the old folder: two publishers of one prefix never share it
                # (rename(2) replaces the empty folder mkdtemp made).
                old = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.old."))
                os.replace(target, old)
                os.replace(tmp, target)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(tmp, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return
    with tempfile.TemporaryDirectory(prefix="reelworks-") as tmp:
        yield Path(tmp)
        sync_up(tmp, prefix)
