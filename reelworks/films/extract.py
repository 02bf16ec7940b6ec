"""`films extract`: one frame every N seconds from a film, by seeking (not decoding it all).

The moviegoer's extractor decoded every frame and kept every 24th, assuming 24 fps; this
one asks for times, seeks to the keyframe before each, and uses presentation timestamps,
so it is fast on long films and right on variable-frame-rate ones.

Output: a frame folder (see `frames.py`). The manifest is written last, so a crashed run
never looks complete; a rerun with the same settings finds the finished folder and stops.
A damaged film gives what decodes, the bad regions in `extract.json`, and (unless
`allow_partial`) a non-zero exit.
"""
from __future__ import annotations

import hashlib
import json
import logging
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from reelworks import media, storage
from reelworks.errors import ReelworksError
from reelworks.films.frames import MANIFEST, SUMMARY, encode_jpeg, film_name, frame_name
from reelworks.metrics import job_metrics
from reelworks.progress import track

log = logging.getLogger(__name__)

PARTIAL_EXIT_CODE = 3  # distinguishes "damaged film, partial output written" from bad arguments (2)
ENCODE_THREADS = 2  # JPEG encoding beside the decoding thread


@dataclass
class ExtractResult:
    film: str
    output: str
    frames: int
    targets: int
    bad_regions: list[dict] = field(default_factory=list)
    skipped: bool = False  # a finished folder with the same settings was already there
    decoded: int = 0  # frames the decoder produced (the cost)

    @property
    def complete(self) -> bool:
        return not self.bad_regions


def parse_size(text: str | None) -> tuple[int, int] | None:
    """'128x128' -> (128, 128); empty -> None."""
    if not text:
        return None
    try:
        w, h = (int(v) for v in text.lower().split("x"))
        if w <= 0 or h <= 0:
            raise ValueError
    except ValueError:
        raise ReelworksError(f"--size {text!r}: expected WIDTHxHEIGHT, e.g. 128x128") from None
    return w, h


def extract_frames(input_uri: str, output_uri: str, every: float = 8.0, size: str | tuple[int, int] | None = None,
                   gray: bool = False, allow_partial: bool = False, film: str | None = None) -> ExtractResult:
    """One frame every `every` seconds of `input_uri` into the frame folder `output_uri`."""
    if every <= 0:
        raise ReelworksError(f"--every must be positive, got {every}")
    return sample_frames(input_uri, output_uri, times=None, every=every, size=size, gray=gray,
                         allow_partial=allow_partial, film=film)


def sample_frames(input_uri: str, output_uri: str, times: list[float] | None, every: float | None = None,
                  size: str | tuple[int, int] | None = None, gray: bool = False, allow_partial: bool = False,
                  film: str | None = None, extra: list[dict] | None = None, job: str = "films_extract") -> ExtractResult:
    """Frames at `times` (or every `every` s) into a frame folder; `extract` and `shots` share it.

    `extra[i]` adds fields to the manifest line of `times[i]` (e.g. the shot it represents).
    """
    size = parse_size(size) if isinstance(size, str) or size is None else tuple(size)
    film = film or film_name(input_uri)
    with job_metrics(job) as metrics, storage.local_file(input_uri) as path:
        info = media.probe_video(path)
        targets = list(times) if times is not None else media.sample_times(info.duration_s, every)
        settings = {"film": film, "input": str(input_uri), "input_bytes": path.stat().st_size, "every": every,
                    "size": list(size) if size else None, "gray": gray,
                    "targets": hashlib.sha256(json.dumps(targets).encode()).hexdigest()[:16]}
        done = _finished(output_uri, settings)
        if done is not None:
            log.info("%s already holds these frames of %s: nothing to do", output_uri, film)
            # A damaged film stays damaged: the rerun exits as the first run did (3 unless allowed).
            return _refuse_partial(ExtractResult(film, output_uri, done.get("frames", 0), len(targets),
                                                 done.get("bad_regions", []), skipped=True), allow_partial)

        # A stale manifest must disappear before any new file does (S3 has no folder rename).
        storage.delete(storage.join(output_uri, MANIFEST))
        rows, failed = [], []
        # JPEG encoding runs in worker threads while this one decodes on towards the next
        # target (FFmpeg's decoder and libjpeg release the GIL): the JPEG work hides behind
        # the decoding.
        sampler = media.frames_at(path, targets, size=size, gray=gray)
        with storage.output_dir(output_uri) as folder, ThreadPoolExecutor(ENCODE_THREADS) as pool:
            pending: deque = deque()

            def finish(i, sample, encoded) -> None:
                if encoded is None:
                    failed.append((sample.target_s, sample.error))
                    metrics.drop("undecodable_frame")
                    return
                index = len(rows)
                name = frame_name(index)
                (folder / name).write_bytes(encoded.result())
                row = {"film": film, "index": index, "time_s": round(sample.time_s, 6),
                       "target_s": sample.target_s, "path": name, "keyframe": sample.keyframe}
                if extra is not None:
                    row.update(extra[i])
                rows.append(row)
                metrics.items.inc()

            for i, sample in enumerate(track(sampler, f"extract {film}", total=len(targets), unit="frame")):
                encoded = pool.submit(encode_jpeg, sample.image) if sample.ok else None
                sample.image = None
                pending.append((i, sample, encoded))
                while len(pending) > 2 * ENCODE_THREADS:  # bounded: memory stays flat on long films
                    finish(*pending.popleft())
            while pending:
                finish(*pending.popleft())
            bad_regions = _regions(failed, every or info.frame_period_s)
            summary = {**settings, "frames": len(rows), "requested": len(targets), "duration_s": info.duration_s,
                       "fps": info.fps, "width": info.width, "height": info.height, "codec": info.codec,
                       "bad_regions": bad_regions, "complete": not bad_regions}
            (folder / SUMMARY).write_text(json.dumps(summary, indent=2))
        # Last: the marker that says "finished" (locally the folder has been renamed into place).
        storage.write_text(storage.join(output_uri, MANIFEST), "".join(json.dumps(r) + "\n" for r in rows))
        metrics.gauge("reelworks_films_frames_missing", "Target times with no decodable frame").set(len(failed))

    return _refuse_partial(ExtractResult(film, output_uri, len(rows), len(targets), bad_regions), allow_partial)


def _refuse_partial(result: ExtractResult, allow_partial: bool) -> ExtractResult:
    """A film with bad regions exits PARTIAL_EXIT_CODE unless `allow_partial` (then one warning)."""
    if result.bad_regions:
        where = "; ".join(f"{r['start_s']:.1f}-{r['end_s']:.1f} s ({r['reason']})" for r in result.bad_regions)
        message = (f"{result.film}: {result.targets - result.frames} of {result.targets} frames could not be "
                   f"decoded, bad region(s): {where}; wrote the {result.frames} that decoded")
        if not allow_partial:
            raise ReelworksError(message + " (pass --allow-partial to accept)", exit_code=PARTIAL_EXIT_CODE)
        log.warning(message)
    return result


def _finished(output_uri: str, settings: dict) -> dict | None:
    """The summary of a finished folder made with the same settings, else None."""
    manifest, summary = storage.join(output_uri, MANIFEST), storage.join(output_uri, SUMMARY)
    if not (storage.exists(manifest) and storage.exists(summary)):
        return None
    try:
        done = json.loads(storage.read_text(summary))
    except (ValueError, ReelworksError):
        return None
    return done if all(done.get(k) == v for k, v in settings.items()) else None


def _regions(failed: list[tuple[float, str]], step: float) -> list[dict]:
    """Consecutive failed targets merged into regions [first, last] with the first reason."""
    regions: list[dict] = []
    for t, reason in failed:
        if regions and t - regions[-1]["end_s"] <= step * 1.5:
            regions[-1]["end_s"] = t
            regions[-1]["frames"] += 1
        else:
            regions.append({"start_s": t, "end_s": t, "frames": 1, "reason": reason or "undecodable"})
    return regions
