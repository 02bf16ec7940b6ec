"""Aspect ratios at each model's native size (never stretched), the SDXL walk, and the NaN
guard (tiny SDXL, CPU)."""
from __future__ import annotations

import numpy as np
import pytest

from reelworks.errors import ReelworksError
from cli_helpers import run_cli
from pictures import assert_same_picture

KEYFRAMES = [{"prompt": "a lighthouse in a storm", "negative_prompt": "blurry", "seed": 11},
             {"prompt": "a quiet harbour at dawn, boats", "negative_prompt": "blurry, text", "seed": 12}]


def test_presets_give_native_sizes_for_each_aspect():
    from reelworks.musicvideo.presets import ASPECTS, PRESETS, aspect_ratio, resolve

    native = {("tiny", "16:9"): (112, 64), ("tiny", "9:16"): (64, 112), ("sd15", "1:1"): (512, 512),
              ("sd15", "16:9"): (912, 512), ("sd15", "9:16"): (512, 912), ("sdxl", "1:1"): (1024, 1024),
              ("sdxl", "16:9"): (1344, 768), ("sdxl", "9:16"): (768, 1344)}
    for (preset, aspect), size in native.items():
        settings = resolve(preset, aspect)
        assert (settings["width"], settings["height"]) == size, (preset, aspect)
    for preset in PRESETS:
        for aspect in ASPECTS:
            settings = resolve(preset, aspect)
            assert settings["width"] % 8 == 0 and settings["height"] % 8 == 0
            assert abs(settings["width"] / settings["height"] / aspect_ratio(aspect) - 1) < 0.02
    assert resolve("sdxl")["kind"] == "sdxl" and resolve("tiny-sdxl")["kind"] == "sdxl"
    assert resolve("sd15")["kind"] == "sd"
    # No aspect: square, or the size given, as before.
    assert (resolve("tiny")["width"], resolve("tiny")["height"]) == (64, 64)
    assert (resolve("tiny", height=48, width=80)["width"], resolve("tiny", height=48, width=80)["height"]) == (80, 48)
    # One side given: the other follows the aspect (a multiple of 8).
    assert resolve("sd15", "16:9", height=576)["width"] == 1024
    assert resolve("sd15", "9:16", width=576)["height"] == 1024
    with pytest.raises(ReelworksError, match="--width 64 --height 64 is not 16:9"):
        resolve("tiny", "16:9", height=64, width=64)
    with pytest.raises(ReelworksError, match="unknown aspect '4:3'"):
        resolve("tiny", "4:3")


def test_a_size_against_the_aspect_is_one_line_before_anything_loads(tmp_path):
    code, out = run_cli("musicvideo", "keyframes", "--timeline", str(tmp_path / "none"), "--output",
                        str(tmp_path / "k"), "--aspect", "9:16", "--height", "64", "--width", "112")
    lines = [line for line in out.splitlines() if line.startswith("error:")]
    assert code == 2 and len(lines) == 1 and "is not 9:16" in lines[0] and "Traceback" not in out


@pytest.fixture(scope="module")
def sdxl_walker():
    from reelworks import diffusion
    from reelworks.musicvideo.interpolate import Walker

    pipe = diffusion.load("tiny", "sdxl")
    return Walker(pipe, KEYFRAMES, steps=2, guidance=5.0, height=64, width=112, batch_size=2)


def test_the_sdxl_walk_mixes_every_embedding_and_its_keyframe_is_the_stock_pipelines_picture(sdxl_walker):
    import torch

    from reelworks import diffusion

    walker = sdxl_walker
    assert walker.kind == "sdxl"
    inputs = walker.inputs([(0, 1, 0.0), (0, 1, 0.5)])
    for name in ("prompt_embeds", "negative_prompt_embeds", "pooled_prompt_embeds", "negative_pooled_prompt_embeds"):
        ends = walker.embeds[name]
        assert torch.equal(inputs[name][0], ends[0]), name
        torch.testing.assert_close(inputs[name][1], (ends[0] + ends[1]) / 2, rtol=0, atol=1e-6)
        assert not torch.equal(ends[0], ends[1]), name  # two prompts: the mix moves
    # The size conditioning SDXL's time ids come from: the frame's own size, no crop.
    assert inputs["original_size"] == inputs["target_size"] == (64, 112) and inputs["crops_coords_top_left"] == (0, 0)

    frames = walker.render_all([(0, 1, 0.0), (0, 1, 0.5)])
    assert all(frame.shape == (64, 112, 3) for frame in frames)  # 16:9, generated at that size
    assert np.abs(frames[0].astype(float) - frames[1]).mean() > 1
    # Position 0 is keyframe 0 exactly as the stock pipeline draws it from the prompt text (its
    # own encoding and time ids): the same picture (one image instead of a padded batch of 2).
    stock = walker.pipe(prompt=[KEYFRAMES[0]["prompt"]], negative_prompt=[KEYFRAMES[0]["negative_prompt"]],
                        latents=walker.noise[0:1], generator=diffusion.generators([KEYFRAMES[0]["seed"]]),
                        num_inference_steps=2, guidance_scale=5.0, height=64, width=112, output_type="np")
    from reelworks import media

    assert_same_picture(frames[0], media.to_uint8(stock.images)[0], "keyframe 0")


def test_the_keyframes_contact_sheet_keeps_the_aspect():
    from reelworks.media import contact_sheet

    frames = [np.full((64, 112, 3), value, np.uint8) for value in (40, 200)]  # two 16:9 keyframes
    sheet = contact_sheet(frames, ["#0", "#1"], cell=192)
    assert sheet.shape[1] == 2 * 192 + 2
    assert sheet.shape[0] - 1 * (11 + 3) - 3 == round(192 * 64 / 112)  # tile height: the frame's ratio


def test_a_nan_frame_stops_with_one_line_instead_of_a_black_frame(sdxl_walker):
    """fp16 VAE overflow shows as NaN pixels (to_uint8 would make them black): on the CPU the
    same NaN comes from a VAE with a NaN weight."""
    import torch

    bias = sdxl_walker.pipe.vae.post_quant_conv.bias
    kept = bias.detach().clone()
    with torch.no_grad():
        bias.fill_(float("nan"))
    try:
        with pytest.raises(ReelworksError, match=r"keyframes 0 and 1 \(position 0.250\) came out NaN .*fp16-safe VAE"):
            sdxl_walker.render_all([(0, 1, 0.25)])
    finally:
        with torch.no_grad():
            bias.copy_(kept)
