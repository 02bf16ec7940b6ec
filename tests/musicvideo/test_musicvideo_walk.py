"""Timing, keyframes, the walk and the render on the synthetic click track (tiny preset, CPU)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from reelworks.errors import ReelworksError
from cli_helpers import run_cli

pytestmark = pytest.mark.slow  # the session's walk (plan to video, tiny preset) takes ~20 s on 2 cores
FPS = 4.0  # tests/musicvideo/conftest.py renders the walk at this rate


def _png(path) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(path).convert("RGB"))




def test_keyframes_land_on_true_beats_within_one_frame(walk, song):
    tl = walk["timeline_data"]
    assert tl["fps"] == FPS
    true_line_beats = song["line_beat_times_s"]  # the LRC times sit 60 ms after these beats
    for kf, beat in zip(tl["keyframes"], true_line_beats):
        assert abs(kf["frame"] - beat * FPS) <= 1, (kf, beat)
        assert abs(kf["time_s"] - beat) < abs(kf["line_time_s"] - beat)  # snapping moved it towards the beat
    assert abs(tl["tempo_bpm"] - song["bpm"]) < 0.05 * song["bpm"]


def test_grid_segments_and_audio_slice(walk):
    tl = walk["timeline_data"]
    grid = tl["grid"]
    assert grid == [round(kf["time_s"] * FPS) for kf in tl["keyframes"]] + [tl["end_frame"]]
    covered = []
    for segment, (k0, k1) in zip(tl["segments"], zip(grid, grid[1:])):
        positions = segment["positions"]
        assert segment["first_frame"] == k0 and len(positions) == k1 - k0
        assert positions[0] == 0.0 and all(b > a for a, b in zip(positions, positions[1:])) and positions[-1] < 1
        covered += range(k0, k1)
    assert covered == list(range(grid[0], grid[-1]))  # every frame owned once, none repeated
    sr = tl["audio"]["sample_rate"]
    assert tl["audio_range"] == [round(grid[0] * sr / FPS), round(grid[-1] * sr / FPS)]
    assert (walk["root"] / "timeline" / "report" / "timeline.png").stat().st_size > 5000


def test_video_frame_count_equals_the_grid_and_keyframes_match(walk):
    from reelworks import media

    tl = walk["timeline_data"]
    info = media.probe(Path(walk["video"]) / "video.mp4")
    assert info.video.frames == tl["frames"] == walk["render_result"]["frames"]
    assert info.video.codec == "h264" and info.audio.codec == "aac"
    frames = Path(walk["frames"]) / "frames"
    keyframes = json.loads((Path(walk["keyframes"]) / "keyframes.json").read_text())["keyframes"]
    for kf, segment in zip(keyframes, tl["segments"]):
        first = _png(frames / f"{segment['first_frame']:06d}.png")
        assert np.array_equal(first, _png(Path(walk["keyframes"]) / kf["name"])), kf
    for k in tl["grid"][1:-1]:  # the last frame of a segment and the first of the next differ
        assert not np.array_equal(_png(frames / f"{k - 1:06d}.png"), _png(frames / f"{k:06d}.png")), k
    assert (Path(walk["keyframes"]) / "report" / "contact_sheet.png").is_file()


def test_embeddings_move_monotonically_and_slerped_noise_keeps_its_norm(walk):
    import torch

    from reelworks.musicvideo.interpolate import lerp, slerp

    walker, tl = walk["walker"], walk["timeline_data"]
    for segment in tl["segments"]:
        items = [(segment["a"], segment["b"], p) for p in segment["positions"]]
        cond, _, latents = walker.inputs(items)
        to_a = (cond - walker.cond[segment["a"]]).flatten(1).norm(dim=1)
        to_b = (cond - walker.cond[segment["b"]]).flatten(1).norm(dim=1)
        assert torch.all(to_a[1:] >= to_a[:-1]) and torch.all(to_b[1:] <= to_b[:-1])
        na, nb = walker.noise[segment["a"]].norm(), walker.noise[segment["b"]].norm()
        t = torch.tensor(segment["positions"])
        expected = (1 - t) * na + t * nb
        assert torch.all(((latents.flatten(1).norm(dim=1) - expected).abs() / expected) < 0.01)
    # The check can fail: a plain lerp of the same noise loses ~30 % of its norm half way.
    a, b = walker.noise[0:1], walker.noise[1:2]
    half = torch.tensor([0.5])
    assert lerp(a, b, half).norm() < 0.8 * a.norm()
    assert abs(slerp(a, b, half).norm() / ((a.norm() + b.norm()) / 2) - 1) < 0.01
    assert torch.equal(slerp(a, b, torch.tensor([0.0])), a) and torch.equal(lerp(a, b, torch.tensor([0.0])), a)


def test_audio_is_the_right_slice_and_durations_agree(walk, song):
    from reelworks import media

    tl = walk["timeline_data"]
    video = str(Path(walk["video"]) / "video.mp4")
    info = media.probe(video)
    assert abs(info.audio.duration_s - info.video.duration_s) <= 1 / FPS
    source, sr = media.load_audio(song["audio"])
    muxed, sr2 = media.load_audio(video, sr=sr)
    s0, s1 = tl["audio_range"]
    # Where does the muxed audio sit in the song? The waveform's cross-correlation peaks at its
    # first sample (every line has its own pitch, so no other lag matches as well).
    from scipy.signal import correlate

    corr = correlate(source, muxed, mode="valid", method="fft")
    lag = int(np.argmax(corr))
    assert abs(lag - s0) <= 64, (lag, s0)
    # ... and there the two are the same sound (AAC keeps the waveform: correlation near 1).
    same = np.corrcoef(source[s0:s0 + len(muxed)], muxed)[0, 1]
    assert same > 0.9, same
    assert abs(len(muxed) - (s1 - s0)) <= 1024, (len(muxed), s1 - s0)


def test_render_refuses_missing_frames_and_another_song(walk, song, tmp_path):
    import shutil

    from reelworks.musicvideo.render import render
    from reelworks.musicvideo.song import synthesize, wav_bytes

    frames = tmp_path / "frames"
    shutil.copytree(walk["frames"], frames)
    manifest = frames / "chunks" / "00001.json"
    manifest.unlink()
    code, out = run_cli("musicvideo", "render", "--frames", str(frames), "--timeline", walk["timeline"],
                        "--audio", song["audio"], "--output", str(tmp_path / "v1"))
    assert code == 2 and "frames are missing (first: frame" in out and "Traceback" not in out
    assert not (tmp_path / "v1").exists()
    partial = render(str(frames), walk["timeline"], song["audio"], str(tmp_path / "v2"), allow_partial=True)
    assert partial["repeated"] == 8 and partial["frames"] == walk["timeline_data"]["frames"]

    other = tmp_path / "other.wav"
    audio, _, facts = synthesize(bpm=100)
    other.write_bytes(wav_bytes(audio, facts["sample_rate"]))
    code, out = run_cli("musicvideo", "render", "--frames", walk["frames"], "--timeline", walk["timeline"],
                        "--audio", str(other), "--output", str(tmp_path / "v3"))
    assert code == 2 and "is not the song this timeline was made from" in out
    assert not (tmp_path / "v3").exists()


def test_timing_refuses_a_file_that_is_not_audio(walk, tmp_path):
    fake = tmp_path / "song.mp3"
    fake.write_text("these are lyrics, not audio\n" * 20)
    code, out = run_cli("musicvideo", "timing", "--audio", str(fake), "--plan", walk["plan"],
                        "--output", str(tmp_path / "timeline"))
    lines = [line for line in out.splitlines() if line.startswith("error:")]
    assert code == 2 and len(lines) == 1 and "song.mp3" in lines[0] and "Traceback" not in out
    assert not (tmp_path / "timeline").exists()


def test_slerp_option_and_bad_settings(walk):
    import torch

    from reelworks.musicvideo.interpolate import Walker

    walker = walk["walker"]
    with pytest.raises(ReelworksError, match="lerp or slerp"):
        Walker(walker.pipe, walk["timeline_data"]["keyframes"], steps=1, guidance=1.0, height=64, width=64,
               batch_size=1, embeddings="cubic")
    walker.embeddings = "slerp"
    try:
        cond, _, _ = walker.inputs([(0, 1, 0.0), (0, 1, 0.5)])
    finally:
        walker.embeddings = "lerp"
    assert torch.equal(cond[0], walker.cond[0]) and not torch.equal(cond[1], walker.cond[0])


def test_shards_split_the_chunks_and_render_merges_them(walk, song, tmp_path):
    """Two workers (the pipeline's ParallelFor) each render every other chunk into their own
    folder; render merges the folders; every frame is the single run's frame."""
    from reelworks.musicvideo.interpolate import interpolate, manifests
    from reelworks.musicvideo.render import render

    roots = [str(tmp_path / f"shard{k}") for k in range(2)]
    results = [interpolate(walk["timeline"], root, chunk=8, shard=k, shards=2, walker=walk["walker"])
               for k, root in enumerate(roots)]
    assert set(results[0]["rendered"]).isdisjoint(results[1]["rendered"])
    assert sorted(results[0]["rendered"] + results[1]["rendered"]) == list(range(results[0]["chunks"]))
    merged = {frame: digest for frame, (_, digest) in manifests(roots).items()}
    single = {frame: digest for frame, (_, digest) in manifests([walk["frames"]]).items()}
    assert merged == single
    out = render(roots, walk["timeline"], song["audio"], str(tmp_path / "video"))
    assert out["frames"] == walk["timeline_data"]["frames"] and out["repeated"] == 0
