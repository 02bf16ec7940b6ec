"""Step 5: frames in grid order + the song's exact slice -> `video.mp4` (H.264 + AAC) and a
looping GIF preview.

Frames stream one at a time into `media.VideoWriter` (memory flat in the number of frames)
with the audio samples [round(k_0 sr / fps), round(k_last sr / fps)) the timeline names, so
sound and picture start together and end together. Each PNG is checked against the sha256
in its chunk manifest; only the manifests of the frame folders' current run count (an older
run's chunks left there are not this video's). Missing or damaged frames, a timeline made from another song, or
audio and video durations that differ by more than one frame stop the step with one line
(and nothing written), unless `allow_partial`: then a missing frame repeats the frame before
it and the report counts them.
"""
from __future__ import annotations

import hashlib
import json
import logging

import numpy as np

from reelworks import storage
from reelworks.errors import ReelworksError
from reelworks.musicvideo.interpolate import manifests
from reelworks.musicvideo.timing import check_song, load_timeline

log = logging.getLogger(__name__)

GIF_MAX_FRAMES = 60
GIF_WIDTH = 256


def _decode_png(data: bytes) -> np.ndarray:
    from reelworks.media import open_image

    return np.asarray(open_image(data, "keyframe").convert("RGB"))


def render(frames: list[str] | str, timeline: str, audio: str, output: str, *, allow_partial: bool = False,
           crf: int = 18, preset: str = "veryfast", gif_width: int = GIF_WIDTH) -> dict:
    """Write `video.mp4`, `preview.gif`, `report/` and `render.json` (last) below `output`."""
    from reelworks import media
    from reelworks.metrics import job_metrics
    from reelworks.progress import track

    roots = [frames] if isinstance(frames, str) else list(frames)
    tl = load_timeline(timeline)
    check_song(tl, audio)
    fps = float(tl["fps"])
    expected = list(range(tl["first_frame"], tl["end_frame"]))
    with job_metrics("musicvideo_render") as m:
        index = manifests(roots)
        missing = [f for f in expected if f not in index]
        if missing and not allow_partial:
            raise ReelworksError(f"{len(missing)} of {len(expected)} frames are missing (first: frame {missing[0]}); "
                                 "run `musicvideo interpolate` again to finish them, or pass --allow-partial")
        if len(missing) == len(expected):
            raise ReelworksError(f"no frames found under {', '.join(roots)}")
        step = max(1, -(-len(expected) // GIF_MAX_FRAMES))
        preview: list[np.ndarray] = []
        damaged = repeated = 0
        with storage.output_dir(output) as tmp:
            video_path = tmp / "video.mp4"
            previous = None
            with media.VideoWriter(video_path, fps, audio=audio, audio_range=tuple(tl["audio_range"]), crf=crf,
                                   preset=preset) as writer:
                for n, frame in enumerate(track(expected, "render frames", total=len(expected), unit="frame")):
                    image = None
                    if frame in index:
                        uri, digest = index[frame]
                        data = storage.read_bytes(uri)
                        if hashlib.sha256(data).hexdigest() != digest:
                            if not allow_partial:
                                raise ReelworksError(f"frame {frame} ({uri}) does not match its chunk manifest: "
                                                     "remove that chunk's manifest and run interpolate again")
                            damaged += 1
                        else:
                            image = _decode_png(data)
                    if image is None:
                        image = previous if previous is not None else _first_available(expected, index)
                        repeated += 1
                        m.drop("frame_missing")
                    writer.write(image)
                    previous = image
                    m.items.inc()
                    if n % step == 0:
                        preview.append(image)
            info = media.probe(video_path)
            video_s = info.video.duration_s if info.video else 0.0
            audio_s = info.audio.duration_s if info.audio else 0.0
            drift = abs(video_s - audio_s)
            if info.video is None or info.video.frames != len(expected):
                got = info.video.frames if info.video else 0
                raise ReelworksError(f"the video has {got} frames, the grid {len(expected)}")
            if drift > 1.0 / fps and not allow_partial:
                raise ReelworksError(f"audio ({audio_s:.3f} s) and video ({video_s:.3f} s) differ by {drift:.3f} s, "
                                     f"more than one frame (1/{fps:g} s)")
            media.write_gif(tmp / "preview.gif", preview, fps / step, width=min(gif_width, preview[0].shape[1]))
            summary = {"video": storage.join(output, "video.mp4"), "preview": storage.join(output, "preview.gif"),
                       "frames": len(expected), "fps": fps, "video_s": video_s, "audio_s": audio_s,
                       "drift_s": drift, "missing": len(missing), "repeated": repeated, "damaged": damaged,
                       "audio_range": tl["audio_range"], "width": info.video.width, "height": info.video.height}
            report = render_report(summary, preview)
            report.save(str(tmp / "report"))
            (tmp / "render.json").write_text(json.dumps(summary, indent=1))
        m.gauge("reelworks_musicvideo_av_drift_seconds", "|audio - video| duration of the rendered video").set(drift)
    return {**summary, "report": report}


def _first_available(expected: list[int], index: dict) -> np.ndarray:
    for frame in expected:
        if frame in index:
            return _decode_png(storage.read_bytes(index[frame][0]))
    raise ReelworksError("no frames to render")


def render_report(summary: dict, preview: list[np.ndarray]):
    from reelworks.musicvideo.keyframes import contact_sheet
    from reelworks.reports import Report

    report = Report("Music video")
    report.text(f"`{summary['video']}`: {summary['frames']} frames at {summary['fps']:g} fps, "
                f"{summary['width']}x{summary['height']}, H.264 + AAC; video {summary['video_s']:.3f} s, "
                f"audio {summary['audio_s']:.3f} s (samples {summary['audio_range'][0]}-{summary['audio_range'][1]}"
                f" of the song). Preview: `{summary['preview']}`.")
    if summary["repeated"]:
        report.text(f"**Partial:** {summary['repeated']} frames were missing or damaged and repeat the frame "
                    "before them.")
    picks = preview[:: max(1, len(preview) // 12)][:12]
    report.image("frames", contact_sheet(picks, [""] * len(picks), columns=6, cell=128), "Frames along the video")
    for key in ("frames", "video_s", "audio_s", "drift_s", "repeated"):
        report.metric(key, summary[key])
    return report
