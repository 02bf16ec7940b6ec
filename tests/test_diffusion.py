"""reelworks.diffusion: tiny presets of every kind through the real diffusers loading path."""
from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
from pictures import assert_same_picture

torch = pytest.importorskip("torch")

from reelworks import diffusion, storage  # noqa: E402
from reelworks.errors import ReelworksError  # noqa: E402

PROMPT = "a lighthouse on a cliff at night, storm, film still"


def render(pipe, kind: str, seed: int = 0, **kw):
    """One output of `pipe` at the smallest sizes diffusers' own tests use, as a numpy array."""
    from PIL import Image

    gen = diffusion.generators([seed], "cpu")
    common = dict(num_inference_steps=2, generator=gen, output_type="np")
    if kind in ("sd", "sdxl"):
        return pipe(prompt=PROMPT, height=48, width=32, **common, **kw).images
    if kind == "animatediff":
        return pipe(prompt=PROMPT, height=32, width=32, num_frames=4, **common, **kw).frames
    if kind == "ltx":
        return pipe(prompt=PROMPT, height=32, width=32, num_frames=9, max_sequence_length=16, **common, **kw).frames
    if kind == "ltx-i2v":
        return pipe(image=Image.new("RGB", (32, 32), "orange"), prompt=PROMPT, height=32, width=32, num_frames=9,
                    max_sequence_length=16, **common, **kw).frames
    if kind == "wan":
        return pipe(prompt=PROMPT, height=16, width=16, num_frames=9, max_sequence_length=16, **common, **kw).frames
    if kind == "svd":
        return pipe(image=Image.new("RGB", (32, 32), "orange"), height=32, width=32, num_frames=2, **common,
                    **kw).frames
    raise AssertionError(kind)


SHAPES = {"sd": (1, 48, 32, 3), "sdxl": (1, 48, 32, 3), "animatediff": (1, 4, 32, 32, 3),
          "ltx": (1, 9, 32, 32, 3), "ltx-i2v": (1, 9, 32, 32, 3), "wan": (1, 9, 16, 16, 3), "svd": (1, 2, 32, 32, 3)}


@pytest.mark.parametrize("kind", diffusion.KINDS)
def test_every_tiny_kind_loads_from_its_saved_folder_and_renders_the_right_shape(kind):
    pipe = diffusion.load("tiny", kind)
    assert type(pipe).__name__ == diffusion.PIPELINES[kind]
    # Loaded back from the save_pretrained folder in the cache, safetensors only.
    folder = diffusion.tiny_path(kind)
    assert (folder / "model_index.json").is_file()
    weights = [p.name for p in folder.rglob("*") if p.is_file()]
    assert any(name.endswith(".safetensors") for name in weights)
    assert not any(name.endswith(".bin") for name in weights)
    out = render(pipe, kind)
    assert out.shape == SHAPES[kind]
    assert np.isfinite(out).all() and 0 <= out.min() and out.max() <= 1


def test_tiny_pipeline_saved_to_s3_loads_back_offline_bit_identical(s3_bucket, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for kind in ("sd", "wan"):  # one CLIP kind, one T5 kind
        prefix = f"{s3_bucket}/models/tiny-{kind}"
        assert diffusion.save_tiny(kind, prefix) == prefix
        keys = storage.list_keys(prefix)
        assert "model_index.json" in keys and any(k.endswith(".safetensors") for k in keys)
        assert not any(k.endswith((".bin", ".pt", ".ckpt")) for k in keys)
        from_s3 = render(diffusion.load(prefix, kind), kind, seed=3)
        from_cache = render(diffusion.load("tiny", kind), kind, seed=3)
        assert np.array_equal(from_s3, from_cache)


def test_tiny_preset_is_the_same_every_build_and_the_seed_changes_it(tmp_path):
    a = Path(diffusion.save_tiny("sd", str(tmp_path / "a")))
    b = Path(diffusion.save_tiny("sd", str(tmp_path / "b")))
    c = Path(diffusion.save_tiny("sd", str(tmp_path / "c"), seed=1))
    unet = "unet/diffusion_pytorch_model.safetensors"
    assert (a / unet).read_bytes() == (b / unet).read_bytes()
    assert (a / unet).read_bytes() != (c / unet).read_bytes()


def test_same_seed_same_image_other_seed_other_image_and_seeds_are_per_item():
    pipe = diffusion.load("tiny", "sd")
    first, again, other = (render(pipe, "sd", seed=s) for s in (7, 7, 8))
    assert np.array_equal(first, again)
    assert np.abs(first - other).mean() > 0.01
    # In a batch, each item's image depends on its own seed only (the same picture, not the same bits).
    batch = pipe(prompt=[PROMPT, PROMPT], height=48, width=32, num_inference_steps=2, output_type="np",
                 generator=diffusion.generators([8, 7], "cpu")).images
    assert_same_picture(batch[1], first[0], "seed 7 in a batch")
    assert_same_picture(batch[0], other[0], "seed 8 in a batch")


def test_clip_tokenizer_is_the_real_vocabulary():
    tokenizer = diffusion.clip_tokenizer()
    assert len(tokenizer) == 49408
    # CLIP's own ids: <|startoftext|> a red car <|endoftext|>
    assert tokenizer("a red car")["input_ids"] == [49406, 320, 736, 1615, 49407]
    t5 = diffusion.t5_tokenizer()
    assert len(t5) == 1103
    tokens = t5.convert_ids_to_tokens(t5("the night photo")["input_ids"])
    assert tokens == ["▁the", "▁night", "▁photo", "</s>"]


def test_fit_prompt_cuts_to_77_clip_tokens_with_one_warning(caplog):
    tokenizer = diffusion.clip_tokenizer()
    long = ", ".join(["a haunted lighthouse keeper"] * 40)
    with caplog.at_level(logging.WARNING, logger="reelworks.diffusion"):
        cut = diffusion.fit_prompt(tokenizer, long)
    assert len(tokenizer(cut)["input_ids"]) <= 77
    assert len(tokenizer(cut)["input_ids"]) >= 70  # cut at the limit, not far below it
    assert long.startswith(cut)
    assert len([r for r in caplog.records if "token limit" in r.getMessage()]) == 1
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="reelworks.diffusion"):
        assert diffusion.fit_prompt(tokenizer, "a short prompt") == "a short prompt"
    assert not caplog.records


def test_tiny_says_once_that_it_draws_noise_and_names_the_option_for_a_real_model(caplog):
    diffusion.warn_tiny_once.cache_clear()  # once per process: forget earlier tests' loads
    with caplog.at_level(logging.WARNING, logger="reelworks.diffusion"):
        diffusion.load(str(diffusion.tiny_path("sd")), "sd")  # a chosen folder, however small: nothing to say
        assert not [r for r in caplog.records if "random-initialised" in r.getMessage()]
        diffusion.load("tiny", "sd")
        diffusion.load("tiny", "sd")
    said = [r.getMessage() for r in caplog.records if "random-initialised" in r.getMessage()]
    assert len(said) == 1 and "noise" in said[0]
    assert "--model" in said[0] and "stable-diffusion-v1-5/stable-diffusion-v1-5" in said[0]


def test_run_batched_halves_the_batch_on_cuda_out_of_memory():
    seen = []

    def fn(batch):  # a device that fits at most 3 items at once
        seen.append(len(batch))
        if len(batch) > 3:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory")
        return [x * 10 for x in batch]

    assert diffusion.run_batched(fn, list(range(10)), batch_size=8) == [x * 10 for x in range(10)]
    assert seen[:2] == [8, 4] and max(seen[2:]) == 2
    assert diffusion.run_batched(fn, [1, 2, 3], batch_size="auto") == [10, 20, 30]

    def never_fits(batch):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory")

    with pytest.raises(ReelworksError, match="even at batch size 1"):
        diffusion.run_batched(never_fits, [1, 2], batch_size=2)
    with pytest.raises(ReelworksError, match="batch size"):
        diffusion.run_batched(fn, [1], batch_size=0)


def test_out_of_memory_in_the_pipeline_retries_the_same_items_and_drops_none(monkeypatch):
    from pictures import assert_same_picture

    pipe = diffusion.load("tiny", "sd")
    real = type(pipe).__call__
    sizes = []

    def fits_two(self, *args, **kwargs):  # a GPU that holds at most 2 images
        sizes.append(len(kwargs["generator"]))
        if sizes[-1] > 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(self, *args, **kwargs)

    def render(seeds):
        return list(pipe(prompt=["a lighthouse at night"] * len(seeds), num_inference_steps=1, height=32, width=32,
                         generator=diffusion.generators(seeds), output_type="np").images)

    monkeypatch.setattr(type(pipe), "__call__", fits_two)
    images = diffusion.run_batched(render, [11, 12, 13, 14, 15], batch_size=4)
    assert sizes == [4, 2, 2, 1] and len(images) == 5
    monkeypatch.undo()
    for seed, image in zip([11, 12, 13, 14, 15], images):  # each item its own image, in order
        assert_same_picture(image, render([seed])[0], f"seed {seed}")


def test_run_batched_makes_a_flagged_image_again_with_the_next_seed_a_bounded_number_of_times():
    calls = []

    def render(seeds):  # seeds 2 and 3 "draw" something the safety checker blacks out
        calls.append(list(seeds))
        return [(seed, seed in (2, 3)) for seed in seeds]

    out = diffusion.run_batched(render, [1, 2, 5], batch_size=4, flagged=lambda r: r[1],
                                reroll=lambda seed, attempt: seed + attempt)
    assert out == [(1, False), (4, False), (5, False)]  # 2 -> 3 (flagged again) -> 4
    assert calls == [[1, 2, 5], [3], [4]]
    calls.clear()
    with pytest.raises(ReelworksError, match=r"flagged 2 image\(s\) 4 times"):
        diffusion.run_batched(render, [1, 2], flagged=lambda r: True, reroll=lambda seed, attempt: seed)
    assert len(calls) == 1 + diffusion.SAFETY_TRIES


def test_pick_device_on_a_cpu_machine():
    if torch.cuda.is_available():
        pytest.skip("a GPU is present: the CPU defaults do not apply")
    assert diffusion.pick_device() == ("cpu", torch.float32)
    with pytest.raises(ReelworksError, match="no CUDA GPU"):
        diffusion.pick_device("cuda")


def test_memory_switches_keep_the_image():
    plain = render(diffusion.load("tiny", "sd"), "sd", seed=2)
    sliced = render(diffusion.load("tiny", "sd", slicing=True, offload=True), "sd", seed=2)
    assert_same_picture(plain, sliced, "sliced attention, offloaded")
    tiled_pipe = diffusion.load("tiny", "sd", tiling=True)
    assert tiled_pipe.vae.use_tiling
    # Tiles (32 px for this VAE) blend at their seams: close to, not equal to, the whole decode
    # (diffusers' own tiling tests allow 0.2).
    tiled = render(tiled_pipe, "sd", seed=2)
    assert 0 < np.abs(plain - tiled).max() < 0.2


def test_bad_model_folders_and_kinds_give_one_clear_line(tmp_path):
    with pytest.raises(ReelworksError, match="unknown diffusion model kind 'sd3'"):
        diffusion.load("tiny", "sd3")
    with pytest.raises(ReelworksError, match="no model_index.json"):
        (tmp_path / "empty").mkdir()
        diffusion.load(str(tmp_path / "empty"), "sd")
    with pytest.raises(ReelworksError, match="no saved model"):
        diffusion.load(str(tmp_path / "absent"), "sd")
    with pytest.raises(ReelworksError, match="cannot load model 'someorg/no-such-model' .HF_HUB_OFFLINE=1"):
        diffusion.load("someorg/no-such-model", "sd")

    folder = tmp_path / "no-vae"
    shutil.copytree(diffusion.tiny_path("sd"), folder)
    shutil.rmtree(folder / "vae")
    with pytest.raises(ReelworksError, match="missing the 'vae' component"):
        diffusion.load(str(folder), "sd")

    # A folder of another kind lacks what this kind needs.
    with pytest.raises(ReelworksError, match="missing the 'motion_adapter' component"):
        diffusion.load(str(diffusion.tiny_path("sd")), "animatediff")

    # Pickle-only weights are refused, never unpickled.
    pickled = tmp_path / "pickled"
    shutil.copytree(diffusion.tiny_path("sd"), pickled)
    from safetensors.torch import load_file

    weights = pickled / "unet" / "diffusion_pytorch_model.safetensors"
    torch.save(load_file(weights), pickled / "unet" / "diffusion_pytorch_model.bin")
    weights.unlink()
    with pytest.raises(ReelworksError, match=r"only pickle weights \(\.bin\)"):
        diffusion.load(str(pickled), "sd")


# --------------------------------------------------------------------------- text_to_image

PROMPTS = ["a lighthouse on a cliff at night", "a red car in the rain", "two cats on a sofa"]


@pytest.fixture(scope="module")
def sd_pipe():
    return diffusion.load("tiny", "sd")


def t2i(pipe, prompts, seeds, **kw):
    kw = {"height": 32, "width": 40, "steps": 2, "guidance": 7.5, **kw}
    return diffusion.text_to_image(pipe, prompts, seeds, **kw)


def test_text_to_image_one_image_per_prompt_in_order_the_same_picture_in_any_batch(sd_pipe):
    delivered = []
    whole = t2i(sd_pipe, PROMPTS, [5, 6, 7], negative_prompts="blurry", batch_size=3,
                on_batch=lambda indices, images: delivered.append((indices, len(images))))
    assert [image.shape for image in whole] == [(32, 40, 3)] * 3 and whole[0].dtype == np.uint8
    assert delivered == [([0, 1, 2], 3)]
    delivered.clear()
    one_by_one = t2i(sd_pipe, PROMPTS, [5, 6, 7], negative_prompts=["blurry"] * 3, batch_size=1,
                     on_batch=lambda indices, images: delivered.append((indices, len(images))))
    assert delivered == [([0], 1), ([1], 1), ([2], 1)]  # saved as they are made, each once
    for i, (a, b) in enumerate(zip(whole, one_by_one)):
        assert_same_picture(a, b, f"item {i} in a batch of 3 and alone")
    # In order: the last item rendered on its own is the last image, and items differ.
    assert_same_picture(whole[2], t2i(sd_pipe, PROMPTS[2:], [7], negative_prompts="blurry")[0], "item 2")
    assert np.abs(whole[0].astype(int) - whole[2].astype(int)).mean() > 3
    with pytest.raises(ReelworksError, match="one seed per prompt"):
        t2i(sd_pipe, PROMPTS, [1, 2])


def test_text_to_image_halves_the_batch_on_out_of_memory_and_drops_nothing(sd_pipe, monkeypatch):
    real = type(sd_pipe).__call__
    sizes, delivered = [], []

    def fits_two(self, *args, **kwargs):  # a GPU that holds at most 2 images
        sizes.append(len(kwargs["generator"]))
        if sizes[-1] > 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(type(sd_pipe), "__call__", fits_two)
    prompts = [f"a lighthouse number {i}" for i in range(5)]
    images = t2i(sd_pipe, prompts, [10, 11, 12, 13, 14], batch_size=4, steps=1,
                 on_batch=lambda indices, _: delivered.extend(indices))
    assert sizes == [4, 2, 2, 1] and len(images) == 5
    assert delivered == [0, 1, 2, 3, 4]
    monkeypatch.undo()
    assert_same_picture(images[4], t2i(sd_pipe, prompts[4:], [14], steps=1)[0], "the last item, alone")


def test_text_to_image_makes_a_safety_flagged_image_again_with_seed_plus_attempt(sd_pipe, monkeypatch):
    real = type(sd_pipe).__call__

    def checker_flags_seed_6(self, *args, **kwargs):  # the safety checker blacks out seed 6's image
        output = real(self, *args, **kwargs)
        output.nsfw_content_detected = [g.initial_seed() == 6 for g in kwargs["generator"]]
        for i, flagged in enumerate(output.nsfw_content_detected):
            if flagged:
                output.images[i] = 0
        return output

    monkeypatch.setattr(type(sd_pipe), "__call__", checker_flags_seed_6)
    delivered = []
    images = t2i(sd_pipe, PROMPTS[:2], [5, 6], on_batch=lambda indices, _: delivered.append(indices))
    monkeypatch.undo()
    assert delivered == [[0], [1]]  # item 1 only once made again, never black
    assert_same_picture(images[1], t2i(sd_pipe, PROMPTS[1:2], [7])[0], "item 1 with seed 6 + 1")
    assert images[1].max() > 0


def test_text_to_image_takes_prompt_embeds_cut_per_batch(sd_pipe):
    cond, uncond = sd_pipe.encode_prompt(PROMPTS, "cpu", 1, True, negative_prompt=["blurry"] * 3)
    from_embeds = t2i(sd_pipe, None, [5, 6, 7], prompt_embeds=cond, negative_prompt_embeds=uncond, batch_size=2)
    from_text = t2i(sd_pipe, PROMPTS, [5, 6, 7], negative_prompts="blurry", batch_size=2)
    for i, (a, b) in enumerate(zip(from_embeds, from_text)):
        assert_same_picture(a, b, f"item {i} from embeddings and from text")


def test_text_to_image_stops_with_one_line_when_the_vae_makes_nan():
    pipe = diffusion.load("tiny", "sd")  # its own copy: the weights are broken on purpose
    with torch.no_grad():
        pipe.vae.post_quant_conv.weight.fill_(float("nan"))
    with pytest.raises(ReelworksError, match="NaN pixels"):
        t2i(pipe, PROMPTS[:1], [1], steps=1)


def test_offloaded_pipeline_makes_the_same_picture_and_generators_follow_its_execution_device():
    # On a CPU machine `load(offload=True)` has nothing to offload to (no hooks); diffusers' offload
    # hooks themselves run on CPU too, so the offloaded path is exercised here with device "cpu".
    plain = diffusion.load("tiny", "sd", offload=True)
    assert getattr(plain.unet, "_hf_hook", None) is None
    offloaded = diffusion.load("tiny", "sd")
    offloaded.enable_model_cpu_offload(device="cpu")
    assert getattr(offloaded.unet, "_hf_hook", None) is not None
    assert diffusion.execution_device(offloaded) == "cpu:0" and diffusion.execution_device(plain) == "cpu"
    assert_same_picture(t2i(offloaded, PROMPTS[:1], [3])[0], t2i(plain, PROMPTS[:1], [3])[0], "offloaded")


def test_step_progress_ticks_once_per_denoising_step(sd_pipe):
    progress = diffusion.StepProgress("denoising", steps=3)
    t2i(sd_pipe, PROMPTS[:1], [1], steps=3, callback_on_step_end=progress)
    progress.close()
    assert progress.done == 3


# --------------------------------------------------------------------------- memory switches, dtypes


def test_slicing_slices_the_vae_but_not_sdpa_attention_and_svd_says_what_it_has_instead():
    sliced = diffusion.load("tiny", "sd", slicing=True)
    assert sliced.vae.use_slicing
    # torch 2's scaled-dot-product attention stays: sliced attention is slower and saves nothing there.
    assert {type(p).__name__ for p in sliced.unet.attn_processors.values()} == {"AttnProcessor2_0"}
    svd = diffusion.load("tiny", "svd", slicing=True)  # no VAE slicing to switch on: not an error
    assert type(svd).__name__ == "StableVideoDiffusionPipeline"
    with pytest.raises(ReelworksError, match="svd pipeline's VAE has no tiled decoding: lower decode_chunk_size"):
        diffusion.load("tiny", "svd", tiling=True)


def test_wan_vae_stays_float32_when_the_rest_is_bfloat16():
    pipe = diffusion.load("tiny", "wan", dtype=torch.bfloat16)
    assert pipe.transformer.dtype == torch.bfloat16 and pipe.text_encoder.dtype == torch.bfloat16
    assert pipe.vae.dtype == torch.float32
    frames = pipe(prompt=PROMPT, height=16, width=16, num_frames=9, max_sequence_length=16, num_inference_steps=2,
                  generator=diffusion.generators([0]), output_type="np").frames
    assert frames.shape == (1, 9, 16, 16, 3) and np.isfinite(frames).all()
    assert diffusion.load("tiny", "ltx", dtype=torch.bfloat16).vae.dtype == torch.bfloat16  # LTX's VAE is fine


def test_sdxl_vae_in_float16_decodes_in_float32_unless_an_fp16_safe_vae_is_given(tmp_path):
    import json

    folder = tmp_path / "sdxl"
    shutil.copytree(diffusion.tiny_path("sdxl"), folder)
    config_file = folder / "vae" / "config.json"
    config_file.write_text(json.dumps({**json.loads(config_file.read_text()), "force_upcast": False}))
    pipe = diffusion.load(str(folder), "sdxl", dtype=torch.float16)
    assert pipe.vae.dtype == torch.float16 and pipe.vae.config.force_upcast
    # An fp16-safe VAE (vae=, e.g. madebyollin/sdxl-vae-fp16-fix) is trusted as it is.
    own = diffusion.load(str(folder), "sdxl", dtype=torch.float16, vae=str(folder / "vae"))
    assert own.vae.dtype == torch.float16 and not own.vae.config.force_upcast


# --------------------------------------------------------------------------- gated models, AnimateDiff


def test_hub_token_from_a_mounted_file_reaches_from_pretrained_and_is_never_shown(tmp_path, monkeypatch, caplog):
    from reelworks import redaction

    token = "hf_testGatedToken0123456789"
    (tmp_path / "token").write_text(token + "\n")
    monkeypatch.setenv("REELWORKS_HF_TOKEN_FILE", str(tmp_path / "token"))
    assert diffusion.from_pretrained_kwargs("svd", torch.float16)["token"] == token
    assert redaction.redact(f"header Bearer {token}") == f"header Bearer {redaction.REDACTED}"
    with caplog.at_level(logging.DEBUG), pytest.raises(ReelworksError) as error:
        diffusion.load("someorg/gated-model", "svd")
    assert token not in str(error.value) and token not in caplog.text
    monkeypatch.delenv("REELWORKS_HF_TOKEN_FILE")
    monkeypatch.delenv("HF_TOKEN", raising=False)
    assert "token" not in diffusion.from_pretrained_kwargs("svd", torch.float16)
    monkeypatch.setenv("REELWORKS_HF_TOKEN_FILE", str(tmp_path / "absent"))
    with pytest.raises(ReelworksError, match="REELWORKS_HF_TOKEN_FILE=.*cannot read the token file"):
        diffusion.load("someorg/gated-model", "svd")


def test_animatediff_from_a_stable_diffusion_base_and_a_motion_adapter(tmp_path):
    from diffusers import StableDiffusionPipeline

    # The tiny preset's own parts, saved the way they are published: an SD 1.5 base folder and a
    # MotionAdapter folder.
    parts = diffusion._tiny_animatediff(0)
    base = StableDiffusionPipeline(unet=parts["unet"], vae=parts["vae"], text_encoder=parts["text_encoder"],
                                   tokenizer=parts["tokenizer"], scheduler=parts["scheduler"], safety_checker=None,
                                   feature_extractor=None, requires_safety_checker=False)
    base.save_pretrained(tmp_path / "sd-base", safe_serialization=True)
    parts["motion_adapter"].save_pretrained(tmp_path / "adapter", safe_serialization=True)
    built = diffusion.load(str(tmp_path / "sd-base"), "animatediff", motion_adapter=str(tmp_path / "adapter"))
    assert type(built).__name__ == "AnimateDiffPipeline"
    preset = diffusion.build_tiny("animatediff")  # the same parts, in memory
    assert_same_picture(render(built, "animatediff", seed=4), render(preset, "animatediff", seed=4), "from parts")
    with pytest.raises(ReelworksError, match="motion adapter is for kind animatediff"):
        diffusion.load("tiny", "sd", motion_adapter=str(tmp_path / "adapter"))
