"""The rendered music video as an editor's timeline: edit.otio read back with OpenTimelineIO
(and the CMX 3600 EDL at a timecode rate) has one clip per scene, cut on the timeline's frames."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

otio = pytest.importorskip("opentimelineio")


def _cuts(clips) -> list[tuple[int, int]]:
    """(first frame, frame count) of each clip on its track."""
    ranges = [clip.range_in_parent() for clip in clips]
    return [(round(r.start_time.value), round(r.duration.value)) for r in ranges]


def _planned(tl: dict, video_fps: float) -> list[tuple[int, int]]:
    """(first frame, frame count) of each scene in a video at `video_fps` of the grid in `tl`."""
    cuts = [(k - tl["first_frame"]) * video_fps / tl["fps"] for k in tl["grid"]]
    return [(round(a), round(b) - round(a)) for a, b in zip(cuts, cuts[1:])]


def test_render_writes_an_otio_timeline_of_the_scenes_over_the_video(walk):
    tl = walk["timeline_data"]
    video = Path(walk["video"])
    summary = json.loads((video / "render.json").read_text())
    fps = summary["fps"]  # the video's rate (the grid's, or the output rate render filled it up to)
    assert summary["otio"] == str(video / "edit.otio")
    if not otio.opentime.RationalTime.is_valid_timecode_rate(fps):
        assert summary["edl"] is None  # the 4 fps test grid: no SMPTE timecode
    edit = otio.adapters.read_from_file(summary["otio"])
    clips = list(edit.find_clips())
    keyframes, grid = tl["keyframes"], tl["grid"]
    assert [clip.name for clip in clips] == [kf["lyric"] for kf in keyframes] and len(clips) == len(grid) - 1
    assert any(kf["kind"] == "line" for kf in keyframes) and "(intro)" in [c.name for c in clips]
    for (got_start, got_len), (start, length) in zip(_cuts(clips), _planned(tl, fps)):
        assert abs(got_start - start) <= 1 and abs(got_len - length) <= 1
    assert sum(length for _, length in _cuts(clips)) == summary["frames"]  # the whole video, no gap
    # The edit's frame rate (a number stored in the .otio file), not a clock measurement.
    assert all(clip.source_range.start_time.rate == fps for clip in clips)
    # Every clip shows the rendered video at the same frames it sits at: a straight cut list.
    assert {clip.media_reference.target_url for clip in clips} == {(video / "video.mp4").resolve().as_uri()}
    assert [round(c.source_range.start_time.value) for c in clips] == [s for s, _ in _cuts(clips)]
    assert clips[0].metadata["reelworks"]["seed"] == keyframes[0]["seed"]
    beats = edit.tracks[0].markers
    first_s = tl["first_frame"] / tl["fps"]
    assert len(beats) == sum(0 <= round((b - first_s) * fps) < summary["frames"] for b in tl["beats_s"]) > 0


def test_at_a_timecode_rate_a_cmx_3600_edl_has_the_same_cuts(song, tmp_path):
    """A 12 fps grid rendered at 24 fps: the EDL's events are the scenes, cut on 24 fps frames."""
    pytest.importorskip("otio_cmx3600_adapter")
    from reelworks.musicvideo.edit_timeline import write_edit
    from reelworks.musicvideo.plan import make_plan
    from reelworks.musicvideo.timing import load_timeline, timing

    make_plan(song["lyrics"], str(tmp_path / "plan"), use_llm=False)
    timing(song["audio"], str(tmp_path / "plan"), str(tmp_path / "timeline"), 12.0)
    tl = load_timeline(str(tmp_path / "timeline"))
    assert write_edit(tl, str(tmp_path / "video.mp4"), tmp_path, 24.0) == {"otio": "edit.otio", "edl": "edit.edl"}
    edl = otio.adapters.read_from_file(str(tmp_path / "edit.edl"), rate=24)
    clips = list(edl.find_clips())
    assert [c.name for c in clips] == [kf["lyric"] for kf in tl["keyframes"]]
    assert _cuts(clips) == _planned(tl, 24.0)
