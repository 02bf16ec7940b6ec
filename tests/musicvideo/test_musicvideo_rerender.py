"""Edit and re-render: frames cached by segment content, so a rerun with one prompt changed (an
edited prompts.csv through --plan-from) or one keyframe re-rolled renders only the segments
next to it, into the same folder (tiny preset, CPU, the session's walk as the first run)."""
from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from cli_helpers import run_cli
from pictures import assert_same_picture

pytestmark = pytest.mark.slow  # the session's walk (~20 s on 2 cores) is the first run
FPS = 4.0  # tests/musicvideo/conftest.py
RENDER_ARGS = ["--model", "tiny", "--steps", "2", "--guidance", "7.5", "--height", "64", "--width", "64",
               "--batch-size", "4"]  # conftest.RENDER, as options


def _touching(timeline: dict, keyframes: set[int]) -> set[int]:
    """The segments that start or end at one of `keyframes`."""
    return {s["index"] for s in timeline["segments"] if s["a"] in keyframes or s["b"] in keyframes}


def _frames_of(timeline: dict, segments: set[int]) -> set[int]:
    return {s["first_frame"] + j for s in timeline["segments"] if s["index"] in segments
            for j in range(len(s["positions"]))}


def _digests(root: str) -> dict[int, tuple[str, str]]:
    """frame -> (PNG name below root, sha256) of the run that last wrote `root`."""
    from reelworks.musicvideo.interpolate import manifests

    return {frame: (uri[len(root) + 1:], digest) for frame, (uri, digest) in manifests([root]).items()}


def test_one_prompt_changed_renders_only_its_two_segments_again(walk, song, tmp_path):
    from reelworks.musicvideo.interpolate import Walker, interpolate, stats_name
    from reelworks.musicvideo.plan import make_plan
    from reelworks.musicvideo.render import render
    from reelworks.musicvideo.timing import load_timeline, timing

    # The user edits line 3's prompt in the first run's prompts.csv and plans from it.
    rows = list(csv.DictReader(io.StringIO((Path(walk["plan"]) / "prompts.csv").read_text())))
    assert len(rows) == 6  # a six-line song (plus its intro and outro scenes)
    (row,) = [r for r in rows if r["line"] == "3"]
    row["prompt"] = "a lighthouse in a storm, oil painting"
    edited = tmp_path / "prompts.csv"
    with edited.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    make_plan(song["lyrics"], str(tmp_path / "plan"), plan_from=str(edited), use_llm=False)
    timing(song["audio"], str(tmp_path / "plan"), str(tmp_path / "timeline"), FPS)
    first, second = walk["timeline_data"], load_timeline(str(tmp_path / "timeline"))
    changed = {i for i, (a, b) in enumerate(zip(first["keyframes"], second["keyframes"])) if a != b}
    assert changed == {next(kf["index"] for kf in second["keyframes"] if kf["line"] == 3)}

    # The same work folder as the first run (a copy: the session's frames stay as they are).
    frames = str(tmp_path / "frames")
    shutil.copytree(walk["frames"], frames)
    before = _digests(walk["frames"])
    walker = Walker(walk["walker"].pipe, second["keyframes"], steps=2, guidance=7.5, height=64, width=64,
                    batch_size=4)
    out = interpolate(str(tmp_path / "timeline"), frames, chunk=8, walker=walker)

    redone = _touching(second, changed)
    assert len(redone) == 2  # the segment into the changed scene and the one out of it
    expected = _frames_of(second, redone)
    assert out["frames_rendered"] == len(expected) == 16  # 8 + 8 (a line: 2 s at 4 fps) of the 55 frames
    assert out["frames_reused"] == second["frames"] - len(expected)
    assert out["frames_rendered"] <= second["frames"] / 2
    stats = json.loads((Path(frames) / stats_name(0)).read_text())
    assert {s["index"] for s in stats["segments"] if s["rendered"]} == redone
    assert all(s["reused"] == 0 for s in stats["segments"] if s["index"] in redone)

    after = _digests(frames)
    assert sorted(after) == list(range(second["frames"]))
    for frame in sorted(set(after) - expected):  # untouched: the first run's very files
        assert after[frame] == before[frame], frame
    moved = [f for f in sorted(expected) if after[f][1] != before[f][1]]
    # Every frame but the first of the segment into the changed scene (exactly its unchanged
    # keyframe, position 0) walks towards the new prompt: another picture.
    assert len(moved) >= len(expected) - 1, moved
    video = render(frames, str(tmp_path / "timeline"), song["audio"], str(tmp_path / "video"))
    assert video["frames"] == second["frames"] and video["repeated"] == 0


def test_reroll_a_keyframe_from_the_cli_and_walk_on(walk, tmp_path):
    """`keyframes --reroll` makes the named keyframes again and writes the timeline the walk
    follows; interpolate on it renders the four segments next to the two re-rolled keyframes."""
    from PIL import Image

    keyframes = tmp_path / "keyframes"
    code, out = run_cli("musicvideo", "keyframes", "--timeline", walk["timeline"], "--output", str(keyframes),
                        *RENDER_ARGS, "--reroll", "2:seed=4242", "--reroll", "5:prompt=a red door in the snow")
    assert code == 0, out
    timeline = json.loads((keyframes / "timeline.json").read_text())
    first = walk["timeline_data"]
    for i, (old, new) in enumerate(zip(first["keyframes"], timeline["keyframes"])):
        if i == 2:
            assert new["seed"] == 4242 and new["prompt"] == old["prompt"]
        elif i == 5:
            assert new["prompt"] == "a red door in the snow" and new["seed"] == old["seed"]
        else:
            assert new == old, i
    assert json.loads((keyframes / "keyframes.json").read_text())["rerolled"] == [2, 5]
    assert (keyframes / "report" / "contact_sheet.png").is_file()
    for i in range(len(timeline["keyframes"])):
        image = np.asarray(Image.open(keyframes / "keyframes" / f"{i:03d}.png").convert("RGB"))
        earlier = np.asarray(Image.open(Path(walk["keyframes"]) / "keyframes" / f"{i:03d}.png").convert("RGB"))
        if i in (2, 5):
            assert np.abs(image.astype(float) - earlier).mean() > 1, i  # another picture
        else:
            assert_same_picture(image, earlier, f"keyframe {i}")

    frames = tmp_path / "frames"
    shutil.copytree(walk["frames"], frames)
    code, out = run_cli("musicvideo", "interpolate", "--timeline", str(keyframes), "--output", str(frames),
                        *RENDER_ARGS, "--chunk", "8")
    assert code == 0, out
    expected = _frames_of(timeline, _touching(timeline, {2, 5}))
    assert len(_touching(timeline, {2, 5})) == 4
    assert f"frames rendered: {len(expected)}; frames reused: {timeline['frames'] - len(expected)}" in out


def test_bad_rerolls_are_one_line(walk, tmp_path):
    from reelworks.errors import ReelworksError
    from reelworks.musicvideo.keyframes import Reroll, parse_rerolls

    assert parse_rerolls("3; 4:seed=7:prompt=a: b") == [Reroll(3), Reroll(4, 7, "a: b")]
    assert parse_rerolls(["1:prompt=x", "2"]) == [Reroll(1, None, "x"), Reroll(2)]
    for spec, message in [("two", "is not N, N:seed=S"), ("3:sed=4", "is not N"), ("3:prompt=", "is not N"),
                          ("3;3:seed=1", "re-rolled twice")]:
        with pytest.raises(ReelworksError, match=message):
            parse_rerolls(spec)
    code, out = run_cli("musicvideo", "keyframes", "--timeline", walk["timeline"], "--output",
                        str(tmp_path / "k"), *RENDER_ARGS, "--reroll", "99")
    assert code == 2 and "error: re-roll 99: there are keyframes 0-7" in out and "Traceback" not in out
    assert not (tmp_path / "k").exists()
