"""Benchmark: `films extract --every 8` (seek + decode forward) against FFmpeg's fps filter.

Builds a 10-minute 1280x720 H.264 film from the shared Big Buck Bunny clip (looped, so
there are scene cuts, with a keyframe at least every 2 s as streaming encodes have), then
times side by side, in one run:

    reelworks films extract --input FILM --every 8 --output DIR
    ffmpeg -i FILM -vf fps=1/8 DIR/%05d.jpg

and prints the speed ratio, the frames each decoded, and the worst timestamp error of the
extracted frames (|frame time - target|, and whether each is the closest frame there is).
It repeats on the same film encoded with 10 s keyframe intervals, where decoding forward
from the keyframe costs more. The films are built once into the cache (a few minutes).

    python bench/films_extract_bench.py [--minutes 10] [--every 8]
"""
from __future__ import annotations

import argparse
import bisect
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from reelworks.settings import cache_dir, shared_data_dir


def build_film(source: Path, target: Path, minutes: float, gop_s: float, scene_cut_keyframes: bool) -> Path:
    if target.is_file():
        return target
    fps = 24
    loops = int(minutes * 60 // 60)  # the clip is 60 s
    args = ["ffmpeg", "-v", "error", "-y", "-stream_loop", str(loops - 1), "-i", str(source), "-an",
            "-vf", "scale=1280:720", "-c:v", "libx264", "-preset", "veryfast", "-crf", "23",
            "-g", str(int(gop_s * fps))]
    args += [] if scene_cut_keyframes else ["-keyint_min", str(int(gop_s * fps)), "-sc_threshold", "0"]
    tmp = target.with_name(f".{target.name}.part.mp4")
    print(f"building {target.name} ({minutes:g} min, keyframes <= {gop_s:g} s"
          f"{' + scene cuts' if scene_cut_keyframes else ''}) ...", flush=True)
    subprocess.run(args + ["-movflags", "+faststart", str(tmp)], check=True)
    tmp.replace(target)
    return target


def frame_times(path: Path) -> tuple[list[float], list[float]]:
    """Every frame's presentation time and the keyframes', from the packets (no decoding)."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        start = stream.start_time or 0
        times, keys = [], []
        for packet in container.demux(stream):
            if packet.pts is None:
                continue
            t = float((packet.pts - start) * stream.time_base)
            times.append(t)
            if packet.is_keyframe:
                keys.append(t)
    return sorted(times), sorted(keys)


def closest(times: list[float], t: float) -> float:
    i = bisect.bisect_left(times, t)
    return min(times[max(0, i - 1):i + 1], key=lambda x: abs(x - t))


def run(film: Path, every: float) -> dict:
    times, keys = frame_times(film)
    gaps = [b - a for a, b in zip(keys, keys[1:])]
    period = 1 / 24
    with tempfile.TemporaryDirectory() as tmp:
        ours = Path(tmp) / "ours"
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "reelworks", "--log-level", "WARNING", "films", "extract",
                        "--input", str(film), "--every", str(every), "--output", str(ours)], check=True)
        ours_s = time.perf_counter() - started
        theirs = Path(tmp) / "ffmpeg"
        theirs.mkdir()
        started = time.perf_counter()
        subprocess.run(["ffmpeg", "-v", "error", "-i", str(film), "-vf", f"fps=1/{every}", str(theirs / "%05d.jpg")],
                       check=True)
        ffmpeg_s = time.perf_counter() - started
        rows = [json.loads(line) for line in (ours / "manifest.jsonl").read_text().splitlines()]
        ffmpeg_frames = len(list(theirs.glob("*.jpg")))
    errors = [abs(r["time_s"] - r["target_s"]) for r in rows]
    not_closest = sum(1 for r in rows if abs(r["time_s"] - closest(times, r["target_s"])) > 1e-6)
    return {"film": film.name, "frames_in_film": len(times), "max_keyframe_gap_s": round(max(gaps), 2),
            "ours_s": round(ours_s, 2), "ffmpeg_s": round(ffmpeg_s, 2), "speedup": round(ffmpeg_s / ours_s, 2),
            "frames": len(rows), "ffmpeg_frames": ffmpeg_frames, "worst_error_s": round(max(errors), 4),
            "frame_period_s": round(period, 4), "within_one_period": all(e <= period + 1e-5 for e in errors),  # manifest times have 6 decimals
            "not_the_closest_frame": not_closest}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--every", type=float, default=8)
    args = parser.parse_args()
    if not shutil.which("ffmpeg"):
        sys.exit("ffmpeg is not installed")
    source = shared_data_dir() / "video" / "big_buck_bunny_60s_640x360.mp4"
    if not source.is_file():
        sys.exit(f"missing {source} (set REELWORKS_SHARED_DATA)")
    folder = cache_dir() / "bench"
    folder.mkdir(parents=True, exist_ok=True)
    films = [build_film(source, folder / f"bbb_{args.minutes:g}min_720p_gop2s.mp4", args.minutes, 2, True),
             build_film(source, folder / f"bbb_{args.minutes:g}min_720p_gop10s.mp4", args.minutes, 10, False)]
    for film in films:
        result = run(film, args.every)
        print(json.dumps(result))
        print(f"{film.name}: films extract {result['ours_s']} s vs ffmpeg fps filter {result['ffmpeg_s']} s -> "
              f"{result['speedup']}x faster; worst timestamp error {result['worst_error_s'] * 1000:.1f} ms "
              f"(one frame period = {result['frame_period_s'] * 1000:.1f} ms, within: {result['within_one_period']}, "
              f"frames not the closest: {result['not_the_closest_frame']}); keyframe gap up to "
              f"{result['max_keyframe_gap_s']} s", flush=True)


if __name__ == "__main__":
    main()
