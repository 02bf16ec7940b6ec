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
from dataclasses import dataclass, field

from reelworks import storage, video
from reelworks.errors import ReelworksError
from reelworks.films.frames import MANIFEST, SUMMARY, encode_jpeg, film_name, frame_name
from reelworks.metrics import job_metrics
from reelworks.progress import track

log = logging.getLogger(__name__)

PARTIAL_EXIT_CODE = 3  # distinguishes "damaged film, partial output written" from bad arguments (2)


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
        info = video.probe(path)
        targets = list(times) if times is not None else video.sample_times(info.duration_s, every)
        settings = {"film": film, "input": str(input_uri), "input_bytes": path.stat().st_size, "every": every,
                    "size": list(size) if size else None, "gray": gray,
                    "targets": hashlib.sha256(json.dumps(targets).encode()).hexdigest()[:16]}
        done = _finished(output_uri, settings)
        if done is not None:
            log.info("%s already holds these frames of %s: nothing to do", output_uri, film)
            return ExtractResult(film, output_uri, done.get("frames", 0), len(targets),
                                 done.get("bad_regions", []), skipped=True)

        # A stale manifest must disappear before any new file does (S3 has no folder rename).
        storage.delete(storage.join(output_uri, MANIFEST))
        rows, failed = [], []
        sampler = video.frames_at(path, targets, size=size, gray=gray)
        with storage.output_dir(output_uri) as folder:
            for i, sample in enumerate(track(sampler, f"extract {film}", total=len(targets), unit="frame")):
                if not sample.ok:
                    failed.append((sample.target_s, sample.error))
                    metrics.fail("undecodable_frame")
                    continue
                index = len(rows)
                name = frame_name(index)
                (folder / name).write_bytes(encode_jpeg(sample.image))
                row = {"film": film, "index": index, "time_s": round(sample.time_s, 6),
                       "target_s": sample.target_s, "path": name, "keyframe": sample.keyframe}
                if extra is not None:
                    row.update(extra[i])
                rows.append(row)
                metrics.items.inc()
            bad_regions = _regions(failed, every or info.frame_period_s)
            summary = {**settings, "frames": len(rows), "requested": len(targets), "duration_s": info.duration_s,
                       "fps": info.fps, "width": info.width, "height": info.height, "codec": info.codec,
                       "bad_regions": bad_regions, "complete": not bad_regions}
            (folder / SUMMARY).write_text(json.dumps(summary, indent=2))
        # Last: the marker that says "finished" (locally the folder has been renamed into place).
        storage.write_text(storage.join(output_uri, MANIFEST), "".join(json.dumps(r) + "\n" for r in rows))
        metrics.gauge("reelworks_films_frames_missing", "Target times with no decodable frame").set(len(failed))

    result = ExtractResult(film, output_uri, len(rows), len(targets), bad_regions)
    if bad_regions:
        where = "; ".join(f"{r['start_s']:.1f}-{r['end_s']:.1f} s ({r['reason']})" for r in bad_regions)
        message = (f"{film}: {len(failed)} of {len(targets)} frames could not be decoded, bad region(s): {where}; "
                   f"wrote the {len(rows)} that decoded")
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
