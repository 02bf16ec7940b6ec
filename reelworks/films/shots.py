"""`films shots`: shot boundaries with PySceneDetect, and one representative frame per shot.

PySceneDetect's detectors do the work (content-aware by default); this module only picks
a detector, turns its scene list into shots with start and end times, and samples the
middle frame of each shot through `films extract`'s seeking sampler, so later steps
(faces, classify, scenes) read shot frames exactly as they read sampled frames.

Output folder:

    shots.json       {"film", "fps", "detector", "threshold", "cuts": [frame numbers],
                      "shots": [{"index", "start_s", "end_s", "start_frame", "end_frame", "mid_s"}]}
                     written LAST (the step's completion marker)
    manifest.jsonl + frame_*.jpg   the representative frames (a frame folder, with `shot`)
"""
from __future__ import annotations

import json
import logging

from reelworks import storage
from reelworks.errors import NotFoundError, ReelworksError
from reelworks.films.frames import film_name
from reelworks.metrics import job_metrics

log = logging.getLogger(__name__)

SHOTS = "shots.json"

# name -> (PySceneDetect class, name of its threshold argument)
DETECTORS = {
    "content": ("ContentDetector", "threshold"),
    "adaptive": ("AdaptiveDetector", "adaptive_threshold"),
    "threshold": ("ThresholdDetector", "threshold"),
    "histogram": ("HistogramDetector", "threshold"),
    "hash": ("HashDetector", "threshold"),
}


def make_detector(detector: str = "content", threshold: float | None = None, options: dict | None = None):
    """A PySceneDetect detector; `options` are passed on as its keyword arguments (e.g. bins)."""
    import scenedetect

    if detector not in DETECTORS:
        raise ReelworksError(f"unknown detector {detector!r}; choose one of {', '.join(DETECTORS)}")
    cls_name, arg = DETECTORS[detector]
    kwargs = dict(options or {})
    if threshold is not None:
        kwargs[arg] = float(threshold)
    try:
        return getattr(scenedetect, cls_name)(**kwargs)
    except TypeError as exc:
        raise ReelworksError(f"bad options for the {detector} detector: {exc}") from None


def detect_scene_list(path, detector: str = "content", threshold: float | None = None, options: dict | None = None):
    """(PySceneDetect scene list, video) for a local file, defaults as PySceneDetect's own."""
    import scenedetect

    from reelworks import media

    media.probe_video(path)  # one clear error for files FFmpeg cannot read, before PySceneDetect tries
    try:
        stream = scenedetect.open_video(str(path), backend="pyav")
    except Exception as exc:  # PySceneDetect wraps FFmpeg's errors in its own types
        raise ReelworksError(f"cannot open {path} for shot detection: {exc}") from None
    manager = scenedetect.SceneManager()
    manager.add_detector(make_detector(detector, threshold, options))
    manager.detect_scenes(stream, show_progress=False)
    # start_in_scene: a film with no cut is one shot, not none.
    return manager.get_scene_list(start_in_scene=True), stream


def detect_cuts(path, detector: str = "content", threshold: float | None = None,
                options: dict | None = None) -> list[int]:
    """Frame numbers where a new shot starts (PySceneDetect's cut list, first shot excluded)."""
    scenes, _ = detect_scene_list(path, detector, threshold, options)
    return [start.frame_num for start, _ in scenes[1:]]


def detect_shots(input_uri: str, output_uri: str, detector: str = "content", threshold: float | None = None,
                 frames: bool = True, size: str | None = None, gray: bool = False, film: str | None = None,
                 options: dict | None = None) -> dict:
    """Shots of a film into `output_uri/shots.json` (+ a representative frame per shot)."""
    from reelworks.films.extract import sample_frames

    film = film or film_name(input_uri)
    with job_metrics("films_shots") as metrics, storage.local_file(input_uri) as path:
        storage.delete(storage.join(output_uri, SHOTS))
        scenes, stream = detect_scene_list(path, detector, threshold, options)
        shots = []
        for i, (start, end) in enumerate(scenes):
            shots.append({"index": i, "start_s": round(start.seconds, 6), "end_s": round(end.seconds, 6),
                          "start_frame": start.frame_num, "end_frame": end.frame_num,
                          "mid_s": round((start.seconds + end.seconds) / 2, 6)})
        metrics.items.inc(len(shots))
        metrics.gauge("reelworks_films_shots", "Shots found in the film").set(len(shots))
        if frames and shots:
            sample_frames(input_uri, output_uri, times=[s["mid_s"] for s in shots], size=size, gray=gray,
                          allow_partial=True, film=film, extra=[{"shot": s["index"]} for s in shots],
                          job="films_shots_frames")
        result = {"film": film, "fps": float(stream.frame_rate), "duration_s": round(stream.duration.seconds, 6),
                  "detector": detector, "threshold": threshold,
                  "cuts": [s["start_frame"] for s in shots[1:]], "shots": shots}
        storage.write_text(storage.join(output_uri, SHOTS), json.dumps(result, indent=2))
    log.info("%s: %d shots", film, len(shots))
    return result


def read_shots(uri: str) -> dict:
    path = storage.join(uri, SHOTS)
    if not storage.exists(path):
        raise NotFoundError(f"no {SHOTS} in {uri}: run `films shots` first")
    return json.loads(storage.read_text(path))
