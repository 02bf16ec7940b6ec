"""`films extract`: seeking accuracy, the manifest contract, reruns, damaged and bad input."""
from __future__ import annotations

import json

import numpy as np
import pytest
from films_helpers import all_frame_times, run_cli

from reelworks import storage
from reelworks import media as media_lib  # `media` is the films fixture of sample clips
from reelworks.errors import ReelworksError
from reelworks.films import extract as extract_mod
from reelworks.films.extract import PARTIAL_EXIT_CODE, extract_frames
from reelworks.films.frames import read_frames


def closest(times: list[float], target: float) -> float:
    return min(times, key=lambda t: abs(t - target))


@pytest.mark.parametrize("name, every", [("gop10", 3.0), ("vfr", 0.7)])
def test_every_frame_is_the_closest_to_its_target(media, tmp_path, name, every):
    path = media[name]
    truth = all_frame_times(path)
    result = extract_frames(str(path), str(tmp_path / "frames"), every=every)
    folder = read_frames(str(tmp_path / "frames"))
    assert result.frames == len(folder.rows) == len(media_lib.sample_times(media_lib.probe_video(path).duration_s, every))
    period = media_lib.probe_video(path).frame_period_s
    gaps = np.diff(truth)
    for row in folder.rows:
        assert row["time_s"] == pytest.approx(closest(truth, row["target_s"]), abs=1e-6), row
        # Within one frame period of the target, except where the film itself has no frame closer.
        assert abs(row["time_s"] - row["target_s"]) <= max(period, gaps.max() / 2) + 1e-6
        assert set(row) >= {"film", "index", "time_s", "path"}
    assert [r["index"] for r in folder.rows] == list(range(len(folder.rows)))


@pytest.mark.parametrize("name, step", [("gop10", 0.765), ("vfr", 0.37)])
def test_frames_are_exactly_those_of_a_full_decode(media, tmp_path, name, step):
    """Seeking, skipping non-reference frames and threaded JPEG encoding change nothing:
    each file holds the same bytes as the closest frame of a plain decode of every frame.
    Targets fall between frames at varying offsets, so the closest is sometimes the frame
    before the target (a B-frame the decoder could have skipped) and sometimes after."""
    from reelworks.films.extract import sample_frames
    from reelworks.films.frames import encode_jpeg

    path = media[name]
    decoded = list(media_lib.iter_frames(path))  # every frame, in order, nothing skipped
    times = [round(0.11 + step * i, 6) for i in range(int((decoded[-1][0] - 0.2) / step))]
    sample_frames(str(path), str(tmp_path / "frames"), times=times)
    rows = read_frames(str(tmp_path / "frames")).rows
    assert len(rows) == len(times) > 25
    for row in rows:
        nearest = min(abs(t - row["target_s"]) for t, _ in decoded)
        # Two frames equally close (a target half-way between them): either is right.
        ties = {round(t, 6): image for t, image in decoded if abs(t - row["target_s"]) <= nearest + 1e-6}
        assert row["time_s"] in ties, (row, sorted(ties))
        assert (tmp_path / "frames" / row["path"]).read_bytes() == encode_jpeg(ties[row["time_s"]]), row


def test_seeking_decodes_a_fraction_of_the_film(media):
    # 24 s at 25 fps with a keyframe every 10 s: three targets 8 s apart decode far fewer than 600 frames.
    path = media["gop10"]
    with media_lib.open_video(path) as (container, stream):
        sampler = media_lib._Sampler(container, stream, media_lib._info(path, container, stream), None, False)
        frames = list(sampler.run([0.0, 8.0, 16.0]))
    assert all(f.ok for f in frames)
    assert sampler.decoded < 450


def test_size_and_gray(media, tmp_path):
    extract_frames(str(media["gop10"]), str(tmp_path / "f"), every=12, size="64x48", gray=True)
    folder = read_frames(str(tmp_path / "f"))
    image = folder.image(folder.rows[0])
    assert image.shape == (48, 64, 3)  # read back as RGB by default
    assert np.allclose(image[..., 0], image[..., 1], atol=2)  # but it was gray


def test_rerun_is_idempotent_and_settings_change_redoes(media, tmp_path):
    out = str(tmp_path / "frames")
    first = extract_frames(str(media["gop10"]), out, every=6)
    manifest = (tmp_path / "frames" / "manifest.jsonl").read_text()
    again = extract_frames(str(media["gop10"]), out, every=6)
    assert not first.skipped and again.skipped
    assert (tmp_path / "frames" / "manifest.jsonl").read_text() == manifest
    third = extract_frames(str(media["gop10"]), out, every=12)
    assert not third.skipped and third.frames == 2  # 0 and 12 s of a 24 s film
    assert len(read_frames(out).rows) == 2
    assert not list((tmp_path / "frames").glob("frame_000002.jpg"))  # no stale frames from the first run


def test_a_crash_leaves_no_manifest(media, tmp_path, monkeypatch):
    calls = {"n": 0}
    real = extract_mod.encode_jpeg

    def failing(image, quality=90):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("disk on fire")
        return real(image, quality)

    monkeypatch.setattr(extract_mod, "encode_jpeg", failing)
    with pytest.raises(RuntimeError):
        extract_frames(str(media["gop10"]), str(tmp_path / "frames"), every=4)
    assert not (tmp_path / "frames" / "manifest.jsonl").exists()
    with pytest.raises(ReelworksError, match="no manifest.jsonl"):
        read_frames(str(tmp_path / "frames"))


def test_truncated_film_gives_what_decodes_and_fails_unless_allowed(media, tmp_path):
    out = tmp_path / "frames"
    code, text = run_cli("films", "extract", "-i", str(media["truncated"]), "-o", str(out), "--every", "4")
    assert code == PARTIAL_EXIT_CODE
    assert "bad region" in text and "--allow-partial" in text
    summary = json.loads((out / "extract.json").read_text())
    assert not summary["complete"] and summary["bad_regions"]
    region = summary["bad_regions"][0]
    assert 4 <= region["start_s"] <= region["end_s"] <= 24
    rows = read_frames(str(out)).rows
    assert 0 < len(rows) < summary["requested"]
    assert all(r["time_s"] < region["start_s"] for r in rows)

    code, text = run_cli("films", "extract", "-i", str(media["truncated"]), "-o", str(tmp_path / "ok"),
                         "--every", "4", "--allow-partial")
    assert code == 0, text


@pytest.mark.parametrize("name, message", [("empty", "empty"), ("text", "not a video"),
                                           ("unsupported", "unsupported video codec")])
def test_bad_input_is_one_clear_line(media, tmp_path, name, message):
    code, text = run_cli("films", "extract", "-i", str(media[name]), "-o", str(tmp_path / "f"))
    assert code == 2
    lines = [line for line in text.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and message in lines[0], text
    assert "Traceback" not in text
    assert not (tmp_path / "f").exists()


def test_missing_film_and_bad_size(tmp_path, media):
    with pytest.raises(ReelworksError, match="not found"):
        extract_frames(str(tmp_path / "nope.mp4"), str(tmp_path / "f"))
    with pytest.raises(ReelworksError, match="WIDTHxHEIGHT"):
        extract_frames(str(media["gop10"]), str(tmp_path / "f"), size="big")


def test_s3_in_and_out(media, s3_bucket):
    film = f"{s3_bucket}/films/gop10.mp4"
    storage.upload_file(media["gop10"], film)
    result = extract_frames(film, f"{s3_bucket}/frames/gop10", every=8)
    folder = read_frames(f"{s3_bucket}/frames/gop10")
    assert result.frames == len(folder.rows) == 3
    assert folder.film == "gop10"
    assert folder.image(folder.rows[1]).shape == (180, 320, 3)
    assert extract_frames(film, f"{s3_bucket}/frames/gop10", every=8).skipped


def test_real_clip(shared_data, tmp_path):
    path = shared_data / "video" / "big_buck_bunny_60s_640x360.mp4"
    truth = all_frame_times(path)
    extract_frames(str(path), str(tmp_path / "bbb"), every=8)
    rows = read_frames(str(tmp_path / "bbb")).rows
    assert [r["target_s"] for r in rows] == [0, 8, 16, 24, 32, 40, 48, 56]
    assert all(r["time_s"] == pytest.approx(closest(truth, r["target_s"])) for r in rows)
