"""Benchmark: `films extract --every 8` against FFmpeg's fps filter and decord, side by side.

Builds a 10-minute 1280x720 H.264 film from the shared Big Buck Bunny clip (looped, so
there are scene cuts, with a keyframe at least every 2 s as streaming encodes have), then
times, in one run and in turn (median of 3 runs each):

    reelworks films extract --input FILM --every 8 --output DIR
    ffmpeg -i FILM -vf fps=1/8 DIR/%05d.jpg
    decord: VideoReader(FILM).get_batch(closest frame indices) + the same JPEG encoding

Each is a fresh process (start-up and imports included, as a user runs it). It prints the
speed ratios, the frames our extractor decoded, and checks that every frame is exact: its
time is the closest to its target there is, and its JPEG is byte-identical to the one made
from that frame by a plain decode of every frame (nothing skipped). It repeats on the same
film with 10 s keyframe intervals, where decoding forward from the keyframe costs more.
The films are built once into the cache (a few minutes). decord comes from the `bench` extra.
The machine load (`uptime`) is printed beside the figures: run it under `nice` on a shared box.

    nice -n 5 python bench/films_extract_bench.py [--minutes 10] [--every 8] [--runs 3]
"""
from __future__ import annotations

import argparse
import bisect
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from reelworks.settings import cache_dir, shared_data_dir

DECORD_SCRIPT = """
import sys, io, json
from pathlib import Path
from decord import VideoReader, cpu
from PIL import Image
film, out, indices = sys.argv[1], Path(sys.argv[2]), json.loads(sys.argv[3])
reader = VideoReader(film, ctx=cpu(0))
batch = reader.get_batch(indices).asnumpy()
for i, image in enumerate(batch):
    Image.fromarray(image).save(out / f"{i:05d}.jpg", format="JPEG", quality=90)
"""


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


def closest_index(times: list[float], t: float) -> int:
    i = bisect.bisect_left(times, t)
    return min(range(max(0, i - 1), min(len(times), i + 1)), key=lambda j: (abs(times[j] - t), -j))


def reference_jpegs(film: Path, wanted: set[float]) -> dict[float, str]:
    """sha256 of the JPEG of each wanted frame (by time), from a plain decode of every frame."""
    import av

    from reelworks.films.frames import encode_jpeg

    digests = {}
    with av.open(str(film)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        start = stream.start_time or 0
        for frame in container.decode(stream):
            t = round(float((frame.pts - start) * stream.time_base), 6)
            if t in wanted:
                digests[t] = hashlib.sha256(encode_jpeg(frame.to_ndarray(format="rgb24"))).hexdigest()
    return digests


def decoded_frames(film: Path, targets: list[float]) -> int:
    """Frames our sampler decodes for these targets (the cost; in-process, no JPEG)."""
    from reelworks import media

    with media.open_video(film) as (container, stream):
        sampler = media._Sampler(container, stream, media._info(film, container, stream), None, False)
        for _ in sampler.run(targets):
            pass
    return sampler.decoded


def timed(args: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(args, check=True)
    return time.perf_counter() - started


def load() -> str:
    return os.popen("uptime").read().strip()


def run(film: Path, every: float, runs: int, decord: bool) -> dict:
    from reelworks import media

    times, keys = frame_times(film)
    gaps = [b - a for a, b in zip(keys, keys[1:])]
    targets = media.sample_times(media.probe_video(film).duration_s, every)
    indices = [closest_index(times, t) for t in targets]
    figures: dict[str, list[float]] = {"ours": [], "ffmpeg": [], "decord": []}
    load_before = load()
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(runs):
            ours = Path(tmp) / f"ours{r}"
            figures["ours"].append(timed([sys.executable, "-m", "reelworks", "--log-level", "WARNING", "films",
                                          "extract", "--input", str(film), "--every", str(every),
                                          "--output", str(ours)]))
            theirs = Path(tmp) / f"ffmpeg{r}"
            theirs.mkdir()
            figures["ffmpeg"].append(timed(["ffmpeg", "-v", "error", "-i", str(film), "-vf", f"fps=1/{every}",
                                            str(theirs / "%05d.jpg")]))
            if decord:
                folder = Path(tmp) / f"decord{r}"
                folder.mkdir()
                figures["decord"].append(timed([sys.executable, "-c", DECORD_SCRIPT, str(film), str(folder),
                                                json.dumps(indices)]))
        rows = [json.loads(line) for line in (ours / "manifest.jsonl").read_text().splitlines()]
        ours_digests = {r["time_s"]: hashlib.sha256((ours / r["path"]).read_bytes()).hexdigest() for r in rows}
        ffmpeg_frames = len(list(theirs.glob("*.jpg")))
    load_after = load()
    not_closest = sum(1 for r, i in zip(rows, indices) if abs(r["time_s"] - times[i]) > 1e-6)
    reference = reference_jpegs(film, set(ours_digests))
    not_identical = sum(1 for t, digest in ours_digests.items() if reference.get(t) != digest)
    median = {k: statistics.median(v) for k, v in figures.items() if v}
    result = {"film": film.name, "frames_in_film": len(times), "max_keyframe_gap_s": round(max(gaps), 2),
              "targets": len(targets), "frames": len(rows), "ffmpeg_frames": ffmpeg_frames,
              "decoded_by_ours": decoded_frames(film, targets),
              "runs_s": {k: [round(x, 2) for x in v] for k, v in figures.items() if v},
              "median_s": {k: round(v, 2) for k, v in median.items()},
              "speedup_vs_ffmpeg": round(median["ffmpeg"] / median["ours"], 2),
              "not_the_closest_frame": not_closest, "not_byte_identical_to_full_decode": not_identical,
              "load_before": load_before, "load_after": load_after}
    if "decord" in median:
        result["speedup_vs_decord"] = round(median["decord"] / median["ours"], 2)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--every", type=float, default=8)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--only-gop2", action="store_true", help="skip the 10 s keyframe film")
    args = parser.parse_args()
    if not shutil.which("ffmpeg"):
        sys.exit("ffmpeg is not installed")
    try:
        import decord  # noqa: F401

        has_decord = True
    except ImportError:
        has_decord = False
        print("decord is not installed (pip install -e '.[bench]'): its column is left out", flush=True)
    source = shared_data_dir() / "video" / "big_buck_bunny_60s_640x360.mp4"
    if not source.is_file():
        sys.exit(f"missing {source} (set REELWORKS_SHARED_DATA)")
    folder = cache_dir() / "bench"
    folder.mkdir(parents=True, exist_ok=True)
    films = [build_film(source, folder / f"bbb_{args.minutes:g}min_720p_gop2s.mp4", args.minutes, 2, True)]
    if not args.only_gop2:
        films.append(build_film(source, folder / f"bbb_{args.minutes:g}min_720p_gop10s.mp4", args.minutes, 10, False))
    print(f"nice {os.nice(0)}, {os.cpu_count()} CPUs", flush=True)
    for film in films:
        result = run(film, args.every, args.runs, has_decord)
        print(json.dumps(result))
        m = result["median_s"]
        decord_part = (f" | decord get_batch {m['decord']} s -> {result['speedup_vs_decord']}x"
                       if "decord" in m else "")
        print(f"{film.name}: films extract {m['ours']} s | ffmpeg fps filter {m['ffmpeg']} s -> "
              f"{result['speedup_vs_ffmpeg']}x{decord_part} (median of {args.runs}); decoded "
              f"{result['decoded_by_ours']} of {result['frames_in_film']} frames; frames not the closest: "
              f"{result['not_the_closest_frame']}, not byte-identical to a full decode: "
              f"{result['not_byte_identical_to_full_decode']}; load: {result['load_before']}", flush=True)


if __name__ == "__main__":
    main()
