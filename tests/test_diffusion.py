"""reelworks.diffusion: tiny presets of every kind through the real diffusers loading path."""
from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

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
    # In a batch, each item's image depends on its own seed only.
    batch = pipe(prompt=[PROMPT, PROMPT], height=48, width=32, num_inference_steps=2, output_type="np",
                 generator=diffusion.generators([8, 7], "cpu")).images
    np.testing.assert_allclose(batch[1], first[0], atol=1e-4)
    np.testing.assert_allclose(batch[0], other[0], atol=1e-4)


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


def test_pick_device_on_a_cpu_machine():
    if torch.cuda.is_available():
        pytest.skip("a GPU is present: the CPU defaults do not apply")
    assert diffusion.pick_device() == ("cpu", torch.float32)
    with pytest.raises(ReelworksError, match="no CUDA GPU"):
        diffusion.pick_device("cuda")


def test_memory_switches_keep_the_image():
    plain = render(diffusion.load("tiny", "sd"), "sd", seed=2)
    sliced = render(diffusion.load("tiny", "sd", slicing=True, offload=True), "sd", seed=2)
    np.testing.assert_allclose(plain, sliced, atol=1e-4)
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
