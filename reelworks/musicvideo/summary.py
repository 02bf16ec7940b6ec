"""The run's one page: plot and scenes, the timeline picture, the keyframes' contact sheet and
the video, from the steps' outputs; saved as `<output>/report.html` (with report.md,
metrics.json and the pictures) when an output is given."""
from __future__ import annotations

import json

from reelworks import storage
from reelworks.musicvideo.plan import load_plan
from reelworks.musicvideo.timing import load_timeline, scene_label


def summary(plan: str, timeline: str, keyframes: str, video: str, output: str | None = None):
    from reelworks.reports import Report, code, escape

    p = load_plan(plan)
    tl = load_timeline(timeline)
    # The keyframes step's timeline holds the re-rolled keyframes' seeds and prompts.
    walked = storage.join(keyframes, "timeline.json")
    scenes = load_timeline(walked)["keyframes"] if storage.exists(walked) else tl["keyframes"]
    rendered = json.loads(storage.read_text(storage.join(video, "render.json")))
    report = Report(f"Music video: {p.title}")
    report.text(f"Video: {code(rendered['video'])} ({rendered['frames']} frames at {rendered['fps']:g} fps, "
                f"{rendered['width']}x{rendered['height']}, |audio - video| = {rendered['drift_s'] * 1000:.1f} ms); "
                f"preview: {code(rendered['preview'])}. Plan from {p.source}.")
    report.heading("Plot")
    report.text(escape(p.plot))
    report.heading("Timeline")
    report.image("timeline", storage.read_bytes(storage.join(timeline, "report", "timeline.png")),
                 "Waveform, beats, keyframes and sections")
    report.heading("Keyframes")
    report.image("contact_sheet", storage.read_bytes(storage.join(keyframes, "report", "contact_sheet.png")),
                 "One render per keyframe")
    report.table(["line", "frame", "section", "lyric", "prompt", "seed"],
                 [[scene_label(kf), kf["frame"], p.sections[kf["section"]]["name"], kf["lyric"], kf["prompt"],
                   kf["seed"]] for kf in scenes])
    report.heading("Video")
    report.image("frames", storage.read_bytes(storage.join(video, "report", "frames.png")), "Frames along the video")
    for key in ("frames", "drift_s", "repeated"):
        report.metric(key, rendered[key])
    report.metric("tempo_bpm", tl["tempo_bpm"])
    report.metric("scenes", len(p.scenes))
    if output:
        report.save(output)
    return report
