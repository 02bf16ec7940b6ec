"""The rendered video checked by itself: the faults a viewer sees, measured on the encoded file.

- **unplanned cuts**: the project's own shot detection (`films.shots.detect_cuts`, PySceneDetect's
  content detector) on the video; a cut more than one frame away from every planned scene
  boundary (a keyframe of the timeline) is unplanned. A walk has no hard cut at all where it
  works: each one found means frames that jump.
- **black frames**: at least 98 % of the pixels at or below 10 % luma (FFmpeg blackdetect's
  defaults), counted, with their spans.
- **frozen spans**: at least FROZEN_MIN_S seconds of consecutive frames whose mean absolute
  luma difference stays under FFmpeg freezedetect's noise floor (-60 dB, 0.1 % of full scale);
  black frames are counted as black, not frozen.
- **flicker frames**: a frame whose mean luma jumps by more than FLICKER_JUMP grey levels from
  the frame before and jumps back after (a flash, not a fade or a cut, which do not return).
- **A/V offset**: from the container (`media.probe`): where the audio starts minus where the
  video starts, and the same for the ends; within one frame both ways is in sync.

Luma is read once (`media.iter_frames`, gray, at most ANALYSIS_WIDTH wide); shot detection
decodes the file again, as `films shots` does.
"""
from __future__ import annotations

import logging

import numpy as np

log = logging.getLogger(__name__)

QA_FILE = "qa.json"
BLACK_LUMA = 0.10 * 255
BLACK_SHARE = 0.98
FROZEN_MAFD = 0.001 * 255
FROZEN_MIN_S = 1.0
FLICKER_JUMP = 12.0
ANALYSIS_WIDTH = 640
CUT_TOLERANCE_FRAMES = 1
# PySceneDetect's default minimum shot (15 frames) would hide a second cut within 0.6 s at 24 fps.
MIN_SHOT_S = 0.25


def spans(flags: np.ndarray, min_length: int = 1) -> list[list[int]]:
    """[first, end) runs of True at least `min_length` long."""
    out, start = [], None
    for i, flag in enumerate(list(flags) + [False]):
        if flag and start is None:
            start = i
        elif not flag and start is not None:
            if i - start >= min_length:
                out.append([start, i])
            start = None
    return out


def luma_series(path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per frame: mean luma, share of black pixels, and mean absolute difference to the frame
    before (0 for the first)."""
    from reelworks import media

    info = media.probe_video(path)
    size = None
    if info.width > ANALYSIS_WIDTH:
        height = max(2, int(round(info.height * ANALYSIS_WIDTH / info.width / 2)) * 2)
        size = (ANALYSIS_WIDTH, height)
    means, black, diffs = [], [], []
    previous = None
    for _, gray in media.iter_frames(path, size=size, gray=True):
        luma = gray.astype(np.float32)
        means.append(float(luma.mean()))
        black.append(float((luma <= BLACK_LUMA).mean()))
        diffs.append(0.0 if previous is None else float(np.abs(luma - previous).mean()))
        previous = luma
    return np.array(means), np.array(black), np.array(diffs)


def flicker_frames(means: np.ndarray, jump: float = FLICKER_JUMP) -> list[int]:
    """Frames whose mean luma jumps by more than `jump` and comes back at the next frame."""
    d = np.diff(means)
    return [i + 1 for i in range(len(d) - 1)
            if abs(d[i]) > jump and abs(d[i + 1]) > jump and np.sign(d[i]) != np.sign(d[i + 1])]


def check_video(path, planned_cuts: list[int], *, fps: float | None = None) -> dict:
    """The checks above on a local video file; `planned_cuts` are output frame numbers where a
    scene boundary is planned. Returns the `qa.json` content (counts first, then the details)."""
    from reelworks import media
    from reelworks.films.shots import detect_cuts

    info = media.probe(path)
    fps = fps or info.video.fps
    means, black_share, diffs = luma_series(path)
    black = black_share >= BLACK_SHARE
    frozen_flags = (diffs < FROZEN_MAFD) & ~black & ~np.roll(black, 1)
    frozen_flags[0] = False
    # A frozen span is the repeats plus the frame they repeat.
    frozen = [[first - 1, end] for first, end in spans(frozen_flags, max(1, int(round(FROZEN_MIN_S * fps)) - 1))]
    cuts = detect_cuts(path, "content", options={"min_scene_len": max(2, int(round(MIN_SHOT_S * fps)))})
    planned = sorted(set(int(c) for c in planned_cuts))
    unplanned = [c for c in cuts if not any(abs(c - p) <= CUT_TOLERANCE_FRAMES for p in planned)]
    flicker = flicker_frames(means)
    video, audio = info.video, info.audio
    offset = end_offset = None
    if audio is not None:
        offset = audio.start_s - video.start_s
        end_offset = (audio.start_s + audio.duration_s) - (video.start_s + video.duration_s)
    frame_s = 1.0 / fps
    in_sync = offset is not None and abs(offset) <= frame_s and abs(end_offset) <= frame_s
    problems = []
    if unplanned:
        problems.append(f"{len(unplanned)} unplanned cuts (frames {', '.join(map(str, unplanned[:10]))})")
    if black.any():
        problems.append(f"{int(black.sum())} black frames")
    if frozen:
        problems.append(f"{len(frozen)} frozen spans")
    if flicker:
        problems.append(f"{len(flicker)} flicker frames")
    if not in_sync:
        problems.append("no audio" if offset is None else
                        f"audio and video out of sync (start {offset:+.3f} s, end {end_offset:+.3f} s)")
    return {
        "unplanned_cuts": len(unplanned), "black_frames": int(black.sum()), "frozen_spans": len(frozen),
        "flicker_frames": len(flicker), "av_offset_s": offset, "av_end_offset_s": end_offset,
        "passed": not problems, "problems": problems,
        "frames": int(len(means)), "fps": fps, "width": video.width, "height": video.height,
        "cuts": cuts, "planned_cuts": planned, "unplanned_cut_frames": unplanned,
        "black_spans": spans(black), "frozen_span_frames": frozen, "flicker_frame_numbers": flicker,
        "mean_luma": float(means.mean()) if len(means) else 0.0,
        "thresholds": {"black_luma": BLACK_LUMA, "black_share": BLACK_SHARE, "frozen_mafd": FROZEN_MAFD,
                       "frozen_min_s": FROZEN_MIN_S, "flicker_jump": FLICKER_JUMP,
                       "cut_tolerance_frames": CUT_TOLERANCE_FRAMES, "detector": "content",
                       "min_shot_s": MIN_SHOT_S},
    }


def export_metrics(m, qa: dict) -> None:
    """The counts as gauges of the render job (`job_metrics`)."""
    for key, what in (("unplanned_cuts", "Cuts the shot detector found away from a planned scene boundary"),
                      ("black_frames", "Black frames in the rendered video"),
                      ("frozen_spans", "Spans of at least a second with no motion in the rendered video"),
                      ("flicker_frames", "Frames whose brightness flashes and returns")):
        m.gauge(f"reelworks_musicvideo_qa_{key}", what).set(qa[key])
    if qa["av_offset_s"] is not None:
        m.gauge("reelworks_musicvideo_qa_av_offset_seconds", "Audio start minus video start").set(qa["av_offset_s"])


def report_rows(qa: dict) -> list[list[object]]:
    """Check, result, detail: the QA table of the render report."""
    def frames(values, limit=8):
        return ", ".join(map(str, values[:limit])) + (" ..." if len(values) > limit else "") or "-"

    offset = "no audio" if qa["av_offset_s"] is None else f"{qa['av_offset_s']:+.3f} s"
    end = "-" if qa["av_end_offset_s"] is None else f"end {qa['av_end_offset_s']:+.3f} s"
    return [["unplanned cuts", qa["unplanned_cuts"], f"frames {frames(qa['unplanned_cut_frames'])}; "
             f"{len(qa['cuts'])} cuts found, {len(qa['planned_cuts'])} scene boundaries planned"],
            ["black frames", qa["black_frames"], f"spans {frames(qa['black_spans'])}"],
            ["frozen spans", qa["frozen_spans"], f"spans {frames(qa['frozen_span_frames'])}"],
            ["flicker frames", qa["flicker_frames"], f"frames {frames(qa['flicker_frame_numbers'])}"],
            ["A/V offset", offset, end]]


def describe(qa: dict) -> str:
    return "QA passed" if qa["passed"] else "QA: " + "; ".join(qa["problems"])


def planned_output_cuts(timeline: dict, output_fps: float) -> list[int]:
    """The scene boundaries (keyframes after the first) as output frame numbers."""
    scale = output_fps / float(timeline["fps"])
    first = timeline["first_frame"]
    return [int(round((kf["frame"] - first) * scale)) for kf in timeline["keyframes"][1:]]
