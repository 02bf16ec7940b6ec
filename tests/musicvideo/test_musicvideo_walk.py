"""Timing, keyframes, the walk and the render on the synthetic click track (tiny preset, CPU)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from reelworks.errors import ReelworksError
from cli_helpers import run_cli
from pictures import assert_same_picture

pytestmark = pytest.mark.slow  # the session's walk (plan to video, tiny preset) takes ~20 s on 2 cores
FPS = 4.0  # tests/musicvideo/conftest.py renders the walk at this rate


def _png(path) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(path).convert("RGB"))




def test_keyframes_land_on_true_beats_within_one_frame(walk, song):
    tl = walk["timeline_data"]
    assert tl["fps"] == FPS
    true_line_beats = song["line_beat_times_s"]  # the LRC times sit 60 ms after these beats
    lines = [kf for kf in tl["keyframes"] if kf["kind"] == "line"]
    assert len(lines) == len(true_line_beats)
    for kf, beat in zip(lines, true_line_beats):
        assert abs(kf["frame"] - beat * FPS) <= 1, (kf, beat)
        assert abs(kf["time_s"] - beat) < abs(kf["line_time_s"] - beat)  # snapping moved it towards the beat
    assert abs(tl["tempo_bpm"] - song["bpm"]) < 0.05 * song["bpm"]


def test_grid_segments_and_audio_slice(walk):
    tl = walk["timeline_data"]
    grid = tl["grid"]
    # The whole song: its 0.8 s before the first line and 0.9 s after the last have scenes of their own.
    # The grid ends on the last whole frame the audio covers (song time, not a clock).
    duration = tl["audio"]["duration_s"]
    assert grid[0] == 0 and grid[-1] / FPS <= duration + 1e-9 and duration - grid[-1] / FPS < 1 / FPS
    assert [kf["kind"] for kf in tl["keyframes"]] == ["intro"] + ["line"] * 6 + ["outro"]
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
    from reelworks.musicvideo.interpolate import manifests

    tl = walk["timeline_data"]
    info = media.probe(Path(walk["video"]) / "video.mp4")
    assert info.video.frames == tl["frames"] == walk["render_result"]["frames"]
    assert info.video.codec == "h264" and info.audio.codec == "aac"
    frames = {frame: uri for frame, (uri, _) in manifests([walk["frames"]]).items()}
    keyframes = json.loads((Path(walk["keyframes"]) / "keyframes.json").read_text())["keyframes"]
    for kf, segment in zip(keyframes, tl["segments"]):
        # Rendered in other batches than the keyframe: the same picture, not the same bits (tests/pictures.py).
        first = _png(frames[segment["first_frame"]])
        assert_same_picture(first, _png(Path(walk["keyframes"]) / kf["name"]), f"keyframe {kf}")
    for k in tl["grid"][1:-1]:  # the last frame of a segment and the first of the next differ
        assert not np.array_equal(_png(frames[k - 1]), _png(frames[k])), k
    assert (Path(walk["keyframes"]) / "report" / "contact_sheet.png").is_file()


def test_embeddings_move_monotonically_and_slerped_noise_keeps_its_norm(walk):
    import torch

    from reelworks.musicvideo.interpolate import lerp, slerp

    walker, tl = walk["walker"], walk["timeline_data"]
    for segment in tl["segments"]:
        items = [(segment["a"], segment["b"], p) for p in segment["positions"]]
        inputs = walker.inputs(items)
        cond, latents, keyframe_cond = inputs["prompt_embeds"], inputs["latents"], walker.embeds["prompt_embeds"]
        to_a = (cond - keyframe_cond[segment["a"]]).flatten(1).norm(dim=1)
        to_b = (cond - keyframe_cond[segment["b"]]).flatten(1).norm(dim=1)
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
    # ... and each lasts the song (13.75 s), not just its lyrics (0.8 s to 12.8 s).
    assert abs(info.video.duration_s - song["duration_s"]) <= 1 / FPS
    assert abs(info.audio.duration_s - song["duration_s"]) <= 1 / FPS
    source, sr = media.load_audio(song["audio"])
    muxed, sr2 = media.load_audio(video, sr=sr)
    s0, s1 = tl["audio_range"]
    # Where does the muxed audio sit in the song? The waveform's cross-correlation peaks at its
    # first sample (every line has its own pitch, so no other lag matches as well).
    from scipy.signal import correlate

    # "full": the muxed audio is now the whole song, as long as the source or (AAC's padding) longer.
    corr = correlate(source, muxed, mode="full", method="fft")
    lag = int(np.argmax(corr)) - (len(muxed) - 1)
    assert abs(lag - s0) <= 64, (lag, s0)
    # ... and there the two are the same sound (AAC keeps the waveform: correlation near 1).
    n = min(len(muxed), len(source) - s0)
    same = np.corrcoef(source[s0:s0 + n], muxed[:n])[0, 1]
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
        cond = walker.inputs([(1, 2, 0.0), (1, 2, 0.5)])["prompt_embeds"]  # two lines (the intro has line 1's prompt)
    finally:
        walker.embeddings = "lerp"
    keyframe_cond = walker.embeds["prompt_embeds"]
    assert torch.equal(cond[0], keyframe_cond[1]) and not torch.equal(cond[1], keyframe_cond[1])


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


def test_a_long_intro_a_break_and_the_outro_get_scenes_and_the_video_lasts_the_song(tmp_path):
    """8 s of music before the first line, 8 s without a line after the fourth, 4 s after the
    last: each gets a scene, and the video (picture and sound) is the whole 32.25 s song."""
    import dataclasses

    from reelworks import media
    from reelworks.musicvideo.interpolate import interpolate, load_walker
    from reelworks.musicvideo.lyrics import to_lrc
    from reelworks.musicvideo.plan import make_plan
    from reelworks.musicvideo.render import render
    from reelworks.musicvideo.song import DEMO_LINES, synthesize, wav_bytes
    from reelworks.musicvideo.timing import load_timeline, timing

    fps = 2.0
    audio, lines, facts = synthesize(lines=DEMO_LINES + DEMO_LINES[:4], lead_in_beats=16, tail_beats=8)
    sung = [dataclasses.replace(line, index=i) for i, line in enumerate(l for l in lines if l.index not in (4, 5, 6))]
    (tmp_path / "song.wav").write_bytes(wav_bytes(audio, facts["sample_rate"]))
    (tmp_path / "song.lrc").write_text(to_lrc(sung))
    make_plan(str(tmp_path / "song.lrc"), str(tmp_path / "plan"), use_llm=False)
    timing(str(tmp_path / "song.wav"), str(tmp_path / "plan"), str(tmp_path / "timeline"), fps)
    tl = load_timeline(str(tmp_path / "timeline"))
    kinds = [kf["kind"] for kf in tl["keyframes"]]
    assert kinds == ["intro"] + ["line"] * 4 + ["break"] + ["line"] * 3 + ["outro"]
    line_s = 60 / facts["bpm"] * 4
    brk = tl["keyframes"][5]
    assert abs(brk["time_s"] - (sung[3].time_s + line_s)) < 0.3 and brk["prompt"] == tl["keyframes"][4]["prompt"]
    assert brk["seed"] != tl["keyframes"][4]["seed"]  # another picture, in the line's style
    assert tl["grid"][0] == 0 and tl["grid"][-1] == int(facts["duration_s"] * fps)

    walker = load_walker(tl, "tiny", steps=1, guidance=7.5, height=32, width=32, batch_size=8)
    interpolate(str(tmp_path / "timeline"), str(tmp_path / "frames"), chunk=16, walker=walker)
    out = render(str(tmp_path / "frames"), str(tmp_path / "timeline"), str(tmp_path / "song.wav"),
                 str(tmp_path / "video"))
    info = media.probe(tmp_path / "video" / "video.mp4")
    assert info.video.frames == out["frames"] == tl["frames"]
    assert abs(info.video.duration_s - facts["duration_s"]) <= 1 / fps
    assert abs(info.audio.duration_s - facts["duration_s"]) <= 1 / fps


class _PipeCalls:
    """The tiny pipeline's real call, wrapped: batch sizes and generator seeds recorded, and
    CUDA out-of-memory raised above `fits` frames, or `flag(seed)` images blacked out and
    flagged the way diffusers' safety checker does."""

    def __init__(self, monkeypatch, pipe, fits: int | None = None, flag=None):
        import torch

        self.batches, self.seeds = [], []
        real = type(pipe).__call__

        def call(pipe_self, *args, **kwargs):
            n = kwargs["latents"].shape[0]
            self.batches.append(n)
            seeds = [g.initial_seed() for g in kwargs["generator"]]
            self.seeds.append(seeds)
            if fits is not None and n > fits:
                raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
            output = real(pipe_self, *args, **kwargs)
            if flag is not None:
                hits = [bool(flag(seed)) for seed in seeds]
                for row, hit in enumerate(hits):
                    if hit:
                        output.images[row] = 0.0
                output.nsfw_content_detected = hits
            return output

        monkeypatch.setattr(type(pipe), "__call__", call)


def test_out_of_memory_halves_the_batch_and_no_frame_is_dropped(walk, monkeypatch, tmp_path):
    from reelworks.musicvideo.interpolate import interpolate, manifests

    walker = walk["walker"]
    monkeypatch.setattr(walker, "batch_size", walker.batch_size)  # the back-off lowers it: restored after
    calls = _PipeCalls(monkeypatch, walker.pipe, fits=2)
    # Chunks 0 and 4 of 7 (shard 0 of 4): 16 frames, each chunk twice the failing batch of 4.
    out = interpolate(walk["timeline"], str(tmp_path / "frames"), chunk=8, shard=0, shards=4, walker=walker)
    assert calls.batches[0] == 4 and set(calls.batches[1:]) == {2} and walker.batch_size == 2
    assert out["rendered"] == [0, 4]
    found = manifests([str(tmp_path / "frames")])
    assert sorted(found) == list(range(0, 8)) + list(range(32, 40))  # every frame of both chunks
    single = manifests([walk["frames"]])
    for frame in (0, 1, 2, 3, 7, 32, 39):  # batches of 2 instead of 4: the same pictures
        assert_same_picture(_png(found[frame][0]), _png(single[frame][0]), f"frame {frame}")


def test_a_run_with_another_chunk_size_is_not_mixed_with_the_old_one(walk, song, tmp_path):
    import shutil

    from reelworks.musicvideo.interpolate import interpolate, manifests
    from reelworks.musicvideo.render import render

    frames = tmp_path / "frames"
    shutil.copytree(walk["frames"], frames)
    old = json.loads((frames / "interpolate.json").read_text())["fingerprint"]
    # A quarter of a run with chunks of 4 (shard 0 of 4) over the finished run with chunks of 8.
    out = interpolate(walk["timeline"], str(frames), chunk=4, shard=0, shards=4, walker=walk["walker"])
    assert out["fingerprint"] != old and out["skipped"] == []  # the chunk size is in the fingerprint
    # ... but not in the segments' keys: every frame comes from the cache, none is rendered again.
    assert out["frames_rendered"] == 0 and out["frames_reused"] == len(manifests([str(frames)]))
    left = [json.loads(p.read_text())["fingerprint"] for p in sorted((frames / "chunks").glob("*.json"))]
    assert old in left  # the old run's chunks 1-6 are still there ...
    ours = {f for c in out["rendered"] for f in range(4 * c, min(4 * c + 4, walk["timeline_data"]["frames"]))}
    assert set(manifests([str(frames)])) == ours  # ... and not read
    with pytest.raises(ReelworksError, match="frames are missing"):
        render(str(frames), walk["timeline"], song["audio"], str(tmp_path / "video"))
    with pytest.raises(ReelworksError, match="different settings"):
        manifests([walk["frames"], str(frames)])


def test_each_frame_has_its_own_generator_so_a_stochastic_scheduler_repeats_and_does_not_flicker(walk, monkeypatch):
    import torch
    from diffusers import EulerAncestralDiscreteScheduler

    walker = walk["walker"]
    pipe = walker.pipe
    monkeypatch.setattr(pipe, "scheduler", EulerAncestralDiscreteScheduler.from_config(pipe.scheduler.config))
    items = [(1, 2, 0.3), (1, 2, 0.31)]
    torch.manual_seed(1)
    first = walker.render(items)
    torch.manual_seed(2)
    second = walker.render(items)
    for a, b in zip(first, second):  # the global random state plays no part
        assert np.array_equal(a, b)
    calls = _PipeCalls(monkeypatch, pipe)
    walker.render(items)
    assert calls.seeds[0][:2] == [walker.seeds[1]] * 2  # the segment's seed: the same added noise along it
    # Neighbouring frames move a little; with a new draw of the scheduler's noise per frame
    # (another seed, or none at all) they would jump. Measured: mean step 0.57 and 0.61 of 255,
    # jump 1.59 and 1.67 (ratio 0.36-0.37) in segments 1 and 3 (/tmp/flicker.py in the report).
    step = np.abs(first[0].astype(float) - first[1].astype(float)).mean()
    monkeypatch.setattr(walker, "seeds", [seed + 1 for seed in walker.seeds])
    monkeypatch.setattr(walker, "noise", walker.noise)
    jumped = walker.render(items[1:])[0]
    jump = np.abs(first[0].astype(float) - jumped.astype(float)).mean()
    assert step < 0.5 * jump, (step, jump)


def test_a_frame_the_safety_checker_flags_is_made_again_with_the_next_seed(walk, monkeypatch):
    from reelworks import diffusion

    walker = walk["walker"]
    items = [(0, 1, 0.0), (0, 1, 0.5), (1, 2, 0.0)]
    plain = walker.render(items)
    calls = _PipeCalls(monkeypatch, walker.pipe, flag=lambda seed: seed == walker.seeds[0])
    frames = walker.render_all(items)
    assert np.array_equal(frames[2], plain[2])  # not flagged: untouched
    for again, before in zip(frames[:2], plain[:2]):
        assert again.max() > 0 and not np.array_equal(again, before)  # no black frame: another picture
    assert calls.seeds[1][:2] == [walker.seeds[0] + 1] * 2

    monkeypatch.undo()
    calls = _PipeCalls(monkeypatch, walker.pipe, flag=lambda seed: True)
    with pytest.raises(ReelworksError, match="safety checker flagged 1 image"):
        walker.render_all(items[:1])
    assert len(calls.batches) == 1 + diffusion.SAFETY_TRIES  # bounded
