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

from reelworks import diffusion, media, storage
from reelworks.errors import ReelworksError
from reelworks.t2v import animate, export, image, presets

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
    AnimateDiff goes past its 16-frame context with FreeNoise. 48x40 is no multiple of LTX's 32
    or Wan's 16: generated at 64x64 and 48x48, center-cropped, never squashed."""
    clips = str(tmp_path / "clips")
    manifest = animate.animate(clips, images=first_frames, model="tiny", kind=kind, frames=frames, fps=FPS,
                               width=WIDTH, height=HEIGHT)
    assert [c["id"] for c in manifest["clips"]] == ["short", "long"]
    assert manifest["frames"] == frames
    if kind in ("ltx-i2v", "wan"):
        assert manifest["generated_frames"] == 13 and manifest["frame_rule"] == "4k+1"
    for clip in manifest["clips"]:
        assert len(clip["frame_files"]) == frames
        assert clip["frame_fit"] == ("cropped" if kind in ("ltx-i2v", "wan") else "none")
        if kind in animate.IMAGE_TO_VIDEO:  # the 48x40 image into LTX's 64x64: cropped, not squashed
            assert clip["image_fit"] == ("cropped" if kind == "ltx-i2v" else "none")
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


def test_round_frames_takes_the_nearest_count_at_the_models_own_fps(first_frames, tmp_path, caplog):
    """No fps given: the clip plays at the rate the model was trained at (Wan 16), not 8 for all."""
    clips, videos = tmp_path / "clips", tmp_path / "videos"
    with caplog.at_level(logging.WARNING, logger="reelworks.diffusion"):
        manifest = animate.animate(str(clips), images=first_frames, model="tiny", kind="wan", frames=10, width=32,
                                   height=32, round_frames=True)
    assert manifest["frames"] == manifest["generated_frames"] == 9
    assert all(len(c["frame_files"]) == 9 for c in manifest["clips"])
    assert any("10 frames asked for, rounded to 9" in r.getMessage() for r in caplog.records)
    assert manifest["fps"] == diffusion.VIDEO_FPS["wan"] == 16
    export.export(str(clips), str(videos))
    assert media.probe(videos / "short.mp4").video.fps == 16


def test_frame_plans_follow_each_models_rule():
    VideoRules, plan_frames, plan_size = diffusion.VideoRules, diffusion.plan_frames, diffusion.plan_size
    ltx, wan, any_ = VideoRules("ltx-i2v", 8, 32), VideoRules("wan", 4, 16), VideoRules("svd", 1, 16)
    assert plan_frames(121, ltx) == (121, 121)
    assert plan_frames(12, ltx) == (17, 12)
    assert plan_frames(12, ltx, round_frames=True) == (9, 9)
    assert plan_frames(14, ltx, round_frames=True) == (17, 17)
    assert plan_frames(80, wan) == (81, 80)
    assert plan_frames(3, wan, round_frames=True) == (5, 5)  # tie goes up
    assert plan_frames(7, any_) == (7, 7)
    with pytest.raises(ReelworksError, match="at least 1"):
        plan_frames(0, wan)
    assert plan_size(48, 40, ltx) == (64, 64)
    with pytest.raises(ReelworksError, match="even"):
        plan_size(47, 40, ltx)
    # each kind plays at its own rate; settings of another kind are refused with one line
    assert diffusion.VIDEO_FPS == {"svd": 7, "ltx": 24, "ltx-i2v": 24, "wan": 16, "animatediff": 8}
    with pytest.raises(ReelworksError, match=r"wan takes no motion_bucket_id \(its settings: none\)"):
        diffusion.video_settings("wan", motion_bucket_id=30)
    with pytest.raises(ReelworksError, match="ltx-i2v takes no noise_aug_strength"):
        animate.animate("unused", prompt="x", model="tiny", kind="ltx-i2v", noise_aug_strength=0.1)


def test_images_are_cropped_or_padded_to_the_clip_never_squashed():
    """A 2:1 picture (red | green | green | blue quarters) into a square: cropped keeps the green
    middle at its shape, padded keeps all of it with black bars; nothing is stretched."""
    picture = np.zeros((40, 80, 3), np.uint8)
    picture[:, :20] = (255, 0, 0)
    picture[:, 20:60] = (0, 255, 0)
    picture[:, 60:] = (0, 0, 255)
    cropped, how = diffusion.fit_image(picture, 40, 40)
    assert how == "cropped" and cropped.size == (40, 40)
    assert np.abs(np.asarray(cropped).astype(int) - (0, 255, 0)).max() <= 2  # only the middle, unstretched
    padded, how = diffusion.fit_image(picture, 80, 80, "pad")
    padded = np.asarray(padded)
    assert how == "padded" and padded.shape == (80, 80, 3)
    assert padded[:19].max() == 0 and padded[-19:].max() == 0  # black bars above and below
    assert np.array_equal(padded[40, [5, 40, 75]], [(255, 0, 0), (0, 255, 0), (0, 0, 255)])  # the whole width kept
    assert diffusion.fit_image(picture, 160, 80)[1] == "scaled" and diffusion.fit_image(picture, 80, 40)[1] == "none"
    with pytest.raises(ReelworksError, match="unknown fit 'squash'"):
        diffusion.fit_image(picture, 40, 40, "squash")


def test_first_frames_render_at_the_image_models_native_size_and_the_videos_aspect():
    """SD 1.5 at 1024x576 (SVD's size) repeats its subjects: the preset renders 768x432, the same
    16:9; SDXL its trained 1344x768 bucket; the tiny preset at the video's own size."""
    full = presets.settings("full", "svd")
    assert (full["width"], full["height"], full["image_width"], full["image_height"]) == (1024, 576, 768, 432)
    for kind in ("ltx-i2v", "wan", "animatediff"):
        chosen = presets.settings("full", kind)
        assert chosen["image_width"] % 8 == chosen["image_height"] % 8 == 0
        assert max(chosen["image_width"], chosen["image_height"]) <= 768 and min(chosen["image_width"],
                                                                                 chosen["image_height"]) <= 512
        assert chosen["image_width"] / chosen["image_height"] == pytest.approx(chosen["width"] / chosen["height"],
                                                                               rel=0.02)
    assert presets.native_image_size("sdxl", 1024, 576) == (1344, 768)
    assert presets.native_image_size("sdxl", 576, 1024) == (768, 1344)
    assert presets.native_image_size("sd", 576, 1024) == (432, 768)
    tiny = presets.settings("tiny", "svd", width=48, height=40)
    assert (tiny["image_width"], tiny["image_height"]) == (48, 40)


def test_svd_and_ltx_settings_reach_the_model(tmp_path):
    """Each setting moves the frames by far more than the 1/255 a re-run may differ by; the CLI
    options arrive (the clip equals the library call with the same setting) and are recorded.
    LTX's decode settings act on a VAE with timestep conditioning (LTX 0.9.1+): a tiny one of
    the same shapes with it, random-init, seeded."""
    import torch
    from diffusers import AutoencoderKLLTXVideo
    from pictures import assert_same_picture, difference

    from reelworks.cli import main

    picture = Image.fromarray(np.random.default_rng(0).integers(0, 255, (16, 16, 3), dtype=np.uint8))
    svd = diffusion.load("tiny", "svd")
    make = dict(image=picture, seed=0, num_frames=2, height=16, width=16, steps=1, guidance=3.0)
    base = diffusion.video_frames(svd, "svd", **make)
    moved = {}
    for name, value in (("motion_bucket_id", 30), ("noise_aug_strength", 0.5), ("decode_chunk_size", 1),
                        ("fps", 14)):
        moved[name] = diffusion.video_frames(svd, "svd", **make, **{name: value})
        assert difference(moved[name], base) > 3, name
    picture.save(tmp_path / "still.png")
    main(["t2v", "animate", "--images", str(tmp_path / "still.png"), "--model", "tiny", "--kind", "svd", "--frames",
          "2", "--width", "16", "--height", "16", "--steps", "1", "--motion-bucket-id", "30", "--output",
          str(tmp_path / "clips")])
    (clip,) = json.loads((tmp_path / "clips" / "animate.json").read_text())["clips"]
    assert clip["settings"] == {"motion_bucket_id": 30, "noise_aug_strength": 0.02, "decode_chunk_size": 8}
    assert clip["fps"] == 7  # SVD's own fps conditioning, and the rate the clip is written at
    with Image.open(tmp_path / "clips" / clip["frame_files"][1]) as im:
        assert_same_picture(np.asarray(im), moved["motion_bucket_id"][1], "--motion-bucket-id 30 through the CLI")

    ltx = diffusion.load("tiny", "ltx-i2v")
    config = {k: v for k, v in ltx.vae.config.items() if not k.startswith("_")}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        ltx.vae = AutoencoderKLLTXVideo(**{**config, "timestep_conditioning": True})
    ltx.vae.use_framewise_encoding = ltx.vae.use_framewise_decoding = False
    make = dict(image=picture.resize((32, 32)), prompt="a quiet street", seed=0, num_frames=5, height=32, width=32,
                steps=1, guidance=3.0)
    base = diffusion.video_frames(ltx, "ltx-i2v", **make)
    at_timestep = diffusion.video_frames(ltx, "ltx-i2v", **make, decode_timestep=0.05)
    assert difference(at_timestep, base) > 3
    assert difference(diffusion.video_frames(ltx, "ltx-i2v", **make, decode_timestep=0.05, decode_noise_scale=0.5),
                      at_timestep) > 3


def test_a_last_frame_is_refused_with_one_line_where_the_model_takes_none():
    pipe = diffusion.load("tiny", "ltx-i2v")
    still = np.zeros((32, 32, 3), np.uint8)
    with pytest.raises(ReelworksError, match=r"ltx-i2v \(LTXImageToVideoPipeline\) cannot end on a given last frame"):
        diffusion.video_frames(pipe, "ltx-i2v", image=still, last_image=still, prompt="x", seed=0, num_frames=5,
                               height=32, width=32, steps=1, guidance=3.0)
    with pytest.raises(ReelworksError, match="makes 4k\\+1 frames, not 6"):
        diffusion.video_frames(pipe, "ltx-i2v", image=still, prompt="x", seed=0, num_frames=6, height=32, width=32,
                               steps=1, guidance=3.0)


def test_animatediff_runs_from_a_stable_diffusion_model_and_a_motion_adapter(tmp_path):
    """No pre-saved AnimateDiff folder: an SD 1.5-style folder and a MotionAdapter folder (the tiny
    AnimateDiff's parts) make the same clip as the AnimateDiff pipeline saved from those parts."""
    from diffusers import AnimateDiffPipeline, StableDiffusionPipeline

    from reelworks.cli import main

    import torch

    with torch.random.fork_rng(devices=[]):  # the tiny preset's own parts, before AnimateDiff merges them
        parts = diffusion._tiny_animatediff(0)
    sd = {k: parts[k] for k in ("vae", "text_encoder", "tokenizer", "unet", "scheduler")}
    StableDiffusionPipeline(**sd, safety_checker=None, feature_extractor=None, image_encoder=None,
                            requires_safety_checker=False).save_pretrained(tmp_path / "sd", safe_serialization=True)
    parts["motion_adapter"].save_pretrained(tmp_path / "adapter", safe_serialization=True)
    AnimateDiffPipeline(**parts).save_pretrained(tmp_path / "animatediff", safe_serialization=True)
    common = ["--prompt", "A storm over the harbour.", "--frames", "2", "--width", "32", "--height", "32", "--steps",
              "1"]
    main(["t2v", "animate", "--model", str(tmp_path / "sd"), "--kind", "animatediff", "--motion-adapter",
          str(tmp_path / "adapter"), "--output", str(tmp_path / "composed"), *common])
    main(["t2v", "animate", "--model", str(tmp_path / "animatediff"), "--output", str(tmp_path / "saved"), *common])
    manifest = json.loads((tmp_path / "composed" / "animate.json").read_text())
    assert manifest["motion_adapter"] == str(tmp_path / "adapter") and manifest["fps"] == 8
    for name in manifest["clips"][0]["frame_files"]:
        with Image.open(tmp_path / "composed" / name) as a, Image.open(tmp_path / "saved" / name) as b:
            assert_same_picture(np.asarray(a), np.asarray(b), name)
    with pytest.raises(ReelworksError, match="--motion-adapter is for --kind animatediff, not wan"):
        animate.animate(str(tmp_path / "no"), prompt="x", model="tiny", kind="wan",
                        motion_adapter=str(tmp_path / "adapter"))


def test_the_model_vocabulary(tmp_path):
    assert animate.resolve_model("tiny") == ("tiny", "ltx-i2v")
    assert animate.resolve_model("tiny", "wan") == ("tiny", "wan")
    assert animate.resolve_model("wan") == ("Wan-AI/Wan2.1-T2V-1.3B-Diffusers", "wan")
    assert animate.resolve_model("some/hub-id", "svd") == ("some/hub-id", "svd")
    # AnimateDiff's pipeline is composed at load time: the SD 1.5 base (+ MOTION_ADAPTER)
    assert animate.resolve_model("animatediff") == ("stable-diffusion-v1-5/stable-diffusion-v1-5", "animatediff")
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
    # the 48x40 image into the 32x32 clip: cropped to its middle, as the clip's metadata says
    assert manifest["clips"][0]["image_fit"] == "cropped"
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
