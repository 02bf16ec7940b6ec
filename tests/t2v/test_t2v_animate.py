"""`t2v image`, `animate`, `export`: every tiny kind gives exactly N frames at the requested size;
the mp4 has N frames at the fps asked for, the gif loops with N frames; S3 round trips."""
from __future__ import annotations

import io
import json
import logging

import numpy as np
import pytest
from PIL import Image
from pictures import assert_same_picture

from reelworks import media, storage
from reelworks.errors import ReelworksError
from reelworks.t2v import animate, export, image

WIDTH, HEIGHT, FPS = 48, 40, 6  # 48x40 is no multiple of LTX's 32 or Wan's 16: generated larger, scaled


@pytest.fixture(scope="module")
def first_frames(tmp_path_factory) -> str:
    """Two SD first frames from the tiny preset, one of them from a description over 77 tokens."""
    out = tmp_path_factory.mktemp("images") / "images"
    csv = out.parent / "prompts.csv"
    long = "A detective walks slowly through " + " and ".join(f"room number {i}" for i in range(60)) + "."
    csv.write_text(f'id,prompt\nshort,"A man chases a thief across the rooftops at night."\nlong,"{long}"\n')
    image.image(str(out), prompts=str(csv), model="tiny", width=WIDTH, height=HEIGHT, seed=5)
    return str(out)


def test_first_frames_have_their_size_seed_and_a_cut_long_prompt(first_frames, tmp_path, caplog):
    manifest = json.loads((storage.parse(first_frames).path / "images.json").read_text())
    assert [(i["id"], i["seed"], i["truncated"]) for i in manifest["images"]] == [("short", 5, False),
                                                                                   ("long", 6, True)]
    with Image.open(storage.join(first_frames, "images/short.png")) as im:
        assert im.size == (WIDTH, HEIGHT)
        short = np.asarray(im)
    # the same seed gives the same picture alone or in a batch (tests/pictures.py: to 1 in 255, as torch
    # promises no bit-identity across batch sizes or CPUs); the long prompt warns once
    with caplog.at_level(logging.WARNING, logger="reelworks.diffusion"):
        image.image(str(tmp_path / "again"), prompt="A man chases a thief across the rooftops at night.",
                    model="tiny", width=WIDTH, height=HEIGHT, seed=5)
        image.image(str(tmp_path / "long"), prompt=manifest["images"][1]["prompt"], model="tiny", width=WIDTH,
                    height=HEIGHT)
    with Image.open(tmp_path / "again" / "images" / "p000.png") as im:
        assert_same_picture(np.asarray(im), short, "seed 5 alone and in a batch of 2")
    assert sum("over the 77-token limit" in r.getMessage() for r in caplog.records) == 1


@pytest.mark.parametrize("kind,frames", [("svd", 7), ("ltx-i2v", 10), ("animatediff", 18), ("wan", 10)])
def test_every_tiny_kind_makes_exactly_n_frames_at_the_size_and_fps(first_frames, tmp_path, kind, frames):
    """LTX (4k+1 in its tiny VAE, 8k+1 in the real one) and Wan (4k+1) make 13 and trim to 10;
    AnimateDiff goes past its 16-frame context with FreeNoise."""
    clips = str(tmp_path / "clips")
    manifest = animate.animate(clips, images=first_frames, model="tiny", kind=kind, frames=frames, fps=FPS,
                               width=WIDTH, height=HEIGHT)
    assert [c["id"] for c in manifest["clips"]] == ["short", "long"]
    assert manifest["frames"] == frames
    if kind in ("ltx-i2v", "wan"):
        assert manifest["generated_frames"] == 13 and manifest["frame_rule"] == "4k+1"
    for clip in manifest["clips"]:
        assert len(clip["frame_files"]) == frames
        with Image.open(tmp_path / "clips" / clip["frame_files"][-1]) as im:
            assert im.size == (WIDTH, HEIGHT)
    videos = tmp_path / "videos"
    export.export(clips, str(videos))
    for clip in manifest["clips"]:
        mp4 = videos / f"{clip['id']}.mp4"
        info = media.probe(mp4).video
        assert (info.frames, info.fps, info.width, info.height) == (frames, FPS, WIDTH, HEIGHT)
        assert sum(1 for _ in media.iter_frames(mp4)) == frames  # decoded, not just declared
        with Image.open(videos / f"{clip['id']}.gif") as gif:
            assert gif.n_frames == frames and gif.info["loop"] == 0 and gif.size == (WIDTH, HEIGHT)
        with Image.open(videos / f"{clip['id']}_strip.png") as strip:
            assert strip.height == HEIGHT and strip.width > WIDTH


def test_round_frames_takes_the_nearest_count_the_model_makes_with_a_warning(first_frames, tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="reelworks.t2v.animate"):
        manifest = animate.animate(str(tmp_path / "clips"), images=first_frames, model="tiny", kind="wan",
                                   frames=10, fps=FPS, width=32, height=32, round_frames=True)
    assert manifest["frames"] == manifest["generated_frames"] == 9
    assert all(len(c["frame_files"]) == 9 for c in manifest["clips"])
    assert any("10 frames asked for, rounded to 9" in r.getMessage() for r in caplog.records)


def test_frame_plans_follow_each_models_rule():
    ltx, wan, any_ = animate.Rules("ltx-i2v", 8, 32), animate.Rules("wan", 4, 16), animate.Rules("svd", 1, 16)
    assert animate.plan_frames(121, ltx) == (121, 121)
    assert animate.plan_frames(12, ltx) == (17, 12)
    assert animate.plan_frames(12, ltx, round_frames=True) == (9, 9)
    assert animate.plan_frames(14, ltx, round_frames=True) == (17, 17)
    assert animate.plan_frames(80, wan) == (81, 80)
    assert animate.plan_frames(3, wan, round_frames=True) == (5, 5)  # tie goes up
    assert animate.plan_frames(7, any_) == (7, 7)
    with pytest.raises(ReelworksError, match="at least 1"):
        animate.plan_frames(0, wan)
    assert animate.plan_size(48, 40, ltx) == (64, 64)
    with pytest.raises(ReelworksError, match="even"):
        animate.plan_size(47, 40, ltx)


def test_the_model_vocabulary(tmp_path):
    assert animate.resolve_model("tiny") == ("tiny", "ltx-i2v")
    assert animate.resolve_model("tiny", "wan") == ("tiny", "wan")
    assert animate.resolve_model("wan") == ("Wan-AI/Wan2.1-T2V-1.3B-Diffusers", "wan")
    assert animate.resolve_model("some/hub-id", "svd") == ("some/hub-id", "svd")
    with pytest.raises(ReelworksError, match="no single Hub pipeline"):
        animate.resolve_model("animatediff")
    with pytest.raises(ReelworksError, match="unknown animation kind 'sd'"):
        animate.resolve_model("tiny", "sd")
    with pytest.raises(ReelworksError, match="say which kind"):
        animate.resolve_model("some/hub-id")
    folder = tmp_path / "saved"
    folder.mkdir()
    (folder / "model_index.json").write_text(json.dumps({"_class_name": "StableVideoDiffusionPipeline"}))
    assert animate.resolve_model(str(folder)) == (str(folder), "svd")
    (folder / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline"}))
    with pytest.raises(ReelworksError, match="holds a StableDiffusionPipeline pipeline"):
        animate.resolve_model(str(folder))


def test_a_file_that_is_not_an_image_is_counted_and_skipped(first_frames, tmp_path, caplog, pushgateway,
                                                             read_pushgateway, monkeypatch):
    monkeypatch.setenv("REELWORKS_PUSHGATEWAY_URL", pushgateway)
    monkeypatch.setenv("REELWORKS_RUN_ID", "t-animate")
    folder = tmp_path / "mixed"
    folder.mkdir()
    (folder / "a.png").write_bytes(storage.read_bytes(storage.join(first_frames, "images/short.png")))
    (folder / "b.png").write_text("not an image at all")
    with caplog.at_level(logging.WARNING):
        manifest = animate.animate(str(tmp_path / "clips"), images=str(folder), model="tiny", kind="svd", frames=3,
                                   fps=FPS, width=32, height=32, prompt="a quiet street")
    assert [c["frames"] for c in manifest["clips"]] == [3]
    assert any("b.png is not an image" in r.getMessage() for r in caplog.records)
    scraped = read_pushgateway(pushgateway)
    assert scraped['reelworks_job_items_dropped_total{job="t2v_animate",reason="not_an_image",run="t-animate"}'] == 1
    assert scraped['reelworks_job_items_processed_total{job="t2v_animate",run="t-animate"}'] == 1
    with pytest.raises(ReelworksError, match="b.png is not an image"):
        animate.animate(str(tmp_path / "one"), images=str(folder / "b.png"), model="tiny", kind="svd", frames=3)
    assert not (tmp_path / "one").exists()


def test_tiny_models_and_clips_round_trip_through_s3(s3_bucket, tmp_path):
    """A tiny Wan saved to the S3 test server loads back (kind read from model_index.json) and
    gives bit-identical frames to the same model saved locally; clips and videos go to S3."""
    from reelworks import diffusion

    model = f"{s3_bucket}/models/wan"
    diffusion.save_tiny("wan", model, seed=3)
    diffusion.save_tiny("wan", str(tmp_path / "wan"), seed=3)
    from_s3 = animate.animate(f"{s3_bucket}/clips", prompt="A storm over the harbour.", model=model, frames=5,
                              fps=FPS, width=32, height=32)
    assert from_s3["kind"] == "wan"
    local = animate.animate(str(tmp_path / "clips"), prompt="A storm over the harbour.", model=str(tmp_path / "wan"),
                            frames=5, fps=FPS, width=32, height=32)
    for name in local["clips"][0]["frame_files"]:
        assert storage.read_bytes(f"{s3_bucket}/clips/{name}") == (tmp_path / "clips" / name).read_bytes()
    export.export(f"{s3_bucket}/clips", f"{s3_bucket}/videos")
    with storage.local_file(f"{s3_bucket}/videos/c000.mp4") as mp4:
        assert media.probe(mp4).video.frames == 5
    with Image.open(io.BytesIO(storage.read_bytes(f"{s3_bucket}/videos/c000.gif"))) as gif:
        assert gif.n_frames == 5
