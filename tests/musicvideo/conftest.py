"""The music video tests' shared work, made once per session on the tiny preset (CPU):
the synthetic click-track song, a template plan, its timeline, keyframes, frames, video."""
from __future__ import annotations

import pytest

FPS = 4.0
RENDER = dict(model="tiny", steps=2, guidance=7.5, height=64, width=64, batch_size=4)


@pytest.fixture(scope="session")
def song(tmp_path_factory) -> dict:
    from reelworks.musicvideo.song import write_demo_song

    return write_demo_song(str(tmp_path_factory.mktemp("song")))


@pytest.fixture(scope="session")
def walk(song, tmp_path_factory) -> dict:
    """plan -> timing -> keyframes -> interpolate -> render, in-process, with one walker."""
    from reelworks.musicvideo.interpolate import interpolate, load_walker
    from reelworks.musicvideo.keyframes import keyframes
    from reelworks.musicvideo.plan import make_plan
    from reelworks.musicvideo.render import render
    from reelworks.musicvideo.timing import load_timeline, timing

    root = tmp_path_factory.mktemp("walk")
    out = {"root": root, "plan": str(root / "plan"), "timeline": str(root / "timeline"),
           "keyframes": str(root / "keyframes"), "frames": str(root / "frames"), "video": str(root / "video")}
    make_plan(song["lyrics"], out["plan"], use_llm=False)
    timing(song["audio"], out["plan"], out["timeline"], FPS)
    tl = load_timeline(out["timeline"])
    settings = {k: v for k, v in RENDER.items() if k not in ("model", "batch_size")}
    walker = load_walker(tl, RENDER["model"], batch_size=RENDER["batch_size"], **settings)
    out["keyframe_result"] = keyframes(out["timeline"], out["keyframes"], walker=walker)
    out["interpolate_result"] = interpolate(out["timeline"], out["frames"], chunk=8, walker=walker)
    out["render_result"] = render(out["frames"], out["timeline"], song["audio"], out["video"])
    out["walker"] = walker
    out["timeline_data"] = tl
    return out
