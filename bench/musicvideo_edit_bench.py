"""Edit and re-render (not a timed test): `python bench/musicvideo_edit_bench.py [--preset tiny] [--aspect 16:9]`.

The demo song (intro, six lines, outro) walked once into a work folder, then one line's prompt
changed in prompts.csv (`--plan-from`) and walked again into the same folder: frames rendered
again, frames reused and the seconds of each pass, side by side in one process (the same
loaded pipeline for both, so the ratio is the walk's, not the loading's).
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("REELWORKS_PROGRESS", "0")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--aspect", default="16:9")
    parser.add_argument("--fps", type=float, default=0.0, help="0: the preset's")
    parser.add_argument("--line", type=int, default=3, help="the lyric line whose prompt changes")
    args = parser.parse_args()

    from reelworks.musicvideo.interpolate import Walker, interpolate, load_walker
    from reelworks.musicvideo.plan import make_plan
    from reelworks.musicvideo.presets import render_settings, resolve
    from reelworks.musicvideo.song import write_demo_song
    from reelworks.musicvideo.timing import load_timeline, timing

    settings = render_settings(args.preset, args.aspect)
    fps = args.fps or resolve(args.preset)["fps"]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        song = write_demo_song(str(root / "song"))
        make_plan(song["lyrics"], str(root / "plan1"), use_llm=False)
        timing(song["audio"], str(root / "plan1"), str(root / "timeline1"), fps)
        first = load_timeline(str(root / "timeline1"))
        walker = load_walker(first, settings["model"], kind=settings["kind"], steps=settings["steps"],
                             guidance=settings["guidance"], height=settings["height"], width=settings["width"])
        started = time.perf_counter()
        full = interpolate(str(root / "timeline1"), str(root / "work"), walker=walker)
        full_s = time.perf_counter() - started

        rows = list(csv.DictReader(io.StringIO((root / "plan1" / "prompts.csv").read_text())))
        for row in rows:
            if row["line"] == str(args.line):
                row["prompt"] = "a lighthouse in a storm, oil painting"
        with (root / "edited.csv").open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        make_plan(song["lyrics"], str(root / "plan2"), plan_from=str(root / "edited.csv"), use_llm=False)
        timing(song["audio"], str(root / "plan2"), str(root / "timeline2"), fps)
        second = load_timeline(str(root / "timeline2"))
        walker2 = Walker(walker.pipe, second["keyframes"], steps=walker.steps, guidance=walker.guidance,
                         height=walker.height, width=walker.width, batch_size=walker.batch_size)
        started = time.perf_counter()
        edit = interpolate(str(root / "timeline2"), str(root / "work"), walker=walker2)
        edit_s = time.perf_counter() - started
    print(json.dumps({"preset": args.preset, "aspect": args.aspect, "size": f"{walker.width}x{walker.height}",
                      "fps": fps, "frames": full["frames"], "first_pass": {"rendered": full["frames_rendered"],
                                                                          "seconds": round(full_s, 2)},
                      "after_one_prompt_changed": {"rendered": edit["frames_rendered"],
                                                   "reused": edit["frames_reused"], "seconds": round(edit_s, 2)},
                      "rendered_share": round(edit["frames_rendered"] / full["frames"], 3),
                      "time_ratio": round(edit_s / full_s, 3)}, indent=1))


if __name__ == "__main__":
    main()
