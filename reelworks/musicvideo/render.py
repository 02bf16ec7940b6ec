"""Step 5: frames in grid order + the song's exact slice -> `video.mp4` (H.264 + AAC) and a
looping GIF preview, checked by itself (`qa.json`).

With `output_fps` the grid's frames (made at the keyframe rate) are filled to that rate by a
frame interpolator (`reelworks.frame_interpolation`, optical flow by default): the video then
has round(grid frames x output_fps / fps) frames over the same audio slice, each keyframe shown
unblended on its nearest output frame. After encoding, `musicvideo.qa` runs shot detection and
the black / frozen / flicker / A/V checks on the file and writes `qa.json` beside it.

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
from reelworks.frame_interpolation import DEFAULT_INTERPOLATOR, INTERPOLATORS
from reelworks.musicvideo.edit_timeline import write_edit
from reelworks.musicvideo.interpolate import manifests
from reelworks.musicvideo.timing import check_song, load_timeline
from reelworks.upscale import DEFAULT_MODELS, check_factor, load_upscaler

log = logging.getLogger(__name__)

GIF_MAX_FRAMES = 60
GIF_WIDTH = 256


def _decode_png(data: bytes) -> np.ndarray:
    from reelworks.media import open_image

    return np.asarray(open_image(data, "keyframe").convert("RGB"))


def render(frames: list[str] | str, timeline: str, audio: str, output: str, *, allow_partial: bool = False,
           crf: int = 18, preset: str = "veryfast", gif_width: int = GIF_WIDTH, output_fps: float = 0.0,
           interpolator: str = DEFAULT_INTERPOLATOR, upscale: int = 1, upscaler: str = "",
           device: str | None = None) -> dict:
    """Write `video.mp4`, `preview.gif`, `qa.json`, `report/` and `render.json` (last) below
    `output`. `output_fps` (0: the timeline's rate) retimes the frames with `interpolator`;
    `upscale` 2 or 4 enlarges each grid frame first with a learned upscaler (`reelworks.upscale`:
    `upscaler` a Hub id, folder or s3:// prefix, "" its default), on `device` (default: CUDA
    when there is one)."""
    from reelworks import media
    from reelworks.frame_interpolation import output_count, retime
    from reelworks.metrics import job_metrics
    from reelworks.musicvideo import qa as video_qa
    from reelworks.progress import track

    if output_fps < 0:
        raise ReelworksError(f"--output-fps must be 0 (the keyframe rate) or positive, got {output_fps:g}")
    if interpolator not in INTERPOLATORS:
        raise ReelworksError(f"unknown interpolator {interpolator!r}: expected one of {', '.join(INTERPOLATORS)}")
    check_factor(upscale)
    roots = [frames] if isinstance(frames, str) else list(frames)
    tl = load_timeline(timeline)
    check_song(tl, audio)
    fps = float(tl["fps"])
    video_fps = float(output_fps) or fps
    expected = list(range(tl["first_frame"], tl["end_frame"]))
    n_video = output_count(len(expected), fps, video_fps)
    # Beat-locked keyframes keep their beat: each is shown, unblended, on its nearest output frame.
    pinned = [kf["frame"] - tl["first_frame"] for kf in tl["keyframes"] if kf["frame"] < tl["end_frame"]]
    with job_metrics("musicvideo_render") as m:
        index = manifests(roots)
        missing = [f for f in expected if f not in index]
        if missing and not allow_partial:
            raise ReelworksError(f"{len(missing)} of {len(expected)} frames are missing (first: frame {missing[0]}); "
                                 "run `musicvideo interpolate` again to finish them, or pass --allow-partial")
        if len(missing) == len(expected):
            raise ReelworksError(f"no frames found under {', '.join(roots)}")
        step = max(1, -(-n_video // GIF_MAX_FRAMES))
        preview: list[np.ndarray] = []
        counts = {"damaged": 0, "repeated": 0}

        def source_frames():
            """The grid's frames in order, checked against their manifests (a missing or, with
            allow_partial, damaged one repeats the frame before it)."""
            previous = None
            for frame in expected:
                image = None
                if frame in index:
                    uri, digest = index[frame]
                    data = storage.read_bytes(uri)
                    if hashlib.sha256(data).hexdigest() != digest:
                        if not allow_partial:
                            raise ReelworksError(f"frame {frame} ({uri}) does not match its chunk manifest: "
                                                 "remove that chunk's manifest and run interpolate again")
                        counts["damaged"] += 1
                    else:
                        image = _decode_png(data)
                if image is None:
                    image = previous if previous is not None else _first_available(expected, index)
                    counts["repeated"] += 1
                    m.drop("frame_missing")
                previous = image
                yield image

        # Before the fill: the learned upscaler sees each grid frame once, the cheap flow does the rest.
        enlarge = load_upscaler(upscaler, upscale, device=device) if upscale > 1 else None
        grid_frames = (enlarge(image) for image in source_frames()) if enlarge else source_frames()
        with storage.output_dir(output) as tmp:
            video_path = tmp / "video.mp4"
            with media.VideoWriter(video_path, video_fps, audio=audio, audio_range=tuple(tl["audio_range"]),
                                   crf=crf, preset=preset) as writer:
                video_frames = retime(grid_frames, len(expected), fps, video_fps, interpolator=interpolator,
                                      pinned=pinned)
                for n, image in enumerate(track(video_frames, "render frames", total=n_video, unit="frame")):
                    writer.write(image)
                    m.items.inc()
                    if n % step == 0:
                        preview.append(image)
            damaged, repeated = counts["damaged"], counts["repeated"]
            info = media.probe(video_path)
            video_s = info.video.duration_s if info.video else 0.0
            audio_s = info.audio.duration_s if info.audio else 0.0
            drift = abs(video_s - audio_s)
            if info.video is None or info.video.frames != n_video:
                got = info.video.frames if info.video else 0
                raise ReelworksError(f"the video has {got} frames, {n_video} expected "
                                     f"({len(expected)} grid frames at {fps:g} fps, video at {video_fps:g} fps)")
            if drift > 1.0 / video_fps and not allow_partial:
                raise ReelworksError(f"audio ({audio_s:.3f} s) and video ({video_s:.3f} s) differ by {drift:.3f} s, "
                                     f"more than one frame (1/{video_fps:g} s)")
            media.write_gif(tmp / "preview.gif", preview, video_fps / step,
                            width=min(gif_width, preview[0].shape[1]))
            qa = video_qa.check_video(video_path, video_qa.planned_output_cuts(tl, video_fps), fps=video_fps)
            (tmp / video_qa.QA_FILE).write_text(json.dumps(qa, indent=1))
            video_qa.export_metrics(m, qa)
            summary = {"video": storage.join(output, "video.mp4"), "preview": storage.join(output, "preview.gif"),
                       "frames": n_video, "fps": video_fps, "video_s": video_s, "audio_s": audio_s,
                       "drift_s": drift, "missing": len(missing), "repeated": repeated, "damaged": damaged,
                       "audio_range": tl["audio_range"], "width": info.video.width, "height": info.video.height,
                       "keyframe_fps": fps, "grid_frames": len(expected),
                       "interpolator": interpolator if video_fps != fps else None,
                       "upscale": upscale, "upscaler": (upscaler or DEFAULT_MODELS[upscale]) if enlarge else None,
                       "qa": storage.join(output, video_qa.QA_FILE), "qa_passed": qa["passed"],
                       "qa_counts": {k: qa[k] for k in ("unplanned_cuts", "black_frames", "frozen_spans",
                                                        "flicker_frames", "av_offset_s")}}
            # The scenes as an editor's timeline over the video (edit.otio, edit.edl at timecode rates).
            edit = write_edit(tl, summary["video"], tmp, video_fps)
            summary.update({kind: storage.join(output, name) if name else None for kind, name in edit.items()})
            report = render_report(summary, preview, qa)
            report.save(str(tmp / "report"))
            (tmp / "render.json").write_text(json.dumps(summary, indent=1))
        m.gauge("reelworks_musicvideo_av_drift_seconds", "|audio - video| duration of the rendered video").set(drift)
    return {**summary, "report": report, "qa_result": qa}


def _first_available(expected: list[int], index: dict) -> np.ndarray:
    for frame in expected:
        if frame in index:
            return _decode_png(storage.read_bytes(index[frame][0]))
    raise ReelworksError("no frames to render")


def render_report(summary: dict, preview: list[np.ndarray], qa: dict | None = None):
    from reelworks.media import contact_sheet, png_bytes
    from reelworks.musicvideo import qa as video_qa
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
    report.image("frames", png_bytes(contact_sheet(picks, columns=6, cell=128)), "Frames along the video")
    if summary.get("interpolator"):
        report.text(f"Made at {summary['keyframe_fps']:g} fps ({summary['grid_frames']} frames), filled to "
                    f"{summary['fps']:g} fps by the `{summary['interpolator']}` interpolator "
                    "(reelworks.frame_interpolation).")
    if summary.get("upscaler"):
        report.text(f"Each grid frame upscaled {summary['upscale']}x by `{summary['upscaler']}` (reelworks.upscale).")
    for key in ("frames", "video_s", "audio_s", "drift_s", "repeated"):
        report.metric(key, summary[key])
    if qa is not None:
        report.heading("Self-check")
        report.text(f"{video_qa.describe(qa)} (`{summary['qa']}`).")
        report.table(["check", "result", "detail"], video_qa.report_rows(qa))
        for key in ("unplanned_cuts", "black_frames", "frozen_spans", "flicker_frames"):
            report.metric(f"qa_{key}", qa[key])
    return report
