"""A SIGKILL in the middle of `interpolate`, then a rerun: the same frames, bit for bit, as an
uninterrupted run, and no finished chunk rendered twice; on local paths and on S3."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from reelworks import storage

pytestmark = pytest.mark.slow

ARGS = ["--model", "tiny", "--steps", "2", "--height", "64", "--width", "64", "--batch-size", "4", "--chunk", "4"]


def _interpolate(timeline: str, output: str) -> subprocess.Popen:
    import torch

    env = {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads()), "REELWORKS_PROGRESS": "0"}
    return subprocess.Popen([sys.executable, "-m", "reelworks", "musicvideo", "interpolate", "--timeline", timeline,
                             "--output", output, *ARGS], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env)


def _finished(output: str) -> set[int]:
    return {int(key.split(".")[0]) for key in storage.list_keys(storage.join(output, "chunks")) if key.endswith(".json")}


def _hashes(output: str) -> dict[str, str]:
    """frame name -> sha256, from the manifests, each checked against the stored bytes."""
    import hashlib

    out = {}
    for key in storage.list_keys(storage.join(output, "chunks")):
        for entry in json.loads(storage.read_text(storage.join(output, "chunks", key)))["frames"]:
            data = storage.read_bytes(storage.join(output, entry["name"]))
            assert hashlib.sha256(data).hexdigest() == entry["sha256"], entry
            out[entry["name"]] = entry["sha256"]
    return out


def _chunks(stdout: str, what: str) -> set[int]:
    found = re.search(rf"{what} chunks: ([0-9,\-]+)", stdout)
    assert found, stdout
    return set() if found.group(1) == "-" else {int(c) for c in found.group(1).split(",")}


@pytest.fixture(scope="module")
def reference(walk) -> dict[str, str]:
    """The uninterrupted run: the session's in-process walk (same model, steps, size and batch
    size; the subprocesses use this process's thread count)."""
    return _hashes(walk["frames"])


def _kill_and_resume(timeline: str, output: str, reference: dict[str, str]) -> None:
    total = -(-len(reference) // 4)  # chunks of 4 frames, the last one shorter
    proc = _interpolate(timeline, output)
    deadline = time.monotonic() + 300
    while not _finished(output):
        assert proc.poll() is None, proc.communicate()[0]
        assert time.monotonic() < deadline
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    done = _finished(output)
    assert 0 < len(done) < total, f"the kill came too late: {len(done)} of {total} chunks were done"

    rerun = _interpolate(timeline, output)
    stdout, _ = rerun.communicate(timeout=600)
    assert rerun.returncode == 0, stdout
    rendered, skipped = _chunks(stdout, "rendered"), _chunks(stdout, "skipped")
    assert skipped == done and not (rendered & done)  # no finished chunk computed twice
    assert rendered | skipped == set(range(total))
    assert _hashes(output) == reference


def test_sigkill_and_rerun_local(walk, reference, tmp_path):
    _kill_and_resume(walk["timeline"], str(tmp_path / "frames"), reference)


def test_sigkill_and_rerun_s3(walk, reference, s3_bucket, song):
    from reelworks.musicvideo.render import render

    timeline = f"{s3_bucket}/timeline"
    storage.sync_up(walk["timeline"], timeline)
    _kill_and_resume(timeline, f"{s3_bucket}/frames", reference)
    # ... and the video renders from the S3 frames (song on S3 too), its file appearing whole.
    storage.upload_file(song["audio"], f"{s3_bucket}/song.wav")
    out = render(f"{s3_bucket}/frames", timeline, f"{s3_bucket}/song.wav", f"{s3_bucket}/video")
    assert out["frames"] == walk["timeline_data"]["frames"] and out["drift_s"] <= 1 / walk["timeline_data"]["fps"]
    assert {"video.mp4", "preview.gif", "render.json"} <= set(storage.list_keys(f"{s3_bucket}/video"))
