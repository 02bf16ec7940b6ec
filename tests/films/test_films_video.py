"""reelworks.video: writing H.264 with a keyframe cap, probing, whole-film iteration."""
from __future__ import annotations

import numpy as np
import pytest

from reelworks import video
from reelworks.errors import ReelworksError


def gradient_frames(n: int, w: int = 96, h: int = 64):
    for i in range(n):
        frame = np.zeros((h, w, 3), np.uint8)
        frame[..., 0] = (np.arange(w) * 2 + i * 5) % 256
        frame[..., 1] = i * 7 % 256
        yield frame


def test_write_probe_and_iterate(tmp_path):
    path = video.write_video(tmp_path / "clip.mp4", gradient_frames(60), fps=12, keyframe_interval_s=1.0,
                             scene_cut_keyframes=False)
    info = video.probe(path)
    assert (info.codec, info.width, info.height, info.fps) == ("h264", 96, 64, 12.0)
    assert info.duration_s == pytest.approx(5.0)
    assert np.diff(info.keyframes_s).max() <= 1.0 + 1e-6 and len(info.keyframes_s) == 5
    frames = list(video.iter_frames(path, size=(48, 32), gray=True))
    assert len(frames) == 60 and frames[0][1].shape == (32, 48)
    assert [t for t, _ in frames[:3]] == pytest.approx([0, 1 / 12, 2 / 12])


def test_frames_at_returns_the_right_picture(tmp_path):
    path = video.write_video(tmp_path / "clip.mp4", gradient_frames(48), fps=12, crf=1)
    samples = list(video.frames_at(path, [0.0, 1.0, 2.5, 3.9]))
    assert [s.time_s for s in samples] == pytest.approx([0.0, 1.0, 2.5, 3.9167], abs=1e-3)
    for s in samples:  # the green channel encodes the frame number (i * 7)
        index = round(s.time_s * 12)
        assert abs(int(s.image[..., 1].mean()) - index * 7 % 256) <= 3


def test_write_errors(tmp_path):
    with pytest.raises(ReelworksError, match="even"):
        video.write_video(tmp_path / "odd.mp4", [np.zeros((63, 95, 3), np.uint8)], fps=10)
    with pytest.raises(ReelworksError, match="no frames"):
        video.write_video(tmp_path / "none.mp4", [], fps=10)
