"""Benchmark: `media.VideoWriter` against the FFmpeg CLI at the same x264 settings, side by side.

The same RGB frames (decoded once from the shared Big Buck Bunny clip, held in memory) go
to both, in turn, median of 3 runs each:

    VideoWriter(out.mp4, 24, crf=18, preset="veryfast")           (in a fresh process)
    ffmpeg -f rawvideo -pix_fmt rgb24 -s WxH -r 24 -i - -c:v libx264 -preset veryfast -crf 18
           -pix_fmt yuv420p -movflags +faststart out.mp4            (frames piped to stdin)

Both encode H.264 yuv420p with libx264 at its default thread count. Printed: frames/s of
each, the ratio (goal >= 0.9x), and the peak resident memory of each encoder process
(the Python process's peak includes the interpreter, numpy and PyAV; frames are read one
at a time from a raw RGB file by both sides). The machine load (`uptime`) is printed beside.

    nice -n 5 python bench/media_bench.py [--frames 480] [--runs 3]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from reelworks.settings import shared_data_dir

# Each side runs in its own process, so that a peak memory is its own; both read the frames
# one at a time from the same raw RGB file (in the page cache after the first run).
WRITER_SCRIPT = """
import sys, time, resource
import numpy as np
from reelworks import media
w, h = int(sys.argv[3]), int(sys.argv[4])
started = time.perf_counter()
with open(sys.argv[1], "rb") as raw, media.VideoWriter(sys.argv[2], 24, crf=18, preset="veryfast") as writer:
    while chunk := raw.read(w * h * 3):
        writer.write(np.frombuffer(chunk, np.uint8).reshape(h, w, 3))
print(time.perf_counter() - started, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""

FEEDER_SCRIPT = """
import sys, time, subprocess, resource
w, h = int(sys.argv[3]), int(sys.argv[4])
args = ["ffmpeg", "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-r", "24",
        "-i", "-", "-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-pix_fmt", "yuv420p",
        "-movflags", "+faststart", sys.argv[2]]
started = time.perf_counter()
proc = subprocess.Popen(args, stdin=subprocess.PIPE)
with open(sys.argv[1], "rb") as raw:
    while chunk := raw.read(w * h * 3):
        proc.stdin.write(chunk)
proc.stdin.close()
assert proc.wait() == 0
print(time.perf_counter() - started, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


def clip_frames(count: int, path: Path) -> tuple[int, int]:
    """The clip's first `count` frames as one raw RGB file; (width, height)."""
    from reelworks import media

    source = shared_data_dir() / "video" / "big_buck_bunny_60s_640x360.mp4"
    if not source.is_file():
        sys.exit(f"missing {source} (set REELWORKS_SHARED_DATA)")
    written = 0
    with open(path, "wb") as raw:
        for _, image in media.iter_frames(source):
            raw.write(image.tobytes())
            written += 1
            if written == count:
                break
    return image.shape[1], image.shape[0]


def measure(script: str, frames: Path, out: Path, size: tuple[int, int]) -> tuple[float, float]:
    result = subprocess.run([sys.executable, "-c", script, str(frames), str(out), *map(str, size)], check=True,
                            capture_output=True, text=True)
    seconds, peak_kb = result.stdout.split()
    return float(seconds), int(peak_kb) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=480)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    if not shutil.which("ffmpeg"):
        sys.exit("ffmpeg is not installed")
    load_before = os.popen("uptime").read().strip()
    with tempfile.TemporaryDirectory() as tmp:
        frames = Path(tmp) / "frames.rgb"
        width, height = clip_frames(args.frames, frames)
        ours, theirs = [], []
        for r in range(args.runs):
            ours.append(measure(WRITER_SCRIPT, frames, Path(tmp) / f"ours{r}.mp4", (width, height)))
            theirs.append(measure(FEEDER_SCRIPT, frames, Path(tmp) / f"ffmpeg{r}.mp4", (width, height)))
        from reelworks import media

        info = media.probe(Path(tmp) / "ours0.mp4").video
        sizes = [(Path(tmp) / f"{name}0.mp4").stat().st_size for name in ("ours", "ffmpeg")]
    ours_s, theirs_s = statistics.median(s for s, _ in ours), statistics.median(s for s, _ in theirs)
    result = {"frames": args.frames, "size": f"{width}x{height}", "runs": args.runs,
              "writer_fps": round(args.frames / ours_s, 1), "ffmpeg_fps": round(args.frames / theirs_s, 1),
              "ratio": round(theirs_s / ours_s, 2),
              "writer_peak_rss_mb": round(max(m for _, m in ours), 1),
              "ffmpeg_peak_rss_mb": round(max(m for _, m in theirs), 1),
              "bytes": {"writer": sizes[0], "ffmpeg": sizes[1]}, "writer_frames_probed": info.frames,
              "load_before": load_before, "load_after": os.popen("uptime").read().strip()}
    print(json.dumps(result))
    print(f"{args.frames} frames {width}x{height}, x264 veryfast crf 18: VideoWriter {result['writer_fps']} frames/s | "
          f"ffmpeg CLI {result['ffmpeg_fps']} frames/s -> {result['ratio']}x (median of {args.runs}); peak memory "
          f"{result['writer_peak_rss_mb']} MB (Python process) vs {result['ffmpeg_peak_rss_mb']} MB (ffmpeg); "
          f"load: {load_before}", flush=True)


if __name__ == "__main__":
    main()
